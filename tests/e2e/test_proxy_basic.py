"""Basic proxying with curl, http.client and raw sockets: methods, bodies,
HTTP/1.0, keep-alive, pipelining, 100-continue, routing by Host and path, rewrite."""

import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
import zlib

import pytest

from backends import big_download, free_port, pattern_crc
from httpclient import RawClient, curl, exchange, parse_response, recv_until_closed, req
from proxy import REPO, basic_lua


def start_simple(backend, rproxy, mode="normal", handler=None, listen="", be_opts="", threads=1):
    be = backend(mode, handler=handler)
    p = rproxy(basic_lua({"app1": be.address}, listen=listen, backend=be_opts, threads=threads))
    return be, p


def test_get_with_curl(backend, rproxy):
    be, p = start_simple(backend, rproxy)
    r = curl(p.url("/hello?x=1&y=two"), "-H", "X-Test: 1")
    assert r.rc == 0 and r.status == 200, r
    doc = json.loads(r.body)
    assert doc["method"] == "GET" and doc["target"] == "/hello?x=1&y=two"
    assert be.wait_requests(1)
    got = be.requests[0]
    assert got.method == "GET" and got.target == "/hello?x=1&y=two"
    assert got.header("X-Test") == "1"
    assert got.body == b""


def test_get_with_http_client_keepalive(backend, rproxy):
    be, p = start_simple(backend, rproxy)
    c = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10)
    sock = None
    for i in range(5):
        c.request("GET", "/k%d" % i, headers={"Host": "test.local"})
        r = c.getresponse()
        body = r.read()
        assert r.status == 200, (i, r.status, body)
        assert json.loads(body)["target"] == "/k%d" % i
        if sock is None:
            sock = c.sock
        assert c.sock is sock, "the proxy closed the keep-alive connection after request %d" % i
    c.close()
    assert be.paths() == ["/k%d" % i for i in range(5)]


def test_head_has_no_body(backend, rproxy):
    be, p = start_simple(backend, rproxy)
    r = curl(p.url("/head"), "-I")
    assert r.rc == 0 and r.status == 200, r
    # on one connection: a HEAD answer must carry no body, or the GET after it
    # would be read from the wrong place
    c = RawClient(p.port)
    c.send(req("HEAD", "/h1"))
    r1 = c.read_response("HEAD")
    assert r1 is not None and r1.status == 200, r1
    assert r1.header("content-length") is not None or r1.header("transfer-encoding"), r1.headers
    c.send(req("GET", "/g2"))
    r2 = c.read_response()
    assert r2 is not None and r2.status == 200 and r2.complete, (r2, c.buf[:200])
    assert json.loads(r2.body)["target"] == "/g2"
    c.close()
    assert [(q.method, q.target) for q in be.requests][-2:] == [("HEAD", "/h1"), ("GET", "/g2")]


def test_post_content_length(backend, rproxy, tmpdir_rp):
    be, p = start_simple(backend, rproxy)
    data = os.urandom(200 * 1024)
    f = os.path.join(tmpdir_rp, "post.bin")
    with open(f, "wb") as fh:
        fh.write(data)
    r = curl(p.url("/upload"), "--data-binary", "@" + f, "-H", "Content-Type: application/x-test",
             "-H", "Expect:")
    assert r.rc == 0 and r.status == 200, r
    assert be.wait_requests(1)
    got = be.requests[0]
    assert got.method == "POST" and got.target == "/upload"
    assert got.body_len == len(data) and got.body == data
    if not got.chunked:
        assert got.header("content-length") == str(len(data))


def test_post_chunked_with_trailers(backend, rproxy):
    be, p = start_simple(backend, rproxy)
    pieces = [b"hello ", os.urandom(10000), b"", b" world"]
    body = b"".join(b"%x\r\n%s\r\n" % (len(x), x) for x in pieces if x)
    body += b"0\r\nX-Checksum: abc123\r\n\r\n"
    r, c = exchange(p.port, req("POST", "/chunked", headers=[("Transfer-Encoding", "chunked"),
                                                              ("Trailer", "X-Checksum")],
                                body=body))
    assert r is not None and r.status == 200, r
    c.close()
    assert be.wait_requests(1)
    got = be.requests[0]
    assert got.body == b"".join(pieces), "body changed on the way"
    assert ("X-Checksum", "abc123") in got.trailers or \
        got.header("X-Checksum") == "abc123", \
        "trailer lost: backend head %r trailers %r" % (got.head, got.trailers)


