/* http_head.h: one HTTP/1.x message head as parsed by llhttp (request or
 * response), the strict checks RFC 9112 asks of a proxy, and re-serialising
 * heads for the other side. Bodies are not stored: they are handed to the
 * owner's callbacks as llhttp decodes them. */
#ifndef RP_HTTP_HEAD_H
#define RP_HTTP_HEAD_H

#include "rp.h"

#include <llhttp.h>
#include <stdint.h>
#include <sys/types.h>

#include "headbuf.h"

/* The fields the proxy itself acts on, recognised once when a field is
 * parsed or added, so that forwarding a head compares no names. */
typedef enum {
    RP_F_OTHER = 0,
    RP_F_HOST,
    RP_F_CONNECTION,
    RP_F_KEEP_ALIVE,
    RP_F_PROXY_CONNECTION,
    RP_F_TE,
    RP_F_TRANSFER_ENCODING,
    RP_F_UPGRADE,
    RP_F_CONTENT_LENGTH,
    RP_F_EXPECT,
    RP_F_VIA,
    RP_F_X_FORWARDED_FOR,
} rp_field_kind_e;

/* A field: offsets into rp_msg_t.buf, each string NUL-terminated there. */
typedef struct {
    uint32_t   name;
    uint32_t   name_len;        /* 0: removed (a hook), skipped everywhere  */
    uint32_t   value;
    uint32_t   value_len;
    uint32_t   kind;            /* rp_field_kind_e                           */
} rp_hdr_t;

/* rp_field_kind_e of a field name (case-insensitive). */
rp_field_kind_e rp_field_kind(const char *name, size_t nlen);

/* A set of field names a head writer leaves out: case-insensitive, and a
 * '_' in a field's name matches a '-' (X_Forwarded_For is X-Forwarded-For). */
typedef struct {
    uint64_t       lengths;     /* bit (length % 64) of every name: most
                                   fields are ruled out by their length     */
    uint32_t       n;
    const char   **names;       /* owned array of borrowed names            */
    uint32_t      *lens;        /* owned                                    */
} rp_names_t;

void rp_names_init(rp_names_t *s, const char *const *names, uint32_t n);
void rp_names_cleanup(rp_names_t *s);
int rp_names_has(const rp_names_t *s, const char *name, size_t nlen);

typedef enum {
    RP_MSG_HEAD = 0,   /* reading the start line and fields          */
    RP_MSG_BODY,       /* head done; body bytes go to on_body        */
    RP_MSG_DONE,       /* message complete (trailers included)       */
} rp_msg_stage_e;

typedef struct rp_msg_s rp_msg_t;

/* A worker's spare head buffers. A client connection that goes idle gives
 * its head buffers back (an idle client holds no head memory) and one that
 * closes frees them; both go here instead, and the next request of the
 * worker takes them: a keep-alive request then costs no malloc or free for
 * its head. Only buffers of the first size are kept, so the spares hold at
 * most RP_MSG_SPARES x 1.5 KiB. */
#define RP_MSG_SPARES 64

typedef struct {
    unsigned                 n;
    struct {
        char                *buf;          /* owned                                  */
        rp_hdr_t            *fields;       /* owned                                  */
    } s[RP_MSG_SPARES];
} rp_msg_spares_t;

void rp_msg_spares_cleanup(rp_msg_spares_t *sp);

/* What the owner of a message does with it. Each returns 0, or -1 to stop
 * the parser with an error (the owner has recorded why). */
typedef struct {
    int (*on_head)(rp_msg_t *m);                        /* may return 1: no body (HEAD response) */
    int (*on_body)(rp_msg_t *m, const char *p, size_t n);
    int (*on_complete)(rp_msg_t *m);
} rp_msg_handler_t;

