/* shared_dict.c: process-wide dictionaries (rproxy.shared.NAME): a registry
 * by name, and per dict a chained hash table plus an LRU list within a byte
 * budget, under the dict's own mutex. Nothing here knows about Lua. */
#include "shared_dict.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define SHDICT_BUCKETS_MIN   16
#define SHDICT_MALLOC_COST   16   /* what malloc keeps beside each block: counted too */

typedef struct shdict_node_s shdict_node_t;

/* One entry: a single malloc'd block, key bytes then value bytes in data[].
 * Built before the lock is taken and freed after it is released. */
struct shdict_node_s {
    shdict_node_t    *hnext;    /* bucket chain                                        */
    shdict_node_t    *prev;     /* LRU list, towards the most recently used (head)     */
    shdict_node_t    *next;     /* LRU list, towards the least recently used (tail)    */
    uint64_t          hash;
    double            expires;  /* rp_clock() deadline; 0: never                       */
    double            number;   /* NUMBER                                              */
    size_t            vlen;     /* STRING: bytes after the key in data[]               */
    size_t            cost;     /* bytes charged to the dict's budget                  */
    uint32_t          klen;
    uint8_t           type;     /* rp_shval_type_e, never NIL                          */
    uint8_t           boolean;
    char              data[];   /* key, then a string value                            */
};

struct rp_shdict_s {
    pthread_mutex_t   lock;     /* guards every field below up to the registry's       */
    size_t            size;     /* the budget, bytes (immutable)                       */
    size_t            used;     /* bytes charged: nodes plus the bucket array          */
    size_t            count;    /* nodes                                               */
    shdict_node_t   **buckets;  /* owned; nbuckets chains                              */
    size_t            nbuckets; /* a power of two                                      */
    shdict_node_t    *head;     /* most recently used                                  */
    shdict_node_t    *tail;     /* least recently used: evicted first                  */
    uint64_t          k0, k1;   /* SipHash key: keys may come from clients             */
    /* guarded by the registry lock */
    char             *name;     /* owned (immutable)                                   */
    unsigned          refs;
    int               stale;    /* replaced by a dict of another size: not found       */
    rp_shdict_t      *rnext;    /* registry list                                       */
};

static pthread_mutex_t  shdict_registry_lock = PTHREAD_MUTEX_INITIALIZER;
static rp_shdict_t     *shdict_registry;

/* ---- hashing: SipHash-1-3 with a random key per dict ------------------ */

#define SH_ROTL(x, b) (uint64_t) (((x) << (b)) | ((x) >> (64 - (b))))
#define SH_ROUND                                                                  \
    do {                                                                          \
        v0 += v1; v1 = SH_ROTL(v1, 13); v1 ^= v0; v0 = SH_ROTL(v0, 32);           \
        v2 += v3; v3 = SH_ROTL(v3, 16); v3 ^= v2;                                 \
        v0 += v3; v3 = SH_ROTL(v3, 21); v3 ^= v0;                                 \
        v2 += v1; v1 = SH_ROTL(v1, 17); v1 ^= v2; v2 = SH_ROTL(v2, 32);           \
    } while (0)

static uint64_t
shdict_hash(const rp_shdict_t *d, const char *key, size_t len)
{
    const unsigned char  *p = (const unsigned char *) key;
    uint64_t              v0 = 0x736f6d6570736575ULL ^ d->k0;
    uint64_t              v1 = 0x646f72616e646f6dULL ^ d->k1;
    uint64_t              v2 = 0x6c7967656e657261ULL ^ d->k0;
    uint64_t              v3 = 0x7465646279746573ULL ^ d->k1;
    uint64_t              m, b = (uint64_t) len << 56;
    size_t                i, tail = len & 7;

    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&m, p + i, 8);   /* host byte order: the hash never leaves the process */
        v3 ^= m;
        SH_ROUND;
        v0 ^= m;
    }
    for (i = 0; i < tail; i++) {
        b |= (uint64_t) p[len - tail + i] << (8 * i);
    }
    v3 ^= b;
    SH_ROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SH_ROUND;
    SH_ROUND;
    SH_ROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static void
