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

The TLS cases (only when named in --cases: tls12-full, tls12-resumed, tls13-full,
tls13-resumed) count instructions per connection of the bench's TLS scenario (a
handshake with the client certificate, one GET, the close): one `openssl s_time`
for 3 s after a 2 s warm-up, and show where they go in OpenSSL: the RSA-2048
signature (EVP_DigestSign), the X25519 key exchange (EVP_PKEY_keygen and _derive),
signature checks (EVP_DigestVerify: the client's CertificateVerify and its
certificate's chain), certificate decoding (d2i_X509, OpenSSL 3.0's decoders),
sessions encoded and decoded (i2d_ / d2i_SSL_SESSION: tickets, shared caches), and
the rest (the proxy, the record layer, the key schedule, the session cache). A
resumed case includes the s_time process's first, full handshake (1 connection of
the 50-300 that 3 s under callgrind give).

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
from scenarios import s_time, wrk    # noqa: E402

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
# TLS cases: (title, s_time mode, TLS version)
TLS_CASES = {
    "tls12-full": ("TLS 1.2 full handshake + GET", "-new", "1.2"),
    "tls12-resumed": ("TLS 1.2 resumed handshake + GET", "-reuse", "1.2"),
    "tls13-full": ("TLS 1.3 full handshake + GET", "-new", "1.3"),
    "tls13-resumed": ("TLS 1.3 resumed handshake + GET", "-reuse", "1.3"),
}
TLS_WARMUP_S = 2
TLS_MEASURE_S = 3
# where a handshake's instructions go: (label, the OpenSSL functions whose inclusive
# instructions it counts); none of the functions runs inside another
TLS_PARTS = (
    ("RSA sign", ("EVP_DigestSign",)),
    ("X25519", ("EVP_PKEY_keygen", "EVP_PKEY_derive")),
    ("sig. checks", ("EVP_DigestVerify",)),
    ("cert. decoding", ("d2i_X509",)),
    ("sessions", ("i2d_SSL_SESSION", "d2i_SSL_SESSION")),
)
TARGETS = ("rproxy", "nginx", "haproxy")


def callgrind_total(path):
    """The instructions of one callgrind dump (its totals line)."""
    text = pathlib.Path(path).read_text(errors="replace")
    m = re.search(r"^(?:totals|summary):\s+(\d+)", text, re.M)
    if not m:
        raise RuntimeError("no totals in %s" % path)
    return int(m.group(1))


def inclusive(path, names):
    """Inclusive instructions of the named functions in a callgrind dump."""
    r = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100",
                        str(path)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                       timeout=120)
    found = dict.fromkeys(names, 0)
    for line in r.stdout.decode(errors="replace").splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+\S*:(\w+) ", line)
        if m and m.group(2) in found:
            found[m.group(2)] = max(found[m.group(2)], int(m.group(1).replace(",", "")))
    return found


