/* lua_state.c: a worker's lua_State: the capped allocator, rproxy.lua
 * evaluated once more to hand over its hook functions, the instruction
 * budget, and rp_lua_call(), the only way C enters Lua. */
#include "lua_state.h"

#include "gen.h"
#include "log.h"
#include "lua_balancer.h"
#include "lua_config.h"
#include "lua_sandbox.h"
#include "lua_request.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

/* Registry tables the worker's declaration stubs fill while the file runs. */
#define LS_POOL_FNS     "rproxy.pool_fns"      /* pool name -> balance function      */
#define LS_ROUTE_FNS    "rproxy.route_fns"     /* vhost name -> { [i] = on_request } */
#define LS_BALANCER_FNS "rproxy.balancer_fns"  /* balancer name -> function          */

rp_lua_t *
rp_lua_of(lua_State *L)
{
    return *(rp_lua_t **) lua_getextraspace(L);
}

void *
rp_lua_capped_realloc(size_t *used, size_t limit, int *failed, void *ptr, size_t osize,
                      size_t nsize)
{
    size_t  old = ptr ? osize : 0;
    void   *p;

    if (nsize == 0) {
        free(ptr);
        *used -= old;
        return NULL;
    }
    if (nsize > old && *used + (nsize - old) > limit) {
        *failed = 1;
        return NULL;
    }
    if ((p = realloc(ptr, nsize)) != NULL) {
        *used = *used - old + nsize;
    }
    return p;
}

/* The memory cap: a refused allocation becomes a Lua memory error in the
 * hook that asked, never a crash. */
static void *
ls_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    rp_lua_t  *lua = ud;

    return rp_lua_capped_realloc(&lua->mem_used, lua->mem_limit, &lua->mem_failed, ptr, osize,
                                 nsize);
}

static int
ls_panic(lua_State *L)
{
    rp_log_error("lua: unprotected error: %s (this is a bug)", lua_tostring(L, -1));
    abort();
}

/* The instruction budget. The count hook is installed on the main thread
 * before anything runs, so every coroutine inherits it; it charges
 * RP_LUA_BUDGET_STEP instructions to the running call each time it fires, on
 * whichever thread runs. Once the budget is spent it fires on every
 * instruction of the thread it caught, so a pcall in a loop cannot swallow
 * the error and go on. Outside a hook call (phase 0 and no call) it is free. */

static void
ls_budget_hook(lua_State *L, lua_Debug *ar)
{
    rp_lua_t  *lua = rp_lua_of(L);

    if (!lua->in_call) {
        return;
    }
    if (!lua->budget_hit) {
        lua->used += RP_LUA_BUDGET_STEP;
        if (lua->used <= lua->budget) {
            return;
        }
        lua->budget_hit = 1;
    }
    lua_sethook(L, ls_budget_hook, LUA_MASKCOUNT, 1);
    rp_lua_budget_error(L, lua->budget, lua->loading);
}

void
rp_lua_budget_error(lua_State *L, unsigned long budget, int loading)
{
    luaL_where(L, 0);                    /* level 0 in a hook: the interrupted function */
    if (loading) {
        lua_pushfstring(L, "the file's top-level code ran over %I Lua instructions (an "
                           "endless loop?)", (lua_Integer) budget);
    } else {
        lua_pushfstring(L, "instruction budget exceeded (settings.lua.instructions = %I)",
                        (lua_Integer) budget);
    }
    lua_concat(L, 2);
    lua_error(L);
}

/* Message handler: the error with a traceback. */
static int
ls_msgh(lua_State *L)
{
    const char  *msg = lua_tostring(L, 1);

    if (msg == NULL) {
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int
rp_lua_call(rp_lua_t *lua, int nargs, int nresults, unsigned phase, const char *what)
{
    lua_State  *L = lua->L;
    int         base = lua_gettop(L) - nargs, rc, saved_in_call = lua->in_call;
    unsigned    saved = lua->phase;
    unsigned long saved_used = lua->used;

    lua_pushcfunction(L, ls_msgh);
    lua_insert(L, base);
    lua->phase = phase;
    lua->budget_hit = 0;
    lua->mem_failed = 0;
    lua->used = 0;
    lua->in_call = 1;
    rc = lua_pcall(L, nargs, nresults, base);
    lua->in_call = saved_in_call;
    if (lua->budget_hit) {
        lua_sethook(L, ls_budget_hook, LUA_MASKCOUNT, RP_LUA_BUDGET_STEP);
    }
    lua->phase = saved;
    lua->used = saved_used;
    if (rc != LUA_OK) {
        if (rc == LUA_ERRMEM || lua->mem_failed) {
            rp_log_error("lua: %s: memory cap reached (settings.lua.memory = %zu bytes): %s",
                         what, lua->mem_limit, lua_tostring(L, -1));
            lua_pop(L, 2);
            lua_gc(L, LUA_GCCOLLECT);
        } else {
            rp_log_error("lua: %s: %s", what, lua_tostring(L, -1));
            lua_pop(L, 2);
        }
        return RP_ERROR;
    }
    lua_remove(L, base);
    return RP_OK;
}

void
rp_lua_check_phase(lua_State *L, unsigned phases)
{
    rp_lua_t  *lua = rp_lua_of(L);

    if (lua == NULL || !(lua->phase & phases)) {
        luaL_error(L, "not allowed in this hook");
    }
}

/* ---- the worker's declaration stubs ------------------------------------------
 * The main thread validated the file; here a declaration only hands over the
 * functions it carries, into a registry table by name. */

static int
ls_ignore(lua_State *L)
{
    return 0;
}

static int
ls_ignore_named(lua_State *L)
{
    lua_pushcfunction(L, ls_ignore);
    return 1;
}

/* [name] -> registry[tname][name] = arg 1 of the returned closure */
static int
ls_keep_fn(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, lua_tostring(L, lua_upvalueindex(1)));
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_pushvalue(L, 1);
    lua_rawset(L, -3);
    return 0;
}

static int
ls_balancer(lua_State *L)
{
    lua_pushstring(L, LS_BALANCER_FNS);
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, ls_keep_fn, 2);
    return 1;
}

