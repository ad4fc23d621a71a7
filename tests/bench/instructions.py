#!/usr/bin/python3
"""Instructions per request of rproxy, nginx and HAProxy (`make bench-instr`).

The bench's requests/s and CPU per request move with the machine's noise; the
number of instructions a proxy runs per request does not. Each proxy runs under
`valgrind --tool=callgrind` (one worker, pinned to CPU 0, the bench's own
configuration and backend); wrk (one thread, 8 connections, on CPU 1) warms it
up for 2 s, the counters are zeroed (`callgrind_control -z`), wrk runs for 6 s
more, and the counters are dumped: instructions of the whole process / requests
wrk completed. Cases: small keep-alive GETs, the same with Connection: close,
and the bench's Lua policy (nginx: LuaJIT; HAProxy: its Lua 5.4). Prints a table
with the ratios to nginx; docs/BENCHMARKS.md quotes its figures.

usage: instructions.py [--rproxy PATH] [--targets rproxy,nginx,haproxy] [--cases ...]
"""

import argparse
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import servers    # noqa: E402
from scenarios import wrk    # noqa: E402

REPO = servers.HERE.parents[1]
WARMUP_S = 2
MEASURE_S = 6
CONNS = 8

# case: (title, path, wrk headers, proxies load the Lua policy)
CASES = {
    "keepalive": ("small GET (1 KiB), keep-alive", "/small", (), False),
    "close": ("small GET (1 KiB), Connection: close", "/small", ("Connection: close",), False),
    "lua": ("keep-alive with the Lua policy", "/api/v1/small", ("X-Tenant: acme",), True),
}
TARGETS = ("rproxy", "nginx", "haproxy")


def callgrind_total(path):
    """The instructions of one callgrind dump (its totals line)."""
    text = pathlib.Path(path).read_text(errors="replace")
    m = re.search(r"^(?:totals|summary):\s+(\d+)", text, re.M)
    if not m:
        raise RuntimeError("no totals in %s" % path)
    return int(m.group(1))


def control(pid, flag):
    r = subprocess.run(["callgrind_control", flag, str(pid)], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("callgrind_control %s %d: %s" % (flag, pid, r.stdout.decode()))


def measure(kind, case, tmp, backend, rproxy_bin):
    """Instructions per request of one proxy in one case."""
    _, path, headers, lua = CASES[case]
    out = pathlib.Path(tmp) / ("cg-%s-%s" % (kind, case))
    wrap = ["valgrind", "--tool=callgrind", "--callgrind-out-file=%s.%%p" % out]
    proxy = servers.Proxy(kind, tmp, backend.port, rproxy_bin, lua=lua, wrap=wrap,
                          ready_timeout=60.0)
    try:
        wrk(proxy.port, path, WARMUP_S, CONNS, headers=headers)
        control(proxy.pid, "-z")
        w = wrk(proxy.port, path, MEASURE_S, CONNS, headers=headers)
        control(proxy.pid, "-d")
        if w["errors"]:
            raise RuntimeError("%s %s: %d failed requests" % (kind, case, w["errors"]))
        dumps = sorted(pathlib.Path(tmp).glob("%s.%d.*" % (out.name, proxy.pid)))
        deadline = time.monotonic() + 30
        while not dumps and time.monotonic() < deadline:
            time.sleep(0.2)
            dumps = sorted(pathlib.Path(tmp).glob("%s.%d.*" % (out.name, proxy.pid)))
        if not dumps:
            raise RuntimeError("%s %s: no callgrind dump" % (kind, case))
        return callgrind_total(dumps[-1]) / w["requests"], w["requests"]
    finally:
        proxy.stop()


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rproxy", default=str(REPO / "build" / "rproxy"),
                    help="the rproxy binary (default: build/rproxy)")
    ap.add_argument("--targets", default=",".join(TARGETS),
                    help="comma-separated subset of %s" % ",".join(TARGETS))
    ap.add_argument("--cases", default=",".join(CASES),
                    help="comma-separated subset of %s" % ",".join(CASES))
    args = ap.parse_args()
    args.targets = [t for t in args.targets.split(",") if t]
    args.cases = [c for c in args.cases.split(",") if c]
    bad = [t for t in args.targets if t not in TARGETS] + \
          [c for c in args.cases if c not in CASES]
    if bad:
        ap.error("unknown target(s) or case(s): %s" % ",".join(bad))
    args.rproxy = os.path.abspath(args.rproxy)
    return args


def main():
    args = parse_args()
    missing = [t for t in ("valgrind", "callgrind_control", "wrk", "nginx", "haproxy",
                           "taskset") if not shutil.which(t)]
    if missing:
        sys.exit("bench-instr: missing %s: run tools/install-deps --bench" % ", ".join(missing))
    if "lua" in args.cases and "nginx" in args.targets and not servers.nginx_has_lua():
        sys.exit("bench-instr: nginx has no Lua module: run tools/install-deps --bench")
    os.sched_setaffinity(0, {int(servers.LOAD_CPU)})
    tmp = tempfile.mkdtemp(prefix="rproxy-instr-")
    results = {}
    try:
        backend = servers.Backend(tmp)
        for case in args.cases:
            for kind in args.targets:
                per_req, n = measure(kind, case, tmp, backend, args.rproxy)
                results[(case, kind)] = per_req
                print("  %-9s %-8s %8.0f instructions per request (%d requests)"
                      % (case, kind, per_req, n), flush=True)
    finally:
        servers.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    ratios = [t for t in args.targets if t != "nginx"] if "nginx" in args.targets else []
    print("| case | " + " | ".join(args.targets)
          + "".join(" | %s / nginx" % t for t in ratios) + " |")
    print("|---|" + "--:|" * (len(args.targets) + len(ratios)))
    for case in args.cases:
        row = ["%.0f" % results[(case, t)] for t in args.targets]
        row += ["%.2f" % (results[(case, t)] / results[(case, "nginx")]) for t in ratios]
        print("| %s | %s |" % (CASES[case][0], " | ".join(row)))

if __name__ == "__main__":
    main()
