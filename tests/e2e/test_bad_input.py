"""Bad input: the proxy answers 400 (or the listed code) and closes, and the
backend receives nothing (its byte count stays 0). Then request smuggling: what
the backend parses must be exactly what the proxy parsed."""

import socket
import time

import pytest

from httpclient import RawClient, req
from proxy import basic_lua

LIMITS = 'max_request_line = 1024, max_header_size = "4k", max_headers = 20'

# (id, bytes, acceptable statuses)
HEAD_CASES = [
    ("missing_host_http11", b"GET / HTTP/1.1\r\nUser-Agent: x\r\n\r\n", (400,)),
    # HTTP/0.9 sends its line alone and waits: answered at once, not after read_timeout
    ("http09_request_line", b"GET /\r\n", (400,)),
    ("two_hosts", b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n", (400,)),
    ("host_with_space", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", (400,)),
    ("host_with_slash", b"GET / HTTP/1.1\r\nHost: a.test/x\r\n\r\n", (400,)),
    ("te_on_http10", b"POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5\r\nhello\r\n0\r\n\r\n", (400,)),
    ("cl_and_te", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", (400,)),
    ("te_and_cl", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                  b"Content-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n", (400,)),
    ("duplicate_cl_differing", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                               b"Content-Length: 6\r\n\r\nhello!", (400,)),
    ("non_numeric_cl", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5x\r\n\r\nhello", (400,)),
    ("negative_cl", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\nhello", (400,)),
    # past 2^63 - 1 a next hop that parses a signed 64-bit length reads
    # another one (RFC 9110 §8.6); nginx answers 400 too
    ("cl_2_63", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9223372036854775808\r\n\r\n",
     (400,)),
    ("cl_2_64_minus_1", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551615"
                        b"\r\n\r\n", (400,)),
    ("chunked_not_last", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
                         b"5\r\nhello\r\n0\r\n\r\n", (400, 501)),
    ("unknown_te", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n"
                   b"5\r\nhello\r\n0\r\n\r\n", (400, 501)),
    ("bare_lf_in_head", b"GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n", (400,)),
    ("nul_in_header", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", (400,)),
    ("obs_fold", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\n\r\n", (400,)),
    # a fold after an empty first line: llhttp 8 joins it silently
    ("obs_fold_after_empty_value",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"
     b"5\r\nhello\r\n0\r\n\r\n", (400,)),
    ("obs_fold_host_after_empty_value", b"GET / HTTP/1.1\r\nHost:\r\n x\r\n\r\n", (400,)),
    # a CR not followed by LF: llhttp 8 takes CR + any byte for the empty line
    ("bare_cr_as_empty_line", b"GET / HTTP/1.1\r\nHost: x\r\n\r\r\n", (400,)),
    ("bare_cr_then_request", b"GET /f HTTP/1.1\r\nHost: x\r\n\rX"
                             b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", (400,)),
    ("bare_cr_in_field", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", (400,)),
    # transfer codings: only chunked is understood (others would pass undeclared)
    ("te_gzip_chunked", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                        b"5\r\nhello\r\n0\r\n\r\n", (501,)),
    ("te_gzip_then_chunked_fields", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n"
                                    b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
     (501,)),
    ("te_empty_value", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \r\n\r\n"
                       b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n", (400,)),
    # request-target bytes llhttp 8 lets through
    ("htab_in_target", b"GET /public\tHTTP/1.0\t/admin HTTP/1.1\r\nHost: x\r\n\r\n", (400,)),
    ("ff_in_target", b"GET /a\x0cb HTTP/1.1\r\nHost: x\r\n\r\n", (400,)),
    ("high_bytes_in_target", b"GET /a\xff\x80b HTTP/1.1\r\nHost: x\r\n\r\n", (400,)),
    ("fragment_in_target", b"GET /a#frag HTTP/1.1\r\nHost: x\r\n\r\n", (400,)),
    ("fragment_in_query", b"GET /a?q=1#f HTTP/1.1\r\nHost: x\r\n\r\n", (400,)),
    # an absolute-form authority replaces Host: it is checked like Host
    ("absolute_form_userinfo", b"GET http://a@b/x HTTP/1.1\r\nHost: x\r\n\r\n", (400,)),
    ("absolute_form_empty_host", b"GET http:///x HTTP/1.1\r\nHost: x\r\n\r\n", (400,)),
    ("absolute_form_open_ipv6", b"GET http://[::1/x HTTP/1.1\r\nHost: x\r\n\r\n", (400,)),
    ("space_before_colon", b"GET / HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n", (400,)),
    ("bad_method_token", b"GE(T / HTTP/1.1\r\nHost: x\r\n\r\n", (400,)),
    # a method llhttp does not know cannot be parsed, let alone forwarded: 501
    # when its request line is well-formed (RFC 9110 §9.1), else 400
    ("unknown_method", b"QUERY /q HTTP/1.1\r\nHost: x\r\n\r\n", (501,)),
    ("unknown_method_no_version", b"QUERY /q\r\nHost: x\r\n\r\n", (400,)),
    ("garbage_line", b"GARBAGE\r\n\r\n", (400,)),
    ("bad_version", b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", (400, 505)),
    ("http3_version", b"GET / HTTP/3.0\r\nHost: x\r\n\r\n", (505,)),
    ("garbage_version", b"GET / HTTX/1.1\r\nHost: x\r\n\r\n", (400,)),
    ("request_line_too_long",
     b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", (414,)),
    ("headers_too_big",
     b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-Big-%d: %s\r\n" % (i, b"v" * 1000)
                                                 for i in range(6)) + b"\r\n", (431,)),
    # max_header_size bounds the fields alone, however short the request line
    ("headers_too_big_short_line",
     b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-Big-%d: %s\r\n" % (i, b"v" * 1100)
                                                 for i in range(4)) + b"\r\n", (431,)),
    ("too_many_headers",
     b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H-%d: v\r\n" % i
                                                 for i in range(30)) + b"\r\n", (431,)),
]


@pytest.fixture
def setup(backend, rproxy):
    be = backend()
    p = rproxy(basic_lua({"app1": be.address}, listen=LIMITS))
    return be, p


def rejected(p, data, statuses):
    c = RawClient(p.port)
    c.send(data)
    try:
        r = c.read_response(timeout=10)
    except OSError as e:
        pytest.fail("no answer to bad input %r: %r" % (data[:80], e))
    assert r is not None, "connection closed without an answer to %r" % data[:80]
    assert r.status in statuses, "got %d %s for %r" % (r.status, r.reason, data[:80])
    assert c.wait_closed(5), "connection left open after %d" % r.status
    c.close()
    return r


@pytest.mark.parametrize("data,statuses", [(c[1], c[2]) for c in HEAD_CASES],
                         ids=[c[0] for c in HEAD_CASES])
def test_bad_head_rejected(setup, data, statuses):
    be, p = setup
    rejected(p, data, statuses)
    time.sleep(0.2)
    assert be.bytes_received == 0, "backend received %r" % [bytes(c.raw[:300]) for c in be.conns]


def test_bad_chunk_size_rejected(setup):
    be, p = setup
    data = (b"POST /bc HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"zz\r\nhello\r\n0\r\n\r\n")
    rejected(p, data, (400,))
    time.sleep(0.2)
    assert be.requests == [], "backend got a complete request: %r" % be.requests


# Chunked framing that llhttp 8 accepts although RFC 9112 §7.1 does not: the two
# bytes after a chunk's data are skipped unchecked, and the trailer section may end
# with a bare LF or a CR and any byte. The bytes after it would be a second request.
BAD_CHUNKED = [
    ("junk_after_chunk_data", b"5\r\nhelloXX0\r\n\r\n"),
    ("bare_lf_ends_trailers", b"5\r\nhello\r\n0\r\n\n"),
    ("bare_lf_after_trailer_field", b"5\r\nhello\r\n0\r\nX-T: 1\r\n\n"),
    ("cr_and_junk_end_trailers", b"5\r\nhello\r\n0\r\n\rX"),
    ("bare_cr_in_trailer_field", b"5\r\nhello\r\n0\r\nX-T: 1\rX\r\n\r\n"),
    ("bare_lf_after_chunk_size", b"5\nhello\r\n0\r\n\r\n"),
    # RFC 9112 §7.1.1 chunk extensions that are not: a name missing, a space
    # inside a token, an open quote, a value that is no token
    ("ext_not_after_semicolon", b"5 x\r\nhello\r\n0\r\n\r\n"),
    ("ext_no_name", b"5;\r\nhello\r\n0\r\n\r\n"),
    ("ext_space_in_value", b"5;a=b c\r\nhello\r\n0\r\n\r\n"),
    ("ext_open_quote", b'5;a="open\r\nhello\r\n0\r\n\r\n'),
    ("ext_value_no_name", b"5;=b\r\nhello\r\n0\r\n\r\n"),
    ("ext_comma_in_value", b"5;a=b,c\r\nhello\r\n0\r\n\r\n"),
]


@pytest.mark.parametrize("body", [c[1] for c in BAD_CHUNKED], ids=[c[0] for c in BAD_CHUNKED])
def test_bad_chunked_framing_rejected(setup, body):
    be, p = setup
    data = (b"POST /front HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + body + b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
    rejected(p, data, (400,))
    time.sleep(0.3)
    assert be.requests == [], "backend got a complete request: %r" % be.requests
    assert all(h.path != "/smuggled" for h in be.heads)


def test_chunked_extensions_and_trailers_pass_byte_by_byte(setup):
    """The strict check keeps what is valid, whatever the reads look like: a chunk
    extension and a trailer field, sent one byte per segment."""
    be, p = setup
    data = (b"POST /ck HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;name=val\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n")
    c = RawClient(p.port)
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(len(data)):
        c.send(data[i:i + 1])
        time.sleep(0.002)
    r = c.read_response(timeout=10)
    c.close()
    assert r is not None and r.status == 200, r
    assert be.requests[-1].body == b"hello0123456789"


# RFC 9112 §7.1.1 chunk extensions that llhttp 8.1 alone refuses (the invalid
# ones are in BAD_CHUNKED).
VALID_CHUNK_EXTS = [b"5;a=b;c=d", b"5 ;a=b", b"5; a = b ", b'5;q="x;y \\"z";f', b"5\t"]


@pytest.mark.parametrize("line", VALID_CHUNK_EXTS, ids=range(len(VALID_CHUNK_EXTS)))
def test_valid_chunk_extensions_pass(setup, line):
    be, p = setup
    data = (b"POST /ext HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + line + b"\r\nhello\r\n6;n=2;m\r\n world\r\n0;end=1\r\n\r\n")
    c = RawClient(p.port)
    c.send(data)
    r = c.read_response(timeout=10)
    c.close()
    assert r is not None and r.status == 200, r
    assert be.requests[-1].body == b"hello world"


def served(p, data):
    """data on a new connection gets a 200."""
    c = RawClient(p.port)
    c.send(data)
    r = c.read_response(timeout=10)
    c.close()
    assert r is not None and r.status == 200, r


def test_limits_of_line_and_fields_are_apart(setup):
    """A request line near max_request_line (1024) and fields near max_header_size
    (4k) pass together: neither limit lends to or borrows from the other."""
    be, p = setup
    target = b"/" + b"t" * 990
    fields = b"".join(b"X-F-%d: %s\r\n" % (i, b"v" * 900) for i in range(4))
    served(p, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    q = be.requests[-1]
    assert q.path == target.decode() and q.header("X-F-3") == "v" * 900


def test_request_line_longer_than_max_header_size(backend, rproxy):
    """The line's limit holds even where it is above the fields' budget."""
    be = backend()
    p = rproxy(basic_lua({"app1": be.address},
                         listen='max_request_line = 8192, max_header_size = "1k"'))
    target = b"/" + b"t" * 3000
    served(p, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert be.requests[-1].path == target.decode()
    rejected(p, b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"v" * 1100 + b"\r\n\r\n", (431,))


def test_connection_cannot_drop_host(setup):
    """Host is what the request was routed on: "Connection: host" does not remove
    it towards the backend (other listed fields do go)."""
    be, p = setup
    served(p, b"GET /c HTTP/1.1\r\nHost: x\r\nX-Drop: 1\r\nConnection: host, x-drop\r\n\r\n")
    q = be.requests[-1]
    assert q.header_all("Host") == ["x"], q.headers
    assert q.header_all("X-Drop") == [], q.headers


def test_upgrade_request_served_and_connection_goes_on(setup):
    """rproxy does not switch protocols: an Upgrade request is served as HTTP (the
    field dropped as hop-by-hop), and the connection serves the next requests,
    pipelined or not (llhttp stopped after it and refused them with 400)."""
    be, p = setup
    up = b"GET /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    c = RawClient(p.port)
    c.send(up + b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
    for path in ("/up", "/second"):
        r = c.read_response(timeout=10)
        assert r is not None and r.status == 200, (path, r)
    c.send(b"GET /third HTTP/1.1\r\nHost: x\r\n\r\n")
    r = c.read_response(timeout=10)
    c.close()
    assert r is not None and r.status == 200, r
    assert [q.path for q in be.requests] == ["/up", "/second", "/third"]
    assert be.requests[0].header_all("Upgrade") == []


def test_absolute_form_target_still_served(setup):
    be, p = setup
    served(p, b"GET http://x:8080/abs?q=1 HTTP/1.1\r\nHost: x\r\n\r\n")


def test_good_request_after_rejections_still_served(setup):
    """The limits are not too tight: a normal request with a few headers passes."""
    be, p = setup
    c = RawClient(p.port)
    c.send(req("GET", "/" + "a" * 900, headers=[("X-H-%d" % i, "v" * 100) for i in range(15)]))
    r = c.read_response()
    assert r is not None and r.status == 200, r
    c.close()


# ---- request smuggling ------------------------------------------------------------

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


def test_smuggling_cl_te(setup):
    be, p = setup
    data = (b"POST /front HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" % (5 + len(SMUGGLED))) + SMUGGLED
    rejected(p, data, (400,))
    time.sleep(0.3)
    assert be.bytes_received == 0
    assert all(h.path != "/smuggled" for h in be.heads)


def test_smuggling_te_cl(setup):
    be, p = setup
    data = (b"POST /front HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Length: 4\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED))
    rejected(p, data, (400,))
    time.sleep(0.3)
    assert all(h.path != "/smuggled" for h in be.heads)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_request_inside_body_stays_body(setup, framing):
    """A body that is itself a request: the backend sees one request whose body
    is those bytes, never a second request; the client gets one answer."""
    be, p = setup
    inner = SMUGGLED + b"GET /smuggled2 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    if framing == "chunked":
        data = req("POST", "/outer", headers=[("Transfer-Encoding", "chunked")],
                   body=b"%x\r\n%s\r\n0\r\n\r\n" % (len(inner), inner))
    else:
        data = req("POST", "/outer", body=inner)
    c = RawClient(p.port)
    c.send(data)
    r = c.read_response()
    assert r is not None and r.status == 200, r
    time.sleep(0.5)
    assert not c.buf, "a second response came back: %r" % bytes(c.buf[:200])
    c.close()
    time.sleep(0.2)
    assert [h.path for h in be.heads] == ["/outer"], "backend saw %r" % be.heads
    assert be.requests[0].body == inner


def test_content_length_framing_respected_when_pipelined(setup):
    """'Content-Length: 5' then more bytes: the extra bytes are the client's next
    request (pipelining), so the backend must see exactly the two requests the
    proxy answered, the first with exactly 5 bytes of body."""
    be, p = setup
    data = (b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" + SMUGGLED)
    c = RawClient(p.port)
    c.send(data)
    r1 = c.read_response()
    r2 = c.read_response()
    assert r1 is not None and r1.status == 200 and b'"/a"' in r1.body, r1
    assert r2 is not None and r2.status == 200 and b'"/smuggled"' in r2.body, r2
    c.close()
    assert [q.target for q in be.requests] == ["/a", "/smuggled"]
    assert be.requests[0].body == b"hello" and be.requests[1].body == b""


def test_chunk_size_overflow_rejected(setup):
    be, p = setup
    data = (b"POST /ov HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"1000000000000000000000005\r\nhello\r\n0\r\n\r\n")
    rejected(p, data, (400, 413))
    time.sleep(0.2)
    assert be.requests == []
