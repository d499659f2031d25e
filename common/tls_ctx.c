/*
 * tls_ctx.c — TLS contexts: one identity (certificate chain, key, trust
 * bundle) with the mesh's settings (TLS 1.3 only unless asked, AES-GCM and
 * ChaCha20 suites, X25519 / P-256, no session cache, no server tickets,
 * mutual authentication through tls.c's verify callback), reference counted
 * so that connections keep the context they started with; and wolfSSL's
 * one-time global set-up.
 *
 * Threading: a context is read-only once made; the refcount is atomic.
 */
#include <wolfssl/options.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tls_int.h"

#define ZM_TLS_FILE_MAX (1u * 1024 * 1024)

/* ---- global ---- */

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_init_rc;

static void global_init_once(void)
{
    g_init_rc = wolfSSL_Init() == WOLFSSL_SUCCESS ? 0 : -EPROTO;
}

int zm_tls_global_init(void)
{
    pthread_once(&g_once, global_init_once);
    return g_init_rc;
}

void zm_tls_global_cleanup(void)
{
    wolfSSL_Cleanup();
}

/* ---- context ---- */

static int read_file(const char *path, char **out, zm_err_t *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return zm_err_set(err, path, 0, "cannot open: %s", strerror(errno));
    char *p = malloc(ZM_TLS_FILE_MAX + 1);
    size_t n = p ? fread(p, 1, ZM_TLS_FILE_MAX + 1, f) : 0;
    bool bad = ferror(f);
    fclose(f);
    if (!p)
        return zm_err_set(err, path, 0, "out of memory");
    if (bad || n > ZM_TLS_FILE_MAX) {
        free(p);
        return zm_err_set(err, path, 0, bad ? "read error" : "file too large");
    }
    p[n] = '\0';
    *out = p;
    return 0;
}

/* Either the in-memory PEM or the file's content (malloc'd in *owned). */
static int get_pem(const char *pem, const char *file, const char *what, const char **out,
                   char **owned, zm_err_t *err)
{
    *owned = NULL;
    if (pem) {
        *out = pem;
        return 0;
    }
    if (!file)
        return zm_err_set(err, NULL, 0, "no %s given", what);
    int r = read_file(file, owned, err);
    *out = *owned;
    return r;
}

static int64_t asn1_time_epoch(const WOLFSSL_ASN1_TIME *at)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (!at || wolfSSL_ASN1_TIME_to_tm(at, &tm) != WOLFSSL_SUCCESS)
        return 0;
    return (int64_t)timegm(&tm);
}

/* Installs our certificate chain and key; records our SPIFFE ID and expiry
 * from the leaf. */
