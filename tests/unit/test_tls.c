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
    assert_int_equal(co, -EACCES);
    assert_non_null(strstr(zm_tls_error(r.c), "peer refused our certificate"));
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
    if (co != -EACCES)
        fail_msg("client %d %s", co, zm_tls_error(r.c));
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
    /* The server learns from the alert that its certificate was refused. */
    assert_int_equal(r.res.server, -EACCES);
    assert_non_null(strstr(zm_tls_error(r.s), "peer refused our certificate"));
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

static void write_file(const char *dir, const char *name, const char *content)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    /* Write a new file and rename over the old one, as cert managers do:
     * the inode changes even if size and mtime second do not. */
    char tmp[520];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    assert_int_equal(fputs(content, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, path), 0);
}

static void remove_file(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    unlink(path);
}

static void slot_reload(void **state)
{
    char dir[] = "/tmp/zm_tls_test_XXXXXX";
    assert_non_null(mkdtemp(dir));
    write_file(dir, "cert.pem", server_id.cert_pem);
    write_file(dir, "key.pem", server_id.key_pem);
    write_file(dir, "ca.pem", ca.cert_pem);
    char cf[600], kf[600], af[600];
    snprintf(cf, sizeof(cf), "%s/cert.pem", dir);
    snprintf(kf, sizeof(kf), "%s/key.pem", dir);
    snprintf(af, sizeof(af), "%s/ca.pem", dir);
    zm_tls_ctx_config_t scfg = {.server = true, .cert_file = cf, .key_file = kf, .ca_file = af};
    zm_err_t err = {0};
    zm_tls_slot_t *slot = NULL;
    assert_int_equal(zm_tls_slot_new(&slot, &scfg, &err), 0);
    assert_int_equal(zm_tls_slot_reload(slot, &err), 0); /* unchanged */

    zm_tls_ctx_t *cctx = ts_ctx(&client_id, false, NULL);
    zm_tls_ctx_t *old = zm_tls_slot_get(slot);
    assert_string_equal(zm_tls_ctx_identity(old)->uri, ID_SERVER);
    zm_tls_t *c1, *s1;
    ts_pump_result_t res;
    connect_pair(cctx, old, NULL, &c1, &s1, &res);
    assert_int_equal(res.client, ZM_OK);
    assert_int_equal(res.server, ZM_OK);
    zm_tls_ctx_unref(&old); /* s1 keeps it alive */

    /* New identity on disk. */
    ts_ident_t next;
    ts_ident_issue(&next, &ca, "spiffe://a.local/ns/default/sa/server2", 0, 0);
    write_file(dir, "cert.pem", next.cert_pem);
    write_file(dir, "key.pem", next.key_pem);
    assert_int_equal(zm_tls_slot_reload(slot, &err), 1);
    assert_int_equal(zm_tls_slot_reload(slot, &err), 0);

    zm_tls_ctx_t *cur = zm_tls_slot_get(slot);
    assert_string_equal(zm_tls_ctx_identity(cur)->uri, "spiffe://a.local/ns/default/sa/server2");
    zm_tls_t *c2, *s2;
    connect_pair(cctx, cur, NULL, &c2, &s2, &res);
    assert_int_equal(res.client, ZM_OK);
    assert_int_equal(res.server, ZM_OK);
    assert_string_equal(zm_tls_peer_id(c2)->uri, "spiffe://a.local/ns/default/sa/server2");
    zm_tls_ctx_unref(&cur);

    /* The old connection still works on the old context, both ways. */
    transfer(c1, s1, 100000, 5);
    transfer(s1, c1, 100000, 6);
    assert_string_equal(zm_tls_peer_id(c1)->uri, ID_SERVER);
    zm_tls_free(&s1); /* drops the last reference to the old context */
    zm_tls_free(&c1);

    /* Broken files: the reload fails and the current context stays. */
    write_file(dir, "key.pem",
               "-----BEGIN EC PRIVATE KEY-----\ngarbage\n"
               "-----END EC PRIVATE KEY-----\n");
    assert_true(zm_tls_slot_reload(slot, &err) < 0);
    assert_non_null(strstr(err.file, "key.pem"));
    cur = zm_tls_slot_get(slot);
    assert_string_equal(zm_tls_ctx_identity(cur)->uri, "spiffe://a.local/ns/default/sa/server2");
    zm_tls_ctx_unref(&cur);
    /* A key that belongs to another certificate is refused as well. */
    write_file(dir, "key.pem", server_id.key_pem);
    assert_true(zm_tls_slot_reload(slot, &err) < 0);
    assert_non_null(strstr(err.msg, "does not match"));
    remove_file(dir, "key.pem");
    assert_true(zm_tls_slot_reload(slot, &err) < 0);
    /* Fixed files are picked up. */
    write_file(dir, "key.pem", next.key_pem);
    assert_int_equal(zm_tls_slot_reload(slot, &err), 1);

    transfer(c2, s2, 1000, 7);
    zm_tls_free(&c2);
    zm_tls_free(&s2);
    zm_tls_slot_free(&slot);
    assert_null(slot);
    zm_tls_ctx_unref(&cctx);
    ts_ident_free(&next);
    remove_file(dir, "cert.pem");
    remove_file(dir, "key.pem");
    remove_file(dir, "ca.pem");
    assert_int_equal(rmdir(dir), 0);
}

