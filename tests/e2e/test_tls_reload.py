"""TLS and reloads (docs/tls.md): every reload reads the certificate files
again; a reload whose files are broken is refused with FILE:LINE and the
running configuration goes on serving; random ticket keys are shared by the
configurations of one listener address, so tickets made before a reload are
still resumed after it, and so is the session cache."""

import signal
import ssl

import pytest

from tlsutil import (client_ctx, config, https_get, pki, read_response,  # noqa: F401
                     request_bytes, tls_connect, tls_table, wait_for)


def start(backend, rproxy, pki, *tls_fields):
    be = backend()
    lua = config({"app1": (be.address, "")},
                 ['address = "127.0.0.1:@PORT@", x_headers = { "X-Forwarded-For" }, %s'
                  % tls_table(pki, *tls_fields)])
    return be, rproxy(lua)


def reload_with(p, old, new, outcome):
    """Edits the running proxy's rproxy.lua, sends SIGHUP and waits for the
    log line saying the reload was validated ("validated") or refused."""
    text = p.conf.read_text()
    assert old in text
    p.conf.write_text(text.replace(old, new))
    n = p.stderr().count(outcome)
    p.signal(signal.SIGHUP)
    assert wait_for(lambda: p.stderr().count(outcome) > n), p.stderr()[-2000:]


def peer_der(p, pki, **kw):
    r, info = https_get(p.port, client_ctx(pki, **kw), sni="localhost")
    assert r is not None and r.status == 200, r
    return info["peer_der"]


def test_failed_reload_keeps_serving(backend, rproxy, pki):
    be, p = start(backend, rproxy, pki)
    assert peer_der(p, pki) == pki.der("server")
    reload_with(p, pki.crt("server"), pki.path("missing.crt"), "refused")
    err = p.stderr()
    assert "rproxy.lua:" in err and "cannot read certificate" in err, err[-2000:]
    for _ in range(3):
        assert peer_der(p, pki) == pki.der("server")
    assert p.alive()


def test_reload_serves_new_certificate(backend, rproxy, pki):
    be, p = start(backend, rproxy, pki)
    assert peer_der(p, pki) == pki.der("server")
    reload_with(p, 'cert = "%s", key = "%s"' % (pki.crt("server"), pki.key("server")),
                'cert = "%s", key = "%s"' % (pki.crt("ecdsa"), pki.key("ecdsa")), "validated")
    assert wait_for(lambda: peer_der(p, pki) == pki.der("ecdsa"), timeout=5), p.stderr()[-2000:]


def resumed_after_reload(be, p, ctx):
    """A session made before a reload (same certificates, so the same session
    id context; another x_headers), offered after it: whether it was reused."""
    r, info = https_get(p.port, ctx, sni="localhost")
    assert r.status == 200 and info["session"] is not None
    reload_with(p, '"X-Forwarded-For"', '"X-Forwarded-For", "X-SSL-Protocol"', "validated")
    assert wait_for(lambda: https_get(p.port, ctx, sni="localhost")[0] is not None
                    and be.requests[-1].header("X-SSL-Protocol") is not None, timeout=5), \
        "the new configuration never served"
    r, info2 = https_get(p.port, ctx, sni="localhost", session=info["session"])
    assert r.status == 200
    assert be.requests[-1].header("X-SSL-Protocol") is not None   # the new snapshot served it
    return info2["session_reused"]


def test_tickets_survive_reload(backend, rproxy, pki):
    be, p = start(backend, rproxy, pki, "session_cache = false")
    assert resumed_after_reload(be, p, client_ctx(pki, maxv=ssl.TLSVersion.TLSv1_2)), \
        "a ticket from before the reload was not resumed"


@pytest.mark.parametrize("maxv", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3],
                         ids=["tls12", "tls13"])
@pytest.mark.parametrize("tickets", ["tickets = false", "tickets = true"])
def test_session_cache_survives_reload(backend, rproxy, pki, maxv, tickets):
    """tickets = false, and tickets = true with random keys while the cache has
    room: TLS 1.2 resumes by session ID, TLS 1.3 by stateful tickets, both
    found in the session cache, which the listener's snapshots share
    (docs/tls.md): a reload does not empty it."""
    be, p = start(backend, rproxy, pki, tickets)
    assert resumed_after_reload(be, p, client_ctx(pki, maxv=maxv)), \
        "a session from before the reload was not resumed"


def test_repeated_reloads_swap_certificates(backend, rproxy, pki):
    """Sixteen reloads in a row, alternating the listener's certificate; each is
    validated and served. Under ASan this also catches a use-after-free found
    with these tests: rp_server_reload() (core/server.c) logs "generation %u
    validated" from r->id after posting the swaps, but the worker that applies
    the last swap frees r (worker.c swap_free), and an idle worker does that at
    once."""
    be, p = start(backend, rproxy, pki)
    pairs = [('cert = "%s", key = "%s"' % (pki.crt(n), pki.key(n)), n)
             for n in ("server", "ecdsa")]
    for i in range(16):
        (old, _), (new, name) = pairs[i % 2], pairs[(i + 1) % 2]
        reload_with(p, old, new, "validated")
        assert "reload: generation %d validated" % (i + 2) in p.stderr(), p.stderr()[-1500:]
        assert wait_for(lambda: peer_der(p, pki) == pki.der(name), timeout=5), (i, name)
    assert p.alive()


def test_connections_outliving_their_snapshot_close_cleanly(backend, rproxy, pki):
    """TLS connections opened before a reload keep the old snapshot until they
    end. When their clients then go away without close_notify, the last one
    lets the snapshot go, libevent frees its SSL afterwards, and SSL_free asks
    the snapshot's session memo whether to forget the session. Under ASan this
    caught a use after free of the memo (found by fuzzing): the memo now lives
    as long as the SSL_CTXs it serves."""
    be, p = start(backend, rproxy, pki)
    ctx = client_ctx(pki)
    one, two = '"X-Forwarded-For"', '"X-Forwarded-For", "X-SSL-Protocol"'
    for rnd in range(3):
        conns = []
        for _ in range(4):
            s = tls_connect(p.port, ctx, sni="localhost")
            s.sendall(request_bytes("/before", close=False))
            r = read_response(s)
            assert r is not None and r.status == 200, r
            conns.append(s)
        old, new = (one, two) if rnd % 2 == 0 else (two, one)
        reload_with(p, old, new, "validated")
        for s in conns:
            s.sendall(request_bytes("/after", close=False))
            r = read_response(s)
            assert r is not None and r.status == 200, r
            s.close()                      # no close_notify: Python's close() sends none
        assert wait_for(lambda: https_get(p.port, ctx, sni="localhost")[0] is not None)
    assert p.alive()
