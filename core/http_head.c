/* http_head.c: llhttp glue for one message head, the strict request checks of
 * RFC 9112 that llhttp leaves to its user, and field re-serialisation. */
#include "http_head.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MSG_BUF_INITIAL    1024
#define MSG_FIELDS_INITIAL 24

static int msg_on_url(llhttp_t *p, const char *at, size_t n);
static int msg_on_url_complete(llhttp_t *p);
static int msg_on_status(llhttp_t *p, const char *at, size_t n);
static int msg_on_field(llhttp_t *p, const char *at, size_t n);
static int msg_on_value(llhttp_t *p, const char *at, size_t n);
static int msg_on_value_complete(llhttp_t *p);
static int msg_on_headers_complete(llhttp_t *p);
static int msg_on_body(llhttp_t *p, const char *at, size_t n);
static int msg_on_message_complete(llhttp_t *p);

static llhttp_settings_t  msg_settings = {
    .on_url = msg_on_url,
    .on_url_complete = msg_on_url_complete,
    .on_status = msg_on_status,
    .on_header_field = msg_on_field,
    .on_header_value = msg_on_value,
    .on_header_value_complete = msg_on_value_complete,
    .on_headers_complete = msg_on_headers_complete,
    .on_body = msg_on_body,
    .on_message_complete = msg_on_message_complete,
};

/* tchar (RFC 9110 §5.6.2) */
static const unsigned char  tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1,
    ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
};

static rp_msg_t *
msg_of(llhttp_t *p)
{
    return (rp_msg_t *) p->data;
}

/* Records a parse failure; the HPE_USER return stops llhttp. */
static int
msg_fail(rp_msg_t *m, int status, const char *why)
{
    m->status = status;
    m->error = why;
    return HPE_USER;
}

void
rp_msg_init(rp_msg_t *m, llhttp_type_t type, const rp_msg_handler_t *h, void *owner)
{
    memset(m, 0, sizeof(*m));
    llhttp_init(&m->parser, type, &msg_settings);
    m->parser.data = m;
    m->h = h;
    m->owner = owner;
    m->max_line = 8192;
    /* a response's limits (a request's come from its listener): 64 KiB of
     * fields, and 1,000 of them, so that only the bytes bound a backend's
     * head in practice (nginx counts bytes only; HAProxy's default is 101) */
    m->max_head = 65536;
    m->max_fields = 1000;
    /* buf and fields come with the first byte: an idle keep-alive client
     * costs no head memory */
    m->host_field = -1;
}

/* Gives m's head buffers to the worker's spares when they are of the first
 * size and there is room, else frees them. */
static void
msg_give_buffers(rp_msg_t *m)
{
    rp_msg_spares_t  *sp = m->spares;

    if (sp != NULL && sp->n < RP_MSG_SPARES && m->cap == MSG_BUF_INITIAL
        && m->cap_fields == MSG_FIELDS_INITIAL) {
        sp->s[sp->n].buf = m->buf;
        sp->s[sp->n].fields = m->fields;
        sp->n++;
    } else {
        free(m->buf);
        free(m->fields);
    }
    m->buf = NULL;
    m->fields = NULL;
    m->cap = 0;
    m->cap_fields = 0;
}

/* A message without buffers takes a spare pair, if the worker has one. */
static void
msg_take_buffers(rp_msg_t *m)
{
    rp_msg_spares_t  *sp = m->spares;

    if (sp == NULL || sp->n == 0 || m->cap != 0 || m->cap_fields != 0
        || m->len + 1 > MSG_BUF_INITIAL) {
        return;
    }
    sp->n--;
    m->buf = sp->s[sp->n].buf;
    m->fields = sp->s[sp->n].fields;
    m->cap = MSG_BUF_INITIAL;
    m->cap_fields = MSG_FIELDS_INITIAL;
    memset(m->buf, 0, m->len + 1);       /* the empty strings before the first append */
}

void
rp_msg_spares_cleanup(rp_msg_spares_t *sp)
{
    while (sp->n > 0) {
        sp->n--;
        free(sp->s[sp->n].buf);
        free(sp->s[sp->n].fields);
    }
}

void
rp_msg_cleanup(rp_msg_t *m)
{
    msg_give_buffers(m);
}

void
rp_msg_shrink(rp_msg_t *m)
{
    msg_give_buffers(m);
    m->len = 0;
    m->nfields = 0;
}

void
rp_msg_reset(rp_msg_t *m)
{
    m->len = 0;
    m->target = m->target_len = 0;
    m->nfields = 0;
    m->ntrailer = 0;
    m->hosts = 0;
    m->kinds = 0;
    m->host_field = -1;
    m->flags = 0;
    m->stage = RP_MSG_HEAD;
    m->in_value = 0;
    m->value_at_end = 0;
    m->status = 0;
    m->error = NULL;
    m->body_bytes = 0;
    m->scan_cr = m->scan_started = m->scan_crlfs = m->scan_done = m->scan_bol = 0;
    m->ck_state = m->ck_digits = m->ck_pause = m->ck_on = 0;
    m->ck_left = 0;
    m->um_state = m->um_ver = 0;
    m->um_len = 0;
}

/* Stores head bytes: the start-line text (max_line bounds it) or, through
 * msg_append, field bytes. */
static void
msg_store(rp_msg_t *m, const char *at, size_t n)
{
    if (m->cap == 0) {
        msg_take_buffers(m);
    }
    if (m->len + n + 1 > m->cap) {
        size_t  was = m->cap;

        if (m->cap == 0) {
            m->cap = MSG_BUF_INITIAL;
        }
        while (m->len + n + 1 > m->cap) {
            m->cap *= 2;
        }
        m->buf = rp_xrealloc(m->buf, m->cap);
        if (was == 0) {
            memset(m->buf, 0, m->len + 1);   /* the empty strings before the first append */
        }
    }
    memcpy(m->buf + m->len, at, n);
    m->len += (uint32_t) n;
    m->buf[m->len] = '\0';
}

/* Stores field bytes: all of them (everything but the start-line text) stay
 * within max_head, 431 past it. */
static int
msg_append(rp_msg_t *m, const char *at, size_t n)
{
    if ((size_t) (m->len - m->target_len) + n + 1 > m->max_head) {
        return -1;
    }
    msg_store(m, at, n);
    return 0;
}

/* The request-target or the reason phrase: start-line text, in pieces. */
static int
msg_start_line(rp_msg_t *m, const char *at, size_t n, int status, const char *why)
{
    if (m->target_len + n > m->max_line) {
        return msg_fail(m, status, why);
    }
    if (m->target_len == 0) {
        m->target = m->len;
    }
    msg_store(m, at, n);
    m->target_len += (uint32_t) n;
    return 0;
}

