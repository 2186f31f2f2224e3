#!/usr/bin/env python3
"""minibox benchmarks: start-up cost against real peers, where the time
goes, and what each container costs. Run with `just bench` (or `--quick`).

Every comparison is *interleaved*: each round runs every command once, in
a fresh random order, so drift on a shared machine hits all of them alike
and no command always follows the same neighbour. (The order matters on
cgroup v1: the first cgroup migration after a quiet moment waits for an
RCU grace period, so a command that follows another container start looks
cheaper. `cold_07` measures stage 07 spaced out, the way one `run` meets a
quiet machine.)
Writes build/bench/results.json and build/bench/results.md.
"""
import argparse, json, os, platform, random, re, shutil, statistics
import subprocess, sys, tempfile, time
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]
# The binaries to measure: `just bench` builds them statically linked, as
# runc ships (a dynamically linked minibox loads its binary twice per run,
# once as run and once as init, and pays the dynamic loader each time).
REL = Path(os.environ.get("MINIBOX_BENCH_BIN", TOP / "target" / "release"))
OUT = TOP / "build" / "bench"
ROOTFS = TOP / "build" / "rootfs"


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


# Per-command environment on top of the bench's (the rootless row's own
# state root and home), by command name.
ENV_FOR = {}


def timed(argv, env):
    """Wall time (ms) of one run, and its exit status."""
    start = time.perf_counter_ns()
    code = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    return (time.perf_counter_ns() - start) / 1e6, code


def peak_rss(argv, env):
    """run's own peak RSS (VmHWM, KiB), read while its container is up:
    by then run has done all of its setup. (wait4's ru_maxrss would report
    the forked Python's memory from before the exec.)"""
    argv = [a if a != "/bin/true" else "sh" for a in argv] + ["-c", "echo up; read x"]
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    proc.stdout.readline()
    # The rootless row's setpriv execs run: proc.pid is run either way.
    hwm = 0
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    proc.communicate("")
    return hwm


def summary(samples):
    samples = sorted(samples)
    q = lambda p: samples[min(len(samples) - 1, int(p * len(samples)))]
    return {"median_ms": statistics.median(samples), "p10_ms": q(0.10),
            "p90_ms": q(0.90), "runs": len(samples)}


def runc_bundle(workdir):
    """An OCI bundle over the same busybox rootfs, running /bin/true."""
    bundle = Path(workdir) / "bundle"
    bundle.mkdir()
    sh(["runc", "spec", "--bundle", str(bundle)])
    spec = json.loads((bundle / "config.json").read_text())
    spec["root"] = {"path": str(ROOTFS), "readonly": True}
    spec["process"]["args"] = ["/bin/true"]
    spec["process"]["terminal"] = False
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


