#!/usr/bin/env bash
# Run the test suite in a qemu VM booted with Debian's cloud kernel into
# pure cgroup v2 and a shared / — the students' world, which this build
# machine (hybrid cgroup v1, private /) is not.
#
#   tests/vm/run.sh [--cgroup v2|v1] [--update-snapshots] [--only TEST] [--filter NAME]
#
# Builds the test binaries, packs them with the stage binaries, the busybox
# rootfs and the snapshot files into an initramfs (at the same absolute
# paths, so the tests find everything where they were built to look), boots
# it under TCG (no KVM here) and reports the suite's result. Env:
#   MINIBOX_VM_KERNEL=/path/to/vmlinuz   use this kernel (and no modules)
#   MINIBOX_VM_TIMEOUT=seconds           give up after this long (1500)
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$PWD
cgroup=v2 update=0 only="" filter=""
while [ $# -gt 0 ]; do
    case "$1" in
        --cgroup) cgroup=$2; shift 2 ;;
        --update-snapshots) update=1; shift ;;
        --only) only=$2; shift 2 ;;  # test files, e.g. `--only network,escapes`, while you work on them
        --filter) filter=$2; shift 2 ;;  # only the tests whose name contains NAME (libtest's filter)
        *) echo "usage: $0 [--cgroup v2|v1] [--update-snapshots] [--only TEST] [--filter NAME]" >&2; exit 2 ;;
    esac
done
case "$cgroup" in v1|v2) ;; *) echo "error: --cgroup takes v1 or v2" >&2; exit 2 ;; esac
cache=$top/build/vm
mkdir -p "$cache"
started=$(date +%s)

# --- the kernel: Debian's cloud kernel, as a .deb, cached.
if [ -n "${MINIBOX_VM_KERNEL:-}" ]; then
    kernel=$MINIBOX_VM_KERNEL modules=""
else
    package=$(apt-cache depends linux-image-cloud-amd64 | sed -n 's/.*Depends: \(linux-image-[0-9].*\)/\1/p' | head -1)
    [ -n "$package" ] || { echo "error: cannot resolve linux-image-cloud-amd64 (run apt-get update)" >&2; exit 1; }
    if [ ! -d "$cache/$package" ]; then
        (cd "$cache" && apt-get download "$package" >/dev/null)
        mkdir -p "$cache/$package"
        dpkg-deb -x "$cache/$package"_*.deb "$cache/$package"
        rm -f "$cache/$package"_*.deb
    fi
    kernel=$(ls "$cache/$package"/boot/vmlinuz-*)
    # The modules the suite needs, with their dependencies, decompressed
    # (busybox insmod wants them plain) and numbered in load order:
    # overlayfs (stage 06) and what a bridge network with NAT takes (08).
    modules=$(mktemp -d)
    release=$(ls "$cache/$package/lib/modules")
    [ -e "$cache/$package/lib/modules/$release/modules.dep" ] || depmod -b "$cache/$package" "$release"
    python3 - "$cache/$package/lib/modules/$release" "$modules" <<'PY'
import lzma, subprocess, sys
from pathlib import Path
base, out = Path(sys.argv[1]), Path(sys.argv[2])
deps = {}
for line in (base / "modules.dep").read_text().splitlines():
    mod, _, rest = line.partition(":")
    deps[mod] = rest.split()
by_name = {Path(m).name.split(".ko")[0].replace("-", "_"): m for m in deps}
wanted = ["overlay", "loop", "veth", "bridge", "nf_tables", "nft_chain_nat", "nft_nat", "nft_masq",
          "nft_fib_inet", "nft_fib_ipv4", "nft_fib_ipv6", "nft_ct", "nf_nat", "nf_conntrack",
          "nft_reject_inet", "nft_compat"]
order = []
def visit(mod):
    if mod in order:
        return
    for dep in deps.get(mod, []):
        visit(dep)
    order.append(mod)
for name in wanted:
    if name in by_name:
        visit(by_name[name])
for n, mod in enumerate(order):
    src = base / mod
    data = src.read_bytes()
    if mod.endswith(".xz"):
        data = lzma.decompress(data)
    elif mod.endswith(".zst"):
        data = subprocess.run(["zstd", "-qdc", str(src)], capture_output=True, check=True).stdout
    (out / f"{n:02d}-{Path(mod).name.split('.ko')[0]}.ko").write_bytes(data)
