/* http_conn.c: a client connection: request heads in, answers out in order,
 * keep-alive, the proxy's own error answers, timeouts and a lingering close. */
#include "http_conn.h"

#include "log.h"
#include "rawio.h"
#include "sockread.h"
#include "lua_request.h"
#include "lua_state.h"
#include "timer.h"
#include "tls.h"
#include "worker.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>

#define CONN_READ_HIGH_WATERMARK (64 * 1024)
#define CONN_LINGER_SECONDS      2.0
#define CONN_SPARES_MAX          64      /* a worker's spare conns (about 2 KiB each) */
#define CONN_IDLE_BOUND_MAX      32      /* idle conns a worker keeps bound: the rest park */
#define CONN_WATCH_AFTER         1.0     /* s: an unwatched client is read again after it */

static int  req_on_head(rp_msg_t *m);
static int  req_on_body(rp_msg_t *m, const char *p, size_t n);
static int  req_on_complete(rp_msg_t *m);
static void conn_on_read(struct bufferevent *bev, void *arg);
static void conn_on_write(struct bufferevent *bev, void *arg);
static void conn_on_event(struct bufferevent *bev, short what, void *arg);
static void conn_on_timer(rp_http_conn_t *c);
static void conn_on_timer_ev(evutil_socket_t fd, short what, void *arg);
static void conn_close(rp_http_conn_t *c);
static void client_free(rp_client_t *cl);
static void conn_destroy(rp_http_conn_t *c);
static void conn_log(rp_http_conn_t *c);

static const rp_msg_handler_t  req_handler = { req_on_head, req_on_body, req_on_complete };

/* A conn is allocated when the worker has no spare; up to 1032 bytes glibc
 * serves it from the thread's cache, past that through _int_malloc. */
_Static_assert(sizeof(rp_http_conn_t) <= 1032, "rp_http_conn_t outgrew glibc's tcache sizes");
/* an idle connection costs this struct (in a 288-byte malloc chunk) and
 * libevent's entry for its socket */
_Static_assert(sizeof(rp_client_t) <= 280, "rp_client_t outgrew a 288-byte malloc chunk");

static void
conn_set_state(rp_http_conn_t *c, rp_conn_state_e s)
{
    c->state = s;
}

/* Client timeouts. The socket's read timeout is on only while a request
 * body is read (no byte for read_timeout: 408), because libevent re-arms a
 * persistent event's timeout on every read; the other phases have one
 * deadline each (rp_http_conn_deadline): the first request and the
 * keep-alive wait (idle), the whole head (read_timeout), the pending queue. */
static void
conn_set_timeouts(rp_http_conn_t *c, int body)
{
    struct timeval  w = rp_timeval(c->lc->write_timeout);

    rp_reader_set_timeouts(&c->cl->reader, body ? c->lc->read_timeout : 0, &w);
    c->body_timeout = body != 0;
    c->write_timeout = c->lc->write_timeout;
}

void
rp_http_conn_body_timeout(rp_http_conn_t *c, int on)
{
    if ((on != 0) != c->body_timeout || c->write_timeout != c->lc->write_timeout) {
        conn_set_timeouts(c, on);
    }
}

/* The phase's deadline, on a lazy timer (timer.h). A keep-alive request so
 * costs no timer change at all: its head arrives in one read (no head
 * deadline), and the keep-alive deadline that follows is later than the
 * timer already pending. */
static void
conn_deadline_at(rp_http_conn_t *c, double due)
{
    c->cl->deadline.due = due;
    rp_timer_due(&c->timer_ev, &c->timer_at, due);
}

void
rp_http_conn_deadline(rp_http_conn_t *c, double seconds)
{
    if (seconds > 0) {
        conn_deadline_at(c, rp_now() + seconds);
    } else {
        c->cl->deadline.due = 0;           /* a pending timer then does nothing */
    }
}

/* No deadline any more: the timer of its conn, or its place in the park
 * queue, goes. */
static void
client_timer_stop(rp_client_t *cl)
{
    cl->deadline.due = 0;
    if (cl->c != NULL) {
        rp_timer_stop(&cl->c->timer_ev, &cl->c->timer_at);
    }
    rp_parkq_remove(&cl->l->parkq, &cl->deadline);
}

/* ---- conns: spares, binding, parking ----------------------------------------------- */

/* A conn for a plain client: a spare (its bufferevent and buffers with it),
 * or a new one. Either way zeroed but for the bufferevent, whose callbacks
 * already name it. */
static rp_http_conn_t *
conn_get(rp_worker_t *w)
{
    rp_http_conn_t      *c = w->conn_spares;
    struct bufferevent  *bev;
    double               write_timeout;

    if (c != NULL) {
        w->conn_spares = c->next_spare;
        w->nconn_spares--;
        bev = c->bev;
        write_timeout = c->write_timeout;  /* what bev has */
        memset(c, 0, sizeof(*c));
        c->bev = bev;
        c->write_timeout = write_timeout;
        return c;
    }
    c = rp_xalloc(sizeof(rp_http_conn_t));
    /* no BEV_OPT_CLOSE_ON_FREE: the client owns the socket, and the
     * bufferevent outlives it as a spare */
    c->bev = bufferevent_socket_new(w->base, -1, 0);
    if (c->bev == NULL) {
        free(c);
        return NULL;
    }
    bufferevent_setcb(c->bev, conn_on_read, conn_on_write, conn_on_event, c);
    bufferevent_disable(c->bev, EV_WRITE);     /* the flusher writes (flush.h) */
    rp_flush_uncap(c->bev);
    rp_reader_take_reads(c->bev);
    return c;
}

/* c is done with its client: a plain one becomes a spare, emptied and with
 * its events off; a TLS one (its bufferevent holds the session) is freed. */