static int
msg_on_url(llhttp_t *p, const char *at, size_t n)
{
    return msg_start_line(msg_of(p), at, n, 414, "request line too long");
}

/* A request line without a version is HTTP/0.9 (llhttp says 0.9 before this
 * callback; a line with a version has not set it yet). Its client sends
 * that line alone and waits, while llhttp waits for header fields: it would get
 * a 408 after read_timeout. */
static int
msg_on_url_complete(llhttp_t *p)
{
    if (p->http_major == 0 && p->http_minor == 9) {
        return msg_fail(msg_of(p), 400, "unsupported HTTP version");
    }
    return 0;
}

/* reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ) (RFC 9112 §4): it is
 * relayed to the client, so no control byte gets through. */
static int
msg_on_status(llhttp_t *p, const char *at, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (((unsigned char) at[i] < 0x20 && at[i] != '\t') || at[i] == 0x7f) {
            return msg_fail(msg_of(p), 502, "control byte in the reason phrase");
        }
    }
    return msg_start_line(msg_of(p), at, n, 502, "status line too long");
}

/* The status for a fault in what m parses: a request's (the client's
 * fault), or 502 for a backend's response. */
static int
msg_fault_status(const rp_msg_t *m, int request_status)
{
    return m->parser.type == HTTP_REQUEST ? request_status : 502;
}

static int
msg_head_too_big(rp_msg_t *m)
{
    return msg_fail(m, msg_fault_status(m, 431), "header fields too large");
}

static void
msg_grow_fields(rp_msg_t *m)
{
    if (m->cap_fields == 0) {
        msg_take_buffers(m);
        if (m->cap_fields > 0) {
            return;
        }
    }
    m->cap_fields = m->cap_fields ? m->cap_fields * 2 : MSG_FIELDS_INITIAL;
    m->fields = rp_xrealloc(m->fields, m->cap_fields * sizeof(rp_hdr_t));
}

static int
msg_on_field(llhttp_t *p, const char *at, size_t n)
{
    rp_msg_t  *m = msg_of(p);
    rp_hdr_t  *f;

    if (m->nfields == 0 || m->in_value) {
        /* a new field: the start line's text ends with its own NUL */
        if (m->nfields >= m->max_fields) {
            return msg_head_too_big(m);
        }
        if (m->nfields == m->cap_fields) {
            msg_grow_fields(m);
        }
        if (m->stage == RP_MSG_BODY && !(m->flags & RP_MSG_TRAILERS)) {
            m->flags |= RP_MSG_TRAILERS;
            m->ntrailer = m->nfields;
        }
        f = &m->fields[m->nfields++];
        m->len++;                        /* keep the previous string's NUL */
        f->name = m->len;
        f->name_len = 0;
        f->value = 0;
        f->value_len = 0;
        f->kind = RP_F_OTHER;
        m->in_value = 0;
    }
    f = &m->fields[m->nfields - 1];
    if (msg_append(m, at, n) != 0) {
        return msg_head_too_big(m);
    }
    f->name_len += (uint32_t) n;
    return 0;
}

static int
msg_check_token(const char *s, size_t n)
{
    size_t  i;

    if (n == 0) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        if (!tchar[(unsigned char) s[i]]) {
            return -1;
        }
    }
    return 0;
}

static int
msg_on_value(llhttp_t *p, const char *at, size_t n)
{
    rp_msg_t  *m = msg_of(p);
    rp_hdr_t  *f = &m->fields[m->nfields - 1];

    if (!m->in_value) {
        /* RFC 9112 §5.1: no whitespace between name and colon; names are tokens */
        if (msg_check_token(m->buf + f->name, f->name_len) != 0) {
            return msg_fail(m, 400, "invalid header field name");
        }
        m->in_value = 1;
        m->len++;
        f->value = m->len;                 /* the append below ends it with a NUL */
    } else if (!(m->value_at_end && at == m->feed_start)) {
        /* a second span of one value that is not a buffer split is obs-fold:
         * RFC 9112 §5.2 lets a server reject it, and a proxy must not pass it */
        return msg_fail(m, 400, "obsolete line folding");
    }
    m->value_at_end = (at + n == m->feed_end);
    if (msg_append(m, at, n) != 0) {
        return msg_head_too_big(m);
    }
    f->value_len += (uint32_t) n;
    return 0;
}

static int
name_is(const rp_msg_t *m, const rp_hdr_t *f, const char *name, size_t nlen)
{
    return nlen > 0 && f->name_len == nlen && strncasecmp(m->buf + f->name, name, nlen) == 0;
}

/* The next token of the comma-separated list [*v, end), without the spaces
 * around it, or NULL at the end; *v moves past it. */
static const char *
list_next_token(const char **v, const char *end, size_t *len)
{
    const char  *p = *v, *s, *e;

    while (p < end && (*p == ' ' || *p == '\t' || *p == ',')) {
        p++;
    }
    if (p == end) {
        *v = p;
        return NULL;
    }
    s = p;
    while (p < end && *p != ',') {
        p++;
    }
    e = p;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t')) {
        e--;
    }
    *v = p;
    *len = (size_t) (e - s);
    return s;
}

static int
token_is(const char *s, size_t n, const char *t, size_t tlen)
{
    return n == tlen && strncasecmp(s, t, tlen) == 0;
}

/* Does the comma-separated list v contain token t (case-insensitive)? */
static int
list_has_token(const char *v, size_t vlen, const char *t, size_t tlen)
{
    const char  *end = v + vlen, *s;
    size_t       n;

    while ((s = list_next_token(&v, end, &n)) != NULL) {
        if (token_is(s, n, t, tlen)) {
            return 1;
        }
    }
    return 0;
}

/* What a Connection value says, in one pass: close, keep-alive, and whether
 * it names anything else (fields that forwarding must then drop). */
static unsigned
conn_options(const char *v, size_t vlen)
{
    const char  *end = v + vlen, *s;
    size_t       n;
    unsigned     flags = 0;

    while ((s = list_next_token(&v, end, &n)) != NULL) {
        if (token_is(s, n, "keep-alive", 10)) {
            flags |= RP_MSG_CONN_KA;
        } else {
            /* "close" too: it could name a field called Close */
            flags |= RP_MSG_CONN_FIELDS | (token_is(s, n, "close", 5) ? RP_MSG_CONN_CLOSE : 0);
        }
    }
    return flags;
}

