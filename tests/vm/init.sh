#!/bin/sh
# PID 1 of the test VM. Two stages:
#
# 1. The kernel unpacked our initramfs into "rootfs", the one file system
#    that can never be unmounted, and so can never be pivot_root'ed away
#    from (pivot_root refuses it with EINVAL). The tests pivot_root all the
#    time, so first copy everything into a tmpfs and switch_root into it.
# 2. There, build the world students have: cgroup2 alone at /sys/fs/cgroup
#    (or v1 hierarchies, for the v1 run) and a shared / (systemd's default),
#    then run the suite and report on the serial console.
set -u
PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PATH

if [ "$$" = 1 ] && [ ! -e /.in-tmpfs ]; then
    mount -t proc proc /proc
    mkdir -p /newroot
    mount -t tmpfs -o size=90% tmpfs /newroot
    # Copy everything but the mount points themselves.
    for entry in /*; do
        case "$entry" in /proc|/newroot|/sys|/dev) continue ;; esac
        cp -a "$entry" /newroot/
    done
    mkdir -p /newroot/proc /newroot/sys /newroot/dev
    touch /newroot/.in-tmpfs
    umount /proc
    exec switch_root /newroot /init
fi

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /tmp /run
ln -sf /proc/self/fd /dev/fd   # bash's <(…) needs it; udev would make it
mount -t devpts devpts /dev/pts
# No tmpfs over /tmp: / is a tmpfs already, and the checkout under test may
# itself live in /tmp (CI clones there).
chmod 1777 /tmp
mount -t tmpfs tmpfs /run
# shellcheck source=/dev/null
. /vm.env

case "$MINIBOX_VM_CGROUP" in
    v2)
        mount -t cgroup2 cgroup2 /sys/fs/cgroup
        # systemd enables these on the root at boot; so do we, so that no
        # test's trace depends on which test happened to enable them first.
        echo "+cpu +cpuset +memory +pids" > /sys/fs/cgroup/cgroup.subtree_control ;;
    v1)
        mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
        for c in memory cpu,cpuacct cpuset pids freezer devices; do
            mkdir -p "/sys/fs/cgroup/$c"
            mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c"
        done ;;
esac
# What systemd does: every mount shared, so the propagation tests meet the
# world they guard against.
mount --make-rshared /
# Numbered in dependency order by run.sh; one built into this kernel
# instead is simply not there.
for module in /lib/modules/*.ko; do
    [ -e "$module" ] || continue
    insmod "$module" 2>/dev/null || echo "MINIBOX-VM: insmod $(basename "$module") failed"
done
ip link set lo up 2>/dev/null
hostname minibox-vm

# A system has these; the tests use /etc/passwd as a file that exists but
# is not executable.
printf 'root:x:0:0:root:/root:/bin/sh\n' > /etc/passwd
printf 'root:x:0:\n' > /etc/group
printf 'nameserver 192.0.2.53\n' > /etc/resolv.conf
# Empty, as on a machine with no subordinate ids yet: stage 10's rootless
# tests bind their own over them in a private mount namespace.
: > /etc/subuid
: > /etc/subgid

if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
    cgroups="cgroup2 with $(cat /sys/fs/cgroup/cgroup.controllers)"
else
    cgroups="v1: $(cd /sys/fs/cgroup && echo *)"
fi
echo "MINIBOX-VM: kernel $(uname -r); /sys/fs/cgroup: $cgroups; / is $(grep -q ' / / .*shared:' /proc/self/mountinfo && echo shared || echo private)"
# insta finds the workspace with `cargo metadata`; there is no cargo here.
export HOME=/root CI=true MINIBOX_ROOTFS NO_COLOR=1 RUST_BACKTRACE=0 INSTA_WORKSPACE_ROOT="$MINIBOX_VM_WORKDIR"
[ "${MINIBOX_VM_UPDATE_SNAPSHOTS:-0}" = 1 ] && { export INSTA_UPDATE=always; unset CI; }
cd "$MINIBOX_VM_WORKDIR" || exit 1
passed=0 failed=0 status=0
for test in $MINIBOX_VM_TESTS; do
    echo "MINIBOX-VM: running $(basename "$test")"
    "$test" --test-threads=2 ${MINIBOX_VM_FILTER:+"$MINIBOX_VM_FILTER"} > /tmp/out 2>&1
    rc=$?
    cat /tmp/out
    p=$(sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed.*/\1/p' /tmp/out | tail -1)
    f=$(sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed.*/\2/p' /tmp/out | tail -1)
    passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
    [ "$rc" = 0 ] || status=1
done
if [ "${MINIBOX_VM_UPDATE_SNAPSHOTS:-0}" = 1 ]; then
    echo "MINIBOX-VM-SNAPSHOTS-BEGIN"
    tar -C "$MINIBOX_VM_WORKDIR" -cf - tests/tests/snapshots checker/tests/snapshots | gzip | base64
    echo "MINIBOX-VM-SNAPSHOTS-END"
fi
echo "vm ($MINIBOX_VM_CGROUP): $passed passed, $failed failed"
echo "MINIBOX-VM-EXIT=$status"
sync
poweroff -f
