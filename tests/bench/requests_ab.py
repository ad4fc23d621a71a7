#!/usr/bin/python3
"""Small requests through several proxies in alternating rounds: req/s and the
proxy's CPU per request split into user and system time, for comparing two rproxy
binaries (or rproxy and its peers) on a noisy machine, and for seeing where a
proxy's time goes.

Each round starts every proxy fresh on CPU 0 before the bench's backend (CPU 1),
warms it with 1 s of wrk, then measures `wrk -t1 -c64` for --seconds (the bench's
keepalive, close or lua case). User time is the proxy's own code; system time is
the kernel's work for it: its system calls and, on loopback, the TCP receive path
of each peer it sends to, which runs in the sender's system call. The rounds
alternate the proxies (A B C, A B C, ...); the medians come last. --syscalls counts
the proxy's system calls per request with `perf stat` instead (one run each).

usage: requests_ab.py [--case keepalive|close|lua] [--rounds N] [--seconds S]
                      [--syscalls] PROXY...
PROXY: rproxy[:BINARY], nginx or haproxy (BINARY defaults to build/rproxy)
"""

import argparse
import os
import pathlib
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servers    # noqa: E402
from scenarios import wrk    # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
CONNS = 64
# case: (path, wrk headers, proxies load the bench's Lua policy)
CASES = {
    "keepalive": ("/small", (), False),
    "close": ("/small", ("Connection: close",), False),
    "lua": ("/api/v1/small", ("X-Tenant: acme",), True),
}
SYSCALLS = ("recvfrom", "read", "readv", "sendto", "sendmsg", "write", "writev",
            "epoll_wait", "epoll_ctl", "accept4", "close", "shutdown", "setsockopt")


def start(spec, tmp, backend, case):
    """The proxy of spec, started and warmed with 1 s of the case's load."""
    kind, _, binary = spec.partition(":")
    path, headers, lua = CASES[case]
    p = servers.Proxy(kind, tmp, backend.port, binary or str(REPO / "build" / "rproxy"),
                      lua=lua)
    wrk(p.port, path, 1, CONNS, headers=headers)
    return p


def load(port, case, seconds):
    path, headers, _ = CASES[case]
    w = wrk(port, path, seconds, CONNS, headers=headers)
    if w["errors"]:
        raise RuntimeError("%d failed requests" % w["errors"])
    return w


def one_round(spec, tmp, backend, args):
    """req/s, user and system us per request, CPU 1 busy % of one proxy."""
    p = start(spec, tmp, backend, args.case)
    try:
        user0, sys0 = servers.cpu_user_system(p.pid)
        w = load(p.port, args.case, args.seconds)
        user1, sys1 = servers.cpu_user_system(p.pid)
    finally:
        p.stop()
    n = w["requests"]
    return w["req_s"], (user1 - user0) * 1e6 / n, (sys1 - sys0) * 1e6 / n, w["load_pct"]


def syscalls(spec, tmp, backend, args):
    """The proxy's system calls per request over one measurement, by name."""
    p = start(spec, tmp, backend, args.case)
    done = {}
    try:
        counts = servers.count_syscalls(
            p.pid, SYSCALLS, lambda: done.update(load(p.port, args.case, args.seconds)),
            pathlib.Path(tmp) / "perf-stat.txt")
    finally:
        p.stop()
    return {k: v / done["requests"] for k, v in counts.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("proxies", nargs="+", metavar="PROXY")
    ap.add_argument("--case", choices=sorted(CASES), default="keepalive")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--syscalls", action="store_true",
                    help="perf stat the system calls per request instead")
    args = ap.parse_args()
    os.sched_setaffinity(0, {int(servers.LOAD_CPU)})
    with tempfile.TemporaryDirectory(prefix="rproxy-ab-") as tmp:
        backend = servers.Backend(tmp)
        try:
            if args.syscalls:
                for spec in args.proxies:
                    per = syscalls(spec, tmp, backend, args)
                    print("%-32s all %.2f  %s" % (spec, per.pop("all"), "  ".join(
                        "%s %.3f" % (k, v) for k, v in per.items() if v >= 0.0005)),
                        flush=True)
                return
            runs = {spec: [] for spec in args.proxies}
            for r in range(args.rounds):
                for spec in args.proxies:
                    res = one_round(spec, tmp, backend, args)
                    runs[spec].append(res)
                    print("round %d  %-32s %8.0f req/s  user %5.1f + system %5.1f us/req"
                          "  CPU 1 %3.0f %%" % ((r + 1, spec) + res), flush=True)
        finally:
            backend.stop()
    print("medians of %d rounds (%s):" % (args.rounds, args.case))
    for spec, v in runs.items():
        user, system = statistics.median(x[1] for x in v), statistics.median(x[2] for x in v)
        total = statistics.median(x[1] + x[2] for x in v)
        print("  %-32s %8.0f req/s  user %5.1f + system %5.1f = %5.1f us/req (system %2.0f %%)"
              % (spec, statistics.median(x[0] for x in v), user, system, total,
                 100 * system / (user + system)))


if __name__ == "__main__":
    main()
