"""Streaming with back-pressure: a big upload to a slow backend and a big download
to a slow client go through while the proxy's RSS stays within a few MiB of its
high watermarks (nothing is buffered whole). Integrity: byte count + CRC-32 of a
pattern whose 64 KiB blocks carry their index.

Size: RP_TEST_BIG_MB MiB (default 1024; the ASan run uses 256). "Slow" means a
50 ms pause every 16 MiB, so that buffers fill and drain again and again, while
1 GiB still fits in the time cap (TIME_CAP seconds per transfer).
"""

import json
import os
import socket
import threading
import time
import zlib

import pytest

from backends import big_download, pattern_blocks
from httpclient import parse_response
from proxy import basic_lua

BIG_MB = int(os.environ.get("RP_TEST_BIG_MB", "1024"))
BIG = BIG_MB << 20
TIME_CAP = 75
PAUSE_EVERY = 16 << 20
PAUSE = 0.05
RSS_LIMIT_MIB = 32
WATERMARKS = 'high_watermark = "256k"'


class RssSampler(threading.Thread):
    def __init__(self, proxy):
        super().__init__(daemon=True)
        self.proxy = proxy
        self.base = proxy.rss_kib()
        self.max = self.base
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(0.05):
            try:
                self.max = max(self.max, self.proxy.rss_kib())
            except (OSError, ValueError):
                break

    def growth_mib(self):
        return (self.max - self.base) / 1024.0


def warm_up(port):
    """A small request first, so that the baseline RSS includes a served request."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /warm HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n")
    while s.recv(65536):
        pass
    s.close()


def slow_pause(state):
    def pause(nbytes):
        if nbytes - state["last"] >= PAUSE_EVERY:
            state["last"] = nbytes
            time.sleep(PAUSE)
    return pause


def _upload_sink(conn, q):
    """Reads the body slowly, answering its length and CRC-32."""
    if q.path != "/upload":
        conn.read_body(q)
        return conn.echo(q)
    crc = 0
    state = {"last": 0}
    for piece in conn.iter_body(q, keep=False, pause=slow_pause(state)):
        crc = zlib.crc32(piece, crc)
    body = json.dumps({"len": q.body_len, "crc": crc}).encode()
    conn.respond(200, [("Content-Type", "application/json")], body)
    return True


def test_big_upload_to_slow_backend(backend, rproxy):
    be = backend(handler=_upload_sink, stream_body=True)
    p = rproxy(basic_lua({"app1": be.address}, listen=WATERMARKS,
                         backend=WATERMARKS + ", read_timeout = 60, write_timeout = 60"))
    warm_up(p.port)
    rss = RssSampler(p)
    rss.start()
    deadline = time.monotonic() + TIME_CAP
    s = socket.create_connection(("127.0.0.1", p.port), timeout=30)
    s.sendall(b"POST /upload HTTP/1.1\r\nHost: test.local\r\nContent-Type: application/octet-stream"
              b"\r\nContent-Length: %d\r\n\r\n" % BIG)
    crc = 0
    sent = 0
    group = []
    try:
        for b in pattern_blocks(BIG):
            crc = zlib.crc32(b, crc)
            group.append(b)
            if len(group) == 16:
                s.sendall(b"".join(group))
                sent += sum(map(len, group))
                group = []
                if time.monotonic() > deadline:
                    pytest.fail("upload too slow: %d of %d MiB in %d s" % (
                        sent >> 20, BIG_MB, TIME_CAP))
        if group:
            s.sendall(b"".join(group))
            sent += sum(map(len, group))
        s.settimeout(max(5, deadline - time.monotonic()))
        resp = bytearray()
        while parse_response(resp) is None:
            d = s.recv(65536)
            if not d:
                break
            resp += d
    finally:
        s.close()
        rss.done.set()
        rss.join(2)
    r = parse_response(resp, eof=True)
    assert r is not None and r[0].status == 200, bytes(resp[:300])
    got = json.loads(r[0].body)
    assert got["len"] == BIG, "backend received %d of %d bytes" % (got["len"], BIG)
    assert got["crc"] == crc, "upload corrupted on the way (CRC mismatch)"
    print("rss base %d KiB, growth %.1f MiB" % (rss.base, rss.growth_mib()))
    assert rss.growth_mib() < RSS_LIMIT_MIB, \
        "proxy RSS grew by %.1f MiB during a %d MiB upload (base %d KiB)" % (
            rss.growth_mib(), BIG_MB, rss.base)


def test_big_download_to_slow_client(backend, rproxy):
    be = backend(handler=big_download(BIG))
    p = rproxy(basic_lua({"app1": be.address}, listen=WATERMARKS + ", write_timeout = 60",
                         backend=WATERMARKS))
    warm_up(p.port)
    rss = RssSampler(p)
    rss.start()
    deadline = time.monotonic() + TIME_CAP
    s = socket.create_connection(("127.0.0.1", p.port), timeout=30)
    s.sendall(b"GET /download HTTP/1.1\r\nHost: test.local\r\n\r\n")
    buf = bytearray()
    crc = 0
    got = 0
    state = {"last": 0}
    pause = slow_pause(state)
    try:
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            assert d, "connection closed before the head: %r" % bytes(buf)
            buf += d
        head, _, rest = bytes(buf).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        lines = head.decode("latin-1").lower().split("\r\n")
        assert "content-length: %d" % BIG in lines, head
        crc = zlib.crc32(rest, crc)
        got = len(rest)
        view = bytearray(256 * 1024)
        while got < BIG:
            n = s.recv_into(view, min(len(view), BIG - got))
            if n == 0:
                break
            crc = zlib.crc32(memoryview(view)[:n], crc)
            got += n
            pause(got)
            if time.monotonic() > deadline:
                pytest.fail("download too slow: %d of %d MiB in %d s" % (
                    got >> 20, BIG_MB, TIME_CAP))
    finally:
        s.close()
        rss.done.set()
        rss.join(2)
    assert got == BIG, "client received %d of %d bytes" % (got, BIG)
    want = 0
    for b in pattern_blocks(BIG):
        want = zlib.crc32(b, want)
    assert crc == want, "download corrupted on the way (CRC mismatch)"
    print("rss base %d KiB, growth %.1f MiB" % (rss.base, rss.growth_mib()))
    assert rss.growth_mib() < RSS_LIMIT_MIB, \
        "proxy RSS grew by %.1f MiB during a %d MiB download (base %d KiB)" % (
            rss.growth_mib(), BIG_MB, rss.base)
