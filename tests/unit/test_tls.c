/*
 * Unit tests of tls.c and cert.c, all in memory: certificates are issued at
 * start-up by a throw-away CA (tests/support/tls_support.c) and two
 * endpoints are pumped through each other's feed/out buffers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tls.h"
#include "tls_support.h"

#define ID_CLIENT "spiffe://a.local/ns/default/sa/client"
#define ID_SERVER "spiffe://a.local/ns/default/sa/server"

static ts_ca_t ca, other_ca;
static ts_ident_t client_id, server_id, b_client_id, expired_id, foreign_id;

static int setup_all(void **state)
{
    ts_ca_make(&ca, "test CA");
    ts_ca_make(&other_ca, "other CA");
    ts_ident_issue(&client_id, &ca, ID_CLIENT, 0, 0);
    ts_ident_issue(&server_id, &ca, ID_SERVER, 0, 0);
    ts_ident_issue(&b_client_id, &ca, "spiffe://b.local/ns/default/sa/client", 0, 0);
    int64_t now = time(NULL);
    ts_ident_issue(&expired_id, &ca, ID_CLIENT, now - 7200, now - 3600);
    ts_ident_issue(&foreign_id, &other_ca, ID_CLIENT, 0, 0);
    foreign_id.ca_pem = ca.cert_pem; /* it trusts the server; the server does not trust it */
    return 0;
}

static int teardown_all(void **state)
{
    ts_ident_free(&client_id);
    ts_ident_free(&server_id);
    ts_ident_free(&b_client_id);
    ts_ident_free(&expired_id);
    ts_ident_free(&foreign_id);
    ts_ca_free(&ca);
    ts_ca_free(&other_ca);
    zm_tls_global_cleanup();
    return 0;
}

/* Moves bytes both ways until neither side has output left. */
static void flush_both(zm_tls_t *a, zm_tls_t *b)
{
    for (int i = 0; i < 16; i++) {
        ssize_t x = ts_move(a, b), y = ts_move(b, a);
        assert_true(x >= 0 && y >= 0);
        if (x == 0 && y == 0)
            return;
    }
}

/* Sends len bytes from -> to in slices, reading them on the other side;
 * returns the sum of bytes read (checked against an FNV-1a hash). */
static void transfer(zm_tls_t *from, zm_tls_t *to, size_t len, uint32_t seed)
{
    static uint8_t chunk[48 * 1024], rbuf[64 * 1024];
    uint32_t hs = 2166136261u, hr = 2166136261u, x = seed;
    size_t sent = 0, got = 0;
    while (got < len) {
        if (sent < len) {
            size_t n = ZM_MIN(sizeof(chunk), len - sent);
            for (size_t i = 0; i < n; i++) {
                x = x * 1103515245u + 12345u;
                chunk[i] = (uint8_t)(x >> 16);
                hs = (hs ^ chunk[i]) * 16777619u;
            }
            assert_int_equal(zm_tls_write(from, chunk, n), (ssize_t)n);
            sent += n;
        }
        /* The receiver's input is bounded: feed only what it can hold,
         * reading plaintext in between. */
        const uint8_t *p;
        size_t avail = zm_tls_out(from, &p);
        while (avail > 0) {
            size_t n = ZM_MIN(avail, (size_t)32 * 1024);
            assert_int_equal(zm_tls_feed(to, p, n), 0);
            zm_tls_out_consume(from, n);
            for (;;) {
                ssize_t r = zm_tls_read(to, rbuf, sizeof(rbuf));
                if (r == ZM_AGAIN)
                    break;
                assert_true(r > 0);
                for (ssize_t i = 0; i < r; i++)
                    hr = (hr ^ rbuf[i]) * 16777619u;
                got += (size_t)r;
            }
            avail = zm_tls_out(from, &p);
        }
        assert_true(got <= sent);
    }
    assert_int_equal(got, len);
    assert_int_equal(hs, hr);
}

