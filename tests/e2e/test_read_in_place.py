"""Reads parsed in place (docs/DESIGN.md, "Own reads of plain sockets").

A read into an empty input is parsed where it landed, in the worker's scratch
buffer, and what the parser leaves (a pipelined request, its start, bytes a
backend sent past its response) moves into the connection's input before
anything else runs. These tests put such leftovers at the edges: a request
cut between two reads after a whole one, a head cut in the middle of a field,
and a backend that sends more than its response.
"""

import json
import time

from httpclient import RawClient, req
from proxy import basic_lua


def _target(r):
    assert r is not None and r.status == 200, r
    return json.loads(r.body)["target"]


def test_second_request_cut_between_reads(backend, rproxy):
    """One write holds a whole request and the first half of the next; the rest
    comes after the first answer: both are answered, in order."""
    be = backend("normal")
    p = rproxy(basic_lua({"app1": be.address}))
    c = RawClient(p.port)
    second = req("GET", "/second", headers=[("X-Pad", "p" * 300)])
    cut = len(second) // 2
    c.send(req("GET", "/first") + second[:cut])
    assert _target(c.read_response()) == "/first"
    time.sleep(0.1)                        # the half waits in the input
    c.send(second[cut:])
    assert _target(c.read_response()) == "/second"
    c.close()
    assert be.paths() == ["/first", "/second"]


def test_head_cut_byte_by_byte(backend, rproxy):
    """A head sent one byte per write (each read parses one byte in place and
    the field being read spans all of them), then a second request whole."""
    be = backend("normal")
    p = rproxy(basic_lua({"app1": be.address}))
    c = RawClient(p.port)
    one = req("GET", "/bytes", headers=[("X-Long", "v" * 40)])
    for i in range(len(one)):
        c.send(one[i:i + 1])
        time.sleep(0.002)
    assert _target(c.read_response()) == "/bytes"
    c.send(req("GET", "/whole"))
    assert _target(c.read_response()) == "/whole"
    c.close()
    assert be.requests[0].header("x-long") == "v" * 40


def _stray_after_first(conn, q):
    """The first answer comes with 6 bytes past its Content-Length, in the same
    write; later ones are plain echoes."""
    if q.path == "/stray":
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokJUNK!")
        return True
    return conn.echo(q)


def test_backend_bytes_past_the_response_are_not_forwarded(backend, rproxy):
    """The client gets exactly the response's 2 bytes; the backend connection that
    carried the stray ones is not used again (its framing cannot be trusted)."""
    be = backend(handler=_stray_after_first)
    p = rproxy(basic_lua({"app1": be.address}, backend="connections = 1"))
    c = RawClient(p.port)
    c.send(req("GET", "/stray"))
    r = c.read_response()
    assert r is not None and r.status == 200 and r.body == b"ok", r
    for i in range(3):
        c.send(req("GET", "/next%d" % i))
        assert _target(c.read_response()) == "/next%d" % i
    c.close()
    assert be.connections >= 2, "the connection with stray bytes was used again"
