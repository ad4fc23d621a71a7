"""The response object: rproxy.on_response(req, res) reads and changes the
backend's status and headers before they reach the client; rproxy.on_log(req,
res) sees the finished exchange (status, sizes, times, backend) read-only."""

import re
import time

from httpclient import RawClient, req
from luautil import APP_ROUTES, get, starter, wait_log

HEAD = """
rproxy.settings { threads = 1, grace = 2, log = { error = "stderr", level = "info" } }
""" + APP_ROUTES

start = starter(HEAD)


RESPONSE_LUA = r"""
function rproxy.on_response(req, res)
    if req.path == "/error" then error("on_response failed on purpose") end
    if req.path == "/status" then res.status = 503 end
    if req.path == "/bad-status" then
        local ok, err = pcall(function() res.status = 600 end)
        res:set_header("X-Err", tostring(ok) .. " " .. tostring(err))
    end
    if req.path == "/req-set" then req:set_header("X-Late", "1") end
    if req.path == "/respond" then req:respond(200, "late") end
    if req.path == "/res-field" then res.backend = "x" end
    local seen = {}
    for name, value in res:headers() do seen[#seen + 1] = name .. "=" .. value end
    res:set_header("X-Seen", table.concat(seen, ";"))
    res:set_header("X-Status", tostring(res.status))
    res:set_header("X-Lookup", tostring(res:header("x-backend")) .. "|" .. tostring(res:header("nope")))
    res:set_header("Content-Type", "text/x-replaced")
    res:add_header("X-Added", "a1")
    res:add_header("X-Added", "a2")
    res:set_header("X-Removed", tostring(res:remove_header("X-BACKEND")) .. ","
                                .. tostring(res:remove_header("X-None")))
    res:set_header("X-Req", req.method .. " " .. req.uri .. " " .. tostring(req:header("X-In")))
end
"""


def test_on_response_headers(backend, rproxy):
    be, p = start(backend, rproxy, RESPONSE_LUA)
    r = get(p, "/r?q=1", headers=[("X-In", "in")])
    assert r.status == 200, r
    assert r.header("X-Seen") == "Content-Type=application/json;X-Backend=normal;" \
        "Content-Length=%s" % r.header("Content-Length"), r.headers
    assert r.header("X-Status") == "200"
    assert r.header("X-Lookup") == "normal|nil"
    assert r.header_all("Content-Type") == ["text/x-replaced"]
    assert r.header_all("X-Added") == ["a1", "a2"]
    assert r.header_all("X-Backend") == []
    assert r.header("X-Removed") == "1,0"
    assert r.header("X-Req") == "GET /r?q=1 in"
    assert r.complete and b'"target": "/r?q=1"' in r.body      # the body is untouched


def test_on_response_bad_status_says_what_it_wants(backend, rproxy):
    """res.status out of range raises naming res.status and the range (it said
    "bad argument #3 to 'newindex'"), and the response goes on unchanged."""
    be, p = start(backend, rproxy, RESPONSE_LUA)
    r = get(p, "/bad-status")
    assert r.status == 200, r
    assert r.header("X-Err").endswith("res.status: expected a status from 200 to 599, got 600"), \
        r.header("X-Err")


def test_on_response_with_chunked_backend(backend, rproxy):
    be, p = start(backend, rproxy, RESPONSE_LUA, mode="chunked")
    c = RawClient(p.port)
    for i in range(2):
        c.send(req("GET", "/chunked%d" % i))
        r = c.read_response()
        assert r.status == 200 and r.complete and r.chunked, r
        assert r.header("X-Status") == "200" and r.header_all("X-Added") == ["a1", "a2"]
    c.close()


def test_on_response_sets_status(backend, rproxy):
    be, p = start(backend, rproxy, RESPONSE_LUA)
    r = get(p, "/status")
    assert r.status == 503 and r.reason == "Service Unavailable", r
    assert r.header("X-Status") == "503"                   # res.status reads back the change
    assert b'"target": "/status"' in r.body


STATUS_SWAP_LUA = r"""
local to = { ["/to204"] = 204, ["/to304"] = 304, ["/was204"] = 200, ["/was304"] = 200,
             ["/head204"] = 204 }
function rproxy.on_response(req, res)
    if to[req.path] then res.status = to[req.path] end
end
"""


