"""Head re-serialisation, checked on the bytes the backend recorded and on what
the client got: hop-by-hop fields removed both ways (RFC 9110 7.6.1), Host
kept, Via added (7.6.3), X-Forwarded-For / X-Forwarded-Proto / X-Real-IP."""

import re
import socket

from httpclient import RawClient, exchange, parse_response, req
from proxy import basic_lua

HOP_REQUEST = [
    ("Host", "h.test"),
    ("Connection", "keep-alive, X-Drop-Me"),
    ("X-Drop-Me", "1"),
    ("Keep-Alive", "timeout=5"),
    ("TE", "trailers"),
    ("Upgrade", "websocket"),
    ("Proxy-Connection", "keep-alive"),
    ("X-Keep", "yes"),
    ("User-Agent", "semantics-test"),
]


def one_request(backend, rproxy, headers, listen="", handler=None, path="/h"):
    be = backend(handler=handler) if handler else backend()
    p = rproxy(basic_lua({"app1": be.address}, listen=listen))
    c = RawClient(p.port)
    c.send(req("GET", path, host=None, headers=headers))
    r = c.read_response()
    c.close()
    assert r is not None and r.status == 200, r
    assert be.wait_requests(1)
    return be.requests[0], r


def test_request_hop_by_hop_removed(backend, rproxy):
    got, _ = one_request(backend, rproxy, HOP_REQUEST)
    names = [k.lower() for k, _ in got.headers]
    for h in ("x-drop-me", "keep-alive", "te", "upgrade", "proxy-connection"):
        assert h not in names, "hop-by-hop %r reached the backend:\n%s" % (h, got.head.decode())
    assert "x-drop-me" not in got.tokens("connection"), got.head
    assert got.header("X-Keep") == "yes"
    assert got.header_all("Host") == ["h.test"], "Host must be kept as sent"
    assert got.version == "HTTP/1.1"


def test_request_via_added(backend, rproxy):
    got, _ = one_request(backend, rproxy, [("Host", "h.test"), ("Via", "1.0 fred")])
    via = [v.strip() for line in got.header_all("Via") for v in line.split(",")]
    assert len(via) >= 2 and via[0] == "1.0 fred", "client's Via lost: %r" % via
    assert re.match(r"^(HTTP/)?1\.1 \S+", via[-1]), "no '1.1 <name>' Via entry: %r" % via


def test_request_via_added_without_client_via(backend, rproxy):
    got, _ = one_request(backend, rproxy, [("Host", "h.test")])
    via = got.header_all("Via")
    assert len(via) == 1 and re.match(r"^(HTTP/)?1\.1 \S+", via[0]), via


def test_x_forwarded_for_appended_as_one_line(backend, rproxy):
    got, _ = one_request(backend, rproxy, [("Host", "h.test"), ("X-Forwarded-For", "1.2.3.4")])
    assert got.header_all("X-Forwarded-For") == ["1.2.3.4, 127.0.0.1"], got.head.decode()


def test_x_forwarded_for_two_client_lines_merged(backend, rproxy):
    got, _ = one_request(backend, rproxy, [("Host", "h.test"), ("X-Forwarded-For", "1.1.1.1"),
                                           ("X-Forwarded-For", "2.2.2.2")])
    assert got.header_all("X-Forwarded-For") == ["1.1.1.1, 2.2.2.2, 127.0.0.1"], got.head.decode()


def test_connection_named_list_fields_not_merged(backend, rproxy):
    """RFC 9110 7.6.1: a field Connection names is hop-by-hop, so the client's
    X-Forwarded-For and Via it names are not merged into rproxy's."""
    got, _ = one_request(backend, rproxy, [("Host", "h.test"),
                                           ("Connection", "X-Forwarded-For, Via, X-Foo"),
                                           ("X-Forwarded-For", "1.2.3.4"), ("Via", "1.1 a"),
                                           ("X-Foo", "1")])
    assert got.header_all("X-Forwarded-For") == ["127.0.0.1"], got.head.decode()
    assert got.header_all("Via") == ["1.1 rproxy"], got.head.decode()
    assert got.header_all("X-Foo") == [], got.head.decode()


def test_x_forwarded_for_added(backend, rproxy):
    got, _ = one_request(backend, rproxy, [("Host", "h.test")])
    assert got.header_all("X-Forwarded-For") == ["127.0.0.1"], got.head.decode()


