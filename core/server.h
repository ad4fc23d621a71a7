/* server.h: the main thread: listening sockets, workers, signals, reloads
 * (SIGHUP, settings.watch), pidfile. */
#ifndef RP_SERVER_H
#define RP_SERVER_H

#include "rp.h"
#include "config.h"

struct event_base;
struct event;

struct rp_server_s {
    rp_config_t         *conf;           /* a reference: the configuration serving      */
    rp_worker_t        **workers;        /* owned                                       */
    unsigned             nworkers;
    unsigned             nstarted;       /* threads running, to join                    */
    unsigned             gen;            /* the newest generation number                */
    struct event_base   *base;           /* owned: signals, the file watch              */
    int                  pidfile_written;
    struct rp_shdict_s **dicts;          /* references to conf->dicts' dictionaries     */
    int                  watch_fd;       /* owned inotify fd, or -1                     */
    struct event        *watch_ev;       /* owned: reads watch_fd                       */
    struct event        *watch_timer;    /* owned: debounces changes                    */
    double               reload_asked;   /* when the pending reload was asked (rp_now)  */
};

/* Serves conf until SIGTERM/SIGINT. Returns the process exit status. */
int rp_server_run(rp_config_t *conf);

/* Evaluates conf's file again; on success every worker moves to it at its
 * next request boundary; on failure the error is logged and nothing
 * changes. Returns RP_OK or RP_ERROR. */
int rp_server_reload(rp_server_t *srv);

#endif
