/* lua_shared.c: rproxy.shared.NAME, a Lua box over a process-wide dict
 * (core/shared_dict.c). Glue only: check, call, translate. The dict's lock is
 * taken and released inside each core call, so no Lua error can cross it. */
#include "lua_shared.h"

#include <math.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "shared_dict.h"

#define SHARED_DICT_MT      "rproxy.shared_dict"
#define SHARED_SCRATCH_MIN  256
#define SHARED_SCRATCH_KEEP 65536        /* larger values use a one-off buffer */
#define SHARED_KEYS_DEFAULT 1024
#define SHARED_INT_EXACT    9007199254740992.0    /* 2^53 */

/* A box: what Lua holds for one dict. */
typedef struct {
    rp_shdict_t  *d;        /* owned reference; NULL until found, and after __gc */
} shared_box_t;

static rp_shdict_t *
lua_shared_check(lua_State *L)
{
    shared_box_t  *b = luaL_checkudata(L, 1, SHARED_DICT_MT);

    if (b->d == NULL) {
        luaL_error(L, "shared dict is closed");
    }
    return b->d;
}

/* Keys are strings only: luaL_checklstring would turn a number into a
 * string in place, and 1 and "1" would then be the same key by accident. */
static const char *
lua_shared_checkkey(lua_State *L, int idx, size_t *klen)
{
    const char  *key;

    if (lua_type(L, idx) != LUA_TSTRING) {
        luaL_typeerror(L, idx, "string");
    }
    key = lua_tolstring(L, idx, klen);
    luaL_argcheck(L, *klen <= RP_SHDICT_MAX_KEY, idx, "key too long (max 65535 bytes)");
    return key;
}

/* The value at idx (string, number, boolean or nil) as a borrowed rp_shval_t. */
static void
lua_shared_checkvalue(lua_State *L, int idx, rp_shval_t *v)
{
    memset(v, 0, sizeof(*v));
    luaL_checkany(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        v->type = RP_SHVAL_NIL;
        break;
    case LUA_TBOOLEAN:
        v->type = RP_SHVAL_BOOLEAN;
        v->boolean = lua_toboolean(L, idx);
        break;
    case LUA_TNUMBER:
        v->type = RP_SHVAL_NUMBER;
        v->number = (double) lua_tonumber(L, idx);
        break;
    case LUA_TSTRING:
        v->type = RP_SHVAL_STRING;
        v->str = lua_tolstring(L, idx, &v->len);
        break;
    default:
        luaL_typeerror(L, idx, "string, number, boolean or nil");
    }
}

static double
lua_shared_checkttl(lua_State *L, int idx)
{
    double  ttl = (double) luaL_optnumber(L, idx, 0);

    luaL_argcheck(L, ttl >= 0, idx, "ttl must be a non-negative number of seconds");
    return ttl;
}

/* Numbers are stored as doubles; an integral one comes back as a Lua integer
 * (while exact), so that counters print as "3", not "3.0". */
static void
lua_shared_pushnumber(lua_State *L, double n)
{
    if (n == floor(n) && fabs(n) <= SHARED_INT_EXACT) {
        lua_pushinteger(L, (lua_Integer) n);
    } else {
        lua_pushnumber(L, (lua_Number) n);
    }
}

static int
lua_shared_fail(lua_State *L, int ok, const char *msg)
{
    if (ok) {
        lua_pushboolean(L, 0);
    } else {
        luaL_pushfail(L);
    }
    lua_pushstring(L, msg);
    return 2;
}

/* d:get(key) -> value | nil
 * Upvalue 1: a scratch buffer, a userdata. A string is copied under the
 * dict's lock into memory that Lua owns, so that when lua_pushlstring (or
 * growing the buffer) raises a memory error, no C local owns anything and no
 * lock is held. Small buffers are kept for the next call. */
static int
l_shared_dict_get(lua_State *L)
{
    rp_shdict_t  *d;
    const char   *key;
    size_t        klen, cap;
    rp_shval_t    v;
    char         *buf;
    int           rc;

    d = lua_shared_check(L);
    key = lua_shared_checkkey(L, 2, &klen);

    buf = lua_touserdata(L, lua_upvalueindex(1));
    cap = lua_rawlen(L, lua_upvalueindex(1));
    while ((rc = rp_shdict_get_buf(d, key, klen, &v, buf, cap)) == RP_AGAIN) {
        cap = v.len < SHARED_SCRATCH_MIN ? SHARED_SCRATCH_MIN : v.len;
        buf = lua_newuserdatauv(L, cap, 0);              /* stack: ... buf */
        if (cap <= SHARED_SCRATCH_KEEP) {
            lua_pushvalue(L, -1);
            lua_replace(L, lua_upvalueindex(1));
        }
    }
    if (rc != RP_OK) {
        lua_pushnil(L);                                  /* missing or expired */
        return 1;
    }
    switch (v.type) {
    case RP_SHVAL_STRING:
        lua_pushlstring(L, v.str, v.len);
        break;
    case RP_SHVAL_NUMBER:
        lua_shared_pushnumber(L, v.number);
        break;
    case RP_SHVAL_BOOLEAN:
        lua_pushboolean(L, v.boolean);
        break;
    default:
        lua_pushnil(L);
        break;
    }
    return 1;
}