static void
conn_put(rp_http_conn_t *c)
{
    rp_worker_t      *w = c->w;
    struct evbuffer  *out;

    rp_msg_cleanup(&c->req);
    rp_timer_stop(&c->timer_ev, &c->timer_at);
    if (c->ssl != NULL || w->nconn_spares >= CONN_SPARES_MAX || rp_worker_stopping(w)) {
        bufferevent_free(c->bev);
        free(c);
        return;
    }
    /* as rp_flush_bind() wants it; a spare's calls cost nothing */
    if (bufferevent_get_enabled(c->bev) & EV_WRITE) {
        bufferevent_disable(c->bev, EV_WRITE);
    }
    out = bufferevent_get_output(c->bev);
    if (evbuffer_get_length(out) > 0) {
        evbuffer_unfreeze(out, 1);         /* an aborted answer's rest */
        evbuffer_drain(out, evbuffer_get_length(out));
    }
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
        evbuffer_drain(bufferevent_get_input(c->bev),
                       evbuffer_get_length(bufferevent_get_input(c->bev)));
    }
    c->next_spare = w->conn_spares;
    w->conn_spares = c;
    w->nconn_spares++;
}

void
rp_http_conn_spares_free(rp_worker_t *w)
{
    rp_http_conn_t  *c;

    while ((c = w->conn_spares) != NULL) {
        w->conn_spares = c->next_spare;
        bufferevent_free(c->bev);
        free(c);
    }
    w->nconn_spares = 0;
}

/* A TLS bufferevent in accepting state (the SSL and the socket are owned by
 * the bufferevent from here). The handshake must end in handshake_timeout. */
static int
conn_new_tls_bev(rp_http_conn_t *c, rp_worker_t *w, const rp_listen_conf_t *lc, int fd)
{
    SSL             *ssl;
    struct timeval   tv;

    if ((ssl = rp_tls_server_ssl(lc->tls_server)) == NULL) {
        rp_log_error("client %s: cannot create a TLS session", c->addr);
        return RP_ERROR;
    }
    rp_tls_set_log_id(ssl, c->addr);       /* names the client in verification errors */
    c->bev = bufferevent_openssl_socket_new(w->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                            BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        SSL_free(ssl);
        return RP_ERROR;
    }
    bufferevent_setcb(c->bev, conn_on_read, conn_on_write, conn_on_event, c);
    rp_flush_uncap(c->bev);
    rp_flush_attach_tls(&w->flusher, &c->flush, c->bev);
    /* a client that closes without close_notify is the common case */
    bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    c->ssl = ssl;
    c->handshaking = 1;
    tv = rp_timeval(lc->tls->handshake_timeout);
    bufferevent_set_timeouts(c->bev, &tv, &tv);
    return RP_OK;
}

const void *
rp_http_conn_tls_facts(rp_http_conn_t *c)
{
    rp_tls_facts_t  *f;

    if (c->ssl == NULL || c->handshaking) {
        return NULL;
    }
    if (c->tls_facts == NULL) {
        f = rp_xalloc(sizeof(rp_tls_facts_t));
        if (rp_tls_facts(c->ssl, f) != RP_OK) {
            free(f);
            return NULL;
        }
        c->tls_facts = f;
    }
    return c->tls_facts;
}

/* Dotted-quad text of a (at least 16 bytes): inet_ntop formats it with
 * sprintf, a tenth of a Connection: close request's instructions. */
static void
conn_ipv4_text(const struct in_addr *in, char *a)
{
    const unsigned char  *b = (const unsigned char *) &in->s_addr;
    int                   i;

    for (i = 0; i < 4; i++) {
        if (b[i] >= 100) {
            *a++ = (char) ('0' + b[i] / 100);
        }
        if (b[i] >= 10) {
            *a++ = (char) ('0' + b[i] / 10 % 10);
        }
        *a++ = (char) ('0' + b[i] % 10);
        *a++ = i < 3 ? '.' : '\0';
    }
}

static void
conn_addr_text(rp_http_conn_t *c, const rp_client_t *cl)
{
    if (cl->ipv6) {
        inet_ntop(AF_INET6, cl->ip, c->addr, sizeof(c->addr));
    } else {
        conn_ipv4_text((const struct in_addr *) cl->ip, c->addr);
    }
}

/* Binds c to cl for its next request (at accept, or when a parked client
 * sends a byte): a fresh conn in state IDLE, whose timer takes the client's
 * deadline from its listener's park queue (conn_park() gives it back). */
static void
conn_bind(rp_http_conn_t *c, rp_client_t *cl)
{
    rp_worker_t             *w = cl->l->w;
    const rp_listen_conf_t  *lc = cl->l->conf;

    c->w = w;
    c->l = cl->l;
    c->cl = cl;
    c->lc = lc;
    conn_addr_text(c, cl);
    c->port = cl->port;
    c->refs = 1;                           /* the open reference, dropped at close */
    cl->c = c;
    evtimer_assign(&c->timer_ev, w->base, conn_on_timer_ev, c);   /* not pending here */
    c->timer_at = 0;
    rp_parkq_remove(&cl->l->parkq, &cl->deadline);
    if (cl->deadline.due > 0) {
        rp_timer_due(&c->timer_ev, &c->timer_at, cl->deadline.due);
    }
    rp_msg_init(&c->req, HTTP_REQUEST, &req_handler, c);
    c->req.spares = &w->msg_spares;
    c->req.max_line = (uint32_t) lc->max_request_line;
    c->req.max_head = (uint32_t) lc->max_header_size;
    c->req.max_fields = lc->max_headers;
    c->lua_box_ref = RP_LUA_NOREF;
    c->lua_ctx_ref = RP_LUA_NOREF;
    conn_set_state(c, RP_CONN_IDLE);
}