def control(pid, flag):
    r = subprocess.run(["callgrind_control", flag, str(pid)], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("callgrind_control %s %d: %s" % (flag, pid, r.stdout.decode()))


def wait_dump(tmp, name, pid):
    """The last callgrind dump of pid (name.PID.N), once it is written."""
    dumps = sorted(pathlib.Path(tmp).glob("%s.%d.*" % (name, pid)))
    deadline = time.monotonic() + 30
    while not dumps and time.monotonic() < deadline:
        time.sleep(0.2)
        dumps = sorted(pathlib.Path(tmp).glob("%s.%d.*" % (name, pid)))
    if not dumps:
        raise RuntimeError("%s: no callgrind dump" % name)
    return dumps[-1]


def under_callgrind(kind, case, tmp, backend, rproxy_bin, load, warmup_s, measure_s, **kw):
    """Starts kind under callgrind (kw: more of servers.Proxy's arguments), runs
    load(proxy, warmup_s), zeroes the counters, runs load(proxy, measure_s) and
    dumps them. Returns what the measured load returned and the dump's path."""
    out = pathlib.Path(tmp) / ("cg-%s-%s" % (kind, case))
    wrap = ["valgrind", "--tool=callgrind", "--callgrind-out-file=%s.%%p" % out]
    proxy = servers.Proxy(kind, tmp, backend.port, rproxy_bin, wrap=wrap, ready_timeout=60.0,
                          **kw)
    try:
        load(proxy, warmup_s)
        control(proxy.pid, "-z")
        res = load(proxy, measure_s)
        control(proxy.pid, "-d")
        return res, wait_dump(tmp, out.name, proxy.pid)
    finally:
        proxy.stop()


def measure(kind, case, tmp, backend, rproxy_bin):
    """Instructions per request of one proxy in one case."""
    _, path, headers, lua = CASES[case]
    w, dump = under_callgrind(
        kind, case, tmp, backend, rproxy_bin,
        lambda proxy, s: wrk(proxy.port, path, s, CONNS, headers=headers),
        WARMUP_S, MEASURE_S, lua=lua)
    if w["errors"]:
        raise RuntimeError("%s %s: %d failed requests" % (kind, case, w["errors"]))
    return callgrind_total(dump) / w["requests"], w["requests"]


def measure_tls(kind, case, tmp, backend, rproxy_bin, pki):
    """Instructions per TLS connection of one proxy, and their parts."""
    _, mode, version = TLS_CASES[case]
    st, dump = under_callgrind(
        kind, case, tmp, backend, rproxy_bin,
        lambda proxy, s: s_time(proxy.tls_port, pki, mode, s, 1, version),
        TLS_WARMUP_S, TLS_MEASURE_S, tls=pki)
    n = st["handshakes"]
    if st["errors"] or n == 0 or (mode == "-reuse" and st["resumed"] != n):
        raise RuntimeError("%s %s: %s" % (kind, case, st["notes"] or "no resumption"))
    found = inclusive(dump, [f for _, fs in TLS_PARTS for f in fs])
    parts = [sum(found[f] for f in fs) / n for _, fs in TLS_PARTS]
    return callgrind_total(dump) / n, n, parts


def tls_table(cases, targets, results):
    """The TLS cases' instructions per connection and their parts, one row each."""
    print()
    print("| case | proxy | instructions | " + " | ".join(p for p, _ in TLS_PARTS)
          + " | the rest |")
    print("|---|---|--:|" + "--:|" * (len(TLS_PARTS) + 1))
    for case in cases:
        for kind in targets:
            total, parts = results[(case, kind)]
            row = ["%.2fM" % (total / 1e6)] + ["%.2fM" % (x / 1e6) for x in parts]
            row.append("%.2fM" % ((total - sum(parts)) / 1e6))
            print("| %s | %s | %s |" % (TLS_CASES[case][0], kind, " | ".join(row)))


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rproxy", default=str(REPO / "build" / "rproxy"),
                    help="the rproxy binary (default: build/rproxy)")
    ap.add_argument("--targets", default=",".join(TARGETS),
                    help="comma-separated subset of %s" % ",".join(TARGETS))
    ap.add_argument("--cases", default=",".join(CASES),
                    help="comma-separated subset of %s" % ",".join(list(CASES) + list(TLS_CASES)))
    args = ap.parse_args()
    args.targets = [t for t in args.targets.split(",") if t]
    args.cases = [c for c in args.cases.split(",") if c]
    bad = [t for t in args.targets if t not in TARGETS] + \
          [c for c in args.cases if c not in CASES and c not in TLS_CASES]
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
    results, tls_results = {}, {}
    plain = [c for c in args.cases if c in CASES]
    tls = [c for c in args.cases if c in TLS_CASES]
    try:
        backend = servers.Backend(tmp)
        for case in plain:
            for kind in args.targets:
                per_req, n = measure(kind, case, tmp, backend, args.rproxy)
                results[(case, kind)] = per_req
                print("  %-9s %-8s %8.0f instructions per request (%d requests)"
                      % (case, kind, per_req, n), flush=True)
        pki = servers.make_pki(tmp) if tls else None
        for case in tls:
            for kind in args.targets:
                total, n, parts = measure_tls(kind, case, tmp, backend, args.rproxy, pki)
                tls_results[(case, kind)] = (total, parts)
                print("  %-13s %-8s %11.0f instructions per connection (%d connections)"
                      % (case, kind, total, n), flush=True)
    finally:
        servers.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    if tls:
        tls_table(tls, args.targets, tls_results)
    if plain:
        plain_table(plain, args.targets, results)


def plain_table(cases, targets, results):
    """Instructions per request, one row per case, with the ratios to nginx."""
    print()
    ratios = [t for t in targets if t != "nginx"] if "nginx" in targets else []
    print("| case | " + " | ".join(targets)
          + "".join(" | %s / nginx" % t for t in ratios) + " |")
    print("|---|" + "--:|" * (len(targets) + len(ratios)))
    for case in cases:
        row = ["%.0f" % results[(case, t)] for t in targets]
        row += ["%.2f" % (results[(case, t)] / results[(case, "nginx")]) for t in ratios]
        print("| %s | %s |" % (CASES[case][0], " | ".join(row)))

if __name__ == "__main__":
    main()
