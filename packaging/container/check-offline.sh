#!/usr/bin/env bash
# Checks the Containerfile's runtime stage where no container engine is
# available: a Debian bookworm minbase root (debootstrap, from Debian's
# package mirror) stands in for debian:bookworm-slim, the stage's RUN step
# runs in it with chroot, then the image's health check and the main job
# run there as its user, uid 10001, in a PID namespace with no cgroup
# filesystem and no user namespaces (a chroot may not create one), which
# is what a default container leaves plugwarden. The build stage (the Rust
# image) is not checked: packaging/deb/build.sh builds the same package.
#
# Usage (root): packaging/container/check-offline.sh [ROOTFS_DIR]
# (default target/container-check; a second run reuses the root).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:-$repo/target/container-check}
cd "$repo"
[ "$(id -u)" = 0 ] || { echo "check-offline.sh: run as root (debootstrap, chroot)" >&2; exit 2; }
command -v debootstrap >/dev/null || { echo "check-offline.sh: apt-get install debootstrap" >&2; exit 2; }

root=$dir/rootfs
[ -x "$root/usr/bin/dpkg" ] || debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian
deb=$(packaging/deb/build.sh | tail -n 1)

# The runtime stage's RUN step, as in the Containerfile.
cp "$deb" "$root/tmp/plugwarden.deb"
chroot "$root" sh -c 'dpkg -i /tmp/plugwarden.deb && rm /tmp/plugwarden.deb &&
    { id plugwarden >/dev/null 2>&1 ||
        useradd --uid 10001 --user-group --home-dir /work --create-home --shell /usr/sbin/nologin plugwarden; }'
rm -rf "$root/in" "$root/work/safe"
mkdir "$root/in"
cp samples/*.* "$root/in/"

mount --bind /dev "$root/dev"
trap 'umount "$root/dev"' EXIT
# USER 10001:10001, WORKDIR /work, then HEALTHCHECK and the main job.
# shellcheck disable=SC2016 # expanded by the inner shell
unshare --mount --pid --fork --mount-proc="$root/proc" \
    chroot --userspec=10001:10001 "$root" env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/work sh -c '
    cd /work
    plugwarden doctor --check 2>/dev/null || { echo "FAILED: the health check"; exit 1; }
    status=0
    plugwarden sanitize /in --out /work/safe >/work/verdicts.txt 2>/dev/null || status=$?
    tail -n 3 /work/verdicts.txt
    [ "$status" = 1 ] && [ -s /work/safe/benign.pdf.safe.pdf ] && [ -s /work/safe/benign.png.safe.png ] \
        || { echo "FAILED: the main job (exit $status)"; exit 1; }
    echo "container runtime stage: health check and main job ok as uid $(id -u)"'
