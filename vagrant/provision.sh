#!/usr/bin/env bash
# Provision the minibox lab. Safe to run again: every step checks first.
#
# It runs in the booted VM (`vagrant up`, `vagrant provision`) and also in
# a chroot of a fresh root file system (tests/vm-student/run.sh, before
# that root has ever booted). In a chroot the steps that act on the
# running kernel would act on the machine around it, so they go into a
# boot-time unit instead (see "kernel steps" below).
#
# Env:
#   MINIBOX_REPO              where the repository is (/home/vagrant/minibox)
#   MINIBOX_USER              who builds and runs it (vagrant)
#   MINIBOX_PROVISION_OFFLINE=1  skip the steps that download; only check
#                             what is there and do the local steps
#   MINIBOX_PROVISION_BOOTED=0|1  override the booted-or-chroot detection
set -euo pipefail
# sudo's secure_path and a chroot's bare environment may both lack the
# sbin directories, where useradd, apparmor_parser and friends live.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

repo=${MINIBOX_REPO:-/home/vagrant/minibox}
user=${MINIBOX_USER:-vagrant}
offline=${MINIBOX_PROVISION_OFFLINE:-0}
say() { printf '==> %s\n' "$*"; }
as_user() { if [ "$(id -un)" = "$user" ]; then "$@"; else sudo -H -u "$user" "$@"; fi; }
user_home=$(getent passwd "$user" | cut -d: -f6)
cargo_bin=$user_home/.cargo/bin
# Is a kernel of our own running under us, with systemd? In a chroot
# (systemd-detect-virt says so, or / is not PID 1's /) the answer is no.
if [ -n "${MINIBOX_PROVISION_BOOTED:-}" ]; then
    booted=$MINIBOX_PROVISION_BOOTED
elif systemd-detect-virt --quiet --chroot 2>/dev/null \
    || [ "$(stat -Lc %d:%i / 2>/dev/null)" != "$(stat -Lc %d:%i /proc/1/root/. 2>/dev/null)" ] \
    || [ ! -d /run/systemd/system ]; then
    booted=0
else
    booted=1
