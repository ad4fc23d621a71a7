/* test_shared_dict.c: core/shared_dict.c: values and operations, TTL expiry,
 * LRU eviction within the byte budget, the registry by name and size, and
 * exact counts under concurrent increments (also run under TSan by hand). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shared_dict.h"

#define KB 1024

static void
sleep_s(double s)
{
    struct timespec  ts = { (time_t) s, (long) ((s - (time_t) s) * 1e9) };

    nanosleep(&ts, NULL);
}

static int
set_str(rp_shdict_t *d, const char *k, const char *v, size_t vlen, double ttl)
{
    rp_shval_t  val = { .type = RP_SHVAL_STRING, .str = v, .len = vlen };

    return rp_shdict_set(d, k, strlen(k), &val, ttl);
}

static int
set_num(rp_shdict_t *d, const char *k, double n, double ttl)
{
    rp_shval_t  val = { .type = RP_SHVAL_NUMBER, .number = n };

    return rp_shdict_set(d, k, strlen(k), &val, ttl);
}

static int
has(rp_shdict_t *d, const char *k)
{
    rp_shval_t  v;
    int         rc = rp_shdict_get(d, k, strlen(k), &v);

    rp_shval_cleanup(&v);
    return rc == RP_OK;
}

static double
get_num(rp_shdict_t *d, const char *k)
{
    rp_shval_t  v;

    assert_int_equal(rp_shdict_get(d, k, strlen(k), &v), RP_OK);
    assert_int_equal(v.type, RP_SHVAL_NUMBER);
    return v.number;
}

typedef struct {
    char      keys[16][32];
    unsigned  n;
    unsigned  stop_after;       /* 0: never stop */
} keys_seen_t;

static int
on_key(const char *key, size_t klen, void *arg)
{
    keys_seen_t  *s = arg;

    assert_true(klen < sizeof(s->keys[0]));
    memcpy(s->keys[s->n], key, klen);
    s->keys[s->n][klen] = '\0';
    s->n++;
    return s->stop_after && s->n >= s->stop_after;
}

/* For threads: cmocka's asserts are not thread-safe. */
static int
on_key_quiet(const char *key, size_t klen, void *arg)
{
    (void) key;
    (void) klen;
    ((keys_seen_t *) arg)->n++;
    return 0;
}

