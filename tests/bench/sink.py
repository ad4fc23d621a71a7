"""Upload sink of the benchmark backend: reads each request body (Content-Length or
chunked), throws it away, and answers 200 with the number of bytes read. Keep-alive.
The backend nginx streams /upload here (proxy_request_buffering off).

usage: sink.py PORT
"""

import socket
import sys
import threading

BUF = 1 << 20


class Conn:
    def __init__(self, s):
        self.s = s
        self.buf = bytearray()
        self.mem = bytearray(BUF)
        self.view = memoryview(self.mem)

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
        """Discards n body bytes, reading straight into the scratch buffer."""
        take = min(n, len(self.buf))
        del self.buf[:take]
        n -= take
        while n > 0:
            got = self.s.recv_into(self.view[:min(n, BUF)])
            if got == 0:
                raise EOFError
            n -= got


def serve(s):
    c = Conn(s)
    try:
        while True:
            head = [c.line()]
            while head[-1]:
                head.append(c.line())
            hdrs = {}
            for h in head[1:-1]:
                k, _, v = h.partition(b":")
                hdrs[k.strip().lower()] = v.strip().lower()
            total = 0
            if hdrs.get(b"transfer-encoding") == b"chunked":
                while True:
                    size = int(c.line().split(b";")[0], 16)
                    if size == 0:
                        while c.line():
                            pass
                        break
                    c.skip(size + 2)
                    total += size
            else:
                total = int(hdrs.get(b"content-length", b"0"))
                c.skip(total)
            body = b"%d\n" % total
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
                      % (len(body), body))
            if hdrs.get(b"connection") == b"close":
                return
    except (EOFError, OSError, ValueError):
        pass
    finally:
        s.close()


def main():
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", int(sys.argv[1])))
    ls.listen(128)
    while True:
        s, _ = ls.accept()
        threading.Thread(target=serve, args=(s,), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
