/* tls.c: the SSL_CTXs of TLS listeners and backends: certificates, SNI, the
 * session cache and RFC 5077 ticket keys, client certificate verification
 * (CRL reloaded on change, verified certificates cached), and the x509 facts
 * of a connection. With tls_memo.c, the only file that calls OpenSSL. */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "keytab.h"
#include "log.h"
#include "match.h"
#include "tls_memo.h"

#define TLS_TICKET_NAME_LEN   16
#define TLS_TICKET_MAX_KEYS   64      /* records of a ticket key file */
#define TLS_CRL_CHECK_EVERY   1.0     /* s between two stat()s of the CRL file */
#define TLS_LOG_ID_LEN        64

/* One certificate (leaf + chain) with its key. */
typedef struct {
    X509            *leaf;      /* owned */
    STACK_OF(X509)  *chain;     /* owned: the certificates after the leaf */
    EVP_PKEY        *key;       /* owned */
} tls_keypair_t;

struct rp_tls_certset_s {
    tls_keypair_t  *pairs;      /* owned */
    unsigned        n;
};

/* An RFC 5077 ticket key, laid out in files as nginx's ssl_session_ticket_key:
 * 48 bytes = name[16] aes[16] hmac[16] (AES-128-CBC), 80 bytes = name[16]
 * hmac[32] aes[32] (AES-256-CBC); HMAC-SHA256 either way. */
typedef struct {
    unsigned char  name[TLS_TICKET_NAME_LEN];
    unsigned char  aes[32];
    unsigned char  hmac[32];
    size_t         size;        /* 48 or 80 */
} tls_ticket_key_t;

/* The ticket keys of a listener. Keys from a file are its own; random keys
 * are shared by every listener of one address in the process, so that the
 * snapshot a reload builds goes on reading the tickets of the one before. */
typedef struct tls_keyring_s  tls_keyring_t;
struct tls_keyring_s {
    pthread_mutex_t    lock;        /* keys, nkeys, rotated                       */
    tls_ticket_key_t  *keys;        /* owned: [0] encrypts, all decrypt           */
    unsigned           nkeys;
    int                from_file;
    double             rotated;     /* rp_now() when keys[0] was made             */
    char              *address;     /* owned; random rings: the listener address  */
    unsigned           refs;        /* random rings: under tls_rings_lock         */
    tls_keyring_t     *next;        /* in tls_rings                                */
};

/* A vhost with its own certificates, and the SSL_CTX that serves them. */
typedef struct {
    const rp_vhost_conf_t  *vhost;   /* borrowed from the snapshot */
    SSL_CTX                *ctx;     /* owned */
} tls_sni_t;

struct rp_tls_server_s {
    SSL_CTX                  *ctx;         /* owned: the listener's certificates; its
                                              session cache and ticket keys serve every
                                              vhost ctx too (OpenSSL's session_ctx)   */
    tls_sni_t                *sni;         /* owned */
    unsigned                  nsni;
    const rp_config_t        *conf;        /* borrowed: the snapshot owning us         */
    const rp_tls_conf_t      *tc;          /* borrowed: the listener's tls            */
    ASN1_OBJECT             **ext_objs;    /* owned: tc->exts[i].ext parsed           */
    unsigned char            *alpn;        /* owned: tc->alpn in wire format          */
    size_t                    alpnlen;
    STACK_OF(X509_NAME)      *ca_names;    /* owned: sent in CertificateRequest       */
    unsigned char             sid_ctx[SSL_MAX_SID_CTX_LENGTH];

    tls_keyring_t            *ring;        /* a reference: ticket keys; NULL: none    */
    rp_tls_memo_t            *memo;        /* owned: the session cache (shared with the
                                              listener's other snapshots) and the TLS
                                              1.2 ticket memo; NULL: no cache          */

    pthread_mutex_t           verify_lock; /* everything below but the counters       */
    X509_STORE               *store;       /* owned: CA + CRL; replaced when the CRL
                                              changes (a verification in flight holds
                                              its own reference)                       */
    double                    crl_checked; /* rp_now() of the last stat()             */
    struct timespec           crl_mtime;
    off_t                     crl_size;
    int                       crl_loading; /* a thread is reading the CRL file        */
    unsigned long             cc_gen;      /* bumped on every flush of the cache      */
    rp_keytab_t               cc;          /* the SHA-256s of client certificates that
                                              verified, until rp_now() expires        */

    atomic_uint_fast64_t      hits, misses, failures, crl_reloads, rotations;
};

struct rp_tls_client_s {
    SSL_CTX                  *ctx;         /* owned */
    const rp_backend_conf_t  *bc;          /* borrowed */
    int                       name_is_ip;  /* bc->tls->name is an IP literal          */
    pthread_mutex_t           lock;        /* session                                 */
    SSL_SESSION              *session;     /* owned: the latest one, resumed next     */
};

static pthread_once_t  tls_once = PTHREAD_ONCE_INIT;
static int             tls_server_idx = -1;    /* SSL_CTX ex_data: rp_tls_server_t */
static int             tls_client_idx = -1;    /* SSL_CTX ex_data: rp_tls_client_t */
static int             tls_log_id_idx = -1;    /* SSL ex_data: malloc'd log id     */
static int             tls_vhost_idx = -1;     /* SSL ex_data: vhost SNI chose     */
static pthread_mutex_t tls_rings_lock = PTHREAD_MUTEX_INITIALIZER;
static tls_keyring_t  *tls_rings;              /* random rings, by address         */

static void tls_cc_flush(rp_tls_server_t *t);


/* ---- helpers ------------------------------------------------------------ */

static void
tls_on_free_log_id(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    free(ptr);
}

static void
tls_init(void)
{
    tls_server_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    tls_client_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    tls_log_id_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, tls_on_free_log_id);
    tls_vhost_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static void
