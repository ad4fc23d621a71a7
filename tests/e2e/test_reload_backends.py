"""Hot reload (issue 5): backends, routing and hooks across a reload.

- A backend whose name and address stay keeps its connections: the recording
  backend counts accepted TCP connections, and no reload adds one.
- A removed backend gets no new request once the reload is complete and its
  connections close; one added (or added back) is connected and used.
- Changed timeouts (a backend's read_timeout, a listener's limits), balancers,
  routes and hooks apply to the requests that start after the reload.
- Requests in flight finish with the generation they started in: a slow
  request (the backend waits 1 s) started before the reload completes with 200
  and the OLD hook's header, the next request on the same keep-alive
  connection gets the new one; requests waiting for a backend connection when
  the reload comes are served too; a request in flight on a removed backend
  completes, then that backend's connections close.
"""

import json
import time

from httpclient import RawClient, req
from test_reload_lib import Reloader, get, slow_handler

SETTINGS = """
rproxy.settings { threads = @THREADS@, pidfile = "@PIDFILE@", grace = 5,
  log = { error = "stderr", level = "info", access = { output = "@ACCESS@", format = "json" } } }
"""


def make_lua(backends, pools=None, routes='{ { to = "app" } }', hooks="", listen="",
             threads=2):
    """backends: {name: (address, extra Lua fields)}; pools: {name: (members, balance)},
    default one pool "app" of every backend, round robin."""
    out = [SETTINGS.replace("@THREADS@", str(threads))]
    for name, (addr, extra) in backends.items():
        out.append('rproxy.backend "%s" { address = "%s", %s }' % (name, addr, extra))
    if pools is None:
        pools = {"app": (list(backends), '"roundrobin"')}
    for name, (members, balance) in pools.items():
        out.append('rproxy.pool "%s" { %s, balance = %s }'
                   % (name, ", ".join('"%s"' % m for m in members), balance))
    out.append('rproxy.listen { address = "127.0.0.1:@PORT@", %s }' % listen)
    out.append('rproxy.vhost "test.local" { default = true, routes = %s }' % routes)
    out.append(hooks)
    return "\n".join(out) + "\n"


def hook(tag):
    return """
function rproxy.on_request(req) req:set_header("X-Policy", "%s") end
function rproxy.on_response(req, res) res:set_header("X-Policy", "%s") end
""" % (tag, tag)


def ok(p, path="/", headers=()):
    r = get(p.port, path, headers=headers)
    assert r.status == 200 and r.complete, r
    return r


def backends_of(p, n, path="/"):
    return [ok(p, "%s%d" % (path, i)).header("X-Backend") for i in range(n)]


def all_closed(b, timeout=5):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with b.lock:
            conns = list(b.conns)
        if all(c.closed for c in conns):
            return True
        time.sleep(0.05)
    return False


def test_unchanged_backend_keeps_its_connections(backend, rproxy):
    a = backend(name="a")
    be = {"a": (a.address, "connections = 2")}
    p = rproxy(make_lua(be, hooks=hook("v1")))
    rl = Reloader(p, 2)
    assert a.wait_connections(4)
    time.sleep(0.3)
    assert a.connections == 4
    assert set(backends_of(p, 10)) == {"a"}
    variants = [
        make_lua(be, hooks=hook("v2")),
        make_lua({"a": (a.address, "connections = 2, read_timeout = 30, retry = 1")},
                 hooks=hook("v3")),
        make_lua(be, pools={"app": (["a"], '"first"'), "other": (["a"], '"random"')},
                 routes='{ { prefix = "/o/", to = "other" }, { to = "app" } }'),
        make_lua(be, hooks=hook("v5"), listen="keepalive_timeout = 10"),
    ]
    for i, lua in enumerate(variants):
        rl.reload(lua)
        for k in range(10):
            r = ok(p, "/after%d/%d" % (i, k))
            assert r.header("X-Backend") == "a"
        r = ok(p, "/o/x")
    time.sleep(0.5)
    assert a.connections == 4, "a reload opened new connections to an unchanged backend"
    assert {q.conn_id for q in a.requests} <= {0, 1, 2, 3}
    assert "connection down" not in p.stderr()