def peers(workdir, env):
    """The commands to compare, or the reason one cannot run here."""
    cmds, missing = {}, {}
    cmds["unshare"] = ["unshare", "--fork", "--pid", "--mount", "--uts", "--ipc",
                       "--net", "--mount-proc", "/bin/true"]
    if shutil.which("bwrap"):
        cmds["bwrap"] = ["bwrap", "--unshare-all", "--bind", str(ROOTFS), "/",
                         "--proc", "/proc", "--dev", "/dev", "/bin/true"]
    else:
        missing["bwrap"] = "not installed (apt-get install bubblewrap)"
    if shutil.which("runc"):
        bundle = runc_bundle(workdir)
        cmds["runc"] = ["runc", "--root", str(Path(workdir) / "runc-state"), "run",
                        "--bundle", str(bundle), "minibox-bench"]
    else:
        missing["runc"] = "not installed (apt-get install runc)"
    if shutil.which("crun"):
        crun = ["crun", "--root", str(Path(workdir) / "crun-state"), "run",
                "--bundle", str(Path(workdir) / "bundle"), "minibox-bench-crun"]
        probe = subprocess.run(crun, env=env, capture_output=True, text=True)
        if probe.returncode == 0:
            cmds["crun"] = crun
        else:
            said = (probe.stderr.strip().splitlines() or ["no message"])[-1]
            missing["crun"] = f"exits {probe.returncode} here: {said[:120]}"
    else:
        missing["crun"] = "not installed (apt-get install crun)"
    for stage in ["01-namespaces", "02-proc-mount", "03-pipe-args", "04-pivot-root",
                  "05-cgroups", "06-volumes", "07-full"]:
        binary = str(REL / stage)
        if stage < "06":
            cmds[stage] = [binary, "run", "/bin/true"]
        elif stage == "06-volumes":
            cmds[stage] = [binary, "run", "busybox", "/bin/true"]
        else:
            cmds[stage + " --rm"] = [binary, "run", "--rm", "busybox", "/bin/true"]
    # Stage 08 twice: without a network (07's world plus the flag) and on
    # the bridge (a veth pair, an address, one `nft -f -` per run). The
    # bench runs in a network namespace of its own (see main), so the
    # bridge and the rules are made there.
    net = str(REL / "08-network")
    cmds["08-network --rm --network none"] = [net, "run", "--rm", "--network", "none", "busybox", "/bin/true"]
    cmds["08-network --rm (bridge)"] = [net, "run", "--rm", "busybox", "/bin/true"]
    # Stage 09: the same as 08 without a network, plus capabilities, masks,
    # the devices cgroup and a seccomp filter (compiled once, then read from
    # the cache under the state root).
    cmds["09-hardening --rm --network none"] = [str(REL / "09-hardening"), "run", "--rm", "--network", "none",
                                               "busybox", "/bin/true"]
    # Stage 10 as root: 09 plus a user namespace made by three processes, its
    # maps written by run, and the image through an idmapped mount.
    cmds["10-rootless --rm --network none"] = [str(REL / "10-rootless"), "run", "--rm", "--network", "none",
                                              "busybox", "/bin/true"]
    # Stage 10 as an ordinary user (see rootless_user): newuidmap and
    # newgidmap write the maps, the image is used as it is (host root's
    # files read as nobody), no cgroup on a v1 machine, network none. The
    # row includes setpriv's exec, which its own row measures alone.
    user = rootless_user(workdir)
    if isinstance(user, str):
        missing["10-rootless --rm, as a user"] = user
    else:
        uid, user_env = user
        drop = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
        cmds["setpriv (the user row's wrapper)"] = drop + ["/bin/true"]
        name = "10-rootless --rm, as a user"
        cmds[name] = drop + [str(REL / "10-rootless"), "run", "--rm", "busybox", "/bin/true"]
        ENV_FOR[name] = ENV_FOR["setpriv (the user row's wrapper)"] = user_env
    return cmds, missing


def rootless_user(workdir):
    """An ordinary user for stage 10's rootless row, added to no file of
    the machine's: the bench runs in a mount namespace of its own (see
    main), where copies of /etc/passwd, group, subuid and subgid with a
    `minibench` user are bind-mounted over the real ones (newuidmap looks
    the name up). Returns (uid, its environment), or why it cannot run."""
    setpriv = subprocess.run(["setpriv", "--version"], capture_output=True, text=True)
    if setpriv.returncode != 0 or "util-linux" not in setpriv.stdout:
        return "needs util-linux's setpriv"
    if not (shutil.which("newuidmap") and shutil.which("newgidmap")):
        return "needs newuidmap and newgidmap (apt-get install uidmap)"
    passwd = Path("/etc/passwd").read_text()
    taken = {int(l.split(":")[2]) for l in passwd.splitlines() if l.count(":") >= 6}
    uid = next(u for u in range(1500, 2000) if u not in taken)
    etc = Path(workdir) / "etc"
    etc.mkdir()
    files = {"passwd": passwd + f"minibench:x:{uid}:{uid}::/nonexistent:/bin/sh\n",
             "group": Path("/etc/group").read_text() + f"minibench:x:{uid}:\n",
             "subuid": "minibench:200000:65536\n", "subgid": "minibench:200000:65536\n"}
    for name, text in files.items():
        (etc / name).write_text(text)
        (etc / name).chmod(0o644)
        target = Path("/etc") / name
        if not target.exists():
            return f"no /etc/{name} to bind a copy over"
        sh(["mount", "--bind", str(etc / name), str(target)])
    etc.chmod(0o755)
    home = Path(workdir) / "home"
    home.mkdir()
    os.chown(home, uid, uid)
    # The bench's directory is root's and private: let the user through.
    Path(workdir).chmod(0o711)
    return uid, {"HOME": str(home), "MINIBOX_ROOT": str(home / "minibox"), "XDG_RUNTIME_DIR": ""}