tls_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
tls_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list  ap;

    if (errlen == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* OpenSSL's reason for the last failure, and an empty error queue after. */
static const char *
tls_reason(void)
{
    static _Thread_local char  buf[160];
    unsigned long              e = ERR_peek_last_error();
    const char                *r = e != 0 ? ERR_reason_error_string(e) : NULL;

    snprintf(buf, sizeof(buf), "%s", r != NULL ? r : "unknown OpenSSL error");
    ERR_clear_error();
    return buf;
}

/* Header values must not break the head they go into: CR, LF and the other
 * control bytes become spaces, and a line break with its indent (multi-line
 * extension text) becomes ", ". */
static char *
tls_one_line(const char *s, size_t n)
{
    char    *out = rp_xalloc(n * 2 + 1), *o = out;
    size_t   i;

    for (i = 0; i < n; i++) {
        unsigned char  c = (unsigned char) s[i];

        if (c == '\r' || c == '\n') {
            while (i + 1 < n && (s[i + 1] == '\r' || s[i + 1] == '\n' || s[i + 1] == ' ')) {
                i++;
            }
            if (o != out && i + 1 < n) {
                *o++ = ',';
                *o++ = ' ';
            }
            continue;
        }
        *o++ = (c < 0x20 || c == 0x7f) ? ' ' : (char) c;
    }
    *o = '\0';
    return out;
}

/* The memory BIO's contents as a one-line string (owned); NULL when empty. */
static char *
tls_bio_string(BIO *b)
{
    char  *data;
    long   n = BIO_get_mem_data(b, &data);

    return n > 0 ? tls_one_line(data, (size_t) n) : NULL;
}

static char *
tls_hex(const unsigned char *p, size_t n)
{
    static const char  digits[] = "0123456789abcdef";
    char              *s = rp_xalloc(n * 2 + 1);
    size_t             i;

    for (i = 0; i < n; i++) {
        s[2 * i] = digits[p[i] >> 4];
        s[2 * i + 1] = digits[p[i] & 0xf];
    }
    return s;
}

/* Key files may be encrypted only for an operator who types a password:
 * refuse instead of prompting on the terminal. */
static int
tls_no_password(char *buf, int size, int rwflag, void *u)
{
    return -1;
}

/* Whether path can be opened, for a message better than OpenSSL's. */
static int
tls_readable(const char *path, char *err, size_t errlen)
{
    FILE  *f = fopen(path, "r");

    if (f == NULL) {
        tls_errf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
        return RP_ERROR;
    }
    fclose(f);
    return RP_OK;
}

static int
tls_is_ip(const char *s)
{
    unsigned char  buf[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}


/* ---- certificates ---------------------------------------------------------- */

static void
tls_keypair_cleanup(tls_keypair_t *kp)
{
    X509_free(kp->leaf);
    sk_X509_pop_free(kp->chain, X509_free);
    EVP_PKEY_free(kp->key);
}

static int
tls_keypair_load(tls_keypair_t *kp, const rp_tls_cert_conf_t *cc, char *err, size_t errlen)
{
    BIO            *b;
    X509           *x;
    unsigned long   e;

    if ((b = BIO_new_file(cc->cert, "r")) == NULL) {
        tls_errf(err, errlen, "cannot read certificate '%s': %s", cc->cert, strerror(errno));
        ERR_clear_error();
        return RP_ERROR;
    }
    kp->leaf = PEM_read_bio_X509_AUX(b, NULL, tls_no_password, NULL);
    if (kp->leaf == NULL) {
        tls_errf(err, errlen, "no PEM certificate in '%s': %s", cc->cert, tls_reason());
        BIO_free(b);
        return RP_ERROR;
    }
    kp->chain = sk_X509_new_null();
    while ((x = PEM_read_bio_X509(b, NULL, tls_no_password, NULL)) != NULL) {
        sk_X509_push(kp->chain, x);
    }
    e = ERR_peek_last_error();
    BIO_free(b);
    if (ERR_GET_LIB(e) != ERR_LIB_PEM || ERR_GET_REASON(e) != PEM_R_NO_START_LINE) {
        tls_errf(err, errlen, "bad certificate chain in '%s': %s", cc->cert, tls_reason());
        return RP_ERROR;
    }
    ERR_clear_error();

    if ((b = BIO_new_file(cc->key, "r")) == NULL) {
        tls_errf(err, errlen, "cannot read key '%s': %s", cc->key, strerror(errno));
        ERR_clear_error();
        return RP_ERROR;
    }
    kp->key = PEM_read_bio_PrivateKey(b, NULL, tls_no_password, NULL);
    BIO_free(b);
    if (kp->key == NULL) {
        tls_errf(err, errlen, "no usable PEM private key in '%s' (an encrypted key is refused): "
                 "%s", cc->key, tls_reason());
        return RP_ERROR;
    }
    if (X509_check_private_key(kp->leaf, kp->key) != 1) {
        ERR_clear_error();
        tls_errf(err, errlen, "key '%s' does not match certificate '%s'", cc->key, cc->cert);
        return RP_ERROR;
    }
    if (X509_cmp_current_time(X509_get0_notAfter(kp->leaf)) < 0) {
        rp_log_warn("certificate '%s' has expired", cc->cert);
    }
    return RP_OK;
}

rp_tls_certset_t *
rp_tls_certset_load(const rp_tls_cert_conf_t *certs, unsigned n, char *err, size_t errlen)
{
    rp_tls_certset_t  *cs;
    unsigned           i, j;

    cs = rp_xalloc(sizeof(rp_tls_certset_t));
    cs->pairs = rp_xalloc(n * sizeof(tls_keypair_t));
    cs->n = n;
    for (i = 0; i < n; i++) {
        if (tls_keypair_load(&cs->pairs[i], &certs[i], err, errlen) != RP_OK) {
            goto fail;
        }
        for (j = 0; j < i; j++) {
            if (EVP_PKEY_get_base_id(cs->pairs[j].key) == EVP_PKEY_get_base_id(cs->pairs[i].key)) {
                tls_errf(err, errlen, "certificates '%s' and '%s' have the same key type (%s); "
                         "one listener serves at most one of each type", certs[j].cert,
                         certs[i].cert, OBJ_nid2sn(EVP_PKEY_get_base_id(cs->pairs[i].key)));
                goto fail;
            }
        }
    }
    return cs;

fail:
    rp_tls_certset_free(cs);
    return NULL;
}

void
rp_tls_certset_free(rp_tls_certset_t *cs)
{
    unsigned  i;

    if (cs == NULL) {
        return;
    }
    for (i = 0; i < cs->n; i++) {
        tls_keypair_cleanup(&cs->pairs[i]);
    }
    free(cs->pairs);
    free(cs);
}

static int
tls_use_certset(SSL_CTX *ctx, const rp_tls_certset_t *cs, char *err, size_t errlen)
{
    unsigned  i;

    for (i = 0; i < cs->n; i++) {
        if (SSL_CTX_use_cert_and_key(ctx, cs->pairs[i].leaf, cs->pairs[i].key,
                                     cs->pairs[i].chain, 1) != 1) {
            tls_errf(err, errlen, "cannot use certificate: %s", tls_reason());
            return RP_ERROR;
        }
    }
    return RP_OK;
}


/* ---- ticket keys -------------------------------------------------------------- */

static int
tls_ticket_key_random(tls_ticket_key_t *k)
{
    k->size = 80;
    return RAND_bytes(k->name, sizeof(k->name)) == 1 && RAND_bytes(k->aes, 32) == 1
           && RAND_bytes(k->hmac, 32) == 1 ? RP_OK : RP_ERROR;
}

static tls_keyring_t *
tls_keyring_new(unsigned nkeys)
{
    tls_keyring_t  *r = rp_xalloc(sizeof(tls_keyring_t));

    pthread_mutex_init(&r->lock, NULL);
    r->keys = rp_xalloc(nkeys * sizeof(tls_ticket_key_t));
    r->refs = 1;
    return r;
}

static void
tls_keyring_free(tls_keyring_t *r)
{
    OPENSSL_cleanse(r->keys, (r->from_file ? r->nkeys : 2) * sizeof(tls_ticket_key_t));
    free(r->keys);
    free(r->address);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* A file of records of 48 or 80 bytes, all the same size (a length that is a
 * multiple of 80 is read as 80-byte records); the first one encrypts. */
static tls_keyring_t *
tls_keyring_load(const char *path, char *err, size_t errlen)
{
    unsigned char     buf[TLS_TICKET_MAX_KEYS * 80 + 1];
    FILE             *f;
    size_t            n, rec, i;
    tls_keyring_t    *r;
    tls_ticket_key_t *k;

    if ((f = fopen(path, "rb")) == NULL) {
        tls_errf(err, errlen, "cannot read ticket key file '%s': %s", path, strerror(errno));
        return NULL;
    }
    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    rec = n % 80 == 0 ? 80 : n % 48 == 0 ? 48 : 0;
    if (n == 0 || rec == 0 || n / rec > TLS_TICKET_MAX_KEYS) {
        tls_errf(err, errlen, "ticket key file '%s' has %zu bytes: expected 1 to %d records of "
                 "48 or 80 bytes (openssl rand 80 > file)", path, n, TLS_TICKET_MAX_KEYS);
        OPENSSL_cleanse(buf, sizeof(buf));
        return NULL;
    }
    r = tls_keyring_new((unsigned) (n / rec));
    r->nkeys = (unsigned) (n / rec);
    r->from_file = 1;
    for (i = 0; i < r->nkeys; i++) {
        k = &r->keys[i];
        k->size = rec;
        memcpy(k->name, buf + i * rec, 16);
        if (rec == 48) {
            memcpy(k->aes, buf + i * rec + 16, 16);
            memcpy(k->hmac, buf + i * rec + 32, 16);
        } else {
            memcpy(k->hmac, buf + i * rec + 16, 32);
            memcpy(k->aes, buf + i * rec + 48, 32);
        }
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    return r;
}

/* The random ring of address: the existing one with a new reference, or a
 * new one with a fresh key. */
static tls_keyring_t *
tls_keyring_random(const char *address, char *err, size_t errlen)
{
    tls_keyring_t  *r;

    pthread_mutex_lock(&tls_rings_lock);
    for (r = tls_rings; r != NULL; r = r->next) {
        if (strcmp(r->address, address) == 0) {
            r->refs++;
            pthread_mutex_unlock(&tls_rings_lock);
            return r;
        }
    }
    r = tls_keyring_new(2);
    r->nkeys = 1;
    r->rotated = rp_now();
    if (tls_ticket_key_random(&r->keys[0]) != RP_OK) {
        pthread_mutex_unlock(&tls_rings_lock);
        tls_errf(err, errlen, "cannot make a ticket key: %s", tls_reason());
        tls_keyring_free(r);
        return NULL;
    }
    r->address = rp_xstrdup(address);
    r->next = tls_rings;
    tls_rings = r;
    pthread_mutex_unlock(&tls_rings_lock);
    return r;
}

static void
tls_keyring_unref(tls_keyring_t *r)
{
    tls_keyring_t  **pp;

    if (r == NULL) {
        return;
    }
    if (r->from_file) {
        tls_keyring_free(r);
        return;
    }
    pthread_mutex_lock(&tls_rings_lock);
    if (--r->refs > 0) {
        pthread_mutex_unlock(&tls_rings_lock);
        return;
    }
    for (pp = &tls_rings; *pp != r; pp = &(*pp)->next) {
        /* find the link to r */
    }
    *pp = r->next;
    pthread_mutex_unlock(&tls_rings_lock);
    tls_keyring_free(r);
}

/* Random keys: every `every` seconds a new key encrypts, and the one before
 * it still decrypts (its tickets are renewed). Called locked. */
static void
tls_keyring_rotate(tls_keyring_t *r, double every, double now, rp_tls_server_t *t)
{
    tls_ticket_key_t  k;

    if (r->from_file || now - r->rotated < every) {
        return;
    }
    if (tls_ticket_key_random(&k) != RP_OK) {
        return;                        /* keep the old key; try again next time */
    }
    r->keys[1] = r->keys[0];
    r->keys[0] = k;
    r->nkeys = 2;
    r->rotated = now;
    OPENSSL_cleanse(&k, sizeof(k));
    atomic_fetch_add(&t->rotations, 1);
}

static int
tls_ticket_init(const tls_ticket_key_t *k, unsigned char *iv, EVP_CIPHER_CTX *ectx,
                EVP_MAC_CTX *hctx, int enc)
{
    OSSL_PARAM         params[3];
    const EVP_CIPHER  *cipher = k->size == 48 ? EVP_aes_128_cbc() : EVP_aes_256_cbc();

    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *) k->hmac,
                                                  k->size == 48 ? 16 : 32);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *) "SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    if (EVP_MAC_CTX_set_params(hctx, params) != 1) {
        return -1;
    }
    if (enc) {
        return EVP_EncryptInit_ex(ectx, cipher, NULL, k->aes, iv) == 1 ? 1 : -1;
    }
    return EVP_DecryptInit_ex(ectx, cipher, NULL, k->aes, iv) == 1 ? 1 : -1;
}

