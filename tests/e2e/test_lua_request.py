"""The request object of the Lua hooks (docs/lua-api.md): every field, URI
rewriting, the header methods, req:route, req:respond, req:redirect, the
per-route on_request and req.ctx, each checked through real requests: what the
recording backend received and what the client got back."""

import json

from httpclient import RawClient, req
from luautil import APP_ROUTES, get, starter, wait_log

HEAD = """
rproxy.settings { threads = @THREADS@, grace = 2, log = { error = "stderr", level = "info" } @SETTINGS@ }
""" + APP_ROUTES

start = starter(HEAD)


def kv(body):
    """'k=v' lines -> dict"""
    out = {}
    for line in body.decode().split("\n"):
        k, _, v = line.partition("=")
        out[k] = v
    return out


FIELDS_LUA = r"""
local names = { "method", "path", "query", "uri", "version", "host", "scheme", "client_addr",
                "client_port", "listener_addr", "vhost", "target", "worker_id" }
function rproxy.on_request(req)
    local out = {}
    for _, k in ipairs(names) do out[#out + 1] = k .. "=" .. tostring(req[k]) end
    out[#out + 1] = "types=" .. math.type(req.client_port) .. "," .. math.type(req.worker_id)
    out[#out + 1] = "unknown=" .. tostring(req.no_such_field)
    out[#out + 1] = "tostring=" .. tostring(req)
    return req:respond(200, table.concat(out, "\n"))
end
"""


def test_request_fields(backend, rproxy):
    be, p = start(backend, rproxy, FIELDS_LUA)
    c = RawClient(p.port)
    cport = c.sock.getsockname()[1]
    c.send(req("GET", "/a/b%20c?x=1&y=2", headers=[("X-Any", "1")]))
    r = c.read_response()
    c.close()
    assert r.status == 200, r
    f = kv(r.body)
    assert f["method"] == "GET"
    assert f["path"] == "/a/b%20c"          # as received: no decoding
    assert f["query"] == "x=1&y=2"
    assert f["uri"] == "/a/b%20c?x=1&y=2"
    assert f["version"] == "1.1"
    assert f["host"] == "test.local"
    assert f["scheme"] == "http"
    assert f["client_addr"] == "127.0.0.1"
    assert f["client_port"] == str(cport)
    assert f["listener_addr"] == "127.0.0.1:%d" % p.port
    assert f["vhost"] == "test.local"
    assert f["target"] == "app"
    assert f["worker_id"] == "0"
    assert f["types"] == "integer,integer"
    assert f["unknown"] == "nil"
    assert f["tostring"] == "rproxy.request (live)"
    assert be.requests == []                # answered by the hook

    # no query, HTTP/1.0, another method, Host with a port
    r = get(p, raw=b"POST /p HTTP/1.0\r\nHost: test.local:8080\r\nContent-Length: 2\r\n\r\nhi")
    f = kv(r.body)
    assert (f["method"], f["path"], f["query"], f["uri"], f["version"]) == \
        ("POST", "/p", "nil", "/p", "1.0")
    assert f["host"] == "test.local:8080"
    # HTTP/1.0 without Host: host is nil, the default vhost serves
    r = get(p, raw=b"DELETE /d?k HTTP/1.0\r\n\r\n")
    f = kv(r.body)
    assert (f["method"], f["host"], f["vhost"], f["query"]) == ("DELETE", "nil", "test.local", "k")


def test_request_host_in_absolute_form(backend, rproxy):
    """req.host of an absolute-form request is the target's authority (RFC 9112
    3.2.2: the received Host is then ignored), and the backend must get exactly
    one Host field, that one. Regression: with any x_headers (the default adds
    X-Forwarded-For) proxy_write_request_head used the skip list without "host",
    so the client's own Host went out after the rewritten one."""
    be, p = start(backend, rproxy, r"""
function rproxy.on_request(req) req:set_header("X-Seen-Host", req.host) end
""")
    r = get(p, raw=b"GET http://test.local/abs?q=1 HTTP/1.1\r\nHost: other.example\r\n\r\n")
    assert r.status == 200, r
    got = be.requests[0]
    assert got.target == "/abs?q=1"
    assert got.header("X-Seen-Host") == "test.local"
    assert got.header_all("Host") == ["test.local"], got.headers


