/* gen.c: generations: a snapshot as one worker serves it, built on a reload
 * next to the one serving, then retired once its last request ends. */
#include "gen.h"

#include "http_conn.h"
#include "log.h"
#include "lua_state.h"
#include "worker.h"

#include <stdlib.h>
#include <string.h>

void
rp_logset_free(rp_logset_t *logs)
{
    if (logs != NULL) {
        free(logs->listeners);
        free(logs->vhosts);
        free(logs);
    }
}

/* Can connections opened for a keep serving b? Same place, same TLS. */
static int
gen_backend_same(const rp_backend_conf_t *a, const rp_backend_conf_t *b)
{
    return strcmp(a->name, b->name) == 0 && a->addrlen == b->addrlen
           && memcmp(&a->addr, &b->addr, a->addrlen) == 0 && (a->tls == NULL) == (b->tls == NULL)
           && a->enabled == b->enabled && a->connections == b->connections;
}

/* prev's backend for bc, with a new reference, or NULL. */
static rp_backend_t *
gen_find_backend(rp_gen_t *prev, const rp_backend_conf_t *bc)
{
    unsigned  i;

    for (i = 0; prev != NULL && i < prev->conf->nbackends; i++) {
        if (gen_backend_same(prev->backends[i]->conf, bc) && !prev->backends[i]->retired) {
            rp_backend_ref(prev->backends[i]);
            return prev->backends[i];
        }
    }
    return NULL;
}

static void
gen_build_targets(rp_gen_t *g)
{
    const rp_config_t  *conf = g->conf;
    unsigned            i, j;
    rp_backend_t      **members;

    g->pools = rp_xalloc((conf->npools + 1) * sizeof(rp_target_t));
    for (i = 0; i < conf->npools; i++) {
        const rp_pool_conf_t  *pc = &conf->pools[i];

        members = rp_xalloc(pc->nmembers * sizeof(rp_backend_t *));
        for (j = 0; j < pc->nmembers; j++) {
            members[j] = g->backends[pc->members[j]];
        }
        rp_target_init(&g->pools[i], pc->name, pc->balance, members, pc->nmembers,
                       &g->w->pending_seq);
        g->pools[i].pool = (int) i;
    }
    g->singles = rp_xalloc((conf->nbackends + 1) * sizeof(rp_target_t));
    for (i = 0; i < conf->nbackends; i++) {
        members = rp_xalloc(sizeof(rp_backend_t *));
        members[0] = g->backends[i];
        rp_target_init(&g->singles[i], conf->backends[i].name, RP_BALANCE_FIRST, members, 1,
                       &g->w->pending_seq);
    }
}

static void
gen_free(rp_gen_t *g)
{
    unsigned  i;

    rp_lua_free(g->lua);
    for (i = 0; g->pools != NULL && i < g->conf->npools; i++) {
        rp_target_cleanup(&g->pools[i]);
    }
    for (i = 0; g->singles != NULL && i < g->conf->nbackends; i++) {
        rp_target_cleanup(&g->singles[i]);
    }
    for (i = 0; g->backends != NULL && i < g->conf->nbackends; i++) {
        if (g->backends[i] != NULL) {
            rp_backend_unref(g->backends[i]);
        }
    }
    free(g->pools);
    free(g->singles);
    free(g->backends);
    rp_logset_free(g->logs);
    rp_config_unref(g->conf);
    free(g);
}

rp_gen_t *
rp_gen_new(rp_worker_t *w, rp_config_t *conf, unsigned id, rp_logset_t *logs, rp_gen_t *prev)
{
    rp_gen_t  *g;
    unsigned   i;
    char       err[1024];

    g = rp_xalloc(sizeof(rp_gen_t));
    g->id = id;
    g->w = w;
    g->conf = conf;
    g->logs = logs;
    g->refs = 1;
    rp_config_ref(conf);
    /* the Lua state first: until it exists, nothing of prev has changed */
    if ((g->lua = rp_lua_new(g, conf, err, sizeof(err))) == NULL) {
        rp_log_error("worker %u: generation %u: %s", w->id, id, err);
        g->logs = NULL;                    /* the caller keeps them */
        gen_free(g);
        return NULL;
    }
    g->backends = rp_xalloc((conf->nbackends + 1) * sizeof(rp_backend_t *));
    for (i = 0; i < conf->nbackends; i++) {
        g->backends[i] = gen_find_backend(prev, &conf->backends[i]);
        if (g->backends[i] != NULL) {
            rp_backend_adopt(g->backends[i], &conf->backends[i], conf);
        } else {
            g->backends[i] = rp_backend_new(w, w->base, &conf->backends[i], conf);
        }
    }
    gen_build_targets(g);
    rp_lua_bind_pools(g->lua);
    return g;
}

/* Is b one of next's backends? */
static int
gen_lists(const rp_gen_t *next, const rp_backend_t *b)
{
    unsigned  i;

    for (i = 0; i < next->conf->nbackends; i++) {
        if (next->backends[i] == b) {
            return 1;
        }
    }
    return 0;
}

rp_target_t *
rp_gen_same_target(rp_gen_t *next, const rp_target_t *t)
{
    const rp_pool_conf_t     *p;
    const rp_backend_conf_t  *b;

    if (t->pool >= 0 && (p = rp_config_pool(next->conf, t->name)) != NULL) {
        return &next->pools[p->index];
    }
    if (t->pool < 0 && (b = rp_config_backend(next->conf, t->name)) != NULL) {
        return &next->singles[b->index];
    }
    return NULL;
}

static void
gen_move_waiters(rp_target_t *from, rp_gen_t *next)
{
    rp_target_t   *to = rp_gen_same_target(next, from);
    rp_pending_t  *p;

    while ((p = TAILQ_FIRST(&from->pending)) != NULL) {
        rp_target_dequeue(p);
        if (to == NULL) {
            p->fail(p, 503);
        } else {
            rp_http_conn_retarget(p, to);
            rp_target_enqueue(to, p);
        }
    }
}

void
rp_gen_retire(rp_gen_t *prev, rp_gen_t *next)
{
    unsigned  i;

    for (i = 0; i < prev->conf->nbackends; i++) {
        if (!gen_lists(next, prev->backends[i])) {
            rp_backend_retire(prev->backends[i]);
        }
    }
    for (i = 0; i < prev->conf->npools; i++) {
        gen_move_waiters(&prev->pools[i], next);
    }
    for (i = 0; i < prev->conf->nbackends; i++) {
        gen_move_waiters(&prev->singles[i], next);
    }
    rp_lua_timers_free(prev->lua);          /* its rproxy.every timers stop now */
}

void
rp_gen_ref(rp_gen_t *g)
{
    g->refs++;
}

void
rp_gen_unref(rp_gen_t *g)
{
    if (--g->refs == 0) {
        gen_free(g);
    }
}

rp_target_t *
rp_gen_target(rp_gen_t *g, const rp_target_ref_t *to)
{
    return to->is_pool ? &g->pools[to->index] : &g->singles[to->index];
}

rp_target_t *
rp_gen_single_of(rp_gen_t *g, const rp_backend_t *b)
{
    unsigned  i;

    for (i = 0; i < g->conf->nbackends; i++) {
        if (g->backends[i] == b) {
            return &g->singles[i];
        }
    }
    return NULL;
}
