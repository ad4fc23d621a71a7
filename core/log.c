/* log.c: the error log (level-filtered, one write(2) per line) and the access
 * logs: formats compiled once into ops, one sink per output whose bounded queue
 * a single background thread writes, so that no event loop ever waits on a disk. */
#define _GNU_SOURCE                 /* dup3(), tm_gmtoff */

#include "log.h"

#include "headbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX      4096          /* an error log line; longer ones end in "..." */
#define LOG_FILE_FLAGS    (O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC)
#define LOG_FILE_MODE     0644

#define ACCESS_STACK_BUF  4096          /* most access lines fit: no malloc per line  */
#define ACCESS_FIELD_MAX  8192          /* bytes of one field shown, then "...": nginx's
                                           large_client_header_buffers, so any URI nginx
                                           would accept is logged whole                */
#define SINK_QUEUE_INIT   (64u << 10)
#define SINK_QUEUE_MAX    (4u << 20)    /* bytes waiting per sink; beyond, lines drop  */

/* ------------------------------------------------------------------------ */
/* The error log                                                             */

static const char *const  log_level_names[] = { "error", "warn", "notice", "info", "debug" };

/* Writers read elog_fd without a lock. Once a private descriptor has been
 * published it is never closed: a new file is dup3()'d over it (elog_install),
 * so a concurrent write lands in the old file or the new one, never in a
 * closed or reused descriptor. */
static atomic_int         elog_level = RP_LOG_NOTICE;
static atomic_int         elog_fd = STDERR_FILENO;
static pthread_mutex_t    elog_lock = PTHREAD_MUTEX_INITIALIZER;  /* init, reopen, close */
static char              *elog_path;                              /* owned; NULL: stderr */

int
rp_log_level_parse(const char *name, rp_log_level_e *level)
{
    size_t  i;

    for (i = 0; i < sizeof(log_level_names) / sizeof(log_level_names[0]); i++) {
        if (name != NULL && strcmp(name, log_level_names[i]) == 0) {
            *level = (rp_log_level_e) i;
            return RP_OK;
        }
    }
    return RP_ERROR;
}

/* Makes nfd (a fresh descriptor, now ours, or STDERR_FILENO) the error log.
 * Called with elog_lock held. */
static void
elog_install(int nfd)
{
    int  fd = atomic_load(&elog_fd);

    if (fd == STDERR_FILENO || fd == nfd) {
        atomic_store(&elog_fd, nfd);
        return;
    }
    /* fd stays the published number; if nfd is stderr, fd becomes its alias
     * and the file it held is closed */
    if (dup3(nfd, fd, O_CLOEXEC) == -1) {
        rp_log_error("dup3() of the error log failed: %s", strerror(errno));
    }
    if (nfd != STDERR_FILENO) {
        close(nfd);
    }
}

int
rp_log_init(const char *error_log, rp_log_level_e level)
{
    int  nfd = STDERR_FILENO, e;

    pthread_mutex_lock(&elog_lock);
    if (error_log != NULL && strcmp(error_log, "stderr") != 0) {
        if ((nfd = open(error_log, LOG_FILE_FLAGS, LOG_FILE_MODE)) == -1) {
            e = errno;
            pthread_mutex_unlock(&elog_lock);
            rp_log_error("could not open error log \"%s\": %s", error_log, strerror(e));
            return RP_ERROR;
        }
    }
    elog_install(nfd);
    free(elog_path);
    elog_path = (nfd == STDERR_FILENO) ? NULL : rp_xstrdup(error_log);
    atomic_store(&elog_level, (int) level);
    pthread_mutex_unlock(&elog_lock);
    return RP_OK;
}

/* On SIGUSR1 (from the writer thread, or the main thread when there is none):
 * logrotate has renamed the file, so open the path afresh. On failure the old
 * file stays, and the failure is written there. */
static void
elog_reopen(void)
{
    int  nfd;

    pthread_mutex_lock(&elog_lock);
    if (elog_path != NULL) {
        if ((nfd = open(elog_path, LOG_FILE_FLAGS, LOG_FILE_MODE)) == -1) {
            rp_log_error("could not reopen error log \"%s\": %s", elog_path, strerror(errno));
        } else {
            elog_install(nfd);
        }
    }
    pthread_mutex_unlock(&elog_lock);
}

/* At shutdown: closes the error log file; later lines go to stderr. */
static void
elog_close(void)
{
    pthread_mutex_lock(&elog_lock);
    if (elog_path != NULL) {
        elog_install(STDERR_FILENO);
        free(elog_path);
        elog_path = NULL;
    }
    pthread_mutex_unlock(&elog_lock);
}

/* One line, one write(2): O_APPEND (or a pipe, for lines under PIPE_BUF) keeps
 * lines from different threads whole. errno is preserved for the caller. */
