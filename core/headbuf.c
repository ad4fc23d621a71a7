/* headbuf.c: the flat buffer heads are built in, and the integer formatting
 * that replaces printf on the request path. */
#include "headbuf.h"

#include <stdlib.h>

void
rp_headbuf_init(rp_headbuf_t *b, size_t cap)
{
    b->p = rp_xrealloc(NULL, cap);
    b->len = 0;
    b->cap = cap;
}

void
rp_headbuf_cleanup(rp_headbuf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void
rp_headbuf_grow(rp_headbuf_t *b, size_t n)
{
    size_t  cap = b->cap ? b->cap : 256;

    while (cap - b->len < n) {
        cap *= 2;
    }
    b->p = rp_xrealloc(b->p, cap);
    b->cap = cap;
}

void
rp_headbuf_add_field(rp_headbuf_t *b, const char *name, size_t nlen, const char *value,
                     size_t vlen)
{
    char  *p;

    if (b->cap - b->len < nlen + vlen + 4) {
        rp_headbuf_grow(b, nlen + vlen + 4);
    }
    p = b->p + b->len;
    memcpy(p, name, nlen);
    p += nlen;
    *p++ = ':';
    *p++ = ' ';
    memcpy(p, value, vlen);
    p += vlen;
    *p++ = '\r';
    *p++ = '\n';
    b->len = (size_t) (p - b->p);
}

/* v's digits in base (10 or 16), most significant first, and a NUL;
 * inlined into each caller, so the division is by a constant. */
static inline size_t
fmt_radix(char *out, uint64_t v, unsigned base)
{
    static const char  digits[] = "0123456789abcdef";
    char               tmp[20];
    size_t             n = 0, i;

    do {
        tmp[n++] = digits[v % base];
        v /= base;
    } while (v != 0);
    for (i = 0; i < n; i++) {
        out[i] = tmp[n - 1 - i];
    }
    out[n] = '\0';
    return n;
}

size_t
rp_fmt_uint(char *out, uint64_t v)
{
    return fmt_radix(out, v, 10);
}

size_t
rp_fmt_hex(char *out, uint64_t v)
{
    return fmt_radix(out, v, 16);
}

void
rp_headbuf_add_uint(rp_headbuf_t *b, uint64_t v)
{
    char  s[21];

    rp_headbuf_add(b, s, rp_fmt_uint(s, v));
}

void
rp_headbuf_add_uint_field(rp_headbuf_t *b, const char *name, size_t nlen, uint64_t v)
{
    char  s[21];

    rp_headbuf_add_field(b, name, nlen, s, rp_fmt_uint(s, v));
}

void
rp_headbuf_add_hex(rp_headbuf_t *b, uint64_t v)
{
    char  s[17];

    rp_headbuf_add(b, s, rp_fmt_hex(s, v));
}
