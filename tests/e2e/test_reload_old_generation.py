"""Hot reload (issue 5): a request that began in generation N but needs a
backend connection only after generation N+1 replaced it.

A request takes its generation when its first byte arrives
(conn_begin_request), and picks its target (route, pool, Lua balancer) in
that generation when its head is complete. rp_gen_retire() moves the
requests WAITING on the old targets at the moment of the swap, but a request
of the old generation can still reach proxy_acquire() afterwards:

- its head was still arriving when the reload happened (a slow client, a
  large head), or
- its reused backend connection closed before answering and it is retried
  (then on the target it was first given).

The old generation's targets are no longer in the kept backends' b->targets
(rp_backend_adopt rebuilt them for the new generation), so such a request
that has to wait is never woken: it gets the pending_timeout 503 instead of
the connection that frees up. And a Lua balancer's choice is turned into a
target with b->conf->index, which after the reload indexes the NEW
snapshot's backend list, applied to the OLD generation's `singles` array:
with the backends declared in another order the request goes to another
backend than the one the balancer chose.
"""

import time

from httpclient import RawClient, req
from test_reload_lib import Reloader, get, slow_handler

ONE = """
rproxy.settings { threads = 1, grace = 5, log = { error = "stderr", level = "info" } }
rproxy.backend "a" { address = "@A@", connections = 1 }
rproxy.pool "app" { "a" }
rproxy.listen { address = "127.0.0.1:@PORT@", pending_timeout = 4 }
rproxy.vhost "test.local" { default = true, routes = { { to = "app" } } }
function rproxy.on_response(req, res) res:set_header("X-Tag", "@TAG@") end
"""


def test_request_whose_head_spans_a_reload_gets_the_freed_connection(backend, rproxy):
    a = backend(name="a", handler=slow_handler(1.0))
    p = rproxy(ONE, A=a.address, TAG="t1")
    rl = Reloader(p, 1)
    assert a.wait_connections(1)
    busy = RawClient(p.port, timeout=10)
    busy.send(req("GET", "/slow/busy"))           # holds the only connection 1 s
    assert a.wait_heads(1)
    late = RawClient(p.port, timeout=10)
    head = req("GET", "/late")
    late.send(head[:10])                          # the request begins in generation 1
    time.sleep(0.1)
    rl.reload(ONE, A=a.address, TAG="t2")         # a is kept, with its connection
    t0 = time.monotonic()
    late.send(head[10:])                          # routed in generation 1: must wait
    r = busy.read_response(timeout=10)
    assert r is not None and r.status == 200, r
    r = late.read_response(timeout=10)
    waited = time.monotonic() - t0
    busy.close()
    late.close()
    assert r is not None and r.status == 200, \
        "%r after %.1f s: the waiter of the old generation was never given the freed " \
        "connection (pending_timeout = 4)" % (r, waited)
    assert r.header("X-Tag") == "t1"
    assert waited < 3


TWO = """
rproxy.settings { threads = 1, grace = 5, log = { error = "stderr", level = "info" } }
@BACKENDS@
rproxy.pool "app" { "b", "a", balance = function(req, pool)
    for _, x in ipairs(pool.backends) do
        if x.name == "b" then return x end
    end
end }
rproxy.listen { address = "127.0.0.1:@PORT@", pending_timeout = 4 }
rproxy.vhost "test.local" { default = true, routes = { { to = "app" } } }
function rproxy.on_response(req, res) res:set_header("X-Tag", "@TAG@") end
"""


def two(order):
    return TWO.replace("@BACKENDS@", "\n".join(
        'rproxy.backend "%s" { address = "@%s@", connections = 2 }' % (n, n.upper())
        for n in order))


def test_lua_balancer_choice_across_a_reload_that_reorders_backends(backend, rproxy):
    a = backend(name="a")
    b = backend(name="b")
    p = rproxy(two(["b", "a"]), A=a.address, B=b.address, TAG="t1")
    rl = Reloader(p, 1)
    assert a.wait_connections(2) and b.wait_connections(2)
    assert get(p.port, "/before").header("X-Backend") == "b"
    c = RawClient(p.port, timeout=10)
    head = req("GET", "/spanning")
    c.send(head[:10])                             # begins in generation 1
    time.sleep(0.1)
    # the same backends declared in the other order: both kept, indexes swapped
    rl.reload(two(["a", "b"]), A=a.address, B=b.address, TAG="t2")
    c.send(head[10:])                             # generation 1's balancer picks b
    r = c.read_response(timeout=10)
    c.close()
    assert r is not None and r.status == 200, r
    assert r.header("X-Tag") == "t1"
    assert r.header("X-Backend") == "b", \
        "the balancer chose b, the request went to %s" % r.header("X-Backend")
    assert "/spanning" not in a.paths()
    assert get(p.port, "/after").header("X-Backend") == "b"