/* SSL_CTX_set_tlsext_ticket_key_evp_cb(): enc: fill name and iv, return 1;
 * decrypt: 0 for an unknown key (full handshake), 1, or 2 to renew a ticket
 * made with an older key (RFC 5077 3.3). Any worker thread calls it. */
static int
tls_on_ticket(SSL *ssl, unsigned char *name, unsigned char *iv, EVP_CIPHER_CTX *ectx,
              EVP_MAC_CTX *hctx, int enc)
{
    rp_tls_server_t   *t = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tls_server_idx);
    tls_keyring_t     *r;
    tls_ticket_key_t   k;
    unsigned           i;
    int                rc;

    if (t == NULL || (r = t->ring) == NULL) {
        return 0;                             /* no ticket made, or a full handshake */
    }
    memset(&k, 0, sizeof(k));
    pthread_mutex_lock(&r->lock);
    tls_keyring_rotate(r, t->tc->ticket_rotate, rp_now(), t);
    for (i = 0; i < r->nkeys; i++) {
        if (enc || memcmp(name, r->keys[i].name, TLS_TICKET_NAME_LEN) == 0) {
            k = r->keys[i];
            break;
        }
    }
    pthread_mutex_unlock(&r->lock);
    if (k.size == 0) {
        return 0;                             /* an unknown (or retired) key */
    }
    if (!enc && i == 0 && t->memo != NULL && rp_tls_memo_recall(t->memo, ssl, name, iv)) {
        OPENSSL_cleanse(&k, sizeof(k));
        return 0;                             /* resumed from memory, by session ID */
    }
    if (enc) {
        memcpy(name, k.name, TLS_TICKET_NAME_LEN);
        if (RAND_bytes(iv, 16) != 1) {        /* AES-CBC's IV */
            OPENSSL_cleanse(&k, sizeof(k));
            return -1;
        }
    }
    rc = tls_ticket_init(&k, iv, ectx, hctx, enc);
    OPENSSL_cleanse(&k, sizeof(k));
    if (rc != 1) {
        return -1;
    }
    if (enc && t->memo != NULL) {
        rp_tls_memo_issued(t->memo, ssl, name, iv);
    }
    return enc || i == 0 ? 1 : 2;
}


/* ---- client certificates: the store, the CRL, the cache ------------------------- */

/* A store of the client CAs and the CRL. Returns NULL with err filled. */
static X509_STORE *
tls_store_new(const rp_tls_conf_t *tc, char *err, size_t errlen)
{
    X509_STORE   *st = X509_STORE_new();
    X509_LOOKUP  *lu;

    if (st == NULL) {
        tls_errf(err, errlen, "X509_STORE_new() failed");
        return NULL;
    }
    if ((tc->client_ca != NULL && tls_readable(tc->client_ca, err, errlen) != RP_OK)
        || (tc->crl != NULL && tls_readable(tc->crl, err, errlen) != RP_OK)) {
        goto fail;
    }
    if (tc->client_ca != NULL && X509_STORE_load_file(st, tc->client_ca) != 1) {
        tls_errf(err, errlen, "cannot load client CA file '%s': %s", tc->client_ca,
                 tls_reason());
        goto fail;
    }
    if (tc->client_ca_dir != NULL && X509_STORE_load_path(st, tc->client_ca_dir) != 1) {
        tls_errf(err, errlen, "cannot use client CA directory '%s': %s", tc->client_ca_dir,
                 tls_reason());
        goto fail;
    }
    if (tc->crl != NULL) {
        if ((lu = X509_STORE_add_lookup(st, X509_LOOKUP_file())) == NULL
            || X509_load_crl_file(lu, tc->crl, X509_FILETYPE_PEM) <= 0) {
            tls_errf(err, errlen, "cannot load CRL '%s': %s", tc->crl, tls_reason());
            goto fail;
        }
        X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK);
    }
    return st;

