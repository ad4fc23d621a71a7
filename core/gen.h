/* gen.h: a generation: one configuration snapshot as one worker serves it:
 * its backends (shared with the next generation when unchanged), targets,
 * Lua state and access logs. A request keeps the generation it started in
 * until it ends, so a reload never changes the rules under a request. */
#ifndef RP_GEN_H
#define RP_GEN_H

#include "rp.h"
#include "config.h"
#include "upstream.h"

/* The access logs of one snapshot (borrowed log objects; owned arrays). */
typedef struct {
    rp_access_log_t    *global;
    rp_access_log_t   **listeners;      /* owned array, conf->nlisteners */
    rp_access_log_t   **vhosts;         /* owned array, conf->nvhosts    */
} rp_logset_t;

typedef struct rp_gen_s {
    unsigned            id;             /* 1 at start, +1 per reload               */
    rp_worker_t        *w;              /* back-pointer                            */
    rp_config_t        *conf;           /* a reference                             */
    rp_backend_t      **backends;       /* references, conf->nbackends             */
    rp_target_t        *pools;          /* owned, conf->npools                     */
    rp_target_t        *singles;        /* owned, one per backend                  */
    struct rp_lua_s    *lua;            /* owned                                   */
    rp_logset_t        *logs;           /* owned                                   */
    int                 refs;           /* requests in it, +1 while current        */
} rp_gen_t;

/* Builds a generation for conf (takes a reference) in worker w, reusing the
 * backends of prev (may be NULL) whose name, address and TLS settings are
 * unchanged, with their open connections. Takes ownership of logs. NULL on
 * failure, logged, with nothing changed. */
rp_gen_t *rp_gen_new(rp_worker_t *w, rp_config_t *conf, unsigned id, rp_logset_t *logs,
                     rp_gen_t *prev);

/* prev is no longer current: its waiters move to next's targets of the same
 * name (503 when there is none), and its backends that next does not list
 * stop taking requests (idle ones close now, busy ones when they finish). */
void rp_gen_retire(rp_gen_t *prev, rp_gen_t *next);

void rp_gen_ref(rp_gen_t *g);
void rp_gen_unref(rp_gen_t *g);          /* frees at zero */

rp_target_t *rp_gen_target(rp_gen_t *g, const rp_target_ref_t *to);

/* g's target named like t (a pool of that name, else a backend), or NULL. */
rp_target_t *rp_gen_same_target(rp_gen_t *g, const rp_target_t *t);

/* g's one-backend target of b, or NULL when g does not list b. */
rp_target_t *rp_gen_single_of(rp_gen_t *g, const rp_backend_t *b);

void rp_logset_free(rp_logset_t *logs);

#endif
