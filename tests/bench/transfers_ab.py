#!/usr/bin/python3
"""100 MiB downloads or uploads through several proxies in alternating rounds: MB/s and
the proxy's CPU per MB, for comparing two rproxy binaries (or rproxy and a peer) on a
noisy machine.

Each round starts every proxy fresh on CPU 0 before the bench's bulk backend (CPU 1),
and one keep-alive client (CPU 1, the bench's) repeats the transfer for --seconds. The
rounds alternate the proxies (A B C, A B C, ...); the medians come last. --syscalls
counts the proxy's system calls over 5 transfers with `perf stat` instead (syscall
tracepoints: the pattern at full speed, which strace would change).

usage: transfers_ab.py [--up] [--rounds N] [--seconds S] [--syscalls] PROXY...
PROXY: rproxy[:BINARY], nginx or haproxy (BINARY defaults to build/rproxy)
"""

import os
import pathlib
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servers    # noqa: E402
from scenarios import _Http    # noqa: E402

SYSCALLS = ("readv", "recvfrom", "writev", "sendto", "sendmsg", "epoll_wait", "epoll_ctl")


def transfer(c, backend, up):
    """One 100 MiB transfer on the client c; the bytes moved."""
    if up:
        with open(backend.big, "rb") as f:
            status, _, body = c.upload("/upload", f, servers.BIG_SIZE)
        ok = status == 200 and body.strip() == b"%d" % servers.BIG_SIZE
    else:
        status, got, _ = c.download("/big")
        ok = status == 200 and got == servers.BIG_SIZE
    if not ok:
        raise RuntimeError("transfer failed: status %d" % status)
    return servers.BIG_SIZE


def start(spec, tmp, backend):
    p = servers.ab_proxy(spec, tmp, backend.bulk_port)
    c = _Http(p.port)
    c.connect()
    c.download("/small")
    return p, c


def one_round(spec, tmp, backend, args):
    """(MB/s, proxy CPU us per MB, CPU 1 busy %) of one proxy for args.seconds."""
    p, c = start(spec, tmp, backend)
    try:
        load0, cpu0, t0 = servers.cpu_ticks(servers.LOAD_CPU), servers.cpu_seconds(p.pid), \
            time.monotonic()
        moved = 0
        while time.monotonic() - t0 < args.seconds:
            moved += transfer(c, backend, args.up)
        dt = time.monotonic() - t0
        cpu = servers.cpu_seconds(p.pid) - cpu0
        busy1 = servers.cpu_busy_pct(load0, servers.cpu_ticks(servers.LOAD_CPU))
    finally:
        c.close()
        p.stop()
    return moved / dt / 1e6, cpu * 1e6 / (moved / 1e6), busy1


def syscalls(spec, tmp, backend, args):
    """The proxy's system calls over 5 transfers, by name."""
    p, c = start(spec, tmp, backend)
    try:
        return servers.count_syscalls(
            p.pid, SYSCALLS, lambda: [transfer(c, backend, args.up) for _ in range(5)],
            pathlib.Path(tmp) / "perf-stat.txt")
    finally:
        c.close()
        p.stop()


def main():
    args = servers.ab_args(__doc__, 3.0, "perf stat the system calls of 5 transfers instead",
                           [(("--up",), dict(action="store_true",
                                             help="uploads instead of downloads"))])
    what = "upload" if args.up else "download"
    runs = servers.ab_rounds(
        args, lambda spec, tmp, backend: one_round(spec, tmp, backend, args),
        lambda r, spec, res: "round %d  %-40s %s %7.1f MB/s  %6.0f us/MB  CPU 1 %3.0f %%"
        % ((r, spec, what) + res),
        lambda spec, tmp, backend: "  ".join(
            "%s %s" % (k, v) for k, v in syscalls(spec, tmp, backend, args).items()))
    if not runs:
        return
    print("medians of %d rounds:" % args.rounds)
    for spec, v in runs.items():
        print("  %-40s %7.1f MB/s  %6.0f us/MB" % (spec, statistics.median(x[0] for x in v),
                                                  statistics.median(x[1] for x in v)))


if __name__ == "__main__":
    main()