void
rp_log(rp_log_level_e level, const char *fmt, ...)
{
    char       line[LOG_LINE_MAX];
    size_t     n, head, room;
    int        r, saved = errno;
    time_t     now;
    struct tm  tm;
    va_list    ap;
    ssize_t    w;

    if ((int) level > atomic_load_explicit(&elog_level, memory_order_relaxed)) {
        return;
    }
    if ((unsigned) level > RP_LOG_DEBUG) {
        level = RP_LOG_DEBUG;
    }
    now = time(NULL);
    localtime_r(&now, &tm);
    n = strftime(line, sizeof(line), "%Y/%m/%d %H:%M:%S ", &tm);
    n += (size_t) snprintf(line + n, sizeof(line) - n, "[%s] ", log_level_names[level]);
    head = n;

    room = sizeof(line) - n - 1;            /* one byte kept for the '\n' */
    va_start(ap, fmt);
    r = vsnprintf(line + n, room + 1, fmt, ap);
    va_end(ap);
    if (r < 0) {
        r = 0;
    }
    if ((size_t) r > room) {
        n += room;
        memcpy(line + n - 3, "...", 3);
    } else {
        n += (size_t) r;
    }
    while (n > head && line[n - 1] == '\n') {
        n--;                                /* callers' own '\n' would make a blank line */
    }
    line[n++] = '\n';

    w = write(atomic_load_explicit(&elog_fd, memory_order_relaxed), line, n);
    (void) w;                               /* nowhere left to report a failure */
    errno = saved;
}

/* ------------------------------------------------------------------------ */
/* Access log formats: compiled into ops                                     */

typedef enum {
    OP_LITERAL = 0,     /* s/len: text copied as is (trusted configuration) */
    OP_SRC,
    OP_PROXY,
    OP_TS,
    OP_UA,
    OP_METH,
    OP_URI,
    OP_PROTO,
    OP_STATUS,
    OP_REF,
    OP_HOST,
    OP_DS_SPORT,
    OP_US_SPORT,
    OP_US_HDR,          /* s/len: the request header's name  */
    OP_DS_HDR,          /* s/len: the response header's name */
    OP_REQ_TIME,
    OP_UP_TIME,
    OP_BYTES_IN,
    OP_BYTES_OUT,
    OP_GEN,
} log_op_e;

typedef struct {
    log_op_e     type;
    const char  *s;         /* borrowed: into the log's format or a static string */
    size_t       len;
} log_op_t;

static const struct {
    const char  *name;
    log_op_e     type;
} log_tokens[] = {
    { "SRC", OP_SRC },           { "PROXY", OP_PROXY },         { "TS", OP_TS },
    { "UA", OP_UA },             { "METH", OP_METH },           { "URI", OP_URI },
    { "PROTO", OP_PROTO },       { "STATUS", OP_STATUS },       { "REF", OP_REF },
    { "HOST", OP_HOST },         { "DS_SPORT", OP_DS_SPORT },   { "US_SPORT", OP_US_SPORT },
    { "US_HDR", OP_US_HDR },     { "DS_HDR", OP_DS_HDR },       { "REQ_TIME", OP_REQ_TIME },
    { "UP_TIME", OP_UP_TIME },   { "BYTES_IN", OP_BYTES_IN },   { "BYTES_OUT", OP_BYTES_OUT },
    { "GEN", OP_GEN },
};

/* nginx's "combined", written with our tokens. */
#define LOG_FMT_COMBINED \
    "{SRC} - - [{TS}] \"{METH} {URI} {PROTO}\" {STATUS} {BYTES_OUT} \"{REF}\" \"{UA}\""

/* "json": each key's literal prefix, then its value. */
static const struct {
    const char  *lit;
    log_op_e     type;
} log_json_fields[] = {
    { "{\"ts\":", OP_TS },                  { ",\"client\":", OP_SRC },
    { ",\"client_port\":", OP_US_SPORT },   { ",\"method\":", OP_METH },
    { ",\"uri\":", OP_URI },                { ",\"proto\":", OP_PROTO },
    { ",\"status\":", OP_STATUS },          { ",\"host\":", OP_HOST },
    { ",\"referer\":", OP_REF },            { ",\"user_agent\":", OP_UA },
    { ",\"backend\":", OP_PROXY },          { ",\"backend_port\":", OP_DS_SPORT },
    { ",\"request_time\":", OP_REQ_TIME },  { ",\"upstream_time\":", OP_UP_TIME },
    { ",\"bytes_in\":", OP_BYTES_IN },      { ",\"bytes_out\":", OP_BYTES_OUT },
    { ",\"gen\":", OP_GEN },
};

typedef struct log_sink_s log_sink_t;