fail:
    X509_STORE_free(st);
    return NULL;
}

static void
tls_crl_stat(const char *path, struct timespec *mtime, off_t *size)
{
    struct stat  sb;

    if (stat(path, &sb) == 0) {
        *mtime = sb.st_mtim;
        *size = sb.st_size;
    } else {
        memset(mtime, 0, sizeof(*mtime));
        *size = -1;
    }
}

/* At most once a second: when the CRL file changed, a new store replaces the
 * old one and the cache of verified certificates is emptied. The file is read
 * unlocked, so handshakes go on meanwhile (with the old CRL). A CRL that does
 * not load keeps the old store, and is logged once per change. */
static void
tls_crl_check(rp_tls_server_t *t, double now)
{
    struct timespec   mtime;
    off_t             size;
    X509_STORE       *st;
    char              why[256];

    pthread_mutex_lock(&t->verify_lock);
    if (t->crl_loading || now - t->crl_checked < TLS_CRL_CHECK_EVERY) {
        pthread_mutex_unlock(&t->verify_lock);
        return;
    }
    t->crl_checked = now;
    tls_crl_stat(t->tc->crl, &mtime, &size);
    if (mtime.tv_sec == t->crl_mtime.tv_sec && mtime.tv_nsec == t->crl_mtime.tv_nsec
        && size == t->crl_size) {
        pthread_mutex_unlock(&t->verify_lock);
        return;
    }
    t->crl_mtime = mtime;
    t->crl_size = size;
    t->crl_loading = 1;
    pthread_mutex_unlock(&t->verify_lock);

    st = tls_store_new(t->tc, why, sizeof(why));

    pthread_mutex_lock(&t->verify_lock);
    t->crl_loading = 0;
    if (st != NULL) {
        X509_STORE_free(t->store);      /* a verification in flight holds its own ref */
        t->store = st;
        tls_cc_flush(t);
    }
    pthread_mutex_unlock(&t->verify_lock);
    if (st == NULL) {
        rp_log_error("tls: %s; still using the previous CRL", why);
        return;
    }
    atomic_fetch_add(&t->crl_reloads, 1);
    rp_log_notice("tls: reloaded CRL '%s'", t->tc->crl);
}

static void
tls_cc_flush(rp_tls_server_t *t)
{
    rp_keytab_clear(&t->cc);
    t->cc_gen++;
}

/* Returns 1 when fp is cached and fresh; an expired entry is dropped. */
static int
tls_cc_lookup(rp_tls_server_t *t, const unsigned char *fp, double now)
{
    return rp_keytab_get(&t->cc, fp, now) != NULL;
}

static void
tls_cc_insert(rp_tls_server_t *t, const unsigned char *fp, double expires, double now)
{
    if (!tls_cc_lookup(t, fp, now)) {
        rp_keytab_put(&t->cc, fp, expires, NULL);
    }
}

/* Seconds until x stops being valid, capped at cap. */
static double
tls_valid_for(X509 *x, double cap)
{
    int  days, secs;

    if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)) != 1) {
        return 0;
    }
    if (days < 0 || secs < 0) {
        return 0;
    }
    return (double) days * 86400 + secs < cap ? (double) days * 86400 + secs : cap;
}

static char *
tls_name_string(const X509_NAME *n)
{
    BIO   *b = BIO_new(BIO_s_mem());
    char  *s = NULL;

    if (b != NULL && X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253) >= 0) {
        s = tls_bio_string(b);
    }
    BIO_free(b);
    return s;
}

static void
tls_log_refused(SSL *ssl, X509 *leaf, X509 *bad, int err, int depth)
{
    const char  *id = ssl != NULL ? SSL_get_ex_data(ssl, tls_log_id_idx) : NULL;
    char        *subject = tls_name_string(X509_get_subject_name(leaf));
    char        *issuer = tls_name_string(X509_get_issuer_name(leaf));
    char        *at = NULL;

    if (bad != NULL && bad != leaf && depth > 0) {
        at = tls_name_string(X509_get_subject_name(bad));
    }
    rp_log_error("%s%sclient certificate refused: subject \"%s\", issuer \"%s\": %s%s%s%s",
                 id != NULL ? id : "", id != NULL ? ": " : "",
                 subject != NULL ? subject : "", issuer != NULL ? issuer : "",
                 X509_verify_cert_error_string(err), at != NULL ? " (at \"" : "",
                 at != NULL ? at : "", at != NULL ? "\")" : "");
    free(subject);
    free(issuer);
    free(at);
}

/* SSL_CTX_set_cert_verify_callback(): replaces X509_verify_cert(). A leaf
 * whose SHA-256 is in the cache is accepted at once; otherwise the chain is
 * verified against the current store (its CRL may have been reloaded) with
 * the parameters OpenSSL prepared in x, and the outcome is copied back into x,
 * where the SSL reads verify_result and the verified chain. */
static int
tls_on_verify(X509_STORE_CTX *x, void *arg)
{
    rp_tls_server_t  *t = arg;
    const rp_tls_conf_t *tc = t->tc;
    X509             *leaf = X509_STORE_CTX_get0_cert(x);
    SSL              *ssl;
    X509_STORE       *st;
    X509_STORE_CTX   *vx;
    unsigned char     fp[EVP_MAX_MD_SIZE];
    unsigned int      fplen = 0;
    unsigned long     gen;
    double            now = rp_now();
    int               ok, have_fp, idx = SSL_get_ex_data_X509_STORE_CTX_idx();

    if (leaf == NULL) {
        X509_STORE_CTX_set_error(x, X509_V_ERR_UNSPECIFIED);
        return 0;
    }
    ssl = X509_STORE_CTX_get_ex_data(x, idx);
    have_fp = tc->cert_cache && X509_digest(leaf, EVP_sha256(), fp, &fplen) == 1 && fplen == 32;

    if (tc->crl != NULL) {
        tls_crl_check(t, now);
    }
    pthread_mutex_lock(&t->verify_lock);
    if (have_fp && tls_cc_lookup(t, fp, now)) {
        pthread_mutex_unlock(&t->verify_lock);
        atomic_fetch_add(&t->hits, 1);
        X509_STORE_CTX_set_error(x, X509_V_OK);
        return 1;
    }
    st = t->store;
    X509_STORE_up_ref(st);
    gen = t->cc_gen;
    pthread_mutex_unlock(&t->verify_lock);
    atomic_fetch_add(&t->misses, 1);

    ok = 0;
    if ((vx = X509_STORE_CTX_new()) == NULL
        || X509_STORE_CTX_init(vx, st, leaf, X509_STORE_CTX_get0_untrusted(x)) != 1) {
        X509_STORE_CTX_set_error(x, X509_V_ERR_OUT_OF_MEM);
    } else {
        X509_VERIFY_PARAM_set1(X509_STORE_CTX_get0_param(vx), X509_STORE_CTX_get0_param(x));
        X509_STORE_CTX_set_ex_data(vx, idx, ssl);
        ok = X509_verify_cert(vx) == 1;
        X509_STORE_CTX_set_error(x, X509_STORE_CTX_get_error(vx));
        X509_STORE_CTX_set_error_depth(x, X509_STORE_CTX_get_error_depth(vx));
        X509_STORE_CTX_set_current_cert(x, X509_STORE_CTX_get_current_cert(vx));
        X509_STORE_CTX_set0_verified_chain(x, X509_STORE_CTX_get1_chain(vx));
    }
    if (ok && have_fp) {
        pthread_mutex_lock(&t->verify_lock);
        if (gen == t->cc_gen) {             /* not verified against a replaced CRL */
            tls_cc_insert(t, fp, now + tls_valid_for(leaf, tc->cert_cache_ttl), now);
        }
        pthread_mutex_unlock(&t->verify_lock);
    }
    if (!ok) {
        atomic_fetch_add(&t->failures, 1);
        tls_log_refused(ssl, leaf, vx != NULL ? X509_STORE_CTX_get_current_cert(vx) : NULL,
                        X509_STORE_CTX_get_error(x), X509_STORE_CTX_get_error_depth(x));
    }
    X509_STORE_CTX_free(vx);
    X509_STORE_free(st);
    ERR_clear_error();
    return ok;
}