def interleaved(cmds, rounds, env):
    samples = {name: [] for name in cmds}
    envs = {name: {**env, **ENV_FOR.get(name, {})} for name in cmds}
    for name, argv in cmds.items():  # warm caches once
        _, code = timed(argv, envs[name])
        if code != 0:
            raise SystemExit(f"bench: {name} failed (exit {code}): {' '.join(argv)}")
    order = list(cmds.items())
    shuffle = random.Random(1)
    for _ in range(rounds):
        shuffle.shuffle(order)
        for name, argv in order:
            ms, _ = timed(argv, envs[name])
            samples[name].append(ms)
    results = {name: summary(s) for name, s in samples.items()}
    for name, argv in cmds.items():
        if name[0].isdigit():  # minibox's own run processes
            at = argv.index("run") + 1
            interactive = argv[:at] + ["-i"] + argv[at:]
            results[name]["run_peak_rss_kib"] = peak_rss(interactive, envs[name])
    return results


STEP_NOISE = [(re.compile(r"/tmp/minibox-bench-[^/\"]*/root"), "$ROOT"),
              (re.compile(re.escape(str(ROOTFS))), "$ROOTFS"),
              (re.compile(r"[0-9a-f]{12}"), "<id>"), (re.compile(r"minibox-bench-\d+"), "<parent>"),
              (re.compile(r"\b\d+\b"), "N")]


def cold(argv, env, runs, gap_s=0.25):
    """Start-up when nothing else has just started: runs spaced out."""
    samples = []
    for _ in range(runs):
        time.sleep(gap_s)
        ms, _ = timed(argv, env)
        samples.append(ms)
    return summary(samples)


def breakdown(env, rounds):
    """Median time per step of `07-full run --rm`, from the JSON trace."""
    per_step = {}
    for _ in range(rounds):
        time.sleep(0.25)  # cold, as a single run meets the machine
        proc = subprocess.run([str(REL / "07-full"), "run", "--rm", "--trace", "json",
                               "busybox", "/bin/true"], env={**env, "MINIBOX_TRACE": "json"},
                              capture_output=True, text=True)
        events = [json.loads(l) for l in proc.stderr.splitlines() if l.startswith("{")]
        events.sort(key=lambda e: e["t_us"])
        for before, after in zip(events, events[1:]):
            step = after["step"]
            for pattern, repl in STEP_NOISE:
                step = pattern.sub(repl, step)
            key = f'{after["actor"]}: {step}'
            per_step.setdefault(key, []).append((after["t_us"] - before["t_us"]) / 1000)
    rows = [(k, statistics.median(v)) for k, v in per_step.items()]
    return sorted(rows, key=lambda r: -r[1])


def memory_kib(pid):
    """RSS, PSS and USS (private pages) of a process, in KiB. RSS counts the
    pages a monitor shares with every other monitor (the binary, libc) in
    full; USS is what one more container really adds."""
    fields = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                fields[parts[0].rstrip(":")] = int(parts[1])
    except OSError:
        return 0, 0, 0
    uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return fields.get("Rss", 0), fields.get("Pss", 0), uss


def scale(env, counts):
    """Start N detached containers; time it, measure the monitors, time ps."""
    full = str(REL / "07-full")
    results = []
    for n in counts:
        names = [f"bench-{n}-{i}" for i in range(n)]
        start = time.perf_counter()
        for name in names:
            sh([full, "run", "-d", "--name", name, "busybox", "sleep", "1000"], env=env)
        started = (time.perf_counter() - start) * 1000
        rss = pss = uss = 0
        state = Path(env["MINIBOX_ROOT"]) / "containers"
        for d in state.iterdir():
            st = json.loads((d / "state.json").read_text())
            if st.get("pid"):
                stat = Path(f"/proc/{st['pid']}/stat").read_text()
                ppid = int(stat[stat.rfind(")") + 2:].split()[1])
                r, p, u = memory_kib(ppid)
                rss, pss, uss = rss + r, pss + p, uss + u
        ps = []
        for _ in range(20):
            ms, _ = timed([full, "ps"], env)
            ps.append(ms)
        sh([full, "rm", "-f", *names], env=env)
        results.append({"containers": n, "start_all_ms": started,
                        "start_each_ms": started / n,
                        "monitor_rss_kib_each": rss / n, "monitor_pss_kib_each": pss / n,
                        "monitor_uss_kib_each": uss / n,
                        "ps_median_ms": statistics.median(ps)})
    return results


