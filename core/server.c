/* server.c: the main thread: opens the listening sockets (one per worker per
 * listener, SO_REUSEPORT), starts the workers, handles signals (TERM/INT
 * graceful stop, USR1 reopen logs, HUP reload), watches the configuration
 * files when asked, writes the pidfile. */
#include "server.h"

#include "log.h"
#include "shared_dict.h"
#include "worker.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define SERVER_WATCH_DEBOUNCE 0.25      /* s: editors write a file in several steps */

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
    /* accepted sockets inherit it: no setsockopt per connection */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
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

/* Does old have a listener on lc's address (whose sockets a reload keeps)? */
static int
server_has_listener(const rp_config_t *old, const rp_listen_conf_t *lc)
{
    unsigned  i;

    for (i = 0; old != NULL && i < old->nlisteners; i++) {
        if (old->listeners[i].addrlen == lc->addrlen
            && memcmp(&old->listeners[i].addr, &lc->addr, lc->addrlen) == 0) {
            return 1;
        }
    }
    return 0;
}

/* One socket per listener of conf that old lacks (-1 for the others). NULL
 * when one cannot be opened, logged, with nothing left open. */
static int *
server_open_sockets(const rp_config_t *conf, const rp_config_t *old)
{
    int       *fds = rp_xalloc((conf->nlisteners + 1) * sizeof(int));
    unsigned   i;

    for (i = 0; i < conf->nlisteners; i++) {
        fds[i] = -1;
        if (!server_has_listener(old, &conf->listeners[i])
            && (fds[i] = server_listen(&conf->listeners[i])) < 0) {
            while (i-- > 0) {
                if (fds[i] >= 0) {
                    close(fds[i]);
                }
            }
            free(fds);
            return NULL;
        }
    }
    return fds;
}

/* The access logs of conf (the log objects are shared, the arrays owned).
 * NULL when one cannot be opened, logged. */
static rp_logset_t *
server_open_logs(const rp_config_t *conf)
{
    rp_logset_t  *ls = rp_xalloc(sizeof(rp_logset_t));
    char          err[256];
    unsigned      i;

    err[0] = '\0';
    ls->listeners = rp_xalloc((conf->nlisteners + 1) * sizeof(rp_access_log_t *));
    ls->vhosts = rp_xalloc((conf->nvhosts + 1) * sizeof(rp_access_log_t *));
    ls->global = rp_access_log_open(&conf->access_log, err, sizeof(err));
    for (i = 0; !err[0] && i < conf->nlisteners; i++) {
        ls->listeners[i] = rp_access_log_open(&conf->listeners[i].access_log, err, sizeof(err));
    }
    for (i = 0; !err[0] && i < conf->nvhosts; i++) {
        ls->vhosts[i] = rp_access_log_open(&conf->vhosts[i].access_log, err, sizeof(err));
    }
    if (err[0]) {
        rp_log_error("access log: %s", err);
        rp_logset_free(ls);
        return NULL;
    }
    return ls;
}

/* The dictionaries conf declares: an unchanged declaration keeps its data. */
static struct rp_shdict_s **
server_open_dicts(const rp_config_t *conf)
{
    rp_shdict_t  **d = rp_xalloc((conf->ndicts + 1) * sizeof(rp_shdict_t *));
    unsigned       i;

    for (i = 0; i < conf->ndicts; i++) {
        d[i] = rp_shdict_open(conf->dicts[i].name, conf->dicts[i].size);
    }
    return d;
}

static void
server_close_dicts(struct rp_shdict_s **d, const rp_config_t *conf)
{
    unsigned  i;

    for (i = 0; d != NULL && i < conf->ndicts; i++) {
        rp_shdict_unref(d[i]);
    }
    free(d);
}

/* Raises RLIMIT_NOFILE to max_nofile: the soft limit, and the hard one
 * when it is lower (which needs privilege). Never lowers either: a limit
 * the process was given above max_nofile stays. */
