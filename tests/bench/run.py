#!/usr/bin/python3
"""rproxy against nginx and HAProxy, in one run, on this machine (`make bench`).

The backends (nginx; bulk.py for large transfers) and the load generator share CPU 1; each
proxy runs one worker on CPU 0. Scenarios run one after another; inside one, the
targets are interleaved round by round (rproxy, nginx, haproxy, direct, then
again), each proxy started fresh for its run. Prints a table of medians and
ratios, and writes tests/bench/results/latest.{json,csv,svg}.

usage: run.py --rproxy PATH [--rounds N] [--duration S] [--only A,B] [--targets X,Y]
              [--quick] [--idle N]
"""

import argparse
import atexit
import datetime
import os
import pathlib
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import report     # noqa: E402
import scenarios  # noqa: E402
import servers    # noqa: E402

REPO = servers.HERE.parents[1]


class Ctx:
    """What a scenario needs: the backend, durations, the rproxy binary, a temp dir."""

    def __init__(self, args, tmp, backend):
        self.duration = args.duration
        self.idle = args.idle
        self.rproxy_bin = args.rproxy
        self.tmp = tmp
        self.backend = backend
        self.pki = None          # the TLS scenario's certificates (servers.make_pki)
        self.proxy = None        # the proxy of the current run


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rproxy", default=str(REPO / "build" / "rproxy"),
                    help="the rproxy binary (default: build/rproxy)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per scenario (default 3)")
    ap.add_argument("--duration", type=int, default=5,
                    help="seconds of load per run (default 5)")
    ap.add_argument("--only", default="",
                    help="comma-separated scenarios: " + ",".join(s.id for s in scenarios.ALL))
    ap.add_argument("--targets", default="",
                    help="comma-separated subset of rproxy,nginx,haproxy,direct (default all)")
    ap.add_argument("--quick", action="store_true", help="1 round of 3 s: for development")
    ap.add_argument("--idle", type=int, default=5000,
                    help="connections of the idle scenario (default 5000)")
    ap.add_argument("--out", default=str(servers.HERE / "results"),
                    help="directory of latest.json/.csv/.svg")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 3
    if args.rounds < 1 or args.duration < 1:
        ap.error("--rounds and --duration must be at least 1")
    wanted = [s for s in args.only.split(",") if s]
    bad = [s for s in wanted if s not in scenarios.BY_ID]
    if bad:
        ap.error("unknown scenario(s) %s; known: %s"
                 % (",".join(bad), ",".join(s.id for s in scenarios.ALL)))
    args.scenarios = [s for s in scenarios.ALL if not wanted or s.id in wanted]
    args.targets = [t for t in args.targets.split(",") if t]
    bad = [t for t in args.targets if t not in scenarios.PROXIES + ("direct",)]
    if bad:
        ap.error("unknown target(s) %s" % ",".join(bad))
    args.rproxy = os.path.abspath(args.rproxy)
    return args


def preflight(args):
    missing = [t for t in ("wrk", "nginx", "haproxy", "taskset") if not shutil.which(t)]
    if missing:
        sys.exit("bench: missing %s: run tools/install-deps --bench" % ", ".join(missing))
    if not os.access(args.rproxy, os.X_OK):
        sys.exit("bench: %s is not an executable: run make build" % args.rproxy)
    if os.cpu_count() < 2:
        sys.exit("bench: needs 2 CPUs (proxy on CPU 0, backend and load on CPU 1)")
    # the clients of the idle scenario need a descriptor each
    resource.setrlimit(resource.RLIMIT_NOFILE, (servers.NOFILE, servers.NOFILE))
    # this script and what it runs (wrk, Python clients) stay off the proxy's CPU
    os.sched_setaffinity(0, {int(servers.LOAD_CPU)})


def versions(args):
    def first_line(argv):
        try:
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=10)
            return r.stdout.decode(errors="replace").strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "?"

    def git(*a):
        try:
            return subprocess.run(["git", "-C", str(REPO)] + list(a), stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, timeout=10).stdout.decode().strip()
        except (OSError, subprocess.SubprocessError):
            return "?"

    head = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no") if head else ""
    return {"rproxy": first_line([args.rproxy, "-v"]), "nginx": first_line(["nginx", "-v"]),
            "haproxy": first_line(["haproxy", "-v"]), "wrk": first_line(["wrk", "-v"]),
            "openssl": first_line(["openssl", "version"]),
            "commit": (head + (" + local changes" if dirty else "")) if head
            else "not a git checkout",
            "kernel": platform.release(), "cpus": os.cpu_count(),
            "cpu_model": _cpu_model()}


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def run_one(ctx, sc, target, rnd):
    """One measured run of sc on target. Returns the run's record; raises
    NotApplicable when the target cannot do the scenario."""
    rec = {"round": rnd + 1, "metrics": {}, "errors": 0, "notes": []}
    extra = sc.prepare(ctx, target, rnd)         # may raise NotApplicable
    backend_port, backend_pid, backend = ctx.backend.serving(sc.bulk)
    if not backend.alive():
        raise RuntimeError("the backend exited: %s" % backend.output()[-1000:])
    if target == "direct":
        port, pid = backend_port, backend_pid
        proxy = None
    else:
        proxy = servers.Proxy(target, ctx.tmp, backend_port, ctx.rproxy_bin, lua=sc.lua,
                              **extra)
        port, pid = proxy.port, proxy.pid
    ctx.proxy = proxy
    try:
        if proxy and rnd == 0:
            sc.check(ctx, proxy)
        if sc.warmup:
            if sc.lua and target != "direct":
                scenarios.wrk(port, "/api/v1/small", 1, 64, headers=("X-Tenant: acme",))
            else:
                scenarios.wrk(port, "/small", 1, 64)
        res = sc.measure(ctx, target, port, pid)
        rec["errors"] = res.pop("errors", 0)
        rec["notes"] = res.pop("notes", [])
        rec["metrics"] = res
    except scenarios.NotApplicable:
        raise
    except Exception as e:                       # the run failed: record it, go on
        rec["failed"] = "%s: %s" % (type(e).__name__, e)
        if not isinstance(e, RuntimeError):
            rec["failed"] += "\n" + traceback.format_exc()
    finally:
        ctx.proxy = None
        if proxy:
            lines = proxy.error_lines()
            crashed = proxy.stop()
            if crashed:
                rec["crashed"] = crashed
            if lines:
                rec["log"] = lines[-20:]
    return rec