/* Framing flags gathered while parsing fields. */
#define RP_MSG_CHUNKED      0x01u   /* Transfer-Encoding ends in chunked       */
#define RP_MSG_HAS_CL       0x02u   /* Content-Length present                  */
#define RP_MSG_CONN_CLOSE   0x04u   /* Connection: close                       */
#define RP_MSG_CONN_KA      0x08u   /* Connection: keep-alive                  */
#define RP_MSG_EXPECT_100   0x10u   /* Expect: 100-continue                    */
#define RP_MSG_HAS_TE       0x20u   /* any Transfer-Encoding                   */
#define RP_MSG_TRAILERS     0x40u   /* trailer fields were received            */
#define RP_MSG_CONN_FIELDS  0x80u   /* Connection names fields (not just the
                                       close / keep-alive options)             */

struct rp_msg_s {
    llhttp_t                 parser;
    const rp_msg_handler_t  *h;
    void                    *owner;         /* back-pointer for the handler           */
    char                    *buf;           /* owned: start-line text and fields      */
    uint32_t                 len;
    uint32_t                 cap;
    uint32_t                 max_line;      /* start-line text: 414 (requests), 502  */
    uint32_t                 max_head;      /* header field bytes: 431 (requests), 502 */
    uint32_t                 max_fields;    /* 431 past it                            */
    uint32_t                 target;        /* request-target, or reason phrase       */
    uint32_t                 target_len;
    rp_hdr_t                *fields;        /* owned                                  */
    uint32_t                 nfields;
    uint32_t                 cap_fields;
    uint32_t                 ntrailer;      /* fields[ntrailer..] are trailers        */
    uint32_t                 hosts;         /* Host fields seen                       */
    uint32_t                 kinds;         /* bit (1 << rp_field_kind_e) of each kind
                                               the head has (trailers excluded)       */
    int                      host_field;    /* index of the Host field, or -1         */
    unsigned                 flags;         /* RP_MSG_*                               */
    rp_msg_stage_e           stage;
    int                      in_value;      /* last span was a field value            */
    int                      value_at_end;  /* ... and it ended where the feed ended  */
    const char              *feed_start;    /* the bytes of the current rp_msg_feed() */
    const char              *feed_end;
    int                      status;        /* on error: the status to answer (400..)  */
    const char              *error;         /* on error: why, for the log             */
    uint64_t                 body_bytes;    /* decoded body bytes so far              */
    uint8_t                  scan_cr;       /* head scan: the last byte was CR        */
    uint8_t                  scan_started;  /* head scan: a start-line byte was seen  */
    uint8_t                  scan_crlfs;    /* head scan: CRLFs in a row              */
    uint8_t                  scan_done;     /* head scan: the empty line was seen     */
    uint8_t                  scan_bol;      /* head scan: a line just began           */
    uint8_t                  ck_state;      /* chunked framing check (http_head.c)    */
    uint8_t                  ck_digits;     /* ... hex digits of this chunk-size      */
    uint8_t                  ck_on;         /* the body is chunked: it is checked     */
    uint8_t                  ck_pause;      /* paused at the head's end to start it   */
    uint64_t                 ck_left;       /* ... chunk-size, then data bytes left   */
    uint8_t                  um_state;      /* a method llhttp does not know: its
                                               request line checked (http_head.c)     */
    uint8_t                  um_ver;        /* ... bytes of "HTTP/d.d" matched        */
    uint32_t                 um_len;        /* ... bytes of the line so far           */
    rp_msg_spares_t         *spares;        /* borrowed: the worker's, or NULL        */
};

/* Sets up m for requests (HTTP_REQUEST) or responses (HTTP_RESPONSE). */
void rp_msg_init(rp_msg_t *m, llhttp_type_t type, const rp_msg_handler_t *h, void *owner);
void rp_msg_cleanup(rp_msg_t *m);

/* Forgets the previous message; the parser keeps its settings. */
void rp_msg_reset(rp_msg_t *m);

/* Gives the head buffers back (an idle keep-alive connection); the next
 * message allocates them again. Only between messages. */
void rp_msg_shrink(rp_msg_t *m);

/* Feeds bytes. Returns how many were consumed (< n when the parser paused at
 * the end of a head or of a message, so that the rest belongs to what comes
 * next), or -1 on a protocol error (m->status and m->error say which). */
ssize_t rp_msg_feed(rp_msg_t *m, const char *p, size_t n);

