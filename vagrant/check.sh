#!/usr/bin/env bash
# What CI can check of the students' VM in seconds, without a box:
# syntax and lint of the scripts and `vagrant validate`. Provisioning a
# fresh machine, twice, and booting it is `just vm-student`'s (long) job.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
ok() { printf 'ok    %s\n' "$*"; }
bad() { printf 'FAIL  %s\n' "$*"; fail=1; }

scripts=(vagrant/provision.sh vagrant/check.sh tests/vm/run.sh tests/vm/init.sh tests/vm-student/run.sh tests/vm-student/lab.sh)
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

# provision.sh itself is run by tests/vm-student/run.sh (`just vm-student`):
# twice, in a chroot of a fresh Debian root, then booted. A run here would
# only see this machine's packages, so there is none.
echo "note  provision.sh's run (twice, idempotent) and boot: just vm-student"

exit "$fail"
