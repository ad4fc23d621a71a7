"""Servers of the benchmark: their configuration files, start, readiness, stop.

Everything runs on 127.0.0.1. The backends (nginx, and bulk.py for the large
transfers) are pinned to CPU 1 with the load generator; each proxy runs one worker pinned
to CPU 0. Every process started here is registered and stopped by its PID by
stop_all(), which run.py calls from try/finally and atexit.
"""

import argparse
import os
import pathlib
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
PROXY_CPU = "0"
LOAD_CPU = "1"
# descriptors for every process of the bench (the idle scenario holds thousands):
# 65536, or the hard limit when it is lower and cannot be raised
NOFILE = 65536
try:
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
except (ValueError, OSError):
    NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
BACKEND_CONNS = 64          # rproxy connections = nginx keepalive = haproxy server maxconn
SMALL_BODY = ("0123456789abcdef" * 64)       # the 1 KiB body of /small
BIG_SIZE = 100 * 1024 * 1024                 # /big and each upload

NGINX_LUA_MODULES = ("/usr/lib/nginx/modules/ndk_http_module.so",
                     "/usr/lib/nginx/modules/ngx_http_lua_module.so")

_procs = []                 # every Proc started and not yet stopped


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _raise_nofile():
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


class Proc:
    """One server process: its PID is the process that does the work (nginx and
    haproxy run in the foreground with a single process), so /proc/PID is the one
    to read for CPU time and memory."""

    def __init__(self, name, argv, cpu, tmp, env=None):
        self.name = name
        self.log_path = pathlib.Path(tmp) / ("%s.out" % name)
        self.log = open(self.log_path, "wb")
        self.p = subprocess.Popen(["taskset", "-c", cpu] + argv, stdout=self.log,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  preexec_fn=_raise_nofile, env=env, cwd=tmp)
        self.pid = self.p.pid   # taskset execs the program: same PID
        _procs.append(self)

    def alive(self):
        return self.p.poll() is None

    def exit_status(self):
        rc = self.p.poll()
        if rc is None:
            return None
        return "killed by signal %d" % -rc if rc < 0 else "exit code %d" % rc

    def stop(self, timeout=5.0):
        """SIGTERM, then SIGKILL after timeout. Returns the exit status."""
        if self in _procs:
            _procs.remove(self)
        if self.p.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.p.wait(5)
            except ProcessLookupError:
                pass
        self.log.close()
        return self.p.returncode

    def output(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def stop_all():
    for p in list(_procs):
        try:
            p.stop()
        except Exception as e:           # keep stopping the others
            print("bench: could not stop %s (pid %d): %s" % (p.name, p.pid, e), file=sys.stderr)


# ---- /proc readers -------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of the process (all its threads), in seconds."""
    return sum(cpu_user_system(pid))


def cpu_user_system(pid):
    """(utime, stime) of the process (all its threads), in seconds: the CPU it spent
    in its own code and in the kernel's (system calls, and on loopback the TCP
    receive path of the peer it sends to)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def count_syscalls(pid, names, work, out):
    """Runs work() while `perf stat` counts the system calls of pid (tracepoints:
    the pattern at full speed, which strace would change); returns {name: count}
    for names, "all" for every system call. out: the file perf writes."""
    events = ["raw_syscalls:sys_enter"] + ["syscalls:sys_enter_%s" % n for n in names]
    perf = subprocess.Popen(["perf", "stat", "-x,", "-e", ",".join(events), "-p", str(pid),
                             "-o", str(out)])
    try:
        time.sleep(0.3)                        # perf attached
        work()
    finally:
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=30)
    counts = {}
    for line in pathlib.Path(out).read_text().splitlines():
        f = line.split(",")
        if len(f) > 2 and f[0].isdigit():
            name = f[2].split(":", 1)[1]
            counts["all" if name == "sys_enter" else name[len("sys_enter_"):]] = int(f[0])
    return counts


def cpu_ticks(cpu):
    """(busy, idle) clock ticks of one CPU so far, from /proc/stat: busy is user, nice,
    system, irq, softirq and steal (time the CPU was not ours to give either)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu%s " % cpu):
                v = [int(x) for x in line.split()[1:9]]
                return v[0] + v[1] + v[2] + v[5] + v[6] + v[7], v[3] + v[4]
    raise OSError("cpu%s not in /proc/stat" % cpu)


def cpu_busy_pct(before, after):
    """How busy a CPU was between two cpu_ticks() readings, in %."""
    busy, idle = after[0] - before[0], after[1] - before[1]
    return 100.0 * busy / max(busy + idle, 1)


def mem_kib(pid, key="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def cpu_busy(seconds=2.0):
    """How busy each CPU is (percent) over a few seconds: the machine's background
    load, measured while the bench runs nothing."""
    def sample():
        out = {}
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("cpu") and line[3].isdigit():
                    v = [int(x) for x in line.split()[1:]]
                    out[line.split()[0]] = (sum(v), v[3] + v[4])
        return out
    a = sample()
    time.sleep(seconds)
    b = sample()
    return {k: round(100 * (1 - (b[k][1] - a[k][1]) / max(b[k][0] - a[k][0], 1)))
            for k in a if k in b}


# ---- readiness -----------------------------------------------------------

def http_get(port, path="/small", headers=None, timeout=2.0):
    """One HTTP/1.1 GET with Connection: close. Returns (status, headers, body)."""
    hdrs = {"Host": "bench.local", "Connection": "close"}
    hdrs.update(headers or {})
    req = "GET %s HTTP/1.1\r\n%s\r\n" % (path, "".join("%s: %s\r\n" % kv for kv in hdrs.items()))
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(req.encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    return status, lines[1:], body


def wait_ready(proc, port, path="/small", timeout=10.0):
    """Waits until GET path answers 200 with the 1 KiB body; raises otherwise."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError("%s exited during start (%s):\n%s"
                               % (proc.name, proc.exit_status(), proc.output()[-2000:]))
        try:
            status, _, body = http_get(port, path)
            if status == 200 and body == SMALL_BODY.encode():
                return
            last = "status %d, %d body bytes" % (status, len(body))
        except (OSError, ValueError, IndexError) as e:
            last = str(e)
        time.sleep(0.05)
    raise RuntimeError("%s not ready on port %d after %.0f s: %s\n%s"
                       % (proc.name, port, timeout, last, proc.output()[-2000:]))


# ---- the backend ---------------------------------------------------------

def nginx_has_lua():
    return all(os.path.exists(m) for m in NGINX_LUA_MODULES)


class Backend:
    """nginx serving /small (1 KiB), /echo (what the Lua policy did) and /big (the
    100 MiB file); and bulk.py, the backend of the large transfers (GET /big by
    sendfile, POST /upload spliced into /dev/null)."""

    def __init__(self, tmp):
        self.tmp = pathlib.Path(tmp)
        self.port = free_port()
        self.bulk_port = free_port()
        self.big = self.tmp / "big.bin"
        with open(self.big, "wb") as f:
            block = os.urandom(1024 * 1024)
            for _ in range(BIG_SIZE // len(block)):
                f.write(block)
        d = self.tmp / "backend"
        d.mkdir()
        conf = d / "nginx.conf"
        conf.write_text(NGINX_BACKEND % dict(dir=d, port=self.port, body=SMALL_BODY,
                                             root=self.tmp, nofile=NOFILE))
        self.bulk = Proc("bulk", [sys.executable, str(HERE / "bulk.py"), str(self.bulk_port),
                                  str(self.big)], LOAD_CPU, tmp)
        self.nginx = Proc("backend", ["nginx", "-p", str(d), "-c", str(conf)], LOAD_CPU, tmp)
        self.pid = self.nginx.pid
        wait_ready(self.nginx, self.port)
        wait_ready(self.bulk, self.bulk_port)

    def serving(self, bulk):
        """(port, pid, Proc) of the backend a scenario uses."""
        if bulk:
            return self.bulk_port, self.bulk.pid, self.bulk
        return self.port, self.pid, self.nginx

    def stop(self):
        self.nginx.stop()
        self.bulk.stop()


NGINX_COMMON = """\
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile %(nofile)d;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log warn;
"""

NGINX_HTTP_COMMON = """\
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path %(dir)s/client_body;
    proxy_temp_path %(dir)s/proxy;
    fastcgi_temp_path %(dir)s/fastcgi;
    uwsgi_temp_path %(dir)s/uwsgi;
    scgi_temp_path %(dir)s/scgi;
"""

NGINX_BACKEND = NGINX_COMMON + """\
events { worker_connections 16384; }
http {
""" + NGINX_HTTP_COMMON + """\
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    server {
        listen 127.0.0.1:%(port)d backlog=4096;
        location = /small { return 200 "%(body)s"; }
        location = /echo { return 200 "uri=$request_uri hook=$http_x_bench_hook\\n"; }
        location = /big { root %(root)s; try_files /big.bin =404; }
        location / { return 404; }
    }
}
"""


# ---- the proxies ---------------------------------------------------------
# Every proxy: one worker, 64 kept-alive backend connections, no access log, the
# error log at "warn", no X-Forwarded-* headers added, keep-alive to clients 75 s,
# listeners with TCP_DEFER_ACCEPT (rproxy's default defer_accept; nginx "deferred",
# HAProxy "defer-accept").
# Requests whose path starts with /api/v1/ go through the Lua policy (when the
# proxy has hooks): read X-Tenant, rewrite ^/api/v1/(.*) to /%1, add X-Bench-Hook.

NGINX_PROXY = NGINX_COMMON + """\
%(modules)s
events { worker_connections 16384; }
http {
""" + NGINX_HTTP_COMMON + """\
    upstream backend {
        server 127.0.0.1:%(backend)d;
        keepalive %(conns)d;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:%(port)d backlog=4096 deferred;
        client_max_body_size 0;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_request_buffering off;
        proxy_max_temp_file_size 0;
        location / { proxy_pass http://backend; }
%(lua_location)s
%(tls_server)s
    }
%(tls_id_server)s
}
"""

NGINX_LUA_LOCATION = """\
        location /api/v1/ {
            rewrite_by_lua_file %s;
            proxy_pass http://backend;
        }"""

HAPROXY = """\
global
    nbthread 1
    maxconn %(maxconn)d
%(lua_load)s
defaults
    mode http
    timeout connect 5s
    timeout client 75s
    timeout server 60s
    timeout http-keep-alive 75s
    http-reuse always
frontend fe
    bind 127.0.0.1:%(port)d defer-accept
%(tls_bind)s
%(lua_action)s
    default_backend be
backend be
    server s1 127.0.0.1:%(backend)d maxconn %(conns)d
"""

RPROXY = """\
-- generated by tests/bench/servers.py
rproxy.settings {
    threads = 1,
    max_nofile = %(nofile)d,
    grace = 2,
    log = { error = "%(dir)s/error.log", level = "warn" },   -- no access log
}
rproxy.backend "b" { address = "127.0.0.1:%(backend)d", connections = %(conns)d }
rproxy.listen { address = "127.0.0.1:%(port)d", backlog = 4096, x_headers = {} }
%(tls_listen)s
rproxy.vhost "bench" { default = true, routes = { { to = "b" } } }
%(hook)s
"""


class Proxy:
    """One proxy under test. kind is "rproxy", "nginx" or "haproxy". With tls (the
    files of make_pki()), it also listens on tls_port: TLS, client certificate
    required."""

    def __init__(self, kind, tmp, backend_port, rproxy_bin, lua=False, tls=None, wrap=(),
                 ready_timeout=10.0):
        self.kind = kind
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.tls_id_port = free_port() if tls else None     # the same without tickets
        self.https_port = free_port() if tls else None      # no client certificate
        self.dir = pathlib.Path(tmp) / ("%s-%d" % (kind, self.port))
        self.dir.mkdir()
        v = dict(dir=self.dir, port=self.port, backend=backend_port, conns=BACKEND_CONNS,
                 nofile=NOFILE, maxconn=NOFILE // 2 - 100)
        v.update(tls_vars(kind, tls, self.tls_port, self.tls_id_port, self.https_port))
        if kind == "rproxy":
            v["hook"] = 'dofile("%s")' % (HERE / "hook.lua") if lua else ""
            conf = self.dir / "rproxy.lua"
            conf.write_text(RPROXY % v)
            argv = [rproxy_bin, "-c", str(conf)]
        elif kind == "nginx":
            v["modules"] = "".join("load_module %s;\n" % m for m in NGINX_LUA_MODULES) \
                if lua else ""
            v["lua_location"] = NGINX_LUA_LOCATION % (HERE / "hook_nginx.lua") if lua else ""
            conf = self.dir / "nginx.conf"
            conf.write_text(NGINX_PROXY % v)
            argv = ["nginx", "-p", str(self.dir), "-c", str(conf)]
        elif kind == "haproxy":
            v["lua_load"] = "    lua-load %s" % (HERE / "hook_haproxy.lua") if lua else ""
            v["lua_action"] = "    http-request lua.bench_hook if { path_beg /api/v1/ }" \
                if lua else ""
            conf = self.dir / "haproxy.cfg"
            conf.write_text(HAPROXY % v)
            argv = ["haproxy", "-db", "-f", str(conf)]
        else:
            raise ValueError(kind)
        self.conf = conf
        self.proc = Proc(kind, list(wrap) + argv, PROXY_CPU, tmp)   # wrap: e.g. valgrind
        self.pid = self.proc.pid
        wait_ready(self.proc, self.port, timeout=ready_timeout)

    def error_lines(self):
        """What the proxy said on stderr/stdout and in its error log."""
        text = self.proc.output()
        log = self.dir / "error.log"
        if log.exists():
            text += log.read_text(errors="replace")
        return [l for l in text.splitlines() if l.strip()]

    def stop(self):
        """Stops the proxy; returns None if it was still running, else how it ended."""
        crashed = self.proc.exit_status()
        self.proc.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        return crashed


def check_config(kind, rproxy_bin, tmp, lua, tls=None):
    """Runs the proxy's own configuration check on its bench config (rproxy -t,
    nginx -t, haproxy -c). Returns (ok, output)."""
    d = pathlib.Path(tmp) / ("check-%s" % kind)
    d.mkdir(exist_ok=True)
    v = dict(dir=d, port=1, backend=2, conns=BACKEND_CONNS, nofile=NOFILE,
             maxconn=NOFILE // 2 - 100)
    v.update(tls_vars(kind, tls, 3, 4, 5))
    if kind == "rproxy":
        v["hook"] = 'dofile("%s")' % (HERE / "hook.lua") if lua else ""
        (d / "c.lua").write_text(RPROXY % v)
        argv = [rproxy_bin, "-t", "-c", str(d / "c.lua")]
    elif kind == "nginx":
        v["modules"] = "".join("load_module %s;\n" % m for m in NGINX_LUA_MODULES) if lua else ""
        v["lua_location"] = NGINX_LUA_LOCATION % (HERE / "hook_nginx.lua") if lua else ""
        (d / "c.conf").write_text(NGINX_PROXY % v)
        argv = ["nginx", "-t", "-p", str(d), "-c", str(d / "c.conf")]
    else:
        v["lua_load"] = "    lua-load %s" % (HERE / "hook_haproxy.lua") if lua else ""
        v["lua_action"] = "    http-request lua.bench_hook if { path_beg /api/v1/ }" \
            if lua else ""
        (d / "c.cfg").write_text(HAPROXY % v)
        argv = ["haproxy", "-c", "-f", str(d / "c.cfg")]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    return r.returncode == 0, r.stdout.decode(errors="replace").strip()


# ---- TLS -------------------------------------------------------------------
# The TLS scenario's listeners: TLS 1.2 and 1.3 (the client asks for 1.2), an
# RSA-2048 certificate, a client certificate required and verified against the
# bench CA, a server-side session cache (20,000 or so sessions, 300 s) and RFC 5077
# tickets, each proxy's own defaults otherwise. nginx gets a shared session cache
# (its default is none) so that the three do the same work per full handshake.

NGINX_SSL = """\
        ssl_certificate %(cert)s;
        ssl_certificate_key %(key)s;
        ssl_client_certificate %(ca)s;
        ssl_verify_client on;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:bench:10m;
        ssl_session_timeout 300s;"""

NGINX_TLS = """\
        listen 127.0.0.1:%(tls_port)d ssl backlog=4096 deferred;
""" + NGINX_SSL + """
        ssl_session_tickets on;"""

HAPROXY_TLS = """\
    bind 127.0.0.1:%(tls_port)d ssl crt %(pem)s ca-file %(ca)s verify required defer-accept
    bind 127.0.0.1:%(tls_id_port)d ssl crt %(pem)s ca-file %(ca)s verify required no-tls-tickets defer-accept
    bind 127.0.0.1:%(https_port)d ssl crt %(pem)s defer-accept"""

# The same TLS listener without tickets: clients resume by session id from the
# proxy's session cache (nginx: its own server block, ssl_session_tickets is per server)
NGINX_TLS_ID = """\
    server {
        listen 127.0.0.1:%(tls_id_port)d ssl backlog=4096 deferred;
""" + NGINX_SSL + """
        ssl_session_tickets off;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        location / { proxy_pass http://backend; }
    }
    server {
        listen 127.0.0.1:%(https_port)d ssl backlog=4096 deferred;
        ssl_certificate %(cert)s;
        ssl_certificate_key %(key)s;
        ssl_protocols TLSv1.2 TLSv1.3;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        location / { proxy_pass http://backend; }
    }"""

RPROXY_TLS = """\
rproxy.listen { address = "127.0.0.1:%(tls_port)d", backlog = 4096, x_headers = {},
    tls = { cert = "%(cert)s", key = "%(key)s", client_ca = "%(ca)s",
            verify_client = "require" } }   -- session cache, tickets: the defaults
rproxy.listen { address = "127.0.0.1:%(tls_id_port)d", backlog = 4096, x_headers = {},
    tls = { cert = "%(cert)s", key = "%(key)s", client_ca = "%(ca)s",
            verify_client = "require", tickets = false } }
rproxy.listen { address = "127.0.0.1:%(https_port)d", backlog = 4096, x_headers = {},
    tls = { cert = "%(cert)s", key = "%(key)s" } }"""


def tls_vars(kind, tls, tls_port, tls_id_port=None, https_port=None):
    """The TLS parts of a proxy's configuration (empty without tls): a listener
    on tls_port, the same without tickets on tls_id_port, and on https_port one
    that asks no client certificate (https.py: wrk cannot present one)."""
    v = {"tls_server": "", "tls_bind": "", "tls_listen": "", "tls_id_server": ""}
    if tls:
        f = dict(tls, tls_port=tls_port, tls_id_port=tls_id_port, https_port=https_port)
        if kind == "nginx":
            v["tls_server"] = NGINX_TLS % f
            v["tls_id_server"] = NGINX_TLS_ID % f
        elif kind == "haproxy":
            v["tls_bind"] = HAPROXY_TLS % f
        else:
            v["tls_listen"] = RPROXY_TLS % f
    return v


PKI_CNF = """\
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused
[ ca ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ server ]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
authorityKeyIdentifier = keyid
[ client ]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
"""

# RSA-2048 for the CA and the server; the client's key is P-256 (see make_pki)
RSA_KEY = ("-newkey", "rsa:2048")
EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256")


def make_pki(tmp):
    """Makes the bench's certificates with the openssl command in tmp/tls: a CA
    (RSA-2048, self-signed), the proxies' server certificate (RSA-2048, CN=localhost,
    signed by the CA), the client certificate of the load generator (CN=bench client,
    signed by the CA). The client's key is ECDSA P-256: the load generator shares one
    core with the backend and must outrun a proxy core, and an RSA-2048 client key
    would cost it one more RSA signature per handshake than the proxy's core makes
    (the proxy then verifies an ECDSA signature: about 0.1 ms). Returns the paths:
    ca, cert, key, pem (cert + key, for HAProxy), client_cert, client_key."""
    d = pathlib.Path(tmp) / "tls"
    d.mkdir(exist_ok=True)
    (d / "pki.cnf").write_text(PKI_CNF)

    def ossl(*args):
        r = subprocess.run(["openssl"] + list(args), cwd=str(d), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("openssl %s failed:\n%s"
                               % (" ".join(args), r.stdout.decode(errors="replace")[-1500:]))

    ossl("req", "-x509", *RSA_KEY, "-nodes", "-config", "pki.cnf", "-extensions", "ca",
         "-subj", "/CN=rproxy bench CA", "-days", "7", "-keyout", "ca.key", "-out", "ca.crt")
    for name, key, subj, serial in (("server", RSA_KEY, "/CN=localhost", "2"),
                                    ("client", EC_KEY, "/O=rproxy bench/CN=bench client", "3")):
        ossl("req", "-new", *key, "-nodes", "-config", "pki.cnf", "-subj", subj,
             "-keyout", name + ".key", "-out", name + ".csr")
        ossl("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-set_serial", serial, "-days", "7", "-sha256", "-extfile", "pki.cnf",
             "-extensions", name, "-out", name + ".crt")
    ossl("verify", "-CAfile", "ca.crt", "server.crt", "client.crt")
    pem = d / "server.pem"
    pem.write_text((d / "server.crt").read_text() + (d / "server.key").read_text())
    return {"ca": str(d / "ca.crt"), "cert": str(d / "server.crt"),
            "key": str(d / "server.key"), "pem": str(pem),
            "client_cert": str(d / "client.crt"), "client_key": str(d / "client.key")}


# ---- tools beside the bench (tls_full.py, https.py) ------------------------

TOOL_PROXIES = ("rproxy", "nginx", "haproxy")


def tool_args(doc, **extra):
    """The options of a bench tool: --rproxy, --rounds and extra {name: default}
    integers; its description is doc's first line."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--rproxy", default=str(HERE.parents[1] / "build" / "rproxy"))
    ap.add_argument("--rounds", type=int, default=3)
    for name, default in extra.items():
        ap.add_argument("--" + name, type=int, default=default)
    return ap.parse_args()


def tls_rounds(prefix, rounds, one_round):
    """A temporary directory with the bench's certificates (make_pki) and backend;
    one_round(kind, tmp, pki, backend) for each proxy in turn, rounds times. Stops
    everything it started and removes the directory."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        pki = make_pki(tmp)
        backend = Backend(tmp)
        try:
            for r in range(rounds):
                print("round %d" % (r + 1), flush=True)
                for kind in TOOL_PROXIES:
                    one_round(kind, tmp, pki, backend)
        finally:
            backend.stop()
            stop_all()


# ---- A/B tools (transfers_ab.py, requests_ab.py) ----------------------------

def ab_args(doc, seconds, syscalls_help, extra=()):
    """The options of an A/B tool: PROXY..., --rounds, --seconds, --syscalls, and
    extra ((flags), {argparse keywords}) ones; its description is doc's first
    paragraph."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("proxies", nargs="+", metavar="PROXY")
    for flags, kw in extra:
        ap.add_argument(*flags, **kw)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=seconds)
    ap.add_argument("--syscalls", action="store_true", help=syscalls_help)
    return ap.parse_args()


def ab_proxy(spec, tmp, backend_port, **kw):
    """The proxy of an A/B tool's PROXY argument, rproxy[:BINARY], nginx or haproxy
    (BINARY defaults to build/rproxy), started."""
    kind, _, binary = spec.partition(":")
    return Proxy(kind, tmp, backend_port, binary or str(HERE.parents[1] / "build" / "rproxy"),
                 **kw)


def ab_rounds(args, one_round, line, syscalls):
    """Runs an A/B tool in a temporary directory with the bench's backends, this
    process on the load CPU: with --syscalls, prints syscalls(spec, tmp, backend)
    once for each proxy; otherwise calls one_round(spec, tmp, backend) for each proxy
    in turn, args.rounds times, printing line(round, spec, result) after each.
    Returns {spec: [results]} ({} with --syscalls)."""
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    runs = {spec: [] for spec in args.proxies}
    with tempfile.TemporaryDirectory(prefix="rproxy-ab-") as tmp:
        backend = Backend(tmp)
        try:
            if args.syscalls:
                for spec in args.proxies:
                    print("%-32s %s" % (spec, syscalls(spec, tmp, backend)), flush=True)
                return {}
            for r in range(args.rounds):
                for spec in args.proxies:
                    res = one_round(spec, tmp, backend)
                    runs[spec].append(res)
                    print(line(r + 1, spec, res), flush=True)
        finally:
            backend.stop()
    return runs
