"""Fixtures for the e2e suite: a temp dir per test, recording backends, and the
real rproxy started on an inline rproxy.lua.

  RPROXY_BIN      binary to test (default <repo>/build/rproxy)
  RP_TEST_KEEP=1  keep each test's temp dir (config, stderr.log, access.log)
  RP_TEST_BIG_MB  size of the big upload/download in MiB (default 1024)

A test fails at teardown if the proxy's stderr shows AddressSanitizer,
UndefinedBehaviorSanitizer ("runtime error:") or LeakSanitizer reports.
"""

import os
import shutil
import tempfile

import pytest

from backends import Backend
from proxy import RPROXY_BIN, Proxy

KEEP = os.environ.get("RP_TEST_KEEP") == "1"


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _failed(request):
    rep = getattr(request.node, "rep_call", None)
    return rep is not None and rep.failed


@pytest.fixture
def tmpdir_rp(request):
    d = tempfile.mkdtemp(prefix="rproxy-e2e-%s-" % request.node.name[:40].replace("/", "_"))
    yield d
    if KEEP or _failed(request):
        print("test dir kept: %s" % d)
    else:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def backend():
    """backend(mode="normal", handler=None, ...) -> a started recording Backend."""
    started = []

    def make(mode="normal", **kw):
        b = Backend(mode, **kw)
        started.append(b)
        return b

    yield make
    for b in started:
        b.stop()


@pytest.fixture
def rproxy(request, tmpdir_rp, backend):
    """rproxy(lua_text, nports=1, env=None, wait=True, **subs) -> a started Proxy.

    In lua_text, @PORT@ (@PORT2@...) is the listen port, @TMP@ the temp dir,
    @ACCESS@ the access log path, @PIDFILE@ the pidfile path, and @KEY@ any
    keyword given. Depends on `backend` so that proxies stop before backends."""
    if not os.access(RPROXY_BIN, os.X_OK):
        pytest.fail("rproxy binary not found at %s (build it, or set RPROXY_BIN)" % RPROXY_BIN)
    started = []
    count = [0]

    def start(lua, nports=1, env=None, wait=True, **subs):
        count[0] += 1
        d = tmpdir_rp if count[0] == 1 else os.path.join(tmpdir_rp, "p%d" % count[0])
        os.makedirs(d, exist_ok=True)
        p = Proxy(d, lua, nports=nports, env=env, subs=subs)
        started.append(p)
        p.start(wait=wait)
        return p

    yield start
    reports = []
    for p in started:
        p.stop()
        rep = p.sanitizer_report()
        if rep:
            reports.append("%s:\n%s" % (p.stderr_path, rep))
        if _failed(request):
            print("---- rproxy stderr (%s), tail ----\n%s" % (p.stderr_path, p.stderr()[-4000:]))
    if reports:
        pytest.fail("sanitizer report in rproxy stderr:\n" + "\n".join(reports), pytrace=False)
