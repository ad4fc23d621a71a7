"""Backend pools: many short client connections share threads x connections
persistent backend connections; max_pending and pending_timeout give 503;
balancers spread requests and skip a backend that is down."""

import concurrent.futures
import hashlib
import json
import socket
import threading
import time

import pytest

from backends import free_port
from httpclient import RawClient, exchange, parse_response, recv_until_closed, req
from proxy import basic_lua

N_CLIENTS = 1000


def one_shot(port, i):
    """One connection, one request (HTTP/1.0 or Connection: close), read to EOF."""
    if i % 2:
        data = b"GET /n%d HTTP/1.0\r\nHost: test.local\r\n\r\n" % i
    else:
        data = b"GET /n%d HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n" % i
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    try:
        s.sendall(data)
        buf = recv_until_closed(s)
    finally:
        s.close()
    got = parse_response(buf, eof=True)
    return got[0].status if got else None


def test_many_clients_share_few_backend_connections(backend, rproxy):
    be = backend()
    threads, conns = 2, 4
    p = rproxy(basic_lua({"app1": be.address}, threads=threads,
                         backend="connections = %d" % conns))
    deadline = time.monotonic() + 150
    statuses = {}
    with concurrent.futures.ThreadPoolExecutor(20) as ex:
        futs = {ex.submit(one_shot, p.port, i): i for i in range(N_CLIENTS)}
        for f in concurrent.futures.as_completed(futs, timeout=max(1, deadline - time.monotonic())):
            try:
                statuses[futs[f]] = f.result()
            except OSError as e:
                statuses[futs[f]] = repr(e)
    bad = {i: s for i, s in statuses.items() if s != 200}
    assert not bad, "%d of %d failed, e.g. %r" % (len(bad), N_CLIENTS, list(bad.items())[:5])
    assert len(be.requests) == N_CLIENTS
    assert be.connections <= threads * conns, \
        "backend accepted %d connections for %d clients; pool is %d threads x %d" % (
            be.connections, N_CLIENTS, threads, conns)
    assert all(q.version == "HTTP/1.1" and not q.wants_close() for q in be.requests[:10]), \
        "requests to the backend must be keep-alive HTTP/1.1: %r" % be.requests[0].head


def _slow(delay):
    def h(conn, q):
        if q.path.startswith("/slow"):
            time.sleep(delay)
        return conn.echo(q)
    return h


def timed_requests(port, paths, gap):
    """Starts one request per path, `gap` seconds apart; returns {path: (status, elapsed)}."""
    out = {}

    def one(path):
        t0 = time.monotonic()
        try:
            r, c = exchange(port, req("GET", path), timeout=30)
            c.close()
            out[path] = (r.status if r else None, time.monotonic() - t0)
        except OSError as e:
            out[path] = (repr(e), time.monotonic() - t0)

    ts = []
    for path in paths:
        t = threading.Thread(target=one, args=(path,))
        t.start()
        ts.append(t)
        time.sleep(gap)
    for t in ts:
        t.join(40)
    return out


def test_max_pending_exceeded_503_at_once(backend, rproxy):
    be = backend(handler=_slow(2.0))
    p = rproxy(basic_lua({"app1": be.address}, backend="connections = 1",
                         listen="max_pending = 2, pending_timeout = 10"))
    assert be.wait_connections(1)
    out = timed_requests(p.port, ["/slow-a", "/slow-b", "/slow-c", "/slow-d", "/slow-e"], 0.15)
    st = {k: v[0] for k, v in out.items()}
    assert st == {"/slow-a": 200, "/slow-b": 200, "/slow-c": 200, "/slow-d": 503,
                  "/slow-e": 503}, out
    for k in ("/slow-d", "/slow-e"):
        assert out[k][1] < 1.5, "503 for a full queue must come at once: %r" % (out,)
    assert sorted(be.paths()) == ["/slow-a", "/slow-b", "/slow-c"]


def test_pending_timeout_503(backend, rproxy):
    be = backend(handler=_slow(4.0))
    p = rproxy(basic_lua({"app1": be.address}, backend="connections = 1",
                         listen="pending_timeout = 1"))
    assert be.wait_connections(1)
    out = timed_requests(p.port, ["/slow-a", "/b"], 0.3)
    assert out["/slow-a"][0] == 200, out
    assert out["/b"][0] == 503, out
    assert out["/b"][1] < 3.9, "503 should come at pending_timeout (1 s): %r" % (out,)
    time.sleep(0.5)
    assert "/b" not in be.paths(), "a request answered 503 was still sent to the backend"


def _slow_then_digest(conn, q):
    """/slow* holds the one backend connection a second; every answer carries the
    SHA-256 of the body the backend got."""
    if q.path.startswith("/slow"):
        time.sleep(1.0)
    return conn.echo(q, extra={"sha": hashlib.sha256(q.body or b"").hexdigest()})