def test_x_forwarded_proto_and_real_ip(backend, rproxy):
    xh = 'x_headers = { "X-Forwarded-For", "X-Forwarded-Proto", "X-Real-IP" }'
    got, _ = one_request(backend, rproxy, [("Host", "h.test"), ("X-Real-IP", "6.6.6.6"),
                                           ("X-Forwarded-Proto", "https")], listen=xh)
    assert got.header_all("X-Real-IP") == ["127.0.0.1"], \
        "X-Real-IP must be the proxy's view, not the client's: %r" % got.header_all("X-Real-IP")
    assert got.header_all("X-Forwarded-Proto") == ["http"], got.header_all("X-Forwarded-Proto")
    assert got.header_all("X-Forwarded-For") == ["127.0.0.1"]


def test_underscore_aliases_of_proxy_fields_dropped(backend, rproxy):
    """CGI, WSGI and Rack backends map '_' and '-' in a field name to one
    variable (HTTP_X_FORWARDED_FOR): a client's X_Forwarded_For, X_Real_IP or
    x_forwarded_proto would stand for the values rproxy sets. They are dropped
    like the fields they alias; other names with '_' pass."""
    xh = 'x_headers = { "X-Forwarded-For", "X-Forwarded-Proto", "X-Real-IP" }'
    got, _ = one_request(backend, rproxy, [("Host", "h.test"), ("X_Forwarded_For", "6.6.6.6"),
                                           ("X_Real_IP", "6.6.6.6"),
                                           ("x_forwarded-PROTO", "https"), ("Via_", "x"),
                                           ("X_App_Token", "kept")], listen=xh)
    names = [k.lower() for k, _ in got.headers]
    for alias in ("x_forwarded_for", "x_real_ip", "x_forwarded-proto"):
        assert alias not in names, "%s reached the backend:\n%s" % (alias, got.head.decode())
    assert got.header_all("X-Forwarded-For") == ["127.0.0.1"], got.head.decode()
    assert got.header_all("X-Real-IP") == ["127.0.0.1"], got.head.decode()
    assert got.header_all("X-Forwarded-Proto") == ["http"], got.head.decode()
    assert got.header_all("X_App_Token") == ["kept"], got.head.decode()
    assert got.header_all("Via_") == ["x"], got.head.decode()


def test_options_absolute_form_without_path_is_asterisk(backend, rproxy):
    """RFC 9112 3.2.4: "OPTIONS http://host" (no path, no query) asks about the
    server, and goes on as "OPTIONS *"; with a query the path is "/"."""
    be = backend()
    p = rproxy(basic_lua({"app1": be.address}))
    c = RawClient(p.port)
    for target in (b"http://h.test:8001", b"http://h.test?q=1"):
        c.send(b"OPTIONS " + target + b" HTTP/1.1\r\nHost: h.test\r\n\r\n")
        r = c.read_response()
        assert r is not None and r.status == 200, r
    c.close()
    assert be.wait_requests(2)
    lines = [q.head.split(b"\r\n")[0] for q in be.requests]
    assert lines == [b"OPTIONS * HTTP/1.1", b"OPTIONS /?q=1 HTTP/1.1"], lines


def test_client_address_text_from_other_loopback_addresses(backend, rproxy):
    """The client's address as text (X-Real-IP, X-Forwarded-For) for every
    width of an IPv4 byte: clients bound to other 127/8 addresses."""
    be = backend()
    p = rproxy(basic_lua({"app1": be.address},
                         listen='x_headers = { "X-Forwarded-For", "X-Real-IP" }'))
    for src in ("127.0.0.9", "127.10.99.100", "127.255.0.200", "127.1.2.3"):
        s = socket.create_connection(("127.0.0.1", p.port), timeout=10,
                                     source_address=(src, 0))
        s.sendall(req("GET", "/src"))
        buf = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
            r = parse_response(buf)
            if r is not None:
                break
        s.close()
        assert r is not None and r[0].status == 200, buf[:200]
        got = be.requests[-1]
        assert got.header_all("X-Real-IP") == [src], got.header_all("X-Real-IP")
        assert got.header_all("X-Forwarded-For") == [src], got.header_all("X-Forwarded-For")


def test_x_headers_only_when_configured(backend, rproxy):
    got, _ = one_request(backend, rproxy, [("Host", "h.test")],
                         listen='x_headers = { "X-Forwarded-For" }')
    assert got.header("X-Real-IP") is None and got.header("X-Forwarded-Proto") is None, got.head


