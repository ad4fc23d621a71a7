"""rproxy.shared.NAME: dictionaries shared by every worker thread
(`rproxy.shared_dict "name" { size = "1m" }`): the atomic counter under load
from two workers, and the contract of get/set/add/incr/delete/keys/free_space/
flush_all (lua/lua_shared.c), TTLs included."""

import threading
import time

from httpclient import RawClient, req
from luautil import APP_ROUTES, get, starter

HEAD = """
rproxy.settings { threads = @THREADS@, grace = 2, log = { error = "stderr", level = "info" } }
rproxy.shared_dict "counters" { size = "1m" }
rproxy.shared_dict "small" { size = "128k" }
""" + APP_ROUTES

start = starter(HEAD)


COUNTER_LUA = r"""
local d = rproxy.shared.counters
function rproxy.on_request(req)
    local n, err = d:incr("hits", 1, 0)
    if not n then return req:respond(500, "incr: " .. tostring(err)) end
    if req.path == "/count" then return req:respond(200, tostring(n)) end
end
function rproxy.on_response(req, res)
    res:set_header("X-Worker", tostring(rproxy.worker_id()))
end
"""


def test_counter_from_all_workers(backend, rproxy):
    be, p = start(backend, rproxy, COUNTER_LUA, threads=2)
    # both workers listen before the hammering starts (SO_REUSEPORT spreads
    # connections over them); these requests count too
    warm = 0
    workers = set()
    end = time.monotonic() + 10
    while workers != {"0", "1"} and time.monotonic() < end:
        r = get(p, "/warm")
        warm += 1
        assert r.status == 200, r
        workers.add(r.header("X-Worker"))
    assert workers == {"0", "1"}, workers

    failures = []
    seen = []
    lock = threading.Lock()

    def client(k):
        c = RawClient(p.port)
        mine = set()
        try:
            for i in range(50):
                c.send(req("GET", "/hit/%d/%d" % (k, i)))
                r = c.read_response()
                if r is None or r.status != 200:
                    failures.append((k, i, r))
                    return
                mine.add(r.header("X-Worker"))
        finally:
            c.close()
            with lock:
                seen.extend(mine)

    ts = [threading.Thread(target=client, args=(k,)) for k in range(20)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not failures, failures[:3]
    assert set(seen) == {"0", "1"}, "one worker served every hammering connection"
    r = get(p, "/count")
    assert r.status == 200
    assert int(r.body) == warm + 1000 + 1, (r.body, warm)   # + this read's own incr
    r = get(p, "/count")
    assert int(r.body) == warm + 1000 + 2


CONTRACT_LUA = r"""
local d, small = rproxy.shared.counters, rproxy.shared.small
local fails = {}
local function check(name, got, want)
    if got ~= want or math.type(got) ~= math.type(want) then
        fails[#fails + 1] = string.format("%s: got %s (%s), want %s (%s)", name, tostring(got),
                                          math.type(got) or type(got), tostring(want),
                                          math.type(want) or type(want))
    end
end
local function errmsg(f, ...)
    local ok, err = pcall(f, ...)
    return ok and "no error" or tostring(err)
end
local function pack(...)
    local t = table.pack(...)
    return tostring(t[1]) .. "," .. tostring(t[2])
end

local function contract()
    d:flush_all()
    check("tostring", tostring(d), "rproxy.shared_dict 'counters'")
    check("unknown dict", rproxy.shared.nope, nil)
    check("same box", rproxy.shared.counters, d)
    check("get missing", d:get("missing"), nil)
    check("set string", d:set("s", "text"), true)
    check("get string", d:get("s"), "text")
    d:set("i", 42)       check("integer", d:get("i"), 42)
    d:set("f", 1.5)      check("float", d:get("f"), 1.5)
    d:set("n", -7.0)     check("integral float comes back an integer", d:get("n"), -7)
    d:set("t", true)     check("true", d:get("t"), true)
    d:set("b", false)    check("false", d:get("b"), false)
    d:set("bin\0key", "a\0b\255") check("binary", d:get("bin\0key"), "a\0b\255")
    check("set nil", d:set("s", nil), true)
    check("set nil deletes", d:get("s"), nil)
    local big = string.rep("0123456789abcdef", 8192)            -- 128 KiB
    d:set("big", big)    check("big value", d:get("big"), big)
    check("big again", d:get("big"), big)
    -- add
    check("add new", pack(d:add("a", 1)), "true,nil")
    check("add existing", pack(d:add("a", 2)), "false,exists")
    check("add kept the old", d:get("a"), 1)
    -- incr
    check("incr missing", pack(d:incr("c")), "nil,not found")
    check("incr init", d:incr("c", 5, 10), 15)
    check("incr default delta", d:incr("c"), 16)
    check("incr negative", d:incr("c", -20), -4)
    check("incr fraction", d:incr("c", 0.5), -3.5)
    check("incr init ignored when present", d:incr("c", 1, 1000), -2.5)
    check("incr string", pack(d:incr("bin\0key", 1)), "nil,not a number")
    check("incr boolean", pack(d:incr("t", 1)), "nil,not a number")
    check("incr NaN delta", (pcall(d.incr, d, "c", 0/0)), false)
    check("incr infinite init", (pcall(d.incr, d, "nc", 1, math.huge)), false)
    check("incr kept the counter", d:incr("c", 0), -2.5)
    -- delete
    check("delete present", d:delete("a"), true)
    check("delete missing", d:delete("a"), false)
    check("deleted", d:get("a"), nil)
    -- keys: most recently used first
    d:flush_all()
    check("flushed", #d:keys(), 0)
    d:set("k1", 1) d:set("k2", 2) d:set("k3", 3)
    d:get("k1")
    local ks = d:keys()
    check("keys count", #ks, 3)
    check("keys mru first", ks[1], "k1")
    check("keys max", #d:keys(2), 2)
    check("keys all", #d:keys(0), 3)
    check("keys huge max", #d:keys(2^31), 3)
    -- free_space
    local free = d:free_space()
    check("free_space integer", math.type(free), "integer")
    d:set("fill", string.rep("x", 100000))
    check("free_space shrinks", d:free_space() < free, true)
    d:flush_all()
    check("flush_all", d:get("k1"), nil)
    -- too large for the dict: refused, nothing changes
    small:set("keep", "me")
    check("too large", pack(small:set("huge", string.rep("x", 200000))), "nil,too large")
    check("too large add", pack(small:add("huge", string.rep("x", 200000))), "nil,too large")
    check("unchanged", small:get("keep"), "me")
    -- misuse raises
    check("number key", errmsg(d.get, d, 1):match("string expected") ~= nil, true)
    check("table value", errmsg(d.set, d, "k", {}):match("string, number, boolean or nil") ~= nil, true)
    check("negative ttl", errmsg(d.set, d, "k", 1, -1):match("ttl") ~= nil, true)
    check("long key", errmsg(d.set, d, string.rep("k", 65536), 1):match("key too long") ~= nil, true)
    check("incr bad init", errmsg(d.incr, d, "k", 1, "x"):match("number expected") ~= nil, true)
    check("not a dict", errmsg(d.get, {}, "k"):match("rproxy.shared_dict expected") ~= nil, true)
    return #fails == 0 and "ok" or table.concat(fails, "\n")
end

function rproxy.on_request(req)
    if req.path == "/contract" then return req:respond(200, contract()) end
    if req.path == "/ttl/set" then
        d:set("short", "v", 0.3)
        d:set("long", "v", 60)
        d:set("forever", "v")
        d:delete("ctr")
        d:incr("ctr", 1, 0, 0.3)
        d:incr("ctr", 1)                                     -- keeps its ttl
        return req:respond(200, tostring(d:get("short")) .. "," .. tostring(d:get("ctr")))
    end
    if req.path == "/ttl/get" then
        return req:respond(200, table.concat({ tostring(d:get("short")), tostring(d:get("long")),
                                               tostring(d:get("forever")), tostring(d:get("ctr")),
                                               tostring(d:add("short", "again")) }, ","))
    end
    if req.path == "/set" then d:set("shared-key", req.query) return req:respond(200, "set") end
    if req.path == "/get" then
        return req:respond(200, tostring(d:get("shared-key")),
                           { ["X-Worker"] = tostring(req.worker_id) })
    end
end
"""


def test_dict_contract(backend, rproxy):
    be, p = start(backend, rproxy, CONTRACT_LUA)
    r = get(p, "/contract")
    assert r.status == 200 and r.body == b"ok", r.body.decode()
    r = get(p, "/contract")                      # the second run sees the first's leftovers
    assert r.status == 200 and r.body == b"ok", r.body.decode()


def test_dict_ttl(backend, rproxy):
    be, p = start(backend, rproxy, CONTRACT_LUA)
    assert get(p, "/ttl/set").body == b"v,2"
    time.sleep(0.7)
    assert get(p, "/ttl/get").body == b"nil,v,v,nil,true"


def test_dict_is_shared_by_workers(backend, rproxy):
    be, p = start(backend, rproxy, CONTRACT_LUA, threads=2)
    assert get(p, "/set?hello").body == b"set"
    workers = set()
    for i in range(40):
        r = get(p, "/get")
        assert r.body == b"hello", r.body
        workers.add(r.header("X-Worker"))
    assert workers == {"0", "1"}, workers
