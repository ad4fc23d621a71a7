#!/usr/bin/python3
"""Full TLS handshakes with tickets on and off, in each proxy.

What a full handshake costs a proxy depends on whether it makes a stateless
ticket: OpenSSL 3.0 encodes the session and decodes it again to build one, the
client certificate's key included. rproxy's default (random ticket keys) makes
none while its session cache has room; nginx and HAProxy make one unless
tickets are off. This runs the bench's TLS listeners of each proxy (the first
with tickets, the second without: servers.py) and, on each, 4 x `openssl s_time
-new` for 2 s with TLS 1.2 and with TLS 1.3, the bench's client certificate;
proxies in turn, a fresh process per round. Prints the proxy CPU per full
handshake (utime+stime / handshakes), median and each round's;
docs/BENCHMARKS.md quotes it.

usage: tls_full.py [--rproxy PATH] [--rounds N]
"""

import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scenarios    # noqa: E402
import servers      # noqa: E402

SECONDS = 2
CASES = (("tickets on, TLS 1.2", "tls_port", "1.2"), ("tickets off, TLS 1.2", "tls_id_port", "1.2"),
         ("tickets on, TLS 1.3", "tls_port", "1.3"), ("tickets off, TLS 1.3", "tls_id_port", "1.3"))


def one_round(kind, tmp, pki, backend, rproxy_bin, out):
    p = servers.Proxy(kind, tmp, backend.port, rproxy_bin, tls=pki)
    try:
        for _ in range(20):                          # warm-up, as the bench does
            scenarios.tls_get(p.tls_port, pki)
        for name, port_attr, version in CASES:
            c0 = servers.cpu_seconds(p.pid)
            st = scenarios.s_time(getattr(p, port_attr), pki, "-new", SECONDS,
                                  scenarios.TLS_CLIENTS, version)
            cpu = servers.cpu_seconds(p.pid) - c0
            if st["errors"]:
                print("%s, %s: %s" % (kind, name, "; ".join(st["notes"])), file=sys.stderr)
            out.setdefault((kind, name), []).append(cpu * 1e6 / max(st["handshakes"], 1))
    finally:
        p.stop()


def main():
    args = servers.tool_args(__doc__)
    out = {}
    servers.tls_rounds("rproxy-tls-full-", args.rounds,
                       lambda kind, tmp, pki, backend:
                       one_round(kind, tmp, pki, backend, args.rproxy, out))
    print("proxy CPU per full handshake + GET, us (median; each round)")
    for name, _, _ in CASES:
        for kind in servers.TOOL_PROXIES:
            v = out.get((kind, name), [])
            if v:
                print("  %-22s %-8s %6.0f   (%s)" % (name, kind, statistics.median(v),
                                                   ", ".join("%.0f" % x for x in v)))


if __name__ == "__main__":
    main()
