"""TLS files are read when the configuration is loaded (docs/tls.md): a broken
certificate path, a key that does not match, a bad CA, CRL or ticket key file
make `rproxy -t` (and a start) fail with FILE:LINE of the declaration that
names them; relative paths start from the configuration file's directory."""

import os
import shutil
import subprocess

import pytest

from backends import free_port
from proxy import run_rproxy
from tlsutil import lq, pki  # noqa: F401

# line 4 starts the listener (spread over lines 4-6), line 8 is the extra vhost,
# line 2 the backend
TEMPLATE = """\
rproxy.settings { threads = 1, grace = 1 }
rproxy.backend "app1" { address = "127.0.0.1:9001", %(backend)s }
rproxy.pool "app" { "app1" }
rproxy.listen { address = "127.0.0.1:%(port)d",
    %(tls)s
}
rproxy.vhost "test.local" { default = true, routes = { { to = "app" } } }
%(vhost)s
"""


def write(tmp, pki, tls=None, backend="", vhost="", name="rproxy.lua"):
    if tls is None:
        tls = "tls = { cert = %s, key = %s }" % (lq(pki.crt("server")), lq(pki.key("server")))
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(TEMPLATE % {"port": free_port(), "tls": tls, "backend": backend,
                            "vhost": vhost})
    return path


def check(path, cwd=None):
    p = run_rproxy(["-t", "-c", path], cwd=cwd or os.path.dirname(path))
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")


def bad_cases(pki, tmp):
    """(id, kwargs for write(), line, words the message must contain)"""
    srv, srvk = lq(pki.crt("server")), lq(pki.key("server"))
    missing = os.path.join(tmp, "missing.crt")
    short_key = os.path.join(tmp, "short.key")
    with open(short_key, "wb") as f:
        f.write(os.urandom(33))
    listen = "listen '127.0.0.1:"
    return [
        ("missing_cert", {"tls": "tls = { cert = %s, key = %s }" % (lq(missing), srvk)}, 4,
         [listen, "cannot read certificate", missing, "No such file"]),
        ("missing_key", {"tls": "tls = { cert = %s, key = %s }"
                                % (srv, lq(os.path.join(tmp, "missing.key")))}, 4,
         ["cannot read key", "missing.key"]),
        ("key_mismatch", {"tls": "tls = { cert = %s, key = %s }" % (srv, lq(pki.key("ecdsa")))},
         4, ["does not match certificate", pki.key("ecdsa")]),
        ("garbage_cert", {"tls": "tls = { cert = %s, key = %s }"
                                 % (lq(pki.path("garbage.crt")), srvk)}, 4,
         ["no PEM certificate", "garbage.crt"]),
        ("two_rsa", {"tls": "tls = { certs = { { cert = %s, key = %s }, { cert = %s, key = %s } } }"
                            % (srv, srvk, lq(pki.crt("a")), lq(pki.key("a")))}, 4,
         ["same key type"]),
        ("missing_client_ca", {"tls": "tls = { cert = %s, key = %s, client_ca = %s }"
                                      % (srv, srvk, lq(missing))}, 4, ["missing.crt"]),
        ("garbage_client_ca", {"tls": "tls = { cert = %s, key = %s, client_ca = %s }"
                                      % (srv, srvk, lq(pki.path("garbage.crt")))}, 4,
         ["garbage.crt"]),
        ("missing_crl", {"tls": "tls = { cert = %s, key = %s, client_ca = %s, crl = %s }"
                                % (srv, srvk, lq(pki.crt("ca")), lq(os.path.join(tmp, "x.crl")))},
         4, ["x.crl"]),
        ("bad_ticket_key_file", {"tls": "tls = { cert = %s, key = %s, ticket_key_file = %s }"
                                        % (srv, srvk, lq(short_key))}, 4,
         ["short.key", "33 bytes"]),
        ("bad_ciphers", {"tls": 'tls = { cert = %s, key = %s, ciphers = "NOT-A-CIPHER" }'
                                % (srv, srvk)}, 4, ["NOT-A-CIPHER"]),
        ("unknown_extension", {"tls": 'tls = { cert = %s, key = %s, extensions = '
                                      '{ ["X-E"] = "noSuchExtension" } }' % (srv, srvk)}, 4,
         ["noSuchExtension"]),
        ("vhost_missing_cert", {"vhost": 'rproxy.vhost "a.test" { tls = { cert = %s, key = %s },'
                                         ' routes = { { to = "app" } } }' % (lq(missing), srvk)},
         8, ["vhost 'a.test'", "cannot read certificate", missing]),
        ("vhost_key_mismatch", {"vhost": 'rproxy.vhost "a.test" { tls = { cert = %s, key = %s },'
                                         ' routes = { { to = "app" } } }'
                                         % (lq(pki.crt("a")), srvk)},
         8, ["vhost 'a.test'", "does not match"]),
        ("backend_missing_ca", {"backend": "tls = { ca = %s }" % lq(missing)}, 2,
         ["backend 'app1'", "missing.crt"]),
        ("backend_garbage_ca", {"backend": "tls = { ca = %s }" % lq(pki.path("garbage.crt"))}, 2,
         ["backend 'app1'", "garbage.crt"]),
        ("backend_key_mismatch", {"backend": "tls = { ca = %s, cert = %s, key = %s }"
                                             % (lq(pki.crt("ca")), lq(pki.crt("client")),
                                                lq(pki.key("backend")))}, 2,
         ["backend 'app1'", "does not match"]),
    ]


