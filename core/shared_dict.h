/* shared_dict.h: process-wide dictionaries shared by all worker threads
 * (rproxy.shared.NAME): counters, rate-limit windows, flags. Each dict is a
 * hash table plus an LRU list under its own mutex, within a byte budget. */
#ifndef RP_SHARED_DICT_H
#define RP_SHARED_DICT_H

#include "rp.h"

#include <stddef.h>

typedef struct rp_shdict_s rp_shdict_t;

#define RP_SHDICT_MAX_KEY   65535            /* bytes                                   */
#define RP_SHDICT_MIN_SIZE  (128 * 1024)     /* so that any key with a number fits      */

typedef enum {
    RP_SHVAL_NIL = 0,       /* as a value to set: delete the key */
    RP_SHVAL_BOOLEAN,
    RP_SHVAL_NUMBER,
    RP_SHVAL_STRING,
} rp_shval_type_e;

typedef struct {
    rp_shval_type_e   type;
    int               boolean;   /* BOOLEAN: 0 or 1                                        */
    double            number;    /* NUMBER                                                 */
    const char       *str;       /* STRING, binary-safe: borrowed when setting; owned (free
                                  * with rp_shval_cleanup) after rp_shdict_get; borrowed (the
                                  * caller's buffer) after rp_shdict_get_buf               */
    size_t            len;       /* STRING: bytes at str                                   */
} rp_shval_t;

/* Called by rp_shdict_keys, outside the dict's lock; return non-zero to stop. */
typedef int (*rp_shdict_key_cb)(const char *key, size_t klen, void *arg);

/* ---- the registry (by name; one mutex) -------------------------------- */

/* Returns the dict called name with a reference taken for the caller: the
 * existing one if it has this size (so a reload that keeps the declaration
 * keeps the contents), else a new empty one, which replaces an older dict of
 * another size for later openers (the old one lives until its last unref).
 * Returns NULL if name is NULL or empty, or size_bytes < RP_SHDICT_MIN_SIZE. */
rp_shdict_t *rp_shdict_open(const char *name, size_t size_bytes);

/* The current dict called name, borrowed (no reference taken), or NULL. Only
 * safe while the caller knows a reference is held elsewhere. */
rp_shdict_t *rp_shdict_find(const char *name);

/* rp_shdict_find() plus a reference for the caller, atomically under the
 * registry lock: what a Lua box uses. NULL if there is none. */
rp_shdict_t *rp_shdict_find_ref(const char *name);

void rp_shdict_ref(rp_shdict_t *d);

/* Drops one reference; the last one frees the dict and its entries. */
void rp_shdict_unref(rp_shdict_t *d);

/* Frees every dict still registered or referenced, at exit, once no thread
 * can touch one any more (after it, rp_shdict_unref() must not be called). */
void rp_shdict_shutdown(void);

const char *rp_shdict_name(const rp_shdict_t *d);
size_t rp_shdict_size(const rp_shdict_t *d);

/* ---- operations (each under the dict's mutex; keys are binary-safe, at
 * most RP_SHDICT_MAX_KEY bytes; a longer key is RP_ERROR; ttl is relative
 * seconds on the monotonic clock, may be fractional, 0 = never expires) --- */

/* RP_OK with a copy of the live value in *out (a string is malloc'd: the
 * caller frees it with rp_shval_cleanup), RP_DECLINED if missing or expired,
 * RP_ERROR if the key is too long. A hit counts as a use for the LRU. */
int rp_shdict_get(rp_shdict_t *d, const char *key, size_t klen, rp_shval_t *out);

/* As rp_shdict_get, but copies a string into buf (cap bytes) and points
 * out->str at it, so that nothing is allocated: RP_AGAIN if the string is
 * longer than cap, with out->len set to the length needed (retry with a
 * larger buffer; the value may have changed meanwhile). */
int rp_shdict_get_buf(rp_shdict_t *d, const char *key, size_t klen, rp_shval_t *out,
                      char *buf, size_t cap);

/* Stores a copy of *v (a NIL value deletes the key), evicting least recently
 * used entries to make room. RP_OK, or RP_ERROR if the entry cannot fit in
 * the dict even when empty (the dict is then unchanged), or on a bad ttl. */
int rp_shdict_set(rp_shdict_t *d, const char *key, size_t klen, const rp_shval_t *v, double ttl);

/* As rp_shdict_set, but RP_DECLINED (and nothing changes) if a live entry
 * exists. Adding NIL is RP_OK if the key is missing, a no-op. */
int rp_shdict_add(rp_shdict_t *d, const char *key, size_t klen, const rp_shval_t *v, double ttl);

/* Atomically adds delta to a number and stores the result in *out; the
 * entry keeps its ttl. A missing key is RP_DECLINED unless has_init, in which
 * case init + delta is stored with init_ttl; a value that is not a number is
 * RP_ERROR (as are a too-long key and a bad init_ttl). */
int rp_shdict_incr(rp_shdict_t *d, const char *key, size_t klen, double delta, int has_init,
                   double init, double init_ttl, double *out);

/* RP_OK if a live entry was removed, RP_DECLINED if there was none. */
int rp_shdict_delete(rp_shdict_t *d, const char *key, size_t klen);

/* Calls cb for up to max live keys (0: all), most recently used first. The
 * keys are copied out under the lock, and cb runs after unlocking, so it may
 * use the dict. RP_OK, or RP_DONE if cb stopped the walk. */
int rp_shdict_keys(rp_shdict_t *d, unsigned max, rp_shdict_key_cb cb, void *arg);

/* Bytes left before a new entry would evict another. */
size_t rp_shdict_free_space(rp_shdict_t *d);

/* Removes every entry. */
void rp_shdict_flush_all(rp_shdict_t *d);

/* Frees what rp_shdict_get gave *v and makes it NIL. */
void rp_shval_cleanup(rp_shval_t *v);

#endif
