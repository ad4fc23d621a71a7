/* test_tls.c: core/tls.c and the tls keys of the loader. A CA, server
 * certificates (RSA-2048, ECDSA P-256), client certificates and CRLs are made
 * at start in a temp dir; handshakes run in memory over BIO pairs. tls.c is
 * included to reach the CRL and ticket-rotation clocks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/conf.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "log.h"
#include "tls.c"

static char  dir[256];                /* the temp dir holding every file below */
static char  logpath[PATH_MAX];       /* the error log while the tests run     */

#define CLIENT_GOOD_SERIAL     1000
#define CLIENT_REVOKED_SERIAL  1001
#define CUSTOM_OID             "1.3.6.1.4.1.55555.1"


/* ---- making certificates --------------------------------------------------------- */

static void
path_of(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", dir, name);
}

static void
add_ext(X509 *x, X509V3_CTX *v3, const char *name, const char *value)
{
    X509_EXTENSION  *e = X509V3_EXT_nconf(NULL, v3, name, value);

    if (e == NULL) {
        ERR_print_errors_fp(stderr);
        fail_msg("cannot make extension %s = %s", name, value);
    }
    assert_int_equal(X509_add_ext(x, e, -1), 1);
    X509_EXTENSION_free(e);
}

/* A certificate for key, signed by issuer (NULL: self-signed CA). */
static X509 *
make_cert(EVP_PKEY *key, const char *cn, long serial, X509 *issuer, EVP_PKEY *ikey,
          const char *san, const char *eku, int extra)
{
    X509        *x = X509_new();
    X509_NAME   *n;
    X509V3_CTX   v3;
    CONF        *cnf = NCONF_new(NULL);

    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365);
    X509_set_pubkey(x, key);
    n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *) "rproxy tests", -1,
                               -1, 0);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *) cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : n);
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
    X509V3_set_nconf(&v3, cnf);              /* certificatePolicies wants a database */
    add_ext(x, &v3, "subjectKeyIdentifier", "hash");
    if (issuer == NULL) {
        add_ext(x, &v3, "basicConstraints", "critical,CA:TRUE");
        add_ext(x, &v3, "keyUsage", "critical,keyCertSign,cRLSign");
    } else {
        add_ext(x, &v3, "authorityKeyIdentifier", "keyid");
        add_ext(x, &v3, "basicConstraints", "CA:FALSE");
        add_ext(x, &v3, "keyUsage", "critical,digitalSignature,keyEncipherment");
    }
    if (san != NULL) {
        add_ext(x, &v3, "subjectAltName", san);
    }
    if (eku != NULL) {
        add_ext(x, &v3, "extendedKeyUsage", eku);
    }
    if (extra) {
        add_ext(x, &v3, "certificatePolicies", "1.2.3.4");
        add_ext(x, &v3, CUSTOM_OID, "ASN1:UTF8String:team-blue");
    }
    assert_true(X509_sign(x, issuer != NULL ? ikey : key, EVP_sha256()) > 0);
    NCONF_free(cnf);
    return x;
}

static void
write_pem(const char *name, X509 *x, EVP_PKEY *key)
{
    char   path[PATH_MAX + 32];
    FILE  *f;

    if (x != NULL) {
        snprintf(path, sizeof(path), "%s/%s.crt", dir, name);
        assert_non_null(f = fopen(path, "w"));
        PEM_write_X509(f, x);
        fclose(f);
    }
    if (key != NULL) {
        snprintf(path, sizeof(path), "%s/%s.key", dir, name);
        assert_non_null(f = fopen(path, "w"));
        PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
        fclose(f);
    }
}

/* A CRL of ca revoking the n serials. */
static void
write_crl(const char *name, X509 *ca, EVP_PKEY *cakey, const long *serials, unsigned n)
{
    X509_CRL      *crl = X509_CRL_new();
    X509_REVOKED  *r;
    ASN1_INTEGER  *s;
    ASN1_TIME     *now = ASN1_TIME_adj(NULL, time(NULL), 0, -60);
    ASN1_TIME     *next = ASN1_TIME_adj(NULL, time(NULL), 30, 0);
    char           path[PATH_MAX + 32];
    FILE          *f;
    unsigned       i;

    X509_CRL_set_version(crl, 1);
    X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca));
    X509_CRL_set1_lastUpdate(crl, now);
    X509_CRL_set1_nextUpdate(crl, next);
    for (i = 0; i < n; i++) {
        r = X509_REVOKED_new();
        s = ASN1_INTEGER_new();
        ASN1_INTEGER_set(s, serials[i]);
        X509_REVOKED_set_serialNumber(r, s);
        X509_REVOKED_set_revocationDate(r, now);
        X509_CRL_add0_revoked(crl, r);
        ASN1_INTEGER_free(s);
    }
    X509_CRL_sort(crl);
    assert_true(X509_CRL_sign(crl, cakey, EVP_sha256()) > 0);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_non_null(f = fopen(path, "w"));
    PEM_write_X509_CRL(f, crl);
    fclose(f);
    X509_CRL_free(crl);
    ASN1_TIME_free(now);
    ASN1_TIME_free(next);
}

static void
write_file(const char *name, const void *data, size_t n)
{
    char   path[PATH_MAX + 32];
    FILE  *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_non_null(f = fopen(path, "w"));
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

static int
setup(void **state)
{
    EVP_PKEY       *cakey, *ca2key, *rsa, *ec, *vh, *cl, *rv, *o2, *other;
    X509           *ca, *ca2, *x;
    unsigned char   ticket[160], ticket2[160];
    long            revoked[] = { CLIENT_REVOKED_SERIAL };
    long            both[] = { CLIENT_GOOD_SERIAL, CLIENT_REVOKED_SERIAL };

    snprintf(dir, sizeof(dir), "/tmp/rp_test_tls_XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(logpath, sizeof(logpath), "%s/error.log", dir);
    assert_int_equal(rp_log_init(logpath, RP_LOG_NOTICE), RP_OK);

    cakey = EVP_EC_gen("P-256");
    ca = make_cert(cakey, "rproxy test CA", 1, NULL, NULL, NULL, NULL, 0);
    write_pem("ca", ca, NULL);
    ca2key = EVP_EC_gen("P-256");
    ca2 = make_cert(ca2key, "another CA", 1, NULL, NULL, NULL, NULL, 0);
    write_pem("ca2", ca2, NULL);

    rsa = EVP_RSA_gen(2048);
    x = make_cert(rsa, "localhost", 10, ca, cakey, "DNS:localhost,DNS:default.test,IP:127.0.0.1",
                  "serverAuth", 0);
    write_pem("srv_rsa", x, rsa);
    X509_free(x);
    ec = EVP_EC_gen("P-256");
    x = make_cert(ec, "localhost", 11, ca, cakey, "DNS:localhost,DNS:default.test,IP:127.0.0.1",
                  "serverAuth", 0);
    write_pem("srv_ec", x, ec);
    X509_free(x);
    vh = EVP_EC_gen("P-256");
    x = make_cert(vh, "a.example.com", 12, ca, cakey, "DNS:a.example.com,DNS:*.b.example.com",
                  "serverAuth", 0);
    write_pem("vhost", x, vh);
    X509_free(x);
    o2 = EVP_EC_gen("P-256");
    x = make_cert(o2, "localhost", 13, ca2, ca2key, "DNS:localhost", "serverAuth", 0);
    write_pem("srv_other", x, o2);
    X509_free(x);

    cl = EVP_EC_gen("P-256");
    x = make_cert(cl, "client one", CLIENT_GOOD_SERIAL, ca, cakey, "email:one@example.com",
                  "clientAuth", 1);
    write_pem("client", x, cl);
    X509_free(x);
    rv = EVP_EC_gen("P-256");
    x = make_cert(rv, "client revoked", CLIENT_REVOKED_SERIAL, ca, cakey, NULL, "clientAuth", 0);
    write_pem("revoked", x, rv);
    X509_free(x);
    other = EVP_EC_gen("P-256");
    write_pem("other", NULL, other);

    write_crl("crl.pem", ca, cakey, revoked, 1);
    write_crl("crl_both.pem", ca, cakey, both, 2);
    RAND_bytes(ticket, sizeof(ticket));
    write_file("ticket.key", ticket, 80);
    memcpy(ticket2, ticket + 80, 80);              /* another key, then ticket.key's */
    memcpy(ticket2 + 80, ticket, 80);
    write_file("ticket2.key", ticket2, 160);
    write_file("bad_ticket.key", ticket, 50);

    EVP_PKEY_free(cakey);
    EVP_PKEY_free(ca2key);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(vh);
    EVP_PKEY_free(cl);
    EVP_PKEY_free(rv);
    EVP_PKEY_free(o2);
    EVP_PKEY_free(other);
    X509_free(ca);
    X509_free(ca2);
    return 0;
}

static int
teardown(void **state)
{
    char  cmd[PATH_MAX + 16];

    rp_log_init("stderr", RP_LOG_NOTICE);
    if (getenv("RP_TEST_KEEP") == NULL) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
    }
    return 0;
}


/* ---- configurations and handshakes -------------------------------------------------- */

/* Loads an rproxy.lua in dir: one TLS listener with tls = { <tls> }, the
 * vhost "default.test", then <more>. Returns NULL with err filled. */
static rp_config_t *
load_tls(const char *tls, const char *more, char *err, size_t errlen)
{
    char   path[PATH_MAX + 32], text[4096];

    snprintf(text, sizeof(text),
             "rproxy.backend 'b' { address = '127.0.0.1:9' }\n"
             "rproxy.listen { address = '127.0.0.1:18443', tls = { %s } }\n"
             "rproxy.vhost 'default.test' { routes = { { to = 'b' } } }\n"
             "%s\n", tls, more != NULL ? more : "");
    snprintf(path, sizeof(path), "%s/rproxy.lua", dir);
    write_file("rproxy.lua", text, strlen(text));
    return rp_config_load(path, err, errlen);
}

static rp_config_t *
must_load(const char *tls, const char *more)
{
    char          err[1024];
    rp_config_t  *conf = load_tls(tls, more, err, sizeof(err));

    if (conf == NULL) {
        fail_msg("load failed: %s", err);
    }
    assert_non_null(conf->listeners[0].tls_server);
    return conf;
}

static rp_tls_server_t *
server_of(rp_config_t *conf)
{
    return conf->listeners[0].tls_server;
}

/* A client SSL_CTX between TLS versions lo and hi (0: any), with a client
 * certificate when name is set ("client" -> client.crt, client.key). */
static SSL_CTX *
client_ctx(int lo, int hi, const char *name)
{
    SSL_CTX  *ctx = SSL_CTX_new(TLS_client_method());
    char      crt[PATH_MAX + 32], key[PATH_MAX + 32];

    assert_non_null(ctx);
    if (lo != 0) {
        SSL_CTX_set_min_proto_version(ctx, lo);
    }
    if (hi != 0) {
        SSL_CTX_set_max_proto_version(ctx, hi);
    }
    if (lo != 0 && lo < TLS1_2_VERSION) {
        SSL_CTX_set_security_level(ctx, 0);
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);
    if (name != NULL) {
        snprintf(crt, sizeof(crt), "%s/%s.crt", dir, name);
        snprintf(key, sizeof(key), "%s/%s.key", dir, name);
        assert_int_equal(SSL_CTX_use_certificate_file(ctx, crt, SSL_FILETYPE_PEM), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM), 1);
    }
    return ctx;
}