/* ---- the server: SNI, ALPN, the SSL_CTXs ------------------------------------------ */

static int
tls_vhost_names(const rp_vhost_conf_t *v, const char *name, size_t n)
{
    unsigned  i;

    if (rp_match_host(v->name, name, n)) {
        return 1;
    }
    for (i = 0; i < v->naliases; i++) {
        if (rp_match_host(v->aliases[i], name, n)) {
            return 1;
        }
    }
    return 0;
}

/* The servername callback: the vhost that the Host matcher would choose for
 * this name serves its own certificate, if it has one; any other name
 * (default vhost included) gets the listener's. */
static int
tls_on_sni(SSL *ssl, int *alert, void *arg)
{
    rp_tls_server_t        *t = arg;
    const rp_vhost_conf_t  *v;
    const char             *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    size_t                  n;
    unsigned                i;

    if (name == NULL || t->nsni == 0) {
        return SSL_TLSEXT_ERR_OK;
    }
    n = strlen(name);
    if ((v = rp_match_vhost(t->conf, name, n)) == NULL || !tls_vhost_names(v, name, n)) {
        return SSL_TLSEXT_ERR_OK;
    }
    for (i = 0; i < t->nsni; i++) {
        if (t->sni[i].vhost == v) {
            if (SSL_set_SSL_CTX(ssl, t->sni[i].ctx) == NULL) {
                *alert = SSL_AD_INTERNAL_ERROR;
                return SSL_TLSEXT_ERR_ALERT_FATAL;
            }
            SSL_set_ex_data(ssl, tls_vhost_idx, (void *) v);
            break;
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

/* Server preference; no protocol in common is fatal (RFC 7301 3.2). */
static int
tls_on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
            unsigned int inlen, void *arg)
{
    rp_tls_server_t  *t = arg;
    unsigned char    *sel;

    if (SSL_select_next_proto(&sel, outlen, t->alpn, (unsigned int) t->alpnlen, in, inlen)
        != OPENSSL_NPN_NEGOTIATED) {
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static int
tls_set_protocols(SSL_CTX *ctx, unsigned protos, char *err, size_t errlen)
{
    static const struct {
        unsigned       bit;
        int            version;
        unsigned long  no;
    } v[] = {
        { RP_TLS_PROTO_TLSv1, TLS1_VERSION, SSL_OP_NO_TLSv1 },
        { RP_TLS_PROTO_TLSv1_1, TLS1_1_VERSION, SSL_OP_NO_TLSv1_1 },
        { RP_TLS_PROTO_TLSv1_2, TLS1_2_VERSION, SSL_OP_NO_TLSv1_2 },
        { RP_TLS_PROTO_TLSv1_3, TLS1_3_VERSION, SSL_OP_NO_TLSv1_3 },
    };
    int       lo = -1, hi = -1;
    unsigned  i;

    for (i = 0; i < 4; i++) {
        if (protos & v[i].bit) {
            lo = lo < 0 ? (int) i : lo;
            hi = (int) i;
        }
    }
    if (lo < 0) {
        tls_errf(err, errlen, "no protocol enabled");
        return RP_ERROR;
    }
    if (SSL_CTX_set_min_proto_version(ctx, v[lo].version) != 1
        || SSL_CTX_set_max_proto_version(ctx, v[hi].version) != 1) {
        tls_errf(err, errlen, "cannot set the protocol versions: %s", tls_reason());
        return RP_ERROR;
    }
    for (i = (unsigned) lo; i <= (unsigned) hi; i++) {
        if (!(protos & v[i].bit)) {
            SSL_CTX_set_options(ctx, v[i].no);
        }
    }
    return RP_OK;
}

/* Keys from a file make tickets that other instances read: always made.
 * Random keys make tickets no one else can read, so a new session is kept
 * by the cache while it has room, and a ticket is made only beyond. */
static rp_tls_memo_mode_e
tls_memo_mode(const rp_tls_conf_t *tc)
{
    if (!tc->tickets) {
        return RP_MEMO_IDS;
    }
    if (tc->ticket_key_file != NULL || tc->tickets_stateless) {
        return RP_MEMO_TICKETS;
    }
    return RP_MEMO_IDS_FIRST;
}

/* One SSL_CTX of the listener, serving cs: every vhost ctx gets the same
 * settings, since SNI may swap it in before they are used. */
static SSL_CTX *
tls_server_ctx_new(rp_tls_server_t *t, const rp_tls_certset_t *cs, char *err, size_t errlen)
{
    const rp_tls_conf_t  *tc = t->tc;
    STACK_OF(X509_NAME)  *names;
    SSL_CTX              *ctx;
    int                   mode;

    if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
        tls_errf(err, errlen, "SSL_CTX_new() failed: %s", tls_reason());
        return NULL;
    }
    SSL_CTX_set_ex_data(ctx, tls_server_idx, t);
    /* client-initiated renegotiation only costs us CPU: HTTP/1.1 never needs it */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (tls_set_protocols(ctx, tc->protocols, err, errlen) != RP_OK) {
        goto fail;
    }
    if (tc->ciphers != NULL && SSL_CTX_set_cipher_list(ctx, tc->ciphers) != 1) {
        tls_errf(err, errlen, "'tls.ciphers': bad cipher list '%s': %s", tc->ciphers,
                 tls_reason());
        goto fail;
    }
    if (tc->ciphersuites != NULL && SSL_CTX_set_ciphersuites(ctx, tc->ciphersuites) != 1) {
        tls_errf(err, errlen, "'tls.ciphersuites': bad TLSv1.3 cipher suites '%s': %s",
                 tc->ciphersuites, tls_reason());
        goto fail;
    }
    if (tc->groups != NULL && SSL_CTX_set1_groups_list(ctx, tc->groups) != 1) {
        tls_errf(err, errlen, "'tls.groups': bad group list '%s': %s", tc->groups,
                 tls_reason());
        goto fail;
    }
    if (tls_use_certset(ctx, cs, err, errlen) != RP_OK) {
        goto fail;
    }
    SSL_CTX_set_session_id_context(ctx, t->sid_ctx, sizeof(t->sid_ctx));
    SSL_CTX_set_timeout(ctx, (long) tc->session_timeout);
    if (t->memo != NULL) {                                  /* rproxy keeps the sessions */
        rp_tls_memo_install(t->memo, ctx, tls_memo_mode(tc));
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    if (tc->tickets) {
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, tls_on_ticket);
    } else {
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        if (!tc->session_cache) {
            SSL_CTX_set_num_tickets(ctx, 0);     /* TLSv1.3: nothing could resume */
        }
    }
    if (tc->verify_client != RP_TLS_VERIFY_NONE) {
        mode = SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE;
        if (tc->verify_client == RP_TLS_VERIFY_REQUIRE) {
            mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        }
        SSL_CTX_set_verify(ctx, mode, NULL);
        SSL_CTX_set_verify_depth(ctx, tc->verify_depth);
        SSL_CTX_set_cert_verify_callback(ctx, tls_on_verify, t);
        if (t->ca_names != NULL && (names = SSL_dup_CA_list(t->ca_names)) != NULL) {
            SSL_CTX_set_client_CA_list(ctx, names);
        }
    }
    if (t->alpnlen > 0) {
        SSL_CTX_set_alpn_select_cb(ctx, tls_on_alpn, t);
    }
    return ctx;

fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* Sessions of one listener resume only there, whichever instance made them:
 * the context is a hash of the listener's certificates and verify mode, the
 * same in every instance that serves them. */
static void
tls_server_sid_ctx(rp_tls_server_t *t, const rp_tls_certset_t *cs)
{
    EVP_MD_CTX     *md = EVP_MD_CTX_new();
    unsigned char  *der;
    unsigned char   mode = (unsigned char) t->tc->verify_client;
    unsigned int    n;
    unsigned        i;
    int             len;

    memset(t->sid_ctx, 0, sizeof(t->sid_ctx));
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        return;
    }
    EVP_DigestUpdate(md, "rproxy", 6);
    EVP_DigestUpdate(md, &mode, 1);
    for (i = 0; i < cs->n; i++) {
        der = NULL;
        if ((len = i2d_X509(cs->pairs[i].leaf, &der)) > 0) {
            EVP_DigestUpdate(md, der, (size_t) len);
        }
        OPENSSL_free(der);
    }
    EVP_DigestFinal_ex(md, t->sid_ctx, &n);
    EVP_MD_CTX_free(md);
}

static int
tls_server_client_ca(rp_tls_server_t *t, char *err, size_t errlen)
{
    const rp_tls_conf_t  *tc = t->tc;

    if ((t->store = tls_store_new(tc, err, errlen)) == NULL) {
        return RP_ERROR;
    }
    if (tc->crl != NULL) {
        tls_crl_stat(tc->crl, &t->crl_mtime, &t->crl_size);
        t->crl_checked = rp_now();
    }
    if (tc->client_ca != NULL) {
        if ((t->ca_names = SSL_load_client_CA_file(tc->client_ca)) == NULL) {
            tls_errf(err, errlen, "no CA certificate in client CA file '%s'", tc->client_ca);
            ERR_clear_error();
            return RP_ERROR;
        }
    }
    if (tc->client_ca_dir != NULL) {
        if (t->ca_names == NULL) {
            t->ca_names = sk_X509_NAME_new_null();
        }
        SSL_add_dir_cert_subjects_to_stack(t->ca_names, tc->client_ca_dir);
        ERR_clear_error();
    }
    if (tc->cert_cache) {
        rp_keytab_init(&t->cc, tc->cert_cache_size, NULL);
    }
    return RP_OK;
}

static int
tls_server_settings(rp_tls_server_t *t, const rp_listen_conf_t *lc, char *err, size_t errlen)
{
    const rp_tls_conf_t  *tc = t->tc;
    unsigned              i;
    size_t                n, off;

    t->ext_objs = rp_xalloc(tc->nexts * sizeof(ASN1_OBJECT *));
    for (i = 0; i < tc->nexts; i++) {
        if ((t->ext_objs[i] = OBJ_txt2obj(tc->exts[i].ext, 0)) == NULL) {
            ERR_clear_error();
            tls_errf(err, errlen, "'tls.extensions[\"%s\"]': unknown x509 extension '%s' "
                     "(a short name such as subjectAltName, or an OID)", tc->exts[i].header,
                     tc->exts[i].ext);
            return RP_ERROR;
        }
    }
    for (i = 0, n = 0; i < tc->nalpn; i++) {
        n += 1 + strlen(tc->alpn[i]);
    }
    t->alpn = rp_xalloc(n + 1);
    for (i = 0, off = 0; i < tc->nalpn; i++) {
        n = strlen(tc->alpn[i]);
        if (n > 255) {
            tls_errf(err, errlen, "'tls.alpn': protocol name longer than 255 bytes");
            return RP_ERROR;
        }
        t->alpn[off++] = (unsigned char) n;
        memcpy(t->alpn + off, tc->alpn[i], n);
        off += n;
    }
    t->alpnlen = off;

    if (tc->tickets) {
        t->ring = tc->ticket_key_file != NULL
                  ? tls_keyring_load(tc->ticket_key_file, err, errlen)
                  : tls_keyring_random(lc->address, err, errlen);
        if (t->ring == NULL) {
            return RP_ERROR;
        }
    }
    if (tc->verify_client != RP_TLS_VERIFY_NONE) {
        return tls_server_client_ca(t, err, errlen);
    }
    return RP_OK;
}

rp_tls_server_t *
rp_tls_server_new(const rp_config_t *conf, const rp_listen_conf_t *lc, char *err, size_t errlen)
{
    rp_tls_server_t         *t;
    rp_tls_certset_t        *cs, *tmp;
    const rp_vhost_conf_t   *v;
    unsigned                 i;
    char                     why[512];

    if (lc->tls == NULL || lc->tls->ncerts == 0) {
        tls_errf(err, errlen, "not a TLS listener");
        return NULL;
    }
    pthread_once(&tls_once, tls_init);
    t = rp_xalloc(sizeof(rp_tls_server_t));
    t->conf = conf;
    t->tc = lc->tls;
    pthread_mutex_init(&t->verify_lock, NULL);
    if (tls_server_settings(t, lc, err, errlen) != RP_OK) {
        goto fail;
    }
    if ((cs = rp_tls_certset_load(t->tc->certs, t->tc->ncerts, err, errlen)) == NULL) {
        goto fail;
    }
    tls_server_sid_ctx(t, cs);
    if (t->tc->session_cache) {
        t->memo = rp_tls_memo_new(lc->address, t->tc->session_cache_size, t->sid_ctx,
                                  sizeof(t->sid_ctx));
    }
    t->ctx = tls_server_ctx_new(t, cs, err, errlen);
    rp_tls_certset_free(cs);                 /* the SSL_CTX holds its references */
    if (t->ctx == NULL) {
        goto fail;
    }
    for (i = 0; i < conf->nvhosts; i++) {
        v = &conf->vhosts[i];
        if (v->ntls_certs == 0) {
            continue;
        }
        tmp = NULL;
        if ((cs = v->tls_certset) == NULL
            && (cs = tmp = rp_tls_certset_load(v->tls_certs, v->ntls_certs, why, sizeof(why)))
               == NULL) {
            tls_errf(err, errlen, "vhost '%s': %s", v->name, why);
            goto fail;
        }
        t->sni = rp_xrealloc(t->sni, (t->nsni + 1) * sizeof(tls_sni_t));
        t->sni[t->nsni].vhost = v;
        t->sni[t->nsni].ctx = tls_server_ctx_new(t, cs, why, sizeof(why));
        rp_tls_certset_free(tmp);
        if (t->sni[t->nsni].ctx == NULL) {
            tls_errf(err, errlen, "vhost '%s': %s", v->name, why);
            goto fail;
        }
        t->nsni++;
    }
    if (t->nsni > 0) {
        SSL_CTX_set_tlsext_servername_callback(t->ctx, tls_on_sni);
        SSL_CTX_set_tlsext_servername_arg(t->ctx, t);
    }
    return t;

fail:
    rp_tls_server_free(t);
    return NULL;
}

void
rp_tls_server_free(rp_tls_server_t *t)
{
    unsigned  i;

    if (t == NULL) {
        return;
    }
    SSL_CTX_free(t->ctx);
    for (i = 0; i < t->nsni; i++) {
        SSL_CTX_free(t->sni[i].ctx);
    }
    free(t->sni);
    rp_tls_memo_free(t->memo);
    for (i = 0; t->ext_objs != NULL && i < t->tc->nexts; i++) {
        ASN1_OBJECT_free(t->ext_objs[i]);
    }
    free(t->ext_objs);
    free(t->alpn);
    sk_X509_NAME_pop_free(t->ca_names, X509_NAME_free);
    tls_keyring_unref(t->ring);
    X509_STORE_free(t->store);
    rp_keytab_destroy(&t->cc);
    pthread_mutex_destroy(&t->verify_lock);
    free(t);
}

SSL *
rp_tls_server_ssl(rp_tls_server_t *t)
{
    SSL  *ssl = SSL_new(t->ctx);

    if (ssl != NULL) {
        SSL_set_accept_state(ssl);
    }
    return ssl;
}

void
rp_tls_shutdown(SSL *ssl)
{
    if (ssl == NULL || !SSL_is_init_finished(ssl)) {
        return;                   /* a failed handshake's session must not resume */
    }
    (void) SSL_shutdown(ssl);
    SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    ERR_clear_error();
}

void
rp_tls_set_log_id(SSL *ssl, const char *id)
{
    char  *copy = rp_xalloc(TLS_LOG_ID_LEN);

    pthread_once(&tls_once, tls_init);
    snprintf(copy, TLS_LOG_ID_LEN, "%s", id);
    free(SSL_get_ex_data(ssl, tls_log_id_idx));
    SSL_set_ex_data(ssl, tls_log_id_idx, copy);
}

const rp_vhost_conf_t *
rp_tls_sni_vhost(SSL *ssl)
{
    pthread_once(&tls_once, tls_init);
    return SSL_get_ex_data(ssl, tls_vhost_idx);
}

void
rp_tls_server_stats(rp_tls_server_t *t, rp_tls_stats_t *st)
{
    rp_tls_memo_stats_t  ms;

    st->cert_cache_hits = atomic_load(&t->hits);
    st->cert_cache_misses = atomic_load(&t->misses);
    st->verify_failures = atomic_load(&t->failures);
    st->crl_reloads = atomic_load(&t->crl_reloads);
    st->ticket_rotations = atomic_load(&t->rotations);
    memset(&ms, 0, sizeof(ms));
    if (t->memo != NULL) {
        rp_tls_memo_stats(t->memo, &ms);
    }
    st->ticket_memo_hits = ms.ticket_hits;
    st->ticket_memo_entries = ms.tickets;
    st->sessions = ms.ids;
    st->tickets_cache_full = ms.cache_full;
    pthread_mutex_lock(&t->verify_lock);
    st->cert_cache_entries = t->cc.n;
    pthread_mutex_unlock(&t->verify_lock);
}


/* ---- facts ------------------------------------------------------------------ */

/* nginx's $ssl_client_escaped_cert: every byte but ALPHA DIGIT - . _ ~ is
 * percent-encoded, so the PEM fits one header line. */
static char *
tls_escape_pem(const char *s, size_t n)
{
    static const char  hex[] = "0123456789ABCDEF";
    char              *out = rp_xalloc(n * 3 + 1), *o = out;
    size_t             i;
    unsigned char      c;

    for (i = 0; i < n; i++) {
        c = (unsigned char) s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
            || c == '-' || c == '.' || c == '_' || c == '~') {
            *o++ = (char) c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 0xf];
        }
    }
    *o = '\0';
    return out;
}

/* An extension OpenSSL cannot print: its value as a string when it is one,
 * else its DER in hex. */
static void
tls_print_unknown_ext(BIO *b, X509_EXTENSION *ext)
{
    ASN1_OCTET_STRING    *data = X509_EXTENSION_get_data(ext);
    const unsigned char  *p = ASN1_STRING_get0_data(data);
    ASN1_TYPE            *at;
    char                 *hex;
    int                   type;

    at = d2i_ASN1_TYPE(NULL, &p, ASN1_STRING_length(data));
    type = at != NULL ? ASN1_TYPE_get(at) : -1;
    if (type == V_ASN1_UTF8STRING || type == V_ASN1_IA5STRING || type == V_ASN1_PRINTABLESTRING
        || type == V_ASN1_VISIBLESTRING || type == V_ASN1_T61STRING || type == V_ASN1_BMPSTRING
        || type == V_ASN1_UNIVERSALSTRING) {
        ASN1_STRING_print_ex(b, at->value.asn1_string, ASN1_STRFLGS_UTF8_CONVERT);
    } else {
        hex = tls_hex(ASN1_STRING_get0_data(data), (size_t) ASN1_STRING_length(data));
        BIO_puts(b, hex);
        free(hex);
    }
    ASN1_TYPE_free(at);
}

static char *
tls_ext_value(X509 *x, const ASN1_OBJECT *obj)
{
    X509_EXTENSION  *ext;
    BIO             *b;
    char            *s = NULL;
    int              i;

    if ((i = X509_get_ext_by_OBJ(x, obj, -1)) < 0 || (ext = X509_get_ext(x, i)) == NULL) {
        return NULL;
    }
    if ((b = BIO_new(BIO_s_mem())) == NULL) {
        return NULL;
    }
    if (X509V3_EXT_print(b, ext, 0, 0) != 1) {
        ERR_clear_error();
        (void) BIO_reset(b);
        tls_print_unknown_ext(b, ext);
    }
    s = tls_bio_string(b);
    BIO_free(b);
    return s ? s : rp_xstrdup("");
}

static char *
tls_time_string(const ASN1_TIME *tm)
{
    BIO   *b = BIO_new(BIO_s_mem());
    char  *s = NULL;

    if (b != NULL && ASN1_TIME_print(b, tm) == 1) {
        s = tls_bio_string(b);
    }
    BIO_free(b);
    return s;
}

static void
tls_peer_facts(SSL *ssl, X509 *x, rp_tls_facts_t *f)
{
    rp_tls_server_t  *t = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tls_server_idx);
    unsigned char     md[EVP_MAX_MD_SIZE];
    unsigned int      mdlen;
    BIGNUM           *bn;
    char             *hex, *pem;
    BIO              *b;
    long              n;
    unsigned          i;

    f->has_peer_cert = 1;
    f->subject = tls_name_string(X509_get_subject_name(x));
    f->issuer = tls_name_string(X509_get_issuer_name(x));
    if ((bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL)) != NULL) {
        if ((hex = BN_bn2hex(bn)) != NULL) {
            f->serial = rp_xstrdup(hex);
            OPENSSL_free(hex);
        }
        BN_free(bn);
    }
    f->not_before = tls_time_string(X509_get0_notBefore(x));
    f->not_after = tls_time_string(X509_get0_notAfter(x));
    if (X509_digest(x, EVP_sha256(), md, &mdlen) == 1) {
        f->fingerprint = tls_hex(md, mdlen);
    }
    if ((b = BIO_new(BIO_s_mem())) != NULL && PEM_write_bio_X509(b, x) == 1) {
        n = BIO_get_mem_data(b, &pem);
        f->certificate = tls_escape_pem(pem, (size_t) n);
    }
    BIO_free(b);
    if (t != NULL && t->tc->nexts > 0) {
        f->exts = rp_xalloc(t->tc->nexts * sizeof(rp_tls_ext_fact_t));
        f->nexts = t->tc->nexts;
        for (i = 0; i < f->nexts; i++) {
            f->exts[i].header = t->tc->exts[i].header;
            f->exts[i].value = tls_ext_value(x, t->ext_objs[i]);
        }
    }
    ERR_clear_error();
}

