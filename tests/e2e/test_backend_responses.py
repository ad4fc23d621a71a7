"""How backend responses are relayed: chunked, close-delimited (re-framed for a
keep-alive client, closed for HTTP/1.0), 1xx interim answers, malformed heads
(502) and broken chunking after the head went out (never a complete-looking answer)."""

import gzip
import socket
import struct
import time

import pytest

from backends import CHUNKED_BODY, CLOSE_DELIMITED_BODY
from httpclient import RawClient, curl, req
from luautil import wait_log
from proxy import basic_lua


def start(backend, rproxy, mode):
    be = backend(mode)
    p = rproxy(basic_lua({"app1": be.address}))
    return be, p


def test_chunked_response_relayed(backend, rproxy):
    be, p = start(backend, rproxy, "chunked")
    r = curl(p.url("/c"))
    assert r.rc == 0 and r.status == 200, r
    assert r.body == CHUNKED_BODY
    c = RawClient(p.port)
    for i in range(2):                       # and the connection stays usable
        c.send(req("GET", "/c%d" % i))
        resp = c.read_response()
        assert resp is not None and resp.status == 200 and resp.complete, resp
        assert resp.body == CHUNKED_BODY
    c.close()


def test_chunk_extensions_in_response_relayed(backend, rproxy):
    """Valid extensions that llhttp 8.1 alone would refuse (two on a line,
    whitespace, a quoted value with ';'): the body passes, re-chunked."""
    be, p = start(backend, rproxy, "chunk_exts")
    c = RawClient(p.port)
    for i in range(2):
        c.send(req("GET", "/x%d" % i))
        resp = c.read_response(timeout=10)
        assert resp is not None and resp.status == 200 and resp.complete, resp
        assert resp.body == CHUNKED_BODY
    c.close()


def test_close_delimited_to_http11_keepalive_client_is_chunked(backend, rproxy):
    be, p = start(backend, rproxy, "close_delimited")
    c = RawClient(p.port)
    for i in range(2):
        c.send(req("GET", "/cd%d" % i))
        r = c.read_response(timeout=10)
        assert r is not None and r.status == 200, r
        assert r.chunked, "close-delimited body not re-framed as chunked: %r" % r.headers
        assert r.complete and r.body == CLOSE_DELIMITED_BODY, r
        assert not c.eof, "keep-alive client connection closed"
    c.close()
    assert len(be.requests) == 2


def test_close_delimited_to_http10_client_closes(backend, rproxy):
    be, p = start(backend, rproxy, "close_delimited")
    c = RawClient(p.port)
    c.send(b"GET /cd HTTP/1.0\r\nHost: test.local\r\n\r\n")
    r = c.read_response(timeout=10)
    assert r is not None and r.status == 200, r
    assert "chunked" not in r.tokens("transfer-encoding"), "chunked sent to HTTP/1.0: %r" % r.headers
    assert r.complete and r.body == CLOSE_DELIMITED_BODY, r
    assert c.eof or c.wait_closed(5)
    c.close()


def test_close_delimited_with_curl(backend, rproxy):
    be, p = start(backend, rproxy, "close_delimited")
    r = curl(p.url("/cd"))
    assert r.rc == 0 and r.status == 200 and r.body == CLOSE_DELIMITED_BODY, r
    r = curl(p.url("/cd"), "--http1.0")
    assert r.rc == 0 and r.status == 200 and r.body == CLOSE_DELIMITED_BODY, r


def test_interim_responses_relayed_before_final(backend, rproxy):
    be, p = start(backend, rproxy, "interim")
    c = RawClient(p.port)
    c.send(req("GET", "/early"))
    r = c.read_response()
    assert r is not None and r.status == 200 and r.complete, r
    codes = [i.status for i in r.interim]
    assert 103 in codes, "103 Early Hints not relayed (interim seen: %r)" % codes
    hints = [i for i in r.interim if i.status == 103][0]
    assert hints.header("Link") == "</style.css>; rel=preload"
    assert codes == [100, 103], "1xx must be relayed in order: %r" % codes
    # the connection is still in step: the next request gets its own answer
    c.send(req("GET", "/next"))
    r2 = c.read_response()
    assert r2 is not None and r2.status == 200 and b'"/next"' in r2.body, r2
    c.close()


