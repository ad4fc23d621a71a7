/* test_http_head.c: one message head through llhttp (core/http_head.c): the
 * strict request checks, pauses at the end of a head and of a message, bodies
 * and trailers, hop-by-hop fields and re-serialisation, and responses. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "http_head.h"

#define S(lit) lit, sizeof(lit) - 1

/* What the handler saw of one stream. */
typedef struct {
    unsigned   heads;
    unsigned   completes;
    unsigned   bodies;            /* on_body calls                      */
    unsigned   empty_bodies;      /* ... with n == 0 (must stay 0)      */
    char       body[512];
    size_t     body_len;
    int        interim[4];        /* 1xx statuses, in order             */
    unsigned   ninterim;
} rec_t;

static rec_t *
rec_of(rp_msg_t *m)
{
    return m->owner;
}

/* Requests: as req_on_head in core/http_conn.c, pause once the head is checked. */
static int
req_on_head(rp_msg_t *m)
{
    rec_of(m)->heads++;
    if (rp_msg_check_request(m) != RP_OK) {
        return -1;
    }
    return 2;
}

static int
rec_on_body(rp_msg_t *m, const char *p, size_t n)
{
    rec_t  *r = rec_of(m);

    r->bodies++;
    if (n == 0) {
        r->empty_bodies++;
    }
    assert_true(r->body_len + n <= sizeof(r->body));
    memcpy(r->body + r->body_len, p, n);
    r->body_len += n;
    return 0;
}

static int
req_on_complete(rp_msg_t *m)
{
    rec_of(m)->completes++;
    return 0;                              /* pause: what follows is the next request */
}

/* Responses: as resp_on_head / resp_on_complete in core/proxy.c. */
static int
resp_on_head(rp_msg_t *m)
{
    rec_of(m)->heads++;
    return rp_msg_status(m) < 200 ? 1 : 0;
}

static int
resp_on_complete(rp_msg_t *m)
{
    rec_t  *r = rec_of(m);

    if (rp_msg_status(m) < 200) {
        assert_true(r->ninterim < 4);
        r->interim[r->ninterim++] = rp_msg_status(m);
        rp_msg_reset(m);
        return 1;
    }
    r->completes++;
    return 0;
}

static const rp_msg_handler_t  req_h = { req_on_head, rec_on_body, req_on_complete };
static const rp_msg_handler_t  resp_h = { resp_on_head, rec_on_body, resp_on_complete };

/* Feeds p[0..n) in pieces of at most step bytes (0: all at once), resuming
 * after the pause at the end of a head as http_conn.c does once a request is
 * routed, and stopping at the end of the message. Returns the bytes consumed
 * (the message may be incomplete if that is all of n), or -1 on an error. */
static ssize_t
feed_message(rp_msg_t *m, const char *p, size_t n, size_t step)
{
    size_t   off = 0, len;
    ssize_t  rc;

    for (;;) {
        len = n - off;
        if (step != 0 && len > step) {
            len = step;
        }
        rc = rp_msg_feed(m, p + off, len);
        if (rc < 0) {
            return -1;
        }
        assert_true((size_t) rc <= len);
        off += (size_t) rc;
        if (m->stage == RP_MSG_DONE) {
            return (ssize_t) off;
        }
        if (m->stage == RP_MSG_BODY) {
            rp_msg_resume(m);
        }
        if (len == 0 && rc == 0) {
            return (ssize_t) off;          /* wants more input */
        }
    }
}

/* Parses one request with fresh state; returns what feed_message() does. */
static ssize_t
parse_req(rp_msg_t *m, rec_t *r, const char *p, size_t n, size_t step)
{
    memset(r, 0, sizeof(*r));
    rp_msg_init(m, HTTP_REQUEST, &req_h, r);
    return feed_message(m, p, n, step);
}

/* The same with max_line 128. */
static ssize_t
parse_req_max_line_128(rp_msg_t *m, rec_t *r, const char *p, size_t n, size_t step)
{
    memset(r, 0, sizeof(*r));
    rp_msg_init(m, HTTP_REQUEST, &req_h, r);
    m->max_line = 128;
    return feed_message(m, p, n, step);
}

/* Expects the request in p to be refused with status, fed whole and byte by
 * byte; a failure names the caller's line. */
typedef ssize_t (*parse_fn)(rp_msg_t *m, rec_t *r, const char *p, size_t n, size_t step);

static void
expect_error_at(parse_fn parse, const char *p, size_t n, int status, const char *file, int line)
{
    rp_msg_t     m;
    rec_t        r;
    size_t       step;
    ssize_t      rc;
    int          got;
    const char  *why;

    for (step = 0; step <= 1; step++) {
        rc = parse(&m, &r, p, n, step);
        got = m.status;
        why = m.error;
        rp_msg_cleanup(&m);                /* before asserting: no leak on failure */
        _assert_int_equal(cast_to_largest_integral_type(rc), cast_to_largest_integral_type(-1),
                          file, line);
        _assert_int_equal(got, status, file, line);
        _assert_true(cast_to_largest_integral_type(why != NULL), "m.error", file, line);
    }
}

#define expect_req_error(...) expect_error_at(parse_req, __VA_ARGS__, __FILE__, __LINE__)

static void
expect_header(const rp_msg_t *m, const char *name, const char *value)
{
    const char  *v;
    size_t       vlen = 12345;

    v = rp_msg_header(m, name, strlen(name), &vlen);
    assert_non_null(v);
    assert_int_equal(vlen, strlen(value));
    assert_memory_equal(v, value, vlen);
    assert_int_equal(v[vlen], '\0');
}

/* b holds exactly want; empties b. */
static void
expect_headbuf(rp_headbuf_t *b, const char *want)
{
    assert_int_equal(b->len, strlen(want));
    assert_memory_equal(b->p, want, b->len);
    rp_headbuf_reset(b);
}

static const char  simple_get[] = "GET /path/x?a=1&b=2 HTTP/1.1\r\n"
                                  "Host: example.com:8080\r\n"
                                  "User-Agent: test/1.0   \t \r\n"
                                  "Accept:*/*\r\n"
                                  "X-Empty:\r\n"
                                  "X-Spaced:   inner  value\t\r\n"
                                  "\r\n";

