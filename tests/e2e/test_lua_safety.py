"""Safety of the Lua layer: a hook error, a runaway loop (instruction budget),
memory exhaustion (the state's cap), header injection attempts and a request
object kept past its hook each answer 500 (or raise inside the script) with a
log line, and the worker goes on serving: every case is followed by a request
that must succeed."""

import re
import time

import pytest

from httpclient import RawClient, exchange, req
from luautil import APP_ROUTES, assert_config_ok, get, starter, wait_log

HEAD = """
rproxy.settings { threads = 1, grace = 2, log = { error = "stderr", level = "info" },
                  lua = { instructions = 100000, memory = "16m" } }
""" + APP_ROUTES

start = starter(HEAD)


def line_of(p, text):
    """The line number of text in the proxy's rproxy.lua."""
    for i, line in enumerate(p.conf.read_text().split("\n"), start=1):
        if text in line:
            return i
    raise AssertionError(text)


def assert_serves(p, be):
    n = len(be.requests)
    r = get(p, "/healthy")
    assert r.status == 200, r
    assert len(be.requests) == n + 1


ERRORS_LUA = r"""
function rproxy.on_request(req)
    local p = req.path
    if p == "/error" then error("hook failed on purpose") end
    if p == "/error-table" then error({ code = 1 }) end
    if p == "/index-nil" then local t = nil; return t.field end
    if p == "/loop" then while true do end end
    if p == "/mem-rep" then local s = string.rep("x", 64 * 1024 * 1024) end
    if p == "/mem-double" then local s = "x" for i = 1, 40 do s = s .. s end end
    if p == "/mem-ok" then
        local s = string.rep("y", 4 * 1024 * 1024)
        return req:respond(200, tostring(#s))
    end
end
function rproxy.on_response(req, res)
    if req.path == "/response-loop" then while true do end end
end
"""


def test_hook_error_answers_500_with_file_line_traceback(backend, rproxy):
    be, p = start(backend, rproxy, ERRORS_LUA)
    c = RawClient(p.port)
    c.send(req("GET", "/error"))
    r = c.read_response()
    assert r.status == 500 and r.body == b"500 Internal Server Error\n", r
    c.send(req("GET", "/same-connection"))                 # keep-alive survives
    r = c.read_response()
    assert r is not None and r.status == 200, r
    c.close()
    n = line_of(p, "hook failed on purpose")
    assert wait_log(p, "lua: on_request: ")
    err = p.stderr()
    assert re.search(r"\[error\] lua: on_request: \S*rproxy\.lua:%d: hook failed on purpose\n"
                     r"stack traceback:\n" % n, err), err[-2000:]
    assert get(p, "/error-table").status == 500
    assert wait_log(p, "(error object is a table value)")
    assert get(p, "/index-nil").status == 500
    assert wait_log(p, "attempt to index a nil value (local 't')")
    assert_serves(p, be)
    assert [q.target for q in be.requests] == ["/same-connection", "/healthy"]


def test_instruction_budget(backend, rproxy):
    be, p = start(backend, rproxy, ERRORS_LUA)
    for path, hook in (("/loop", "on_request"), ("/response-loop", "on_response")):
        t0 = time.monotonic()
        r = get(p, path)
        assert r.status == 500, (path, r)
        assert time.monotonic() - t0 < 5
        assert wait_log(p, "lua: %s: " % hook)
        assert_serves(p, be)
    n = line_of(p, "/loop")
    assert re.search(r"lua: on_request: \S*rproxy\.lua:%d: instruction budget exceeded "
                     r"\(settings\.lua\.instructions = 100000\)" % n, p.stderr()), p.stderr()


def test_memory_cap(backend, rproxy):
    be, p = start(backend, rproxy, ERRORS_LUA)
    for path in ("/mem-rep", "/mem-double", "/mem-rep"):
        r = get(p, path)
        assert r.status == 500, (path, r)
        assert wait_log(p, "memory cap reached (settings.lua.memory = 16777216 bytes)")
        r = get(p, "/mem-ok")                                  # the memory came back
        assert r.status == 200 and r.body == b"4194304", (path, r)
        assert_serves(p, be)
    assert p.stderr().count("memory cap reached") == 3