fi
# version_at_least 1.85.0 1.85 → true
version_at_least() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" = "$2" ]; }
apt_updated=0
apt_install() {
    [ "$apt_updated" = 1 ] || { apt-get update -qq; apt_updated=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}
# The version apt would install (no epoch, no Debian revision), empty if none.
apt_candidate() {
    [ "$apt_updated" = 1 ] || { apt-get update -qq; apt_updated=1; }
    apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: \(.*\)/\1/p' \
        | sed -e 's/^[0-9]*://' -e 's/[-+~].*//' -e 's/^(none)$//'
}

packages=(build-essential pkg-config curl git ca-certificates busybox-static stress cpio qemu-system-x86 python3 util-linux iproute2 procps nftables kmod xz-utils zstd libseccomp-dev uidmap)
missing=()
for pkg in "${packages[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -eq 0 ]; then
    say "system packages: all present"
elif [ "$offline" = 1 ]; then
    say "system packages: missing ${missing[*]} (offline: not installing)"
else
    say "system packages: installing ${missing[*]}"
    apt_install "${missing[@]}"
fi

# Rust: rustup's, when the user has it; else the distribution's, when it
# is at least the workspace's rust-version (Debian 13 ships 1.85; Ubuntu
# 24.04's is older) — no download from outside the package archive; else
# rustup from the internet.
msrv=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$repo/Cargo.toml" 2>/dev/null | head -1)
msrv=${msrv:-1.85}
distro_rust=(rustc cargo rustfmt rust-clippy)
distro_rust_ok() {
    command -v rustc >/dev/null && command -v cargo >/dev/null && command -v cargo-clippy >/dev/null \
        && command -v rustfmt >/dev/null \
        && version_at_least "$(rustc --version | cut -d' ' -f2)" "$msrv"
}
if as_user test -x "$cargo_bin/cargo"; then
    say "rust: $(as_user "$cargo_bin/cargo" --version) (rustup)"
elif distro_rust_ok; then
    say "rust: $(rustc --version) (the distribution's; the workspace needs $msrv)"
elif [ "$offline" = 1 ]; then
    say "rust: missing (offline: not installing)"
elif candidate=$(apt_candidate rustc) && [ -n "$candidate" ] && version_at_least "$candidate" "$msrv" \
    && [ -n "$(apt_candidate rust-clippy)" ] && [ -n "$(apt_candidate rustfmt)" ]; then
    say "rust: installing the distribution's rustc $candidate (the workspace needs $msrv)"
    apt_install "${distro_rust[@]}"
else
    say "rust: installing with rustup (the distribution's rustc ${candidate:-is not packaged} is older than $msrv)"
    as_user bash -c 'curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component rustfmt,clippy'
fi

find_just() { if as_user test -x "$cargo_bin/just"; then echo "$cargo_bin/just"; else command -v just; fi; }
if find_just >/dev/null; then
    say "just: present"
elif [ "$offline" = 1 ]; then
    say "just: missing (offline: not installing)"
elif [ -n "$(apt_candidate just)" ]; then
    say "just: installing the distribution's"
    apt_install just
else
    say "just: installing with cargo"
    as_user env "PATH=$cargo_bin:$PATH" cargo install just --locked --quiet
fi

if [ -d "$repo/build/rootfs/bin" ]; then
    say "rootfs: present in $repo/build/rootfs"
elif just=$(find_just); then
    say "rootfs: building"
    (cd "$repo" && as_user env "PATH=$cargo_bin:$PATH" "$just" rootfs)
else
    say "rootfs: not built yet (needs just): run 'just rootfs' in $repo"
fi

# Stage 10: as root, `--userns=remap` maps container root to subordinate
# ids owned by the system user `minibox`; rootless runs use the student's
# own range. Ranges must not overlap (two users sharing host ids could
# reach each other's files), so a new one starts after the highest in use.
# Files only: the same in a chroot as booted.
next_free_id() {
    cat /etc/subuid /etc/subgid 2>/dev/null \
        | awk -F: 'BEGIN { end = 100000 } NF == 3 && $2 + $3 > end { end = $2 + $3 } END { print end }'
}
if ! id minibox >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin minibox
    say "subordinate ids: added the system user minibox"
fi
for owner in minibox "$user"; do
    if grep -q "^$owner:" /etc/subuid 2>/dev/null && grep -q "^$owner:" /etc/subgid 2>/dev/null; then
        say "subordinate ids: $owner has $(grep "^$owner:" /etc/subuid | cut -d: -f2-)"
    else
        start=$(next_free_id)
        usermod --add-subuids "$start-$((start + 65535))" --add-subgids "$start-$((start + 65535))" "$owner"
        say "subordinate ids: gave $owner $start-$((start + 65535))"
    fi
done

profile=$user_home/.profile
# shellcheck disable=SC2016 # the line is written literally, for the login shell to expand
line='export PATH="$HOME/.cargo/bin:$PATH"'
if ! grep -qxF "$line" "$profile" 2>/dev/null; then
    echo "$line" >> "$profile"
    chown "$user:" "$profile"
    say "PATH: added ~/.cargo/bin to $profile"
fi

# --- kernel steps: what acts on the running kernel, not on files. Ubuntu
# 23.10 and later forbid unprivileged user namespaces unless an AppArmor
# profile allows them (kernel.apparmor_restrict_unprivileged_userns=1);
# stage 10's rootless containers need one, for the stage binaries only.
# The steps live in a script, run by a unit at every boot, and right now
# when this machine is booted: the same files either way, so a second run
# finds nothing to do.
changed_files=0
put_file() { # put_file PATH MODE: stdin becomes PATH unless it already is
    local new
    new=$(cat)
    if [ -f "$1" ] && [ "$(cat "$1")" = "$new" ]; then return 0; fi
    mkdir -p "$(dirname "$1")"
    printf '%s\n' "$new" > "$1"
    chmod "$2" "$1"
    say "kernel steps: wrote $1"
    changed_files=1
}
if [ -d /etc/apparmor.d ]; then
    put_file /etc/apparmor.d/minibox 0644 <<PROFILE
# Written by minibox's vagrant/provision.sh: the stage binaries may create
# user namespaces (stage 10, rootless) where the kernel restricts them.
abi <abi/4.0>,
include <tunables/global>

profile minibox $repo/target/{debug,release}/[0-9][0-9]-* flags=(unconfined) {
  userns,
}
PROFILE
fi
put_file /usr/local/sbin/minibox-kernel-setup 0755 <<'SCRIPT'
#!/bin/sh
# Written by minibox's vagrant/provision.sh: its steps that act on the
# running kernel. Run at boot by minibox-kernel-setup.service.
set -eu
restrict=/proc/sys/kernel/apparmor_restrict_unprivileged_userns
if [ "$(cat "$restrict" 2>/dev/null || echo 0)" = 1 ]; then
    apparmor_parser --replace /etc/apparmor.d/minibox
    echo "minibox: user namespaces restricted by AppArmor: profile 'minibox' loaded for the stage binaries"
else
    echo "minibox: this kernel does not restrict unprivileged user namespaces: nothing to load"
fi
SCRIPT
put_file /etc/systemd/system/minibox-kernel-setup.service 0644 <<'UNIT'
[Unit]
Description=minibox lab: provisioning steps that act on the running kernel
After=apparmor.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/minibox-kernel-setup

[Install]
WantedBy=multi-user.target
UNIT
wants=/etc/systemd/system/multi-user.target.wants/minibox-kernel-setup.service
if [ ! -L "$wants" ]; then
    mkdir -p "$(dirname "$wants")"
    ln -s /etc/systemd/system/minibox-kernel-setup.service "$wants"
    say "kernel steps: enabled minibox-kernel-setup.service"
fi
if [ "$booted" = 1 ]; then
    [ "$changed_files" = 0 ] || systemctl daemon-reload
    say "kernel steps: $(/usr/local/sbin/minibox-kernel-setup)"
else
    say "kernel steps: deferred to boot (not booted: a chroot or no systemd)"
fi

cat <<DONE

The lab is ready. Start with:

    cd $repo && just stage 1

DONE
