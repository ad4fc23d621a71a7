/* headbuf.h: a flat, growable byte buffer in which a worker builds one HTTP
 * head (or a small answer) before handing it to a connection's output in one
 * evbuffer_add(). Appends are memcpy()s: no printf, no evbuffer callbacks. */
#ifndef RP_HEADBUF_H
#define RP_HEADBUF_H

#include "rp.h"

#include <stdint.h>
#include <string.h>

typedef struct {
    char    *p;        /* owned                                    */
    size_t   len;
    size_t   cap;
} rp_headbuf_t;

void rp_headbuf_init(rp_headbuf_t *b, size_t cap);
void rp_headbuf_cleanup(rp_headbuf_t *b);

/* Makes room for n more bytes (aborts on OOM, like rp_xalloc: a head is
 * bounded by the limits its parser enforced). */
void rp_headbuf_grow(rp_headbuf_t *b, size_t n);

static inline void
rp_headbuf_reset(rp_headbuf_t *b)
{
    b->len = 0;
}

static inline void
rp_headbuf_add(rp_headbuf_t *b, const void *s, size_t n)
{
    if (b->cap - b->len < n) {
        rp_headbuf_grow(b, n);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* A string literal. */
#define rp_headbuf_add_lit(b, s) rp_headbuf_add((b), (s), sizeof(s) - 1)

static inline void
rp_headbuf_add_str(rp_headbuf_t *b, const char *s)
{
    rp_headbuf_add(b, s, strlen(s));
}

/* "name: value\r\n" */
void rp_headbuf_add_field(rp_headbuf_t *b, const char *name, size_t nlen, const char *value,
                          size_t vlen);

/* "name: v\r\n", v in decimal (Content-Length). */
void rp_headbuf_add_uint_field(rp_headbuf_t *b, const char *name, size_t nlen, uint64_t v);

/* v in decimal / in lowercase hex (chunk sizes). */
void rp_headbuf_add_uint(rp_headbuf_t *b, uint64_t v);
void rp_headbuf_add_hex(rp_headbuf_t *b, uint64_t v);

/* Writes v in decimal into out (at least 21 bytes), NUL-terminated; returns
 * the length. */
size_t rp_fmt_uint(char *out, uint64_t v);

/* The same in lowercase hex (at least 17 bytes). */
size_t rp_fmt_hex(char *out, uint64_t v);

#endif
