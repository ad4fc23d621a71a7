/* config.c: the configuration snapshot's lifetime (ref/unref) and lookups by
 * name. lua/lua_config.c builds snapshots; nothing else writes one. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "tls.h"

static void config_access_log_free(rp_access_log_conf_t *al);
static void config_route_free(rp_route_conf_t *r);
static void config_vhost_free(rp_vhost_conf_t *v);
static void config_free(rp_config_t *conf);
static void config_tls_certs_free(rp_tls_cert_conf_t *certs, unsigned n);
static void config_tls_free(rp_tls_conf_t *tc);
static void config_tls_client_free(rp_tls_client_conf_t *cc);

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
config_tls_certs_free(rp_tls_cert_conf_t *certs, unsigned n)
{
    unsigned  i;

    for (i = 0; i < n; i++) {
        free(certs[i].cert);
        free(certs[i].key);
    }
    free(certs);
}

static void
config_tls_free(rp_tls_conf_t *tc)
{
    unsigned  i;

    if (tc == NULL) {
        return;
    }
    config_tls_certs_free(tc->certs, tc->ncerts);
    free(tc->ciphers);
    free(tc->ciphersuites);
    free(tc->groups);
    for (i = 0; i < tc->nalpn; i++) {
        free(tc->alpn[i]);
    }
    free(tc->alpn);
    free(tc->client_ca);
    free(tc->client_ca_dir);
    free(tc->crl);
    free(tc->ticket_key_file);
    for (i = 0; i < RP_TLS_H_COUNT; i++) {
        free(tc->headers[i]);
    }
    for (i = 0; i < tc->nexts; i++) {
        free(tc->exts[i].header);
        free(tc->exts[i].ext);
    }
    free(tc->exts);
    free(tc);
}

static void
config_tls_client_free(rp_tls_client_conf_t *cc)
{
    if (cc == NULL) {
        return;
    }
    free(cc->ca);
    free(cc->sni);
    free(cc->name);
    free(cc->cert);
    free(cc->key);
    free(cc);
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
    rp_tls_certset_free(v->tls_certset);
    config_tls_certs_free(v->tls_certs, v->ntls_certs);
    free(v->name);
}

static void
config_free(rp_config_t *conf)
{
    unsigned  i;

    /* TLS objects first: a listener's borrows the vhosts and its own tls */
    for (i = 0; i < conf->nlisteners; i++) {
        rp_tls_server_free(conf->listeners[i].tls_server);
    }
    for (i = 0; i < conf->nbackends; i++) {
        rp_tls_client_free(conf->backends[i].tls_client);
        config_tls_client_free(conf->backends[i].tls);
    }
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
        config_tls_free(conf->listeners[i].tls);
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
    free(conf->source);
    free(conf);
}