int
rp_tls_facts(SSL *ssl, rp_tls_facts_t *f)
{
    const char  *s;
    X509        *x;

    memset(f, 0, sizeof(*f));
    if (ssl == NULL) {
        return RP_ERROR;
    }
    pthread_once(&tls_once, tls_init);
    if ((s = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) != NULL) {
        f->sni = tls_one_line(s, strlen(s));
    }
    f->protocol = rp_xstrdup(SSL_get_version(ssl));
    if ((s = SSL_get_cipher_name(ssl)) != NULL && strcmp(s, "(NONE)") != 0) {
        f->cipher = rp_xstrdup(s);
    }
    f->session_reused = SSL_session_reused(ssl);
    f->verify_result = SSL_get_verify_result(ssl);
    if ((x = SSL_get0_peer_certificate(ssl)) != NULL) {
        tls_peer_facts(ssl, x, f);
    }
    return RP_OK;
}

void
rp_tls_facts_cleanup(rp_tls_facts_t *f)
{
    unsigned  i;

    free(f->sni);
    free(f->protocol);
    free(f->cipher);
    free(f->subject);
    free(f->issuer);
    free(f->serial);
    free(f->not_before);
    free(f->not_after);
    free(f->fingerprint);
    free(f->certificate);
    for (i = 0; i < f->nexts; i++) {
        free(f->exts[i].value);
    }
    free(f->exts);
    memset(f, 0, sizeof(*f));
}