struct rp_access_log_s {
    rp_access_log_t  *next;       /* in log_list                                  */
    log_sink_t       *sink;       /* borrowed: owned by log_sinks                 */
    char             *output;     /* owned: with format, the key of this log      */
    char             *format;     /* owned: ops point into it                     */
    bool              json;       /* values render as JSON (null, quoted strings) */
    log_op_t         *ops;        /* owned; immutable once open returns           */
    size_t            nops;
    size_t            cap;        /* of ops, while compiling                      */
};

static void
fmt_push(rp_access_log_t *log, log_op_e type, const char *s, size_t len)
{
    if (log->nops == log->cap) {
        log->cap = log->cap ? log->cap * 2 : 16;
        log->ops = rp_xrealloc(log->ops, log->cap * sizeof(log_op_t));
    }
    log->ops[log->nops++] = (log_op_t) { .type = type, .s = s, .len = len };
}

/* Length of "{NAME}" at p (NAME in [A-Z_]+), or 0: any other '{' is literal
 * text, so a template may hold braces of its own ({"a":"{SRC}"}). */
static size_t
fmt_token_len(const char *p)
{
    size_t  n = 1;

    if (p[0] != '{') {
        return 0;
    }
    while ((p[n] >= 'A' && p[n] <= 'Z') || p[n] == '_') {
        n++;
    }
    return (n > 1 && p[n] == '}') ? n + 1 : 0;
}

/* Returns the op for a token's name, or OP_LITERAL when there is none. */
static log_op_e
fmt_token_type(const char *name, size_t len)
{
    size_t  i;

    for (i = 0; i < sizeof(log_tokens) / sizeof(log_tokens[0]); i++) {
        if (strlen(log_tokens[i].name) == len && memcmp(log_tokens[i].name, name, len) == 0) {
            return log_tokens[i].type;
        }
    }
    return OP_LITERAL;
}

/* Compiles a {TOKEN} template (fmt is borrowed by the ops: log->format or a
 * static string). Returns RP_OK, or RP_ERROR with err filled. */
static int
fmt_compile_template(rp_access_log_t *log, const char *fmt, char *err, size_t errlen)
{
    const char  *p = fmt, *lit, *q;
    size_t       tl = 0, tokens = 0;
    log_op_e     type;

    while (*p != '\0') {
        for (lit = p; *p != '\0' && (tl = fmt_token_len(p)) == 0; p++) {
            /* literal text */
        }
        if (p > lit) {
            fmt_push(log, OP_LITERAL, lit, (size_t) (p - lit));
        }
        if (*p == '\0') {
            break;
        }
        if ((type = fmt_token_type(p + 1, tl - 2)) == OP_LITERAL) {
            snprintf(err, errlen, "unknown access log token %.*s", (int) tl, p);
            return RP_ERROR;
        }
        tokens++;
        p += tl;
        if (type != OP_US_HDR && type != OP_DS_HDR) {
            fmt_push(log, type, NULL, 0);
            continue;
        }
        /* {US_HDR}:'Name' */
        if (p[0] != ':' || p[1] != '\'' || (q = strchr(p + 2, '\'')) == NULL || q == p + 2) {
            snprintf(err, errlen, "access log token %.*s needs a header name: %.*s:'Name'",
                     (int) tl, p - tl, (int) tl, p - tl);
            return RP_ERROR;
        }
        fmt_push(log, type, p + 2, (size_t) (q - (p + 2)));
        p = q + 1;
    }
    if (tokens == 0) {
        /* most likely a misspelt format name, which would log a constant line */
        snprintf(err, errlen,
                 "unknown access log format \"%s\" (\"combined\", \"json\" or a {TOKEN} template)",
                 fmt);
        return RP_ERROR;
    }
    return RP_OK;
}

static void
fmt_compile_json(rp_access_log_t *log)
{
    size_t  i;

    log->json = true;
    for (i = 0; i < sizeof(log_json_fields) / sizeof(log_json_fields[0]); i++) {
        fmt_push(log, OP_LITERAL, log_json_fields[i].lit, strlen(log_json_fields[i].lit));
        fmt_push(log, log_json_fields[i].type, NULL, 0);
    }
    fmt_push(log, OP_LITERAL, "}", 1);
}

static void
log_free(rp_access_log_t *log)
{
    free(log->ops);
    free(log->output);
    free(log->format);
    free(log);
}

/* Returns a compiled log for (output, format), not yet attached to a sink,
 * or NULL with err filled. */
static rp_access_log_t *
log_new(const char *output, const char *format, char *err, size_t errlen)
{
    rp_access_log_t  *log;
    int               rc = RP_OK;

    log = rp_xalloc(sizeof(rp_access_log_t));
    log->output = rp_xstrdup(output);
    log->format = rp_xstrdup(format);
    if (strcmp(format, "combined") == 0) {
        rc = fmt_compile_template(log, LOG_FMT_COMBINED, err, errlen);
    } else if (strcmp(format, "json") == 0) {
        fmt_compile_json(log);
    } else {
        rc = fmt_compile_template(log, log->format, err, errlen);
    }
    if (rc != RP_OK) {
        log_free(log);
        return NULL;
    }
    return log;
}

