/* worker.c: a worker thread: its event loop, listeners, generations, client
 * connections, reloads applied at request boundaries, and its graceful stop. */
#include "worker.h"

#include "http_conn.h"
#include "log.h"
#include "lua_state.h"
#include "server.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

    rp_http_conn_accept(li->w, li, fd, sa, salen);
}

/* How long a listener stops accepting when the process is out of
 * descriptors or memory (nginx waits 500 ms too). */
#define ACCEPT_PAUSE_SECONDS 0.5

static void
worker_on_accept_error(struct evconnlistener *l, void *arg)
{
    rp_listener_t   *li = arg;
    int              err = EVUTIL_SOCKET_ERROR();
    struct timeval   tv;

    if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
        rp_log_error("worker %u: accept() on %s failed: %s", li->w->id, li->conf->address,
                     evutil_socket_error_to_string(err));
        return;
    }
    /* the connection stays in the backlog and the socket readable: accepting
     * again at once would spin the loop (and the log) until a descriptor is
     * freed. So the listener rests; one line per pause. */
    rp_log_error("worker %u: accept() on %s failed: %s; accepting again in %.1f s", li->w->id,
                 li->conf->address, evutil_socket_error_to_string(err), ACCEPT_PAUSE_SECONDS);
    evconnlistener_disable(l);
    tv = rp_timeval(ACCEPT_PAUSE_SECONDS);
    evtimer_add(li->accept_pause, &tv);
}

static void
worker_on_accept_pause_end(evutil_socket_t fd, short what, void *arg)
{
    rp_listener_t  *li = arg;

    if (li->l != NULL) {                   /* not closed by a reload meanwhile */
        evconnlistener_enable(li->l);
    }
}

/* ---- listeners ------------------------------------------------------------------ */

/* The request fields a listener never forwards as sent: the ones the proxy
 * writes itself, and every TLS fact header, default or configured on any
 * listener of the snapshot (backends behind a plain listener trust the same
 * names), so that no client can spoof them (NULL-terminated). */
static void
listener_build_skip(rp_listener_t *li)
{
    static const char *const  dflt[RP_TLS_H_COUNT] = {
        "X-SSL-Subject", "X-SSL-Issuer", "X-SSL-Serial", "X-SSL-NotBefore", "X-SSL-NotAfter",
        "X-SSL-Cipher", "X-SSL-Protocol", "X-SSL-SNI", "X-SSL-Fingerprint", "X-SSL-Certificate"
    };
    const rp_listen_conf_t   *lc = li->conf;
    const rp_config_t        *conf = li->conf_ref;
    const rp_tls_conf_t      *tls;
    unsigned                  n = 0, i, k, cap = 8 + RP_TLS_H_COUNT;
    const char              **s;

    for (k = 0; k < conf->nlisteners; k++) {
        if ((tls = conf->listeners[k].tls) != NULL) {
            cap += RP_TLS_H_COUNT + tls->nexts;
        }
    }
    s = rp_xalloc((cap + 1) * sizeof(char *));

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
    }
    for (k = 0; k < conf->nlisteners; k++) {
        if ((tls = conf->listeners[k].tls) == NULL) {
            continue;
        }
        for (i = 0; i < RP_TLS_H_COUNT; i++) {
            if (tls->headers[i] != NULL) {
                s[n++] = tls->headers[i];
            }
        }
        for (i = 0; i < tls->nexts; i++) {
            s[n++] = tls->exts[i].header;
        }
    }
    rp_names_cleanup(&li->skip);
    rp_names_cleanup(&li->skip_abs);
    rp_names_init(&li->skip, s, n);
    s[n++] = "host";
    rp_names_init(&li->skip_abs, s, n);
    free(s);
}

/* TCP_DEFER_ACCEPT on li's socket as lc asks (a reload that keeps the
 * socket may change it). With it, the kernel hands a connection over once its
 * first bytes came (a silent one after about a second, its SYN-ACK resent), so
 * that the accept reads the request at once (rp_http_conn_accept) instead of
 * watching the socket first. 1 s, as nginx's "deferred" and HAProxy's
 * "defer-accept" set it. */
static void
listener_set_defer(rp_listener_t *li, const rp_listen_conf_t *lc)
{
    int  seconds = lc->defer_accept ? 1 : 0;

    if (setsockopt(evconnlistener_get_fd(li->l), IPPROTO_TCP, TCP_DEFER_ACCEPT, &seconds,
                   sizeof(seconds))
        != 0) {
        rp_log_error("worker %u: TCP_DEFER_ACCEPT on %s: %s", li->w->id, lc->address,
                     strerror(errno));
    }
}