URI_LUA = r"""
function rproxy.on_request(req)
    local p = req.path
    if p == "/uri" then
        req.uri = "/new/place?a=1&b=2"
    elseif p == "/path" then
        req.path = "/only/path"                   -- the query is kept
    elseif p == "/query" then
        req.query = "z=26"
    elseif p == "/noquery" then
        req.query = nil
    elseif p == "/uri-noquery" then
        req.uri = "/plain"
    elseif p == "/bad-path" then
        req.path = "no-slash"
    elseif p == "/bad-uri" then
        req.uri = "/has space"
    elseif p == "/bad-set" then
        req.method = "POST"
    end
    -- what the hook reads back after a change
    req:set_header("X-Uri", req.uri)
    req:set_header("X-Path", req.path)
    req:set_header("X-Query", tostring(req.query))
end
"""


def test_uri_rewrite(backend, rproxy):
    be, p = start(backend, rproxy, URI_LUA)
    cases = [
        ("/uri?old=1", "/new/place?a=1&b=2", "/new/place", "a=1&b=2"),
        ("/path?keep=1", "/only/path?keep=1", "/only/path", "keep=1"),
        ("/query?old=1", "/query?z=26", "/query", "z=26"),
        ("/query", "/query?z=26", "/query", "z=26"),
        ("/noquery?gone=1", "/noquery", "/noquery", "nil"),
        ("/uri-noquery?gone=1", "/plain", "/plain", "nil"),
        ("/untouched?x=%41", "/untouched?x=%41", "/untouched", "x=%41"),
    ]
    for sent, want, wpath, wquery in cases:
        r = get(p, sent)
        assert r.status == 200, (sent, r)
        doc = json.loads(r.body)
        assert doc["target"] == want, (sent, doc["target"])
        hs = dict((k.lower(), v) for k, v in doc["headers"])
        assert hs["x-uri"] == want and hs["x-path"] == wpath and hs["x-query"] == wquery, hs
    n = len(be.requests)
    for bad, msg in (("/bad-path", "req.path: expected an absolute path"),
                     ("/bad-uri", "req.uri: expected an absolute path"),
                     ("/bad-set", "req.method cannot be set")):
        r = get(p, bad)
        assert r.status == 500, (bad, r)
        assert wait_log(p, msg), p.stderr()[-2000:]
    assert len(be.requests) == n
    assert get(p, "/after").status == 200


HEADERS_LUA = r"""
function rproxy.on_request(req)
    local seen = {}
    for name, value in req:headers() do seen[#seen + 1] = name .. "=" .. value end
    req:set_header("X-Seen", table.concat(seen, ";"))
    req:set_header("X-Lookup", tostring(req:header("x-mixed-CASE")) .. "|"
                               .. tostring(req:header("X-MULTI")) .. "|"
                               .. tostring(req:header("X-Absent")))
    req:set_header("X-Replace", "new")                   -- replaces both X-Replace lines
    req:add_header("X-Multi", "three")                   -- appended after the two others
    req:add_header("X-Added", "a1")
    req:add_header("X-Added", "a2")
    local n = req:remove_header("x-drop")                -- case-insensitive, all of them
    local n0 = req:remove_header("X-Never-There")
    req:set_header("X-Removed", n .. "," .. n0)
    local ok = req:set_header("X-Ok", "v")
    req:set_header("X-Ret", tostring(ok))
    req:set_header("X-Empty", "")
end
"""


def test_header_methods(backend, rproxy):
    be, p = start(backend, rproxy, HEADERS_LUA)
    r = get(p, "/h", headers=[("X-Mixed-Case", "mc"), ("X-Multi", "one"), ("X-Multi", "two"),
                              ("X-Replace", "old1"), ("X-Drop", "d1"), ("X-Replace", "old2"),
                              ("x-DROP", "d2")])
    assert r.status == 200, r
    got = be.requests[0]
    assert got.header("X-Seen") == ("Host=test.local;X-Mixed-Case=mc;X-Multi=one;X-Multi=two;"
                                    "X-Replace=old1;X-Drop=d1;X-Replace=old2;x-DROP=d2")
    assert got.header("X-Lookup") == "mc|one|nil"
    assert got.header_all("X-Replace") == ["new"]
    assert got.header_all("X-Multi") == ["one", "two", "three"]
    assert got.header_all("X-Added") == ["a1", "a2"]
    assert got.header_all("X-Drop") == []
    assert got.header("X-Removed") == "2,0"
    assert got.header("X-Ret") == "true"
    assert got.header_all("X-Empty") == [""]


def test_set_header_over_budget_fails_softly(backend, rproxy):
    """A header the head budget cannot take: `nil, message`, not an error."""
    be, p = start(backend, rproxy, r"""
function rproxy.on_request(req)
    local ok, err = req:set_header("X-Huge", string.rep("h", 200000))
    return req:respond(200, tostring(ok) .. "|" .. tostring(err))
end
""")
    r = get(p, "/big")
    assert r.status == 200 and r.body == b"nil|header fields too large", r.body


