/* proxy.c: one request's trip through a backend: routing, the pending queue,
 * the re-serialised request head, bodies streamed both ways with
 * back-pressure, response checks, retry of a safe request on a dead reused
 * connection, and the 502/504 answers. */
#include "http_conn.h"

#include "log.h"
#include "lua_balancer.h"
#include "lua_request.h"
#include "lua_state.h"
#include "match.h"
#include "sockread.h"
#include "tls.h"
#include "worker.h"

#include <lauxlib.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PROXY_VIA_TOKEN "rproxy"
#define PROXY_ONE_RECORD (16 * 1024 - 1024)   /* bodies that fit one TLS record with a head */

static void proxy_attach(rp_http_conn_t *c, rp_upstream_conn_t *uc);
static int  proxy_misdirected(const rp_http_conn_t *c);
static void proxy_on_up_read(rp_upstream_conn_t *uc, void *arg);
static void proxy_up_closed(rp_http_conn_t *c, rp_upstream_conn_t *uc);
static void proxy_on_up_drain(rp_upstream_conn_t *uc, void *arg);
static void proxy_on_up_event(rp_upstream_conn_t *uc, void *arg, short what);
static int  resp_on_head(rp_msg_t *m);
static int  resp_on_body(rp_msg_t *m, const char *p, size_t n);
static void proxy_response_body_queued(rp_http_conn_t *c, rp_upstream_conn_t *uc);
static int  resp_on_complete(rp_msg_t *m);

static const rp_upstream_user_t  proxy_user = {
    proxy_on_up_read, proxy_on_up_drain, proxy_on_up_event, 1,
};

const rp_msg_handler_t  rp_proxy_resp_handler = { resp_on_head, resp_on_body, resp_on_complete };

static rp_http_conn_t *
pending_conn(rp_pending_t *p)
{
    return (rp_http_conn_t *) ((char *) p - offsetof(rp_http_conn_t, pending));
}

/* The Host the client asked for: the authority of an absolute-form target
 * (RFC 9112 §3.2.2), else the Host field; NULL with len 0 if none. */
const char *
rp_proxy_host(const rp_http_conn_t *c, size_t *len)
{
    const rp_msg_t  *m = &c->req;
    const char      *t = rp_msg_str(m, m->target), *a, *e;

    if (c->flags & RP_REQ_ABSOLUTE) {
        a = strstr(t, "://") + 3;
        e = a + strcspn(a, "/?");
        *len = (size_t) (e - a);
        return a;
    }
    *len = 0;
    return rp_msg_header(m, "host", 4, len);
}

/* The origin-form parts of the client's target: path, and query or NULL. */
static void
proxy_client_target(const rp_http_conn_t *c, const char **path, size_t *plen,
                    const char **query, size_t *qlen)
{
    const rp_msg_t  *m = &c->req;
    const char      *t = rp_msg_str(m, m->target), *q;
    size_t           n;

    if (c->flags & RP_REQ_ABSOLUTE) {
        t = strstr(t, "://") + 3;
        t += strcspn(t, "/?");
    }
    n = m->target_len - (size_t) (t - rp_msg_str(m, m->target));
    q = memchr(t, '?', n);
    if (n == 0 && rp_msg_method(m) == HTTP_OPTIONS) {
        *path = "*";                       /* "OPTIONS http://host" (RFC 9112 §3.2.4) */
        *plen = 1;
    } else if (n == 0 || t[0] == '?') {
        *path = "/";                       /* "http://host" or "http://host?x" */
        *plen = 1;
    } else {
        *path = t;
        *plen = q ? (size_t) (q - t) : n;
    }
    *query = q ? q + 1 : NULL;
    *qlen = q ? n - (size_t) (q - t) - 1 : 0;
}

void
rp_proxy_target(const rp_http_conn_t *c, const char **path, size_t *plen, const char **query,
                size_t *qlen)
{
    proxy_client_target(c, path, plen, query, qlen);
    if (c->path != NULL) {
        *path = c->path;
        *plen = c->path_len;
    }
    if (c->query_set) {
        *query = c->query;
        *qlen = c->query_len;
    }
}

/* A Lua balancer chose b: its IDLE connection, else its own queue (the
 * current generation's, where waiters are served; b may be shared by both). */
static int
proxy_acquire_backend(rp_http_conn_t *c, rp_backend_t *b, rp_upstream_conn_t **uc)
{
    rp_target_t  *t = rp_gen_single_of(c->w->gen, b);

    if (t == NULL && (t = rp_gen_single_of(c->gen, b)) == NULL) {
        return RP_DECLINED;
    }
    c->target = t;
    return rp_target_acquire(c->target, &proxy_user, c, uc);
}

/* A request of a generation a reload replaced waits on the current one's
 * target of the same name: only those are served when a connection frees. */
static void
proxy_current_target(rp_http_conn_t *c)
{
    rp_target_t  *t;

    if (c->gen != c->w->gen && (t = rp_gen_same_target(c->w->gen, c->target)) != NULL) {
        c->target = t;
    }
}

