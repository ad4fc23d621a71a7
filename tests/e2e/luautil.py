"""Helpers shared by the Lua end-to-end tests (test_lua_*.py, test_examples.py):
the config check, starting a proxy on a file's HEAD plus its hooks, a one-shot
GET, waiting for a line in the proxy's stderr, and rproxy.hash's MurmurHash3."""

import time

from httpclient import exchange, req
from proxy import run_rproxy

# The end of each file's HEAD: one backend (@B1@) in pool "app", served by the
# default vhost "test.local" on @PORT@.
APP_ROUTES = """rproxy.backend "app1" { address = "@B1@" }
rproxy.pool "app" { "app1", balance = "roundrobin" }
rproxy.listen { address = "127.0.0.1:@PORT@" }
rproxy.vhost "test.local" { default = true, routes = { { to = "app" } } }
"""


def assert_config_ok(p):
    """`rproxy -t` accepts the file the proxy runs."""
    r = run_rproxy(["-t", "-c", str(p.conf)])
    assert r.returncode == 0, r.stdout + r.stderr


def starter(head):
    """start(backend, rproxy, hooks, ...) -> (backend, proxy) for a test file
    whose configs are `head + hooks`. head may use @B1@ (the backend's
    address), @THREADS@, @LEVEL@ and @SETTINGS@; other @KEY@s come as
    keywords. The config passes `rproxy -t`."""

    def start(backend, rproxy, hooks, threads=1, level="info", settings="", mode="normal",
              head=head, **subs):
        be = backend(mode)
        p = rproxy(head + hooks, THREADS=threads, LEVEL=level, SETTINGS=settings,
                   B1=be.address, **subs)
        assert_config_ok(p)
        return be, p

    return start


def get(p, path="/", method="GET", headers=(), body=b"", host="test.local", raw=None):
    """One request (or the raw bytes given) on a fresh connection; the response."""
    r, c = exchange(p.port, raw or req(method, path, host=host, headers=headers, body=body),
                    method=method)
    c.close()
    assert r is not None, "no response to %s %s" % (method, path)
    return r


def wait_log(p, needle, timeout=5):
    """True once needle shows in the proxy's stderr, False after timeout."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if needle in p.stderr():
            return True
        time.sleep(0.05)
    return False


def murmur3_32(data, seed=0):
    """MurmurHash3 x86_32, the reference algorithm, as rproxy.hash computes it."""
    c1, c2 = 0xcc9e2d51, 0x1b873593
    h = seed & 0xffffffff
    n = len(data) // 4
    rotl = lambda x, r: ((x << r) | (x >> (32 - r))) & 0xffffffff
    for i in range(n):
        k = int.from_bytes(data[4 * i: 4 * i + 4], "little")
        k = rotl((k * c1) & 0xffffffff, 15)
        h ^= (k * c2) & 0xffffffff
        h = (rotl(h, 13) * 5 + 0xe6546b64) & 0xffffffff
    tail = data[4 * n:]
    k = 0
    for i, b in reversed(list(enumerate(tail))):
        k ^= b << (8 * i)
    if tail:
        k = rotl((k * c1) & 0xffffffff, 15)
        h ^= (k * c2) & 0xffffffff
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85ebca6b) & 0xffffffff
    h ^= h >> 13
    h = (h * 0xc2b2ae35) & 0xffffffff
    h ^= h >> 16
    return h
