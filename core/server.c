/* server.c: the main thread: opens the listening sockets (one per worker per
 * listener, SO_REUSEPORT), starts the workers, handles signals (TERM/INT
 * graceful stop, USR1 reopen logs, HUP reload), writes the pidfile. */
#include "server.h"

#include "log.h"
#include "shared_dict.h"
#include "worker.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* Returns a listening socket for lc, or -1 with the reason logged. */
static int
server_listen(const rp_listen_conf_t *lc)
{
    int  fd, one = 1;

    fd = socket(lc->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rp_log_error("listen %s: socket(): %s", lc->address, strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* each worker has its own socket; the kernel spreads connections */
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (lc->addr.ss_family == AF_INET6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    if (bind(fd, (const struct sockaddr *) &lc->addr, lc->addrlen) != 0) {
        rp_log_error("listen %s: bind(): %s", lc->address, strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, lc->backlog) != 0) {
        rp_log_error("listen %s: listen(): %s", lc->address, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int
server_open_logs(rp_server_t *srv)
{
    const rp_config_t  *conf = srv->conf;
    char                err[256];
    unsigned            i;

    err[0] = '\0';
    srv->global_log = rp_access_log_open(&conf->access_log, err, sizeof(err));
    if (srv->global_log == NULL && err[0]) {
        goto fail;
    }
    srv->listener_logs = rp_xalloc((conf->nlisteners + 1) * sizeof(rp_access_log_t *));
    for (i = 0; i < conf->nlisteners; i++) {
        srv->listener_logs[i] = rp_access_log_open(&conf->listeners[i].access_log, err, sizeof(err));
        if (srv->listener_logs[i] == NULL && err[0]) {
            goto fail;
        }
    }
    srv->vhost_logs = rp_xalloc((conf->nvhosts + 1) * sizeof(rp_access_log_t *));
    for (i = 0; i < conf->nvhosts; i++) {
        srv->vhost_logs[i] = rp_access_log_open(&conf->vhosts[i].access_log, err, sizeof(err));
        if (srv->vhost_logs[i] == NULL && err[0]) {
            goto fail;
        }
    }
    return RP_OK;

fail:
    rp_log_error("access log: %s", err);
    return RP_ERROR;
}

static void
server_raise_nofile(const rp_config_t *conf)
{
    struct rlimit  rl;

    if (conf->max_nofile == 0) {
        return;
    }
    rl.rlim_cur = rl.rlim_max = conf->max_nofile;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        rp_log_warn("max_nofile %lu: setrlimit(): %s", conf->max_nofile, strerror(errno));
    }
}

static int
server_write_pidfile(rp_server_t *srv)
{
    FILE  *f;

    if (srv->conf->pidfile == NULL) {
        return RP_OK;
    }
    f = fopen(srv->conf->pidfile, "w");
    if (f == NULL) {
        rp_log_error("pidfile %s: %s", srv->conf->pidfile, strerror(errno));
        return RP_ERROR;
    }
    fprintf(f, "%ld\n", (long) getpid());
    fclose(f);
    srv->pidfile_written = 1;
    return RP_OK;
}

static void
server_on_signal(evutil_socket_t sig, short what, void *arg)
{
    rp_server_t  *srv = arg;
    unsigned      i;

    switch (sig) {
    case SIGTERM:
    case SIGINT:
        rp_log_notice("signal %d: graceful stop (grace %.0fs)", (int) sig, srv->conf->grace);
        for (i = 0; i < srv->nworkers; i++) {
            rp_worker_stop(srv->workers[i]);
        }
        event_base_loopexit(srv->base, NULL);
        break;
    case SIGUSR1:
        rp_log_notice("SIGUSR1: reopening logs");
        rp_log_reopen();
        break;
    case SIGHUP:
        /* hot swap lands with its own issue; until then a HUP changes nothing */
        rp_log_notice("SIGHUP: reload is not available in this build; configuration unchanged");
        break;
    default:
        break;
    }
}

/* Opens every worker's sockets, then starts them; RP_ERROR if any fails. */
static int
server_start_workers(rp_server_t *srv)
{
    const rp_config_t  *conf = srv->conf;
    int                *fds = rp_xalloc((conf->nlisteners + 1) * sizeof(int));
    unsigned            i, j;

    srv->workers = rp_xalloc(conf->threads * sizeof(rp_worker_t *));
    for (i = 0; i < conf->threads; i++) {
        for (j = 0; j < conf->nlisteners; j++) {
            if ((fds[j] = server_listen(&conf->listeners[j])) < 0) {
                while (j-- > 0) {
                    close(fds[j]);
                }
                free(fds);
                return RP_ERROR;
            }
        }
        srv->workers[i] = rp_worker_new(srv, i, srv->conf, fds);
        if (srv->workers[i] == NULL) {
            free(fds);
            return RP_ERROR;
        }
        srv->nworkers++;
    }
    free(fds);
    for (i = 0; i < srv->nworkers; i++) {
        if (rp_worker_start(srv->workers[i]) != RP_OK) {
            return RP_ERROR;
        }
        srv->nstarted++;
    }
    return RP_OK;
}

static void
server_cleanup(rp_server_t *srv)
{
    unsigned  i;

    for (i = 0; i < srv->nworkers; i++) {
        if (i < srv->nstarted) {
            rp_worker_join(srv->workers[i]);
        }
        rp_worker_free(srv->workers[i]);
    }
    free(srv->workers);
    for (i = 0; srv->dicts != NULL && i < srv->conf->ndicts; i++) {
        rp_shdict_unref(srv->dicts[i]);
    }
    free(srv->dicts);
    free(srv->listener_logs);
    free(srv->vhost_logs);
    if (srv->pidfile_written) {
        unlink(srv->conf->pidfile);
    }
    if (srv->base != NULL) {
        event_base_free(srv->base);
    }
    rp_config_unref(srv->conf);
}

int
rp_server_run(rp_config_t *conf)
{
    rp_server_t    srv;
    struct event  *sigs[4];
    const int      signums[4] = { SIGTERM, SIGINT, SIGUSR1, SIGHUP };
    unsigned       i;
    int            rc = 1;

    memset(&srv, 0, sizeof(srv));
    srv.conf = conf;
    signal(SIGPIPE, SIG_IGN);
    server_raise_nofile(conf);
    /* before the workers: their states look the dictionaries up by name */
    srv.dicts = rp_xalloc((conf->ndicts + 1) * sizeof(rp_shdict_t *));
    for (i = 0; i < conf->ndicts; i++) {
        srv.dicts[i] = rp_shdict_open(conf->dicts[i].name, conf->dicts[i].size);
    }
    if (server_open_logs(&srv) != RP_OK || (srv.base = event_base_new()) == NULL) {
        server_cleanup(&srv);
        return 1;
    }
    for (i = 0; i < 4; i++) {
        sigs[i] = evsignal_new(srv.base, signums[i], server_on_signal, &srv);
        evsignal_add(sigs[i], NULL);
    }
    if (server_start_workers(&srv) != RP_OK) {
        rp_log_error("start-up failed");
        for (i = 0; i < srv.nworkers; i++) {
            rp_worker_stop(srv.workers[i]);
        }
        goto done;
    }
    if (server_write_pidfile(&srv) != RP_OK) {
        for (i = 0; i < srv.nworkers; i++) {
            rp_worker_stop(srv.workers[i]);
        }
        goto done;
    }
    rp_log_notice("rproxy started: %u workers, %u listeners, %u backends (pid %ld)",
                  conf->threads, conf->nlisteners, conf->nbackends, (long) getpid());
    event_base_dispatch(srv.base);
    rc = 0;

done:
    for (i = 0; i < 4; i++) {
        event_free(sigs[i]);
    }
    server_cleanup(&srv);
    rp_log_notice("rproxy stopped");
    return rc;
}

rp_access_log_t *
rp_server_global_log(const rp_server_t *srv)
{
    return srv->global_log;
}

rp_access_log_t *
rp_server_listener_log(const rp_server_t *srv, unsigned i)
{
    return srv->listener_logs[i];
}

rp_access_log_t *
rp_server_vhost_log(const rp_server_t *srv, unsigned i)
{
    return srv->vhost_logs[i];
}
