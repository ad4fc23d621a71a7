/* lua_balancer.h: balancers written in Lua: the pool and backend objects
 * they see, and calling one for a request. */
#ifndef RP_LUA_BALANCER_H
#define RP_LUA_BALANCER_H

#include "rp.h"
#include "lua_state.h"

/* Builds the pool objects of the worker's state (after its targets exist). */
void rp_lua_balancer_open(rp_lua_t *lua);
void rp_lua_balancer_cleanup(rp_lua_t *lua);

/* Calls the Lua balancer of pool `pool` for c. Returns RP_OK with *out the
 * chosen backend, RP_DECLINED when it returned nil (use the built-in
 * method), RP_ERROR when it failed or returned something unusable (logged). */
int rp_lua_balance(rp_lua_t *lua, unsigned pool, rp_http_conn_t *c, rp_backend_t **out);

#endif
