"""Config check: `rproxy -t -c FILE` says ok or names FILE:LINE of the mistake,
and a start-up with a broken file fails with the same message."""

import os
import re
import subprocess

import pytest

from backends import free_port
from proxy import run_rproxy

TEMPLATE = """\
-- rproxy.lua for the config check tests
rproxy.settings { threads = 1, grace = 1 }
rproxy.backend "app1" { address = "127.0.0.1:9001" }

%s
rproxy.pool "app" { "app1", balance = "roundrobin" }
rproxy.listen { address = "127.0.0.1:%d" }
rproxy.vhost "example.com" { default = true, routes = { { to = "app" } } }
"""

GOOD_LINE5 = 'rproxy.backend "app2" { address = "127.0.0.1:9002", connections = 2 }'

# (id, line 5, a word the message must contain)
BAD = [
    ("unknown_key", 'rproxy.backend "app2" { address = "127.0.0.1:9002", colour = "blue" }',
     "colour"),
    ("wrong_type", 'rproxy.backend "app2" { address = "127.0.0.1:9002", connections = "four" }',
     "connections"),
    ("route_to_unknown_backend",
     'rproxy.vhost "other.com" { routes = { { path = "/x/*", to = "nope" } } }', "nope"),
    ("bad_backend_port", 'rproxy.backend "app2" { address = "127.0.0.1:99999" }', None),
    ("bad_backend_address", 'rproxy.backend "app2" { address = "not an address" }', None),
    ("bad_listen_address", 'rproxy.listen { address = "127.0.0.1:http:x" }', None),
    ("syntax_error", 'rproxy.backend "app2" { address = }', None),
    ("unknown_balance", 'rproxy.pool "p2" { "app1", balance = "bogus" }', "balance"),
    ("bad_regex", 'rproxy.vhost "r.com" { routes = { { regex = "([", to = "app1" } } }', None),
    ("lua_error", 'error("boom on purpose")', "boom on purpose"),
    # a replacement becomes the request line's path: no line break may ride in it
    ("rewrite_injection", 'rproxy.vhost "r.com" { routes = { { prefix = "/a/", to = "app1", '
     'rewrite = { "^/a/(.*)$", "/%1 HTTP/1.1\\r\\nX-Injected: yes" } } } }',
     "cannot be in a path"),
    ("endless_loop", "while true do end", "endless loop"),
]


def write_conf(tmpdir_rp, line5):
    path = os.path.join(tmpdir_rp, "rproxy.lua")
    with open(path, "w") as f:
        f.write(TEMPLATE % (line5, free_port()))
    return path


def output(p):
    return (p.stdout + p.stderr).decode("utf-8", "replace")


def test_check_ok(tmpdir_rp):
    path = write_conf(tmpdir_rp, GOOD_LINE5)
    p = run_rproxy(["-t", "-c", path], cwd=tmpdir_rp)
    out = output(p)
    assert p.returncode == 0, out
    assert re.search(r"\bok\b", out), "expected 'ok', got %r" % out


@pytest.mark.parametrize("line5,word", [(b[1], b[2]) for b in BAD], ids=[b[0] for b in BAD])
def test_check_reports_file_and_line(tmpdir_rp, line5, word):
    path = write_conf(tmpdir_rp, line5)
    p = run_rproxy(["-t", "-c", path], cwd=tmpdir_rp)
    out = output(p)
    assert p.returncode != 0, "-t accepted a broken config (line 5: %s); output %r" % (line5, out)
    assert "rproxy.lua:5:" in out, "expected 'rproxy.lua:5:' in %r" % out
    if word:
        assert word in out, "message should name %r: %r" % (word, out)


@pytest.mark.parametrize("line5,word", [(BAD[0][1], BAD[0][2]), (BAD[2][1], BAD[2][2]),
                                        (BAD[6][1], BAD[6][2])],
                         ids=["unknown_key", "route_to_unknown_backend", "syntax_error"])
def test_startup_with_broken_file_fails(tmpdir_rp, line5, word):
    path = write_conf(tmpdir_rp, line5)
    try:
        p = run_rproxy(["-c", path], cwd=tmpdir_rp, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("rproxy started (still running after 10 s) with a broken config")
    out = output(p)
    assert p.returncode != 0, out
    assert "rproxy.lua:5:" in out, "expected 'rproxy.lua:5:' in %r" % out


@pytest.mark.parametrize("last,words", [
    ("rproxy = nil", ["the global 'rproxy' was replaced", "nil"]),
    ("rproxy = { on_request = function() end }", ["the global 'rproxy' was replaced"]),
    ("rproxy.on_request = 42", ["rproxy.on_request is a number value, not a function"]),
    ("function rproxy.on_log() end rproxy.on_log = {}", ["rproxy.on_log is a table value"]),
], ids=["rproxy_nil", "rproxy_replaced", "hook_number", "hook_table"])
def test_check_refuses_what_the_workers_cannot_use(tmpdir_rp, last, words):
    """A file that ends by replacing the rproxy table or setting a hook to a
    non-function is refused by the check (and so by a start or a reload),
    naming the file; it used to pass -t, then fail every worker or lose the
    hook silently."""
    path = write_conf(tmpdir_rp, GOOD_LINE5)
    with open(path, "a") as f:
        f.write(last + "\n")
    p = run_rproxy(["-t", "-c", path], cwd=tmpdir_rp)
    out = output(p)
    assert p.returncode != 0, out
    assert path + ": " in out, out
    for w in words:
        assert w in out, out


def test_check_missing_file(tmpdir_rp):
    p = run_rproxy(["-t", "-c", os.path.join(tmpdir_rp, "nope.lua")], cwd=tmpdir_rp)
    assert p.returncode != 0, output(p)
    assert "nope.lua" in output(p)


def test_help_prints_usage(tmpdir_rp):
    p = run_rproxy(["-h"], cwd=tmpdir_rp)
    out = output(p)
    assert p.returncode == 0, out
    assert "usage" in out.lower() and "-c" in out and "-t" in out, out
