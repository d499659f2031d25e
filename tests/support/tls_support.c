/*
 * tls_support.c — see tls_support.h: test CA, identities and the in-memory
 * handshake pump.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls_support.h"

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

static void check(int r, const zm_err_t *err)
{
    if (r < 0) {
        char buf[800];
        fail_msg("%s", zm_err_str(err, buf, sizeof(buf)));
    }
}

void ts_ca_make(ts_ca_t *ca, const char *cn)
{
    zm_err_t err = {0};
    zm_cert_req_t req = {.common_name = cn, .is_ca = true};
    check(zm_cert_issue(&req, NULL, NULL, &ca->cert_pem, &ca->key_pem, &err), &err);
}

void ts_ca_free(ts_ca_t *ca)
{
    free(ca->cert_pem);
    free(ca->key_pem);
    ca->cert_pem = ca->key_pem = NULL;
}

void ts_ident_issue(ts_ident_t *id, const ts_ca_t *ca, const char *spiffe_id, int64_t not_before,
                    int64_t not_after)
{
    zm_err_t err = {0};
    zm_cert_req_t req = {.spiffe_id = spiffe_id,
                         .common_name = spiffe_id ? spiffe_id : "no-uri",
                         .not_before = not_before,
                         .not_after = not_after};
    check(zm_cert_issue(&req, ca->cert_pem, ca->key_pem, &id->cert_pem, &id->key_pem, &err), &err);
    id->ca_pem = ca->cert_pem;
}

void ts_ident_free(ts_ident_t *id)
{
    free(id->cert_pem);
    free(id->key_pem);
    id->cert_pem = id->key_pem = NULL;
}

zm_tls_ctx_t *ts_ctx(const ts_ident_t *id, bool server, const char *trust_domain)
{
    zm_err_t err = {0};
    zm_tls_ctx_config_t cfg = {.server = server,
                               .cert_pem = id->cert_pem,
                               .key_pem = id->key_pem,
                               .ca_pem = id->ca_pem,
                               .trust_domain = trust_domain};
    zm_tls_ctx_t *ctx = NULL;
    check(zm_tls_ctx_new(&ctx, &cfg, &err), &err);
    return ctx;
}

ssize_t ts_move(zm_tls_t *from, zm_tls_t *to)
{
    const uint8_t *p;
    size_t n = zm_tls_out(from, &p);
    if (n == 0)
        return 0;
    int r = zm_tls_feed(to, p, n);
    if (r < 0)
        return r;
    zm_tls_out_consume(from, n);
    return (ssize_t)n;
}

ts_pump_result_t ts_pump(zm_tls_t *client, zm_tls_t *server)
{
    ts_pump_result_t res = {ZM_AGAIN, ZM_AGAIN};
    for (int round = 0; round < 64; round++) {
        if (res.client == ZM_AGAIN)
            res.client = zm_tls_handshake(client);
        ssize_t a = ts_move(client, server);
        if (res.server == ZM_AGAIN)
            res.server = zm_tls_handshake(server);
        ssize_t b = ts_move(server, client);
        if (a < 0 || b < 0)
            break;
        bool done = (res.client != ZM_AGAIN && res.server != ZM_AGAIN) ||
                    ((res.client < 0 && res.client != ZM_AGAIN) ||
                     (res.server < 0 && res.server != ZM_AGAIN));
        if (done && a == 0 && b == 0)
            break;
        if (!done && a == 0 && b == 0 && round > 0)
            break; /* stuck: the caller sees ZM_AGAIN */
    }
    return res;
}

int ts_verify_chain(const char *ca_pem, const char *cert_pem)
{
    zm_tls_global_init();
    WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
    if (!cm)
        return -1;
    int r = wolfSSL_CertManagerLoadCABuffer(cm, (const unsigned char *)ca_pem, (long)strlen(ca_pem),
                                            WOLFSSL_FILETYPE_PEM);
    if (r == WOLFSSL_SUCCESS)
        r = wolfSSL_CertManagerVerifyBuffer(cm, (const unsigned char *)cert_pem,
                                            (long)strlen(cert_pem), WOLFSSL_FILETYPE_PEM);
    wolfSSL_CertManagerFree(cm);
    return r == WOLFSSL_SUCCESS ? 0 : (r ? r : -1);
}