static void
test_values_and_operations(void **state)
{
    rp_shdict_t  *d = rp_shdict_open("ops", 128 * KB);
    rp_shval_t    v, b = { .type = RP_SHVAL_BOOLEAN, .boolean = 7 };
    rp_shval_t    nil = { .type = RP_SHVAL_NIL };
    keys_seen_t   seen;
    char          buf[4];
    double        n;

    (void) state;
    assert_non_null(d);
    assert_string_equal(rp_shdict_name(d), "ops");
    assert_int_equal(rp_shdict_size(d), 128 * KB);

    /* strings are binary-safe, and so are keys */
    assert_int_equal(set_str(d, "s", "a\0b", 3, 0), RP_OK);
    assert_int_equal(rp_shdict_get(d, "s", 1, &v), RP_OK);
    assert_int_equal(v.type, RP_SHVAL_STRING);
    assert_int_equal(v.len, 3);
    assert_memory_equal(v.str, "a\0b", 3);
    rp_shval_cleanup(&v);
    assert_int_equal(v.type, RP_SHVAL_NIL);
    assert_int_equal(rp_shdict_set(d, "k\0x", 3, &b, 0), RP_OK);
    assert_int_equal(rp_shdict_get(d, "k\0x", 3, &v), RP_OK);
    assert_int_equal(v.type, RP_SHVAL_BOOLEAN);
    assert_int_equal(v.boolean, 1);
    assert_int_equal(rp_shdict_get(d, "k", 1, &v), RP_DECLINED);
    assert_int_equal(set_str(d, "", "", 0, 0), RP_OK);   /* empty key and value */
    assert_int_equal(rp_shdict_get(d, "", 0, &v), RP_OK);
    assert_int_equal(v.len, 0);
    rp_shval_cleanup(&v);

    /* get_buf copies into the caller's buffer, or says how much it needs */
    assert_int_equal(set_str(d, "long", "0123456789", 10, 0), RP_OK);
    assert_int_equal(rp_shdict_get_buf(d, "long", 4, &v, buf, sizeof(buf)), RP_AGAIN);
    assert_int_equal(v.len, 10);
    assert_int_equal(set_str(d, "long", "xyz", 3, 0), RP_OK);
    assert_int_equal(rp_shdict_get_buf(d, "long", 4, &v, buf, sizeof(buf)), RP_OK);
    assert_ptr_equal(v.str, buf);
    assert_memory_equal(buf, "xyz", 3);
    assert_int_equal(rp_shdict_get_buf(d, "none", 4, &v, buf, sizeof(buf)), RP_DECLINED);

    /* set replaces; NIL deletes */
    assert_int_equal(set_num(d, "n", 1.5, 0), RP_OK);
    assert_true(get_num(d, "n") == 1.5);
    assert_int_equal(set_num(d, "n", -2, 0), RP_OK);
    assert_true(get_num(d, "n") == -2);
    assert_int_equal(rp_shdict_set(d, "n", 1, &nil, 0), RP_OK);
    assert_false(has(d, "n"));
    assert_int_equal(rp_shdict_set(d, "n", 1, &nil, 0), RP_OK);   /* deleting nothing */

    /* add only when missing */
    v = (rp_shval_t) { .type = RP_SHVAL_NUMBER, .number = 10 };
    assert_int_equal(rp_shdict_add(d, "a", 1, &v, 0), RP_OK);
    v.number = 11;
    assert_int_equal(rp_shdict_add(d, "a", 1, &v, 0), RP_DECLINED);
    assert_true(get_num(d, "a") == 10);
    assert_int_equal(rp_shdict_add(d, "a", 1, &nil, 0), RP_DECLINED);
    assert_int_equal(rp_shdict_add(d, "zz", 2, &nil, 0), RP_OK);
    assert_false(has(d, "zz"));

    /* incr */
    assert_int_equal(rp_shdict_incr(d, "a", 1, 5, 0, 0, 0, &n), RP_OK);
    assert_true(n == 15);
    assert_int_equal(rp_shdict_incr(d, "a", 1, -0.5, 1, 100, 0, &n), RP_OK);  /* init unused */
    assert_true(n == 14.5);
    assert_int_equal(rp_shdict_incr(d, "c", 1, 1, 0, 0, 0, &n), RP_DECLINED);
    assert_false(has(d, "c"));
    assert_int_equal(rp_shdict_incr(d, "c", 1, 2, 1, 40, 0, &n), RP_OK);
    assert_true(n == 42);
    assert_true(get_num(d, "c") == 42);
    assert_int_equal(rp_shdict_incr(d, "s", 1, 1, 1, 0, 0, &n), RP_ERROR);   /* a string */
    assert_int_equal(rp_shdict_incr(d, "c", 1, 1, 1, 0, -1, &n), RP_ERROR);  /* bad ttl */

    /* delete */
    assert_int_equal(rp_shdict_delete(d, "c", 1), RP_OK);
    assert_int_equal(rp_shdict_delete(d, "c", 1), RP_DECLINED);
    assert_false(has(d, "c"));

    /* keys: live ones, most recently used first, up to max */
    rp_shdict_flush_all(d);
    assert_int_equal(set_num(d, "k1", 1, 0), RP_OK);
    assert_int_equal(set_num(d, "k2", 2, 0), RP_OK);
    assert_int_equal(set_num(d, "k3", 3, 0), RP_OK);
    assert_true(has(d, "k1"));
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(rp_shdict_keys(d, 0, on_key, &seen), RP_OK);
    assert_int_equal(seen.n, 3);
    assert_string_equal(seen.keys[0], "k1");
    assert_string_equal(seen.keys[1], "k3");
    assert_string_equal(seen.keys[2], "k2");
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(rp_shdict_keys(d, 2, on_key, &seen), RP_OK);
    assert_int_equal(seen.n, 2);
    memset(&seen, 0, sizeof(seen));
    seen.stop_after = 1;
    assert_int_equal(rp_shdict_keys(d, 0, on_key, &seen), RP_DONE);
    assert_int_equal(seen.n, 1);

    /* bad arguments */
    {
        char  *big = calloc(1, RP_SHDICT_MAX_KEY + 1);

        assert_int_equal(set_str(d, "x", "y", 1, -1), RP_ERROR);
        v = (rp_shval_t) { .type = RP_SHVAL_NUMBER, .number = 1 };
        assert_int_equal(rp_shdict_set(d, big, RP_SHDICT_MAX_KEY + 1, &v, 0), RP_ERROR);
        assert_int_equal(rp_shdict_get(d, big, RP_SHDICT_MAX_KEY + 1, &v), RP_ERROR);
        /* the longest key with a number always fits, even in the smallest dict */
        assert_int_equal(rp_shdict_incr(d, big, RP_SHDICT_MAX_KEY, 1, 1, 0, 0, &n), RP_OK);
        assert_true(n == 1);
        free(big);
    }
    rp_shdict_unref(d);
    assert_null(rp_shdict_find("ops"));
}

