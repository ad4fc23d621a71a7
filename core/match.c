/* match.c: the built-in routing tests: a vhost by Host, a route by path
 * (exact, prefix, glob, regex), and the URI rewrite of a route. */
#include "match.h"

#include <limits.h>
#include <regex.h>
#include <string.h>

/* The search and capture offsets come from REG_STARTEND, so that a path
 * (not NUL-terminated: it points into the request buffer) is matched in
 * place, with no copy and no length limit. glibc and the BSDs have it. */
#ifndef REG_STARTEND
#error "rproxy needs regexec() with REG_STARTEND (glibc, BSD libc)"
#endif

/* %0..%9 in a rewrite: the whole match and nine groups. */
#define MATCH_NCAPTURES 10

/* A bounded output for rp_match_rewrite(): len < cap always holds, so the
 * terminating NUL has room. */
typedef struct {
    char    *out;   /* borrowed: the caller's buffer */
    size_t   cap;   /* its usable size, <= INT_MAX + 1 so len fits an int */
    size_t   len;   /* bytes written so far */
} match_buf_t;

/* ASCII only: host names are compared byte-wise, whatever the locale. */
static unsigned char
host_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char) (c - 'A' + 'a') : c;
}

static int
host_eq(const char *a, const char *b, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (host_lower((unsigned char) a[i]) != host_lower((unsigned char) b[i])) {
            return 0;
        }
    }
    return 1;
}

/* Returns the length of the name part of a Host value: without ":port", and
 * without the trailing dot of a fully-qualified name. An IPv6 literal keeps
 * its brackets ("[::1]:8080" -> "[::1]"); a bare IPv6 address (invalid in
 * Host, RFC 9110 7.2, but seen) has several colons and is left whole. */
static size_t
host_name_len(const char *host, size_t hlen)
{
    const char  *p;

    if (hlen > 0 && host[0] == '[') {
        p = memchr(host, ']', hlen);
        if (p != NULL) {
            hlen = (size_t) (p - host) + 1;
        }
    } else if ((p = memchr(host, ':', hlen)) != NULL
               && memchr(p + 1, ':', hlen - (size_t) (p - host) - 1) == NULL) {
        hlen = (size_t) (p - host);
    }
    if (hlen > 0 && host[hlen - 1] == '.') {
        hlen--;
    }
    return hlen;
}

/* "*.a.com" and "www.a.*" are wildcards; any other '*' is a literal byte,
 * as in nginx's server_name, so that a name never matches by accident. */
static int
host_is_wildcard(const char *pattern)
{
    size_t  n = strlen(pattern);

    return (n == 1 && pattern[0] == '*')
           || (n >= 2 && ((pattern[0] == '*' && pattern[1] == '.')
                          || (pattern[n - 2] == '.' && pattern[n - 1] == '*')));
}

int
rp_match_host(const char *pattern, const char *host, size_t hlen)
{
    size_t  n, plen;

    if (pattern == NULL) {
        return 0;
    }
    n = host_name_len(host, hlen);
    plen = strlen(pattern);

    if (!host_is_wildcard(pattern)) {
        return n == plen && host_eq(host, pattern, n);
    }
    if (plen == 1) {
        return 1;
    }
    /* "*.a.com": the suffix ".a.com" after at least one byte of label */
    if (pattern[0] == '*') {
        return n > plen - 1 && host_eq(host + n - (plen - 1), pattern + 1, plen - 1);
    }
    /* "www.a.*": the prefix "www.a." before at least one byte of label */
    return n > plen - 1 && host_eq(host, pattern, plen - 1);
}

/* Returns 1 when a name of v (its name or an alias) of the given kind
 * (wildcard or exact) matches host. */
static int
vhost_matches(const rp_vhost_conf_t *v, int wildcard, const char *host, size_t hlen)
{
    unsigned  i;

    if (v->name != NULL && host_is_wildcard(v->name) == wildcard
        && rp_match_host(v->name, host, hlen)) {
        return 1;
    }
    for (i = 0; i < v->naliases; i++) {
        if (v->aliases[i] != NULL && host_is_wildcard(v->aliases[i]) == wildcard
            && rp_match_host(v->aliases[i], host, hlen)) {
            return 1;
        }
    }
    return 0;
}