shdict_seed(rp_shdict_t *d)
{
    uint64_t  k[2];

    if (getrandom(k, sizeof(k), 0) != (ssize_t) sizeof(k)) {
        /* no entropy yet: a weaker key still differs per process and dict */
        struct timespec  ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        k[0] = (uint64_t) ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t) (uintptr_t) d;
        k[1] = (uint64_t) ts.tv_sec ^ ((uint64_t) getpid() << 32);
    }
    d->k0 = k[0];
    d->k1 = k[1];
}

/* ---- nodes, the table and the LRU list (callers hold d->lock) --------- */

static size_t
shdict_cost(size_t klen, size_t vlen)
{
    size_t  n = sizeof(shdict_node_t) + klen + vlen + SHDICT_MALLOC_COST;

    return (n + 15) & ~(size_t) 15;
}

/* A node for key = *v, built outside any lock; NULL if the entry can never
 * fit in d (then nothing is allocated). Aborts on OOM, as rp_xalloc does:
 * the dict's budget already bounds what a script can make it allocate. */
static shdict_node_t *
shdict_node_new(rp_shdict_t *d, uint64_t hash, const char *key, size_t klen,
                const rp_shval_t *v, double expires)
{
    shdict_node_t  *n;
    size_t          vlen = v->type == RP_SHVAL_STRING ? v->len : 0;
    size_t          cost;

    if (vlen > d->size) {               /* also keeps shdict_cost() from overflowing */
        return NULL;
    }
    cost = shdict_cost(klen, vlen);
    if (cost > d->size) {
        return NULL;
    }
    n = rp_xalloc(sizeof(shdict_node_t) + klen + vlen);
    n->hash = hash;
    n->expires = expires;
    n->cost = cost;
    n->klen = (uint32_t) klen;
    n->type = (uint8_t) v->type;
    memcpy(n->data, key, klen);
    switch (v->type) {
    case RP_SHVAL_BOOLEAN:
        n->boolean = v->boolean != 0;
        break;
    case RP_SHVAL_NUMBER:
        n->number = v->number;
        break;
    case RP_SHVAL_STRING:
        n->vlen = vlen;
        if (vlen) {
            memcpy(n->data + klen, v->str, vlen);
        }
        break;
    default:
        break;
    }
    return n;
}

static void
shdict_free_list(shdict_node_t *n)
{
    shdict_node_t  *next;

    for (; n != NULL; n = next) {
        next = n->hnext;
        free(n);
    }
}

static int
shdict_expired(const shdict_node_t *n, double now)
{
    return n->expires != 0 && n->expires <= now;
}

static void
shdict_lru_unlink(rp_shdict_t *d, shdict_node_t *n)
{
    if (n->prev) {
        n->prev->next = n->next;
    } else {
        d->head = n->next;
    }
    if (n->next) {
        n->next->prev = n->prev;
    } else {
        d->tail = n->prev;
    }
    n->prev = n->next = NULL;
}

static void
shdict_lru_push(rp_shdict_t *d, shdict_node_t *n)
{
    n->prev = NULL;
    n->next = d->head;
    if (d->head) {
        d->head->prev = n;
    } else {
        d->tail = n;
    }
    d->head = n;
}

static void
shdict_touch(rp_shdict_t *d, shdict_node_t *n)
{
    if (d->head != n) {
        shdict_lru_unlink(d, n);
        shdict_lru_push(d, n);
    }
}

/* The node for key, live or expired, and where its chain link is. */
static shdict_node_t *
shdict_lookup(rp_shdict_t *d, uint64_t hash, const char *key, size_t klen, shdict_node_t ***link)
{
    shdict_node_t  **pp = &d->buckets[hash & (d->nbuckets - 1)];

    for (; *pp != NULL; pp = &(*pp)->hnext) {
        if ((*pp)->hash == hash && (*pp)->klen == klen && memcmp((*pp)->data, key, klen) == 0) {
            if (link) {
                *link = pp;
            }
            return *pp;
        }
    }
    return NULL;
}

/* Takes n out of the table and the list onto *garbage (chained through
 * hnext), to be freed once the lock is released. */