/* Runs both ends of a handshake over a BIO pair; then lets the client read
 * what the server sent after it (TLSv1.3 tickets). Returns 1 when both ends
 * finished, 0 when one failed. */
static int
handshake(SSL *c, SSL *s)
{
    BIO            *cb, *sb;
    unsigned char   buf[16];
    int             i, rc, cdone = 0, sdone = 0, e;

    assert_int_equal(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
    SSL_set_bio(c, cb, cb);
    SSL_set_bio(s, sb, sb);
    for (i = 0; i < 100 && !(cdone && sdone); i++) {
        if (!cdone) {
            rc = SSL_do_handshake(c);
            e = SSL_get_error(c, rc);
            if (rc == 1) {
                cdone = 1;
            } else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                ERR_clear_error();
                return 0;
            }
        }
        if (!sdone) {
            rc = SSL_do_handshake(s);
            e = SSL_get_error(s, rc);
            if (rc == 1) {
                sdone = 1;
            } else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                /* the client may have thought itself done (TLSv1.3): it reads the alert */
                (void) SSL_read(c, buf, sizeof(buf));
                ERR_clear_error();
                return 0;
            }
        }
    }
    if (!(cdone && sdone)) {
        return 0;
    }
    /* a TLSv1.3 server that refuses the client's certificate says so now */
    rc = SSL_read(c, buf, sizeof(buf));
    e = SSL_get_error(c, rc);
    ERR_clear_error();
    return e == SSL_ERROR_WANT_READ;
}

/* One connection from cctx (SNI host, session to resume) to t. On success
 * *server gets the server's SSL when asked (else it is freed) and *sess the
 * client's session. */
static int
connect_to(rp_tls_server_t *t, SSL_CTX *cctx, const char *host, SSL_SESSION *resume,
           SSL **server, SSL_SESSION **sess, int *reused)
{
    SSL  *c = SSL_new(cctx), *s = rp_tls_server_ssl(t);
    int   ok;

    assert_non_null(c);
    assert_non_null(s);
    SSL_set_connect_state(c);
    if (host != NULL) {
        SSL_set_tlsext_host_name(c, host);
    }
    if (resume != NULL) {
        SSL_set_session(c, resume);
    }
    rp_tls_set_log_id(s, "conn 7");
    ok = handshake(c, s);
    if (reused != NULL) {
        *reused = ok ? SSL_session_reused(c) : -1;
    }
    if (ok && sess != NULL) {
        *sess = SSL_get1_session(c);
    }
    rp_tls_shutdown(c);
    if (ok && server != NULL) {
        *server = s;
    } else {
        rp_tls_shutdown(s);
        SSL_free(s);
    }
    SSL_free(c);
    return ok;
}

static char *
read_log(void)
{
    FILE   *f = fopen(logpath, "r");
    char   *buf = calloc(1, 65536);
    size_t  n;

    assert_non_null(f);
    n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static const char listener_certs[] =
    "certs = { { cert = 'srv_rsa.crt', key = 'srv_rsa.key' },"
    "          { cert = 'srv_ec.crt', key = 'srv_ec.key' } }";


/* ---- tests ------------------------------------------------------------------------------ */

static void
test_versions(void **state)
{
    rp_config_t     *conf = must_load(listener_certs, NULL);
    rp_tls_server_t *t = server_of(conf);
    SSL_CTX         *c12 = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION, NULL);
    SSL_CTX         *c13 = client_ctx(TLS1_3_VERSION, 0, NULL);
    SSL_CTX         *c11 = client_ctx(TLS1_1_VERSION, TLS1_1_VERSION, NULL);
    SSL_CTX         *cec = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION, NULL);
    SSL_CTX         *crsa = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION, NULL);
    SSL             *s;
    rp_tls_facts_t   f;

    assert_true(connect_to(t, c12, "localhost", NULL, &s, NULL, NULL));
    assert_int_equal(SSL_version(s), TLS1_2_VERSION);
    assert_int_equal(rp_tls_facts(s, &f), RP_OK);
    assert_string_equal(f.protocol, "TLSv1.2");
    assert_non_null(f.cipher);
    assert_string_equal(f.sni, "localhost");
    assert_false(f.has_peer_cert);
    assert_null(f.subject);
    assert_string_equal(rp_tls_facts_get(&f, RP_TLS_H_PROTOCOL), "TLSv1.2");
    rp_tls_facts_cleanup(&f);
    SSL_free(s);

    assert_true(connect_to(t, c13, NULL, NULL, &s, NULL, NULL));
    assert_int_equal(rp_tls_facts(s, &f), RP_OK);
    assert_string_equal(f.protocol, "TLSv1.3");
    assert_null(f.sni);
    rp_tls_facts_cleanup(&f);
    SSL_free(s);

    /* ALPN: the server's choice among the client's; none in common is fatal */
    {
        SSL  *c = SSL_new(c13);
        const unsigned char  *sel;
        unsigned int          n;

        s = rp_tls_server_ssl(t);
        SSL_set_connect_state(c);
        SSL_set_alpn_protos(c, (const unsigned char *) "\x02h2\x08http/1.1", 12);
        assert_true(handshake(c, s));
        SSL_get0_alpn_selected(s, &sel, &n);
        assert_int_equal(n, 8);
        assert_memory_equal(sel, "http/1.1", 8);
        SSL_free(c);
        SSL_free(s);
        c = SSL_new(c13);
        s = rp_tls_server_ssl(t);
        SSL_set_connect_state(c);
        SSL_set_alpn_protos(c, (const unsigned char *) "\x02h2", 3);
        assert_false(handshake(c, s));
        SSL_free(c);
        SSL_free(s);
    }

    /* older protocols are refused unless listed */
    assert_false(connect_to(t, c11, "localhost", NULL, NULL, NULL, NULL));

    /* both certificates serve: the client's ciphers choose */
    assert_int_equal(SSL_CTX_set_cipher_list(cec, "ECDHE-ECDSA-AES128-GCM-SHA256"), 1);
    assert_int_equal(SSL_CTX_set_cipher_list(crsa, "ECDHE-RSA-AES128-GCM-SHA256"), 1);
    assert_true(connect_to(t, cec, "localhost", NULL, &s, NULL, NULL));
    assert_string_equal(SSL_get_cipher_name(s), "ECDHE-ECDSA-AES128-GCM-SHA256");
    SSL_free(s);
    assert_true(connect_to(t, crsa, "localhost", NULL, &s, NULL, NULL));
    assert_string_equal(SSL_get_cipher_name(s), "ECDHE-RSA-AES128-GCM-SHA256");
    SSL_free(s);

    SSL_CTX_free(c12);
    SSL_CTX_free(c13);
    SSL_CTX_free(c11);
    SSL_CTX_free(cec);
    SSL_CTX_free(crsa);
    rp_config_unref(conf);
}