/* A log file the start will open: opened (and created) once now, so that
 * the configuration check refuses what the start would. */
static int
log_file_opens(const char *path, const char *what, char *err, size_t errlen)
{
    int  fd;

    if (strcmp(path, "stdout") == 0 || strcmp(path, "stderr") == 0) {
        return RP_OK;
    }
    if ((fd = open(path, LOG_FILE_FLAGS, LOG_FILE_MODE)) == -1) {
        snprintf(err, errlen, "could not open %s \"%s\": %s", what, path, strerror(errno));
        return RP_ERROR;
    }
    close(fd);
    return RP_OK;
}

int
rp_access_log_check(const char *output, const char *format, char *err, size_t errlen)
{
    rp_access_log_t  *log;

    if (strcmp(output, "off") == 0) {
        return RP_OK;
    }
    if ((log = log_new(output, format, err, errlen)) == NULL) {
        return RP_ERROR;
    }
    log_free(log);
    return log_file_opens(output, "access log", err, errlen);
}

int
rp_error_log_check(const char *path, char *err, size_t errlen)
{
    return path == NULL ? RP_OK : log_file_opens(path, "error log", err, errlen);
}

/* ------------------------------------------------------------------------ */
/* Access log lines: rendering                                               */

/* A line being built: on the caller's stack, moved to the heap only if it
 * outgrows it (fields are capped, and the template is trusted, so it is bounded). */
typedef struct {
    char    *p;         /* the stack buffer, or heap */
    size_t   len;
    size_t   cap;
    char    *heap;      /* owned; NULL while on the stack */
} lbuf_t;

static void
lbuf_reserve(lbuf_t *b, size_t n)
{
    size_t  cap;

    if (b->cap - b->len >= n) {
        return;
    }
    cap = b->cap * 2 > b->len + n ? b->cap * 2 : b->len + n;
    if (b->heap == NULL) {
        b->heap = rp_xalloc(cap);
        memcpy(b->heap, b->p, b->len);
    } else {
        b->heap = rp_xrealloc(b->heap, cap);
    }
    b->p = b->heap;
    b->cap = cap;
}

static void
lbuf_add(lbuf_t *b, const char *s, size_t n)
{
    lbuf_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* Numbers without printf: vsnprintf was half of an access log line's cost
 * (three calls a combined line, about 700 instructions each). */
static void
lbuf_add_uint(lbuf_t *b, uint64_t v)
{
    lbuf_reserve(b, 21);
    b->len += rp_fmt_uint(b->p + b->len, v);
}

/* v in 0..999 as three digits ("%03u"); ms and statuses. */
static void
lbuf_add_3digits(lbuf_t *b, unsigned v)
{
    char  d[3];

    d[0] = (char) ('0' + v / 100 % 10);
    d[1] = (char) ('0' + v / 10 % 10);
    d[2] = (char) ('0' + v % 10);
    lbuf_add(b, d, 3);
}

static const char  log_hex[] = "0123456789ABCDEF";

/* Text formats: '"', '\\', control bytes, DEL and bytes >= 0x80 become \xHH
 * (as nginx does), so a client can forge neither a field nor a line. */
static void
lbuf_add_text(lbuf_t *b, const char *s, size_t n)
{
    bool    cut = n > ACCESS_FIELD_MAX;
    char   *d;
    size_t  i;

    if (cut) {
        n = ACCESS_FIELD_MAX;
    }
    lbuf_reserve(b, n * 4 + 3);
    d = b->p + b->len;
    for (i = 0; i < n; i++) {
        unsigned char  c = (unsigned char) s[i];

        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
            *d++ = '\\';
            *d++ = 'x';
            *d++ = log_hex[c >> 4];
            *d++ = log_hex[c & 0xf];
        } else {
            *d++ = (char) c;
        }
    }
    if (cut) {
        memcpy(d, "...", 3);
        d += 3;
    }
    b->len = (size_t) (d - b->p);
}

/* JSON strings (RFC 8259 section 7): bytes >= 0x80 are escaped one by one as
 * \u00XX rather than passed through, so the line stays valid JSON even when a
 * client sends bytes that are not UTF-8. */
