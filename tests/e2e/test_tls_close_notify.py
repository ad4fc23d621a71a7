"""Closing a TLS connection: RFC 8446 6.1 says each party MUST send close_notify
before closing its write side. Without it a client cannot tell the end of a
close-delimited body from a truncation attack, OpenSSL 3 clients report
"unexpected eof while reading" (openssl s_client exits 1) and treat the
connection as failed, which also drops their session from resumption.

The story: after a `Connection: close` (or HTTP/1.0) answer, the lingering
close (core/http_conn.c conn_linger) called shutdown(fd, SHUT_WR) on the TCP
socket first, so the close_notify that rp_tls_shutdown() tried to write at
conn_destroy() could no longer go out; s_client then sent a fatal alert, which
also removed the session from the server's cache (fixed in 3756bce: conn_linger
sends close_notify before the half-close)."""

import os
import socket
import ssl

from httpclient import recv_until_closed
from tlsutil import (client_ctx, config, pki, read_response, request_bytes,  # noqa: F401
                     s_client, tls_connect, tls_table)


def start(backend, rproxy, pki):
    be = backend()
    return be, rproxy(config({"app1": (be.address, "")},
                             ['address = "127.0.0.1:@PORT@", ' + tls_table(pki)]))


def read_until_close(s, timeout=5):
    """Reads to the end; returns (data, how) with how "close_notify" or "eof"
    (a TCP close without close_notify) or "reset"."""
    s.settimeout(timeout)
    data = bytearray()
    while True:
        try:
            got = s.recv(65536)
        except ssl.SSLError as e:
            if isinstance(e, ssl.SSLEOFError) or "UNEXPECTED_EOF" in str(e):
                return bytes(data), "eof"
            raise
        except ConnectionResetError:
            return bytes(data), "reset"
        if not got:
            return bytes(data), "close_notify"
        data += got


def raw_tls(port, pki):
    """A TLS socket that reports a missing close_notify instead of hiding it."""
    ctx = client_ctx(pki)
    ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF     # Python sets it by default
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    return ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)


def test_close_notify_after_connection_close(backend, rproxy, pki):
    be, p = start(backend, rproxy, pki)
    s = raw_tls(p.port, pki)
    try:
        s.sendall(request_bytes("/x", close=True))
        data, how = read_until_close(s)
    finally:
        s.close()
    assert data.startswith(b"HTTP/1.1 200"), data[:100]
    assert how == "close_notify", "rproxy closed the TLS connection with no close_notify (%s)" % how


def test_close_notify_after_http10_answer(backend, rproxy, pki):
    be, p = start(backend, rproxy, pki)
    s = raw_tls(p.port, pki)
    try:
        s.sendall(b"GET /ten HTTP/1.0\r\nHost: test.local\r\n\r\n")
        data, how = read_until_close(s)
    finally:
        s.close()
    assert data.startswith(b"HTTP/1.") and b" 200 " in data[:20], data[:100]
    assert how == "close_notify", "rproxy closed the TLS connection with no close_notify (%s)" % how


def test_s_client_sees_clean_close(backend, rproxy, pki):
    be, p = start(backend, rproxy, pki)
    rc, out = s_client(p.port, "-servername", "localhost", "-CAfile", pki.crt("ca"),
                       data=b"GET / HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n")
    assert "HTTP/1.1 200" in out, out
    assert "unexpected eof" not in out, out[-600:]
    assert rc == 0, out[-600:]


def test_close_notify_answered_on_idle_connection(backend, rproxy, pki):
    """The client ends a keep-alive connection with close_notify: the proxy
    answers with its own (a clean bidirectional shutdown)."""
    be, p = start(backend, rproxy, pki)
    s = tls_connect(p.port, client_ctx(pki), sni="localhost")
    try:
        s.sendall(request_bytes("/idle", close=False))
        r = read_response(s)
        assert r is not None and r.status == 200
        s.settimeout(5)
        s.unwrap()              # raises if the peer closes without close_notify
    finally:
        s.close()


def test_session_cache_survives_connection_close(backend, rproxy, pki, tmpdir_rp):
    """The cost of the missing close_notify: s_client reads the answer to a
    `Connection: close` request, meets a bare TCP close, and sends a fatal
    alert, which makes OpenSSL remove the session from rproxy's cache; with
    tickets = false it can then not be resumed."""
    be = backend()
    p = rproxy(config({"app1": (be.address, "")},
                      ['address = "127.0.0.1:@PORT@", ' + tls_table(pki, "tickets = false")]))
    sess = os.path.join(tmpdir_rp, "sess.pem")
    req_close = b"GET / HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n"
    rc, out = s_client(p.port, "-tls1_2", "-servername", "localhost", "-sess_out", sess,
                       data=req_close)
    assert "New, TLSv1.2" in out and "HTTP/1.1 200" in out, out[-1500:]
    rc, out = s_client(p.port, "-tls1_2", "-servername", "localhost", "-sess_in", sess,
                       data=req_close)
    assert "HTTP/1.1 200" in out, out[-1500:]
    assert "Reused, TLSv1.2" in out, out[-1500:]


def _records_of_answer(port, pki, body_size):
    """GET /sized with Connection: close over TLS 1.2, the client driven through
    memory BIOs so that the raw bytes are seen: returns the content types of the
    TLS records that came after the request (23 application data, 21 alert)
    and the decrypted answer."""
    ctx = client_ctx(pki, maxv=ssl.TLSVersion.TLSv1_2)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            if out.pending:
                s.sendall(out.read())
            data = s.recv(65536)
            assert data, "closed during the handshake"
            inc.write(data)
    if out.pending:
        s.sendall(out.read())
    obj.write(b"GET /sized HTTP/1.1\r\nHost: test.local\r\nX-Size: %d\r\n"
              b"Connection: close\r\n\r\n" % body_size)
    s.sendall(out.read())
    raw = recv_until_closed(s)
    s.close()
    types, i = [], 0
    while i + 5 <= len(raw):
        types.append(raw[i])
        i += 5 + int.from_bytes(raw[i + 3:i + 5], "big")
    inc.write(bytes(raw))
    answer = bytearray()
    try:
        while True:
            got = obj.read(65536)
            if not got:
                break
            answer += got
    except (ssl.SSLZeroReturnError, ssl.SSLWantReadError):
        pass
    return types, bytes(answer)


def _sized(conn, q):
    conn.respond(200, [("Content-Type", "text/plain")], b"s" * int(q.header("X-Size")))
    return False


def test_small_answer_is_one_tls_record(backend, rproxy, pki):
    """A small answer goes out as one TLS record (head and body together), as
    nginx and HAProxy send it, not split where a buffer chunk ended: fewer
    writes and fewer records for the client to decrypt."""
    be = backend(handler=_sized)
    p = rproxy(config({"app1": (be.address, "")},
                      ['address = "127.0.0.1:@PORT@", ' + tls_table(pki)]))
    for size in (100, 1024, 4000, 12000):
        types, answer = _records_of_answer(p.port, pki, size)
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"s" * size), answer[:200]
        assert types.count(23) == 1, (size, types)
        assert types[-1] == 21, types               # then close_notify
