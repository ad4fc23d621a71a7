/* main.c: the command line: check a configuration or serve it. */
#include "config.h"
#include "log.h"
#include "server.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RP_VERSION "0.1.0"

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: rproxy [-c FILE] [-t] [-h] [-v]\n"
            "\n"
            "  -c FILE   configuration file (default: ./rproxy.lua)\n"
            "  -t        check the configuration: print \"ok\", or FILE:LINE: error and exit 1\n"
            "  -v        print the version and exit\n"
            "  -h        this help\n"
            "\n"
            "Signals: TERM/INT graceful stop (finishes in-flight requests up to settings.grace),\n"
            "USR1 reopens the log files.\n");
}

int
main(int argc, char **argv)
{
    const char   *path = "rproxy.lua";
    int           opt, check = 0;
    char          err[1024];
    rp_config_t  *conf;

    while ((opt = getopt(argc, argv, "c:thv")) != -1) {
        switch (opt) {
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
    if (rp_log_init(conf->error_log, conf->log_level) != RP_OK) {
        fprintf(stderr, "rproxy: cannot open the error log %s\n", conf->error_log);
        rp_config_unref(conf);
        return 1;
    }
    opt = rp_server_run(conf);     /* takes the reference */
    rp_log_shutdown();
    return opt;
}