static void
shdict_remove(rp_shdict_t *d, shdict_node_t *n, shdict_node_t ***link, shdict_node_t **garbage)
{
    shdict_node_t  **pp = link ? *link : NULL;

    if (pp == NULL) {
        pp = &d->buckets[n->hash & (d->nbuckets - 1)];
        while (*pp != n) {
            pp = &(*pp)->hnext;
        }
    }
    *pp = n->hnext;
    shdict_lru_unlink(d, n);
    d->used -= n->cost;
    d->count--;
    n->hnext = *garbage;
    *garbage = n;
}

/* Doubles the bucket array when chains grow past one node on average, if the
 * budget allows it (the array is charged too, up to an eighth of the dict, so
 * that a number under the longest key always fits: see RP_SHDICT_MIN_SIZE). */
static void
shdict_maybe_grow(rp_shdict_t *d)
{
    shdict_node_t  **b, *n, *next;
    size_t           i, nb = d->nbuckets * 2, extra = d->nbuckets * sizeof(shdict_node_t *);

    if (d->count <= d->nbuckets || nb * sizeof(shdict_node_t *) > d->size / 8
        || d->used + extra > d->size) {
        return;
    }
    if ((b = calloc(nb, sizeof(shdict_node_t *))) == NULL) {
        return;                          /* longer chains, still correct */
    }
    for (i = 0; i < d->nbuckets; i++) {
        for (n = d->buckets[i]; n != NULL; n = next) {
            next = n->hnext;
            n->hnext = b[n->hash & (nb - 1)];
            b[n->hash & (nb - 1)] = n;
        }
    }
    free(d->buckets);
    d->buckets = b;
    d->nbuckets = nb;
    d->used += extra;
}

/* Inserts n (no node with its key is in the table), evicting from the LRU
 * tail until it fits. The caller checked n->cost + the bucket array <= size,
 * so emptying the dict is always enough. */
static void
shdict_insert(rp_shdict_t *d, shdict_node_t *n, shdict_node_t **garbage)
{
    shdict_node_t  **b;

    while (d->used + n->cost > d->size && d->tail != NULL) {
        shdict_remove(d, d->tail, NULL, garbage);
    }
    b = &d->buckets[n->hash & (d->nbuckets - 1)];
    n->hnext = *b;
    *b = n;
    shdict_lru_push(d, n);
    d->used += n->cost;
    d->count++;
    shdict_maybe_grow(d);
}

static int
shdict_fits(const rp_shdict_t *d, const shdict_node_t *n)
{
    return n->cost + d->nbuckets * sizeof(shdict_node_t *) <= d->size;
}

static double
shdict_deadline(double ttl, double now)
{
    return ttl > 0 ? now + ttl : 0;
}

/* ---- the registry ------------------------------------------------------ */

static rp_shdict_t *
shdict_new(const char *name, size_t size)
{
    rp_shdict_t  *d = rp_xalloc(sizeof(rp_shdict_t));

    pthread_mutex_init(&d->lock, NULL);
    d->name = rp_xstrdup(name);
    d->size = size;
    d->nbuckets = SHDICT_BUCKETS_MIN;
    d->buckets = rp_xalloc(d->nbuckets * sizeof(shdict_node_t *));
    d->used = d->nbuckets * sizeof(shdict_node_t *);
    d->refs = 1;
    shdict_seed(d);
    return d;
}

static void
shdict_free(rp_shdict_t *d)
{
    shdict_node_t  *n, *next;

    for (n = d->head; n != NULL; n = next) {
        next = n->next;
        free(n);
    }
    free(d->buckets);
    pthread_mutex_destroy(&d->lock);
    free(d->name);
    free(d);
}

rp_shdict_t *
rp_shdict_open(const char *name, size_t size_bytes)
{
    rp_shdict_t  *d, *fresh;

    if (name == NULL || *name == '\0' || size_bytes < RP_SHDICT_MIN_SIZE) {
        return NULL;
    }
    fresh = shdict_new(name, size_bytes);    /* outside the lock; freed if unused */
    pthread_mutex_lock(&shdict_registry_lock);
    for (d = shdict_registry; d != NULL; d = d->rnext) {
        if (!d->stale && strcmp(d->name, name) == 0) {
            break;
        }
    }
    if (d != NULL && d->size == size_bytes) {
        d->refs++;
        pthread_mutex_unlock(&shdict_registry_lock);
        shdict_free(fresh);
        return d;
    }
    if (d != NULL) {
        d->stale = 1;                        /* its holders keep it until they unref */
    }
    fresh->rnext = shdict_registry;
    shdict_registry = fresh;
    pthread_mutex_unlock(&shdict_registry_lock);
    return fresh;
}