def test_post_chunked_with_curl(backend, rproxy, tmpdir_rp):
    be, p = start_simple(backend, rproxy)
    data = os.urandom(300 * 1024)
    f = os.path.join(tmpdir_rp, "post.bin")
    with open(f, "wb") as fh:
        fh.write(data)
    r = curl(p.url("/up"), "-H", "Transfer-Encoding: chunked", "--data-binary", "@" + f)
    assert r.rc == 0 and r.status == 200, r
    assert be.wait_requests(1)
    assert be.requests[0].body == data


def _status_handler(conn, q):
    if q.path == "/204":
        conn.send(b"HTTP/1.1 204 No Content\r\nX-Kind: none\r\n\r\n")
        return True
    if q.path == "/304":
        # a 304 may carry the Content-Length of the representation, never a body
        conn.send(b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 50\r\n\r\n")
        return True
    return conn.echo(q)


def test_204_and_304_have_no_body(backend, rproxy):
    be, p = start_simple(backend, rproxy, handler=_status_handler)
    c = RawClient(p.port)
    c.send(req("GET", "/204"))
    r = c.read_response()
    assert r is not None and r.status == 204, r
    assert "chunked" not in r.tokens("transfer-encoding"), r.headers
    c.send(req("GET", "/304", headers=[("If-None-Match", '"v1"')]))
    r = c.read_response()
    assert r is not None and r.status == 304, (r, bytes(c.buf[:200]))
    assert "chunked" not in r.tokens("transfer-encoding"), r.headers
    c.send(req("GET", "/after"))
    r = c.read_response()
    assert r is not None and r.status == 200 and r.complete, (r, bytes(c.buf[:200]))
    assert json.loads(r.body)["target"] == "/after"
    c.close()


def test_http10_without_keepalive(backend, rproxy):
    be, p = start_simple(backend, rproxy)
    c = RawClient(p.port)
    c.send(b"GET /ten HTTP/1.0\r\nHost: test.local\r\nUser-Agent: old\r\n\r\n")
    r = c.read_response()
    assert r is not None and r.status == 200, r
    assert "chunked" not in r.tokens("transfer-encoding"), "chunked sent to an HTTP/1.0 client"
    assert c.wait_closed(5), "the proxy kept an HTTP/1.0 connection without keep-alive open"
    assert json.loads(r.body)["target"] == "/ten"
    c.close()


def test_http10_without_host(backend, rproxy):
    """Host is optional in HTTP/1.0: the default vhost serves it."""
    be, p = start_simple(backend, rproxy)
    r, c = exchange(p.port, b"GET /nohost HTTP/1.0\r\n\r\n")
    assert r is not None and r.status == 200, r
    assert json.loads(r.body)["target"] == "/nohost"
    c.close()


def test_http10_with_keepalive(backend, rproxy):
    be, p = start_simple(backend, rproxy)
    c = RawClient(p.port)
    for i in range(3):
        c.send(b"GET /ka%d HTTP/1.0\r\nHost: test.local\r\nConnection: keep-alive\r\n\r\n" % i)
        r = c.read_response()
        assert r is not None and r.status == 200 and r.complete, (i, r)
        assert "chunked" not in r.tokens("transfer-encoding")
        assert r.header("content-length") is not None, "1.0 keep-alive needs a Content-Length"
        assert "keep-alive" in r.tokens("connection"), \
            "an HTTP/1.0 client needs 'Connection: keep-alive' to keep the connection: %r" % r.headers
        assert json.loads(r.body)["target"] == "/ka%d" % i
    c.close()


def test_keepalive_reuse_many_requests(backend, rproxy):
    be, p = start_simple(backend, rproxy, be_opts="connections = 2")
    c = RawClient(p.port)
    for i in range(20):
        c.send(req("GET", "/r%d" % i))
        r = c.read_response()
        assert r is not None and r.status == 200, (i, r)
        assert json.loads(r.body)["target"] == "/r%d" % i
    assert c.is_open()
    c.close()
    assert be.connections <= 2, "backend connections opened: %d (pool: 1 thread x 2)" % be.connections


def _slow_first(conn, q):
    if q.path == "/p1":
        time.sleep(0.4)
    return conn.echo(q)


def test_pipelined_requests_answered_in_order(backend, rproxy):
    be, p = start_simple(backend, rproxy, handler=_slow_first)
    c = RawClient(p.port)
    c.send(req("GET", "/p1") + req("POST", "/p2", body=b"pipelined body") + req("GET", "/p3"))
    got = []
    for _ in range(3):
        r = c.read_response()
        assert r is not None and r.status == 200, (got, r)
        got.append(json.loads(r.body)["target"])
    assert got == ["/p1", "/p2", "/p3"]
    c.close()
    assert sorted(be.paths()) == ["/p1", "/p2", "/p3"]
    p2 = [q for q in be.requests if q.path == "/p2"][0]
    assert p2.body == b"pipelined body"


def test_pipelined_past_the_read_limit(backend, rproxy):
    """200 pipelined requests, 140 KiB in one write, behind a slow first answer:
    the proxy stops reading at its 64 KiB input limit and must start again as
    the requests are used up, or the tail waits forever."""
    be, p = start_simple(backend, rproxy, handler=_slow_first)
    pad = [("X-Pad", "p" * 700)]
    paths = ["/p1"] + ["/q%d" % i for i in range(199)]
    batch = b"".join(req("GET", path, headers=pad) for path in paths)
    assert len(batch) > 2 * 64 * 1024
    c = RawClient(p.port, timeout=20)
    c.send(batch)
    got = []
    for _ in paths:
        r = c.read_response(timeout=20)
        assert r is not None and r.status == 200, (len(got), r)
        got.append(json.loads(r.body)["target"])
    assert got == paths
    c.close()


def test_expect_100_continue_with_curl(backend, rproxy, tmpdir_rp):
    be, p = start_simple(backend, rproxy)
    data = os.urandom(4096)
    f = os.path.join(tmpdir_rp, "post.bin")
    with open(f, "wb") as fh:
        fh.write(data)
    # curl waits for the 100 up to 30 s but gives up after 10: no 100 -> failure
    r = curl(p.url("/expect"), "--data-binary", "@" + f, "-H", "Expect: 100-continue",
             "--expect100-timeout", "30", timeout=10)
    assert r.rc == 0 and r.status == 200, r
    assert be.wait_requests(1)
    assert be.requests[0].body == data


def test_expect_100_continue_raw(backend, rproxy):
    be, p = start_simple(backend, rproxy)
    body = b"e" * 2000
    c = RawClient(p.port)
    c.send(req("POST", "/expect", headers=[("Content-Length", "2000"),
                                           ("Expect", "100-continue")]))
    r = c.read_interim_or_final(timeout=5)
    assert r is not None and r.status == 100, "expected '100 Continue' before the body, got %r" % r
    c.send(body)
    r = c.read_response()
    assert r is not None and r.status == 200, r
    assert be.wait_requests(1) and be.requests[0].body == body
    c.close()


def test_expect_from_http10_client_ignored(backend, rproxy):
    """RFC 9110 10.1.1: an HTTP/1.0 request's 100-continue is ignored. The
    client sends its body at once and gets no 100; the backend, which gets the
    request as HTTP/1.1, gets no Expect (it would send a 100 into the void and
    might wait for the body before it)."""
    be, p = start_simple(backend, rproxy)
    body = b"e" * 2000
    c = RawClient(p.port)
    c.send(b"POST /expect HTTP/1.0\r\nHost: test.local\r\nContent-Length: 2000\r\n"
           b"Expect: 100-continue\r\n\r\n" + body)
    r = c.read_interim_or_final(timeout=5)
    assert r is not None and r.status == 200, "an HTTP/1.0 client got %r first" % r
    c.close()
    assert be.wait_requests(1) and be.requests[0].body == body
    assert be.requests[0].header("Expect") is None, be.requests[0].head


HOST_LUA = """
rproxy.settings { threads = 1, grace = 2, log = { error = "stderr", level = "info" } }
rproxy.backend "b1" { address = "@B1@" }
rproxy.backend "b2" { address = "@B2@" }
rproxy.backend "b3" { address = "@B3@" }
rproxy.listen { address = "127.0.0.1:@PORT@" }
rproxy.vhost "a.test" { routes = { { to = "b1" } } }
rproxy.vhost "example.test" { aliases = { "*.example.test" }, routes = { { to = "b2" } } }
rproxy.vhost "fallback.test" { default = true, routes = { { to = "b3" } } }
"""


def test_routing_by_host(backend, rproxy):
    bs = [backend(name="b%d" % i) for i in (1, 2, 3)]
    p = rproxy(HOST_LUA, B1=bs[0].address, B2=bs[1].address, B3=bs[2].address)
    cases = [("a.test", "b1"), ("www.example.test", "b2"), ("example.test", "b2"),
             ("other.test", "b3"), ("fallback.test", "b3"), ("A.Test:8080", "b1"),
             ("notexample.test", "b3"), ("127.0.0.1:%d" % p.port, "b3")]
    for host, want in cases:
        r, c = exchange(p.port, req("GET", "/h", host=host))
        c.close()
        assert r is not None and r.status == 200, (host, r)
        assert r.header("X-Backend") == want, "Host %r went to %s, expected %s" % (
            host, r.header("X-Backend"), want)


PATH_LUA = """
rproxy.settings { threads = 1, grace = 2, log = { error = "stderr", level = "info" } }
rproxy.backend "exact" { address = "@B1@" }
rproxy.backend "glob" { address = "@B2@" }
rproxy.backend "prefix" { address = "@B3@" }
rproxy.backend "regex" { address = "@B4@" }
rproxy.backend "png" { address = "@B5@" }
rproxy.backend "rest" { address = "@B6@" }
rproxy.listen { address = "127.0.0.1:@PORT@" }
rproxy.vhost "p.test" { default = true, routes = {
  { exact = "/exact", to = "exact" },
  { path = "/api/*", to = "glob" },
  { prefix = "/static/", to = "prefix" },
  { regex = "^/v[0-9]+/items$", to = "regex" },
  { path = "/img/*.png", to = "png" },
  { to = "rest" } } }
"""


def test_routing_by_path(backend, rproxy):
    names = ["exact", "glob", "prefix", "regex", "png", "rest"]
    bs = [backend(name=n) for n in names]
    p = rproxy(PATH_LUA, **{"B%d" % (i + 1): b.address for i, b in enumerate(bs)})
    cases = [("/exact", "exact"), ("/exact?q=1", "exact"), ("/exact/more", "rest"),
             ("/api/x", "glob"), ("/api/x/y", "glob"), ("/api", "rest"),
             ("/static/css/a.css", "prefix"), ("/staticx", "rest"),
             ("/v2/items", "regex"), ("/v2/items?page=3", "regex"), ("/v2/items/3", "rest"),
             ("/img/a.png", "png"), ("/img/a.jpg", "rest"), ("/", "rest")]
    wrong = []
    for path, want in cases:
        r, c = exchange(p.port, req("GET", path, host="p.test"))
        c.close()
        assert r is not None and r.status == 200, (path, r)
        if r.header("X-Backend") != want:
            wrong.append("%s -> %s (expected %s)" % (path, r.header("X-Backend"), want))
    assert not wrong, "misrouted: " + "; ".join(wrong)
    # each backend saw exactly its paths, unchanged
    for b in bs:
        for t in b.paths():
            assert [w for pth, w in cases if pth == t] == [b.name], (b.name, t)


REWRITE_LUA = """
rproxy.settings { threads = 1, grace = 2, log = { error = "stderr", level = "info" } }
rproxy.backend "app1" { address = "@B1@" }
rproxy.listen { address = "127.0.0.1:@PORT@" }
rproxy.vhost "r.test" { default = true, routes = {
  { path = "/api/*", to = "app1", rewrite = { "^/api/(.*)$", "/%1" } },
  { to = "app1" } } }
"""


def test_rewrite_keeps_query(backend, rproxy):
    be = backend()
    p = rproxy(REWRITE_LUA, B1=be.address)
    for path in ["/api/users/7?x=1&y=2", "/api/", "/other?z=1", "/api/a/b"]:
        r = curl(p.url(path))
        assert r.rc == 0 and r.status == 200, (path, r)
    assert be.paths() == ["/users/7?x=1&y=2", "/", "/other?z=1", "/a/b"]


def test_demo_backend(rproxy):
    port = free_port()
    demo = subprocess.Popen(["/usr/bin/python3", str(REPO / "tests" / "demo_backend.py"),
                             "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        end = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < end and demo.poll() is None, "demo backend did not start"
                time.sleep(0.05)
        p = rproxy(basic_lua({"demo": "127.0.0.1:%d" % port}))
        c = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10)
        for path in ("/", "/any/path", "/x?y=z"):
            c.request("GET", path)
            r = c.getresponse()
            assert (r.status, r.read()) == (200, b"hello from the demo backend\n")
        c.close()
    finally:
        demo.send_signal(signal.SIGTERM)
        try:
            demo.wait(5)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait(5)


def test_absolute_form_request_target(backend, rproxy):
    """RFC 9112 3.2.2: a server MUST accept the absolute-form; the backend gets origin-form."""
    be, p = start_simple(backend, rproxy)
    r, c = exchange(p.port, b"GET http://test.local/abs?q=1 HTTP/1.1\r\nHost: test.local\r\n\r\n")
    c.close()
    assert r is not None and r.status == 200, r
    assert be.paths() == ["/abs?q=1"], be.paths()
    assert be.requests[0].header("Host") == "test.local"


def test_http10_post_and_get_with_body(backend, rproxy):
    be, p = start_simple(backend, rproxy)
    r, c = exchange(p.port, b"POST /p10 HTTP/1.0\r\nHost: test.local\r\nContent-Length: 5\r\n\r\nhello")
    c.close()
    assert r is not None and r.status == 200, r
    r, c = exchange(p.port, req("GET", "/gb", body=b"get-body"))
    c.close()
    assert r is not None and r.status == 200, r
    assert [(q.target, q.body) for q in be.requests] == [("/p10", b"hello"), ("/gb", b"get-body")]


def test_ipv6_listener(backend, rproxy):
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    be = backend()
    port6 = free_port("::1")
    lua = basic_lua({"app1": be.address}) + \
        'rproxy.listen { address = "[::1]:%d" }\n' % port6
    p = rproxy(lua)
    r = curl("http://[::1]:%d/six" % port6, "-g")
    assert r.rc == 0 and r.status == 200, r
    assert be.paths() == ["/six"]
    assert be.requests[-1].header("X-Forwarded-For") == "::1"
    # 40 keep-alive clients: past the worker's 32 bound idle ones, clients park
    # and keep their address binary; the text is made again when they bind
    clients = [RawClient(port6, host="::1") for _ in range(40)]
    for rnd in range(2):
        for i, c in enumerate(clients):
            c.send(req("GET", "/six/%d/%d" % (rnd, i)))
            r = c.read_response()
            assert r is not None and r.status == 200, r
    for c in clients:
        c.close()
    assert len(be.requests) == 81
    assert {q.header("X-Forwarded-For") for q in be.requests} == {"::1"}


def test_connection_close_from_client(backend, rproxy):
    be, p = start_simple(backend, rproxy)
    c = RawClient(p.port)
    c.send(req("GET", "/cc", headers=[("Connection", "close")]))
    r = c.read_response()
    assert r is not None and r.status == 200 and r.complete, r
    assert "close" in r.tokens("connection"), r.headers
    assert c.wait_closed(5), "connection kept open after 'Connection: close'"
    c.close()


def test_connection_close_closes_without_lingering(backend, rproxy):
    """A request read whole with nothing after it: the answer, then EOF at once
    (no half-close and wait for the client's EOF); the client sees a clean end."""
    be, p = start_simple(backend, rproxy)
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
        s.sendall(req("GET", "/cc", headers=[("Connection", "close")]))
        buf = recv_until_closed(s)            # a RST would raise here
        s.close()
        r = parse_response(buf, eof=True)
        assert r is not None and r[0].status == 200 and r[0].complete, buf[:200]


def test_answer_survives_bytes_after_connection_close(backend, rproxy):
    """Bytes after a Connection: close request must not turn the close into a
    RST: closing a socket with unread input sends one and drops what is still
    in the send queue, the tail of a large answer to a slow reader. The proxy
    lingers then (half-close, drain, close)."""
    size = 8 << 20
    be = backend(handler=big_download(size))
    p = rproxy(basic_lua({"app1": be.address}))
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.settimeout(20)
    s.connect(("127.0.0.1", p.port))
    s.sendall(req("GET", "/big-cc", headers=[("Connection", "close")])
              + req("GET", "/after-close"))
    buf = bytearray()
    sent = False
    while True:
        d = s.recv(64 * 1024)
        if not d:
            break
        buf += d
        if not sent and len(buf) > size - (1 << 20):
            # the proxy has read the whole answer and stopped reading the
            # client: these bytes stay unread in its socket
            s.sendall(b"x" * 1000)
            sent = True
            time.sleep(0.3)
    s.close()
    head, _, body = bytes(buf).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    assert len(body) == size, "%d of %d body bytes: the close destroyed the answer" % (
        len(body), size)
    assert zlib.crc32(body) == pattern_crc(size)
    assert "/after-close" not in be.paths()


def _big_or_echo(conn, q):
    if q.path.startswith("/big"):
        body = bytes(range(256)) * 4096                     # 1 MiB
        conn.respond(200, [("X-Path", q.path)], body)
        return True
    return conn.echo(q)


def test_pipelined_many_mixed(backend, rproxy):
    """30 pipelined requests in one write: GET, HEAD, POST with bodies, 1 MiB answers."""
    be, p = start_simple(backend, rproxy, handler=_big_or_echo)
    batch = b""
    expect = []
    for i in range(30):
        kind = i % 5
        if kind == 0:
            batch += req("GET", "/big%d" % i)
            expect.append(("GET", "/big%d" % i))
        elif kind == 1:
            batch += req("HEAD", "/h%d" % i)
            expect.append(("HEAD", "/h%d" % i))
        elif kind == 2:
            batch += req("POST", "/p%d" % i, body=b"b%d" % i * 100)
            expect.append(("POST", "/p%d" % i))
        else:
            batch += req("GET", "/g%d" % i)
            expect.append(("GET", "/g%d" % i))
    c = RawClient(p.port, timeout=20)
    c.send(batch)
    for method, path in expect:
        r = c.read_response(method, timeout=20)
        assert r is not None and r.status == 200, (path, r)
        if path.startswith("/big"):
            assert r.header("X-Path") == path and len(r.body) == 1 << 20, (path, r)
            assert r.body == bytes(range(256)) * 4096
        elif method != "HEAD":
            doc = json.loads(r.body)
            assert (doc["method"], doc["target"]) == (method, path)
    c.close()
    posts = [q for q in be.requests if q.method == "POST"]
    assert all(q.body == b"b%s" % q.path[2:].encode() * 100 for q in posts)


def test_request_sent_byte_by_byte(backend, rproxy):
    be, p = start_simple(backend, rproxy)
    body = b"5;ext=1\r\nhello\r\n0006\r\n world\r\n0\r\n\r\n"
    data = req("POST", "/bytes?x=1", headers=[("Transfer-Encoding", "chunked"),
                                              ("X-Split", "one byte at a time")], body=body)
    c = RawClient(p.port)
    for i in range(len(data)):
        c.send(data[i:i + 1])
        time.sleep(0.002)
    r = c.read_response()
    assert r is not None and r.status == 200, r
    c.close()
    assert be.wait_requests(1)
    q = be.requests[0]
    assert (q.target, q.body, q.header("X-Split")) == ("/bytes?x=1", b"hello world",
                                                       "one byte at a time")


def _trickle(conn, q):
    body = b"trickled body"
    data = (b"HTTP/1.1 200 OK\r\nX-Trickle: yes\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body))
    for i in range(len(data)):
        conn.send(data[i:i + 1])
        time.sleep(0.002)
    return True


def test_response_sent_byte_by_byte(backend, rproxy):
    be, p = start_simple(backend, rproxy, handler=_trickle)
    c = RawClient(p.port)
    for i in range(2):
        c.send(req("GET", "/t%d" % i))
        r = c.read_response()
        assert r is not None and r.status == 200 and r.body == b"trickled body", r
        assert r.header("X-Trickle") == "yes"
    c.close()


def test_concurrent_keepalive_clients_no_crosstalk(backend, rproxy):
    """20 keep-alive clients x 25 requests over 2 threads x 2 backend connections:
    every answer is the one for its own request."""
    be, p = start_simple(backend, rproxy, threads=2, be_opts="connections = 2")
    errors = []

    def client(n):
        try:
            c = RawClient(p.port, timeout=20)
            for i in range(25):
                path = "/c%d/r%d" % (n, i)
                body = (b"%d-%d;" % (n, i)) * (i % 4)
                c.send(req("POST" if body else "GET", path, body=body))
                r = c.read_response(timeout=20)
                if r is None or r.status != 200:
                    errors.append((path, r))
                    return
                doc = json.loads(r.body)
                if doc["target"] != path or doc["body_len"] != len(body):
                    errors.append((path, doc["target"], doc["body_len"]))
            c.close()
        except (OSError, ValueError) as e:
            errors.append((n, repr(e)))

    ts = [threading.Thread(target=client, args=(n,)) for n in range(20)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors, errors[:5]
    assert len(be.requests) == 500
    assert be.connections <= 4
