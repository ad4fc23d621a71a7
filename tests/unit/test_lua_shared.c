/* test_lua_shared.c: rproxy.shared.NAME (lua/lua_shared.c) and the helpers of
 * lua/lua_util.c, driven by Lua snippets: every method's results, the errors
 * for bad arguments, memory errors at every allocation (nothing leaks, no
 * lock is left held, references balance), and several states in threads. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lua_shared.h"
#include "lua_util.h"
#include "shared_dict.h"

#define KB 1024

/* Once *countdown more allocations succeeded, fails every one (Lua retries a
 * failed one after a full GC) until *countdown is set negative again;
 * shrinking never fails. */
static void *
test_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    long  *countdown = ud;

    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    if (*countdown >= 0 && (ptr == NULL || nsize > osize)) {
        if (*countdown == 0) {
            return NULL;
        }
        (*countdown)--;
    }
    return realloc(ptr, nsize);
}

/* A state with the standard libraries and a global rproxy table holding
 * rproxy.shared and the helpers; countdown may be NULL (never fail). */
static lua_State *
state_new(long *countdown)
{
    static long  never = -1;
    lua_State   *L = lua_newstate(test_alloc, countdown ? countdown : &never);

    if (L == NULL) {
        return NULL;
    }
    luaL_openlibs(L);
    lua_newtable(L);
    rp_lua_shared_open(L);
    rp_lua_util_open(L);
    lua_setglobal(L, "rproxy");
    return L;
}

