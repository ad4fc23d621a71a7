"""Timeouts measure silence, not duration: a backend that trickles its answer
slower than read_timeout in total but never pauses that long is not cut, nor a
client that uploads slowly but steadily; a backend that stops mid-body is cut
at its read_timeout; and a response paused by a client that does not read
(back-pressure) is not the backend's silence."""

import time
import zlib

from backends import big_download, pattern_crc
from httpclient import RawClient, exchange, req, slow_reader
from proxy import basic_lua

PIECES = 6
GAP = 0.4                                # s between pieces: 2.4 s in all, read_timeout 1


def trickle(conn, q):
    """200 with a Content-Length body sent in PIECES pieces GAP seconds apart."""
    piece = b"0123456789" * 10
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (len(piece) * PIECES))
    for _ in range(PIECES):
        time.sleep(GAP)
        conn.send(piece)
    return True


def stall_mid_body(conn, q):
    """A head promising 1000 bytes, 100 of them, then nothing."""
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100)
    conn.server.stopping.wait(30)
    return False


def test_trickling_backend_is_not_cut(backend, rproxy):
    be = backend(handler=trickle)
    p = rproxy(basic_lua({"app1": be.address}, backend="read_timeout = 1"))
    t0 = time.monotonic()
    r, c = exchange(p.port, req("GET", "/trickle"), timeout=20)
    c.close()
    assert r is not None and r.status == 200, r
    assert r.body == b"0123456789" * 10 * PIECES, r
    assert time.monotonic() - t0 > GAP * PIECES - 0.2, "answered before the backend did"


def test_backend_silent_mid_body_is_cut_at_read_timeout(backend, rproxy):
    be = backend(handler=stall_mid_body)
    p = rproxy(basic_lua({"app1": be.address}, backend="read_timeout = 1"))
    c = RawClient(p.port)
    c.send(req("GET", "/stall"))
    t0 = time.monotonic()
    assert c.wait_closed(1 + 5), "a backend silent mid-body was not cut"
    took = time.monotonic() - t0
    got = bytes(c.buf)
    c.close()
    assert took > 0.7, "cut after %.2f s, before read_timeout" % took
    assert got.startswith(b"HTTP/1.1 200"), got[:100]
    assert len(got.partition(b"\r\n\r\n")[2]) < 1000, "a complete body from a stalled backend"
    assert p.alive(), "rproxy died"
    assert be.wait_requests(1)


def steady_upload(be, p):
    """POSTs PIECES pieces GAP seconds apart; the answer must be 200 with the
    whole body at the backend."""
    c = RawClient(p.port)
    piece = b"u" * 100
    c.send(req("POST", "/slow", headers=[("Content-Length", str(len(piece) * PIECES))]))
    for _ in range(PIECES):
        time.sleep(GAP)
        c.send(piece)
    r = c.read_response(timeout=10)
    c.close()
    assert r is not None and r.status == 200, r
    assert be.requests[-1].body_len == len(piece) * PIECES


def test_slow_steady_upload_is_not_cut(backend, rproxy):
    be = backend()
    steady_upload(be, rproxy(basic_lua({"app1": be.address}, listen="read_timeout = 1")))


def test_upload_longer_than_backend_read_timeout_is_not_cut(backend, rproxy):
    """The backend's read_timeout measures its silence while a response is due;
    while the request body is still on its way, none is due yet: a steady upload
    that lasts longer than that timeout is answered (it got 504)."""
    be = backend()
    steady_upload(be, rproxy(basic_lua({"app1": be.address}, listen="read_timeout = 3",
                                       backend="read_timeout = 1")))


def think_then_echo(conn, q):
    """Answers after GAP * 5 seconds: longer than the client's read_timeout."""
    time.sleep(GAP * 5)
    return conn.echo(q)


def test_whole_upload_then_slow_backend_is_not_a_client_timeout(backend, rproxy):
    """The client's read_timeout covers its body; once the body is whole it is
    off while the backend thinks, and on again for the next request's body on
    the same connection (rproxy reschedules the timer without a del + add)."""
    be = backend(handler=think_then_echo)
    p = rproxy(basic_lua({"app1": be.address}, listen="read_timeout = 1"))
    c = RawClient(p.port)
    body = b"u" * 1000
    t0 = time.monotonic()
    c.send(req("POST", "/think", headers=[("Content-Length", str(len(body)))]) + body)
    r = c.read_response(timeout=10)
    assert r is not None and r.status == 200, r
    assert time.monotonic() - t0 > GAP * 5 - 0.2, "answered before the backend did"
    assert be.requests[-1].body_len == len(body)
    c.send(req("POST", "/stall", headers=[("Content-Length", "1000")]) + b"u" * 100)
    t0 = time.monotonic()
    assert c.wait_closed(1 + 5), "a stalled body after a slow answer was not cut"
    assert time.monotonic() - t0 > 0.7, "cut before read_timeout"
    c.close()
    assert p.alive(), "rproxy died"


def test_client_paused_download_is_not_backend_silence(backend, rproxy):
    """The client stops reading for 3 backend read_timeouts: the proxy stops
    reading the backend (back-pressure) and must not call that a timeout."""
    size = 32 << 20
    be = backend(handler=big_download(size))
    p = rproxy(basic_lua({"app1": be.address}, listen='high_watermark = "256k"',
                         backend='read_timeout = 1, high_watermark = "256k"'))
    s = slow_reader(p.port, "/big", timeout=20)
    time.sleep(3)
    buf = bytearray()
    deadline = time.monotonic() + 60
    try:
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            assert d, "closed before the head"
            buf += d
        head, _, rest = bytes(buf).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        crc, got = zlib.crc32(rest), len(rest)
        while got < size and time.monotonic() < deadline:
            d = s.recv(1 << 20)
            if not d:
                break
            crc = zlib.crc32(d, crc)
            got += len(d)
    finally:
        s.close()
    assert got == size, "%d of %d bytes: the paused download was cut" % (got, size)
    assert crc == pattern_crc(size), "download corrupted"
    assert p.alive(), "rproxy died"


def silent_on_stall(conn, q):
    """Answers, except /stall: nothing at all, on the same kept connection."""
    if q.path == "/stall":
        conn.server.stopping.wait(30)
        return False
    return conn.echo(q)


def test_backend_silent_on_a_reused_connection_is_cut(backend, rproxy):
    """The response deadline is lazy: on a reused backend connection the timer
    pending from the earlier request fires first and must re-arm itself for
    the rest of read_timeout, so a backend silent from the start still gets
    504, and the earlier requests' traffic does not cut it early."""
    be = backend(handler=silent_on_stall)
    p = rproxy(basic_lua({"app1": be.address}, backend="connections = 1, read_timeout = 1"))
    c = RawClient(p.port, timeout=15)
    for i in range(2):                   # the first arms the timer for 1 s from now
        c.send(req("GET", "/ok%d" % i))
        r = c.read_response(timeout=10)
        assert r is not None and r.status == 200, (i, r)
        time.sleep(0.2)
    c.send(req("GET", "/stall"))         # that timer fires 0.5 s into this one
    t0 = time.monotonic()
    r = c.read_response(timeout=1 + 9)
    took = time.monotonic() - t0
    c.close()
    assert r is not None and r.status == 504, "a backend silent on a reused connection: %r" % r
    assert took > 0.7, "cut after %.2f s, before read_timeout" % took
    assert be.wait_requests(3)
    assert len({q.conn_id for q in be.requests}) == 1, "the backend connection was not reused"
