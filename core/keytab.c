/* keytab.c: a bounded hash table of 32-byte keys (keytab.h). The TLS
 * certificate cache and the ticket memo both keep one. */
#include "keytab.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void
rp_keytab_init(rp_keytab_t *t, unsigned capacity, void (*free_val)(void *val))
{
    memset(t, 0, sizeof(*t));
    t->capacity = capacity > 0 ? capacity : 1;
    t->free_val = free_val;
    for (t->nbuckets = 16; t->nbuckets < t->capacity && t->nbuckets < (1u << 20);
         t->nbuckets <<= 1) {
        /* a power of two, about one entry per bucket */
    }
    t->buckets = rp_xalloc(t->nbuckets * sizeof(rp_keytab_entry_t *));
}

/* The keys are random in places only (a ticket's key name is the same for
 * many keys, its IV is random): fold all eight words. */
static rp_keytab_entry_t **
keytab_bucket(rp_keytab_t *t, const unsigned char *key)
{
    uint32_t  w, h = 0;
    unsigned  i;

    for (i = 0; i < RP_KEYTAB_KEY_LEN; i += sizeof(w)) {
        memcpy(&w, key + i, sizeof(w));
        h ^= w;
    }
    return &t->buckets[h & (t->nbuckets - 1)];
}

static void
keytab_remove(rp_keytab_t *t, rp_keytab_entry_t *e)
{
    rp_keytab_entry_t  **pp;

    for (pp = keytab_bucket(t, e->key); *pp != e; pp = &(*pp)->hnext) {
        /* find the link to e */
    }
    *pp = e->hnext;
    if (e->older != NULL) {
        e->older->newer = e->newer;
    } else {
        t->oldest = e->newer;
    }
    if (e->newer != NULL) {
        e->newer->older = e->older;
    } else {
        t->newest = e->older;
    }
    t->n--;
    if (t->free_val != NULL && e->val != NULL) {
        t->free_val(e->val);
    }
    free(e);
}

void
rp_keytab_clear(rp_keytab_t *t)
{
    while (t->oldest != NULL) {
        keytab_remove(t, t->oldest);
    }
}

void
rp_keytab_destroy(rp_keytab_t *t)
{
    if (t->buckets != NULL) {
        rp_keytab_clear(t);
        free(t->buckets);
        t->buckets = NULL;
    }
}

static rp_keytab_entry_t *
keytab_find(rp_keytab_t *t, const unsigned char *key)
{
    rp_keytab_entry_t  *e;

    for (e = *keytab_bucket(t, key); e != NULL; e = e->hnext) {
        if (memcmp(e->key, key, RP_KEYTAB_KEY_LEN) == 0) {
            return e;
        }
    }
    return NULL;
}

rp_keytab_entry_t *
rp_keytab_get(rp_keytab_t *t, const unsigned char *key, double now)
{
    rp_keytab_entry_t  *e = keytab_find(t, key);

    if (e != NULL && e->expires <= now) {
        keytab_remove(t, e);
        return NULL;
    }
    return e;
}

void
rp_keytab_remove(rp_keytab_t *t, const unsigned char *key)
{
    rp_keytab_entry_t  *e = keytab_find(t, key);

    if (e != NULL) {
        keytab_remove(t, e);
    }
}

int
rp_keytab_has_room(rp_keytab_t *t, double now)
{
    while (t->oldest != NULL && t->oldest->expires <= now) {
        keytab_remove(t, t->oldest);
    }
    return t->n < t->capacity;
}

void
rp_keytab_put(rp_keytab_t *t, const unsigned char *key, double expires, void *val)
{
    rp_keytab_entry_t  *e, **b;

    if ((e = keytab_find(t, key)) != NULL) {
        keytab_remove(t, e);
    }
    while (t->n >= t->capacity && t->oldest != NULL) {
        keytab_remove(t, t->oldest);
    }
    e = rp_xalloc(sizeof(rp_keytab_entry_t));
    memcpy(e->key, key, RP_KEYTAB_KEY_LEN);
    e->expires = expires;
    e->val = val;
    b = keytab_bucket(t, key);
    e->hnext = *b;
    *b = e;
    e->older = t->newest;
    if (t->newest != NULL) {
        t->newest->newer = e;
    } else {
        t->oldest = e;
    }
    t->newest = e;
    t->n++;
}
