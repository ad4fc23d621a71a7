/* lua_balancer.c: balancers in Lua. A pool object is a table built once per
 * worker state: { name = "app", backends = { b1, b2, ... } }, whose backend
 * objects read the live counters of this worker on each access. */
#include "lua_balancer.h"

#include "http_conn.h"
#include "gen.h"
#include "log.h"
#include "lua_request.h"
#include "upstream.h"
#include "worker.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#define BACKEND_MT "rproxy.backend"

typedef struct {
    rp_backend_t  *b;            /* borrowed: lives as long as the worker */
    rp_target_t   *single;       /* borrowed: its one-backend target      */
} backend_box_t;

static int
l_backend_index(lua_State *L)
{
    backend_box_t  *box = luaL_checkudata(L, 1, BACKEND_MT);
    const char     *key = luaL_checkstring(L, 2);
    rp_backend_t   *b = box->b;

    if (strcmp(key, "name") == 0) {
        lua_pushstring(L, b->conf->name);
    } else if (strcmp(key, "address") == 0) {
        lua_pushstring(L, b->conf->address);
    } else if (strcmp(key, "up") == 0) {
        lua_pushboolean(L, b->conf->enabled && rp_backend_live(b) > 0);
    } else if (strcmp(key, "idle") == 0) {
        lua_pushinteger(L, b->nidle);
    } else if (strcmp(key, "active") == 0) {
        lua_pushinteger(L, b->nactive);
    } else if (strcmp(key, "pending") == 0) {
        lua_pushinteger(L, box->single->npending);
    } else if (strcmp(key, "rtt") == 0) {
        lua_pushnumber(L, b->rtt);
    } else if (strcmp(key, "weight") == 0) {
        lua_pushinteger(L, b->conf->weight);
    } else if (strcmp(key, "failures") == 0) {
        lua_pushinteger(L, b->failures);
    } else if (strcmp(key, "connections") == 0) {
        lua_pushinteger(L, b->nconns);
    } else {
        lua_pushnil(L);
    }
    return 1;
}

static int
l_backend_tostring(lua_State *L)
{
    backend_box_t  *box = luaL_checkudata(L, 1, BACKEND_MT);

    lua_pushfstring(L, "rproxy.backend (%s)", box->b->conf->name);
    return 1;
}

/* [] -> [] ; fills lua->pool_objects. Runs in the state's setup (protected). */
void
rp_lua_balancer_open(rp_lua_t *lua)
{
    lua_State          *L = lua->L;
    const rp_config_t  *conf = lua->conf;
    rp_gen_t           *g = lua->gen;
    unsigned            i, j;
    backend_box_t      *box;

    luaL_newmetatable(L, BACKEND_MT);
    lua_pushcfunction(L, l_backend_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_backend_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "rproxy object");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
    if (lua->pool_objects == NULL) {
        lua->pool_objects = rp_xalloc((conf->npools + 1) * sizeof(int));
        for (i = 0; i < conf->npools; i++) {
            lua->pool_objects[i] = LUA_NOREF;
        }
    }
    for (i = 0; i < conf->npools; i++) {
        const rp_target_t  *t = &g->pools[i];

        lua_createtable(L, 0, 2);
        lua_pushstring(L, conf->pools[i].name);
        lua_setfield(L, -2, "name");
        lua_createtable(L, (int) t->nmembers, 0);
        for (j = 0; j < t->nmembers; j++) {
            box = lua_newuserdatauv(L, sizeof(backend_box_t), 0);
            box->b = t->members[j];
            box->single = &g->singles[t->members[j]->conf->index];
            luaL_setmetatable(L, BACKEND_MT);
            lua_rawseti(L, -2, (lua_Integer) j + 1);
        }
        lua_setfield(L, -2, "backends");
        lua->pool_objects[i] = luaL_ref(L, LUA_REGISTRYINDEX);
    }
}

void
rp_lua_balancer_cleanup(rp_lua_t *lua)
{
    free(lua->pool_objects);
    lua->pool_objects = NULL;
}

int
rp_lua_balance(rp_lua_t *lua, unsigned pool, rp_http_conn_t *c, rp_backend_t **out)
{
    lua_State            *L = lua->L;
    const rp_target_t    *t = &lua->gen->pools[pool];
    const backend_box_t  *box;
    unsigned              j;
    int                   rc;
    rp_lua_hook_t         h = { 0 };

    if (lua->pool_objects == NULL || lua->pool_objects[pool] == LUA_NOREF) {
        return RP_ERROR;                   /* the state could not build it (memory) */
    }
    h.lua = lua;
    h.c = c;
    h.fn_ref = lua->pool_balancers[pool];
    h.extra_ref = lua->pool_objects[pool];
    h.nresults = 1;
    rc = rp_lua_run_hook(&h, RP_PHASE_BALANCE, "balancer");
    if (rc != RP_OK) {
        return RP_ERROR;
    }
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return RP_DECLINED;
    }
    box = luaL_testudata(L, -1, BACKEND_MT);
    lua_pop(L, 1);                         /* the pool object keeps the box alive */
    if (box != NULL) {
        for (j = 0; j < t->nmembers; j++) {
            if (t->members[j] == box->b) {
                break;
            }
        }
        if (j == t->nmembers) {
            rp_log_error("lua: balancer of pool '%s' returned backend '%s', not a member",
                         lua->conf->pools[pool].name, box->b->conf->name);
            return RP_ERROR;
        }
        if (!box->b->conf->enabled || box->b->nconns == box->b->ndown) {
            rp_log_error("lua: balancer of pool '%s' returned backend '%s', which is DOWN",
                         lua->conf->pools[pool].name, box->b->conf->name);
            return RP_ERROR;
        }
        *out = box->b;
        return RP_OK;
    }
    rp_log_error("lua: balancer of pool '%s' returned neither a backend of the pool nor nil",
                 lua->conf->pools[pool].name);
    return RP_ERROR;
}
