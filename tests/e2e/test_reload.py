"""Hot reload (issue 5): what triggers one, what refuses one, and the generation
number that counts them.

- Triggers: SIGHUP; `rproxy -s reload -c FILE` (the pid comes from
  settings.pidfile); `settings.watch = true`, which reloads 250 ms after the
  last change to rproxy.lua or a module it requires from its directory or
  scripts/ (a burst of writes gives one reload; a file renamed over the
  configuration counts; other files give none).
- Validation comes first: a file with a syntax error, a runtime error, an
  unknown key or an unknown backend is refused with "reload refused" and its
  FILE:LINE in the error log, and requests keep the old behaviour;
  `rproxy -s reload` on such a file prints the error, exits non-zero and
  sends no signal. Opening a new listener is validated too (a busy port
  refuses the reload). Settings that only a restart applies (threads,
  pidfile...) are reported; the access log output changes at once.
- The generation (1 at start, +1 per successful reload, refusals not
  counted) shows in the access log ({GEN} in a template, "gen" in JSON), in
  rproxy.generation() (in hooks and at the top level of a worker's state) and
  in req.generation.
"""

import json
import os
import re
import signal
import socket
import threading
import time

import pytest

from proxy import run_rproxy
from test_reload_lib import Reloader, get, render, write_file

BASE = """
rproxy.settings { threads = 2, pidfile = "@PIDFILE@", grace = 5,
  log = { error = "stderr", level = "info",
          access = { output = "@ACCESS@", format = "{GEN} {STATUS} {URI}" } } }
rproxy.backend "a" { address = "@A@", connections = 2 }
rproxy.pool "app" { "a", balance = "roundrobin" }
rproxy.listen { address = "127.0.0.1:@PORT@" }
rproxy.vhost "test.local" { default = true, routes = { { to = "app" } } }
function rproxy.on_response(req, res) res:set_header("X-Policy", "@TAG@") end
"""


def policy_of(p, path="/"):
    r = get(p.port, path)
    assert r.status == 200 and r.complete, r
    return r.header("X-Policy")


def test_sighup_reloads(backend, rproxy):
    a = backend(name="a")
    p = rproxy(BASE, A=a.address, TAG="v1")
    rl = Reloader(p, 2)
    assert policy_of(p) == "v1"
    rl.write(BASE, A=a.address, TAG="v2")
    assert policy_of(p) == "v1", "the file changed but no reload was asked"
    rl.hup()
    assert rl.gen == 2
    for _ in range(6):                      # both workers
        assert policy_of(p) == "v2"
    rl.reload(BASE, A=a.address, TAG="v3")
    assert rl.gen == 3
    for _ in range(6):
        assert policy_of(p) == "v3"


def test_s_reload_signals_the_pid_of_the_pidfile(backend, rproxy):
    a = backend(name="a")
    p = rproxy(BASE, A=a.address, TAG="v1")
    rl = Reloader(p, 2)
    assert int(p.pidfile.read_text().strip()) == p.pid
    since = rl.mark()
    rl.write(BASE, A=a.address, TAG="v2")
    r = run_rproxy(["-s", "reload", "-c", str(p.conf)])
    assert r.returncode == 0, r.stdout + r.stderr
    assert ("reload sent to pid %d" % p.pid).encode() in r.stdout, r.stdout
    rl.wait_gen(2, since)
    for _ in range(6):
        assert policy_of(p) == "v2"


def test_s_reload_refuses_a_broken_file_without_signalling(backend, rproxy):
    a = backend(name="a")
    p = rproxy(BASE, A=a.address, TAG="v1")
    rl = Reloader(p, 2)
    broken = BASE.replace("rproxy.pool \"app\"", "local x = = 1\nrproxy.pool \"app\"")
    line = render(p, broken).split("\n").index("local x = = 1") + 1
    rl.write(broken, A=a.address, TAG="v2")
    r = run_rproxy(["-s", "reload", "-c", str(p.conf)])
    out = (r.stdout + r.stderr).decode("utf-8", "replace")
    assert r.returncode != 0, out
    assert re.search(r"rproxy\.lua:%d: .*'='" % line, out), out
    assert "reload sent" not in out
    time.sleep(0.5)
    assert "SIGHUP" not in p.stderr(), "a broken file was signalled anyway"
    assert policy_of(p) == "v1"
    # a missing pidfile setting is its own error
    nopid = BASE.replace('pidfile = "@PIDFILE@", ', "")
    rl.write(nopid, A=a.address, TAG="v2")
    r = run_rproxy(["-s", "reload", "-c", str(p.conf)])
    assert r.returncode != 0 and b"pidfile" in r.stderr, r


