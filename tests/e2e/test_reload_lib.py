"""Helpers shared by the test_reload_*.py files (this module holds no test).

A reload test rewrites the running proxy's rproxy.lua, triggers a reload
(SIGHUP, `rproxy -s reload`, or settings.watch), and waits for the error log
line that says every worker switched:

    reload: all 2 workers on generation N, 1.2 ms after the signal

or for the refusal "reload refused, generation N goes on: FILE:LINE: ...".
The error log is stderr (level info); Reloader tails it from an offset so that
hundreds of reloads do not re-read the whole file.
"""

import os
import re
import signal
import socket
import time

from httpclient import RawClient, req

ASAN = os.environ.get("RP_TEST_ASAN") == "1"

ALL_ON = re.compile(r"reload: all (\d+) workers on generation (\d+), ([0-9.]+) ms after the signal")
REFUSED = re.compile(r"reload refused, generation (\d+) goes on(.*)")


def render(p, lua, **subs):
    """lua with the same @NAME@ substitutions Proxy applies at start."""
    allsubs = {"PORT": p.port, "TMP": str(p.tmp), "ACCESS": str(p.access_log),
               "PIDFILE": str(p.pidfile)}
    for i, port in enumerate(p.ports[1:], start=2):
        allsubs["PORT%d" % i] = port
    allsubs.update(subs)
    for k, v in allsubs.items():
        lua = lua.replace("@%s@" % k, str(v))
    return lua


def write_file(path, text):
    """Writes text in one write(2) (inotify sees one IN_CLOSE_WRITE)."""
    with open(path, "w") as f:
        f.write(text)


class Reloader:
    """Drives the reloads of one running Proxy and reads their outcome."""

    def __init__(self, p, workers):
        self.p = p
        self.workers = workers
        self.gen = 1               # the generation last confirmed
        self.pos = 0
        self.partial = b""
        self.events = []           # ("all", gen, ms, t_seen) / ("refused", gen, text, t_seen)
        self.read_new()

    def write(self, lua, **subs):
        write_file(self.p.conf, render(self.p, lua, **subs))

    def read_new(self):
        """Parses the complete lines appended to the error log since last time."""
        try:
            with open(self.p.stderr_path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except FileNotFoundError:
            return
        self.pos += len(data)
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()
        now = time.monotonic()
        for raw in lines:
            line = raw.decode("utf-8", "replace")
            if line[:1] in ("\t", " ") and self.events and self.events[-1][0] == "refused":
                # Lua's own messages may go on over lines (a module's error)
                ev = self.events[-1]
                self.events[-1] = (ev[0], ev[1], ev[2] + "\n" + line, ev[3])
                continue
            m = ALL_ON.search(line)
            if m:
                self.events.append(("all", int(m.group(2)), float(m.group(3)), now))
                continue
            m = REFUSED.search(line)
            if m:
                self.events.append(("refused", int(m.group(1)), line, now))

    def mark(self):
        self.read_new()
        return len(self.events)

    def wait_event(self, since, kind, timeout=10, gen=None):
        end = time.monotonic() + timeout
        while True:
            self.read_new()
            for i in range(since, len(self.events)):
                ev = self.events[i]
                if ev[0] == kind and (gen is None or ev[1] == gen):
                    if kind == "refused":      # its continuation lines
                        time.sleep(0.05)
                        self.read_new()
                    return self.events[i]
            if time.monotonic() > end:
                raise AssertionError("no %r reload event (gen %s) within %ss; error log tail:\n%s"
                                     % (kind, gen, timeout, self.p.stderr()[-3000:]))
            if not self.p.alive():
                raise AssertionError("rproxy died (exit %s); error log tail:\n%s"
                                     % (self.p.proc.returncode, self.p.stderr()[-3000:]))
            time.sleep(0.003)

    def wait_gen(self, gen, since=0, timeout=10):
        """Waits for "all N workers on generation gen"; returns (ms, t_seen)."""
        ev = self.wait_event(since, "all", timeout, gen)
        assert ev[1] == gen
        self.gen = gen
        return ev[2], ev[3]

    def hup(self, timeout=10):
        """SIGHUP, then waits until every worker serves the next generation.
        Returns (t_signal, ms from the log line, t_seen)."""
        since = self.mark()
        t0 = time.monotonic()
        self.p.signal(signal.SIGHUP)
        ms, seen = self.wait_gen(self.gen + 1, since, timeout)
        return t0, ms, seen

    def hup_refused(self, timeout=10):
        """SIGHUP on a file that must be refused; returns the refusal line."""
        since = self.mark()
        self.p.signal(signal.SIGHUP)
        ev = self.wait_event(since, "refused", timeout)
        self.read_new()
        newer = [e for e in self.events[since:] if e[0] == "all"]
        assert not newer, "a refused reload switched generations: %r" % newer
        assert ev[1] == self.gen, "refusal names generation %d, %d serves" % (ev[1], self.gen)
        return ev[2]

    def reload(self, lua, **subs):
        self.write(lua, **subs)
        return self.hup()


def get(port, path="/", headers=(), timeout=10):
    """One request on a new connection; the complete response."""
    c = RawClient(port, timeout=timeout)
    try:
        c.send(req("GET", path, headers=headers))
        r = c.read_response(timeout=timeout)
    finally:
        c.close()
    assert r is not None, "no response to %s" % path
    return r


def connect_refused(port):
    """True if a TCP connect to 127.0.0.1:port is refused."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=3)
    except ConnectionRefusedError:
        return True
    s.close()
    return False


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def slow_handler(delay, prefix="/slow"):
    """An echoing backend that waits delay seconds on paths under prefix."""
    def h(conn, q):
        if q.path.startswith(prefix):
            time.sleep(delay)
        return conn.echo(q)
    return h


def wait_listening(p, ports, timeout=10):
    """Proxy.wait_ready for some of p.ports (the others are for reloads)."""
    end = time.monotonic() + timeout
    for port in ports:
        while True:
            assert p.alive(), p.stderr()[-2000:]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < end, "not listening on %d" % port
                time.sleep(0.05)
    time.sleep(0.1)