static void
server_raise_nofile(const rp_config_t *conf)
{
    struct rlimit  rl;
    rlim_t         want = (rlim_t) conf->max_nofile;

    if (want == 0 || getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want) {
        return;
    }
    rl.rlim_cur = want;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
        rl.rlim_max = want;
    }
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        int  err = errno;

        getrlimit(RLIMIT_NOFILE, &rl);
        rp_log_warn("max_nofile %lu: setrlimit(): %s; the limit stays at %lu", conf->max_nofile,
                    strerror(err), (unsigned long) rl.rlim_cur);
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

/* ---- reload ------------------------------------------------------------------------ */

static int
str_differs(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0);
}

/* Settings a running process cannot take: said once per reload. */
static void
server_warn_restart_only(const rp_config_t *old, const rp_config_t *conf)
{
    if (old->threads != conf->threads) {
        rp_log_warn("reload: settings.threads changes at the next restart (%u now)", old->threads);
    }
    if (str_differs(old->pidfile, conf->pidfile) || old->max_nofile != conf->max_nofile
        || str_differs(old->error_log, conf->error_log) || old->log_level != conf->log_level) {
        rp_log_warn("reload: pidfile, max_nofile and log.error/level change at the next restart");
    }
}

/* Frees what a refused reload prepared for the first n workers. */
static void
server_free_prepared(const rp_config_t *conf, rp_logset_t **logs, int **fds, unsigned n)
{
    unsigned  i, j;

    for (i = 0; i < n; i++) {
        rp_logset_free(logs[i]);
        for (j = 0; fds[i] != NULL && j < conf->nlisteners; j++) {
            if (fds[i][j] >= 0) {
                close(fds[i][j]);
            }
        }
        free(fds[i]);
    }
    free(logs);
    free(fds);
}

int
rp_server_reload(rp_server_t *srv)
{
    char             err[1024];
    rp_config_t     *conf;
    rp_reload_t     *r;
    rp_swap_t       *s;
    rp_logset_t    **logs;
    int            **fds;
    struct rp_shdict_s **dicts;
    unsigned         i;
    double           t0 = srv->reload_asked > 0 ? srv->reload_asked : rp_now();

    srv->reload_asked = 0;
    conf = rp_config_load(srv->conf->path, err, sizeof(err));
    if (conf == NULL) {
        rp_log_error("reload refused, generation %u goes on: %s", srv->gen, err);
        return RP_ERROR;
    }
    server_warn_restart_only(srv->conf, conf);
    conf->threads = srv->conf->threads;       /* the number of workers is fixed */
    logs = rp_xalloc(srv->nworkers * sizeof(rp_logset_t *));
    fds = rp_xalloc(srv->nworkers * sizeof(int *));     /* zeroed: NULL until opened */
    for (i = 0; i < srv->nworkers; i++) {
        logs[i] = server_open_logs(conf);
        fds[i] = logs[i] ? server_open_sockets(conf, srv->conf) : NULL;
        if (fds[i] == NULL) {
            rp_log_error("reload refused, generation %u goes on", srv->gen);
            server_free_prepared(conf, logs, fds, i + 1);
            rp_config_unref(conf);
            return RP_ERROR;
        }
    }
    dicts = server_open_dicts(conf);
    server_close_dicts(srv->dicts, srv->conf);
    srv->dicts = dicts;
    r = rp_xalloc(sizeof(rp_reload_t));   /* the last worker frees it: read no more */
    r->id = ++srv->gen;
    r->t_signal = t0;
    r->nworkers = srv->nworkers;
    atomic_init(&r->remaining, srv->nworkers);
    atomic_init(&r->to_switch, srv->nworkers);
    for (i = 0; i < srv->nworkers; i++) {
        s = rp_xalloc(sizeof(rp_swap_t));
        s->conf = conf;
        rp_config_ref(conf);
        s->logs = logs[i];
        s->fds = fds[i];
        s->reload = r;
        rp_worker_post_swap(srv->workers[i], s);
    }
    free(logs);
    free(fds);
    rp_config_unref(srv->conf);
    srv->conf = conf;                          /* the reference load gave */
    rp_log_notice("reload: generation %u validated in %.1f ms; workers switch at their next "
                  "request boundary", srv->gen, (rp_now() - t0) * 1e3);
    return RP_OK;
}

/* ---- the file watch ------------------------------------------------------------------ */