def test_removed_backend_drains_and_closes(backend, rproxy):
    a = backend(name="a")
    b = backend(name="b")
    both = {"a": (a.address, "connections = 2"), "b": (b.address, "connections = 2")}
    p = rproxy(make_lua(both))
    rl = Reloader(p, 2)
    assert a.wait_connections(4) and b.wait_connections(4)
    assert set(backends_of(p, 12)) == {"a", "b"}
    rl.reload(make_lua({"a": (a.address, "connections = 2")}))
    nb = len(b.requests)
    assert set(backends_of(p, 20, "/gone")) == {"a"}
    assert len(b.requests) == nb, "requests reached a removed backend: %r" % b.paths()[nb:]
    assert all_closed(b), "the removed backend's connections stay open"
    time.sleep(0.5)
    assert b.connections == 4, "rproxy reconnected to a removed backend"
    assert a.connections == 4
    # added back: connected again and used
    rl.reload(make_lua(both))
    assert b.wait_connections(8), b.connections
    assert set(backends_of(p, 12, "/back")) == {"a", "b"}
    assert a.connections == 4


def test_added_backend_is_connected_and_used(backend, rproxy):
    a = backend(name="a")
    c = backend(name="c")
    p = rproxy(make_lua({"a": (a.address, "connections = 2")}))
    rl = Reloader(p, 2)
    assert a.wait_connections(4)
    assert c.connections == 0
    rl.reload(make_lua({"a": (a.address, "connections = 2"), "c": (c.address, "connections = 2")}))
    assert c.wait_connections(4), c.connections
    got = backends_of(p, 16)
    assert got.count("c") >= 4, got
    assert a.connections == 4


def test_changed_timeouts_and_limits_apply_to_new_requests(backend, rproxy):
    a = backend(name="a", handler=slow_handler(1.0))
    many = [("X-H%d" % i, "v") for i in range(12)]
    p = rproxy(make_lua({"a": (a.address, "read_timeout = 5")}))
    rl = Reloader(p, 2)
    r = get(p.port, "/slow/1")
    assert r.status == 200, r
    assert ok(p, "/many", headers=many)
    rl.reload(make_lua({"a": (a.address, "read_timeout = 0.3")}, listen="max_headers = 8"))
    t0 = time.monotonic()
    r = get(p.port, "/slow/2")
    assert r.status == 504, r
    assert time.monotonic() - t0 < 0.95
    r = get(p.port, "/many", headers=many)
    assert r.status == 431, r
    rl.reload(make_lua({"a": (a.address, "read_timeout = 5")}))
    r = get(p.port, "/slow/3")
    assert r.status == 200, r
    assert ok(p, "/many", headers=many)


def test_changed_balancer_applies(backend, rproxy):
    a = backend(name="a")
    b = backend(name="b")
    be = {"a": (a.address, ""), "b": (b.address, "")}
    p = rproxy(make_lua(be, pools={"app": (["a", "b"], '"first"')}))
    rl = Reloader(p, 2)
    assert a.wait_connections(8) and b.wait_connections(8)
    assert set(backends_of(p, 10)) == {"a"}
    rl.reload(make_lua(be, pools={"app": (["a", "b"],
                                          "function(req, pool) return pool.backends[2] end")}))
    assert set(backends_of(p, 10)) == {"b"}
    named = make_lua(be, pools={"app": (["a", "b"], '"pick"')}) + """
rproxy.balancer "pick" (function(req, pool)
    for _, b in ipairs(pool.backends) do
        if b.name == req:header("X-Want") then return b end
    end
end)
"""
    rl.reload(named)
    for want in ("a", "b", "b", "a"):
        assert ok(p, "/w", headers=[("X-Want", want)]).header("X-Backend") == want
    rl.reload(make_lua(be, pools={"app": (["a", "b"], '"roundrobin"')}))
    assert set(backends_of(p, 10)) == {"a", "b"}


