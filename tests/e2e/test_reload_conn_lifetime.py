"""Hot reload (issue 5): a client connection outlives the snapshot it was
accepted (or last served) under.

A connection keeps `c->lc`, a pointer into the listener table of the snapshot
of its last request (or of its accept), but holds a reference on that
snapshot only while a request runs (through its generation). Once a reload
retires that generation and its last request ends, the snapshot is freed
(unless an upstream connection opened under it pins it: the first snapshot
usually is) and c->lc dangles:

- conn_begin_request() computes the head timer from c->lc->read_timeout
  BEFORE it sets c->lc = c->l->conf: a request arriving on a keep-alive
  connection (or on a connection accepted before the reload) reads freed
  memory (ASan: heap-use-after-free at http_conn.c conn_begin_request), and
  even when the memory is intact the whole-head timer uses the OLD listener's
  read_timeout although "a reload applies from this request on";
- rp_http_conn_finish() calls conn_request_cleanup(), which drops the
  request's generation (freeing a retired one with its snapshot), then reads
  c->lc->keepalive_timeout (ASan: heap-use-after-free in
  rp_http_conn_finish).

Each test first reloads once so that the snapshot in play is not pinned by
the backend connections opened under generation 1.
"""

import time

from httpclient import RawClient, req
from test_reload_lib import Reloader, get, slow_handler

LUA = """
rproxy.settings { threads = 1, grace = 5, log = { error = "stderr", level = "info" } }
rproxy.backend "a" { address = "@A@", connections = 2 }
rproxy.pool "app" { "a" }
rproxy.listen { address = "127.0.0.1:@PORT@", read_timeout = @RT@, keepalive_timeout = @KA@ }
rproxy.vhost "test.local" { default = true, routes = { { to = "app" } } }
function rproxy.on_response(req, res) res:set_header("X-Tag", "@TAG@") end
"""


def slow_head(c, path, pause):
    """Sends a request head in two parts, pause seconds apart."""
    data = req("GET", path)
    c.send(data[:20])
    time.sleep(pause)
    c.send(data[20:])
    return c.read_response(timeout=10)


def test_keepalive_request_after_reload_uses_the_new_listener_read_timeout(backend, rproxy):
    a = backend(name="a")
    p = rproxy(LUA, A=a.address, RT="0.6", KA="30", TAG="t1")
    rl = Reloader(p, 1)
    rl.reload(LUA, A=a.address, RT="0.6", KA="30", TAG="t2")   # snapshot 2: unpinned
    c = RawClient(p.port, timeout=10)
    c.send(req("GET", "/first"))
    r = c.read_response()
    assert r.status == 200 and r.header("X-Tag") == "t2", r
    # the connection is idle; snapshot 2 goes away with this reload
    rl.reload(LUA, A=a.address, RT="5", KA="30", TAG="t3")
    for i in range(10):                   # reuse the freed memory a little
        assert get(p.port, "/churn%d" % i).status == 200
    r = slow_head(c, "/second", 1.2)
    c.close()
    assert r is not None, "connection closed; the old read_timeout (0.6 s) applied"
    assert r.status == 200, "%r: the head timer used the old listener's read_timeout" % r
    assert r.header("X-Tag") == "t3"


def test_connection_accepted_before_a_reload(backend, rproxy):
    a = backend(name="a")
    p = rproxy(LUA, A=a.address, RT="0.6", KA="30", TAG="t1")
    rl = Reloader(p, 1)
    rl.reload(LUA, A=a.address, RT="0.6", KA="30", TAG="t2")
    c = RawClient(p.port, timeout=10)     # accepted under snapshot 2
    time.sleep(0.1)
    rl.reload(LUA, A=a.address, RT="5", KA="30", TAG="t3")
    for i in range(10):
        assert get(p.port, "/churn%d" % i).status == 200
    r = slow_head(c, "/late", 1.2)
    c.close()
    assert r is not None and r.status == 200, r
    assert r.header("X-Tag") == "t3"


def test_request_that_outlives_its_generation_then_keeps_alive(backend, rproxy):
    a = backend(name="a", handler=slow_handler(0.8))
    p = rproxy(LUA, A=a.address, RT="5", KA="30", TAG="t1")
    rl = Reloader(p, 1)
    rl.reload(LUA, A=a.address, RT="5", KA="30", TAG="t2")
    c = RawClient(p.port, timeout=10)
    c.send(req("GET", "/slow/x"))
    assert a.wait_heads(1)
    # generation 2 is retired with a request in it; that request's end frees it
    rl.reload(LUA, A=a.address, RT="5", KA="30", TAG="t3")
    r = c.read_response(timeout=10)
    assert r is not None and r.status == 200 and r.complete and r.header("X-Tag") == "t2", r
    for i in range(10):
        assert get(p.port, "/churn%d" % i).status == 200
    c.send(req("GET", "/again"))
    r = c.read_response(timeout=10)
    c.close()
    assert r is not None and r.status == 200 and r.header("X-Tag") == "t3", r