ROUTE_LUA = r"""
rproxy.backend "app2" { address = "@B2@" }
rproxy.backend "app3" { address = "@B3@" }
rproxy.pool "other" { "app3" }
function rproxy.on_request(req)
    local before = req.target
    if req.path == "/to-backend" then req:route("app2")
    elseif req.path == "/to-pool" then req:route("other")
    elseif req.path == "/to-nowhere" then req:route("nope") end
    req:set_header("X-Target", before .. ">" .. req.target)
end
"""


def test_route(backend, rproxy):
    b2, b3 = backend(name="two"), backend(name="three")
    be, p = start(backend, rproxy, ROUTE_LUA, B2=b2.address, B3=b3.address)
    r = get(p, "/to-backend")
    assert r.status == 200 and r.header("X-Backend") == "two", r
    assert b2.requests[0].header("X-Target") == "app>app2"
    r = get(p, "/to-pool")
    assert r.status == 200 and r.header("X-Backend") == "three", r
    assert b3.requests[0].header("X-Target") == "app>other"
    r = get(p, "/to-nowhere")
    assert r.status == 500, r
    assert wait_log(p, "req:route(): unknown pool or backend 'nope'"), p.stderr()[-2000:]
    r = get(p, "/default")
    assert r.status == 200 and r.header("X-Backend") == "normal", r
    assert be.requests[0].header("X-Target") == "app>app"
    assert len(b2.requests) == 1 and len(b3.requests) == 1


RESPOND_LUA = r"""
function rproxy.on_request(req)
    local p = req.path
    if p == "/plain" then
        return req:respond(403)
    elseif p == "/full" then
        return req:respond(418, "short and stout\n",
                           { ["Content-Type"] = "text/plain", ["X-One"] = "1",
                             ["X-Many"] = { "m1", "m2" }, ["X-Num"] = 42 })
    elseif p == "/big" then
        return req:respond(200, string.rep("0123456789", 100000))
    elseif p == "/binary" then
        return req:respond(200, "a\0b\r\n\255")
    elseif p == "/twice" then
        req:respond(200, "first")
        req:respond(200, "second")
    elseif p == "/bad-status" then
        return req:respond(100)
    elseif p == "/moved" then
        return req:redirect(301, "https://example.org/new?x=1")
    elseif p == "/found" then
        return req:redirect("/elsewhere")
    elseif p == "/see" then
        return req:redirect(303, "/other")
    elseif p == "/bad-redirect" then
        return req:redirect(200, "/x")
    end
end
"""


def test_respond(backend, rproxy):
    be, p = start(backend, rproxy, RESPOND_LUA)
    r = get(p, "/plain")
    assert r.status == 403 and r.reason == "Forbidden" and r.body == b"", r
    assert r.header("Content-Length") == "0"
    r = get(p, "/full")
    assert r.status == 418 and r.body == b"short and stout\n", r
    assert r.header("Content-Type") == "text/plain"
    assert r.header_all("X-One") == ["1"]
    assert r.header_all("X-Many") == ["m1", "m2"]
    assert r.header("X-Num") == "42"
    assert r.header_all("Content-Length") == ["16"]
    r = get(p, "/big")
    assert r.status == 200 and r.complete and r.body == b"0123456789" * 100000
    r = get(p, "/binary")
    assert r.body == b"a\0b\r\n\xff"
    r = get(p, "/full", method="HEAD")
    assert r.status == 418 and r.body == b"" and r.header("Content-Length") == "16", r
    r = get(p, "/twice")
    assert r.status == 500, r
    assert wait_log(p, "the request was already answered")
    r = get(p, "/bad-status")
    assert r.status == 500, r
    assert wait_log(p, "a status from 200 to 599")
    assert be.requests == []


def test_redirect(backend, rproxy):
    be, p = start(backend, rproxy, RESPOND_LUA)
    for path, status, loc in (("/moved", 301, "https://example.org/new?x=1"),
                              ("/found", 302, "/elsewhere"), ("/see", 303, "/other")):
        r = get(p, path)
        assert r.status == status and r.header("Location") == loc, (path, r, r.headers)
        assert r.header("Content-Length") == "0"
    r = get(p, "/bad-redirect")
    assert r.status == 500
    assert wait_log(p, "301, 302, 303, 307 or 308")
    assert be.requests == []