def _broken_variants(a_addr):
    """(label, file text, the line its error must name, a word of the message)."""
    out = []
    lines = BASE.strip("\n").split("\n")

    def at(i, text):
        ls = list(lines)
        ls.insert(i, text)
        return "\n".join(ls) + "\n"

    # BASE lines (1-based): 1-3 settings, 4 backend, 5 pool, 6 listen, 7 vhost, 8 hook
    out.append(("syntax", at(5, "rproxy.pool \"x\" { \"a\" ,, }"), 6, "near"))
    out.append(("runtime", at(5, "error(\"boom at load\")"), 6, "boom at load"))
    out.append(("unknown key", BASE.strip("\n").replace(
        "connections = 2 }", "conections = 2 }") + "\n", 4, "conections"))
    out.append(("unknown backend", BASE.strip("\n").replace(
        "{ { to = \"app\" } }", "{ { to = \"nope\" } }") + "\n", 7, "nope"))
    out.append(("nil index", at(4, "local t = nil; local y = t.field"), 5, "nil"))
    # the main thread's check stops a runaway top level: it names the line
    out.append(("endless loop", at(5, "while true do end"), 6, "endless loop"))
    out.append(("memory", at(3, 'local t = {} for i = 1, 1e7 do t[i] = ("x"):rep(64) .. i end'),
                None, "memory cap"))
    # access logs the start would refuse: the check refuses them, with the line
    out.append(("log token", at(5, 'rproxy.vhost "l.test" { log = { access = { output = '
                                   '"stderr", format = "{SRC} {NOPE}" } } }'), 6, "{NOPE}"))
    out.append(("log file", at(5, 'rproxy.vhost "l.test" { log = { access = { output = '
                                  '"/nonexistent-dir/a.log" } } }'), 6,
                "could not open access log"))
    return out


def test_broken_files_are_refused_and_the_old_config_serves(backend, rproxy):
    a = backend(name="a")
    p = rproxy(BASE, A=a.address, TAG="v1")
    rl = Reloader(p, 2)
    for label, text, line, word in _broken_variants(a.address):
        rl.write(text, A=a.address, TAG="broken")
        chk = run_rproxy(["-t", "-c", str(p.conf)])
        assert chk.returncode != 0, "%s: -t accepts it" % label
        msg = rl.hup_refused()
        assert line is None or re.search(r"rproxy\.lua:%d: " % line, msg), "%s: %s" % (label, msg)
        assert word in msg, "%s: %s" % (label, msg)
        for _ in range(4):
            assert policy_of(p) == "v1", label
    # refusals did not use up generation numbers
    rl.reload(BASE, A=a.address, TAG="v2")
    assert rl.gen == 2
    assert policy_of(p) == "v2"
    assert p.alive()


def test_endless_loop_in_the_workers_top_level_is_refused(backend, rproxy):
    """Top-level code the main thread's check runs through (generation 0) but
    each worker's state loops in: the workers stop it at the load's instruction
    budget, the reload is refused naming the line, the old configuration
    serves, and the process still stops on SIGTERM."""
    a = backend(name="a")
    p = rproxy(BASE, A=a.address, TAG="v1")
    rl = Reloader(p, 2)
    text = BASE.rstrip("\n") + "\nif rproxy.generation() > 0 then while true do end end\n"
    # the new listener settings must not reach a worker that stays on generation 1
    text = text.replace('rproxy.listen { address = "127.0.0.1:@PORT@" }',
                        'rproxy.listen { address = "127.0.0.1:@PORT@", x_headers = {} }')
    assert "x_headers = {}" in text
    rl.write(text, A=a.address, TAG="looping")
    p.signal(signal.SIGHUP)
    line = text.count("\n")
    end = time.monotonic() + 30
    while p.stderr().count("generation 2 not built; generation 1 goes on") < 2:
        assert time.monotonic() < end, p.stderr()[-2000:]
        time.sleep(0.1)
    assert re.search(r"rproxy\.lua:%d: the file's top-level code ran over \d+ Lua instructions "
                     r"\(an endless loop\?\)" % line, p.stderr()), p.stderr()[-2000:]
    for _ in range(4):
        assert policy_of(p) == "v1"
        assert a.requests[-1].header("X-Forwarded-For") == "127.0.0.1", a.requests[-1].head
    rl.gen += 1                            # the main thread validated it as generation 2
    rl.reload(BASE, A=a.address, TAG="v2")
    assert policy_of(p) == "v2"
    p.stop()
    assert not p.alive()


