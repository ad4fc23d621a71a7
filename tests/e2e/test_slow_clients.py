"""Slow clients: a stalled head, a stalled upload and a client that stops reading
are cut at the listener's timeouts, and none of them holds the only backend
connection while it stalls (or after it is cut)."""

import socket
import time

import pytest

from backends import big_download
from httpclient import RawClient, exchange, req, slow_reader
from proxy import basic_lua


def test_half_head_does_not_take_backend_connection(backend, rproxy):
    be = backend()
    p = rproxy(basic_lua({"app1": be.address}, backend="connections = 1",
                         listen="read_timeout = 2"))
    assert be.wait_connections(1)
    staller = RawClient(p.port)
    staller.send(b"GET /stall HTTP/1.1\r\nHost: test.local\r\nX-Half: ")
    t0 = time.monotonic()
    time.sleep(0.2)
    r, c = exchange(p.port, req("GET", "/other"), timeout=10)
    c.close()
    assert r is not None and r.status == 200, r
    assert staller.is_open(), "staller cut before its read_timeout"
    assert time.monotonic() - t0 < 2, \
        "the other client waited %.1fs: the stalled head held the backend connection" % (
            time.monotonic() - t0)
    assert staller.wait_closed(2 + 5), "stalled head not cut at read_timeout (2 s)"
    staller.close()
    assert "/stall" not in [h.target for h in be.heads]


def test_half_head_cut_at_read_timeout(backend, rproxy):
    be = backend()
    p = rproxy(basic_lua({"app1": be.address}, listen="read_timeout = 1"))
    for data in (b"GET /stall HTTP/1.1\r\nHost: te", b"GET /sta"):
        c = RawClient(p.port)
        c.send(data)
        t0 = time.monotonic()
        assert c.wait_closed(1 + 5), "stalled head %r not cut after 6 s" % data
        assert time.monotonic() - t0 > 0.5, "cut long before read_timeout"
        c.close()
    assert be.bytes_received == 0


def test_idle_before_first_byte_cut(backend, rproxy):
    """A connection that never sends anything is closed too."""
    be = backend()
    p = rproxy(basic_lua({"app1": be.address},
                         listen="read_timeout = 1, keepalive_timeout = 1"))
    c = RawClient(p.port)
    assert c.wait_closed(1 + 5), "silent client connection kept open"
    c.close()


def test_stalled_upload_cut_and_backend_freed(backend, rproxy):
    be = backend()
    p = rproxy(basic_lua({"app1": be.address}, listen="read_timeout = 1",
                         backend="connections = 1, read_timeout = 30, retry = 0.2"))
    assert be.wait_connections(1)
    c = RawClient(p.port)
    c.send(req("POST", "/upload", headers=[("Content-Length", "100000")]) + b"u" * 1000)
    assert c.wait_closed(1 + 5), "stalled upload not cut at read_timeout (1 s)"
    resp = bytes(c.buf)
    c.close()
    assert resp == b"" or resp.startswith(b"HTTP/1.1 408") or resp.startswith(b"HTTP/1.1 400"), resp
    assert all(q.path != "/upload" for q in be.requests), "backend saw a complete upload"
    r, c2 = exchange(p.port, req("GET", "/after"), timeout=15)
    c2.close()
    assert r is not None and r.status == 200, "backend connection not freed: %r" % r
    assert be.requests[-1].target == "/after"


@pytest.mark.parametrize("before", ["nothing", "a_400", "a_408"])
def test_client_not_reading_cut_at_write_timeout(backend, rproxy, before):
    """Also on a conn that served a lingering close before (a 400, a 408): the
    linger cleared the socket's write timeout, and a later client on that conn
    kept its backend connection for good (regression)."""
    size = 64 << 20
    be = backend(handler=big_download(size))
    p = rproxy(basic_lua({"app1": be.address},
                         listen="write_timeout = 1, read_timeout = 1",
                         backend="connections = 1, retry = 0.2"))
    if before != "nothing":
        c = RawClient(p.port)
        # a bad field name gets a 400 at once; a head never finished, a 408
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n" if before == "a_400"
               else b"GET / HTTP/1.1\r\nHo")
        r = c.read_response(timeout=10)
        assert r is not None and r.status == int(before[2:]), r
        c.close()                        # the linger ends: the conn becomes a spare
        time.sleep(0.3)
    s = slow_reader(p.port, "/big", timeout=10)
    time.sleep(1 + 4)                    # not reading: the proxy gives up meanwhile
    got = 0
    s.settimeout(5)
    try:
        while True:
            d = s.recv(1 << 20)
            if not d:
                break
            got += len(d)
    except ConnectionResetError:
        pass
    except socket.timeout:
        raise AssertionError("connection still open, %d bytes read" % got)
    finally:
        s.close()
    assert got < size, "the whole %d bytes arrived: no write_timeout" % size
    r, c = exchange(p.port, b"HEAD /after HTTP/1.1\r\nHost: test.local\r\n\r\n",
                    method="HEAD", timeout=15)
    c.close()
    assert r is not None and r.status == 200, "backend connection not freed: %r" % r


def test_keepalive_timeout_closes_idle_client(backend, rproxy):
    be = backend()
    p = rproxy(basic_lua({"app1": be.address}, listen="keepalive_timeout = 1"))
    c = RawClient(p.port)
    c.send(req("GET", "/ka"))
    r = c.read_response()
    assert r is not None and r.status == 200
    t0 = time.monotonic()
    assert c.wait_closed(1 + 5), "idle keep-alive client not closed after keepalive_timeout"
    assert time.monotonic() - t0 > 0.5, "closed long before keepalive_timeout"
    c.close()


def test_keepalive_timeout_counts_from_the_last_request(backend, rproxy):
    """The keep-alive timer is not moved per request: it fires at the first
    request's deadline, sees a later one and waits on. The connection must
    live keepalive_timeout after its last request, not after its first."""
    be = backend()
    p = rproxy(basic_lua({"app1": be.address}, listen="keepalive_timeout = 1.5"))
    c = RawClient(p.port)
    for i in range(3):                   # 0 s, 1 s, 2 s: past the first deadline
        c.send(req("GET", "/ka%d" % i))
        r = c.read_response()
        assert r is not None and r.status == 200, (i, r)
        time.sleep(1.0)
    c.send(req("GET", "/ka3"))
    r = c.read_response()
    assert r is not None and r.status == 200, "closed before keepalive_timeout after the last request"
    assert c.wait_closed(1.5 + 5), "idle keep-alive client never closed"
    c.close()


def test_stalled_head_after_keepalive_cut_at_read_timeout(backend, rproxy):
    """A later request's head that stalls gets read_timeout (1 s), not what is
    left of the much longer keep-alive deadline the pending timer was set for."""
    be = backend()
    p = rproxy(basic_lua({"app1": be.address},
                         listen="read_timeout = 1, keepalive_timeout = 30"))
    c = RawClient(p.port)
    c.send(req("GET", "/first"))
    r = c.read_response()
    assert r is not None and r.status == 200, r
    c.send(b"GET /second HTTP/1.1\r\nHost: test.local\r\nX-Slow: ")
    t0 = time.monotonic()
    assert c.wait_closed(1 + 9), "a stalled head waited for the keep-alive deadline"
    assert time.monotonic() - t0 > 0.5, "cut long before read_timeout"
    assert bytes(c.buf).startswith(b"HTTP/1.1 408"), bytes(c.buf)[:80]
    c.close()