static void
test_protocols_listed(void **state)
{
    rp_config_t  *conf = must_load("cert = 'srv_rsa.crt', key = 'srv_rsa.key',"
                                   "protocols = { 'TLSv1.3' }", NULL);
    SSL_CTX      *c12 = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION, NULL);
    SSL_CTX      *c13 = client_ctx(TLS1_3_VERSION, 0, NULL);

    assert_false(connect_to(server_of(conf), c12, NULL, NULL, NULL, NULL, NULL));
    assert_true(connect_to(server_of(conf), c13, NULL, NULL, NULL, NULL, NULL));
    SSL_CTX_free(c12);
    SSL_CTX_free(c13);
    rp_config_unref(conf);
}

/* The common name of the certificate the client got. */
static void
assert_peer_cn(rp_tls_server_t *t, SSL_CTX *cctx, const char *host, const char *cn,
               int vhost_index)
{
    SSL       *c = SSL_new(cctx), *s = rp_tls_server_ssl(t);
    X509      *peer;
    char       buf[256];
    const rp_vhost_conf_t *v;

    SSL_set_connect_state(c);
    if (host != NULL) {
        SSL_set_tlsext_host_name(c, host);
    }
    assert_true(handshake(c, s));
    assert_non_null(peer = SSL_get0_peer_certificate(c));
    X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, buf, sizeof(buf));
    assert_string_equal(buf, cn);
    v = rp_tls_sni_vhost(s);
    if (vhost_index < 0) {
        assert_null(v);
    } else {
        assert_ptr_equal(v, &t->conf->vhosts[vhost_index]);
    }
    SSL_free(c);
    SSL_free(s);
}

static void
test_sni(void **state)
{
    rp_config_t  *conf = must_load("cert = 'srv_rsa.crt', key = 'srv_rsa.key'",
                                   "rproxy.vhost 'a.example.com' { aliases = { '*.b.example.com' },\n"
                                   "  tls = { cert = 'vhost.crt', key = 'vhost.key' } }\n"
                                   "rproxy.vhost 'plain.example.com' { }\n");
    SSL_CTX      *c13 = client_ctx(0, 0, NULL), *c12 = client_ctx(0, TLS1_2_VERSION, NULL);

    assert_non_null(conf->vhosts[1].tls_certset);
    assert_peer_cn(server_of(conf), c13, "a.example.com", "a.example.com", 1);
    assert_peer_cn(server_of(conf), c13, "A.Example.COM", "a.example.com", 1);
    assert_peer_cn(server_of(conf), c12, "x.b.example.com", "a.example.com", 1);
    assert_peer_cn(server_of(conf), c13, "unknown.test", "localhost", -1);
    assert_peer_cn(server_of(conf), c13, "plain.example.com", "localhost", -1);
    assert_peer_cn(server_of(conf), c13, NULL, "localhost", -1);
    SSL_CTX_free(c13);
    SSL_CTX_free(c12);
    rp_config_unref(conf);
}

/* A vhost's own SSL_CTX resumes like the listener's: by ticket from memory,
 * and by session ID, which its new-session callback stores. */
static void
test_sni_resumption(void **state)
{
    rp_config_t      *conf = must_load("cert = 'srv_rsa.crt', key = 'srv_rsa.key',"
                                       " tickets = 'stateless'",
                                       "rproxy.vhost 'a.example.com' {\n"
                                       "  tls = { cert = 'vhost.crt', key = 'vhost.key' } }\n");
    rp_tls_server_t  *t = server_of(conf);
    SSL_CTX          *c12 = client_ctx(0, TLS1_2_VERSION, NULL);
    SSL_CTX          *noticket = client_ctx(0, TLS1_2_VERSION, NULL);
    SSL_SESSION      *sess = NULL;
    rp_tls_stats_t    st;
    int               reused;

    SSL_CTX_set_options(noticket, SSL_OP_NO_TICKET);
    assert_true(connect_to(t, c12, "a.example.com", NULL, NULL, &sess, &reused));
    assert_true(connect_to(t, c12, "a.example.com", sess, NULL, NULL, &reused));
    assert_true(reused);
    rp_tls_server_stats(t, &st);
    assert_int_equal(st.ticket_memo_hits, 1);
    SSL_SESSION_free(sess);

    assert_true(connect_to(t, noticket, "a.example.com", NULL, NULL, &sess, &reused));
    rp_tls_server_stats(t, &st);
    assert_int_equal(st.sessions, 1);
    assert_true(connect_to(t, noticket, "a.example.com", sess, NULL, NULL, &reused));
    assert_true(reused);
    SSL_SESSION_free(sess);
    rp_config_unref(conf);

    /* the default (random keys): the listener's ClientHello callback leaves a
     * vhost's session to the cache too */
    conf = must_load("cert = 'srv_rsa.crt', key = 'srv_rsa.key'",
                     "rproxy.vhost 'a.example.com' {\n"
                     "  tls = { cert = 'vhost.crt', key = 'vhost.key' } }\n");
    t = server_of(conf);
    assert_true(connect_to(t, c12, "a.example.com", NULL, NULL, &sess, &reused));
    assert_false(SSL_SESSION_has_ticket(sess));
    assert_true(connect_to(t, c12, "a.example.com", sess, NULL, NULL, &reused));
    assert_true(reused);
    rp_tls_server_stats(t, &st);
    assert_int_equal(st.sessions, 1);
    SSL_SESSION_free(sess);
    SSL_CTX_free(c12);
    SSL_CTX_free(noticket);
    rp_config_unref(conf);
}

static const char verify_tls[] =
    "cert = 'srv_rsa.crt', key = 'srv_rsa.key', client_ca = 'ca.crt', crl = 'crl.pem',"
    "extensions = { ['X-SSL-Ext-SAN'] = 'subjectAltName', ['X-SSL-Policy'] = '1.2.3.4',"
    "  ['X-SSL-Custom'] = '" CUSTOM_OID "', ['X-SSL-None'] = 'nsComment',"
    "  ['X-Policies'] = 'certificatePolicies' }";

/* The certificate file's SHA-256, as X509_digest() computes it. */
static void
file_fingerprint(const char *name, char *hex)
{
    char           path[PATH_MAX + 32];
    unsigned char  md[EVP_MAX_MD_SIZE];
    unsigned int   n, i;
    FILE          *f;
    X509          *x;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_non_null(f = fopen(path, "r"));
    assert_non_null(x = PEM_read_X509(f, NULL, NULL, NULL));
    fclose(f);
    assert_int_equal(X509_digest(x, EVP_sha256(), md, &n), 1);
    for (i = 0; i < n; i++) {
        sprintf(hex + 2 * i, "%02x", md[i]);
    }
    X509_free(x);
}

