"""The backend of the large-transfer scenario: answers GET /big with the 100 MiB file
(sendfile), POST /upload by discarding the body (spliced into /dev/null, so no copy)
and the number of bytes read, and GET /small with its 1 KiB body (the readiness
check). Keep-alive, one thread per connection.

Large transfers get their own backend so that the proxy is what gets measured. An
upload relayed by the backend nginx to a sink that reads it costs CPU 1, where the
client runs too, more than the proxy spends on CPU 0, and every proxy then measured
the backend's ceiling. This one moves a byte in the kernel only: sendfile out,
splice in.

usage: bulk.py PORT BIG_FILE
"""

import fcntl
import os
import socket
import sys
import threading

from servers import SMALL_BODY

BUF = 1 << 20
PIPE_SIZE = 1 << 20


class Conn:
    def __init__(self, s, big):
        self.s = s
        self.big = big
        self.buf = bytearray()
        self.mem = bytearray(BUF)
        self.view = memoryview(self.mem)
        self.pipe = None
        self.null = None
        if hasattr(os, "splice"):
            self.pipe = os.pipe()
            try:
                fcntl.fcntl(self.pipe[1], fcntl.F_SETPIPE_SZ, PIPE_SIZE)
            except (OSError, AttributeError):
                pass
            self.null = os.open(os.devnull, os.O_WRONLY)

    def close(self):
        for fd in (self.pipe or ()) + ((self.null,) if self.null is not None else ()):
            os.close(fd)
        self.s.close()

    def fill(self):
        n = self.s.recv_into(self.mem)
        if n == 0:
            raise EOFError
        self.buf += self.view[:n]

    def line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return out
            self.fill()

    def skip(self, n):
        """Discards n body bytes: what is buffered, then the rest straight from the
        socket (spliced through a pipe into /dev/null, or read into scratch)."""
        take = min(n, len(self.buf))
        del self.buf[:take]
        n -= take
        while n > 0:
            if self.pipe:
                got = os.splice(self.s.fileno(), self.pipe[1], min(n, PIPE_SIZE))
                left = got
                while left > 0:
                    left -= os.splice(self.pipe[0], self.null, left)
            else:
                got = self.s.recv_into(self.view[:min(n, BUF)])
            if got == 0:
                raise EOFError
            n -= got

    def answer(self, body, ctype=b"text/plain"):
        self.s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
                       % (ctype, len(body), body))

    def send_big(self):
        with open(self.big, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            # the head leaves with the file's first bytes (MSG_MORE, as nginx's tcp_nopush)
            self.s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                           b"Content-Length: %d\r\n\r\n" % size, socket.MSG_MORE)
            sent = 0
            while sent < size:
                n = os.sendfile(self.s.fileno(), f.fileno(), sent, size - sent)
                if n == 0:
                    raise EOFError
                sent += n

    def body_length(self, hdrs):
        """Reads and discards the request body; returns its length."""
        total = 0
        if hdrs.get(b"transfer-encoding") == b"chunked":
            while True:
                size = int(self.line().split(b";")[0], 16)
                if size == 0:
                    while self.line():
                        pass
                    return total
                self.skip(size + 2)
                total += size
        total = int(hdrs.get(b"content-length", b"0"))
        self.skip(total)
        return total


def serve(s, big):
    c = Conn(s, big)
    try:
        while True:
            head = [c.line()]
            while head[-1]:
                head.append(c.line())
            method, path = head[0].split()[:2]
            hdrs = {}
            for h in head[1:-1]:
                k, _, v = h.partition(b":")
                hdrs[k.strip().lower()] = v.strip().lower()
            total = c.body_length(hdrs)
            if method == b"GET" and path == b"/big":
                c.send_big()
            elif method == b"POST":
                c.answer(b"%d\n" % total)
            else:
                c.answer(SMALL_BODY.encode())
            if hdrs.get(b"connection") == b"close":
                return
    except (EOFError, OSError, ValueError, IndexError):
        pass
    finally:
        c.close()


def main():
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", int(sys.argv[1])))
    ls.listen(128)
    big = sys.argv[2]
    while True:
        s, _ = ls.accept()
        threading.Thread(target=serve, args=(s, big), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
