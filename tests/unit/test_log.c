/* test_log.c: the error log and the access logs: each format's exact line,
 * escaping of hostile bytes, header tokens, sinks shared per output, lines
 * from several threads arriving whole, drops when a queue is full, reopen. */
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

#define WALL_TIME 1795886148.123     /* 2026-11-28 17:15:48.123 UTC */

static char  tmpdir[] = "/tmp/rp_test_log.XXXXXX";

/* ---- helpers ---- */

static char *
tmp_path(const char *name)
{
    static __thread char  path[4][256];
    static __thread int   i;
    char                 *p = path[i++ % 4];

    snprintf(p, sizeof(path[0]), "%s/%s", tmpdir, name);
    return p;
}

/* The whole file, NUL-terminated (caller frees), or NULL if it is missing. */
static char *
slurp(const char *path)
{
    FILE    *f = fopen(path, "rb");
    char    *buf = NULL;
    size_t   n = 0, cap = 0, r;

    if (f == NULL) {
        return NULL;
    }
    do {
        if (cap - n < 65536) {
            cap = cap ? cap * 2 : 65536;
            buf = realloc(buf, cap + 1);
            assert_non_null(buf);
        }
        r = fread(buf + n, 1, cap - n, f);
        n += r;
    } while (r > 0);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static size_t
count_lines(const char *s)
{
    size_t  n = 0;

    for (; *s; s++) {
        n += *s == '\n';
    }
    return n;
}

static int
count_fds(void)
{
    DIR            *d = opendir("/proc/self/fd");
    struct dirent  *de;
    int             n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        n += de->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

/* Waits (up to 5 s) until path contains needle: the writer is asynchronous. */
static void
wait_for(const char *path, const char *needle)
{
    char  *s;
    int    i;

    for (i = 0; i < 500; i++) {
        s = slurp(path);
        if (s != NULL && strstr(s, needle) != NULL) {
            free(s);
            return;
        }
        free(s);
        usleep(10000);
    }
    fail_msg("\"%s\" never appeared in %s", needle, path);
}

#define S(e, field, str) ((e)->field = (str), (e)->field##_len = strlen(str))

static void
entry_fill(rp_access_entry_t *e)
{
    memset(e, 0, sizeof(*e));
    S(e, client_addr, "192.0.2.7");
    e->client_port = 51234;
    S(e, backend_addr, "10.0.0.2:8080");
    e->backend_sport = 40001;
    e->wall_time = WALL_TIME;
    S(e, method, "GET");
    S(e, uri, "/a/b?x=1");
    e->http_major = 1;
    e->http_minor = 1;
    e->status = 200;
    S(e, host, "example.com");
    S(e, user_agent, "curl/7.88.1");
    S(e, referer, "https://ref.example/");
    e->request_time = 0.0125;
    e->upstream_time = 0.01;
    e->bytes_in = 87;
    e->bytes_out = 1234;
}

/* Opens (output = a fresh file, format), writes e, shuts the logs down and
 * returns what was written (caller frees). */
static char *
render(const char *format, const rp_access_entry_t *e)
{
    static int             n;
    char                   name[32], err[256];
    rp_access_log_conf_t   conf;
    rp_access_log_t       *log;

    snprintf(name, sizeof(name), "render-%d.log", n++);
    conf.output = tmp_path(name);
    conf.format = (char *) format;
    log = rp_access_log_open(&conf, err, sizeof(err));
    if (log == NULL) {
        fail_msg("open: %s", err);
    }
    rp_access_log_write(log, e);
    rp_log_shutdown();
    return slurp(conf.output);
}

static void
assert_renders(const char *format, const rp_access_entry_t *e, const char *expect)
{
    char  *got = render(format, e);

    assert_non_null(got);
    assert_string_equal(got, expect);
    free(got);
}

/* ---- header callbacks: ctx is a NULL-terminated name, value, ... array ---- */

static const char *
hdr_lookup(void *ctx, const char *name, size_t nlen, size_t *vlen)
{
    const char  **h;

    for (h = ctx; h[0] != NULL; h += 2) {
        if (strlen(h[0]) == nlen && strncasecmp(h[0], name, nlen) == 0) {
            *vlen = strlen(h[1]);
            return h[1];
        }
    }
    return NULL;
}

/* ---- tests ---- */

static void
test_error_log(void **state)
{
    char            *path = tmp_path("error.log"), *s, *line[3], big[8000];
    rp_log_level_e   level;
    int              y, mo, d, h, mi, sec, n = 0;

    assert_int_equal(rp_log_init(path, RP_LOG_WARN), RP_OK);
    rp_log_info("filtered %d", 1);
    rp_log_warn("kept %s", "warn");
    errno = EBADF;
    rp_log_error("kept error\n");               /* a trailing newline is not doubled */
    assert_int_equal(errno, EBADF);              /* rp_log keeps errno for the caller */
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    rp_log_error("%s", big);                     /* truncated, still one line */
    rp_log_shutdown();
    rp_log_debug("after shutdown: to stderr, filtered");

    s = slurp(path);
    assert_non_null(s);
    assert_int_equal(count_lines(s), 3);
    assert_null(strstr(s, "filtered"));
    line[0] = strtok(s, "\n");
    line[1] = strtok(NULL, "\n");
    line[2] = strtok(NULL, "\n");
    assert_int_equal(sscanf(line[0], "%4d/%2d/%2d %2d:%2d:%2d %n", &y, &mo, &d, &h, &mi, &sec,
                            &n), 6);
    assert_int_equal(n, 20);                     /* "2026/11/28 17:15:48 " */
    assert_string_equal(line[0] + 20, "[warn] kept warn");
    assert_string_equal(line[1] + 20, "[error] kept error");
    assert_int_equal(strlen(line[2]), 4095);     /* LOG_LINE_MAX, with its '\n' */
    assert_memory_equal(line[2] + 20, "[error] xxx", 11);
    assert_string_equal(line[2] + 4092, "...");
    free(s);

    assert_int_equal(rp_log_level_parse("debug", &level), RP_OK);
    assert_int_equal(level, RP_LOG_DEBUG);
    assert_int_equal(rp_log_level_parse("error", &level), RP_OK);
    assert_int_equal(level, RP_LOG_ERR);
    assert_int_equal(rp_log_level_parse("verbose", &level), RP_ERROR);
    assert_int_equal(rp_log_init("/nonexistent/dir/error.log", RP_LOG_NOTICE), RP_ERROR);
}

static void
test_combined(void **state)
{
    rp_access_entry_t  e;

    entry_fill(&e);
    assert_renders("combined", &e,
                   "192.0.2.7 - - [28/Nov/2026:17:15:48 +0000] \"GET /a/b?x=1 HTTP/1.1\" 200 1234 "
                   "\"https://ref.example/\" \"curl/7.88.1\"\n");
    /* an empty format means combined */
    assert_renders("", &e,
                   "192.0.2.7 - - [28/Nov/2026:17:15:48 +0000] \"GET /a/b?x=1 HTTP/1.1\" 200 1234 "
                   "\"https://ref.example/\" \"curl/7.88.1\"\n");
}

static void
test_json(void **state)
{
    rp_access_entry_t  e;

    entry_fill(&e);
    assert_renders("json", &e,
                   "{\"ts\":\"2026-11-28T17:15:48.123+00:00\",\"client\":\"192.0.2.7\","
                   "\"client_port\":51234,\"method\":\"GET\",\"uri\":\"/a/b?x=1\","
                   "\"proto\":\"HTTP/1.1\",\"status\":200,\"host\":\"example.com\","
                   "\"referer\":\"https://ref.example/\",\"user_agent\":\"curl/7.88.1\","
                   "\"backend\":\"10.0.0.2:8080\",\"backend_port\":40001,"
                   "\"request_time\":0.013,\"upstream_time\":0.010,"
                   "\"bytes_in\":87,\"bytes_out\":1234,\"gen\":0}\n");
}

static void
test_template(void **state)
{
    rp_access_entry_t  e;

    entry_fill(&e);
    assert_renders("{SRC}:{US_SPORT} {PROXY} sport={DS_SPORT} [{TS}] {METH} {URI} {PROTO} "
                   "{STATUS} host={HOST} ref={REF} ua={UA} rt={REQ_TIME} ut={UP_TIME} "
                   "in={BYTES_IN} out={BYTES_OUT} {\"literal\"} {lower} {",
                   &e,
                   "192.0.2.7:51234 10.0.0.2:8080 sport=40001 [28/Nov/2026:17:15:48 +0000] GET "
                   "/a/b?x=1 HTTP/1.1 200 host=example.com ref=https://ref.example/ "
                   "ua=curl/7.88.1 rt=0.013 ut=0.010 in=87 out=1234 {\"literal\"} {lower} {\n");
}

/* An entry with nothing set: "-" (text) or null (JSON) wherever a value is missing. */
static void
test_absent_values(void **state)
{
    rp_access_entry_t  e;
    char              *s;

    memset(&e, 0, sizeof(e));
    e.wall_time = WALL_TIME;
    e.upstream_time = -1;
    e.request_time = -1;
    S(&e, user_agent, "");                       /* empty prints "-" too */
    assert_renders("combined", &e,
                   "- - - [28/Nov/2026:17:15:48 +0000] \"- - -\" 000 0 \"-\" \"-\"\n");
    assert_renders("{PROXY} {DS_SPORT} {US_SPORT} {HOST} {REQ_TIME} {UP_TIME} "
                   "{US_HDR}:'X-A' {DS_HDR}:'X-B'",
                   &e, "- - - - - - - -\n");
    assert_renders("json", &e,
                   "{\"ts\":\"2026-11-28T17:15:48.123+00:00\",\"client\":null,"
                   "\"client_port\":null,\"method\":null,\"uri\":null,\"proto\":null,"
                   "\"status\":0,\"host\":null,\"referer\":null,\"user_agent\":null,"
                   "\"backend\":null,\"backend_port\":null,\"request_time\":null,"
                   "\"upstream_time\":null,\"bytes_in\":0,\"bytes_out\":0,\"gen\":0}\n");

    /* wall_time unset: now, still a well-formed line */
    e.wall_time = 0;
    s = render("[{TS}]", &e);
    assert_non_null(s);
    assert_int_equal(strlen(s), strlen("[28/Nov/2026:17:15:48 +0000]\n"));
    free(s);
}

static void
test_escaping(void **state)
{
    rp_access_entry_t  e;

    entry_fill(&e);
    S(&e, uri, "/x\" 200 1 \"-\" \"evil\"\n1.2.3.4 - - \\\xff\x7f\t");
    S(&e, user_agent, "ua\r\n\"\\");
    S(&e, referer, "\xc3\xa9t\xc3\xa9");         /* UTF-8 "été": escaped byte by byte */
    assert_renders("combined", &e,
                   "192.0.2.7 - - [28/Nov/2026:17:15:48 +0000] \"GET "
                   "/x\\x22 200 1 \\x22-\\x22 \\x22evil\\x22\\x0A1.2.3.4 - - \\x5C\\xFF\\x7F\\x09 "
                   "HTTP/1.1\" 200 1234 \"\\xC3\\xA9t\\xC3\\xA9\" \"ua\\x0D\\x0A\\x22\\x5C\"\n");
    assert_renders("{URI}|{UA}", &e,
                   "/x\\x22 200 1 \\x22-\\x22 \\x22evil\\x22\\x0A1.2.3.4 - - \\x5C\\xFF\\x7F\\x09"
                   "|ua\\x0D\\x0A\\x22\\x5C\n");
    assert_renders("json", &e,
                   "{\"ts\":\"2026-11-28T17:15:48.123+00:00\",\"client\":\"192.0.2.7\","
                   "\"client_port\":51234,\"method\":\"GET\","
                   "\"uri\":\"/x\\\" 200 1 \\\"-\\\" \\\"evil\\\"\\u000A1.2.3.4 - - "
                   "\\\\\\u00FF\\u007F\\u0009\","
                   "\"proto\":\"HTTP/1.1\",\"status\":200,\"host\":\"example.com\","
                   "\"referer\":\"\\u00C3\\u00A9t\\u00C3\\u00A9\","
                   "\"user_agent\":\"ua\\u000D\\u000A\\\"\\\\\","
                   "\"backend\":\"10.0.0.2:8080\",\"backend_port\":40001,"
                   "\"request_time\":0.013,\"upstream_time\":0.010,"
                   "\"bytes_in\":87,\"bytes_out\":1234,\"gen\":0}\n");
}

/* A field longer than 8 KiB is cut, and says so. */
static void
test_long_field(void **state)
{
    rp_access_entry_t   e;
    static char         uri[20000];
    char               *s;

    entry_fill(&e);
    memset(uri, '\xff', sizeof(uri));
    e.uri = uri;
    e.uri_len = sizeof(uri);
    s = render("{URI}", &e);
    assert_non_null(s);
    assert_int_equal(strlen(s), 8192 * 4 + 3 + 1);
    assert_memory_equal(s + 8192 * 4, "...\n", 4);
    free(s);
}

static void
test_header_tokens(void **state)
{
    rp_access_entry_t   e;
    const char         *req[] = { "X-Request-Id", "abc-123", "Cookie", "a=\"b\"", NULL };
    const char         *resp[] = { "Content-Type", "text/html", "X-Cache", "HIT\n", NULL };

    entry_fill(&e);
    e.req_header = hdr_lookup;
    e.req_ctx = req;
    e.resp_header = hdr_lookup;
    e.resp_ctx = resp;
    assert_renders("id={US_HDR}:'x-request-id' c={US_HDR}:'Cookie' ct={DS_HDR}:'Content-Type' "
                   "xc={DS_HDR}:'X-Cache' none={US_HDR}:'X-Missing' cross={DS_HDR}:'Cookie'",
                   &e,
                   "id=abc-123 c=a=\\x22b\\x22 ct=text/html xc=HIT\\x0A none=- cross=-\n");
}

static void
test_open_errors(void **state)
{
    rp_access_log_conf_t  conf;
    char                  err[256];

    conf.output = tmp_path("errors.log");
    conf.format = "{SRC} {FOO} {URI}";
    strcpy(err, "stale");
    assert_null(rp_access_log_open(&conf, err, sizeof(err)));
    assert_string_equal(err, "unknown access log token {FOO}");

    conf.format = "{US_HDR} x";
    assert_null(rp_access_log_open(&conf, err, sizeof(err)));
    assert_non_null(strstr(err, "needs a header name"));
    conf.format = "{DS_HDR}:''";
    assert_null(rp_access_log_open(&conf, err, sizeof(err)));
    assert_non_null(strstr(err, "needs a header name"));

    conf.format = "comined";                    /* a misspelt name, not a template */
    assert_null(rp_access_log_open(&conf, err, sizeof(err)));
    assert_non_null(strstr(err, "unknown access log format \"comined\""));

    conf.format = "combined";
    conf.output = "/nonexistent/dir/access.log";
    assert_null(rp_access_log_open(&conf, err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/dir/access.log"));
    assert_non_null(strstr(err, strerror(ENOENT)));

    /* off is not an error */
    conf.output = "off";
    strcpy(err, "stale");
    assert_null(rp_access_log_open(&conf, err, sizeof(err)));
    assert_string_equal(err, "");
    conf.output = NULL;
    strcpy(err, "stale");
    assert_null(rp_access_log_open(&conf, err, sizeof(err)));
    assert_string_equal(err, "");
    assert_null(rp_access_log_open(NULL, err, sizeof(err)));
    rp_log_shutdown();
}

static void
test_shared_sink(void **state)
{
    rp_access_log_conf_t   a = { .output = tmp_path("shared.log"), .format = "combined" };
    rp_access_log_conf_t   b = { .output = a.output, .format = "{METH} {URI}" };
    rp_access_log_conf_t   a2 = { .output = a.output, .format = "combined" };
    rp_access_log_t       *la, *lb, *la2;
    rp_access_entry_t      e;
    char                   err[256], *s;
    int                    fds;

    entry_fill(&e);
    la = rp_access_log_open(&a, err, sizeof(err));   /* starts the writer thread */
    assert_non_null(la);
    fds = count_fds();
    lb = rp_access_log_open(&b, err, sizeof(err));
    assert_non_null(lb);
    assert_ptr_not_equal(la, lb);
    la2 = rp_access_log_open(&a2, err, sizeof(err));
    assert_ptr_equal(la, la2);                       /* same (output, format): same log */
    assert_int_equal(count_fds(), fds);              /* the file was opened once */

    rp_access_log_write(la, &e);
    rp_access_log_write(lb, &e);
    rp_access_log_write(la2, &e);
    rp_access_log_write(NULL, &e);                   /* logging off */
    rp_log_shutdown();
    rp_log_shutdown();                               /* idempotent */
    assert_int_equal(count_fds(), fds - 1);          /* and closed at shutdown */

    s = slurp(a.output);
    assert_non_null(s);
    assert_string_equal(s,
                        "192.0.2.7 - - [28/Nov/2026:17:15:48 +0000] \"GET /a/b?x=1 HTTP/1.1\" "
                        "200 1234 \"https://ref.example/\" \"curl/7.88.1\"\n"
                        "GET /a/b?x=1\n"
                        "192.0.2.7 - - [28/Nov/2026:17:15:48 +0000] \"GET /a/b?x=1 HTTP/1.1\" "
                        "200 1234 \"https://ref.example/\" \"curl/7.88.1\"\n");
    free(s);
}

#define THREADS 4
#define WRITES  1000
#define UA_PAD  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) " \
                "Chrome/120.0 Safari/537.36 padding padding padding padding padding padding"

typedef struct {
    rp_access_log_t  *log;
    int               id;
} writer_arg_t;

static void *
thread_writes(void *arg)
{
    writer_arg_t       *w = arg;
    rp_access_entry_t   e;
    char                uri[64];
    int                 i;

    entry_fill(&e);
    S(&e, user_agent, UA_PAD);
    for (i = 0; i < WRITES; i++) {
        snprintf(uri, sizeof(uri), "/t%d/%d", w->id, i);
        S(&e, uri, uri);
        e.bytes_out = (uint64_t) i;
        rp_access_log_write(w->log, &e);
    }
    return NULL;
}

static void
test_threads(void **state)
{
    rp_access_log_conf_t   conf = { .output = tmp_path("threads.log"),
                                    .format = "{URI} {STATUS} {BYTES_OUT} {UA}" };
    pthread_t              th[THREADS];
    writer_arg_t           args[THREADS];
    static char            seen[THREADS][WRITES];
    char                   err[256], expect[512], *s, *line, *nl;
    int                    t, i, lines = 0;

    args[0].log = rp_access_log_open(&conf, err, sizeof(err));
    assert_non_null(args[0].log);
    for (t = 0; t < THREADS; t++) {
        args[t].log = args[0].log;
        args[t].id = t;
        assert_int_equal(pthread_create(&th[t], NULL, thread_writes, &args[t]), 0);
    }
    for (t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
    }
    rp_log_shutdown();

    s = slurp(conf.output);
    assert_non_null(s);
    for (line = s; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        *nl = '\0';
        assert_int_equal(sscanf(line, "/t%d/%d", &t, &i), 2);
        assert_true(t >= 0 && t < THREADS && i >= 0 && i < WRITES);
        snprintf(expect, sizeof(expect), "/t%d/%d 200 %d %s", t, i, i, UA_PAD);
        assert_string_equal(line, expect);
        assert_int_equal(seen[t][i], 0);
        seen[t][i] = 1;
        lines++;
    }
    assert_string_equal(line, "");                   /* nothing after the last '\n' */
    assert_int_equal(lines, THREADS * WRITES);
    free(s);
}

/* A reader that does not read: the writer blocks on the FIFO, the 4 MiB queue
 * fills, and further lines are dropped and counted, never waited for. */
static void *
fifo_drain(void *arg)
{
    int      fd = *(int *) arg;
    char     buf[65536];
    ssize_t  n, i;
    size_t   lines = 0;

    while ((n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                usleep(1000);
                continue;
            }
            break;
        }
        for (i = 0; i < n; i++) {
            lines += buf[i] == '\n';
        }
    }
    return (void *) lines;
}

static void
test_drops(void **state)
{
    rp_access_log_conf_t   conf = { .output = tmp_path("fifo"), .format = "{URI} {UA}" };
    rp_access_log_t       *log;
    rp_access_entry_t      e;
    pthread_t              th;
    char                   err[256], *s, *p;
    void                  *ret;
    int                    rfd, i, total = 200000;
    unsigned long long     dropped = 0, n;

    assert_int_equal(rp_log_init(tmp_path("drops-error.log"), RP_LOG_NOTICE), RP_OK);
    assert_int_equal(mkfifo(conf.output, 0600), 0);
    rfd = open(conf.output, O_RDONLY | O_NONBLOCK);  /* so that the writer's open succeeds */
    assert_true(rfd >= 0);
    log = rp_access_log_open(&conf, err, sizeof(err));
    assert_non_null(log);

    entry_fill(&e);
    S(&e, user_agent, UA_PAD);
    for (i = 0; i < total; i++) {
        rp_access_log_write(log, &e);                /* ~160 B each: 32 MB in all */
    }
    assert_int_equal(pthread_create(&th, NULL, fifo_drain, &rfd), 0);
    rp_log_shutdown();                               /* flushes, then closes: EOF */
    pthread_join(th, &ret);
    close(rfd);

    s = slurp(tmp_path("drops-error.log"));
    assert_non_null(s);
    for (p = s; (p = strstr(p, "dropped ")) != NULL; p++) {
        assert_int_equal(sscanf(p, "dropped %llu lines", &n), 1);
        dropped += n;
    }
    free(s);
    assert_true(dropped > 0);
    assert_int_equal((unsigned long long) (uintptr_t) ret + dropped, total);
}

static void
test_reopen(void **state)
{
    rp_access_log_conf_t   conf = { .output = tmp_path("access.log"), .format = "{URI}" };
    char                  *elog = tmp_path("reopen-error.log"), *s;
    char                   rotated[300], erotated[300], err[256];
    rp_access_log_t       *log;
    rp_access_entry_t      e;

    assert_int_equal(rp_log_init(elog, RP_LOG_NOTICE), RP_OK);
    log = rp_access_log_open(&conf, err, sizeof(err));
    assert_non_null(log);
    entry_fill(&e);
    rp_log_error("before rotation");
    S(&e, uri, "/before");
    rp_access_log_write(log, &e);
    wait_for(conf.output, "/before\n");

    /* what logrotate does: rename, then SIGUSR1 */
    snprintf(rotated, sizeof(rotated), "%s.1", conf.output);
    snprintf(erotated, sizeof(erotated), "%s.1", elog);
    assert_int_equal(rename(conf.output, rotated), 0);
    assert_int_equal(rename(elog, erotated), 0);
    rp_log_reopen();
    S(&e, uri, "/after");
    rp_access_log_write(log, &e);
    wait_for(conf.output, "/after\n");               /* the writer reopened both files */
    rp_log_error("after rotation");
    rp_log_shutdown();

    s = slurp(rotated);
    assert_string_equal(s, "/before\n");
    free(s);
    s = slurp(conf.output);
    assert_string_equal(s, "/after\n");
    free(s);
    s = slurp(erotated);
    assert_non_null(strstr(s, "[error] before rotation\n"));
    assert_null(strstr(s, "after rotation"));
    free(s);
    s = slurp(elog);
    assert_non_null(s);
    assert_non_null(strstr(s, "[error] after rotation\n"));
    free(s);
}

/* Without any access log there is no writer thread: the caller reopens. */
static void
test_reopen_error_log_only(void **state)
{
    char  *elog = tmp_path("only-error.log"), *s, rotated[300];

    assert_int_equal(rp_log_init(elog, RP_LOG_NOTICE), RP_OK);
    rp_log_notice("one");
    snprintf(rotated, sizeof(rotated), "%s.1", elog);
    assert_int_equal(rename(elog, rotated), 0);
    rp_log_reopen();
    rp_log_notice("two");
    rp_log_shutdown();

    s = slurp(rotated);
    assert_non_null(strstr(s, "[notice] one\n"));
    free(s);
    s = slurp(elog);
    assert_non_null(s);
    assert_non_null(strstr(s, "[notice] two\n"));
    assert_null(strstr(s, "one"));
    free(s);
}

static int
group_setup(void **state)
{
    setenv("TZ", "UTC", 1);
    tzset();
    return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

static int
group_teardown(void **state)
{
    char  cmd[300];

    if (getenv("RP_TEST_KEEP") == NULL) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        return system(cmd) == 0 ? 0 : -1;
    }
    fprintf(stderr, "kept %s\n", tmpdir);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_error_log),
        cmocka_unit_test(test_combined),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_template),
        cmocka_unit_test(test_absent_values),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_long_field),
        cmocka_unit_test(test_header_tokens),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_shared_sink),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_drops),
        cmocka_unit_test(test_reopen),
        cmocka_unit_test(test_reopen_error_log_only),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