/* Runs code; NULL if it succeeded, else its error message (static copy). */
static const char *
try_run(lua_State *L, const char *code)
{
    static char  msg[1024];

    if (luaL_loadstring(L, code) == LUA_OK && lua_pcall(L, 0, 0, 0) == LUA_OK) {
        return NULL;
    }
    snprintf(msg, sizeof(msg), "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
    lua_pop(L, 1);
    return msg;
}

static void
run(lua_State *L, const char *code)
{
    const char  *err = try_run(L, code);

    if (err != NULL) {
        fail_msg("Lua error: %s", err);
    }
}

static void
sleep_s(double s)
{
    struct timespec  ts = { (time_t) s, (long) ((s - (time_t) s) * 1e9) };

    nanosleep(&ts, NULL);
}

static void
test_lookup(void **state)
{
    rp_shdict_t  *dogs = rp_shdict_open("dogs", 128 * KB);
    rp_shdict_t  *cats;
    lua_State    *L = state_new(NULL);

    (void) state;
    run(L, "local s = rproxy.shared\n"
           "local d = s.dogs\n"
           "assert(d ~= nil and s.dogs == d)\n"
           "assert(rawget(s, 'dogs') == d, 'cached')\n"
           "assert(tostring(d) == \"rproxy.shared_dict 'dogs'\")\n"
           "assert(s.cats == nil and rawget(s, 'cats') == nil)\n"
           "assert(s[1] == nil and s['dogs\\0x'] == nil)\n");
    cats = rp_shdict_open("cats", 128 * KB);     /* declared later: found then */
    run(L, "assert(rproxy.shared.cats ~= nil)");
    lua_close(L);
    rp_shdict_unref(cats);
    rp_shdict_unref(dogs);
    /* the boxes' __gc dropped their references: the dicts are gone */
    assert_null(rp_shdict_find("dogs"));
    assert_null(rp_shdict_find("cats"));
}

static void
test_methods(void **state)
{
    rp_shdict_t  *d = rp_shdict_open("dogs", 1024 * KB);
    lua_State    *L = state_new(NULL);

    (void) state;
    run(L, "local d = rproxy.shared.dogs\n"
           "assert(d:set('s', 'a\\0b') == true)\n"
           "assert(d:get('s') == 'a\\0b')\n"
           "assert(d:set('i', 42))\n"
           "assert(d:get('i') == 42 and math.type(d:get('i')) == 'integer')\n"
           "assert(d:set('f', 1.5) and d:get('f') == 1.5)\n"
           "assert(d:set('neg', -3) and d:get('neg') == -3)\n"
           "assert(d:set('t', true) and d:get('t') == true)\n"
           "assert(d:set('b', false) and d:get('b') == false)\n"
           "assert(d:set('e', '') and d:get('e') == '')\n"
           "assert(d:get('missing') == nil)\n"
           "assert(d:set('t', nil) == true and d:get('t') == nil)\n"
           /* values larger than the scratch buffer, kept and one-off */
           "local big = string.rep('x', 1000)\n"
           "assert(d:set('big', big) and d:get('big') == big)\n"
           "local huge = string.rep('y', 100000)\n"
           "assert(d:set('huge', huge) and d:get('huge') == huge)\n"
           "assert(d:get('s') == 'a\\0b' and d:get('big') == big)\n"
           /* add */
           "assert(d:add('a', 1) == true)\n"
           "local ok, err = d:add('a', 2)\n"
           "assert(ok == false and err == 'exists')\n"
           "assert(d:get('a') == 1)\n"
           "assert(d:add('a2', nil) == true and d:get('a2') == nil)\n"
           /* incr */
           "assert(d:incr('a') == 2)\n"
           "assert(d:incr('a', 10) == 12)\n"
           "assert(d:incr('a', 0.5) == 12.5)\n"
           "local v, e = d:incr('nope')\n"
           "assert(v == nil and e == 'not found')\n"
           "v = d:incr('nope', 1, 0)\n"
           "assert(v == 1 and math.type(v) == 'integer')\n"
           "assert(d:incr('nope', 1, 0) == 2)\n"
           "v, e = d:incr('s', 1)\n"
           "assert(v == nil and e == 'not a number')\n"
           "v, e = d:incr('s', 1, 0)\n"
           "assert(v == nil and e == 'not a number')\n"
           /* too large for the dict */
           "v, e = d:set('k', string.rep('z', 2000000))\n"
           "assert(v == nil and e == 'too large')\n"
           "v, e = d:add('k2', string.rep('z', 2000000))\n"
           "assert(v == nil and e == 'too large')\n"
           "assert(d:get('s') == 'a\\0b')\n"
           /* delete */
           "assert(d:delete('a') == true and d:delete('a') == false)\n"
           "assert(d:get('a') == nil)\n"
           /* keys, free_space, flush_all */
           "d:flush_all()\n"
           "assert(d:get('s') == nil and #d:keys() == 0)\n"
           "local before = d:free_space()\n"
           "assert(math.type(before) == 'integer' and before > 1000000)\n"
           "for i = 1, 5 do d:set('k' .. i, i) end\n"
           "assert(d:free_space() < before)\n"
           "local ks = d:keys()\n"
           "assert(#ks == 5 and ks[1] == 'k5' and ks[5] == 'k1')\n"
           "assert(#d:keys(2) == 2)\n"
           "d:flush_all()\n"
           "assert(d:free_space() == before)\n"
           "for i = 1, 1500 do d:set('n' .. i, i) end\n"
           "assert(#d:keys() == 1024 and #d:keys(0) == 1500)\n"
           /* ttl */
           "assert(d:set('short', 'x', 0.3) and d:get('short') == 'x')\n"
           "assert(d:incr('ctr', 1, 0, 0.3) == 1)\n"
           "assert(d:set('long', 'x', 60))\n");
    sleep_s(0.4);
    run(L, "local d = rproxy.shared.dogs\n"
           "assert(d:get('short') == nil)\n"
           "local v, e = d:incr('ctr', 1)\n"
           "assert(v == nil and e == 'not found')\n"
           "assert(d:get('long') == 'x')\n"
           "assert(d:add('short', 1) == true)\n");
    lua_close(L);
    rp_shdict_unref(d);
    assert_null(rp_shdict_find("dogs"));
}

static void
test_bad_arguments(void **state)
{
    rp_shdict_t  *d = rp_shdict_open("dogs", 128 * KB);
    lua_State    *L = state_new(NULL);

    (void) state;
    /* calls are statements, not tail calls, so that Lua names the method */
    run(L, "local d = rproxy.shared.dogs\n"
           "local function err(f, want)\n"
           "  local ok, e = pcall(f)\n"
           "  assert(not ok, 'no error; wanted ' .. want)\n"
           "  assert(string.find(e, want, 1, true), 'got: ' .. tostring(e))\n"
           "end\n"
           "err(function() d:get(1) end,"
           "    \"bad argument #1 to 'get' (string expected, got number)\")\n"
           "err(function() d:get() end,"
           "    \"bad argument #1 to 'get' (string expected, got no value)\")\n"
           "err(function() d:set('k', {}) end, \"bad argument #2 to 'set' "
           "(string, number, boolean or nil expected, got table)\")\n"
           "err(function() d:set('k') end, \"bad argument #2 to 'set' (value expected)\")\n"
           "err(function() d:set('k', 1, -1) end, \"bad argument #3 to 'set' "
           "(ttl must be a non-negative number of seconds)\")\n"
           "err(function() d:set('k', 1, 0/0) end, \"bad argument #3 to 'set' (ttl\")\n"
           "err(function() d:set('k', 1, 'soon') end,"
           "    \"bad argument #3 to 'set' (number expected, got string)\")\n"
           "err(function() d:add('k', print) end, \"bad argument #2 to 'add'\")\n"
           "err(function() d:incr('k', 'x') end,"
           "    \"bad argument #2 to 'incr' (number expected, got string)\")\n"
           "err(function() d:incr('k', 1, {}) end,"
           "    \"bad argument #3 to 'incr' (number expected, got table)\")\n"
           "err(function() d:incr('k', 1, 0, -5) end, \"bad argument #4 to 'incr'\")\n"
           "err(function() d:delete(true) end,"
           "    \"bad argument #1 to 'delete' (string expected, got boolean)\")\n"
           "err(function() d:keys(-1) end,"
           "    \"bad argument #1 to 'keys' (max must be a non-negative integer)\")\n"
           "err(function() d:keys(1.5) end, \"number has no integer representation\")\n"
           "err(function() d:set(string.rep('k', 65536), 1) end,"
           "    \"bad argument #1 to 'set' (key too long (max 65535 bytes))\")\n"
           "err(function() d.get('k') end,"
           "    \"bad argument #1 to 'get' (rproxy.shared_dict expected, got string)\")\n"
           "err(function() d.free_space() end, 'rproxy.shared_dict expected, got no value')\n"
           "err(function() rproxy.sha256() end,"
           "    \"bad argument #1 to 'sha256' (string expected, got no value)\")\n"
           "err(function() rproxy.hmac_sha256('k') end,"
           "    \"bad argument #2 to 'hmac_sha256' (string expected, got no value)\")\n"
           "err(function() rproxy.hash('x', -1) end, 'seed must be in 0 .. 2^32-1')\n"
           "err(function() rproxy.hash('x', 2^32) end, 'seed must be in 0 .. 2^32-1')\n"
           "err(function() rproxy.escape_uri({}) end, \"bad argument #1 to 'escape_uri'\")\n"
           /* the dict still works after all that */
           "assert(d:set('k', 1) and d:get('k') == 1)\n"
           "assert(d:get(string.rep('k', 65535)) == nil)\n");
    lua_close(L);
    rp_shdict_unref(d);
}

static void
test_util(void **state)
{
    lua_State  *L = state_new(NULL);

    (void) state;
    run(L, "local r = rproxy\n"
           /* FIPS 180-2 examples */
           "assert(r.sha256_hex('abc') =="
           "  'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')\n"
           "assert(r.sha256_hex('') =="
           "  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')\n"
           "assert(#r.sha256('abc') == 32 and r.hex(r.sha256('abc')) == r.sha256_hex('abc'))\n"
           /* RFC 4231 test cases 1, 2 and 6 */
           "assert(r.hex(r.hmac_sha256(string.rep('\\x0b', 20), 'Hi There')) =="
           "  'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7')\n"
           "assert(r.hex(r.hmac_sha256('Jefe', 'what do ya want for nothing?')) =="
           "  '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843')\n"
           "assert(r.hex(r.hmac_sha256(string.rep('\\xaa', 131),"
           "  'Test Using Larger Than Block-Size Key - Hash Key First')) =="
           "  '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54')\n"
           "assert(#r.hmac_sha256('', '') == 32)\n"
           /* hex */
           "assert(r.hex('') == '' and r.hex('\\0\\255\\16') == '00ff10')\n"
           /* RFC 4648 section 10 */
           "local b64 = { [''] = '', f = 'Zg==', fo = 'Zm8=', foo = 'Zm9v',"
           "  foob = 'Zm9vYg==', fooba = 'Zm9vYmE=', foobar = 'Zm9vYmFy' }\n"
           "for plain, enc in pairs(b64) do\n"
           "  assert(r.base64_encode(plain) == enc, plain)\n"
           "  assert(r.base64_decode(enc) == plain, enc)\n"
           "  assert(r.base64_decode((enc:gsub('=', ''))) == plain, 'unpadded ' .. enc)\n"
           "end\n"
           "local bin = ''\n"
           "for i = 0, 255 do bin = bin .. string.char(i) end\n"
           "assert(r.base64_decode(r.base64_encode(bin)) == bin)\n"
           "assert(r.base64_encode('\\255\\254') == '//4=')\n"
           "for _, bad in ipairs({ 'Z', 'Zg=', 'Zm9v!', 'Zm 9v', 'Z===', '=Zm9', 'Zm9vY',"
           "  'Zg==Zg==', 'Zm9v\\n', '-_-_' }) do\n"
           "  local v, e = r.base64_decode(bad)\n"
           "  assert(v == nil and e == 'invalid base64', bad)\n"
           "end\n"
           /* RFC 3986: unreserved stays, the rest is %XX */
           "assert(r.escape_uri('aZ09-._~') == 'aZ09-._~')\n"
           "assert(r.escape_uri('a b&c/\\195\\169?=+%') == 'a%20b%26c%2F%C3%A9%3F%3D%2B%25')\n"
           "assert(r.escape_uri('\\0\\255') == '%00%FF')\n"
           "assert(r.unescape_uri('a%20b%2f%2F%C3%A9') == 'a b//\\195\\169')\n"
           "assert(r.unescape_uri('100%') == '100%' and r.unescape_uri('%zz%4') == '%zz%4')\n"
           "assert(r.unescape_uri('a+b') == 'a+b' and r.unescape_uri('%00') == '\\0')\n"
           "assert(r.unescape_uri(r.escape_uri(bin)) == bin)\n"
           /* MurmurHash3 x86_32 reference vectors */
           "assert(r.hash('') == 0 and r.hash('', 1) == 0x514E28B7)\n"
           "assert(r.hash('', 0xffffffff) == 0x81F16F39)\n"
           "assert(r.hash('\\0\\0\\0\\0') == 0x2362F9DE)\n"
           "assert(r.hash('aaaa', 0x9747b28c) == 0x5A97808A)\n"
           "assert(r.hash('abc') == 0xB3DD93FA)\n"
           "assert(r.hash('Hello, world!', 0x9747b28c) == 0x24884CBA)\n"
           "assert(r.hash('The quick brown fox jumps over the lazy dog', 0x9747b28c)"
           "  == 0x2FA826CD)\n"
           "assert(math.type(r.hash('x')) == 'integer' and r.hash('x') >= 0)\n");
    lua_close(L);
    assert_int_equal(rp_lua_util_murmur3("abc", 3, 0), 0xB3DD93FA);
}

/* Every allocation of a run fails in turn: the run either succeeds or raises
 * "not enough memory"; it never leaks (ASan), never leaves the dict locked
 * (the next call would hang) and never loses a reference (checked at the end). */
static void
test_memory_errors(void **state)
{
    rp_shdict_t  *d = rp_shdict_open("mem", 1024 * KB);
    const char   *code = "local d = rproxy.shared.mem\n"
                         "local v = d:get('huge')\n"
                         "assert(#v == 100000)\n"
                         "assert(#d:get('mid') == 5000 and d:get('n') == 7)\n"
                         "local ks = d:keys(0)\n"
                         "assert(#ks == 43)\n"
                         "assert(rproxy.base64_decode(rproxy.base64_encode(v)) == v)\n"
                         "assert(#rproxy.escape_uri(v) == 100000)\n"
                         "assert(#rproxy.hex(rproxy.sha256(v)) == 64)\n";
    const char   *err;
    lua_State    *L;
    long          countdown, n;
    unsigned      failures = 0;
    rp_shval_t    v;
    char         *huge = malloc(100000);

    (void) state;
    memset(huge, 'y', 100000);
    v = (rp_shval_t) { .type = RP_SHVAL_STRING, .str = huge, .len = 100000 };
    assert_int_equal(rp_shdict_set(d, "huge", 4, &v, 0), RP_OK);
    v.len = 5000;
    assert_int_equal(rp_shdict_set(d, "mid", 3, &v, 0), RP_OK);
    v = (rp_shval_t) { .type = RP_SHVAL_NUMBER, .number = 7 };
    assert_int_equal(rp_shdict_set(d, "n", 1, &v, 0), RP_OK);
    for (n = 0; n < 40; n++) {
        char  k[32];

        snprintf(k, sizeof(k), "key%ld", n);
        assert_int_equal(rp_shdict_set(d, k, strlen(k), &v, 0), RP_OK);
    }
    free(huge);

    for (n = 0;; n++) {
        countdown = -1;
        L = state_new(&countdown);
        assert_non_null(L);
        assert_int_equal(luaL_loadstring(L, code), LUA_OK);
        countdown = n;
        if (lua_pcall(L, 0, 0, 0) == LUA_OK) {
            countdown = -1;
            lua_close(L);
            break;
        }
        countdown = -1;
        err = lua_tostring(L, -1);
        if (err == NULL || strstr(err, "not enough memory") == NULL) {
            fail_msg("allocation %ld: %s", n, err ? err : "(not a string)");
        }
        failures++;
        lua_close(L);
        assert_true(rp_shdict_free_space(d) > 0);    /* not left locked */
        assert_true(n < 100000);
    }
    assert_true(failures > 20);
    rp_shdict_unref(d);
    assert_null(rp_shdict_find("mem"));           /* every box released its reference */
}

#define LUA_THREADS 4
#define LUA_INCRS   20000

static void *
lua_worker(void *arg)
{
    lua_State   *L = state_new(NULL);
    const char  *err;

    err = try_run(L, "local d = rproxy.shared.counters\n"
                     "for i = 1, 20000 do\n"
                     "  assert(d:incr('n', 1, 0))\n"
                     "  d:set('last', i)\n"
                     "  d:get('last')\n"
                     "end\n");
    *(int *) arg = err != NULL;
    lua_close(L);
    return NULL;
}

/* One lua_State per thread, as workers have, on one dict. */
static void
test_lua_threads(void **state)
{
    rp_shdict_t  *d = rp_shdict_open("counters", 128 * KB);
    pthread_t     t[LUA_THREADS];
    int           failed[LUA_THREADS] = { 0 };
    rp_shval_t    v;
    unsigned      i;

    (void) state;
    for (i = 0; i < LUA_THREADS; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, lua_worker, &failed[i]), 0);
    }
    for (i = 0; i < LUA_THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(failed[i], 0);
    }
    assert_int_equal(rp_shdict_get(d, "n", 1, &v), RP_OK);
    assert_true(v.number == (double) LUA_THREADS * LUA_INCRS);
    rp_shdict_unref(d);
}

int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_util),
        cmocka_unit_test(test_memory_errors),
        cmocka_unit_test(test_lua_threads),
    };
    int  rc = cmocka_run_group_tests(tests, NULL, NULL);

    rp_shdict_shutdown();
    return rc;
}