def test_refused_when_a_new_listener_cannot_bind(backend, rproxy):
    """Opening the sockets is part of the validation: a port held by another
    socket refuses the reload, nothing of the new file applies."""
    a = backend(name="a")
    p = rproxy(BASE, A=a.address, TAG="v1")
    rl = Reloader(p, 2)
    hog = socket.socket()
    hog.bind(("127.0.0.1", 0))
    hog.listen(1)
    try:
        two = BASE + 'rproxy.listen { address = "127.0.0.1:%d" }\n' % hog.getsockname()[1]
        rl.write(two, A=a.address, TAG="v2")
        rl.hup_refused()
        for _ in range(4):
            assert policy_of(p) == "v1"
    finally:
        hog.close()
    rl.hup()
    assert policy_of(p) == "v2"


GEN_LUA = """
rproxy.settings { threads = 2, grace = 5,
  log = { error = "stderr", level = "info",
          access = { output = "@ACCESS@", format = "{GEN} {STATUS} {URI}" } } }
rproxy.backend "a" { address = "@A@", connections = 1 }
rproxy.pool "app" { "a" }
rproxy.listen { address = "127.0.0.1:@PORT@" }
rproxy.listen { address = "127.0.0.1:@PORT2@",
                log = { access = { output = "@TMP@/json.log", format = "json" } } }
rproxy.vhost "test.local" { default = true, routes = { { to = "app" } } }
local TOP = rproxy.generation()            -- evaluated in each worker's new state
function rproxy.on_request(req)
    req:set_header("X-Req-Gen", tostring(req.generation))
end
function rproxy.on_response(req, res)
    res:set_header("X-Req-Gen", tostring(req.generation))
    res:set_header("X-Fn-Gen", tostring(rproxy.generation()))
    res:set_header("X-Top-Gen", tostring(TOP))
    res:set_header("X-Edit", "@EDIT@")
end
"""


def test_generation_visible_everywhere(backend, rproxy):
    a = backend(name="a")
    p = rproxy(GEN_LUA, nports=2, A=a.address, EDIT="0")
    rl = Reloader(p, 2)
    jlog = p.tmp / "json.log"
    expected = []                          # (uri, gen) in order, per log

    def check(gen, n=4):
        for i in range(n):
            for port, kind in ((p.port, "tmpl"), (p.ports[1], "json")):
                uri = "/g%d/%s/%d" % (gen, kind, i)
                r = get(port, uri)
                assert r.status == 200, r
                for h in ("X-Req-Gen", "X-Fn-Gen", "X-Top-Gen"):
                    assert r.header(h) == str(gen), (h, r.headers)
                sent = json.loads(r.body)
                assert ["X-Req-Gen", str(gen)] in sent["headers"], sent["headers"]
                expected.append((kind, uri, gen))

    check(1)
    rl.reload(GEN_LUA, A=a.address, EDIT="1")
    check(2)
    rl.write(GEN_LUA.replace("local TOP", "local TOP = = "), A=a.address, EDIT="x")
    rl.hup_refused()
    check(2)
    rl.reload(GEN_LUA, A=a.address, EDIT="2")
    rl.reload(GEN_LUA, A=a.address, EDIT="3")
    check(4)
    ntmpl = sum(1 for e in expected if e[0] == "tmpl")
    assert p.wait_access_lines(ntmpl)
    assert p.wait_access_lines(len(expected) - ntmpl, path=jlog)
    tmpl = {}
    for line in p.access_lines():
        g, status, uri = line.decode().split(" ")
        tmpl[uri] = int(g)
    js = {e["uri"]: e["gen"] for e in p.access_json(jlog)}
    for kind, uri, gen in expected:
        got = tmpl.get(uri) if kind == "tmpl" else js.get(uri)
        assert got == gen, (kind, uri, got, gen)