static void
proxy_acquire(rp_http_conn_t *c)
{
    rp_upstream_conn_t  *uc;
    rp_backend_t        *b;
    rp_lua_t            *lua = c->gen->lua;
    int                  rc = RP_DECLINED;

    /* the request's own generation decides: its Lua state, its pool (a
     * retried request may already wait on the current generation's target) */
    if (c->target->pool >= 0 && c->target == &c->gen->pools[c->target->pool]
        && lua->pool_balancers[c->target->pool] != LUA_NOREF) {
        rc = rp_lua_balance(lua, (unsigned) c->target->pool, c, &b);
        if (rc == RP_ERROR) {
            rp_http_conn_error(c, 500, "the Lua balancer failed");
            return;
        }
    }
    if (rc != RP_OK) {
        proxy_current_target(c);
    }
    rc = rc == RP_OK ? proxy_acquire_backend(c, b, &uc)
                     : rp_target_acquire(c->target, &proxy_user, c, &uc);
    switch (rc) {
    case RP_OK:
        proxy_attach(c, uc);
        return;
    case RP_AGAIN:
        if (c->target->npending >= c->lc->max_pending) {
            rp_http_conn_error(c, 503, "pending queue full (max_pending)");
            return;
        }
        /* reads stay on while it waits (turning them off and on again cost
         * two epoll_ctl a queued request): nothing is parsed in WAIT, so the
         * bytes wait in the input, bounded by its high watermark, and an EOF
         * is read again once a backend connection comes (conn_on_event) */
        rp_target_enqueue(c->target, &c->pending);
        rp_http_conn_watch(c);             /* a retry of an unwatched request */
        c->state = RP_CONN_WAIT;
        rp_http_conn_deadline(c, c->lc->pending_timeout);
        return;
    default:
        rp_http_conn_error(c, 502, "every connection to the backend is down");
    }
}

static void
pending_ready(rp_pending_t *p, rp_upstream_conn_t *uc)
{
    rp_http_conn_t  *c = pending_conn(p);

    rp_http_conn_ref(c);
    rp_http_conn_deadline(c, 0);
    rp_upstream_bind(uc, &proxy_user, c);
    proxy_attach(c, uc);
    rp_http_conn_unref(c);
}

static void
pending_fail(rp_pending_t *p, int status)
{
    rp_http_conn_t  *c = pending_conn(p);

    rp_http_conn_ref(c);
    rp_http_conn_deadline(c, 0);
    rp_http_conn_error(c, status, "every connection to the backend is down");
    rp_http_conn_unref(c);
}

/* Runs the hook at ref with the request (and the response) object. */
static int
proxy_hook(rp_http_conn_t *c, int ref, unsigned phase, const char *what)
{
    rp_lua_hook_t  h = {
        .lua = c->gen->lua, .c = c, .fn_ref = ref,
        .with_res = (phase & (RP_PHASE_RESPONSE | RP_PHASE_LOG)) != 0,
        .for_log = phase == RP_PHASE_LOG, .extra_ref = LUA_NOREF, .nresults = 0,
    };

    return rp_lua_run_hook(&h, phase, what);
}

/* rproxy.on_request, then the route's own on_request. RP_OK: go on to a
 * backend; otherwise c was answered (500 on a hook error, or the hook's own
 * answer). No Lua call at all when neither is defined. */
static int
proxy_request_hooks(rp_http_conn_t *c)
{
    rp_lua_t  *lua = c->gen->lua;
    int        route_ref = rp_lua_route_hook(lua, (unsigned) (c->vhost - c->gen->conf->vhosts),
                                             (unsigned) (c->route - c->vhost->routes));

    if (lua->on_request != LUA_NOREF
        && proxy_hook(c, lua->on_request, RP_PHASE_REQUEST, "on_request") != RP_OK) {
        goto fail;
    }
    if (c->direct == NULL && route_ref != LUA_NOREF
        && proxy_hook(c, route_ref, RP_PHASE_REQUEST, "route on_request") != RP_OK) {
        goto fail;
    }
    if (c->direct != NULL) {
        rp_http_conn_direct(c);
        return RP_DONE;
    }
    return RP_OK;

fail:
    rp_http_conn_error(c, 500, "a Lua hook failed");
    return RP_ERROR;
}

void
rp_proxy_run_log_hook(rp_http_conn_t *c)
{
    rp_lua_t  *lua = c->gen->lua;

    if (lua != NULL && lua->on_log != LUA_NOREF) {
        proxy_hook(c, lua->on_log, RP_PHASE_LOG, "on_log");
    }
}