def _bodyless_or_echo(conn, q):
    """204 and 304 (with a 304's Content-Length of 50) for /was204 and /was304;
    the JSON echo, with its body, for the rest."""
    if q.path == "/was204":
        conn.respond(204, content_length=False)
        return True
    if q.path == "/was304":
        conn.respond(304, [("Content-Length", "50"), ("ETag", '"e"')], head_only=True)
        return True
    return conn.echo(q)


def test_on_response_status_keeps_the_framing(backend, rproxy):
    """A hook that turns a response with a body into a 204 or a 304 (the body is
    dropped, no length announced), or a 204 or 304 into a 200 (Content-Length: 0),
    leaves the client's stream in step: the request pipelined behind it gets its
    own answer on the same connection."""
    be = backend(handler=_bodyless_or_echo)
    p = rproxy(HEAD + STATUS_SWAP_LUA, THREADS=1, LEVEL="info", SETTINGS="", B1=be.address)
    c = RawClient(p.port)
    want = {"/to204": (204, None), "/to304": (304, None), "/was204": (200, "0"),
            "/was304": (200, "0")}
    for path, (status, length) in want.items():
        c.send(req("GET", path) + req("GET", "/next" + path))
        r = c.read_response()
        assert r.status == status, (path, r)
        assert r.header("Content-Length") == length and r.header("Transfer-Encoding") is None, \
            (path, r.headers)
        assert r.body == b"", (path, r.body)
        r = c.read_response()
        assert r.status == 200 and b'"target": "/next%s"' % path.encode() in r.body, (path, r)
    c.send(req("HEAD", "/head204") + req("GET", "/next"))
    r = c.read_response("HEAD")
    assert r.status == 204 and r.header("Content-Length") is None, r.headers
    r = c.read_response()
    assert r.status == 200 and b'"target": "/next"' in r.body, r
    c.close()


def test_on_response_errors_answer_500(backend, rproxy):
    be, p = start(backend, rproxy, RESPONSE_LUA)
    for path, msg in (("/error", "on_response failed on purpose"),
                      ("/req-set", "not allowed in this hook"),
                      ("/respond", "not allowed in this hook"),
                      ("/res-field", "res.backend cannot be set")):
        r = get(p, path)
        assert r.status == 500, (path, r)
        assert wait_log(p, msg), (path, p.stderr()[-2000:])
        r = get(p, "/after")
        assert r.status == 200, (path, r)
    assert re.search(r"lua: on_response: \S+rproxy\.lua:\d+: on_response failed on purpose",
                     p.stderr())


LOG_LUA = r"""
local fields = { "status", "bytes_in", "bytes_out", "total_time", "queue_time",
                 "connect_time", "ttfb", "upstream_time", "backend" }
function rproxy.on_request(req)
    if req.path == "/direct" then return req:respond(207, "direct body") end
end
function rproxy.on_log(req, res)
    local out = { "path=" .. req.path, "method=" .. tostring(req.method) }
    for _, k in ipairs(fields) do out[#out + 1] = k .. "=" .. tostring(res[k]) end
    out[#out + 1] = "ctype=" .. tostring(res:header("Content-Type"))
    out[#out + 1] = "xbackend=" .. tostring(res:header("x-backend"))
    local ok, err = pcall(function() res.status = 299 end)
    out[#out + 1] = "setstatus=" .. tostring(ok) .. ":" .. tostring(err):gsub("^.-: ", "")
    ok, err = pcall(function() req:set_header("X-Late", "1") end)
    out[#out + 1] = "setheader=" .. tostring(ok) .. ":" .. tostring(err):gsub("^.-: ", "")
    rproxy.log("notice", "LOGHOOK " .. (table.concat(out, " "):gsub("([^ =]+=)", "\t%1")))
end
"""


