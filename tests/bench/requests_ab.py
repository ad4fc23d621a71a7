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

import os
import pathlib
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servers    # noqa: E402
from scenarios import wrk    # noqa: E402

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
    path, headers, lua = CASES[case]
    p = servers.ab_proxy(spec, tmp, backend.port, lua=lua)
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
    args = servers.ab_args(__doc__, 4, "perf stat the system calls per request instead",
                           [(("--case",), dict(choices=sorted(CASES), default="keepalive"))])
    runs = servers.ab_rounds(
        args, lambda spec, tmp, backend: one_round(spec, tmp, backend, args),
        lambda r, spec, res: "round %d  %-32s %8.0f req/s  user %5.1f + system %5.1f us/req"
        "  CPU 1 %3.0f %%" % ((r, spec) + res),
        lambda spec, tmp, backend: syscalls_line(syscalls(spec, tmp, backend, args)))
    if not runs:
        return
    print("medians of %d rounds (%s):" % (args.rounds, args.case))
    for spec, v in runs.items():
        user, system = statistics.median(x[1] for x in v), statistics.median(x[2] for x in v)
        total = statistics.median(x[1] + x[2] for x in v)
        print("  %-32s %8.0f req/s  user %5.1f + system %5.1f = %5.1f us/req (system %2.0f %%)"
              % (spec, statistics.median(x[0] for x in v), user, system, total,
                 100 * system / (user + system)))


def syscalls_line(per):
    """All system calls per request, then each one made at least once in 2,000."""
    return "all %.2f  %s" % (per.pop("all"), "  ".join(
        "%s %.3f" % (k, v) for k, v in per.items() if v >= 0.0005))


if __name__ == "__main__":
    main()
