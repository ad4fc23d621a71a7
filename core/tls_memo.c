/* tls_memo.c: a listener's TLS sessions, kept by rproxy (tls_memo.h).
 *
 * OpenSSL's own session cache lives in an SSL_CTX, and a reload builds new
 * ones: the sessions would be lost with every reload. The memo is shared by
 * the snapshots of one listener address instead (as random ticket keys are),
 * and OpenSSL's cache is off (SSL_SESS_CACHE_NO_INTERNAL). It holds:
 *
 *  - sessions by their ID: TLS 1.2 sessions resumed by ID and TLS 1.3
 *    stateful tickets, stored by memo_on_new and found by memo_on_get; a
 *    stateful ticket is forgotten once it has resumed a handshake (clients
 *    use each once);
 *  - the session behind each TLS 1.2 ticket, by the ticket's key name and IV.
 *
 * Which a new session gets is the listener's mode (tls_memo.h): with random
 * ticket keys a ClientHello callback (memo_on_client_hello) keeps the session
 * by its ID while the table has room, and leaves it to a stateless ticket
 * beyond: only this process can read such a ticket, and OpenSSL decodes the
 * session to make one.
 *
 * OpenSSL 3.0 resumes a ticket by decoding the session in it, and the client
 * certificate of that session goes through the provider decoders: 1.6 million
 * instructions, against 0.55 million for the rest of a resumed handshake with
 * its GET (callgrind). A session found by its ID is not decoded. So a ticket
 * the memo knows comes back by the session-ID path, with OpenSSL's public
 * callbacks only:
 *
 *  1. the ticket key callback (tls.c) finds the ticket's key name and IV here
 *     (rp_tls_memo_recall), leaves a copy of the session on the SSL and
 *     answers 0, "unknown key";
 *  2. the decrypted-ticket callback (memo_on_ticket) turns that "could not
 *     decrypt" into SSL_TICKET_RETURN_IGNORE: OpenSSL then looks up the
 *     session ID of the ClientHello, as if no ticket had come;
 *  3. the get-session callback (memo_on_get) hands over the copy, renamed to
 *     the client's session ID (never stored under it).
 *
 * That needs a session ID in the ClientHello: OpenSSL, BoringSSL and Go send
 * one with a TLS 1.2 ticket (RFC 5077 3.4), and without one the ticket is
 * decrypted as before. TLS 1.3 has no such path: its tickets are decrypted.
 *
 * The memo's sessions are private copies: the connection that made one goes
 * on using its own, and each resumption gets a copy of the copy. A connection
 * that ends badly (a fatal alert, or no close_notify sent) makes OpenSSL mark
 * its own copy not resumable; memo_on_free_ssl then forgets the session, as
 * OpenSSL's cache would have. */
#include "tls_memo.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keytab.h"

#define MEMO_KEY_LEN   RP_KEYTAB_KEY_LEN     /* a ticket's key name and IV; a session ID */

/* The sessions of one listener address, shared by its snapshots. */
typedef struct memo_store_s  memo_store_t;
struct memo_store_s {
    pthread_mutex_t        lock;             /* the tables                            */
    rp_keytab_t            tickets;          /* key name + IV -> session              */
    rp_keytab_t            ids;              /* session ID (32 bytes) -> session      */
    atomic_uint_fast64_t   ticket_hits;      /* tickets resumed from memory           */
    atomic_uint_fast64_t   cache_full;       /* RP_MEMO_IDS_FIRST: ClientHellos left
                                                to tickets, the cache being full      */
    char                  *address;          /* owned                                 */
    unsigned               refs;             /* under memo_stores_lock                */
    memo_store_t          *next;             /* in memo_stores                        */
};

/* One snapshot's listener: the store, and what its sessions must match.
 * Values in both tables are sessions no connection uses, kept until time()
 * passes the session's time + timeout. */
