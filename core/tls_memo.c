/* tls_memo.c: TLS 1.2 tickets resumed from memory (tls_memo.h).
 *
 * OpenSSL 3.0 resumes a ticket by decoding the session in it, and the client
 * certificate of that session goes through the provider decoders: 1.6 million
 * instructions, against 0.55 million for the rest of a resumed handshake with
 * its GET (callgrind). A session resumed by its ID from the cache is not
 * decoded: it stays in memory. So the memo keeps the session behind each
 * ticket, and brings a ticket back by the session-ID path, with OpenSSL's
 * public callbacks only:
 *
 *  1. the ticket key callback (tls.c) finds the ticket's key name and IV here
 *     (rp_tls_memo_recall), leaves a copy of the session on the SSL and
 *     answers 0, "unknown key";
 *  2. the decrypted-ticket callback (memo_on_ticket) turns that "could not
 *     decrypt" into SSL_TICKET_RETURN_IGNORE: OpenSSL then looks up the
 *     session ID of the ClientHello, as if no ticket had come;
 *  3. the session cache does not hold that ID, and the get-session callback
 *     (memo_on_get) hands over the copy, renamed to the client's session ID.
 *
 * That needs a session ID in the ClientHello: OpenSSL, BoringSSL and Go send
 * one with a TLS 1.2 ticket (RFC 5077 3.4), and without one the ticket is
 * decrypted as before. TLS 1.3 has no such path: its tickets are decrypted.
 *
 * OpenSSL would store what the get-session callback returns in its cache,
 * where these copies would push out the sessions of clients that resume by ID
 * alone. So the memo's listeners run with SSL_SESS_CACHE_NO_INTERNAL_STORE and
 * memo_on_new stores what OpenSSL would have stored: the new sessions with an
 * ID, which TLS 1.2 has when no ticket is issued and TLS 1.3 (stateless
 * tickets) never has in the cache.
 *
 * The memo's sessions are private copies: the connection that made one goes
 * on using its own, and each resumption gets a copy of the copy. */
#include "tls_memo.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keytab.h"

#define MEMO_KEY_LEN   RP_KEYTAB_KEY_LEN     /* the ticket's key name, then its IV */

struct rp_tls_memo_s {
    pthread_mutex_t        lock;             /* tab                                   */
    rp_keytab_t            tab;              /* values: sessions no connection uses,
                                                until time() passes the session's
                                                time + timeout                       */
    SSL_CTX               *session_ctx;      /* borrowed: where the session cache is  */
    unsigned char          sid_ctx[SSL_MAX_SID_CTX_LENGTH];
    unsigned               sid_ctx_len;
    atomic_uint_fast64_t   hits;
};

/* On an SSL from the ticket key callback to the session lookup. */
typedef struct {
    rp_tls_memo_t  *memo;
    unsigned char   key[MEMO_KEY_LEN];
    SSL_SESSION    *sess;                    /* owned: the copy to resume; NULL: decrypt */
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

static void
memo_on_free_stash(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void) parent;
    (void) ad;
    (void) idx;
    (void) argl;
    (void) argp;
    memo_stash_free(ptr);
}

static void
memo_init(void)
{
    memo_ctx_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    memo_stash_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, memo_on_free_stash);
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


/* ---- the table ------------------------------------------------------------- */

static void
memo_free_session(void *sess)
{
    SSL_SESSION_free(sess);
}

rp_tls_memo_t *
rp_tls_memo_new(unsigned capacity, const unsigned char *sid_ctx, unsigned sid_ctx_len)
{
    rp_tls_memo_t  *m;

    pthread_once(&memo_once, memo_init);
    m = rp_xalloc(sizeof(rp_tls_memo_t));
    pthread_mutex_init(&m->lock, NULL);
    rp_keytab_init(&m->tab, capacity, memo_free_session);
    m->sid_ctx_len = sid_ctx_len < sizeof(m->sid_ctx) ? sid_ctx_len : sizeof(m->sid_ctx);
    memcpy(m->sid_ctx, sid_ctx, m->sid_ctx_len);
    return m;
}

/* Keeps a copy of sess under key, when it belongs to this listener. */
static void
memo_put(rp_tls_memo_t *m, const unsigned char *key, const SSL_SESSION *sess)
{
    const unsigned char  *sid_ctx;
    unsigned int          len;
    long                  expires = SSL_SESSION_get_time(sess) + SSL_SESSION_get_timeout(sess);
    SSL_SESSION          *copy;

    sid_ctx = SSL_SESSION_get0_id_context(sess, &len);
    if (len != m->sid_ctx_len || memcmp(sid_ctx, m->sid_ctx, len) != 0
        || expires <= (long) time(NULL) || (copy = SSL_SESSION_dup(sess)) == NULL) {
        return;                              /* another listener's, stale, or OOM */
    }
    pthread_mutex_lock(&m->lock);
    rp_keytab_put(&m->tab, key, (double) expires, copy);
    pthread_mutex_unlock(&m->lock);
}