CASE_IDS = ["missing_cert", "missing_key", "key_mismatch", "garbage_cert", "two_rsa",
            "missing_client_ca", "garbage_client_ca", "missing_crl", "bad_ticket_key_file",
            "bad_ciphers", "unknown_extension", "vhost_missing_cert", "vhost_key_mismatch",
            "backend_missing_ca", "backend_garbage_ca", "backend_key_mismatch"]


def test_good_tls_config_checks_ok(tmpdir_rp, pki):
    tls = ("tls = { certs = { { cert = %s, key = %s }, { cert = %s, key = %s } }, "
           "client_ca = %s, crl = %s, verify_client = \"optional\" }"
           % (lq(pki.crt("server")), lq(pki.key("server")), lq(pki.crt("ecdsa")),
              lq(pki.key("ecdsa")), lq(pki.crt("ca")), lq(pki.path("ca.crl"))))
    path = write(tmpdir_rp, pki, tls=tls, backend="tls = { ca = %s }" % lq(pki.crt("ca")),
                 vhost='rproxy.vhost "a.test" { tls = { cert = %s, key = %s }, routes = '
                       '{ { to = "app" } } }' % (lq(pki.crt("a")), lq(pki.key("a"))))
    rc, out = check(path)
    assert rc == 0, out


@pytest.mark.parametrize("case", CASE_IDS)
def test_broken_tls_file_reported_at_line(tmpdir_rp, pki, case):
    cases = {c[0]: c for c in bad_cases(pki, tmpdir_rp)}
    _, kw, line, words = cases[case]
    path = write(tmpdir_rp, pki, **kw)
    rc, out = check(path)
    assert rc != 0, "-t accepted it: %r" % out
    assert ("rproxy.lua:%d:" % line) in out, out
    for w in words:
        assert w in out, (w, out)


def test_start_with_mismatched_key_fails(tmpdir_rp, pki):
    path = write(tmpdir_rp, pki, tls="tls = { cert = %s, key = %s }"
                 % (lq(pki.crt("server")), lq(pki.key("ecdsa"))))
    try:
        p = run_rproxy(["-c", path], cwd=tmpdir_rp, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("rproxy started with a key that does not match its certificate")
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    assert p.returncode != 0 and "rproxy.lua:4:" in out and "does not match" in out, out


def test_relative_paths_from_config_directory(tmpdir_rp, pki):
    conf_dir = os.path.join(tmpdir_rp, "etc")
    os.makedirs(os.path.join(conf_dir, "certs"))
    for n in ("server.crt", "server.key", "ca.crt"):
        shutil.copy(pki.path(n), os.path.join(conf_dir, "certs", n))
    path = write(conf_dir, pki, tls='tls = { cert = "certs/server.crt", key = "certs/server.key",'
                                    ' client_ca = "certs/ca.crt" }',
                 backend='tls = { ca = "certs/ca.crt" }')
    rc, out = check(path, cwd="/")
    assert rc == 0, out
    os.unlink(os.path.join(conf_dir, "certs", "server.key"))
    rc, out = check(path, cwd="/")
    assert rc != 0 and "rproxy.lua:4:" in out and os.path.join(conf_dir, "certs") in out, out
