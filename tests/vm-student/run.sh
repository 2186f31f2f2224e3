#!/usr/bin/env bash
# The students' VM, booted for real: a fresh Debian root made with
# mmdebstrap the way a Vagrant base box is made (systemd, a kernel,
# openssh-server, sudo, a `vagrant` user with an authorised key),
# provisioned by vagrant/provision.sh twice in a chroot (the second run must
# change nothing), turned into an ext4 disk image (mke2fs -d, no loop
# mount), booted in qemu (TCG) with systemd as PID 1, and driven over ssh
# as `vagrant` the way the lab guide drives a student: tests/vm-student/lab.sh.
#
#   tests/vm-student/run.sh [--suite full|quick] [--keep-cache-only]
#
# --suite quick runs the stage and the checker but not `just test-host`.
# The provisioned root is cached in build/vm-student/KEY, KEY being the
# sha256 of provision.sh and of this script: while neither changes, a run
# only refreshes the repository copy, builds, makes the image and boots.
# Env:
#   MINIBOX_VM_TIMEOUT=seconds     give up on the lab run after this long (3000)
#   MINIBOX_VM_SSH_WAIT=seconds    how long the VM has to answer ssh (900)
#   MINIBOX_DEBIAN_MIRROR=URL      Debian archive (http://deb.debian.org/debian)
#   MINIBOX_DEBIAN_SUITE=NAME      trixie (Debian 13: rustc 1.85, just packaged)
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$PWD
self=$top/tests/vm-student/run.sh

suite_mode=full
while [ $# -gt 0 ]; do
    case "$1" in
        --suite) suite_mode=$2; shift 2 ;;
        --in-netns) shift; break ;;  # internal: the boot phase, see below
        *) echo "usage: $0 [--suite full|quick]" >&2; exit 2 ;;
    esac
done
case "$suite_mode" in full|quick) ;; *) echo "error: --suite takes full or quick" >&2; exit 2 ;; esac