rp_field_kind_e
rp_field_kind(const char *name, size_t nlen)
{
    /* the first letter rules most names out before any strncasecmp */
#define KIND_IS(lit) (((name[0] | 0x20) == lit[0]) && strncasecmp(name, lit, sizeof(lit) - 1) == 0)
    switch (nlen) {
    case 2:  return KIND_IS("te") ? RP_F_TE : RP_F_OTHER;
    case 3:  return KIND_IS("via") ? RP_F_VIA : RP_F_OTHER;
    case 4:  return KIND_IS("host") ? RP_F_HOST : RP_F_OTHER;
    case 6:  return KIND_IS("expect") ? RP_F_EXPECT : RP_F_OTHER;
    case 7:  return KIND_IS("upgrade") ? RP_F_UPGRADE : RP_F_OTHER;
    case 10:
        return KIND_IS("connection") ? RP_F_CONNECTION
               : KIND_IS("keep-alive") ? RP_F_KEEP_ALIVE : RP_F_OTHER;
    case 14: return KIND_IS("content-length") ? RP_F_CONTENT_LENGTH : RP_F_OTHER;
    case 15: return KIND_IS("x-forwarded-for") ? RP_F_X_FORWARDED_FOR : RP_F_OTHER;
    case 16: return KIND_IS("proxy-connection") ? RP_F_PROXY_CONNECTION : RP_F_OTHER;
    case 17: return KIND_IS("transfer-encoding") ? RP_F_TRANSFER_ENCODING : RP_F_OTHER;
    default: return RP_F_OTHER;
    }
#undef KIND_IS
}

/* Classifies a completed field and notes what it means for framing and
 * forwarding. */
static void
msg_note_field(rp_msg_t *m, rp_hdr_t *f)
{
    const char  *v = m->buf + f->value;

    f->kind = rp_field_kind(m->buf + f->name, f->name_len);
    if (m->flags & RP_MSG_TRAILERS) {
        return;
    }
    m->kinds |= 1u << f->kind;
    switch (f->kind) {
    case RP_F_HOST:
        m->hosts++;
        m->host_field = (int) (f - m->fields);
        break;
    case RP_F_CONNECTION:
        m->flags |= conn_options(v, f->value_len);
        break;
    case RP_F_TRANSFER_ENCODING:
        m->flags |= RP_MSG_HAS_TE;
        break;
    case RP_F_CONTENT_LENGTH:
        m->flags |= RP_MSG_HAS_CL;
        break;
    case RP_F_EXPECT:
        /* an HTTP/1.0 request's is ignored (RFC 9110 §10.1.1) */
        if (m->parser.http_minor > 0 && token_is(v, f->value_len, "100-continue", 12)) {
            m->flags |= RP_MSG_EXPECT_100;
        }
        break;
    default:
        break;
    }
}

static int
msg_on_value_complete(llhttp_t *p)
{
    rp_msg_t  *m = msg_of(p);
    rp_hdr_t  *f = &m->fields[m->nfields - 1];

    if (!m->in_value) {                  /* "Name:" with an empty value */
        if (msg_check_token(m->buf + f->name, f->name_len) != 0) {
            return msg_fail(m, 400, "invalid header field name");
        }
        m->in_value = 1;
        m->len++;
        f->value = m->len;
        if (msg_append(m, "", 0) != 0) {
            return msg_head_too_big(m);
        }
    }
    /* llhttp drops leading whitespace; trailing OWS is not part of the value */
    while (f->value_len > 0
           && (m->buf[f->value + f->value_len - 1] == ' '
               || m->buf[f->value + f->value_len - 1] == '\t')) {
        f->value_len--;
    }
    m->buf[f->value + f->value_len] = '\0';
    m->value_at_end = 0;
    msg_note_field(m, f);
    return 0;
}

/* Will llhttp read a chunked body after this head? Not for a response
 * without one (RFC 9112 §6.3: 1xx, 204, 304), whatever its fields say. */
static int
msg_has_chunked_body(const rp_msg_t *m)
{
    int  status = m->parser.status_code;

    if (!(m->flags & RP_MSG_CHUNKED)) {
        return 0;
    }
    return m->parser.type == HTTP_REQUEST
           || (status >= 200 && status != 204 && status != 304);
}

static int
msg_on_headers_complete(llhttp_t *p)
{
    rp_msg_t  *m = msg_of(p);
    int        rc;

    m->stage = RP_MSG_BODY;
    m->in_value = 1;                     /* a trailer field starts a new entry */
    if (p->type == HTTP_RESPONSE && (p->status_code < 100 || p->status_code > 599)) {
        /* status-code is 3DIGIT (RFC 9112 §4); llhttp 8 takes "0", "20" or
         * "099", which would pass for an interim answer */
        return msg_fail(m, 502, "invalid status code");
    }
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > (uint64_t) INT64_MAX) {
        /* llhttp takes any 64-bit length; past 2^63 - 1 a next hop that
         * parses a signed one reads another length (RFC 9110 §8.6) */
        return msg_fail(m, msg_fault_status(m, 400), "Content-Length too large");
    }
    if (p->type == HTTP_REQUEST) {
        /* rproxy does not switch protocols: Upgrade is dropped as hop-by-hop
         * and the request is served as HTTP. llhttp would otherwise stop at
         * its end (HPE_PAUSED_UPGRADE) and refuse the next request */
        p->upgrade = 0;
    }
    if (p->flags & F_CHUNKED) {
        m->flags |= RP_MSG_CHUNKED;
    }
    rc = m->h->on_head(m);
    if (rc < 0) {
        if (m->status == 0) {
            m->status = 400;
        }
        return HPE_USER;
    }
    m->ck_on = rc != 1 && msg_has_chunked_body(m);
    if (rc == 2) {
        return HPE_PAUSED;
    }
    if (m->ck_on) {
        /* a chunked body is checked before llhttp reads it (msg_check_chunked):
         * stop here so that rp_msg_feed() starts the check at its first byte */
        m->ck_pause = 1;
        return HPE_PAUSED;
    }
    return rc;                           /* 0, or 1: the message has no body */
}

static int
msg_on_body(llhttp_t *p, const char *at, size_t n)
{
    rp_msg_t  *m = msg_of(p);

    if (n == 0) {
        return 0;                        /* llhttp flushes empty spans at a feed's end */
    }
    m->body_bytes += n;
    if (m->h->on_body(m, at, n) != 0) {
        return HPE_USER;
    }
    return 0;
}

static int
msg_on_message_complete(llhttp_t *p)
{
    rp_msg_t  *m = msg_of(p);
    int        rc;

    m->stage = RP_MSG_DONE;
    rc = m->h->on_complete(m);
    if (rc < 0) {
        return HPE_USER;
    }
    if (rc == 1) {
        /* an interim (1xx) response: the final one follows in this stream
         * (RFC 9110 §15.2). Its "Connection: close", or an HTTP/1.0 1xx
         * without keep-alive, speaks for the final response, which carries
         * its own; llhttp would take the stream as closed and eat the rest. */
        p->flags = (uint16_t) ((p->flags & ~F_CONNECTION_CLOSE) | F_CONNECTION_KEEP_ALIVE);
        return 0;
    }
    return HPE_PAUSED;
}

