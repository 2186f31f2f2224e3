#!/usr/bin/env bash
# Run inside the students' VM, over ssh as `vagrant`, by tests/vm-student/run.sh:
# first what the VM must be (systemd as PID 1, cgroup v2 alone, / shared,
# the deferred kernel steps done at boot), then what the lab guide tells a
# student to type. Logs go to ~/vm-student-logs; the last line sums up.
#
# Env: MINIBOX_VM_STUDENT_SUITE=full|quick (quick: no `just test-host`)
set -uo pipefail
cd ~/minibox || exit 1
logs=~/vm-student-logs
mkdir -p "$logs"
suite=${MINIBOX_VM_STUDENT_SUITE:-full}
started=$(date +%s)
failed=0 passed=0
ok() { printf 'lab [%5ss] ok    %s\n' "$(($(date +%s) - started))" "$*"; passed=$((passed + 1)); }
bad() { printf 'lab [%5ss] FAIL  %s\n' "$(($(date +%s) - started))" "$*"; failed=$((failed + 1)); }

# --- the world
pid1=$(ps -p 1 -o comm=)
if [ "$pid1" = systemd ]; then ok "PID 1 is systemd"; else bad "PID 1 is $pid1, not systemd"; fi
state=$(systemctl is-system-running --wait 2>/dev/null)
# "degraded" names the failed units: worth seeing, not a lab failure by itself.
case "$state" in
    running) ok "systemd: $state" ;;
    degraded) ok "systemd: degraded ($(systemctl --failed --no-legend --plain | cut -d' ' -f1 | tr '\n' ' '))" ;;
    *) bad "systemd: $state" ;;
esac
fs=$(stat -fc %T /sys/fs/cgroup)
if [ "$fs" = cgroup2fs ]; then ok "/sys/fs/cgroup is cgroup v2 alone ($(cat /sys/fs/cgroup/cgroup.controllers))"
else bad "/sys/fs/cgroup is $fs, not cgroup2"; fi
propagation=$(findmnt -no PROPAGATION /)
if [ "$propagation" = shared ]; then ok "/ is shared (systemd's doing)"; else bad "/ is $propagation, not shared"; fi
if systemctl is-active --quiet minibox-kernel-setup.service; then
    ok "deferred kernel steps ran at boot: $(sudo journalctl -q -b -o cat -u minibox-kernel-setup.service | grep '^minibox:' | tail -1)"
else
    bad "minibox-kernel-setup.service is $(systemctl is-active minibox-kernel-setup.service)"
fi
ok "kernel $(uname -r); $(rustc --version); $(just --version)"
# `vagrant provision` on a booted VM: nothing left to install, and the
# kernel steps run now instead of being deferred.
out=$(sudo env MINIBOX_REPO="$PWD" MINIBOX_USER=vagrant bash vagrant/provision.sh 2>&1)
rc=$?
acted=$(grep -E '^==> [^:]*: (installing|building|added|wrote|enabled|deferred)' <<<"$out")
if [ "$rc" = 0 ] && [ -z "$acted" ] && grep -q '^==> kernel steps: minibox: ' <<<"$out"; then
    ok "provision.sh again, booted: nothing to do; $(sed -n 's/^==> kernel steps: //p' <<<"$out")"
else
    bad "provision.sh again, booted (exit $rc): $(tr '\n' ' ' <<<"${acted:-$out}" | tail -c 400)"
fi

# --- what the lab guide says
# `just stage 4 CMD`: no terminal here, so the recipe runs CMD without -t.
# shellcheck disable=SC2016 # expanded by the container's shell
out=$(just stage 4 sh -c 'echo "hello from $(hostname), pid $$"' 2>"$logs/stage4.err")
# Stage 04's container is named after its id: twelve hex digits.
if [[ "$out" =~ ^hello\ from\ [0-9a-f]{12},\ pid\ 1$ ]]; then
    ok "just stage 4: $out"
else
    bad "just stage 4 said '$out' (stderr: $(tail -3 "$logs/stage4.err" | tr '\n' ' '))"
fi

# The README's first cgroup lesson: over its memory limit, the container
# is OOM-killed and run says how many processes the kernel killed.
out=$(just stage 5 -m 64m -- stress --vm 1 --vm-bytes 200M --vm-keep 2>&1 >/dev/null)
rc=$?
if [ "$rc" = 137 ] && grep -q 'hit its memory limit (64 MiB)' <<<"$out"; then
    ok "just stage 5 -m 64m -- stress …: exit 137, $(grep -o 'the kernel OOM-killed.*' <<<"$out")"
else
    bad "just stage 5 -m 64m -- stress … exited $rc: $(tail -2 <<<"$out" | tr '\n' ' ')"
fi

just check 7 > "$logs/check7.log" 2>&1
rc=$?
summary=$(grep -iE 'passed|failed' "$logs/check7.log" | tail -1)
if [ "$rc" = 0 ]; then ok "just check 7: $summary"; else
    bad "just check 7 (exit $rc): $summary"
    grep -E 'FAIL|✗' "$logs/check7.log" | head -n 20 | sed 's/^/      /'
fi

if [ "$suite" = full ]; then
    # As lab-setup.md has it: the recipe itself uses sudo for the part that
    # needs root (cargo test), as vagrant for the rest.
    just test-host > "$logs/test-host.log" 2>&1
    rc=$?
    p=0 f=0 i=0
    while read -r a b c; do p=$((p + a)) f=$((f + b)) i=$((i + c)); done < <(
        sed -n 's/^test result: [a-zA-Z]*\. \([0-9]*\) passed; \([0-9]*\) failed; \([0-9]*\) ignored.*/\1 \2 \3/p' "$logs/test-host.log")
    skipped=$(grep -c '^SKIPPED' "$logs/test-host.log")
    if [ "$rc" = 0 ]; then
        ok "just test-host: $p passed, $f failed, $i ignored, $skipped SKIPPED lines"
    else
        bad "just test-host (exit $rc): $p passed, $f failed, $i ignored"
        grep -E '^test .* FAILED$|^error|^---- ' "$logs/test-host.log" | head -n 40 | sed 's/^/      /'
    fi
    grep '^SKIPPED' "$logs/test-host.log" | sort | uniq -c | sed 's/^/      /'
fi

echo "vm-student: $passed passed, $failed failed"
[ "$failed" = 0 ]
