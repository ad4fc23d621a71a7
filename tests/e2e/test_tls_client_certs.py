"""Client certificates (docs/tls.md): verify_client "require" and "optional"
against client_ca and a CRL, the X-SSL-* facts the backend receives (compared
with what `openssl x509` says about the same certificate), refusals with their
error log line, and headers of those names that a client sends itself, which
must never reach a backend, on the TLS listener and on a plain listener of the
same proxy."""

import os
import shutil
import ssl
import time
import urllib.parse

import pytest

from httpclient import curl, exchange, req
from tlsutil import (client_ctx, config, handshake_fails, https_get, lq, pki,  # noqa: F401
                     tls_table, wait_for)

ALL_FACTS = ('"X-SSL-Subject", "X-SSL-Issuer", "X-SSL-Serial", "X-SSL-Fingerprint", '
             '"X-SSL-NotBefore", "X-SSL-NotAfter", "X-SSL-Certificate", "X-SSL-Ext"')
EXTS = 'extensions = { ["X-SSL-Ext-SAN"] = "subjectAltName", ["X-Team"] = "1.3.6.1.4.1.55555.1" }'


def start(backend, rproxy, pki, mode, *extra, x_headers=ALL_FACTS, plain=False):
    be = backend()
    listeners = ['address = "127.0.0.1:@PORT@", x_headers = { %s }, %s'
                 % (x_headers, tls_table(pki, "client_ca = %s" % lq(pki.crt("ca")),
                                         'verify_client = "%s"' % mode,
                                         "crl = %s" % lq(pki.path("ca.crl")), EXTS, *extra))]
    if plain:
        listeners.append('address = "127.0.0.1:@PORT2@"')
    return be, rproxy(config({"app1": (be.address, "")}, listeners), nports=2 if plain else 1)


def expected_facts(pki, name):
    def field(opt):
        return pki.x509(name, opt, "-nameopt", "RFC2253").split("=", 1)[1]
    fp = pki.x509(name, "-fingerprint", "-sha256").split("=", 1)[1].replace(":", "").lower()
    return {"X-SSL-Subject": field("-subject"), "X-SSL-Issuer": field("-issuer"),
            "X-SSL-Serial": field("-serial"), "X-SSL-NotBefore": field("-startdate"),
            "X-SSL-NotAfter": field("-enddate"), "X-SSL-Fingerprint": fp}


def test_require_without_certificate_is_refused(backend, rproxy, pki):
    be, p = start(backend, rproxy, pki, "require")
    assert handshake_fails(p.port, client_ctx(pki), sni="localhost")
    r = curl("https://localhost:%d/" % p.port, "--cacert", pki.crt("ca"),
             "--resolve", "localhost:%d:127.0.0.1" % p.port)
    assert r.rc != 0 and r.status == 0, r
    assert be.requests == []


def test_require_good_certificate_and_facts(backend, rproxy, pki):
    be, p = start(backend, rproxy, pki, "require")
    r, info = https_get(p.port, client_ctx(pki, cert="client"), sni="localhost")
    assert r.status == 200, r
    assert be.wait_requests(1)
    q = be.requests[0]
    want = expected_facts(pki, "client")
    assert want["X-SSL-Subject"] == "CN=client one,O=Example"
    assert want["X-SSL-Serial"] == "12AB34CD"
    for k, v in want.items():
        assert q.header_all(k) == [v], (k, q.header_all(k))
    cert = q.header("X-SSL-Certificate")
    assert cert and "\n" not in cert and " " not in cert and "%0A" in cert, cert
    assert urllib.parse.unquote(cert) == pki.pem("client")
    assert cert == urllib.parse.quote(pki.pem("client"), safe="")
    # extensions: OpenSSL's text, and a private UTF8String as its value
    assert q.header("X-SSL-Ext-SAN") == "email:one@example.com, DNS:client.example"
    assert q.header("X-Team") == "team-blue"


