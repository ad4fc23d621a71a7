"""Accepting clients: TCP_DEFER_ACCEPT (`defer_accept`), the request read as its
connection is accepted, and a Connection: close client left out of epoll while the
backend works, yet still cut off when it resets."""

import socket
import struct
import subprocess
import threading
import time

from httpclient import RawClient, exchange, req
from proxy import basic_lua
from test_reload_lib import Reloader


def server_states(port, peer):
    """The TCP states of the proxy's side of the connections from the client port
    peer to port (ss, iproute2)."""
    out = subprocess.run(["ss", "-Htn", "state", "all",
                          "( sport = :%d and dport = :%d )" % (port, peer)],
                         stdout=subprocess.PIPE, text=True, check=True).stdout
    return sorted(line.split()[0] for line in out.splitlines() if line.strip())


def silent_connection_states(port):
    """Connects, sends nothing, and returns (the socket, the server-side states)."""
    s = socket.create_connection(("127.0.0.1", port))
    time.sleep(0.2)                          # well within the 1 s the kernel defers
    return s, server_states(port, s.getsockname()[1])


def get_on(s):
    s.sendall(req("GET", "/late", headers=[("Connection", "close")]))
    data = b""
    while True:
        piece = s.recv(65536)
        if not piece:
            return data
        data += piece


def test_silent_connection_waits_in_the_kernel(backend, rproxy):
    """With defer_accept (the default) a connection that has sent nothing stays
    with the kernel (SYN-RECV on the server side); with defer_accept = false it is
    accepted at once. Both are served when they speak, the deferred one also after
    the kernel hands it over anyway (about a second)."""
    be = backend()
    p = rproxy(basic_lua({"app1": be.address}) + 'rproxy.listen { address = '
               '"127.0.0.1:@PORT2@", defer_accept = false }\n', nports=2)
    deferred, states = silent_connection_states(p.ports[0])
    assert states == ["SYN-RECV"], states
    direct, states = silent_connection_states(p.ports[1])
    assert states == ["ESTAB"], states
    assert get_on(direct).startswith(b"HTTP/1.1 200 "), "not served without defer_accept"
    direct.close()
    peer = deferred.getsockname()[1]
    end = time.monotonic() + 5               # the kernel resends its SYN-ACK after 1 s,
    while server_states(p.ports[0], peer) != ["ESTAB"] and time.monotonic() < end:
        time.sleep(0.1)                      # and the client's ACK completes it
    assert server_states(p.ports[0], peer) == ["ESTAB"]
    assert get_on(deferred).startswith(b"HTTP/1.1 200 "), "late request not served"
    deferred.close()
    assert be.paths().count("/late") == 2


def test_reload_changes_defer_accept_on_the_open_socket(backend, rproxy):
    be = backend()
    lua = basic_lua({"app1": be.address}, listen="defer_accept = @DEFER@")
    p = rproxy(lua, DEFER="true")
    s, states = silent_connection_states(p.port)
    assert states == ["SYN-RECV"], states
    s.close()
    time.sleep(0.2)
    Reloader(p, workers=1).reload(lua, DEFER="false")
    s, states = silent_connection_states(p.port)
    assert states == ["ESTAB"], states
    s.close()


def test_connection_close_requests_answered(backend, rproxy):
    """Requests read as they are accepted, answered, the connection closed after
    each: GETs, HTTP/1.0, a POST with its body, and one whose head comes in two
    pieces (the read at accept gets only the first)."""
    be = backend()
    p = rproxy(basic_lua({"app1": be.address}))
    for i in range(20):
        r, c = exchange(p.port, req("GET", "/c%d" % i, headers=[("Connection", "close")]))
        assert r is not None and r.status == 200, r
        assert c.wait_closed(5), "connection kept after Connection: close"
        c.close()
    r, c = exchange(p.port, b"GET /ten HTTP/1.0\r\nHost: test.local\r\n\r\n")
    assert r is not None and r.status == 200 and c.wait_closed(5), r
    c.close()
    r, c = exchange(p.port, req("POST", "/post", headers=[("Connection", "close")],
                                body=b"x" * 100000))
    assert r is not None and r.status == 200 and c.wait_closed(5), r
    c.close()
    c = RawClient(p.port)
    c.send(b"GET /split HTTP/1.1\r\nHost: te")
    time.sleep(0.3)
    c.send(b"st.local\r\nConnection: close\r\n\r\n")
    r = c.read_response(timeout=10)
    assert r is not None and r.status == 200 and c.wait_closed(5), r
    c.close()
    assert be.wait_requests(23)
    post = [q for q in be.requests if q.target == "/post"]
    assert post and post[0].body_len == 100000, post


def test_reset_during_slow_answer_to_last_request_is_seen(backend, rproxy):
    """A Connection: close client is out of epoll while the backend works; when
    the backend takes its time it is watched again, so a reset is still seen
    before the answer: the request is logged with status 0 and its backend
    connection (the only one) goes, so the next request is served while the slow
    handler still sleeps."""
    released = threading.Event()

    def h(conn, q):
        if q.path == "/slow":
            released.wait(20)
        return conn.echo(q)

    be = backend(handler=h)
    p = rproxy(basic_lua({"app1": be.address}, backend="connections = 1"))
    assert be.wait_connections(1)
    try:
        s = socket.create_connection(("127.0.0.1", p.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.sendall(req("GET", "/slow", headers=[("Connection", "close")]))
        assert be.wait_heads(1)
        s.close()                            # RST while the backend works
        assert p.wait_access_lines(1, timeout=10), "reset client not logged"
        line = p.access_json()[0]
        assert line["uri"] == "/slow" and line["status"] == 0, line
        r, c = exchange(p.port, req("GET", "/next"), timeout=10)
        assert r is not None and r.status == 200, r
        c.close()
        assert not released.is_set()
    finally:
        released.set()
