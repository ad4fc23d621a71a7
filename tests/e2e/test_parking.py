"""Parked clients and spare conns (docs/DESIGN.md, "Parked clients").

Past the first 32 idle ones of its worker (which stay bound), a plain
keep-alive client that waits for its next request with nothing buffered gives
its conn (request state, bufferevent, buffers) back to the worker and keeps
only its socket; a conn freed by a closing client is reused by the next one.
These tests check what that must never change: each client gets its own
answers, nothing of one client's answer reaches another, a parked client is
still timed out, stopped and closed like any other, and an idle connection
costs little memory.
"""

import json
import random
import resource
import signal
import socket
import time

import pytest

from backends import big_download
from httpclient import RawClient, req
from proxy import basic_lua
from test_proxy_basic import start_simple
from test_reload_lib import ASAN, Reloader


def _own_answer(c, path, body=b""):
    """Sends one request on c and checks the echo names it; returns None or an error."""
    c.send(req("POST" if body else "GET", path, body=body))
    r = c.read_response(timeout=20)
    if r is None or r.status != 200:
        return (path, r)
    doc = json.loads(r.body)
    if doc["target"] != path or doc["body_len"] != len(body):
        return (path, doc["target"], doc["body_len"])
    return None


IDLE_BOUND = 32        # CONN_IDLE_BOUND_MAX: idle conns a worker keeps bound


def _fill_idle_list(port, n=IDLE_BOUND + 8):
    """n keep-alive clients, each after one request, held idle: the worker's
    idle conns kept bound are all taken, so the next idle client parks."""
    held = []
    for i in range(n):
        c = RawClient(port)
        assert _own_answer(c, "/filler%d" % i) is None
        held.append(c)
    return held


def _close_all(clients):
    for c in clients:
        c.close()