def test_require_with_curl_client_certificate(backend, rproxy, pki):
    be, p = start(backend, rproxy, pki, "require", x_headers='"X-SSL-Subject"')
    r = curl("https://localhost:%d/c" % p.port, "--cacert", pki.crt("ca"),
             "--resolve", "localhost:%d:127.0.0.1" % p.port,
             "--cert", pki.crt("client"), "--key", pki.key("client"))
    assert r.rc == 0 and r.status == 200, r
    assert be.wait_requests(1)
    assert be.requests[0].header("X-SSL-Subject") == "CN=client one,O=Example"
    assert be.requests[0].header("X-SSL-Issuer") is None     # not in x_headers


@pytest.mark.parametrize("mode", ["require", "optional"])
def test_revoked_certificate_refused_and_logged(backend, rproxy, pki, mode):
    be, p = start(backend, rproxy, pki, mode)
    for maxv in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        assert handshake_fails(p.port, client_ctx(pki, cert="revoked", maxv=maxv),
                               sni="localhost")
    line = 'client certificate refused: subject "CN=revoked client,O=Example", ' \
           'issuer "CN=rproxy test CA,O=rproxy tests": certificate revoked'
    assert wait_for(lambda: line in p.stderr()), p.stderr()[-2000:]
    assert be.requests == []
    # a good certificate still gets in afterwards
    r, _ = https_get(p.port, client_ctx(pki, cert="client"), sni="localhost")
    assert r.status == 200


@pytest.mark.parametrize("mode", ["require", "optional"])
def test_certificate_of_unknown_ca_refused(backend, rproxy, pki, mode):
    be, p = start(backend, rproxy, pki, mode)
    assert handshake_fails(p.port, client_ctx(pki, cert="stranger"), sni="localhost")
    assert wait_for(lambda: 'client certificate refused: subject "CN=stranger,O=Example"'
                    in p.stderr()), p.stderr()[-2000:]
    assert be.requests == []


def test_optional(backend, rproxy, pki):
    be, p = start(backend, rproxy, pki, "optional")
    r, _ = https_get(p.port, client_ctx(pki), sni="localhost", path="/none")
    assert r.status == 200, r
    r, _ = https_get(p.port, client_ctx(pki, cert="client"), sni="localhost", path="/cert")
    assert r.status == 200, r
    assert be.wait_requests(2)
    byp = {q.path: q for q in be.requests}
    for k in ("X-SSL-Subject", "X-SSL-Issuer", "X-SSL-Serial", "X-SSL-Fingerprint",
              "X-SSL-Certificate", "X-SSL-Ext-SAN", "X-Team"):
        assert byp["/none"].header(k) is None, k
    want = expected_facts(pki, "client")
    for k, v in want.items():
        assert byp["/cert"].header_all(k) == [v], k


def test_cached_certificate_verifies_again(backend, rproxy, pki):
    """The second handshake with one certificate comes from the cert cache;
    the facts are the same, and a revoked certificate is still refused."""
    be, p = start(backend, rproxy, pki, "require", x_headers='"X-SSL-Fingerprint"')
    want = expected_facts(pki, "client")["X-SSL-Fingerprint"]
    for i in range(3):
        r, _ = https_get(p.port, client_ctx(pki, cert="client"), sni="localhost")
        assert r.status == 200, (i, r)
    assert handshake_fails(p.port, client_ctx(pki, cert="revoked"), sni="localhost")
    assert be.wait_requests(3)
    assert [q.header("X-SSL-Fingerprint") for q in be.requests] == [want] * 3


# ---- spoofing --------------------------------------------------------------------

SPOOF = [("X-SSL-Subject", "CN=admin"), ("x-ssl-issuer", "CN=evil CA"),
         ("X-SSL-Fingerprint", "00"), ("X-SSL-Verify", "keep-me"),
         ("X-Client-DN", "CN=admin"), ("X-SSL-Ext-SAN", "DNS:admin.example"),
         ("X-Team", "red")]
RENAMED = 'headers = { subject = "X-Client-DN" }'
SPOOF_XH = '"X-SSL-Subject", "X-SSL-Issuer", "X-SSL-Fingerprint", "X-SSL-Ext"'
FORGED_NAMES = ["X-SSL-Subject", "X-SSL-Issuer", "X-SSL-Fingerprint", "X-Client-DN",
                "X-SSL-Ext-SAN", "X-Team"]


def forged(q):
    return {n: q.header_all(n) for n in FORGED_NAMES if "admin" in " ".join(q.header_all(n))
            or "evil" in " ".join(q.header_all(n)) or q.header_all(n) in (["00"], ["red"])}