/* A plain client's conn takes its socket: the bufferevent writes it (through
 * the worker's flusher), the client's reader fills its input. */
static void
conn_bind_plain(rp_http_conn_t *c)
{
    rp_flush_bind(&c->w->flusher, &c->flush, c->bev, c->cl->fd);
    rp_reader_bind(&c->cl->reader, c->bev, conn_on_read, conn_on_event, c);
    if (c->write_timeout != c->lc->write_timeout) {
        conn_set_timeouts(c, 0);
    }
}

/* The client's socket (a TLS bufferevent holds it). */
static evutil_socket_t
conn_fd(const rp_http_conn_t *c)
{
    return c->cl->fd >= 0 ? c->cl->fd : bufferevent_getfd(c->bev);
}

/* Nothing left for c to do until the client sends again: idle, nothing
 * buffered either way, no write pending, and only the caller's reference
 * besides the open one gone (no callback of c's on the stack). */
static int
conn_parkable(const rp_http_conn_t *c)
{
    return c->refs == 1 && c->state == RP_CONN_IDLE && c->ssl == NULL && !c->closed
           && !c->flush.queued && !(bufferevent_get_enabled(c->bev) & EV_WRITE)
           && evbuffer_get_length(bufferevent_get_input(c->bev)) == 0
           && rp_flush_out_len(&c->flush, c->bev) == 0;
}

/* The client keeps its socket, reader and keep-alive deadline; c becomes a
 * spare. */
static void
conn_park(rp_http_conn_t *c)
{
    rp_client_t  *cl = c->cl;

    rp_flush_detach(&c->flush);
    rp_reader_bind(&cl->reader, NULL, NULL, NULL, NULL);
    cl->c = NULL;
    conn_put(c);                           /* its timer stops */
    if (cl->deadline.due > 0) {
        rp_parkq_add(&cl->l->parkq, &cl->deadline);
    }
}

/* c has work again (a byte came) or goes: it leaves the idle list. */
static void
conn_idle_unlist(rp_http_conn_t *c)
{
    if (c->idle_listed) {
        TAILQ_REMOVE(&c->w->idle_conns, c, idle_link);
        c->w->nidle_conns--;
        c->idle_listed = 0;
    }
}

/* The end of a callback that took a reference on c. An idle conn stays
 * bound while the worker has fewer than CONN_IDLE_BOUND_MAX such (a busy
 * keep-alive client's next request then costs no park and bind, about 470
 * instructions); past that it is parked, so that thousands of idle clients
 * cost their socket alone. */
static void
conn_unref_or_park(rp_http_conn_t *c)
{
    if (--c->refs == 0) {
        conn_destroy(c);
    } else if (!c->idle_listed && conn_parkable(c)) {
        if (c->w->nidle_conns < CONN_IDLE_BOUND_MAX) {
            TAILQ_INSERT_TAIL(&c->w->idle_conns, c, idle_link);
            c->w->nidle_conns++;
            c->idle_listed = 1;
        } else {
            conn_park(c);
        }
    }
}

/* A parked client's byte (or EOF): a conn is bound again first. */
static void
client_on_ready(evutil_socket_t fd, short what, void *arg)
{
    rp_client_t     *cl = arg;
    rp_http_conn_t  *c;

    if (cl->c == NULL) {
        if ((c = conn_get(cl->l->w)) == NULL) {
            client_free(cl);
            return;
        }
        conn_bind(c, cl);
        conn_bind_plain(c);
    }
    rp_reader_ready(fd, what, &cl->reader);
}

/* A bound client's deadline (c's timer). */
static void
conn_on_timer_ev(evutil_socket_t fd, short what, void *arg)
{
    rp_http_conn_t  *c = arg;
    rp_client_t     *cl = c->cl;

    if (cl->deadline.due == 0) {
        c->timer_at = 0;
        return;                            /* the phase it was set for is over */
    }
    if (!rp_timer_expired(&c->timer_ev, &c->timer_at, cl->deadline.due)) {
        return;                            /* set early for a later deadline */
    }
    cl->deadline.due = 0;
    conn_on_timer(c);
}

void
rp_client_park_expired(rp_parkq_node_t *n, void *arg)
{
    rp_client_t  *cl = (rp_client_t *) ((char *) n - offsetof(rp_client_t, deadline));

    (void) arg;
    cl->deadline.due = 0;
    client_free(cl);                       /* parked past the keep-alive time */
}

/* The socket goes: after its conn, if it had one. */
static void
client_free(rp_client_t *cl)
{
    rp_worker_conn_removed(cl->l->w, cl);
    client_timer_stop(cl);
    rp_reader_detach(&cl->reader);
    if (cl->fd >= 0) {
        rp_close(cl->fd);
    }
    rp_listener_unref(cl->l);
    free(cl);
}

/* The address is kept binary: its text (up to 46 bytes) is the conn's,
 * made when a conn is bound, so that a parked client does not carry it. */
static void
client_set_addr(rp_client_t *cl, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET6) {
        memcpy(cl->ip, &((const struct sockaddr_in6 *) sa)->sin6_addr, 16);
        cl->ipv6 = 1;
        cl->port = ntohs(((const struct sockaddr_in6 *) sa)->sin6_port);
    } else {
        memcpy(cl->ip, &((const struct sockaddr_in *) sa)->sin_addr, 4);
        cl->port = ntohs(((const struct sockaddr_in *) sa)->sin_port);
    }
}