static void
test_ttl(void **state)
{
    rp_shdict_t  *d = rp_shdict_open("ttl", 128 * KB);
    rp_shval_t    v = { .type = RP_SHVAL_STRING, .str = "x", .len = 1 };
    keys_seen_t   seen;
    double        n;

    (void) state;
    assert_int_equal(set_num(d, "short", 1, 0.3), RP_OK);
    assert_int_equal(set_num(d, "forever", 1, 0), RP_OK);
    assert_int_equal(set_num(d, "long", 1, 60), RP_OK);
    assert_int_equal(rp_shdict_incr(d, "cnt", 3, 1, 1, 0, 0.3, &n), RP_OK);
    assert_int_equal(rp_shdict_incr(d, "cnt", 3, 1, 1, 0, 60, &n), RP_OK);   /* keeps 0.3 */
    assert_true(n == 2);
    assert_true(has(d, "short"));
    sleep_s(0.4);
    assert_false(has(d, "short"));
    assert_false(has(d, "cnt"));
    assert_true(has(d, "forever"));
    assert_true(has(d, "long"));

    /* expired entries are gone for add, incr, delete and keys too */
    assert_int_equal(set_num(d, "e1", 1, 0.01), RP_OK);
    assert_int_equal(set_num(d, "e2", 1, 0.01), RP_OK);
    assert_int_equal(set_num(d, "e3", 1, 0.01), RP_OK);
    assert_int_equal(set_num(d, "e4", 1, 0.01), RP_OK);
    sleep_s(0.05);
    assert_int_equal(rp_shdict_add(d, "e1", 2, &v, 0), RP_OK);
    assert_int_equal(rp_shdict_incr(d, "e2", 2, 1, 0, 0, 0, &n), RP_DECLINED);
    assert_int_equal(rp_shdict_delete(d, "e3", 2), RP_DECLINED);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(rp_shdict_keys(d, 0, on_key, &seen), RP_OK);
    assert_int_equal(seen.n, 3);                 /* e1, long, forever */
    assert_string_equal(seen.keys[0], "e1");
    rp_shdict_unref(d);
}

