/* lua_api.c: the runtime part of the rproxy table: now, log, worker_id,
 * every (per-worker timers), shared dictionaries and the pure helpers. The
 * config loader's state gets it too, so top-level code runs in both. */
#include "lua_state.h"

#include "gen.h"
#include "log.h"
#include "lua_shared.h"
#include "lua_util.h"
#include "worker.h"

#include <event2/event.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

struct rp_lua_timer_s {
    rp_lua_t        *lua;        /* back-pointer                   */
    struct event    *ev;         /* owned                          */
    int              ref;        /* the function, in the registry  */
    rp_lua_timer_t  *next;
};

/* rproxy.now() -> seconds since the epoch, with microseconds */
static int
l_now(lua_State *L)
{
    struct timeval  tv;

    gettimeofday(&tv, NULL);
    lua_pushnumber(L, (double) tv.tv_sec + (double) tv.tv_usec / 1e6);
    return 1;
}

/* rproxy.log(level, ...): level is "err", "warn", "notice", "info" or "debug";
 * the other arguments are joined with tostring(). */
static int
l_log(lua_State *L)
{
    static const char *const  names[] = { "err", "warn", "notice", "info", "debug",
                                          "error", NULL };
    static const rp_log_level_e levels[] = { RP_LOG_ERR, RP_LOG_WARN, RP_LOG_NOTICE,
                                             RP_LOG_INFO, RP_LOG_DEBUG, RP_LOG_ERR };
    int                       level = luaL_checkoption(L, 1, NULL, names), i, n = lua_gettop(L);
    luaL_Buffer               b;
    lua_Debug                 ar;

    luaL_buffinit(L, &b);
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
        lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
        luaL_addvalue(&b);
    }
    for (i = 2; i <= n; i++) {
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
        if (i < n) {
            luaL_addchar(&b, ' ');
        }
    }
    luaL_pushresult(&b);
    rp_log(levels[level], "lua: %s", lua_tostring(L, -1));
    return 0;
}

/* rproxy.generation() -> the configuration generation this state serves
 * (1 at start, +1 per reload; 0 in the config check) */
static int
l_generation(lua_State *L)
{
    rp_lua_t  *lua = rp_lua_of(L);

    lua_pushinteger(L, lua && lua->gen ? ((rp_gen_t *) lua->gen)->id : 0);
    return 1;
}

/* rproxy.worker_id() -> 0..threads-1 (0 in the config check) */
static int
l_worker_id(lua_State *L)
{
    rp_lua_t  *lua = rp_lua_of(L);

    lua_pushinteger(L, lua && lua->w ? lua->w->id : 0);
    return 1;
}

static void
timer_on_fire(evutil_socket_t fd, short what, void *arg)
{
    rp_lua_timer_t  *t = arg;

    lua_rawgeti(t->lua->L, LUA_REGISTRYINDEX, t->ref);
    rp_lua_call(t->lua, 0, 0, 0, "rproxy.every");     /* errors are logged; it runs again */
}

/* rproxy.every(seconds, fn): fn() every seconds in each worker; in the config
 * check it only checks its arguments. */
static int
l_every(lua_State *L)
{
    rp_lua_t        *lua = rp_lua_of(L);
    lua_Number       s = luaL_checknumber(L, 1);
    rp_lua_timer_t  *t;
    struct timeval   tv;
    int              ref;

    luaL_checktype(L, 2, LUA_TFUNCTION);
    luaL_argcheck(L, s >= 0.001 && s < 1e9, 1, "an interval from 0.001 to 1e9 seconds");
    if (lua == NULL || lua->w == NULL) {
        return 0;
    }
    if (!lua->loading) {
        /* from a hook it would add a timer a request, for good */
        return luaL_error(L, "rproxy.every: call it at the top level of the file (or of a "
                             "module it requires), not in a hook or a timer");
    }
    lua_pushvalue(L, 2);
    ref = luaL_ref(L, LUA_REGISTRYINDEX);     /* may raise: before C owns anything */
    t = rp_xalloc(sizeof(rp_lua_timer_t));
    t->lua = lua;
    t->ref = ref;
    t->ev = event_new(lua->w->base, -1, EV_PERSIST, timer_on_fire, t);
    t->next = lua->timers;
    lua->timers = t;
    tv = rp_timeval(s);
    event_add(t->ev, &tv);
    return 0;
}

void
rp_lua_timers_free(rp_lua_t *lua)
{
    rp_lua_timer_t  *t, *next;

    for (t = lua->timers; t != NULL; t = next) {
        next = t->next;
        event_free(t->ev);
        free(t);
    }
    lua->timers = NULL;
}

void
rp_lua_api_open(lua_State *L, rp_lua_t *lua)
{
    static const luaL_Reg  api[] = {
        { "now", l_now },     { "log", l_log },
        { "worker_id", l_worker_id }, { "every", l_every },
        { "generation", l_generation },
        { NULL, NULL },
    };

    luaL_setfuncs(L, api, 0);
    rp_lua_shared_open(L);
    rp_lua_util_open(L);
}
