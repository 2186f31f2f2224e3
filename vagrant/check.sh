#!/usr/bin/env bash
# What CI can check of the students' VM without downloading a box:
# syntax and lint of the scripts, `vagrant validate`, and a provisioning
# run, twice, in a throwaway mount namespace, proving it is idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
ok() { printf 'ok    %s\n' "$*"; }
bad() { printf 'FAIL  %s\n' "$*"; fail=1; }

scripts=(vagrant/provision.sh vagrant/check.sh tests/vm/run.sh tests/vm/init.sh)
for script in "${scripts[@]}"; do
    if bash -n "$script"; then ok "bash -n $script"; else bad "bash -n $script"; fi
done
if command -v shellcheck >/dev/null; then
    if shellcheck "${scripts[@]}"; then ok "shellcheck ${scripts[*]}"; else bad "shellcheck"; fi
else
    bad "shellcheck is not installed (apt-get install shellcheck)"
fi

if command -v vagrant >/dev/null; then
    if VAGRANT_CWD=vagrant vagrant validate --ignore-provider >/dev/null; then
        ok "vagrant validate --ignore-provider"
    else
        bad "vagrant validate --ignore-provider"
    fi
else
    bad "vagrant is not installed (apt-get install vagrant)"
fi

# Provision twice as root into a private mount namespace whose /root is an
# empty tmpfs and whose repository is a copy: nothing of this machine is
# changed, and the second run must find nothing left to do.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/repo/build"
cp -a build/rootfs "$scratch/repo/build/" 2>/dev/null || true
# shellcheck disable=SC2016 # the script runs in the new namespace's shell
if unshare --mount sh -euc '
        mount --make-rprivate /
        mount -t tmpfs tmpfs /root
        run() {
            MINIBOX_PROVISION_OFFLINE=1 MINIBOX_USER=root MINIBOX_REPO="$1/repo" \
                bash vagrant/provision.sh > "$1/run$2.log"
            md5sum /root/.profile > "$1/state$2"
            ls -R "$1/repo" >> "$1/state$2"
        }
        run "$0" 1
        run "$0" 2
    ' "$scratch"; then
    if ! grep -q "added" "$scratch/run1.log"; then
        bad "provision.sh: the first run did not set up PATH"
    elif grep -Eq "^==> [^:]*: (installing|building|added)" "$scratch/run2.log"; then
        bad "provision.sh is not idempotent: the second run did: $(grep -E '^==> [^:]*: (installing|building|added)' "$scratch/run2.log" | tr '\n' ' ')"
    elif ! cmp -s "$scratch/state1" "$scratch/state2"; then
        bad "provision.sh is not idempotent: the second run changed files"
    else
        ok "provision.sh twice (offline, throwaway /root): the second run changes nothing"
    fi
else
    bad "provision.sh failed: $(cat "$scratch"/run*.log 2>/dev/null | tail -3)"
fi

exit "$fail"