static void
test_client_verify(void **state)
{
    rp_config_t      *conf = must_load(verify_tls, NULL);
    rp_tls_server_t  *t = server_of(conf);
    SSL_CTX          *none = client_ctx(0, 0, NULL), *good = client_ctx(0, 0, "client");
    SSL_CTX          *good12 = client_ctx(0, TLS1_2_VERSION, "client");
    SSL_CTX          *bad = client_ctx(0, 0, "revoked"), *bad12 = client_ctx(0, TLS1_2_VERSION,
                                                                              "revoked");
    SSL              *s;
    rp_tls_facts_t    f;
    rp_tls_stats_t    st;
    char              fp[65], *log;
    unsigned          i;

    assert_int_equal(conf->listeners[0].tls->verify_client, RP_TLS_VERIFY_REQUIRE);

    /* require: no certificate, no connection (both versions) */
    assert_false(connect_to(t, none, "localhost", NULL, NULL, NULL, NULL));

    assert_true(connect_to(t, good, "localhost", NULL, &s, NULL, NULL));
    assert_int_equal(rp_tls_facts(s, &f), RP_OK);
    assert_true(f.has_peer_cert);
    assert_int_equal(f.verify_result, X509_V_OK);
    assert_string_equal(f.subject, "CN=client one,O=rproxy tests");
    assert_string_equal(f.issuer, "CN=rproxy test CA,O=rproxy tests");
    assert_string_equal(f.serial, "03E8");
    file_fingerprint("client.crt", fp);
    assert_string_equal(f.fingerprint, fp);
    assert_non_null(f.not_before);
    assert_non_null(strstr(f.not_after, " GMT"));
    assert_true(strncmp(f.certificate, "-----BEGIN%20CERTIFICATE-----%0A", 32) == 0);
    assert_null(strpbrk(f.certificate, "\r\n +/="));
    /* extensions come sorted by header name */
    assert_int_equal(f.nexts, 5);
    assert_string_equal(f.exts[0].header, "X-Policies");
    assert_string_equal(f.exts[0].value, "Policy: 1.2.3.4");
    assert_string_equal(f.exts[1].header, "X-SSL-Custom");
    assert_string_equal(f.exts[1].value, "team-blue");
    assert_string_equal(f.exts[2].header, "X-SSL-Ext-SAN");
    assert_string_equal(f.exts[2].value, "email:one@example.com");
    assert_string_equal(f.exts[3].header, "X-SSL-None");
    assert_null(f.exts[3].value);
    assert_string_equal(f.exts[4].header, "X-SSL-Policy");
    assert_null(f.exts[4].value);          /* 1.2.3.4 is a policy, not an extension */
    for (i = 0; i < f.nexts; i++) {
        assert_true(f.exts[i].value == NULL || strpbrk(f.exts[i].value, "\r\n") == NULL);
    }
    assert_string_equal(rp_tls_facts_get(&f, RP_TLS_H_SUBJECT), f.subject);
    assert_string_equal(rp_tls_facts_get(&f, RP_TLS_H_FINGERPRINT), fp);
    rp_tls_facts_cleanup(&f);
    SSL_free(s);

    /* the second handshake of that certificate is a cache hit */
    rp_tls_server_stats(t, &st);
    assert_int_equal(st.cert_cache_hits, 0);
    assert_int_equal(st.cert_cache_misses, 1);
    assert_int_equal(st.cert_cache_entries, 1);
    assert_true(connect_to(t, good12, "localhost", NULL, NULL, NULL, NULL));
    rp_tls_server_stats(t, &st);
    assert_int_equal(st.cert_cache_hits, 1);
    assert_int_equal(st.cert_cache_misses, 1);

    /* revoked: refused, with a log line naming it and why */
    assert_false(connect_to(t, bad, "localhost", NULL, NULL, NULL, NULL));
    assert_false(connect_to(t, bad12, "localhost", NULL, NULL, NULL, NULL));
    rp_tls_server_stats(t, &st);
    assert_int_equal(st.verify_failures, 2);
    assert_int_equal(st.cert_cache_entries, 1);
    log = read_log();
    assert_non_null(strstr(log, "[error] conn 7: client certificate refused: subject "
                                "\"CN=client revoked,O=rproxy tests\", issuer \"CN=rproxy test "
                                "CA,O=rproxy tests\": certificate revoked"));
    free(log);

    /* the CRL changes: the next check reads it again and empties the cache */
    {
        char  from[PATH_MAX + 32], to[PATH_MAX + 32];

        snprintf(from, sizeof(from), "%s/crl_both.pem", dir);
        snprintf(to, sizeof(to), "%s/crl.pem", dir);
        assert_int_equal(rename(from, to), 0);
    }
    t->crl_checked = rp_now() - 2;
    assert_false(connect_to(t, good, "localhost", NULL, NULL, NULL, NULL));
    rp_tls_server_stats(t, &st);
    assert_int_equal(st.crl_reloads, 1);
    assert_int_equal(st.cert_cache_entries, 0);
    assert_int_equal(st.cert_cache_hits, 1);
    log = read_log();
    assert_non_null(strstr(log, "subject \"CN=client one,O=rproxy tests\""));
    free(log);

    SSL_CTX_free(none);
    SSL_CTX_free(good);
    SSL_CTX_free(good12);
    SSL_CTX_free(bad);
    SSL_CTX_free(bad12);
    rp_config_unref(conf);
}

static void
test_client_optional(void **state)
{
    rp_config_t      *conf = must_load("cert = 'srv_rsa.crt', key = 'srv_rsa.key',"
                                       "client_ca = 'ca.crt', verify_client = 'optional',"
                                       "cert_cache = false", NULL);
    SSL_CTX          *none = client_ctx(0, 0, NULL), *good = client_ctx(0, 0, "client");
    SSL_CTX          *foreign = client_ctx(0, 0, "srv_other");
    SSL              *s;
    rp_tls_facts_t    f;
    rp_tls_stats_t    st;

    assert_true(connect_to(server_of(conf), none, "localhost", NULL, &s, NULL, NULL));
    assert_int_equal(rp_tls_facts(s, &f), RP_OK);
    assert_false(f.has_peer_cert);
    assert_null(f.subject);
    assert_null(f.exts);
    rp_tls_facts_cleanup(&f);
    SSL_free(s);
    assert_true(connect_to(server_of(conf), good, "localhost", NULL, NULL, NULL, NULL));
    assert_true(connect_to(server_of(conf), good, "localhost", NULL, NULL, NULL, NULL));
    /* a certificate that is sent must verify, even when optional */
    assert_false(connect_to(server_of(conf), foreign, "localhost", NULL, NULL, NULL, NULL));
    rp_tls_server_stats(server_of(conf), &st);
    assert_int_equal(st.cert_cache_hits, 0);
    assert_int_equal(st.cert_cache_misses, 3);
    assert_int_equal(st.cert_cache_entries, 0);
    SSL_CTX_free(none);
    SSL_CTX_free(good);
    SSL_CTX_free(foreign);
    rp_config_unref(conf);
}

/* Connects twice with cctx; returns whether the second resumed. */
static int
resumes(rp_tls_server_t *first, rp_tls_server_t *second, SSL_CTX *cctx)
{
    SSL_SESSION  *sess = NULL;
    int           reused = -1;

    assert_true(connect_to(first, cctx, "localhost", NULL, NULL, &sess, &reused));
    assert_int_equal(reused, 0);
    assert_non_null(sess);
    assert_true(connect_to(second, cctx, "localhost", sess, NULL, NULL, &reused));
    SSL_SESSION_free(sess);
    return reused;
}

static void
test_resume_cache(void **state)
{
    rp_config_t  *conf = must_load("cert = 'srv_rsa.crt', key = 'srv_rsa.key', tickets = false",
                                   NULL);
    rp_config_t  *none = must_load("cert = 'srv_rsa.crt', key = 'srv_rsa.key', tickets = false,"
                                   "session_cache = false", NULL);
    SSL_CTX      *c12 = client_ctx(0, TLS1_2_VERSION, NULL), *c13 = client_ctx(TLS1_3_VERSION,
                                                                                0, NULL);

    rp_config_t  *reloaded;
    SSL_SESSION  *sess = NULL;
    SSL          *s;
    int           reused;

    assert_true(resumes(server_of(conf), server_of(conf), c12));
    assert_true(resumes(server_of(conf), server_of(conf), c13));
    assert_false(resumes(server_of(none), server_of(none), c12));
    assert_false(resumes(server_of(none), server_of(none), c13));
    rp_config_unref(none);

    /* the cache outlives a reload: the listener's snapshots share it... */
    reloaded = must_load("cert = 'srv_rsa.crt', key = 'srv_rsa.key', tickets = false", NULL);
    assert_true(resumes(server_of(conf), server_of(reloaded), c12));
    assert_true(resumes(server_of(conf), server_of(reloaded), c13));
    /* ...but a snapshot with other certificates resumes none of its sessions */
    none = must_load("cert = 'vhost.crt', key = 'vhost.key', tickets = false", NULL);
    assert_false(resumes(server_of(conf), server_of(none), c12));
    assert_false(resumes(server_of(conf), server_of(none), c13));
    rp_config_unref(none);
    rp_config_unref(conf);

    /* a connection freed after its handshake without close_notify takes its
     * session out of the cache, as OpenSSL's own cache did */
    assert_true(connect_to(server_of(reloaded), c12, "localhost", NULL, NULL, &sess, &reused));
    assert_true(connect_to(server_of(reloaded), c12, "localhost", sess, &s, NULL, &reused));
    assert_true(reused);
    SSL_free(s);                             /* no rp_tls_shutdown() */
    assert_true(connect_to(server_of(reloaded), c12, "localhost", sess, NULL, NULL, &reused));
    assert_false(reused);
    SSL_SESSION_free(sess);

    SSL_CTX_free(c12);
    SSL_CTX_free(c13);
    rp_config_unref(reloaded);
}

static void
test_resume_tickets(void **state)
{
    static const char tls[] = "cert = 'srv_rsa.crt', key = 'srv_rsa.key', session_cache = false";
    rp_config_t      *conf = must_load(tls,
                                       "rproxy.listen { address = '127.0.0.1:18445', tls = {"
                                       " cert = 'srv_rsa.crt', key = 'srv_rsa.key' } }");
    rp_config_t      *reloaded;
    rp_tls_server_t  *t = server_of(conf), *elsewhere = conf->listeners[1].tls_server;
    SSL_CTX          *c12 = client_ctx(0, TLS1_2_VERSION, NULL);
    SSL_CTX          *c13 = client_ctx(TLS1_3_VERSION, 0, NULL);
    SSL_SESSION      *sess = NULL;
    rp_tls_stats_t    st;
    int               reused;

    assert_true(resumes(t, t, c12));
    assert_true(resumes(t, t, c13));
    /* random keys: another listener cannot read these tickets... */
    assert_false(resumes(t, elsewhere, c12));
    assert_false(resumes(t, elsewhere, c13));
    /* ...but the same listener in a reloaded snapshot can */
    reloaded = must_load(tls, NULL);
    assert_ptr_equal(server_of(reloaded)->ring, t->ring);
    assert_true(resumes(t, server_of(reloaded), c12));
    assert_true(resumes(t, server_of(reloaded), c13));
    rp_config_unref(reloaded);

    /* rotation: a ticket of the previous key still resumes */
    assert_true(connect_to(t, c12, "localhost", NULL, NULL, &sess, NULL));
    t->ring->rotated -= t->tc->ticket_rotate + 1;
    assert_true(connect_to(t, c12, "localhost", sess, NULL, NULL, &reused));
    assert_true(reused);
    rp_tls_server_stats(t, &st);
    assert_int_equal(st.ticket_rotations, 1);
    assert_int_equal(t->ring->nkeys, 2);
    /* ... but not after a second rotation */
    t->ring->rotated -= t->tc->ticket_rotate + 1;
    assert_true(connect_to(t, c12, "localhost", sess, NULL, NULL, &reused));
    assert_false(reused);
    SSL_SESSION_free(sess);

    SSL_CTX_free(c12);
    SSL_CTX_free(c13);
    rp_config_unref(conf);
}

