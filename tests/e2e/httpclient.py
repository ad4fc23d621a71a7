"""Client side of the e2e tests: a raw-socket HTTP/1.x client that parses exactly
what the proxy sent (framing included), and a curl wrapper.
"""

import os
import socket
import subprocess
import tempfile
import time


class HeaderLookup:
    """Header lookups over self.headers, a [(name, value)] list in the order
    received: for a response here and a request in backends.Request."""

    def header_all(self, name):
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def header(self, name):
        v = self.header_all(name)
        return v[0] if v else None

    def tokens(self, name):
        out = []
        for v in self.header_all(name):
            out += [t.strip().lower() for t in v.split(",") if t.strip()]
        return out


class Response(HeaderLookup):
    def __init__(self):
        self.version = ""
        self.status = 0
        self.reason = ""
        self.headers = []          # [(name, value)]
        self.head = b""
        self.body = b""
        self.chunked = False
        self.complete = False      # framed as complete (CL reached, last chunk, or EOF for close-delimited)
        self.close_delimited = False
        self.interim = []          # 1xx responses that came before this one

    def __repr__(self):
        return "<Response %s %d %r body=%d complete=%s>" % (
            self.version, self.status, self.reason, len(self.body), self.complete)


class Incomplete(Exception):
    pass


def parse_response(buf, method="GET", eof=False):
    """Parses one response at the start of buf.
    Returns (Response, consumed); None if more bytes are needed and not eof.
    At eof a truncated response comes back with complete=False."""
    i = buf.find(b"\r\n\r\n")
    if i < 0:
        if eof:
            if not buf:
                return None
            r = Response()
            r.head = bytes(buf)
            return r, len(buf)
        return None
    r = Response()
    r.head = bytes(buf[: i + 4])
    lines = buf[:i].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    r.version = parts[0]
    try:
        r.status = int(parts[1])
    except (IndexError, ValueError):
        r.status = -1
    r.reason = parts[2] if len(parts) > 2 else ""
    for line in lines[1:]:
        k, _, v = line.partition(":")
        r.headers.append((k, v.strip(" \t")))
    pos = i + 4
    if 100 <= r.status < 200 or method == "HEAD" or r.status in (204, 304):
        r.complete = True
        return r, pos
    te = r.tokens("transfer-encoding")
    if te and te[-1] == "chunked":
        r.chunked = True
        body = bytearray()
        while True:
            j = buf.find(b"\r\n", pos)
            if j < 0:
                break
            try:
                size = int(bytes(buf[pos:j]).split(b";")[0].strip(), 16)
            except ValueError:
                r.body = bytes(body)
                return r, len(buf)             # broken framing: not complete
            if size == 0:
                # trailers until an empty line
                k = buf.find(b"\r\n\r\n", j)
                if j + 2 <= len(buf) and buf[j + 2: j + 4] == b"\r\n":
                    r.body = bytes(body)
                    r.complete = True
                    return r, j + 4
                if k < 0:
                    break
                for tl in buf[j + 2:k].decode("latin-1").split("\r\n"):
                    if tl:
                        a, _, b = tl.partition(":")
                        r.headers.append((a, b.strip()))
                r.body = bytes(body)
                r.complete = True
                return r, k + 4
            if len(buf) < j + 2 + size + 2:
                break
            body += buf[j + 2: j + 2 + size]
            pos = j + 2 + size + 2
        if eof:
            r.body = bytes(body)
            return r, len(buf)
        return None
    cl = r.header("content-length")
    if cl is not None:
        n = int(cl)
        if len(buf) - pos >= n:
            r.body = bytes(buf[pos: pos + n])
            r.complete = True
            return r, pos + n
        if eof:
            r.body = bytes(buf[pos:])
            return r, len(buf)
        return None
    r.close_delimited = True
    if eof:
        r.body = bytes(buf[pos:])
        r.complete = True
        return r, len(buf)
    return None