static void
server_on_watch_timer(evutil_socket_t fd, short what, void *arg)
{
    rp_server_t  *srv = arg;

    rp_log_notice("watch: configuration changed; reloading");
    rp_server_reload(srv);
}

static void
server_on_watch(evutil_socket_t fd, short what, void *arg)
{
    rp_server_t                 *srv = arg;
    char                         buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    const struct inotify_event  *ev;
    ssize_t                      n;
    int                          lua = 0;
    struct timeval               tv = { 0, (suseconds_t) (SERVER_WATCH_DEBOUNCE * 1e6) };

    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        for (char *p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
            ev = (const struct inotify_event *) p;
            if (ev->len > 4 && strcmp(ev->name + strlen(ev->name) - 4, ".lua") == 0) {
                lua = 1;
            }
        }
    }
    if (lua) {
        if (srv->reload_asked == 0) {
            srv->reload_asked = rp_now();
        }
        evtimer_add(srv->watch_timer, &tv);    /* re-arming pushes it back: debounce */
    }
}

/* settings.watch: the config's directory and its scripts/ (where require
 * finds modules). Directories, not files: editors replace files by rename. */
static void
server_watch(rp_server_t *srv)
{
    char      dir[PATH_MAX], path[PATH_MAX + 16];
    uint32_t  mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE;

    srv->watch_fd = -1;
    if (!srv->conf->watch) {
        return;
    }
    snprintf(dir, sizeof(dir), "%s", srv->conf->path);
    snprintf(path, sizeof(path), "%s", dirname(dir));
    if ((srv->watch_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0
        || inotify_add_watch(srv->watch_fd, path, mask) < 0) {
        rp_log_error("watch: cannot watch %s: %s", path, strerror(errno));
        if (srv->watch_fd >= 0) {
            close(srv->watch_fd);
        }
        srv->watch_fd = -1;
        return;
    }
    strncat(path, "/scripts", sizeof(path) - strlen(path) - 1);
    inotify_add_watch(srv->watch_fd, path, mask);      /* fine if it does not exist */
    srv->watch_ev = event_new(srv->base, srv->watch_fd, EV_READ | EV_PERSIST, server_on_watch,
                              srv);
    srv->watch_timer = evtimer_new(srv->base, server_on_watch_timer, srv);
    event_add(srv->watch_ev, NULL);
}

/* ---- signals and life cycle ------------------------------------------------------------- */

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
        rp_log_notice("SIGHUP: reloading %s", srv->conf->path);
        srv->reload_asked = rp_now();
        rp_server_reload(srv);
        break;
    default:
        break;
    }
}

/* Opens every worker's sockets, then starts them; RP_ERROR if any fails. */
static int
server_start_workers(rp_server_t *srv)
{
    rp_config_t   *conf = srv->conf;
    int           *fds;
    rp_logset_t   *logs;
    unsigned       i;

    srv->workers = rp_xalloc(conf->threads * sizeof(rp_worker_t *));
    for (i = 0; i < conf->threads; i++) {
        if ((logs = server_open_logs(conf)) == NULL) {
            return RP_ERROR;
        }
        if ((fds = server_open_sockets(conf, NULL)) == NULL) {
            rp_logset_free(logs);
            return RP_ERROR;
        }
        srv->workers[i] = rp_worker_new(srv, i, conf, fds, logs);
        free(fds);
        if (srv->workers[i] == NULL) {
            return RP_ERROR;
        }
        srv->nworkers++;
    }
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
    server_close_dicts(srv->dicts, srv->conf);
    if (srv->pidfile_written) {
        unlink(srv->conf->pidfile);
    }
    if (srv->watch_ev != NULL) {
        event_free(srv->watch_ev);
        event_free(srv->watch_timer);
    }
    if (srv->watch_fd >= 0) {
        close(srv->watch_fd);
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
    srv.gen = 1;
    srv.watch_fd = -1;
    signal(SIGPIPE, SIG_IGN);
    server_raise_nofile(conf);
    /* before the workers: their states look the dictionaries up by name */
    srv.dicts = server_open_dicts(conf);
    if ((srv.base = event_base_new()) == NULL) {
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
    server_watch(&srv);
    rp_log_notice("rproxy started: %u workers, %u listeners, %u backends, generation 1 (pid %ld)",
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
