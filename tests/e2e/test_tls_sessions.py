"""Session resumption on TLS listeners (docs/tls.md, "The session cache and
tickets", "Ticket key files"): by the server-side session cache (tickets off),
by RFC 5077 tickets (cache off), TLS 1.3 resumption, and one ticket_key_file
shared by two rproxy instances so that either resumes the other's sessions;
a ticket from another key or another listener's certificates is not accepted."""

import os
import re
import ssl
import subprocess
import time

import pytest

from tlsutil import (OPENSSL, client_ctx, config, https_get, lq, pki, s_client,  # noqa: F401
                     tls_table)

# keep-alive: s_client waits (-ign_eof) until keepalive_timeout closes the idle
# connection. (After `Connection: close` rproxy sends no close_notify, s_client
# answers with a fatal alert and OpenSSL drops the session from the server's
# cache: test_tls_close_notify.py.)
REQ = b"GET /s HTTP/1.1\r\nHost: test.local\r\n\r\n"
V12 = ssl.TLSVersion.TLSv1_2
V13 = ssl.TLSVersion.TLSv1_3


def start(backend, rproxy, pki, *tls_fields, certs=("server",), be=None,
          x_headers='"X-SSL-Protocol"'):
    be = be or backend()
    lua = config({"app1": (be.address, "")},
                 ['address = "127.0.0.1:@PORT@", keepalive_timeout = 0.3, x_headers = { %s }, %s'
                  % (x_headers, tls_table(pki, *tls_fields, certs=certs))])
    return be, rproxy(lua)


def ticket_bytes(sess):
    """The length of the ticket in an s_client -sess_out file: 0 for none, 32
    for a TLS 1.3 stateful ticket (the session's ID), more for a stateless one
    (the whole session, encrypted)."""
    out = subprocess.run([OPENSSL, "sess_id", "-in", sess, "-noout", "-text"],
                         stdout=subprocess.PIPE, check=True, timeout=15).stdout.decode()
    if "TLS session ticket:" not in out:
        return 0
    n = 0
    for line in out.split("TLS session ticket:", 1)[1].splitlines()[1:]:
        m = re.match(r"\s+[0-9a-f]{4} - (.{47})", line + " " * 47)
        if m is None:
            break
        n += len(re.findall(r"[0-9a-f]{2}", m.group(1)))
    return n


def s_client_resumes(p, tmp, ver_flag, *args, sess=None):
    """A full handshake with -sess_out, then one with -sess_in: the second's
    s_client output. sess: the session file (kept after)."""
    sess = sess or os.path.join(tmp, "sess-%d.pem" % p.port)
    if os.path.exists(sess):
        os.unlink(sess)
    rc, out = s_client(p.port, ver_flag, "-servername", "localhost", "-sess_out", sess, *args,
                       data=REQ)
    assert "HTTP/1.1 200" in out and "New, " in out, out[-1500:]
    assert os.path.exists(sess), out[-1500:]
    rc, out = s_client(p.port, ver_flag, "-servername", "localhost", "-sess_in", sess, *args,
                       data=REQ)
    assert "HTTP/1.1 200" in out, out[-1500:]
    return out


def py_resumes(port_a, port_b, pki, maxv, cert=None, ctx=None):
    """A session made on port_a, offered on port_b: whether it was reused."""
    ctx = ctx or client_ctx(pki, maxv=maxv, cert=cert)
    r, info = https_get(port_a, ctx, sni="localhost")
    assert r.status == 200 and not info["session_reused"]
    assert info["session"] is not None
    r, info2 = https_get(port_b, ctx, sni="localhost", session=info["session"])
    assert r.status == 200, r
    return info2["session_reused"]


def test_session_cache_tls12(backend, rproxy, pki, tmpdir_rp):
    be, p = start(backend, rproxy, pki, "tickets = false")
    out = s_client_resumes(p, tmpdir_rp, "-tls1_2")
    assert "Reused, TLSv1.2" in out, out[-1500:]
    assert py_resumes(p.port, p.port, pki, V12)


def test_session_cache_tls13_without_tickets(backend, rproxy, pki, tmpdir_rp):
    """TLS 1.3 with tickets = false: stateful resumption through the cache."""
    be, p = start(backend, rproxy, pki, "tickets = false")
    out = s_client_resumes(p, tmpdir_rp, "-tls1_3")
    assert "Reused, TLSv1.3" in out, out[-1500:]