static void
lbuf_add_json(lbuf_t *b, const char *s, size_t n)
{
    bool    cut = n > ACCESS_FIELD_MAX;
    char   *d;
    size_t  i;

    if (cut) {
        n = ACCESS_FIELD_MAX;
    }
    lbuf_reserve(b, n * 6 + 5);
    d = b->p + b->len;
    *d++ = '"';
    for (i = 0; i < n; i++) {
        unsigned char  c = (unsigned char) s[i];

        if (c == '"' || c == '\\') {
            *d++ = '\\';
            *d++ = (char) c;
        } else if (c < 0x20 || c >= 0x7f) {
            memcpy(d, "\\u00", 4);
            d += 4;
            *d++ = log_hex[c >> 4];
            *d++ = log_hex[c & 0xf];
        } else {
            *d++ = (char) c;
        }
    }
    if (cut) {
        memcpy(d, "...", 3);
        d += 3;
    }
    *d++ = '"';
    b->len = (size_t) (d - b->p);
}

/* An absent value: "-" in text, null in JSON. */
static void
lbuf_add_none(lbuf_t *b, bool json)
{
    if (json) {
        lbuf_add(b, "null", 4);
    } else {
        lbuf_add(b, "-", 1);
    }
}

/* A thread's last formatted second: localtime_r() takes a process-wide lock
 * in glibc, and a busy worker logs many lines each second. */
typedef struct {
    time_t  sec;
    bool    valid;
    char    clf[64];        /* 28/Nov/2026:17:15:48 +0000 */
    char    iso[64];        /* 2026-11-28T17:15:48        */
    char    off[16];        /* +00:00                     */
} log_time_t;

static __thread log_time_t  log_time_cache;

static const char *const  log_months[] = {
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};