def _hop_response(conn, q):
    body = b"response body"
    conn.send(b"HTTP/1.1 200 OK\r\n"
              b"Connection: keep-alive, X-Internal\r\n"
              b"X-Internal: secret\r\n"
              b"Keep-Alive: timeout=5, max=77\r\n"
              b"Proxy-Connection: keep-alive\r\n"
              b"Set-Cookie: a=1; Path=/\r\n"
              b"Set-Cookie: b=2; Path=/\r\n"
              b"X-Backend-Header: kept\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    return True


def test_response_hop_by_hop_removed_and_via_added(backend, rproxy):
    _, r = one_request(backend, rproxy, [("Host", "h.test")], handler=_hop_response)
    names = [k.lower() for k, _ in r.headers]
    assert "x-internal" not in names, r.head.decode()
    assert "proxy-connection" not in names, r.head.decode()
    assert "timeout=5, max=77" not in r.header_all("Keep-Alive"), r.head.decode()
    assert "x-internal" not in r.tokens("connection"), r.head.decode()
    assert r.header("X-Backend-Header") == "kept"
    assert r.header_all("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"], \
        "Set-Cookie lines must stay separate: %r" % r.header_all("Set-Cookie")
    via = r.header_all("Via")
    assert via and re.search(r"(HTTP/)?1\.1 \S+", via[-1]), "no Via on the response: %r" % via
    assert r.body == b"response body"


def test_request_line_and_unknown_method_forwarded(backend, rproxy):
    """Methods llhttp knows but that are unusual, and an encoded path, go through as sent."""
    be = backend()
    p = rproxy(basic_lua({"app1": be.address}))
    for method, path in [("OPTIONS", "/o"), ("PATCH", "/pa%20th?q=%2F"), ("DELETE", "/d")]:
        r, c = exchange(p.port, req(method, path, body=b"x" if method == "PATCH" else b""))
        c.close()
        assert r is not None and r.status == 200, (method, r)
    assert [(q.method, q.target) for q in be.requests] == \
        [("OPTIONS", "/o"), ("PATCH", "/pa%20th?q=%2F"), ("DELETE", "/d")]


def test_repeated_and_empty_fields_kept(backend, rproxy):
    got, _ = one_request(backend, rproxy, [("Host", "h.test"), ("Accept", "text/html"),
                                           ("X-Empty", ""), ("Accept", "application/json"),
                                           ("Cookie", "a=1"), ("Cookie", "b=2")])
    assert got.header_all("Accept") in (["text/html", "application/json"],
                                        ["text/html, application/json"]), got.head
    assert got.header_all("X-Empty") == [""], got.head
    cookies = "; ".join(got.header_all("Cookie"))
    assert "a=1" in cookies and "b=2" in cookies, got.head


def test_pipelined_requests_then_half_close_all_answered(backend, rproxy):
    """A client that sends several requests and shuts its write side (`nc -N`, a
    script) gets every answer, then the close. Only the first was answered: the
    EOF made it the connection's last. (Whether the last answer says Connection:
    close depends on whether the EOF was read before it went out.)"""
    be = backend()
    p = rproxy(basic_lua({"app1": be.address}))
    c = RawClient(p.port)
    c.send(b"".join(req("GET", "/p%d" % i) for i in range(3)))
    c.sock.shutdown(socket.SHUT_WR)
    got = []
    for i in range(3):
        r = c.read_response(timeout=10)
        assert r is not None and r.status == 200, (i, r)
        got.append(r)
    assert c.wait_closed(5), "connection left open after the last answer"
    c.close()
    assert [q.path for q in be.requests] == ["/p0", "/p1", "/p2"]
    # only the last answer may announce the close
    assert all("close" not in (r.header("connection") or "").lower() for r in got[:2]), \
        [r.headers for r in got]


def test_trailers_that_may_not_be_trailers_dropped(backend, rproxy):
    """RFC 9110 6.5.1: framing, routing and hop-by-hop fields cannot be
    trailers, and a next hop that merges trailers into the header section
    would take them for the real ones; nor may a client forge a field rproxy
    sets there. Other trailers pass, both ways."""
    def h(conn, q):
        conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"
                  b"Content-Length: 99\r\nConnection: close\r\nX-Sum: 7\r\n\r\n")
        return True
    be = backend(handler=h)
    p = rproxy(basic_lua({"app1": be.address}, listen='x_headers = { "X-Forwarded-For" }'))
    c = RawClient(p.port)
    c.send(b"POST /t HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n0\r\nContent-Length: 100\r\nHost: evil\r\nConnection: close\r\n"
           b"X-Forwarded-For: 6.6.6.6\r\nX_Forwarded_For: 6.6.6.6\r\nX-Checksum: 42\r\n\r\n")
    r = c.read_response(timeout=10)
    assert r is not None and r.status == 200 and r.complete and r.body == b"ok", r
    # the client's reader files trailers with the fields
    assert r.header("X-Sum") == "7" and r.header("Content-Length") is None, r.headers
    assert r.header("Connection") is None, r.headers
    c.close()
    assert be.wait_requests(1)
    got = be.requests[0]
    assert got.body == b"hello" and got.trailers == [("X-Checksum", "42")], got.trailers