void
rp_proxy_start(rp_http_conn_t *c)
{
    rp_msg_t   *m = &c->req;
    const char *host, *path, *query, *t = rp_msg_str(m, m->target);
    size_t      hlen, plen, qlen;
    char        buf[8192 + 1];
    int         n;

    if (m->parser.http_minor == 1 ? !(m->flags & RP_MSG_CONN_CLOSE)
                                  : (m->flags & RP_MSG_CONN_KA) && !(m->flags & RP_MSG_CONN_CLOSE)) {
        c->flags |= RP_REQ_KEEPALIVE;
    } else {
        c->flags |= RP_REQ_CLIENT_CLOSES;
    }
    if ((m->flags & RP_MSG_CHUNKED) || c->req_cl > 0) {
        c->flags |= RP_REQ_HAS_BODY;
    }
    if (strncasecmp(t, "http://", 7) == 0 || strncasecmp(t, "https://", 8) == 0) {
        c->flags |= RP_REQ_ABSOLUTE;
    }
    c->t_head = rp_now();
    host = rp_proxy_host(c, &hlen);
    c->vhost = rp_match_vhost(c->gen->conf, host ? host : "", host ? hlen : 0);
    proxy_client_target(c, &path, &plen, &query, &qlen);
    if (proxy_misdirected(c)) {
        rp_http_conn_error(c, 421, "Host names another vhost than the TLS server name");
        return;
    }
    c->route = c->vhost ? rp_match_route(c->vhost, path, plen) : NULL;
    if (c->route == NULL) {
        rp_http_conn_error(c, 404, "no route for this host and path");
        return;
    }
    if (c->route->has_rewrite) {
        n = rp_match_rewrite(c->route, path, plen, buf, sizeof(buf));
        if (n == RP_ERROR) {
            rp_http_conn_error(c, 414, "rewritten path too long");
            return;
        }
        if (n >= 0) {
            c->path = rp_xstrndup(buf, (size_t) n);
            c->path_len = (size_t) n;
        }
    }
    c->target = rp_gen_target(c->gen, &c->route->to);
    c->pending.ready = pending_ready;
    c->pending.fail = pending_fail;
    if (proxy_request_hooks(c) != RP_OK) {
        return;                            /* answered: an error or the hook's own */
    }
    proxy_acquire(c);
}

/* The size line of an n-byte chunk in line (20 bytes); returns its length. */
static size_t
chunk_size_line(char *line, size_t n)
{
    size_t  len = rp_fmt_hex(line, n);

    line[len++] = '\r';
    line[len++] = '\n';
    return len;
}

/* One chunk of a body we re-frame as chunked: size line, data, CRLF, to
 * bev's output (fl its flush). Returns the bytes added. */
static size_t
add_chunk(rp_flush_t *fl, struct bufferevent *bev, const char *p, size_t n)
{
    char    line[20];
    size_t  len = chunk_size_line(line, n);

    rp_flush_add(fl, bev, line, len);
    rp_flush_add(fl, bev, p, n);
    rp_flush_add(fl, bev, "\r\n", 2);
    return len + n + 2;
}

/* The last chunk of a re-framed body, with m's trailers (but those skip
 * names, or NULL), built in b. */
static const rp_headbuf_t *
last_chunk(rp_headbuf_t *b, const rp_msg_t *m, const rp_names_t *skip)
{
    rp_headbuf_reset(b);
    rp_headbuf_add_lit(b, "0\r\n");
    rp_msg_write_trailers(m, b, skip);
    rp_headbuf_add_lit(b, "\r\n");
    return b;
}

/* Appends the fields of kind (named name) as one line with add at the end
 * of the list ("a, b, add"); add alone when m's Connection names the field,
 * which makes the sender's fields of it hop-by-hop (RFC 9110 §7.6.1). */
static void
write_list_field(rp_headbuf_t *b, const rp_msg_t *m, rp_field_kind_e kind, const char *name,
                 size_t nlen, const char *add, size_t alen)
{
    uint32_t  i, n = rp_msg_nfields(m);
    int       keep = rp_msg_may_have(m, kind)
                     && !((m->flags & RP_MSG_CONN_FIELDS) && rp_msg_is_hop_by_hop(m, name, nlen));

    rp_headbuf_add(b, name, nlen);
    rp_headbuf_add_lit(b, ": ");
    for (i = 0; keep && i < n; i++) {
        const rp_hdr_t  *f = &m->fields[i];

        if (f->kind == kind && f->name_len != 0 && f->value_len > 0) {
            rp_headbuf_add(b, m->buf + f->value, f->value_len);
            rp_headbuf_add_lit(b, ", ");
        }
    }
    rp_headbuf_add(b, add, alen);
    rp_headbuf_add_lit(b, "\r\n");
}

/* Via: the protocol version the message came in, and our token (RFC 9110 §7.6.3). */
static void
write_via(rp_headbuf_t *b, const rp_msg_t *m)
{
    static const char  via10[] = "1.0 " PROXY_VIA_TOKEN, via11[] = "1.1 " PROXY_VIA_TOKEN;

    if (m->parser.http_minor == 0) {
        write_list_field(b, m, RP_F_VIA, "Via", 3, via10, sizeof(via10) - 1);
    } else {
        write_list_field(b, m, RP_F_VIA, "Via", 3, via11, sizeof(via11) - 1);
    }
}

/* Hands a head built in b to a connection's output in one piece; fl is
 * that connection's flush. */
static size_t
proxy_send_head(struct bufferevent *bev, rp_flush_t *fl, const rp_headbuf_t *b)
{
    rp_flush_add(fl, bev, b->p, b->len);
    return b->len;
}

/* The TLS facts the listener's x_headers ask for, under its header names. */
static void
proxy_write_tls_headers(rp_http_conn_t *c, rp_headbuf_t *b, unsigned xh)
{
    const rp_tls_facts_t  *f = rp_http_conn_tls_facts(c);
    const rp_tls_conf_t   *tls = c->lc->tls;
    const char            *v;
    unsigned               h;

    if (f == NULL) {
        return;
    }
    for (h = 0; h < RP_TLS_H_COUNT; h++) {
        if ((xh & RP_XH_SSL(h)) && (v = rp_tls_facts_get(f, (rp_tls_header_e) h)) != NULL) {
            rp_headbuf_add_field(b, tls->headers[h], strlen(tls->headers[h]), v, strlen(v));
        }
    }
    for (h = 0; (xh & RP_XH_SSL_EXT) && h < f->nexts; h++) {
        if (f->exts[h].value != NULL) {
            rp_headbuf_add_field(b, f->exts[h].header, strlen(f->exts[h].header),
                                 f->exts[h].value, strlen(f->exts[h].value));
        }
    }
}

