"""Hot reload (issue 5): reloading for ever does not grow the process.

Under a light client load, rproxy (2 workers) is reloaded N times (1,000; 100
under ASan), alternating two files that differ in their hooks, each with a
top-level allocation (so that a generation whose Lua state is never freed
shows), an rproxy.every timer and a shared dictionary; every other file also
adds a backend (connected, then retired) and a listener (opened, then closed). After a warm-up of 20
reloads the resident set (VmRSS) and the open descriptors (/proc/PID/fd) are
sampled; after the N reloads they must be back near that level: RSS within
+8 MiB, fds within +4.
"""

import random
import threading
import time

from httpclient import RawClient, req
from test_reload_lib import ASAN, Reloader, fd_count, wait_listening

LUA = """
rproxy.settings { threads = 2, grace = 5, log = { error = "stderr", level = "notice" } }
rproxy.shared_dict "counters" { size = "256k" }
rproxy.backend "a" { address = "@A@", connections = 2 }
@EXTRA@
rproxy.listen { address = "127.0.0.1:@PORT@" }
rproxy.vhost "test.local" { default = true, routes = { { to = "app" } } }
BALLAST = string.rep("@TAG@", 65536)         -- 128 KiB per state
local ticks = 0
rproxy.every(0.05, function() ticks = ticks + 1 end)
function rproxy.on_request(req)
    rproxy.shared.counters:incr("hits", 1, 0)
    req:set_header("X-Tag", "@TAG@")
end
function rproxy.on_response(req, res) res:set_header("X-Tag", "@TAG@" .. #BALLAST) end
"""
# A: one backend, one listener; B: a second backend and a second listener too
EXTRA = {
    "A1": 'rproxy.pool "app" { "a" }',
    "B2": 'rproxy.backend "c" { address = "@C@", connections = 1 }\n'
          'rproxy.pool "app" { "a", "c", balance = "roundrobin" }\n'
          'rproxy.listen { address = "127.0.0.1:@PORT2@" }',
}


def config(tag):
    return LUA.replace("@EXTRA@", EXTRA[tag])


def test_rss_and_fds_stable_over_many_reloads(backend, rproxy):
    a = backend(name="a")
    c = backend(name="c")
    n = 100 if ASAN else 1000
    p = rproxy(config("A1"), nports=2, A=a.address, C=c.address, TAG="A1", wait=False)
    wait_listening(p, [p.port])
    rl = Reloader(p, 2)
    stop = threading.Event()
    stats = {"ok": 0, "bad": []}

    def light_load():
        rnd = random.Random(5)
        end = time.monotonic() + (240 if ASAN else 120)
        while not stop.is_set() and time.monotonic() < end:
            try:
                cl = RawClient(p.port, timeout=10)
                for _ in range(rnd.randint(1, 5)):
                    cl.send(req("GET", "/light"))
                    r = cl.read_response()
                    if r is None or r.status != 200 or not r.complete:
                        stats["bad"].append(r)
                        break
                    stats["ok"] += 1
                    time.sleep(0.01)
                cl.close()
            except OSError as e:
                stats["bad"].append(repr(e))

    t = threading.Thread(target=light_load)
    t.start()
    try:
        def reloads(count):
            for _ in range(count):
                tag = "A1" if rl.gen % 2 == 0 else "B2"
                rl.reload(config(tag), A=a.address, C=c.address, TAG=tag)

        reloads(20)
        time.sleep(0.5)
        rss0, fds0 = p.rss_kib(), fd_count(p.pid)
        t0 = time.monotonic()
        reloads(n)
        dt = time.monotonic() - t0
        time.sleep(1.0)
        rss1, fds1 = p.rss_kib(), fd_count(p.pid)
    finally:
        stop.set()
        t.join(30)
    assert rl.gen % 2 == 1             # sampled under the same file as the baseline
    print("\n%d reloads in %.1f s under light load (%d requests): RSS %d -> %d KiB, fds %d -> %d"
          % (n, dt, stats["ok"], rss0, rss1, fds0, fds1))
    assert not stats["bad"], stats["bad"][:5]
    assert stats["ok"] > 0
    assert rss1 - rss0 <= 8 * 1024, "RSS grew by %d KiB over %d reloads" % (rss1 - rss0, n)
    assert fds1 - fds0 <= 4, "open fds grew from %d to %d over %d reloads" % (fds0, fds1, n)
    assert a.connections == 4, "reloads reconnected an unchanged backend"
    assert c.connections >= (n // 2) * 2, "the added backend was not connected each time"