static void
test_lru_eviction(void **state)
{
    rp_shdict_t  *d = rp_shdict_open("lru", 128 * KB);
    static char   val[10000];
    size_t        free0, cost, cap, i;
    char          k[32];

    (void) state;
    memset(val, 'v', sizeof(val));
    free0 = rp_shdict_free_space(d);
    assert_true(free0 < 128 * KB);               /* the bucket array is charged */
    assert_int_equal(set_str(d, "k00", val, sizeof(val), 0), RP_OK);
    cost = free0 - rp_shdict_free_space(d);
    assert_true(cost >= sizeof(val) + 3 + 32);   /* key, value and bookkeeping */
    assert_true(cost <= sizeof(val) + 3 + 256);
    cap = free0 / cost;
    assert_true(cap >= 10 && cap < 16);
    for (i = 1; i < cap; i++) {
        snprintf(k, sizeof(k), "k%02zu", i);
        assert_int_equal(set_str(d, k, val, sizeof(val), 0), RP_OK);
    }
    for (i = 0; i < cap; i++) {
        snprintf(k, sizeof(k), "k%02zu", i);
        assert_true(has(d, k));                  /* k00 .. used in order: k00 is oldest */
    }
    assert_true(rp_shdict_free_space(d) < cost);

    assert_true(has(d, "k00"));                  /* now k01 is the oldest */
    snprintf(k, sizeof(k), "k%02zu", cap);
    assert_int_equal(set_str(d, k, val, sizeof(val), 0), RP_OK);
    assert_true(has(d, "k00"));
    assert_false(has(d, "k01"));
    assert_true(has(d, "k02"));                  /* ... and now k03 is */
    snprintf(k, sizeof(k), "k%02zu", cap + 1);
    assert_int_equal(set_str(d, k, val, sizeof(val), 0), RP_OK);
    assert_false(has(d, "k03"));
    assert_true(has(d, "k02"));

    /* a number in place of a string gives space back */
    assert_int_equal(set_num(d, "k00", 1, 0), RP_OK);
    assert_true(rp_shdict_free_space(d) >= cost - 200);

    /* an entry larger than the dict fails and changes nothing */
    {
        char  *huge = malloc(128 * KB);

        memset(huge, 'h', 128 * KB);
        assert_int_equal(set_str(d, "k02", huge, 128 * KB, 0), RP_ERROR);
        assert_int_equal(set_str(d, "k02", huge, free0, 0), RP_ERROR);   /* + overhead */
        assert_true(has(d, "k02"));
        /* one that needs the whole dict evicts everything else */
        assert_int_equal(set_str(d, "big", huge, free0 - 200, 0), RP_OK);
        assert_true(has(d, "big"));
        assert_false(has(d, "k02"));
        assert_false(has(d, "k00"));
        free(huge);
    }
    rp_shdict_flush_all(d);
    assert_int_equal(rp_shdict_free_space(d), free0);
    rp_shdict_unref(d);
}

/* Many small entries: the table grows, its growth is charged, and deleting
 * everything or flushing gives it all back. */
static void
test_many_keys(void **state)
{
    rp_shdict_t  *d = rp_shdict_open("many", 1024 * KB);
    size_t        free0, freed, i;
    char          k[32];

    (void) state;
    for (i = 0; i < 5000; i++) {
        snprintf(k, sizeof(k), "key-%zu", i);
        assert_int_equal(set_num(d, k, (double) i, 0), RP_OK);
    }
    for (i = 0; i < 5000; i++) {
        snprintf(k, sizeof(k), "key-%zu", i);
        assert_true(get_num(d, k) == (double) i);
    }
    for (i = 0; i < 5000; i++) {
        snprintf(k, sizeof(k), "key-%zu", i);
        assert_int_equal(rp_shdict_delete(d, k, strlen(k)), RP_OK);
    }
    freed = rp_shdict_free_space(d);
    assert_true(freed < 1024 * KB - 4096);       /* the grown array stays, charged */
    rp_shdict_flush_all(d);
    free0 = rp_shdict_free_space(d);
    assert_int_equal(free0, freed);
    rp_shdict_unref(d);
}

static void
test_registry(void **state)
{
    rp_shdict_t  *a, *b, *c;
    double        n;

    (void) state;
    assert_null(rp_shdict_find(NULL));
    assert_null(rp_shdict_open("small", 1000));
    assert_null(rp_shdict_open("", 128 * KB));
    assert_null(rp_shdict_open(NULL, 128 * KB));
    assert_null(rp_shdict_find("reg"));

    a = rp_shdict_open("reg", 128 * KB);
    assert_int_equal(set_num(a, "x", 1, 0), RP_OK);
    b = rp_shdict_open("reg", 128 * KB);         /* a reload keeping the declaration */
    assert_ptr_equal(a, b);
    assert_true(get_num(b, "x") == 1);
    assert_ptr_equal(rp_shdict_find("reg"), a);
    rp_shdict_unref(b);                          /* the old config goes */
    assert_ptr_equal(rp_shdict_find("reg"), a);
    assert_true(get_num(a, "x") == 1);

    c = rp_shdict_open("reg", 256 * KB);         /* resized: a new, empty dict */
    assert_ptr_not_equal(c, a);
    assert_ptr_equal(rp_shdict_find("reg"), c);
    assert_false(has(c, "x"));
    assert_true(get_num(a, "x") == 1);           /* the old one lives on for its holders */
    assert_int_equal(rp_shdict_incr(a, "x", 1, 1, 0, 0, 0, &n), RP_OK);
    b = rp_shdict_find_ref("reg");
    assert_ptr_equal(b, c);
    rp_shdict_unref(b);
    rp_shdict_unref(a);                          /* frees the old one */
    assert_ptr_equal(rp_shdict_find("reg"), c);
    b = rp_shdict_open("reg", 128 * KB);         /* back to the old size: new again */
    assert_ptr_not_equal(b, c);
    rp_shdict_unref(b);
    rp_shdict_unref(c);
    assert_null(rp_shdict_find("reg"));
    assert_null(rp_shdict_find_ref("reg"));

    /* shutdown frees what is left, referenced or not */
    a = rp_shdict_open("left1", 128 * KB);
    b = rp_shdict_open("left2", 128 * KB);
    c = rp_shdict_open("left2", 256 * KB);       /* b is stale but still referenced */
    assert_int_equal(set_num(a, "x", 1, 0), RP_OK);
    rp_shdict_shutdown();
    assert_null(rp_shdict_find("left1"));
    assert_null(rp_shdict_find("left2"));
}

