#!/bin/sh
# Turns a Debian root filesystem that has git, openssh-client and
# ca-certificates installed into git-sync's runtime filesystem. One argument:
# the root directory. build.sh runs it as mmdebstrap's customize hook (on the
# new tree from outside); the Containerfile runs it inside the build
# container with "/". It only uses what both places have: POSIX sh, dpkg,
# find, chmod and friends.
#
# What it does, and why:
#   - removes Perl (perl, perl-modules, libperl, liberror-perl): git depends
#     on it only for porcelain that git-sync never runs (send-email, svn,
#     the *.perl helpers); it is half of the image. perl-base, which is
#     Essential, stays, so hooks still have /usr/bin/perl;
#   - removes git's server and mail programs (git-daemon, git-shell,
#     git-http-push, git-http-fetch, git-imap-send, scalar) and links the
#     second copy of the git binary to the first: about 20 MB. Fetching over
#     every transport, git-http-backend (a relay) and hooks' git commands are
#     unaffected;
#   - adds the user and group git-sync (65533), as in the kubernetes/git-sync
#     image, with HOME=/tmp;
#   - makes /etc/passwd writable by any UID so that --add-user works for an
#     arbitrary UID (OpenShift) on a writable root filesystem, as upstream
#     does; to keep that harmless, it strips every setuid and setgid bit
#     first (su, passwd, chsh... would otherwise trust a forged entry);
#   - creates /git (the conventional volume mount point), setgid and group
#     writable for 65533, and keeps /tmp world-writable (HOME);
#   - deletes package caches, logs and documentation (copyright files stay).
set -eu
root=${1:?usage: rootfs-setup.sh ROOT}
root=${root%/}

# dpkg warns that git depends on what is removed: that is the point.
if ! out=$(dpkg --root="$root/" --purge --force-depends \
	perl perl-modules-5.36 libperl5.36 liberror-perl 2>&1); then
	printf '%s\n' "$out" >&2
	exit 1
fi

core=$root/usr/lib/git-core
rm -f "$core/git-daemon" "$core/git-shell" "$core/git-http-push" "$core/git-http-fetch" \
	"$core/git-imap-send" "$core/scalar" "$root/usr/bin/git-shell" "$root/usr/bin/scalar"
if cmp -s "$core/git" "$root/usr/bin/git"; then
	ln -f "$root/usr/bin/git" "$core/git"
fi

find "$root/" -xdev -type f -perm /6000 -exec chmod ug-s {} +

if ! grep -q '^git-sync:' "$root/etc/group"; then
	echo 'git-sync:x:65533:' >>"$root/etc/group"
fi
if ! grep -q '^git-sync:' "$root/etc/passwd"; then
	echo 'git-sync:x:65533:65533:git-sync:/tmp:/usr/sbin/nologin' >>"$root/etc/passwd"
fi
chmod 0666 "$root/etc/passwd"

mkdir -p "$root/git"
chown 65533:65533 "$root/git"
chmod 2775 "$root/git"
chmod 1777 "$root/tmp"

rm -rf "$root/var/cache/apt" "$root/var/cache/debconf"/*-old "$root/var/lib/apt/lists" \
	"$root/var/log"/* "$root/usr/share/info" "$root/usr/share/man" "$root/usr/share/locale" \
	"$root/usr/share/lintian" "$root/usr/share/bash-completion"
find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete 2>/dev/null || true
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