def test_tickets_tls12_without_cache(backend, rproxy, pki, tmpdir_rp):
    be, p = start(backend, rproxy, pki, "session_cache = false")
    out = s_client_resumes(p, tmpdir_rp, "-tls1_2")
    assert "Reused, TLSv1.2" in out, out[-1500:]
    assert py_resumes(p.port, p.port, pki, V12)


def test_no_cache_no_tickets_no_resumption(backend, rproxy, pki, tmpdir_rp):
    be, p = start(backend, rproxy, pki, "session_cache = false", "tickets = false")
    ctx = client_ctx(pki, maxv=V12)
    r, info = https_get(p.port, ctx, sni="localhost")
    assert r.status == 200
    if info["session"] is not None:
        r, info2 = https_get(p.port, ctx, sni="localhost", session=info["session"])
        assert r.status == 200 and not info2["session_reused"]


def test_tls13_resumption(backend, rproxy, pki, tmpdir_rp):
    be, p = start(backend, rproxy, pki)
    out = s_client_resumes(p, tmpdir_rp, "-tls1_3")
    assert "Reused, TLSv1.3" in out, out[-1500:]
    assert py_resumes(p.port, p.port, pki, V13)
    assert be.wait_requests(4)
    assert {q.header("X-SSL-Protocol") for q in be.requests} == {"TLSv1.3"}


@pytest.mark.parametrize("maxv", [V12, V13], ids=["tls12", "tls13"])
def test_resumed_session_keeps_client_certificate_facts(backend, rproxy, pki, maxv):
    be, p = start(backend, rproxy, pki, "client_ca = %s" % lq(pki.crt("ca")),
                  'verify_client = "optional"', x_headers='"X-SSL-Subject"')
    assert py_resumes(p.port, p.port, pki, maxv, cert="client")
    assert be.wait_requests(2)
    assert [q.header("X-SSL-Subject") for q in be.requests] == ["CN=client one,O=Example"] * 2


def test_tls12_ticket_resumed_again_and_again_with_client_certificate(backend, rproxy, pki):
    """Stateless tickets and the session cache on: the session behind a TLS 1.2
    ticket is kept in memory (docs/tls.md, "Tickets resumed from memory").
    Each resumption of one ticket keeps the client certificate's facts, and a
    client without tickets resumes by session ID beside it."""
    be, p = start(backend, rproxy, pki, "client_ca = %s" % lq(pki.crt("ca")),
                  'verify_client = "require"', 'tickets = "stateless"',
                  x_headers='"X-SSL-Subject"')
    ctx = client_ctx(pki, maxv=V12, cert="client")
    r, info = https_get(p.port, ctx, sni="localhost")
    assert r.status == 200 and not info["session_reused"]
    assert info["session"].has_ticket
    for _ in range(5):
        r, again = https_get(p.port, ctx, sni="localhost", session=info["session"])
        assert r.status == 200 and again["session_reused"]
    no_tickets = client_ctx(pki, maxv=V12, cert="client")
    no_tickets.options |= ssl.OP_NO_TICKET
    assert py_resumes(p.port, p.port, pki, V12, cert="client", ctx=no_tickets)
    assert be.wait_requests(8)
    assert [q.header("X-SSL-Subject") for q in be.requests] == ["CN=client one,O=Example"] * 8


def test_tickets_only_once_the_cache_is_full(backend, rproxy, pki, tmpdir_rp):
    """Random ticket keys (the default): while the session cache has room, a
    TLS 1.2 session gets no ticket and resumes by its ID, and TLS 1.3 tickets
    are stateful (docs/tls.md, "Tickets only when the cache is full"); once it
    is full, new sessions get stateless tickets, which resume too."""
    be, p = start(backend, rproxy, pki, "session_cache = { size = 2 }")
    ctx = client_ctx(pki, maxv=V12)
    for _ in range(2):
        r, info = https_get(p.port, ctx, sni="localhost")
        assert r.status == 200 and not info["session"].has_ticket
        r, again = https_get(p.port, ctx, sni="localhost", session=info["session"])
        assert again["session_reused"]
    r, info = https_get(p.port, ctx, sni="localhost")
    assert info["session"].has_ticket, "the cache is full: a ticket was due"
    r, again = https_get(p.port, ctx, sni="localhost", session=info["session"])
    assert again["session_reused"]

    # TLS 1.3: two stateful tickets a full handshake; a resumption adds its new
    # ticket and forgets the one it used (clients use each once)
    _, p13 = start(backend, rproxy, pki, "session_cache = { size = 2 }", be=be)
    sess = os.path.join(tmpdir_rp, "tls13.pem")
    out = s_client_resumes(p13, tmpdir_rp, "-tls1_3", sess=sess)
    assert "Reused, TLSv1.3" in out, out[-1500:]
    assert ticket_bytes(sess) == 32, "not a stateful ticket"
    rc, out = s_client(p13.port, "-tls1_3", "-servername", "localhost", data=REQ)
    assert "HTTP/1.1 200" in out, out[-1500:]                        # fills the cache
    out = s_client_resumes(p13, tmpdir_rp, "-tls1_3", sess=sess)
    assert "Reused, TLSv1.3" in out, out[-1500:]
    assert ticket_bytes(sess) > 100, "not a stateless ticket"