const char *
rp_tls_facts_get(const rp_tls_facts_t *f, rp_tls_header_e h)
{
    switch (h) {
    case RP_TLS_H_SUBJECT:     return f->subject;
    case RP_TLS_H_ISSUER:      return f->issuer;
    case RP_TLS_H_SERIAL:      return f->serial;
    case RP_TLS_H_NOT_BEFORE:  return f->not_before;
    case RP_TLS_H_NOT_AFTER:   return f->not_after;
    case RP_TLS_H_CIPHER:      return f->cipher;
    case RP_TLS_H_PROTOCOL:    return f->protocol;
    case RP_TLS_H_SNI:         return f->sni;
    case RP_TLS_H_FINGERPRINT: return f->fingerprint;
    case RP_TLS_H_CERTIFICATE: return f->certificate;
    default:                   return NULL;
    }
}


/* ---- backends ------------------------------------------------------------------ */

/* SSL_CTX_sess_set_new_cb(): keeps a copy of the newest resumable session
 * (TLSv1.3 sends tickets after the handshake, so this runs on a later read
 * too). A copy, because SSL_free() of a connection that was not shut down
 * marks its own session as not resumable. Returns 0: sess stays OpenSSL's. */
static int
tls_client_on_session(SSL *ssl, SSL_SESSION *sess)
{
    rp_tls_client_t  *c = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tls_client_idx);
    SSL_SESSION      *copy, *old;

    if (c == NULL || !SSL_SESSION_is_resumable(sess) || (copy = SSL_SESSION_dup(sess)) == NULL) {
        return 0;
    }
    pthread_mutex_lock(&c->lock);
    old = c->session;
    c->session = copy;
    pthread_mutex_unlock(&c->lock);
    SSL_SESSION_free(old);
    return 0;
}