/* Points li at lc (of conf, which it references) and its access log. */
static void
listener_set_conf(rp_listener_t *li, rp_config_t *conf, const rp_listen_conf_t *lc,
                  rp_access_log_t *log)
{
    if (li->conf == NULL || li->conf->defer_accept != lc->defer_accept) {
        listener_set_defer(li, lc);
    }
    rp_config_ref(conf);
    if (li->conf_ref != NULL) {
        rp_config_unref(li->conf_ref);
    }
    li->conf_ref = conf;
    li->conf = lc;
    li->log = log;
    listener_build_skip(li);               /* needs conf_ref set */
}

static rp_listener_t *
listener_new(rp_worker_t *w, rp_config_t *conf, const rp_listen_conf_t *lc, int fd,
             rp_access_log_t *log)
{
    rp_listener_t  *li = rp_xalloc(sizeof(rp_listener_t));

    li->w = w;
    li->refs = 1;
    li->l = evconnlistener_new(w->base, worker_on_accept, li,
                               LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
    if (li->l == NULL) {
        rp_log_error("worker %u: cannot listen on %s", w->id, lc->address);
        close(fd);
        free(li);
        return NULL;
    }
    evconnlistener_set_error_cb(li->l, worker_on_accept_error);
    li->accept_pause = evtimer_new(w->base, worker_on_accept_pause_end, li);
    rp_parkq_init(&li->parkq, w->base, rp_client_park_expired, NULL);
    listener_set_conf(li, conf, lc, log);
    return li;
}

static void
listener_close(rp_listener_t *li)
{
    if (li->l != NULL) {
        evconnlistener_free(li->l);
        li->l = NULL;
    }
}

void
rp_listener_ref(rp_listener_t *li)
{
    li->refs++;
}

void
rp_listener_unref(rp_listener_t *li)
{
    if (--li->refs > 0) {
        return;
    }
    listener_close(li);
    event_free(li->accept_pause);
    rp_parkq_cleanup(&li->parkq);          /* empty: a parked client holds a reference */
    rp_names_cleanup(&li->skip);
    rp_names_cleanup(&li->skip_abs);
    rp_config_unref(li->conf_ref);
    free(li);
}

static void
worker_close_listeners(rp_worker_t *w)
{
    unsigned  i;

    for (i = 0; i < w->nlisteners; i++) {
        listener_close(w->listeners[i]);
    }
}

static void
worker_drop_listeners(rp_worker_t *w)
{
    unsigned  i;

    for (i = 0; i < w->nlisteners; i++) {
        rp_listener_unref(w->listeners[i]);
    }
    free(w->listeners);
    w->listeners = NULL;
    w->nlisteners = 0;
}

static int
same_address(const rp_listen_conf_t *a, const rp_listen_conf_t *b)
{
    return a->addrlen == b->addrlen && memcmp(&a->addr, &b->addr, a->addrlen) == 0;
}

/* The listeners of conf: an unchanged address keeps its socket (no refused
 * connection during a reload), a new one takes fds[i], a gone one closes
 * (its clients finish on it). */
static void
worker_swap_listeners(rp_worker_t *w, rp_config_t *conf, const int *fds, rp_logset_t *logs)
{
    rp_listener_t  **next = rp_xalloc((conf->nlisteners + 1) * sizeof(rp_listener_t *));
    unsigned         i, j, n = 0;

    for (i = 0; i < conf->nlisteners; i++) {
        const rp_listen_conf_t  *lc = &conf->listeners[i];
        rp_access_log_t         *log = logs->listeners[i];

        for (j = 0; j < w->nlisteners; j++) {
            if (w->listeners[j] != NULL && same_address(w->listeners[j]->conf, lc)) {
                break;
            }
        }
        if (j < w->nlisteners) {
            next[n] = w->listeners[j];
            w->listeners[j] = NULL;
            listener_set_conf(next[n++], conf, lc, log);
            if (fds[i] >= 0) {
                close(fds[i]);
            }
        } else if (fds[i] >= 0) {
            if ((next[n] = listener_new(w, conf, lc, fds[i], log)) != NULL) {
                n++;
            }
        } else {
            rp_log_error("worker %u: reload: no socket for the new listener %s", w->id,
                         lc->address);
        }
    }
    for (j = 0; j < w->nlisteners; j++) {
        if (w->listeners[j] != NULL) {
            rp_log_notice("worker %u: listener %s removed", w->id, w->listeners[j]->conf->address);
            listener_close(w->listeners[j]);
            rp_listener_unref(w->listeners[j]);
        }
    }
    free(w->listeners);
    w->listeners = next;
    w->nlisteners = n;
}

/* ---- stop and reload -------------------------------------------------------------- */

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
worker_begin_stop(rp_worker_t *w)
{
    rp_client_t     *cl, *next;
    struct timeval   tv;
    double           grace = w->gen->conf->grace;

    w->stopping = 1;
    worker_close_listeners(w);
    for (cl = TAILQ_FIRST(&w->clients); cl != NULL; cl = next) {
        next = TAILQ_NEXT(cl, link);
        rp_client_shutdown(cl);            /* may free cl */
    }
    tv = rp_timeval(grace);
    evtimer_add(w->grace_ev, &tv);
    worker_maybe_exit(w);
}

static void
swap_free(rp_swap_t *s)
{
    unsigned  i;

    for (i = 0; s->fds != NULL && i < s->conf->nlisteners; i++) {
        if (s->fds[i] >= 0) {
            close(s->fds[i]);
        }
    }
    free(s->fds);
    rp_logset_free(s->logs);
    rp_config_unref(s->conf);
    if (atomic_fetch_sub(&s->reload->remaining, 1) == 1) {
        free(s->reload);
    }
    free(s);
}

/* A reload, at a request boundary: new requests get the new generation,
 * requests in flight finish in theirs. */
static void
worker_apply_swap(rp_worker_t *w, rp_swap_t *s)
{
    rp_gen_t     *prev = w->gen, *next;
    rp_reload_t  *r = s->reload;

    /* the generation first: if this worker cannot build it (its Lua state
     * failed), the listeners keep the old settings and access logs, and
     * swap_free() closes the new sockets; swapped before, they pointed at
     * the logs swap_free() then freed */
    next = rp_gen_new(w, s->conf, r->id, s->logs, prev);
    if (next == NULL) {
        rp_log_error("worker %u: reload: generation %u not built; generation %u goes on",
                     w->id, r->id, prev->id);
    } else {
        worker_swap_listeners(w, s->conf, s->fds, s->logs);
        free(s->fds);
        s->fds = NULL;
        s->logs = NULL;                    /* next owns them */
        rp_gen_retire(prev, next);
        w->gen = next;
        rp_gen_unref(prev);                /* freed when its last request ends */
        rp_log_info("worker %u: generation %u serving (%.1f ms after the reload began)",
                    w->id, r->id, (rp_now() - r->t_signal) * 1e3);
        if (atomic_fetch_sub(&r->to_switch, 1) == 1) {
            rp_log_notice("reload: all %u workers on generation %u, %.1f ms after the signal",
                          r->nworkers, r->id, (rp_now() - r->t_signal) * 1e3);
        }
    }
    swap_free(s);
}

static void
worker_on_mail(evutil_socket_t fd, short what, void *arg)
{
    rp_worker_t  *w = arg;
    rp_swap_t    *s;
    uint64_t      n;

    if (read(w->mail_fd, &n, sizeof(n)) < 0) {
        return;
    }
    for (;;) {
        pthread_mutex_lock(&w->mail_lock);
        s = w->swaps;
        if (s != NULL) {
            w->swaps = s->next;
        }
        pthread_mutex_unlock(&w->mail_lock);
        if (s == NULL) {
            break;
        }
        if (w->stopping) {
            swap_free(s);
        } else {
            worker_apply_swap(w, s);
        }
    }
    if (atomic_load(&w->stop_asked) && !w->stopping) {
        worker_begin_stop(w);
    }
}

static void
worker_mail(rp_worker_t *w)
{
    uint64_t  one = 1;

    /* the worker's base has no locks: cross the thread boundary by a file */
    if (write(w->mail_fd, &one, sizeof(one)) < 0) {
        rp_log_error("worker %u: cannot reach the worker: eventfd write failed", w->id);
    }
}

void
rp_worker_stop(rp_worker_t *w)
{
    atomic_store(&w->stop_asked, 1);
    worker_mail(w);
}

void
rp_worker_post_swap(rp_worker_t *w, rp_swap_t *s)
{
    rp_swap_t  **tail;

    s->next = NULL;
    pthread_mutex_lock(&w->mail_lock);
    for (tail = &w->swaps; *tail != NULL; tail = &(*tail)->next) {
    }
    *tail = s;                             /* in order: each builds on the one before */
    pthread_mutex_unlock(&w->mail_lock);
    worker_mail(w);
}

/* ---- life cycle ------------------------------------------------------------------ */

/* A base only this thread touches: no locks (nothing crosses threads but
 * the mailbox eventfd and its mutex), and epoll changes batched per loop. */
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
rp_worker_new(rp_server_t *srv, unsigned id, rp_config_t *conf, const int *fds,
              rp_logset_t *logs)
{
    rp_worker_t  *w;
    unsigned      i;

    w = rp_xalloc(sizeof(rp_worker_t));
    w->id = id;
    w->srv = srv;
    TAILQ_INIT(&w->clients);
    TAILQ_INIT(&w->idle_conns);
    pthread_mutex_init(&w->mail_lock, NULL);
    if ((w->base = worker_base_new()) == NULL) {
        rp_log_error("worker %u: event_base_new() failed", id);
        goto fail;
    }
    if ((w->mail_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        rp_log_error("worker %u: eventfd() failed", id);
        goto fail_base;
    }
    w->mail_ev = event_new(w->base, w->mail_fd, EV_READ | EV_PERSIST, worker_on_mail, w);
    event_add(w->mail_ev, NULL);
    w->grace_ev = evtimer_new(w->base, worker_on_grace, w);
    rp_flusher_init(&w->flusher, w->base);
    rp_headbuf_init(&w->head, 4096);
    w->listeners = rp_xalloc((conf->nlisteners + 1) * sizeof(rp_listener_t *));
    for (i = 0; i < conf->nlisteners; i++) {
        w->listeners[i] = listener_new(w, conf, &conf->listeners[i], fds[i], logs->listeners[i]);
        if (w->listeners[i] == NULL) {
            while (++i < conf->nlisteners) {
                close(fds[i]);
            }
            goto fail_listeners;
        }
        w->nlisteners++;
    }
    if ((w->gen = rp_gen_new(w, conf, 1, logs, NULL)) == NULL) {
        goto fail_listeners;
    }
    return w;

fail_listeners:
    worker_drop_listeners(w);
    rp_flusher_cleanup(&w->flusher);
    rp_headbuf_cleanup(&w->head);
    rp_msg_spares_cleanup(&w->msg_spares);
    event_free(w->mail_ev);
    close(w->mail_fd);
    event_free(w->grace_ev);
fail_base:
    event_base_free(w->base);
fail:
    rp_logset_free(logs);
    pthread_mutex_destroy(&w->mail_lock);
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
rp_worker_join(rp_worker_t *w)
{
    pthread_join(w->thread, NULL);
}

void
rp_worker_free(rp_worker_t *w)
{
    rp_client_t     *cl;
    rp_swap_t       *s;

    w->stopping = 1;
    while ((cl = TAILQ_FIRST(&w->clients)) != NULL) {
        rp_client_abort(cl, "worker stopped");     /* past the grace period; frees cl */
        if (TAILQ_FIRST(&w->clients) == cl) {
            TAILQ_REMOVE(&w->clients, cl, link);   /* closed but still referenced: a bug */
            w->nconns--;
        }
    }
    rp_http_conn_spares_free(w);
    while ((s = w->swaps) != NULL) {
        w->swaps = s->next;
        swap_free(s);
    }
    worker_drop_listeners(w);
    rp_gen_unref(w->gen);
    rp_flusher_cleanup(&w->flusher);
    rp_headbuf_cleanup(&w->head);
    rp_msg_spares_cleanup(&w->msg_spares);
    event_free(w->mail_ev);
    close(w->mail_fd);
    event_free(w->grace_ev);
    event_base_free(w->base);
    pthread_mutex_destroy(&w->mail_lock);
    free(w);
}

int
rp_worker_stopping(const rp_worker_t *w)
{
    return w->stopping;
}

void
rp_worker_read_begin(rp_worker_t *w)
{
    rp_now_hold();
    rp_flusher_hold(&w->flusher);
}

void
rp_worker_read_end(rp_worker_t *w)
{
    rp_flusher_release(&w->flusher);
    rp_now_release();
}

void
rp_worker_conn_added(rp_worker_t *w, rp_client_t *cl)
{
    TAILQ_INSERT_TAIL(&w->clients, cl, link);
    w->nconns++;
}

void
rp_worker_conn_removed(rp_worker_t *w, rp_client_t *cl)
{
    TAILQ_REMOVE(&w->clients, cl, link);
    w->nconns--;
    worker_maybe_exit(w);
}

rp_access_log_t *
rp_worker_access_log(const rp_gen_t *g, const rp_listener_t *l, const rp_vhost_conf_t *v)
{
    /* the most specific declaration wins, "off" included */
    if (v != NULL && v->access_log.output != NULL) {
        return g->logs->vhosts[v - g->conf->vhosts];
    }
    if (l != NULL && l->conf->access_log.output != NULL) {
        return l->log;
    }
    return g->logs->global;
}
