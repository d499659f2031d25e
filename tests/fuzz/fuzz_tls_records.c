/*
 * fuzz_tls_records.c — our TLS 1.3 record layer (tls_record.c) reading what
 * an established peer sends: records of any inner content type (application
 * data, alerts, post-handshake messages such as NewSessionTicket and
 * KeyUpdate, padding), validly protected, some of them damaged on the wire.
 *
 * Each input gets a fresh client/server pair (both on our record layer)
 * handshaken in memory. Input layout: byte 0 the feed slice size (0: all
 * at once), byte 1 the read size (0: 64 KiB), then records, each as
 *   type (1 byte), length (2 bytes, big-endian, cut to what is left and to
 *   2^14), flip (1 byte: 0 leaves the record alone, else the record's byte
 *   at offset flip-1 is xor'ed with 0x5a after sealing), content.
 * The client seals each record; the server is fed the wire bytes as loans
 * (borrow, read, settle, the daemons' way).
 *
 * Properties checked: every read returns data (> 0), ZM_AGAIN, 0 (after
 * close_notify, and then forever) or -EPROTO / -EACCES / -ENOBUFS with a
 * reason, and a failed connection stays failed with the same error; feeds
 * return 0 or -ENOBUFS; the server's output (a KeyUpdate answer) can always
 * be drained.
 *
 * Threading: one thread.
 */
#include "fuzz.h"
#include "tls_int.h"

#include <string.h>

static zm_tls_ctx_t *cctx, *sctx;
static char *ca_cert, *ca_key, *c_cert, *c_key, *s_cert, *s_key;

static void cleanup(void)
{
    zm_tls_ctx_unref(&cctx);
    zm_tls_ctx_unref(&sctx);
    free(ca_cert);
    free(ca_key);
    free(c_cert);
    free(c_key);
    free(s_cert);
    free(s_key);
    zm_tls_global_cleanup();
}

static zm_tls_ctx_t *make_ctx(bool server, char *cert, char *key)
{
    zm_tls_ctx_config_t cfg = {
        .server = server, .cert_pem = cert, .key_pem = key, .ca_pem = ca_cert};
    zm_err_t err;
    zm_tls_ctx_t *ctx = NULL;
    if (zm_tls_ctx_new(&ctx, &cfg, &err) < 0) {
        fprintf(stderr, "fuzz_tls_records: context: %s\n", err.msg);
        abort();
    }
    return ctx;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    zm_err_t err;
    zm_cert_req_t ca = {.common_name = "zm fuzz CA", .is_ca = true};
    zm_cert_req_t c = {.spiffe_id = "spiffe://cluster.local/ns/fuzz/sa/client"};
    zm_cert_req_t s = {.spiffe_id = "spiffe://cluster.local/ns/fuzz/sa/server"};
    if (zm_cert_issue(&ca, NULL, NULL, &ca_cert, &ca_key, &err) < 0 ||
        zm_cert_issue(&c, ca_cert, ca_key, &c_cert, &c_key, &err) < 0 ||
        zm_cert_issue(&s, ca_cert, ca_key, &s_cert, &s_key, &err) < 0) {
        fprintf(stderr, "fuzz_tls_records: certificates: %s\n", err.msg);
        abort();
    }
    cctx = make_ctx(false, c_cert, c_key);
    sctx = make_ctx(true, s_cert, s_key);
    atexit(cleanup);
    return 0;
}

/* Moves a's output into b (copied), bounded rounds. */
static void move(zm_tls_t *a, zm_tls_t *b)
{
    const uint8_t *p;
    size_t n = zm_tls_out(a, &p);
    if (n && zm_tls_feed(b, p, n) == 0)
        zm_tls_out_consume(a, n);
}

static void drain(zm_tls_t *t)
{
    const uint8_t *p;
    size_t n = zm_tls_out(t, &p);
    zm_tls_out_consume(t, n);
    FUZZ_CHECK(zm_tls_out(t, &p) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t slice = data[0] ? data[0] : SIZE_MAX;
    size_t rsize = data[1] ? data[1] : 64 * 1024;
    data += 2;
    size -= 2;

    zm_tls_t *c = NULL, *s = NULL;
    FUZZ_CHECK(zm_tls_new(&c, cctx, NULL) == 0 && zm_tls_new(&s, sctx, NULL) == 0);
    int rc = ZM_AGAIN, rs = ZM_AGAIN;
    for (int i = 0; i < 16 && (rc == ZM_AGAIN || rs == ZM_AGAIN); i++) {
        rc = zm_tls_handshake(c);
        move(c, s);
        rs = zm_tls_handshake(s);
        move(s, c);
    }
    FUZZ_CHECK(rc == ZM_OK && rs == ZM_OK);
    FUZZ_CHECK(zm_tls_own_records(c) && zm_tls_own_records(s));

    /* The client seals the records. */
    while (size >= 4) {
        uint8_t type = data[0], flip = data[3];
        size_t len = (size_t)data[1] << 8 | data[2];
        data += 4;
        size -= 4;
        len = ZM_MIN(ZM_MIN(len, size), (size_t)16384);
        const uint8_t *before;
        size_t at = zm_tls_out(c, &before);
        FUZZ_CHECK(zm__tls_rl_send_record(c, type, data, len) == 0);
        const uint8_t *wire;
        size_t end = zm_tls_out(c, &wire);
        if (flip && (size_t)flip - 1 < end - at)
            ((uint8_t *)wire)[at + flip - 1] ^= 0x5a; /* our own buffer */
        data += len;
        size -= len;
    }

    /* The server reads them in loans. */
    const uint8_t *wire;
    size_t n = zm_tls_out(c, &wire), off = 0;
    uint8_t *copy = malloc(n ? n : 1), *buf = malloc(rsize);
    FUZZ_CHECK(copy && buf);
    if (n)
        memcpy(copy, wire, n);
    zm_tls_out_consume(c, n);
    ssize_t sticky = 1; /* no final answer yet */
    while (off < n) {
        size_t k = ZM_MIN(slice, n - off);
        int f = zm_tls_feed_borrow(s, copy + off, k);
        FUZZ_CHECK(f == 0 || f == -ENOBUFS);
        off += k;
        for (int guard = 0; guard < 100000; guard++) {
            ssize_t r = zm_tls_read(s, buf, rsize);
            if (r == ZM_AGAIN)
                break;
            if (r > 0) {
                FUZZ_CHECK(sticky == 1 && (size_t)r <= rsize);
                continue;
            }
            FUZZ_CHECK(r == 0 || r == -EPROTO || r == -EACCES || r == -ENOBUFS);
            if (sticky != 1)
                FUZZ_CHECK(r == sticky);
            if (r < 0)
                FUZZ_CHECK(zm_tls_error(s) && zm_tls_error(s)[0]);
            sticky = r;
            break;
        }
        int st = zm_tls_feed_settle(s);
        FUZZ_CHECK(st == 0 || st == -ENOBUFS);
        drain(s);
    }
    free(copy);
    free(buf);
    zm_tls_free(&c);
    zm_tls_free(&s);
    return 0;
}