INJECT_LUA = r"""
function rproxy.on_request(req)
    local p = req.path
    if p == "/set-crlf" then req:set_header("X-A", "v\r\nEvil: 1") end
    if p == "/add-lf" then req:add_header("X-A", "v\nEvil: 1") end
    if p == "/set-cr" then req:set_header("X-A", "v\rEvil: 1") end
    if p == "/set-nul" then req:set_header("X-A", "v\0Evil") end
    if p == "/set-ctl" then req:set_header("X-A", "v\11w\127Evil\1") end
    if p == "/name-space" then req:set_header("X A", "v") end
    if p == "/name-crlf" then req:set_header("Evil: 1\r\nX-A", "v") end
    if p == "/name-colon" then req:add_header("X-A:", "v") end
    if p == "/name-empty" then req:set_header("", "v") end
    if p == "/respond-value" then return req:respond(200, "x", { ["X-A"] = "v\r\nEvil: 1" }) end
    if p == "/respond-list" then return req:respond(200, "x", { ["X-A"] = { "ok", "v\nEvil: 1" } }) end
    if p == "/respond-name" then return req:respond(200, "x", { ["Evil: 1\r\nX-A"] = "v" }) end
    if p == "/respond-numkey" then return req:respond(200, "x", { "v" }) end
    if p == "/redirect" then return req:redirect("/x\r\nEvil: 1") end
    if p == "/uri" then req.uri = "/x HTTP/1.1\r\nEvil: 1\r\n\r\nGET /y" end
    if p == "/query" then req.query = "a\r\nEvil: 1" end
    if p == "/path" then req.path = "/x\nEvil: 1" end
end
function rproxy.on_response(req, res)
    if req.path == "/res-set" then res:set_header("X-A", "v\r\nEvil: 1") end
    if req.path == "/res-add" then res:add_header("Evil: 1\r\nX", "v") end
end
"""

INJECTIONS = ["/set-crlf", "/add-lf", "/set-cr", "/set-nul", "/set-ctl", "/name-space",
              "/name-crlf",
              "/name-colon", "/name-empty", "/respond-value", "/respond-list", "/respond-name",
              "/respond-numkey", "/redirect", "/uri", "/query", "/path", "/res-set", "/res-add"]


def test_header_injection_is_refused(backend, rproxy):
    be, p = start(backend, rproxy, INJECT_LUA)
    for path in INJECTIONS:
        c = RawClient(p.port)
        c.send(req("GET", path, headers=[("Connection", "close")]))
        c.wait_closed(5)
        data = bytes(c.buf)
        c.close()
        assert data.startswith(b"HTTP/1.1 500 "), (path, data[:300])
        assert b"evil" not in data.lower(), (path, data)
        assert data.count(b"HTTP/1.1") == 1, (path, data)
        assert_serves(p, be)
    for q in be.requests + be.heads:
        assert b"evil" not in q.head.lower(), q.head
    assert not be.errors, be.errors
    err = p.stderr()
    assert err.count("invalid header field") >= 12, err[-3000:]
    assert "redirect(): invalid location" in err
    assert "req.uri: expected an absolute path" in err
    assert "req.query: expected visible ASCII" in err
    assert "req.path: expected an absolute path" in err


STALE_LUA = r"""
local kept, kept_res, kept_iter, timer_msg
rproxy.every(0.05, function()
    if kept ~= nil and timer_msg == nil then
        local ok, err = pcall(function() return kept.method end)
        timer_msg = tostring(ok) .. ":" .. tostring(err)
    end
end)
local function try(f)
    local ok, err = pcall(f)
    return tostring(ok) .. ":" .. tostring(err):gsub("^.-:%d+: ", "")
end
function rproxy.on_request(req)
    if req.path == "/keep" then
        kept, kept_iter = req, req:headers()
        return
    end
    if req.path == "/use" then
        return req:respond(200, table.concat({
            try(function() return kept.method end),
            try(function() kept:set_header("X-A", "b") end),
            try(function() return kept_iter() end),
            try(function() return kept_res.status end),
            try(function() return kept_res:header("x") end),
            tostring(kept),
            tostring(timer_msg):gsub(":.-:%d+: ", ":"),
        }, "\n"))
    end
    if req.path == "/unguarded" then return kept.path end
end
function rproxy.on_response(req, res)
    if req.path == "/keep" then kept_res = res end
end
"""


def test_request_object_used_after_its_hook(backend, rproxy):
    be, p = start(backend, rproxy, STALE_LUA)
    assert get(p, "/keep").status == 200
    time.sleep(0.3)                                  # the timer has run meanwhile
    r = get(p, "/use")
    assert r.status == 200, r
    lines = r.body.decode().split("\n")
    stale = "false:request object used after its hook returned"
    assert lines[0] == stale, lines
    assert lines[1] == stale, lines
    assert lines[2] == stale, lines
    assert lines[3] == "false:response object used after its hook returned", lines
    assert lines[4] == "false:response object used after its hook returned", lines
    assert lines[5] == "rproxy.request (stale)", lines
    assert lines[6] == stale, lines                   # from rproxy.every
    r = get(p, "/unguarded")                          # not caught: a 500, logged
    assert r.status == 500
    assert wait_log(p, "request object used after its hook returned")
    assert_serves(p, be)