/* Resumes sess on t (TLS 1.2 with the client certificate); returns whether
 * it was reused, and checks the server still knows the client's certificate. */
static int
resumes_with_cert(rp_tls_server_t *t, SSL_CTX *cctx, SSL_SESSION *sess)
{
    SSL             *s = NULL;
    rp_tls_facts_t   f;
    int              reused = -1;

    assert_true(connect_to(t, cctx, "localhost", sess, &s, NULL, &reused));
    assert_int_equal(rp_tls_facts(s, &f), RP_OK);
    assert_true(f.has_peer_cert);
    assert_string_equal(f.subject, "CN=client one,O=rproxy tests");
    rp_tls_facts_cleanup(&f);
    rp_tls_shutdown(s);
    SSL_free(s);
    return reused;
}

static void
test_ticket_memo(void **state)
{
    static const char tls[] = "cert = 'srv_rsa.crt', key = 'srv_rsa.key', client_ca = 'ca.crt',"
                              " verify_client = 'require', tickets = 'stateless'";
    rp_config_t      *conf = must_load(tls, NULL), *reloaded;
    rp_tls_server_t  *t = server_of(conf);
    SSL_CTX          *c12 = client_ctx(0, TLS1_2_VERSION, "client");
    SSL_CTX          *c13 = client_ctx(TLS1_3_VERSION, 0, "client");
    SSL_CTX          *noticket = client_ctx(0, TLS1_2_VERSION, "client");
    SSL_SESSION      *sess = NULL;
    rp_tls_stats_t    st;
    int               i, reused;

    /* the ticket of a full handshake is resumed from memory, with the client's
     * certificate, and the copies never enter the session cache */
    assert_true(connect_to(t, c12, "localhost", NULL, NULL, &sess, &reused));
    assert_int_equal(reused, 0);
    rp_tls_server_stats(t, &st);
    assert_int_equal(st.ticket_memo_entries, 1);
    assert_int_equal(st.ticket_memo_hits, 0);
    for (i = 0; i < 3; i++) {
        assert_true(resumes_with_cert(t, c12, sess));
    }
    rp_tls_server_stats(t, &st);
    assert_int_equal(st.ticket_memo_hits, 3);
    assert_int_equal(st.sessions, 0);

    /* a reloaded snapshot shares the memory: no decoding after a reload */
    reloaded = must_load(tls, NULL);
    assert_ptr_not_equal(server_of(reloaded), t);
    assert_true(resumes_with_cert(server_of(reloaded), c12, sess));
    rp_tls_server_stats(server_of(reloaded), &st);
    assert_int_equal(st.ticket_memo_hits, 4);
    assert_int_equal(st.ticket_memo_entries, 1);
    rp_config_unref(reloaded);
    SSL_SESSION_free(sess);

    /* a client without tickets still resumes by session ID */
    SSL_CTX_set_options(noticket, SSL_OP_NO_TICKET);
    assert_true(connect_to(t, noticket, "localhost", NULL, NULL, &sess, &reused));
    rp_tls_server_stats(t, &st);
    assert_int_equal(st.sessions, 1);
    assert_true(resumes_with_cert(t, noticket, sess));
    SSL_SESSION_free(sess);

    /* TLS 1.3 tickets are decrypted, and their sessions are not kept */
    assert_true(resumes(t, t, c13));
    rp_tls_server_stats(t, &st);
    assert_int_equal(st.ticket_memo_hits, 4);
    assert_int_equal(st.ticket_memo_entries, 1);
    assert_int_equal(st.sessions, 1);
    rp_config_unref(conf);

    /* a ticket another listener made (one key file) is decrypted once, then
     * resumed from memory */
    conf = must_load("cert = 'srv_rsa.crt', key = 'srv_rsa.key', ticket_key_file = 'ticket.key'",
                     "rproxy.listen { address = '127.0.0.1:18447', tls = { cert = 'srv_rsa.crt',"
                     " key = 'srv_rsa.key', ticket_key_file = 'ticket.key' } }");
    assert_true(connect_to(server_of(conf), c12, "localhost", NULL, NULL, &sess, NULL));
    for (i = 0; i < 2; i++) {
        assert_true(connect_to(conf->listeners[1].tls_server, c12, "localhost", sess, NULL, NULL,
                               &reused));
        assert_true(reused);
        rp_tls_server_stats(conf->listeners[1].tls_server, &st);
        assert_int_equal(st.ticket_memo_hits, (uint64_t) i);
        assert_int_equal(st.ticket_memo_entries, 1);
    }
    SSL_SESSION_free(sess);
    rp_config_unref(conf);

    /* a session past its timeout is not resumed, from memory or not */
    conf = must_load("cert = 'srv_rsa.crt', key = 'srv_rsa.key', tickets = 'stateless',"
                     " session_cache = { timeout = 1 }", NULL);
    t = server_of(conf);
    assert_true(connect_to(t, c12, "localhost", NULL, NULL, &sess, NULL));
    assert_true(connect_to(t, c12, "localhost", sess, NULL, NULL, &reused));
    assert_true(reused);
    sleep(2);
    assert_true(connect_to(t, c12, "localhost", sess, NULL, NULL, &reused));
    assert_false(reused);
    rp_tls_server_stats(t, &st);
    assert_int_equal(st.ticket_memo_hits, 1);
    SSL_SESSION_free(sess);
    rp_config_unref(conf);

    /* the memo holds as many sessions as the cache; the oldest goes first and
     * its ticket is decrypted again */
    conf = must_load("cert = 'srv_rsa.crt', key = 'srv_rsa.key', tickets = 'stateless',"
                     " session_cache = { size = 2 }", NULL);
    t = server_of(conf);
    assert_true(connect_to(t, c12, "localhost", NULL, NULL, &sess, NULL));
    for (i = 0; i < 2; i++) {
        assert_true(resumes(t, t, c12));      /* a full handshake, then from memory */
    }
    rp_tls_server_stats(t, &st);
    assert_int_equal(st.ticket_memo_entries, 2);
    assert_int_equal(st.ticket_memo_hits, 2);
    assert_true(connect_to(t, c12, "localhost", sess, NULL, NULL, &reused));
    assert_true(reused);
    rp_tls_server_stats(t, &st);
    assert_int_equal(st.ticket_memo_hits, 2);
    SSL_SESSION_free(sess);
    rp_config_unref(conf);

    /* without the session cache, tickets are only decrypted */
    conf = must_load("cert = 'srv_rsa.crt', key = 'srv_rsa.key', session_cache = false", NULL);
    assert_true(resumes(server_of(conf), server_of(conf), c12));
    rp_tls_server_stats(server_of(conf), &st);
    assert_int_equal(st.ticket_memo_hits, 0);
    assert_int_equal(st.ticket_memo_entries, 0);
    rp_config_unref(conf);

    SSL_CTX_free(c12);
    SSL_CTX_free(c13);
    SSL_CTX_free(noticket);
}

/* The length of the ticket a client holds: 0 for none, 32 for a TLS 1.3
 * stateful ticket (the session's ID). */
static size_t
ticket_len(const SSL_SESSION *sess)
{
    const unsigned char  *tick = NULL;
    size_t                len = 0;

    SSL_SESSION_get0_ticket(sess, &tick, &len);
    return len;
}

/* One connection that resumes sess on t; returns the session the client
 * holds after it (a new TLS 1.3 ticket, or the same session). */
static SSL_SESSION *
resumed(rp_tls_server_t *t, SSL_CTX *cctx, SSL_SESSION *sess)
{
    SSL_SESSION  *next = NULL;
    int           reused = -1;

    assert_true(connect_to(t, cctx, "localhost", sess, NULL, &next, &reused));
    assert_true(reused);
    return next;
}

/* With random ticket keys (the default), a new session is kept by the cache
 * while it has room, and a stateless ticket is made only beyond: no one but
 * this process can read one, and OpenSSL decodes the session to make it. */