#define THREADS 8
#define INCRS   20000

typedef struct {
    rp_shdict_t  *d;
    unsigned      id;
} worker_arg_t;

static void *
incr_worker(void *arg)
{
    worker_arg_t  *w = arg;
    double         n;
    unsigned       i;

    for (i = 0; i < INCRS; i++) {
        if (rp_shdict_incr(w->d, "hits", 4, 1, 1, 0, 0, &n) != RP_OK) {
            return (void *) 1;
        }
    }
    return NULL;
}

/* Everything at once on a small dict: eviction, expiry, keys and deletes race
 * with each other; what is checked is that nothing crashes or leaks, that
 * the budget holds, and (by TSan) that there is no data race. */
static void *
churn_worker(void *arg)
{
    worker_arg_t   *w = arg;
    static char     val[3000];
    rp_shval_t      v;
    keys_seen_t     seen;
    unsigned        i, r = w->id * 2654435761u;
    char            k[32];

    for (i = 0; i < 5000; i++) {
        r = r * 1103515245u + 12345u;
        snprintf(k, sizeof(k), "c%u", (r >> 8) % 200);
        switch ((r >> 4) % 6) {
        case 0:
        case 1:
            v = (rp_shval_t) { .type = RP_SHVAL_STRING, .str = val, .len = (r >> 12) % 3000 };
            rp_shdict_set(w->d, k, strlen(k), &v, (r & 1) ? 0.001 : 0);
            break;
        case 2:
            if (rp_shdict_get(w->d, k, strlen(k), &v) == RP_OK) {
                rp_shval_cleanup(&v);
            }
            break;
        case 3:
            rp_shdict_delete(w->d, k, strlen(k));
            break;
        case 4:
            memset(&seen, 0, sizeof(seen));
            rp_shdict_keys(w->d, 16, on_key_quiet, &seen);
            break;
        default:
            rp_shdict_incr(w->d, k, strlen(k), 1, 1, 0, 0, &v.number);
            break;
        }
        if (rp_shdict_free_space(w->d) > 128 * KB) {
            return (void *) 1;
        }
    }
    return NULL;
}

static void
test_threads(void **state)
{
    rp_shdict_t   *d = rp_shdict_open("threads", 128 * KB);
    rp_shdict_t   *c = rp_shdict_open("churn", 128 * KB);
    pthread_t      t[THREADS], u[THREADS];
    worker_arg_t   args[THREADS], cargs[THREADS];
    void          *res;
    unsigned       i;

    (void) state;
    for (i = 0; i < THREADS; i++) {
        args[i] = (worker_arg_t) { d, i };
        cargs[i] = (worker_arg_t) { c, i };
        assert_int_equal(pthread_create(&t[i], NULL, incr_worker, &args[i]), 0);
        assert_int_equal(pthread_create(&u[i], NULL, churn_worker, &cargs[i]), 0);
    }
    for (i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(t[i], &res), 0);
        assert_null(res);
        assert_int_equal(pthread_join(u[i], &res), 0);
        assert_null(res);
    }
    assert_true(get_num(d, "hits") == (double) THREADS * INCRS);
    rp_shdict_unref(d);
    rp_shdict_unref(c);
}

int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_values_and_operations),
        cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_lru_eviction),
        cmocka_unit_test(test_many_keys),
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_threads),
    };
    int  rc = cmocka_run_group_tests(tests, NULL, NULL);

    rp_shdict_shutdown();
    return rc;
}
