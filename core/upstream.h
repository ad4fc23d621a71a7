/* upstream.h: a worker's backends, their persistent connections
 * (CONNECTING / IDLE / ACTIVE / DOWN) and the targets routes point to (a pool
 * or one backend) with their FIFO pending queues. Nothing here is shared
 * between threads. */
#ifndef RP_UPSTREAM_H
#define RP_UPSTREAM_H

#include "rp.h"
#include "balancer.h"
#include "config.h"
#include "flush.h"
#include "http_head.h"
#include "sockread.h"

#include <sys/queue.h>

struct bufferevent;
struct event;
struct ssl_st;
struct event_base;

typedef enum {
    RP_UC_CONNECTING = 0,   /* connect() in flight; uc->bev != NULL                   */
    RP_UC_IDLE,             /* connected, in b->idle, reading only to notice a close  */
    RP_UC_ACTIVE,           /* carrying uc->user's request                           */
    RP_UC_DOWN,             /* no socket; uc->retry armed to reconnect after backoff  */
} rp_uc_state_e;

/* What the user of an ACTIVE connection is told. */
typedef struct {
    void (*on_read)(rp_upstream_conn_t *uc, void *arg);     /* response bytes arrived  */
    void (*on_drain)(rp_upstream_conn_t *uc, void *arg);    /* output below low mark   */
    void (*on_event)(rp_upstream_conn_t *uc, void *arg, short what); /* EOF/error/timeout */
    int    in_place;   /* on_read parses uc->reader's bytes in place (rp_reader_peek,
                          sockread.h) and ends with rp_reader_drained(); 0: the
                          bytes are in the bufferevent's input when on_read runs */
} rp_upstream_user_t;

struct rp_upstream_conn_s {
    rp_backend_t               *b;          /* back-pointer                           */
    struct bufferevent         *bev;        /* owned; NULL when DOWN                  */
    rp_uc_state_e               state;      /* only uc_set_state() assigns it         */
    TAILQ_ENTRY(rp_upstream_conn_s) link;   /* in b->idle while IDLE                  */
    struct event               *retry;      /* owned: reconnect timer                 */
    struct event               *deadline;   /* owned: response inactivity deadline
                                               while ACTIVE and reading               */
    double                      read_at;    /* when response bytes last came, or request
                                               body bytes last went (rp_now)          */
    double                      deadline_at; /* when *deadline fires; 0: not pending  */
    int                         reading;    /* the response deadline runs (ACTIVE, reads
                                               not paused by back-pressure)           */
    double                      write_s;    /* write timeout set on bev; < 0: none    */
    double                      backoff;    /* next DOWN delay, s                     */
    double                      connected_at; /* when the socket came up (rp_now)   */
    unsigned                    served;     /* responses completed on this socket     */
    uint16_t                    local_port; /* for {DS_SPORT}                         */
    rp_msg_t                    resp;       /* response parser for this socket        */
    const rp_upstream_user_t   *user;       /* set while ACTIVE                       */
    void                       *arg;        /* back-pointer: the client while ACTIVE  */
    double                      sent_at;    /* when the request head was queued       */
    int                         got_bytes;  /* response bytes seen for this request   */
    struct ssl_st              *ssl;        /* borrowed from bev; NULL: plain TCP     */
    int                         connected;  /* the socket (and TLS) came up          */
    rp_flush_t                  flush;      /* direct writes (plain sockets)          */
    rp_reader_t                 reader;     /* reads: own (plain) or bev's (TLS)      */
    rp_config_t                *sock_conf;  /* a reference to the snapshot the socket
                                               was opened under (its SSL_CTX), or NULL */
};

struct rp_backend_s {
    const rp_backend_conf_t    *conf;       /* borrowed from owner                    */
    rp_config_t                *owner;      /* a reference: the snapshot conf lives in
                                               (the newest one listing it), or NULL  */
    int                         refs;       /* generations listing it                 */
    int                         retired;    /* no generation will send it requests     */
    rp_worker_t                *w;          /* back-pointer                           */
    struct event_base          *base;       /* borrowed                               */
    rp_upstream_conn_t         *conns;      /* owned, conf->connections of them       */
    unsigned                    nconns;
    TAILQ_HEAD(, rp_upstream_conn_s) idle;  /* IDLE connections, most recent first    */
    unsigned                    nidle;
    unsigned                    nactive;
    unsigned                    ndown;
    double                      rtt;        /* EWMA time to first response byte, s    */
    unsigned                    failures;   /* connects failed in a row               */
    unsigned                    reuse_lost; /* reused connections closed before
                                               answering, in a row                    */
    unsigned                    reuse_probe; /* releases while reuse is off            */
    rp_target_t               **targets;    /* owned array of borrowed: who may wait  */
    unsigned                    ntargets;
    char                        addr_text[64]; /* "host:port" for logs                */
};

