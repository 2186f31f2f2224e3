#!/usr/bin/env bash
# Provision the minibox lab. Safe to run again: every step checks first.
#
# Env:
#   MINIBOX_REPO              where the repository is (/home/vagrant/minibox)
#   MINIBOX_USER              who builds and runs it (vagrant)
#   MINIBOX_PROVISION_OFFLINE=1  skip the steps that download; only check
#                             what is there and do the local steps
set -euo pipefail

repo=${MINIBOX_REPO:-/home/vagrant/minibox}
user=${MINIBOX_USER:-vagrant}
offline=${MINIBOX_PROVISION_OFFLINE:-0}
say() { printf '==> %s\n' "$*"; }
as_user() { if [ "$(id -un)" = "$user" ]; then "$@"; else sudo -H -u "$user" "$@"; fi; }
user_home=$(getent passwd "$user" | cut -d: -f6)
cargo_bin=$user_home/.cargo/bin

packages=(build-essential pkg-config curl git ca-certificates busybox-static stress cpio qemu-system-x86 python3 util-linux iproute2 procps nftables kmod xz-utils zstd libseccomp-dev)
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
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if as_user test -x "$cargo_bin/cargo"; then
    say "rust: $(as_user "$cargo_bin/cargo" --version)"
elif [ "$offline" = 1 ]; then
    say "rust: missing (offline: not installing)"
else
    say "rust: installing with rustup"
    as_user bash -c 'curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component rustfmt,clippy'
fi

if as_user test -x "$cargo_bin/just" || command -v just >/dev/null 2>&1; then
    say "just: present"
elif [ "$offline" = 1 ]; then
    say "just: missing (offline: not installing)"
else
    say "just: installing"
    as_user "$cargo_bin/cargo" install just --locked --quiet
fi

if [ -d "$repo/build/rootfs/bin" ]; then
    say "rootfs: present in $repo/build/rootfs"
elif as_user test -x "$cargo_bin/just"; then
    say "rootfs: building"
    (cd "$repo" && as_user env "PATH=$cargo_bin:$PATH" just rootfs)
else
    say "rootfs: not built yet (needs just): run 'just rootfs' in $repo"
fi

profile=$user_home/.profile
# shellcheck disable=SC2016 # the line is written literally, for the login shell to expand
line='export PATH="$HOME/.cargo/bin:$PATH"'
if ! grep -qxF "$line" "$profile" 2>/dev/null; then
    echo "$line" >> "$profile"
    say "PATH: added ~/.cargo/bin to $profile"
fi

cat <<DONE

The lab is ready. Start with:

    cd $repo && just stage 1

DONE