static rp_shdict_t *
shdict_find_locked(const char *name)
{
    rp_shdict_t  *d;

    for (d = shdict_registry; d != NULL; d = d->rnext) {
        if (!d->stale && strcmp(d->name, name) == 0) {
            return d;
        }
    }
    return NULL;
}

rp_shdict_t *
rp_shdict_find(const char *name)
{
    rp_shdict_t  *d;

    if (name == NULL) {
        return NULL;
    }
    pthread_mutex_lock(&shdict_registry_lock);
    d = shdict_find_locked(name);
    pthread_mutex_unlock(&shdict_registry_lock);
    return d;
}

rp_shdict_t *
rp_shdict_find_ref(const char *name)
{
    rp_shdict_t  *d;

    if (name == NULL) {
        return NULL;
    }
    pthread_mutex_lock(&shdict_registry_lock);
    if ((d = shdict_find_locked(name)) != NULL) {
        d->refs++;
    }
    pthread_mutex_unlock(&shdict_registry_lock);
    return d;
}

void
rp_shdict_ref(rp_shdict_t *d)
{
    pthread_mutex_lock(&shdict_registry_lock);
    d->refs++;
    pthread_mutex_unlock(&shdict_registry_lock);
}

void
rp_shdict_unref(rp_shdict_t *d)
{
    rp_shdict_t  **pp;

    if (d == NULL) {
        return;
    }
    pthread_mutex_lock(&shdict_registry_lock);
    if (--d->refs > 0) {
        pthread_mutex_unlock(&shdict_registry_lock);
        return;
    }
    for (pp = &shdict_registry; *pp != NULL; pp = &(*pp)->rnext) {
        if (*pp == d) {
            *pp = d->rnext;
            break;
        }
    }
    pthread_mutex_unlock(&shdict_registry_lock);
    shdict_free(d);
}

void
rp_shdict_shutdown(void)
{
    rp_shdict_t  *d, *next;

    pthread_mutex_lock(&shdict_registry_lock);
    d = shdict_registry;
    shdict_registry = NULL;
    pthread_mutex_unlock(&shdict_registry_lock);
    for (; d != NULL; d = next) {
        next = d->rnext;
        shdict_free(d);
    }
}

const char *
rp_shdict_name(const rp_shdict_t *d)
{
    return d->name;
}

size_t
rp_shdict_size(const rp_shdict_t *d)
{
    return d->size;
}

/* ---- operations -------------------------------------------------------- */

/* Looks key up under the lock (held by the caller): a live node, moved to the
 * LRU head, or NULL; an expired one goes to *garbage on the way. */
static shdict_node_t *
shdict_get_live(rp_shdict_t *d, uint64_t hash, const char *key, size_t klen, double now,
                shdict_node_t **garbage)
{
    shdict_node_t  *n, **link;

    if ((n = shdict_lookup(d, hash, key, klen, &link)) == NULL) {
        return NULL;
    }
    if (shdict_expired(n, now)) {
        shdict_remove(d, n, &link, garbage);
        return NULL;
    }
    shdict_touch(d, n);
    return n;
}

/* The common part of get and get_buf: buf == NULL means "malloc a copy". */
static int
shdict_get(rp_shdict_t *d, const char *key, size_t klen, rp_shval_t *out, char *buf, size_t cap)
{
    shdict_node_t  *n, *garbage = NULL;
    uint64_t        hash;
    double          now;
    int             rc = RP_OK;
    char           *copy;

    memset(out, 0, sizeof(*out));
    if (klen > RP_SHDICT_MAX_KEY) {
        return RP_ERROR;
    }
    hash = shdict_hash(d, key, klen);
    now = rp_clock();
    pthread_mutex_lock(&d->lock);
    if ((n = shdict_get_live(d, hash, key, klen, now, &garbage)) == NULL) {
        rc = RP_DECLINED;
    } else {
        out->type = n->type;
        out->boolean = n->boolean;
        out->number = n->number;
        if (n->type == RP_SHVAL_STRING) {
            out->len = n->vlen;
            if (buf == NULL) {
                /* malloc under the lock: bounded by the value, and this is
                 * the copying API's contract; get_buf avoids it */
                copy = rp_xalloc(n->vlen);
                memcpy(copy, n->data + n->klen, n->vlen);
                out->str = copy;
            } else if (n->vlen <= cap) {
                if (n->vlen) {
                    memcpy(buf, n->data + n->klen, n->vlen);
                }
                out->str = buf;
            } else {
                rc = RP_AGAIN;
            }
        }
    }
    pthread_mutex_unlock(&d->lock);
    shdict_free_list(garbage);
    return rc;
}

