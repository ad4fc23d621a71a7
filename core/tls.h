/* tls.h: TLS for listeners and backends. The SSL_CTXs of a configuration are
 * built when it is loaded and owned by its snapshot; workers share them
 * read-only. tls.c (and tls_memo.c, for it) are the only files that call
 * OpenSSL; a connection gets its SSL from here and hands it to
 * bufferevent_openssl. */
#ifndef RP_TLS_H
#define RP_TLS_H

#include "rp.h"
#include "config.h"

#include <stdint.h>

#include <openssl/types.h>

/* Loads n certificate/key pairs (each a PEM leaf + chain, and its key) and
 * checks each key against its certificate. Two certificates with the same key
 * type are refused. Returns NULL with the reason in err on failure. */
rp_tls_certset_t *rp_tls_certset_load(const rp_tls_cert_conf_t *certs, unsigned n,
                                      char *err, size_t errlen);
void rp_tls_certset_free(rp_tls_certset_t *cs);

/* Builds lc->tls's SSL_CTX, and one per vhost of conf with its own
 * certificates (v->tls_certset, loaded first) chosen by SNI. conf and lc are
 * borrowed: they must outlive the result (the snapshot owns both). Returns
 * NULL with the reason in err ("'tls.crl': ..."). */
rp_tls_server_t *rp_tls_server_new(const rp_config_t *conf, const rp_listen_conf_t *lc,
                                   char *err, size_t errlen);
void rp_tls_server_free(rp_tls_server_t *t);

/* A new server-side SSL (accept state) for an accepted connection; the caller
 * owns it (SSL_free, or bufferevent_openssl with BEV_OPT_CLOSE_ON_FREE). It
 * must not outlive the snapshot that owns t. NULL on OOM. */
SSL *rp_tls_server_ssl(rp_tls_server_t *t);

/* Call before freeing an SSL (either side) whose handshake finished: sends
 * close_notify if the transport takes it at once, and marks the SSL as shut
 * down either way. Without it SSL_free() (bufferevent_free() too) removes
 * the session from the server's cache, so it could not be resumed. Never
 * blocks; does nothing after a failed handshake. */
void rp_tls_shutdown(SSL *ssl);

/* Names the connection in the log lines the handshake writes (a rejected
 * client certificate): "conn 12 from 1.2.3.4:5678". Copied (63 bytes kept). */
void rp_tls_set_log_id(SSL *ssl, const char *id);

/* The vhost whose certificate SNI chose, or NULL (the listener's own): for
 * tls.misdirected, compare it with the vhost the Host header chooses. */
const rp_vhost_conf_t *rp_tls_sni_vhost(SSL *ssl);

/* Counters of a listener, summed over all workers. */
typedef struct {
    uint64_t  cert_cache_hits;      /* client chains accepted from the cert cache   */
    uint64_t  cert_cache_misses;    /* chains verified by X509_verify_cert()        */
    uint64_t  cert_cache_entries;   /* now in the cache                             */
    uint64_t  verify_failures;      /* client certificates refused                  */
    uint64_t  crl_reloads;          /* times the CRL file was read again            */
    uint64_t  ticket_rotations;     /* random ticket keys replaced                  */
    uint64_t  ticket_memo_hits;     /* TLS 1.2 tickets resumed from memory          */
    uint64_t  ticket_memo_entries;  /* sessions held for tickets now                */
    uint64_t  sessions;             /* sessions held by their ID now (the cache)    */
    uint64_t  tickets_cache_full;   /* handshakes left to stateless tickets, the
                                       cache being full (random ticket keys)       */
} rp_tls_stats_t;

void rp_tls_server_stats(rp_tls_server_t *t, rp_tls_stats_t *st);

/* A configured x509 extension of the peer certificate, as text. */
typedef struct {
    const char  *header;       /* borrowed: tls.extensions' header name        */
    char        *value;        /* owned; NULL when the certificate lacks it    */
} rp_tls_ext_fact_t;

/* The TLS and x509 facts of an established connection. Every string is
 * NUL-terminated, owned by the struct, and NULL when not known (no peer
 * certificate, no SNI); values never contain CR or LF. */
typedef struct {
    char               *sni;           /* server name the client sent                 */
    char               *protocol;      /* "TLSv1.3"                                   */
    char               *cipher;        /* "TLS_AES_256_GCM_SHA384"                    */
    char               *subject;       /* peer certificate: RFC 2253 one-line DN      */
    char               *issuer;        /* RFC 2253                                    */
    char               *serial;        /* uppercase hex                               */
    char               *not_before;    /* "Nov 28 17:15:48 2026 GMT"                  */
    char               *not_after;
    char               *fingerprint;   /* SHA-256 of the DER, lowercase hex, no colons */
    char               *certificate;   /* PEM, URL-escaped to one line (nginx's
                                          $ssl_client_escaped_cert)                   */
    rp_tls_ext_fact_t  *exts;          /* owned: one per tls.extensions (server side) */
    unsigned            nexts;
    int                 has_peer_cert;
    int                 session_reused;
    long                verify_result; /* X509_V_OK (0) or an X509_V_ERR_*            */
} rp_tls_facts_t;

/* Fills f (zeroed first) from an established SSL. Returns RP_OK, or RP_ERROR
 * on OOM with f cleaned up. */
int rp_tls_facts(SSL *ssl, rp_tls_facts_t *f);
void rp_tls_facts_cleanup(rp_tls_facts_t *f);

/* The fact a header h carries, or NULL. */
const char *rp_tls_facts_get(const rp_tls_facts_t *f, rp_tls_header_e h);

/* A TLS backend's SSL_CTX (bc->tls). bc is borrowed and must outlive it.
 * Returns NULL with the reason in err. */
rp_tls_client_t *rp_tls_client_new(const rp_backend_conf_t *bc, char *err, size_t errlen);
void rp_tls_client_free(rp_tls_client_t *c);

/* A new client-side SSL (connect state) with SNI and the expected name set,
 * resuming the latest session of that backend when there is one. The caller
 * owns it. NULL on OOM. */
SSL *rp_tls_client_ssl(rp_tls_client_t *c);

/* Why a handshake with a backend failed, for the error log: the certificate
 * verification error when there was one ("certificate verify failed:
 * hostname mismatch"), else OpenSSL's last error. The string is valid until
 * the thread's next call. */
const char *rp_tls_client_error(SSL *ssl);

/* A TLS bufferevent's error (bufferevent_get_openssl_error()) as text for
 * the error log. libevent puts an OpenSSL error code there, or, for a socket
 * error or an EOF in mid-handshake, the SSL_get_error() value, which
 * ERR_error_string() would print as "error:00000005:lib(0)::reason(5)". The
 * string is valid until the thread's next call. */
const char *rp_tls_bev_error(unsigned long e);

#endif
