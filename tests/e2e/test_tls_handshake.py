"""TLS termination on a listener (docs/tls.md): TLS 1.2 and 1.3 handshakes by
curl, openssl s_client and Python ssl reach the plain backend; protocols older
than TLS 1.2 are refused unless `protocols` allows them; one listener with an
RSA and an ECDSA certificate serves whichever the client can use."""

import signal
import socket
import ssl
import struct
import subprocess
import time

import pytest

from httpclient import curl
from tlsutil import (OPENSSL, client_ctx, config, https_get, pki, read_response,  # noqa: F401
                     request_bytes, s_client, s_client_peer_der, tls_connect, tls_table,
                     wait_for)

def start(backend, rproxy, pki, *tls_fields, certs=("server",), x_headers='"X-Forwarded-Proto"'):
    be = backend()
    lua = config({"app1": (be.address, "")},
                 ['address = "127.0.0.1:@PORT@", x_headers = { %s, "X-SSL-Protocol", '
                  '"X-SSL-Cipher" }, %s' % (x_headers, tls_table(pki, *tls_fields, certs=certs))])
    return be, rproxy(lua)


def curl_tls(p, pki, *args, path="/"):
    return curl("https://localhost:%d%s" % (p.port, path), "--cacert", pki.crt("ca"),
                "--resolve", "localhost:%d:127.0.0.1" % p.port, *args)


@pytest.mark.parametrize("ver", ["1.2", "1.3"])
def test_curl_handshake_reaches_backend(backend, rproxy, pki, ver):
    be, p = start(backend, rproxy, pki)
    r = curl_tls(p, pki, "--tlsv" + ver, "--tls-max", ver, "-H", "Host: test.local",
                 path="/hello?x=" + ver)
    assert r.rc == 0 and r.status == 200, r
    assert be.wait_requests(1)
    q = be.requests[0]
    assert q.target == "/hello?x=" + ver
    assert q.header("X-Forwarded-Proto") == "https"
    assert q.header("X-SSL-Protocol") == "TLSv" + ver
    assert q.header("X-SSL-Cipher")


