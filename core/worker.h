/* worker.h: one worker thread: an event_base, its own SO_REUSEPORT listening
 * sockets, its generations (snapshot + backends + Lua state), its client
 * connections, and the mailbox the main thread uses for stops and reloads. */
#ifndef RP_WORKER_H
#define RP_WORKER_H

#include "rp.h"
#include "config.h"
#include "flush.h"
#include "gen.h"
#include "headbuf.h"
#include "parkq.h"
#include "sockread.h"
#include "http_head.h"
#include "upstream.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/queue.h>

struct event_base;
struct event;
struct evconnlistener;

/* One listening socket of this worker. Connections keep a reference, so a
 * listener a reload removed lives on (closed) while its clients finish. */
typedef struct rp_listener_s {
    rp_worker_t                *w;        /* back-pointer                           */
    const rp_listen_conf_t     *conf;     /* borrowed from conf_ref                 */
    rp_config_t                *conf_ref; /* a reference: the snapshot of conf      */
    struct evconnlistener      *l;        /* owned; NULL once closed                */
    rp_access_log_t            *log;      /* borrowed: may be NULL                  */
    rp_names_t                  skip;     /* request fields never passed on as the
                                             client sent them (framing, Via, X-headers,
                                             X-SSL-*)                                */
    rp_names_t                  skip_abs; /* the same plus Host (absolute-form)      */
    int                         refs;     /* the worker's + one per connection      */
    rp_parkq_t                  parkq;    /* its parked clients' deadlines            */
    struct event               *accept_pause; /* owned: re-enables l after EMFILE     */
} rp_listener_t;

/* A reload on its way to every worker: counts them in. */
typedef struct {
    atomic_uint                 remaining;  /* swaps not freed yet: the last frees */
    atomic_uint                 to_switch;  /* workers not on the new generation   */
    double                      t_signal;   /* when the reload was asked (rp_now) */
    unsigned                    id;         /* the new generation                 */
    unsigned                    nworkers;
} rp_reload_t;

/* What the main thread hands a worker for a reload. */
typedef struct rp_swap_s {
    rp_config_t                *conf;       /* a reference, handed over           */
    rp_logset_t                *logs;       /* owned, handed over                 */
    int                        *fds;        /* owned: per conf listener, -1: keep */
    rp_reload_t                *reload;     /* shared; the last worker frees it   */
    struct rp_swap_s           *next;
} rp_swap_t;

struct rp_worker_s {
    unsigned                   id;
    rp_server_t               *srv;        /* back-pointer                            */
    struct event_base         *base;       /* owned                                   */
    pthread_t                  thread;
    rp_listener_t            **listeners;  /* owned references, nlisteners            */
    unsigned                   nlisteners;
    rp_gen_t                  *gen;        /* the current generation (a reference)    */
    uint64_t                   pending_seq;
    TAILQ_HEAD(, rp_client_s)  clients;    /* client connections (owned by themselves) */
    unsigned                   nconns;
    struct rp_http_conn_s     *conn_spares; /* conns of parked and closed plain clients */
    unsigned                   nconn_spares;
    TAILQ_HEAD(, rp_http_conn_s) idle_conns; /* idle plain conns kept bound, not parked */
    unsigned                   nidle_conns;
    int                        mail_fd;    /* owned eventfd: the main thread's mail   */
    struct event              *mail_ev;    /* owned: reads mail_fd                    */
    pthread_mutex_t            mail_lock;  /* guards swaps                            */
    rp_swap_t                 *swaps;      /* FIFO of reloads not applied yet         */
    atomic_int                 stop_asked;
    struct event              *grace_ev;   /* owned: hard stop after conf->grace       */
    rp_flusher_t               flusher;    /* direct writes of plain sockets           */
    rp_headbuf_t               head;       /* heads are built here, then handed over  */
    char                       read_scratch[RP_READ_SCRATCH];   /* plain sockets' reads */
    rp_msg_spares_t            msg_spares; /* request head buffers between requests */
    int                        stopping;
};

/* Creates a worker serving conf as generation 1 with the listening sockets
 * fds[conf->nlisteners] (takes ownership) and logs (takes ownership). NULL
 * on failure, logged. */
rp_worker_t *rp_worker_new(rp_server_t *srv, unsigned id, rp_config_t *conf, const int *fds,
                           rp_logset_t *logs);
int rp_worker_start(rp_worker_t *w);
void rp_worker_stop(rp_worker_t *w);            /* any thread: begin a graceful stop */
void rp_worker_post_swap(rp_worker_t *w, rp_swap_t *s);   /* any thread: a reload    */
void rp_worker_join(rp_worker_t *w);
void rp_worker_free(rp_worker_t *w);

int rp_worker_stopping(const rp_worker_t *w);

/* The scope of a client's or a backend's read callback: one clock reading
 * for all the times it takes (rp_now_hold), and what it queues on plain
 * outputs written as it ends (rp_flusher_hold). After the end, the caller
 * must not use anything a write callback may free. */
void rp_worker_read_begin(rp_worker_t *w);
void rp_worker_read_end(rp_worker_t *w);

void rp_listener_ref(rp_listener_t *li);
void rp_listener_unref(rp_listener_t *li);

/* Client connection bookkeeping (graceful stop waits for the last one). */
void rp_worker_conn_added(rp_worker_t *w, rp_client_t *cl);
void rp_worker_conn_removed(rp_worker_t *w, rp_client_t *cl);

/* The access log of a request: its vhost's, else its listener's, else the
 * generation's global one. */
rp_access_log_t *rp_worker_access_log(const rp_gen_t *g, const rp_listener_t *l,
                                      const rp_vhost_conf_t *v);

#endif