static int
ls_pool_opts(lua_State *L)
{
    if (lua_istable(L, 1) && lua_getfield(L, 1, "balance") == LUA_TFUNCTION) {
        lua_getfield(L, LUA_REGISTRYINDEX, LS_POOL_FNS);
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_pushvalue(L, -3);
        lua_rawset(L, -3);
    }
    return 0;
}

static int
ls_pool(lua_State *L)
{
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, ls_pool_opts, 1);
    return 1;
}

/* vhost "name" { routes = { {..., on_request = fn}, ... } } */
static int
ls_vhost_opts(lua_State *L)
{
    lua_Integer  i, n;

    if (!lua_istable(L, 1) || lua_getfield(L, 1, "routes") != LUA_TTABLE) {
        return 0;
    }
    int          routes = lua_gettop(L), fns;

    lua_getfield(L, LUA_REGISTRYINDEX, LS_ROUTE_FNS);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_newtable(L);
    fns = lua_gettop(L);                   /* [routes, route_fns, name, fns] */
    n = (lua_Integer) lua_rawlen(L, routes);
    for (i = 1; i <= n; i++) {
        if (lua_rawgeti(L, routes, i) == LUA_TTABLE) {
            if (lua_getfield(L, -1, "on_request") == LUA_TFUNCTION) {
                lua_rawseti(L, fns, i);
            } else {
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
    }
    lua_rawset(L, routes + 1);             /* route_fns[name] = fns */
    return 0;
}

static int
ls_vhost(lua_State *L)
{
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, ls_vhost_opts, 1);
    return 1;
}

static void
ls_install_rproxy(lua_State *L, rp_lua_t *lua)
{
    static const luaL_Reg  decls[] = {
        { "settings", ls_ignore },  { "listen", ls_ignore },
        { "backend", ls_ignore_named }, { "shared_dict", ls_ignore_named },
        { "pool", ls_pool },        { "vhost", ls_vhost },
        { "balancer", ls_balancer }, { NULL, NULL },
    };
    const char *const      tables[] = { LS_POOL_FNS, LS_ROUTE_FNS, LS_BALANCER_FNS };
    unsigned               i;

    for (i = 0; i < 3; i++) {
        lua_newtable(L);
        lua_setfield(L, LUA_REGISTRYINDEX, tables[i]);
    }
    lua_newtable(L);
    luaL_setfuncs(L, decls, 0);
    rp_lua_api_open(L, lua);
    lua_setglobal(L, "rproxy");
}

/* ---- collecting the hooks ---------------------------------------------------- */

/* rproxy[name] if it is a function, as a registry ref. */
static int
ls_global_hook(lua_State *L, const char *name)
{
    lua_getglobal(L, "rproxy");
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        return LUA_NOREF;
    }
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

/* registry[tname][key] if it is a function, as a registry ref. */
static int
ls_table_fn(lua_State *L, const char *tname, const char *key)
{
    int  ref = LUA_NOREF;

    lua_getfield(L, LUA_REGISTRYINDEX, tname);
    if (lua_getfield(L, -1, key) == LUA_TFUNCTION) {
        ref = luaL_ref(L, LUA_REGISTRYINDEX);
    } else {
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return ref;
}

static void
ls_collect_routes(rp_lua_t *lua)
{
    lua_State           *L = lua->L;
    const rp_config_t   *conf = lua->conf;
    unsigned             i, j, n = 0;

    lua->route_base = rp_xalloc((conf->nvhosts + 1) * sizeof(unsigned));
    for (i = 0; i < conf->nvhosts; i++) {
        lua->route_base[i] = n;
        n += conf->vhosts[i].nroutes;
    }
    lua->route_base[conf->nvhosts] = n;
    lua->route_hooks = rp_xalloc((n + 1) * sizeof(int));
    for (i = 0; i < conf->nvhosts; i++) {
        const rp_vhost_conf_t  *v = &conf->vhosts[i];

        lua_getfield(L, LUA_REGISTRYINDEX, LS_ROUTE_FNS);
        lua_getfield(L, -1, v->name);
        for (j = 0; j < v->nroutes; j++) {
            int  *slot = &lua->route_hooks[lua->route_base[i] + j];

            *slot = LUA_NOREF;
            if (v->routes[j].has_hook && lua_istable(L, -1)
                && lua_rawgeti(L, -1, (lua_Integer) j + 1) == LUA_TFUNCTION) {
                *slot = luaL_ref(L, LUA_REGISTRYINDEX);
            } else if (v->routes[j].has_hook) {
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 2);
    }
}

static void
ls_collect_pools(rp_lua_t *lua)
{
    const rp_config_t  *conf = lua->conf;
    unsigned            i;

    lua->pool_balancers = rp_xalloc((conf->npools + 1) * sizeof(int));
    for (i = 0; i < conf->npools; i++) {
        const rp_pool_conf_t  *p = &conf->pools[i];

        lua->pool_balancers[i] = LUA_NOREF;
        if (p->lua_balance) {
            lua->pool_balancers[i] = ls_table_fn(lua->L, LS_POOL_FNS, p->name);
        } else if (p->balancer != NULL) {
            lua->pool_balancers[i] = ls_table_fn(lua->L, LS_BALANCER_FNS, p->balancer);
        }
    }
}

/* Runs rproxy.lua in the new state: [] -> [] or raises. */
static int
ls_pmain(lua_State *L)
{
    rp_lua_t  *lua = lua_touserdata(L, 1);

    rp_lua_open_libs(L);
    rp_lua_config_package_path(L, lua->conf->path);
    ls_install_rproxy(L, lua);
    lua_pushcfunction(L, ls_msgh);
    if (rp_lua_load_source(L, lua->conf->source, lua->conf->source_len, lua->conf->path)
        != LUA_OK) {
        return lua_error(L);
    }
    if (lua_pcall(L, 0, 0, -2) != LUA_OK) {
        return lua_error(L);
    }
    lua_pop(L, 1);
    lua->on_request = ls_global_hook(L, "on_request");
    lua->on_response = ls_global_hook(L, "on_response");
    lua->on_log = ls_global_hook(L, "on_log");
    ls_collect_routes(lua);
    ls_collect_pools(lua);
    rp_lua_request_open(L);
    return 0;
}

static int
ls_pbind(lua_State *L)
{
    rp_lua_balancer_open(lua_touserdata(L, 1));
    return 0;
}

void
rp_lua_bind_pools(rp_lua_t *lua)
{
    lua_pushcfunction(lua->L, ls_pbind);
    lua_pushlightuserdata(lua->L, lua);
    if (lua_pcall(lua->L, 1, 0, 0) != LUA_OK) {
        rp_log_error("lua: cannot build the pool objects: %s", lua_tostring(lua->L, -1));
        lua_pop(lua->L, 1);
    }
}

rp_lua_t *
rp_lua_new(struct rp_gen_s *g, const rp_config_t *conf, char *err, size_t errlen)
{
    rp_lua_t  *lua;

    lua = rp_xalloc(sizeof(rp_lua_t));
    lua->w = g->w;
    lua->gen = g;
    lua->conf = conf;
    lua->mem_limit = conf->lua_memory;
    lua->budget = conf->lua_instructions;
    lua->on_request = lua->on_response = lua->on_log = LUA_NOREF;
    lua->L = lua_newstate(ls_alloc, lua);
    if (lua->L == NULL) {
        snprintf(err, errlen, "lua: cannot create a state");
        free(lua);
        return NULL;
    }
    *(rp_lua_t **) lua_getextraspace(lua->L) = lua;
    lua_atpanic(lua->L, ls_panic);
    lua_sethook(lua->L, ls_budget_hook, LUA_MASKCOUNT, RP_LUA_BUDGET_STEP);
    /* the top-level code is charged like a call, against the load's budget */
    lua->in_call = lua->loading = 1;
    lua->budget = RP_LUA_LOAD_INSTRUCTIONS;
    lua_pushcfunction(lua->L, ls_pmain);
    lua_pushlightuserdata(lua->L, lua);
    if (lua_pcall(lua->L, 1, 0, 0) != LUA_OK) {
        snprintf(err, errlen, "%s", lua_isstring(lua->L, -1) ? lua_tostring(lua->L, -1)
                                                             : "error object is not a string");
        rp_lua_free(lua);
        return NULL;
    }
    lua->in_call = lua->loading = 0;
    lua->budget = conf->lua_instructions;
    lua->used = 0;
    return lua;
}

void
rp_lua_free(rp_lua_t *lua)
{
    if (lua == NULL) {
        return;
    }
    rp_lua_timers_free(lua);
    lua_close(lua->L);
    rp_lua_balancer_cleanup(lua);
    free(lua->route_hooks);
    free(lua->route_base);
    free(lua->pool_balancers);
    free(lua);
}

int
rp_lua_route_hook(const rp_lua_t *lua, unsigned vhost, unsigned route)
{
    if (lua->route_hooks == NULL) {
        return LUA_NOREF;
    }
    return lua->route_hooks[lua->route_base[vhost] + route];
}