def test_no_interim_responses_to_http10_client(backend, rproxy):
    """RFC 9110 15.2: a server MUST NOT send a 1xx response to an HTTP/1.0 client."""
    be, p = start(backend, rproxy, "interim")
    c = RawClient(p.port)
    c.send(b"GET /early HTTP/1.0\r\nHost: test.local\r\n\r\n")
    r = c.read_interim_or_final()
    assert r is not None and r.status == 200, "HTTP/1.0 client got %r first" % r
    c.close()


@pytest.mark.parametrize("mode", ["bad_status", "dup_cl", "nonnum_cl"])
def test_malformed_response_head_is_502(backend, rproxy, mode):
    be, p = start(backend, rproxy, mode)
    r = curl(p.url("/bad"), timeout=15)
    assert r.rc == 0 and r.status == 502, "backend mode %s: %r" % (mode, r)
    # the proxy recovers: the next request gets its 502 too, not a hang
    r = curl(p.url("/bad2"), timeout=15)
    assert r.status == 502, r


def test_broken_chunking_after_head_is_not_complete(backend, rproxy):
    be, p = start(backend, rproxy, "bad_chunk")
    r = curl(p.url("/bc"), timeout=15)
    assert r.rc != 0, "curl saw a complete response (status %s, body %r) although the backend's " \
                      "chunking broke" % (r.status, r.body[:100])
    c = RawClient(p.port)
    c.send(req("GET", "/bc2"))
    resp = c.read_response(timeout=10)
    assert resp is None or not resp.complete or resp.status == 502, \
        "complete-looking response relayed: %r" % resp
    if resp is not None and resp.status != 502:
        assert c.wait_closed(5), "client connection not closed after broken upstream chunking"
    c.close()


def test_head_to_chunked_backend(backend, rproxy):
    """A HEAD answer announcing chunked carries no body: the proxy must not wait for one."""
    be, p = start(backend, rproxy, "chunked")
    c = RawClient(p.port)
    c.send(req("HEAD", "/hc"))
    r = c.read_response("HEAD", timeout=10)
    assert r is not None and r.status == 200, r
    c.send(req("GET", "/after"))
    r = c.read_response(timeout=10)
    assert r is not None and r.status == 200 and r.body == CHUNKED_BODY, (r, bytes(c.buf[:200]))
    c.close()


def test_chunked_response_to_http10_client(backend, rproxy):
    be, p = start(backend, rproxy, "chunked")
    c = RawClient(p.port)
    c.send(b"GET /c10 HTTP/1.0\r\nHost: test.local\r\n\r\n")
    r = c.read_response(timeout=10)
    assert r is not None and r.status == 200, r
    assert "chunked" not in r.tokens("transfer-encoding"), "chunked sent to HTTP/1.0: %r" % r.headers
    assert r.body == CHUNKED_BODY, (len(r.body), r.complete)
    assert c.eof or c.wait_closed(5)
    c.close()


def _cl_and_te(conn, q):
    if q.path == "/clte":
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5\r\nhello\r\n0\r\n\r\n")
        return False
    return conn.echo(q)


def test_response_with_cl_and_te(backend, rproxy):
    """RFC 9112 6.3: Transfer-Encoding overrides Content-Length (or the answer is
    refused); never both relayed, never 3 bytes of 'hello'."""
    be = backend(handler=_cl_and_te)
    p = rproxy(basic_lua({"app1": be.address}))
    c = RawClient(p.port)
    c.send(req("GET", "/clte"))
    r = c.read_response(timeout=10)
    assert r is not None and r.status in (200, 502), r
    if r.status == 200:
        assert r.body == b"hello", r.body
        assert not (r.header("content-length") and r.tokens("transfer-encoding")), r.headers
    if not c.eof:
        c.send(req("GET", "/next"))
        r2 = c.read_response(timeout=10)
        if r2 is not None:
            assert r2.status == 200 and b'"/next"' in r2.body, (r2, r2.body[:200])
    c.close()


def _chunked_with_trailer(conn, q):
    conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
              b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n")
    return True


def test_chunked_response_with_trailer(backend, rproxy):
    be = backend(handler=_chunked_with_trailer)
    p = rproxy(basic_lua({"app1": be.address}))
    c = RawClient(p.port)
    for i in range(2):
        c.send(req("GET", "/t%d" % i))
        r = c.read_response(timeout=10)
        assert r is not None and r.status == 200 and r.complete and r.body == b"hello world", \
            (i, r, bytes(c.buf[:200]))
    c.close()