static void
test_tickets_when_cache_full(void **state)
{
    rp_config_t      *conf = must_load("cert = 'srv_rsa.crt', key = 'srv_rsa.key',"
                                       " session_cache = { size = 2 }", NULL), *bigger;
    rp_tls_server_t  *t = server_of(conf);
    SSL_CTX          *c12 = client_ctx(0, TLS1_2_VERSION, NULL);
    SSL_CTX          *c13 = client_ctx(TLS1_3_VERSION, 0, NULL);
    SSL_SESSION      *a = NULL, *b = NULL, *full = NULL, *next;
    rp_tls_stats_t    st;

    /* TLS 1.2: sessions by ID, no ticket, while the cache has room */
    assert_true(connect_to(t, c12, "localhost", NULL, NULL, &a, NULL));
    assert_true(connect_to(t, c12, "localhost", NULL, NULL, &b, NULL));
    assert_int_equal(ticket_len(a), 0);
    assert_int_equal(ticket_len(b), 0);
    rp_tls_server_stats(t, &st);
    assert_int_equal(st.sessions, 2);
    assert_int_equal(st.ticket_memo_entries, 0);
    assert_int_equal(st.tickets_cache_full, 0);

    /* full: a new session gets a ticket (resumed from memory), and pushes no
     * cached session out; a cached one still resumes by ID, without a ticket */
    assert_true(connect_to(t, c12, "localhost", NULL, NULL, &full, NULL));
    assert_true(ticket_len(full) > 32);
    next = resumed(t, c12, full);
    SSL_SESSION_free(next);
    next = resumed(t, c12, a);
    assert_int_equal(ticket_len(next), 0);
    SSL_SESSION_free(next);
    rp_tls_server_stats(t, &st);
    assert_int_equal(st.sessions, 2);
    assert_int_equal(st.ticket_memo_hits, 1);
    assert_int_equal(st.tickets_cache_full, 1);

    /* a reload with a bigger cache has room again; the ticket made while it
     * was full is still resumed, from memory */
    bigger = must_load("cert = 'srv_rsa.crt', key = 'srv_rsa.key',"
                       " session_cache = { size = 4 }", NULL);
    rp_config_unref(conf);
    t = server_of(bigger);
    next = resumed(t, c12, full);
    SSL_SESSION_free(next);
    rp_tls_server_stats(t, &st);
    assert_int_equal(st.ticket_memo_hits, 2);
    SSL_SESSION_free(full);

    /* TLS 1.3: stateful tickets (two per handshake) fill the cache, and one
     * is still resumed once it is full (its new ticket pushes the oldest
     * session out, and the used one is forgotten); once the cache is full
     * again, new sessions get stateless tickets, which resume too */
    assert_true(connect_to(t, c13, "localhost", NULL, NULL, &full, NULL));
    assert_int_equal(ticket_len(full), 32);
    rp_tls_server_stats(t, &st);
    assert_int_equal(st.sessions, 4);
    next = resumed(t, c13, full);
    rp_tls_server_stats(t, &st);
    assert_int_equal(st.sessions, 3);
    SSL_SESSION_free(full);
    SSL_SESSION_free(next);
    assert_true(connect_to(t, c13, "localhost", NULL, NULL, &full, NULL));
    assert_int_equal(ticket_len(full), 32);
    SSL_SESSION_free(full);
    assert_true(connect_to(t, c13, "localhost", NULL, NULL, &full, NULL));
    assert_true(ticket_len(full) > 32);
    next = resumed(t, c13, full);
    SSL_SESSION_free(next);
    SSL_SESSION_free(full);
    rp_config_unref(bigger);

    /* with a ticket key file, tickets always: other instances read them */
    conf = must_load("cert = 'srv_rsa.crt', key = 'srv_rsa.key', ticket_key_file = 'ticket.key'",
                     NULL);
    SSL_SESSION_free(a);
    assert_true(connect_to(server_of(conf), c12, "localhost", NULL, NULL, &a, NULL));
    assert_true(ticket_len(a) > 32);
    rp_config_unref(conf);

    SSL_SESSION_free(a);
    SSL_SESSION_free(b);
    SSL_CTX_free(c12);
    SSL_CTX_free(c13);
}

/* One TLS 1.3 full handshake with cctx on t (a fresh cache), then the
 * resumption of its stateful ticket, twice: the first resumes and brings a
 * new ticket, which resumes too; the used ticket is forgotten, so the cache
 * still holds two sessions, and a copy of it made before its use (OpenSSL's
 * client marks a used ticket spent) does not resume. */
static void
stateful_ticket_used_once(rp_tls_server_t *t, SSL_CTX *cctx)
{
    SSL_SESSION     *sess = NULL, *again, *next, *last;
    rp_tls_stats_t   st;
    int              reused;

    assert_true(connect_to(t, cctx, "localhost", NULL, NULL, &sess, NULL));
    assert_int_equal(ticket_len(sess), 32);
    rp_tls_server_stats(t, &st);
    assert_int_equal(st.sessions, 2);              /* two tickets */
    again = SSL_SESSION_dup(sess);
    next = resumed(t, cctx, sess);                 /* one new ticket, the used one gone */
    assert_int_equal(ticket_len(next), 32);
    rp_tls_server_stats(t, &st);
    assert_int_equal(st.sessions, 2);
    assert_true(connect_to(t, cctx, "localhost", again, NULL, NULL, &reused));
    assert_false(reused);
    last = resumed(t, cctx, next);
    SSL_SESSION_free(last);
    SSL_SESSION_free(next);
    SSL_SESSION_free(again);
    SSL_SESSION_free(sess);
}

/* A TLS 1.3 stateful ticket is forgotten once it has resumed a handshake:
 * clients use a ticket once and get a new one, and the cache keeps what they
 * can still use. */
static void
test_stateful_ticket_used_once(void **state)
{
    rp_config_t      *conf = must_load("cert = 'srv_rsa.crt', key = 'srv_rsa.key'", NULL);
    SSL_CTX          *c13 = client_ctx(TLS1_3_VERSION, 0, NULL);
    SSL_CTX          *c12 = client_ctx(0, TLS1_2_VERSION, NULL);
    SSL_SESSION      *sess = NULL, *next;

    stateful_ticket_used_once(server_of(conf), c13);
    rp_config_unref(conf);

    /* with a HelloRetryRequest (the client's key share is X25519, the listener
     * takes P-384 only) each ClientHello comes twice: the same */
    conf = must_load("cert = 'srv_rsa.crt', key = 'srv_rsa.key', groups = 'P-384'", NULL);
    assert_int_equal(SSL_CTX_set1_groups_list(c13, "X25519:P-384"), 1);
    stateful_ticket_used_once(server_of(conf), c13);

    /* a TLS 1.2 session ID resumes again and again */
    assert_true(connect_to(server_of(conf), c12, "localhost", NULL, NULL, &sess, NULL));
    next = resumed(server_of(conf), c12, sess);
    SSL_SESSION_free(next);
    next = resumed(server_of(conf), c12, sess);
    SSL_SESSION_free(next);
    SSL_SESSION_free(sess);
    SSL_CTX_free(c12);
    SSL_CTX_free(c13);
    rp_config_unref(conf);
}

static void
test_ticket_key_file(void **state)
{
    rp_config_t  *a = must_load("cert = 'srv_rsa.crt', key = 'srv_rsa.key',"
                                "session_cache = false, ticket_key_file = 'ticket.key'", NULL);
    rp_config_t  *b = must_load("cert = 'srv_rsa.crt', key = 'srv_rsa.key',"
                                "session_cache = false, ticket_key_file = 'ticket.key'", NULL);
    rp_config_t  *c = must_load("cert = 'srv_rsa.crt', key = 'srv_rsa.key',"
                                "session_cache = false, ticket_key_file = 'ticket2.key'", NULL);
    SSL_CTX      *c12 = client_ctx(0, TLS1_2_VERSION, NULL);
    SSL_CTX      *c13 = client_ctx(TLS1_3_VERSION, 0, NULL);

    assert_int_equal(server_of(a)->ring->nkeys, 1);
    assert_int_equal(server_of(c)->ring->nkeys, 2);
    assert_ptr_not_equal(server_of(a)->ring, server_of(b)->ring);
    /* two instances with one key file resume each other's sessions */
    assert_true(resumes(server_of(a), server_of(b), c12));
    assert_true(resumes(server_of(b), server_of(a), c13));
    /* a second record decrypts too: a rolling key change */
    assert_true(resumes(server_of(a), server_of(c), c13));
    SSL_CTX_free(c12);
    SSL_CTX_free(c13);
    rp_config_unref(a);
    rp_config_unref(b);
    rp_config_unref(c);
}

/* One connection from a backend's client ctx to t; returns the handshake's
 * outcome and the client's error string when it failed. */
static int
backend_connect(rp_tls_client_t *bc, rp_tls_server_t *t, int *reused, char *why, size_t len)
{
    SSL  *c = rp_tls_client_ssl(bc), *s = rp_tls_server_ssl(t);
    int   ok;

    assert_non_null(c);
    ok = handshake(c, s);
    *reused = SSL_session_reused(c);
    snprintf(why, len, "%s", ok ? "" : rp_tls_client_error(c));
    ERR_clear_error();
    rp_tls_shutdown(c);                      /* else the server forgets the session */
    rp_tls_shutdown(s);
    SSL_free(c);
    SSL_free(s);
    return ok;
}