@pytest.mark.parametrize("flag,proto", [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
def test_s_client_handshake(backend, rproxy, pki, flag, proto):
    be, p = start(backend, rproxy, pki)
    rc, out = s_client(p.port, flag, "-servername", "localhost", "-CAfile", pki.crt("ca"),
                       data=b"GET /s HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n")
    # (rc is not checked here: see test_tls_close_notify.py)
    assert "Verify return code: 0 (ok)" in out, out
    assert ("New, %s" % proto) in out, out
    assert "HTTP/1.1 200" in out, out
    assert be.wait_requests(1) and be.requests[0].header("X-SSL-Protocol") == proto


def test_python_client_keepalive_over_tls(backend, rproxy, pki):
    """Several requests on one TLS connection, the body of each intact."""
    be, p = start(backend, rproxy, pki)
    s = tls_connect(p.port, client_ctx(pki), sni="localhost")
    try:
        for i in range(3):
            s.sendall(request_bytes("/k%d" % i, close=False))
            r = read_response(s)
            assert r is not None and r.status == 200 and r.complete, r
            assert b'"/k%d"' % i in r.body
    finally:
        s.close()
    assert be.wait_requests(3)
    assert len({q.conn_id for q in be.requests}) == 1


def _s_server_offers_tls11(pki):
    """Whether this OpenSSL can make a TLS 1.1 handshake at all: an s_server
    that allows it, with the security level lowered on both sides."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    srv = subprocess.Popen([OPENSSL, "s_server", "-accept", "127.0.0.1:%d" % port, "-cert",
                            pki.crt("server"), "-key", pki.key("server"), "-tls1_1", "-cipher",
                            "DEFAULT:@SECLEVEL=0", "-quiet"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        end = time.monotonic() + 5
        while time.monotonic() < end:
            rc, out = s_client(port, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0", timeout=5)
            if "connect:errno" in out or "Connection refused" in out:
                time.sleep(0.05)
                continue
            return rc == 0 and "TLSv1.1" in out
        return False
    finally:
        srv.send_signal(signal.SIGKILL)
        srv.wait(5)


@pytest.fixture(scope="module")
def tls11_possible(pki):
    return _s_server_offers_tls11(pki)


def test_tls11_refused_by_default(backend, rproxy, pki, tls11_possible):
    if not tls11_possible:
        pytest.skip("this OpenSSL cannot make a TLS 1.1 handshake even with SECLEVEL=0")
    be, p = start(backend, rproxy, pki)
    rc, out = s_client(p.port, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0",
                       data=b"GET / HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n")
    assert rc != 0, out
    assert "HTTP/1.1 200" not in out
    assert be.requests == []


def test_tls11_when_allowed(backend, rproxy, pki, tls11_possible):
    """The positive control: protocols + a lowered security level let 1.1 in."""
    if not tls11_possible:
        pytest.skip("this OpenSSL cannot make a TLS 1.1 handshake even with SECLEVEL=0")
    be, p = start(backend, rproxy, pki, 'protocols = { "TLSv1.1", "TLSv1.2" }',
                  'ciphers = "DEFAULT:@SECLEVEL=0"')
    rc, out = s_client(p.port, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0",
                       data=b"GET / HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n")
    assert "HTTP/1.1 200" in out, out
    assert be.wait_requests(1) and be.requests[0].header("X-SSL-Protocol") == "TLSv1.1"


def test_tls13_refused_when_only_12(backend, rproxy, pki):
    be, p = start(backend, rproxy, pki, 'protocols = { "TLSv1.2" }')
    r = curl_tls(p, pki, "--tlsv1.3")
    assert r.rc != 0, r
    r = curl_tls(p, pki, "--tls-max", "1.3", "-H", "Host: test.local")
    assert r.rc == 0 and r.status == 200, r
    assert be.wait_requests(1) and be.requests[0].header("X-SSL-Protocol") == "TLSv1.2"


def test_rsa_and_ecdsa_on_one_listener(backend, rproxy, pki):
    be, p = start(backend, rproxy, pki, certs=("server", "ecdsa"))
    # TLS 1.2, ECDSA-only cipher: the ECDSA certificate
    r, info = https_get(p.port, client_ctx(pki, maxv=ssl.TLSVersion.TLSv1_2,
                                           ciphers="ECDHE-ECDSA-AES128-GCM-SHA256"),
                        sni="localhost")
    assert r.status == 200 and info["peer_der"] == pki.der("ecdsa"), info["cipher"]
    # TLS 1.2, RSA-only cipher: the RSA one
    r, info = https_get(p.port, client_ctx(pki, maxv=ssl.TLSVersion.TLSv1_2,
                                           ciphers="ECDHE-RSA-AES128-GCM-SHA256"),
                        sni="localhost")
    assert r.status == 200 and info["peer_der"] == pki.der("server"), info["cipher"]
    # the same with s_client, as the docs show it
    rc, out = s_client(p.port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256",
                       "-servername", "localhost")
    assert rc == 0 and s_client_peer_der(out) == pki.der("ecdsa"), out
    rc, out = s_client(p.port, "-tls1_2", "-servername", "localhost", "-cipher",
                       "aRSA")
    assert rc == 0 and s_client_peer_der(out) == pki.der("server"), out
    # TLS 1.3 picks by signature algorithm
    rc, out = s_client(p.port, "-tls1_3", "-sigalgs", "ECDSA+SHA256", "-servername", "localhost")
    assert rc == 0 and s_client_peer_der(out) == pki.der("ecdsa"), out
    rc, out = s_client(p.port, "-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256:RSA+SHA256",
                       "-servername", "localhost")
    assert rc == 0 and s_client_peer_der(out) == pki.der("server"), out
    assert be.wait_requests(2)


def test_alpn_mismatch_fails_handshake(backend, rproxy, pki):
    """RFC 7301 3.2: a client offering only protocols we do not speak is refused."""
    be, p = start(backend, rproxy, pki)
    rc, out = s_client(p.port, "-alpn", "h2", "-servername", "localhost")
    assert rc != 0, out
    rc, out = s_client(p.port, "-alpn", "h2,http/1.1", "-servername", "localhost",
                       data=b"GET / HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n")
    assert "ALPN protocol: http/1.1" in out and "HTTP/1.1 200" in out, out


def test_plain_http_on_tls_port_does_not_reach_backend(backend, rproxy, pki):
    be, p = start(backend, rproxy, pki)
    s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: test.local\r\n\r\n")
        s.settimeout(5)
        try:
            data = s.recv(4096)
        except (ConnectionResetError, socket.timeout):
            data = b""
        assert b"HTTP/1.1 200" not in data
    finally:
        s.close()
    # the listener still serves TLS afterwards
    r = curl_tls(p, pki, "-H", "Host: test.local")
    assert r.rc == 0 and r.status == 200, r
    assert len(be.requests) == 1


def test_handshake_timeout(backend, rproxy, pki):
    """A client that opens a connection and never finishes the handshake is
    closed after handshake_timeout, not after the (longer) read timeout."""
    be, p = start(backend, rproxy, pki, "handshake_timeout = 0.5")
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
    try:
        s.sendall(b"\x16\x03\x01\x02\x00\x01")      # the start of a ClientHello, no more
        s.settimeout(5)
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            data = b""
        elapsed = time.monotonic() - t0
    finally:
        s.close()
    assert data == b"" or data[:1] == b"\x15", data[:20]     # closed, or an alert
    assert 0.3 < elapsed < 3, elapsed


def test_client_reset_mid_handshake_is_logged_readably(backend, rproxy, pki):
    """A client that sends its ClientHello and then resets the connection: the
    log says so in words. libevent reports SSL_get_error()'s value there, and
    ERR_error_string() printed it as "error:00000005:lib(0)::reason(5)"."""
    be, p = start(backend, rproxy, pki)
    hello = ssl.MemoryBIO(), ssl.MemoryBIO()
    o = client_ctx(pki).wrap_bio(hello[0], hello[1], server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        o.do_handshake()
    s = socket.create_connection(("127.0.0.1", p.port))
    mine = "client 127.0.0.1:%d: TLS handshake failed: " % s.getsockname()[1]
    s.sendall(hello[1].read())
    time.sleep(0.3)                                 # the server's flight is on its way
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()                                       # RST
    assert wait_for(lambda: mine in p.stderr()), p.stderr()[-2000:]
    line = [l for l in p.stderr().splitlines() if mine in l][0]
    assert line.endswith(mine + "the connection was reset or closed"), line
    assert https_get(p.port, client_ctx(pki), sni="localhost")[0].status == 200
