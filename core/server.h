/* server.h: the main thread: listening sockets, workers, signals, pidfile. */
#ifndef RP_SERVER_H
#define RP_SERVER_H

#include "rp.h"
#include "config.h"

struct event_base;

struct rp_server_s {
    rp_config_t         *conf;           /* a reference                                */
    rp_worker_t        **workers;        /* owned                                      */
    unsigned             nworkers;
    unsigned             nstarted;       /* threads running, to join             */
    rp_access_log_t     *global_log;     /* borrowed from log.c (sinks live till exit) */
    rp_access_log_t    **listener_logs;  /* owned array, conf->nlisteners              */
    rp_access_log_t    **vhost_logs;     /* owned array, conf->nvhosts                 */
    struct event_base   *base;           /* owned: signals                             */
    int                  pidfile_written;
    struct rp_shdict_s **dicts;          /* references to conf->dicts' dictionaries */
};

/* Serves conf until SIGTERM/SIGINT. Returns the process exit status. */
int rp_server_run(rp_config_t *conf);

rp_access_log_t *rp_server_global_log(const rp_server_t *srv);
rp_access_log_t *rp_server_listener_log(const rp_server_t *srv, unsigned i);
rp_access_log_t *rp_server_vhost_log(const rp_server_t *srv, unsigned i);

#endif