def test_changed_routes_and_hooks_apply(backend, rproxy):
    a = backend(name="a")
    b = backend(name="b")
    be = {"a": (a.address, ""), "b": (b.address, "")}
    pools = {"pa": (["a"], '"first"'), "pb": (["b"], '"first"')}
    p = rproxy(make_lua(be, pools=pools, hooks=hook("r1"),
                        routes='{ { prefix = "/x/", to = "pa" }, { to = "pb" } }'))
    rl = Reloader(p, 2)

    def look(path):
        r = ok(p, path)
        sent = json.loads(r.body)
        return r.header("X-Backend"), sent["path"], r.header("X-Policy"), \
            dict((k.lower(), v) for k, v in sent["headers"]).get("x-policy")

    assert look("/x/1") == ("a", "/x/1", "r1", "r1")
    assert look("/y") == ("b", "/y", "r1", "r1")
    rl.reload(make_lua(be, pools=pools, hooks=hook("r2"),
                       routes='{ { prefix = "/x/", to = "pb", rewrite = { "^/x(/.*)$", "%1" } },'
                              ' { to = "pa" } }'))
    for _ in range(3):
        assert look("/x/1") == ("b", "/1", "r2", "r2")
        assert look("/y") == ("a", "/y", "r2", "r2")
    rl.reload(make_lua(be, pools=pools, routes='{ { to = "pb" } }'))
    for _ in range(3):
        assert look("/x/1") == ("b", "/x/1", None, None)


def test_inflight_request_finishes_with_its_generation(backend, rproxy):
    a = backend(name="a", handler=slow_handler(1.0))
    be = {"a": (a.address, "")}
    p = rproxy(make_lua(be, hooks=hook("old")))
    rl = Reloader(p, 2)
    assert ok(p).header("X-Policy") == "old"
    c = RawClient(p.port, timeout=10)
    t0 = time.monotonic()
    c.send(req("GET", "/slow/inflight"))
    end = time.monotonic() + 5
    while "/slow/inflight" not in a.paths() and time.monotonic() < end:
        time.sleep(0.01)
    assert "/slow/inflight" in a.paths()
    rl.reload(make_lua(be, hooks=hook("new")))
    assert time.monotonic() - t0 < 0.9, "too slow to test: the reload outlasted the request"
    for i in range(6):
        assert ok(p, "/after/%d" % i).header("X-Policy") == "new"
    r = c.read_response(timeout=10)
    assert r is not None and r.status == 200 and r.complete, r
    assert r.header("X-Policy") == "old"
    assert json.loads(r.body)["path"] == "/slow/inflight"
    # the next request on that keep-alive connection starts after the reload
    c.send(req("GET", "/next"))
    r2 = c.read_response(timeout=10)
    c.close()
    assert r2 is not None and r2.status == 200 and r2.header("X-Policy") == "new", r2
    assert p.wait_access_lines(9)
    gens = {e["uri"]: e["gen"] for e in p.access_json()}
    assert gens["/slow/inflight"] == 1 and gens["/next"] == 2, gens