WATCH_MAIN = """
local policy = require "policy"          -- next to rproxy.lua
local tag = require "tag"                -- in scripts/
rproxy.settings { threads = 2, grace = 5, watch = true,
  log = { error = "stderr", level = "info" } }
rproxy.backend "a" { address = "@A@", connections = 1 }
rproxy.pool "app" { "a" }
rproxy.listen { address = "127.0.0.1:@PORT@" }
rproxy.vhost "test.local" { default = true, routes = { { to = "app" } } }
function rproxy.on_response(req, res)
    res:set_header("X-Main", "@MAIN@")
    res:set_header("X-Policy", policy.name)
    res:set_header("X-Tag", tag.name)
    res:set_header("X-Gen", tostring(req.generation))
end
"""


def _state(p):
    r = get(p.port)
    assert r.status == 200, r
    return (r.header("X-Main"), r.header("X-Policy"), r.header("X-Tag"), r.header("X-Gen"))


def test_watch_reloads_on_changes_to_the_file_and_its_modules(backend, rproxy, tmpdir_rp):
    a = backend(name="a")
    os.makedirs(os.path.join(tmpdir_rp, "scripts"))
    polf = os.path.join(tmpdir_rp, "policy.lua")
    tagf = os.path.join(tmpdir_rp, "scripts", "tag.lua")
    write_file(polf, 'return { name = "p1" }\n')
    write_file(tagf, 'return { name = "t1" }\n')
    p = rproxy(WATCH_MAIN, A=a.address, MAIN="m1")
    rl = Reloader(p, 2)
    assert _state(p) == ("m1", "p1", "t1", "1")

    def edit_and_wait(path, text, gen):
        since = rl.mark()
        t0 = time.monotonic()
        write_file(path, text)
        ms, seen = rl.wait_gen(gen, since)
        # debounced: the reload starts 250 ms after the (first) change
        assert ms >= 240, "reloaded %.1f ms after the change" % ms
        assert seen - t0 >= 0.24
        return ms

    edit_and_wait(p.conf, render(p, WATCH_MAIN, A=a.address, MAIN="m2"), 2)
    assert _state(p) == ("m2", "p1", "t1", "2")
    edit_and_wait(polf, 'return { name = "p2" }\n', 3)
    assert _state(p) == ("m2", "p2", "t1", "3")
    edit_and_wait(tagf, 'return { name = "t2" }\n', 4)
    assert _state(p) == ("m2", "p2", "t2", "4")

    # a burst of writes, each well within 250 ms of the last: one reload
    since = rl.mark()
    for i in range(3, 8):
        write_file(polf, 'return { name = "p%d" }\n' % i)
        time.sleep(0.03)
    rl.wait_gen(5, since)
    time.sleep(0.8)
    rl.read_new()
    gens = [e[1] for e in rl.events[since:] if e[0] == "all"]
    assert gens == [5], "a burst of 5 writes gave the reloads %r" % gens
    assert _state(p) == ("m2", "p7", "t2", "5")

    # a broken module is refused, with its own file:line; the old one serves
    since = rl.mark()
    write_file(tagf, 'return { name = = "t3" }\n')
    ev = rl.wait_event(since, "refused")
    assert re.search(r"scripts/tag\.lua:1: ", ev[2]), ev[2]
    assert _state(p) == ("m2", "p7", "t2", "5")
    edit_and_wait(tagf, 'return { name = "t3" }\n', 6)
    assert _state(p) == ("m2", "p7", "t3", "6")

    # an editor's save: a temporary file renamed over rproxy.lua
    since = rl.mark()
    tmp = str(p.conf) + ".swp"
    write_file(tmp, render(p, WATCH_MAIN, A=a.address, MAIN="m3"))
    os.replace(tmp, str(p.conf))
    rl.wait_gen(7, since)
    assert _state(p) == ("m3", "p7", "t3", "7")

    # files that are not Lua do not reload
    since = rl.mark()
    write_file(os.path.join(tmpdir_rp, "notes.txt"), "hello\n")
    write_file(os.path.join(tmpdir_rp, "scripts", "data.json"), "{}\n")
    time.sleep(0.8)
    rl.read_new()
    assert not rl.events[since:], rl.events[since:]
    assert _state(p) == ("m3", "p7", "t3", "7")