static int
msg_scan_fail(rp_msg_t *m, const char *why)
{
    m->status = 400;
    m->error = why;
    return RP_ERROR;
}

/* RFC 9112 §2.2 lets a recipient accept a bare LF as a line end; llhttp 8
 * does after the start line and as the empty line, and takes a CR followed by
 * any byte for the empty line's CRLF. A proxy must not: two parsers
 * disagreeing on where a head ends is how requests are smuggled. So every
 * head line is checked here, up to the first empty line: it ends in CRLF, it
 * does not start with a CR that no LF follows (a CR inside a line llhttp
 * refuses itself), and no line after the start line starts with a blank
 * (obs-fold, §5.2, which llhttp 8 joins silently when the folded value's
 * first line is empty). One memchr a line; the state carries over the feed's
 * end: the last byte was a CR, a line just began, CRLFs in a row, a start
 * line seen. */
static int
msg_scan_head(rp_msg_t *m, const char *p, size_t n)
{
    const char  *end = p + n, *q = p, *nl, *seg;
    size_t       len;

    while (q < end && !m->scan_done) {
        if (m->scan_bol && m->scan_started && (*q == ' ' || *q == '\t')) {
            return msg_scan_fail(m, "obsolete line folding");
        }
        m->scan_bol = 0;
        nl = memchr(q, '\n', (size_t) (end - q));
        seg = nl ? nl : end;
        len = (size_t) (seg - q);
        if (len > 0) {
            if (m->scan_cr || (*q == '\r' && len > 1)) {
                /* a CR the previous feed ended with, or one starting the
                 * line (the empty line's), and then not an LF */
                return msg_scan_fail(m, "bare CR in the head");
            }
            if (len > 1 || *q != '\r') {
                m->scan_crlfs = 0;
                m->scan_started = 1;
            }
            m->scan_cr = seg[-1] == '\r';
        }
        if (nl == NULL) {
            break;
        }
        if (!m->scan_cr) {
            return msg_scan_fail(m, "bare LF in the head");
        }
        m->scan_cr = 0;
        m->scan_bol = 1;
        if (m->scan_started && ++m->scan_crlfs == 2) {
            m->scan_done = 1;
        }
        q = nl + 1;
    }
    return RP_OK;
}

/* llhttp 8 skips the two bytes after a chunk's data without looking at them
 * and, like in a head, takes a bare LF or a CR with any byte after it for the
 * CRLF that ends the trailer section: "5\r\nhelloXX0\r\n\r\n" is a whole
 * message to it, and what follows is the next request. A front end that
 * reads the bytes as RFC 9112 §7.1 says sees something else, which is how a
 * request is smuggled past it. So chunked framing is checked here first, byte
 * for byte except the data, which is only counted.
 *
 * llhttp 8.1 also refuses valid chunk extensions: a second one ("5;a=b;c=d")
 * and whitespace around them ("5 ;a=b", "5; a=b"). Their grammar is checked
 * here, and llhttp never sees them: it gets "5" and then the line's CRLF.
 * Extensions are dropped anyway, since bodies are forwarded decoded. */
enum {
    CK_SIZE = 0,       /* chunk-size: hex digits                          */
    CK_EXT_BWS,        /* after them: whitespace, then ";" or CR          */
    CK_EXT_NAME_BWS,   /* after ";": whitespace, then a name              */
    CK_EXT_NAME,       /* a chunk-ext-name (token)                        */
    CK_EXT_AFTER_NAME, /* after a name: whitespace, then "=", ";" or CR   */
    CK_EXT_VAL_BWS,    /* after "=": whitespace, then a value             */
    CK_EXT_TOKEN,      /* a token value                                   */
    CK_EXT_QUOTED,     /* a quoted-string value                           */
    CK_EXT_QUOTED_ESC, /* ... after a backslash                           */
    CK_EXT_AFTER_VAL,  /* after a value: whitespace, then ";" or CR       */
    CK_SIZE_LF,        /* the LF of the chunk-size line                   */
    CK_DATA,           /* ck_left data bytes                              */
    CK_DATA_CR,        /* the CRLF after the data                         */
    CK_DATA_LF,
    CK_TRAILER_START,  /* a trailer field line or the final CRLF          */
    CK_TRAILER,        /* a trailer field line, up to CR                  */
    CK_TRAILER_LF,
    CK_END_LF,         /* the final LF                                    */
    CK_DONE
};

