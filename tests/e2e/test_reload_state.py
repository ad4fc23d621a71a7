"""Hot reload (issue 5): what outlives a reload besides backends.

- Shared dictionaries: a counter in rproxy.shared.NAME survives reloads while
  the declaration (name and size) is unchanged; a changed size gives a fresh,
  empty dictionary of the new size; one declared by a reload exists at once.
- Listeners: one added by a reload accepts; one removed stops accepting
  (connection refused) while a keep-alive connection opened on it before
  finishes its in-flight request; an unchanged listener never refuses a
  connection while 20 reloads (which also add and remove another listener)
  happen under a client connecting in a loop.
- rproxy.every timers: those of the retired generation stop, the new
  generation's run.
"""

import socket
import threading
import time

from httpclient import RawClient, recv_until_closed, req
from test_reload_lib import ASAN, Reloader, connect_refused, get, slow_handler, wait_listening

DICT_LUA = """
rproxy.settings { threads = 2, grace = 5, log = { error = "stderr", level = "info" } }
rproxy.shared_dict "counters" { size = "@SIZE@" }
@EXTRA_DICT@
rproxy.backend "a" { address = "@A@", connections = 1 }
rproxy.pool "app" { "a" }
rproxy.listen { address = "127.0.0.1:@PORT@" }
rproxy.vhost "test.local" { default = true, routes = { { to = "app" } } }
function rproxy.on_request(req)
    local d = rproxy.shared.counters
    if req.path == "/hit" then
        local n = d:incr("hits", 1, 0)
        return req:respond(200, tostring(n), { ["X-Tag"] = "@TAG@" })
    end
    if req.path == "/free" then
        return req:respond(200, tostring(d:free_space()))
    end
    if req.path == "/extra" then
        local e = rproxy.shared.extra
        if not e then return req:respond(200, "none") end
        return req:respond(200, tostring(e:incr("n", 1, 0)))
    end
end
"""


def body(p, path):
    r = get(p.port, path)
    assert r.status == 200, r
    return r.body.decode()


def test_shared_dict_survives_unchanged_and_resets_on_new_size(backend, rproxy):
    a = backend(name="a")
    subs = dict(A=a.address, SIZE="256k", TAG="t1", EXTRA_DICT="")
    p = rproxy(DICT_LUA, **subs)
    rl = Reloader(p, 2)
    for i in range(1, 6):
        assert body(p, "/hit") == str(i)
    free_small = int(body(p, "/free"))
    assert body(p, "/extra") == "none"
    # unchanged declaration (other edits around it): the counter goes on
    for k, tag in enumerate(("t2", "t3")):
        rl.reload(DICT_LUA, **dict(subs, TAG=tag))
        r = get(p.port, "/hit")
        assert r.header("X-Tag") == tag
        assert r.body.decode() == str(6 + k)
    # "256k" and 262144 are the same size: still the same dictionary
    rl.reload(DICT_LUA, **dict(subs, SIZE="262144", TAG="t4"))
    assert body(p, "/hit") == "8"
    # a new dictionary appears with the reload that declares it
    rl.reload(DICT_LUA, **dict(subs, SIZE="262144", TAG="t5",
                               EXTRA_DICT='rproxy.shared_dict "extra" { size = "128k" }'))
    assert body(p, "/extra") == "1"
    assert body(p, "/hit") == "9"
    # a changed size: a fresh dictionary, of the new size
    rl.reload(DICT_LUA, **dict(subs, SIZE="1m", TAG="t6",
                               EXTRA_DICT='rproxy.shared_dict "extra" { size = "128k" }'))
    assert body(p, "/hit") == "1"
    assert int(body(p, "/free")) > free_small * 3
    assert body(p, "/extra") == "2"
    for i in range(2, 5):
        assert body(p, "/hit") == str(i)
    # back to the old size: fresh again (the old contents are gone)
    rl.reload(DICT_LUA, **subs)
    assert body(p, "/hit") == "1"
    assert body(p, "/extra") == "none"


LISTEN_LUA = """
rproxy.settings { threads = 2, grace = 5, log = { error = "stderr", level = "info" } }
rproxy.backend "a" { address = "@A@", connections = 2 }
rproxy.pool "app" { "a" }
@LISTENERS@
rproxy.vhost "test.local" { default = true, routes = { { to = "app" } } }
function rproxy.on_response(req, res) res:set_header("X-Tag", "@TAG@") end
"""


def listen_lua(*ports):
    """LISTEN_LUA with a listener on each of ports ("@PORT@", "@PORT2@"...)."""
    return LISTEN_LUA.replace("@LISTENERS@", "\n".join(
        'rproxy.listen { address = "127.0.0.1:%s" }' % port for port in ports))


