"""The runtime rproxy.* API seen from hooks: the pure helpers (escape_uri,
base64, sha256, hmac_sha256, hex, hash) checked against Python's own, now,
worker_id, log and its levels, every (per-worker timers), require from the
config's directory and its scripts/, and a config without any hook."""

import base64
import hashlib
import hmac
import os
import re
import time
import urllib.parse

from httpclient import exchange, req
from luautil import APP_ROUTES, get, murmur3_32, starter, wait_log
from proxy import run_rproxy

HEAD = """
rproxy.settings { threads = @THREADS@, grace = 2, log = { error = "stderr", level = "@LEVEL@" } }
""" + APP_ROUTES

start = starter(HEAD)


def lua_literal(data):
    return '"' + "".join("\\%03d" % b for b in data) + '"'


INPUTS = [b"", b"a", b"ab", b"abc", b"abcd", b"hello world", bytes(range(256)),
          "é/?&= +%~._-AZaz09".encode(), b"\x00\xff\r\n", os.urandom(1000)]

HELPERS_LUA = r"""
local inputs = { @INPUTS@ }
local function pack(...)
    local t = table.pack(...)
    local out = {}
    for i = 1, t.n do out[i] = tostring(t[i]) end
    return table.concat(out, ",")
end
function rproxy.on_request(req)
    local H = rproxy
    if req.path == "/vectors" then
        local out = {}
        for i, s in ipairs(inputs) do
            out[#out + 1] = table.concat({ i, H.hex(s), H.escape_uri(s),
                H.hex(H.unescape_uri(H.escape_uri(s))), H.base64_encode(s),
                H.hex(H.base64_decode(H.base64_encode(s))), H.hex(H.sha256(s)), H.sha256_hex(s),
                H.hex(H.hmac_sha256("key", s)), H.hex(H.hmac_sha256(s, "msg")),
                H.hash(s), H.hash(s, 42), H.hash(s, 4294967295), #H.sha256(s) }, "\t")
        end
        return req:respond(200, table.concat(out, "\n"))
    end
    if req.path == "/edges" then
        return req:respond(200, table.concat({
            H.unescape_uri("%41%4a%zz%4+%%2f%2F%"),
            H.escape_uri("a b+c/~"),
            pack(H.base64_decode("aGVsbG8")),
            pack(H.base64_decode("aGVsbG8=")),
            pack(H.base64_decode("aGVsbA==")),
            pack(H.base64_decode("")),
            pack(H.base64_decode("!!!!")),
            pack(H.base64_decode("aGVsbG8==")),
            pack(H.base64_decode("a")),
            pack(H.base64_decode("aGVs bG8=")),
            pack(H.base64_decode("aG=s")),
            pack(pcall(H.hash, "x", -1)),
            pack(pcall(H.hash, "x", 4294967296)),
            pack(pcall(H.hex, {})),
            math.type(H.hash("x")),
        }, "\n"))
    end
end
"""


def test_helpers_match_python(backend, rproxy):
    hooks = HELPERS_LUA.replace("@INPUTS@", ", ".join(lua_literal(s) for s in INPUTS))
    be, p = start(backend, rproxy, hooks)
    r = get(p, "/vectors")
    assert r.status == 200, r
    lines = r.body.decode().split("\n")
    assert len(lines) == len(INPUTS)
    for s, line in zip(INPUTS, lines):
        f = line.split("\t")
        want = [f[0], s.hex(), urllib.parse.quote(s, safe=""), s.hex(),
                base64.b64encode(s).decode(), s.hex(), hashlib.sha256(s).hexdigest(),
                hashlib.sha256(s).hexdigest(), hmac.new(b"key", s, hashlib.sha256).hexdigest(),
                hmac.new(s, b"msg", hashlib.sha256).hexdigest(),
                str(murmur3_32(s)), str(murmur3_32(s, 42)), str(murmur3_32(s, 4294967295)), "32"]
        assert f == want, (s[:40], f, want)