static const log_time_t *
log_time(time_t sec)
{
    log_time_t  *t = &log_time_cache;
    struct tm    tm;
    long         off;
    int          oh, om;
    char         sign = '+';

    if (t->valid && t->sec == sec) {
        return t;
    }
    localtime_r(&sec, &tm);
    off = tm.tm_gmtoff;
    if (off < 0) {
        sign = '-';
        off = -off;
    }
    oh = (int) (off / 3600 % 100);      /* real offsets are within +-14 h */
    om = (int) (off % 3600 / 60);
    snprintf(t->clf, sizeof(t->clf), "%02d/%s/%04d:%02d:%02d:%02d %c%02d%02d", tm.tm_mday,
             log_months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
             sign, oh, om);
    snprintf(t->iso, sizeof(t->iso), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    snprintf(t->off, sizeof(t->off), "%c%02d:%02d", sign, oh, om);
    t->sec = sec;
    t->valid = true;
    return t;
}

/* {TS}: the CLF time, or in JSON an ISO 8601 string with milliseconds. A
 * wall_time that was never set (<= 0, NaN) means now. */
static void
render_time(lbuf_t *b, bool json, double wall)
{
    const log_time_t  *t;
    struct timespec    now;
    time_t             sec;
    long long          msecs;
    int                ms;

    if (!(wall > 0 && wall < 1e12)) {
        clock_gettime(CLOCK_REALTIME, &now);
        wall = (double) now.tv_sec + (double) now.tv_nsec / 1e9;
    }
    /* rounded to the nearest ms: truncating 1795886148.123 would show .122 */
    msecs = (long long) (wall * 1000.0 + 0.5);
    sec = (time_t) (msecs / 1000);
    ms = (int) (msecs % 1000);
    t = log_time(sec);
    if (json) {
        lbuf_add(b, "\"", 1);
        lbuf_add(b, t->iso, strlen(t->iso));
        lbuf_add(b, ".", 1);
        lbuf_add_3digits(b, (unsigned) ms);
        lbuf_add(b, t->off, strlen(t->off));
        lbuf_add(b, "\"", 1);
    } else {
        lbuf_add(b, t->clf, strlen(t->clf));
    }
}

/* Seconds with 3 decimals (rounded to the nearest ms); negative (or NaN, or
 * absurd) means "none". */
static void
render_secs(lbuf_t *b, bool json, double v)
{
    uint64_t  ms;

    if (v >= 0 && v < 1e9) {
        ms = (uint64_t) (v * 1000.0 + 0.5);
        lbuf_add_uint(b, ms / 1000);
        lbuf_add(b, ".", 1);
        lbuf_add_3digits(b, (unsigned) (ms % 1000));
    } else {
        lbuf_add_none(b, json);
    }
}

/* The string an op shows, or NULL; *n is its length. */
static const char *
entry_str(const rp_access_entry_t *e, const log_op_t *op, size_t *n)
{
    switch (op->type) {
    case OP_SRC:   *n = e->client_addr_len;  return e->client_addr;
    case OP_PROXY: *n = e->backend_addr_len; return e->backend_addr;
    case OP_UA:    *n = e->user_agent_len;   return e->user_agent;
    case OP_METH:  *n = e->method_len;       return e->method;
    case OP_URI:   *n = e->uri_len;          return e->uri;
    case OP_REF:   *n = e->referer_len;      return e->referer;
    case OP_HOST:  *n = e->host_len;         return e->host;
    case OP_US_HDR:
        *n = 0;
        return e->req_header ? e->req_header(e->req_ctx, op->s, op->len, n) : NULL;
    case OP_DS_HDR:
        *n = 0;
        return e->resp_header ? e->resp_header(e->resp_ctx, op->s, op->len, n) : NULL;
    default:
        *n = 0;
        return NULL;
    }
}

static void
render_op(lbuf_t *b, bool json, const log_op_t *op, const rp_access_entry_t *e)
{
    const char  *s;
    size_t       n;

    switch (op->type) {
    case OP_LITERAL:
        lbuf_add(b, op->s, op->len);
        return;
    case OP_TS:
        render_time(b, json, e->wall_time);
        return;
    case OP_PROTO:
        if (e->http_major == 0 && e->http_minor == 0) {
            lbuf_add_none(b, json);
        } else {
            if (json) {
                lbuf_add(b, "\"HTTP/", 6);
            } else {
                lbuf_add(b, "HTTP/", 5);
            }
            lbuf_add_uint(b, (uint64_t) e->http_major);
            lbuf_add(b, ".", 1);
            lbuf_add_uint(b, (uint64_t) e->http_minor);
            if (json) {
                lbuf_add(b, "\"", 1);
            }
        }
        return;
    case OP_STATUS:
        /* nginx shows "000" when no response was sent */
        if (e->status >= 0 && e->status < 1000 && !json) {
            lbuf_add_3digits(b, (unsigned) e->status);
        } else if (e->status >= 0) {
            lbuf_add_uint(b, (uint64_t) e->status);
        } else {
            lbuf_add(b, "-", 1);
            lbuf_add_uint(b, (uint64_t) -(int64_t) e->status);
        }
        return;
    case OP_US_SPORT:
    case OP_DS_SPORT:
        n = op->type == OP_US_SPORT ? e->client_port : e->backend_sport;
        if (n == 0) {
            lbuf_add_none(b, json);   /* no backend connection, or not a TCP client */
        } else {
            lbuf_add_uint(b, n);
        }
        return;
    case OP_REQ_TIME:
        render_secs(b, json, e->request_time);
        return;
    case OP_UP_TIME:
        render_secs(b, json, e->upstream_time);
        return;
    case OP_BYTES_IN:
        lbuf_add_uint(b, e->bytes_in);
        return;
    case OP_BYTES_OUT:
        lbuf_add_uint(b, e->bytes_out);
        return;
    case OP_GEN:
        lbuf_add_uint(b, e->gen);
        return;
    default:
        break;
    }
    s = entry_str(e, op, &n);
    if (s == NULL || n == 0) {
        lbuf_add_none(b, json);
    } else if (json) {
        lbuf_add_json(b, s, n);
    } else {
        lbuf_add_text(b, s, n);
    }
}

/* ------------------------------------------------------------------------ */
/* Sinks and the writer thread                                               */

typedef struct {
    char    *p;         /* owned */
    size_t   len;
    size_t   cap;
} log_queue_t;

struct log_sink_s {
    log_sink_t   *next;       /* in log_sinks; only ever prepended, so a walk from a
                                 head read under q_lock stays valid without it      */
    char         *path;       /* owned: "stdout", "stderr" or a file path           */
    int           fd;         /* the writer's alone once published                  */
    bool          is_file;    /* reopened by rp_log_reopen()                        */
    bool          failing;    /* writer: the last write failed (logged once)        */
    log_queue_t   q;          /* under q_lock: lines waiting                        */
    uint64_t      dropped;    /* under q_lock: lines lost to a full q, unreported   */
    log_queue_t   w;          /* writer: lines being written, swapped with q        */
    uint64_t      w_dropped;  /* writer: drops taken with w, to report              */
};

/* open_lock serialises rp_access_log_open() and rp_log_shutdown(): it guards
 * log_list, sink creation and the writer's start. q_lock is held for a memcpy
 * at most: it guards the queues, the flags and the log_sinks head. */
static pthread_mutex_t   open_lock = PTHREAD_MUTEX_INITIALIZER;
static rp_access_log_t  *log_list;             /* under open_lock */
static pthread_mutex_t   q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t    q_cond = PTHREAD_COND_INITIALIZER;  /* the writer sleeps on it */
static log_sink_t       *log_sinks;            /* under q_lock (and open_lock to change) */
static bool              w_running;            /* under q_lock (and open_lock to change) */
static bool              w_pending;            /* under q_lock: some q is not empty     */
static bool              w_reopen;             /* under q_lock: reopen before writing   */
static bool              w_stopping;           /* under q_lock: flush, then exit        */
static pthread_t         w_thread;

/* Returns the sink of an output, or NULL. Called with open_lock held. */
static log_sink_t *
sink_find(const char *path)
{
    log_sink_t  *s;

    for (s = log_sinks; s != NULL; s = s->next) {
        if (strcmp(s->path, path) == 0) {
            return s;
        }
    }
    return NULL;
}

static int
sink_open_file(const char *path)
{
    return open(path, LOG_FILE_FLAGS, LOG_FILE_MODE);
}

/* Returns a new, unpublished sink with its file open, or NULL with err filled. */
static log_sink_t *
sink_new(const char *path, char *err, size_t errlen)
{
    log_sink_t  *s;
    int          fd;
    bool         is_file = false;

    if (strcmp(path, "stdout") == 0) {
        fd = STDOUT_FILENO;
    } else if (strcmp(path, "stderr") == 0) {
        fd = STDERR_FILENO;
    } else if ((fd = sink_open_file(path)) == -1) {
        snprintf(err, errlen, "could not open access log \"%s\": %s", path, strerror(errno));
        return NULL;
    } else {
        is_file = true;
    }
    s = rp_xalloc(sizeof(log_sink_t));
    s->path = rp_xstrdup(path);
    s->fd = fd;
    s->is_file = is_file;
    return s;
}

static void
sink_free(log_sink_t *s)
{
    if (s->is_file) {
        close(s->fd);
    }
    free(s->q.p);
    free(s->w.p);
    free(s->path);
    free(s);
}

/* Appends one line to s's queue, or counts it dropped when the queue is full:
 * a slow disk costs lines, never a worker's time. */
static void
sink_push(log_sink_t *s, const char *line, size_t n)
{
    size_t  cap;

    pthread_mutex_lock(&q_lock);
    if (s->q.len + n > SINK_QUEUE_MAX) {
        s->dropped++;
        pthread_mutex_unlock(&q_lock);
        return;
    }
    if (s->q.cap - s->q.len < n) {
        /* q and w swap, so both soon reach the working size and stop growing */
        cap = s->q.cap ? s->q.cap : SINK_QUEUE_INIT;
        while (cap < s->q.len + n) {
            cap *= 2;
        }
        s->q.cap = cap < SINK_QUEUE_MAX ? cap : SINK_QUEUE_MAX;
        s->q.p = rp_xrealloc(s->q.p, s->q.cap);
    }
    memcpy(s->q.p + s->q.len, line, n);
    s->q.len += n;
    if (!w_pending) {
        w_pending = true;
        pthread_cond_signal(&q_cond);
    }
    pthread_mutex_unlock(&q_lock);
}

/* Writer: after a rename by logrotate, opens the path afresh. */
static void
sink_reopen(log_sink_t *s)
{
    int  fd;

    if (!s->is_file) {
        return;
    }
    if ((fd = sink_open_file(s->path)) == -1) {
        rp_log_error("could not reopen access log \"%s\": %s; still writing to the old file",
                     s->path, strerror(errno));
        return;
    }
    close(s->fd);
    s->fd = fd;
}

/* Writer: writes s->w whole, and empties it. A failure loses the batch and
 * is logged once, until a write succeeds again. */
static void
sink_flush(log_sink_t *s)
{
    size_t   off = 0;
    ssize_t  n;

    while (off < s->w.len) {
        n = write(s->fd, s->w.p + off, s->w.len - off);
        if (n > 0) {
            off += (size_t) n;
            continue;
        }
        if (n == -1 && errno == EINTR) {
            continue;
        }
        if (!s->failing) {
            rp_log_error("access log \"%s\": write() failed: %s; lines are lost until it works",
                         s->path, n == 0 ? "wrote nothing" : strerror(errno));
            s->failing = true;
        }
        s->w.len = 0;
        return;
    }
    if (s->failing && off > 0) {
        rp_log_notice("access log \"%s\": writing again", s->path);
        s->failing = false;
    }
    s->w.len = 0;
}

/* The writer thread: swaps each sink's queue out under q_lock, then does all
 * I/O without it. On stop, it leaves only once every queue is empty. */
static void *
writer_main(void *arg)
{
    log_sink_t   *head, *s;
    log_queue_t   t;
    bool          reopen;

    pthread_mutex_lock(&q_lock);
    for ( ;; ) {
        while (!w_pending && !w_reopen && !w_stopping) {
            pthread_cond_wait(&q_cond, &q_lock);
        }
        if (!w_pending && !w_reopen) {
            break;                              /* stopping, and all written */
        }
        reopen = w_reopen;
        w_pending = w_reopen = false;
        head = log_sinks;
        for (s = head; s != NULL; s = s->next) {
            t = s->w;
            s->w = s->q;
            s->q = t;
            s->w_dropped = s->dropped;
            s->dropped = 0;
        }
        pthread_mutex_unlock(&q_lock);

        if (reopen) {
            elog_reopen();
            for (s = head; s != NULL; s = s->next) {
                sink_reopen(s);
            }
        }
        for (s = head; s != NULL; s = s->next) {
            sink_flush(s);
            if (s->w_dropped > 0) {
                rp_log_error("access log \"%s\": dropped %" PRIu64 " lines (queue full)",
                             s->path, s->w_dropped);
            }
        }
        pthread_mutex_lock(&q_lock);
    }
    pthread_mutex_unlock(&q_lock);
    return arg;
}

/* Starts the writer once. Called with open_lock held. It blocks every
 * signal, so that signals reach the main thread's libevent loop and a write
 * to a closed pipe returns EPIPE instead of raising SIGPIPE here. */
static int
writer_start(char *err, size_t errlen)
{
    sigset_t  all, old;
    int       rc;

    if (w_running) {
        return RP_OK;
    }
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&w_thread, NULL, writer_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "could not start the access log thread: %s", strerror(rc));
        return RP_ERROR;
    }
    pthread_mutex_lock(&q_lock);
    w_running = true;
    pthread_mutex_unlock(&q_lock);
    return RP_OK;
}