static void
check_simple_get(const rp_msg_t *m, const rec_t *r)
{
    assert_int_equal(m->stage, RP_MSG_DONE);
    assert_int_equal(r->heads, 1);
    assert_int_equal(r->completes, 1);
    assert_int_equal(r->bodies, 0);
    assert_int_equal(rp_msg_method(m), HTTP_GET);
    assert_int_equal(rp_msg_http_minor(m), 1);
    assert_int_equal(m->target_len, strlen("/path/x?a=1&b=2"));
    assert_string_equal(rp_msg_str(m, m->target), "/path/x?a=1&b=2");
    assert_int_equal(m->nfields, 5);
    assert_int_equal(m->hosts, 1);
    assert_string_equal(rp_msg_str(m, m->fields[0].name), "Host");
    assert_string_equal(rp_msg_str(m, m->fields[1].name), "User-Agent");
    expect_header(m, "host", "example.com:8080");
    expect_header(m, "HOST", "example.com:8080");
    expect_header(m, "user-agent", "test/1.0");            /* trailing OWS trimmed */
    expect_header(m, "ACCEPT", "*/*");
    expect_header(m, "x-empty", "");
    expect_header(m, "X-Spaced", "inner  value");
    assert_null(rp_msg_header(m, "x-missing", 9, NULL));
    assert_null(rp_msg_header(m, "hos", 3, NULL));          /* a prefix is not a match */
    assert_int_equal(m->flags & (RP_MSG_CHUNKED | RP_MSG_HAS_CL | RP_MSG_TRAILERS), 0);
}

static void
test_simple_get(void **state)
{
    rp_msg_t  m;
    rec_t     r;

    (void) state;
    assert_int_equal(parse_req(&m, &r, S(simple_get), 0), sizeof(simple_get) - 1);
    check_simple_get(&m, &r);
    rp_msg_cleanup(&m);
}

/* Head buffers go to the worker's spares when a message is shrunk or
 * cleaned up, and the next message of the worker parses in them; grown
 * ones are freed instead (the spares stay small). ASan finds a leak or a
 * buffer used after it was handed on. */
static void
test_spare_buffers(void **state)
{
    rp_msg_spares_t  sp = { 0 };
    rp_msg_t         a, b;
    rec_t            ra, rb;
    char            *buf;
    char             big[3000];
    int              len;

    (void) state;
    memset(&ra, 0, sizeof(ra));
    rp_msg_init(&a, HTTP_REQUEST, &req_h, &ra);
    a.spares = &sp;
    assert_int_equal(feed_message(&a, S(simple_get), 0), sizeof(simple_get) - 1);
    check_simple_get(&a, &ra);
    buf = a.buf;
    rp_msg_reset(&a);
    rp_msg_shrink(&a);                     /* idle: the buffers go to the spares */
    assert_null(a.buf);
    assert_int_equal(sp.n, 1);
    memset(&rb, 0, sizeof(rb));
    rp_msg_init(&b, HTTP_REQUEST, &req_h, &rb);
    b.spares = &sp;
    assert_int_equal(feed_message(&b, S(simple_get), 0), sizeof(simple_get) - 1);
    check_simple_get(&b, &rb);             /* parsed in the spare buffers */
    assert_ptr_equal(b.buf, buf);
    assert_int_equal(sp.n, 0);
    rp_msg_cleanup(&b);                    /* a closed connection's go back too */
    assert_int_equal(sp.n, 1);
    /* a head that outgrew the first size: freed, not kept */
    len = snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: h\r\nX-Big: %02000d\r\n\r\n", 7);
    rp_msg_resume(&a);
    memset(&ra, 0, sizeof(ra));
    assert_int_equal(feed_message(&a, big, (size_t) len, 0), len);
    assert_int_equal(sp.n, 0);             /* it took the spare, then grew it */
    assert_true(a.cap > 1024);
    rp_msg_cleanup(&a);
    assert_int_equal(sp.n, 0);
    rp_msg_spares_cleanup(&sp);
}

static void
test_byte_by_byte(void **state)
{
    static const char  folded_names[] = "GET / HTTP/1.1\r\n"
                                        "Host: a\r\n"
                                        "Connection: keep-alive, X-Long-Name-Here\r\n"
                                        "Content-Length: 3\r\n"
                                        "X-Long-Name-Here: a fairly long value, with commas\r\n"
                                        "\r\nabc";
    rp_msg_t  m;
    rec_t     r;
    size_t    step;

    (void) state;
    for (step = 1; step <= 7; step++) {
        /* every split of a value across feeds: never mistaken for obs-fold */
        assert_int_equal(parse_req(&m, &r, S(simple_get), step), sizeof(simple_get) - 1);
        check_simple_get(&m, &r);
        rp_msg_cleanup(&m);

        assert_int_equal(parse_req(&m, &r, S(folded_names), step), sizeof(folded_names) - 1);
        assert_int_equal(m.stage, RP_MSG_DONE);
        expect_header(&m, "connection", "keep-alive, X-Long-Name-Here");
        expect_header(&m, "x-long-name-here", "a fairly long value, with commas");
        assert_true(m.flags & RP_MSG_CONN_KA);
        assert_int_equal(r.body_len, 3);
        assert_memory_equal(r.body, "abc", 3);
        assert_int_equal(r.empty_bodies, 0);
        rp_msg_cleanup(&m);
    }
}

/* Feeds p in three pieces cut at i and j (i <= j), resuming after the head. */
static ssize_t
feed_split(rp_msg_t *m, rec_t *r, const char *p, size_t n, size_t i, size_t j)
{
    ssize_t  rc, off;

    memset(r, 0, sizeof(*r));
    rp_msg_init(m, HTTP_REQUEST, &req_h, r);
    if ((rc = feed_message(m, p, i, 0)) < 0) {
        return -1;
    }
    off = rc;
    if (m->stage != RP_MSG_DONE) {
        if ((rc = feed_message(m, p + off, j - (size_t) off, 0)) < 0) {
            return -1;
        }
        off += rc;
    }
    if (m->stage != RP_MSG_DONE) {
        if ((rc = feed_message(m, p + off, n - (size_t) off, 0)) < 0) {
            return -1;
        }
        off += rc;
    }
    return off;
}

/* Every way of cutting a request in three: the same fields, never obs-fold;
 * and a real fold is refused wherever the cuts fall. */
static void
test_every_split(void **state)
{
    static const char  good[] = "GET /x HTTP/1.1\r\nHost: a\r\nX-V: a b  \r\nY:\r\n\r\n";
    static const char  fold[] = "GET /x HTTP/1.1\r\nHost: a\r\nX-V: a\r\n b\r\n\r\n";
    rp_msg_t           m;
    rec_t              r;
    size_t             i, j;

    (void) state;
    for (i = 0; i <= sizeof(good) - 1; i++) {
        for (j = i; j <= sizeof(good) - 1; j++) {
            assert_int_equal(feed_split(&m, &r, S(good), i, j), sizeof(good) - 1);
            assert_int_equal(m.stage, RP_MSG_DONE);
            assert_int_equal(m.nfields, 3);
            expect_header(&m, "x-v", "a b");
            expect_header(&m, "y", "");
            rp_msg_cleanup(&m);
        }
    }
    for (i = 0; i <= sizeof(fold) - 1; i++) {
        for (j = i; j <= sizeof(fold) - 1; j++) {
            assert_int_equal(feed_split(&m, &r, S(fold), i, j), -1);
            assert_int_equal(m.status, 400);
            rp_msg_cleanup(&m);
        }
    }
}