struct rp_tls_memo_s {
    atomic_uint            refs;             /* the snapshot's, and one per SSL_CTX   */
    memo_store_t          *store;            /* a reference                           */
    unsigned char          sid_ctx[SSL_MAX_SID_CTX_LENGTH];
    unsigned               sid_ctx_len;
};

static pthread_mutex_t  memo_stores_lock = PTHREAD_MUTEX_INITIALIZER;
static memo_store_t    *memo_stores;

/* On an SSL from the ticket key callback to the session lookup. */
typedef struct {
    rp_tls_memo_t  *memo;
    unsigned char   key[MEMO_KEY_LEN];
    SSL_SESSION    *sess;                    /* owned: the copy to resume; NULL: decrypt */
    unsigned        stateful : 1;            /* key: the TLS 1.3 stateful ticket offered */
} memo_stash_t;

static pthread_once_t  memo_once = PTHREAD_ONCE_INIT;
static int             memo_ctx_idx = -1;    /* SSL_CTX ex_data: rp_tls_memo_t  */
static int             memo_stash_idx = -1;  /* SSL ex_data: memo_stash_t       */

static void
memo_stash_free(memo_stash_t *st)
{
    if (st != NULL) {
        SSL_SESSION_free(st->sess);
        free(st);
    }
}

static void memo_forget_bad_session(SSL *ssl);
static void memo_forget_used_ticket(SSL *ssl, memo_stash_t *st);

/* Called by SSL_free() for every SSL (its ex_data go first, before OpenSSL
 * would clear a bad session from its own cache). */
static void
memo_on_free_ssl(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void) ad;
    (void) idx;
    (void) argl;
    (void) argp;
    if (parent != NULL && ptr != NULL) {
        memo_forget_used_ticket(parent, ptr);
    }
    memo_stash_free(ptr);
    if (parent != NULL) {
        memo_forget_bad_session(parent);
    }
}

/* Called by SSL_CTX_free() once the last SSL using the SSL_CTX is gone. */
static void
memo_on_free_ctx(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void) parent;
    (void) ad;
    (void) idx;
    (void) argl;
    (void) argp;
    rp_tls_memo_free(ptr);
}

static void
memo_init(void)
{
    memo_ctx_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, memo_on_free_ctx);
    memo_stash_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, memo_on_free_ssl);
}

/* Drops ssl's stash; returns it to the caller (who frees it), or NULL. */
static memo_stash_t *
memo_unstash(SSL *ssl)
{
    memo_stash_t  *st = SSL_get_ex_data(ssl, memo_stash_idx);

    if (st != NULL) {
        SSL_set_ex_data(ssl, memo_stash_idx, NULL);
    }
    return st;
}


/* ---- the store ------------------------------------------------------------- */

static void
memo_free_session(void *sess)
{
    SSL_SESSION_free(sess);
}

/* The store of address, with a new reference: the one its earlier snapshots
 * use, or a new one. */
static memo_store_t *
memo_store_acquire(const char *address, unsigned capacity)
{
    memo_store_t  *st;

    pthread_mutex_lock(&memo_stores_lock);
    for (st = memo_stores; st != NULL; st = st->next) {
        if (strcmp(st->address, address) == 0) {
            st->refs++;
            pthread_mutex_lock(&st->lock);
            st->tickets.capacity = st->ids.capacity = capacity > 0 ? capacity : 1;
            pthread_mutex_unlock(&st->lock);          /* the newest size holds */
            pthread_mutex_unlock(&memo_stores_lock);
            return st;
        }
    }
    st = rp_xalloc(sizeof(memo_store_t));
    pthread_mutex_init(&st->lock, NULL);
    rp_keytab_init(&st->tickets, capacity, memo_free_session);
    rp_keytab_init(&st->ids, capacity, memo_free_session);
    st->address = rp_xstrdup(address);
    st->refs = 1;
    st->next = memo_stores;
    memo_stores = st;
    pthread_mutex_unlock(&memo_stores_lock);
    return st;
}

