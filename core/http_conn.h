/* http_conn.h: a client connection and the request it is serving: keep-alive,
 * pipelined requests answered in order (one at a time), errors from the proxy
 * itself, graceful close. proxy.c carries the request through a backend. */
#ifndef RP_HTTP_CONN_H
#define RP_HTTP_CONN_H

#include "rp.h"
#include "config.h"
#include "flush.h"
#include "http_head.h"
#include "parkq.h"
#include "sockread.h"
#include "upstream.h"

#include <event2/event_struct.h>
#include <netinet/in.h>
#include <sys/queue.h>

struct bufferevent;
struct event;
struct ssl_st;

#define RP_LUA_NOREF (-2)               /* LUA_NOREF, without lua.h here */

/* An answer a Lua hook gave with req:respond() / req:redirect(). */
typedef struct {
    int        status;
    char      *body;          /* owned */
    size_t     body_len;
    char      *fields;        /* owned: "Name: value\r\n"...                */
    size_t     fields_len;
} rp_direct_t;

typedef enum {
    RP_CONN_IDLE = 0,   /* keep-alive, between requests; no request bytes yet      */
    RP_CONN_HEAD,       /* parsing a request head                                  */
    RP_CONN_WAIT,       /* head parsed; queued for a backend connection; reads off */
    RP_CONN_PROXY,      /* c->uc != NULL: bodies flow both ways                    */
    RP_CONN_CLOSING,    /* flushing a last answer; freed once output drains        */
} rp_conn_state_e;

/* Per-request flags */
#define RP_REQ_DONE          0x0001u   /* the whole request was read from the client  */
#define RP_REQ_OUT_CHUNKED   0x0002u   /* body re-chunked towards the backend          */
#define RP_REQ_KEEPALIVE     0x0004u   /* the client may send another request          */
#define RP_REQ_HEAD_SENT     0x0008u   /* response head written to the client          */
#define RP_RESP_DONE         0x0010u   /* the whole response was written to the client */
#define RP_RESP_CHUNKED      0x0020u   /* body re-chunked towards the client           */
#define RP_RESP_TO_CLOSE     0x0040u   /* body delimited by closing the client         */
/* 0x0080u: free */
#define RP_REQ_BLOCKED       0x0100u   /* client reads off: backend output over mark   */
#define RP_RESP_BLOCKED      0x0200u   /* backend reads off: client output over mark   */
#define RP_REQ_HAS_BODY      0x0400u   /* the request has a body (CL > 0 or chunked)   */
#define RP_UP_REUSABLE       0x0800u   /* the backend connection may take another one  */
#define RP_REQ_ABSOLUTE      0x1000u   /* absolute-form target: authority is the host  */
#define RP_UP_EOF            0x2000u   /* the backend closed; handled once input is used */
#define RP_REQ_CLIENT_CLOSES 0x4000u   /* the client asked to close: it sends no more
                                          (RFC 9112 §9.6)                          */
#define RP_RESP_DISCARD      0x8000u   /* the backend's body is read, not relayed (a
                                          hook's status has none: 204, 304)        */

/* A client's socket: what a connection keeps from accept to close. Its
 * rp_http_conn_t (the request's state, its bufferevent and buffers: about
 * 2 KiB with libevent's parts) is bound while there is work. A plain
 * keep-alive connection that waits for its next request with nothing
 * buffered either way stays bound while its worker has fewer than 32 such
 * idle ones; past that it is *parked*: its conn goes back to the worker's
 * spares and the socket alone (280 bytes: glibc's 288-byte size) waits for
 * the next byte, the keep-alive deadline (in its listener's park queue,
 * parkq.h) or a stop. So thousands of idle clients cost little,
 * and a new connection's conn, bufferevent and buffers are reused, not
 * allocated. TLS connections keep theirs (the session is in it). */
struct rp_client_s {
    struct rp_listener_s        *l;           /* a reference: the listener it came from;
                                                 l->w is its worker                       */
    rp_http_conn_t              *c;           /* bound, or NULL: parked                    */
    TAILQ_ENTRY(rp_client_s)     link;        /* in l->w->clients                          */
    rp_reader_t                  reader;      /* reads: own (plain) or bev's (TLS)         */
    rp_parkq_node_t              deadline;    /* the phase's deadline (.due, rp_now(); 0:
                                                 none): on c's timer while bound, in l's
                                                 park queue while parked                  */
    unsigned char                ip[16];      /* client address: IPv4 in the first 4 bytes */
    evutil_socket_t              fd;          /* owned (plain); -1: the TLS bufferevent's  */
    uint16_t                     port;        /* client port                               */
    uint8_t                      ipv6;        /* ip is IPv6                                */
};

