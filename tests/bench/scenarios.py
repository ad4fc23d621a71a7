"""The scenarios of the benchmark and the clients that drive them.

A scenario measures one target at a time: a proxy ("rproxy", "nginx", "haproxy")
started fresh for the run, or "direct" (the backend itself: the ceiling). Its
measure() returns a dict of metrics, plus "errors" (failed or non-2xx requests)
and "notes" (anything odd seen while measuring). Clients run on the load CPU.
"""

import asyncio
import os
import re
import resource
import shutil
import socket
import ssl
import subprocess
import threading
import time

import servers
from servers import (LOAD_CPU, PROXY_CPU, BIG_SIZE, SMALL_BODY, cpu_busy_pct, cpu_seconds,
                     cpu_ticks, mem_kib)

HERE = servers.HERE
PROXIES = ("rproxy", "nginx", "haproxy")


class NotApplicable(Exception):
    """The target cannot run this scenario (missing feature): str() is the short
    reason shown in the table, detail what was seen."""

    def __init__(self, reason, detail=""):
        super().__init__(reason)
        self.detail = detail


# ---- wrk -------------------------------------------------------------------

def wrk(port, path, duration, conns, headers=(), script=None, env=None, scheme="http"):
    """Runs wrk (one thread, pinned to the load CPU) and returns what it measured:
    requests, seconds, req_s, errors (socket errors + non-2xx/3xx), load_pct (how busy
    the load CPU was, wrk and the backend together) and the raw text."""
    argv = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", "-c%d" % conns, "-d%ds" % duration,
            "--latency", "--timeout", "5s"]
    for h in headers:
        argv += ["-H", h]
    if script:
        argv += ["-s", str(script)]
    argv.append("%s://127.0.0.1:%d%s" % (scheme, port, path))
    e = dict(os.environ)
    e.update(env or {})
    load0 = cpu_ticks(LOAD_CPU)
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=duration + 30, env=e)
    load_pct = cpu_busy_pct(load0, cpu_ticks(LOAD_CPU))
    out = r.stdout.decode(errors="replace")
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b", out)
    if r.returncode != 0 or not m:
        raise RuntimeError("wrk failed (exit %d):\n%s" % (r.returncode, out[-1500:]))
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[m.group(3)]
    res = {"requests": int(m.group(1)), "seconds": float(m.group(2)) * scale, "raw": out,
           "load_pct": load_pct}
    res["req_s"] = res["requests"] / res["seconds"]
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    res["errors"] = errors
    res["bench"] = {k: float(v) for k, v in re.findall(r"^BENCH (\S+) ([\d.]+)$", out, re.M)}
    return res


def wrk_notes(w):
    """The error lines of a wrk run, for the notes of a result."""
    return [l.strip() for l in w["raw"].splitlines()
            if "Socket errors" in l or "Non-2xx" in l]


# ---- scenarios ---------------------------------------------------------------

class Scenario:
    id = ""
    title = ""
    targets = PROXIES + ("direct",)
    lua = False                  # start the proxies with the Lua policy
    warmup = True                # 1 s of wrk -c64 before measuring
    bulk = False                 # against bulk.py instead of the backend nginx
    # metrics: (key, label, unit, higher_is_better, shown_for_direct)
    metrics = ()
    labels = {}                  # target -> name in the tables, when not the usual one

    def describe(self, ctx):
        return self.title

    def prepare(self, ctx, target, rnd):
        """Before target is started for round rnd: returns extra keyword arguments
        of servers.Proxy, or raises NotApplicable."""
        return {}

    def check(self, ctx, proxy):
        """Raises NotApplicable if proxy (just started) cannot run the scenario."""

    def measure(self, ctx, target, port, pid):
        raise NotImplementedError


def _wrk_metrics(w, pid, cpu_before):
    """req/s, CPU us per request and CPU busy % of a wrk run against pid."""
    cpu = cpu_seconds(pid) - cpu_before
    return {"req_s": w["req_s"], "cpu_us": cpu * 1e6 / max(w["requests"], 1),
            "cpu_pct": 100.0 * cpu / w["seconds"], "load_pct": w["load_pct"],
            "errors": w["errors"], "notes": wrk_notes(w)}


# The load CPU's share: when it is saturated and the proxy's core is not, req/s measure
# the load side, and CPU per request says more about the proxy.
LOAD_METRIC = ("load_pct", "load CPU busy (CPU 1: wrk and the backend; 100 = saturated)", "%",
               None, True)


