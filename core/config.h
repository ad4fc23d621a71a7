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

/* TLS facts a TLS listener can send as headers: the x_headers bit of fact h is
 * RP_XH_SSL(h); the header's name is the listener's tls->headers[h]. */
typedef enum {
    RP_TLS_H_SUBJECT = 0,     /* "X-SSL-Subject": peer cert subject, RFC 2253     */
    RP_TLS_H_ISSUER,          /* "X-SSL-Issuer"                                    */
    RP_TLS_H_SERIAL,          /* "X-SSL-Serial": hex                               */
    RP_TLS_H_NOT_BEFORE,      /* "X-SSL-NotBefore": "Nov 28 17:15:48 2026 GMT"     */
    RP_TLS_H_NOT_AFTER,       /* "X-SSL-NotAfter"                                  */
    RP_TLS_H_CIPHER,          /* "X-SSL-Cipher": OpenSSL's name                    */
    RP_TLS_H_PROTOCOL,        /* "X-SSL-Protocol": "TLSv1.3"                       */
    RP_TLS_H_SNI,             /* "X-SSL-SNI"                                       */
    RP_TLS_H_FINGERPRINT,     /* "X-SSL-Fingerprint": SHA-256, lowercase hex       */
    RP_TLS_H_CERTIFICATE,     /* "X-SSL-Certificate": PEM, URL-escaped, one line   */
    RP_TLS_H_COUNT
} rp_tls_header_e;

#define RP_XH_SSL(h)          (0x100u << (h))   /* h: an rp_tls_header_e            */
#define RP_XH_SSL_SUBJECT     RP_XH_SSL(RP_TLS_H_SUBJECT)
#define RP_XH_SSL_ISSUER      RP_XH_SSL(RP_TLS_H_ISSUER)
#define RP_XH_SSL_SERIAL      RP_XH_SSL(RP_TLS_H_SERIAL)
#define RP_XH_SSL_NOT_BEFORE  RP_XH_SSL(RP_TLS_H_NOT_BEFORE)
#define RP_XH_SSL_NOT_AFTER   RP_XH_SSL(RP_TLS_H_NOT_AFTER)
#define RP_XH_SSL_CIPHER      RP_XH_SSL(RP_TLS_H_CIPHER)
#define RP_XH_SSL_PROTOCOL    RP_XH_SSL(RP_TLS_H_PROTOCOL)
#define RP_XH_SSL_SNI         RP_XH_SSL(RP_TLS_H_SNI)
#define RP_XH_SSL_FINGERPRINT RP_XH_SSL(RP_TLS_H_FINGERPRINT)
#define RP_XH_SSL_CERTIFICATE RP_XH_SSL(RP_TLS_H_CERTIFICATE)
#define RP_XH_SSL_EXT         0x80000u          /* "X-SSL-Ext": every tls.extensions */
#define RP_XH_SSL_ANY         (0x3ffu << 8 | RP_XH_SSL_EXT)

/* TLS objects built at load (core/tls.h); the snapshot owns them. */
typedef struct rp_tls_server_s   rp_tls_server_t;    /* a TLS listener's SSL_CTXs      */
typedef struct rp_tls_client_s   rp_tls_client_t;    /* a TLS backend's SSL_CTX        */
typedef struct rp_tls_certset_s  rp_tls_certset_t;   /* loaded certificates and keys   */

/* tls.protocols bits */
#define RP_TLS_PROTO_TLSv1    0x01u
#define RP_TLS_PROTO_TLSv1_1  0x02u
#define RP_TLS_PROTO_TLSv1_2  0x04u
#define RP_TLS_PROTO_TLSv1_3  0x08u

typedef enum {
    RP_TLS_VERIFY_NONE = 0,   /* no client certificate asked for                 */
    RP_TLS_VERIFY_OPTIONAL,   /* asked for; one that is sent must verify         */
    RP_TLS_VERIFY_REQUIRE,    /* a client without a valid certificate is refused */
} rp_tls_verify_e;

/* A certificate and its key; paths are made absolute against the directory of
 * the configuration file at load. */
typedef struct {
    char  *cert;              /* owned: PEM path; the leaf, then its chain      */
    char  *key;               /* owned: PEM path of the private key             */
} rp_tls_cert_conf_t;

/* tls.extensions: a header carrying a peer certificate's extension as text. */
typedef struct {
    char  *header;            /* owned: "X-SSL-Ext-SAN"                         */
    char  *ext;               /* owned: short name or OID, as written           */
} rp_tls_ext_conf_t;

/* A TLS listener's tls = { ... } (docs/tls.md). */
typedef struct {
    rp_tls_cert_conf_t  *certs;              /* owned: cert/key, or certs = {...} */
    unsigned             ncerts;
    unsigned             protocols;          /* RP_TLS_PROTO_* bits; default 1.2|1.3 */
    char                *ciphers;            /* owned; NULL: OpenSSL's default    */
    char                *ciphersuites;       /* owned; NULL: OpenSSL's default    */
    char                *groups;             /* owned; NULL: OpenSSL's default    */
    char               **alpn;               /* owned; default { "http/1.1" }     */
    unsigned             nalpn;              /* 0: no ALPN extension answered     */
    double               handshake_timeout;  /* s; default 10 (applied by the lead) */
    char                *client_ca;          /* owned; NULL: none                 */
    char                *client_ca_dir;      /* owned; NULL: none                 */
    rp_tls_verify_e      verify_client;      /* default REQUIRE with a CA, else NONE */
    int                  verify_depth;       /* default 4                         */
    char                *crl;                /* owned; NULL: none; re-read on change */
    int                  session_cache;      /* default 1                         */
    unsigned             session_cache_size; /* sessions; default 20480           */
    double               session_timeout;    /* s; cache and tickets; default 300 */
    int                  tickets;            /* RFC 5077 tickets; default 1       */
    int                  tickets_stateless;  /* "stateless": even while the cache
                                                has room; default 0               */
    char                *ticket_key_file;    /* owned; NULL: random keys, rotated */
    double               ticket_rotate;      /* s; default 3600                   */
    int                  cert_cache;         /* verified client certs; default 1  */
    unsigned             cert_cache_size;    /* entries; default 10000            */
    double               cert_cache_ttl;     /* s; default 300                    */
    int                  misdirected_reject; /* Host's vhost != SNI's: 421; default 1 */
    char                *headers[RP_TLS_H_COUNT]; /* owned: header names          */
    rp_tls_ext_conf_t   *exts;               /* owned: tls.extensions, sorted by header */
    unsigned             nexts;
} rp_tls_conf_t;

