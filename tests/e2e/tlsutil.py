"""TLS helpers for the test_tls_*.py files: a test PKI made with the `openssl`
command, Python ssl clients, `openssl s_client`, and a TLS recording backend.

The PKI is made once per pytest process (session-scoped `pki` fixture; import
it into a test module with `from tlsutil import pki`), in a temp dir of its own
that is removed at exit unless RP_TEST_KEEP=1:

  ca            "rproxy test CA" (P-256): signs everything below but ca2's
  server        RSA-2048, CN=localhost, SAN DNS:localhost, IP:127.0.0.1
  ecdsa         P-256,    CN=localhost ECDSA, the same SAN
  a             RSA-2048, CN=a.test, SAN DNS:a.test       (a vhost's certificate)
  client        P-256,    CN=client one,O=Example; SAN email + DNS, a private
                          UTF8String extension 1.3.6.1.4.1.55555.1 = "team-blue"
  revoked       P-256,    CN=revoked client,O=Example; revoked in ca.crl
  backend       P-256,    CN=localhost (the TLS backend's certificate)
  ca2           a second CA; stranger (a client cert) and backend2 (CN=localhost)
"""

import atexit
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import zlib

import pytest

from backends import pattern_blocks
from httpclient import parse_response

KEEP = os.environ.get("RP_TEST_KEEP") == "1"
OPENSSL = shutil.which("openssl") or "openssl"

_CNF = """\
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused
[ v3_ca ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ srv_localhost ]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
[ srv_a ]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:a.test
[ client ]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = email:one@example.com,DNS:client.example
1.3.6.1.4.1.55555.1 = ASN1:UTF8String:team-blue
[ ca ]
default_ca = testca
[ testca ]
dir = .
database = ./index.txt
crlnumber = ./crlnumber
new_certs_dir = .
serial = ./serial
certificate = ./ca.crt
private_key = ./ca.key
default_md = sha256
default_crl_days = 30
policy = pol
[ pol ]
commonName = supplied
"""


def run(args, cwd=None, input=None, timeout=30, check=True):
    p = subprocess.run(args, cwd=cwd, input=input, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(args), p.returncode,
                                                   (p.stdout + p.stderr).decode(errors="replace")))
    return p