PY
    ls "$modules"/*overlay.ko >/dev/null 2>&1 || { echo "error: no overlay module in $package" >&2; exit 1; }
fi

# --- what to test: every test executable of the workspace.
tests=$(cargo test --workspace --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])')
if [ -n "$only" ]; then
    tests=$(echo "$tests" | grep -E "/(${only//,/|})-[0-9a-f]*$" || true)
    [ -n "$tests" ] || { echo "error: no test file named $only" >&2; exit 2; }
fi
cargo build --workspace --quiet
rootfs=$(cd build/rootfs && pwd -P)

# --- the initramfs: busybox, the binaries and their libraries, the rootfs,
# the snapshots, all at their own absolute paths.
img=$(mktemp -d)
trap 'rm -rf "$img" ${modules:-}' EXIT
mkdir -p "$img"/{bin,sbin,lib/modules,proc,sys,dev,etc,root}
cp /bin/busybox "$img/bin/busybox"
for applet in $("$img/bin/busybox" --list); do [ "$applet" = busybox ] || ln -sf busybox "$img/bin/$applet"; done
[ -n "${modules:-}" ] && cp "$modules"/*.ko "$img/lib/modules/"
copy() { mkdir -p "$img$(dirname "$1")"; cp -aL "$1" "$img$1"; }
# The tools the network tests script with, the real ones over busybox's
# applets of the same name (busybox's ip has no -j, its unshare no
# --propagation): iproute2's ip, nftables' nft, util-linux's unshare,
# nsenter and losetup (the escape battery's loop device), bash; setpriv,
# newuidmap and newgidmap (setuid root, kept so) for stage 10's rootless tests;
# crun, which minibox-check grades on pure cgroup v2 here (it refuses the
# build machine's hybrid cgroups: checker/tests/check.rs); util-linux
# script for the terminal tests (busybox's has no -e, no exit status).
# runc on v2: minibox-check grades it there and compare.rs checks stage 09
# against it (both verified in the v2 VM; the v1 VM does not carry it yet).
tools="ip nft unshare nsenter bash losetup setpriv newuidmap newgidmap crun script"
[ "$cgroup" = v2 ] && tools="$tools runc"
for tool in $tools; do
    real=$(command -v "$tool") || { echo "error: $tool is missing: install it (just setup)" >&2; exit 1; }
    rm -f "$img/bin/$tool" "$img/sbin/$tool"
    cp -L --preserve=mode "$real" "$img/bin/$tool"
    for lib in $(ldd "$real" | grep -o '/[^ ]*'); do
        [ -e "$img$lib" ] || copy "$lib"
    done
done
stages=$(find "$top/target/debug" -maxdepth 1 -type f -executable \( -name '[0-9][0-9]-*' -o -name minibox-check \))
for binary in $tests $stages; do
    mkdir -p "$img$(dirname "$binary")"
    objcopy --strip-debug "$binary" "$img$binary"
    for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do
        [ -e "$img$lib" ] || copy "$lib"
    done
done
mkdir -p "$img$rootfs" "$img$top/tests"
cp -a "$rootfs/." "$img$rootfs/"
cp -a "$top/tests/tests" "$img$top/tests/"
mkdir -p "$img$top/shared/tests" && cp -a "$top/shared/tests/fixtures" "$img$top/shared/tests/"
mkdir -p "$img$top/checker"
cp -a "$top/checker/tests" "$img$top/checker/"   # minibox-check's snapshots and test runtimes
cp -a "$top/docs" "$img$top/"   # the book's includes are checked too
cp "$top/tests/vm/init.sh" "$img/init"
chmod +x "$img/init"
cat > "$img/vm.env" <<ENV
MINIBOX_VM_CGROUP=$cgroup
MINIBOX_VM_UPDATE_SNAPSHOTS=$update
MINIBOX_VM_WORKDIR=$top
MINIBOX_ROOTFS=$rootfs
MINIBOX_VM_TESTS="$(echo "$tests" | tr '\n' ' ')"
MINIBOX_VM_FILTER="$filter"
ENV
(cd "$img" && find . | cpio -o -H newc --quiet | gzip -1) > "$cache/initramfs.gz"
packed=$(date +%s)
echo "vm: packed $(du -h "$cache/initramfs.gz" | cut -f1) initramfs in $((packed - started))s; booting $(basename "$kernel") with cgroup $cgroup"

# --- boot. -accel tcg: nested KVM is not available on the CI machines.
log=$cache/console-$cgroup.log
set +e
timeout "${MINIBOX_VM_TIMEOUT:-1500}" qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 3072 \
    -nographic -no-reboot -kernel "$kernel" -initrd "$cache/initramfs.gz" \
    -append "console=ttyS0 quiet panic=-1 rdinit=/init" </dev/null | tee "$log" | grep -v '^[A-Za-z0-9+/=]\{60,\}$'
qemu_status=${PIPESTATUS[0]}
set -e
finished=$(date +%s)
echo "vm: finished in $((finished - packed))s (boot and tests)"
if [ "$update" = 1 ]; then
    sed -n '/MINIBOX-VM-SNAPSHOTS-BEGIN/,/MINIBOX-VM-SNAPSHOTS-END/p' "$log" | tr -d '\r' | sed '1d;$d' \
        | base64 -d | gzip -dc | tar -C "$top" -xf - --wildcards '*.snap' '*.snap.new' 2>/dev/null || true
    echo "vm: snapshots copied back to tests/tests/snapshots and checker/tests/snapshots: review them with git diff"
fi
code=$(tr -d '\r' < "$log" | sed -n 's/^MINIBOX-VM-EXIT=\([0-9]*\)$/\1/p' | tail -1)
if [ -z "$code" ]; then
    if [ "$qemu_status" = 124 ]; then
        echo "error: the VM ran past ${MINIBOX_VM_TIMEOUT:-1500}s and was stopped (console: $log)" >&2
    else
        echo "error: the VM did not report a result: it did not boot or crashed (qemu exit $qemu_status; console: $log)" >&2
    fi
    exit 1
fi
exit "$code"