static void ctx_errors(void **state)
{
    zm_err_t err = {0};
    zm_tls_ctx_t *c = NULL;
    zm_tls_ctx_config_t cfg = {.server = true,
                               .cert_file = "/nonexistent/cert.pem",
                               .key_pem = server_id.key_pem,
                               .ca_pem = ca.cert_pem};
    assert_int_equal(zm_tls_ctx_new(&c, &cfg, &err), -EINVAL);
    assert_string_equal(err.file, "/nonexistent/cert.pem");
    assert_null(c);
    /* A certificate without a SPIFFE ID needs a configured trust domain. */
    ts_ident_t plain;
    ts_ident_issue(&plain, &ca, NULL, 0, 0);
    zm_tls_ctx_config_t p = {.server = true,
                             .cert_pem = plain.cert_pem,
                             .key_pem = plain.key_pem,
                             .ca_pem = ca.cert_pem};
    assert_int_equal(zm_tls_ctx_new(&c, &p, &err), -EINVAL);
    p.trust_domain = "a.local";
    assert_int_equal(zm_tls_ctx_new(&c, &p, &err), 0);
    zm_tls_ctx_unref(&c);
    /* A client refuses a server whose certificate has no URI SAN. */
    refusal_t r;
    memset(&r, 0, sizeof(r));
    r.cctx = ts_ctx(&client_id, false, NULL);
    assert_int_equal(zm_tls_ctx_new(&r.sctx, &p, &err), 0);
    connect_pair(r.cctx, r.sctx, NULL, &r.c, &r.s, &r.res);
    assert_int_equal(r.res.client, -EACCES);
    assert_string_equal(zm_tls_error(r.c), "peer certificate has no URI SAN");
    refusal_free(&r);
    ts_ident_free(&plain);
}

static void alpn_mismatch(void **state)
{
    zm_err_t err = {0};
    zm_tls_ctx_config_t ccfg = {.cert_pem = client_id.cert_pem,
                                .key_pem = client_id.key_pem,
                                .ca_pem = ca.cert_pem,
                                .alpn = "http/1.1"};
    refusal_t r;
    memset(&r, 0, sizeof(r));
    assert_int_equal(zm_tls_ctx_new(&r.cctx, &ccfg, &err), 0);
    r.sctx = ts_ctx(&server_id, true, NULL);
    connect_pair(r.cctx, r.sctx, NULL, &r.c, &r.s, &r.res);
    assert_true(r.res.server < 0 && r.res.server != ZM_AGAIN);
    assert_true(r.res.client < 0 && r.res.client != ZM_AGAIN);
    assert_false(zm_tls_established(r.s));
    refusal_free(&r);
}

static void input_is_bounded(void **state)
{
    zm_tls_ctx_t *sctx = ts_ctx(&server_id, true, NULL);
    zm_tls_t *s;
    assert_int_equal(zm_tls_new(&s, sctx, NULL), 0);
    static uint8_t junk[64 * 1024];
    int r = 0;
    for (int i = 0; i < 8 && r == 0; i++)
        r = zm_tls_feed(s, junk, sizeof(junk));
    assert_int_equal(r, -ENOBUFS);
    /* Garbage is a protocol error, not a refusal. */
    assert_int_equal(zm_tls_handshake(s), -EPROTO);
    assert_int_equal(zm_tls_handshake(s), -EPROTO);
    assert_non_null(zm_tls_error(s));
    zm_tls_free(&s);
    zm_tls_ctx_unref(&sctx);
}

/* The sink test's "socket": takes records until told to refuse. */
typedef struct sink_cap {
    uint8_t *p;
    size_t len, cap;
    unsigned calls;
    bool refuse;
} sink_cap_t;

static int cap_sink(void *ctx, const uint8_t *p, size_t n)
{
    sink_cap_t *k = ctx;
    k->calls++;
    if (k->refuse || k->len + n > k->cap)
        return -ENOBUFS;
    memcpy(k->p + k->len, p, n);
    k->len += n;
    return 0;
}

static void cap_take_out(sink_cap_t *k, zm_tls_t *t)
{
    const uint8_t *p;
    size_t n = zm_tls_out(t, &p);
    assert_true(k->len + n <= k->cap);
    if (n)
        memcpy(k->p + k->len, p, n);
    k->len += n;
    zm_tls_out_consume(t, n);
}

