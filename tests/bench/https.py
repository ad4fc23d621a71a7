#!/usr/bin/python3
"""Small GETs over HTTPS keep-alive connections, in each proxy.

The bench's `tls` scenario measures handshakes: what a proxy does once per
connection. Most HTTPS traffic is requests on kept-alive connections, where a
proxy decrypts the request, encrypts the response and proxies in between. wrk
cannot present a client certificate, so this runs on each proxy's third TLS
listener (servers.py: the bench's certificate, no client certificate asked)
`wrk -t1 -c64 -d5s` GET /small, TLS as wrk and the proxy agree (TLS 1.3), the
backend and wrk on CPU 1 as in the bench; proxies in turn, a fresh process per
round, 1 s of warm-up. Prints req/s, proxy CPU per request (utime+stime /
requests) and how busy the load CPU was: medians and each round's, and the
ratios to nginx. docs/BENCHMARKS.md quotes it.

usage: https.py [--rproxy PATH] [--rounds N] [--duration S]
"""

import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scenarios    # noqa: E402
import servers      # noqa: E402

CONNS = 64


def https_wrk(port, seconds):
    """wrk over HTTPS (it does not verify the certificate)."""
    w = scenarios.wrk(port, "/small", seconds, CONNS, scheme="https")
    if w["errors"]:
        raise RuntimeError("wrk: %d failed requests:\n%s" % (w["errors"], w["raw"][-800:]))
    return w


def one_round(kind, tmp, pki, backend, args, out):
    p = servers.Proxy(kind, tmp, backend.port, args.rproxy, tls=pki)
    try:
        https_wrk(p.https_port, 1)                   # warm-up, as the bench does
        c0 = servers.cpu_seconds(p.pid)
        w = https_wrk(p.https_port, args.duration)
        cpu = servers.cpu_seconds(p.pid) - c0
        out.setdefault(kind, []).append((w["req_s"], cpu * 1e6 / w["requests"], w["load_pct"]))
        print("  %-8s %8.0f req/s %6.1f us  load CPU %3.0f %%"
              % (kind, w["req_s"], cpu * 1e6 / w["requests"], w["load_pct"]), flush=True)
    finally:
        p.stop()


def main():
    args = servers.tool_args(__doc__, duration=5)
    os.sched_setaffinity(0, {int(servers.LOAD_CPU)})
    out = {}
    servers.tls_rounds("rproxy-https-", args.rounds,
                       lambda kind, tmp, pki, backend:
                       one_round(kind, tmp, pki, backend, args, out))
    med = {k: [statistics.median(x[i] for x in v) for i in range(3)] for k, v in out.items()}
    print("HTTPS keep-alive GET /small, medians of %d rounds x %d s" % (args.rounds, args.duration))
    print("  %-8s %10s %12s %9s %16s %16s" % ("", "req/s", "CPU/req us", "load CPU",
                                              "req/s x nginx", "CPU x nginx"))
    for kind in servers.TOOL_PROXIES:
        if kind in med:
            rs, cpu, load = med[kind]
            n = med.get("nginx")
            print("  %-8s %10.0f %12.1f %8.0f%% %16s %16s"
                  % (kind, rs, cpu, load, "%.2f" % (rs / n[0]) if n else "-",
                     "%.2f" % (cpu / n[1]) if n else "-"))


if __name__ == "__main__":
    main()
