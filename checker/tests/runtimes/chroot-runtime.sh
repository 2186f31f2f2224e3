#!/bin/sh
# A deliberately broken runtime for minibox-check's tests: every namespace,
# a fresh /proc, a minimal /dev, a read-only /sys, the host name — and then
# chroot(2) instead of pivot_root. It passes stages 01–03 and fails the
# pivot_root checks of stage 04.
#
#   chroot-runtime.sh ROOTFS COMMAND [ARGS...]
#
# Template: 'checker/tests/runtimes/chroot-runtime.sh {rootfs} {cmd}'
set -eu
[ "$#" -ge 2 ] || { echo "usage: $0 ROOTFS COMMAND [ARGS...]" >&2; exit 125; }
# shellcheck disable=SC2016 # the inner script's $1 and $@ are its own
exec unshare --fork --pid --mount --uts --ipc --net --propagation private \
    sh -eu -c '
        root=$1; shift
        hostname minibox-check
        mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
        mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"
        mount -t tmpfs -o nosuid,mode=755 tmpfs "$root/dev"
        for node in null zero full random urandom tty; do
            touch "$root/dev/$node"
            mount --bind "/dev/$node" "$root/dev/$node"
        done
        exec chroot "$root" "$@"
    ' sh "$@"