class Pki:
    def __init__(self, d):
        self.dir = d
        self.cnf = os.path.join(d, "openssl.cnf")
        with open(self.cnf, "w") as f:
            f.write(_CNF)
        self._ca("ca", "/O=rproxy tests/CN=rproxy test CA")
        self._ca("ca2", "/O=somebody else/CN=other test CA")
        self._leaf("server", "rsa", "/CN=localhost", "srv_localhost", "ca", "0x1001")
        self._leaf("ecdsa", "ec", "/CN=localhost ECDSA", "srv_localhost", "ca", "0x1002")
        self._leaf("a", "rsa", "/CN=a.test", "srv_a", "ca", "0x1003")
        self._leaf("client", "ec", "/O=Example/CN=client one", "client", "ca", "0x12AB34CD")
        self._leaf("revoked", "ec", "/O=Example/CN=revoked client", "client", "ca", "0x2002")
        self._leaf("backend", "ec", "/CN=localhost", "srv_localhost", "ca", "0x3001")
        self._leaf("stranger", "ec", "/O=Example/CN=stranger", "client", "ca2", "0x4001")
        self._leaf("backend2", "ec", "/CN=localhost", "srv_localhost", "ca2", "0x4002")
        # the CRL of ca, revoking `revoked`
        open(os.path.join(d, "index.txt"), "w").close()
        with open(os.path.join(d, "crlnumber"), "w") as f:
            f.write("1000\n")
        run([OPENSSL, "ca", "-config", self.cnf, "-revoke", "revoked.crt",
             "-crl_reason", "keyCompromise"], cwd=d)
        run([OPENSSL, "ca", "-config", self.cnf, "-gencrl", "-out", "ca.crl"], cwd=d)
        # a CRL that revokes nothing, for listeners that must accept `client`
        open(os.path.join(d, "index.txt"), "w").close()
        run([OPENSSL, "ca", "-config", self.cnf, "-gencrl", "-out", "empty.crl"], cwd=d)
        with open(os.path.join(d, "garbage.crt"), "w") as f:
            f.write("this is not a certificate\n")

    def path(self, name):
        return os.path.join(self.dir, name)

    def crt(self, name):
        return self.path(name + ".crt")

    def key(self, name):
        return self.path(name + ".key")

    def _newkey(self, kind):
        return ["-newkey", "rsa:2048"] if kind == "rsa" else \
            ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]

    def _ca(self, name, subj):
        run([OPENSSL, "req", "-x509", "-config", self.cnf, "-extensions", "v3_ca"]
            + self._newkey("ec") + ["-nodes", "-keyout", name + ".key", "-out", name + ".crt",
                                    "-days", "3650", "-subj", subj], cwd=self.dir)

    def _leaf(self, name, kind, subj, ext, ca, serial):
        run([OPENSSL, "req", "-new", "-config", self.cnf] + self._newkey(kind)
            + ["-nodes", "-keyout", name + ".key", "-out", name + ".csr", "-subj", subj],
            cwd=self.dir)
        run([OPENSSL, "x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt",
             "-CAkey", ca + ".key", "-set_serial", serial, "-days", "825", "-sha256",
             "-extfile", self.cnf, "-extensions", ext, "-out", name + ".crt"], cwd=self.dir)

    # ---- what openssl says about a certificate, to compare with the proxy's facts
    def x509(self, name, *opts):
        p = run([OPENSSL, "x509", "-in", self.crt(name), "-noout"] + list(opts))
        return p.stdout.decode().strip()

    def der(self, name):
        with open(self.crt(name)) as f:
            return ssl.PEM_cert_to_DER_cert(f.read())

    def pem(self, name):
        with open(self.crt(name)) as f:
            return f.read()


_PKI = None
_PKI_LOCK = threading.Lock()


def get_pki():
    global _PKI
    with _PKI_LOCK:
        if _PKI is None:
            d = tempfile.mkdtemp(prefix="rproxy-e2e-tls-pki-")
            if not KEEP:
                atexit.register(shutil.rmtree, d, True)
            _PKI = Pki(d)
        return _PKI


@pytest.fixture(scope="session")
def pki():
    return get_pki()


def lq(s):
    """A Lua string literal for s."""
    return '"%s"' % str(s).replace("\\", "\\\\").replace('"', '\\"')


def tls_table(pki, *fields, certs=("server",)):
    """The text of a listener's tls = { ... } with certs and extra fields."""
    if len(certs) == 1:
        c = "cert = %s, key = %s" % (lq(pki.crt(certs[0])), lq(pki.key(certs[0])))
    else:
        c = "certs = { %s }" % ", ".join("{ cert = %s, key = %s }" % (lq(pki.crt(n)), lq(pki.key(n)))
                                         for n in certs)
    return "tls = { %s }" % ", ".join([c] + list(fields))


def config(backends, listeners, vhosts=None, threads=1, hooks=""):
    """A whole rproxy.lua: backends {name: (address, extra)}, all in pool "app";
    listeners: the text inside each rproxy.listen { ... } (the address included);
    vhosts: extra vhost declarations (the default vhost test.local comes first)."""
    out = ['rproxy.settings { threads = %d, pidfile = "@PIDFILE@", grace = 2,' % threads,
           '  log = { error = "stderr", level = "info",',
           '          access = { output = "@ACCESS@", format = "json" } } }']
    for name, (addr, extra) in backends.items():
        out.append('rproxy.backend "%s" { address = "%s", %s }' % (name, addr, extra))
    out.append('rproxy.pool "app" { %s, balance = "roundrobin" }'
               % ", ".join('"%s"' % n for n in backends))
    for l in listeners:
        out.append("rproxy.listen { %s }" % l)
    out.append('rproxy.vhost "test.local" { default = true, routes = { { to = "app" } } }')
    out += list(vhosts or ())
    return "\n".join(out) + "\n" + hooks