static void connect_pair(zm_tls_ctx_t *cctx, zm_tls_ctx_t *sctx, const char *const *expected,
                         zm_tls_t **c, zm_tls_t **s, ts_pump_result_t *res)
{
    assert_int_equal(zm_tls_new(c, cctx, expected), 0);
    assert_int_equal(zm_tls_new(s, sctx, NULL), 0);
    *res = ts_pump(*c, *s);
}

static void success(void **state)
{
    zm_tls_ctx_t *cctx = ts_ctx(&client_id, false, NULL), *sctx = ts_ctx(&server_id, true, NULL);
    assert_string_equal(zm_tls_ctx_identity(cctx)->uri, ID_CLIENT);
    assert_string_equal(zm_tls_ctx_identity(sctx)->sa, "server");
    int64_t na = zm_tls_ctx_not_after(sctx), now = time(NULL);
    assert_true(na > now + 23 * 3600 && na <= now + 24 * 3600 + 60);

    const char *const expected[] = {"spiffe://a.local/ns/x/sa/y", ID_SERVER, NULL};
    zm_tls_t *c, *s;
    ts_pump_result_t res;
    connect_pair(cctx, sctx, expected, &c, &s, &res);
    assert_int_equal(res.client, ZM_OK);
    assert_int_equal(res.server, ZM_OK);
    assert_true(zm_tls_established(c) && zm_tls_established(s));
    assert_string_equal(zm_tls_version(c), "TLSv1.3");
    assert_string_equal(zm_tls_version(s), "TLSv1.3");
    assert_string_equal(zm_tls_alpn(c), "h2");
    assert_string_equal(zm_tls_alpn(s), "h2");
    assert_non_null(zm_tls_peer_id(c));
    assert_non_null(zm_tls_peer_id(s));
    assert_string_equal(zm_tls_peer_id(c)->uri, ID_SERVER);
    assert_string_equal(zm_tls_peer_id(s)->uri, ID_CLIENT);
    assert_string_equal(zm_tls_peer_id(s)->ns, "default");
    assert_null(zm_tls_error(c));

    uint8_t b[16];
    assert_int_equal(zm_tls_read(s, b, sizeof(b)), ZM_AGAIN);
    transfer(c, s, 1 << 20, 1);
    transfer(s, c, 1 << 20, 2);
    transfer(c, s, 1, 3);

    assert_int_equal(zm_tls_shutdown(c), 0);
    assert_true(ts_move(c, s) > 0);
    assert_int_equal(zm_tls_read(s, b, sizeof(b)), 0);
    assert_int_equal(zm_tls_read(s, b, sizeof(b)), 0);

    zm_tls_free(&c);
    zm_tls_free(&s);
    assert_null(c);
    zm_tls_ctx_unref(&cctx);
    zm_tls_ctx_unref(&sctx);
    assert_null(cctx);
}

/* A handshake one side refuses; returns the pair for further checks. */
typedef struct refusal {
    zm_tls_t *c, *s;
    zm_tls_ctx_t *cctx, *sctx;
    ts_pump_result_t res;
} refusal_t;

static void refusal_run(refusal_t *r, const ts_ident_t *cid, const ts_ident_t *sid,
                        const char *server_td, const char *const *expected)
{
    memset(r, 0, sizeof(*r));
    /* The client accepts the a.local server whatever its own identity, so
     * that the refusal under test is the server's. */
    r->cctx = ts_ctx(cid, false, "a.local");
    r->sctx = ts_ctx(sid, true, server_td);
    connect_pair(r->cctx, r->sctx, expected, &r->c, &r->s, &r->res);
}

static void refusal_free(refusal_t *r)
{
    zm_tls_free(&r->c);
    zm_tls_free(&r->s);
    zm_tls_ctx_unref(&r->cctx);
    zm_tls_ctx_unref(&r->sctx);
}

/* The client's handshake may finish (TLS 1.3 clients are done after their
 * Finished) before the server's refusal arrives: then the next read fails. */