/* A request waiting for a connection; embedded in the client connection. */
typedef struct rp_pending_s {
    TAILQ_ENTRY(rp_pending_s)   link;
    rp_target_t                *t;          /* back-pointer while queued              */
    uint64_t                    seq;        /* arrival order across targets           */
    void (*ready)(struct rp_pending_s *p, rp_upstream_conn_t *uc); /* uc is ACTIVE    */
    void (*fail)(struct rp_pending_s *p, int status);             /* 502: all down   */
} rp_pending_t;

struct rp_target_s {
    const char                 *name;       /* borrowed: pool or backend name         */
    rp_balance_e                balance;
    rp_balancer_state_t         bst;
    rp_backend_t              **members;    /* owned array of borrowed                */
    unsigned                    nmembers;
    TAILQ_HEAD(, rp_pending_s)  pending;    /* FIFO                                   */
    unsigned                    npending;
    uint64_t                   *seq;        /* borrowed: the worker's counter         */
    int                         pool;       /* index in conf->pools; -1: one backend  */
};

/* A backend for conf (which lives in owner), connecting its connections
 * if enabled. refs == 1. */
rp_backend_t *rp_backend_new(rp_worker_t *w, struct event_base *base,
                             const rp_backend_conf_t *conf, rp_config_t *owner);
/* Connections of b that serve or are about to: IDLE and ACTIVE ones, and
 * CONNECTING ones unless b's connects are failing (b->failures). A dead
 * backend's retries do not make it look up: what `up` reads in Lua. */
unsigned rp_backend_live(const rp_backend_t *b);

void rp_backend_ref(rp_backend_t *b);
void rp_backend_unref(rp_backend_t *b);   /* closes and frees at zero */

/* A reload keeps b: new requests see conf's timeouts and limits; the targets
 * it serves waiters of are rebuilt by the new generation. */
void rp_backend_adopt(rp_backend_t *b, const rp_backend_conf_t *conf, rp_config_t *owner);

/* No new requests will come: idle connections close now, busy ones when
 * their request ends, and none reconnects. */
void rp_backend_retire(rp_backend_t *b);

void rp_target_init(rp_target_t *t, const char *name, rp_balance_e balance,
                    rp_backend_t **members, unsigned n, uint64_t *seq);
void rp_target_cleanup(rp_target_t *t);

/* Takes an IDLE connection chosen by the target's balancer and makes it ACTIVE
 * for (user, arg). Returns RP_OK with *out set; RP_AGAIN when none is IDLE but
 * some may become so (queue the request); RP_DECLINED when every connection of
 * every member is DOWN (answer 502). */
int rp_target_acquire(rp_target_t *t, const rp_upstream_user_t *user, void *arg,
                      rp_upstream_conn_t **out);

/* Queues p (FIFO); the caller checks npending against max_pending first.
 * p->ready or p->fail is called later, unless p is removed first. */
void rp_target_enqueue(rp_target_t *t, rp_pending_t *p);
void rp_target_dequeue(rp_pending_t *p);

/* Ends the request on an ACTIVE connection: reusable → IDLE (and the oldest
 * pending request of any of its targets takes it at once); otherwise the
 * socket is closed and a new one opened. */
void rp_upstream_release(rp_upstream_conn_t *uc, int reusable);

/* The request on uc, a reused connection, lost it before any byte of an
 * answer (the backend closed it): counted, since a backend that loses them
 * in a row closes its connections after each answer without saying so, and
 * reusing them only races it. */
void rp_upstream_reuse_lost(rp_upstream_conn_t *uc);

/* A request's head was queued on uc: reads are on, and the response must
 * keep coming (no gap longer than the backend's read_timeout, checked by one
 * timer rather than a timeout re-armed on every read); writes must drain
 * within write_timeout. */
void rp_upstream_start(rp_upstream_conn_t *uc);

/* Back-pressure: stops reading the response (its deadline stops too) and
 * starts again. */
void rp_upstream_pause(rp_upstream_conn_t *uc);
void rp_upstream_resume(rp_upstream_conn_t *uc);

/* Sets the user of a connection handed over by the pending queue. */
void rp_upstream_bind(rp_upstream_conn_t *uc, const rp_upstream_user_t *user, void *arg);

/* Records a time-to-first-byte sample for the backend's rtt EWMA. */
void rp_upstream_rtt_sample(rp_upstream_conn_t *uc, double seconds);

const char *rp_upstream_state_name(rp_uc_state_e s);

#endif