static void
memo_store_release(memo_store_t *st)
{
    memo_store_t  **pp;

    pthread_mutex_lock(&memo_stores_lock);
    if (--st->refs > 0) {
        pthread_mutex_unlock(&memo_stores_lock);
        return;
    }
    for (pp = &memo_stores; *pp != st; pp = &(*pp)->next) {
        /* find the link to st */
    }
    *pp = st->next;
    pthread_mutex_unlock(&memo_stores_lock);
    rp_keytab_destroy(&st->tickets);
    rp_keytab_destroy(&st->ids);
    pthread_mutex_destroy(&st->lock);
    free(st->address);
    free(st);
}

rp_tls_memo_t *
rp_tls_memo_new(const char *address, unsigned capacity, const unsigned char *sid_ctx,
                unsigned sid_ctx_len)
{
    rp_tls_memo_t  *m;

    pthread_once(&memo_once, memo_init);
    m = rp_xalloc(sizeof(rp_tls_memo_t));
    atomic_init(&m->refs, 1);
    m->store = memo_store_acquire(address, capacity);
    m->sid_ctx_len = sid_ctx_len < sizeof(m->sid_ctx) ? sid_ctx_len : sizeof(m->sid_ctx);
    memcpy(m->sid_ctx, sid_ctx, m->sid_ctx_len);
    return m;
}

void
rp_tls_memo_free(rp_tls_memo_t *m)
{
    if (m != NULL && atomic_fetch_sub(&m->refs, 1) == 1) {
        memo_store_release(m->store);
        free(m);
    }
}

/* Whether sess was made under m's session ID context (not under another
 * certificate set of the listener's address). */
static int
memo_owns(const rp_tls_memo_t *m, const SSL_SESSION *sess)
{
    unsigned int          len;
    const unsigned char  *sid_ctx = SSL_SESSION_get0_id_context(sess, &len);

    return len == m->sid_ctx_len && memcmp(sid_ctx, m->sid_ctx, len) == 0;
}

/* Keeps a copy of sess in tab under key, when it belongs to m's listener. */
static void
memo_put(rp_tls_memo_t *m, rp_keytab_t *tab, const unsigned char *key,
         const SSL_SESSION *sess)
{
    /* OpenSSL resumes while time() - time <= timeout (whole seconds) */
    long          expires = SSL_SESSION_get_time(sess) + SSL_SESSION_get_timeout(sess) + 1;
    SSL_SESSION  *copy;

    if (!memo_owns(m, sess) || expires <= (long) time(NULL)
        || (copy = SSL_SESSION_dup(sess)) == NULL) {
        return;                              /* another listener's, stale, or OOM */
    }
    pthread_mutex_lock(&m->store->lock);
    rp_keytab_put(tab, key, (double) expires, copy);
    pthread_mutex_unlock(&m->store->lock);
}

/* A copy of the session under key in tab that ssl can resume, or NULL. */
static SSL_SESSION *
memo_get(rp_tls_memo_t *m, rp_keytab_t *tab, const unsigned char *key, SSL *ssl)
{
    rp_keytab_entry_t  *e;
    SSL_SESSION        *held = NULL, *copy;

    pthread_mutex_lock(&m->store->lock);
    e = rp_keytab_get(tab, key, (double) time(NULL));
    if (e != NULL && SSL_SESSION_get_protocol_version(e->val) == SSL_version(ssl)
        && memo_owns(m, e->val)) {
        held = e->val;
        SSL_SESSION_up_ref(held);            /* eviction cannot free it under us */
    }
    pthread_mutex_unlock(&m->store->lock);
    if (held == NULL) {
        return NULL;
    }
    copy = SSL_SESSION_dup(held);
    SSL_SESSION_free(held);
    return copy;
}

void
rp_tls_memo_stats(rp_tls_memo_t *m, rp_tls_memo_stats_t *st)
{
    st->ticket_hits = atomic_load(&m->store->ticket_hits);
    st->cache_full = atomic_load(&m->store->cache_full);
    pthread_mutex_lock(&m->store->lock);
    st->tickets = m->store->tickets.n;
    st->ids = m->store->ids.n;
    pthread_mutex_unlock(&m->store->lock);
}