BYPASS_LUA = r"""
local spin = coroutine.wrap(function()
    while true do
        for i = 1, 3000000 do end
        coroutine.yield()
    end
end)
function rproxy.on_request(req)
    local p = req.path
    if p == "/pcall" then
        for i = 1, 30 do pcall(function() while true do end end) end
    end
    if p == "/coroutine-from-load" then spin() end
    if p == "/coroutines" then
        for k = 1, 100 do coroutine.wrap(function() for i = 1, 50000 do end end)() end
    end
end
"""


def test_budget_not_defeated_by_pcall(backend, rproxy):
    """settings.lua.instructions bounds a hook call. Regression: the count
    hook raised once per `instructions` instructions, and a script that caught
    the error with pcall simply went on (here 30 times the budget, then a 200;
    `while true do pcall(...) end` hung the worker for ever). Once the budget
    is spent the hook must keep raising until rp_lua_call() returns."""
    be, p = start(backend, rproxy, BYPASS_LUA)
    r = get(p, "/pcall")
    assert r.status == 500, r
    assert wait_log(p, "instruction budget exceeded")
    assert_serves(p, be)


@pytest.mark.parametrize("path", ["/coroutine-from-load", "/coroutines"])
def test_budget_applies_to_coroutines(backend, rproxy, path):
    """The budget must cover coroutines too. Regression: rp_lua_call() set
    the count hook on the main thread only; a coroutine created while
    rproxy.lua loaded (no hook then) ran unbounded when a hook resumed it, and
    each coroutine created inside a hook started a fresh count."""
    be, p = start(backend, rproxy, BYPASS_LUA)
    r = get(p, path)
    assert r.status == 500, (path, r)
    assert wait_log(p, "instruction budget exceeded")
    assert_serves(p, be)


GUARDS_LUA = r"""
local dbg = require "debug"
function rproxy.on_request(req)
    local p = req.path
    if p == "/sethook" then
        -- would remove the instruction budget, then spin for ever
        local ok = pcall(function() debug.sethook() end)
        if ok then while true do end end
        return req:respond(200, "sethook refused")
    elseif p == "/setupvalue" then
        local ok = pcall(function() return debug.setupvalue(rproxy.now, 1, "x") end)
        return req:respond(200, ok and "setupvalue ran" or "setupvalue refused")
    elseif p == "/exit" then
        os.exit(1)
    elseif p == "/traceback" then
        return req:respond(200, (debug.traceback("tb") or "") ..
                           (dbg == debug and " same" or " different") ..
                           (debug.getinfo(1, "S").short_src and " info" or ""))
    end
end
"""


@pytest.mark.parametrize("path,want", [("/sethook", b"sethook refused"),
                                       ("/setupvalue", b"setupvalue refused")])
def test_debug_library_cannot_lift_the_guards(backend, rproxy, path, want):
    """debug.sethook would remove the instruction budget (the loop after it
    would hang the worker) and debug.setupvalue could hand rproxy's C
    functions values they never expect: a policy's debug library has only
    traceback and getinfo."""
    be, p = start(backend, rproxy, GUARDS_LUA)
    r = get(p, path)
    assert r.status == 200 and r.body == want, r
    assert_serves(p, be)


def test_os_exit_raises(backend, rproxy):
    be, p = start(backend, rproxy, GUARDS_LUA)
    r = get(p, "/exit")
    assert r.status == 500, r
    assert wait_log(p, "os.exit is not available")
    assert p.alive(), "os.exit in a hook ended the proxy"
    assert_serves(p, be)


def test_debug_traceback_and_getinfo_remain(backend, rproxy):
    be, p = start(backend, rproxy, GUARDS_LUA)
    r = get(p, "/traceback")
    assert r.status == 200 and r.body.startswith(b"tb"), r
    assert r.body.endswith(b" same info"), r.body


BYTECODE_LUA = r"""
local dir = debug.getinfo(1, "S").source:match("^@(.*)/")
local BC = string.dump(function() return "from bytecode" end)
local BCFILE = dir .. "/bc_mod.lua"
local f = assert(io.open(BCFILE, "wb"))
f:write(BC)
f:close()
local function show(...)
    local t = table.pack(...)
    for i = 1, t.n do t[i] = tostring(t[i]) end
    return table.concat(t, "|")
end
function rproxy.on_request(req)
    local p = req.path
    if p == "/load" then
        return req:respond(200, show(load(BC)))
    elseif p == "/load-b" then
        return req:respond(200, show(load(BC, "bc", "b")))
    elseif p == "/loadfile" then
        return req:respond(200, show(loadfile(BCFILE, "bt")))
    elseif p == "/dofile" then
        return req:respond(200, show(pcall(dofile, BCFILE)))
    elseif p == "/require" then
        return req:respond(200, show(pcall(require, "bc_mod")))
    elseif p == "/text" then
        local a = load("return 40 + 2")
        local b = load("return x", "c", "t", { x = 7 })
        local c = load("return y", "c", "bt")
        return req:respond(200, show(a(), b(), c()))
    end
end
"""