void
rp_http_conn_accept(rp_worker_t *w, rp_listener_t *li, int fd, const struct sockaddr *sa,
                    int salen)
{
    rp_client_t             *cl;
    rp_http_conn_t          *c;
    const rp_listen_conf_t  *lc = li->conf;
    int                      tls = lc->tls_server != NULL;

    c = tls ? rp_xalloc(sizeof(rp_http_conn_t)) : conn_get(w);
    if (c == NULL) {
        evutil_closesocket(fd);
        return;
    }
    cl = rp_xalloc(sizeof(rp_client_t));
    cl->l = li;
    cl->fd = fd;
    client_set_addr(cl, sa);
    conn_bind(c, cl);
    if (tls) {
        if (conn_new_tls_bev(c, w, lc, fd) != RP_OK) {
            evutil_closesocket(fd);
            free(c);
            free(cl);
            return;
        }
        cl->fd = -1;                       /* the bufferevent's now */
        c->sock_conf = li->conf_ref;       /* its SSL_CTX lives there */
        rp_config_ref(c->sock_conf);
        rp_reader_init(&cl->reader, c->bev, CONN_READ_HIGH_WATERMARK, 0);
    } else {
        rp_reader_init(&cl->reader, c->bev, CONN_READ_HIGH_WATERMARK, 1);
        rp_reader_attach_fd(&cl->reader, w->base, fd, w->read_scratch, client_on_ready, cl);
        conn_bind_plain(c);
    }
    rp_listener_ref(li);
    if (!c->handshaking) {
        rp_http_conn_deadline(c, lc->read_timeout);   /* for the first request */
    }
    rp_reader_on(&cl->reader);
    rp_worker_conn_added(w, cl);
    if (!tls && lc->defer_accept) {
        /* accepted once bytes came (TCP_DEFER_ACCEPT): the request is read now,
         * not after an epoll_wait reports it; the reader's EPOLL_CTL_ADD is
         * still in libevent's changelist, which conn_unwatch() can cancel */
        rp_reader_ready(fd, EV_READ, &cl->reader);
    }
}

/* Frees what the current request owns: rewrites, a hook's answer, its Lua
 * objects (a kept handle then raises). */
static void
conn_request_cleanup(rp_http_conn_t *c)
{
    if (c->gen != NULL
        && (c->lua_box_ref != RP_LUA_NOREF || c->lua_ctx_ref != RP_LUA_NOREF)) {
        rp_lua_request_end(c->gen->lua, c);
    }
    free(c->path);
    c->path = NULL;
    free(c->query);
    c->query = NULL;
    c->query_set = 0;
    if (c->direct != NULL) {
        free(c->direct->body);
        free(c->direct->fields);
        free(c->direct);
        c->direct = NULL;
    }
    c->resp_status = 0;
    if (c->gen != NULL) {
        rp_gen_unref(c->gen);              /* the last request of a retired one frees it */
        c->gen = NULL;
    }
    if (c->lc_ref != NULL) {
        rp_config_unref(c->lc_ref);
        c->lc_ref = NULL;
    }
    c->lc = c->l->conf;                    /* between requests: the listener's current */
}

static void
conn_destroy(rp_http_conn_t *c)
{
    rp_client_t  *cl = c->cl;

    conn_idle_unlist(c);
    if (c->state == RP_CONN_WAIT) {
        rp_target_dequeue(&c->pending);
    }
    rp_proxy_detach(c, 0);
    conn_request_cleanup(c);
    client_timer_stop(cl);
    if (c->ssl != NULL && !c->handshaking) {
        rp_tls_shutdown(c->ssl);          /* keeps the session resumable */
    }
    if (c->tls_facts != NULL) {
        rp_tls_facts_cleanup(c->tls_facts);
        free(c->tls_facts);
    }
    rp_flush_detach(&c->flush);
    rp_reader_detach(&cl->reader);
    if (c->sock_conf != NULL) {
        rp_config_unref(c->sock_conf);
    }
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);   /* a parked one's is, at finish */
    cl->c = NULL;
    conn_put(c);                           /* a TLS bufferevent closes the socket */
    client_free(cl);
}

void
rp_http_conn_ref(rp_http_conn_t *c)
{
    c->refs++;
}

void
rp_http_conn_unref(rp_http_conn_t *c)
{
    if (--c->refs == 0) {
        conn_destroy(c);
    }
}

/* Drops the open reference: c is freed now or when the last callback returns. */
static void
conn_release(rp_http_conn_t *c)
{
    if (!c->closed) {
        c->closed = 1;
        conn_set_state(c, RP_CONN_CLOSING);
        client_timer_stop(c->cl);
        rp_reader_off(&c->cl->reader);
        bufferevent_disable(c->bev, EV_WRITE);
        rp_http_conn_unref(c);
    }
}

static void
conn_begin_request(rp_http_conn_t *c)
{
    conn_set_state(c, RP_CONN_HEAD);
    /* a reload applies from this request on, and this request keeps what it
     * began with to its end: the listener's settings and the generation */
    c->lc = c->l->conf;
    c->lc_ref = c->l->conf_ref;
    rp_config_ref(c->lc_ref);
    c->gen = c->w->gen;
    rp_gen_ref(c->gen);
    c->flags = 0;
    c->status = 0;
    c->up_retries = 0;
    c->t_start = rp_now();
    c->t_upstream = c->t_first = 0;
    c->bytes_in = c->bytes_out = 0;
    c->up_backend = NULL;
    c->up_port = 0;
    c->vhost = NULL;
    c->route = NULL;
    c->target = NULL;
    c->t_head = 0;
    rp_http_conn_body_timeout(c, 0);       /* a reload may change the write timeout */
    rp_http_conn_deadline(c, 0);           /* a head's own only if one read is not enough */
}