def test_helper_edge_cases(backend, rproxy):
    hooks = HELPERS_LUA.replace("@INPUTS@", "")
    be, p = start(backend, rproxy, hooks)
    r = get(p, "/edges")
    lines = r.body.decode().split("\n")
    assert lines[0] == "AJ%zz%4+%//%"
    assert lines[1] == "a%20b%2Bc%2F~"
    assert lines[2:6] == ["hello", "hello", "hell", ""]
    assert lines[6:10] == ["nil,invalid base64"] * 4, lines[6:10]
    assert lines[10] == "nil,invalid base64", lines[10]
    assert lines[11].startswith("false,") and "seed must be in 0 .. 2^32-1" in lines[11]
    assert lines[12].startswith("false,") and "seed must be in 0 .. 2^32-1" in lines[12]
    assert lines[13].startswith("false,") and "string expected" in lines[13]
    assert lines[14] == "integer"
    # known vectors
    assert murmur3_32(b"") == 0 and murmur3_32(b"", 1) == 0x514E28B7
    assert murmur3_32(b"hello") == 0x248BFA47


CLOCK_LUA = r"""
local loaded_in = rproxy.worker_id()            -- top-level code runs in each worker's state
function rproxy.on_request(req)
    return req:respond(200, string.format("%.6f %d %d %d %s", rproxy.now(), rproxy.worker_id(),
                                          req.worker_id, loaded_in, math.type(rproxy.now())))
end
"""


def test_now_and_worker_id(backend, rproxy):
    be, p = start(backend, rproxy, CLOCK_LUA, threads=2)
    seen = set()
    fractions = set()
    for i in range(40):
        t0 = time.time()
        f = get(p, "/t").body.decode().split(" ")
        t1 = time.time()
        assert t0 - 1 <= float(f[0]) <= t1 + 1, (t0, f, t1)
        assert f[1] == f[2] == f[3], f
        assert f[4] == "float"
        seen.add(f[1])
        fractions.add(f[0].split(".")[1])
    assert seen == {"0", "1"}, seen
    assert len(fractions) > 1                       # sub-second resolution


LOG_LUA = r"""
function rproxy.on_request(req)
    if req.path == "/log" then
        rproxy.log("err", "m-err", 1, true, nil, 2.5)
        rproxy.log("error", "m-error-alias")
        rproxy.log("warn", "m-warn")
        rproxy.log("notice", "m-notice", { })
        rproxy.log("info", "m-info")
        rproxy.log("debug", "m-debug")
        rproxy.log("notice", "m-nl\nsecond-line")
        return req:respond(200, "logged")
    end
    if req.path == "/bad-level" then rproxy.log("loud", "x") end
end
"""


def test_log_levels(backend, rproxy):
    be, p = start(backend, rproxy, LOG_LUA, level="notice")
    assert get(p, "/log").body == b"logged"
    assert wait_log(p, "m-nl")
    err = p.stderr()
    n = next(i for i, l in enumerate(p.conf.read_text().split("\n"), 1) if '"m-err"' in l)
    assert re.search(r"\[error\] lua: \S*rproxy\.lua:%d: m-err 1 true nil 2\.5$" % n, err, re.M), err
    assert re.search(r"\[error\] lua: \S*rproxy\.lua:%d: m-error-alias$" % (n + 1), err, re.M)
    assert re.search(r"\[warn\] lua: \S*rproxy\.lua:%d: m-warn$" % (n + 2), err, re.M)
    assert re.search(r"\[notice\] lua: \S*rproxy\.lua:%d: m-notice table: 0x" % (n + 3), err)
    assert "m-info" not in err and "m-debug" not in err      # below the log level
    r = get(p, "/bad-level")
    assert r.status == 500
    assert wait_log(p, "bad argument #1 to 'log' (invalid option 'loud')")


def test_log_info_and_debug_when_enabled(backend, rproxy):
    be, p = start(backend, rproxy, LOG_LUA, level="debug")
    get(p, "/log")
    assert wait_log(p, "m-debug")
    assert re.search(r"\[info\] lua: .*m-info$", p.stderr(), re.M)
    assert re.search(r"\[debug\] lua: .*m-debug$", p.stderr(), re.M)


EVERY_LUA = r"""
local ticks, fast = 0, 0
rproxy.every(0.05, function()
    ticks = ticks + 1
    if ticks == 2 then error("timer failed on purpose") end
end)
rproxy.every(0.01, function() fast = fast + 1 end)
function rproxy.on_request(req)
    return req:respond(200, ticks .. " " .. fast .. " " .. rproxy.worker_id())
end
"""