/* ---- OpenSSL's callbacks ------------------------------------------------------ */

/* SSL_CTX_set_session_ticket_cb()'s decrypt callback, after the key callback
 * and the decryption. Any other status keeps OpenSSL's default answer. */
static SSL_TICKET_RETURN
memo_on_ticket(SSL *ssl, SSL_SESSION *sess, const unsigned char *keyname,
               size_t keyname_len, SSL_TICKET_STATUS status, void *arg)
{
    memo_stash_t  *st = SSL_get_ex_data(ssl, memo_stash_idx);

    (void) keyname;
    (void) keyname_len;
    (void) arg;
    switch (status) {
    case SSL_TICKET_SUCCESS:
        if (st != NULL && sess != NULL) {        /* the next time, from memory */
            memo_put(st->memo, &st->memo->store->tickets, st->key, sess);
        }
        memo_stash_free(memo_unstash(ssl));
        return SSL_TICKET_RETURN_USE;
    case SSL_TICKET_SUCCESS_RENEW:
        return SSL_TICKET_RETURN_USE_RENEW;      /* an older key: a new ticket comes */
    case SSL_TICKET_NO_DECRYPT:
        if (st != NULL && st->sess != NULL) {
            return SSL_TICKET_RETURN_IGNORE;     /* resume by the session ID */
        }
        return SSL_TICKET_RETURN_IGNORE_RENEW;
    default:
        return SSL_TICKET_RETURN_IGNORE_RENEW;
    }
}

/* A new stash of m's on ssl, for key (its slot must be empty). */
static memo_stash_t *
memo_stash_new(SSL *ssl, rp_tls_memo_t *m, const unsigned char *key)
{
    memo_stash_t  *st = rp_xalloc(sizeof(memo_stash_t));

    st->memo = m;
    memcpy(st->key, key, MEMO_KEY_LEN);
    SSL_set_ex_data(ssl, memo_stash_idx, st);
    return st;
}

/* A TLS 1.2 ticket's key in the memo: its key name and IV, 16 bytes each. */
static void
memo_ticket_key(unsigned char *key, const unsigned char *name, const unsigned char *iv)
{
    memcpy(key, name, 16);
    memcpy(key + 16, iv, 16);
}

/* A TLS 1.3 client uses a ticket once (RFC 8446 C.4; OpenSSL's client
 * marks it spent) and gets a new one with the resumption, so a stateful
 * ticket that resumed a handshake is forgotten: else each resumption would
 * add a session to the cache for its whole timeout, and fill it. */
static void
memo_forget_used_ticket(SSL *ssl, memo_stash_t *st)
{
    if (!st->stateful || !SSL_session_reused(ssl)) {
        return;
    }
    pthread_mutex_lock(&st->memo->store->lock);
    rp_keytab_remove(&st->memo->store->ids, st->key);
    pthread_mutex_unlock(&st->memo->store->lock);
}

/* SSL_CTX_sess_set_get_cb(): the session ID the client offered (or a TLS
 * 1.3 stateful ticket). A stashed ticket's copy answers first; the reference
 * goes to OpenSSL. */
static SSL_SESSION *
memo_on_get(SSL *ssl, const unsigned char *id, int len, int *copy)
{
    rp_tls_memo_t  *m = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), memo_ctx_idx);
    memo_stash_t   *st = memo_unstash(ssl);
    SSL_SESSION    *sess = NULL;

    *copy = 0;
    if (st != NULL && st->sess != NULL && len > 0
        && SSL_SESSION_set1_id(st->sess, id, (unsigned int) len) == 1) {
        sess = st->sess;
        st->sess = NULL;
        atomic_fetch_add(&st->memo->store->ticket_hits, 1);
    } else if (m != NULL && len == MEMO_KEY_LEN) {
        sess = memo_get(m, &m->store->ids, id, ssl);
        if (sess != NULL && SSL_version(ssl) == TLS1_3_VERSION) {
            /* forgotten once the handshake has resumed it (memo_forget_used_ticket) */
            memo_stash_new(ssl, m, id)->stateful = 1;
        }
    }
    memo_stash_free(st);
    return sess;
}