@pytest.mark.parametrize("path", ["/load", "/load-b", "/loadfile", "/dofile", "/require"])
def test_precompiled_chunks_are_refused(backend, rproxy, path):
    """Lua does not verify bytecode, and a crafted chunk can corrupt memory:
    load, loadfile, dofile and require take Lua source only."""
    be, p = start(backend, rproxy, BYTECODE_LUA)
    r = get(p, path)
    assert r.status == 200, r
    assert b"binary chunk" in r.body, r.body
    assert b"from bytecode" not in r.body, r.body
    assert_serves(p, be)


def test_source_chunks_still_load(backend, rproxy):
    be, p = start(backend, rproxy, BYTECODE_LUA)
    r = get(p, "/text")
    assert r.status == 200 and r.body == b"42|7|nil", r.body


def test_runaway_timer_is_stopped(backend, rproxy):
    be, p = start(backend, rproxy, r"""
rproxy.every(0.05, function() while true do end end)
""")
    assert wait_log(p, "lua: rproxy.every: ")
    assert "instruction budget exceeded" in p.stderr()
    for i in range(3):
        assert_serves(p, be)


FILL_LUA = r"""
local hog, n, FILLED = {}, 0, "filled"
for i = 1, 100000 do hog[i] = false end          -- room for every piece: no table growth later
local function grab(size) hog[n + 1] = string.rep("x", size); n = n + 1 end
local function grab_table() hog[n + 1] = {}; n = n + 1 end
local function grab_short() hog[n + 1] = tostring(n); n = n + 1 end
function rproxy.on_request(req)
    if req.path == "/fill" then
        -- take what the cap leaves, down to the last few bytes, and keep it
        local size = 1 << 20
        while size >= 64 do
            if not pcall(grab, size) then size = size // 2 end
        end
        while n < 99000 and pcall(grab_table) do end
        while n < 99000 and pcall(grab_short) do end
        return req:respond(200, FILLED)
    end
end
function rproxy.on_log(req, res) end
"""


def test_memory_cap_reached_outside_a_hook_call(backend, rproxy):
    """A state left at its memory cap by a hook (a cache that grew to fill it)
    must cost at most that worker's Lua answers (500s), never the process.
    Regression: C pushed objects before lua_pcall (rp_lua_response_enter's
    lua_newuserdatauv in proxy_hook for on_response/on_log, and
    rp_lua_request_enter's box and luaL_ref): a memory error there was
    unprotected, and ls_panic() logged "lua: unprotected error: not enough
    memory (this is a bug)" and abort()ed the whole process."""
    be = backend()
    p = rproxy(HEAD.replace('memory = "16m"', 'memory = "8m"') + FILL_LUA, B1=be.address)
    assert_config_ok(p)
    r, c = exchange(p.port, req("GET", "/fill"))
    c.close()
    time.sleep(0.2)
    assert p.alive(), "rproxy died: " + p.stderr()[-1000:]
    assert r is not None and r.status in (200, 500), r
    r = get(p, "/next")
    assert r.status in (200, 500), r
    assert p.alive()
    assert "unprotected error" not in p.stderr()


HOST_EDITS_LUA = r"""
function rproxy.on_request(req)
    local p = req.path
    if p == "/remove" then req:remove_header("Host") end
    if p == "/set" then req:set_header("Host", "new.example") end
    if p == "/readd" then req:remove_header("host"); req:add_header("Host", "again.example") end
    if p == "/add-second" then req:add_header("Host", "second.example") end
end
"""


def test_host_edits_keep_one_host(backend, rproxy):
    """However a hook edits Host, the backend gets exactly one: removed, the
    backend's address (as for an HTTP/1.0 request without one); replaced, the
    new one; a second one added is refused (500), never sent."""
    be, p = start(backend, rproxy, HOST_EDITS_LUA)
    want = {"/remove": be.address, "/set": "new.example", "/readd": "again.example"}
    for path, host in want.items():
        r = get(p, path)
        assert r.status == 200, (path, r)
        got = [q for q in be.requests if q.path == path][-1]
        assert got.header_all("Host") == [host], (path, got.head)
    r = get(p, "/add-second")
    assert r.status == 500, r
    assert not [q for q in be.requests if q.path == "/add-second"]
    assert wait_log(p, "req:add_header(): the request has a Host")
    assert_serves(p, be)
