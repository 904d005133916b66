#!/bin/sh
# floor.sh: the raw-git floor for the git-sync benchmark.
#
# The same jobs git-sync does, done the shortest way by hand with plain git
# and a POSIX shell, with the same on-disk layout (ROOT/.git holds the
# objects, ROOT/.worktrees/HASH holds each published commit, LINK is a
# relative symlink flipped with rename(2)). The benchmark measures git-sync
# against these; nothing here checks or recovers anything, which is exactly
# what makes it a floor.
#
# Usage:
#   floor.sh first  ROOT URL REF DEPTH LINK   empty root -> published link
#   floor.sh update ROOT URL REF DEPTH LINK   fetch, new worktree, flip, drop old
#       (both leave the fetched commit in a local ref; see fetch below)
#   floor.sh poll   ROOT URL REF DEPTH LINK   one idle poll (git ls-remote)
#   floor.sh daemon ROOT URL REF DEPTH LINK PERIOD STOPFILE
#       poll every PERIOD seconds until STOPFILE exists; on a change run
#       the update; print "published HASH" for every publish.
#
# DEPTH 0 means full history, as with git-sync.
#
# Every fetch stores what it brought in a local ref, $keep, as well as in
# FETCH_HEAD. That ref is what makes the next fetch cheap: git offers the
# commits its refs reach to the server as "have"s, so the server sends only
# the objects of the new commit that are not already here (a one-file
# change costs a few hundred bytes). A repository without refs has nothing
# to offer, and the server sends the whole tree of every new commit again;
# worktree HEADs do not count, as git negotiates only from refs. A careful
# user keeps such a ref, so the floor does. Naming the ref as the refspec's
# destination is the cheapest way to keep it: the fetch writes it itself,
# where `git update-ref` after the fetch would cost one more process per
# sync. The "+" accepts history that moved backwards or sideways, as
# git-sync must. The ref moves with every fetch, so it never pins a
# superseded commit.
#
# The floor never runs git gc (git-sync runs with its default
# --git-gc=always); the only housekeeping is git's own
# `git maintenance run --auto` that a plain fetch starts, as it would for
# anyone typing these commands.
set -eu

cmd=$1 root=$2 url=$3 ref=$4 depth=$5 link=$6
keep=refs/heads/floor

fetch() {
	if [ "$depth" -gt 0 ]; then
		git fetch -q --no-tags --depth="$depth" "$url" "+$ref:$keep" || return 1
	else
		git fetch -q --no-tags "$url" "+$ref:$keep" || return 1
	fi
	read -r new _ <.git/FETCH_HEAD
}

publish() {
	git worktree add -q --detach ".worktrees/$new" "$new" &&
		ln -s ".worktrees/$new" "$link.tmp" &&
		mv -T "$link.tmp" "$link"
}

# update sets published=1 when it published a new commit.
update() {
	published=0
	old=$(readlink "$link") || return 1
	fetch || return 1
	[ "$new" = "${old##*/}" ] && return 0
	publish || return 1
	published=1
	git worktree remove --force "$old"
}

case $cmd in
first)
	mkdir -p "$root"
	cd "$root"
	git init -q
	fetch
	publish
	;;
update)
	cd "$root"
	update
	;;
poll)
	git ls-remote "$url" "$ref" >/dev/null
	;;
daemon)
	period=$7 stop=$8
	cd "$root"
	cur=$(readlink "$link")
	cur=${cur##*/}
	while [ ! -e "$stop" ]; do
		remote=$(git ls-remote "$url" "$ref")
		remote=${remote%%"	"*}
		if [ -n "$remote" ] && [ "$remote" != "$cur" ]; then
			if update; then
				cur=$new
				[ "$published" = 1 ] && echo "published $new"
			else
				echo "error: update failed" >&2
			fi
		fi
		sleep "$period"
	done
	;;
*)
	echo "floor.sh: unknown command $cmd" >&2
	exit 2
	;;
esac