def test_watch_off_by_default(backend, rproxy):
    a = backend(name="a")
    p = rproxy(BASE, A=a.address, TAG="v1")
    rl = Reloader(p, 2)
    since = rl.mark()
    rl.write(BASE, A=a.address, TAG="v2")
    time.sleep(0.8)
    rl.read_new()
    assert not rl.events[since:]
    assert policy_of(p) == "v1"


def test_restart_only_settings_are_reported(backend, rproxy):
    """threads, pidfile, max_nofile and the error log cannot change in a
    running process: a reload that changes them applies the rest and says so
    (server_warn_restart_only)."""
    a = backend(name="a")
    p = rproxy(BASE, A=a.address, TAG="v1")
    rl = Reloader(p, 2)
    rl.reload(BASE.replace("threads = 2", "threads = 3"), A=a.address, TAG="v2")
    assert policy_of(p) == "v2"
    assert "reload: all 2 workers on generation 2" in p.stderr()
    rl.reload(BASE.replace('pidfile = "@PIDFILE@"', 'pidfile = "@TMP@/other.pid"'),
              A=a.address, TAG="v3")
    assert policy_of(p) == "v3"
    err = p.stderr()
    assert "pidfile, max_nofile and log.error/level change at the next restart" in err
    assert "settings.threads changes at the next restart" in err, \
        "threads 2 -> 3 was not reported: the reload copies the running value into the " \
        "new snapshot before comparing them"


def test_access_log_change_applies(backend, rproxy):
    a = backend(name="a")
    p = rproxy(BASE, A=a.address, TAG="v1")
    rl = Reloader(p, 2)
    assert policy_of(p, "/one") == "v1"
    moved = BASE.replace('output = "@ACCESS@", format = "{GEN} {STATUS} {URI}"',
                         'output = "@TMP@/second.log", format = "json"')
    rl.reload(moved, A=a.address, TAG="v2")
    assert policy_of(p, "/two") == "v2"
    second = p.tmp / "second.log"
    assert p.wait_access_lines(1, path=second)
    assert [e["uri"] for e in p.access_json(second)] == ["/two"]
    assert [l.decode() for l in p.access_lines()] == ["1 200 /one"]


RACE = """
rproxy.settings { threads = 1, grace = 5, pidfile = "@PIDFILE@",
  lua = { instructions = 1000000000 }, log = { error = "stderr", level = "info" } }
rproxy.backend "a" { address = "@A@" }
rproxy.pool "app" { "a" }
rproxy.listen { address = "127.0.0.1:@PORT@" }
rproxy.vhost "test.local" { default = true, routes = { { to = "app" } } }
function rproxy.on_request(req)
    if req.path == "/busy" then
        local t = os.clock()
        while os.clock() - t < 1.0 do end
        return req:respond(200, "busy done")
    end
    return req:respond(200, "@TAG@ gen=" .. rproxy.generation())
end
"""


@pytest.mark.parametrize("then", ["valid", "broken"])
def test_workers_run_the_bytes_the_reload_checked(backend, rproxy, then):
    """The only worker is busy in a hook when SIGHUP comes; the main thread
    checks version TWO; the file changes again before the worker switches.
    The worker runs TWO all the same, the bytes that were checked: it used to
    read the file again, and ran a version nobody checked (found by
    fuzzing), or failed on a broken one and stayed on generation 1 while the
    listeners had moved on."""
    a = backend(name="a")
    p = rproxy(RACE, A=a.address, TAG="ONE")
    assert get(p.port, "/who").body == b"ONE gen=1"
    busy = []
    t = threading.Thread(target=lambda: busy.append(get(p.port, "/busy").body))
    t.start()
    time.sleep(0.3)                        # the worker is in the hook now
    rl = Reloader(p, 1)
    rl.write(RACE, A=a.address, TAG="TWO")
    since = rl.mark()
    p.signal(signal.SIGHUP)
    end = time.monotonic() + 10
    while "generation 2 validated" not in p.stderr():
        assert time.monotonic() < end, p.stderr()[-2000:]
        time.sleep(0.02)
    if then == "valid":
        rl.write(RACE, A=a.address, TAG="THREE")
    else:
        rl.write(RACE + "\nthis is not Lua\n", A=a.address, TAG="TWO")
    t.join(10)
    assert busy == [b"busy done"]
    rl.wait_event(since, "all", timeout=10, gen=2)
    assert get(p.port, "/who").body == b"TWO gen=2"