static int client_outcome(refusal_t *r)
{
    if (r->res.client != ZM_OK)
        return r->res.client;
    uint8_t b[16];
    flush_both(r->c, r->s);
    return (int)zm_tls_read(r->c, b, sizeof(b));
}

static void refused_by_server(const ts_ident_t *cid, const char *reason)
{
    refusal_t r;
    refusal_run(&r, cid, &server_id, NULL, NULL);
    assert_int_equal(r.res.server, -EACCES);
    assert_non_null(zm_tls_error(r.s));
    assert_string_equal(zm_tls_error(r.s), reason);
    assert_false(zm_tls_established(r.s));
    assert_null(zm_tls_peer_id(r.s));
    /* The alert reached the client, which fails too. */
    int co = client_outcome(&r);
    assert_true(co < 0 && co != ZM_AGAIN);
    assert_non_null(zm_tls_error(r.c));
    refusal_free(&r);
}

static void refused_trust_domain(void **state)
{
    refused_by_server(&b_client_id, "trust domain mismatch: got b.local want a.local");
}

static void refused_expired(void **state)
{
    refused_by_server(&expired_id, "certificate expired");
}

static void refused_unknown_ca(void **state)
{
    refused_by_server(&foreign_id, "unknown CA");
}

static void refused_no_client_cert(void **state)
{
    zm_err_t err = {0};
    zm_tls_ctx_config_t cfg = {.server = false, .ca_pem = ca.cert_pem};
    zm_tls_ctx_t *cctx = NULL;
    /* Without a certificate the trust domain must be given. */
    assert_int_equal(zm_tls_ctx_new(&cctx, &cfg, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "trust domain"));
    cfg.trust_domain = "a.local";
    assert_int_equal(zm_tls_ctx_new(&cctx, &cfg, &err), 0);
    assert_string_equal(zm_tls_ctx_identity(cctx)->uri, "");

    refusal_t r;
    memset(&r, 0, sizeof(r));
    r.cctx = cctx;
    r.sctx = ts_ctx(&server_id, true, NULL);
    connect_pair(r.cctx, r.sctx, NULL, &r.c, &r.s, &r.res);
    assert_int_equal(r.res.server, -EACCES);
    assert_string_equal(zm_tls_error(r.s), "no client certificate");
    int co = client_outcome(&r);
    assert_true(co < 0 && co != ZM_AGAIN);
    assert_non_null(zm_tls_error(r.c));
    refusal_free(&r);
}

static void allowed_no_client_cert(void **state)
{
    /* An ingress listener with allow_no_client_cert takes anonymous
     * clients: no peer ID on the server side. */
    zm_err_t err = {0};
    zm_tls_ctx_config_t ccfg = {.ca_pem = ca.cert_pem, .trust_domain = "a.local"};
    zm_tls_ctx_config_t scfg = {.server = true,
                                .cert_pem = server_id.cert_pem,
                                .key_pem = server_id.key_pem,
                                .ca_pem = ca.cert_pem,
                                .allow_no_client_cert = true};
    refusal_t r;
    memset(&r, 0, sizeof(r));
    assert_int_equal(zm_tls_ctx_new(&r.cctx, &ccfg, &err), 0);
    assert_int_equal(zm_tls_ctx_new(&r.sctx, &scfg, &err), 0);
    connect_pair(r.cctx, r.sctx, NULL, &r.c, &r.s, &r.res);
    if (r.res.client != ZM_OK || r.res.server != ZM_OK)
        fail_msg("client %d %s, server %d %s", r.res.client, zm_tls_error(r.c), r.res.server,
                 zm_tls_error(r.s));
    assert_null(zm_tls_peer_id(r.s));
    assert_string_equal(zm_tls_peer_id(r.c)->uri, ID_SERVER);
    transfer(r.c, r.s, 1000, 9);
    refusal_free(&r);
}