static int
hex_value(unsigned char c)
{
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static int
msg_chunk_fail(rp_msg_t *m, const char *why)
{
    m->status = msg_fault_status(m, 400);
    m->error = why;
    return -1;
}

static int
is_bws(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* A chunk-size line's extensions are being read (msg_skip_chunk_ext). */
static int
ck_in_ext(int state)
{
    return state >= CK_EXT_BWS && state <= CK_EXT_AFTER_VAL;
}

/* qdtext / quoted-pair's second byte (RFC 9110 §5.6.4): HTAB, SP, VCHAR, obs-text */
static int
is_qchar(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* One byte of a chunk-size line's extensions (RFC 9112 §7.1.1):
 * *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ) BWS CRLF.
 * Returns the next state, or -1 if c cannot come here. */
static int
chunk_ext_next(int state, unsigned char c)
{
    switch (state) {
    case CK_EXT_BWS:
    case CK_EXT_AFTER_VAL:
        return is_bws(c) ? state : c == ';' ? CK_EXT_NAME_BWS : -1;
    case CK_EXT_NAME_BWS:
        return is_bws(c) ? state : tchar[c] ? CK_EXT_NAME : -1;
    case CK_EXT_NAME:
        if (tchar[c]) {
            return CK_EXT_NAME;
        }
        /* fall through */
    case CK_EXT_AFTER_NAME:
        return is_bws(c) ? CK_EXT_AFTER_NAME : c == '=' ? CK_EXT_VAL_BWS
               : c == ';' ? CK_EXT_NAME_BWS : -1;
    case CK_EXT_VAL_BWS:
        return is_bws(c) ? state : c == '"' ? CK_EXT_QUOTED : tchar[c] ? CK_EXT_TOKEN : -1;
    case CK_EXT_TOKEN:
        return tchar[c] ? CK_EXT_TOKEN : is_bws(c) ? CK_EXT_AFTER_VAL
               : c == ';' ? CK_EXT_NAME_BWS : -1;
    case CK_EXT_QUOTED:
        return c == '"' ? CK_EXT_AFTER_VAL : c == '\\' ? CK_EXT_QUOTED_ESC
               : is_qchar(c) ? CK_EXT_QUOTED : -1;
    case CK_EXT_QUOTED_ESC:
        return is_qchar(c) ? CK_EXT_QUOTED : -1;
    }
    return -1;
}

/* Checks the extensions of a chunk-size line at p[0..n) up to the CR that
 * ends it (left for msg_check_chunked). Returns how many bytes it took: 0
 * outside extensions, -1 if they are invalid. */
static ssize_t
msg_skip_chunk_ext(rp_msg_t *m, const char *p, size_t n)
{
    size_t  i;
    int     next;

    if (!ck_in_ext(m->ck_state)) {
        return 0;
    }
    for (i = 0; i < n && p[i] != '\r'; i++) {
        if ((next = chunk_ext_next(m->ck_state, (unsigned char) p[i])) < 0) {
            return msg_chunk_fail(m, "invalid chunk extension");
        }
        m->ck_state = (uint8_t) next;
    }
    if (i < n && (m->ck_state == CK_EXT_NAME_BWS || m->ck_state == CK_EXT_VAL_BWS
                  || m->ck_state == CK_EXT_QUOTED || m->ck_state == CK_EXT_QUOTED_ESC)) {
        return msg_chunk_fail(m, "invalid chunk extension");   /* a CR too early */
    }
    return (ssize_t) i;
}

/* Checks the chunked body bytes p[0..n) (state in m->ck_*). Returns how many
 * of them belong to the message (n, or fewer once it ends), or -1. */
static ssize_t
msg_check_chunked(rp_msg_t *m, const char *p, size_t n)
{
    size_t          i = 0, take;
    unsigned char   c;
    int             h;

    while (i < n && m->ck_state != CK_DONE) {
        if (m->ck_state == CK_DATA) {
            take = n - i < m->ck_left ? n - i : (size_t) m->ck_left;
            i += take;
            m->ck_left -= take;
            if (m->ck_left == 0) {
                m->ck_state = CK_DATA_CR;
            }
            continue;
        }
        c = (unsigned char) p[i++];
        if (ck_in_ext(m->ck_state)) {      /* msg_skip_chunk_ext() stopped at the CR */
            if (c != '\r') {
                return msg_chunk_fail(m, "invalid chunk extension");
            }
            m->ck_state = CK_SIZE_LF;
            continue;
        }
        switch (m->ck_state) {
        case CK_SIZE:
            if ((h = hex_value(c)) >= 0) {
                if (m->ck_left > (UINT64_MAX >> 4)) {
                    return msg_chunk_fail(m, "chunk size too big");
                }
                m->ck_left = (m->ck_left << 4) | (uint64_t) h;
                m->ck_digits = 1;
            } else if (m->ck_digits && (c == ';' || is_bws(c))) {
                m->ck_state = CK_EXT_BWS;
                return (ssize_t) i - 1;    /* llhttp is not shown the extensions */
            } else if (m->ck_digits && c == '\r') {
                m->ck_state = CK_SIZE_LF;
            } else {
                return msg_chunk_fail(m, "invalid chunk size");
            }
            break;
        case CK_SIZE_LF:
            if (c != '\n') {
                return msg_chunk_fail(m, "bare CR in a chunk-size line");
            }
            m->ck_state = m->ck_left == 0 ? CK_TRAILER_START : CK_DATA;
            m->ck_digits = 0;
            break;
        case CK_DATA_CR:
        case CK_DATA_LF:
            if (c != (m->ck_state == CK_DATA_CR ? '\r' : '\n')) {
                return msg_chunk_fail(m, "no CRLF after chunk data");
            }
            m->ck_state = m->ck_state == CK_DATA_CR ? CK_DATA_LF : CK_SIZE;
            break;
        case CK_TRAILER_START:
        case CK_TRAILER:
            if (c == '\n') {
                return msg_chunk_fail(m, "bare LF in the trailer section");
            }
            if (m->ck_state == CK_TRAILER_START && is_bws(c)) {
                return msg_chunk_fail(m, "obsolete line folding in the trailers");
            }
            if (c == '\r') {
                m->ck_state = m->ck_state == CK_TRAILER_START ? CK_END_LF : CK_TRAILER_LF;
            } else {
                m->ck_state = CK_TRAILER;
            }
            break;
        case CK_TRAILER_LF:
        case CK_END_LF:
            if (c != '\n') {
                return msg_chunk_fail(m, "bare CR in the trailer section");
            }
            m->ck_state = m->ck_state == CK_END_LF ? CK_DONE : CK_TRAILER_START;
            break;
        }
    }
    return (ssize_t) i;
}

/* llhttp knows a fixed set of methods and stops an unknown one at its first
 * byte that no method it knows has there. An extension method (RFC 9110 §9.1
 * allows any token) is no malformed request: the rest of its request line is
 * checked here, and a well-formed line (token SP target SP HTTP/d.d CRLF)
 * gets 501, anything else ("GARBAGE", "GE(T /") 400, as llhttp would say. */
enum {
    UM_OFF = 0,
    UM_METHOD,          /* the method's token bytes, up to SP                 */
    UM_TARGET_START,    /* the target's first byte                            */
    UM_TARGET,          /* visible ASCII up to SP                             */
    UM_VERSION,         /* "HTTP/d.d" (um_ver bytes matched), then CR         */
    UM_LF
};

static int
um_version_byte(unsigned i, unsigned char c)
{
    return i < 5 ? c == (unsigned char) "HTTP/"[i]
           : i == 6 ? c == '.'
           : (i == 5 || i == 7) && c >= '0' && c <= '9';
}

/* llhttp refused the method of a request at a token byte of its first
 * line: an unknown method, maybe. */
static int
msg_unknown_method_starts(const rp_msg_t *m)
{
    const char  *at = llhttp_get_error_pos(&m->parser);

    return m->parser.type == HTTP_REQUEST && m->stage == RP_MSG_HEAD && m->status == 0
           && at != NULL && at >= m->feed_start && at < m->feed_end
           && tchar[(unsigned char) *at];
}

/* msg_fail() for msg_check_unknown_method(), which returns -1 on a verdict. */
static ssize_t
um_fail(rp_msg_t *m, int status, const char *why)
{
    msg_fail(m, status, why);
    return -1;
}

/* Returns the bytes of p[0..n) taken (all of them while the line goes on),
 * or -1 once the line is judged (m->status: 501 or 400, or 414 if long). */
static ssize_t
msg_check_unknown_method(rp_msg_t *m, const char *p, size_t n)
{
    size_t         i;
    unsigned char  c;

    for (i = 0; i < n; i++) {
        c = (unsigned char) p[i];
        if (++m->um_len > m->max_line) {
            return um_fail(m, 414, "request line too long");
        }
        switch (m->um_state) {
        case UM_METHOD:
            if (c == ' ') {
                m->um_state = UM_TARGET_START;
            } else if (!tchar[c]) {
                return um_fail(m, 400, "invalid method");
            }
            break;
        case UM_TARGET_START:
        case UM_TARGET:
            if (c == ' ' && m->um_state == UM_TARGET) {
                m->um_state = UM_VERSION;
            } else if (c <= 0x20 || c >= 0x7f) {
                return um_fail(m, 400, "invalid request target");
            } else {
                m->um_state = UM_TARGET;
            }
            break;
        case UM_VERSION:
            if (m->um_ver == 8 && c == '\r') {
                m->um_state = UM_LF;
            } else if (m->um_ver < 8 && um_version_byte(m->um_ver, c)) {
                m->um_ver++;
            } else {
                return um_fail(m, 400, "invalid HTTP version");
            }
            break;
        case UM_LF:
            return c == '\n' ? um_fail(m, 501, "method not implemented")
                             : um_fail(m, 400, "bare CR in the request line");
        }
    }
    return (ssize_t) n;
}

static ssize_t
msg_feed_failed(rp_msg_t *m, llhttp_errno_t err)
{
    if (m->status == 0) {
        m->status = msg_fault_status(m, 400);
        if (err == HPE_INVALID_VERSION && m->parser.type == HTTP_REQUEST
            && m->parser.http_major >= 2) {
            m->status = 505;               /* llhttp knows 2.0 only; 3.0 is as unsupported */
        }
    }
    if (m->error == NULL) {
        m->error = llhttp_get_error_reason(&m->parser);
    }
    if (m->error == NULL) {
        m->error = llhttp_errno_name(err);
    }
    return -1;
}

ssize_t
rp_msg_feed(rp_msg_t *m, const char *p, size_t n)
{
    llhttp_errno_t  err;
    size_t          done = 0, len, used;
    ssize_t         k;
    int             checked;

    if (llhttp_get_errno(&m->parser) == HPE_PAUSED) {
        return 0;
    }
    if (m->stage == RP_MSG_HEAD && !m->scan_done && msg_scan_head(m, p, n) != RP_OK) {
        return -1;
    }
    if (m->um_state != UM_OFF) {
        return msg_check_unknown_method(m, p, n);
    }
    for (;;) {
        len = n - done;
        checked = m->stage == RP_MSG_BODY && m->ck_on;
        if (checked) {
            if ((k = msg_skip_chunk_ext(m, p + done, len)) < 0) {
                return -1;
            }
            done += (size_t) k;
            len -= (size_t) k;
            if ((k = msg_check_chunked(m, p + done, len)) < 0) {
                return -1;
            }
            len = (size_t) k;              /* llhttp gets no byte past the framing's end,
                                              nor an extension */
        }
        m->feed_start = p + done;
        m->feed_end = p + done + len;
        err = llhttp_execute(&m->parser, p + done, len);
        if (err == HPE_OK) {
            if (checked && m->ck_state == CK_DONE) {
                return msg_chunk_fail(m, "chunked framing not understood alike");
            }
            done += len;
            if (checked && done < n) {
                continue;                  /* stopped before an extension */
            }
            return (ssize_t) done;
        }
        if (err == HPE_INVALID_METHOD && msg_unknown_method_starts(m)) {
            used = (size_t) (llhttp_get_error_pos(&m->parser) - (p + done));
            m->um_state = UM_METHOD;
            m->um_len = (uint32_t) used;   /* the method's bytes llhttp took */
            k = msg_check_unknown_method(m, p + done + used, n - done - used);
            return k < 0 ? -1 : (ssize_t) n;
        }
        if (err != HPE_PAUSED) {
            return msg_feed_failed(m, err);
        }
        used = (size_t) (llhttp_get_error_pos(&m->parser) - (p + done));
        if (m->ck_pause) {
            m->ck_pause = 0;               /* the head ended: check the body from here */
            llhttp_resume(&m->parser);
            done += used;
            continue;
        }
        if (checked && m->stage == RP_MSG_DONE
            && (m->ck_state != CK_DONE || used != len)) {
            return msg_chunk_fail(m, "chunked framing not understood alike");
        }
        return (ssize_t) (done + used);
    }
}

void
rp_msg_resume(rp_msg_t *m)
{
    if (llhttp_get_errno(&m->parser) == HPE_PAUSED) {
        llhttp_resume(&m->parser);
    }
}

int
rp_msg_eof(rp_msg_t *m)
{
    if (m->stage == RP_MSG_DONE) {
        return RP_OK;
    }
    if (m->stage == RP_MSG_BODY && rp_msg_close_delimited(m)) {
        m->stage = RP_MSG_DONE;
        return RP_OK;
    }
    return RP_ERROR;
}

const char *
rp_msg_header(const rp_msg_t *m, const char *name, size_t nlen, size_t *vlen)
{
    uint32_t  i, n = (m->flags & RP_MSG_TRAILERS) ? m->ntrailer : m->nfields;

    for (i = 0; i < n; i++) {
        if (name_is(m, &m->fields[i], name, nlen)) {
            if (vlen) {
                *vlen = m->fields[i].value_len;
            }
            return m->buf + m->fields[i].value;
        }
    }
    return NULL;
}

int
rp_msg_http_minor(const rp_msg_t *m)
{
    return m->parser.http_minor;
}

int
rp_msg_method(const rp_msg_t *m)
{
    return m->parser.method;
}

int
rp_msg_status(const rp_msg_t *m)
{
    return m->parser.status_code;
}

int
rp_msg_close_delimited(const rp_msg_t *m)
{
    return llhttp_get_type((llhttp_t *) &m->parser) == HTTP_RESPONSE
           && !(m->parser.flags & (F_CHUNKED | F_CONTENT_LENGTH | F_SKIPBODY))
           && llhttp_message_needs_eof(&m->parser);
}

/* In a Content-Length body, and in a chunk's data, llhttp counts the bytes
 * still to come in parser.content_length and, fed again, goes on from there:
 * bytes it did not see only lower the count. (Each llhttp_execute() starts
 * its body span at its first byte, so no span crosses the skipped bytes.) In
 * a chunked body the framing check counts the chunk's data too (ck_left):
 * bytes are skipped only where both say "data of this chunk", and the
 * chunk's last byte, then the CRLF and the next size line, go through both. */
uint64_t
rp_msg_body_skippable(const rp_msg_t *m)
{
    const llhttp_t  *p = &m->parser;

    if (m->stage != RP_MSG_BODY || m->um_state != UM_OFF
        || llhttp_get_errno(p) != HPE_OK || (p->flags & F_SKIPBODY)
        || p->content_length < 2) {
        return 0;
    }
    if (p->flags & F_CHUNKED) {
        return m->ck_on && m->ck_state == CK_DATA && m->ck_left == p->content_length
                   ? p->content_length - 1 : 0;
    }
    return (p->flags & F_CONTENT_LENGTH) ? p->content_length - 1 : 0;
}

void
rp_msg_body_skipped(rp_msg_t *m, size_t n)
{
    m->parser.content_length -= n;
    if (m->parser.flags & F_CHUNKED) {
        m->ck_left -= n;
    }
    m->body_bytes += n;
}

/* RFC 9110 §7.6.1: the fixed hop-by-hop fields. */
static int
kind_is_hop_by_hop(uint32_t kind)
{
    return kind == RP_F_CONNECTION || kind == RP_F_KEEP_ALIVE || kind == RP_F_PROXY_CONNECTION
           || kind == RP_F_TE || kind == RP_F_TRANSFER_ENCODING || kind == RP_F_UPGRADE;
}

/* Is name listed by one of the message's Connection fields? */
static int
msg_conn_lists(const rp_msg_t *m, const char *name, size_t nlen)
{
    uint32_t  i;

    if (!(m->flags & RP_MSG_CONN_FIELDS)) {
        return 0;
    }
    for (i = 0; i < m->nfields; i++) {
        const rp_hdr_t  *f = &m->fields[i];

        if (f->name_len != 0 && f->kind == RP_F_CONNECTION
            && list_has_token(m->buf + f->value, f->value_len, name, nlen)) {
            return 1;
        }
    }
    return 0;
}

int
rp_msg_is_hop_by_hop(const rp_msg_t *m, const char *name, size_t nlen)
{
    return kind_is_hop_by_hop(rp_field_kind(name, nlen)) || msg_conn_lists(m, name, nlen);
}

/* RFC 3986 host [":" port]: reg-name, IPv4 or an IP-literal in brackets. */
static int
host_is_valid(const char *h, size_t n)
{
    static const char  sub_delims[] = "-._~!$&'()*+,;=%";
    size_t             i = 0;

    if (n > 0 && h[0] == '[') {
        for (i = 1; i < n && h[i] != ']'; i++) {
            if (!isxdigit((unsigned char) h[i]) && h[i] != ':' && h[i] != '.') {
                return 0;
            }
        }
        if (i == n) {
            return 0;
        }
        i++;
    } else {
        for (; i < n && h[i] != ':'; i++) {
            if (!isalnum((unsigned char) h[i]) && strchr(sub_delims, h[i]) == NULL) {
                return 0;
            }
        }
    }
    if (i < n) {
        if (h[i] != ':') {
            return 0;
        }
        for (i++; i < n; i++) {
            if (!isdigit((unsigned char) h[i])) {
                return 0;
            }
        }
    }
    return 1;
}

/* RFC 9112 §6.1: the codings of all Transfer-Encoding fields, in order, must
 * be exactly "chunked" here: rproxy decodes chunked and frames the body anew,
 * so any other coding would reach the backend undeclared (a server SHOULD
 * answer a coding it does not understand with 501). Returns 0, 400 (no coding
 * at all: the body's framing is unknown) or 501. */
static int
msg_check_transfer_codings(const rp_msg_t *m)
{
    const char  *v, *end, *s;
    size_t       n;
    uint32_t     i, codings = 0;

    for (i = 0; i < m->nfields; i++) {
        if (m->fields[i].name_len == 0 || m->fields[i].kind != RP_F_TRANSFER_ENCODING) {
            continue;
        }
        v = m->buf + m->fields[i].value;
        end = v + m->fields[i].value_len;
        while ((s = list_next_token(&v, end, &n)) != NULL) {
            if (codings++ > 0 || !token_is(s, n, "chunked", 7)) {
                return 501;
            }
        }
    }
    return codings == 0 ? 400 : 0;
}

int
rp_msg_codings_relayable(const rp_msg_t *m)
{
    return !(m->flags & RP_MSG_HAS_TE) || msg_check_transfer_codings(m) == 0;
}

/* The request-target's bytes (RFC 9112 §3.2, RFC 3986): visible ASCII only.
 * llhttp 8 lets HTAB, FF and bytes >= 0x80 through, and a backend that splits
 * the request line at whitespace would read another target and version. No
 * '#' either: a fragment stays with the client (RFC 9110 §7.1), and backends
 * differ on where a path with one ends. */
static int
target_is_valid(const char *t, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if ((unsigned char) t[i] <= 0x20 || (unsigned char) t[i] >= 0x7f || t[i] == '#') {
            return 0;
        }
    }
    return 1;
}

/* The authority of an absolute-form target t, which starts with "http://"
 * or "https://" (it replaces Host towards the backend): a valid host, no
 * userinfo (RFC 9110 §4.2.4). */
static int
absolute_authority_is_valid(const char *t, size_t n)
{
    const char  *a = memchr(t, ':', n) + 3, *end = t + n, *e = a;

    while (e < end && *e != '/' && *e != '?' && *e != '#') {
        e++;
    }
    return e > a && memchr(a, '@', (size_t) (e - a)) == NULL && host_is_valid(a, (size_t) (e - a));
}

int
rp_msg_check_request(rp_msg_t *m)
{
    const llhttp_t  *p = &m->parser;
    const char      *t = rp_msg_str(m, m->target);
    const rp_hdr_t  *host;
    int              te_status;

    if (p->http_major != 1 || p->http_minor > 1) {
        m->status = p->http_major >= 2 ? 505 : 400;
        m->error = "unsupported HTTP version";
        return RP_ERROR;
    }
    if (p->method == HTTP_CONNECT) {
        m->status = 405;
        m->error = "CONNECT is not supported";
        return RP_ERROR;
    }
    if (m->target_len == 0 || !target_is_valid(t, m->target_len)
        || !(t[0] == '/' || (m->target_len == 1 && t[0] == '*' && p->method == HTTP_OPTIONS)
             || ((strncasecmp(t, "http://", 7) == 0 || strncasecmp(t, "https://", 8) == 0)
                 && absolute_authority_is_valid(t, m->target_len)))) {
        m->status = 400;
        m->error = "invalid request target";
        return RP_ERROR;
    }
    if (m->hosts > 1 || (m->hosts == 0 && p->http_minor == 1)) {
        m->status = 400;
        m->error = m->hosts ? "duplicate Host" : "missing Host";
        return RP_ERROR;
    }
    if (m->hosts == 1) {
        host = &m->fields[m->host_field];
        if (!host_is_valid(m->buf + host->value, host->value_len)) {
            m->status = 400;
            m->error = "invalid Host";
            return RP_ERROR;
        }
    }
    if ((m->flags & RP_MSG_HAS_TE) && p->http_minor == 0) {
        /* RFC 9112 §6.1: a 1.0 message with Transfer-Encoding is faulty framing */
        m->status = 400;
        m->error = "Transfer-Encoding in an HTTP/1.0 request";
        return RP_ERROR;
    }
    te_status = (m->flags & RP_MSG_HAS_TE) ? msg_check_transfer_codings(m) : 0;
    if (te_status != 0) {
        m->status = te_status;
        m->error = te_status == 501 ? "transfer coding not implemented"
                                    : "empty Transfer-Encoding";
        return RP_ERROR;
    }
    return RP_OK;
}

void
rp_names_init(rp_names_t *s, const char *const *names, uint32_t n)
{
    uint32_t  i;

    s->n = n;
    s->lengths = 0;
    s->names = rp_xalloc((n ? n : 1) * sizeof(char *));
    s->lens = rp_xalloc((n ? n : 1) * sizeof(uint32_t));
    for (i = 0; i < n; i++) {
        s->names[i] = names[i];
        s->lens[i] = (uint32_t) strlen(names[i]);
        s->lengths |= 1ull << (s->lens[i] % 64);
    }
}

void
rp_names_cleanup(rp_names_t *s)
{
    free(s->names);
    free(s->lens);
    memset(s, 0, sizeof(*s));
}

/* One byte of a field name as the skip lists compare it: lower case, and
 * '_' as '-'. CGI, WSGI and Rack backends map both to one variable
 * (HTTP_X_FORWARDED_FOR), so a client's X_Forwarded_For would stand for the
 * value rproxy sets. */
static unsigned char
skip_fold(unsigned char c)
{
    return c == '_' ? '-' : (c >= 'A' && c <= 'Z') ? (unsigned char) (c | 0x20) : c;
}

static int
skip_name_is(const char *s, const char *name, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (skip_fold((unsigned char) name[i]) != skip_fold((unsigned char) s[i])) {
            return 0;
        }
    }
    return 1;
}

