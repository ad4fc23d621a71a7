"""Access logs: one line per request (the proxy's own 400 and 502 included), the
JSON keys, the {TOKEN} format, combined, and hostile bytes that must not break a
JSON line."""

import json
import re
import socket
import struct
import time

from backends import free_port
from httpclient import RawClient, exchange, req
from luautil import wait_log

KEYS = ["ts", "client", "client_port", "method", "uri", "proto", "status", "host", "referer",
        "user_agent", "backend", "backend_port", "request_time", "upstream_time", "bytes_in",
        "bytes_out"]

LOG_LUA = """
rproxy.settings { threads = 1, grace = 2,
  log = { error = "stderr", level = "info", access = { output = "@ACCESS@", format = "@FORMAT@" } } }
rproxy.backend "app1" { address = "@B1@" }
rproxy.backend "dead" { address = "@DEAD@", connect_timeout = 2, retry = 0.2 }
rproxy.listen { address = "127.0.0.1:@PORT@" }
rproxy.vhost "down.test" { routes = { { to = "dead" } } }
rproxy.vhost "test.local" { default = true, routes = { { to = "app1" } } }
"""


def start(backend, rproxy, fmt):
    be = backend()
    p = rproxy(LOG_LUA, B1=be.address, DEAD="127.0.0.1:%d" % free_port(), FORMAT=fmt)
    return be, p


def lines_after(p, n):
    """The access-log lines once n are there (stops the proxy if they are buffered)."""
    if not p.wait_access_lines(n, timeout=5):
        p.stop()
    return p.access_lines()


def test_json_one_line_per_request(backend, rproxy):
    be, p = start(backend, rproxy, "json")
    c = RawClient(p.port)
    port = c.sock.getsockname()[1]
    for i in range(3):
        c.send(req("GET", "/logme?q=%d" % i, headers=[("User-Agent", "log-agent/1.0"),
                                                      ("Referer", "http://ref.test/")]))
        r = c.read_response()
        assert r is not None and r.status == 200
    c.send(req("POST", "/post", body=b"0123456789"))
    assert c.read_response().status == 200
    c.close()
    r, c = exchange(p.port, b"GET /nohost HTTP/1.1\r\n\r\n")
    assert r is not None and r.status == 400, r
    c.close()
    r, c = exchange(p.port, req("GET", "/down", host="down.test"), timeout=15)
    assert r is not None and r.status == 502, r
    c.close()

    lines = lines_after(p, 6)
    assert len(lines) == 6, "expected 6 access-log lines, got %d:\n%s" % (
        len(lines), b"\n".join(lines).decode("latin-1"))
    recs = [json.loads(l) for l in lines]
    for rec in recs:
        missing = [k for k in KEYS if k not in rec]
        assert not missing, "keys missing %r in %r" % (missing, rec)
    by_uri = {rec["uri"]: rec for rec in recs}
    g = by_uri.get("/logme?q=1")
    assert g is not None, [r["uri"] for r in recs]
    assert g["method"] == "GET" and int(g["status"]) == 200 and g["proto"] == "HTTP/1.1", g
    assert g["client"] == "127.0.0.1" and int(g["client_port"]) == port, g
    assert g["host"] == "test.local", g
    assert g["user_agent"] == "log-agent/1.0" and g["referer"] == "http://ref.test/", g
    # the backend must be identifiable: "IP" + backend_port, or "IP:port" in backend
    assert int(g["backend_port"]) == be.port or g["backend"] == be.address, g
    assert int(g["backend_port"]) > 0, g
    assert int(g["bytes_in"]) > 0 and int(g["bytes_out"]) > 0, g
    assert float(g["request_time"]) >= 0 and float(g["upstream_time"]) >= 0, g
    post = by_uri["/post"]
    assert post["method"] == "POST" and int(post["bytes_in"]) >= 10, post
    assert int(by_uri["/nohost"]["status"]) == 400, by_uri["/nohost"]
    assert int(by_uri["/nohost"]["bytes_in"]) == len(b"GET /nohost HTTP/1.1\r\n\r\n"), \
        by_uri["/nohost"]
    down = by_uri["/down"]
    assert int(down["status"]) == 502 and down["host"] == "down.test", down