# ---- ticket key files -----------------------------------------------------------

def write_key(tmp, name, data):
    path = os.path.join(tmp, name)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)
    return path


@pytest.mark.parametrize("maxv", [V12, V13], ids=["tls12", "tls13"])
@pytest.mark.parametrize("size", [80, 48])
def test_ticket_key_file_shared_by_two_instances(backend, rproxy, pki, tmpdir_rp, maxv, size):
    key = write_key(tmpdir_rp, "ticket.key", os.urandom(size))
    other = write_key(tmpdir_rp, "other.key", os.urandom(size))
    be = backend()
    kf = "ticket_key_file = %s" % lq(key)
    _, a = start(backend, rproxy, pki, kf, be=be)
    _, b = start(backend, rproxy, pki, kf, be=be)
    _, c = start(backend, rproxy, pki, "ticket_key_file = %s" % lq(other), be=be)
    assert py_resumes(a.port, b.port, pki, maxv), "B did not resume A's session"
    assert py_resumes(b.port, a.port, pki, maxv), "A did not resume B's session"
    assert not py_resumes(a.port, c.port, pki, maxv), "C resumed a ticket of another key"


def test_ticket_key_rotation_old_record_still_decrypts(backend, rproxy, pki, tmpdir_rp):
    """The first record encrypts, every record decrypts: B = new key + A's key
    resumes A's sessions."""
    old, new = os.urandom(80), os.urandom(80)
    ka = write_key(tmpdir_rp, "a.key", old)
    kb = write_key(tmpdir_rp, "b.key", new + old)
    be = backend()
    _, a = start(backend, rproxy, pki, "session_cache = false", "ticket_key_file = %s" % lq(ka),
                 be=be)
    _, b = start(backend, rproxy, pki, "session_cache = false", "ticket_key_file = %s" % lq(kb),
                 be=be)
    for maxv in (V12, V13):
        assert py_resumes(a.port, b.port, pki, maxv), maxv
        # B encrypts with `new`, which A does not have
        assert not py_resumes(b.port, a.port, pki, maxv), maxv


def test_sessions_do_not_cross_listeners_with_other_certificates(backend, rproxy, pki,
                                                                 tmpdir_rp):
    """One key file, two instances serving different certificates: the session
    id context differs, so a ticket of one is not resumed by the other."""
    key = write_key(tmpdir_rp, "ticket.key", os.urandom(80))
    be = backend()
    kf = "ticket_key_file = %s" % lq(key)
    _, a = start(backend, rproxy, pki, kf, be=be)
    _, b = start(backend, rproxy, pki, kf, certs=("ecdsa",), be=be)
    for maxv in (V12, V13):
        assert not py_resumes(a.port, b.port, pki, maxv), maxv


def test_random_ticket_key_rotation(backend, rproxy, pki):
    """ticket_rotate = 1: a ticket of the key before the current one is still
    resumed (and renewed); one two rotations old is not."""
    be, p = start(backend, rproxy, pki, "session_cache = false", "ticket_rotate = 1")
    ctx = client_ctx(pki, maxv=V12)
    r, info = https_get(p.port, ctx, sni="localhost")
    t0 = info["session"]
    time.sleep(1.2)
    r, info = https_get(p.port, ctx, sni="localhost", session=t0)
    assert info["session_reused"], "a ticket of the previous key was refused"
    t1 = info["session"]                   # renewed: made with the new key
    time.sleep(1.2)
    r, info = https_get(p.port, ctx, sni="localhost", session=t0)
    assert not info["session_reused"], "a ticket two rotations old was resumed"
    r, info = https_get(p.port, ctx, sni="localhost", session=t1)
    assert info["session_reused"], "the renewed ticket was refused"