def test_every(backend, rproxy):
    be, p = start(backend, rproxy, EVERY_LUA, threads=2)
    time.sleep(0.6)
    seen = set()
    for i in range(20):
        ticks, fast, wid = (int(x) for x in get(p, "/t").body.split())
        assert ticks >= 4, ticks                 # it went on after its error
        assert fast > ticks, (fast, ticks)
        seen.add(wid)
    assert seen == {0, 1}                        # one timer per worker
    assert wait_log(p, "lua: rproxy.every: ")
    assert "timer failed on purpose" in p.stderr()
    assert p.stderr().count("timer failed on purpose") == 2   # once per worker


EVERY_IN_HOOK_LUA = r"""
local ticks = 0
function rproxy.on_request(req)
    local ok, err = pcall(rproxy.every, 0.01, function() ticks = ticks + 1 end)
    return req:respond(200, tostring(ok) .. " " .. tostring(err) .. " " .. ticks)
end
"""


def test_every_outside_the_top_level_raises(backend, rproxy):
    """rproxy.every in a hook would add a timer a request, for good (each one
    firing until the next reload): it raises instead, and no timer runs."""
    be, p = start(backend, rproxy, EVERY_IN_HOOK_LUA, threads=1)
    for i in range(3):
        body = get(p, "/e").body.decode()
        time.sleep(0.1)
    assert body.startswith("false ") and "call it at the top level" in body, body
    assert body.endswith(" 0"), body                 # no timer ever ran


def test_every_arguments_are_checked_by_t(tmpdir_rp):
    for bad, msg in (("rproxy.every(0, function() end)", "an interval from 0.001"),
                     ("rproxy.every(1, 'not a function')", "function expected")):
        path = os.path.join(tmpdir_rp, "bad.lua")
        with open(path, "w") as f:
            f.write(HEAD.replace("@THREADS@", "1").replace("@LEVEL@", "info")
                    .replace("@B1@", "127.0.0.1:9").replace("@PORT@", "9") + bad + "\n")
        r = run_rproxy(["-t", "-c", path])
        assert r.returncode != 0 and msg in (r.stdout + r.stderr).decode(), (bad, r)


REQUIRE_LUA = r"""
local policy = require "policy"           -- scripts/policy.lua
local helper = require "helper"           -- helper.lua next to rproxy.lua
rproxy.backend "app2" { address = "@B1@" }
rproxy.pool "viamodule" { "app2", "app1", balance = "first_up" }   -- declared by scripts/policy.lua
rproxy.vhost "module.test" { routes = { { to = "viamodule" } } }
function rproxy.on_request(req)
    policy.tag(req)
    req:set_header("X-Helper", helper.name)
end
"""

POLICY_MODULE = r"""
local M = {}
function M.tag(req) req:set_header("X-Policy", "scripts/policy.lua") end
rproxy.balancer "first_up" (function(req, pool)
    for _, b in ipairs(pool.backends) do
        if b.up then req:set_header("X-Module-Balancer", b.name) return b end
    end
end)
return M
"""


def test_require_from_scripts_and_config_dir(backend, rproxy, tmpdir_rp):
    os.makedirs(os.path.join(tmpdir_rp, "scripts"))
    with open(os.path.join(tmpdir_rp, "scripts", "policy.lua"), "w") as f:
        f.write(POLICY_MODULE)
    with open(os.path.join(tmpdir_rp, "helper.lua"), "w") as f:
        f.write('return { name = "helper.lua" }\n')
    be, p = start(backend, rproxy, REQUIRE_LUA)
    assert str(p.conf.parent) == tmpdir_rp
    r = get(p, "/m")
    assert r.status == 200
    got = be.requests[-1]
    assert got.header("X-Policy") == "scripts/policy.lua"
    assert got.header("X-Helper") == "helper.lua"
    assert got.header("X-Module-Balancer") is None
    r, c = exchange(p.port, req("GET", "/m2", host="module.test"))
    c.close()
    assert r.status == 200
    assert be.requests[-1].header("X-Module-Balancer") == "app2"
    # -t from another working directory finds the modules too
    r = run_rproxy(["-t", "-c", str(p.conf)], cwd="/")
    assert r.returncode == 0, r.stderr


def test_no_hooks(backend, rproxy):
    be, p = start(backend, rproxy, "-- no hook at all\nrproxy.other_field = 42\n")
    for i in range(3):
        r = get(p, "/plain%d?x=%d" % (i, i), headers=[("X-Keep", "k")])
        assert r.status == 200, r
    assert be.paths() == ["/plain%d?x=%d" % (i, i) for i in range(3)]
    assert be.requests[0].header("X-Keep") == "k"
    assert "lua:" not in p.stderr()
