/* log.h: the error log (levels, thread-safe) and access logs (formats, sinks
 * written by a background thread so that an event loop never blocks on disk). */
#ifndef RP_LOG_H
#define RP_LOG_H

#include "rp.h"
#include "config.h"

#include <stddef.h>
#include <stdint.h>

/* Opens the error log ("stderr" or a path) at the given level. Before it is
 * called, errors go to stderr at RP_LOG_NOTICE. Returns RP_OK or RP_ERROR. */
int rp_log_init(const char *error_log, rp_log_level_e level);

/* Writes one line "YYYY/MM/DD HH:MM:SS [level] message" to the error log. */
void rp_log(rp_log_level_e level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* "error", "warn", "notice", "info" or "debug" -> *level. Returns RP_OK, or
 * RP_ERROR for any other name (the caller reports it with its context). */
int rp_log_level_parse(const char *name, rp_log_level_e *level);

#define rp_log_error(...)  rp_log(RP_LOG_ERR, __VA_ARGS__)
#define rp_log_warn(...)   rp_log(RP_LOG_WARN, __VA_ARGS__)
#define rp_log_notice(...) rp_log(RP_LOG_NOTICE, __VA_ARGS__)
#define rp_log_info(...)   rp_log(RP_LOG_INFO, __VA_ARGS__)
#define rp_log_debug(...)  rp_log(RP_LOG_DEBUG, __VA_ARGS__)

/* A header lookup used by the {US_HDR}:'name' / {DS_HDR}:'name' tokens:
 * returns the first value of the field (case-insensitive) or NULL. */
typedef const char *(*rp_log_header_fn)(void *ctx, const char *name, size_t nlen, size_t *vlen);

/* Everything one access-log line may show. Strings are not NUL-terminated;
 * a NULL pointer or 0 length prints "-". */
typedef struct {
    const char        *client_addr;   size_t client_addr_len;   /* {SRC}                     */
    uint16_t           client_port;                              /* {US_SPORT}                */
    const char        *backend_addr;  size_t backend_addr_len;  /* {PROXY}: "host:port"      */
    uint16_t           backend_sport;                            /* {DS_SPORT}: local port    */
    double             wall_time;                                /* {TS}: epoch seconds       */
    const char        *method;        size_t method_len;        /* {METH}                    */
    const char        *uri;           size_t uri_len;           /* {URI} as the client sent  */
    int                http_major, http_minor;                   /* {PROTO} HTTP/1.1          */
    int                status;                                   /* {STATUS}                  */
    const char        *host;          size_t host_len;          /* {HOST}                    */
    const char        *user_agent;    size_t user_agent_len;    /* {UA}                      */
    const char        *referer;       size_t referer_len;       /* {REF}                     */
    double             request_time;                             /* {REQ_TIME} s, accept->log */
    double             upstream_time;                            /* {UP_TIME} s; <0: none     */
    uint64_t           bytes_in;                                 /* {BYTES_IN} from client    */
    uint64_t           bytes_out;                                /* {BYTES_OUT} to client     */
    unsigned           gen;                                      /* {GEN} config generation   */
    rp_log_header_fn   req_header;  void *req_ctx;              /* {US_HDR}:'name'           */
    rp_log_header_fn   resp_header; void *resp_ctx;             /* {DS_HDR}:'name'           */
} rp_access_entry_t;

/* Returns the access log for (output, format), creating and opening it once:
 * two configurations naming one file share one sink. NULL output or "off"
 * returns NULL (logging off) with err[0] == '\0'. On error returns NULL and
 * fills err. The log stays valid until rp_log_shutdown(). */
rp_access_log_t *rp_access_log_open(const rp_access_log_conf_t *conf, char *err, size_t errlen);

/* For the configuration check: RP_OK when an access log of (output, format)
 * would open at the start (its format's tokens known, its file openable:
 * created if need be, as the start would), else RP_ERROR with err filled.
 * rp_error_log_check() does the same for log.error's path (NULL: stderr). */
int rp_access_log_check(const char *output, const char *format, char *err, size_t errlen);
int rp_error_log_check(const char *path, char *err, size_t errlen);

/* Formats e and queues the line; never blocks on I/O. Safe from any thread. */
void rp_access_log_write(rp_access_log_t *log, const rp_access_entry_t *e);

/* Makes every sink (and the error log file) reopen its file: SIGUSR1. */
void rp_log_reopen(void);

/* Flushes every queued line and stops the writer thread; at exit. */
void rp_log_shutdown(void);

#endif