def progress(sc, target, rec):
    if rec.get("failed"):
        what = "FAILED: " + rec["failed"].splitlines()[0]
    else:
        units = {m[0]: m[2] for m in sc.metrics}
        what = ", ".join("%s %s" % (report._fmt(v, units.get(k, "")), units.get(k, k))
                         for k, v in rec["metrics"].items() if k in units and v is not None)
    extra = ""
    if rec.get("errors"):
        extra += "  [%d errors: %s]" % (rec["errors"], "; ".join(rec["notes"][:2]))
    if rec.get("crashed"):
        extra += "  [CRASHED: %s]" % rec["crashed"]
    if rec.get("log") and target == "rproxy":
        extra += "  [log: %s]" % rec["log"][-1][:160]
    print("    round %d  %-8s %s%s" % (rec["round"], target, what, extra), flush=True)


def main():
    args = parse_args()
    preflight(args)
    t_start = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="rproxy-bench-")
    cleaned = []

    def cleanup():
        if cleaned:
            return
        cleaned.append(1)
        servers.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)

    atexit.register(cleanup)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, f: sys.exit(128 + s))

    results = {"meta": {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
                        "rounds": args.rounds, "duration": args.duration,
                        "idle_connections": args.idle,
                        "command": " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:]),
                        "rproxy_bin": args.rproxy,
                        "versions": versions(args)},
               "scenarios": []}
    noise = servers.cpu_busy()
    results["meta"]["background_cpu_busy_pct"] = noise
    v = results["meta"]["versions"]
    print("bench: %s | %s | %s | %s | %d rounds x %d s | %s, %d CPUs | busy before the "
          "bench (other processes): %s"
          % (v["rproxy"], v["nginx"], v["haproxy"], v["wrk"], args.rounds, args.duration,
             v["cpu_model"], v["cpus"],
             ", ".join("%s %d%%" % kv for kv in sorted(noise.items()))), flush=True)
    try:
        backend = servers.Backend(tmp)
        ctx = Ctx(args, tmp, backend)
        for sc in args.scenarios:
            t0 = time.monotonic()
            entry = {"id": sc.id, "title": sc.title, "description": sc.describe(ctx),
                     "metrics": [list(m) for m in sc.metrics], "targets": list(sc.targets),
                     "labels": dict(sc.labels),
                     "runs": {t: [] for t in sc.targets}, "na": {}}
            results["scenarios"].append(entry)
            print("\n== %s" % entry["description"], flush=True)
            for rnd in range(args.rounds):
                for target in sc.targets:
                    if target in entry["na"] or (args.targets and target not in args.targets):
                        continue
                    try:
                        rec = run_one(ctx, sc, target, rnd)
                    except scenarios.NotApplicable as e:
                        entry["na"][target] = str(e)
                        entry.setdefault("na_detail", {})[target] = e.detail
                        print("    %s: %s%s" % (target, e, " - " + e.detail if e.detail else ""),
                              flush=True)
                        continue
                    entry["runs"][target].append(rec)
                    progress(sc, target, rec)
            print("   (%.0f s)" % (time.monotonic() - t0), flush=True)
    except KeyboardInterrupt:
        print("\nbench: interrupted", file=sys.stderr)
        cleanup()
        sys.exit(130)
    finally:
        cleanup()

    report.summarize(results)
    results["meta"]["elapsed_s"] = round(time.monotonic() - t_start, 1)
    text = report.table(results)
    print("\n" + text)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report.write_json(results, out / "latest.json")
    report.write_csv(results, out / "latest.csv")
    (out / "latest.txt").write_text(text + "\n")
    (out / "latest.md").write_text(report.markdown(results))
    why = report.write_svg(results, str(out / "latest.svg"))
    print("\nbench: wrote %s/latest.{json,csv,txt,md%s} in %.0f s"
          % (out, "" if why else ",svg", results["meta"]["elapsed_s"]))
    if why:
        print("bench: no chart: %s" % why)


if __name__ == "__main__":
    main()