timeout_s=${MINIBOX_VM_TIMEOUT:-3000}
ssh_wait=${MINIBOX_VM_SSH_WAIT:-900}
mirror=${MINIBOX_DEBIAN_MIRROR:-http://deb.debian.org/debian}
debian=${MINIBOX_DEBIAN_SUITE:-trixie}
started=${MINIBOX_VM_STUDENT_STARTED:-$(date +%s)}
export MINIBOX_VM_STUDENT_STARTED=$started
phase() { printf '[vm-student %5ss] %s\n' "$(($(date +%s) - started))" "$*"; }
die() { printf 'error: vm-student: %s\n' "$*" >&2; exit 1; }
# Inside the VM; the port only exists in the network namespace made below.
port=2222
ssh_opts=(-i "${MINIBOX_VM_KEY:-/nonexistent}" -p "$port" -o BatchMode=yes -o StrictHostKeyChecking=no
    -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=10 -o ServerAliveInterval=30)

# ---------------------------------------------------------------------------
# The boot phase, run by the main script below as
#   unshare --net --pid --fork --kill-child run.sh --in-netns DISK KERNEL INITRD CONSOLE LOGDIR
# In a network namespace of its own (only loopback, brought up here) qemu's
# forwarded port and the ssh client meet without anything opening in this
# machine's namespace; as PID 1 of its PID namespace, this shell takes
# qemu and every ssh with it when it ends, however it ends.
if [ "${1-}" != "" ] && [ "$#" = 5 ] && [ "${MINIBOX_VM_STUDENT_INNER:-}" = 1 ]; then
    disk=$1 kernel=$2 initrd=$3 console=$4 logdir=$5
    ip link set lo up
    : > "$console"
    qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 4096 -display none -no-reboot \
        -kernel "$kernel" -initrd "$initrd" \
        -append "root=/dev/vda rw console=ttyS0 systemd.show_status=false" \
        -drive "file=$disk,format=raw,if=virtio" \
        -nic "user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:$port-:22" \
        -serial "file:$console" -monitor none </dev/null &
    qemu=$!
    deadline=$(($(date +%s) + ssh_wait))
    until ssh "${ssh_opts[@]}" vagrant@127.0.0.1 true 2>/dev/null; do
        if ! kill -0 "$qemu" 2>/dev/null; then
            wait "$qemu" && rc=0 || rc=$?
            echo "error: vm-student: qemu exited (status $rc) before ssh answered; console tail ($console):" >&2
            tail -n 40 "$console" | tr -d '\r' >&2
            exit 1
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "error: vm-student: the VM did not answer ssh within ${ssh_wait}s (MINIBOX_VM_SSH_WAIT); console tail ($console):" >&2
            tail -n 40 "$console" | tr -d '\r' >&2
            exit 1
        fi
        # A retry interval while the guest boots, not a synchronisation:
        # each attempt asks the guest itself whether it is there.
        sleep 5
    done
    phase "boot: ssh answers as vagrant ($(grep -c . "$console") console lines; log: $console)"
    # A login shell, as `vagrant ssh` gives: ~/.profile puts ~/.cargo/bin on PATH.
    set +e
    timeout "$timeout_s" ssh "${ssh_opts[@]}" vagrant@127.0.0.1 \
        "MINIBOX_VM_STUDENT_SUITE=$suite_mode bash -l minibox/tests/vm-student/lab.sh"
    lab=$?
    set -e
    [ "$lab" != 124 ] || echo "error: vm-student: the lab run passed ${timeout_s}s (MINIBOX_VM_TIMEOUT) and was stopped" >&2
    # The logs the lab wrote, for a look at what failed.
    ssh "${ssh_opts[@]}" vagrant@127.0.0.1 'tar -C ~/vm-student-logs -cf - .' 2>/dev/null \
        | tar -C "$logdir" -xf - 2>/dev/null || true
    ssh "${ssh_opts[@]}" vagrant@127.0.0.1 'sudo systemctl poweroff' >/dev/null 2>&1 || true
    # poweroff with -no-reboot ends qemu; give it a bounded time to do so.
    for _ in $(seq 60); do kill -0 "$qemu" 2>/dev/null || break; sleep 1; done
    kill "$qemu" 2>/dev/null || true
    exit "$lab"
fi

# ---------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap, chroot, a root-owned disk image): run 'just vm-student' or use sudo"
[ "$(uname -m)" = x86_64 ] || die "needs an x86_64 machine (the VM is Debian amd64 under qemu-system-x86_64)"
for tool in mmdebstrap:mmdebstrap mke2fs:e2fsprogs qemu-system-x86_64:qemu-system-x86 unshare:util-linux \
    ssh:openssh-client ssh-keygen:openssh-client sha256sum:coreutils ip:iproute2 git:git; do
    command -v "${tool%%:*}" >/dev/null || die "${tool%%:*} is missing: install it with 'apt-get install ${tool#*:}'"
done

cache=$top/build/vm-student
key=$(cat vagrant/provision.sh "$self" | sha256sum | cut -c1-16)
dir=$cache/$key
root=$dir/root
mkdir -p "$cache"
ns_pid=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    # The namespaces die with their first process; their mounts and every
    # process in them (chroot's, qemu, ssh) go with them. SIGKILL: unshare
    # --fork ignores SIGTERM and SIGINT while it waits; killed, it takes
    # its child along (--kill-child), and the kernel the PID namespace.
    if [ -n "$ns_pid" ]; then kill -KILL "$ns_pid" 2>/dev/null || true; wait "$ns_pid" 2>/dev/null || true; fi
    rm -rf "$cache/$key.tmp" "$dir/disk.img"
}
trap cleanup EXIT
trap 'echo "vm-student: interrupted" >&2; exit 130' INT TERM

# in_root ROOT CMD…: CMD chrooted into ROOT, in private mount and PID
# namespaces: the mounts it needs exist only there and vanish with its
# last process, even if this script is killed.
in_root() {
    local r=$1
    shift
    # shellcheck disable=SC2016 # expanded by the inner shell
    unshare --mount --propagation private --pid --fork --kill-child -- bash -c '
        set -e
        r=$1; shift
        mount -t proc proc "$r/proc"
        mount -t sysfs -o ro sysfs "$r/sys"
        mount --rbind /dev "$r/dev"
        mount -t tmpfs tmpfs "$r/run"
        mount -t tmpfs tmpfs "$r/tmp"
        # apt in the chroot resolves names as this machine does.
        if [ ! -f "$r/etc/resolv.conf" ] || [ -L "$r/etc/resolv.conf" ]; then
            rm -f "$r/etc/resolv.conf"; : > "$r/etc/resolv.conf"
        fi
        mount --bind /etc/resolv.conf "$r/etc/resolv.conf"
        exec chroot "$r" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
            PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
    ' bash "$r" "$@" &
    ns_pid=$!
    local rc=0
    wait "$ns_pid" || rc=$?
    ns_pid=""
    return "$rc"
}

# What provisioning may change, as a listing with hashes: the packages,
# /etc, /usr/local, the user's and root's homes (the repository's build/
# included), so that a second run can be shown to change none of it.
state_of() {
    local r=$1
    dpkg-query --admindir="$r/var/lib/dpkg" -W -f '${Package} ${Version} ${db:Status-Abbrev}\n'
    (cd "$r" && find etc usr/local home root -xdev \( -type f -o -type l \) \
        -not -path 'home/vagrant/minibox/target/*' -not -path 'home/vagrant/.cargo/registry/*' \
        -printf '%p %m %u:%g %l\n' | sort)
    (cd "$r" && find etc usr/local home root -xdev -type f \
        -not -path 'home/vagrant/minibox/target/*' -not -path 'home/vagrant/.cargo/registry/*' \
        -print0 | sort -z | xargs -0 sha256sum)
}

