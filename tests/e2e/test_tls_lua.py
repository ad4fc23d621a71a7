"""req.tls and req.scheme in Lua hooks (lua/lua_request.c push_tls): on a TLS
listener a table of the connection's facts (protocol, cipher, sni, the client
certificate's subject and the rest, session_reused, client_cert,
client_verified, extensions); on a plain listener req.tls is nil and the
scheme "http"."""

import ssl

from httpclient import exchange, req
from tlsutil import (client_ctx, config, https_get, lq, pki, read_response,  # noqa: F401
                     request_bytes, tls_connect, tls_table)

HOOKS = r"""
function rproxy.on_request(req)
    if req.path == "/tls" then
        local t = req.tls
        if t == nil then
            return req:respond(200, "tls=nil\nscheme=" .. req.scheme)
        end
        local out = { "scheme=" .. req.scheme }
        for _, k in ipairs({ "protocol", "cipher", "sni", "subject", "issuer", "serial",
                             "fingerprint", "session_reused", "client_cert",
                             "client_verified" }) do
            out[#out + 1] = k .. "=" .. tostring(t[k])
        end
        out[#out + 1] = "san=" .. tostring(t.extensions["X-SSL-Ext-SAN"])
        return req:respond(200, table.concat(out, "\n"))
    end
    if req.tls and req.tls.subject then
        req:set_header("X-Lua-Subject", req.tls.subject)
    end
end
"""


def start(backend, rproxy, pki):
    be = backend()
    tls = tls_table(pki, "client_ca = %s" % lq(pki.crt("ca")), 'verify_client = "optional"',
                    'extensions = { ["X-SSL-Ext-SAN"] = "subjectAltName" }')
    lua = config({"app1": (be.address, "")},
                 ['address = "127.0.0.1:@PORT@", ' + tls, 'address = "127.0.0.1:@PORT2@"'],
                 hooks=HOOKS)
    return be, rproxy(lua, nports=2)


def kv(body):
    return dict(line.split("=", 1) for line in body.decode().split("\n"))


def test_req_tls_with_client_certificate(backend, rproxy, pki):
    be, p = start(backend, rproxy, pki)
    fp = pki.x509("client", "-fingerprint", "-sha256").split("=", 1)[1].replace(":", "").lower()
    for maxv, proto in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
        r, info = https_get(p.port, client_ctx(pki, cert="client", maxv=maxv), sni="localhost",
                            path="/tls")
        assert r.status == 200, r
        d = kv(r.body)
        assert d["scheme"] == "https"
        assert d["protocol"] == proto
        assert d["cipher"] == info["cipher"]
        assert d["sni"] == "localhost"
        assert d["subject"] == "CN=client one,O=Example"
        assert d["issuer"] == "CN=rproxy test CA,O=rproxy tests"
        assert d["serial"] == "12AB34CD"
        assert d["fingerprint"] == fp
        assert d["client_cert"] == "true" and d["client_verified"] == "true"
        assert d["session_reused"] == "false"
        assert d["san"] == "email:one@example.com, DNS:client.example"
    assert be.requests == []


def test_req_tls_without_client_certificate_and_sni(backend, rproxy, pki):
    be, p = start(backend, rproxy, pki)
    r, _ = https_get(p.port, client_ctx(pki), sni=None, path="/tls")
    d = kv(r.body)
    assert d["scheme"] == "https" and d["protocol"].startswith("TLSv1.")
    assert d["subject"] == "nil" and d["sni"] == "nil" and d["san"] == "nil"
    assert d["client_cert"] == "false" and d["client_verified"] == "false"


def test_req_tls_session_reused(backend, rproxy, pki):
    be, p = start(backend, rproxy, pki)
    ctx = client_ctx(pki, cert="client")
    r, info = https_get(p.port, ctx, sni="localhost", path="/tls")
    assert kv(r.body)["session_reused"] == "false"
    r, info2 = https_get(p.port, ctx, sni="localhost", path="/tls", session=info["session"])
    assert info2["session_reused"]
    d = kv(r.body)
    assert d["session_reused"] == "true"
    assert d["subject"] == "CN=client one,O=Example"


def test_req_tls_on_plain_listener(backend, rproxy, pki):
    be, p = start(backend, rproxy, pki)
    r, c = exchange(p.ports[1], req("GET", "/tls"))
    c.close()
    assert r is not None and r.status == 200, r
    assert kv(r.body) == {"tls": "nil", "scheme": "http"}
    # and the hook that reads req.tls before proxying does nothing there
    r, c = exchange(p.ports[1], req("GET", "/pass"))
    c.close()
    assert r.status == 200
    assert be.wait_requests(1) and be.requests[0].header("X-Lua-Subject") is None


def test_req_tls_on_every_request_of_a_connection(backend, rproxy, pki):
    """The facts are built once per connection and serve each request on it."""
    be, p = start(backend, rproxy, pki)
    s = tls_connect(p.port, client_ctx(pki, cert="client"), sni="localhost")
    try:
        for i in range(3):
            s.sendall(request_bytes("/tls" if i % 2 == 0 else "/pass%d" % i, close=False))
            r = read_response(s)
            assert r is not None and r.status == 200, r
            if i % 2 == 0:
                assert kv(r.body)["subject"] == "CN=client one,O=Example"
    finally:
        s.close()
    assert be.wait_requests(1)
    assert be.requests[0].header("X-Lua-Subject") == "CN=client one,O=Example"
