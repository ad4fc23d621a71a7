"""Recording HTTP/1.1 backends for the e2e tests.

Raw sockets and one thread per connection, not http.server: the tests need the
exact bytes the proxy sent (head and body), the number of TCP connections it
opened, and backends that misbehave on purpose. A backend parses requests
properly (Content-Length and chunked bodies, trailers, keep-alive, pipelining)
so that it can serve many requests per connection.

A behaviour is a handler `handler(conn, req) -> keep_open` called once the head
(and, unless stream_body=True, the body) of a request has been read; MODES holds
the ready-made ones. Everything runs on 127.0.0.1 and stops in stop().
"""

import json
import socket
import threading
import time
import zlib

from httpclient import HeaderLookup

RAW_CAP = 4 << 20          # bytes of raw input kept per connection (counted beyond)
BLOCK = 64 * 1024          # unit of the big-transfer pattern


def free_port(host="127.0.0.1"):
    """A port nobody listens on right now (bind port 0, close)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- the big-transfer pattern: 64 KiB blocks, each stamped with its index, so that
# a lost, duplicated or reordered block changes the checksum, not only the count.
_BASE = bytes((i * 7 + 13) % 251 for i in range(BLOCK))


def pattern_block(i):
    return i.to_bytes(8, "little") + _BASE[8:]


def pattern_blocks(nbytes):
    """Yields the pattern, nbytes long, in blocks of at most 64 KiB."""
    i = 0
    left = nbytes
    while left > 0:
        b = pattern_block(i)
        if left < len(b):
            b = b[:left]
        yield b
        left -= len(b)
        i += 1


def pattern_crc(nbytes):
    crc = 0
    for b in pattern_blocks(nbytes):
        crc = zlib.crc32(b, crc)
    return crc


class Closed(Exception):
    """The peer closed (or reset) the connection."""


class Request(HeaderLookup):
    """One request as the backend received it."""

    def __init__(self):
        self.conn_id = None      # which accepted connection (0, 1, ...)
        self.index = None        # position on that connection (0 = first)
        self.head = b""          # raw head, request line to the blank line included
        self.method = ""
        self.target = ""
        self.version = ""
        self.headers = []        # [(name, value)] as received, in order (latin-1 str)
        self.body = b""          # decoded body (chunked framing removed)
        self.raw_body = b""      # body bytes as received (framing included), capped
        self.body_len = 0        # decoded length, counted even when not kept
        self.chunked = False
        self.trailers = []       # [(name, value)]
        self.complete = False    # head and whole body received
        self.time = time.monotonic()

    @property
    def path(self):
        return self.target.split("?", 1)[0]

    @property
    def query(self):
        return self.target.split("?", 1)[1] if "?" in self.target else None

    def wants_close(self):
        conn = self.tokens("connection")
        if self.version == "HTTP/1.0":
            return "keep-alive" not in conn
        return "close" in conn

    def __repr__(self):
        return "<Request %s %s %s conn=%s idx=%s body=%d>" % (
            self.method, self.target, self.version, self.conn_id, self.index, self.body_len)


class Conn:
    """The backend's side of one accepted connection."""

    def __init__(self, server, sock, cid):
        self.server = server
        self.sock = sock
        self.id = cid
        self.buf = bytearray()
        self.raw = bytearray()      # first RAW_CAP bytes received
        self.nreceived = 0
        self.index = 0              # requests read on this connection so far
        self.closed = False

    # ---- input
    def _fill(self, size=262144):
        try:
            data = self.sock.recv(size)
        except (ConnectionResetError, OSError) as e:
            raise Closed() from e
        if not data:
            raise Closed()
        self.nreceived += len(data)
        if len(self.raw) < RAW_CAP:
            self.raw += data[: RAW_CAP - len(self.raw)]
        with self.server.lock:
            self.server.bytes_received += len(data)
        self.buf += data

    def read_head(self):
        """Returns the raw head (CRLFCRLF included), or None on a clean EOF before it."""
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                head = bytes(self.buf[: i + 4])
                del self.buf[: i + 4]
                return head
            if len(self.buf) > (1 << 20):
                raise Closed()
            try:
                self._fill()
            except Closed:
                if self.buf:
                    self.server.partial_heads.append(bytes(self.buf))
                return None

    def read_line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[: i + 2]
                return line
            if len(self.buf) > 65536:
                raise Closed()
            self._fill()

    def read_some(self, maxlen):
        if not self.buf:
            self._fill(max(maxlen, 4096))
        n = min(maxlen, len(self.buf))
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def iter_body(self, req, keep=True, pause=None):
        """Yields the decoded body of req in pieces. keep: store it in req.body.
        pause(nbytes_so_far) may sleep to make a slow reader."""
        body = bytearray()
        raw = bytearray()
        got = 0

        def account(piece, rawpiece):
            nonlocal got
            got += len(piece)
            req.body_len = got
            if keep:
                body.extend(piece)
            if len(raw) < RAW_CAP:
                raw.extend(rawpiece[: RAW_CAP - len(raw)])

        def pieces(left):
            while left:
                piece = self.read_some(min(left, 262144))
                left -= len(piece)
                account(piece, piece)
                if pause:
                    pause(got)
                yield piece

        if req.chunked:
            while True:
                line = self.read_line()
                account(b"", line + b"\r\n")
                size_s = line.split(b";", 1)[0].strip()
                size = int(size_s, 16)          # ValueError: bad framing from the proxy
                if size == 0:
                    break
                yield from pieces(size)
                if self.read_line() != b"":
                    raise ValueError("chunk not followed by CRLF")
                account(b"", b"\r\n")
            while True:                          # trailer section
                line = self.read_line()
                account(b"", line + b"\r\n")
                if line == b"":
                    break
                k, _, v = line.decode("latin-1").partition(":")
                req.trailers.append((k, v.strip()))
        else:
            cl = req.header("content-length")
            yield from pieces(int(cl) if cl is not None else 0)
        req.body = bytes(body)
        req.raw_body = bytes(raw)
        req.complete = True

    def read_body(self, req):
        for _ in self.iter_body(req):
            pass

    # ---- output
    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise Closed() from e

    def respond(self, status=200, headers=(), body=b"", reason=None, head_only=False,
                content_length=True):
        """Sends a complete response; adds Content-Length unless told not to or
        the handler framed the body itself (Transfer-Encoding given)."""
        if isinstance(body, str):
            body = body.encode()
        reason = reason or REASONS.get(status, "Whatever")
        hdrs = list(headers)
        names = {k.lower() for k, _ in hdrs}
        if content_length and "content-length" not in names and \
                "transfer-encoding" not in names:
            hdrs.append(("Content-Length", str(len(body))))
        out = "HTTP/1.1 %d %s\r\n" % (status, reason)
        out += "".join("%s: %s\r\n" % (k, v) for k, v in hdrs)
        out += "\r\n"
        self.send(out.encode("latin-1") + (b"" if head_only else body))

    def echo(self, req, status=200, headers=(), extra=None):
        """The normal answer: 200 + a JSON echo of the request, keep-alive honoured.
        Returns keep_open, so that a handler can `return conn.echo(req)`."""
        doc = {"method": req.method, "target": req.target, "path": req.path,
               "version": req.version, "headers": req.headers,
               "body_len": req.body_len, "conn": self.id, "index": req.index,
               "backend": self.server.name}
        if extra:
            doc.update(extra)
        body = json.dumps(doc).encode()
        hdrs = [("Content-Type", "application/json"), ("X-Backend", self.server.name)]
        hdrs += list(headers)
        close = req.wants_close()
        if close:
            hdrs.append(("Connection", "close"))
        self.respond(status, hdrs, body, head_only=(req.method == "HEAD"))
        return not close

    def close(self):
        """Half-close then drain briefly, so that what was sent is not lost to a RST."""
        if self.closed:
            return
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.settimeout(0.5)
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                if not self.sock.recv(65536):
                    break
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self):
        """Close at once (RST if input is pending)."""
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass


REASONS = {100: "Continue", 103: "Early Hints", 200: "OK", 204: "No Content",
           304: "Not Modified", 400: "Bad Request", 404: "Not Found",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


def parse_head(head):
    """Parses a raw request head into a Request (raises ValueError if broken)."""
    r = Request()
    r.head = head
    text = head[:-4].decode("latin-1")
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise ValueError("bad request line %r" % lines[0])
    r.method, r.target, r.version = parts
    for line in lines[1:]:
        k, sep, v = line.partition(":")
        if not sep:
            raise ValueError("bad header line %r" % line)
        r.headers.append((k, v.strip(" \t")))
    te = r.tokens("transfer-encoding")
    r.chunked = bool(te) and te[-1] == "chunked"
    return r


# ---- ready-made behaviours ------------------------------------------------------

def h_normal(conn, req):
    return conn.echo(req)


def h_chunked(conn, req):
    hdr = ("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
           "X-Backend: %s\r\n\r\n" % conn.server.name)
    conn.send(hdr)
    if req.method != "HEAD":
        for piece in CHUNKED_PIECES:
            conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        conn.send(b"0\r\n\r\n")
    return not req.wants_close()


def h_chunk_exts(conn, req):
    """chunked, each chunk-size line with RFC 9112 extensions (several, with
    whitespace and a quoted value)"""
    conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    if req.method != "HEAD":
        for i, piece in enumerate(CHUNKED_PIECES):
            conn.send(b"%x ; n=%d;q=\"a;b \\\"c\"\t;flag\r\n%s\r\n" % (len(piece), i, piece))
        conn.send(b"0;last=1\r\n\r\n")
    return not req.wants_close()


CHUNKED_PIECES = [b"first chunk;", b"x" * 5000, b"-second-", b"y" * 70000, b"end\n"]
CHUNKED_BODY = b"".join(CHUNKED_PIECES)
CLOSE_DELIMITED_BODY = b"close-delimited body " + b"z" * 30000 + b" end\n"


def h_close_delimited(conn, req):
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
    if req.method != "HEAD":
        conn.send(CLOSE_DELIMITED_BODY[:1000])
        time.sleep(0.05)
        conn.send(CLOSE_DELIMITED_BODY[1000:])
    return False


def h_connection_close(conn, req):
    conn.echo(req, headers=[("Connection", "close")])
    return False


def h_interim(conn, req):
    conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
    conn.send(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
    time.sleep(0.05)
    return conn.echo(req)


def h_bad_status(conn, req):
    conn.send(b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok")
    return False


def h_dup_cl(conn, req):
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello12")
    return False


def h_nonnum_cl(conn, req):
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\nhello")
    return False


def h_bad_chunk(conn, req):
    """Head and a good chunk first (so that the proxy has sent the head on), then junk."""
    conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    time.sleep(0.2)
    conn.send(b"5\r\nhello\r\n")
    time.sleep(0.2)
    conn.send(b"zz-not-hex\r\nworld\r\n0\r\n\r\n")
    time.sleep(0.2)
    return False


def h_silent(conn, req):
    conn.server.stopping.wait(120)
    return False


def h_close_before_answer(conn, req):
    return False


MID_BODY_LEN = 100000


def h_close_mid_body(conn, req):
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
              b"Content-Length: %d\r\n\r\n" % MID_BODY_LEN)
    conn.send(b"a" * 1000)
    time.sleep(0.2)
    return False


def h_close_mid_chunked(conn, req):
    conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    conn.send(b"3e8\r\n" + b"b" * 1000 + b"\r\n")
    time.sleep(0.2)
    conn.send(b"3e8\r\n" + b"c" * 500)       # chunk cut in the middle
    time.sleep(0.1)
    return False


def h_slow_reader(conn, q):
    """Reads the body with a 50 ms pause every 1 MiB (needs stream_body=True), then echoes."""
    state = {"last": 0}

    def pause(n):
        if n - state["last"] >= (1 << 20):
            state["last"] = n
            time.sleep(0.05)
    for _ in conn.iter_body(q, keep=False, pause=pause):
        pass
    return conn.echo(q)


MODES = {
    "normal": h_normal,
    "chunked": h_chunked,
    "chunk_exts": h_chunk_exts,
    "close_delimited": h_close_delimited,
    "connection_close": h_connection_close,
    "interim": h_interim,
    "bad_status": h_bad_status,
    "dup_cl": h_dup_cl,
    "nonnum_cl": h_nonnum_cl,
    "bad_chunk": h_bad_chunk,
    "silent": h_silent,
    "close_before_answer": h_close_before_answer,
    "close_mid_body": h_close_mid_body,
    "close_mid_chunked": h_close_mid_chunked,
    "slow_reader": h_slow_reader,
}


def refused_address():
    """An address nobody listens on (the 'refuse' behaviour)."""
    return "127.0.0.1:%d" % free_port()


def big_download(nbytes, chunked=False):
    """A handler streaming nbytes of the pattern (64 KiB writes)."""
    def h(conn, req):
        if req.method == "HEAD":
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % nbytes)
            return True
        if chunked:
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n")
            for b in pattern_blocks(nbytes):
                conn.send(b"%x\r\n%s\r\n" % (len(b), b))
            conn.send(b"0\r\n\r\n")
        else:
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                      b"Content-Length: %d\r\n\r\n" % nbytes)
            for b in pattern_blocks(nbytes):
                conn.send(b)
        return not req.wants_close()
    return h