# The repository as it is in this work tree (committed or not), without
# target/ and build/, into the VM's home; owned by vagrant.
copy_repo() {
    local dest=$root/home/vagrant/minibox
    mkdir -p "$dest"
    # Refresh: drop the old copy but keep target/ (the incremental build)
    # and build/rootfs (made by provisioning).
    find "$dest" -mindepth 1 -maxdepth 1 -not -name target -not -name build -exec rm -rf {} +
    git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
        | tar --null -T - -cf - | tar -C "$dest" -xf -
    in_root "$root" chown -R vagrant:vagrant /home/vagrant/minibox
}

# --- 1. the Debian root, provisioned (cached by key)
if [ -e "$dir/provisioned" ]; then
    phase "root: cached $debian root $key (provision.sh unchanged)"
else
    for old in "$cache"/*/; do [ "$old" = "$dir/" ] || rm -rf "$old"; done
    rm -rf "$dir"
    tmp=$cache/$key.tmp
    rm -rf "$tmp"
    mkdir -p "$tmp"
    # A key made for this image only, as `vagrant package` base boxes have
    # one of their own.
    ssh-keygen -q -t ed25519 -N '' -C "minibox-vm-student-$key" -f "$tmp/id_ed25519"
    phase "root: mmdebstrap $debian (systemd, linux-image-amd64, openssh-server, sudo)"
    if ! unshare --mount --propagation private --pid --fork --kill-child -- \
        mmdebstrap --quiet --variant=apt --aptopt='APT::Install-Recommends "false"' \
        --include=systemd,systemd-sysv,udev,dbus,linux-image-amd64,initramfs-tools,zstd,openssh-server,sudo,apparmor,iproute2,procps,ca-certificates,less \
        "$debian" "$tmp/root" "$mirror" > "$tmp/mmdebstrap.log" 2>&1; then
        tail -n 20 "$tmp/mmdebstrap.log" >&2
        die "mmdebstrap of $debian from $mirror failed (log above: $tmp/mmdebstrap.log)"
    fi
    phase "root: the vagrant user (sudo without a password, this image's key), networking, fstab"
    pubkey=$(cat "$tmp/id_ed25519.pub")
    # shellcheck disable=SC2016 # expanded in the chroot
    in_root "$tmp/root" bash -euc '
        useradd --create-home --shell /bin/bash --groups sudo vagrant
        echo "vagrant ALL=(ALL) NOPASSWD: ALL" > /etc/sudoers.d/vagrant
        chmod 440 /etc/sudoers.d/vagrant
        install -d -m 700 -o vagrant -g vagrant /home/vagrant/.ssh
        printf "%s\n" "$1" > /home/vagrant/.ssh/authorized_keys
        chown vagrant:vagrant /home/vagrant/.ssh/authorized_keys
        chmod 600 /home/vagrant/.ssh/authorized_keys
        echo minibox-lab > /etc/hostname
        printf "127.0.0.1 localhost\n127.0.1.1 minibox-lab\n" > /etc/hosts
        echo "/dev/vda / ext4 rw,errors=remount-ro 0 1" > /etc/fstab
        mkdir -p /etc/systemd/network
        printf "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n" > /etc/systemd/network/20-wired.network
        systemctl enable systemd-networkd.service >/dev/null
        # No DNS in the VM (restricted user networking): sshd must not wait for it.
        echo "UseDNS no" > /etc/ssh/sshd_config.d/minibox.conf
    ' bash "$pubkey"
    mv "$tmp" "$dir"
    copy_repo
    provision() { # provision N: run N, its log in $dir/provisionN.log
        in_root "$root" env MINIBOX_REPO=/home/vagrant/minibox MINIBOX_USER=vagrant \
            bash /home/vagrant/minibox/vagrant/provision.sh > "$dir/provision$1.log" 2>&1
    }
    for run in 1 2; do
        phase "provision: vagrant/provision.sh, run $run of 2, in a chroot of the root"
        if ! provision "$run"; then
            step=$(grep '^==> ' "$dir/provision$run.log" | tail -1)
            echo "--- provision.sh run $run, last lines:" >&2
            tail -n 15 "$dir/provision$run.log" >&2
            die "provision.sh run $run failed in the step: ${step:-before its first step} (log: $dir/provision$run.log)"
        fi
        sed 's/^/    /' "$dir/provision$run.log" | grep '    ==> ' || true
        state_of "$root" > "$dir/state$run"
    done
    acted=$(grep -E '^==> [^:]*: (installing|building|added|wrote|enabled)' "$dir/provision2.log" || true)
    [ -z "$acted" ] || die "provision.sh is not idempotent: its second run did: $(echo "$acted" | tr '\n' ' ')"
    if ! cmp -s "$dir/state1" "$dir/state2"; then
        diff "$dir/state1" "$dir/state2" | head -n 20 >&2
        die "provision.sh is not idempotent: its second run changed the files above"
    fi
    grep -q 'kernel steps: deferred to boot' "$dir/provision1.log" \
        || die "provision.sh did not notice it runs in a chroot: its kernel steps would have acted on this machine"
    phase "provision: idempotent (the second run changed nothing: $(wc -l < "$dir/state2") packages and files compared)"
    touch "$dir/provisioned"
fi

# --- 2. this work tree into the VM, built there with the VM's toolchain
copy_repo
# The crates: crates.io is a package registry a student reaches, but
# what reaches it from here may be a TLS-intercepting proxy whose CA the
# VM does not know. So the crates the lock file names are fetched by this
# machine's cargo into the VM user's registry, and the VM builds offline
# from them; without a cargo here, the VM's cargo fetches them itself.
if command -v cargo >/dev/null; then
    phase "crates: cargo fetch --locked by this machine's cargo into the VM's ~/.cargo/registry"
    CARGO_HOME=$root/home/vagrant/.cargo cargo fetch --locked --quiet \
        --manifest-path "$root/home/vagrant/minibox/Cargo.toml" || die "cargo fetch failed"
else
    phase "crates: fetched by the VM's cargo (no cargo on this machine)"
    in_root "$root" su - vagrant -c 'cd minibox && cargo fetch --locked --quiet' || die "cargo fetch in the VM's root failed"
fi
in_root "$root" chown -R vagrant:vagrant /home/vagrant/.cargo
phase "build: cargo build, test --no-run and clippy as vagrant with the VM's own toolchain, offline (in the chroot: TCG would take hours)"
if ! in_root "$root" su - vagrant -c 'cd minibox && export CARGO_NET_OFFLINE=true && cargo build --workspace --quiet && cargo test --workspace --no-run --quiet && cargo clippy --workspace --all-targets --quiet -- -D warnings' > "$dir/build.log" 2>&1; then
    tail -n 30 "$dir/build.log" >&2
    die "the workspace did not build in the VM's root with $(in_root "$root" rustc --version 2>/dev/null) (log: $dir/build.log)"
fi
phase "build: done with $(in_root "$root" rustc --version)"

# --- 3. the disk image (no loop mount: mke2fs copies the tree itself)
kernel=$(find "$root/boot" -name 'vmlinuz-*' | sort -V | tail -1)
initrd=$(find "$root/boot" -name 'initrd.img-*' | sort -V | tail -1)
{ [ -n "$kernel" ] && [ -n "$initrd" ]; } || die "no kernel or initrd in $root/boot (linux-image-amd64, initramfs-tools)"
used=$(du -sm "$root" | cut -f1)
size=$((used + 4096))   # room for the suite: root's test builds, containers, layers
rm -f "$dir/disk.img"
truncate -s "${size}M" "$dir/disk.img"
mke2fs -q -t ext4 -L minibox-root -d "$root" "$dir/disk.img" \
    || die "mke2fs -d could not make the disk image from $root"
cp "$kernel" "$initrd" "$dir/" 2>/dev/null || true
phase "image: ${size} MiB ext4 ($used MiB used); kernel $(basename "$kernel")"

# --- 4. boot and the lab, inside a network namespace of our own
logs=$dir/logs
rm -rf "$logs"
mkdir -p "$logs"
phase "boot: qemu -accel tcg, systemd as PID 1, ssh on 127.0.0.1:$port inside a new network namespace"
rc=0
MINIBOX_VM_STUDENT_INNER=1 MINIBOX_VM_KEY=$dir/id_ed25519 \
    unshare --net --pid --fork --kill-child --mount-proc -- \
    "$self" --suite "$suite_mode" --in-netns "$dir/disk.img" "$dir/$(basename "$kernel")" \
    "$dir/$(basename "$initrd")" "$dir/console.log" "$logs" &
ns_pid=$!
wait "$ns_pid" || rc=$?
ns_pid=""
rm -f "$dir/disk.img"
# Nothing may outlive the run: no qemu on our image, no mount of it.
if pgrep -f "file=$dir/disk.img" >/dev/null; then
    die "a qemu process on $dir/disk.img is still running"
fi
if grep -qF "$root" /proc/self/mountinfo; then die "something is still mounted under $root"; fi
phase "done: nothing left behind (no qemu, no mount, no namespace); logs in $logs"
exit "$rc"