/* Two passes, exact names then wildcards, so that "a.example.com" declared
 * after "*.example.com" still wins, whatever the file order. */
const rp_vhost_conf_t *
rp_match_vhost(const rp_config_t *conf, const char *host, size_t hlen)
{
    unsigned  i;
    int       wildcard;

    for (wildcard = 0; wildcard <= 1; wildcard++) {
        for (i = 0; i < conf->nvhosts; i++) {
            if (vhost_matches(&conf->vhosts[i], wildcard, host, hlen)) {
                return &conf->vhosts[i];
            }
        }
    }
    for (i = 0; i < conf->nvhosts; i++) {
        if (conf->vhosts[i].is_default) {
            return &conf->vhosts[i];
        }
    }
    return NULL;
}

/* Reads one byte of a class at p, honouring '\' escapes; returns what follows. */
static const char *
glob_class_byte(const char *p, unsigned char *b)
{
    if (p[0] == '\\' && p[1] != '\0') {
        p++;
    }
    *b = (unsigned char) *p;
    return p + 1;
}

/* Tests c against the class "[...]" at p; *next gets the byte after its ']'.
 * A ']' right after "[", "[!" or "[^" is a member, as in fnmatch(3).
 * Returns 1 or 0, or -1 when the class is not closed (then '[' is literal). */
static int
glob_class(const char *p, unsigned char c, const char **next)
{
    unsigned char  lo, hi;
    int            neg, hit, first;

    p++;
    neg = (*p == '!' || *p == '^');
    p += neg;
    hit = 0;
    for (first = 1; *p != ']' || first; first = 0) {
        if (*p == '\0') {
            return -1;
        }
        p = glob_class_byte(p, &lo);
        hi = lo;
        if (p[0] == '-' && p[1] != ']' && p[1] != '\0') {
            p = glob_class_byte(p + 1, &hi);
        }
        hit |= (lo <= c && c <= hi);
    }
    *next = p + 1;
    return hit != neg;
}

/* Tests c against the one-byte element at p (a byte, '?', a class or an
 * escape); *next gets the element's end. p is not '*' nor at the end. */
static int
glob_elem(const char *p, unsigned char c, const char **next)
{
    int  rc;

    switch (*p) {
    case '?':
        *next = p + 1;
        return 1;
    case '[':
        if ((rc = glob_class(p, c, next)) >= 0) {
            return rc;
        }
        break;
    case '\\':
        if (p[1] != '\0') {      /* a trailing '\' stands for itself */
            p++;
        }
        break;
    }
    *next = p + 1;
    return (unsigned char) *p == c;
}

/* Every element but '*' takes exactly one byte, so on a mismatch it is enough
 * to let the last '*' seen swallow one byte more and retry from there: an
 * earlier star can never do better. That bounds the work by
 * strlen(pattern) * slen, where recursion would be exponential in stars. */
int
rp_match_glob(const char *pattern, const char *s, size_t slen)
{
    const char  *p, *next, *star_p;
    size_t       i, star_i;

    p = pattern;
    i = 0;
    star_p = NULL;
    star_i = 0;
    while (i < slen) {
        if (*p == '*') {
            star_p = ++p;
            star_i = i;
            continue;
        }
        if (*p != '\0' && glob_elem(p, (unsigned char) s[i], &next)) {
            p = next;
            i++;
            continue;
        }
        if (star_p == NULL) {
            return 0;
        }
        p = star_p;
        i = ++star_i;
    }
    while (*p == '*') {
        p++;
    }
    return *p == '\0';
}

/* Searches re in the n bytes at s, which need not be NUL-terminated; pm gets
 * nmatch captures, offsets from s. Returns regexec()'s code. */
static int
match_regexec(const regex_t *re, const char *s, size_t n, size_t nmatch, regmatch_t *pm)
{
    if (n > INT_MAX) {           /* regoff_t is an int in glibc */
        return REG_ESPACE;
    }
    pm[0].rm_so = 0;
    pm[0].rm_eo = (regoff_t) n;
    return regexec(re, s, nmatch, pm, REG_STARTEND);
}