class Backend:
    """A recording backend on 127.0.0.1:port.

    mode: a MODES name; handler: a callable overriding it.
    stream_body: the handler reads the body itself (conn.iter_body); otherwise the
    body is read (and kept) before the handler runs.
    expect_continue: answer `Expect: 100-continue` with a 100 before reading the body.
    port: listen on this port (default: a free one).
    """

    def __init__(self, mode="normal", handler=None, name=None, stream_body=False,
                 expect_continue=True, port=None):
        self.handler = handler or MODES[mode]
        self.name = name or mode
        self.stream_body = stream_body
        self.expect_continue = expect_continue
        self.lock = threading.Lock()
        self.requests = []          # complete requests, in arrival order
        self.heads = []             # every parsed head (complete or not)
        self.partial_heads = []     # bytes left without a full head at EOF
        self.errors = []            # framing errors in what the proxy sent
        self.bytes_received = 0
        self.accepted = 0
        self.conns = []
        self.threads = []
        self.stopping = threading.Event()
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", port or 0))
        self.lsock.listen(512)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.address = "127.0.0.1:%d" % self.port
        t = threading.Thread(target=self._accept_loop, daemon=True,
                             name="backend-%s-accept" % self.name)
        t.start()
        self.accept_thread = t

    # ---- recording queries
    @property
    def connections(self):
        with self.lock:
            return self.accepted

    def paths(self):
        with self.lock:
            return [r.target for r in self.requests]

    def _wait_count(self, count, n, timeout):
        """True once count() (read under the lock) reaches n, False after timeout."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if count() >= n:
                    return True
            time.sleep(0.02)
        return False

    def wait_requests(self, n, timeout=10):
        return self._wait_count(lambda: len(self.requests), n, timeout)

    def wait_heads(self, n, timeout=10):
        return self._wait_count(lambda: len(self.heads), n, timeout)

    def wait_connections(self, n, timeout=10):
        return self._wait_count(lambda: self.accepted, n, timeout)

    # ---- machinery
    def _accept_loop(self):
        while not self.stopping.is_set():
            try:
                s, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            s.settimeout(None)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                cid = self.accepted
                self.accepted += 1
                c = Conn(self, s, cid)
                self.conns.append(c)
            t = threading.Thread(target=self._serve, args=(c,), daemon=True,
                                 name="backend-%s-%d" % (self.name, cid))
            self.threads.append(t)
            t.start()

    def _serve(self, c):
        try:
            while not self.stopping.is_set():
                head = c.read_head()
                if head is None:
                    break
                try:
                    req = parse_head(head)
                except ValueError as e:
                    self.errors.append("conn %d: %s" % (c.id, e))
                    break
                req.conn_id = c.id
                req.index = c.index
                c.index += 1
                with self.lock:
                    self.heads.append(req)
                if self.expect_continue and \
                        (req.header("expect") or "").lower() == "100-continue":
                    c.send(b"HTTP/1.1 100 Continue\r\n\r\n")
                if not self.stream_body:
                    try:
                        c.read_body(req)
                    except ValueError as e:
                        self.errors.append("conn %d: body: %s" % (c.id, e))
                        break
                    with self.lock:
                        self.requests.append(req)
                    keep = self.handler(c, req)
                else:
                    keep = self.handler(c, req)
                    if req.complete:
                        with self.lock:
                            self.requests.append(req)
                if not keep:
                    break
        except Closed:
            pass
        except Exception as e:  # a handler bug must show, not hang the test
            self.errors.append("conn %d: %r" % (c.id, e))
        finally:
            c.close()

    def stop(self):
        self.stopping.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.accept_thread.join(2)
        for t in self.threads:
            t.join(2)