def test_respond_keeps_connection_and_order(backend, rproxy):
    """A hook's answer on a keep-alive connection: the next request on it is
    proxied; pipelined answers (proxied, direct, proxied) come back in order."""
    be, p = start(backend, rproxy, RESPOND_LUA)
    c = RawClient(p.port)
    c.send(req("GET", "/plain"))
    r = c.read_response()
    assert r.status == 403 and r.header("Connection") is None, r
    c.send(req("GET", "/proxied-1"))
    r = c.read_response()
    assert r.status == 200 and json.loads(r.body)["target"] == "/proxied-1", r
    c.send(req("GET", "/p-a") + req("GET", "/full") + req("GET", "/p-b"))
    r1, r2, r3 = c.read_response(), c.read_response(), c.read_response()
    c.close()
    assert json.loads(r1.body)["target"] == "/p-a"
    assert r2.status == 418 and r2.body == b"short and stout\n"
    assert json.loads(r3.body)["target"] == "/p-b"
    assert be.paths() == ["/proxied-1", "/p-a", "/p-b"]


def test_respond_to_post_with_body(backend, rproxy):
    """A hook answers a request whose body it never read: the client gets the
    answer (and the connection closes, since the body was not consumed)."""
    be, p = start(backend, rproxy, RESPOND_LUA)
    body = b"x" * 300000
    c = RawClient(p.port)
    c.send(req("POST", "/plain", body=body))
    r = c.read_response()
    c.close()
    assert r is not None and r.status == 403, r
    r = get(p, "/plain", method="POST", body=b"tiny")
    assert r.status == 403
    assert be.requests == []


def test_respond_cannot_emit_conflicting_framing(backend, rproxy):
    """req:respond() used to copy its headers verbatim, so a hook (or request data a
    hook copies into a header) can add Content-Length / Transfer-Encoding
    beside the proxy's own Content-Length: the client then reads the wrong body
    length (RFC 9112 6.3: a response with both, or with differing lengths, is a
    smuggling vector). Either refuse such names (500) or replace them; never
    send two framings. Regression test."""
    be, p = start(backend, rproxy, r"""
function rproxy.on_request(req)
    if req.path == "/cl" then
        return req:respond(200, "hello", { ["Content-Length"] = "100" })
    elseif req.path == "/te" then
        return req:respond(200, "hello", { ["Transfer-Encoding"] = "chunked" })
    end
end
""")
    for path in ("/cl", "/te"):
        c = RawClient(p.port, timeout=3)
        c.send(req("GET", path, headers=[("Connection", "close")]))
        c.wait_closed(3)
        head = bytes(c.buf).split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
        c.close()
        framing = [l for l in head.split("\r\n")
                   if l.startswith("content-length:") or l.startswith("transfer-encoding:")]
        assert len(framing) <= 1, (path, head)
        if framing and head.startswith("http/1.1 200"):
            assert framing == ["content-length: 5"], (path, head)


def test_respond_204_304_have_no_body(backend, rproxy):
    """RFC 9110 6.4.1 / 8.6: a 204 or 304 ends at its head, and a 204 carries
    no Content-Length. req:respond(204, "oops") used to write "Content-Length: 4"
    and the 4 bytes: a client reads them as the start of the next response on the
    connection (desync). Regression test."""
    be, p = start(backend, rproxy, r"""
function rproxy.on_request(req)
    if req.path == "/204" then return req:respond(204, "oops") end
    if req.path == "/304" then return req:respond(304, "oops") end
end
""")
    for path in ("/204", "/304"):
        c = RawClient(p.port, timeout=5)
        c.send(req("GET", path) + req("GET", "/next"))
        r1 = c.read_response()
        r2 = c.read_response()
        c.close()
        assert r1.status == int(path[1:]), r1
        assert r2 is not None and r2.head.startswith(b"HTTP/1.1 200 "), (path, r2 and r2.head)
        assert json.loads(r2.body)["target"] == "/next"
        if path == "/204":
            assert r1.header("Content-Length") is None, r1.headers


ROUTE_HOOK_LUA = r"""
rproxy.backend "app2" { address = "@B2@" }
rproxy.vhost "routes.test" { routes = {
    { prefix = "/hooked", to = "app",
      on_request = function(req)
          route_calls = (route_calls or 0) + 1
          req:add_header("X-Order", "route")
          req:set_header("X-Route-Saw-Global", tostring(req:header("X-Global")))
          if req.path == "/hooked/route-answers" then return req:respond(202, "by route") end
          if req.path == "/hooked/reroute" then req:route("app2") end
      end },
    { prefix = "/count", to = "app",
      on_request = function(req) return req:respond(200, tostring(route_calls or 0)) end },
    { to = "app", on_request = function(req) req:add_header("X-Order", "catch-all") end },
} }
function rproxy.on_request(req)
    if req.host ~= "routes.test" then return end
    req:add_header("X-Order", "global")
    req:set_header("X-Global", "1")
    if req.path == "/hooked/global-answers" then return req:respond(203, "by global") end
end
"""