rp_tls_client_t *
rp_tls_client_new(const rp_backend_conf_t *bc, char *err, size_t errlen)
{
    const rp_tls_client_conf_t  *cc = bc->tls;
    rp_tls_client_t             *c;
    rp_tls_cert_conf_t           pair;
    rp_tls_certset_t            *cs;

    if (cc == NULL) {
        tls_errf(err, errlen, "not a TLS backend");
        return NULL;
    }
    pthread_once(&tls_once, tls_init);
    c = rp_xalloc(sizeof(rp_tls_client_t));
    c->bc = bc;
    pthread_mutex_init(&c->lock, NULL);
    c->name_is_ip = cc->name != NULL && tls_is_ip(cc->name);
    if ((c->ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
        tls_errf(err, errlen, "SSL_CTX_new() failed: %s", tls_reason());
        goto fail;
    }
    SSL_CTX_set_ex_data(c->ctx, tls_client_idx, c);
    SSL_CTX_set_options(c->ctx, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(c->ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    if (cc->verify) {
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_verify_depth(c->ctx, cc->depth);
        if (cc->ca != NULL) {
            if (tls_readable(cc->ca, err, errlen) != RP_OK) {
                goto fail;
            }
            if (SSL_CTX_load_verify_file(c->ctx, cc->ca) != 1) {
                tls_errf(err, errlen, "cannot load CA file '%s': %s", cc->ca, tls_reason());
                goto fail;
            }
        } else if (SSL_CTX_set_default_verify_paths(c->ctx) != 1) {
            tls_errf(err, errlen, "cannot use the system's CA store: %s", tls_reason());
            goto fail;
        }
    }
    if (cc->cert != NULL) {
        pair.cert = cc->cert;
        pair.key = cc->key;
        if ((cs = rp_tls_certset_load(&pair, 1, err, errlen)) == NULL) {
            goto fail;
        }
        if (tls_use_certset(c->ctx, cs, err, errlen) != RP_OK) {
            rp_tls_certset_free(cs);
            goto fail;
        }
        rp_tls_certset_free(cs);
    }
    SSL_CTX_set_session_cache_mode(c->ctx, SSL_SESS_CACHE_CLIENT
                                           | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(c->ctx, tls_client_on_session);
    return c;

fail:
    rp_tls_client_free(c);
    return NULL;
}

void
rp_tls_client_free(rp_tls_client_t *c)
{
    if (c == NULL) {
        return;
    }
    SSL_SESSION_free(c->session);
    SSL_CTX_free(c->ctx);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

SSL *
rp_tls_client_ssl(rp_tls_client_t *c)
{
    const rp_tls_client_conf_t  *cc = c->bc->tls;
    SSL                         *ssl;

    if ((ssl = SSL_new(c->ctx)) == NULL) {
        return NULL;
    }
    SSL_set_connect_state(ssl);
    if (cc->sni != NULL && SSL_set_tlsext_host_name(ssl, cc->sni) != 1) {
        goto fail;
    }
    if (cc->verify && cc->name != NULL) {
        if (c->name_is_ip) {
            if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), cc->name) != 1) {
                goto fail;
            }
        } else {
            SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            if (SSL_set1_host(ssl, cc->name) != 1) {
                goto fail;
            }
        }
    }
    pthread_mutex_lock(&c->lock);
    if (c->session != NULL) {
        SSL_set_session(ssl, c->session);     /* takes its own reference */
    }
    pthread_mutex_unlock(&c->lock);
    return ssl;

fail:
    ERR_clear_error();
    SSL_free(ssl);
    return NULL;
}

const char *
rp_tls_client_error(SSL *ssl)
{
    static _Thread_local char  buf[256];
    long                       vr = SSL_get_verify_result(ssl);
    unsigned long              e;
    const char                *r;

    if (vr != X509_V_OK) {
        snprintf(buf, sizeof(buf), "certificate verify failed: %s",
                 X509_verify_cert_error_string(vr));
    } else if ((e = ERR_peek_last_error()) != 0 && (r = ERR_reason_error_string(e)) != NULL) {
        snprintf(buf, sizeof(buf), "%s", r);
    } else {
        snprintf(buf, sizeof(buf), "TLS handshake failed");
    }
    return buf;
}

const char *
rp_tls_bev_error(unsigned long e)
{
    static _Thread_local char  buf[256];

    if (ERR_GET_LIB(e) != 0) {
        ERR_error_string_n(e, buf, sizeof(buf));
    } else if (e == SSL_ERROR_SYSCALL) {
        snprintf(buf, sizeof(buf), "the connection was reset or closed");
    } else {
        snprintf(buf, sizeof(buf), "SSL_get_error() %lu", e);
    }
    return buf;
}
