"""Mutated input: well-formed requests and responses with random damage (bytes
flipped, cut, repeated, framing tokens inserted), the same cases on every run (a
fixed seed per case). test_bad_input.py lists the known traps one by one; this file
looks for the ones nobody listed. Whatever the damage:

- the proxy stays up, and the sanitizer build reports nothing (the fixture checks);
- each answer starts with a status line, or the connection closes without one;
- a 4xx ends the connection;
- the backend receives only well-framed requests (its parser records any error), and
  only requests the proxy itself parsed from the client: a request hidden in a body
  (/SMUGGLED-n) reaches the backend only if the access log shows the proxy took it
  for a request of its own (the client pipelined it), never as a body's bytes the
  backend read as a request.
"""

import random
import re
import socket
import threading
import time

from proxy import basic_lua

CASES = 600
THREADS = 8
SMUGGLED = b"GET /SMUGGLED-%d HTTP/1.1\r\nHost: test.local\r\n\r\n"
STATUS_LINE = re.compile(rb"HTTP/1\.[01] [1-5]\d\d ")

# what a mutation may insert: framing tokens, separators, odd bytes
TOKENS = [b"\r\n", b"\n", b"\r", b"\x00", b" ", b"\t", b":", b";", b",", b"chunked",
          b"Content-Length: 0\r\n", b"Transfer-Encoding: chunked\r\n", b"-1",
          b"99999999999999999999", b"0x10", b"\xff", b"HTTP/1.1", b"Connection: close\r\n",
          b"Connection: upgrade\r\nUpgrade: websocket\r\n", b"Expect: 100-continue\r\n",
          b"\r\n\r\n", b"0\r\n\r\n", SMUGGLED % 0, b"Host: a\r\n", b"%00", b"/../",
          b"A" * 9000, b"fffffffffffffff\r\n"]

RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X\r\n\r\n"
    b"3;a=b\r\nabc\r\n0\r\nX: y\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
    b"HTTP/1.0 200 OK\r\n\r\nclose-delimited body",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n"
    b"Set-Cookie: a=b\r\nSet-Cookie: c=d\r\n\r\nabc",
]


def mutate(rnd, data, rounds):
    b = bytearray(data)
    for _ in range(rounds):
        op = rnd.randrange(6)
        pos = rnd.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(pos, len(b) - 1)] = rnd.randrange(256)
        elif op == 1:
            b[pos:pos] = rnd.choice(TOKENS)
        elif op == 2:
            del b[pos:pos + rnd.randrange(1, 8)]
        elif op == 3:
            b[pos:pos] = b[pos:pos + rnd.randrange(1, 40)]
        elif op == 4:
            del b[pos:]
        else:
            b[pos:pos] = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 6)))
    return bytes(b)


def request(rnd, i):
    """A well-formed request of one of 8 shapes, its path /f<i>, most of them
    carrying /SMUGGLED-<i> as body bytes."""
    p, smug = b"/f%d" % i, SMUGGLED % i
    if rnd.random() < 0.3:
        p += b"-bad-answer"          # the backend answers it with a mutated response
    return rnd.choice([
        b"GET " + p + b" HTTP/1.1\r\nHost: test.local\r\nX-A: b\r\n\r\n",
        b"POST " + p + b" HTTP/1.1\r\nHost: test.local\r\nContent-Length: %d\r\n\r\n"
        % len(smug) + smug,
        b"POST " + p + b" HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"%x\r\n" % len(smug) + smug + b"\r\n0\r\n\r\n",
        b"POST " + p + b" HTTP/1.1\r\nHost: test.local\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smug,
        b"GET " + p + b" HTTP/1.0\r\nHost: test.local\r\nConnection: keep-alive\r\n\r\n",
        b"POST " + p + b" HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nabc\r\n0\r\nTrailer-A: 1\r\n\r\n",
        b"GET http://test.local" + p + b"?q=1 HTTP/1.1\r\nHost: other\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: test.local\r\n\r\n",
    ])