def log_fields(p, path, timeout=5):
    """The fields of the LOGHOOK line of path ("\tkey=value" pairs)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for line in p.stderr().splitlines():
            if "LOGHOOK" in line:
                f = dict(kv.strip().split("=", 1) for kv in line.split("\t")[1:])
                if f.get("path") == path:
                    return f
        time.sleep(0.05)
    raise AssertionError("no LOGHOOK line for %s:\n%s" % (path, p.stderr()[-3000:]))


def _slow(conn, q):
    time.sleep(0.3)
    return conn.echo(q)


def test_on_log_times_span_a_slow_backend(backend, rproxy):
    """Each time is read when its event happens: a backend that waits 0.3 s before
    answering shows in ttfb, upstream_time and total_time, and not in queue_time.
    rproxy reads the clock once per read callback; a reading kept past its callback
    would make these 0."""
    be = backend(handler=_slow)
    p = rproxy(HEAD + LOG_LUA, B1=be.address)
    assert get(p, "/slow").status == 200
    f = log_fields(p, "/slow")
    assert 0.3 <= float(f["ttfb"]) <= float(f["upstream_time"]) <= float(f["total_time"]) < 5, f
    assert 0 <= float(f["queue_time"]) < 0.3, f


def test_on_log_fields(backend, rproxy):
    be, p = start(backend, rproxy, LOG_LUA)
    sent = req("GET", "/logged?x=1", headers=[("X-Pad", "p" * 50)])
    r = get(p, raw=sent)
    assert r.status == 200
    f = log_fields(p, "/logged")
    assert f["method"] == "GET" and f["status"] == "200", f
    assert int(f["bytes_in"]) == len(sent)
    assert int(f["bytes_out"]) == len(r.head) + len(r.body), (f, len(r.head), len(r.body))
    for k in ("total_time", "queue_time", "ttfb", "upstream_time"):
        v = float(f[k])
        assert 0 <= v < 5, (k, v)
    assert float(f["connect_time"]) == 0                      # a pooled connection
    assert float(f["ttfb"]) <= float(f["upstream_time"]) <= float(f["total_time"])
    assert f["backend"] == "app1"
    assert f["ctype"] == "application/json" and f["xbackend"] == "normal"
    assert f["setstatus"].startswith("false:not allowed in this hook"), f
    assert f["setheader"].startswith("false:not allowed in this hook"), f


def test_on_log_of_a_hook_answer(backend, rproxy):
    be, p = start(backend, rproxy, LOG_LUA)
    r = get(p, "/direct")
    assert r.status == 207 and r.body == b"direct body"
    f = log_fields(p, "/direct")
    assert f["status"] == "207" and f["backend"] == "nil" and f["ctype"] == "nil", f
    assert f["upstream_time"] == "nil" and f["ttfb"] == "nil" and f["connect_time"] == "nil"
    assert int(f["bytes_out"]) == len(r.head) + len(r.body)
    assert be.requests == []


def test_on_log_of_proxy_errors(backend, rproxy):
    """on_log runs for the proxy's own answers too (404 without a route here)."""
    be = backend()
    p = rproxy(HEAD.replace('routes = { { to = "app" } }',
                            'routes = { { prefix = "/in", to = "app" } }') + LOG_LUA,
               B1=be.address)
    r = get(p, "/not-routed")
    assert r.status == 404
    f = log_fields(p, "/not-routed")
    assert f["status"] == "404" and f["backend"] == "nil" and f["method"] == "GET", f


def test_on_log_of_unparsable_request(backend, rproxy):
    """A request line that does not parse gets a 400, and on_log runs for it:
    req.method must not invent a method. Regression: it reported "DELETE"
    (llhttp's method 0, read from a parser that never saw a method)."""
    be, p = start(backend, rproxy, LOG_LUA)
    r = get(p, raw=b"GARBAGE\r\n\r\n")
    assert r.status == 400
    f = log_fields(p, "/")
    assert f["status"] == "400", f
    assert f["method"] != "DELETE", f
    assert get(p, "/after").status == 200


def test_on_log_error_does_not_touch_the_answer(backend, rproxy):
    be, p = start(backend, rproxy, r"""
function rproxy.on_log(req, res) error("on_log failed on purpose") end
""")
    for i in range(3):
        r = get(p, "/l%d" % i)
        assert r.status == 200 and r.complete, r
    assert wait_log(p, "lua: on_log: ")
    assert "on_log failed on purpose" in p.stderr()
