/* rp.c: allocation helpers and the clock. */
#include "rp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* malloc and memset, not calloc: glibc 2.36's calloc never takes a chunk
 * from the thread's cache (tcache), so each call goes through _int_malloc,
 * about four times the cost of a cached malloc of up to 1032 bytes. */
void *
rp_xalloc(size_t size)
{
    void  *p = malloc(size ? size : 1);

    if (p == NULL) {
        fprintf(stderr, "rproxy: out of memory allocating %zu bytes\n", size);
        abort();
    }
    return memset(p, 0, size);
}

void *
rp_xrealloc(void *p, size_t size)
{
    void  *n = realloc(p, size ? size : 1);

    if (n == NULL) {
        fprintf(stderr, "rproxy: out of memory reallocating %zu bytes\n", size);
        abort();
    }
    return n;
}

char *
rp_xstrndup(const char *s, size_t n)
{
    char  *d = rp_xalloc(n + 1);

    memcpy(d, s, n);
    return d;
}

char *
rp_xstrdup(const char *s)
{
    return rp_xstrndup(s, strlen(s));
}

double
rp_clock(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static __thread unsigned  now_holds;     /* rp_now_hold() depth            */
static __thread int       now_read;      /* now_at holds this hold's read  */
static __thread double    now_at;

double
rp_now(void)
{
    if (now_read) {
        return now_at;
    }
    if (now_holds == 0) {
        return rp_clock();
    }
    now_at = rp_clock();
    now_read = 1;
    return now_at;
}

void
rp_now_hold(void)
{
    now_holds++;
}

void
rp_now_release(void)
{
    if (--now_holds == 0) {
        now_read = 0;
    }
}

struct timeval
rp_timeval(double s)
{
    struct timeval  tv;

    if (s < 0) {
        s = 0;                             /* a deadline already past: at once */
    }
    tv.tv_sec = (time_t) s;
    tv.tv_usec = (suseconds_t) ((s - (double) tv.tv_sec) * 1e6);
    return tv;
}