/* RFC 9110 §15.5.20: on a TLS listener, a request whose Host names another
 * vhost than the one whose certificate SNI chose is misdirected. */
static int
proxy_misdirected(const rp_http_conn_t *c)
{
    const rp_vhost_conf_t  *sni, *host;

    if (c->ssl == NULL || !c->lc->tls->misdirected_reject) {
        return 0;
    }
    sni = rp_tls_sni_vhost(c->ssl);
    host = (c->vhost != NULL && c->vhost->tls_certset != NULL) ? c->vhost : NULL;
    return sni != host;
}

/* The request head as the backend sees it: rewritten target, hop-by-hop
 * fields dropped (RFC 9110 §7.6.1), Via and X-headers added, our framing. */
static void
proxy_write_request_head(rp_http_conn_t *c, rp_headbuf_t *b)
{
    const rp_listener_t      *l = c->l;
    const rp_msg_t           *m = &c->req;
    const char               *meth = llhttp_method_name((llhttp_method_t) rp_msg_method(m));
    const char               *path, *query;
    size_t                    plen, hlen, qlen;
    unsigned                  xh = c->lc->x_headers;

    rp_headbuf_reset(b);
    rp_proxy_target(c, &path, &plen, &query, &qlen);
    rp_headbuf_add_str(b, meth);
    rp_headbuf_add_lit(b, " ");
    rp_headbuf_add(b, path, plen);
    if (query != NULL) {
        rp_headbuf_add_lit(b, "?");
        rp_headbuf_add(b, query, qlen);
    }
    rp_headbuf_add_lit(b, " HTTP/1.1\r\n");
    if (c->flags & RP_REQ_ABSOLUTE) {
        const char  *h = rp_proxy_host(c, &hlen);

        rp_headbuf_add_field(b, "Host", 4, h, hlen);
    } else if (m->hosts == 0) {
        const char  *a = c->uc->b->conf->address;

        rp_headbuf_add_field(b, "Host", 4, a, strlen(a));
    }
    /* an HTTP/1.0 client's Expect is ignored (RFC 9110 §10.1.1): it goes on
     * as HTTP/1.1, where a backend would wait for a 100 the client cannot
     * read */
    rp_msg_write_fields(m, b, rp_msg_http_minor(m) == 0 ? 1u << RP_F_EXPECT : 0,
                        (c->flags & RP_REQ_ABSOLUTE) ? &l->skip_abs : &l->skip);
    if (xh & RP_XH_FORWARDED_FOR) {
        write_list_field(b, m, RP_F_X_FORWARDED_FOR, "X-Forwarded-For", 15, c->addr,
                         strlen(c->addr));
    }
    if (xh & RP_XH_REAL_IP) {
        rp_headbuf_add_field(b, "X-Real-IP", 9, c->addr, strlen(c->addr));
    }
    if (xh & RP_XH_FORWARDED_PROTO) {
        if (c->ssl != NULL) {
            rp_headbuf_add_lit(b, "X-Forwarded-Proto: https\r\n");
        } else {
            rp_headbuf_add_lit(b, "X-Forwarded-Proto: http\r\n");
        }
    }
    if ((xh & RP_XH_SSL_ANY) && c->ssl != NULL) {
        proxy_write_tls_headers(c, b, xh);
    }
    write_via(b, m);
    if (m->flags & RP_MSG_CHUNKED) {
        c->flags |= RP_REQ_OUT_CHUNKED;
        rp_headbuf_add_lit(b, "Transfer-Encoding: chunked\r\n");
    } else if (m->flags & RP_MSG_HAS_CL) {
        rp_headbuf_add_uint_field(b, "Content-Length", 14, c->req_cl);
    }
    rp_headbuf_add_lit(b, "\r\n");
}

/* Sends the head on uc and lets the request body flow. */
static void
proxy_attach(rp_http_conn_t *c, rp_upstream_conn_t *uc)
{
    c->uc = uc;
    c->up_backend = uc->b;
    c->up_port = uc->local_port;
    c->state = RP_CONN_PROXY;
    c->flags &= ~RP_REQ_OUT_CHUNKED;
    /* a head is built from dozens of small pieces: each evbuffer_add() on a
     * bufferevent's output runs its callbacks, so build it flat aside and
     * hand it over once */
    proxy_write_request_head(c, &c->w->head);
    proxy_send_head(uc->bev, &uc->flush, &c->w->head);
    uc->sent_at = rp_now();
    if (c->t_upstream == 0) {
        c->t_upstream = uc->sent_at;
    }
    rp_upstream_start(uc);                 /* writes go through the flusher */
    if (!(c->flags & RP_REQ_DONE)) {
        rp_msg_resume(&c->req);
        rp_http_conn_body_timeout(c, (c->flags & RP_REQ_HAS_BODY) != 0);
        rp_reader_on(&c->cl->reader);      /* again after an EOF it met waiting */
        rp_http_conn_parse(c);             /* body bytes may be buffered already */
    }
}