static int
req_on_head(rp_msg_t *m)
{
    rp_http_conn_t  *c = m->owner;

    if (rp_msg_check_request(m) != RP_OK) {
        return -1;
    }
    c->req_cl = m->parser.content_length;
    return 2;                              /* pause: route before reading the body */
}

static int
req_on_body(rp_msg_t *m, const char *p, size_t n)
{
    rp_proxy_request_body(m->owner, p, n);
    return 0;
}

static int
req_on_complete(rp_msg_t *m)
{
    rp_proxy_request_done(m->owner);
    return 0;                              /* pause: a pipelined request waits its turn */
}

/* Can the parse loop feed more client bytes now? */
static int
conn_wants_input(const rp_http_conn_t *c)
{
    switch (c->state) {
    case RP_CONN_IDLE:
    case RP_CONN_HEAD:
        return 1;
    case RP_CONN_PROXY:
        return !(c->flags & (RP_REQ_DONE | RP_REQ_BLOCKED));
    default:
        return 0;
    }
}

/* The request is read whole and is the connection's last (Connection:
 * close, HTTP/1.0), with nothing after it: the client's socket leaves epoll
 * while the backend works. A client that asked to close sends nothing more
 * (RFC 9112 §9.6; conn_may_have_input() relies on it too), so reads would only
 * see a half-close (which changes nothing now) or a reset;
 * what they cost is two epoll_ctl a request, one of them an EPOLL_CTL_DEL that
 * fails after the close. A socket read when accepted (TCP_DEFER_ACCEPT) was
 * never in epoll: libevent's changelist drops the pending ADD. Reads come back
 * after CONN_WATCH_AFTER (conn_on_timer), so that a client which resets while
 * the backend takes its time is still cut off then, as with reads on. */
static void
conn_unwatch(rp_http_conn_t *c)
{
    if ((c->flags & RP_REQ_KEEPALIVE) || c->ssl != NULL
        || rp_reader_buffered(&c->cl->reader) > 0 || !c->cl->reader.on) {
        return;
    }
    rp_reader_off(&c->cl->reader);
    c->unwatched = 1;
    conn_deadline_at(c, rp_now() + CONN_WATCH_AFTER);
}

void
rp_http_conn_watch(rp_http_conn_t *c)
{
    if (c->unwatched) {
        c->unwatched = 0;
        rp_reader_on(&c->cl->reader);
    }
}

/* Feeds what the client sent to the parser, in place (rp_reader_peek);
 * whatever runs after a feed finds the unused rest in the input. */
static void
conn_feed(rp_http_conn_t *c)
{
    rp_reader_t  *r = &c->cl->reader;
    size_t        n;
    ssize_t       rc;
    const char   *p;

    while (!c->closed && conn_wants_input(c)) {
        p = rp_reader_peek(r, &n);
        if (n == 0 && c->state != RP_CONN_PROXY) {
            break;
        }
        if (c->state == RP_CONN_IDLE) {
            conn_begin_request(c);
        }
        if (c->state == RP_CONN_PROXY && c->req.stage == RP_MSG_BODY && r->pend_len == 0
            && (rc = (ssize_t) rp_proxy_move_request_body(c)) > 0) {
            c->bytes_in += (uint64_t) rc;      /* body bytes moved, not parsed */
            continue;
        }
        rc = rp_msg_feed(&c->req, p, n);
        rp_reader_consume(r, rc > 0 ? (size_t) rc : 0);
        if (rc < 0) {
            /* a refused request's bytes count: all that was read of it (the
             * connection closes, so nothing after it is another's) */
            c->bytes_in += (uint64_t) n;
            c->flags &= ~RP_REQ_KEEPALIVE;
            rp_http_conn_error(c, c->req.status, c->req.error);
            break;
        }
        c->bytes_in += (uint64_t) rc;
        if (c->state == RP_CONN_HEAD && c->req.stage == RP_MSG_HEAD
            && c->cl->deadline.due == 0) {
            /* slowloris: the whole head must arrive within read_timeout */
            conn_deadline_at(c, c->t_start + c->lc->read_timeout);
        }
        if (c->state == RP_CONN_HEAD && c->req.stage != RP_MSG_HEAD) {
            rp_http_conn_deadline(c, 0);
            rp_proxy_start(c);             /* moves to WAIT, PROXY or an error */
            continue;
        }
        if ((c->flags & RP_REQ_DONE) && (c->flags & RP_RESP_DONE)) {
            rp_http_conn_finish(c);        /* the backend answered before we read it all */
            continue;
        }
        if (rc == 0 || n == 0) {
            break;
        }
    }
}

static void
conn_parse_loop(rp_http_conn_t *c)
{
    int  reads = 0;

    do {
        conn_feed(c);
    } while (rp_proxy_request_read_on(c, &reads));   /* a large body: more in hand */
    if (c->state == RP_CONN_PROXY && (c->flags & RP_REQ_DONE) && !c->unwatched) {
        conn_unwatch(c);
    }
    rp_reader_drained(&c->cl->reader);
}

void
rp_http_conn_parse(rp_http_conn_t *c)
{
    if (c->in_parse) {
        return;                            /* the loop on the stack picks it up */
    }
    c->in_parse = 1;
    rp_http_conn_ref(c);
    conn_parse_loop(c);
    c->in_parse = 0;
    rp_http_conn_unref(c);
}

static void
conn_on_read(struct bufferevent *bev, void *arg)
{
    rp_http_conn_t  *c = arg;

    if (c->state == RP_CONN_CLOSING) {
        rp_reader_discard(&c->cl->reader);
        return;
    }
    conn_idle_unlist(c);
    rp_worker_read_begin(c->w);
    rp_http_conn_ref(c);
    rp_http_conn_parse(c);                 /* its loop ends with rp_reader_drained() */
    rp_worker_read_end(c->w);              /* what it sent goes now, before other sockets */
    conn_unref_or_park(c);
}

