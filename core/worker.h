/* worker.h: one worker thread: an event_base, its own SO_REUSEPORT listening
 * sockets, its own backend connections and targets, its client connections. */
#ifndef RP_WORKER_H
#define RP_WORKER_H

#include "rp.h"
#include "config.h"
#include "upstream.h"

#include <pthread.h>
#include <sys/queue.h>

struct event_base;
struct event;
struct evconnlistener;

/* One listening socket of this worker. */
typedef struct {
    rp_worker_t                *w;        /* back-pointer                          */
    const rp_listen_conf_t     *conf;     /* borrowed from w->conf                 */
    struct evconnlistener      *l;        /* owned                                 */
    rp_access_log_t            *log;      /* borrowed from the server: may be NULL */
    const char                **skip;     /* owned array of borrowed names: request
                                             fields never passed on as the client sent
                                             them (framing, Via, X-headers, X-SSL-*)  */
    const char                **skip_abs; /* the same plus Host (absolute-form)      */
} rp_listener_t;

struct rp_worker_s {
    unsigned                   id;
    rp_server_t               *srv;        /* back-pointer                            */
    rp_config_t               *conf;       /* a reference                             */
    struct event_base         *base;       /* owned                                   */
    pthread_t                  thread;
    rp_listener_t             *listeners;  /* owned, conf->nlisteners                 */
    rp_backend_t              *backends;   /* owned, conf->nbackends                  */
    rp_target_t               *pools;      /* owned, one per conf->pools              */
    rp_target_t               *singles;    /* owned, one per backend (direct routes)  */
    uint64_t                   pending_seq;
    TAILQ_HEAD(, rp_http_conn_s) conns;    /* client connections (owned by themselves) */
    unsigned                   nconns;
    int                        stop_fd;    /* owned eventfd: the main thread asks a stop */
    struct event              *stop_ev;    /* owned: reads stop_fd                      */
    struct event              *grace_ev;   /* owned: hard stop after conf->grace       */
    int                        stopping;
    struct rp_lua_s           *lua;        /* owned: this worker's Lua state             */
};

/* Creates a worker over conf (takes a reference) with the listening sockets
 * fds[conf->nlisteners] (takes ownership). NULL on failure, logged. */
rp_worker_t *rp_worker_new(rp_server_t *srv, unsigned id, rp_config_t *conf, const int *fds);
int rp_worker_start(rp_worker_t *w);
void rp_worker_stop(rp_worker_t *w);            /* any thread: begin a graceful stop */
void rp_worker_join(rp_worker_t *w);
void rp_worker_free(rp_worker_t *w);

int rp_worker_stopping(const rp_worker_t *w);
rp_target_t *rp_worker_target(rp_worker_t *w, const rp_target_ref_t *to);

/* Client connection bookkeeping (graceful stop waits for the last one). */
void rp_worker_conn_added(rp_worker_t *w, rp_http_conn_t *c);
void rp_worker_conn_removed(rp_worker_t *w, rp_http_conn_t *c);

/* The access log for a request: the vhost's, else the listener's, else the global one. */
rp_access_log_t *rp_worker_access_log(rp_worker_t *w, const rp_listener_t *l,
                                      const rp_vhost_conf_t *v);

#endif
