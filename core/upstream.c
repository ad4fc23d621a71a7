/* upstream.c: persistent backend connections and their life cycle
 * (CONNECTING -> IDLE <-> ACTIVE, DOWN with backoff), balancer choice and the
 * FIFO pending queues served the moment a connection turns IDLE. */
#include "upstream.h"

#include "log.h"
#include "sockread.h"
#include "timer.h"
#include "tls.h"
#include "worker.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>

#define UC_READ_HIGH_WATERMARK (64 * 1024)

static void uc_connect(rp_upstream_conn_t *uc);
static void uc_on_read(struct bufferevent *bev, void *arg);
static void uc_on_write(struct bufferevent *bev, void *arg);
static void uc_on_event(struct bufferevent *bev, short what, void *arg);
static void uc_on_deadline(evutil_socket_t fd, short what, void *arg);

/* The response parser's handler lives in proxy.c; a connection only owns it. */
extern const rp_msg_handler_t rp_proxy_resp_handler;

const char *
rp_upstream_state_name(rp_uc_state_e s)
{
    static const char *const  names[] = { "CONNECTING", "IDLE", "ACTIVE", "DOWN" };

    return names[s];
}

static void
uc_set_state(rp_upstream_conn_t *uc, rp_uc_state_e s)
{
    rp_backend_t  *b = uc->b;

    if (uc->state == s) {
        return;
    }
    switch (uc->state) {
    case RP_UC_IDLE:
        TAILQ_REMOVE(&b->idle, uc, link);
        b->nidle--;
        break;
    case RP_UC_ACTIVE:
        b->nactive--;
        break;
    case RP_UC_DOWN:
        b->ndown--;
        break;
    default:
        break;
    }
    uc->state = s;
    switch (s) {
    case RP_UC_IDLE:
        TAILQ_INSERT_HEAD(&b->idle, uc, link);
        b->nidle++;
        break;
    case RP_UC_ACTIVE:
        b->nactive++;
        break;
    case RP_UC_DOWN:
        b->ndown++;
        break;
    default:
        break;
    }
}

static void
uc_free_socket(rp_upstream_conn_t *uc)
{
    uc->reading = 0;
    rp_timer_stop(uc->deadline, &uc->deadline_at);
    if (uc->bev != NULL) {
        if (uc->ssl != NULL && uc->connected) {
            rp_tls_shutdown(uc->ssl);      /* the session stays resumable */
        }
        uc->connected = 0;
        rp_flush_detach(&uc->flush);
        rp_reader_detach(&uc->reader);
        bufferevent_free(uc->bev);         /* frees the SSL too */
        uc->bev = NULL;
        uc->ssl = NULL;
    }
    if (uc->sock_conf != NULL) {
        rp_config_unref(uc->sock_conf);
        uc->sock_conf = NULL;
    }
    uc->user = NULL;
    uc->arg = NULL;
    uc->served = 0;
    uc->got_bytes = 0;
    rp_msg_reset(&uc->resp);
    llhttp_reset(&uc->resp.parser);
}

/* The oldest request waiting on any target this backend serves, or NULL. */
static rp_pending_t *
backend_oldest_pending(rp_backend_t *b)
{
    rp_pending_t  *best = NULL, *p;
    unsigned       i;

    for (i = 0; i < b->ntargets; i++) {
        p = TAILQ_FIRST(&b->targets[i]->pending);
        if (p != NULL && (best == NULL || p->seq < best->seq)) {
            best = p;
        }
    }
    return best;
}

/* A connection turned IDLE: it serves the oldest waiter first (O(targets),
 * never a scan of the queue), otherwise waits in b->idle. */
static void
uc_became_idle(rp_upstream_conn_t *uc)
{
    rp_pending_t  *p;

    uc->user = NULL;
    uc->arg = NULL;
    uc->got_bytes = 0;
    uc->reading = 0;                       /* a pending deadline then does nothing */
    bufferevent_setwatermark(uc->bev, EV_WRITE, 0, 0);
    rp_reader_on(&uc->reader);             /* an idle socket notices a close */
    p = backend_oldest_pending(uc->b);
    if (p == NULL && (rp_worker_stopping(uc->b->w) || uc->b->retired)) {
        uc_free_socket(uc);              /* nobody will need it again */
        uc_set_state(uc, RP_UC_DOWN);
        return;
    }
    if (p == NULL) {
        uc_set_state(uc, RP_UC_IDLE);
        return;
    }
    rp_target_dequeue(p);
    uc_set_state(uc, RP_UC_ACTIVE);
    p->ready(p, uc);
}