def case(i):
    """Case i: the bytes to send, whether to send them 7 at a time, whether to
    shut the sending side after them."""
    rnd = random.Random(i)
    data = request(rnd, i)
    if rnd.random() < 0.9:
        data = mutate(rnd, data, rnd.randrange(1, 5))
    return data, rnd.random() < 0.3, rnd.random() < 0.2


def backend_handler(conn, req):
    """Answers 7 in 10 requests for paths marked -bad-answer with a mutated response
    (seeded by the path: the same on every run), the others with a plain 200."""
    rnd = random.Random(req.target)
    if "-bad-answer" in req.target and rnd.random() < 0.7:
        conn.send(mutate(rnd, rnd.choice(RESPONSES), rnd.randrange(1, 4)))
        return rnd.random() < 0.5
    conn.respond(200, body=b"ok")
    return True


def exchange(port, data, split, shut):
    """Sends one case; returns what the proxy answered and whether it closed the
    connection. A 4xx answer is read until the proxy closes (at most 6 s, against a
    keepalive_timeout of 30 s: a connection left open shows); any other answer until
    its head is in and the proxy has sent nothing for 0.3 s."""
    s = socket.create_connection(("127.0.0.1", port), timeout=6)
    got, closed = b"", False
    try:
        if split:
            for k in range(0, len(data), 7):
                s.sendall(data[k:k + 7])
        else:
            s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        end = time.monotonic() + 6
        while time.monotonic() < end:
            if b"\r\n\r\n" in got and not got.startswith(b"HTTP/1.1 4"):
                s.settimeout(0.3)
            chunk = s.recv(65536)
            if not chunk:
                closed = True
                break
            got += chunk
    except ConnectionResetError:
        closed = True
    except (socket.timeout, BrokenPipeError):
        pass
    finally:
        s.close()
    return got, closed


def run_cases(port, n):
    """Runs cases 1..n over THREADS clients; returns {i: (data, answer, closed)}."""
    results, lock, next_case = {}, threading.Lock(), [0]

    def client():
        while True:
            with lock:
                next_case[0] += 1
                i = next_case[0]
            if i > n:
                return
            data, split, shut = case(i)
            got, closed = exchange(port, data, split, shut)
            with lock:
                results[i] = (data, got, closed)

    threads = [threading.Thread(target=client) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_mutated_requests_and_responses(backend, rproxy):
    be = backend(handler=backend_handler)
    p = rproxy(basic_lua({"app1": be.address}, backend="read_timeout = 1",
                         listen="read_timeout = 1, keepalive_timeout = 30"))
    results = run_cases(p.port, CASES)

    assert p.alive(), "rproxy died during the mutated cases"
    statuses = {}
    for i, (data, got, closed) in sorted(results.items()):
        if got:
            assert STATUS_LINE.match(got), "case %d: answer %r to %r" % (i, got[:80], data[:200])
            statuses[got[9:12]] = statuses.get(got[9:12], 0) + 1
        if got.startswith(b"HTTP/1.1 4"):
            assert closed, "case %d: %r left the connection open: %r" % (i, got[:12], data[:200])
    # the cases must have reached every part: refusals, answers, and the backend's
    # mutated answers
    assert statuses.get(b"400", 0) > CASES // 4, statuses
    assert statuses.get(b"200", 0) > CASES // 20, statuses
    assert statuses.get(b"502", 0) > 0, statuses

    assert be.errors == [], "the proxy sent the backend bad framing: %r" % be.errors[:3]
    hidden = {r.target for r in be.requests if r.target.startswith("/SMUGGLED")}
    end = time.monotonic() + 5             # the access log's writer thread may lag
    while True:
        taken = {e["uri"] for e in p.access_json() if e["backend"]}
        smuggled = sorted(hidden - taken)
        if not smuggled or time.monotonic() > end:
            break
        time.sleep(0.1)
    assert smuggled == [], "the backend read requests the proxy never parsed: %r" % smuggled

    # and it still serves
    got, _ = exchange(p.port, b"GET /after HTTP/1.1\r\nHost: test.local\r\n"
                              b"Connection: close\r\n\r\n", False, False)
    assert got.startswith(b"HTTP/1.1 200 "), got[:80]
