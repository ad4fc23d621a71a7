/* tls_memo.h: TLS 1.2 tickets resumed from memory. A listener with both
 * tickets and the session cache keeps the session behind each ticket it issues
 * (or reads), keyed by the ticket's key name and IV, and resumes that ticket
 * from the copy instead of decoding the session out of it: with a client
 * certificate in the session, OpenSSL 3.0's decoding costs three times the
 * rest of a resumed handshake (docs/tls.md, "Tickets resumed from memory"). */
#ifndef RP_TLS_MEMO_H
#define RP_TLS_MEMO_H

#include <stdint.h>

#include <openssl/ssl.h>

typedef struct rp_tls_memo_s  rp_tls_memo_t;

/* A memo of at most capacity sessions of the listener whose session ID
 * context is sid_ctx (copied): a ticket of another one is decrypted. */
rp_tls_memo_t *rp_tls_memo_new(unsigned capacity, const unsigned char *sid_ctx,
                               unsigned sid_ctx_len);
void rp_tls_memo_free(rp_tls_memo_t *m);

/* Serves ctx's sessions from m (every SSL_CTX of the listener: SNI may swap
 * one in). session_ctx is the listener's own SSL_CTX, where OpenSSL keeps
 * the session cache; borrowed, it must outlive m's use. */
void rp_tls_memo_install(rp_tls_memo_t *m, SSL_CTX *ctx, SSL_CTX *session_ctx);

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

/* Tickets resumed from memory, and sessions held now. */
void rp_tls_memo_stats(rp_tls_memo_t *m, uint64_t *hits, uint64_t *entries);

#endif