def ratio(a, b):
    return a / b if b else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few rounds: prove the harness works")
    args = parser.parse_args()
    if os.environ.get("MINIBOX_BENCH_NETNS") != "1":
        # Stage 08 makes a bridge, veths and nftables rules: in a network
        # namespace of the bench's own, never in the machine's. A mount
        # namespace too, private: the rootless row's /etc copies are
        # bind-mounted there, and vanish with it.
        os.environ["MINIBOX_BENCH_NETNS"] = "1"
        os.execvp("unshare", ["unshare", "--net", "--mount", "--propagation", "private", "--",
                              sys.executable, *sys.argv])
    rounds, step_rounds, counts = (3, 3, [1, 10]) if args.quick else (60, 30, [1, 10, 50])
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="minibox-bench-") as work:
        # Stage 10's remapped root takes a `minibox` range of subordinate
        # ids: the bench's own file, never the machine's /etc/subuid.
        subids = Path(work) / "subids"
        subids.write_text("minibox:100000:65536\n")
        env = {**os.environ, "MINIBOX_ROOT": str(Path(work) / "root"), "MINIBOX_TRACE": "off",
               "MINIBOX_CGROUP_PARENT": f"minibox-bench-{os.getpid()}", "NO_COLOR": "1",
               "MINIBOX_SUBUID": str(subids), "MINIBOX_SUBGID": str(subids)}
        cmds, missing = peers(work, env)
        startup = interleaved(cmds, rounds, env)
        cold_07 = cold(cmds["07-full --rm"], env, 5 if args.quick else 30)
        cold_runc = cold(cmds["runc"], env, 5 if args.quick else 30) if "runc" in cmds else None
        steps = breakdown(env, step_rounds)
        scaling = scale(env, counts)
        # Runs keep their parent cgroup for the next one, as docker does:
        # the bench's own parent goes now, with anything else it left.
        sh([str(REL / "09-hardening"), "cleanup"], env=env)
    base_unshare = startup["unshare"]["median_ms"]
    base_runc = startup.get("runc", {}).get("median_ms")
    machine = f"{platform.node()}, {platform.release()}, {os.cpu_count()} CPUs; minibox from {REL}"
    results = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine, "quick": args.quick,
               "startup": startup, "cold_07": cold_07, "cold_runc": cold_runc,
               "unavailable": missing, "steps_07": steps[:15],
               "scale_07": scaling}
    (OUT / "results.json").write_text(json.dumps(results, indent=2))

    md = [f"# minibox benchmark — {results['date']}", "", f"Machine: {machine}.",
          f"{rounds} interleaved rounds{' (quick)' if args.quick else ''}.", "",
          "| command | median | p10–p90 | × unshare | × runc | run's peak RSS |",
          "|---|---:|---:|---:|---:|---:|"]
    for name, r in startup.items():
        vs_runc = f"{ratio(r['median_ms'], base_runc):.2f}" if base_runc else "–"
        md.append(f"| {name} | {r['median_ms']:.2f} ms | {r['p10_ms']:.2f}–{r['p90_ms']:.2f} ms | "
                  f"{ratio(r['median_ms'], base_unshare):.2f} | {vs_runc} | "
                  f"{str(r['run_peak_rss_kib']) + ' KiB' if 'run_peak_rss_kib' in r else '–'} |")
    for name, why in missing.items():
        md.append(f"| {name} | – | – | – | – | {why} |")
    md += ["", "Cold start (runs 250 ms apart, as a single `run` meets a quiet machine):", "",
           "| command | median | p10–p90 |", "|---|---:|---:|",
           f"| 07-full --rm | {cold_07['median_ms']:.2f} ms | {cold_07['p10_ms']:.2f}–{cold_07['p90_ms']:.2f} ms |"]
    if cold_runc:
        md.append(f"| runc | {cold_runc['median_ms']:.2f} ms | {cold_runc['p10_ms']:.2f}–{cold_runc['p90_ms']:.2f} ms |")
    md += ["", "Where a cold `07-full run --rm` spends its time (median per step, ms):", "",
           "| step | ms |", "|---|---:|"]
    md += [f"| `{k}` | {v:.3f} |" for k, v in steps[:15]]
    md += ["", "Detached containers (`07-full run -d … sleep 1000`):", "",
           "| containers | start all | per container | monitor USS / PSS / RSS each | `ps` median |",
           "|---:|---:|---:|---:|---:|"]
    md += [f"| {s['containers']} | {s['start_all_ms']:.0f} ms | {s['start_each_ms']:.1f} ms | "
           f"{s['monitor_uss_kib_each']:.0f} / {s['monitor_pss_kib_each']:.0f} / "
           f"{s['monitor_rss_kib_each']:.0f} KiB | {s['ps_median_ms']:.2f} ms |" for s in scaling]
    (OUT / "results.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    print(f"\nwritten: {OUT / 'results.md'}, {OUT / 'results.json'}")


if __name__ == "__main__":
    main()