/* After a pause at the end of a head, lets parsing go on. */
void rp_msg_resume(rp_msg_t *m);

/* The peer closed: returns RP_OK if that ends the message (close-delimited
 * body), RP_ERROR if the message is truncated. */
int rp_msg_eof(rp_msg_t *m);

/* Does the head have a field of kind k (never removed by a hook since)? A
 * cheap "no" before a scan. */
static inline int
rp_msg_may_have(const rp_msg_t *m, rp_field_kind_e k)
{
    return (m->kinds & (1u << k)) != 0;
}

/* Field access: the first value of a field by name (case-insensitive), or NULL. */
const char *rp_msg_header(const rp_msg_t *m, const char *name, size_t nlen, size_t *vlen);

static inline const char *
rp_msg_str(const rp_msg_t *m, uint32_t off)
{
    return m->buf != NULL ? m->buf + off : "";   /* nothing parsed yet */
}

/* The reason phrase of a status code (RFC 9110 §15), "" when unknown. */
const char *rp_http_reason(int status);

int rp_msg_http_minor(const rp_msg_t *m);
int rp_msg_method(const rp_msg_t *m);      /* llhttp_method_t */
int rp_msg_status(const rp_msg_t *m);

/* True when the message body ends only when the peer closes (a response
 * without Content-Length or chunked framing). */
int rp_msg_close_delimited(const rp_msg_t *m);

/* How many of the next body bytes the caller may relay itself, unparsed: the
 * rest of a Content-Length body, or of a chunk's data, but its last byte
 * (which the parser must see to end the message or the chunk); 0 elsewhere,
 * or while the parser is paused.
 * rp_msg_body_skipped() then says how many it took. */
uint64_t rp_msg_body_skippable(const rp_msg_t *m);
void rp_msg_body_skipped(rp_msg_t *m, size_t n);

/* Hop-by-hop test (RFC 9110 §7.6.1): the fixed list plus any field named by
 * the message's Connection header. */
int rp_msg_is_hop_by_hop(const rp_msg_t *m, const char *name, size_t nlen);

/* Request-side checks a proxy owes its backends (RFC 9112 §3.2, §6.1): run by
 * the owner's on_head. Returns RP_OK, or RP_ERROR with m->status / m->error set. */
int rp_msg_check_request(rp_msg_t *m);

/* Field edits (Lua hooks): a removed field keeps its slot with name_len 0
 * and is skipped everywhere. Names must be tokens and values free of CR, LF
 * and NUL (rp_msg_valid_field checks); the head budget (max_head) applies.
 * add returns RP_OK or RP_ERROR (budget); remove returns how many went. */
int rp_msg_valid_field(const char *name, size_t nlen, const char *value, size_t vlen);
int rp_msg_add_field(rp_msg_t *m, const char *name, size_t nlen, const char *value, size_t vlen);
unsigned rp_msg_remove_field(rp_msg_t *m, const char *name, size_t nlen);

/* The number of fields of the head (trailers excluded). */
static inline uint32_t
rp_msg_nfields(const rp_msg_t *m)
{
    return (m->flags & RP_MSG_TRAILERS) ? m->ntrailer : m->nfields;
}

/* Appends "name: value\r\n" for every field that is not hop-by-hop, not of
 * a kind in skip_kinds (bits 1 << rp_field_kind_e) and not in skip (may be
 * NULL) to b. */
void rp_msg_write_fields(const rp_msg_t *m, rp_headbuf_t *b, uint32_t skip_kinds,
                         const rp_names_t *skip);

/* Does m have no Transfer-Encoding, or a single "chunked"? rproxy decodes
 * chunked and re-frames; a body under another coding (gzip, chunked) would
 * reach the next hop with that coding unannounced. */
int rp_msg_codings_relayable(const rp_msg_t *m);

/* Appends the trailers (fields[ntrailer..]), each "name: value\r\n", but
 * those of a known kind (framing, routing, hop-by-hop) and those in skip
 * (or NULL). */
void rp_msg_write_trailers(const rp_msg_t *m, rp_headbuf_t *b, const rp_names_t *skip);

#endif