static void
test_backend(void **state)
{
    rp_config_t  *conf = must_load("cert = 'srv_rsa.crt', key = 'srv_rsa.key'",
        "rproxy.backend 'good' { address = '127.0.0.1:9443',\n"
        "  tls = { ca = 'ca.crt', sni = 'localhost' } }\n"
        "rproxy.backend 'ip' { address = '127.0.0.1:9444', tls = { ca = 'ca.crt' } }\n"
        "rproxy.backend 'foreign' { address = '127.0.0.1:9445',\n"
        "  tls = { ca = 'ca2.crt', sni = 'localhost' } }\n"
        "rproxy.backend 'misnamed' { address = '127.0.0.1:9446',\n"
        "  tls = { ca = 'ca.crt', name = 'wrong.test' } }\n"
        "rproxy.backend 'noverify' { address = '127.0.0.1:9447', tls = { verify = false } }\n"
        "rproxy.backend 'withcert' { address = 'localhost:9448',\n"
        "  tls = { ca = 'ca.crt', cert = 'client.crt', key = 'client.key' } }\n");
    rp_config_t  *mtls = must_load("cert = 'srv_rsa.crt', key = 'srv_rsa.key',"
                                   "client_ca = 'ca.crt'", NULL);
    rp_tls_server_t  *t = server_of(conf);
    char              why[256];
    int               reused;

    assert_string_equal(conf->backends[1].tls->sni, "localhost");
    assert_string_equal(conf->backends[1].tls->name, "localhost");
    assert_null(conf->backends[2].tls->sni);
    assert_string_equal(conf->backends[2].tls->name, "127.0.0.1");
    assert_string_equal(conf->backends[6].tls->sni, "localhost");

    assert_true(backend_connect(conf->backends[1].tls_client, t, &reused, why, sizeof(why)));
    assert_false(reused);
    assert_true(backend_connect(conf->backends[1].tls_client, t, &reused, why, sizeof(why)));
    assert_true(reused);
    /* an IP address is checked against the certificate's IP SAN */
    assert_true(backend_connect(conf->backends[2].tls_client, t, &reused, why, sizeof(why)));

    assert_false(backend_connect(conf->backends[3].tls_client, t, &reused, why, sizeof(why)));
    assert_string_equal(why, "certificate verify failed: unable to get local issuer certificate");
    assert_false(backend_connect(conf->backends[4].tls_client, t, &reused, why, sizeof(why)));
    assert_string_equal(why, "certificate verify failed: hostname mismatch");
    assert_true(backend_connect(conf->backends[5].tls_client, t, &reused, why, sizeof(why)));

    /* a client certificate for a backend that asks for one */
    assert_false(backend_connect(conf->backends[1].tls_client, server_of(mtls), &reused, why,
                                 sizeof(why)));
    assert_true(backend_connect(conf->backends[6].tls_client, server_of(mtls), &reused, why,
                                sizeof(why)));
    rp_config_unref(conf);
    rp_config_unref(mtls);
}

static void
test_config_values(void **state)
{
    rp_config_t          *conf;
    const rp_tls_conf_t  *tc;
    char                  err[1024], want[PATH_MAX + 32];

    conf = load_tls("cert = 'srv_rsa.crt', key = 'srv_rsa.key'",
                    "rproxy.listen { address = '127.0.0.1:18444', x_headers = { 'X-SSL-Subject',"
                    " 'x-ssl-ext', 'X-SSL-Fingerprint', 'X-Forwarded-For' }, tls = {"
                    " cert = 'srv_ec.crt', key = '" "srv_ec.key', protocols = { 'TLSv1.3' },"
                    " alpn = {}, handshake_timeout = 2.5, ciphersuites = 'TLS_AES_128_GCM_SHA256',"
                    " groups = 'X25519:P-256', ciphers = 'HIGH', client_ca = 'ca.crt', verify_depth = 2,"
                    " session_cache = { size = 10, timeout = 60 }, tickets = false,"
                    " cert_cache = { size = 5, ttl = 7 }, misdirected = 'allow',"
                    " headers = { subject = 'X-Client-DN' } } }",
                    err, sizeof(err));
    if (conf == NULL) {
        fail_msg("%s", err);
    }
    tc = conf->listeners[0].tls;
    assert_int_equal(tc->ncerts, 1);
    path_of(want, sizeof(want), "srv_rsa.crt");
    assert_string_equal(tc->certs[0].cert, want);
    assert_int_equal(tc->protocols, RP_TLS_PROTO_TLSv1_2 | RP_TLS_PROTO_TLSv1_3);
    assert_int_equal(tc->nalpn, 1);
    assert_string_equal(tc->alpn[0], "http/1.1");
    assert_true(tc->handshake_timeout == 10);
    assert_int_equal(tc->verify_client, RP_TLS_VERIFY_NONE);
    assert_int_equal(tc->verify_depth, 4);
    assert_true(tc->session_cache && tc->session_cache_size == 20480 && tc->session_timeout == 300);
    assert_true(tc->tickets && tc->ticket_rotate == 3600 && tc->ticket_key_file == NULL);
    assert_false(tc->tickets_stateless);
    assert_true(tc->cert_cache && tc->cert_cache_size == 10000 && tc->cert_cache_ttl == 300);
    assert_true(tc->misdirected_reject);
    assert_string_equal(tc->headers[RP_TLS_H_SUBJECT], "X-SSL-Subject");
    assert_string_equal(tc->headers[RP_TLS_H_CERTIFICATE], "X-SSL-Certificate");
    assert_int_equal(conf->listeners[0].x_headers, RP_XH_FORWARDED_FOR);

    tc = conf->listeners[1].tls;
    assert_int_equal(conf->listeners[1].x_headers, RP_XH_SSL_SUBJECT | RP_XH_SSL_EXT
                                                   | RP_XH_SSL_FINGERPRINT | RP_XH_FORWARDED_FOR);
    assert_int_equal(tc->protocols, RP_TLS_PROTO_TLSv1_3);
    assert_int_equal(tc->nalpn, 0);
    assert_true(tc->handshake_timeout == 2.5);
    assert_string_equal(tc->ciphersuites, "TLS_AES_128_GCM_SHA256");
    assert_string_equal(tc->groups, "X25519:P-256");
    assert_int_equal(tc->verify_client, RP_TLS_VERIFY_REQUIRE);
    assert_int_equal(tc->verify_depth, 2);
    assert_true(tc->session_cache && tc->session_cache_size == 10 && tc->session_timeout == 60);
    assert_false(tc->tickets);
    assert_true(tc->cert_cache && tc->cert_cache_size == 5 && tc->cert_cache_ttl == 7);
    assert_false(tc->misdirected_reject);
    assert_string_equal(tc->headers[RP_TLS_H_SUBJECT], "X-Client-DN");
    assert_string_equal(tc->headers[RP_TLS_H_ISSUER], "X-SSL-Issuer");
    assert_non_null(conf->listeners[1].tls_server);
    rp_config_unref(conf);
}

/* Each case: the tls table (or, with more, a later declaration) and the
 * message expected, "rproxy.lua:LINE: ..." */
static void
assert_load_error(const char *tls, const char *more, const char *want)
{
    char          err[1024];
    rp_config_t  *conf = load_tls(tls, more, err, sizeof(err));

    if (conf != NULL) {
        rp_config_unref(conf);
        fail_msg("loaded; expected: %s", want);
    }
    if (strstr(err, want) == NULL) {
        fail_msg("got: %s\nexpected: %s", err, want);
    }
}

