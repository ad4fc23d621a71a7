"""Backends over TLS (docs/tls.md, "Backend"): rproxy verifies the backend's
certificate against `ca` and the name, sends `sni`, answers 502 and logs why
when the verification fails, and resumes its newest session when the pool
reconnects. The backend is a Python ssl server (tlsutil.TLSBackend) that
records per accepted connection whether the handshake resumed a session."""

import ssl

import pytest

from httpclient import curl, exchange, req
from tlsutil import config, lq, pki, tls_backend, wait_for  # noqa: F401


def start(rproxy, be, tls, extra=""):
    lua = config({"app1": (be.address, "connections = 1, retry = 0.2, %s tls = { %s }"
                           % (extra, tls))},
                 ['address = "127.0.0.1:@PORT@"'])
    return rproxy(lua)


def get(p, path="/"):
    r, c = exchange(p.port, req("GET", path))
    c.close()
    assert r is not None, "no answer to %s" % path
    return r


def test_backend_over_tls(tls_backend, rproxy, pki):
    be = tls_backend()
    p = start(rproxy, be, 'ca = %s, sni = "localhost"' % lq(pki.crt("ca")))
    for i in range(3):
        r = get(p, "/b%d" % i)
        assert r.status == 200, r
        assert r.body.startswith(b"conn=0 "), r.body      # one kept connection
    conns = be.handshaken()
    assert conns and conns[0]["sni"] == "localhost"
    assert [h.split(b" ")[1] for h in conns[0]["heads"]] == [b"/b0", b"/b1", b"/b2"]
    # curl agrees
    r = curl(p.url("/curl"), "-H", "Host: test.local")
    assert r.rc == 0 and r.status == 200, r


def test_backend_certificate_from_another_ca(tls_backend, rproxy, pki):
    be = tls_backend(cert="backend2")
    p = start(rproxy, be, 'ca = %s, sni = "localhost"' % lq(pki.crt("ca")))
    r = get(p)
    assert r.status == 502, r
    assert wait_for(lambda: "certificate verify failed" in p.stderr()), p.stderr()[-2000:]
    line = [l for l in p.stderr().splitlines() if "certificate verify failed" in l][0]
    assert "app1" in line and "unable to get local issuer certificate" in line, line
    assert all(c["heads"] == [] for c in be.conns)


def test_backend_name_mismatch(tls_backend, rproxy, pki):
    be = tls_backend()
    p = start(rproxy, be, 'ca = %s, sni = "localhost", name = "other.example"'
              % lq(pki.crt("ca")))
    r = get(p)
    assert r.status == 502, r
    assert wait_for(lambda: "certificate verify failed: hostname mismatch" in p.stderr()), \
        p.stderr()[-2000:]


def test_backend_verify_false(tls_backend, rproxy, pki):
    be = tls_backend(cert="backend2")
    p = start(rproxy, be, "verify = false, sni = false")
    r = get(p)
    assert r.status == 200, r
    assert be.handshaken()[0]["sni"] is None


@pytest.mark.parametrize("maxv", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3],
                         ids=["tls12", "tls13"])
def test_backend_session_resumed_on_reconnect(tls_backend, rproxy, pki, maxv):
    """connections = 1 and a backend that closes after every answer: each
    request makes the pool reconnect, and every connection after the first
    resumes the session of the one before.

    The story (TLS 1.2: every other connection was a full handshake): when the
    backend said `Connection: close`, rp_upstream_release() (and the idle-EOF
    path of uc_on_event) set the state to CONNECTING before uc_reconnect(), so
    uc_free_socket() skipped rp_tls_shutdown(); SSL_free() of an SSL that was
    not shut down marks its session not resumable, and a resumed connection's
    session is the very object the backend keeps (SSL_set_session shares it),
    so the next connection could not resume. TLS 1.3 hid it: every connection
    gets new tickets, hence a fresh copy. Fixed in 3756bce (uc->connected)."""
    be = tls_backend(maxv=maxv)
    be.close_each = True
    p = start(rproxy, be, 'ca = %s, sni = "localhost"' % lq(pki.crt("ca")))
    n = 4
    for i in range(n):
        r = get(p, "/r%d" % i)
        assert r.status == 200, r
        assert r.body.startswith(b"conn=%d " % i), r.body
    assert wait_for(lambda: len(be.handshaken()) >= n + 1)    # the idle one after the last
    conns = be.handshaken()
    want = "TLSv1.3" if maxv == ssl.TLSVersion.TLSv1_3 else "TLSv1.2"
    assert {c["version"] for c in conns} == {want}
    assert conns[0]["reused"] is False
    assert [c["reused"] for c in conns[1:]] == [True] * (len(conns) - 1), \
        [(c["id"], c["reused"]) for c in conns]