/* Bodies pass through without a copy in rproxy. Each body byte was copied
 * from one side's input into the other side's output (evbuffer_add), then
 * into the kernel: that memmove was 30-39 % of the proxy's CPU in a 100 MiB
 * download (perf). The bytes of a Content-Length body, or of a chunk's data,
 * that are in the input's chains (large reads go there straight, sockread.h)
 * now move to the output as they are (evbuffer_remove_buffer moves whole
 * chains; only a partial last one is copied), and the parser only counts
 * them; bytes still in the worker's scratch buffer, framing, and the last
 * byte of a body or chunk go through the parser as before. A body re-framed
 * as chunked (chunked) gets the moved bytes as one chunk. Returns the body
 * bytes moved from r's input to the output of to (fl its flush); *added is
 * what the output grew by. */
#define PROXY_MOVE_MIN 4096               /* fewer bytes are cheaper copied */

static size_t
proxy_move_body(rp_msg_t *m, rp_reader_t *r, rp_flush_t *fl, struct bufferevent *to,
                int chunked, size_t *added)
{
    uint64_t          want = rp_msg_body_skippable(m);
    struct evbuffer  *in;
    char              line[20];
    size_t            n, len = 0;

    if (want < PROXY_MOVE_MIN || r->pend_len > 0) {
        return 0;
    }
    in = bufferevent_get_input(r->bev);
    n = evbuffer_get_length(in);
    if (n > want) {
        n = (size_t) want;
    }
    if (n < PROXY_MOVE_MIN) {
        return 0;
    }
    if (chunked) {
        len = chunk_size_line(line, n);
        rp_flush_add(fl, to, line, len);
    }
    evbuffer_remove_buffer(in, rp_flush_output(fl, to), n);
    if (chunked) {
        rp_flush_add(fl, to, "\r\n", 2);
        len += 2;
    }
    rp_flush_queue(fl);
    rp_msg_body_skipped(m, n);
    *added = n + len;
    return n;
}

/* Request body bytes went into the backend's output. */
static void
proxy_request_body_queued(rp_http_conn_t *c)
{
    /* a backend answers once the request is whole: while its body is still
     * coming, the backend's silence counts from the last body bytes, not
     * from the head (an upload longer than read_timeout got a 504) */
    c->uc->read_at = rp_now();
    if (rp_flush_out_len(&c->uc->flush, c->uc->bev) > c->uc->b->conf->high_watermark
        && !(c->flags & RP_REQ_BLOCKED)) {
        /* back-pressure: stop reading the client until the backend drains */
        c->flags |= RP_REQ_BLOCKED;
        rp_reader_off(&c->cl->reader);
        bufferevent_setwatermark(c->uc->bev, EV_WRITE, c->uc->b->conf->high_watermark / 2, 0);
    }
}

void
rp_proxy_request_body(rp_http_conn_t *c, const char *p, size_t n)
{
    if (c->uc == NULL) {
        return;
    }
    if (c->flags & RP_REQ_OUT_CHUNKED) {
        add_chunk(&c->uc->flush, c->uc->bev, p, n);
    } else {
        rp_flush_add(&c->uc->flush, c->uc->bev, p, n);
    }
    proxy_request_body_queued(c);
}

size_t
rp_proxy_move_request_body(rp_http_conn_t *c)
{
    size_t  n, added;

    if (c->uc == NULL
        || (n = proxy_move_body(&c->req, &c->cl->reader, &c->uc->flush, c->uc->bev,
                                (c->flags & RP_REQ_OUT_CHUNKED) != 0, &added))
               == 0) {
        return 0;
    }
    proxy_request_body_queued(c);
    return n;
}

void
rp_proxy_request_done(rp_http_conn_t *c)
{
    /* reads stay on (turning them off and on again costs two epoll_ctl a
     * request); the parser is paused, so a pipelined request waits in the
     * input buffer, bounded by its high watermark; no read timeout while the
     * backend works */
    c->flags |= RP_REQ_DONE;
    rp_http_conn_body_timeout(c, 0);
    if (c->uc != NULL && (c->flags & RP_REQ_OUT_CHUNKED)) {
        proxy_send_head(c->uc->bev, &c->uc->flush, last_chunk(&c->w->head, &c->req,
                                                                 &c->l->skip));
    }
}

void
rp_proxy_detach(rp_http_conn_t *c, int reusable)
{
    rp_upstream_conn_t  *uc = c->uc;

    if (uc == NULL) {
        return;
    }
    c->uc = NULL;
    if (c->flags & RP_RESP_BLOCKED) {
        c->flags &= ~RP_RESP_BLOCKED;
        bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    }
    c->flags &= ~(RP_REQ_BLOCKED | RP_UP_EOF);
    rp_upstream_release(uc, reusable);
}

/* Called when the client's output fell under its low mark. */
void
rp_proxy_client_drained(rp_http_conn_t *c)
{
    if (!(c->flags & RP_RESP_BLOCKED) || c->uc == NULL) {
        return;
    }
    c->flags &= ~RP_RESP_BLOCKED;
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    rp_upstream_resume(c->uc);
    proxy_on_up_read(c->uc, c);
}