int
rp_shdict_get(rp_shdict_t *d, const char *key, size_t klen, rp_shval_t *out)
{
    return shdict_get(d, key, klen, out, NULL, 0);
}

int
rp_shdict_get_buf(rp_shdict_t *d, const char *key, size_t klen, rp_shval_t *out, char *buf,
                  size_t cap)
{
    static char  empty[1];

    return shdict_get(d, key, klen, out, buf ? buf : empty, buf ? cap : 0);
}

static int
shdict_store(rp_shdict_t *d, const char *key, size_t klen, const rp_shval_t *v, double ttl,
             int add)
{
    shdict_node_t  *n, *old, **link, *garbage = NULL;
    rp_shval_t      probe;
    uint64_t        hash;
    double          now;
    int             rc = RP_OK;

    if (klen > RP_SHDICT_MAX_KEY || !(ttl >= 0)) {      /* !(>=) rejects NaN too */
        return RP_ERROR;
    }
    if (v->type == RP_SHVAL_NIL) {
        if (!add) {
            rp_shdict_delete(d, key, klen);
            return RP_OK;
        }
        /* RP_OK or RP_AGAIN (a string longer than no buffer): it exists */
        rc = rp_shdict_get_buf(d, key, klen, &probe, NULL, 0);
        return rc == RP_DECLINED ? RP_OK : RP_DECLINED;
    }
    hash = shdict_hash(d, key, klen);
    now = rp_clock();
    if ((n = shdict_node_new(d, hash, key, klen, v, shdict_deadline(ttl, now))) == NULL) {
        return RP_ERROR;
    }
    pthread_mutex_lock(&d->lock);
    if (!shdict_fits(d, n)) {
        rc = RP_ERROR;
    } else if ((old = shdict_lookup(d, hash, key, klen, &link)) != NULL
               && add && !shdict_expired(old, now)) {
        rc = RP_DECLINED;                    /* a failed add is not a use */
    } else {
        if (old != NULL) {
            shdict_remove(d, old, &link, &garbage);
        }
        shdict_insert(d, n, &garbage);
        n = NULL;
    }
    pthread_mutex_unlock(&d->lock);
    free(n);
    shdict_free_list(garbage);
    return rc;
}

int
rp_shdict_set(rp_shdict_t *d, const char *key, size_t klen, const rp_shval_t *v, double ttl)
{
    return shdict_store(d, key, klen, v, ttl, 0);
}

int
rp_shdict_add(rp_shdict_t *d, const char *key, size_t klen, const rp_shval_t *v, double ttl)
{
    return shdict_store(d, key, klen, v, ttl, 1);
}

int
rp_shdict_incr(rp_shdict_t *d, const char *key, size_t klen, double delta, int has_init,
               double init, double init_ttl, double *out)
{
    shdict_node_t  *n, *fresh = NULL, *garbage = NULL;
    rp_shval_t      v;
    uint64_t        hash;
    double          now;
    int             rc;

    if (klen > RP_SHDICT_MAX_KEY || (has_init && !(init_ttl >= 0))) {
        return RP_ERROR;
    }
    hash = shdict_hash(d, key, klen);
    now = rp_clock();
    for (;;) {
        pthread_mutex_lock(&d->lock);
        n = shdict_get_live(d, hash, key, klen, now, &garbage);
        if (n != NULL) {
            if (n->type == RP_SHVAL_NUMBER) {
                n->number += delta;
                *out = n->number;
                rc = RP_OK;
            } else {
                rc = RP_ERROR;
            }
        } else if (!has_init) {
            rc = RP_DECLINED;
        } else if (fresh != NULL && !shdict_fits(d, fresh)) {
            rc = RP_ERROR;     /* unreachable: RP_SHDICT_MIN_SIZE and shdict_maybe_grow() */
        } else if (fresh != NULL) {
            shdict_insert(d, fresh, &garbage);
            *out = fresh->number;
            fresh = NULL;
            rc = RP_OK;
        } else {
            /* build the node outside the lock, then look again: another
             * thread may have created the key meanwhile */
            pthread_mutex_unlock(&d->lock);
            v = (rp_shval_t) { .type = RP_SHVAL_NUMBER, .number = init + delta };
            fresh = shdict_node_new(d, hash, key, klen, &v, shdict_deadline(init_ttl, now));
            if (fresh == NULL) {
                rc = RP_ERROR;
                break;
            }
            continue;
        }
        pthread_mutex_unlock(&d->lock);
        break;
    }
    free(fresh);
    shdict_free_list(garbage);
    return rc;
}