/* d:set(key, value, ttl?) -> true | nil, "too large" */
static int
l_shared_dict_set(lua_State *L)
{
    rp_shdict_t  *d;
    const char   *key;
    size_t        klen;
    rp_shval_t    v;
    double        ttl;

    d = lua_shared_check(L);
    key = lua_shared_checkkey(L, 2, &klen);
    lua_shared_checkvalue(L, 3, &v);
    ttl = lua_shared_checkttl(L, 4);

    if (rp_shdict_set(d, key, klen, &v, ttl) != RP_OK) {
        return lua_shared_fail(L, 0, "too large");
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* d:add(key, value, ttl?) -> true | false, "exists" | nil, "too large" */
static int
l_shared_dict_add(lua_State *L)
{
    rp_shdict_t  *d;
    const char   *key;
    size_t        klen;
    rp_shval_t    v;
    double        ttl;
    int           rc;

    d = lua_shared_check(L);
    key = lua_shared_checkkey(L, 2, &klen);
    lua_shared_checkvalue(L, 3, &v);
    ttl = lua_shared_checkttl(L, 4);

    rc = rp_shdict_add(d, key, klen, &v, ttl);
    if (rc == RP_DECLINED) {
        return lua_shared_fail(L, 1, "exists");
    }
    if (rc != RP_OK) {
        return lua_shared_fail(L, 0, "too large");
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* d:incr(key, delta?, init?, init_ttl?) -> number | nil, "not found" | nil, "not a number" */
static int
l_shared_dict_incr(lua_State *L)
{
    rp_shdict_t  *d;
    const char   *key;
    size_t        klen;
    double        delta, init = 0, init_ttl, out;
    int           rc, has_init;

    d = lua_shared_check(L);
    key = lua_shared_checkkey(L, 2, &klen);
    delta = (double) luaL_optnumber(L, 3, 1);
    luaL_argcheck(L, isfinite(delta), 3, "delta must be a finite number");
    has_init = !lua_isnoneornil(L, 4);
    if (has_init) {
        init = (double) luaL_checknumber(L, 4);
        /* a NaN or an infinity would stick to the counter for good */
        luaL_argcheck(L, isfinite(init), 4, "init must be a finite number");
    }
    init_ttl = lua_shared_checkttl(L, 5);

    rc = rp_shdict_incr(d, key, klen, delta, has_init, init, init_ttl, &out);
    if (rc == RP_DECLINED) {
        return lua_shared_fail(L, 0, "not found");
    }
    if (rc != RP_OK) {
        return lua_shared_fail(L, 0, "not a number");
    }
    lua_shared_pushnumber(L, out);
    return 1;
}

/* d:delete(key) -> true if a live entry was removed, else false */
static int
l_shared_dict_delete(lua_State *L)
{
    rp_shdict_t  *d;
    const char   *key;
    size_t        klen;

    d = lua_shared_check(L);
    key = lua_shared_checkkey(L, 2, &klen);

    lua_pushboolean(L, rp_shdict_delete(d, key, klen) == RP_OK);
    return 1;
}

typedef struct {
    lua_State    *L;
    int           t;        /* absolute index of the result array */
    lua_Integer   n;
} shared_keys_ctx_t;

typedef struct {
    const char   *key;
    size_t        len;
    lua_Integer   i;
} shared_keys_item_t;

/* Runs under lua_pcall: stack 1 = the array, 2 = a light shared_keys_item_t. */
static int
lua_shared_keys_store(lua_State *L)
{
    shared_keys_item_t  *it = lua_touserdata(L, 2);

    lua_pushlstring(L, it->key, it->len);
    lua_rawseti(L, 1, it->i);
    return 0;
}

/* rp_shdict_keys owns the copied keys while it calls this, so a memory error
 * must not unwind through it: each store runs under lua_pcall, and a failure
 * stops the walk with the error object left on the stack. */
static int
lua_shared_keys_on_key(const char *key, size_t klen, void *arg)
{
    shared_keys_ctx_t   *ctx = arg;
    shared_keys_item_t   it = { key, klen, ctx->n + 1 };
    lua_State           *L = ctx->L;

    lua_pushcfunction(L, lua_shared_keys_store);
    lua_pushvalue(L, ctx->t);
    lua_pushlightuserdata(L, &it);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        return 1;
    }
    ctx->n++;
    return 0;
}

/* d:keys(max?) -> array of up to max (default 1024; 0: all) live keys,
 * most recently used first */
static int
l_shared_dict_keys(lua_State *L)
{
    rp_shdict_t        *d;
    lua_Integer         max;
    shared_keys_ctx_t   ctx;

    d = lua_shared_check(L);
    max = luaL_optinteger(L, 2, SHARED_KEYS_DEFAULT);
    luaL_argcheck(L, max >= 0, 2, "max must be a non-negative integer");
    if (max > 0x7fffffff) {
        max = 0x7fffffff;                  /* more than any dictionary holds */
    }
    luaL_checkstack(L, 4, NULL);

    lua_newtable(L);                                     /* stack: ... array */
    ctx.L = L;
    ctx.t = lua_gettop(L);
    ctx.n = 0;
    if (rp_shdict_keys(d, (unsigned) max, lua_shared_keys_on_key, &ctx) != RP_OK) {
        return lua_error(L);                             /* stack: ... array err */
    }
    return 1;
}

/* d:free_space() -> bytes */
static int
l_shared_dict_free_space(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer) rp_shdict_free_space(lua_shared_check(L)));
    return 1;
}

/* d:flush_all() */
static int
l_shared_dict_flush_all(lua_State *L)
{
    rp_shdict_flush_all(lua_shared_check(L));
    return 0;
}

static int
l_shared_dict_gc(lua_State *L)
{
    shared_box_t  *b = luaL_checkudata(L, 1, SHARED_DICT_MT);

    if (b->d != NULL) {
        rp_shdict_unref(b->d);
        b->d = NULL;
    }
    return 0;
}

static int
l_shared_dict_tostring(lua_State *L)
{
    shared_box_t  *b = luaL_checkudata(L, 1, SHARED_DICT_MT);

    if (b->d == NULL) {
        lua_pushstring(L, "rproxy.shared_dict (closed)");
    } else {
        lua_pushfstring(L, "rproxy.shared_dict '%s'", rp_shdict_name(b->d));
    }
    return 1;
}

/* rproxy.shared[name] -> box | nil. Stack: 1 = rproxy.shared, 2 = name.
 * The box exists before the reference is taken, so that the only raise
 * after it (rawset) leaves the reference to the box's __gc. */
static int
l_shared_index(lua_State *L)
{
    shared_box_t  *b;
    const char    *name;
    size_t         len;

    if (lua_type(L, 2) != LUA_TSTRING) {
        lua_pushnil(L);
        return 1;
    }
    name = lua_tolstring(L, 2, &len);
    if (strlen(name) != len) {
        lua_pushnil(L);
        return 1;
    }
    b = lua_newuserdatauv(L, sizeof(shared_box_t), 0);   /* stack: t name box */
    b->d = NULL;
    luaL_setmetatable(L, SHARED_DICT_MT);
    if ((b->d = rp_shdict_find_ref(name)) == NULL) {
        lua_pushnil(L);                                  /* the box goes to the GC */
        return 1;
    }
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    lua_rawset(L, 1);
    return 1;
}

void
rp_lua_shared_open(lua_State *L)
{
    static const luaL_Reg  methods[] = {
        { "set", l_shared_dict_set },
        { "add", l_shared_dict_add },
        { "incr", l_shared_dict_incr },
        { "delete", l_shared_dict_delete },
        { "keys", l_shared_dict_keys },
        { "free_space", l_shared_dict_free_space },
        { "flush_all", l_shared_dict_flush_all },
        { NULL, NULL },
    };

    luaL_checkstack(L, 4, NULL);
    luaL_newmetatable(L, SHARED_DICT_MT);                /* stack: rproxy mt */
    luaL_newlib(L, methods);                             /* stack: rproxy mt methods */
    lua_newuserdatauv(L, SHARED_SCRATCH_MIN, 0);
    lua_pushcclosure(L, l_shared_dict_get, 1);
    lua_setfield(L, -2, "get");
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_shared_dict_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_shared_dict_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);                                       /* stack: rproxy */

    lua_newtable(L);                                     /* stack: rproxy shared */
    lua_createtable(L, 0, 1);                            /* stack: rproxy shared mt */
    lua_pushcfunction(L, l_shared_index);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "shared");                       /* stack: rproxy */
}