static void
proxy_on_up_drain(rp_upstream_conn_t *uc, void *arg)
{
    rp_http_conn_t  *c = arg;

    if (!(c->flags & RP_REQ_BLOCKED)) {
        return;
    }
    c->flags &= ~RP_REQ_BLOCKED;
    bufferevent_setwatermark(uc->bev, EV_WRITE, 0, 0);
    if (!(c->flags & RP_REQ_DONE)) {
        rp_reader_on(&c->cl->reader);
        rp_http_conn_parse(c);
    }
}

/* The response is complete: finish when the request was read whole too;
 * otherwise the backend answered early and the client cannot be resynced. */
static void
proxy_response_done(rp_http_conn_t *c)
{
    if (!(c->flags & RP_REQ_DONE)) {
        c->flags &= ~(RP_REQ_KEEPALIVE | RP_UP_REUSABLE);
    }
    rp_http_conn_finish(c);
}

/* What the backend sent goes to the client: the head and body bytes through
 * the parser, large runs of body moved whole. */
static void
proxy_relay_response(rp_http_conn_t *c, rp_upstream_conn_t *uc)
{
    rp_reader_t      *r = &uc->reader;
    size_t            n, added;
    ssize_t           rc;
    const char       *p;

    /* parsed in place (rp_reader_peek); the unused rest is in the input
     * before anything else runs, and the stray bytes after a response too */
    while (c->uc == uc && !(c->flags & (RP_RESP_BLOCKED | RP_RESP_DONE))
           && (p = rp_reader_peek(r, &n), n > 0)) {
        if (r->pend_len == 0 && uc->resp.stage == RP_MSG_BODY && !(c->flags & RP_RESP_DISCARD)
            && proxy_move_body(&uc->resp, r, &c->flush, c->bev,
                               (c->flags & RP_RESP_CHUNKED) != 0, &added)
                   > 0) {
            c->bytes_out += added;
            proxy_response_body_queued(c, uc);
            continue;
        }
        rc = rp_msg_feed(&uc->resp, p, n);
        rp_reader_consume(r, rc > 0 ? (size_t) rc : 0);
        if (rc < 0) {
            rp_log_warn("backend %s: invalid response: %s", uc->b->conf->name,
                        uc->resp.error ? uc->resp.error : "?");
            rp_http_conn_error(c, uc->resp.status == 500 ? 500 : 502,
                               uc->resp.status == 500 ? uc->resp.error
                                                      : "invalid response from the backend");
            break;
        }
        if (c->flags & RP_RESP_DONE) {
            proxy_response_done(c);
            break;
        }
        if (rc == 0) {
            break;
        }
    }
}

#define PROXY_READS_A_WAKEUP 4            /* reads of a large body a wakeup, either way */

/* A large body goes on while its sender has more: reads on (up to
 * PROXY_READS_A_WAKEUP reads a wakeup: 256 KiB with 64 KiB read limits)
 * instead of a trip through epoll_wait per read, and what the last read
 * queued for the other side is written with MSG_MORE once the next read's
 * bytes are in hand, so the kernel sends whole segments. The read
 * callback's end writes the rest without it: nothing is held past this
 * wakeup. */
static int
proxy_body_read_on(const rp_msg_t *m, rp_reader_t *r, rp_flush_t *to, int *reads)
{
    if (m->stage != RP_MSG_BODY || ++*reads >= PROXY_READS_A_WAKEUP || !rp_reader_read_on(r)) {
        return 0;
    }
    rp_flush_now(to, 1);
    return 1;
}

static int
proxy_response_read_on(rp_http_conn_t *c, rp_upstream_conn_t *uc, int *reads)
{
    return c->uc == uc && !(c->flags & (RP_RESP_BLOCKED | RP_RESP_DONE | RP_RESP_DISCARD))
           && proxy_body_read_on(&uc->resp, &uc->reader, &c->flush, reads) && c->uc == uc;
}

int
rp_proxy_request_read_on(rp_http_conn_t *c, int *reads)
{
    return c->uc != NULL && c->state == RP_CONN_PROXY
           && !(c->flags & (RP_REQ_BLOCKED | RP_REQ_DONE | RP_RESP_DONE))
           && proxy_body_read_on(&c->req, &c->cl->reader, &c->uc->flush, reads) && !c->closed;
}

static void
proxy_on_up_read(rp_upstream_conn_t *uc, void *arg)
{
    rp_http_conn_t   *c = arg;
    rp_reader_t      *r = &uc->reader;
    int               reads = 0;

    rp_http_conn_ref(c);
    if (!uc->got_bytes && rp_reader_buffered(r) > 0) {
        uc->got_bytes = 1;
        c->t_first = rp_now();
        rp_upstream_rtt_sample(uc, c->t_first - uc->sent_at);
    }
    do {
        proxy_relay_response(c, uc);
    } while (proxy_response_read_on(c, uc, &reads));
    if (c->uc == uc) {
        rp_reader_drained(r);              /* also when the loop did not run */
    }
    if (c->uc == uc && (c->flags & RP_UP_EOF) && !(c->flags & RP_RESP_BLOCKED)
        && rp_reader_buffered(r) == 0) {
        proxy_up_closed(c, uc);
    }
    rp_http_conn_unref(c);
}

/* How many times a safe request goes on to another connection when a reused
 * one closes before any byte of its answer. A backend that closes its kept
 * connections (after each answer, or when idle) races every request sent on
 * them; the next pooled connection may have lost the same race, so one retry
 * gave such backends a 502 in 7 % of pipelined requests. nginx does not count
 * these failures at all; a bound keeps a broken backend from looping. */