/* SSL_CTX_sess_set_new_cb(): a new session with an ID. Kept by its ID when
 * it can be resumed by it: TLS 1.2 without a ticket, TLS 1.3 stateful
 * tickets (SSL_OP_NO_TICKET on the SSL; a stateless TLS 1.3 ticket's session
 * has an ID no one sends).
 * Returns 0: the caller keeps its reference. */
static int
memo_on_new(SSL *ssl, SSL_SESSION *sess)
{
    rp_tls_memo_t        *m = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), memo_ctx_idx);
    const unsigned char  *id;
    unsigned int          len;

    id = SSL_SESSION_get_id(sess, &len);
    if (m != NULL && len == MEMO_KEY_LEN
        && (SSL_version(ssl) != TLS1_3_VERSION || (SSL_get_options(ssl) & SSL_OP_NO_TICKET))) {
        memo_put(m, &m->store->ids, id, sess);
    }
    return 0;
}

/* What OpenSSL's cache does when an SSL is freed after its handshake without
 * a close_notify sent, or after a fatal alert (its session then says it is
 * not resumable): the session is forgotten. */
static void
memo_forget_bad_session(SSL *ssl)
{
    SSL_CTX              *ctx = SSL_get_SSL_CTX(ssl);
    rp_tls_memo_t        *m = ctx != NULL ? SSL_CTX_get_ex_data(ctx, memo_ctx_idx) : NULL;
    SSL_SESSION          *sess = SSL_get0_session(ssl);
    const unsigned char  *id;
    unsigned int          len;

    if (m == NULL || sess == NULL || !SSL_is_server(ssl)) {
        return;
    }
    id = SSL_SESSION_get_id(sess, &len);
    if (len != MEMO_KEY_LEN) {
        return;
    }
    if (SSL_SESSION_is_resumable(sess)
        && ((SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN) || SSL_in_init(ssl)
            || SSL_in_before(ssl))) {
        return;
    }
    pthread_mutex_lock(&m->store->lock);
    rp_keytab_remove(&m->store->ids, id);
    pthread_mutex_unlock(&m->store->lock);
}

/* What resumption a ClientHello offers, as far as the choice below goes. */
typedef enum {
    MEMO_OFFERS_NOTHING,      /* a new session, or a TLS 1.2 session ID       */
    MEMO_OFFERS_TICKET,       /* a stateless ticket: only tickets resume it   */
    MEMO_OFFERS_STATEFUL      /* a TLS 1.3 stateful ticket: only the cache    */
} memo_offer_e;

/* A TLS 1.2 SessionTicket extension with a ticket in it, or a TLS 1.3
 * pre_shared_key, whose first identity is a stateful ticket when it is as
 * long as a session ID (OpenSSL's are the session's 32-byte ID; a stateless
 * ticket holds a whole encrypted session). */
static memo_offer_e
memo_hello_offers(SSL *ssl)
{
    const unsigned char  *p;
    size_t                len;

    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_psk, &p, &len) == 1 && len >= 4) {
        /* identities<7..2^16-1>: the list's length, then the first identity's */
        return ((size_t) p[2] << 8 | p[3]) == MEMO_KEY_LEN ? MEMO_OFFERS_STATEFUL
                                                           : MEMO_OFFERS_TICKET;
    }
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_session_ticket, &p, &len) == 1 && len > 0) {
        return MEMO_OFFERS_TICKET;
    }
    return MEMO_OFFERS_NOTHING;
}

/* Whether the cache takes the session of a ClientHello that offers no
 * ticket: it holds the session whose ID is offered (TLS 1.2), or it has room
 * for a new one. */