def _queued_behind_slow(backend, rproxy):
    """A proxy with one backend connection, taken by a slow request: the next
    request waits in the pending queue for about a second."""
    be = backend(handler=_slow_then_digest)
    p = rproxy(basic_lua({"app1": be.address}, backend="connections = 1",
                         listen="pending_timeout = 10"))
    assert be.wait_connections(1)
    slow = threading.Thread(target=lambda: exchange(p.port, req("GET", "/slow"), timeout=30))
    slow.start()
    time.sleep(0.3)                        # /slow holds the connection now
    return be, p, slow


def test_queued_request_body_sent_while_waiting(backend, rproxy):
    """Client reads stay on while a request waits for a backend connection: a
    body that arrives meanwhile waits in the input and reaches the backend whole."""
    be, p, slow = _queued_behind_slow(backend, rproxy)
    body = bytes(range(256)) * 1024          # 256 KiB: past the input's high watermark
    c = RawClient(p.port, timeout=30)
    c.send(b"POST /up HTTP/1.1\r\nHost: test.local\r\nContent-Length: %d\r\n\r\n"
           % len(body))
    time.sleep(0.2)                        # queued now
    for i in range(0, len(body), 65536):
        c.send(body[i:i + 65536])
    r = c.read_response(timeout=20)
    slow.join(30)
    assert r is not None and r.status == 200, r
    doc = json.loads(r.body)
    assert doc["body_len"] == len(body) and doc["sha"] == hashlib.sha256(body).hexdigest(), doc
    c.close()


def test_queued_request_half_closed_is_answered(backend, rproxy):
    """A client that sends its whole request and shuts its write side while the
    request is queued gets its answer: the EOF met while waiting is not an abort."""
    be, p, slow = _queued_behind_slow(backend, rproxy)
    c = RawClient(p.port, timeout=30)
    c.send(req("GET", "/after"))
    time.sleep(0.2)                        # queued now
    c.sock.shutdown(socket.SHUT_WR)
    r = c.read_response(timeout=20)
    slow.join(30)
    assert r is not None and r.status == 200, r
    assert json.loads(r.body)["path"] == "/after"
    assert c.wait_closed(), "the connection must end after the answer (the client half-closed)"
    assert "/after" in be.paths()


TWO_LUA = """
rproxy.settings { threads = 1, grace = 2, log = { error = "stderr", level = "info" } }
rproxy.backend "b1" { address = "@B1@", connections = 2, retry = 0.2, retry_max = 1 }
rproxy.backend "b2" { address = "@B2@", connections = 2, retry = 0.2, retry_max = 1 @B2EXTRA@ }
rproxy.pool "app" { "b1", "b2", balance = "@BALANCE@" }
rproxy.listen { address = "127.0.0.1:@PORT@" }
rproxy.vhost "test.local" { default = true, routes = { { to = "app" } } }
"""


def spread(p, n=10):
    got = []
    for i in range(n):
        r, c = exchange(p.port, req("GET", "/s%d" % i))
        c.close()
        assert r is not None and r.status == 200, (i, r)
        got.append(r.header("X-Backend"))
    return got


def test_roundrobin_spreads_over_two_backends(backend, rproxy):
    b1, b2 = backend(name="b1"), backend(name="b2")
    p = rproxy(TWO_LUA, B1=b1.address, B2=b2.address, BALANCE="roundrobin", B2EXTRA="")
    assert b1.wait_connections(1) and b2.wait_connections(1)
    got = spread(p, 10)
    assert 4 <= got.count("b1") <= 6 and 4 <= got.count("b2") <= 6, got


def test_first_uses_first_backend(backend, rproxy):
    b1, b2 = backend(name="b1"), backend(name="b2")
    p = rproxy(TWO_LUA, B1=b1.address, B2=b2.address, BALANCE="first", B2EXTRA="")
    assert b1.wait_connections(1) and b2.wait_connections(1)
    assert spread(p, 6) == ["b1"] * 6


@pytest.mark.parametrize("balance", ["rtt", "most_idle", "random"])
def test_other_balancers_serve(backend, rproxy, balance):
    b1, b2 = backend(name="b1"), backend(name="b2")
    p = rproxy(TWO_LUA, B1=b1.address, B2=b2.address, BALANCE=balance, B2EXTRA="")
    got = spread(p, 10)
    assert set(got) <= {"b1", "b2"}
    assert len(b1.requests) + len(b2.requests) == 10


def test_pool_with_one_backend_down(backend, rproxy):
    b1 = backend(name="b1")
    dead = "127.0.0.1:%d" % free_port()
    p = rproxy(TWO_LUA, B1=b1.address, B2=dead, BALANCE="roundrobin", B2EXTRA="")
    assert spread(p, 10) == ["b1"] * 10


def test_disabled_backend_gets_nothing(backend, rproxy):
    b1, b2 = backend(name="b1"), backend(name="b2")
    p = rproxy(TWO_LUA, B1=b1.address, B2=b2.address, BALANCE="roundrobin",
               B2EXTRA=", enabled = false")
    assert spread(p, 6) == ["b1"] * 6
    assert b2.requests == []