#define PROXY_REUSE_RETRIES 4

static int
proxy_retry_safe(const rp_http_conn_t *c, const rp_upstream_conn_t *uc)
{
    switch (rp_msg_method(&c->req)) {
    case HTTP_GET:
    case HTTP_HEAD:
    case HTTP_OPTIONS:
    case HTTP_TRACE:
    case HTTP_PUT:
    case HTTP_DELETE:
        break;
    default:
        return 0;
    }
    return uc->served > 0 && !uc->got_bytes && c->up_retries < PROXY_REUSE_RETRIES
           && !(c->flags & RP_REQ_HAS_BODY) && (c->flags & RP_REQ_DONE);
}

/* The backend closed (or failed) and every byte it sent has been used. */
static void
proxy_up_closed(rp_http_conn_t *c, rp_upstream_conn_t *uc)
{
    if (uc->resp.stage == RP_MSG_BODY && rp_msg_close_delimited(&uc->resp)
        && (c->up_eof_what & BEV_EVENT_EOF)) {
        /* a body delimited by close is complete when the backend closes;
         * a reset or a read error cut it, and then falls to the error below,
         * which closes the client without a last chunk */
        if (c->flags & RP_RESP_CHUNKED) {
            rp_flush_add(&c->flush, c->bev, "0\r\n\r\n", 5);
            c->bytes_out += 5;
        }
        c->flags |= RP_RESP_DONE;
        c->flags &= ~RP_UP_REUSABLE;
        proxy_response_done(c);
    } else if (proxy_retry_safe(c, uc)) {
        rp_log_info("backend %s: reused connection closed before answering; retrying",
                    uc->b->conf->name);
        c->up_retries++;
        rp_upstream_reuse_lost(uc);
        rp_proxy_detach(c, 0);
        proxy_acquire(c);
    } else {
        rp_log_warn("backend %s: connection %s before the response was complete",
                    uc->b->conf->name, (c->up_eof_what & BEV_EVENT_EOF) ? "closed" : "failed");
        rp_http_conn_error(c, 502, "backend closed the connection");
    }
}

static void
proxy_on_up_event(rp_upstream_conn_t *uc, void *arg, short what)
{
    rp_http_conn_t  *c = arg;

    rp_http_conn_ref(c);
    if (what & BEV_EVENT_TIMEOUT) {
        rp_log_warn("backend %s: timed out %s", uc->b->conf->name,
                    (what & BEV_EVENT_READING) ? "reading the response" : "sending the request");
        rp_http_conn_error(c, 504, "backend timed out");
    } else {
        c->flags |= RP_UP_EOF;
        c->up_eof_what = what;
        proxy_on_up_read(uc, c);           /* what arrived before the close counts */
    }
    rp_http_conn_unref(c);
}

/* How the client learns where a final response ends: its Content-Length,
 * chunked (HTTP/1.1 clients), or the close. A status with no content (204,
 * 304, an answer to HEAD) announces none; when on_response changed the
 * backend's status across that line, the backend's body is read and
 * dropped (a 200 made a 204 or a 304: nginx's way), or the client gets
 * Content-Length: 0 (a 204 or a 304 made a status with content: a 304's
 * length described another representation). */
static void
write_response_framing(rp_http_conn_t *c, rp_msg_t *m, rp_headbuf_t *b, int status, int head)
{
    int          bstatus = rp_msg_status(m);
    int          sends_none = head || status == 204 || status == 304;
    int          got_none = head || bstatus == 204 || bstatus == 304;
    const char  *cl;
    size_t       cllen;

    if (sends_none && !got_none) {
        c->flags |= RP_RESP_DISCARD;
    } else if (sends_none) {
        if (status != 204 && (cl = rp_msg_header(m, "content-length", 14, &cllen)) != NULL) {
            rp_headbuf_add_field(b, "Content-Length", 14, cl, cllen);
        }
    } else if (got_none) {
        rp_headbuf_add_lit(b, "Content-Length: 0\r\n");
    } else if (m->parser.flags & F_CONTENT_LENGTH) {
        rp_headbuf_add_uint_field(b, "Content-Length", 14, m->parser.content_length);
    } else if (rp_msg_http_minor(&c->req) == 1) {
        c->flags |= RP_RESP_CHUNKED;
        rp_headbuf_add_lit(b, "Transfer-Encoding: chunked\r\n");
    } else {
        c->flags |= RP_RESP_TO_CLOSE;
        c->flags &= ~RP_REQ_KEEPALIVE;
    }
}

/* The response head as the client sees it: our framing, Via, hop-by-hop
 * fields dropped; final is 0 for a relayed 1xx. */