class KeepAlive(Scenario):
    id = "keepalive"
    title = "small GET (1 KiB), keep-alive"
    metrics = (("req_s", "req/s", "req/s", True, True),
               ("cpu_us", "proxy CPU per request", "us", False, True),
               ("cpu_pct", "proxy CPU busy (100 = its core saturated)", "%", None, True),
               LOAD_METRIC)

    def describe(self, ctx):
        return ("%s: wrk -t1 -c64 -d%ds GET /small; CPU = utime+stime of the proxy (of the "
                "backend for direct) over the run" % (self.title, ctx.duration))

    def measure(self, ctx, target, port, pid):
        c0 = cpu_seconds(pid)
        w = wrk(port, "/small", ctx.duration, 64)
        return _wrk_metrics(w, pid, c0)


class Close(Scenario):
    id = "close"
    title = "small GET (1 KiB), Connection: close"
    metrics = (("req_s", "req/s", "req/s", True, True),
               ("cpu_us", "proxy CPU per request", "us", False, True),
               ("cpu_pct", "proxy CPU busy (100 = its core saturated)", "%", None, True),
               LOAD_METRIC)

    def describe(self, ctx):
        return ("%s: wrk -t1 -c64 -d%ds -H 'Connection: close' GET /small; CPU = utime+stime "
                "of the proxy (of the backend for direct) over the run"
                % (self.title, ctx.duration))

    def measure(self, ctx, target, port, pid):
        c0 = cpu_seconds(pid)
        w = wrk(port, "/small", ctx.duration, 64, headers=("Connection: close",))
        return _wrk_metrics(w, pid, c0)