struct rp_http_conn_s {
    rp_worker_t                 *w;           /* cl->w                                     */
    struct rp_listener_s        *l;           /* cl->l                                     */
    rp_client_t                 *cl;          /* the socket it serves                      */
    struct rp_http_conn_s       *next_spare;  /* in w->conn_spares                         */
    TAILQ_ENTRY(rp_http_conn_s)  idle_link;   /* in w->idle_conns while idle_listed        */
    const rp_listen_conf_t      *lc;          /* l's conf when the request began (held by
                                                 lc_ref), else l's current one           */
    rp_config_t                 *lc_ref;      /* a reference while a request runs        */
    struct rp_gen_s             *gen;         /* a reference while a request runs, or NULL */
    rp_config_t                 *sock_conf;   /* a reference: the snapshot of its SSL_CTX  */
    struct bufferevent          *bev;         /* owned; a plain one is kept with its spare */
    int                          refs;        /* callbacks hold one; the last unref frees  */
    rp_conn_state_e              state;       /* only conn_set_state() assigns it          */
    char                         addr[48];    /* cl's address as text (INET6_ADDRSTRLEN) */
    uint16_t                     port;        /* cl->port                                  */
    rp_msg_t                     req;         /* the request parser, reused per request    */
    /* the current request */
    unsigned                     flags;       /* RP_REQ_*, RP_RESP_*                       */
    const rp_vhost_conf_t       *vhost;
    const rp_route_conf_t       *route;
    rp_target_t                 *target;      /* borrowed from the worker                  */
    rp_pending_t                 pending;     /* while RP_CONN_WAIT                        */
    rp_upstream_conn_t          *uc;          /* while RP_CONN_PROXY; uc->arg == this      */
    char                        *path;        /* owned: the rewritten path, or NULL        */
    size_t                       path_len;
    int                          status;      /* answered status, for the log              */
    double                       t_start;     /* first byte of the request                 */
    double                       t_upstream;  /* head sent to the backend; 0: never        */
    double                       t_first;     /* first response byte; 0: none              */
    uint64_t                     bytes_in;    /* from the client, this request             */
    uint64_t                     bytes_out;   /* to the client, this request               */
    uint16_t                     up_port;     /* backend connection's local port, for logs */
    const rp_backend_t          *up_backend;  /* which backend answered, for logs          */
    uint64_t                     req_cl;      /* request Content-Length as received        */
    char                        *query;       /* owned: query a hook set, or NULL           */
    size_t                       query_len;
    void                        *lua_box;     /* the request object's box while referenced */
    int                          lua_box_ref; /* its registry ref, or RP_LUA_NOREF         */
    int                          lua_ctx_ref; /* req.ctx, or RP_LUA_NOREF                  */
    rp_direct_t                 *direct;      /* owned: a hook's own answer, or NULL       */
    int                          resp_status; /* a hook's res.status, or 0                 */
    double                       t_head;      /* the head was parsed                       */
    struct ssl_st               *ssl;         /* borrowed from bev; NULL: plain TCP         */
    void                        *tls_facts;   /* owned rp_tls_facts_t, read once, or NULL   */
    rp_flush_t                   flush;       /* direct writes (plain sockets)              */
    struct event                 timer_ev;    /* cl->deadline while bound; embedded         */
    double                       timer_at;    /* when timer_ev fires; 0: not pending        */
    double                       write_timeout; /* the socket's write timeout, s           */
    short                        up_eof_what; /* the BEV_EVENT_* of the backend's close     */
    unsigned char                up_retries;  /* retries after reused connections closed    */
    /* flags, packed: the struct stays within glibc's 1032-byte tcache sizes */
    unsigned                     in_parse : 1;     /* rp_http_conn_parse() is on the stack  */
    unsigned                     closed : 1;       /* the open reference was dropped        */
    unsigned                     query_set : 1;    /* a hook set the query (NULL: none)     */
    unsigned                     handshaking : 1;  /* TLS handshake not finished yet        */
    unsigned                     lingering : 1;    /* half-closed, dropping client bytes    */
    unsigned                     body_timeout : 1; /* the socket's read timeout is on       */
    unsigned                     idle_listed : 1;  /* idle and kept bound (w->idle_conns)   */
    unsigned                     unwatched : 1;    /* reads off while the backend works on
                                                      the last request (conn_unwatch)      */
};