static void
proxy_write_response_head(rp_http_conn_t *c, rp_msg_t *m, int final)
{
    rp_headbuf_t  *b = &c->w->head;
    int            status = final && c->resp_status ? c->resp_status : rp_msg_status(m);
    int            head = rp_msg_method(&c->req) == HTTP_HEAD;
    int            client11 = rp_msg_http_minor(&c->req) == 1;
    const char    *reason = rp_msg_str(m, m->target);

    if (m->target_len == 0 || status != rp_msg_status(m)) {
        reason = rp_http_reason(status);
    }
    rp_headbuf_reset(b);
    rp_headbuf_add_lit(b, "HTTP/1.1 ");
    rp_headbuf_add_uint(b, (uint64_t) status);
    rp_headbuf_add_lit(b, " ");
    rp_headbuf_add_str(b, reason);
    rp_headbuf_add_lit(b, "\r\n");
    /* the framing and Via are ours */
    rp_msg_write_fields(m, b, (1u << RP_F_CONTENT_LENGTH) | (1u << RP_F_VIA), NULL);
    write_via(b, m);
    if (final) {
        write_response_framing(c, m, b, status, head);
        if (rp_worker_stopping(c->w)) {
            c->flags &= ~RP_REQ_KEEPALIVE;
        }
        if (!(c->flags & RP_REQ_KEEPALIVE)) {
            rp_headbuf_add_lit(b, "Connection: close\r\n");
        } else if (!client11) {
            rp_headbuf_add_lit(b, "Connection: keep-alive\r\n");
        }
        c->status = status;
        c->flags |= RP_REQ_HEAD_SENT;
    }
    rp_headbuf_add_lit(b, "\r\n");
    if (final && c->ssl != NULL && (m->parser.flags & F_CONTENT_LENGTH) && !head
        && !(c->flags & RP_RESP_DISCARD) && m->parser.content_length <= PROXY_ONE_RECORD) {
        /* bufferevent_openssl makes one TLS record (and one write) per buffer
         * chain: room for the head and the whole small body in one chain
         * sends a small answer as one record, not split where a chain ended */
        evbuffer_expand(rp_flush_output(&c->flush, c->bev), b->len + m->parser.content_length);
    }
    c->bytes_out += proxy_send_head(c->bev, &c->flush, b);
}

static int
resp_on_head(rp_msg_t *m)
{
    rp_upstream_conn_t  *uc = m->owner;
    rp_http_conn_t      *c = uc->arg;
    int                  status = rp_msg_status(m), bodiless;

    if (c == NULL) {
        return -1;
    }
    if (status == 101) {
        m->status = 502;
        m->error = "101 Switching Protocols was not asked for";
        return -1;
    }
    if (status < 200) {
        if (rp_msg_http_minor(&c->req) == 1) {
            proxy_write_response_head(c, m, 0);    /* 100, 103: relayed as they come */
        }
        return 1;
    }
    /* no body, whatever Content-Length says (RFC 9110 §6.4.1); llhttp would
     * otherwise wait for a 304's Content-Length bytes */
    bodiless = rp_msg_method(&c->req) == HTTP_HEAD || status == 204 || status == 304;
    if (!bodiless && !rp_msg_codings_relayable(m)) {
        /* the body would go on re-chunked with its other coding unannounced
         * (gzip bytes read as the content); nginx refuses it too */
        m->status = 502;
        m->error = "transfer coding other than chunked";
        return -1;
    }
    if (c->gen->lua->on_response != LUA_NOREF
        && proxy_hook(c, c->gen->lua->on_response, RP_PHASE_RESPONSE, "on_response") != RP_OK) {
        m->status = 500;
        m->error = "the on_response hook failed";
        return -1;
    }
    proxy_write_response_head(c, m, 1);
    return bodiless;
}

static int
resp_on_body(rp_msg_t *m, const char *p, size_t n)
{
    rp_upstream_conn_t  *uc = m->owner;
    rp_http_conn_t      *c = uc->arg;

    if (c->flags & RP_RESP_DISCARD) {
        return 0;
    }
    if (c->flags & RP_RESP_CHUNKED) {
        c->bytes_out += add_chunk(&c->flush, c->bev, p, n);
    } else {
        rp_flush_add(&c->flush, c->bev, p, n);
        c->bytes_out += n;
    }
    proxy_response_body_queued(c, uc);
    return 0;
}

/* Response body bytes went into the client's output. */
static void
proxy_response_body_queued(rp_http_conn_t *c, rp_upstream_conn_t *uc)
{
    if (rp_flush_out_len(&c->flush, c->bev) > c->lc->high_watermark
        && !(c->flags & RP_RESP_BLOCKED)) {
        /* back-pressure: stop reading the backend until the client drains */
        c->flags |= RP_RESP_BLOCKED;
        rp_upstream_pause(uc);
        bufferevent_setwatermark(c->bev, EV_WRITE, c->lc->high_watermark / 2, 0);
    }
}

static int
resp_on_complete(rp_msg_t *m)
{
    rp_upstream_conn_t  *uc = m->owner;
    rp_http_conn_t      *c = uc->arg;

    if (rp_msg_status(m) < 200) {
        rp_msg_reset(m);                   /* the final response follows */
        return 1;
    }
    if (c->flags & RP_RESP_CHUNKED) {
        c->bytes_out += proxy_send_head(c->bev, &c->flush, last_chunk(&c->w->head, m, NULL));
    }
    c->flags |= RP_RESP_DONE;
    /* an HTTP/1.0 response with Transfer-Encoding: its framing is faulty,
     * so the connection closes after it (RFC 9112 §6.1) */
    if (llhttp_should_keep_alive(&m->parser)
        && !(rp_msg_http_minor(m) == 0 && (m->flags & RP_MSG_HAS_TE))) {
        c->flags |= RP_UP_REUSABLE;
    }
    return 0;                              /* pause: bytes after it are not ours */
}
