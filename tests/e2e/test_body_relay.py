"""Content-Length bodies relayed without a copy (docs/DESIGN.md, "Bodies pass
through"): the bytes of a large body move from one side's input to the other
side's output as they are, and only the last byte goes through the parser. These
tests check that the parser still finds the end of such a body, that what follows
it on either connection is read as the next message, and that the access log counts
the moved bytes."""

import hashlib
import json
import os
import threading
import time

from httpclient import RawClient, req
from proxy import basic_lua

SIZE = 3 * 1024 * 1024 + 7                   # not a multiple of any read size
BODY = os.urandom(SIZE)


def _relay_handler(conn, q):
    if q.path == "/big":
        conn.respond(200, [("Content-Type", "application/octet-stream")],
                     BODY, head_only=(q.method == "HEAD"))
        return True
    if q.path == "/big-stray":
        # the body, then bytes past it in the same write: never the client's
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % SIZE + BODY + b"JUNK!")
        return True
    if q.path == "/upload":                  # the body was read whole before the call
        conn.respond(200, [("Content-Type", "application/json")],
                     json.dumps({"len": q.body_len, "sha": hashlib.sha256(q.body).hexdigest()}))
        return True
    return conn.echo(q)


# chunk sizes of the chunked cases: small and large, one past a 64 KiB read,
# one with an extension
CHUNKS = [100000, 5, 300000, 65537, 1, 1000000, 4096]
CHUNKS.append(SIZE - sum(CHUNKS))


def _chunked(data, ext=b";name=val"):
    out, pos = [], 0
    for i, n in enumerate(CHUNKS):
        out.append(b"%x%s\r\n" % (n, ext if i == 2 else b"") + data[pos:pos + n] + b"\r\n")
        pos += n
    assert pos == len(data)
    return b"".join(out) + b"0\r\n\r\n"


def _chunked_handler(conn, q):
    if q.path == "/chunked":
        conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + _chunked(BODY))
        return q.version == "HTTP/1.1"
    return _relay_handler(conn, q)


def _target(r):
    assert r is not None and r.status == 200, r
    return json.loads(r.body)["target"]


def _big_then_next(c, path, rounds, chunked):
    """GET path on c: BODY exactly (chunked to the client or not), then another
    request on the same connection, answered as itself."""
    for i in range(rounds):
        c.send(req("GET", path))
        r = c.read_response(timeout=30)
        assert r is not None and r.status == 200 and r.complete and r.chunked == chunked, r
        assert len(r.body) == SIZE and r.body == BODY, "body %d bytes, differs" % len(r.body)
        c.send(req("GET", "/after%d" % i))
        assert _target(c.read_response()) == "/after%d" % i


def test_download_then_more_on_the_same_connections(backend, rproxy):
    """Big bodies arrive whole and exact; the one backend connection and the one
    client connection then carry the next responses, which parse as such."""
    be = backend(handler=_relay_handler)
    p = rproxy(basic_lua({"app1": be.address}, backend="connections = 1"))
    c = RawClient(p.port)
    _big_then_next(c, "/big", 3, chunked=False)
    c.send(req("HEAD", "/big"))
    r = c.read_response("HEAD")
    assert r is not None and r.status == 200 and r.body == b"", r
    assert r.header("content-length") == str(SIZE)
    c.send(req("GET", "/after-head"))
    assert _target(c.read_response()) == "/after-head"
    c.close()
    assert be.connections == 1, "the backend connection was not reused"


def test_bytes_past_a_big_body_are_not_forwarded(backend, rproxy):
    be = backend(handler=_relay_handler)
    p = rproxy(basic_lua({"app1": be.address}, backend="connections = 1"))
    c = RawClient(p.port)
    c.send(req("GET", "/big-stray"))
    r = c.read_response(timeout=30)
    assert r is not None and r.status == 200 and r.body == BODY, r
    c.send(req("GET", "/next"))
    assert _target(c.read_response()) == "/next"
    c.close()
    assert be.connections >= 2, "the connection with stray bytes was used again"


def test_upload_then_more_on_the_same_connection(backend, rproxy):
    """A big upload reaches the backend whole and exact; a request pipelined
    right behind it is the next request; the access log counts every byte."""
    be = backend(handler=_relay_handler)
    p = rproxy(basic_lua({"app1": be.address}, backend="connections = 1"))
    c = RawClient(p.port)
    c.send(req("POST", "/upload", body=BODY) + req("GET", "/behind"))
    r = c.read_response(timeout=30)
    assert r is not None and r.status == 200, r
    assert json.loads(r.body) == {"len": SIZE, "sha": hashlib.sha256(BODY).hexdigest()}
    assert _target(c.read_response()) == "/behind"
    c.send(req("GET", "/big"))
    r = c.read_response(timeout=30)
    assert r is not None and r.body == BODY, r
    c.close()
    assert p.wait_access_lines(3)
    log = {x["uri"]: x for x in p.access_json()}
    assert log["/upload"]["bytes_in"] > SIZE, log["/upload"]
    assert log["/big"]["bytes_out"] > SIZE, log["/big"]
    assert log["/behind"]["bytes_in"] < 1000, log["/behind"]