/* After the last answer: half-close, then read and drop what the client still
 * sends for a moment, so that its unread bytes do not turn into a RST that
 * could destroy the answer in flight (what nginx calls lingering close). */
static void
conn_linger(rp_http_conn_t *c)
{
    if (c->ssl != NULL && !c->handshaking) {
        /* RFC 8446 §6.1: close_notify before our write side closes, so the
         * client can tell the end of the answer from a truncation */
        SSL_shutdown(c->ssl);
    }
    shutdown(conn_fd(c), SHUT_WR);
    bufferevent_disable(c->bev, EV_WRITE);
    rp_reader_set_timeouts(&c->cl->reader, CONN_LINGER_SECONDS, NULL);
    c->write_timeout = -1;                 /* bev has none now: the next bind sets it */
    rp_reader_set_limit(&c->cl->reader, 0);
    rp_reader_on(&c->cl->reader);
    c->lingering = 1;                      /* the next event (EOF, timeout) frees */
}

/* Can the client still be sending? Lingering protects an answer from the
 * RST that closing a socket with unread input sends; like nginx, we skip it
 * when the request was read whole (an early answer or an error may leave
 * some arriving), nothing of it is left over and the kernel holds no more
 * bytes from the client (not asked when the client itself asked to close:
 * it sends nothing more). TLS always lingers: the client's close_notify may
 * be on its way. The last request's flags stay set while closing. */
static int
conn_may_have_input(rp_http_conn_t *c)
{
    int  n = 0;

    if (!(c->flags & RP_REQ_DONE) || c->ssl != NULL
        || evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
        return 1;
    }
    return !(c->flags & RP_REQ_CLIENT_CLOSES)
           && (ioctl(conn_fd(c), FIONREAD, &n) != 0 || n > 0);
}

/* The last answer is written: close now, or half-close and linger. */
static void
conn_output_done(rp_http_conn_t *c)
{
    if (conn_may_have_input(c)) {
        conn_linger(c);
    } else {
        conn_release(c);
    }
}

static void
conn_on_write(struct bufferevent *bev, void *arg)
{
    rp_http_conn_t  *c = arg;

    rp_http_conn_ref(c);
    rp_flush_drained(&c->flush);
    if (c->state == RP_CONN_CLOSING && !c->closed && !c->lingering
        && rp_flush_out_len(&c->flush, bev) == 0) {
        conn_output_done(c);
    } else if (c->state == RP_CONN_PROXY) {
        rp_proxy_client_drained(c);
    }
    conn_unref_or_park(c);                 /* an answer's last byte went: maybe idle */
}

/* Starts closing: flushes what is queued, then lingers, then frees. */
static void
conn_close(rp_http_conn_t *c)
{
    if (c->state == RP_CONN_WAIT) {
        rp_target_dequeue(&c->pending);
    }
    client_timer_stop(c->cl);
    rp_proxy_detach(c, 0);
    conn_set_state(c, RP_CONN_CLOSING);
    rp_reader_off(&c->cl->reader);
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    if (rp_flush_out_len(&c->flush, c->bev) == 0) {
        conn_output_done(c);
    } else if (rp_flush_want_drain(&c->flush)) {
        return;                            /* the flusher writes it, then calls back */
    } else if (c->ssl == NULL) {
        rp_flush_arm(&c->flush);           /* libevent writes it */
    } else {
        bufferevent_enable(c->bev, EV_WRITE);
    }
}

void
rp_http_conn_abort(rp_http_conn_t *c, const char *why)
{
    if (c->closed) {
        return;
    }
    rp_log_info("client %s:%u: connection aborted: %s", c->addr, c->port, why);
    if (c->state == RP_CONN_WAIT) {
        rp_target_dequeue(&c->pending);
    }
    if (c->state == RP_CONN_WAIT || c->state == RP_CONN_PROXY) {
        /* a request cut short is the one an operator most needs to see: its
         * line says the status sent (0: none) and the bytes that went */
        conn_log(c);
    }
    rp_proxy_detach(c, 0);
    conn_release(c);
}

static void
conn_tls_failed(rp_http_conn_t *c, short what)
{
    unsigned long  e = bufferevent_get_openssl_error(c->bev);

    rp_log_info("client %s:%u: TLS handshake failed: %s", c->addr, c->port,
                (what & BEV_EVENT_TIMEOUT) ? "timed out"
                : e != 0 ? rp_tls_bev_error(e) : "connection closed");
    conn_release(c);
}

