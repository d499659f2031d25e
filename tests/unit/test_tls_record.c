/*
 * Unit tests of tls_record.c, our TLS 1.3 record layer, in memory. wolfSSL's
 * own record layer (kept by a context with wolfssl_records) is the
 * independent implementation every case talks to: our records must be ones
 * it accepts, and the post-handshake messages it sends (KeyUpdate,
 * NewSessionTicket) ones we handle.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls_int.h"
#include "tls_support.h"

static ts_ca_t ca;
static ts_ident_t client_id, server_id;

static int setup_all(void **state)
{
    (void)state;
    ts_ca_make(&ca, "record CA");
    ts_ident_issue(&client_id, &ca, "spiffe://a.local/ns/default/sa/client", 0, 0);
    ts_ident_issue(&server_id, &ca, "spiffe://a.local/ns/default/sa/server", 0, 0);
    return 0;
}

static int teardown_all(void **state)
{
    (void)state;
    ts_ident_free(&client_id);
    ts_ident_free(&server_id);
    ts_ca_free(&ca);
    zm_tls_global_cleanup();
    return 0;
}

typedef struct pair {
    zm_tls_ctx_t *cctx, *sctx;
    zm_tls_t *c, *s;
} pair_t;

static zm_tls_ctx_t *ctx_of(const ts_ident_t *id, bool server, bool wolfssl_records,
                            const char *ciphers)
{
    zm_err_t err = {0};
    zm_tls_ctx_config_t cfg = {.server = server,
                               .cert_pem = id->cert_pem,
                               .key_pem = id->key_pem,
                               .ca_pem = id->ca_pem,
                               .ciphers = ciphers,
                               .wolfssl_records = wolfssl_records};
    zm_tls_ctx_t *ctx = NULL;
    if (zm_tls_ctx_new(&ctx, &cfg, &err) < 0)
        fail_msg("context: %s", err.msg);
    return ctx;
}

static void pair_open(pair_t *p, bool client_wolfssl, bool server_wolfssl, const char *ciphers)
{
    p->cctx = ctx_of(&client_id, false, client_wolfssl, ciphers);
    p->sctx = ctx_of(&server_id, true, server_wolfssl, ciphers);
    assert_int_equal(zm_tls_new(&p->c, p->cctx, NULL), 0);
    assert_int_equal(zm_tls_new(&p->s, p->sctx, NULL), 0);
    ts_pump_result_t res = ts_pump(p->c, p->s);
    assert_int_equal(res.client, ZM_OK);
    assert_int_equal(res.server, ZM_OK);
}

static void pair_close(pair_t *p)
{
    zm_tls_free(&p->c);
    zm_tls_free(&p->s);
    zm_tls_ctx_unref(&p->cctx);
    zm_tls_ctx_unref(&p->sctx);
}

/* Hands everything `from` has queued to `to` as loans of `slice` bytes
 * (borrow, read, settle: the way the daemons feed it), reading plaintext in
 * reads of at most `rsize` bytes into got. Returns the plaintext length, or
 * the first read error. */