class Latency(Scenario):
    id = "latency"
    title = "latency at a fixed moderate rate"
    conns = 40
    delay_ms = 8
    metrics = (("p50_us", "p50", "us", False, True),
               ("p99_us", "p99", "us", False, True),
               ("p999_us", "p99.9", "us", False, True),
               ("req_s", "rate", "req/s", True, True))

    def describe(self, ctx):
        return ("%s: wrk -t1 -c%d -d%ds GET /small, each connection pausing a random time "
                "(exponential, mean %d ms) after each response (pace.lua): ~%d req/s; "
                "percentiles from wrk, closed loop (not corrected for coordinated omission)"
                % (self.title, self.conns, ctx.duration, self.delay_ms,
                   self.conns * 1000 // self.delay_ms))

    def measure(self, ctx, target, port, pid):
        w = wrk(port, "/small", ctx.duration, self.conns, script=HERE / "pace.lua",
                env={"BENCH_DELAY_MS": str(self.delay_ms)})
        b = w["bench"]
        return {"p50_us": b.get("p50"), "p99_us": b.get("p99"), "p999_us": b.get("p99.9"),
                "req_s": w["req_s"], "errors": w["errors"], "notes": wrk_notes(w)}


class LuaHook(Scenario):
    id = "lua"
    title = "small GET (1 KiB), keep-alive, Lua policy"
    lua = True
    metrics = (("req_s", "req/s", "req/s", True, True),
               ("cpu_us", "proxy CPU per request", "us", False, True),
               ("cpu_pct", "proxy CPU busy (100 = its core saturated)", "%", None, True),
               LOAD_METRIC)

    def describe(self, ctx):
        return ("%s: wrk -t1 -c64 -d%ds -H 'X-Tenant: acme' GET /api/v1/small; the policy reads "
                "X-Tenant, rewrites ^/api/v1/(.*) to /%%1, adds X-Bench-Hook (nginx: "
                "rewrite_by_lua_file hook_nginx.lua, LuaJIT; haproxy: http-request "
                "lua.bench_hook, hook_haproxy.lua; rproxy: on_request in hook.lua); direct: "
                "GET /small" % (self.title, ctx.duration))

    def check(self, ctx, proxy):
        if proxy.kind == "nginx" and not servers.nginx_has_lua():
            raise NotApplicable("n/a (nginx Lua module not installed)")
        if proxy.kind == "rproxy":
            ok, out = servers.check_config("rproxy", ctx.rproxy_bin, ctx.tmp, lua=True)
            if not ok:
                raise NotApplicable("n/a (no Lua hooks yet)",
                                    "rproxy -t refused the hook: %s" % out)
        try:
            status, _, body = servers.http_get(proxy.port, "/api/v1/echo",
                                               {"X-Tenant": "acme"})
        except OSError as e:
            raise NotApplicable("n/a (hook check failed)", str(e))
        want = b"uri=/echo hook=acme\n"
        if status != 200 or body != want:
            why = "status %d, body %r, want %r" % (status, body[:80], want)
            if proxy.kind == "rproxy":
                raise NotApplicable("n/a (no Lua hooks yet)", "`rproxy -t` accepts a config "
                                    "with on_request, but the hook did not run: " + why)
            raise NotApplicable("n/a (hook check failed)", why)

    def measure(self, ctx, target, port, pid):
        c0 = cpu_seconds(pid)
        path = "/small" if target == "direct" else "/api/v1/small"
        w = wrk(port, path, ctx.duration, 64, headers=("X-Tenant: acme",))
        return _wrk_metrics(w, pid, c0)


# ---- large transfers ---------------------------------------------------------

class _Http:
    """A minimal keep-alive HTTP/1.1 client for 100 MiB bodies: reads into one
    reusable buffer, sends uploads with sendfile(2)."""

    BUF = 1 << 20

    def __init__(self, port):
        self.port = port
        self.s = None
        self.buf = b""
        self.mem = bytearray(self.BUF)
        self.view = memoryview(self.mem)

    def connect(self):
        self.close()
        self.s = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        if self.s:
            self.s.close()
            self.s = None

    def _fill(self):
        n = self.s.recv_into(self.mem)
        if n == 0:
            raise EOFError("connection closed by peer")
        self.buf += self.view[:n]

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _discard(self, n, keep=False):
        """Reads n body bytes; returns them when keep (small bodies only)."""
        out = []
        take = min(n, len(self.buf))
        if keep:
            out.append(self.buf[:take])
        self.buf = self.buf[take:]
        n -= take
        while n > 0:
            got = self.s.recv_into(self.view[:min(n, self.BUF)])
            if got == 0:
                raise EOFError("connection closed by peer in a body")
            if keep:
                out.append(bytes(self.view[:got]))
            n -= got
        return b"".join(out)

    def _response(self, keep_body):
        status = int(self._line().split()[1])
        hdrs = {}
        while True:
            line = self._line()
            if not line:
                break
            k, _, v = line.partition(b":")
            hdrs[k.strip().lower()] = v.strip().lower()
        body, total = [], 0
        if hdrs.get(b"transfer-encoding") == b"chunked":
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():
                        pass
                    break
                body.append(self._discard(size, keep_body))
                self._discard(2)
                total += size
        else:
            total = int(hdrs.get(b"content-length", b"0"))
            body.append(self._discard(total, keep_body))
        if hdrs.get(b"connection") == b"close":
            self.close()
        return status, total, b"".join(body)

    def download(self, path):
        if not self.s:
            self.connect()
        self.s.sendall(b"GET %s HTTP/1.1\r\nHost: bench.local\r\n\r\n" % path.encode())
        return self._response(False)

    def upload(self, path, fileobj, size):
        if not self.s:
            self.connect()
        self.s.sendall(b"POST %s HTTP/1.1\r\nHost: bench.local\r\nContent-Length: %d\r\n"
                       b"Content-Type: application/octet-stream\r\n\r\n" % (path.encode(), size))
        fileobj.seek(0)
        self.s.sendfile(fileobj, 0, size)
        return self._response(True)


class _RssSampler(threading.Thread):
    """Samples VmRSS of pid every 5 ms; peak is the largest value seen (KiB)."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = mem_kib(pid)
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                self.peak = max(self.peak, mem_kib(self.pid))
            except OSError:
                return
            self.halt.wait(0.005)

    def stop(self):
        self.halt.set()
        self.join()
        return self.peak


class Large(Scenario):
    id = "large"
    title = "100 MiB download and upload"
    warmup = False
    bulk = True
    metrics = (("down_MBps", "download", "MB/s", True, True),
               ("up_MBps", "upload", "MB/s", True, True),
               ("down_cpu_pct", "proxy CPU busy in downloads", "%", None, False),
               ("up_cpu_pct", "proxy CPU busy in uploads", "%", None, False),
               ("rss_growth_kib", "proxy RSS growth", "KiB", False, False),
               ("hwm_kib", "proxy peak RSS (VmHWM)", "KiB", False, False))

    def describe(self, ctx):
        return ("%s: one keep-alive client (Python, sendfile for uploads) repeats GET /big "
                "for %.1f s, then POST /upload for %.1f s; backend bulk.py (sendfile out, "
                "splice into /dev/null in); MB/s = 10^6 bytes/s; RSS growth = "
                "peak VmRSS sampled every 5 ms minus VmRSS before the transfers"
                % (self.title, ctx.duration / 2, ctx.duration / 2))

    def measure(self, ctx, target, port, pid):
        proxy = target != "direct"
        notes, errors = [], 0
        c = _Http(port)
        c.connect()
        # one small request first, so that the baseline includes a used connection
        c.download("/small")
        rss0 = mem_kib(pid)
        sampler = _RssSampler(pid) if proxy else None
        if sampler:
            sampler.start()
        res = {}
        try:
            for kind in ("down", "up"):
                moved, t0, c0 = 0, time.monotonic(), cpu_seconds(pid)
                end = t0 + ctx.duration / 2
                while True:
                    n = 0
                    try:
                        if kind == "down":
                            status, got, _ = c.download("/big")
                            ok = status == 200 and got == BIG_SIZE
                            what = "status %d, %d bytes" % (status, got)
                        else:
                            with open(ctx.backend.big, "rb") as f:
                                status, _, body = c.upload("/upload", f, BIG_SIZE)
                            ok = status == 200 and body.strip() == b"%d" % BIG_SIZE
                            what = "status %d, body %r" % (status, body[:40])
                        if ok:
                            n = BIG_SIZE
                        else:
                            errors += 1
                            notes.append("%s: %s" % (kind, what))
                    except (OSError, EOFError, ValueError, IndexError) as e:
                        errors += 1
                        notes.append("%s: %s" % (kind, e))
                        c.close()
                    if errors > 5:
                        raise RuntimeError("too many failed transfers: %s" % "; ".join(notes))
                    moved += n
                    if time.monotonic() >= end:
                        break
                spent = time.monotonic() - t0
                res[kind + "_MBps"] = moved / spent / 1e6
                res[kind + "_cpu_pct"] = 100 * (cpu_seconds(pid) - c0) / spent if proxy else None
        finally:
            c.close()
            peak = sampler.stop() if sampler else None
        res["rss_growth_kib"] = (peak - rss0) if proxy else None
        res["hwm_kib"] = mem_kib(pid, "VmHWM") if proxy else None
        res["errors"] = errors
        res["notes"] = notes[:5]
        return res


# ---- idle connections ----------------------------------------------------------

async def _idle(port, n, limit, timeout, on_open):
    """Opens n connections; on each sends one keep-alive GET /small and reads the
    answer; calls on_open(count) while they are all held; closes them."""
    sem = asyncio.Semaphore(limit)
    held, failures = [], []
    req = b"GET /small HTTP/1.1\r\nHost: bench.local\r\n\r\n"

    async def one():
        async with sem:
            try:
                r, w = await asyncio.open_connection("127.0.0.1", port)
            except OSError as e:
                failures.append("connect: %s" % e)
                return
            try:
                w.write(req)
                head = await r.readuntil(b"\r\n\r\n")
                m = re.search(rb"(?i)content-length:\s*(\d+)", head)
                await r.readexactly(int(m.group(1)) if m else 0)
                if not head.startswith(b"HTTP/1.1 200"):
                    failures.append(head.split(b"\r\n")[0].decode(errors="replace"))
                held.append(w)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
                failures.append("request: %r" % e)
                w.close()

    tasks = [asyncio.ensure_future(one()) for _ in range(n)]
    try:
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        for t in pending:
            t.cancel()
        if pending:
            failures.append("%d connections not open after %.0f s" % (len(pending), timeout))
            await asyncio.gather(*pending, return_exceptions=True)
        await asyncio.sleep(1.0)          # let the proxy settle
        result = on_open(len(held))
    finally:
        for w in held:
            w.close()
        await asyncio.sleep(0.2)
    return result, failures


class Idle(Scenario):
    id = "idle"
    title = "idle keep-alive client connections"
    targets = PROXIES
    metrics = (("bytes_per_conn", "RSS per idle connection", "bytes", False, False),
               ("open", "connections held", "conns", None, False))

    def describe(self, ctx):
        return ("%s: %d connections (Python asyncio client), each after one GET /small, held "
                "idle; (VmRSS with them - VmRSS before) / connections" % (self.title, ctx.idle))

    def measure(self, ctx, target, port, pid):
        rss0 = mem_kib(pid)

        def on_open(count):
            return mem_kib(pid), count

        (rss1, count), failures = asyncio.run(_idle(port, ctx.idle, 200, 60.0, on_open))
        return {"bytes_per_conn": (rss1 - rss0) * 1024 / max(count, 1), "open": count,
                "rss_before_kib": rss0, "rss_after_kib": rss1,
                "errors": len(failures), "notes": failures[:5]}


# ---- TLS handshakes --------------------------------------------------------------

TLS_CLIENTS = 4                  # s_time processes at once, all on the load CPU
TLS_SECONDS = 2                  # s_time -time (at most --duration): a measurement lasts 1 s more
TLS_CIPHER = "ECDHE-RSA-AES256-GCM-SHA384"   # what all three pick anyway; pinned
TLS13_SUITE = "TLS_AES_256_GCM_SHA384"       # the same for TLS 1.3
TLS_VERSION_ARGS = {"1.2": ["-tls1_2", "-cipher", TLS_CIPHER],
                    "1.3": ["-tls1_3", "-ciphersuites", TLS13_SUITE]}
RSA_SPEED_SECONDS = 3


def tls_get(port, pki, client_cert=True, path="/small", timeout=5.0, tls13=False):
    """One TLS 1.2 GET, or TLS 1.3 (Python ssl, the bench's client certificate unless
    client_cert is false; the server's certificate verified against the bench CA).
    Returns (status, body, protocol, cipher)."""
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.load_verify_locations(pki["ca"])
    if tls13:
        c.minimum_version = ssl.TLSVersion.TLSv1_3
    else:
        c.maximum_version = ssl.TLSVersion.TLSv1_2
    if client_cert:
        c.load_cert_chain(pki["client_cert"], pki["client_key"])
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with c.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"GET %s HTTP/1.1\r\nHost: bench.local\r\nConnection: close\r\n\r\n"
                      % path.encode())
            data = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
                    break
                if not chunk:
                    break
                data += chunk
            proto, cipher = s.version(), s.cipher()[0]
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b"\r\n")[0].split()[1]) if head else 0
    return status, body, proto, cipher


def s_time(port, pki, mode, seconds, clients, version="1.2"):
    """Runs `clients` processes of `openssl s_time MODE` (-new: a new session per
    connection; -reuse: every connection resumes the process's session) at once on
    the load CPU, each making TLS `version` connections one after another, each with
    one HTTP/1.0 GET /small, for `seconds` (s_time stops at the end of a second: they
    are started just after a second begins). Returns handshakes, resumed (of them),
    seconds (wall), client_cpu (s, all of them), bytes_per_conn (the smallest),
    errors and notes."""
    argv = ["taskset", "-c", LOAD_CPU, "openssl", "s_time", "-connect", "127.0.0.1:%d" % port,
            mode] + TLS_VERSION_ARGS[version] + ["-cert", pki["client_cert"],
            "-key", pki["client_key"], "-no-CAfile", "-no-CApath", "-no-CAstore",
            "-www", "/small", "-time", str(seconds)]
    time.sleep((1.02 - time.time() % 1.0) % 1.0)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL) for _ in range(clients)]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=seconds + 60)[0].decode(errors="replace"))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = {"handshakes": 0, "resumed": 0, "seconds": wall, "errors": 0, "notes": [],
           "client_cpu": (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime),
           "bytes_per_conn": None}
    for p, out in zip(procs, outs):
        # the timed loop prints one character per connection: 'r' when resumed
        marker = "starting\n" if mode == "-reuse" else "seconds\n"
        loop = out.split(marker, 1)[1] if marker in out else ""
        loop = loop.split("\n", 1)[0]
        m = re.search(r"(\d+) connections in (\d+) real seconds, (\d+) bytes read per "
                      r"connection", out)
        n = int(m.group(1)) if m else len(loop)
        res["handshakes"] += n
        res["resumed"] += loop.count("r")
        if m:
            b = int(m.group(3))
            res["bytes_per_conn"] = b if res["bytes_per_conn"] is None \
                else min(b, res["bytes_per_conn"])
        if p.returncode != 0 or not m:
            res["errors"] += 1
            tail = [l for l in out.splitlines() if l.strip() and not set(l) <= set("r*23t")]
            res["notes"].append("s_time %s exit %d after %d connections: %s"
                                % (mode, p.returncode, n, " | ".join(tail[-3:])[:300]))
    return res


def rsa_speed():
    """`openssl speed -seconds 3 rsa2048` on the proxies' CPU: (sign/s, verify/s)."""
    argv = ["taskset", "-c", PROXY_CPU, "openssl", "speed", "-seconds",
            str(RSA_SPEED_SECONDS), "rsa2048"]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       stdin=subprocess.DEVNULL, timeout=8 * RSA_SPEED_SECONDS + 60)
    out = r.stdout.decode(errors="replace")
    m = re.search(r"^rsa\s+2048 bits\s+[\d.]+s\s+[\d.]+s\s+([\d.]+)\s+([\d.]+)\s*$", out, re.M)
    if r.returncode != 0 or not m:
        raise RuntimeError("openssl speed failed (exit %d):\n%s" % (r.returncode, out[-1500:]))
    return float(m.group(1)), float(m.group(2))


class Tls(Scenario):
    id = "tls"
    title = "TLS handshakes, RSA-2048, client certificate required"
    warmup = False
    labels = {"direct": "RSA-2048 sign (ceiling)"}
    metrics = (("full_hs", "full handshakes + GET (ceiling: RSA-2048 sign/s)", "hs/s",
                True, True),
               ("full_cpu_us", "proxy CPU per full handshake (ceiling: per signature)", "us",
                False, True),
               ("full_cpu_pct", "proxy CPU busy in full handshakes", "%", None, False),
               ("full_client_pct", "load generator CPU busy in full handshakes", "%", None,
                False),
               ("res_hs", "resumed handshakes (tickets on) + GET", "hs/s", True, False),
               ("res_cpu_us", "proxy CPU per resumed handshake", "us", False, False),
               ("res_cpu_pct", "proxy CPU busy in resumed handshakes", "%", None, False),
               ("res_client_pct", "load generator CPU busy in resumed handshakes", "%", None,
                False),
               ("res_x_full", "resumed / full handshakes/s of the same proxy", "x", True,
                False),
               ("resid_hs", "resumed handshakes (session id, tickets off) + GET", "hs/s", True,
                False),
               ("resid_cpu_us", "proxy CPU per session-id resumed handshake", "us", False,
                False),
               ("full13_hs", "TLS 1.3 full handshakes + GET", "hs/s", True, True),
               ("full13_cpu_us", "proxy CPU per TLS 1.3 full handshake", "us", False, False),
               ("res13_hs", "TLS 1.3 resumed handshakes + GET", "hs/s", True, False),
               ("res13_cpu_us", "proxy CPU per TLS 1.3 resumed handshake", "us", False,
                False))

    def describe(self, ctx):
        return ("%s: %d x `openssl s_time -new` (full handshakes: a new session each "
                "connection) then %d x `s_time -reuse` (each resumes its one session: the "
                "client offers tickets; the proxy answers as it is configured), then the "
                "same -reuse against a second listener without tickets (resumption by "
                "session id from the proxy's session cache), all -tls1_2 -cipher %s; then "
                "-new and -reuse again with -tls1_3 -ciphersuites %s; a P-256 client "
                "certificate, -time %d, all on CPU %s; each connection: handshake, GET "
                "/small (HTTP/1.0), close. "
                "CPU = utime+stime of the proxy / handshakes; load generator busy = s_time "
                "CPU / wall time (100 = CPU %s saturated, with the backend on it too). "
                "Ceiling: `openssl speed -seconds %d rsa2048` on CPU %s"
                % (self.title, TLS_CLIENTS, TLS_CLIENTS, TLS_CIPHER, TLS13_SUITE,
                   self.seconds(ctx), LOAD_CPU, LOAD_CPU, RSA_SPEED_SECONDS, PROXY_CPU))

    @staticmethod
    def seconds(ctx):
        return min(ctx.duration, TLS_SECONDS)

    def prepare(self, ctx, target, rnd):
        if not shutil.which("openssl"):
            raise NotApplicable("n/a (no openssl command)")
        if ctx.pki is None:
            ctx.pki = servers.make_pki(ctx.tmp)
        if target == "direct":
            return {}
        if target == "rproxy" and rnd == 0:
            ok, out = servers.check_config("rproxy", ctx.rproxy_bin, ctx.tmp, lua=False,
                                           tls=ctx.pki)
            if not ok:
                raise NotApplicable("n/a (rproxy -t refused the TLS listener)", out)
        return {"tls": ctx.pki}

    def check(self, ctx, proxy):
        port = proxy.tls_port
        try:
            status, body, proto, cipher = tls_get(port, ctx.pki)
        except (OSError, ValueError, IndexError) as e:
            raise NotApplicable("n/a (TLS check failed)", "GET /small with a client "
                                "certificate: %s: %s" % (type(e).__name__, e))
        if status != 200 or body != SMALL_BODY.encode() or proto != "TLSv1.2":
            raise NotApplicable("n/a (TLS check failed)", "GET /small with a client "
                                "certificate: status %d, %d body bytes, %s"
                                % (status, len(body), proto))
        # without a client certificate: refused in the handshake (rproxy, HAProxy) or by
        # an error status (nginx answers 400 "No required SSL certificate was sent")
        try:
            status, _, _, _ = tls_get(port, ctx.pki, client_cert=False)
        except (OSError, ValueError, IndexError):
            status = None
        if status == 200:
            raise NotApplicable("n/a (client certificate not required)",
                                "a client without a certificate got 200")
        status, body, _, _ = tls_get(proxy.tls_id_port, ctx.pki)
        if status != 200 or body != SMALL_BODY.encode():
            raise NotApplicable("n/a (TLS check failed)", "the listener without tickets "
                                "answered %d, %d body bytes" % (status, len(body)))
        status, body, proto, _ = tls_get(port, ctx.pki, tls13=True)
        if status != 200 or body != SMALL_BODY.encode() or proto != "TLSv1.3":
            raise NotApplicable("n/a (TLS check failed)", "GET /small over TLS 1.3: status "
                                "%d, %d body bytes, %s" % (status, len(body), proto))

    def measure(self, ctx, target, port, pid):
        if target == "direct":
            sign, verify = rsa_speed()
            return {"full_hs": sign, "full_cpu_us": 1e6 / sign, "verify_s": verify}
        tls_port = ctx.proxy.tls_port
        for _ in range(20):                      # warm-up: 20 full handshakes
            tls_get(tls_port, ctx.pki)
        res, errors, notes = {}, 0, []
        for kind, mode, lport, version in (
                ("full", "-new", tls_port, "1.2"), ("res", "-reuse", tls_port, "1.2"),
                ("resid", "-reuse", ctx.proxy.tls_id_port, "1.2"),
                ("full13", "-new", tls_port, "1.3"), ("res13", "-reuse", tls_port, "1.3")):
            c0 = cpu_seconds(pid)
            st = s_time(lport, ctx.pki, mode, self.seconds(ctx), TLS_CLIENTS, version)
            cpu = cpu_seconds(pid) - c0
            n = st["handshakes"] if mode == "-new" else st["resumed"]
            errors += st["errors"]
            notes += st["notes"]
            if mode == "-reuse" and st["handshakes"] > st["resumed"]:
                errors += st["handshakes"] - st["resumed"]
                notes.append("%d of %d -reuse connections were not resumed"
                             % (st["handshakes"] - st["resumed"], st["handshakes"]))
            if mode == "-new" and st["resumed"]:
                notes.append("%d of %d -new connections were resumed"
                             % (st["resumed"], st["handshakes"]))
            b = st["bytes_per_conn"]
            if b is not None and b < len(SMALL_BODY):
                errors += 1
                notes.append("%s: %d bytes read per connection, less than the 1 KiB body"
                             % (mode, b))
            res[kind + "_hs"] = n / st["seconds"]
            res[kind + "_cpu_us"] = cpu * 1e6 / max(n, 1)
            res[kind + "_cpu_pct"] = 100.0 * cpu / st["seconds"]
            res[kind + "_client_pct"] = 100.0 * st["client_cpu"] / st["seconds"]
            res[kind + "_handshakes"] = st["handshakes"]
        res["res_x_full"] = res["res_hs"] / res["full_hs"] if res["full_hs"] else None
        res["errors"] = errors
        res["notes"] = notes[:5]
        return res


ALL = (KeepAlive(), Close(), Large(), Idle(), Latency(), LuaHook(), Tls())
BY_ID = {s.id: s for s in ALL}