int
rp_shdict_delete(rp_shdict_t *d, const char *key, size_t klen)
{
    shdict_node_t  *n, **link, *garbage = NULL;
    uint64_t        hash;
    double          now;
    int             rc = RP_DECLINED;

    if (klen > RP_SHDICT_MAX_KEY) {
        return RP_ERROR;
    }
    hash = shdict_hash(d, key, klen);
    now = rp_clock();
    pthread_mutex_lock(&d->lock);
    if ((n = shdict_lookup(d, hash, key, klen, &link)) != NULL) {
        rc = shdict_expired(n, now) ? RP_DECLINED : RP_OK;
        shdict_remove(d, n, &link, &garbage);
    }
    pthread_mutex_unlock(&d->lock);
    shdict_free_list(garbage);
    return rc;
}

typedef struct {
    const char  *key;
    size_t       len;
} shdict_key_t;

int
rp_shdict_keys(rp_shdict_t *d, unsigned max, rp_shdict_key_cb cb, void *arg)
{
    shdict_node_t  *n, *next, *garbage = NULL;
    shdict_key_t   *keys;
    size_t          i, nkeys = 0, bytes = 0;
    double          now = rp_clock();
    char           *p;
    int             rc = RP_OK;

    pthread_mutex_lock(&d->lock);
    for (n = d->head; n != NULL && (max == 0 || nkeys < max); n = next) {
        next = n->next;
        if (shdict_expired(n, now)) {
            shdict_remove(d, n, NULL, &garbage);
            continue;
        }
        nkeys++;
        bytes += n->klen;
    }
    /* one block: the array, then the key bytes */
    keys = rp_xalloc(nkeys * sizeof(shdict_key_t) + bytes);
    p = (char *) (keys + nkeys);
    for (n = d->head, i = 0; i < nkeys; n = n->next) {
        if (shdict_expired(n, now)) {       /* all removed above, unless past max */
            continue;
        }
        memcpy(p, n->data, n->klen);
        keys[i].key = p;
        keys[i].len = n->klen;
        p += n->klen;
        i++;
    }
    pthread_mutex_unlock(&d->lock);
    shdict_free_list(garbage);
    for (i = 0; i < nkeys; i++) {
        if (cb(keys[i].key, keys[i].len, arg) != 0) {
            rc = RP_DONE;
            break;
        }
    }
    free(keys);
    return rc;
}

size_t
rp_shdict_free_space(rp_shdict_t *d)
{
    size_t  n;

    pthread_mutex_lock(&d->lock);
    n = d->size - d->used;
    pthread_mutex_unlock(&d->lock);
    return n;
}

void
rp_shdict_flush_all(rp_shdict_t *d)
{
    shdict_node_t  *n, *next;

    pthread_mutex_lock(&d->lock);
    n = d->head;
    d->head = d->tail = NULL;
    memset(d->buckets, 0, d->nbuckets * sizeof(shdict_node_t *));
    d->used = d->nbuckets * sizeof(shdict_node_t *);
    d->count = 0;
    pthread_mutex_unlock(&d->lock);
    for (; n != NULL; n = next) {
        next = n->next;
        free(n);
    }
}

void
rp_shval_cleanup(rp_shval_t *v)
{
    if (v->type == RP_SHVAL_STRING) {
        free((char *) v->str);
    }
    memset(v, 0, sizeof(*v));
}