def _big_header(conn, q):
    conn.send(b"HTTP/1.1 200 OK\r\nX-Big: " + b"b" * 20000 + b"\r\nContent-Length: 2\r\n\r\nok")
    return True


def test_big_response_header(backend, rproxy):
    """A 20 KB response header: relayed or refused with 502, never a hang or a crash."""
    be = backend(handler=_big_header)
    p = rproxy(basic_lua({"app1": be.address}))
    r = curl(p.url("/bh"), timeout=15)
    assert r.rc == 0 and r.status in (200, 502), r
    if r.status == 200:
        assert r.body == b"ok" and r.header("X-Big") == "b" * 20000


def _junk_after_chunk_data(conn, q):
    """Chunked framing llhttp 8 accepts (two bytes skipped unchecked after the chunk
    data), then a whole second response the backend should never have sent."""
    conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"
              b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL")
    return True


def test_junk_after_chunk_data_is_not_a_response(backend, rproxy):
    """The bytes after such a body must not become the answer to the next request on
    that backend connection (one connection, so the next request takes it)."""
    be = backend(handler=_junk_after_chunk_data)
    p = rproxy(basic_lua({"app1": be.address}, backend="connections = 1, retry = 0.2"))
    c = RawClient(p.port)
    c.send(req("GET", "/first"))
    r = c.read_response(timeout=10)
    assert r is None or not r.complete or r.status == 502, "relayed as complete: %r" % r
    c.close()
    be.handler = lambda conn, q: conn.echo(q)
    c = RawClient(p.port)
    c.send(req("GET", "/second"))
    r = c.read_response(timeout=10)
    c.close()
    assert r is not None and r.status == 200, r
    assert b"EVIL" not in r.body and b'"/second"' in r.body, r.body


def answer_to_one_get(backend, rproxy, raw):
    """What a client gets for one GET when the backend answers raw and closes."""
    def h(conn, q):
        conn.send(raw)
        return False
    be = backend(handler=h)
    p = rproxy(basic_lua({"app1": be.address}))
    c = RawClient(p.port)
    c.send(req("GET", "/r"))
    r = c.read_response(timeout=10)
    c.close()
    return r


