/* tls_memo.h: a listener's TLS sessions, kept by rproxy rather than in
 * OpenSSL's per-SSL_CTX cache, so that they outlive a reload: the snapshots
 * of one listener address share them. Sessions resumed by ID (and TLS 1.3
 * stateful tickets), and the session behind each TLS 1.2 ticket the listener
 * issues or reads, which is then resumed from memory instead of being decoded
 * out of the ticket: with a client certificate in the session, OpenSSL 3.0's
 * decoding costs three times the rest of a resumed handshake (docs/tls.md,
 * "The session cache and tickets"). */
#ifndef RP_TLS_MEMO_H
#define RP_TLS_MEMO_H

#include <stdint.h>

#include <openssl/ssl.h>

typedef struct rp_tls_memo_s  rp_tls_memo_t;

typedef struct {
    uint64_t  ticket_hits;     /* TLS 1.2 tickets resumed from memory          */
    uint64_t  cache_full;      /* ClientHellos left to tickets, the cache being
                                  full (RP_MEMO_IDS_FIRST)                     */
    uint64_t  tickets;         /* sessions held for tickets now                */
    uint64_t  ids;             /* sessions held by their ID now                */
} rp_tls_memo_stats_t;

/* The sessions of the listener at address (shared with its other snapshots:
 * the newest capacity holds), as the snapshot whose session ID context is
 * sid_ctx (copied) sees them: another context's sessions are not resumed. */
rp_tls_memo_t *rp_tls_memo_new(const char *address, unsigned capacity,
                               const unsigned char *sid_ctx, unsigned sid_ctx_len);

/* Drops the caller's reference. Each SSL_CTX m is installed on holds one of
 * its own until OpenSSL frees it: an SSL outlives its snapshot (libevent
 * frees a TLS bufferevent after the connection let the snapshot go), and
 * SSL_free() still asks m whether to forget the session. */
void rp_tls_memo_free(rp_tls_memo_t *m);

/* How a listener's new sessions are resumed. */
typedef enum {
    RP_MEMO_IDS,          /* by ID, TLS 1.3 by stateful tickets (tickets = false) */
    RP_MEMO_TICKETS,      /* by stateless tickets, the TLS 1.2 ones from memory   */
    RP_MEMO_IDS_FIRST     /* by ID while the cache has room, then by tickets      */
} rp_tls_memo_mode_e;

/* Serves ctx's sessions from m, in place of OpenSSL's cache (every SSL_CTX
 * of the listener: SNI may swap one in). RP_MEMO_IDS_FIRST is for random
 * ticket keys, which only this process can read anyway: a stateless ticket
 * then reaches no client a cached session would not, and costs OpenSSL a
 * decode of the session to make (docs/tls.md, "The session cache and
 * tickets"). */
void rp_tls_memo_install(rp_tls_memo_t *m, SSL_CTX *ctx, rp_tls_memo_mode_e mode);

/* From the ticket key callback, encrypting: remembers ssl's session under
 * the new ticket's key name and IV (16 bytes each). TLS 1.2 only. */
void rp_tls_memo_issued(rp_tls_memo_t *m, SSL *ssl, const unsigned char *name,
                        const unsigned char *iv);

/* From the ticket key callback, decrypting a ticket of the current key:
 * 1 when the memo holds its session and the client offered a session ID,
 * the callback then answers "unknown key" and the session is resumed by that
 * ID from the copy; 0 to decrypt (the session read is remembered then). */
int rp_tls_memo_recall(rp_tls_memo_t *m, SSL *ssl, const unsigned char *name,
                       const unsigned char *iv);

void rp_tls_memo_stats(rp_tls_memo_t *m, rp_tls_memo_stats_t *st);

#endif