static int
memo_cache_takes(rp_tls_memo_t *m, SSL *ssl)
{
    const unsigned char  *id;
    size_t                len = SSL_client_hello_get0_session_id(ssl, &id);
    double                now = (double) time(NULL);
    int                   takes;

    pthread_mutex_lock(&m->store->lock);
    takes = (len == MEMO_KEY_LEN && rp_keytab_get(&m->store->ids, id, now) != NULL)
            || rp_keytab_has_room(&m->store->ids, now);
    pthread_mutex_unlock(&m->store->lock);
    return takes;
}

/* SSL_CTX_set_client_hello_cb() of RP_MEMO_IDS_FIRST, before OpenSSL looks
 * for a session to resume: SSL_OP_NO_TICKET on this SSL when the cache takes
 * the session (TLS 1.2 then resumes it by ID, TLS 1.3 by a stateful ticket)
 * or the client resumes by a stateful ticket. Tickets stay on for a client
 * that brings one, and when the cache is full. */
static int
memo_on_client_hello(SSL *ssl, int *alert, void *arg)
{
    rp_tls_memo_t  *m = arg;
    memo_offer_e    offer = memo_hello_offers(ssl);

    (void) alert;
    if (offer == MEMO_OFFERS_TICKET) {
        return SSL_CLIENT_HELLO_SUCCESS;
    }
    if (offer == MEMO_OFFERS_NOTHING && !memo_cache_takes(m, ssl)) {
        atomic_fetch_add(&m->store->cache_full, 1);
        return SSL_CLIENT_HELLO_SUCCESS;
    }
    SSL_set_options(ssl, SSL_OP_NO_TICKET);
    return SSL_CLIENT_HELLO_SUCCESS;
}

void
rp_tls_memo_install(rp_tls_memo_t *m, SSL_CTX *ctx, rp_tls_memo_mode_e mode)
{
    atomic_fetch_add(&m->refs, 1);         /* dropped by memo_on_free_ctx */
    SSL_CTX_set_ex_data(ctx, memo_ctx_idx, m);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
    SSL_CTX_sess_set_new_cb(ctx, memo_on_new);
    SSL_CTX_sess_set_get_cb(ctx, memo_on_get);
    if (mode != RP_MEMO_IDS) {
        SSL_CTX_set_session_ticket_cb(ctx, NULL, memo_on_ticket, NULL);
    }
    if (mode == RP_MEMO_IDS_FIRST) {
        SSL_CTX_set_client_hello_cb(ctx, memo_on_client_hello, m);
    }
}

void
rp_tls_memo_issued(rp_tls_memo_t *m, SSL *ssl, const unsigned char *name,
                   const unsigned char *iv)
{
    unsigned char  key[MEMO_KEY_LEN];
    SSL_SESSION   *sess = SSL_get0_session(ssl);

    if (SSL_version(ssl) == TLS1_3_VERSION || sess == NULL) {
        return;                              /* TLS 1.3 tickets are decrypted */
    }
    memo_ticket_key(key, name, iv);
    memo_put(m, &m->store->tickets, key, sess);
}

int
rp_tls_memo_recall(rp_tls_memo_t *m, SSL *ssl, const unsigned char *name,
                   const unsigned char *iv)
{
    unsigned char  key[MEMO_KEY_LEN];
    memo_stash_t  *st;

    if (SSL_version(ssl) == TLS1_3_VERSION) {
        return 0;
    }
    memo_stash_free(memo_unstash(ssl));
    memo_ticket_key(key, name, iv);
    st = memo_stash_new(ssl, m, key);
    /* the ClientHello is still there while OpenSSL looks for the session */
    if (SSL_client_hello_get0_session_id(ssl, NULL) == 0) {
        return 0;                            /* no ID to resume by: decrypt */
    }
    st->sess = memo_get(m, &m->store->tickets, st->key, ssl);
    return st->sess != NULL;
}