/* ------------------------------------------------------------------------ */
/* The access log API                                                        */

rp_access_log_t *
rp_access_log_open(const rp_access_log_conf_t *conf, char *err, size_t errlen)
{
    rp_access_log_t  *log;
    log_sink_t       *s;
    const char       *out, *fmt;
    bool              new_sink = false;

    if (errlen > 0) {
        err[0] = '\0';
    }
    out = conf != NULL ? conf->output : NULL;
    if (out == NULL || strcmp(out, "off") == 0) {
        return NULL;
    }
    fmt = (conf->format != NULL && conf->format[0] != '\0') ? conf->format : "combined";

    pthread_mutex_lock(&open_lock);
    for (log = log_list; log != NULL; log = log->next) {
        if (strcmp(log->output, out) == 0 && strcmp(log->format, fmt) == 0) {
            goto done;                          /* a reload, or a second listener */
        }
    }
    if ((log = log_new(out, fmt, err, errlen)) == NULL) {
        goto done;
    }
    if ((s = sink_find(out)) == NULL) {
        if ((s = sink_new(out, err, errlen)) == NULL) {
            goto fail_log;
        }
        new_sink = true;
    }
    if (writer_start(err, errlen) != RP_OK) {
        goto fail_sink;
    }
    log->sink = s;
    if (new_sink) {
        pthread_mutex_lock(&q_lock);
        s->next = log_sinks;
        log_sinks = s;
        pthread_mutex_unlock(&q_lock);
    }
    log->next = log_list;
    log_list = log;
done:
    pthread_mutex_unlock(&open_lock);
    return log;

fail_sink:
    if (new_sink) {
        sink_free(s);
    }
fail_log:
    log_free(log);
    pthread_mutex_unlock(&open_lock);
    return NULL;
}