int
rp_names_has(const rp_names_t *s, const char *name, size_t nlen)
{
    uint32_t  i;

    if (s == NULL || !(s->lengths & (1ull << (nlen % 64)))) {
        return 0;
    }
    for (i = 0; i < s->n; i++) {
        if (s->lens[i] == nlen && skip_name_is(s->names[i], name, nlen)) {
            return 1;
        }
    }
    return 0;
}

void
rp_msg_write_fields(const rp_msg_t *m, rp_headbuf_t *b, uint32_t skip_kinds,
                    const rp_names_t *skip)
{
    uint32_t  i, n = rp_msg_nfields(m);
    int       conn_lists = (m->flags & RP_MSG_CONN_FIELDS) != 0;

    for (i = 0; i < n; i++) {
        const rp_hdr_t  *f = &m->fields[i];
        const char      *name = m->buf + f->name;

        /* Connection may not take Host away: rproxy routed on it, and an
         * HTTP/1.1 request without one is not one (RFC 9112 §3.2) */
        if (f->name_len == 0 || kind_is_hop_by_hop(f->kind) || (skip_kinds & (1u << f->kind))
            || rp_names_has(skip, name, f->name_len)
            || (conn_lists && f->kind != RP_F_HOST && msg_conn_lists(m, name, f->name_len))) {
            continue;
        }
        rp_headbuf_add_field(b, name, f->name_len, m->buf + f->value, f->value_len);
    }
}

