"""Each examples/*.lua, and README's scripting example, runs for real here: the file's text unchanged, its
addresses and knobs given through the environment variables it documents
(RP_LISTEN, RP_STABLE, ...), two worker threads, recording backends, and
clients from several loopback source addresses (127.0.x.y) where the example
decides by client address."""

import json
import re
import socket
import time

import pytest

from backends import free_port
from httpclient import RawClient, req
from luautil import murmur3_32
from proxy import REPO, run_rproxy

EXAMPLES = REPO / "examples"


class BoundClient(RawClient):
    """A RawClient whose connection comes from a chosen loopback address."""

    def __init__(self, port, source, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.reset = False


def get_from(p, source="127.0.0.1", path="/", method="GET", headers=(), host="example.test"):
    c = BoundClient(p.port, source)
    try:
        c.send(req(method, path, host=host, headers=headers))
        r = c.read_response(method)
    finally:
        c.close()
    assert r is not None, "no response to %s from %s" % (path, source)
    return r


def run_example(rproxy, name, env):
    """Starts examples/<name> as it is, listening where RP_LISTEN says."""
    port = free_port()
    env = dict(env, RP_LISTEN="127.0.0.1:%d" % port, RP_THREADS="2")
    p = rproxy((EXAMPLES / name).read_text(), env=env, wait=False)
    p.port, p.ports = port, [port]
    p.wait_ready()
    return p


@pytest.mark.parametrize("name", sorted(f.name for f in EXAMPLES.glob("*.lua")))
def test_example_passes_config_check(name):
    r = run_rproxy(["-t", "-c", str(EXAMPLES / name)])
    assert r.returncode == 0 and r.stdout.strip() == b"ok", r


# ---- canary.lua -------------------------------------------------------------------

def start_canary(backend, rproxy, percent):
    stable, canary = backend(name="stable"), backend(name="canary")
    p = run_example(rproxy, "canary.lua", {"RP_STABLE": stable.address,
                                           "RP_CANARY": canary.address,
                                           "RP_CANARY_PERCENT": str(percent)})
    assert stable.wait_connections(16) and canary.wait_connections(8)
    return stable, canary, p


def in_canary(addr, percent):
    return murmur3_32(addr.encode()) % 100 < percent


def test_canary_share_by_client_address(backend, rproxy):
    stable, canary, p = start_canary(backend, rproxy, 30)
    addrs = ["127.0.1.%d" % i for i in range(1, 201)]
    want = {a: in_canary(a, 30) for a in addrs}
    assert 30 <= sum(want.values()) <= 90          # the hash spreads these addresses
    for a in addrs + addrs[:40]:                   # the first 40 twice: sticky
        r = get_from(p, a, "/page")
        assert r.status == 200, (a, r)
        expect = "canary" if want[a] else "stable"
        assert r.header("X-Backend") == expect, (a, r.header("X-Backend"), expect)
        assert r.header("X-Canary") == ("1" if want[a] else "0")
    assert len(canary.requests) == 240 - len(stable.requests)
    assert len(canary.requests) == sum(want.values()) + sum(want[a] for a in addrs[:40])


def test_canary_forced_by_cookie_or_header(backend, rproxy):
    stable, canary, p = start_canary(backend, rproxy, 30)
    to_stable = next("127.0.3.%d" % i for i in range(1, 255) if not in_canary("127.0.3.%d" % i, 30))
    to_canary = next("127.0.3.%d" % i for i in range(1, 255) if in_canary("127.0.3.%d" % i, 30))
    cases = [
        (to_stable, [], "stable"),
        (to_stable, [("Cookie", "session=1; canary=always; theme=dark")], "canary"),
        (to_stable, [("Cookie", "canary=always")], "canary"),
        (to_stable, [("X-Canary", "always")], "canary"),
        (to_stable, [("Cookie", "mycanary=always")], "stable"),    # another cookie's name
        (to_canary, [], "canary"),
        (to_canary, [("Cookie", "a=b;canary=never")], "stable"),
        (to_canary, [("X-Canary", "never")], "stable"),
        (to_canary, [("X-Canary", "never"), ("Cookie", "canary=always")], "stable"),  # header first
        (to_canary, [("X-Canary", "bogus")], "canary"),
    ]
    for addr, headers, expect in cases:
        r = get_from(p, addr, "/f", headers=headers)
        assert r.status == 200 and r.header("X-Backend") == expect, (addr, headers, r.headers)
    for q in stable.requests + canary.requests:
        assert q.header("X-Canary") is None                    # not passed on


def test_canary_down_sends_its_share_to_stable(backend, rproxy):
    stable, canary, p = start_canary(backend, rproxy, 30)
    assert get_from(p, headers=[("X-Canary", "always")]).header("X-Backend") == "canary"
    canary.stop()
    end = time.monotonic() + 15
    r = None
    while time.monotonic() < end:
        r = get_from(p, headers=[("X-Canary", "always")])
        if r.status == 200 and r.header("X-Backend") == "stable":
            break
        time.sleep(0.1)
    assert r.status == 200 and r.header("X-Backend") == "stable", r
    assert r.header("X-Canary") == "0"
    for i in range(10):                                       # and it stays so
        r = get_from(p, "127.0.4.%d" % (i + 1), headers=[("X-Canary", "always")])
        assert r.status == 200 and r.header("X-Backend") == "stable", r


# ---- header-policy.lua ------------------------------------------------------------

def start_policy(backend, rproxy):
    def app(conn, q):
        return conn.echo(q, headers=[("Server", "Apache/2.4"), ("X-Powered-By", "PHP/8"),
                                     ("X-Frame-Options", "SAMEORIGIN")])
    be = backend(handler=app, name="app")
    p = run_example(rproxy, "header-policy.lua", {"RP_APP": be.address})
    return be, p


HOSTILE = [("Proxy", "http://evil.test:3128"), ("X-Forwarded-Host", "evil.test"),
           ("X-Forwarded-Server", "evil.test"), ("X-Original-URL", "/admin"),
           ("X-Rewrite-URL", "/admin"), ("X-HTTP-Method-Override", "DELETE"),
           ("X-HTTP-Method", "DELETE"), ("X-Method-Override", "DELETE"),
           ("X-Internal-Auth", "admin"), ("x-internal-user", "root"),
           ("X-Forwarded-For", "6.6.6.6"), ("X-Real-IP", "6.6.6.6"), ("X-Keep", "yes"),
           ("X-Internalish", "kept")]


def test_header_policy_strips_and_adds(backend, rproxy):
    be, p = start_policy(backend, rproxy)
    r = get_from(p, "127.0.5.9", "/app?x=1", headers=HOSTILE)
    assert r.status == 200, r
    got = be.requests[-1]
    assert got.target == "/app?x=1"
    names = [k.lower() for k, _ in got.headers]
    for k, _ in HOSTILE:
        if k not in ("X-Keep", "X-Internalish", "X-Forwarded-For", "X-Real-IP"):
            assert k.lower() not in names, (k, got.headers)
    assert got.header_all("X-Forwarded-For") == ["127.0.5.9"]     # the peer only
    assert got.header_all("X-Real-IP") == ["127.0.5.9"]
    assert got.header("X-Forwarded-Proto") == "http"
    assert got.header("X-Keep") == "yes" and got.header("X-Internalish") == "kept"
    rid = got.header("X-Request-Id")
    assert re.fullmatch(r"[0-9a-f]{32}", rid), rid
    # the response
    assert r.header("X-Request-Id") == rid
    assert r.header("Server") is None and r.header("X-Powered-By") is None, r.headers
    assert r.header("X-Content-Type-Options") == "nosniff"
    assert r.header_all("X-Frame-Options") == ["SAMEORIGIN"]       # the application's own
    assert r.header("Referrer-Policy") == "strict-origin-when-cross-origin"
    assert r.header("Content-Security-Policy") == "default-src 'self'"
    assert json.loads(r.body)["target"] == "/app?x=1"


def test_header_policy_request_ids(backend, rproxy):
    be, p = start_policy(backend, rproxy)
    ids = set()
    for i in range(30):
        r = get_from(p, path="/id%d" % i)
        ids.add(r.header("X-Request-Id"))
        assert be.requests[-1].header("X-Request-Id") == r.header("X-Request-Id")
    assert len(ids) == 30 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    for given, kept in (("abc-123.DEF_x", True), ("x" * 64, True), ("x" * 65, False),
                        ("has space", False), ("semi;colon", False), ("", False)):
        r = get_from(p, path="/given", headers=[("X-Request-Id", given)])
        got = be.requests[-1].header_all("X-Request-Id")
        assert len(got) == 1 and r.header("X-Request-Id") == got[0], (given, got)
        assert (got[0] == given) == kept, (given, got)


def test_header_policy_refuses_trace(backend, rproxy):
    be, p = start_policy(backend, rproxy)
    r = get_from(p, path="/t", method="TRACE")
    assert r.status == 405 and "GET" in r.header("Allow"), r
    assert r.header("X-Content-Type-Options") is None              # a hook's answer: no on_response
    assert get_from(p, path="/t", method="TRACK").status == 501    # llhttp does not know it
    assert be.requests == []
    assert get_from(p, path="/after").status == 200


# ---- rate-limit.lua ---------------------------------------------------------------

def test_rate_limit_per_client_address(backend, rproxy):
    be = backend(name="app")
    p = run_example(rproxy, "rate-limit.lua", {"RP_APP": be.address, "RP_RATE_LIMIT": "5",
                                               "RP_RATE_WINDOW": "30"})
    got = []
    for i in range(8):                      # new connections: both workers count
        r = get_from(p, "127.0.6.1", "/r%d" % i)
        got.append((r.status, r.header("X-RateLimit-Remaining")))
    assert got[:5] == [(200, str(4 - i)) for i in range(5)], got
    assert got[5:] == [(429, "0")] * 3, got
    r = get_from(p, "127.0.6.1", "/again")
    assert r.status == 429 and r.header("Retry-After") == "30" and r.header("X-RateLimit-Limit") == "5"
    r = get_from(p, "127.0.6.2", "/other-client")
    assert r.status == 200 and r.header("X-RateLimit-Remaining") == "4", r
    assert len(be.requests) == 6


def test_rate_limit_window_expires(backend, rproxy):
    be = backend(name="app")
    p = run_example(rproxy, "rate-limit.lua", {"RP_APP": be.address, "RP_RATE_LIMIT": "2",
                                               "RP_RATE_WINDOW": "0.5"})
    assert [get_from(p, "127.0.7.1").status for i in range(3)] == [200, 200, 429]
    time.sleep(0.8)
    assert get_from(p, "127.0.7.1").status == 200


def readme_lua_block():
    """The Lua of README.md's "Scripting in Lua" section, as printed there."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Scripting in Lua"):]
    return re.search(r"```lua\n(.*?)```", section, re.S).group(1)


def test_readme_scripting_example(backend, rproxy):
    """README's example runs as printed, with the backends, listener and vhost
    it leaves out: the rewrite keeps the query, /ping is answered by the hook,
    the response hook and the weighted balancer work."""
    a, b, canary = backend(name="app1"), backend(name="app2"), backend(name="canary")
    lua = ('rproxy.settings { threads = 2, log = { error = "stderr", level = "info" } }\n'
           'rproxy.backend "app1" { address = "%s" }\n'
           'rproxy.backend "app2" { address = "%s" }\n'
           'rproxy.backend "canary" { address = "%s" }\n'
           'rproxy.listen { address = "127.0.0.1:@PORT@" }\n'
           'rproxy.vhost "example.test" { default = true, routes = { { to = "app" } } }\n'
           % (a.address, b.address, canary.address)) + readme_lua_block()
    p = rproxy(lua)
    for i in range(20):                      # both backends: all but certain
        r = get_from(p, path="/v1/items?page=%d" % i)
        assert r.status == 200 and r.header("X-Served-By") is not None, r
    got = a.requests + b.requests
    assert sorted(q.target for q in got) == sorted("/items?page=%d" % i for i in range(20)), got
    assert all(q.header("X-Request-Start") for q in got)
    assert a.requests and b.requests, "the weighted balancer used one backend only"
    r = get_from(p, path="/ping")
    assert r.status == 200 and r.body == b"pong\n", r
    r = get_from(p, path="/c", headers=[("X-Canary", "1")])
    assert r.status == 200 and canary.wait_requests(1) and canary.requests[0].target == "/c"
