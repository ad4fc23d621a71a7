/* config.c: the configuration snapshot's lifetime (ref/unref) and lookups by
 * name. lua/lua_config.c builds snapshots; nothing else writes one. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

static void config_access_log_free(rp_access_log_conf_t *al);
static void config_route_free(rp_route_conf_t *r);
static void config_vhost_free(rp_vhost_conf_t *v);
static void config_free(rp_config_t *conf);

void
rp_config_ref(rp_config_t *conf)
{
    atomic_fetch_add_explicit(&conf->refs, 1, memory_order_relaxed);
}

/* Frees conf with the last reference; NULL is ignored. The loader also frees
 * a half-built snapshot this way (refs == 1), so config_free() accepts any
 * zeroed-then-partly-filled snapshot. */
void
rp_config_unref(rp_config_t *conf)
{
    if (conf == NULL) {
        return;
    }
    /* acq_rel: every thread's reads of the snapshot happen before the free */
    if (atomic_fetch_sub_explicit(&conf->refs, 1, memory_order_acq_rel) == 1) {
        config_free(conf);
    }
}

const rp_backend_conf_t *
rp_config_backend(const rp_config_t *conf, const char *name)
{
    unsigned  i;

    for (i = 0; i < conf->nbackends; i++) {
        if (conf->backends[i].name != NULL && strcmp(conf->backends[i].name, name) == 0) {
            return &conf->backends[i];
        }
    }
    return NULL;
}

const rp_pool_conf_t *
rp_config_pool(const rp_config_t *conf, const char *name)
{
    unsigned  i;

    for (i = 0; i < conf->npools; i++) {
        if (conf->pools[i].name != NULL && strcmp(conf->pools[i].name, name) == 0) {
            return &conf->pools[i];
        }
    }
    return NULL;
}

static void
config_access_log_free(rp_access_log_conf_t *al)
{
    free(al->output);
    free(al->format);
}

/* A route's regexes are compiled only when match / has_rewrite say so: the
 * loader sets those after regcomp() succeeds. */
static void
config_route_free(rp_route_conf_t *r)
{
    if (r->match == RP_MATCH_REGEX) {
        regfree(&r->regex);
    }
    if (r->has_rewrite) {
        regfree(&r->rewrite_re);
    }
    free(r->pattern);
    free(r->rewrite_to);
}

static void
config_vhost_free(rp_vhost_conf_t *v)
{
    unsigned  i;

    for (i = 0; i < v->naliases; i++) {
        free(v->aliases[i]);
    }
    free(v->aliases);
    for (i = 0; i < v->nroutes; i++) {
        config_route_free(&v->routes[i]);
    }
    free(v->routes);
    config_access_log_free(&v->access_log);
    free(v->name);
}

static void
config_free(rp_config_t *conf)
{
    unsigned  i;

    for (i = 0; i < conf->nbackends; i++) {
        free(conf->backends[i].name);
        free(conf->backends[i].address);
        free(conf->backends[i].host);
    }
    free(conf->backends);
    for (i = 0; i < conf->npools; i++) {
        free(conf->pools[i].name);
        free(conf->pools[i].members);
        free(conf->pools[i].balancer);
    }
    free(conf->pools);
    for (i = 0; i < conf->ndicts; i++) {
        free(conf->dicts[i].name);
    }
    free(conf->dicts);
    for (i = 0; i < conf->nbalancers; i++) {
        free(conf->balancers[i]);
    }
    free(conf->balancers);
    for (i = 0; i < conf->nlisteners; i++) {
        free(conf->listeners[i].address);
        config_access_log_free(&conf->listeners[i].access_log);
    }
    free(conf->listeners);
    for (i = 0; i < conf->nvhosts; i++) {
        config_vhost_free(&conf->vhosts[i]);
    }
    free(conf->vhosts);
    config_access_log_free(&conf->access_log);
    free(conf->error_log);
    free(conf->pidfile);
    free(conf->path);
    free(conf);
}