void
rp_msg_write_trailers(const rp_msg_t *m, rp_headbuf_t *b, const rp_names_t *skip)
{
    uint32_t  i;

    if (!(m->flags & RP_MSG_TRAILERS)) {
        return;
    }
    for (i = m->ntrailer; i < m->nfields; i++) {
        const rp_hdr_t  *f = &m->fields[i];

        /* every field rproxy knows by kind frames, routes or is hop-by-hop
         * (Content-Length, Host, Connection, ...): none may be a trailer
         * (RFC 9110 §6.5.1), and a next hop that merges trailers into the
         * header section would take it for the real one; nor may a field
         * rproxy sets be forged there */
        if (f->name_len != 0 && f->kind == RP_F_OTHER
            && !rp_names_has(skip, m->buf + f->name, f->name_len)) {
            rp_headbuf_add_field(b, m->buf + f->name, f->name_len, m->buf + f->value,
                                 f->value_len);
        }
    }
}

int
rp_msg_valid_field(const char *name, size_t nlen, const char *value, size_t vlen)
{
    size_t  i;

    if (msg_check_token(name, nlen) != 0) {
        return 0;
    }
    for (i = 0; i < vlen; i++) {
        unsigned char  ch = (unsigned char) value[i];

        /* no header injection through a hook (CR, LF, NUL), and nothing a
         * client's field would be refused for (RFC 9110 §5.5: CTLs) */
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            return 0;
        }
    }
    return 1;
}