def _raise_fd_limit(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


def test_parked_clients_each_get_their_own_answers(backend, rproxy):
    """200 keep-alive clients on one worker, three rounds in shuffled order: each
    client's conn is parked between its requests and a spare is bound when it
    sends again, usually another client's last one."""
    be, p = start_simple(backend, rproxy, be_opts="connections = 4")
    rnd = random.Random(7)
    clients = [RawClient(p.port, timeout=20) for _ in range(200)]
    errors = []
    for rounds in range(3):
        order = list(range(len(clients)))
        rnd.shuffle(order)
        for n in order:
            body = (b"%d-%d;" % (n, rounds)) * (n % 3)
            e = _own_answer(clients[n], "/c%d/r%d" % (n, rounds), body)
            if e:
                errors.append(e)
    for c in clients:
        c.close()
    assert not errors, errors[:5]
    assert len(be.requests) == 600


def test_parked_client_sends_a_pipelined_pair(backend, rproxy):
    """Two requests in one write to a parked client: both answered, in order."""
    be, p = start_simple(backend, rproxy)
    fillers = _fill_idle_list(p.port)
    c = RawClient(p.port)
    assert _own_answer(c, "/first") is None
    c.send(req("GET", "/second") + req("GET", "/third"))
    for path in ("/second", "/third"):
        r = c.read_response()
        assert r is not None and r.status == 200, r
        assert json.loads(r.body)["target"] == path
    c.close()
    _close_all(fillers)


def test_parked_client_half_close_is_closed(backend, rproxy):
    """A parked client that shuts its write side gets the connection closed
    (the EOF reaches a conn bound again for it), and the proxy serves on."""
    be, p = start_simple(backend, rproxy)
    fillers = _fill_idle_list(p.port)
    c = RawClient(p.port)
    assert _own_answer(c, "/one") is None
    c.sock.shutdown(socket.SHUT_WR)
    c.sock.settimeout(10)
    assert c.sock.recv(100) == b""
    c.close()
    c = RawClient(p.port)
    assert _own_answer(c, "/after") is None
    c.close()
    _close_all(fillers)


def test_parked_clients_closed_at_keepalive_timeout(backend, rproxy):
    """Parked or kept bound, every idle client is closed once keepalive_timeout
    has passed, and not long before."""
    be = backend("normal")
    p = rproxy(basic_lua({"app1": be.address}, listen="keepalive_timeout = 1"))
    t0 = time.monotonic()
    clients = _fill_idle_list(p.port)
    for i, c in enumerate(clients):
        assert c.wait_closed(1 + 5), "idle client %d not closed after keepalive_timeout" % i
    assert time.monotonic() - t0 > 0.5, "closed long before keepalive_timeout"
    _close_all(clients)


def test_shorter_keepalive_after_reload_is_kept_by_parked_clients(backend, rproxy):
    """A reload shortens keepalive_timeout from 20 s to 1 s. The clients parked
    after it are due before the ones parked before it, although they joined
    the listener's park queue later (core/parkq.c): they are closed about 1 s
    after their request, while the earlier ones stay open."""
    be = backend("normal")
    lua = basic_lua({"app1": be.address}, listen="keepalive_timeout = %d")
    p = rproxy(lua % 20)
    rl = Reloader(p, 1)
    old = _fill_idle_list(p.port)                   # 32 bound, 8 parked: due in 20 s
    rl.reload(lua % 1)
    new = []
    for i in range(8):                              # the bound ones are taken: these park
        c = RawClient(p.port)
        assert _own_answer(c, "/short%d" % i) is None
        new.append(c)
    for i, c in enumerate(new):
        assert c.wait_closed(1 + 4), "client %d parked after the reload not closed" % i
    assert all(c.is_open() for c in old), "a client parked before the reload closed early"
    _close_all(old + new)


def test_parked_clients_outlive_their_removed_listener(backend, rproxy):
    """A reload removes a listener while its idle clients wait, 8 of them parked.
    Their keep-alive time then runs out: the parked ones, last to expire, go from
    the removed listener's park queue, and the last of them frees that listener
    and its queue. The proxy goes on serving (and, under ASan, touches nothing
    freed)."""
    be = backend("normal")
    base = basic_lua({"app1": be.address})
    second = 'rproxy.listen { address = "127.0.0.1:@PORT2@", keepalive_timeout = 2 }\n'
    p = rproxy(base + second, nports=2)
    rl = Reloader(p, 1)
    clients = _fill_idle_list(p.ports[1])           # 32 bound, then 8 parked
    rl.reload(base)
    for i, c in enumerate(clients):
        assert c.wait_closed(2 + 5), "client %d of the removed listener not closed" % i
    time.sleep(0.5)
    assert p.alive()
    c = RawClient(p.port)
    assert _own_answer(c, "/after") is None
    c.close()
    _close_all(clients)


def test_sigterm_closes_parked_clients_at_once(backend, rproxy):
    """A stop closes idle clients, parked ones included, without waiting for
    the grace period (20 s here)."""
    be = backend("normal")
    p = rproxy(basic_lua({"app1": be.address}, settings="grace = 20").replace(
        "grace = 3,", ""))
    clients = _fill_idle_list(p.port)
    t0 = time.monotonic()
    p.signal(signal.SIGTERM)
    rc = p.wait_exit(20 + 5)
    took = time.monotonic() - t0
    for i, c in enumerate(clients):
        assert c.wait_closed(5), "idle client %d still open after the stop" % i
    _close_all(clients)
    assert rc == 0, rc
    assert took < 5, "stop took %.1fs with only idle clients" % took


def test_aborted_download_leaves_nothing_for_the_next_client(backend, rproxy):
    """A client that goes away in the middle of an 8 MiB answer leaves its conn
    with unsent output; the conn becomes a spare, and the clients after it (on
    the same worker, so they get it) see only their own answers."""
    be = backend(handler=big_download(8 << 20))
    echo = backend("normal")
    p = rproxy("""
rproxy.settings { threads = 1, pidfile = "@PIDFILE@", log = { error = "stderr", level = "info" } }
rproxy.backend "big" { address = "%s", connections = 2 }
rproxy.backend "echo" { address = "%s", connections = 2 }
rproxy.listen { address = "127.0.0.1:@PORT@" }
rproxy.vhost "test.local" { default = true,
  routes = { { prefix = "/big", to = "big" }, { to = "echo" } } }
""" % (be.address, echo.address))
    for i in range(3):
        s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.sendall(b"GET /big HTTP/1.1\r\nHost: test.local\r\n\r\n")
        got = 0
        while got < 256 * 1024:
            d = s.recv(65536)
            assert d, "the download ended early"
            got += len(d)
        s.close()                          # unread bytes: a reset
        for j in range(5):
            c = RawClient(p.port)
            assert _own_answer(c, "/after%d/%d" % (i, j)) is None
            c.close()


def test_idle_keepalive_clients_cost_little_memory(backend, rproxy):
    """1,000 idle keep-alive clients, each after one request: the proxy's RSS
    grows by less than 1 KiB per connection (a parked client is its socket
    alone; before parking each cost about 2 KiB). Not under ASan, whose
    allocations carry redzones."""
    if ASAN:
        pytest.skip("ASan's redzones and quarantine change what an allocation costs")
    _raise_fd_limit(4096)
    be, p = start_simple(backend, rproxy, be_opts="connections = 4")
    warm = RawClient(p.port)
    assert _own_answer(warm, "/warm") is None
    rss0 = p.rss_kib()
    clients = []
    for n in range(1000):
        c = RawClient(p.port)
        assert _own_answer(c, "/idle%d" % n) is None
        clients.append(c)
    rss1 = p.rss_kib()
    per_conn = (rss1 - rss0) * 1024 / len(clients)
    errors = [e for e in (_own_answer(c, "/again%d" % n) for n, c in enumerate(clients)) if e]
    for c in clients:
        c.close()
    warm.close()
    assert not errors, errors[:5]
    assert per_conn < 1024, "%.0f bytes per idle connection" % per_conn
