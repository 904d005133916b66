#!/usr/bin/env bash
# Builds the git-sync container image from Debian packages, without a
# container registry:
#
#   1. the static binary, stamped with the release version and commit
#      (deploy/ldflags.sh);
#   2. the root filesystem, by mmdebstrap from a Debian mirror: the Essential
#      set (sh, bash, coreutils, grep, sed, findutils, tar, gzip...) plus git,
#      openssh-client and ca-certificates, finished by rootfs-setup.sh;
#   3. the image, assembled by buildah from scratch: the root filesystem
#      layer, /git-sync, user 65533, HOME=/tmp, entrypoint /git-sync.
#
# Usage: deploy/image/build.sh [--tag NAME] [--mirror URL]
#            [--security-mirror URL|none] [--suite NAME] [--cache DIR]
#            [--oci-archive FILE]
#
#   --tag             image name (default localhost/git-sync:VERSION)
#   --mirror          Debian mirror (default $DEBIAN_MIRROR, else
#                     http://deb.debian.org/debian); a snapshot.debian.org
#                     URL makes the package set reproducible
#   --security-mirror mirror of SUITE-security, or "none" (default
#                     $DEBIAN_SECURITY_MIRROR, else
#                     http://deb.debian.org/debian-security)
#   --suite           Debian release (default bookworm)
#   --cache           keep the root filesystem tarball in DIR and reuse it
#                     while the package list, mirrors and rootfs-setup.sh
#                     are unchanged (for local iteration; off by default)
#   --oci-archive     also write the image to FILE (oci-archive format), to
#                     copy it to a machine with registry access
#
# Needs: go, git, mmdebstrap and buildah (Debian packages), run as root or
# with user namespaces (uidmap). Prints the image name, ID, size and the time
# each step took. RELEASE_VERSION / RELEASE_COMMIT override the stamp.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

tag=""
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
suite=bookworm
cache=""
archive=""
while [ $# -gt 0 ]; do
	case $1 in
	--tag) tag=$2; shift 2 ;;
	--mirror) mirror=$2; shift 2 ;;
	--security-mirror) security=$2; shift 2 ;;
	--suite) suite=$2; shift 2 ;;
	--cache) cache=$2; shift 2 ;;
	--oci-archive) archive=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done

export PATH="$PATH:/usr/local/go/bin"
for tool in go git mmdebstrap buildah; do
	if ! command -v "$tool" >/dev/null; then
		echo "build.sh: $tool not found; on Debian: apt-get install -y mmdebstrap buildah (and Go from go.dev)" >&2
		exit 1
	fi
done

now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }
start=$(now)

work=$(mktemp -d "${TMPDIR:-/tmp}/git-sync-image.XXXXXX")
ctr=""
cleanup() {
	if [ -n "$ctr" ]; then buildah rm "$ctr" >/dev/null 2>&1 || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

# 1. The binary.
t=$(now)
ldflags=$(sh "$repo/deploy/ldflags.sh")
version=$(printf '%s\n' "$ldflags" | sed -n 's/.*releaseVersion=\([^ ]*\).*/\1/p')
commit=$(printf '%s\n' "$ldflags" | sed -n 's/.*releaseCommit=\([^ ]*\).*/\1/p')
(cd "$repo" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$work/git-sync" ./cmd/git-sync)
echo "build.sh: binary $version ($commit) in $(took "$t")"
[ -n "$tag" ] || tag="localhost/git-sync:$version"

# 2. The root filesystem.
packages=ca-certificates,git,openssh-client
sources=("deb $mirror $suite main" "deb $mirror $suite-updates main")
if [ "$security" != none ]; then
	sources+=("deb $security $suite-security main")
fi
# The cache key: bump the "rootfs-N" below when the mmdebstrap options change.
key=$(printf '%s\n' rootfs-1 "$suite" "$packages" "${sources[@]}" | cat - "$here/rootfs-setup.sh" | sha256sum | cut -c1-16)
rootfs="$work/rootfs.tar"
# Timestamps in the tarball and the image follow the commit, so that the
# same packages and source give the same layers.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(cd "$repo" && git show -s --format=%ct HEAD 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH
t=$(now)
if [ -n "$cache" ] && [ -s "$cache/rootfs-$key.tar" ]; then
	rootfs="$cache/rootfs-$key.tar"
	echo "build.sh: root filesystem from the cache ($rootfs)"
else
	# The merged-usr hook lays out /bin -> usr/bin and friends itself, so
	# that the usrmerge package (and the Perl it needs) is not installed.
	# No dpkg path-exclude options: they make mmdebstrap filter every
	# package through a Python helper, which costs more than it saves;
	# rootfs-setup.sh deletes the documentation instead.
	mmdebstrap --quiet --variant=essential --include="$packages" \
		--dpkgopt=force-unsafe-io \
		--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
		--customize-hook="sh '$here/rootfs-setup.sh' \"\$1\"" \
		"$suite" "$rootfs" "${sources[@]}"
	if [ -n "$cache" ]; then
		mkdir -p "$cache"
		cp "$rootfs" "$cache/rootfs-$key.tar.tmp"
		mv "$cache/rootfs-$key.tar.tmp" "$cache/rootfs-$key.tar"
	fi
	echo "build.sh: root filesystem from $mirror ($suite) in $(took "$t")"
fi

# 3. The image.
t=$(now)
ctr=$(buildah from --quiet scratch)
buildah add --quiet "$ctr" "$rootfs" / >/dev/null
buildah copy --quiet --chmod 0755 "$ctr" "$work/git-sync" /git-sync >/dev/null
buildah config \
	--user 65533:65533 \
	--env HOME=/tmp \
	--env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	--workingdir /tmp \
	--entrypoint '["/git-sync"]' \
	--label org.opencontainers.image.title=git-sync \
	--label org.opencontainers.image.description="Keeps a directory in step with a git ref; a drop-in replacement for kubernetes/git-sync v4" \
	--label org.opencontainers.image.version="$version" \
	--label org.opencontainers.image.revision="$commit" \
	--label org.opencontainers.image.base.name="debian:$suite (mmdebstrap)" \
	"$ctr"
id=$(buildah commit --quiet --rm --format oci --timestamp "$SOURCE_DATE_EPOCH" "$ctr" "$tag")
ctr=""
echo "build.sh: image assembled in $(took "$t")"
if [ -n "$archive" ]; then
	buildah push --quiet "$tag" "oci-archive:$archive:$tag"
	echo "build.sh: wrote $archive"
fi

size=$(buildah images --noheading --format '{{.Size}}' "$tag" | head -n1)
echo "build.sh: $tag"
echo "build.sh: id $id, size $size, total $(took "$start")"