def test_token_format(backend, rproxy):
    be, p = start(backend, rproxy, "{SRC} {METH} {URI} {STATUS} {US_HDR}:'User-Agent'")
    r, c = exchange(p.port, req("GET", "/tok", headers=[("User-Agent", "tok-agent/1.0")]))
    c.close()
    assert r.status == 200
    lines = lines_after(p, 1)
    assert [l.decode("latin-1") for l in lines] == ["127.0.0.1 GET /tok 200 tok-agent/1.0"]


def test_combined_format(backend, rproxy):
    be, p = start(backend, rproxy, "combined")
    r, c = exchange(p.port, req("GET", "/comb", headers=[("User-Agent", "comb-agent"),
                                                         ("Referer", "http://ref.test/")]))
    c.close()
    assert r.status == 200
    lines = lines_after(p, 1)
    assert len(lines) == 1, lines
    pat = (r'^127\.0\.0\.1 - - \[[^\]]+\] "GET /comb HTTP/1\.1" 200 \d+ '
           r'"http://ref\.test/" "comb-agent"$')
    assert re.match(pat, lines[0].decode("latin-1")), lines[0]


def test_hostile_bytes_do_not_break_json(backend, rproxy):
    be, p = start(backend, rproxy, "json")
    sent = [
        (b"GET /h1 HTTP/1.1\r\nHost: test.local\r\nUser-Agent: ev\"il\\agent\x01end\r\n\r\n",
         'ev"il\\agent\x01end'),
        (b"GET /h2 HTTP/1.1\r\nHost: test.local\r\nUser-Agent: q\"uote\\ \xff\xfe}{\r\n\r\n",
         'q"uote\\ '),
        (b"GET /h3?a=\"b\\c HTTP/1.1\r\nHost: test.local\r\nUser-Agent: x\r\n\r\n", None),
    ]
    for data, _ in sent:
        r, c = exchange(p.port, data)
        c.close()
        assert r is not None and r.status in (200, 400), r
    lines = lines_after(p, 3)
    assert len(lines) == 3, lines
    for l in lines:
        try:
            rec = json.loads(l.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise AssertionError("access-log line is not valid UTF-8 JSON: %r (%s)" % (l, e))
        assert set(KEYS) <= set(rec), rec
    recs = [json.loads(l) for l in lines]
    for rec in recs:
        if rec["uri"] == "/h1" and int(rec["status"]) == 200:
            assert rec["user_agent"] == sent[0][1], rec
        if rec["uri"] == "/h2" and int(rec["status"]) == 200:
            assert rec["user_agent"].startswith(sent[1][1]), rec
        if rec["uri"].startswith("/h3") and int(rec["status"]) == 200:
            assert rec["uri"] == '/h3?a="b\\c', rec


ABORT_LUA = LOG_LUA + """
function rproxy.on_log(req, res) rproxy.log("notice", "ON_LOG", req.path, res.status) end
"""


def test_requests_cut_short_are_logged(backend, rproxy):
    """A client that resets while the backend works, and a backend that closes
    mid-body after its head went out: each request still gets its access-log
    line (status 0: none sent; 200 with the bytes that went) and its on_log.
    Regression: the abort path skipped both."""
    def h(conn, q):
        if q.path == "/midbody":
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-part")
            time.sleep(0.2)
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.sock.close()
            return False
        if q.path == "/slow":
            time.sleep(1.0)
        return conn.echo(q)
    be = backend(handler=h)
    p = rproxy(ABORT_LUA, B1=be.address, DEAD="127.0.0.1:%d" % free_port(), FORMAT="json")
    s = socket.create_connection(("127.0.0.1", p.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.sendall(req("GET", "/slow"))
    time.sleep(0.3)
    s.close()                                # RST while the backend works
    c = RawClient(p.port)
    c.send(req("GET", "/midbody"))
    r = c.read_response(timeout=10)
    assert r is None or not r.complete, r
    c.close()
    lines = [json.loads(x) for x in lines_after(p, 2)]
    got = {(x["uri"], x["status"]) for x in lines}
    assert got == {("/slow", 0), ("/midbody", 200)}, lines
    mid = [x for x in lines if x["uri"] == "/midbody"][0]
    assert mid["bytes_out"] > 0, mid
    assert wait_log(p, "ON_LOG /slow 0") and wait_log(p, "ON_LOG /midbody 200"), p.stderr()