static void
test_obs_fold(void **state)
{
    (void) state;
    expect_req_error(S("GET / HTTP/1.1\r\nHost: a\r\nX-Fold: first\r\n second\r\n\r\n"), 400);
    expect_req_error(S("GET / HTTP/1.1\r\nHost: a\r\nX-Fold: first\r\n\tsecond\r\n\r\n"), 400);
    expect_req_error(S("GET / HTTP/1.1\r\nX-Fold: first\r\n second\r\nHost: a\r\n\r\n"), 400);
}

static void
test_field_name(void **state)
{
    (void) state;
    expect_req_error(S("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), 400);
    expect_req_error(S("GET / HTTP/1.1\r\nHost: a\r\nX-Bad\t: b\r\n\r\n"), 400);
    expect_req_error(S("GET / HTTP/1.1\r\nHost: a\r\nX(Bad): b\r\n\r\n"), 400);
    expect_req_error(S("GET / HTTP/1.1\r\nHost: a\r\n: empty name\r\n\r\n"), 400);
}

static void
test_host(void **state)
{
    static const char *const  good[] = {
        "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
        "GET / HTTP/1.1\r\nHost:   padded.example   \r\n\r\n",
        "GET http://example.com/x HTTP/1.1\r\nHost: example.com\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    };
    rp_msg_t  m;
    rec_t     r;
    size_t    i;

    (void) state;
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(parse_req(&m, &r, good[i], strlen(good[i]), 0), strlen(good[i]));
        assert_int_equal(m.stage, RP_MSG_DONE);
        rp_msg_cleanup(&m);
    }
    expect_req_error(S("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 400);
    expect_req_error(S("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"), 400);
    expect_req_error(S("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"), 400);
    expect_req_error(S("GET / HTTP/1.1\r\nHost: exa mple.com\r\n\r\n"), 400);
    expect_req_error(S("GET / HTTP/1.1\r\nHost: a@b\r\n\r\n"), 400);
    expect_req_error(S("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400);
    expect_req_error(S("GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n"), 400);
    expect_req_error(S("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"), 400);
    expect_req_error(S("GET foo HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
}

static void
test_http10_without_host(void **state)
{
    static const char  req[] = "GET /old HTTP/1.0\r\nAccept: */*\r\n\r\n";
    rp_msg_t           m;
    rec_t              r;

    (void) state;
    assert_int_equal(parse_req(&m, &r, S(req), 0), sizeof(req) - 1);
    assert_int_equal(m.stage, RP_MSG_DONE);
    assert_int_equal(rp_msg_http_minor(&m), 0);
    assert_int_equal(m.hosts, 0);
    assert_null(rp_msg_header(&m, "host", 4, NULL));
    rp_msg_cleanup(&m);
}

static void
test_versions(void **state)
{
    (void) state;
    expect_req_error(S("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
    expect_req_error(S("GET / HTTP/3.0\r\nHost: a\r\n\r\n"), 505);
    expect_req_error(S("GET / HTTP/9.9\r\nHost: a\r\n\r\n"), 505);
    expect_req_error(S("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 400);
    expect_req_error(S("GET / HTTP/0.9\r\nHost: a\r\n\r\n"), 400);
}

/* A method llhttp does not know is no malformed request: with a well-formed
 * request line it gets 501 (RFC 9110 §9.1), else 400. Fed whole and byte by
 * byte (expect_req_error). */
static void
test_unknown_methods(void **state)
{
    char  line[300];
    int   n;

    (void) state;
    expect_req_error(S("FOO / HTTP/1.1\r\nHost: a\r\n\r\n"), 501);
    expect_req_error(S("QUERY /search?q=1 HTTP/1.1\r\nHost: a\r\n\r\n"), 501);
    expect_req_error(S("GETX / HTTP/1.0\r\n\r\n"), 501);
    expect_req_error(S("get / HTTP/1.1\r\nHost: a\r\n\r\n"), 501);   /* case matters */
    expect_req_error(S("GARBAGE\r\n\r\n"), 400);
    expect_req_error(S("FOO /\r\n\r\n"), 400);
    expect_req_error(S("FOO  / HTTP/1.1\r\n\r\n"), 400);
    expect_req_error(S("FOO / HTTP/1.1x\r\n\r\n"), 400);
    expect_req_error(S("FOO / HTTX/1.1\r\n\r\n"), 400);
    expect_req_error(S("FOO /a\x01b HTTP/1.1\r\n\r\n"), 400);
    expect_req_error(S("FOO / HTTP/1.1\rX\r\n\r\n"), 400);
    expect_req_error(S("F(OO / HTTP/1.1\r\n\r\n"), 400);
    expect_req_error(S("GE(T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    expect_req_error(S("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    n = snprintf(line, sizeof(line), "FOO /%0250d HTTP/1.1\r\n\r\n", 7);
    expect_error_at(parse_req_max_line_128, line, (size_t) n, 414, __FILE__, __LINE__);
}

static void
test_framing(void **state)
{
    (void) state;
    /* RFC 9112 §6.1: Transfer-Encoding in 1.0 */
    expect_req_error(S("POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "0\r\n\r\n"), 400);
    /* RFC 9112 §6.3: both Content-Length and Transfer-Encoding, either order */
    expect_req_error(S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400);
    expect_req_error(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                       "Content-Length: 5\r\n\r\n0\r\n\r\n"), 400);
    expect_req_error(S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                       "Content-Length: 6\r\n\r\nhello!"), 400);
    expect_req_error(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "zz\r\nhello\r\n0\r\n\r\n"), 400);
    expect_req_error(S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\nx"), 400);
}

/* A lone LF inside the field block is refused by llhttp itself. */
static void
test_bare_lf_in_fields(void **state)
{
    (void) state;
    expect_req_error(S("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n"), 400);
    expect_req_error(S("GET / HTTP/1.1\r\nHost: a\r\nX: b\n\r\n"), 400);
}

/* RFC 9112 §2.2 only allows a recipient to take a lone LF as a line end; a
 * strict proxy refuses it after the start line and as the empty line too, as
 * it does inside the fields (llhttp 8 accepts both: the check is ours). */
static void
test_bare_lf_after_start_line(void **state)
{
    (void) state;
    expect_req_error(S("GET / HTTP/1.1\nHost: a\r\n\r\n"), 400);
}

static void
test_bare_lf_empty_line(void **state)
{
    (void) state;
    expect_req_error(S("GET / HTTP/1.1\r\nHost: a\r\n\n"), 400);
}

/* llhttp 8 takes a CR followed by any byte for a line's CRLF, and joins a
 * fold after an empty first line without a second value span: both are ours
 * to refuse (http_head.c, msg_scan_head and msg_value_on_new_line). */
static void
test_bare_cr_and_fold_after_empty_value(void **state)
{
    (void) state;
    expect_req_error(S("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n"), 400);
    expect_req_error(S("GET / HTTP/1.1\r\nHost: a\r\n\rXGET /s HTTP/1.1\r\nHost: a\r\n\r\n"),
                     400);
    expect_req_error(S("GET / HTTP/1.1\rX\nHost: a\r\n\r\n"), 400);
    expect_req_error(S("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n"), 400);
    expect_req_error(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"
                       "0\r\n\r\n"), 400);
    expect_req_error(S("GET / HTTP/1.1\r\nHost:\r\n\ta\r\n\r\n"), 400);
}

/* RFC 9112 §7.1 framing that llhttp 8 lets through (it skips the two bytes
 * after chunk data, and ends trailers at a bare LF or at CR + any byte). */
static void
test_chunked_framing_strict(void **state)
{
    static const char *const  bodies[] = {
        "5\r\nhelloXX0\r\n\r\n",
        "5\r\nhello\r0\r\n\r\n",
        "5\r\nhello\r\n0\r\n\n",
        "5\r\nhello\r\n0\r\nX-T: 1\r\n\n",
        "5\r\nhello\r\n0\r\n\rX",
        "5\r\nhello\r\n0\r\nX-T: 1\rX\r\n\r\n",
        "5\r\nhello\r\n0\rX\r\n",
        "5\x01\r\nhello\r\n0\r\n\r\n",
        ";x\r\nhello\r\n0\r\n\r\n",
        "10000000000000000\r\n",
    };
    char    buf[256];
    size_t  i;
    int     n;

    (void) state;
    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        n = snprintf(buf, sizeof(buf), "POST / HTTP/1.1\r\nHost: a\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n%s", bodies[i]);
        expect_req_error(buf, (size_t) n, 400);
    }
}

static void
test_nul_in_value(void **state)
{
    (void) state;
    expect_req_error(S("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"), 400);
    expect_req_error(S("GET / HTTP/1.1\r\nHost: a\0\r\n\r\n"), 400);
}

/* Parses a request under the given budgets (0 keeps rp_msg_init's default). */
static ssize_t
parse_limited(rp_msg_t *m, rec_t *r, const char *p, size_t n, size_t step, uint32_t max_line,
              uint32_t max_fields, uint32_t max_head)
{
    memset(r, 0, sizeof(*r));
    rp_msg_init(m, HTTP_REQUEST, &req_h, r);
    m->max_line = max_line ? max_line : m->max_line;
    m->max_fields = max_fields ? max_fields : m->max_fields;
    m->max_head = max_head ? max_head : m->max_head;
    return feed_message(m, p, n, step);
}

static void
test_max_line(void **state)
{
    static const char  fits[] = "GET /123456789012345 HTTP/1.1\r\nHost: a\r\n\r\n";
    static const char  over[] = "GET /1234567890123456 HTTP/1.1\r\nHost: a\r\n\r\n";
    char              *big = rp_xalloc(9000);
    size_t             len, step;
    rp_msg_t           m;
    rec_t              r;

    (void) state;
    for (step = 0; step <= 1; step++) {
        assert_int_equal(parse_limited(&m, &r, S(fits), step, 16, 0, 0), sizeof(fits) - 1);
        rp_msg_cleanup(&m);
        assert_int_equal(parse_limited(&m, &r, S(over), step, 16, 0, 0), -1);
        assert_int_equal(m.status, 414);
        rp_msg_cleanup(&m);
    }

    /* the default, 8192 */
    len = (size_t) snprintf(big, 9000, "GET /");
    memset(big + len, 'a', 8300);
    len += 8300;
    len += (size_t) snprintf(big + len, 9000 - len, " HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_int_equal(parse_req(&m, &r, big, len, 0), -1);
    assert_int_equal(m.status, 414);
    rp_msg_cleanup(&m);
    free(big);
}

static void
test_max_fields(void **state)
{
    static const char  fits[] = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
    static const char  over[] = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    const size_t       cap = 16384;
    char              *big = rp_xalloc(cap);
    size_t             len, step;
    rp_msg_t           m;
    rec_t              r;
    int                i;

    (void) state;
    for (step = 0; step <= 1; step++) {
        assert_int_equal(parse_limited(&m, &r, S(fits), step, 0, 3, 0), sizeof(fits) - 1);
        assert_int_equal(m.nfields, 3);
        rp_msg_cleanup(&m);
        assert_int_equal(parse_limited(&m, &r, S(over), step, 0, 3, 0), -1);
        assert_int_equal(m.status, 431);
        assert_int_equal(r.heads, 0);
        rp_msg_cleanup(&m);
    }

    /* the default, 1,000 (a response's: a request takes its listener's
     * max_headers): Host and 999 more fit, Host and 1,000 more do not */
    len = (size_t) snprintf(big, cap, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (i = 0; i < 999; i++) {
        len += (size_t) snprintf(big + len, cap - len, "X%d: v\r\n", i);
    }
    memcpy(big + len, "\r\n", 2);
    assert_int_equal(parse_req(&m, &r, big, len + 2, 0), len + 2);
    assert_int_equal(m.nfields, 1000);
    rp_msg_cleanup(&m);
    len += (size_t) snprintf(big + len, cap - len, "X%d: v\r\n", i);
    len += (size_t) snprintf(big + len, cap - len, "\r\n");
    assert_int_equal(parse_req(&m, &r, big, len, 0), -1);
    assert_int_equal(m.status, 431);
    rp_msg_cleanup(&m);
    free(big);
}

/* The status a head limited to max_line / max_head gets (0: parsed whole),
 * fed step bytes at a time (0: at once). */
static int
head_status(const char *req, size_t n, size_t step, uint32_t max_line, uint32_t max_head)
{
    rp_msg_t  m;
    rec_t     r;
    int       status;

    status = parse_limited(&m, &r, req, n, step, max_line, 0, max_head) == (ssize_t) n
             ? 0 : m.status;
    rp_msg_cleanup(&m);
    return status;
}

static void
test_max_head(void **state)
{
    char      req[512];
    size_t    n, step;

    (void) state;
    for (step = 0; step <= 1; step++) {
        /* a long value, then a long name */
        n = (size_t) snprintf(req, sizeof(req),
                              "GET / HTTP/1.1\r\nHost: a\r\nX-Big: %0200d\r\n\r\n", 7);
        assert_int_equal(head_status(req, n, step, 0, 128), 431);
        n = (size_t) snprintf(req, sizeof(req),
                              "GET / HTTP/1.1\r\nHost: a\r\nX-%0200d: v\r\n\r\n", 7);
        assert_int_equal(head_status(req, n, step, 0, 128), 431);
        assert_int_equal(head_status(req, n, step, 0, 512), 0);

        /* the budget is the fields': a long target takes none of it */
        n = (size_t) snprintf(req, sizeof(req),
                              "GET /%0300d HTTP/1.1\r\nHost: a\r\nX-A: %0100d\r\n\r\n", 7, 7);
        assert_int_equal(head_status(req, n, step, 400, 128), 0);
        n = (size_t) snprintf(req, sizeof(req),
                              "GET / HTTP/1.1\r\nHost: a\r\nX-A: %0140d\r\n\r\n", 7);
        assert_int_equal(head_status(req, n, step, 400, 128), 431);
    }
}

static void
test_connect(void **state)
{
    (void) state;
    expect_req_error(S("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"), 405);
}

static const char  chunked_req[] = "POST /up HTTP/1.1\r\n"
                                   "Host: a\r\n"
                                   "Transfer-Encoding: chunked\r\n"
                                   "Trailer: X-Sum\r\n"
                                   "\r\n"
                                   "5\r\nhello\r\n"
                                   "6;ext=1\r\n world\r\n"
                                   "0\r\n"
                                   "X-Sum: 42  \r\n"
                                   "Host: trailer-host\r\n"
                                   "Content-Length: 9\r\n"
                                   "X-Other: 1\r\n"
                                   "\r\n";

static void
test_chunked_trailers(void **state)
{
    static const char *const  skip_names[] = { "x-other" };
    rp_msg_t          m;
    rec_t             r;
    size_t            step;
    rp_headbuf_t      out;
    rp_names_t        skip;

    (void) state;
    rp_names_init(&skip, skip_names, 1);
    for (step = 0; step <= 3; step++) {
        assert_int_equal(parse_req(&m, &r, S(chunked_req), step), sizeof(chunked_req) - 1);
        assert_int_equal(m.stage, RP_MSG_DONE);
        assert_int_equal(r.completes, 1);
        assert_int_equal(r.body_len, 11);
        assert_memory_equal(r.body, "hello world", 11);
        assert_int_equal(r.empty_bodies, 0);
        assert_int_equal(m.body_bytes, 11);
        assert_true(m.flags & RP_MSG_CHUNKED);
        assert_true(m.flags & RP_MSG_TRAILERS);
        assert_int_equal(m.hosts, 1);

        /* trailers are not fields of the head */
        assert_null(rp_msg_header(&m, "x-sum", 5, NULL));
        expect_header(&m, "host", "a");
        expect_header(&m, "trailer", "X-Sum");

        rp_headbuf_init(&out, 8);       /* small: the writers grow it */
        rp_msg_write_trailers(&m, &out, NULL);
        /* Host, Content-Length and the skip list's names are no trailers */
        expect_headbuf(&out, "X-Sum: 42\r\nX-Other: 1\r\n");
        rp_headbuf_reset(&out);
        rp_msg_write_trailers(&m, &out, &skip);
        expect_headbuf(&out, "X-Sum: 42\r\n");
        rp_msg_write_fields(&m, &out, 0, NULL);
        expect_headbuf(&out, "Host: a\r\nTrailer: X-Sum\r\n");
        rp_headbuf_cleanup(&out);
        rp_msg_cleanup(&m);
    }
    rp_names_cleanup(&skip);
}

static void
test_no_trailers(void **state)
{
    static const char  req[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    rp_msg_t           m;
    rec_t              r;
    rp_headbuf_t       out;

    (void) state;
    rp_headbuf_init(&out, 64);
    assert_int_equal(parse_req(&m, &r, S(req), 0), sizeof(req) - 1);
    rp_msg_write_trailers(&m, &out, NULL);
    assert_int_equal(out.len, 0);
    rp_headbuf_cleanup(&out);
    rp_msg_cleanup(&m);
}

static void
test_pipelining(void **state)
{
    static const char  two[] = "POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
                               "GET /2 HTTP/1.1\r\nHost: b\r\n\r\n";
    static const char  get2[] = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
                                "GET /b HTTP/1.1\r\nHost: b\r\n\r\n";
    const size_t       first = sizeof("POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n"
                                      "abc") - 1;
    const size_t       head = first - 3, half = (sizeof(get2) - 1) / 2;
    rp_msg_t           m;
    rec_t              r;
    ssize_t            rc;

    (void) state;
    memset(&r, 0, sizeof(r));
    rp_msg_init(&m, HTTP_REQUEST, &req_h, &r);

    /* the head pauses the parser exactly where the body starts */
    rc = rp_msg_feed(&m, two, sizeof(two) - 1);
    assert_int_equal(rc, head);
    assert_int_equal(m.stage, RP_MSG_BODY);
    assert_int_equal(r.heads, 1);
    assert_int_equal(rp_msg_feed(&m, two + head, sizeof(two) - 1 - head), 0);  /* still paused */
    rp_msg_resume(&m);

    /* the end of the message pauses it exactly where the next request starts */
    rc = rp_msg_feed(&m, two + head, sizeof(two) - 1 - head);
    assert_int_equal(rc, 3);
    assert_int_equal(m.stage, RP_MSG_DONE);
    assert_int_equal(r.completes, 1);
    assert_int_equal(r.body_len, 3);
    assert_string_equal(rp_msg_str(&m, m.target), "/1");
    assert_int_equal(rp_msg_feed(&m, two + first, sizeof(two) - 1 - first), 0);

    rp_msg_reset(&m);
    rp_msg_resume(&m);
    assert_int_equal(feed_message(&m, two + first, sizeof(two) - 1 - first, 0),
                     sizeof(two) - 1 - first);
    assert_int_equal(m.stage, RP_MSG_DONE);
    assert_int_equal(r.heads, 2);
    assert_int_equal(r.completes, 2);
    assert_string_equal(rp_msg_str(&m, m.target), "/2");
    expect_header(&m, "host", "b");
    assert_int_equal(m.nfields, 1);
    assert_int_equal(r.body_len, 3);
    rp_msg_cleanup(&m);

    /* two bodiless requests: the first's length exactly, whole or byte by byte */
    memset(&r, 0, sizeof(r));
    rp_msg_init(&m, HTTP_REQUEST, &req_h, &r);
    assert_int_equal(feed_message(&m, get2, sizeof(get2) - 1, 0), half);
    assert_string_equal(rp_msg_str(&m, m.target), "/a");
    rp_msg_reset(&m);
    rp_msg_resume(&m);
    assert_int_equal(feed_message(&m, get2 + half, half, 1), half);
    assert_int_equal(m.stage, RP_MSG_DONE);
    assert_string_equal(rp_msg_str(&m, m.target), "/b");
    expect_header(&m, "host", "b");
    assert_int_equal(r.completes, 2);
    rp_msg_cleanup(&m);
}

static const char  hop_req[] = "GET / HTTP/1.1\r\n"
                               "Host: example.com\r\n"
                               "Connection: keep-alive ,  X-Private,x-other\r\n"
                               "Keep-Alive: timeout=5\r\n"
                               "X-Private: secret\r\n"
                               "Accept: */*\r\n"
                               "TE: trailers\r\n"
                               "X-Other: 1\r\n"
                               "Upgrade: h2c\r\n"
                               "Proxy-Connection: keep-alive\r\n"
                               "X-Forwarded-For: 10.0.0.1\r\n"
                               "X-Private-Not: kept\r\n"
                               "Trailer: X-Sum\r\n"
                               "User-Agent: t  \r\n"
                               "\r\n";

static void
test_hop_by_hop(void **state)
{
    static const char *const  hop[] = {
        "connection", "Connection", "KEEP-ALIVE", "proxy-connection", "te", "TE",
        "transfer-encoding", "Transfer-Encoding", "upgrade", "Upgrade",
        "x-private", "X-PRIVATE", "x-other",
    };
    static const char *const  end_to_end[] = {
        "host", "accept", "x-private-not", "x-priv", "trailer", "t", "tee", "content-length",
        "close", "user-agent",
    };
    rp_msg_t  m;
    rec_t     r;
    size_t    i;

    (void) state;
    assert_int_equal(parse_req(&m, &r, S(hop_req), 0), sizeof(hop_req) - 1);
    for (i = 0; i < sizeof(hop) / sizeof(hop[0]); i++) {
        assert_true(rp_msg_is_hop_by_hop(&m, hop[i], strlen(hop[i])));
    }
    for (i = 0; i < sizeof(end_to_end) / sizeof(end_to_end[0]); i++) {
        assert_false(rp_msg_is_hop_by_hop(&m, end_to_end[i], strlen(end_to_end[i])));
    }
    /* names are (pointer, length): only the first nlen bytes count */
    assert_true(rp_msg_is_hop_by_hop(&m, "x-private-not", 9));
    rp_msg_cleanup(&m);

    /* without a Connection field only the fixed list is hop-by-hop */
    assert_int_equal(parse_req(&m, &r, S(simple_get), 0), sizeof(simple_get) - 1);
    assert_true(rp_msg_is_hop_by_hop(&m, "upgrade", 7));
    assert_false(rp_msg_is_hop_by_hop(&m, "x-private", 9));
    assert_false(rp_msg_is_hop_by_hop(&m, "user-agent", 10));
    rp_msg_cleanup(&m);
}

static void
test_write_fields(void **state)
{
    static const char *const  skip_names[] = { "host", "x-forwarded-for" };
    rp_names_t                skip, none;
    rp_msg_t                  m;
    rec_t                     r;
    rp_headbuf_t              out;

    (void) state;
    rp_names_init(&skip, skip_names, 2);
    rp_names_init(&none, NULL, 0);
    rp_headbuf_init(&out, 16);
    assert_int_equal(parse_req(&m, &r, S(hop_req), 0), sizeof(hop_req) - 1);
    rp_msg_write_fields(&m, &out, 0, &skip);
    expect_headbuf(&out, "Accept: */*\r\n"
                         "X-Private-Not: kept\r\n"
                         "Trailer: X-Sum\r\n"
                         "User-Agent: t\r\n");

    rp_msg_write_fields(&m, &out, 0, NULL);
    expect_headbuf(&out, "Host: example.com\r\n"
                         "Accept: */*\r\n"
                         "X-Forwarded-For: 10.0.0.1\r\n"
                         "X-Private-Not: kept\r\n"
                         "Trailer: X-Sum\r\n"
                         "User-Agent: t\r\n");

    rp_msg_write_fields(&m, &out, 0, &none);
    expect_headbuf(&out, "Host: example.com\r\n"
                         "Accept: */*\r\n"
                         "X-Forwarded-For: 10.0.0.1\r\n"
                         "X-Private-Not: kept\r\n"
                         "Trailer: X-Sum\r\n"
                         "User-Agent: t\r\n");

    /* the same by kind; which kinds the head has */
    rp_msg_write_fields(&m, &out, (1u << RP_F_HOST) | (1u << RP_F_X_FORWARDED_FOR), NULL);
    expect_headbuf(&out, "Accept: */*\r\n"
                         "X-Private-Not: kept\r\n"
                         "Trailer: X-Sum\r\n"
                         "User-Agent: t\r\n");
    assert_true(rp_msg_may_have(&m, RP_F_HOST));
    assert_true(rp_msg_may_have(&m, RP_F_X_FORWARDED_FOR));
    assert_true(rp_msg_may_have(&m, RP_F_CONNECTION));
    assert_false(rp_msg_may_have(&m, RP_F_VIA));
    assert_false(rp_msg_may_have(&m, RP_F_CONTENT_LENGTH));

    /* a field a hook adds is classified like a parsed one: a Connection
     * field it adds makes the fields it names hop-by-hop */
    assert_int_equal(rp_msg_add_field(&m, "connection", 10, "accept", 6), RP_OK);
    assert_int_equal(rp_msg_add_field(&m, "x-forwarded-for", 15, "10.0.0.2", 8), RP_OK);
    rp_msg_write_fields(&m, &out, 0, &skip);
    expect_headbuf(&out, "X-Private-Not: kept\r\n"
                         "Trailer: X-Sum\r\n"
                         "User-Agent: t\r\n");
    assert_int_equal(m.fields[m.nfields - 1].kind, RP_F_X_FORWARDED_FOR);
    assert_false(rp_msg_may_have(&m, RP_F_VIA));
    assert_int_equal(rp_msg_add_field(&m, "Via", 3, "1.1 x", 5), RP_OK);
    assert_true(rp_msg_may_have(&m, RP_F_VIA));
    rp_msg_cleanup(&m);

    /* the simple request keeps names' case, empty values and inner spaces */
    assert_int_equal(parse_req(&m, &r, S(simple_get), 0), sizeof(simple_get) - 1);
    rp_msg_write_fields(&m, &out, 0, &skip);
    expect_headbuf(&out, "User-Agent: test/1.0\r\n"
                         "Accept: */*\r\n"
                         "X-Empty: \r\n"
                         "X-Spaced: inner  value\r\n");
    rp_msg_cleanup(&m);

    /* Connection: close names no field: nothing else is dropped */
    {
        static const char  req[] = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
                                   "Close: 1\r\nX-A: 2\r\n\r\n";

        assert_int_equal(parse_req(&m, &r, S(req), 0), sizeof(req) - 1);
        assert_true(m.flags & RP_MSG_CONN_CLOSE);
        assert_true(m.flags & RP_MSG_CONN_FIELDS);    /* "close" could name a field */
        rp_msg_write_fields(&m, &out, 0, &skip);
        expect_headbuf(&out, "X-A: 2\r\n");
        rp_msg_cleanup(&m);
    }
    rp_headbuf_cleanup(&out);
    rp_names_cleanup(&skip);
    rp_names_cleanup(&none);
}

static void
test_field_kinds(void **state)
{
    static const struct { const char *name; rp_field_kind_e kind; }  k[] = {
        { "Host", RP_F_HOST }, { "HOST", RP_F_HOST }, { "host", RP_F_HOST },
        { "Connection", RP_F_CONNECTION }, { "keep-ALIVE", RP_F_KEEP_ALIVE },
        { "Proxy-Connection", RP_F_PROXY_CONNECTION }, { "te", RP_F_TE },
        { "Transfer-Encoding", RP_F_TRANSFER_ENCODING }, { "Upgrade", RP_F_UPGRADE },
        { "Content-Length", RP_F_CONTENT_LENGTH }, { "Expect", RP_F_EXPECT }, { "VIA", RP_F_VIA },
        { "x-forwarded-for", RP_F_X_FORWARDED_FOR },
        { "hosts", RP_F_OTHER }, { "hast", RP_F_OTHER }, { "t", RP_F_OTHER }, { "", RP_F_OTHER },
        { "content-lengthx", RP_F_OTHER }, { "x-forwarded-fox", RP_F_OTHER },
        { "connectiom", RP_F_OTHER }, { "user-agent", RP_F_OTHER },
    };
    static const char *const  names[] = { "X-SSL-Subject", "via", "x-real-ip" };
    rp_names_t                s;
    size_t                    i;

    (void) state;
    for (i = 0; i < sizeof(k) / sizeof(k[0]); i++) {
        assert_int_equal(rp_field_kind(k[i].name, strlen(k[i].name)), k[i].kind);
    }
    /* sets: case-insensitive, whole names, (pointer, length) */
    rp_names_init(&s, names, 3);
    assert_true(rp_names_has(&s, "x-ssl-subject", 13));
    assert_true(rp_names_has(&s, "VIA", 3));
    assert_true(rp_names_has(&s, "X-Real-IPv6", 9));
    assert_false(rp_names_has(&s, "X-Real-IPv6", 11));
    assert_false(rp_names_has(&s, "x-ssl-subjecT2", 14));
    assert_false(rp_names_has(&s, "vie", 3));
    assert_false(rp_names_has(&s, "", 0));
    assert_false(rp_names_has(NULL, "via", 3));
    /* a length that is 64 more than a member's shares its bit, not its match */
    assert_false(rp_names_has(&s, "via-------------------------------------------------------------"
                                  "--", 67));
    rp_names_cleanup(&s);
}

static void
test_headbuf(void **state)
{
    static const struct { uint64_t v; const char *dec, *hex; }  n[] = {
        { 0, "0", "0" }, { 9, "9", "9" }, { 10, "10", "a" }, { 255, "255", "ff" },
        { 1024, "1024", "400" }, { 4294967296ull, "4294967296", "100000000" },
        { UINT64_MAX, "18446744073709551615", "ffffffffffffffff" },
    };
    rp_headbuf_t  b;
    char          s[21];
    size_t        i, total;

    (void) state;
    for (i = 0; i < sizeof(n) / sizeof(n[0]); i++) {
        assert_int_equal(rp_fmt_uint(s, n[i].v), strlen(n[i].dec));
        assert_string_equal(s, n[i].dec);
        assert_int_equal(rp_fmt_hex(s, n[i].v), strlen(n[i].hex));
        assert_string_equal(s, n[i].hex);
    }
    rp_headbuf_init(&b, 1);
    rp_headbuf_add_lit(&b, "Content-Length: ");
    rp_headbuf_add_uint(&b, 1048576);
    rp_headbuf_add_lit(&b, "\r\n");
    rp_headbuf_add_field(&b, "X-A", 3, "", 0);
    rp_headbuf_add_hex(&b, 4096);
    rp_headbuf_add_uint_field(&b, "X-N", 3, 0);
    expect_headbuf(&b, "Content-Length: 1048576\r\nX-A: \r\n1000X-N: 0\r\n");
    /* growing past many doublings keeps what was there */
    for (i = 0, total = 0; i < 10000; i++) {
        rp_headbuf_add(&b, "0123456789", i % 11);
        total += i % 11;
    }
    assert_int_equal(b.len, total);
    assert_true(b.cap >= b.len);
    assert_memory_equal(b.p, "00101201230123401234", 20);
    rp_headbuf_cleanup(&b);
}

/* Parses one response with fresh state; returns what feed_message() does. */
static ssize_t
parse_resp(rp_msg_t *m, rec_t *r, const char *p, size_t n, size_t step)
{
    memset(r, 0, sizeof(*r));
    rp_msg_init(m, HTTP_RESPONSE, &resp_h, r);
    return feed_message(m, p, n, step);
}

static void
test_response_interim(void **state)
{
    static const char  resp[] = "HTTP/1.1 100 Continue\r\n\r\n"
                                "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
                                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Final: yes\r\n\r\n"
                                "hello";
    rp_msg_t           m;
    rec_t              r;
    size_t             step;

    (void) state;
    for (step = 0; step <= 2; step++) {
        assert_int_equal(parse_resp(&m, &r, S(resp), step), sizeof(resp) - 1);
        assert_int_equal(m.stage, RP_MSG_DONE);
        assert_int_equal(r.ninterim, 2);
        assert_int_equal(r.interim[0], 100);
        assert_int_equal(r.interim[1], 103);
        assert_int_equal(r.heads, 3);
        assert_int_equal(r.completes, 1);
        assert_int_equal(rp_msg_status(&m), 200);
        assert_string_equal(rp_msg_str(&m, m.target), "OK");
        expect_header(&m, "x-final", "yes");
        expect_header(&m, "content-length", "5");
        assert_null(rp_msg_header(&m, "link", 4, NULL));  /* the 103's, forgotten */
        assert_int_equal(m.nfields, 2);
        assert_int_equal(r.body_len, 5);
        assert_memory_equal(r.body, "hello", 5);
        assert_false(rp_msg_close_delimited(&m));
        assert_int_equal(rp_msg_eof(&m), RP_OK);
        rp_msg_cleanup(&m);
    }
}

static void
test_response_close_delimited(void **state)
{
    static const char  resp[] = "HTTP/1.1 200 OK\r\nX: y\r\n\r\nbody until close";
    static const char  resp10[] = "HTTP/1.0 200 OK\r\n\r\nold";
    rp_msg_t           m;
    rec_t              r;

    (void) state;
    assert_int_equal(parse_resp(&m, &r, S(resp), 0), sizeof(resp) - 1);
    assert_int_equal(m.stage, RP_MSG_BODY);
    assert_int_equal(r.body_len, strlen("body until close"));
    assert_true(rp_msg_close_delimited(&m));
    assert_int_equal(rp_msg_eof(&m), RP_OK);
    assert_int_equal(m.stage, RP_MSG_DONE);
    rp_msg_cleanup(&m);

    assert_int_equal(parse_resp(&m, &r, S(resp10), 1), sizeof(resp10) - 1);
    assert_true(rp_msg_close_delimited(&m));
    assert_int_equal(rp_msg_eof(&m), RP_OK);
    assert_int_equal(r.body_len, 3);
    rp_msg_cleanup(&m);
}

static void
test_response_truncated(void **state)
{
    static const char  cl[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
    static const char  chunked[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab";
    static const char  head[] = "HTTP/1.1 200 OK\r\nContent-Le";
    rp_msg_t           m;
    rec_t              r;

    (void) state;
    assert_int_equal(parse_resp(&m, &r, S(cl), 0), sizeof(cl) - 1);
    assert_int_equal(m.stage, RP_MSG_BODY);
    assert_false(rp_msg_close_delimited(&m));
    assert_int_equal(rp_msg_eof(&m), RP_ERROR);
    rp_msg_cleanup(&m);

    assert_int_equal(parse_resp(&m, &r, S(chunked), 0), sizeof(chunked) - 1);
    assert_false(rp_msg_close_delimited(&m));
    assert_int_equal(rp_msg_eof(&m), RP_ERROR);
    rp_msg_cleanup(&m);

    assert_int_equal(parse_resp(&m, &r, S(head), 0), sizeof(head) - 1);
    assert_int_equal(m.stage, RP_MSG_HEAD);
    assert_int_equal(rp_msg_eof(&m), RP_ERROR);
    rp_msg_cleanup(&m);
}

#define expect_resp_error(...) expect_error_at(parse_resp, __VA_ARGS__, __FILE__, __LINE__)

static void
test_response_errors(void **state)
{
    (void) state;
    expect_resp_error(S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
                      502);
    expect_resp_error(S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
                      502);
    expect_resp_error(S("HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nhello"), 502);
    expect_resp_error(S("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhello"), 502);
    expect_resp_error(S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n"), 502);
    expect_resp_error(S("HTTP/1.1 2x0 OK\r\n\r\n"), 502);
}

/* RFC 9112 §7.1.1 chunk extensions. llhttp 8.1 refuses a second one and
 * whitespace around them; http_head.c checks them itself and hides them. */
static void
test_chunk_extensions(void **state)
{
    static const char *const  valid[] = {
        "5;a=b", "5;a=b;c=d", "5;a;b", "5;a", "5 ;a=b", "5\t; a = b ", "5; a=b ;c",
        "5;a=\"x y\"", "5;a=\"q\\\"uote;d\";e=f", "5;a=\"\"", "5 ", "005;n=v",
        "5;!#$%&'*+-.^_`|~09AZaz=!#$%&'*+-.^_`|~",
    };
    static const char *const  invalid[] = {
        "5 x", "5;", "5; ", "5;a=", "5;=b", "5;a=b c", "5;a=\"open", "5;a=\"x\"y",
        "5;a b", "5;a==b", "5;a=\"\x01\"", "5;a\x7f", "5;\"a\"=b", "5;a=b,c", "5;;a",
        "5;a=\"x\\\x01\"",
    };
    char     req[256];
    size_t   i, step;
    int      n;
    rp_msg_t m;
    rec_t    r;

    (void) state;
    for (i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        n = snprintf(req, sizeof(req), "POST / HTTP/1.1\r\nHost: a\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n%s\r\nhello\r\n"
                     "6;last=1\r\n world\r\n0;end\r\n\r\nGET /next", valid[i]);
        for (step = 0; step <= 3; step++) {
            assert_int_equal(parse_req(&m, &r, req, (size_t) n, step),
                             n - (int) sizeof("GET /next") + 1);
            assert_int_equal(m.stage, RP_MSG_DONE);
            assert_int_equal(r.completes, 1);
            assert_int_equal(r.body_len, 11);
            assert_memory_equal(r.body, "hello world", 11);
            rp_msg_cleanup(&m);
        }
        n = snprintf(req, sizeof(req), "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "%s\r\nhello\r\n0\r\n\r\n", valid[i]);
        for (step = 0; step <= 1; step++) {
            assert_int_equal(parse_resp(&m, &r, req, (size_t) n, step), n);
            assert_int_equal(r.completes, 1);
            assert_int_equal(r.body_len, 5);
            rp_msg_cleanup(&m);
        }
    }
    for (i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        n = snprintf(req, sizeof(req), "POST / HTTP/1.1\r\nHost: a\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n%s\r\nhello\r\n0\r\n\r\n", invalid[i]);
        expect_req_error(req, (size_t) n, 400);
        n = snprintf(req, sizeof(req), "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "%s\r\nhello\r\n0\r\n\r\n", invalid[i]);
        expect_resp_error(req, (size_t) n, 502);
    }
}

static void
test_response_head_too_big(void **state)
{
    char      resp[512];
    rp_msg_t  m;
    rec_t     r;
    int       n;

    (void) state;
    n = snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\nX-Big: %0200d\r\n\r\n", 1);
    memset(&r, 0, sizeof(r));
    rp_msg_init(&m, HTTP_RESPONSE, &resp_h, &r);
    m.max_head = 100;
    assert_int_equal(feed_message(&m, resp, (size_t) n, 0), -1);
    assert_int_equal(m.status, 502);
    rp_msg_cleanup(&m);
}

int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_every_split),
        cmocka_unit_test(test_obs_fold),
        cmocka_unit_test(test_field_name),
        cmocka_unit_test(test_host),
        cmocka_unit_test(test_http10_without_host),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_unknown_methods),
        cmocka_unit_test(test_framing),
        cmocka_unit_test(test_bare_lf_in_fields),
        cmocka_unit_test(test_bare_lf_after_start_line),
        cmocka_unit_test(test_bare_lf_empty_line),
        cmocka_unit_test(test_bare_cr_and_fold_after_empty_value),
        cmocka_unit_test(test_chunked_framing_strict),
        cmocka_unit_test(test_nul_in_value),
        cmocka_unit_test(test_max_line),
        cmocka_unit_test(test_max_fields),
        cmocka_unit_test(test_max_head),
        cmocka_unit_test(test_connect),
        cmocka_unit_test(test_chunked_trailers),
        cmocka_unit_test(test_chunk_extensions),
        cmocka_unit_test(test_no_trailers),
        cmocka_unit_test(test_pipelining),
        cmocka_unit_test(test_hop_by_hop),
        cmocka_unit_test(test_write_fields),
        cmocka_unit_test(test_response_interim),
        cmocka_unit_test(test_response_close_delimited),
        cmocka_unit_test(test_response_truncated),
        cmocka_unit_test(test_response_errors),
        cmocka_unit_test(test_response_head_too_big),
        cmocka_unit_test(test_field_kinds),
        cmocka_unit_test(test_headbuf),
        cmocka_unit_test(test_spare_buffers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