/* A copy of the session under key that ssl can resume, or NULL. */
static SSL_SESSION *
memo_get(rp_tls_memo_t *m, const unsigned char *key, SSL *ssl)
{
    rp_keytab_entry_t  *e;
    SSL_SESSION        *held = NULL, *copy;

    pthread_mutex_lock(&m->lock);
    e = rp_keytab_get(&m->tab, key, (double) time(NULL));
    if (e != NULL && SSL_SESSION_get_protocol_version(e->val) == SSL_version(ssl)) {
        held = e->val;
        SSL_SESSION_up_ref(held);            /* eviction cannot free it under us */
    }
    pthread_mutex_unlock(&m->lock);
    if (held == NULL) {
        return NULL;
    }
    copy = SSL_SESSION_dup(held);
    SSL_SESSION_free(held);
    return copy;
}

void
rp_tls_memo_free(rp_tls_memo_t *m)
{
    if (m == NULL) {
        return;
    }
    rp_keytab_destroy(&m->tab);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

void
rp_tls_memo_stats(rp_tls_memo_t *m, uint64_t *hits, uint64_t *entries)
{
    *hits = atomic_load(&m->hits);
    pthread_mutex_lock(&m->lock);
    *entries = m->tab.n;
    pthread_mutex_unlock(&m->lock);
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
        if (st != NULL && sess != NULL) {
            memo_put(st->memo, st->key, sess);   /* the next time, from memory */
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

/* SSL_CTX_sess_set_get_cb(): the session ID the client offered, not in the
 * session cache. Only a stashed copy answers; the reference goes to OpenSSL. */
static SSL_SESSION *
memo_on_get(SSL *ssl, const unsigned char *id, int len, int *copy)
{
    memo_stash_t  *st = memo_unstash(ssl);
    SSL_SESSION   *sess = NULL;

    *copy = 0;
    if (st != NULL && st->sess != NULL && len > 0
        && SSL_SESSION_set1_id(st->sess, id, (unsigned int) len) == 1) {
        sess = st->sess;
        st->sess = NULL;
        atomic_fetch_add(&st->memo->hits, 1);
    }
    memo_stash_free(st);
    return sess;
}

/* SSL_CTX_sess_set_new_cb(): stores in the session cache what OpenSSL would
 * have stored without SSL_SESS_CACHE_NO_INTERNAL_STORE (OpenSSL calls it only
 * for sessions with an ID). Returns 0: the caller keeps its reference. */
static int
memo_on_new(SSL *ssl, SSL_SESSION *sess)
{
    rp_tls_memo_t  *m = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), memo_ctx_idx);

    if (m != NULL && SSL_version(ssl) != TLS1_3_VERSION) {
        SSL_CTX_add_session(m->session_ctx, sess);
    }
    return 0;
}

void
rp_tls_memo_install(rp_tls_memo_t *m, SSL_CTX *ctx, SSL_CTX *session_ctx)
{
    m->session_ctx = session_ctx;
    SSL_CTX_set_ex_data(ctx, memo_ctx_idx, m);
    SSL_CTX_set_session_cache_mode(ctx, SSL_CTX_get_session_cache_mode(ctx)
                                        | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, memo_on_new);
    SSL_CTX_sess_set_get_cb(ctx, memo_on_get);
    SSL_CTX_set_session_ticket_cb(ctx, NULL, memo_on_ticket, NULL);
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
    memcpy(key, name, 16);
    memcpy(key + 16, iv, 16);
    memo_put(m, key, sess);
}

int
rp_tls_memo_recall(rp_tls_memo_t *m, SSL *ssl, const unsigned char *name,
                   const unsigned char *iv)
{
    memo_stash_t  *st;

    if (SSL_version(ssl) == TLS1_3_VERSION) {
        return 0;
    }
    memo_stash_free(memo_unstash(ssl));
    st = rp_xalloc(sizeof(memo_stash_t));
    st->memo = m;
    memcpy(st->key, name, 16);
    memcpy(st->key + 16, iv, 16);
    SSL_set_ex_data(ssl, memo_stash_idx, st);
    /* the ClientHello is still there while OpenSSL looks for the session */
    if (SSL_client_hello_get0_session_id(ssl, NULL) == 0) {
        return 0;                            /* no ID to resume by: decrypt */
    }
    st->sess = memo_get(m, st->key, ssl);
    return st->sess != NULL;
}
