"""The scenarios of the benchmark and the clients that drive them.

A scenario measures one target at a time: a proxy ("rproxy", "nginx", "haproxy")
started fresh for the run, or "direct" (the backend itself: the ceiling). Its
measure() returns a dict of metrics, plus "errors" (failed or non-2xx requests)
and "notes" (anything odd seen while measuring). Clients run on the load CPU.
"""

import asyncio
import os
import re
import socket
import subprocess
import threading
import time

import servers
from servers import LOAD_CPU, BIG_SIZE, SMALL_BODY, cpu_seconds, mem_kib

HERE = servers.HERE
PROXIES = ("rproxy", "nginx", "haproxy")


class NotApplicable(Exception):
    """The target cannot run this scenario (missing feature): str() is the short
    reason shown in the table, detail what was seen."""

    def __init__(self, reason, detail=""):
        super().__init__(reason)
        self.detail = detail


# ---- wrk -------------------------------------------------------------------

def wrk(port, path, duration, conns, headers=(), script=None, env=None):
    """Runs wrk (one thread, pinned to the load CPU) and returns what it measured:
    requests, seconds, req_s, errors (socket errors + non-2xx/3xx) and the raw text."""
    argv = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", "-c%d" % conns, "-d%ds" % duration,
            "--latency", "--timeout", "5s"]
    for h in headers:
        argv += ["-H", h]
    if script:
        argv += ["-s", str(script)]
    argv.append("http://127.0.0.1:%d%s" % (port, path))
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=duration + 30, env=e)
    out = r.stdout.decode(errors="replace")
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b", out)
    if r.returncode != 0 or not m:
        raise RuntimeError("wrk failed (exit %d):\n%s" % (r.returncode, out[-1500:]))
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[m.group(3)]
    res = {"requests": int(m.group(1)), "seconds": float(m.group(2)) * scale, "raw": out}
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
    # metrics: (key, label, unit, higher_is_better, shown_for_direct)
    metrics = ()

    def describe(self, ctx):
        return self.title

    def check(self, ctx, proxy):
        """Raises NotApplicable if proxy (just started) cannot run the scenario."""

    def measure(self, ctx, target, port, pid):
        raise NotImplementedError


def _wrk_metrics(w, pid, cpu_before):
    """req/s, CPU us per request and CPU busy % of a wrk run against pid."""
    cpu = cpu_seconds(pid) - cpu_before
    return {"req_s": w["req_s"], "cpu_us": cpu * 1e6 / max(w["requests"], 1),
            "cpu_pct": 100.0 * cpu / w["seconds"], "errors": w["errors"],
            "notes": wrk_notes(w)}


class KeepAlive(Scenario):
    id = "keepalive"
    title = "small GET (1 KiB), keep-alive"
    metrics = (("req_s", "req/s", "req/s", True, True),
               ("cpu_us", "proxy CPU per request", "us", False, True),
               ("cpu_pct", "proxy CPU busy (100 = its core saturated)", "%", None, True))

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
               ("cpu_pct", "proxy CPU busy (100 = its core saturated)", "%", None, True))

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
               ("cpu_pct", "proxy CPU busy (100 = its core saturated)", "%", None, True))

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
    metrics = (("down_MBps", "download", "MB/s", True, True),
               ("up_MBps", "upload", "MB/s", True, True),
               ("down_cpu_pct", "proxy CPU busy in downloads", "%", None, False),
               ("up_cpu_pct", "proxy CPU busy in uploads", "%", None, False),
               ("rss_growth_kib", "proxy RSS growth", "KiB", False, False),
               ("hwm_kib", "proxy peak RSS (VmHWM)", "KiB", False, False))

    def describe(self, ctx):
        return ("%s: one keep-alive client (Python, sendfile for uploads) repeats GET /big "
                "for %.1f s, then POST /upload for %.1f s; MB/s = 10^6 bytes/s; RSS growth = "
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


ALL = (KeepAlive(), Close(), Large(), Idle(), Latency(), LuaHook())
BY_ID = {s.id: s for s in ALL}