static void
test_config_errors(void **state)
{
    char  want[PATH_MAX * 2];

    snprintf(want, sizeof(want), "rproxy.lua:2: listen '127.0.0.1:18443': tls: cannot read "
             "certificate '%s/missing.crt': No such file or directory", dir);
    assert_load_error("cert = 'missing.crt', key = 'srv_rsa.key'", NULL, want);
    snprintf(want, sizeof(want), "rproxy.lua:2: listen '127.0.0.1:18443': tls: key '%s/other.key' "
             "does not match certificate '%s/srv_rsa.crt'", dir, dir);
    assert_load_error("cert = 'srv_rsa.crt', key = 'other.key'", NULL, want);
    assert_load_error("cert = 'srv_rsa.crt', key = 'ca.crt'", NULL,
                      "rproxy.lua:2: listen '127.0.0.1:18443': tls: no usable PEM private key");
    assert_load_error("cert = 'srv_rsa.key', key = 'srv_rsa.key'", NULL,
                      "tls: no PEM certificate in");
    snprintf(want, sizeof(want), "rproxy.lua:5: vhost 'v.test': tls: key '%s/srv_rsa.key' does "
             "not match certificate '%s/vhost.crt'", dir, dir);
    assert_load_error("cert = 'srv_rsa.crt', key = 'srv_rsa.key'",
                      "\nrproxy.vhost 'v.test' { tls = { cert = 'vhost.crt', key = 'srv_rsa.key' } }",
                      want);
    assert_load_error("certs = { { cert = 'srv_ec.crt', key = 'srv_ec.key' },"
                      " { cert = 'vhost.crt', key = 'vhost.key' } }", NULL,
                      "have the same key type (id-ecPublicKey)");
    assert_load_error("cert = 'srv_rsa.crt'", NULL,
                      "rproxy.lua:2: listen: 'tls.cert' and 'tls.key' are required (or 'tls.certs')");
    assert_load_error("cert = 'srv_rsa.crt', key = 'srv_rsa.key', certs = {}", NULL,
                      "listen: 'tls.certs' cannot be used with 'tls.cert' and 'tls.key'");
    assert_load_error("certs = { { cert = 'srv_rsa.crt' } }", NULL,
                      "listen: 'tls.certs[1].cert' and 'tls.certs[1].key' are required");
    assert_load_error("cert = 'srv_rsa.crt', key = 'srv_rsa.key', sesion_cache = false", NULL,
                      "rproxy.lua:2: unknown key 'tls.sesion_cache' in listen");
    assert_load_error("cert = 'srv_rsa.crt', key = 'srv_rsa.key', protocols = { 'SSLv3' }", NULL,
                      "'tls.protocols' must be a non-empty array of one of \"TLSv1\"");
    assert_load_error("cert = 'srv_rsa.crt', key = 'srv_rsa.key', verify_client = 'require'", NULL,
                      "'tls.verify_client' = \"require\" needs 'tls.client_ca'");
    /* rproxy speaks HTTP/1.x: a client offered h2 that took it would not */
    assert_load_error("cert = 'srv_rsa.crt', key = 'srv_rsa.key', alpn = { 'h2', 'http/1.1' }", NULL,
                      "'tls.alpn' must be an array of \"http/1.1\" and \"http/1.0\"");
    assert_load_error("cert = 'srv_rsa.crt', key = 'srv_rsa.key', verify_client = 'maybe'", NULL,
                      "'tls.verify_client' must be one of \"none\", \"optional\", \"require\"");
    assert_load_error("cert = 'srv_rsa.crt', key = 'srv_rsa.key', crl = 'crl.pem'", NULL,
                      "'tls.crl' needs client certificates");
    assert_load_error("cert = 'srv_rsa.crt', key = 'srv_rsa.key', client_ca = 'nope.crt'", NULL,
                      "tls: cannot read '");
    assert_load_error("cert = 'srv_rsa.crt', key = 'srv_rsa.key', client_ca = 'ca.crt',"
                      " crl = 'srv_rsa.crt'", NULL, "tls: cannot load CRL '");
    assert_load_error("cert = 'srv_rsa.crt', key = 'srv_rsa.key', ciphers = 'NOPE'", NULL,
                      "tls: 'tls.ciphers': bad cipher list 'NOPE'");
    assert_load_error("cert = 'srv_rsa.crt', key = 'srv_rsa.key', groups = 'P-999'", NULL,
                      "tls: 'tls.groups': bad group list 'P-999'");
    assert_load_error("cert = 'srv_rsa.crt', key = 'srv_rsa.key', session_cache = { size = 0 }",
                      NULL, "'tls.session_cache.size' must be a positive integer");
    assert_load_error("cert = 'srv_rsa.crt', key = 'srv_rsa.key', session_cache = 3", NULL,
                      "'tls.session_cache' must be false, true or a table");
    assert_load_error("cert = 'srv_rsa.crt', key = 'srv_rsa.key', ticket_key_file = 'bad_ticket.key'",
                      NULL, "tls: ticket key file '");
    assert_load_error("cert = 'srv_rsa.crt', key = 'srv_rsa.key', tickets = false,"
                      " ticket_key_file = 'ticket.key'", NULL, "'tls.tickets' is false");
    assert_load_error("cert = 'srv_rsa.crt', key = 'srv_rsa.key', headers = { subject = 'X Y' }",
                      NULL, "'tls.headers.subject' must be a header name");
    assert_load_error("cert = 'srv_rsa.crt', key = 'srv_rsa.key', tickets = 'always'", NULL,
                      "'tls.tickets' must be a boolean or \"stateless\"");
    assert_load_error("cert = 'srv_rsa.crt', key = 'srv_rsa.key', headers = { dn = 'X' }", NULL,
                      "unknown key 'tls.headers.dn'");
    assert_load_error("cert = 'srv_rsa.crt', key = 'srv_rsa.key',"
                      " extensions = { ['X-E'] = 'noSuchExtension' }", NULL,
                      "tls: 'tls.extensions[\"X-E\"]': unknown x509 extension 'noSuchExtension'");
    assert_load_error("cert = 'srv_rsa.crt', key = 'srv_rsa.key', extensions = { 'subjectAltName' }",
                      NULL, "'tls.extensions' must be a table of header name");
    assert_load_error("cert = 'srv_rsa.crt', key = 'srv_rsa.key'",
                      "rproxy.listen { address = '127.0.0.1:1', x_headers = { 'X-SSL-Bogus' } }",
                      "unknown x_header 'X-SSL-Bogus' (known: X-Forwarded-For, X-Forwarded-Proto, "
                      "X-Real-IP, X-SSL-Subject,");
    assert_load_error("cert = 'srv_rsa.crt', key = 'srv_rsa.key'",
                      "rproxy.vhost 'w.test' { tls = { cert = 'vhost.crt', key = 'vhost.key', x = 1 } }",
                      "rproxy.lua:4: unknown key 'tls.x' in vhost 'w.test'");
    snprintf(want, sizeof(want), "rproxy.lua:4: backend 'bad': tls: cannot read '%s/none.crt': "
             "No such file or directory", dir);
    assert_load_error("cert = 'srv_rsa.crt', key = 'srv_rsa.key'",
                      "rproxy.backend 'bad' { address = '127.0.0.1:1', tls = { ca = 'none.crt' } }",
                      want);
    assert_load_error("cert = 'srv_rsa.crt', key = 'srv_rsa.key'",
                      "rproxy.backend 'bad' { address = '127.0.0.1:1', tls = { cert = 'client.crt' } }",
                      "rproxy.lua:4: backend 'bad': 'tls.cert' and 'tls.key' go together");
    assert_load_error("cert = 'srv_rsa.crt', key = 'srv_rsa.key'",
                      "rproxy.backend 'bad' { address = '127.0.0.1:1', tls = { verify = false,"
                      " ca = 'ca.crt' } }", "'tls.verify' is false");
    assert_load_error("cert = 'srv_rsa.crt', key = 'srv_rsa.key'",
                      "rproxy.backend 'bad' { address = '127.0.0.1:1', tls = 'yes' }",
                      "backend 'bad': 'tls' must be true, false or a table");
}

/* Workers share one rp_tls_server_t: handshakes from several threads at once,
 * full and resumed, with client certificates (run it under ASan). */
typedef struct {
    rp_tls_server_t  *t;
    SSL_CTX          *cctx;
    int               ok;
    int               reused;
} thread_arg_t;

static void *
handshake_thread(void *p)
{
    thread_arg_t  *a = p;
    SSL_SESSION   *sess = NULL, *next;
    int            i, reused;

    for (i = 0; i < 20; i++) {
        next = NULL;
        if (connect_to(a->t, a->cctx, "localhost", i % 2 ? sess : NULL, NULL, &next, &reused)) {
            a->ok++;
            a->reused += reused;
        }
        SSL_SESSION_free(sess);
        sess = next;
    }
    SSL_SESSION_free(sess);
    return NULL;
}

static void
test_threads(void **state)
{
    rp_config_t      *conf = must_load("cert = 'srv_rsa.crt', key = 'srv_rsa.key',"
                                       "client_ca = 'ca.crt', cert_cache = { size = 1, ttl = 60 },"
                                       "tickets = 'stateless'", NULL);
    SSL_CTX          *c12 = client_ctx(0, TLS1_2_VERSION, "client");
    SSL_CTX          *c13 = client_ctx(TLS1_3_VERSION, 0, "client");
    pthread_t         th[4];
    thread_arg_t      args[4];
    rp_tls_stats_t    st;
    unsigned          i;

    for (i = 0; i < 4; i++) {
        args[i] = (thread_arg_t) { server_of(conf), i % 2 ? c13 : c12, 0, 0 };
        assert_int_equal(pthread_create(&th[i], NULL, handshake_thread, &args[i]), 0);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].ok, 20);
        assert_int_equal(args[i].reused, 10);
    }
    rp_tls_server_stats(server_of(conf), &st);
    assert_int_equal(st.cert_cache_hits + st.cert_cache_misses, 40);
    assert_true(st.cert_cache_hits >= 36);
    assert_int_equal(st.cert_cache_entries, 1);
    /* the two TLS 1.2 threads resumed every ticket from memory */
    assert_int_equal(st.ticket_memo_hits, 20);
    SSL_CTX_free(c12);
    SSL_CTX_free(c13);
    rp_config_unref(conf);
}

int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_protocols_listed),
        cmocka_unit_test(test_sni),
        cmocka_unit_test(test_sni_resumption),
        cmocka_unit_test(test_client_optional),
        cmocka_unit_test(test_resume_cache),
        cmocka_unit_test(test_resume_tickets),
        cmocka_unit_test(test_ticket_memo),
        cmocka_unit_test(test_tickets_when_cache_full),
        cmocka_unit_test(test_stateful_ticket_used_once),
        cmocka_unit_test(test_ticket_key_file),
        cmocka_unit_test(test_backend),
        cmocka_unit_test(test_config_values),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_client_verify),     /* last: it replaces crl.pem */
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