def test_chunked_download_then_more(backend, rproxy):
    """A chunked body's data moves too: re-framed for an HTTP/1.1 client, plain
    (close-delimited) for an HTTP/1.0 one; exact either way, and what follows on
    the kept connections parses."""
    be = backend(handler=_chunked_handler)
    p = rproxy(basic_lua({"app1": be.address}, backend="connections = 1"))
    c = RawClient(p.port)
    _big_then_next(c, "/chunked", 2, chunked=True)
    c.close()
    c = RawClient(p.port)
    c.send(req("GET", "/chunked", version="HTTP/1.0"))
    r = c.read_response(timeout=30)
    assert r is not None and r.status == 200 and not r.chunked and r.body == BODY, r
    c.close()


def test_chunked_upload_then_more(backend, rproxy):
    be = backend(handler=_relay_handler)
    p = rproxy(basic_lua({"app1": be.address}, backend="connections = 1"))
    c = RawClient(p.port)
    c.send(b"POST /upload HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\n\r\n"
           + _chunked(BODY) + req("GET", "/behind"))
    r = c.read_response(timeout=30)
    assert r is not None and r.status == 200, r
    assert json.loads(r.body) == {"len": SIZE, "sha": hashlib.sha256(BODY).hexdigest()}
    assert _target(c.read_response()) == "/behind"
    c.close()


def test_big_chunk_without_its_crlf_is_refused(backend, rproxy):
    """The data of a large chunk moves unparsed, but not its last byte: the bytes
    after it are still checked. A chunk whose data runs on past its size (no
    CRLF there) ends the request with a 400, and nothing complete (nor the request
    hidden behind it) reaches the backend."""
    be = backend(handler=_relay_handler)
    p = rproxy(basic_lua({"app1": be.address}))
    c = RawClient(p.port)
    c.send(b"POST /front HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\n\r\n"
           + b"%x\r\n" % 200000 + BODY[:200000] + b"XX0\r\n\r\n"
           + b"GET /smuggled HTTP/1.1\r\nHost: test.local\r\n\r\n")
    r = c.read_response(timeout=10)
    assert r is None or r.status == 400, r
    assert c.wait_closed(5), "connection left open"
    c.close()
    time.sleep(0.3)
    assert be.requests == [], "backend got a complete request: %r" % be.requests
    assert all(h.path != "/smuggled" for h in be.heads)


# A body that stops for a while after FIRST bytes: more than one 64 KiB read, so
# that the proxy reads on without waiting for epoll and writes with MSG_MORE
FIRST = 1024 * 1024 + 5


def _received(c, nbytes, timeout):
    """Reads on the RawClient c until nbytes are in c.buf; False if they do not come."""
    deadline = time.monotonic() + timeout
    while len(c.buf) < nbytes and not c.eof:
        try:
            c._recv(deadline)
        except OSError:
            return False
    return len(c.buf) >= nbytes


def test_a_download_that_pauses_arrives_up_to_the_pause(backend, rproxy):
    """The backend sends FIRST bytes of the body and then waits until the client
    has every one of them: a proxy that kept any back (read but not relayed, or
    written with MSG_MORE and never pushed) would leave both waiting."""
    got_first = threading.Event()

    def handler(conn, q):
        if q.path != "/paused":
            return conn.echo(q)
        head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % SIZE
        conn.send(head + BODY[:FIRST])
        if got_first.wait(20):
            conn.send(BODY[FIRST:])
        return True

    be = backend(handler=handler)
    p = rproxy(basic_lua({"app1": be.address}, backend="connections = 1"))
    c = RawClient(p.port)
    c.send(req("GET", "/paused"))
    assert _received(c, 200, 10)
    head_len = bytes(c.buf).index(b"\r\n\r\n") + 4
    assert _received(c, head_len + FIRST, 10), \
        "%d of the first %d body bytes arrived" % (len(c.buf) - head_len, FIRST)
    assert bytes(c.buf[head_len:]) == BODY[:len(c.buf) - head_len]
    got_first.set()
    r = c.read_response(timeout=30)
    assert r is not None and r.status == 200 and r.body == BODY, r
    c.send(req("GET", "/after"))
    assert _target(c.read_response()) == "/after"
    c.close()


def test_an_upload_that_pauses_arrives_up_to_the_pause(backend, rproxy):
    """The same the other way: the client sends FIRST bytes of its body and waits
    until the backend has read every one of them."""
    got_first = threading.Event()

    def handler(conn, q):
        if q.method != "POST":
            return conn.echo(q)
        sha = hashlib.sha256()
        for piece in conn.iter_body(q, keep=False):
            sha.update(piece)
            if q.body_len >= FIRST:
                got_first.set()
        conn.respond(200, [("Content-Type", "application/json")],
                     json.dumps({"len": q.body_len, "sha": sha.hexdigest()}))
        return True

    be = backend(handler=handler, stream_body=True)
    p = rproxy(basic_lua({"app1": be.address}, backend="connections = 1"))
    c = RawClient(p.port)
    c.send(b"POST /paused HTTP/1.1\r\nHost: test.local\r\nContent-Length: %d\r\n\r\n"
           % SIZE + BODY[:FIRST])
    assert got_first.wait(10), "the backend got %d of the first %d body bytes" \
        % (getattr(be.heads[0], "body_len", 0) if be.heads else 0, FIRST)
    c.send(BODY[FIRST:])
    r = c.read_response(timeout=30)
    assert r is not None and r.status == 200, r
    assert json.loads(r.body) == {"len": SIZE, "sha": hashlib.sha256(BODY).hexdigest()}
    c.close()
