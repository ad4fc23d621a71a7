"""SNI (docs/tls.md, "Certificates per vhost"): a vhost with its own `tls`
serves its certificate to clients whose server name it matches (exactly as a
Host header would match it: aliases, wildcards, any case); every other name,
and no name at all, gets the listener's. A request whose Host names another
vhost than the one SNI chose is answered 421 (RFC 9110 15.5.20) unless
`misdirected = "allow"`."""

import pytest

from httpclient import curl
from tlsutil import (client_ctx, config, https_get, lq, pki, s_client,  # noqa: F401
                     s_client_peer_der, tls_table)


def start(backend, rproxy, pki, *tls_fields):
    be = backend()
    vhosts = [
        'rproxy.vhost "a.test" { aliases = { "*.a.test" }, tls = { cert = %s, key = %s }, '
        'routes = { { to = "app" } } }' % (lq(pki.crt("a")), lq(pki.key("a"))),
        'rproxy.vhost "b.test" { routes = { { to = "app" } } }',
    ]
    lua = config({"app1": (be.address, "")},
                 ['address = "127.0.0.1:@PORT@", x_headers = { "X-SSL-SNI" }, '
                  + tls_table(pki, *tls_fields)], vhosts=vhosts)
    return be, rproxy(lua)


def peer(p, pki, sni, host="test.local"):
    r, info = https_get(p.port, client_ctx(pki), sni=sni, host=host)
    return r, info["peer_der"]


def test_sni_selects_vhost_certificate(backend, rproxy, pki):
    be, p = start(backend, rproxy, pki)
    r, der = peer(p, pki, "a.test", host="a.test")
    assert der == pki.der("a")
    assert r.status == 200, r
    assert be.wait_requests(1)
    assert be.requests[0].header("X-SSL-SNI") == "a.test"
    # the subject as openssl s_client shows it
    rc, out = s_client(p.port, "-servername", "a.test")
    assert "subject=CN = a.test" in out, out[:2000]


def test_sni_wildcard_alias_and_case(backend, rproxy, pki):
    be, p = start(backend, rproxy, pki)
    _, der = peer(p, pki, "www.a.test", host="www.a.test")
    assert der == pki.der("a")
    rc, out = s_client(p.port, "-servername", "A.Test")
    assert s_client_peer_der(out) == pki.der("a"), out[:2000]


@pytest.mark.parametrize("sni", [None, "unknown.test", "b.test", "localhost", "test.local"])
def test_other_names_get_listener_certificate(backend, rproxy, pki, sni):
    be, p = start(backend, rproxy, pki)
    r, der = peer(p, pki, sni, host=sni or "test.local")
    assert der == pki.der("server")
    assert r.status == 200, r


def test_curl_with_sni(backend, rproxy, pki):
    be, p = start(backend, rproxy, pki)
    r = curl("https://a.test:%d/curl" % p.port, "--cacert", pki.crt("ca"),
             "--resolve", "a.test:%d:127.0.0.1" % p.port)
    assert r.rc == 0 and r.status == 200, r       # verifies a.test's certificate by name
    r = curl("https://localhost:%d/curl" % p.port, "--cacert", pki.crt("ca"),
             "--resolve", "localhost:%d:127.0.0.1" % p.port)
    assert r.rc == 0 and r.status == 200, r


def test_host_of_other_vhost_is_misdirected(backend, rproxy, pki):
    be, p = start(backend, rproxy, pki)
    # SNI chose the listener's certificate; Host names the vhost with its own
    r, der = peer(p, pki, "localhost", host="a.test")
    assert der == pki.der("server")
    assert r.status == 421, r
    # SNI chose a.test's; Host names the default vhost, or another one
    r, _ = peer(p, pki, "a.test", host="test.local")
    assert r.status == 421, r
    r, _ = peer(p, pki, "a.test", host="b.test")
    assert r.status == 421, r
    # the same vhost, with a port and another case: not misdirected
    r, _ = peer(p, pki, "a.test", host="A.TEST:%d" % p.port)
    assert r.status == 200, r
    assert be.wait_requests(1)
    assert len(be.requests) == 1, [q.target for q in be.requests]
    # curl: SNI localhost, Host a.test
    r = curl("https://localhost:%d/" % p.port, "--cacert", pki.crt("ca"),
             "--resolve", "localhost:%d:127.0.0.1" % p.port, "-H", "Host: a.test")
    assert r.rc == 0 and r.status == 421, r


def test_misdirected_allow(backend, rproxy, pki):
    be, p = start(backend, rproxy, pki, 'misdirected = "allow"')
    r, der = peer(p, pki, "localhost", host="a.test")
    assert der == pki.der("server")
    assert r.status == 200, r
    r, _ = peer(p, pki, "a.test", host="test.local")
    assert r.status == 200, r
    assert be.wait_requests(2)