static int
route_matches(const rp_route_conf_t *r, const char *path, size_t plen)
{
    regmatch_t  pm[1];
    size_t      n;

    switch (r->match) {
    case RP_MATCH_ANY:
        return 1;
    case RP_MATCH_REGEX:
        return match_regexec(&r->regex, path, plen, 1, pm) == 0;
    default:
        break;
    }
    if (r->pattern == NULL) {        /* a half-built route matches nothing */
        return 0;
    }
    n = strlen(r->pattern);
    switch (r->match) {
    case RP_MATCH_EXACT:
        return n == plen && memcmp(path, r->pattern, n) == 0;
    case RP_MATCH_PREFIX:
        return n <= plen && memcmp(path, r->pattern, n) == 0;
    case RP_MATCH_GLOB:
        return rp_match_glob(r->pattern, path, plen);
    default:
        return 0;
    }
}

const rp_route_conf_t *
rp_match_route(const rp_vhost_conf_t *v, const char *path, size_t plen)
{
    unsigned  i;

    if (path == NULL) {              /* memcmp() and regexec() want an address */
        path = "";
        plen = 0;
    }
    for (i = 0; i < v->nroutes; i++) {
        if (route_matches(&v->routes[i], path, plen)) {
            return &v->routes[i];
        }
    }
    return NULL;
}

/* Appends n bytes; RP_ERROR, with nothing written, when they and the NUL
 * would not fit. */
static int
match_buf_add(match_buf_t *b, const char *s, size_t n)
{
    if (n >= b->cap - b->len) {
        return RP_ERROR;
    }
    if (n > 0) {
        memcpy(b->out + b->len, s, n);
        b->len += n;
    }
    return RP_OK;
}

/* Appends the replacement to, with %0..%9 taken from pm over path. An unset
 * group is empty; '%' before anything but a digit or '%' is kept as is. */
static int
rewrite_expand(match_buf_t *b, const char *to, const char *path, const regmatch_t *pm,
               size_t nsub)
{
    const char  *pct;
    unsigned     d;

    while (*to != '\0') {
        if ((pct = strchr(to, '%')) == NULL) {
            return match_buf_add(b, to, strlen(to));
        }
        if (match_buf_add(b, to, (size_t) (pct - to)) != RP_OK) {
            return RP_ERROR;
        }
        if (pct[1] >= '0' && pct[1] <= '9') {
            d = (unsigned) (pct[1] - '0');
            if (d <= nsub && pm[d].rm_so >= 0
                && match_buf_add(b, path + pm[d].rm_so, (size_t) (pm[d].rm_eo - pm[d].rm_so))
                       != RP_OK) {
                return RP_ERROR;
            }
            to = pct + 2;
            continue;
        }
        if (match_buf_add(b, "%", 1) != RP_OK) {
            return RP_ERROR;
        }
        to = pct + (pct[1] == '%' ? 2 : 1);
    }
    return RP_OK;
}

/* rewrite_re must be compiled without REG_NOSUB: the match bounds are needed.
 * out is left empty on RP_ERROR, untouched on RP_DECLINED. */
int
rp_match_rewrite(const rp_route_conf_t *r, const char *path, size_t plen, char *out,
                 size_t outlen)
{
    regmatch_t   pm[MATCH_NCAPTURES];
    match_buf_t  b;
    size_t       so, eo;
    int          rc;

    if (!r->has_rewrite) {
        return RP_DECLINED;
    }
    if (path == NULL) {
        path = "";
        plen = 0;
    }
    rc = match_regexec(&r->rewrite_re, path, plen, MATCH_NCAPTURES, pm);
    if (rc == REG_NOMATCH) {
        return RP_DECLINED;
    }
    if (rc != 0 || out == NULL || outlen == 0) {
        return RP_ERROR;
    }
    b.out = out;
    b.cap = outlen > (size_t) INT_MAX ? (size_t) INT_MAX + 1 : outlen;
    b.len = 0;
    so = (size_t) pm[0].rm_so;
    eo = (size_t) pm[0].rm_eo;
    if (match_buf_add(&b, path, so) != RP_OK
        || rewrite_expand(&b, r->rewrite_to ? r->rewrite_to : "", path, pm, r->rewrite_re.re_nsub)
               != RP_OK
        || match_buf_add(&b, path + eo, plen - eo) != RP_OK) {
        out[0] = '\0';
        return RP_ERROR;
    }
    out[b.len] = '\0';
    return (int) b.len;
}