# ---- clients ------------------------------------------------------------------

def client_ctx(pki=None, cert=None, minv=None, maxv=None, ciphers=None, verify=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    if verify and pki is not None:
        ctx.load_verify_locations(pki.crt("ca"))
    else:
        ctx.verify_mode = ssl.CERT_NONE
    if cert is not None:
        ctx.load_cert_chain(pki.crt(cert), pki.key(cert))
    if minv is not None:
        ctx.minimum_version = minv
    if maxv is not None:
        ctx.maximum_version = maxv
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    return ctx


def tls_connect(port, ctx, sni=None, session=None, timeout=5):
    """A TLS connection to 127.0.0.1:port (handshake done). sni=None sends none."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=sni, session=session)
    except BaseException:
        raw.close()
        raise


def read_response(s, method="GET", timeout=10):
    """One response from a (TLS or plain) socket, parsed; None if it closed with nothing."""
    buf = bytearray()
    eof = False
    end = time.monotonic() + timeout
    while True:
        got = parse_response(buf, method, eof)
        if got is not None:
            return got[0]
        if eof:
            return None
        if time.monotonic() > end:
            raise socket.timeout("no complete response")
        s.settimeout(max(0.05, end - time.monotonic()))
        try:
            data = s.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            data = b""
        if not data:
            eof = True
        buf += data


def request_bytes(path="/", host="test.local", headers=(), close=True):
    hs = [("Host", host)] + list(headers)
    if close:
        hs.append(("Connection", "close"))
    return ("GET %s HTTP/1.1\r\n" % path
            + "".join("%s: %s\r\n" % kv for kv in hs) + "\r\n").encode("latin-1")


def https_get(port, ctx, path="/", host="test.local", sni=None, headers=(), session=None):
    """One GET with Connection: close. Returns (response, info) where info has
    version, cipher, peer_der, session (resumable: we shut down cleanly) and
    session_reused."""
    s = tls_connect(port, ctx, sni=sni, session=session)
    try:
        info = {"version": s.version(), "cipher": s.cipher()[0],
                "peer_der": s.getpeercert(binary_form=True), "session_reused": s.session_reused}
        s.sendall(request_bytes(path, host, headers))
        r = read_response(s)
        info["session"] = s.session
        try:
            s.unwrap()       # sets SSL_SENT_SHUTDOWN: else SSL_free makes the session unresumable
        except (OSError, ValueError):
            pass
        return r, info
    finally:
        s.close()


def handshake_fails(port, ctx, sni=None, path="/"):
    """True if the handshake, or the first exchange after it (TLS 1.3 reports a
    refused client certificate only then), fails at the TLS level or gets no
    response."""
    try:
        s = tls_connect(port, ctx, sni=sni)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return True
    try:
        s.sendall(request_bytes(path))
        r = read_response(s, timeout=5)
        return r is None
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return True
    finally:
        s.close()


def s_client(port, *args, data=b"", timeout=15):
    """openssl s_client against 127.0.0.1:port; data is sent, then s_client waits
    for the server to close (-ign_eof); without data it closes at once.
    Returns (rc, stdout+stderr text)."""
    cmd = [OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port] + list(args)
    if data:
        cmd.append("-ign_eof")
    p = subprocess.run(cmd, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return p.returncode, (p.stdout + p.stderr).decode("latin-1")


def s_client_peer_der(out):
    """The server certificate s_client printed, as DER (None if none)."""
    b = out.find("-----BEGIN CERTIFICATE-----")
    e = out.find("-----END CERTIFICATE-----", b)
    if b < 0 or e < 0:
        return None
    return ssl.PEM_cert_to_DER_cert(out[b: e + len("-----END CERTIFICATE-----")] + "\n")


def wait_for(pred, timeout=5, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


# ---- a TLS backend ------------------------------------------------------------------

class TLSBackend:
    """An HTTPS backend on 127.0.0.1: answers every request 200 with body
    "conn=N reused=0|1 version=V", keep-alive unless close_each (then each
    response says Connection: close and the connection is closed). Records per
    accepted connection: whether the handshake resumed a session, the version,
    the SNI, the request heads and each request body's (length, crc32).
    body_size: answer with that many bytes of backends.pattern_blocks instead."""

    def __init__(self, pki, cert="backend", maxv=None, body_size=None):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(pki.crt(cert), pki.key(cert))
        if maxv is not None:
            self.ctx.maximum_version = maxv
        self.ctx.sni_callback = self._on_sni
        self.close_each = False
        self.body_size = body_size
        self.lock = threading.Lock()
        self.conns = []            # dicts: id, reused, version, sni, heads, bodies, error
        self.stopping = threading.Event()
        self.threads = []
        self.socks = []
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.address = "127.0.0.1:%d" % self.port
        self._sni = {}
        t = threading.Thread(target=self._accept_loop, daemon=True, name="tls-backend")
        t.start()
        self.accept_thread = t

    def _on_sni(self, sslsock, name, ctx):
        self._sni[id(sslsock)] = name
        return None

    def handshaken(self):
        with self.lock:
            return [c for c in self.conns if c["error"] is None and c["version"] is not None]

    def _accept_loop(self):
        while not self.stopping.is_set():
            try:
                s, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            with self.lock:
                rec = {"id": len(self.conns), "reused": None, "version": None, "sni": None,
                       "heads": [], "bodies": [], "error": None}
                self.conns.append(rec)
                self.socks.append(s)
            t = threading.Thread(target=self._serve, args=(s, rec), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, raw, rec):
        raw.settimeout(5)
        try:
            s = self.ctx.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
            s.do_handshake()
        except (OSError, ssl.SSLError) as e:
            rec["error"] = repr(e)
            raw.close()
            return
        with self.lock:
            rec["reused"] = s.session_reused
            rec["version"] = s.version()
            rec["sni"] = self._sni.pop(id(s), None)
            self.socks.append(s)
        buf = bytearray()
        try:
            while not self.stopping.is_set():
                while b"\r\n\r\n" not in buf:
                    data = s.recv(65536)
                    if not data:
                        return
                    buf += data
                i = buf.index(b"\r\n\r\n")
                head = bytes(buf[: i + 4])
                del buf[: i + 4]
                cl = 0
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    k, _, v = line.partition(":")
                    if k.strip().lower() == "content-length":
                        cl = int(v.strip())
                while len(buf) < cl:
                    data = s.recv(65536)
                    if not data:
                        return
                    buf += data
                got = (cl, zlib.crc32(bytes(buf[:cl])))
                del buf[:cl]
                with self.lock:
                    rec["heads"].append(head)
                    rec["bodies"].append(got)
                if self.body_size is not None:
                    self._send_pattern(s)
                    continue
                body = ("conn=%d reused=%d version=%s" % (rec["id"], int(bool(rec["reused"])),
                                                          rec["version"])).encode()
                resp = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n" \
                       % len(body)
                if self.close_each:
                    resp += b"Connection: close\r\n"
                s.sendall(resp + b"\r\n" + body)
                if self.close_each:
                    try:
                        s.unwrap()
                    except (OSError, ValueError):
                        pass
                    return
        except (OSError, ssl.SSLError):
            pass
        finally:
            try:
                s.close()
            except OSError:
                pass

    def _send_pattern(self, s):
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                  b"Content-Length: %d\r\n\r\n" % self.body_size)
        for b in pattern_blocks(self.body_size):
            s.sendall(b)

    def stop(self):
        self.stopping.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self.socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.accept_thread.join(2)
        for t in self.threads:
            t.join(2)


@pytest.fixture
def tls_backend(pki):
    """tls_backend(cert="backend", maxv=None, body_size=None) -> a started
    TLSBackend, stopped after the test. Request it before `rproxy` so that the
    proxy stops first."""
    started = []

    def make(cert="backend", maxv=None, body_size=None):
        b = TLSBackend(pki, cert, maxv, body_size)
        started.append(b)
        return b

    yield make
    for b in started:
        b.stop()