unsigned
rp_backend_live(const rp_backend_t *b)
{
    unsigned  connecting = b->nconns - b->ndown - b->nidle - b->nactive;

    return b->nidle + b->nactive + (b->failures == 0 ? connecting : 0);
}

/* Fails the waiters of every target of b that can no longer be served. */
static void
backend_fail_stranded(rp_backend_t *b)
{
    unsigned       i, j, up;
    rp_target_t   *t;
    rp_pending_t  *p;

    for (i = 0; i < b->ntargets; i++) {
        t = b->targets[i];
        up = 0;
        for (j = 0; j < t->nmembers; j++) {
            up += rp_backend_live(t->members[j]);
        }
        while (up == 0 && (p = TAILQ_FIRST(&t->pending)) != NULL) {
            rp_target_dequeue(p);
            p->fail(p, 502);
        }
    }
}

static void
uc_on_retry(evutil_socket_t fd, short what, void *arg)
{
    uc_connect(arg);
}

/* Closes the socket and retries after a backoff with jitter, capped. */
static void
uc_down(rp_upstream_conn_t *uc, const char *why)
{
    rp_backend_t    *b = uc->b;
    const double     jitter = 0.75 + 0.5 * ((double) random() / (double) RAND_MAX);
    double           delay = uc->backoff * jitter;
    struct timeval   tv;

    b->failures++;
    if (uc->state != RP_UC_DOWN && (rp_worker_stopping(b->w) || b->retired)) {
        rp_log_info("backend %s (%s): connection down: %s", b->conf->name, b->addr_text, why);
    } else if (uc->state != RP_UC_DOWN) {
        rp_log_warn("backend %s (%s): connection down: %s; retry in %.2fs",
                    b->conf->name, b->addr_text, why, delay);
    }
    uc_free_socket(uc);
    uc_set_state(uc, RP_UC_DOWN);
    uc->backoff *= 2;
    if (uc->backoff > b->conf->retry_max) {
        uc->backoff = b->conf->retry_max;
    }
    if (rp_worker_stopping(b->w) || b->retired) {
        backend_fail_stranded(b);
        return;
    }
    tv = rp_timeval(delay);
    evtimer_add(uc->retry, &tv);
    backend_fail_stranded(b);
}