/* A TLS backend's tls = { ... }. */
typedef struct {
    int    verify;            /* verify the server's certificate; default 1      */
    char  *ca;                /* owned; NULL: the system's default CA store      */
    int    depth;             /* default 4                                       */
    char  *sni;               /* owned; NULL: none sent                          */
    char  *name;              /* owned: name the certificate must carry; NULL: none
                                 (verify off); default sni, else the host        */
    char  *cert;              /* owned: client certificate; NULL: none           */
    char  *key;               /* owned                                           */
} rp_tls_client_conf_t;

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
    unsigned                  weight;          /* for Lua balancers; default 1          */
    rp_tls_client_conf_t     *tls;             /* owned; NULL: plain TCP                */
    rp_tls_client_t          *tls_client;      /* owned: built from tls at load         */
    unsigned                  index;           /* position in rp_config_t.backends      */
    int                       line;            /* declaration line in the config file   */
};

struct rp_pool_conf_s {
    char          *name;         /* owned                                        */
    unsigned      *members;      /* owned: indexes into rp_config_t.backends     */
    unsigned       nmembers;
    rp_balance_e   balance;      /* default RP_BALANCE_RTT; the fallback when a Lua
                                    balancer returns nil                          */
    int            lua_balance;  /* balance = function(req, pool): in each state  */
    char          *balancer;     /* owned: balance = "name" of an rproxy.balancer */
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
    int               has_hook;      /* on_request = function(req): in each state  */
};

struct rp_vhost_conf_s {
    char                  *name;         /* owned: exact host or wildcard ("*.a.com") */
    char                 **aliases;      /* owned: more names, same syntax            */
    unsigned               naliases;
    rp_route_conf_t       *routes;       /* owned, in declaration order               */
    unsigned               nroutes;
    int                    is_default;   /* serves Hosts no vhost names               */
    rp_access_log_conf_t   access_log;   /* output NULL: the listener's / global one  */
    rp_tls_cert_conf_t    *tls_certs;    /* owned: its own certificates; NULL: the
                                            TLS listener's                            */
    unsigned               ntls_certs;
    rp_tls_certset_t      *tls_certset;  /* owned: tls_certs loaded at load           */
    int                    line;
};

struct rp_listen_conf_s {
    char                    *address;          /* owned: as written                          */
    struct sockaddr_storage  addr;
    socklen_t                addrlen;
    int                      backlog;          /* default 1024                               */
    int                      defer_accept;     /* TCP_DEFER_ACCEPT: a connection is accepted
                                                  once its first bytes came; default 1       */
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
    rp_tls_conf_t           *tls;              /* owned; NULL: plain HTTP                    */
    rp_tls_server_t         *tls_server;       /* owned: built from tls (and the vhosts'
                                                  certificates) at load                      */
    int                      line;
};

/* rproxy.shared_dict "name" { size = ... } */
typedef struct {
    char    *name;                   /* owned */
    size_t   size;                   /* bytes */
    int      line;
} rp_dict_conf_t;

struct rp_config_s {
    atomic_int              refs;
    char                   *path;          /* owned: the file it came from               */
    char                   *source;        /* owned: its bytes as the check read them:
                                              each worker runs these, not the file again */
    size_t                  source_len;
    /* settings */
    unsigned                threads;       /* default: number of CPUs                     */
    unsigned long           max_nofile;    /* 0: leave RLIMIT_NOFILE alone                */
    char                   *pidfile;       /* owned; NULL: none                           */
    double                  grace;         /* s; graceful stop period; default 30         */
    int                     watch;         /* reload when a .lua file changes; default 0  */
    char                   *error_log;     /* owned: "stderr" (default) or a file path    */
    rp_log_level_e          log_level;     /* default RP_LOG_NOTICE                       */
    rp_access_log_conf_t    access_log;    /* default: off                                */
    unsigned long           lua_instructions; /* per hook call; default 10,000,000        */
    size_t                  lua_memory;    /* per lua_State; default 64 MiB               */
    /* declarations, in file order */
    rp_backend_conf_t      *backends;      /* owned */
    unsigned                nbackends;
    rp_pool_conf_t         *pools;         /* owned */
    unsigned                npools;
    rp_listen_conf_t       *listeners;     /* owned */
    unsigned                nlisteners;
    rp_vhost_conf_t        *vhosts;        /* owned */
    unsigned                nvhosts;
    rp_dict_conf_t         *dicts;         /* owned */
    unsigned                ndicts;
    char                  **balancers;     /* owned: names of rproxy.balancer functions */
    unsigned                nbalancers;
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