def test_listeners_added_and_removed(backend, rproxy):
    a = backend(name="a", handler=slow_handler(1.0))
    p = rproxy(listen_lua("@PORT@", "@PORT3@"), nports=3, A=a.address, TAG="t1", wait=False)
    wait_listening(p, [p.ports[0], p.ports[2]])
    rl = Reloader(p, 2)
    kept, added, removed = p.ports
    assert connect_refused(added)
    assert get(removed, "/r").status == 200
    # a keep-alive connection on the listener to remove, with a request in flight
    c = RawClient(removed, timeout=10)
    c.send(req("GET", "/first"))
    r = c.read_response()
    assert r.status == 200 and r.header("X-Tag") == "t1"
    c.send(req("GET", "/slow/inflight"))
    assert a.wait_heads(3)
    rl.reload(listen_lua("@PORT@", "@PORT2@"), TAG="t2", A=a.address)
    for port in (kept, added):
        for _ in range(4):
            r = get(port, "/x")
            assert r.status == 200 and r.header("X-Tag") == "t2", (port, r)
    assert connect_refused(removed), "a removed listener still accepts"
    r = c.read_response(timeout=10)
    c.close()
    assert r is not None and r.status == 200 and r.complete, r
    assert r.header("X-Tag") == "t1"
    # and back again
    rl.reload(listen_lua("@PORT@", "@PORT3@"), TAG="t3", A=a.address)
    assert connect_refused(added)
    for port in (kept, removed):
        r = get(port, "/y")
        assert r.status == 200 and r.header("X-Tag") == "t3", (port, r)


def test_unchanged_listener_never_refuses_during_reloads(backend, rproxy):
    a = backend(name="a")
    nreloads = 20
    p = rproxy(listen_lua("@PORT@"), nports=2, A=a.address, TAG="t0", wait=False)
    wait_listening(p, [p.port])
    rl = Reloader(p, 2)
    stop = threading.Event()
    stats = {"ok": 0, "refused": 0, "other": []}

    def loop():
        end = time.monotonic() + (60 if ASAN else 30)
        while not stop.is_set() and time.monotonic() < end and stats["ok"] < 20000:
            try:
                s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
            except ConnectionRefusedError:
                stats["refused"] += 1
                continue
            except OSError as e:
                stats["other"].append(repr(e))
                continue
            try:
                s.sendall(req("GET", "/loop", headers=[("Connection", "close")]))
                data = recv_until_closed(s)
                if data.startswith(b"HTTP/1.1 200 "):
                    stats["ok"] += 1
                else:
                    stats["other"].append(data[:100])
            except OSError as e:
                stats["other"].append(repr(e))
            finally:
                s.close()

    t = threading.Thread(target=loop)
    t.start()
    try:
        time.sleep(0.2)
        for i in range(nreloads):
            ports = ("@PORT@", "@PORT2@") if i % 2 == 0 else ("@PORT@",)
            rl.reload(listen_lua(*ports), A=a.address, TAG="t%d" % (i + 1))
            time.sleep(0.03)
    finally:
        stop.set()
        t.join(30)
    print("unchanged listener: %d connections served during %d reloads" % (stats["ok"], nreloads))
    assert stats["refused"] == 0, "the unchanged listener refused %d connections" % stats["refused"]
    assert not stats["other"], stats["other"][:5]
    assert stats["ok"] > nreloads
    assert get(p.port).header("X-Tag") == "t%d" % nreloads


TIMER_LUA = """
rproxy.settings { threads = 2, grace = 5, log = { error = "stderr", level = "info" } }
rproxy.shared_dict "ticks" { size = "128k" }
rproxy.backend "a" { address = "@A@", connections = 1 }
rproxy.pool "app" { "a" }
rproxy.listen { address = "127.0.0.1:@PORT@" }
rproxy.vhost "test.local" { default = true, routes = { { to = "app" } } }
rproxy.every(0.05, function()
    rproxy.shared.ticks:incr("gen" .. rproxy.generation(), 1, 0)
end)
function rproxy.on_request(req)
    local t = rproxy.shared.ticks
    return req:respond(200, string.format("%d %d %d", t:get("gen1") or 0, t:get("gen2") or 0,
                                          t:get("gen@TAG@") or 0))
end
"""


def test_timers_of_a_retired_generation_stop(backend, rproxy):
    a = backend(name="a")
    p = rproxy(TIMER_LUA, A=a.address, TAG="x")
    rl = Reloader(p, 2)

    def ticks():
        return [int(x) for x in body(p, "/").split()]

    time.sleep(0.4)
    g1, g2, _ = ticks()
    assert g1 >= 4 and g2 == 0
    rl.reload(TIMER_LUA, A=a.address, TAG="x")
    time.sleep(0.3)
    g1a, g2a, _ = ticks()
    time.sleep(0.5)
    g1b, g2b, _ = ticks()
    assert g1b == g1a, "generation 1's rproxy.every still runs after the reload"
    assert g2b - g2a >= 6, "generation 2's rproxy.every does not run (%d -> %d)" % (g2a, g2b)