void
rp_access_log_write(rp_access_log_t *log, const rp_access_entry_t *e)
{
    char    stack[ACCESS_STACK_BUF];
    lbuf_t  b = { .p = stack, .len = 0, .cap = sizeof(stack), .heap = NULL };
    size_t  i;

    if (log == NULL || e == NULL) {
        return;
    }
    for (i = 0; i < log->nops; i++) {
        render_op(&b, log->json, &log->ops[i], e);
    }
    lbuf_add(&b, "\n", 1);
    sink_push(log->sink, b.p, b.len);
    free(b.heap);
}

void
rp_log_reopen(void)
{
    bool  handed = false;

    pthread_mutex_lock(&q_lock);
    if (w_running && !w_stopping) {
        w_reopen = true;
        pthread_cond_signal(&q_cond);
        handed = true;
    }
    pthread_mutex_unlock(&q_lock);
    if (!handed) {
        elog_reopen();          /* no writer thread: the caller does the one open() */
    }
}

void
rp_log_shutdown(void)
{
    rp_access_log_t  *log;
    log_sink_t       *s, *sinks;
    bool              running;

    pthread_mutex_lock(&open_lock);
    pthread_mutex_lock(&q_lock);
    running = w_running;
    w_stopping = true;
    pthread_cond_signal(&q_cond);
    pthread_mutex_unlock(&q_lock);
    if (running) {
        pthread_join(w_thread, NULL);     /* it has written every queued line */
    }

    pthread_mutex_lock(&q_lock);
    sinks = log_sinks;
    log_sinks = NULL;
    w_running = w_stopping = w_pending = w_reopen = false;
    pthread_mutex_unlock(&q_lock);
    while ((s = sinks) != NULL) {
        sinks = s->next;
        sink_free(s);
    }
    while ((log = log_list) != NULL) {
        log_list = log->next;
        log_free(log);
    }
    pthread_mutex_unlock(&open_lock);
    elog_close();
}