def test_waiting_requests_are_served_across_a_reload(backend, rproxy):
    """One connection to the backend, three requests: one in flight, two
    waiting for that connection when the reload comes."""
    a = backend(name="a", handler=slow_handler(0.8))
    be = {"a": (a.address, "connections = 1")}
    p = rproxy(make_lua(be, hooks=hook("old"), threads=1))
    rl = Reloader(p, 1)
    assert a.wait_connections(1)
    clients = []
    for i in range(3):
        c = RawClient(p.port, timeout=15)
        c.send(req("GET", "/slow/%d" % i))
        clients.append(c)
        if i == 0:
            assert a.wait_heads(1)
    time.sleep(0.2)
    assert len(a.heads) == 1, "expected the others to wait for the only connection"
    rl.reload(make_lua(be, hooks=hook("new"), threads=1))
    c = RawClient(p.port, timeout=15)
    c.send(req("GET", "/slow/after"))
    clients.append(c)
    got = []
    for c in clients:
        r = c.read_response(timeout=15)
        c.close()
        assert r is not None and r.status == 200 and r.complete, r
        got.append(r.header("X-Policy"))
    assert got == ["old", "old", "old", "new"]
    assert a.connections == 1


def test_removed_backend_finishes_its_inflight_request(backend, rproxy):
    a = backend(name="a")
    b = backend(name="b", handler=slow_handler(1.0, "/b/slow"))
    both = {"a": (a.address, "connections = 2"), "b": (b.address, "connections = 2")}
    pools = {"pa": (["a"], '"first"'), "pb": (["b"], '"first"')}
    p = rproxy(make_lua(both, pools=pools, routes='{ { prefix = "/b/", to = "pb" }, { to = "pa" } }',
                        hooks=hook("old")))
    rl = Reloader(p, 2)
    assert b.wait_connections(4)
    c = RawClient(p.port, timeout=10)
    c.send(req("GET", "/b/slow"))
    assert b.wait_heads(1)
    rl.reload(make_lua({"a": (a.address, "connections = 2")}, pools={"pa": (["a"], '"first"')},
                       routes='{ { to = "pa" } }', hooks=hook("new")))
    for i in range(6):
        r = ok(p, "/b/after%d" % i)
        assert (r.header("X-Backend"), r.header("X-Policy")) == ("a", "new")
    r = c.read_response(timeout=10)
    c.close()
    assert r is not None and r.status == 200 and r.complete, r
    assert (r.header("X-Backend"), r.header("X-Policy")) == ("b", "old")
    assert all_closed(b), "the removed backend's connections stay open"
    assert b.paths() == ["/b/slow"]


def test_backend_kept_then_removed_while_an_old_request_runs(backend, rproxy):
    """Regression: generation 1 has a request in flight on backend b;
    reload 2 keeps b (rp_backend_adopt points b->conf into snapshot 2), reload
    3 removes it: generation 2 is freed with snapshot 2 while b lives on in
    generation 1, and b's connection then reads b->conf (the 504 path logs
    b->conf->name). The client must get its 504, the log must name b, and
    ASan must stay quiet."""
    a = backend(name="a")
    b = backend(name="b", handler=slow_handler(1.5, "/b/slow"))
    two = {"a": (a.address, "connections = 1"), "b": (b.address, "connections = 1, read_timeout = 0.8")}
    pools = {"pa": (["a"], '"first"'), "pb": (["b"], '"first"')}
    routes = '{ { prefix = "/b/", to = "pb" }, { to = "pa" } }'
    p = rproxy(make_lua(two, pools=pools, routes=routes, hooks=hook("g1"), threads=1))
    rl = Reloader(p, 1)
    assert b.wait_connections(1)
    c = RawClient(p.port, timeout=10)
    c.send(req("GET", "/b/slow"))
    assert b.wait_heads(1)
    rl.reload(make_lua(two, pools=pools, routes=routes, hooks=hook("g2"), threads=1))
    rl.reload(make_lua({"a": (a.address, "connections = 1")}, pools={"pa": (["a"], '"first"')},
                       routes='{ { to = "pa" } }', hooks=hook("g3"), threads=1))
    # churn the allocator a little so that freed memory gets reused
    for i in range(20):
        assert ok(p, "/x%d" % i).header("X-Policy") == "g3"
    r = c.read_response(timeout=10)
    c.close()
    assert r is not None and r.status == 504, r
    time.sleep(0.2)
    err = p.stderr()
    assert "backend b: timed out reading the response" in err, err[-2000:]
