/* worker.c: a worker thread: its event loop, listeners, backends and
 * targets, client connections, and its graceful stop. */
#include "worker.h"

#include "http_conn.h"
#include "log.h"
#include "lua_state.h"
#include "server.h"

#include <event2/event.h>
#include <event2/listener.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static void
worker_on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                 void *arg)
{
    rp_listener_t  *li = arg;

    rp_http_conn_accept(li->w, li, li->conf, fd, sa, salen);
}

static void
worker_on_accept_error(struct evconnlistener *l, void *arg)
{
    rp_listener_t  *li = arg;

    /* EMFILE and friends: say so and keep the loop alive */
    rp_log_error("worker %u: accept() on %s failed: %s", li->w->id, li->conf->address,
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static void
worker_build_targets(rp_worker_t *w)
{
    const rp_config_t  *conf = w->conf;
    unsigned            i, j;
    rp_backend_t      **members;

    w->backends = rp_xalloc((conf->nbackends + 1) * sizeof(rp_backend_t));
    for (i = 0; i < conf->nbackends; i++) {
        rp_backend_init(&w->backends[i], w, w->base, &conf->backends[i]);
    }
    w->pools = rp_xalloc((conf->npools + 1) * sizeof(rp_target_t));
    for (i = 0; i < conf->npools; i++) {
        const rp_pool_conf_t  *pc = &conf->pools[i];

        members = rp_xalloc(pc->nmembers * sizeof(rp_backend_t *));
        for (j = 0; j < pc->nmembers; j++) {
            members[j] = &w->backends[pc->members[j]];
        }
        rp_target_init(&w->pools[i], pc->name, pc->balance, members, pc->nmembers,
                       &w->pending_seq);
        w->pools[i].pool = (int) i;
    }
    w->singles = rp_xalloc((conf->nbackends + 1) * sizeof(rp_target_t));
    for (i = 0; i < conf->nbackends; i++) {
        members = rp_xalloc(sizeof(rp_backend_t *));
        members[0] = &w->backends[i];
        rp_target_init(&w->singles[i], conf->backends[i].name, RP_BALANCE_FIRST, members, 1,
                       &w->pending_seq);
    }
}

static void
worker_free_targets(rp_worker_t *w)
{
    unsigned  i;

    for (i = 0; i < w->conf->npools; i++) {
        rp_target_cleanup(&w->pools[i]);
    }
    for (i = 0; i < w->conf->nbackends; i++) {
        rp_target_cleanup(&w->singles[i]);
        rp_backend_cleanup(&w->backends[i]);
    }
    free(w->pools);
    free(w->singles);
    free(w->backends);
}

static void
worker_close_listeners(rp_worker_t *w)
{
    unsigned  i;

    for (i = 0; i < w->conf->nlisteners; i++) {
        if (w->listeners[i].l != NULL) {
            evconnlistener_free(w->listeners[i].l);
            w->listeners[i].l = NULL;
        }
        free(w->listeners[i].skip);
        free(w->listeners[i].skip_abs);
        w->listeners[i].skip = w->listeners[i].skip_abs = NULL;
    }
}

/* The request fields a listener never forwards as sent: the ones the proxy
 * writes itself, and every TLS fact header, default and configured, so that
 * no client can spoof them on a TLS or a plain listener (NULL-terminated). */
static void
worker_build_skip(rp_listener_t *li)
{
    static const char *const  dflt[RP_TLS_H_COUNT] = {
        "X-SSL-Subject", "X-SSL-Issuer", "X-SSL-Serial", "X-SSL-NotBefore", "X-SSL-NotAfter",
        "X-SSL-Cipher", "X-SSL-Protocol", "X-SSL-SNI", "X-SSL-Fingerprint", "X-SSL-Certificate"
    };
    const rp_listen_conf_t   *lc = li->conf;
    const rp_tls_conf_t      *tls = lc->tls;
    unsigned                  n = 0, i, cap = 8 + 2 * RP_TLS_H_COUNT + (tls ? tls->nexts : 0);
    const char              **s = rp_xalloc((cap + 1) * sizeof(char *));

    s[n++] = "content-length";
    s[n++] = "via";
    if (lc->x_headers & RP_XH_FORWARDED_FOR) {
        s[n++] = "x-forwarded-for";
    }
    if (lc->x_headers & RP_XH_REAL_IP) {
        s[n++] = "x-real-ip";
    }
    if (lc->x_headers & RP_XH_FORWARDED_PROTO) {
        s[n++] = "x-forwarded-proto";
    }
    for (i = 0; i < RP_TLS_H_COUNT; i++) {
        s[n++] = dflt[i];
        if (tls != NULL && tls->headers[i] != NULL) {
            s[n++] = tls->headers[i];
        }
    }
    for (i = 0; tls != NULL && i < tls->nexts; i++) {
        s[n++] = tls->exts[i].header;
    }
    li->skip = s;
    li->skip_abs = rp_xalloc((n + 2) * sizeof(char *));
    memcpy(li->skip_abs, s, n * sizeof(char *));
    li->skip_abs[n] = "host";
}

static void
worker_maybe_exit(rp_worker_t *w)
{
    if (w->stopping && w->nconns == 0) {
        event_base_loopexit(w->base, NULL);
    }
}

static void
worker_on_grace(evutil_socket_t fd, short what, void *arg)
{
    rp_worker_t  *w = arg;

    rp_log_warn("worker %u: grace period over; closing %u connections", w->id, w->nconns);
    event_base_loopbreak(w->base);
}

static void
worker_on_stop(evutil_socket_t fd, short what, void *arg)
{
    rp_worker_t     *w = arg;
    rp_http_conn_t  *c, *next;
    struct timeval   tv;
    uint64_t         n;

    if (read(w->stop_fd, &n, sizeof(n)) < 0 || w->stopping) {
        return;
    }
    w->stopping = 1;
    worker_close_listeners(w);
    for (c = TAILQ_FIRST(&w->conns); c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        rp_http_conn_shutdown(c);          /* may free c */
    }
    tv.tv_sec = (time_t) w->conf->grace;
    tv.tv_usec = (suseconds_t) ((w->conf->grace - (double) tv.tv_sec) * 1e6);
    evtimer_add(w->grace_ev, &tv);
    worker_maybe_exit(w);
}

/* A base only this thread touches: no locks (nothing crosses threads but
 * the stop eventfd), and epoll changes batched per loop iteration. */
static struct event_base *
worker_base_new(void)
{
    struct event_config  *cfg = event_config_new();
    struct event_base    *base;

    if (cfg == NULL) {
        return NULL;
    }
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}

rp_worker_t *
rp_worker_new(rp_server_t *srv, unsigned id, rp_config_t *conf, const int *fds)
{
    rp_worker_t  *w;
    unsigned      i;
    char          err[1024];

    w = rp_xalloc(sizeof(rp_worker_t));
    w->id = id;
    w->srv = srv;
    w->conf = conf;
    rp_config_ref(conf);
    TAILQ_INIT(&w->conns);
    if ((w->base = worker_base_new()) == NULL) {
        rp_log_error("worker %u: event_base_new() failed", id);
        goto fail;
    }
    if ((w->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        rp_log_error("worker %u: eventfd() failed", id);
        event_base_free(w->base);
        goto fail;
    }
    w->stop_ev = event_new(w->base, w->stop_fd, EV_READ | EV_PERSIST, worker_on_stop, w);
    event_add(w->stop_ev, NULL);
    w->grace_ev = evtimer_new(w->base, worker_on_grace, w);
    w->listeners = rp_xalloc((conf->nlisteners + 1) * sizeof(rp_listener_t));
    for (i = 0; i < conf->nlisteners; i++) {
        rp_listener_t  *li = &w->listeners[i];

        li->w = w;
        li->conf = &conf->listeners[i];
        li->log = rp_server_listener_log(srv, i);
        li->l = evconnlistener_new(w->base, worker_on_accept, li,
                                   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fds[i]);
        if (li->l == NULL) {
            rp_log_error("worker %u: cannot listen on %s", id, li->conf->address);
            goto fail_listeners;
        }
        evconnlistener_set_error_cb(li->l, worker_on_accept_error);
        worker_build_skip(li);
    }
    worker_build_targets(w);
    if ((w->lua = rp_lua_new(w, conf, err, sizeof(err))) == NULL) {
        rp_log_error("worker %u: %s", id, err);
        worker_free_targets(w);
        goto fail_listeners;
    }
    return w;

fail_listeners:
    worker_close_listeners(w);
    free(w->listeners);
    event_free(w->stop_ev);
    close(w->stop_fd);
    event_free(w->grace_ev);
    event_base_free(w->base);
fail:
    rp_config_unref(conf);
    free(w);
    return NULL;
}

static void *
worker_main(void *arg)
{
    rp_worker_t  *w = arg;
    sigset_t      all;

    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);   /* signals are the main thread's */
    event_base_dispatch(w->base);
    return NULL;
}

int
rp_worker_start(rp_worker_t *w)
{
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        rp_log_error("worker %u: pthread_create() failed", w->id);
        return RP_ERROR;
    }
    return RP_OK;
}

void
rp_worker_stop(rp_worker_t *w)
{
    uint64_t  one = 1;

    /* the worker's base has no locks: cross the thread boundary by a file */
    if (write(w->stop_fd, &one, sizeof(one)) < 0) {
        rp_log_error("worker %u: cannot signal the stop: eventfd write failed", w->id);
    }
}

void
rp_worker_join(rp_worker_t *w)
{
    pthread_join(w->thread, NULL);
}

void
rp_worker_free(rp_worker_t *w)
{
    rp_http_conn_t  *c;

    w->stopping = 1;
    while ((c = TAILQ_FIRST(&w->conns)) != NULL) {
        rp_http_conn_abort(c, "worker stopped");   /* past the grace period; frees c */
        if (TAILQ_FIRST(&w->conns) == c) {
            TAILQ_REMOVE(&w->conns, c, link);      /* closed but still referenced: a bug */
            w->nconns--;
        }
    }
    worker_close_listeners(w);
    rp_lua_free(w->lua);
    worker_free_targets(w);
    free(w->listeners);
    event_free(w->stop_ev);
    close(w->stop_fd);
    event_free(w->grace_ev);
    event_base_free(w->base);
    rp_config_unref(w->conf);
    free(w);
}

int
rp_worker_stopping(const rp_worker_t *w)
{
    return w->stopping;
}

rp_target_t *
rp_worker_target(rp_worker_t *w, const rp_target_ref_t *to)
{
    return to->is_pool ? &w->pools[to->index] : &w->singles[to->index];
}

void
rp_worker_conn_added(rp_worker_t *w, rp_http_conn_t *c)
{
    TAILQ_INSERT_TAIL(&w->conns, c, link);
    w->nconns++;
}

void
rp_worker_conn_removed(rp_worker_t *w, rp_http_conn_t *c)
{
    TAILQ_REMOVE(&w->conns, c, link);
    w->nconns--;
    worker_maybe_exit(w);
}

rp_access_log_t *
rp_worker_access_log(rp_worker_t *w, const rp_listener_t *l, const rp_vhost_conf_t *v)
{
    /* the most specific declaration wins, "off" included */
    if (v != NULL && v->access_log.output != NULL) {
        return rp_server_vhost_log(w->srv, (unsigned) (v - w->conf->vhosts));
    }
    if (l != NULL && l->conf->access_log.output != NULL) {
        return l->log;
    }
    return rp_server_global_log(w->srv);
}