class RawClient:
    """One TCP connection to the proxy; send bytes, read parsed responses."""

    def __init__(self, port, host="127.0.0.1", timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.reset = False

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _recv(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("no answer in time")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(262144)
        except ConnectionResetError:
            data = b""
            self.reset = True
        if not data:
            self.eof = True
        self.buf += data

    def read_response(self, method="GET", timeout=10):
        """The next final response (1xx ones are put in .interim). Raises
        socket.timeout if none comes; at EOF returns what there is (complete=False),
        or None if the connection closed with nothing."""
        deadline = time.monotonic() + timeout
        interim = []
        while True:
            r = self._next_response(method, deadline)
            if r is None:
                return None
            if 100 <= r.status < 200:
                interim.append(r)
                continue
            r.interim = interim
            return r

    def read_interim_or_final(self, method="GET", timeout=10):
        return self._next_response(method, time.monotonic() + timeout)

    def _next_response(self, method, deadline):
        """The next response, 1xx or final, taken out of .buf (reading more until
        deadline); None at EOF with no whole response."""
        while True:
            got = parse_response(self.buf, method, self.eof)
            if got is not None:
                r, n = got
                del self.buf[:n]
                return r
            if self.eof:
                return None
            self._recv(deadline)

    def wait_closed(self, timeout=5):
        """True if the peer closes (EOF or RST) within timeout; bytes that come
        meanwhile are kept in .buf."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            try:
                self._recv(deadline)
            except socket.timeout:
                return False
            except OSError:
                return True
        return True

    def is_open(self):
        """Non-blocking check: no EOF pending (data may be)."""
        self.sock.setblocking(False)
        try:
            data = self.sock.recv(65536)
            if not data:
                self.eof = True
                return False
            self.buf += data
            return True
        except BlockingIOError:
            return True
        except ConnectionResetError:
            self.eof = True
            return False
        finally:
            self.sock.setblocking(True)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def recv_until_closed(s):
    """Reads the socket s until the peer closes; returns the bytes (a reset
    raises, as a test that reads to EOF wants)."""
    buf = bytearray()
    while True:
        d = s.recv(65536)
        if not d:
            return bytes(buf)
        buf += d


def slow_reader(port, path, timeout):
    """A socket with a small receive buffer (64 KiB) that has sent GET path:
    back-pressure reaches the proxy as soon as the caller stops reading."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.sendall(b"GET %s HTTP/1.1\r\nHost: test.local\r\n\r\n" % path.encode())
    return s


def exchange(port, data, method="GET", timeout=10):
    """Sends data on a new connection, returns (first response or None, client)."""
    c = RawClient(port, timeout=timeout)
    c.send(data)
    return c.read_response(method, timeout), c


def req(method="GET", path="/", host="test.local", headers=(), body=b"", version="HTTP/1.1"):
    """Builds a request; Content-Length added when a body is given without framing."""
    hs = list(headers)
    if host is not None:
        hs.insert(0, ("Host", host))
    names = {k.lower() for k, _ in hs}
    if body and "content-length" not in names and "transfer-encoding" not in names:
        hs.append(("Content-Length", str(len(body))))
    out = "%s %s %s\r\n" % (method, path, version)
    out += "".join("%s: %s\r\n" % (k, v) for k, v in hs) + "\r\n"
    if isinstance(body, str):
        body = body.encode()
    return out.encode("latin-1") + body


class CurlResult:
    def __init__(self):
        self.rc = None
        self.status = 0
        self.body = b""
        self.head = ""
        self.headers = []          # of the last (final) response
        self.stderr = ""
        self.elapsed = 0.0

    def header(self, name):
        n = name.lower()
        for k, v in self.headers:
            if k.lower() == n:
                return v
        return None

    def __repr__(self):
        return "<curl rc=%s status=%s body=%d err=%r>" % (
            self.rc, self.status, len(self.body), self.stderr.strip()[:200])


def curl(url, *args, timeout=20):
    """Runs curl on url with args; never uses an environment proxy or ~/.curlrc."""
    with tempfile.TemporaryDirectory(prefix="rp-curl-") as d:
        bodyf = os.path.join(d, "body")
        headf = os.path.join(d, "head")
        cmd = ["curl", "-q", "-sS", "--noproxy", "*", "--max-time", str(timeout),
               "-o", bodyf, "-D", headf, "-w", "%{http_code}"] + list(args) + [url]
        t0 = time.monotonic()
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout + 10)
        res = CurlResult()
        res.elapsed = time.monotonic() - t0
        res.rc = p.returncode
        res.stderr = p.stderr.decode("latin-1")
        try:
            res.status = int(p.stdout.decode().strip() or 0)
        except ValueError:
            res.status = 0
        if os.path.exists(bodyf):
            with open(bodyf, "rb") as f:
                res.body = f.read()
        if os.path.exists(headf):
            with open(headf, "rb") as f:
                res.head = f.read().decode("latin-1")
            blocks = [b for b in res.head.split("\r\n\r\n") if b.strip()]
            if blocks:
                for line in blocks[-1].split("\r\n")[1:]:
                    k, _, v = line.partition(":")
                    res.headers.append((k, v.strip()))
        return res