static void
uc_connect(rp_upstream_conn_t *uc)
{
    rp_backend_t    *b = uc->b;
    struct timeval   tv;
    double           t = b->conf->connect_timeout;

    if (b->conf->tls_client != NULL) {
        /* TLS to the backend; its session is resumed when there is one */
        uc->ssl = rp_tls_client_ssl(b->conf->tls_client);
        uc->bev = uc->ssl ? bufferevent_openssl_socket_new(b->base, -1, uc->ssl,
                                                           BUFFEREVENT_SSL_CONNECTING,
                                                           BEV_OPT_CLOSE_ON_FREE)
                          : NULL;
        if (uc->bev == NULL && uc->ssl != NULL) {
            SSL_free(uc->ssl);
        }
        if (uc->bev != NULL) {
            bufferevent_openssl_set_allow_dirty_shutdown(uc->bev, 1);
        }
    } else {
        uc->bev = bufferevent_socket_new(b->base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    if (uc->bev == NULL) {
        uc->ssl = NULL;
        uc_down(uc, "cannot create a connection");
        return;
    }
    rp_flush_uncap(uc->bev);
    uc->sock_conf = b->owner;              /* its SSL_CTX lives there */
    if (uc->sock_conf != NULL) {
        rp_config_ref(uc->sock_conf);
    }
    bufferevent_setcb(uc->bev, uc_on_read, uc_on_write, uc_on_event, uc);
    rp_reader_init(&uc->reader, uc->bev, UC_READ_HIGH_WATERMARK, uc->ssl == NULL);
    tv = rp_timeval(t);
    bufferevent_set_timeouts(uc->bev, NULL, &tv);   /* a connect is a write */
    uc->write_s = -1;                               /* rp_upstream_start sets it */
    uc_set_state(uc, RP_UC_CONNECTING);
    if (bufferevent_socket_connect(uc->bev, (struct sockaddr *) &b->conf->addr,
                                   (int) b->conf->addrlen) != 0) {
        uc_down(uc, "connect() failed");
    }
}

static void
uc_on_connected(rp_upstream_conn_t *uc)
{
    evutil_socket_t          fd = bufferevent_getfd(uc->bev);
    int                      one = 1;
    struct sockaddr_storage  ss;
    socklen_t                len = sizeof(ss);

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    uc->local_port = 0;
    if (getsockname(fd, (struct sockaddr *) &ss, &len) == 0) {
        uc->local_port = ntohs(ss.ss_family == AF_INET6
                                   ? ((struct sockaddr_in6 *) &ss)->sin6_port
                                   : ((struct sockaddr_in *) &ss)->sin_port);
    }
    uc->connected = 1;
    uc->connected_at = rp_now();
    if (uc->ssl == NULL) {
        rp_flush_attach(&uc->b->w->flusher, &uc->flush, uc->bev);
        rp_reader_attach(&uc->reader, uc->b->base, uc->b->w->read_scratch);
    } else {
        rp_flush_attach_tls(&uc->b->w->flusher, &uc->flush, uc->bev);
    }
    uc->backoff = uc->b->conf->retry;
    uc->b->failures = 0;
    uc->served = 0;
    uc_became_idle(uc);
}

/* Replaces a socket the backend closed or can no longer use. */
static void
uc_reconnect(rp_upstream_conn_t *uc)
{
    uc_free_socket(uc);
    if (rp_worker_stopping(uc->b->w) || uc->b->retired) {
        uc_set_state(uc, RP_UC_DOWN);
        backend_fail_stranded(uc->b);    /* waiters must not wait for nothing */
        return;
    }
    uc_connect(uc);
}

static void
uc_on_read(struct bufferevent *bev, void *arg)
{
    rp_upstream_conn_t  *uc = arg;

    if (uc->state == RP_UC_ACTIVE && uc->user != NULL) {
        rp_worker_t  *w = uc->b->w;        /* the worker outlives uc */

        rp_worker_read_begin(w);
        uc->read_at = rp_now();
        if (!uc->user->in_place) {
            rp_reader_spill(&uc->reader);
        }
        uc->user->on_read(uc, uc->arg);
        rp_worker_read_end(w);             /* the answer goes now, before other sockets */
        return;
    }
    /* bytes nobody asked for: this socket's framing cannot be trusted */
    rp_log_info("backend %s: unexpected %zu bytes on an idle connection; reconnecting",
                uc->b->conf->name, rp_reader_buffered(&uc->reader));
    rp_reader_discard(&uc->reader);
    uc_set_state(uc, RP_UC_CONNECTING);
    uc_reconnect(uc);
}

static void
uc_on_write(struct bufferevent *bev, void *arg)
{
    rp_upstream_conn_t  *uc = arg;

    rp_flush_drained(&uc->flush);
    if (uc->state == RP_UC_ACTIVE && uc->user != NULL) {
        uc->user->on_drain(uc, uc->arg);
    }
}

static void
uc_on_event(struct bufferevent *bev, short what, void *arg)
{
    rp_upstream_conn_t  *uc = arg;

    switch (uc->state) {
    case RP_UC_CONNECTING:
        if (what & BEV_EVENT_CONNECTED) {
            uc_on_connected(uc);
        } else if (uc->ssl != NULL && !(what & BEV_EVENT_TIMEOUT)
                   && bufferevent_get_openssl_error(bev) != 0) {
            uc_down(uc, rp_tls_client_error(uc->ssl));
        } else {
            uc_down(uc, (what & BEV_EVENT_TIMEOUT) ? "connect timed out"
                                                   : evutil_socket_error_to_string(
                                                         EVUTIL_SOCKET_ERROR()));
        }
        break;
    case RP_UC_IDLE:
        if (uc->served == 0 && rp_now() - uc->connected_at < uc->b->conf->retry) {
            /* closed as soon as it was accepted (a forwarder with no target, a
             * server at its limit): a failed connect, retried after the
             * backoff; reconnecting at once made tens of thousands a second */
            uc_down(uc, "closed by the backend as soon as it was accepted");
            break;
        }
        /* the backend closed a kept connection: open a new one */
        uc_set_state(uc, RP_UC_CONNECTING);
        uc_reconnect(uc);
        break;
    case RP_UC_ACTIVE:
        if (uc->user != NULL) {
            uc->user->on_event(uc, uc->arg, what);
        }
        break;
    default:
        break;
    }
}

rp_backend_t *
rp_backend_new(rp_worker_t *w, struct event_base *base, const rp_backend_conf_t *conf,
               rp_config_t *owner)
{
    unsigned             i;
    rp_upstream_conn_t  *uc;
    rp_backend_t        *b;

    b = rp_xalloc(sizeof(rp_backend_t));
    b->conf = conf;
    b->owner = owner;
    if (owner != NULL) {
        rp_config_ref(owner);              /* b->conf must outlive every generation */
    }
    b->refs = 1;
    b->w = w;
    b->base = base;
    TAILQ_INIT(&b->idle);
    snprintf(b->addr_text, sizeof(b->addr_text), "%s", conf->address);
    if (!conf->enabled) {
        return b;
    }
    b->nconns = conf->connections;
    b->conns = rp_xalloc(b->nconns * sizeof(rp_upstream_conn_t));
    for (i = 0; i < b->nconns; i++) {
        uc = &b->conns[i];
        uc->b = b;
        uc->state = RP_UC_DOWN;
        b->ndown++;
        uc->backoff = conf->retry;
        uc->retry = evtimer_new(base, uc_on_retry, uc);
        uc->deadline = evtimer_new(base, uc_on_deadline, uc);
        rp_msg_init(&uc->resp, HTTP_RESPONSE, &rp_proxy_resp_handler, uc);
        uc_connect(uc);
    }
    return b;
}

void
rp_backend_ref(rp_backend_t *b)
{
    b->refs++;
}

void
rp_backend_unref(rp_backend_t *b)
{
    unsigned  i;

    if (--b->refs > 0) {
        return;
    }
    for (i = 0; i < b->nconns; i++) {
        b->conns[i].state = RP_UC_DOWN;      /* no shutdown dance: the worker is done with it */
        uc_free_socket(&b->conns[i]);
        event_free(b->conns[i].retry);
        event_free(b->conns[i].deadline);
        rp_msg_cleanup(&b->conns[i].resp);
    }
    free(b->conns);
    free(b->targets);
    if (b->owner != NULL) {
        rp_config_unref(b->owner);
    }
    free(b);
}

void
rp_backend_adopt(rp_backend_t *b, const rp_backend_conf_t *conf, rp_config_t *owner)
{
    rp_config_ref(owner);
    rp_config_unref(b->owner);
    b->conf = conf;
    b->owner = owner;
    free(b->targets);
    b->targets = NULL;
    b->ntargets = 0;
}

void
rp_backend_retire(rp_backend_t *b)
{
    rp_upstream_conn_t  *uc;
    unsigned             i;

    b->retired = 1;
    free(b->targets);
    b->targets = NULL;
    b->ntargets = 0;
    for (i = 0; i < b->nconns; i++) {
        uc = &b->conns[i];
        if (uc->state == RP_UC_IDLE || uc->state == RP_UC_CONNECTING) {
            uc_free_socket(uc);
            uc_set_state(uc, RP_UC_DOWN);
        }
        evtimer_del(uc->retry);              /* DOWN ones stay down */
    }
}

void
rp_target_init(rp_target_t *t, const char *name, rp_balance_e balance,
               rp_backend_t **members, unsigned n, uint64_t *seq)
{
    unsigned  i;

    memset(t, 0, sizeof(*t));
    t->name = name;
    t->balance = balance;
    t->members = members;
    t->nmembers = n;
    t->seq = seq;
    t->pool = -1;
    TAILQ_INIT(&t->pending);
    for (i = 0; i < n; i++) {
        rp_backend_t  *b = members[i];

        b->targets = rp_xrealloc(b->targets, (b->ntargets + 1) * sizeof(rp_target_t *));
        b->targets[b->ntargets++] = t;
    }
}

void
rp_target_cleanup(rp_target_t *t)
{
    free(t->members);
    t->members = NULL;
}

int
rp_target_acquire(rp_target_t *t, const rp_upstream_user_t *user, void *arg,
                  rp_upstream_conn_t **out)
{
    rp_balancer_peer_t   peers[64];
    rp_backend_t        *b;
    rp_upstream_conn_t  *uc;
    unsigned             i, n = t->nmembers < 64 ? t->nmembers : 64, up = 0;
    int                  k;

    if (n == 0) {
        return RP_DECLINED;                /* and -O3 sees that peers is always set */
    }
    for (i = 0; i < n; i++) {
        b = t->members[i];
        peers[i].idle = b->nidle;
        peers[i].active = b->nactive;
        peers[i].up = rp_backend_live(b);
        peers[i].rtt = b->rtt;
        up += peers[i].up;
    }
    /* waiters go first: a new request never overtakes the queue */
    if (t->npending == 0 && (k = rp_balancer_pick(t->balance, peers, n, &t->bst)) >= 0) {
        uc = TAILQ_FIRST(&t->members[k]->idle);
        uc_set_state(uc, RP_UC_ACTIVE);
        rp_upstream_bind(uc, user, arg);
        *out = uc;
        return RP_OK;
    }
    return up > 0 ? RP_AGAIN : RP_DECLINED;
}

void
rp_target_enqueue(rp_target_t *t, rp_pending_t *p)
{
    p->t = t;
    p->seq = (*t->seq)++;
    TAILQ_INSERT_TAIL(&t->pending, p, link);
    t->npending++;
}

void
rp_target_dequeue(rp_pending_t *p)
{
    if (p->t == NULL) {
        return;
    }
    TAILQ_REMOVE(&p->t->pending, p, link);
    p->t->npending--;
    p->t = NULL;
}

void
rp_upstream_bind(rp_upstream_conn_t *uc, const rp_upstream_user_t *user, void *arg)
{
    uc->user = user;
    uc->arg = arg;
    uc->got_bytes = 0;
    rp_msg_reset(&uc->resp);
    rp_msg_resume(&uc->resp);
}

/* The response deadline: a timeout only when no byte came for read_timeout,
 * at read_at + read_timeout, on a lazy timer (timer.h): the one pending from
 * an earlier request fires first and re-arms itself for the rest. */
static void
uc_on_deadline(evutil_socket_t fd, short what, void *arg)
{
    rp_upstream_conn_t  *uc = arg;

    RP_UNUSED(fd);
    RP_UNUSED(what);
    if (uc->state != RP_UC_ACTIVE || uc->user == NULL || !uc->reading) {
        uc->deadline_at = 0;
        return;                            /* idle, or paused: resume arms it */
    }
    if (!rp_timer_expired(uc->deadline, &uc->deadline_at,
                          uc->read_at + uc->b->conf->read_timeout)) {
        return;
    }
    uc->reading = 0;
    rp_reader_off(&uc->reader);            /* as a bufferevent read timeout does */
    uc->user->on_event(uc, uc->arg, BEV_EVENT_TIMEOUT | BEV_EVENT_READING);
}

void
rp_upstream_start(rp_upstream_conn_t *uc)
{
    const rp_backend_conf_t  *bc = uc->b->conf;

    if (uc->write_s != bc->write_timeout) {     /* once a socket, or after a reload */
        struct timeval  w = rp_timeval(bc->write_timeout);

        rp_reader_set_timeouts(&uc->reader, 0, &w);
        uc->write_s = bc->write_timeout;
    }
    rp_upstream_resume(uc);
}

void
rp_upstream_pause(rp_upstream_conn_t *uc)
{
    rp_reader_off(&uc->reader);
    uc->reading = 0;                       /* back-pressure is not the backend's silence */
}

void
rp_upstream_resume(rp_upstream_conn_t *uc)
{
    rp_reader_on(&uc->reader);
    uc->read_at = rp_now();
    uc->reading = 1;
    rp_timer_due(uc->deadline, &uc->deadline_at, uc->read_at + uc->b->conf->read_timeout);
}

/* Reused connections lost in a row past which a backend's connections are
 * not reused (each answer's connection is replaced by a fresh one), and how
 * often reuse is tried again meanwhile (one release in REUSE_PROBE_EVERY). */
#define REUSE_LOST_MAX    3
#define REUSE_PROBE_EVERY 64

void
rp_upstream_reuse_lost(rp_upstream_conn_t *uc)
{
    if (++uc->b->reuse_lost == REUSE_LOST_MAX) {
        rp_log_warn("backend %s: it closes kept connections before answering on them; "
                    "a fresh connection for each request until reuse works again",
                    uc->b->conf->name);
    }
}

/* May a connection that answered be kept for the next request? Not while its
 * backend keeps losing reused ones, but for a probe now and then. */
static int
uc_reuse_allowed(rp_upstream_conn_t *uc)
{
    rp_backend_t  *b = uc->b;

    if (uc->served > 0) {
        b->reuse_lost = 0;                 /* a reused connection answered */
    }
    return b->reuse_lost < REUSE_LOST_MAX || ++b->reuse_probe % REUSE_PROBE_EVERY == 0;
}

void
rp_upstream_release(rp_upstream_conn_t *uc, int reusable)
{
    uc->user = NULL;
    uc->arg = NULL;
    uc->reading = 0;
    if (reusable && evbuffer_get_length(bufferevent_get_input(uc->bev)) == 0
        && uc_reuse_allowed(uc)) {
        uc->served++;
        rp_msg_reset(&uc->resp);
        uc_became_idle(uc);
        return;
    }
    uc_set_state(uc, RP_UC_CONNECTING);
    uc_reconnect(uc);
}

void
rp_upstream_rtt_sample(rp_upstream_conn_t *uc, double seconds)
{
    uc->b->rtt = rp_balancer_rtt_update(uc->b->rtt, seconds);
}
