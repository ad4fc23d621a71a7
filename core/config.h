/* config.h: the immutable configuration snapshot built from rproxy.lua.
 * One snapshot is shared read-only by every thread; it is ref-counted so that a
 * reload can swap it while requests still hold the old one. */
#ifndef RP_CONFIG_H
#define RP_CONFIG_H

#include "rp.h"

#include <regex.h>
#include <stdatomic.h>
#include <sys/socket.h>

typedef enum {
    RP_BALANCE_RTT = 0,     /* lowest EWMA of time to first response byte */
    RP_BALANCE_ROUNDROBIN,
    RP_BALANCE_MOST_IDLE,
    RP_BALANCE_RANDOM,
    RP_BALANCE_FIRST,
} rp_balance_e;

typedef enum {
    RP_MATCH_ANY = 0,       /* route without a path: matches every path     */
    RP_MATCH_EXACT,         /* path == pattern                              */
    RP_MATCH_PREFIX,        /* path starts with pattern                     */
    RP_MATCH_GLOB,          /* fnmatch-like: * ? [..], '*' crosses '/'      */
    RP_MATCH_REGEX,         /* POSIX extended regex, searched in the path   */
} rp_match_e;

typedef enum {
    RP_LOG_ERR = 0,
    RP_LOG_WARN,
    RP_LOG_NOTICE,
    RP_LOG_INFO,
    RP_LOG_DEBUG,
} rp_log_level_e;

/* X-headers a listener adds to requests sent to backends (bit set). */
#define RP_XH_FORWARDED_FOR   0x01u
#define RP_XH_FORWARDED_PROTO 0x02u
#define RP_XH_REAL_IP         0x04u

/* An access log destination; NULL output means "off". */
typedef struct {
    char  *output;            /* owned: "stdout", "stderr", "off" or a file path */
    char  *format;            /* owned: "combined", "json" or a {TOKEN} template  */
} rp_access_log_conf_t;

struct rp_backend_conf_s {
    char                     *name;            /* owned                                 */
    char                     *address;         /* owned: as written, for logs           */
    char                     *host;            /* owned: host part, for Host/logs       */
    uint16_t                  port;
    struct sockaddr_storage   addr;            /* resolved at load                       */
    socklen_t                 addrlen;
    unsigned                  connections;     /* per worker thread; default 4          */
    double                    retry;           /* first reconnect delay, s; default 0.5 */
    double                    retry_max;       /* backoff cap, s; default 10            */
    double                    connect_timeout; /* s; default 5                          */
    double                    read_timeout;    /* s; default 60                         */
    double                    write_timeout;   /* s; default 60                         */
    size_t                    high_watermark;  /* bytes queued to it before pausing the
                                                  client; default 256 KiB               */
    int                       enabled;         /* default 1                             */
    unsigned                  index;           /* position in rp_config_t.backends      */
    int                       line;            /* declaration line in the config file   */
};

struct rp_pool_conf_s {
    char          *name;         /* owned                                        */
    unsigned      *members;      /* owned: indexes into rp_config_t.backends     */
    unsigned       nmembers;
    rp_balance_e   balance;      /* default RP_BALANCE_RTT                        */
    unsigned       index;        /* position in rp_config_t.pools                 */
    int            line;
};

/* Where a route sends a request: a pool, or a single backend. */
typedef struct {
    int        is_pool;
    unsigned   index;            /* into pools[] or backends[]                   */
} rp_target_ref_t;

struct rp_route_conf_s {
    rp_match_e        match;
    char             *pattern;       /* owned; NULL for RP_MATCH_ANY               */
    regex_t           regex;         /* compiled when match == RP_MATCH_REGEX      */
    rp_target_ref_t   to;
    int               has_rewrite;
    regex_t           rewrite_re;    /* POSIX ERE applied to the path             */
    char             *rewrite_to;    /* owned: replacement, %0..%9 captures        */
};

struct rp_vhost_conf_s {
    char                  *name;         /* owned: exact host or wildcard ("*.a.com") */
    char                 **aliases;      /* owned: more names, same syntax            */
    unsigned               naliases;
    rp_route_conf_t       *routes;       /* owned, in declaration order               */
    unsigned               nroutes;
    int                    is_default;   /* serves Hosts no vhost names               */
    rp_access_log_conf_t   access_log;   /* output NULL: the listener's / global one  */
    int                    line;
};

struct rp_listen_conf_s {
    char                    *address;          /* owned: as written                          */
    struct sockaddr_storage  addr;
    socklen_t                addrlen;
    int                      backlog;          /* default 1024                               */
    double                   read_timeout;     /* s; client head/body stall; default 60      */
    double                   write_timeout;    /* s; client not reading; default 60          */
    double                   keepalive_timeout;/* s; idle keep-alive client; default 75      */
    double                   pending_timeout;  /* s; wait for a backend conn; default 10     */
    unsigned                 max_pending;      /* per worker; default 1024                   */
    size_t                   high_watermark;   /* bytes queued to the client; default 256 KiB */
    unsigned                 x_headers;        /* RP_XH_* bits; default FORWARDED_FOR        */
    size_t                   max_request_line; /* bytes; 414 past it; default 8192           */
    size_t                   max_header_size;  /* bytes of all fields; 431; default 32768    */
    unsigned                 max_headers;      /* fields; 431 past it; default 100           */
    rp_access_log_conf_t     access_log;       /* output NULL: the global one                */
    int                      line;
};

struct rp_config_s {
    atomic_int              refs;
    char                   *path;          /* owned: the file it came from               */
    /* settings */
    unsigned                threads;       /* default: number of CPUs                     */
    unsigned long           max_nofile;    /* 0: leave RLIMIT_NOFILE alone                */
    char                   *pidfile;       /* owned; NULL: none                           */
    double                  grace;         /* s; graceful stop period; default 30         */
    char                   *error_log;     /* owned: "stderr" (default) or a file path    */
    rp_log_level_e          log_level;     /* default RP_LOG_NOTICE                       */
    rp_access_log_conf_t    access_log;    /* default: off                                */
    /* declarations, in file order */
    rp_backend_conf_t      *backends;      /* owned */
    unsigned                nbackends;
    rp_pool_conf_t         *pools;         /* owned */
    unsigned                npools;
    rp_listen_conf_t       *listeners;     /* owned */
    unsigned                nlisteners;
    rp_vhost_conf_t        *vhosts;        /* owned */
    unsigned                nvhosts;
};

/* Evaluates the rproxy.lua at path and builds a snapshot with refs == 1.
 * On failure returns NULL and writes "file:line: what is wrong" into err. */
rp_config_t *rp_config_load(const char *path, char *err, size_t errlen);

void rp_config_ref(rp_config_t *conf);
void rp_config_unref(rp_config_t *conf);   /* frees at zero */

/* Lookups by name; NULL when absent. */
const rp_backend_conf_t *rp_config_backend(const rp_config_t *conf, const char *name);
const rp_pool_conf_t *rp_config_pool(const rp_config_t *conf, const char *name);

#endif