def test_spoofed_headers_stripped_on_tls_listener(backend, rproxy, pki):
    be, p = start(backend, rproxy, pki, "optional", RENAMED, x_headers=SPOOF_XH)
    r, _ = https_get(p.port, client_ctx(pki), sni="localhost", path="/anon", headers=SPOOF)
    assert r.status == 200
    r, _ = https_get(p.port, client_ctx(pki, cert="client"), sni="localhost", path="/cert",
                     headers=SPOOF)
    assert r.status == 200
    assert be.wait_requests(2)
    byp = {q.path: q for q in be.requests}
    anon, cert = byp["/anon"], byp["/cert"]
    assert forged(anon) == {}, anon.headers
    for n in FORGED_NAMES:
        assert anon.header_all(n) == [], n
    assert anon.header("X-SSL-Verify") == "keep-me"     # not one of ours: passed on
    assert forged(cert) == {}, cert.headers
    assert cert.header_all("X-Client-DN") == ["CN=client one,O=Example"]
    assert cert.header_all("X-SSL-Subject") == []        # renamed: sent as X-Client-DN only
    assert cert.header_all("X-SSL-Ext-SAN") == ["email:one@example.com, DNS:client.example"]
    assert cert.header_all("X-Team") == ["team-blue"]


def test_spoofed_default_names_stripped_on_plain_listener(backend, rproxy, pki):
    be, p = start(backend, rproxy, pki, "optional", RENAMED, x_headers=SPOOF_XH, plain=True)
    r, c = exchange(p.ports[1], req("GET", "/plain", headers=SPOOF))
    c.close()
    assert r is not None and r.status == 200, r
    assert be.wait_requests(1)
    q = be.requests[0]
    for n in ("X-SSL-Subject", "X-SSL-Issuer", "X-SSL-Fingerprint"):
        assert q.header_all(n) == [], (n, q.headers)
    assert q.header("X-SSL-Verify") == "keep-me"


def test_spoofed_configured_names_stripped_on_plain_listener(backend, rproxy, pki):
    """The names a TLS listener was configured to send facts under (a renamed
    header, extension headers) are what the shared backends trust: a plain
    listener of the same proxy must not let a client forge them either. (The
    skip list of a plain listener was once built from its own, absent, tls
    table, so only the default X-SSL-* names were removed there; since
    7f5d9a9 listener_build_skip() takes the names of every listener.)"""
    be, p = start(backend, rproxy, pki, "optional", RENAMED, x_headers=SPOOF_XH, plain=True)
    r, c = exchange(p.ports[1], req("GET", "/plain", headers=SPOOF))
    c.close()
    assert r is not None and r.status == 200, r
    assert be.wait_requests(1)
    assert forged(be.requests[0]) == {}, be.requests[0].headers


def test_crl_reloaded_when_file_changes(backend, rproxy, pki, tmpdir_rp):
    """The CRL file is looked at again (at most once a second) when it
    changes; the cache of verified certificates is emptied then, so a
    certificate verified before is refused once the new CRL revokes it."""
    crl = os.path.join(tmpdir_rp, "clients.crl")
    shutil.copy(pki.path("empty.crl"), crl)
    be = backend()
    tls = tls_table(pki, "client_ca = %s" % lq(pki.crt("ca")), 'verify_client = "require"',
                    "crl = %s" % lq(crl))
    p = rproxy(config({"app1": (be.address, "")}, ['address = "127.0.0.1:@PORT@", ' + tls]))
    for _ in range(2):                      # verified, then from the cert cache
        r, _ = https_get(p.port, client_ctx(pki, cert="revoked"), sni="localhost")
        assert r.status == 200
    tmp = crl + ".new"
    shutil.copy(pki.path("ca.crl"), tmp)
    os.replace(tmp, crl)
    time.sleep(1.1)
    assert handshake_fails(p.port, client_ctx(pki, cert="revoked"), sni="localhost")
    assert wait_for(lambda: "certificate revoked" in p.stderr()), p.stderr()[-2000:]
    r, _ = https_get(p.port, client_ctx(pki, cert="client"), sni="localhost")
    assert r.status == 200