static ssize_t deliver(zm_tls_t *from, zm_tls_t *to, size_t slice, size_t rsize, uint8_t *got,
                       size_t cap)
{
    const uint8_t *p;
    size_t n = zm_tls_out(from, &p);
    uint8_t *wire = malloc(n ? n : 1);
    assert_non_null(wire);
    if (n)
        memcpy(wire, p, n);
    zm_tls_out_consume(from, n);
    size_t total = 0;
    ssize_t rc = 0;
    for (size_t off = 0; off < n && rc >= 0; off += slice) {
        size_t k = ZM_MIN(slice, n - off);
        assert_int_equal(zm_tls_feed_borrow(to, wire + off, k), 0);
        for (;;) {
            assert_true(total < cap);
            ssize_t r = zm_tls_read(to, got + total, ZM_MIN(rsize, cap - total));
            if (r == ZM_AGAIN)
                break;
            if (r <= 0) {
                rc = r;
                break;
            }
            total += (size_t)r;
        }
        assert_int_equal(zm_tls_feed_settle(to), 0);
    }
    free(wire);
    return rc < 0 ? rc : (ssize_t)total;
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

/* n bytes from -> to, written in pieces of `wsize`, delivered in loans of
 * `slice`, read in reads of `rsize`: they must arrive intact. */
static void transfer(zm_tls_t *from, zm_tls_t *to, size_t n, size_t wsize, size_t slice,
                     size_t rsize)
{
    uint8_t *sent = malloc(n), *got = malloc(n + 1);
    assert_non_null(sent);
    assert_non_null(got);
    fill(sent, n, (uint32_t)(n ^ wsize ^ slice));
    size_t done = 0, recvd = 0;
    while (done < n) {
        size_t k = ZM_MIN(wsize, n - done);
        assert_int_equal(zm_tls_write(from, sent + done, k), (ssize_t)k);
        done += k;
        if (done == n || done % (256 * 1024) < wsize) {
            ssize_t r = deliver(from, to, slice, rsize, got + recvd, n + 1 - recvd);
            assert_true(r >= 0);
            recvd += (size_t)r;
        }
    }
    assert_int_equal(recvd, n);
    assert_memory_equal(sent, got, n);
    free(sent);
    free(got);
}

static void records_interoperate(void **state)
{
    (void)state;
    for (int mode = 0; mode < 4; mode++) {
        bool cw = mode & 1, sw = mode & 2;
        pair_t p;
        pair_open(&p, cw, sw, NULL);
        assert_int_equal(zm_tls_own_records(p.c), !cw);
        assert_int_equal(zm_tls_own_records(p.s), !sw);
        transfer(p.c, p.s, 1 << 20, 48 * 1024, 64 * 1024, 32 * 1024);
        transfer(p.s, p.c, 1 << 20, 16 * 1024 + 1, 9000, 64 * 1024);
        transfer(p.c, p.s, 1, 1, 1, 1);
        /* close_notify from either implementation reads as end of stream */
        uint8_t b[8];
        assert_int_equal(zm_tls_shutdown(p.c), 0);
        assert_int_equal(deliver(p.c, p.s, 4096, sizeof(b), b, sizeof(b)), 0);
        assert_int_equal(zm_tls_read(p.s, b, sizeof(b)), 0);
        pair_close(&p);
    }
}

static void suites(void **state)
{
    (void)state;
    pair_t p;
    pair_open(&p, false, true, "TLS13-AES256-GCM-SHA384");
    assert_true(zm_tls_own_records(p.c));
    transfer(p.c, p.s, 300000, 70000, 20000, 20000);
    transfer(p.s, p.c, 300000, 70000, 20000, 20000);
    pair_close(&p);
    /* ChaCha20-Poly1305 stays with wolfSSL, and works */
    pair_open(&p, false, false, "TLS13-CHACHA20-POLY1305-SHA256");
    assert_false(zm_tls_own_records(p.c));
    assert_false(zm_tls_own_records(p.s));
    transfer(p.c, p.s, 100000, 5000, 3000, 3000);
    pair_close(&p);
}

static void odd_slices_and_small_reads(void **state)
{
    (void)state;
    static const size_t slices[] = {1, 7, 1000, 16405, 16406, 17000, 100000};
    static const size_t reads[] = {1, 100, 16383, 16384, 40000};
    pair_t p;
    pair_open(&p, true, false, NULL);
    for (size_t i = 0; i < ZM_ARRAY_LEN(slices); i++)
        for (size_t j = 0; j < ZM_ARRAY_LEN(reads); j++)
            transfer(p.c, p.s, 40000, 16384, slices[i], reads[j]);
    pair_close(&p);
}

/* The wolfSSL side asks for a key update: we must switch our receive keys,
 * answer with our own KeyUpdate and switch our send keys. */
static void key_update_from_peer(void **state)
{
    (void)state;
    for (int server_updates = 0; server_updates < 2; server_updates++) {
        pair_t p;
        pair_open(&p, !server_updates, server_updates, NULL);
        zm_tls_t *wolf = server_updates ? p.s : p.c, *ours = server_updates ? p.c : p.s;
        assert_true(zm_tls_own_records(ours));
        transfer(wolf, ours, 5000, 5000, 5000, 5000);
        assert_int_equal(wolfSSL_update_keys(wolf->ssl), WOLFSSL_SUCCESS);
        uint8_t b[64];
        assert_int_equal(deliver(wolf, ours, 100, sizeof(b), b, sizeof(b)), 0);
        const uint8_t *q;
        assert_true(zm_tls_out(ours, &q) > 0); /* our KeyUpdate answer */
        for (int round = 0; round < 3; round++) {
            transfer(ours, wolf, 70000, 9000, 4000, 1000);
            transfer(wolf, ours, 70000, 9000, 4000, 1000);
        }
        pair_close(&p);
    }
}

static void session_ticket_ignored(void **state)
{
    (void)state;
    pair_t p;
    pair_open(&p, false, true, NULL);
    assert_int_equal(wolfSSL_send_SessionTicket(p.s->ssl), WOLFSSL_SUCCESS);
    uint8_t b[64];
    assert_int_equal(deliver(p.s, p.c, 50, sizeof(b), b, sizeof(b)), 0);
    transfer(p.s, p.c, 30000, 30000, 30000, 30000);
    transfer(p.c, p.s, 30000, 30000, 30000, 30000);
    pair_close(&p);
}

static void tampered_record_refused(void **state)
{
    (void)state;
    pair_t p;
    pair_open(&p, true, false, NULL);
    assert_int_equal(zm_tls_write(p.c, (const uint8_t *)"hello", 5), 5);
    const uint8_t *q;
    size_t n = zm_tls_out(p.c, &q);
    uint8_t wire[64];
    assert_true(n > 10 && n <= sizeof(wire));
    memcpy(wire, q, n);
    wire[7] ^= 0x40;
    assert_int_equal(zm_tls_feed(p.s, wire, n), 0);
    uint8_t b[64];
    assert_int_equal(zm_tls_read(p.s, b, sizeof(b)), -EPROTO);
    assert_non_null(strstr(zm_tls_error(p.s), "bad_record_mac"));
    assert_int_equal(zm_tls_read(p.s, b, sizeof(b)), -EPROTO); /* sticky */
    assert_true(zm_tls_write(p.s, b, 1) < 0);
    pair_close(&p);
}

static void malformed_headers_refused(void **state)
{
    (void)state;
    static const uint8_t bad[][5] = {
        {22, 3, 3, 0, 40},      /* handshake type after the handshake */
        {23, 3, 1, 0, 40},      /* wrong legacy version */
        {23, 3, 3, 0, 16},      /* shorter than a tag and a type */
        {23, 3, 3, 0x41, 0x01}, /* longer than 2^14 + 256 */
    };
    for (size_t i = 0; i < ZM_ARRAY_LEN(bad); i++) {
        pair_t p;
        pair_open(&p, true, false, NULL);
        assert_int_equal(zm_tls_feed(p.s, bad[i], sizeof(bad[i])), 0);
        uint8_t b[16];
        assert_int_equal(zm_tls_read(p.s, b, sizeof(b)), -EPROTO);
        assert_non_null(strstr(zm_tls_error(p.s), "malformed"));
        pair_close(&p);
    }
}

/* Pieces written with zm_tls_writev arrive as one stream, whichever side
 * keeps which record layer. */
static void writev_pieces(void **state)
{
    (void)state;
    static uint8_t src[100000], got[100001];
    fill(src, sizeof(src), 99);
    static const size_t cuts[] = {9, 16375, 1, 30000, 0, 20000, 33615};
    for (int mode = 0; mode < 2; mode++) {
        pair_t p;
        pair_open(&p, mode, !mode, NULL);
        struct iovec iov[ZM_ARRAY_LEN(cuts)];
        size_t off = 0;
        for (size_t i = 0; i < ZM_ARRAY_LEN(cuts); i++) {
            iov[i] = (struct iovec){src + off, cuts[i]};
            off += cuts[i];
        }
        assert_int_equal(off, sizeof(src));
        assert_int_equal(zm_tls_writev(p.c, iov, (int)ZM_ARRAY_LEN(iov)), (ssize_t)sizeof(src));
        assert_int_equal(deliver(p.c, p.s, 65536, sizeof(got), got, sizeof(got)),
                         (ssize_t)sizeof(src));
        assert_memory_equal(got, src, sizeof(src));
        pair_close(&p);
    }
}

/* A sink with room for `room` bytes at a time, or none while closed. */
typedef struct space {
    uint8_t buf[256 * 1024];
    size_t len, room;
    bool open;
} space_t;

static uint8_t *space_reserve(void *ctx, size_t min, size_t *avail)
{
    space_t *s = ctx;
    *avail = 0;
    if (!s->open || min > s->room || s->len + s->room > sizeof(s->buf))
        return NULL;
    *avail = s->room;
    return s->buf + s->len;
}

static void space_commit(void *ctx, size_t n)
{
    space_t *s = ctx;
    assert_true(n <= s->room);
    s->len += n;
}

/* Records go into the sink's space when it has some, into the output buffer
 * when not, and never overtake what waits there. */
static void sink_space_keeps_order(void **state)
{
    (void)state;
    static space_t sp;
    memset(&sp, 0, sizeof(sp));
    pair_t p;
    pair_open(&p, false, true, NULL);
    zm_tls_set_sink_space(p.c, space_reserve, space_commit, &sp);
    uint8_t msg[3][30000];
    for (int i = 0; i < 3; i++)
        fill(msg[i], sizeof(msg[i]), (uint32_t)i + 7);
    sp.open = true;
    sp.room = 5000; /* records cut to the room: 4978 bytes of content each */
    assert_int_equal(zm_tls_write(p.c, msg[0], sizeof(msg[0])), (ssize_t)sizeof(msg[0]));
    const uint8_t *q;
    assert_int_equal(zm_tls_out(p.c, &q), 0);
    assert_int_equal(sp.len, 30000 + 7 * 22);
    sp.open = false;
    assert_int_equal(zm_tls_write(p.c, msg[1], sizeof(msg[1])), (ssize_t)sizeof(msg[1]));
    sp.open = true;
    assert_int_equal(zm_tls_write(p.c, msg[2], sizeof(msg[2])), (ssize_t)sizeof(msg[2]));
    size_t queued = zm_tls_out(p.c, &q);
    assert_true(queued > 60000); /* msg[2] waited behind msg[1] */
    /* The wire: the sink's bytes, then the output buffer's. */
    uint8_t *wire = malloc(sp.len + queued), got[90001];
    memcpy(wire, sp.buf, sp.len);
    memcpy(wire + sp.len, q, queued);
    assert_int_equal(zm_tls_feed(p.s, wire, sp.len + queued), 0);
    size_t total = 0;
    for (;;) {
        ssize_t r = zm_tls_read(p.s, got + total, sizeof(got) - total);
        if (r == ZM_AGAIN)
            break;
        assert_true(r > 0);
        total += (size_t)r;
    }
    assert_int_equal(total, 90000);
    assert_memory_equal(got, msg, 90000);
    free(wire);
    pair_close(&p);
}

/* The same record-layer cases again with wolfCrypt's AES-GCM, where the
 * build otherwise uses ipsec-mb's: both engines must stay correct. */
static int use_wolfcrypt(void **state)
{
    (void)state;
    zm__tls_gcm_use_wolfcrypt(true);
    return 0;
}

static int use_default(void **state)
{
    (void)state;
    zm__tls_gcm_use_wolfcrypt(false);
    return 0;
}

static void engine_named(void **state)
{
    (void)state;
    const char *e = zm__tls_gcm_engine();
#if ZM_HAVE_IPSEC_MB
    print_message("record layer AES-GCM: %s\n", e);
    assert_true(!strcmp(e, "ipsec-mb") || !strcmp(e, "wolfcrypt"));
#else
    assert_string_equal(e, "wolfcrypt");
#endif
    zm__tls_gcm_use_wolfcrypt(true);
    assert_string_equal(zm__tls_gcm_engine(), "wolfcrypt");
    zm__tls_gcm_use_wolfcrypt(false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(engine_named),
        cmocka_unit_test_setup_teardown(records_interoperate, use_wolfcrypt, use_default),
        cmocka_unit_test_setup_teardown(suites, use_wolfcrypt, use_default),
        cmocka_unit_test_setup_teardown(key_update_from_peer, use_wolfcrypt, use_default),
        cmocka_unit_test_setup_teardown(tampered_record_refused, use_wolfcrypt, use_default),
        cmocka_unit_test_setup_teardown(writev_pieces, use_wolfcrypt, use_default),
        cmocka_unit_test(records_interoperate),
        cmocka_unit_test(suites),
        cmocka_unit_test(odd_slices_and_small_reads),
        cmocka_unit_test(key_update_from_peer),
        cmocka_unit_test(session_ticket_ignored),
        cmocka_unit_test(tampered_record_refused),
        cmocka_unit_test(malformed_headers_refused),
        cmocka_unit_test(sink_space_keeps_order),
        cmocka_unit_test(writev_pieces),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