BAD_STATUS_LINES = [
    ("two_digit_status", b"HTTP/1.1 20 1 OK\r\nContent-Length: 2\r\n\r\nok"),
    ("status_099", b"HTTP/1.1 099 Weird\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ("status_0", b"HTTP/1.1 0 Zero\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ("control_bytes_in_reason", b"HTTP/1.1 200 O\x0e\x7fK\r\nContent-Length: 2\r\n\r\nok"),
]


@pytest.mark.parametrize("raw", [c[1] for c in BAD_STATUS_LINES],
                         ids=[c[0] for c in BAD_STATUS_LINES])
def test_invalid_status_line_is_502(backend, rproxy, raw):
    """A status code is three digits (llhttp 8 takes one or two, which would pass
    for an interim answer), and a reason phrase has no control bytes: 502, and
    nothing of that line reaches the client."""
    r = answer_to_one_get(backend, rproxy, raw)
    assert r is not None and r.status == 502, r


def test_broken_chunking_in_the_first_read_is_502(backend, rproxy):
    """Head and broken chunking in one segment: nothing of the answer has reached the
    client when the break shows, so it gets a 502 (it got a bare close), and its
    connection goes on."""
    def h(conn, q):
        if q.path == "/after":
            return conn.echo(q)
        conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n")
        return False
    be = backend(handler=h)
    p = rproxy(basic_lua({"app1": be.address}, backend="retry = 0.2"))
    c = RawClient(p.port)
    c.send(req("GET", "/broken"))
    r = c.read_response(timeout=10)
    assert r is not None and r.status == 502, r
    c.send(req("GET", "/after"))
    r = c.read_response(timeout=10)
    c.close()
    assert r is not None and r.status == 200, r


@pytest.mark.parametrize("interim", [b"HTTP/1.1 103 Early Hints\r\nConnection: close\r\n\r\n",
                                     b"HTTP/1.0 102 Processing\r\n\r\n"],
                         ids=["connection_close_103", "http10_102"])
def test_final_response_after_a_closing_interim_one(backend, rproxy, interim):
    """An interim answer's "Connection: close" (or an HTTP/1.0 1xx, which is not
    keep-alive) speaks for the final answer, which carries its own (RFC 9110
    15.2). Regression: llhttp took the stream as closed after the 1xx and ate
    the final 200; the client got a 504 after the backend's read timeout."""
    def h(conn, q):
        conn.send(interim + b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok2")
        return True
    be = backend(handler=h)
    p = rproxy(basic_lua({"app1": be.address}, backend="read_timeout = 5"))
    c = RawClient(p.port)
    for i in range(2):                       # and the backend connection stays in step
        c.send(req("GET", "/i%d" % i))
        r = c.read_response(timeout=4)
        assert r is not None and r.status == 200 and r.complete and r.body == b"ok2", (i, r)
    c.close()


def test_close_delimited_body_cut_by_a_reset_is_not_complete(backend, rproxy):
    """A body delimited by the close ends at a clean close only: a reset cut it,
    so the keep-alive client (which gets it chunked) must not get the last
    chunk, and its connection closes. nginx does the same."""
    def h(conn, q):
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npartial-body")
        time.sleep(0.3)                      # the head and the piece reach the client first
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.sock.close()                    # RST
        return False
    be = backend(handler=h)
    p = rproxy(basic_lua({"app1": be.address}))
    c = RawClient(p.port)
    c.send(req("GET", "/rst"))
    r = c.read_response(timeout=10)
    assert r is None or not r.complete or r.status == 502, "a cut body framed as complete: %r" % r
    assert c.eof or c.wait_closed(5), "client connection left open after a cut body"
    c.close()
    assert wait_log(p, "connection failed before the response was complete")


def test_response_with_many_small_fields(backend, rproxy):
    """A response's head is bounded by its bytes (64 KiB) and by 1,000 fields,
    not by a request's 100: 300 small fields and 100 trailer fields pass."""
    fields = b"".join(b"X-F%d: v\r\n" % i for i in range(300))
    trailers = b"".join(b"X-T%d: v\r\n" % i for i in range(100))

    def h(conn, q):
        if q.path == "/trailers":
            conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"
                      + trailers + b"\r\n")
        else:
            conn.send(b"HTTP/1.1 200 OK\r\n" + fields + b"Content-Length: 2\r\n\r\nok")
        return True
    be = backend(handler=h)
    p = rproxy(basic_lua({"app1": be.address}))
    c = RawClient(p.port)
    c.send(req("GET", "/fields"))
    r = c.read_response(timeout=10)
    assert r is not None and r.status == 200 and r.body == b"ok", r
    assert r.header("X-F299") == "v", r.headers[-3:]
    c.send(req("GET", "/trailers"))
    r = c.read_response(timeout=10)
    assert r is not None and r.status == 200 and r.complete and r.body == b"ok", r
    c.close()


def test_http10_response_with_transfer_encoding_is_not_reused(backend, rproxy):
    """RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty
    framing; the connection closes after it. The body is relayed, and the next
    request takes another backend connection."""
    def h(conn, q):
        conn.send(b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
                  b"5\r\nhello\r\n0\r\n\r\n")
        return True
    be = backend(handler=h)
    p = rproxy(basic_lua({"app1": be.address}))
    c = RawClient(p.port)
    for i in range(2):
        c.send(req("GET", "/te%d" % i))
        r = c.read_response(timeout=10)
        assert r is not None and r.status == 200 and r.complete and r.body == b"hello", (i, r)
    c.close()
    ids = [q.conn_id for q in be.requests]
    assert len(ids) == 2 and ids[0] != ids[1], "one backend connection served both: %r" % ids


@pytest.mark.parametrize("te", [b"Transfer-Encoding: gzip, chunked\r\n",
                                b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
                                b"Transfer-Encoding: gzip\r\n"],
                         ids=["gzip_chunked", "two_fields", "gzip_alone"])
def test_response_transfer_coding_other_than_chunked_is_502(backend, rproxy, te):
    """rproxy decodes chunked and re-frames the body: under another transfer
    coding the body would reach the client with that coding unannounced (gzip
    bytes read as the content). 502, as nginx; requests get 501."""
    z = gzip.compress(b"hello")
    r = answer_to_one_get(backend, rproxy, b"HTTP/1.1 200 OK\r\n" + te + b"\r\n"
                          + b"%x\r\n%s\r\n0\r\n\r\n" % (len(z), z))
    assert r is not None and r.status == 502, r