static int use_identity(zm_tls_ctx_t *c, const char *cert, const char *key, const char *cf,
                        const char *kf, zm_err_t *err)
{
    WOLFSSL_CTX *x = c->ssl_ctx;
    if (wolfSSL_CTX_use_certificate_chain_buffer(x, (const unsigned char *)cert,
                                                 (long)strlen(cert)) != WOLFSSL_SUCCESS)
        return zm_err_set(err, cf, 0, "certificate: not a valid PEM certificate chain");
    if (wolfSSL_CTX_use_PrivateKey_buffer(x, (const unsigned char *)key, (long)strlen(key),
                                          WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
        return zm_err_set(err, kf, 0, "private key: not a valid PEM key");
    if (wolfSSL_CTX_check_private_key(x) != WOLFSSL_SUCCESS)
        return zm_err_set(err, kf, 0, "private key does not match the certificate");
    WOLFSSL_X509 *me = wolfSSL_X509_load_certificate_buffer(
        (const unsigned char *)cert, (int)strlen(cert), WOLFSSL_FILETYPE_PEM);
    if (!me)
        return zm_err_set(err, cf, 0, "certificate: cannot parse");
    char uri[ZM_SPIFFE_ID_MAX];
    int r = zm__tls_first_uri_san(me, uri, sizeof(uri));
    c->not_after = asn1_time_epoch(wolfSSL_X509_get_notAfter(me));
    wolfSSL_X509_free(me);
    if (r > 0 && zm_spiffe_parse(uri, &c->self) < 0)
        return zm_err_set(err, cf, 0, "certificate URI SAN is not a SPIFFE ID: %s", uri);
    return 0;
}

static int ctx_setup(zm_tls_ctx_t *c, const zm_tls_ctx_config_t *cfg, const char *cert,
                     const char *key, const char *ca, zm_err_t *err)
{
    const char *cf = cfg->cert_pem ? NULL : cfg->cert_file;
    const char *kf = cfg->key_pem ? NULL : cfg->key_file;
    const char *af = cfg->ca_pem ? NULL : cfg->ca_file;
    WOLFSSL_METHOD *m;
    if (cfg->allow_tls12)
        m = cfg->server ? wolfSSLv23_server_method() : wolfSSLv23_client_method();
    else
        m = cfg->server ? wolfTLSv1_3_server_method() : wolfTLSv1_3_client_method();
    c->ssl_ctx = m ? wolfSSL_CTX_new(m) : NULL;
    if (!c->ssl_ctx)
        return zm_err_set(err, NULL, 0, "wolfSSL_CTX_new failed");
    WOLFSSL_CTX *x = c->ssl_ctx;
    if (cfg->allow_tls12 && wolfSSL_CTX_SetMinVersion(x, WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS)
        return zm_err_set(err, NULL, 0, "cannot set minimum TLS version");
    const char *ciphers = cfg->allow_tls12
                              ? "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:"
                                "TLS13-CHACHA20-POLY1305-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256:"
                                "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305"
                              : "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:"
                                "TLS13-CHACHA20-POLY1305-SHA256";
    if (cfg->ciphers)
        ciphers = cfg->ciphers;
    if (wolfSSL_CTX_set_cipher_list(x, ciphers) != WOLFSSL_SUCCESS)
        return zm_err_set(err, NULL, 0, "cannot set cipher list");
    int groups[] = {WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1};
    if (wolfSSL_CTX_set_groups(x, groups, (int)ZM_ARRAY_LEN(groups)) != WOLFSSL_SUCCESS)
        return zm_err_set(err, NULL, 0, "cannot set key share groups");
    wolfSSL_CTX_set_session_cache_mode(x, WOLFSSL_SESS_CACHE_OFF);
    if (cfg->server)
        wolfSSL_CTX_no_ticket_TLSv13(x);

    if (wolfSSL_CTX_load_verify_buffer(x, (const unsigned char *)ca, (long)strlen(ca),
                                       WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
        return zm_err_set(err, af, 0, "trust bundle: no valid PEM certificate");
    int r = cert ? use_identity(c, cert, key, cf, kf, err) : 0;
    if (r < 0)
        return r;
    int mode = WOLFSSL_VERIFY_PEER;
    if (cfg->server && !cfg->allow_no_client_cert)
        mode |= WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    wolfSSL_CTX_set_verify(x, mode, zm__tls_verify_cb);
    const char *td = cfg->trust_domain ? cfg->trust_domain : c->self.trust_domain;
    if (!td[0])
        return zm_err_set(err, cf, 0, "%s and no trust domain is configured",
                          cert ? "certificate has no SPIFFE ID" : "no certificate");
    if (strlen(td) >= sizeof(c->trust_domain))
        return zm_err_set(err, NULL, 0, "trust domain too long");
    snprintf(c->trust_domain, sizeof(c->trust_domain), "%s", td);
    const char *alpn = cfg->alpn ? cfg->alpn : "h2";
    if (!alpn[0] || strlen(alpn) >= sizeof(c->alpn))
        return zm_err_set(err, NULL, 0, "bad ALPN protocol");
    snprintf(c->alpn, sizeof(c->alpn), "%s", alpn);
    c->server = cfg->server;
    c->allow_no_client_cert = cfg->allow_no_client_cert;
    c->wolfssl_records = cfg->wolfssl_records;
    return 0;
}

static void ctx_free(zm_tls_ctx_t *c)
{
    if (c->ssl_ctx)
        wolfSSL_CTX_free(c->ssl_ctx);
    free(c);
}

int zm_tls_ctx_new(zm_tls_ctx_t **out, const zm_tls_ctx_config_t *cfg, zm_err_t *err)
{
    *out = NULL;
    int r = zm_tls_global_init();
    if (r < 0)
        return zm_err_set(err, NULL, 0, "wolfSSL_Init failed");
    zm_tls_ctx_t *c = calloc(1, sizeof(*c));
    if (!c)
        return zm_err_set(err, NULL, 0, "out of memory");
    atomic_init(&c->refs, 1);
    const char *cert = NULL, *key = NULL, *ca = NULL;
    char *o_cert = NULL, *o_key = NULL, *o_ca = NULL;
    /* A client may go without a certificate (a server will refuse it unless
     * allow_no_client_cert); it then needs an explicit trust domain. */
    bool anonymous =
        !cfg->server && !cfg->cert_pem && !cfg->cert_file && !cfg->key_pem && !cfg->key_file;
    r = 0;
    if (!anonymous)
        r = get_pem(cfg->cert_pem, cfg->cert_file, "certificate", &cert, &o_cert, err);
    if (r == 0 && !anonymous)
        r = get_pem(cfg->key_pem, cfg->key_file, "private key", &key, &o_key, err);
    if (r == 0)
        r = get_pem(cfg->ca_pem, cfg->ca_file, "trust bundle", &ca, &o_ca, err);
    if (r == 0)
        r = ctx_setup(c, cfg, cert, key, ca, err);
    if (o_key)
        explicit_bzero(o_key, strlen(o_key));
    free(o_cert);
    free(o_key);
    free(o_ca);
    if (r < 0) {
        ctx_free(c);
        return r;
    }
    *out = c;
    return 0;
}

void zm_tls_ctx_ref(zm_tls_ctx_t *ctx)
{
    atomic_fetch_add_explicit(&ctx->refs, 1, memory_order_relaxed);
}

void zm_tls_ctx_unref(zm_tls_ctx_t **ctx)
{
    zm_tls_ctx_t *c = *ctx;
    *ctx = NULL;
    if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        ctx_free(c);
}

const zm_spiffe_id_t *zm_tls_ctx_identity(const zm_tls_ctx_t *ctx)
{
    return &ctx->self;
}

int64_t zm_tls_ctx_not_after(const zm_tls_ctx_t *ctx)
{
    return ctx->not_after;
}
