"""Bodies through TLS, both ways and on both sides of the proxy.

A TLS bufferevent's output is written by the worker's flusher, which runs the
bufferevent's write event at the end of the read callback that filled it
(core/flush.c, flush_run_tls) instead of waiting for EPOLLOUT. What the socket
does not take must still go out once it drains, in order, and the connection
must go on serving afterwards: a client that stops reading mid-download, big
uploads, pipelined requests answered in one callback, and the same through a
TLS backend connection."""

import socket
import time
import zlib

from backends import big_download, pattern_crc
from httpclient import exchange, req
from tlsutil import (client_ctx, config, lq, pki, read_response, tls_backend,  # noqa: F401
                     tls_connect, tls_table)

BIG = 16 << 20


def tls_listener(backend_addr, pki, extra=""):
    return config({"app1": (backend_addr, "connections = 2, retry = 0.2, " + extra)},
                  ['address = "127.0.0.1:@PORT@", ' + tls_table(pki)])


def read_head(s, timeout=10):
    """The response head (bytes up to the blank line) and what followed it."""
    buf = bytearray()
    end = time.monotonic() + timeout
    while b"\r\n\r\n" not in buf and time.monotonic() < end:
        data = s.recv(65536)
        if not data:
            break
        buf += data
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    return head, rest


def stream_download(s, path, nbytes, pause_after=None):
    """GET path on s (keep-alive); returns (status line, crc32 of the body, length).
    pause_after: stop reading for 1 s once that many body bytes came."""
    s.sendall(b"GET %s HTTP/1.1\r\nHost: test.local\r\n\r\n" % path.encode())
    head, first = read_head(s)
    crc, got = zlib.crc32(first), len(first)
    paused = pause_after is None
    end = time.monotonic() + 60
    while got < nbytes and time.monotonic() < end:
        if not paused and got >= pause_after:
            time.sleep(1)
            paused = True
        data = s.recv(min(65536, nbytes - got))
        if not data:
            break
        crc = zlib.crc32(data, crc)
        got += len(data)
    return head.split(b"\r\n")[0], crc, got


def small_rcvbuf_tls(port, pki):
    """A TLS client whose socket takes little (64 KiB), so that the proxy's
    writes meet a full socket as soon as it stops reading."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    raw.settimeout(30)
    raw.connect(("127.0.0.1", port))
    return client_ctx(pki).wrap_socket(raw, server_hostname="localhost")


def test_tls_download_to_a_client_that_pauses(backend, rproxy, pki):
    be = backend(handler=big_download(BIG))
    p = rproxy(tls_listener(be.address, pki))
    s = small_rcvbuf_tls(p.port, pki)
    try:
        status, crc, got = stream_download(s, "/big", BIG, pause_after=256 * 1024)
        assert status == b"HTTP/1.1 200 OK", status
        assert got == BIG, "%d of %d bytes" % (got, BIG)
        assert crc == pattern_crc(BIG), "the body changed on the way"
        s.sendall(b"GET /after HTTP/1.1\r\nHost: test.local\r\n\r\n")
        r = read_response(s)
        assert r is not None and r.status == 200, r
    finally:
        s.close()
    assert p.alive()


def test_tls_upload(backend, rproxy, pki):
    be = backend()
    p = rproxy(tls_listener(be.address, pki))
    body = bytes(range(256)) * (8 << 12)          # 8 MiB
    s = tls_connect(p.port, client_ctx(pki), sni="localhost", timeout=30)
    try:
        s.sendall(b"POST /up HTTP/1.1\r\nHost: test.local\r\nContent-Length: %d\r\n\r\n"
                  % len(body))
        s.sendall(body)
        r = read_response(s, timeout=30)
        assert r is not None and r.status == 200, r
    finally:
        s.close()
    q = be.requests[-1]
    assert q.body_len == len(body) and zlib.crc32(q.body) == zlib.crc32(body)


def test_tls_pipelined_requests_answered_in_order(backend, rproxy, pki):
    be = backend()
    p = rproxy(tls_listener(be.address, pki))
    s = tls_connect(p.port, client_ctx(pki), sni="localhost", timeout=10)
    try:
        s.sendall(b"".join(b"GET /p%d HTTP/1.1\r\nHost: test.local\r\n\r\n" % i
                           for i in range(20)))
        for i in range(20):
            r = read_response(s)
            assert r is not None and r.status == 200, (i, r)
            assert b'"/p%d"' % i in r.body, (i, r.body)
    finally:
        s.close()
    assert [q.target for q in be.requests] == ["/p%d" % i for i in range(20)]


def tls_backend_proxy(rproxy, be, pki):
    return rproxy(config({"app1": (be.address, "connections = 1, retry = 0.2, tls = { ca = %s, "
                                   'sni = "localhost" }' % lq(pki.crt("ca")))},
                         ['address = "127.0.0.1:@PORT@"']))


def test_download_from_a_tls_backend_to_a_client_that_pauses(tls_backend, rproxy, pki):
    be = tls_backend(body_size=BIG)
    p = tls_backend_proxy(rproxy, be, pki)
    s = socket.create_connection(("127.0.0.1", p.port), timeout=30)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    try:
        for path in ("/one", "/two"):          # the same backend connection twice
            status, crc, got = stream_download(s, path, BIG, pause_after=256 * 1024)
            assert status == b"HTTP/1.1 200 OK", status
            assert got == BIG and crc == pattern_crc(BIG), (path, got)
    finally:
        s.close()
    assert len(be.handshaken()) == 1


def test_upload_to_a_tls_backend(tls_backend, rproxy, pki):
    be = tls_backend()
    p = tls_backend_proxy(rproxy, be, pki)
    body = bytes(range(256)) * (8 << 12)          # 8 MiB
    r, c = exchange(p.port, req("POST", "/up", body=body), timeout=30)
    c.close()
    assert r is not None and r.status == 200, r
    assert be.handshaken()[0]["bodies"][-1] == (len(body), zlib.crc32(body))