def test_per_route_hook(backend, rproxy):
    """Every route of the vhost has its own on_request (see the next test for a
    vhost that mixes hooked and plain routes)."""
    b2 = backend(name="two")
    be, p = start(backend, rproxy, ROUTE_HOOK_LUA, B2=b2.address)
    h = "routes.test"
    r = get(p, "/hooked/x", host=h)
    assert r.status == 200, r
    got = be.requests[-1]
    assert got.header_all("X-Order") == ["global", "route"]      # global first, then route
    assert got.header("X-Route-Saw-Global") == "1"
    r = get(p, "/other", host=h)                                 # the catch-all's hook
    assert r.status == 200 and be.requests[-1].header_all("X-Order") == ["global", "catch-all"]
    r = get(p, "/hooked/route-answers", host=h)
    assert r.status == 202 and r.body == b"by route", r
    r = get(p, "/hooked/reroute", host=h)
    assert r.status == 200 and r.header("X-Backend") == "two", r
    r = get(p, "/hooked/global-answers", host=h)                 # the route hook is skipped
    assert r.status == 203 and r.body == b"by global", r
    r = get(p, "/count", host=h)
    assert r.body == b"3", r.body                                # x, route-answers, reroute
    r = get(p, "/hooked/x")                                      # another vhost: no route hook
    assert r.status == 200 and be.requests[-1].header("X-Order") is None


def test_per_route_hook_beside_plain_routes(backend, rproxy):
    """A route's on_request must run even when another route of the same vhost
    has none (the usual case: a catch-all { to = "app" }). Regression: in
    lua/lua_state.c ls_vhost_opts(), for a route table without on_request,
    `else if (lua_istable(L, -1))` tested the nil field, not the route, so the
    route table stayed on the stack; the final lua_rawset stored into the wrong
    table and registry["rproxy.route_fns"][vhost] was never set: every route
    hook of that vhost was silently dropped."""
    be, p = start(backend, rproxy, r"""
rproxy.vhost "mixed.test" { routes = {
    { prefix = "/hooked", to = "app", on_request = function(req) return req:respond(201, "route") end },
    { to = "app" },
} }
rproxy.vhost "plain-first.test" { routes = {
    { prefix = "/plain", to = "app" },
    { prefix = "/hooked", to = "app", on_request = function(req) return req:respond(201, "route") end },
} }
""")
    for host in ("mixed.test", "plain-first.test"):
        r = get(p, "/hooked", host=host)
        assert r.status == 201 and r.body == b"route", (host, r)
        assert get(p, "/plain", host=host).status == 200


CTX_LUA = r"""
rproxy.backend "app2" { address = "@B2@" }
rproxy.pool "lb" { "app1", "app2", balance = function(req, pool)
    req.ctx.balanced = (req.ctx.balanced or 0) + 1
    req.ctx.trail = req.ctx.trail .. ">balancer"
    return pool.backends[1]
end }
rproxy.vhost "ctx.test" { routes = { { to = "lb" } } }
function rproxy.on_request(req)
    req.ctx.trail = "request"
    req.ctx.seen_before = tostring(req.ctx.previous)      -- a fresh table each request
    req.ctx.previous = req.path
    req:set_header("X-Ctx-Is-Same", tostring(req.ctx == req.ctx))
end
function rproxy.on_response(req, res)
    req.ctx.trail = req.ctx.trail .. ">response"
    res:set_header("X-Ctx", req.ctx.trail .. "|" .. req.ctx.seen_before .. "|"
                            .. tostring(req.ctx.balanced))
end
function rproxy.on_log(req, res)
    rproxy.log("notice", "ctx-log", req.path, req.ctx.trail .. ">log")
end
"""


def test_ctx_across_hooks(backend, rproxy):
    b2 = backend(name="two")
    be, p = start(backend, rproxy, CTX_LUA, B2=b2.address)
    c = RawClient(p.port)
    for path in ("/c1", "/c2"):
        c.send(req("GET", path, host="ctx.test"))
        r = c.read_response()
        assert r.status == 200, r
        assert r.header("X-Ctx") == "request>balancer>response|nil|1", r.headers
        assert wait_log(p, "ctx-log %s request>balancer>response>log" % path), p.stderr()[-2000:]
    c.close()
    assert be.requests[0].header("X-Ctx-Is-Same") == "true"
    # no balancer on the default vhost's pool
    r = get(p, "/plain")
    assert r.header("X-Ctx") == "request>response|nil|nil", r.headers