int
rp_msg_add_field(rp_msg_t *m, const char *name, size_t nlen, const char *value, size_t vlen)
{
    rp_hdr_t  *f;
    uint32_t   save = m->len;

    if ((size_t) (m->len - m->target_len) + nlen + vlen + 3 > m->max_head
        || (m->flags & RP_MSG_TRAILERS)) {
        return RP_ERROR;                 /* over budget, or trailers already came */
    }
    if (m->nfields == m->cap_fields) {
        msg_grow_fields(m);
    }
    m->len++;                            /* keep the previous string's NUL */
    if (msg_append(m, name, nlen) != 0) {
        m->len = save;
        return RP_ERROR;
    }
    m->len++;
    if (msg_append(m, value, vlen) != 0) {
        m->len = save;
        return RP_ERROR;
    }
    f = &m->fields[m->nfields++];
    f->name = save + 1;
    f->name_len = (uint32_t) nlen;
    f->value = save + 2 + (uint32_t) nlen;
    f->value_len = (uint32_t) vlen;
    f->kind = rp_field_kind(name, nlen);
    m->kinds |= 1u << f->kind;
    if (f->kind == RP_F_HOST) {
        m->hosts++;                      /* a request without one gets the backend's */
        m->host_field = (int) (f - m->fields);
    }
    if (f->kind == RP_F_CONNECTION) {
        m->flags |= conn_options(value, vlen) & RP_MSG_CONN_FIELDS;   /* framing is decided */
    }
    return RP_OK;
}

unsigned
rp_msg_remove_field(rp_msg_t *m, const char *name, size_t nlen)
{
    uint32_t  i, n = rp_msg_nfields(m);
    unsigned  removed = 0;

    for (i = 0; i < n; i++) {
        if (name_is(m, &m->fields[i], name, nlen)) {
            if (m->fields[i].kind == RP_F_HOST && m->hosts > 0) {
                m->hosts--;
                m->host_field = -1;
            }
            m->fields[i].name_len = 0;
            removed++;
        }
    }
    return removed;
}

const char *
rp_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default:  return "";
    }
}
