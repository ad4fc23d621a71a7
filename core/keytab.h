/* keytab.h: a bounded hash table of 32-byte keys (SHA-256 fingerprints, a
 * ticket's key name and IV), each with an expiry and a value. Past its
 * capacity the oldest entry goes first. No lock: its owner holds one. */
#ifndef RP_KEYTAB_H
#define RP_KEYTAB_H

#include "rp.h"

#define RP_KEYTAB_KEY_LEN  32

typedef struct rp_keytab_entry_s  rp_keytab_entry_t;
struct rp_keytab_entry_s {
    unsigned char       key[RP_KEYTAB_KEY_LEN];
    double              expires;    /* the caller's clock                       */
    void               *val;        /* owned: freed by the table's free_val     */
    rp_keytab_entry_t  *hnext;      /* bucket chain                             */
    rp_keytab_entry_t  *older;      /* insertion order: the oldest goes first   */
    rp_keytab_entry_t  *newer;
};

typedef struct {
    rp_keytab_entry_t  **buckets;   /* owned, with the entries; NULL: unused    */
    unsigned             nbuckets;  /* a power of two                           */
    unsigned             n;
    unsigned             capacity;
    rp_keytab_entry_t   *oldest;
    rp_keytab_entry_t   *newest;
    void               (*free_val)(void *val);   /* NULL: values are not owned */
} rp_keytab_t;

/* An empty table of at most capacity entries (at least 1). */
void rp_keytab_init(rp_keytab_t *t, unsigned capacity, void (*free_val)(void *val));
/* Frees every entry and the buckets; t may be zeroed and never initialised. */
void rp_keytab_destroy(rp_keytab_t *t);
void rp_keytab_clear(rp_keytab_t *t);

/* key's entry if it expires after now, else NULL (an expired one is dropped). */
rp_keytab_entry_t *rp_keytab_get(rp_keytab_t *t, const unsigned char *key, double now);

/* Drops key's entry, if there is one. */
void rp_keytab_remove(rp_keytab_t *t, const unsigned char *key);

/* Whether an entry can be added without pushing out a live one, after the
 * oldest entries that expired by now are dropped (entries are put with one
 * lifetime, so the oldest expire first). */
int rp_keytab_has_room(rp_keytab_t *t, double now);

/* Adds key, or replaces its entry, making it the newest. */
void rp_keytab_put(rp_keytab_t *t, const unsigned char *key, double expires, void *val);

#endif
