#!/bin/sh
# Prints the -ldflags that stamp git-sync's --version with the release
# version and commit of this checkout:
#
#   CGO_ENABLED=0 go build -trimpath -ldflags "$(sh deploy/ldflags.sh)" ./cmd/git-sync
#
# The version is `git describe --tags --dirty` when a v* tag is reachable,
# else a Go-style pseudo-version (v0.0.0-<commit time>-<12 hex>[-dirty]).
# RELEASE_VERSION and RELEASE_COMMIT override both (for builds outside a
# checkout, e.g. from a source tarball). -s -w drop the symbol tables: the
# binary is about a third smaller and panics still print file:line.
set -eu
cd "$(dirname "$0")/.."
commit=${RELEASE_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
version=${RELEASE_VERSION:-}
if [ -z "$version" ]; then
	if version=$(git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null); then
		:
	elif [ "$commit" != unknown ]; then
		when=$(TZ=UTC git show -s --format=%cd --date=format-local:%Y%m%d%H%M%S "$commit")
		version="v0.0.0-$when-$(printf %.12s "$commit")"
		if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
			version="$version-dirty"
		fi
	else
		version="(unknown)"
	fi
fi
pkg=gitsync/internal/app
printf '%s\n' "-s -w -X $pkg.releaseVersion=$version -X $pkg.releaseCommit=$commit"
