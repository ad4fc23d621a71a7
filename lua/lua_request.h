/* lua_request.h: the request and response objects hooks receive. A box holds
 * the connection pointer only while a hook runs; a handle kept past its hook
 * raises instead of touching memory that may be gone. */
#ifndef RP_LUA_REQUEST_H
#define RP_LUA_REQUEST_H

#include "rp.h"
#include "lua_state.h"

#include <lua.h>

/* Registers the metatables; in the worker's state, once. */
void rp_lua_request_open(lua_State *L);

/* Pushes c's request object, valid until rp_lua_request_leave(). */
void rp_lua_request_enter(rp_lua_t *lua, rp_http_conn_t *c);
void rp_lua_request_leave(rp_lua_t *lua, rp_http_conn_t *c);

/* Pushes a response object over c for on_response (for_log 0) or on_log
 * (for_log 1); valid until rp_lua_response_leave() pops nothing but clears it. */
void *rp_lua_response_enter(rp_lua_t *lua, rp_http_conn_t *c, int for_log);
void rp_lua_response_leave(void *box);

/* One hook call: fn(req [, res] [, extra]). Everything that allocates (the
 * objects, the arguments) happens inside the protected call, so that a state
 * at its memory cap fails the hook, never the process. */
typedef struct {
    rp_lua_t        *lua;
    rp_http_conn_t  *c;
    int              fn_ref;      /* the hook                                  */
    int              with_res;    /* pass a response object                    */
    int              for_log;     /* ... the one of on_log                     */
    int              extra_ref;   /* a third argument (a pool object) or LUA_NOREF */
    int              nresults;    /* left on the stack on success              */
    void            *res_box;     /* internal                                  */
} rp_lua_hook_t;

/* Runs h in phase; RP_OK with nresults pushed, or RP_ERROR (logged). */
int rp_lua_run_hook(rp_lua_hook_t *h, unsigned phase, const char *what);

/* The request is over: drops its object and req.ctx. */
void rp_lua_request_end(rp_lua_t *lua, rp_http_conn_t *c);

/* The connection of a request object at idx, raising when it is stale. */
rp_http_conn_t *rp_lua_request_check(lua_State *L, int idx);

#endif