static void
conn_on_event(struct bufferevent *bev, short what, void *arg)
{
    rp_http_conn_t  *c = arg;

    rp_http_conn_ref(c);
    if (what & BEV_EVENT_CONNECTED) {
        c->handshaking = 0;                /* TLS is up: the request may come */
        c->lc = c->l->conf;                /* a reload may have come meanwhile */
        conn_set_timeouts(c, 0);
        rp_http_conn_deadline(c, c->lc->read_timeout);
    } else if (c->handshaking) {
        conn_tls_failed(c, what);
    } else if (c->state == RP_CONN_CLOSING || c->state == RP_CONN_IDLE) {
        conn_release(c);                   /* linger over, or an idle client left */
    } else if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING)
               && !(c->flags & RP_REQ_HEAD_SENT)) {
        rp_http_conn_error(c, 408, "client read timed out");
    } else if ((what & BEV_EVENT_EOF) && (what & BEV_EVENT_READING)
               && c->state == RP_CONN_WAIT) {
        /* waiting for a backend connection, nothing parsed past the head:
         * whether this is a half-close after a whole request or an abort
         * shows only then. The reads are off now; proxy_attach() turns them
         * on, the EOF comes again, and the branch below or the abort takes it */
    } else if ((what & BEV_EVENT_EOF) && (what & BEV_EVENT_READING)
               && (c->flags & RP_REQ_DONE) && c->state == RP_CONN_PROXY) {
        /* the client sent its whole request and shut its write side: a
         * half-close. The answer still goes out. With nothing more buffered
         * the connection ends after it; requests pipelined before the EOF
         * are answered first, and the EOF comes again once reads resume on
         * an empty input (the idle branch above closes then). */
        if (evbuffer_get_length(bufferevent_get_input(bev)) == 0) {
            c->flags &= ~RP_REQ_KEEPALIVE;
        }
    } else {
        rp_http_conn_abort(c, (what & BEV_EVENT_TIMEOUT) ? "client timed out"
                              : (what & BEV_EVENT_EOF) ? "client closed the connection"
                                                       : "client connection error");
    }
    rp_http_conn_unref(c);
}

/* The phase's deadline passed (conn_on_timer_ev). */
static void
conn_on_timer(rp_http_conn_t *c)
{
    rp_http_conn_ref(c);
    if (c->state == RP_CONN_IDLE) {
        conn_release(c);                   /* no request within the keep-alive time */
    } else if (c->state == RP_CONN_HEAD) {
        rp_http_conn_error(c, 408, "request head not complete within read_timeout");
    } else if (c->state == RP_CONN_WAIT) {
        rp_target_dequeue(&c->pending);
        rp_http_conn_error(c, 503, "no backend connection within pending_timeout");
    } else if (c->state == RP_CONN_PROXY) {
        rp_http_conn_watch(c);             /* the backend takes its time: see a reset */
    }
    rp_http_conn_unref(c);
}

static const char *
status_reason(int status)
{
    return rp_http_reason(status);
}

/* A request without a body that is answered at its head (404, a hook's
 * answer) is read to its end, so that the connection can stay open. */
static void
conn_read_empty_body(rp_http_conn_t *c)
{
    if (c->req.stage == RP_MSG_BODY && !(c->flags & (RP_REQ_HAS_BODY | RP_REQ_DONE))
        && c->state != RP_CONN_PROXY) {
        rp_msg_resume(&c->req);
        rp_msg_feed(&c->req, "", 0);       /* fires on_complete: RP_REQ_DONE */
    }
}

void
rp_http_conn_direct(rp_http_conn_t *c)
{
    struct evbuffer    *out = rp_flush_output(&c->flush, c->bev);
    const rp_direct_t  *d = c->direct;
    size_t              before = evbuffer_get_length(out);
    int                 nobody = d->status == 204 || d->status == 304;   /* RFC 9110 §6.4.1 */

    conn_read_empty_body(c);
    if (!(c->flags & RP_REQ_DONE) || rp_worker_stopping(c->w)) {
        c->flags &= ~RP_REQ_KEEPALIVE;
    }
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", d->status, status_reason(d->status));
    evbuffer_add(out, d->fields, d->fields_len);
    if (!nobody) {
        evbuffer_add_printf(out, "Content-Length: %zu\r\n", d->body_len);
    }
    evbuffer_add_printf(out, "%s\r\n",
                        (c->flags & RP_REQ_KEEPALIVE)
                            ? (rp_msg_http_minor(&c->req) == 0 ? "Connection: keep-alive\r\n" : "")
                            : "Connection: close\r\n");
    if (rp_msg_method(&c->req) != HTTP_HEAD && !nobody) {
        evbuffer_add(out, d->body, d->body_len);
    }
    rp_flush_queue(&c->flush);
    c->bytes_out += evbuffer_get_length(out) - before;
    c->status = d->status;
    c->flags |= RP_REQ_HEAD_SENT | RP_RESP_DONE;
    rp_http_conn_finish(c);
}

void
rp_http_conn_error(rp_http_conn_t *c, int status, const char *why)
{
    struct evbuffer  *out = rp_flush_output(&c->flush, c->bev);
    char              body[96];
    int               blen;
    size_t            before = evbuffer_get_length(out);

    if (c->closed || c->state == RP_CONN_CLOSING) {
        return;
    }
    if ((c->flags & RP_REQ_HEAD_SENT) && c->bytes_out > 0 && before == c->bytes_out) {
        /* the answer went no further than the output (a backend head and a
         * broken body in one read): every byte there is this answer's, none
         * reached the client, so it can still be told the error */
        if (c->ssl == NULL) {
            /* a socket bufferevent keeps its output's start frozen (flush.c) */
            evbuffer_unfreeze(out, 1);
            evbuffer_drain(out, before);
            evbuffer_freeze(out, 1);
        } else {
            evbuffer_drain(out, before);
        }
        before = 0;
        c->bytes_out = 0;
        c->flags &= ~(RP_REQ_HEAD_SENT | RP_RESP_CHUNKED | RP_RESP_TO_CLOSE | RP_RESP_BLOCKED
                      | RP_RESP_DISCARD);
    }
    if (c->flags & RP_REQ_HEAD_SENT) {
        rp_http_conn_abort(c, why);
        return;
    }
    rp_log_info("client %s:%u: %d: %s", c->addr, c->port, status, why ? why : "");
    if (c->state == RP_CONN_WAIT) {
        rp_target_dequeue(&c->pending);
        rp_http_conn_deadline(c, 0);
    }
    conn_read_empty_body(c);
    if (!(c->flags & RP_REQ_DONE) || rp_worker_stopping(c->w)) {
        c->flags &= ~RP_REQ_KEEPALIVE;     /* unread request bytes: cannot resync */
    }
    blen = snprintf(body, sizeof(body), "%d %s\n", status, status_reason(status));
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
                        "Content-Length: %d\r\n%s\r\n",
                        status, status_reason(status), blen,
                        (c->flags & RP_REQ_KEEPALIVE)
                            ? (rp_msg_http_minor(&c->req) == 0 ? "Connection: keep-alive\r\n" : "")
                            : "Connection: close\r\n");
    if (rp_msg_method(&c->req) != HTTP_HEAD || c->req.stage == RP_MSG_HEAD) {
        evbuffer_add(out, body, (size_t) blen);
    }
    rp_flush_queue(&c->flush);
    c->bytes_out += evbuffer_get_length(out) - before;
    c->status = status;
    c->flags |= RP_REQ_HEAD_SENT | RP_RESP_DONE;
    rp_http_conn_finish(c);
}

