"""Balancers written in Lua: a pool's `balance = function(req, pool)` or a named
`rproxy.balancer "name" (function(req, pool) ... end)`; the pool and backend
objects they see; nil falls back to the built-in method; a DOWN backend, a
backend of another pool, garbage or an error answer 500 with a log line."""

import json
import threading
import time

from httpclient import RawClient, req
from luautil import assert_config_ok, get, wait_log


def run_clients(port, nclients, per_client, path="/w", host="test.local"):
    """nclients keep-alive connections, per_client requests each; returns the
    X-Backend of every answer (None for a failure)."""
    out = []
    lock = threading.Lock()

    def one(k):
        got = []
        c = RawClient(port)
        try:
            for i in range(per_client):
                c.send(req("GET", "%s/%d/%d" % (path, k, i), host=host))
                r = c.read_response()
                got.append(r.header("X-Backend") if r is not None and r.status == 200 else None)
        finally:
            c.close()
        with lock:
            out.extend(got)

    ts = [threading.Thread(target=one, args=(k,)) for k in range(nclients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    return out


WEIGHTED_LUA = r"""
rproxy.settings { threads = 1, grace = 2, log = { error = "stderr", level = "info" } }
rproxy.backend "light" { address = "@LIGHT@", weight = 1 }
rproxy.backend "heavy" { address = "@HEAVY@", weight = 3 }
rproxy.balancer "weighted" (function(req, pool)
    local total = 0
    for _, b in ipairs(pool.backends) do
        if b.up then total = total + b.weight end
    end
    if total == 0 then return nil end
    local r = math.random() * total
    for _, b in ipairs(pool.backends) do
        if b.up then
            r = r - b.weight
            if r < 0 then return b end
        end
    end
    return pool.backends[#pool.backends]
end)
rproxy.pool "app" { "light", "heavy", balance = "weighted" }
rproxy.listen { address = "127.0.0.1:@PORT@" }
rproxy.vhost "test.local" { default = true, routes = { { to = "app" } } }
"""


def test_weighted_balancer_splits_one_to_three(backend, rproxy):
    light, heavy = backend(name="light"), backend(name="heavy")
    p = rproxy(WEIGHTED_LUA, LIGHT=light.address, HEAVY=heavy.address)
    assert_config_ok(p)
    got = run_clients(p.port, 4, 100)
    assert len(got) == 400 and None not in got, got.count(None)
    share = got.count("light") / 400.0
    assert 0.15 <= share <= 0.35, "light backend got %.1f%% of 400" % (share * 100)
    assert len(light.requests) + len(heavy.requests) == 400


FIELDS_LUA = r"""
rproxy.settings { threads = 1, grace = 2, log = { error = "stderr", level = "info" } }
rproxy.backend "b1" { address = "@B1@", connections = 2, weight = 5 }
rproxy.backend "b2" { address = "@B2@" }
rproxy.backend "off" { address = "127.0.0.1:1", enabled = false }
rproxy.backend "stray" { address = "@B2@", connections = 1 }
rproxy.pool "other" { "stray", balance = function(req, pool)
    stray = pool.backends[1]                      -- kept for the non-member case below
    return stray
end }
rproxy.pool "app" { "b1", "b2", "off", balance = function(req, pool)
    local p = req.path
    local out = { pool.name, #pool.backends }
    for _, b in ipairs(pool.backends) do
        out[#out + 1] = table.concat({ b.name, b.address, tostring(b.up), b.idle, b.active,
                                       b.pending, math.type(b.rtt) or "?", b.weight, b.failures,
                                       b.connections, tostring(b.nope) }, ",")
    end
    req:set_header("X-Pool", table.concat(out, " "))
    req:set_header("X-Tostring", tostring(pool.backends[1]))
    if p == "/second" then return pool.backends[2] end
    if p == "/nil" then return nil end
    if p == "/down" then return pool.backends[3] end
    if p == "/string" then return "b1" end
    if p == "/table" then return { name = "b1" } end
    if p == "/nonmember" then return stray end
    if p == "/error" then error("balancer failed on purpose") end
    if p == "/respond" then req:respond(200, "no") end
    if p == "/route" then req:route("b2") end
    if p == "/rewrite" then req.uri = "/rewritten?by=balancer" end
    return pool.backends[1]
end }
rproxy.listen { address = "127.0.0.1:@PORT@" }
rproxy.vhost "other.test" { routes = { { to = "other" } } }
rproxy.vhost "test.local" { default = true, routes = { { to = "app" } } }
"""


def start_fields(backend, rproxy):
    b1, b2 = backend(name="b1"), backend(name="b2")
    p = rproxy(FIELDS_LUA, B1=b1.address, B2=b2.address)
    assert_config_ok(p)
    assert b1.wait_connections(2) and b2.wait_connections(5)   # b2 + stray
    return b1, b2, p


def test_pool_and_backend_objects(backend, rproxy):
    b1, b2, p = start_fields(backend, rproxy)
    time.sleep(0.2)
    r = get(p, "/first")
    assert r.status == 200 and r.header("X-Backend") == "b1", r
    got = b1.requests[0]
    parts = got.header("X-Pool").split(" ")
    assert parts[:2] == ["app", "3"], parts
    f1, f2, f3 = (x.split(",") for x in parts[2:])
    assert f1 == ["b1", b1.address, "true", "2", "0", "0", "float", "5", "0", "2", "nil"], f1
    assert f2[:4] == ["b2", b2.address, "true", "4"] and f2[7:10] == ["1", "0", "4"], f2
    assert f3[:6] == ["off", "127.0.0.1:1", "false", "0", "0", "0"] and f3[9] == "0", f3
    assert got.header("X-Tostring") == "rproxy.backend (b1)"
    r = get(p, "/second")
    assert r.status == 200 and r.header("X-Backend") == "b2"
    r = get(p, "/rewrite")
    assert r.status == 200 and json.loads(r.body)["target"] == "/rewritten?by=balancer"


def test_balancer_nil_uses_builtin(backend, rproxy):
    """nil: the pool's built-in method (rtt here, the default) picks among the
    members that are up."""
    b1, b2, p = start_fields(backend, rproxy)
    seen = set()
    for i in range(20):
        r = get(p, "/nil")
        assert r.status == 200, r
        seen.add(r.header("X-Backend"))
    assert seen <= {"b1", "b2"} and seen, seen


def test_balancer_bad_choices_answer_500(backend, rproxy):
    b1, b2, p = start_fields(backend, rproxy)
    assert get(p, "/x", host="other.test").status == 200      # sets `stray`
    cases = [
        ("/down", "balancer of pool 'app' returned backend 'off', which is DOWN"),
        ("/string", "balancer of pool 'app' returned neither a backend of the pool nor nil"),
        ("/table", "balancer of pool 'app' returned neither a backend of the pool nor nil"),
        ("/nonmember", "balancer of pool 'app' returned backend 'stray', not a member"),
        ("/error", "balancer failed on purpose"),
        ("/respond", "not allowed in this hook"),
        ("/route", "not allowed in this hook"),
    ]
    n1, n2 = len(b1.requests), len(b2.requests)
    for path, msg in cases:
        r = get(p, path)
        assert r.status == 500, (path, r)
        assert wait_log(p, msg), (path, p.stderr()[-2000:])
        assert get(p, "/ok").status == 200, path                 # the worker goes on
    assert "lua: balancer: " in p.stderr() and "stack traceback" in p.stderr()
    assert len(b1.requests) == n1 + len(cases) and len(b2.requests) == n2   # the /ok ones


def test_balancer_sees_busy_and_pending(backend, rproxy):
    """A backend with one connection and a slow answer: the next requests queue
    on the backend the balancer chose, and the balancer sees active/pending."""
    def slow(conn, q):
        time.sleep(0.4)
        return conn.echo(q)
    b1 = backend(handler=slow, name="b1")
    p = rproxy(r"""
rproxy.settings { threads = 1, grace = 2, log = { error = "stderr", level = "info" } }
rproxy.backend "b1" { address = "@B1@", connections = 1 }
rproxy.pool "app" { "b1", balance = function(req, pool)
    local b = pool.backends[1]
    req:set_header("X-State", b.idle .. "," .. b.active .. "," .. b.pending)
    return b
end }
rproxy.listen { address = "127.0.0.1:@PORT@" }
rproxy.vhost "test.local" { default = true, routes = { { to = "app" } } }
""", B1=b1.address)
    assert b1.wait_connections(1)
    time.sleep(0.1)
    results = {}

    def one(i):
        results[i] = get(p, "/q%d" % i)

    ts = []
    for i in range(3):
        t = threading.Thread(target=one, args=(i,))
        t.start()
        ts.append(t)
        if i == 0:
            assert b1.wait_heads(1)
        else:
            time.sleep(0.1)
    for t in ts:
        t.join(20)
    assert all(results[i].status == 200 for i in range(3)), results
    states = {q.target: q.header("X-State") for q in b1.requests}
    assert states["/q0"] == "1,0,0", states
    assert states["/q1"] == "0,1,0", states
    assert states["/q2"] == "0,1,1", states


FALLBACK_LUA = r"""
rproxy.settings { threads = 2, grace = 2, log = { error = "stderr", level = "info" } }
rproxy.backend "main" { address = "@MAIN@", connections = 8, retry = 0.01, retry_max = 0.02 }
rproxy.backend "spare" { address = "@SPARE@", connections = 8 }
rproxy.pool "app" { "main", "spare", balance = function(req, pool)
    local main, spare = pool.backends[1], pool.backends[2]
    if main.up then return main end
    return spare
end }
rproxy.listen { address = "127.0.0.1:@PORT@" }
rproxy.vhost "test.local" { routes = { { to = "app" } } }
"""


def test_dead_backend_stays_down_while_it_reconnects(backend, rproxy):
    """`up` is false for a backend whose connects fail, also while a retry is in
    flight: a policy that falls back on it never sends a request to the dead
    one. (Counting a reconnecting connection as up let one request in a few
    hundred through to a refused connect: a 502.)"""
    main, spare = backend(name="main"), backend(name="spare")
    p = rproxy(FALLBACK_LUA, MAIN=main.address, SPARE=spare.address)
    assert run_clients(p.port, 2, 5) == ["main"] * 10
    main.stop()
    deadline = time.monotonic() + 10
    while run_clients(p.port, 1, 1) != ["spare"] and time.monotonic() < deadline:
        time.sleep(0.05)
    # every 10-20 ms each of the 16 connections tries again, and fails
    got = run_clients(p.port, 4, 100)
    assert got == ["spare"] * 400, [g for g in got if g != "spare"][:5]