static void sink_and_borrow(void **state)
{
    zm_tls_ctx_t *cctx = ts_ctx(&client_id, false, NULL), *sctx = ts_ctx(&server_id, true, NULL);
    zm_tls_t *c, *s;
    ts_pump_result_t res;
    connect_pair(cctx, sctx, NULL, &c, &s, &res);
    assert_int_equal(res.client, ZM_OK);
    assert_int_equal(res.server, ZM_OK);
    flush_both(c, s);

    static uint8_t plain[96 * 1024], got[96 * 1024], wire[128 * 1024];
    for (size_t i = 0; i < sizeof(plain); i++)
        plain[i] = (uint8_t)(i * 7 + (i >> 9));
    sink_cap_t k = {.p = wire, .cap = sizeof(wire)};
    zm_tls_set_sink(c, cap_sink, &k);
    /* Accepted: nothing left in the output buffer. */
    assert_int_equal(zm_tls_write(c, plain, 40000), 40000);
    assert_true(k.calls >= 3);
    const uint8_t *p;
    assert_int_equal(zm_tls_out(c, &p), 0);
    /* Refused: buffered instead, and a failure for nobody. */
    k.refuse = true;
    assert_int_equal(zm_tls_write(c, plain + 40000, 40000), 40000);
    assert_true(zm_tls_out(c, &p) > 40000);
    /* Willing again, but older bytes wait in the buffer: newer ones queue
     * behind them instead of overtaking through the sink. */
    k.refuse = false;
    unsigned calls = k.calls;
    assert_int_equal(zm_tls_write(c, plain + 80000, sizeof(plain) - 80000),
                     (ssize_t)(sizeof(plain) - 80000));
    assert_int_equal(k.calls, calls);
    cap_take_out(&k, c);

    /* The receiver reads the wire in place, in uneven slices that cut
     * records; settle keeps the partial record for the next slice. */
    size_t off = 0, n_got = 0;
    while (off < k.len) {
        size_t n = ZM_MIN(k.len - off, (size_t)7001);
        assert_int_equal(zm_tls_feed_borrow(s, wire + off, n), 0);
        off += n;
        for (;;) {
            ssize_t r = zm_tls_read(s, got + n_got, sizeof(got) - n_got);
            if (r == ZM_AGAIN)
                break;
            assert_true(r > 0);
            n_got += (size_t)r;
        }
        assert_int_equal(zm_tls_feed_settle(s), 0);
    }
    assert_int_equal(n_got, sizeof(plain));
    assert_memory_equal(got, plain, sizeof(plain));
    zm_tls_free(&c);
    zm_tls_free(&s);

    /* Borrowed bytes left unread count against the input bound at settle;
     * borrowing twice settles the first loan. */
    assert_int_equal(zm_tls_new(&s, sctx, NULL), 0);
    static uint8_t junk[200 * 1024];
    assert_int_equal(zm_tls_feed_borrow(s, junk, sizeof(junk)), 0);
    assert_int_equal(zm_tls_feed_borrow(s, junk, sizeof(junk)), 0);
    assert_int_equal(zm_tls_feed_settle(s), -ENOBUFS);
    assert_int_equal(zm_tls_feed_settle(s), 0); /* nothing lent any more */
    zm_tls_free(&s);
    zm_tls_ctx_unref(&cctx);
    zm_tls_ctx_unref(&sctx);
}

static void issued_chain_verifies(void **state)
{
    /* The issued leaf verifies against its CA with wolfSSL's own certificate
     * manager (openssl verify accepts it as well; checked in development). */
    zm_err_t err = {0};
    char *cert, *key;
    zm_cert_req_t req = {.spiffe_id = ID_CLIENT, .common_name = "x"};
    assert_int_equal(zm_cert_issue(&req, ca.cert_pem, ca.key_pem, &cert, &key, &err), 0);
    assert_non_null(strstr(cert, "-----BEGIN CERTIFICATE-----"));
    assert_non_null(strstr(key, "PRIVATE KEY-----"));
    assert_true(ts_verify_chain(ca.cert_pem, cert) == 0);
    assert_true(ts_verify_chain(other_ca.cert_pem, cert) != 0);
    free(cert);
    free(key);
    /* Mismatched CA arguments. */
    assert_int_equal(zm_cert_issue(&req, ca.cert_pem, NULL, &cert, &key, &err), -EINVAL);
    assert_int_equal(zm_cert_issue(&req, "junk", ca.key_pem, &cert, &key, &err), -EINVAL);
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
        cmocka_unit_test(slot_reload),
        cmocka_unit_test(ctx_errors),
        cmocka_unit_test(alpn_mismatch),
        cmocka_unit_test(input_is_bounded),
        cmocka_unit_test(sink_and_borrow),
        cmocka_unit_test(issued_chain_verifies),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