static const char *
log_req_header(void *ctx, const char *name, size_t nlen, size_t *vlen)
{
    return rp_msg_header(ctx, name, nlen, vlen);
}

/* The request's access-log line (the request target as the client sent it). */
static void
conn_write_access_line(rp_http_conn_t *c)
{
    rp_access_log_t    *log;
    rp_access_entry_t   e;
    struct timeval      now;
    const rp_msg_t     *m = &c->req;
    const char         *meth;
    double              t = rp_now();

    log = rp_worker_access_log(c->gen, c->l, c->vhost);
    if (log == NULL) {
        return;
    }
    memset(&e, 0, sizeof(e));
    gettimeofday(&now, NULL);
    e.client_addr = c->addr;
    e.client_addr_len = strlen(c->addr);
    e.client_port = c->port;
    if (c->up_backend != NULL) {
        e.backend_addr = c->up_backend->addr_text;
        e.backend_addr_len = strlen(c->up_backend->addr_text);
        e.backend_sport = c->up_port;
    }
    e.wall_time = (double) now.tv_sec + (double) now.tv_usec / 1e6;
    if (m->stage != RP_MSG_HEAD || m->target_len > 0) {
        meth = llhttp_method_name((llhttp_method_t) rp_msg_method(m));
        e.method = meth;
        e.method_len = strlen(meth);
        e.uri = rp_msg_str(m, m->target);
        e.uri_len = m->target_len;
        e.http_major = m->parser.http_major;
        e.http_minor = m->parser.http_minor;
        e.host = rp_msg_header(m, "host", 4, &e.host_len);
        e.user_agent = rp_msg_header(m, "user-agent", 10, &e.user_agent_len);
        e.referer = rp_msg_header(m, "referer", 7, &e.referer_len);
        e.req_header = log_req_header;
        e.req_ctx = (void *) m;
    }
    e.status = c->status;
    e.request_time = t - c->t_start;
    e.upstream_time = c->t_upstream > 0 ? t - c->t_upstream : -1;
    e.bytes_in = c->bytes_in;
    e.bytes_out = c->bytes_out;
    e.gen = c->gen->id;
    if (c->uc != NULL && c->t_first > 0) {
        e.resp_header = log_req_header;
        e.resp_ctx = &c->uc->resp;
    }
    rp_access_log_write(log, &e);
}

/* A request is over (answered, or cut short): its access-log line, then on_log. */
static void
conn_log(rp_http_conn_t *c)
{
    conn_write_access_line(c);
    rp_proxy_run_log_hook(c);
}

void
rp_http_conn_finish(rp_http_conn_t *c)
{
    struct evbuffer  *in = bufferevent_get_input(c->bev);

    conn_log(c);
    rp_proxy_detach(c, (c->flags & RP_UP_REUSABLE) && (c->flags & RP_REQ_DONE));
    conn_request_cleanup(c);
    rp_http_conn_deadline(c, 0);
    if (!(c->flags & RP_REQ_KEEPALIVE) || (c->flags & RP_RESP_TO_CLOSE)
        || rp_worker_stopping(c->w)) {
        conn_close(c);
        return;
    }
    conn_set_state(c, RP_CONN_IDLE);
    rp_msg_reset(&c->req);
    rp_msg_resume(&c->req);
    if (evbuffer_get_length(in) == 0) {
        rp_msg_shrink(&c->req);            /* an idle client holds no head memory */
    }
    c->flags = 0;
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    rp_http_conn_body_timeout(c, 0);
    rp_http_conn_deadline(c, c->lc->keepalive_timeout);
    rp_reader_on(&c->cl->reader);
    if (evbuffer_get_length(in) > 0) {
        rp_http_conn_parse(c);             /* a pipelined request is already here */
    } else {
        /* the answer's last byte written, conn_on_write parks the client */
        rp_flush_want_drain(&c->flush);
    }
}

static void
conn_shutdown(rp_http_conn_t *c)
{
    rp_http_conn_ref(c);
    if (c->state == RP_CONN_IDLE) {
        conn_release(c);
    } else {
        c->flags &= ~RP_REQ_KEEPALIVE;
    }
    rp_http_conn_unref(c);
}

void
rp_http_conn_retarget(rp_pending_t *p, rp_target_t *to)
{
    rp_http_conn_t  *c = (rp_http_conn_t *) ((char *) p - offsetof(rp_http_conn_t, pending));

    c->target = to;
}

void
rp_client_shutdown(rp_client_t *cl)
{
    if (cl->c == NULL) {
        client_free(cl);                   /* parked: between requests */
    } else {
        conn_shutdown(cl->c);
    }
}

void
rp_client_abort(rp_client_t *cl, const char *why)
{
    if (cl->c == NULL) {
        client_free(cl);
    } else {
        rp_http_conn_abort(cl->c, why);
    }
}
