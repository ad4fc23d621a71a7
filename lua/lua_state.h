/* lua_state.h: a worker's Lua: its lua_State (capped allocator), the hooks
 * rproxy.lua defines (looked up once, kept as registry references), the
 * instruction budget of a hook call, and rp_lua_call(), the only way C
 * enters Lua. */
#ifndef RP_LUA_STATE_H
#define RP_LUA_STATE_H

#include "rp.h"
#include "config.h"

#include <lua.h>

struct event;

/* What a hook may do, checked by the request object's methods. */
#define RP_PHASE_REQUEST  0x01u   /* on_request: read, rewrite, route, respond   */
#define RP_PHASE_BALANCE  0x02u   /* a balancer: read, set headers              */
#define RP_PHASE_RESPONSE 0x04u   /* on_response: read; change response fields  */
#define RP_PHASE_LOG      0x08u   /* on_log: read only                          */

/* What the top-level code of rproxy.lua may run, in the main thread's
 * check and in each worker's state: about a second of PUC Lua. */
#define RP_LUA_LOAD_INSTRUCTIONS 100000000UL

/* The count hook charges a call this many instructions at a time, so a
 * budget is a multiple of it; settings.lua.instructions may not be less. */
#define RP_LUA_BUDGET_STEP 1000

typedef struct rp_lua_timer_s rp_lua_timer_t;

typedef struct rp_lua_s {
    lua_State          *L;              /* owned                                        */
    rp_worker_t        *w;              /* back-pointer; NULL in the config loader      */
    struct rp_gen_s    *gen;            /* back-pointer: the generation it serves       */
    const rp_config_t  *conf;           /* borrowed: the snapshot the state serves      */
    size_t              mem_used;       /* bytes the allocator has handed out           */
    size_t              mem_limit;      /* conf->lua_memory                             */
    int                 mem_failed;     /* an allocation was refused by the cap         */
    unsigned long       budget;         /* instructions per hook call                   */
    int                 budget_hit;     /* the last call ran out of instructions        */
    unsigned long       used;           /* instructions charged to the running call     */
    int                 in_call;        /* rp_lua_call() is running                      */
    int                 loading;        /* the file's top-level code is running          */
    unsigned            phase;          /* RP_PHASE_* of the running hook; 0: none      */
    int                 on_request;     /* registry refs, LUA_NOREF when not defined    */
    int                 on_response;
    int                 on_log;
    int                *route_hooks;    /* owned: per route, flattened by vhost          */
    unsigned           *route_base;     /* owned: first route_hooks index per vhost     */
    int                *pool_balancers; /* owned: per pool, ref or LUA_NOREF             */
    int                *pool_objects;   /* owned: per pool, ref of its Lua pool table   */
    rp_lua_timer_t     *timers;         /* owned list: rproxy.every                     */
} rp_lua_t;

/* A lua_Alloc's work under a memory cap: *used bytes are held, limit is the
 * most; a refusal sets *failed and returns NULL, which Lua raises as a memory
 * error. When ptr is NULL, osize is a type tag, not a size. */
void *rp_lua_capped_realloc(size_t *used, size_t limit, int *failed, void *ptr, size_t osize,
                            size_t nsize);

/* From a count hook whose budget ran out: raises "file:line: ..." for the
 * interrupted function, the top-level code's message when loading. */
void rp_lua_budget_error(lua_State *L, unsigned long budget, int loading);

/* Creates a worker's state: evaluates conf->path in it (declarations are
 * already validated by the main thread; here they only hand over the hook
 * functions). NULL on failure with the reason in err. */
rp_lua_t *rp_lua_new(struct rp_gen_s *g, const rp_config_t *conf, char *err, size_t errlen);

/* Builds the pool objects Lua balancers see, once g's targets exist. */
void rp_lua_bind_pools(rp_lua_t *lua);
void rp_lua_free(rp_lua_t *lua);

/* Calls the function below nargs arguments on the stack in protected mode,
 * with the instruction budget and the memory cap, in the given phase.
 * Returns RP_OK with nresults on the stack, or RP_ERROR with nothing pushed
 * and the error (file:line, traceback) logged under what. */
int rp_lua_call(rp_lua_t *lua, int nargs, int nresults, unsigned phase, const char *what);

/* The route hook of route j of vhost i, or LUA_NOREF. */
int rp_lua_route_hook(const rp_lua_t *lua, unsigned vhost, unsigned route);

/* Installs the runtime part of the rproxy table (now, log, worker_id, every,
 * shared, helpers) into the table on top of the stack. lua may be NULL (the
 * config loader's state: every() only checks its arguments there). */
void rp_lua_api_open(lua_State *L, rp_lua_t *lua);

/* Stops and frees the rproxy.every timers. */
void rp_lua_timers_free(rp_lua_t *lua);

/* The rp_lua_t of a state (NULL for the loader's). */
rp_lua_t *rp_lua_of(lua_State *L);

/* Raises unless the running hook is in one of phases. */
void rp_lua_check_phase(lua_State *L, unsigned phases);

#endif