static void refused_unexpected_server(void **state)
{
    const char *const expected[] = {"spiffe://a.local/ns/default/sa/other", NULL};
    refusal_t r;
    refusal_run(&r, &client_id, &server_id, NULL, expected);
    assert_int_equal(r.res.client, -EACCES);
    assert_string_equal(zm_tls_error(r.c), "unexpected peer identity " ID_SERVER);
    assert_false(zm_tls_established(r.c));
    assert_true(r.res.server < 0 && r.res.server != ZM_AGAIN);
    assert_non_null(zm_tls_error(r.s));
    refusal_free(&r);
}

static void refused_server_other_domain(void **state)
{
    /* The client checks the server's trust domain too. */
    refusal_t r;
    memset(&r, 0, sizeof(r));
    ts_ident_t bs;
    ts_ident_issue(&bs, &ca, "spiffe://b.local/ns/default/sa/server", 0, 0);
    r.cctx = ts_ctx(&client_id, false, NULL);
    r.sctx = ts_ctx(&bs, true, "a.local");
    connect_pair(r.cctx, r.sctx, NULL, &r.c, &r.s, &r.res);
    assert_int_equal(r.res.client, -EACCES);
    assert_string_equal(zm_tls_error(r.c), "trust domain mismatch: got b.local want a.local");
    refusal_free(&r);
    ts_ident_free(&bs);
}

static void spiffe_parse_cases(void **state)
{
    zm_spiffe_id_t id;
    assert_int_equal(zm_spiffe_parse("spiffe://cluster.local/ns/default/sa/bookinfo-ratings", &id),
                     0);
    assert_string_equal(id.trust_domain, "cluster.local");
    assert_string_equal(id.ns, "default");
    assert_string_equal(id.sa, "bookinfo-ratings");
    assert_string_equal(id.uri, "spiffe://cluster.local/ns/default/sa/bookinfo-ratings");
    assert_int_equal(zm_spiffe_parse("spiffe://a/ns/N_1.x/sa/S-2", &id), 0);

    static const char *const bad[] = {
        "",
        "spiffe://",
        "http://a.local/ns/x/sa/y",
        "SPIFFE://a.local/ns/x/sa/y",
        "spiffe:///ns/x/sa/y",
        "spiffe://A.local/ns/x/sa/y",
        "spiffe://a.local:8080/ns/x/sa/y",
        "spiffe://user@a.local/ns/x/sa/y",
        "spiffe://a.local",
        "spiffe://a.local/",
        "spiffe://a.local/ns/x",
        "spiffe://a.local/ns/x/sa/",
        "spiffe://a.local/ns//sa/y",
        "spiffe://a.local/ns/x/sa/y/",
        "spiffe://a.local/ns/x/sa/y/z",
        "spiffe://a.local/ns/x/sb/y",
        "spiffe://a.local/xx/x/sa/y",
        "spiffe://a.local/ns/../sa/y",
        "spiffe://a.local/ns/x/sa/.",
        "spiffe://a.local/ns/x/sa/y?q=1",
        "spiffe://a.local/ns/x/sa/y#f",
        "spiffe://a.local/ns/x%20/sa/y",
        "spiffe://a.local/ns/x/sa/y z",
    };
    for (size_t i = 0; i < ZM_ARRAY_LEN(bad); i++) {
        if (zm_spiffe_parse(bad[i], &id) != -EINVAL)
            fail_msg("accepted %s", bad[i]);
    }
    char longid[400];
    snprintf(longid, sizeof(longid), "spiffe://a.local/ns/x/sa/%0100d", 0);
    assert_int_equal(zm_spiffe_parse(longid, &id), -EINVAL); /* sa segment > 63 */
    assert_int_equal(zm_spiffe_parse(NULL, &id), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spiffe_parse_cases),
        cmocka_unit_test(success),
        cmocka_unit_test(refused_trust_domain),
        cmocka_unit_test(refused_expired),
        cmocka_unit_test(refused_unknown_ca),
        cmocka_unit_test(refused_no_client_cert),
        cmocka_unit_test(allowed_no_client_cert),
        cmocka_unit_test(refused_unexpected_server),
        cmocka_unit_test(refused_server_other_domain),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
