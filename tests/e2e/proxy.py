"""Running the real rproxy binary for a test: config file, start, readiness,
logs, signals, stop, and the sanitizer check.
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import time

from backends import free_port

REPO = pathlib.Path(__file__).resolve().parents[2]
RPROXY_BIN = os.path.abspath(os.environ.get("RPROXY_BIN", str(REPO / "build" / "rproxy")))
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")

# ASan's quarantine holds freed memory (256 MiB by default), which the RSS checks
# of the streaming tests would count as growth; keep it small unless told otherwise.
_ASAN_DEFAULTS = "quarantine_size_mb=8:detect_leaks=1"


def run_rproxy(args, cwd=None, timeout=20):
    """Runs the binary to completion (for -t, -h, failing starts)."""
    return subprocess.run([RPROXY_BIN] + list(args), cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, env=proxy_env())


def proxy_env(extra=None):
    env = dict(os.environ)
    asan = env.get("ASAN_OPTIONS", "")
    if "quarantine_size_mb" not in asan:
        asan = (asan + ":" if asan else "") + _ASAN_DEFAULTS
    env["ASAN_OPTIONS"] = asan
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    if extra:
        env.update(extra)
    return env


def basic_lua(backends, threads=1, listen="", backend="", settings="", balance="roundrobin",
              access_format="json", vhost_extra=""):
    """A config with one listener, the given backends {name: address} in one pool
    "app" and a default vhost routing everything to it. listen/backend/settings are
    extra Lua fields (text) for those tables."""
    out = ['rproxy.settings { threads = %d, pidfile = "@PIDFILE@", grace = 3,' % threads,
           '  log = { error = "stderr", level = "info",',
           '          access = { output = "@ACCESS@", format = "%s" } }, %s }'
           % (access_format, settings)]
    for name, addr in backends.items():
        out.append('rproxy.backend "%s" { address = "%s", %s }' % (name, addr, backend))
    out.append('rproxy.pool "app" { %s, balance = "%s" }'
               % (", ".join('"%s"' % n for n in backends), balance))
    out.append('rproxy.listen { address = "127.0.0.1:@PORT@", %s }' % listen)
    out.append('rproxy.vhost "test.local" { default = true, %s routes = { { to = "app" } } }'
               % vhost_extra)
    return "\n".join(out) + "\n"


class Proxy:
    def __init__(self, tmp, lua, nports=1, env=None, subs=None):
        self.tmp = pathlib.Path(tmp)
        self.ports = [free_port() for _ in range(nports)]
        self.port = self.ports[0]
        self.access_log = self.tmp / "access.log"
        self.pidfile = self.tmp / "rproxy.pid"
        self.conf = self.tmp / "rproxy.lua"
        self.stderr_path = self.tmp / "stderr.log"
        self.stdout_path = self.tmp / "stdout.log"
        text = lua
        allsubs = {"PORT": self.port, "TMP": str(self.tmp), "ACCESS": str(self.access_log),
                   "PIDFILE": str(self.pidfile)}
        for i, p in enumerate(self.ports[1:], start=2):
            allsubs["PORT%d" % i] = p
        allsubs.update(subs or {})
        for k, v in allsubs.items():
            text = text.replace("@%s@" % k, str(v))
        self.conf.write_text(text)
        self.env = proxy_env(env)
        self.proc = None
        self.returncode = None
        self.killed = False

    def start(self, wait=True, timeout=10):
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen([RPROXY_BIN, "-c", str(self.conf)], cwd=str(self.tmp),
                                     stdout=self._out, stderr=self._err, env=self.env,
                                     start_new_session=True)
        self.pid = self.proc.pid
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=10):
        end = time.monotonic() + timeout
        pending = list(self.ports)
        while pending:
            if self.proc.poll() is not None:
                raise RuntimeError("rproxy exited with %s before listening; stderr:\n%s"
                                   % (self.proc.returncode, self.stderr()[-3000:]))
            if time.monotonic() > end:
                raise RuntimeError("rproxy not listening on %s after %ss; stderr:\n%s"
                                   % (pending, timeout, self.stderr()[-3000:]))
            try:
                s = socket.create_connection(("127.0.0.1", pending[0]), timeout=1)
                s.close()
                pending.pop(0)
            except OSError:
                time.sleep(0.05)
        time.sleep(0.1)   # the other workers' listeners and backend connections

    def url(self, path="/", port=None):
        return "http://127.0.0.1:%d%s" % (port or self.port, path)

    def stderr(self):
        try:
            return self.stderr_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def access_lines(self, path=None):
        p = pathlib.Path(path) if path else self.access_log
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            return []
        return [l for l in data.split(b"\n") if l.strip()]

    def access_json(self, path=None):
        return [json.loads(l) for l in self.access_lines(path)]

    def wait_access_lines(self, n, timeout=5, path=None):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if len(self.access_lines(path)) >= n:
                return True
            time.sleep(0.05)
        return False

    def signal(self, sig):
        os.kill(self.pid, sig)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout):
        try:
            self.returncode = self.proc.wait(timeout)
            return self.returncode
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=15):
        """SIGTERM, wait (bounded), SIGKILL if needed. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.returncode = self.proc.returncode
        for f in (self._err, self._out):
            if not f.closed:
                f.close()
        return self.returncode

    def sanitizer_report(self):
        err = self.stderr()
        for m in SANITIZER_MARKERS:
            i = err.find(m)
            if i >= 0:
                return err[max(0, i - 200): i + 4000]
        return None

    def rss_kib(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0
