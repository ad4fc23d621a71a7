/* main.c: the command line: check a configuration or serve it. */
#include "config.h"
#include "log.h"
#include "server.h"

#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RP_VERSION "0.1.0"

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: rproxy [-c FILE] [-t] [-s reload] [-h] [-v]\n"
            "\n"
            "  -c FILE   configuration file (default: ./rproxy.lua)\n"
            "  -t        check the configuration: print \"ok\", or FILE:LINE: error and exit 1\n"
            "  -s reload check FILE, then ask the running rproxy (settings.pidfile) to reload it\n"
            "  -v        print the version and exit\n"
            "  -h        this help\n"
            "\n"
            "Signals: TERM/INT graceful stop (finishes in-flight requests up to settings.grace),\n"
            "HUP reloads the configuration without dropping a request, USR1 reopens the logs.\n");
}

/* -s reload: the file is checked first (the running server would refuse a
 * broken one anyway, but this way the operator sees why), then SIGHUP goes
 * to the pid in settings.pidfile. */
static int
send_reload(const rp_config_t *conf)
{
    FILE  *f;
    long   pid = 0;

    if (conf->pidfile == NULL) {
        fprintf(stderr, "rproxy: -s reload needs settings.pidfile in %s\n", conf->path);
        return 1;
    }
    if ((f = fopen(conf->pidfile, "r")) == NULL || fscanf(f, "%ld", &pid) != 1 || pid <= 0) {
        fprintf(stderr, "rproxy: cannot read a pid from %s: %s\n", conf->pidfile,
                f ? "no number in it" : strerror(errno));
        if (f != NULL) {
            fclose(f);
        }
        return 1;
    }
    fclose(f);
    if (kill((pid_t) pid, SIGHUP) != 0) {
        fprintf(stderr, "rproxy: cannot signal pid %ld: %s\n", pid, strerror(errno));
        return 1;
    }
    printf("reload sent to pid %ld\n", pid);
    return 0;
}

int
main(int argc, char **argv)
{
    const char   *path = "rproxy.lua";
    int           opt, check = 0, signal_reload = 0;
    char          err[1024];
    rp_config_t  *conf;

    /* before anything of libevent's: its zeroed allocations (a bufferevent,
     * its two evbuffers, their callbacks: five per connection) then use
     * malloc and memset instead of calloc (see rp_xalloc) */
    event_set_mem_functions(malloc, realloc, free);
    while ((opt = getopt(argc, argv, "c:s:thv")) != -1) {
        switch (opt) {
        case 's':
            if (strcmp(optarg, "reload") != 0) {
                fprintf(stderr, "rproxy: -s takes \"reload\"\n");
                return 2;
            }
            signal_reload = 1;
            break;
        case 'c':
            path = optarg;
            break;
        case 't':
            check = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'v':
            printf("rproxy " RP_VERSION "\n");
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    conf = rp_config_load(path, err, sizeof(err));
    if (conf == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (check) {
        printf("ok\n");
        rp_config_unref(conf);
        return 0;
    }
    if (signal_reload) {
        opt = send_reload(conf);
        rp_config_unref(conf);
        return opt;
    }
    if (rp_log_init(conf->error_log, conf->log_level) != RP_OK) {
        fprintf(stderr, "rproxy: cannot open the error log %s\n", conf->error_log);
        rp_config_unref(conf);
        return 1;
    }
    opt = rp_server_run(conf);     /* takes the reference */
    rp_log_shutdown();
    return opt;
}