/* Takes ownership of fd, an accepted client socket. */
void rp_http_conn_accept(rp_worker_t *w, struct rp_listener_s *li, int fd,
                         const struct sockaddr *sa, int salen);

/* Graceful stop: closes cl if idle, else makes its current answer its last. */
void rp_client_shutdown(rp_client_t *cl);

/* Closes at once (a worker past its grace period). */
void rp_client_abort(rp_client_t *cl, const char *why);

/* A parked client's deadline passed (its listener's park queue): it goes. */
void rp_client_park_expired(rp_parkq_node_t *n, void *arg);

/* Frees the worker's spare conns (at its end). */
void rp_http_conn_spares_free(rp_worker_t *w);

/* A reload moved a waiting request to another generation's target. */
void rp_http_conn_retarget(rp_pending_t *p, rp_target_t *to);

void rp_http_conn_ref(rp_http_conn_t *c);
void rp_http_conn_unref(rp_http_conn_t *c);

/* Answers the current request from the proxy (400, 404, 502, 503, 504...).
 * The connection closes afterwards unless the request was read whole. */
void rp_http_conn_error(rp_http_conn_t *c, int status, const char *why);

/* Closes at once: no more bytes go out (a truncated response must never look
 * complete). */
void rp_http_conn_abort(rp_http_conn_t *c, const char *why);

/* The request is over (response written, request read): log, then next. */
void rp_http_conn_finish(rp_http_conn_t *c);

/* Feeds buffered client bytes to the parser; called on read and on drain. */
void rp_http_conn_parse(rp_http_conn_t *c);

/* Turns the client read timeout on (a request body is being read) or off. */
void rp_http_conn_body_timeout(rp_http_conn_t *c, int on);

/* The current phase's deadline, seconds from now (<= 0: none); see
 * conn_on_timer for what each phase does when it passes. Lazy: the timer
 * moves only when it would fire too late. */
void rp_http_conn_deadline(rp_http_conn_t *c, double seconds);

/* Reads on again if conn_unwatch() had turned them off: the request goes
 * back to waiting for a backend connection (an EOF then shows, as it should
 * in WAIT), or the backend took CONN_WATCH_AFTER (a reset then shows). */
void rp_http_conn_watch(rp_http_conn_t *c);

/* The TLS facts of the connection (read once), or NULL on plain TCP. */
const void *rp_http_conn_tls_facts(rp_http_conn_t *c);

/* Answers with c->direct (a hook's req:respond()), then finishes. */
void rp_http_conn_direct(rp_http_conn_t *c);

/* proxy.c */
void rp_proxy_run_log_hook(rp_http_conn_t *c);
/* The path and query the backend will get (a hook's or a rewrite's, else the
 * client's); query is NULL when there is none (qlen 0). */
void rp_proxy_target(const rp_http_conn_t *c, const char **path, size_t *plen,
                     const char **query, size_t *qlen);
/* The Host the client asked for, or NULL. */
const char *rp_proxy_host(const rp_http_conn_t *c, size_t *len);
void rp_proxy_start(rp_http_conn_t *c);              /* head parsed: route and go   */
void rp_proxy_request_body(rp_http_conn_t *c, const char *p, size_t n);
/* Moves request body bytes from the client's input to the backend's output
 * without copying them, when it can; returns how many (0: feed the parser). */
size_t rp_proxy_move_request_body(rp_http_conn_t *c);
/* After the parse loop took a large read of body whole: reads on at once
 * (1 if bytes came; reads counts them, bounded a wakeup). */
int rp_proxy_request_read_on(rp_http_conn_t *c, int *reads);
void rp_proxy_request_done(rp_http_conn_t *c);
void rp_proxy_client_drained(rp_http_conn_t *c);     /* client output drained      */
void rp_proxy_detach(rp_http_conn_t *c, int reusable); /* give the backend conn back */

#endif
