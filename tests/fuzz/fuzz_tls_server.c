/*
 * fuzz_tls_server.c — a server zm_tls_t fed arbitrary client bytes
 * (ClientHello, later flights, alerts, garbage).
 *
 * Input layout: byte 0 chooses the server context (bit 0 clear: the mesh's
 * strict TLS 1.3 mTLS server; set: TLS 1.2 allowed, no client certificate
 * required, as an ingress gateway's public listener), byte 1 the feed chunk
 * size (0: everything at once), the rest is what the client sent. The CA,
 * the server certificate and both contexts are made once
 * (LLVMFuzzerInitialize) and freed at exit.
 *
 * Properties checked: zm_tls_feed returns 0 or -ENOBUFS; zm_tls_handshake
 * returns ZM_OK, ZM_AGAIN, -EACCES or -EPROTO, and once it failed it keeps
 * returning the same error with a reason in zm_tls_error; the output
 * buffer can always be drained. A transcript recorded from a real client
 * cannot complete (the server's random differs), so reaching ZM_OK is not
 * expected but not an error either: the driver then reads plaintext.
 *
 * Threading: one thread.
 */
#include "fuzz.h"
#include "tls.h"

#include <stdbool.h>
#include <string.h>

#define SERVER_ID "spiffe://cluster.local/ns/fuzz/sa/server"

static zm_tls_ctx_t *ctx_strict, *ctx_lax;
static char *ca_cert, *ca_key, *srv_cert, *srv_key;

static void cleanup(void)
{
    zm_tls_ctx_unref(&ctx_strict);
    zm_tls_ctx_unref(&ctx_lax);
    free(ca_cert);
    free(ca_key);
    free(srv_cert);
    free(srv_key);
    zm_tls_global_cleanup();
}

static zm_tls_ctx_t *make_ctx(bool lax)
{
    zm_tls_ctx_config_t cfg = {
        .server = true,
        .cert_pem = srv_cert,
        .key_pem = srv_key,
        .ca_pem = ca_cert,
        .allow_no_client_cert = lax,
        .allow_tls12 = lax,
    };
    zm_err_t err;
    zm_tls_ctx_t *ctx = NULL;
    if (zm_tls_ctx_new(&ctx, &cfg, &err) < 0) {
        fprintf(stderr, "fuzz_tls_server: context: %s\n", err.msg);
        abort();
    }
    return ctx;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    zm_err_t err;
    zm_cert_req_t ca = {.common_name = "zm fuzz CA", .is_ca = true};
    zm_cert_req_t srv = {.spiffe_id = SERVER_ID, .common_name = "server"};
    if (zm_cert_issue(&ca, NULL, NULL, &ca_cert, &ca_key, &err) < 0 ||
        zm_cert_issue(&srv, ca_cert, ca_key, &srv_cert, &srv_key, &err) < 0) {
        fprintf(stderr, "fuzz_tls_server: certificates: %s\n", err.msg);
        abort();
    }
    ctx_strict = make_ctx(false);
    ctx_lax = make_ctx(true);
    atexit(cleanup);
    return 0;
}

static void drain(zm_tls_t *t)
{
    const uint8_t *p = NULL;
    size_t n = zm_tls_out(t, &p);
    if (n) {
        FUZZ_CHECK(p);
        volatile uint8_t last = p[n - 1]; /* the bytes must be readable */
        (void)last;
        zm_tls_out_consume(t, n);
    }
    FUZZ_CHECK(zm_tls_out(t, &p) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    zm_tls_ctx_t *ctx = (data[0] & 1) ? ctx_lax : ctx_strict;
    size_t chunk = data[1] ? data[1] : size;
    data += 2;
    size -= 2;

    zm_tls_t *t = NULL;
    FUZZ_CHECK(zm_tls_new(&t, ctx, NULL) == 0);
    int rc = zm_tls_handshake(t); /* a server waits for the ClientHello */
    FUZZ_CHECK(rc == ZM_AGAIN);
    size_t off = 0;
    while (off < size) {
        size_t n = ZM_MIN(chunk, size - off);
        int f = zm_tls_feed(t, data + off, n);
        FUZZ_CHECK(f == 0 || f == -ENOBUFS);
        off += n;
        int r = zm_tls_handshake(t);
        FUZZ_CHECK(r == ZM_OK || r == ZM_AGAIN || r == -EACCES || r == -EPROTO);
        if (rc < 0 && rc != ZM_AGAIN)
            FUZZ_CHECK(r == rc); /* failed stays failed */
        rc = r;
        drain(t);
        if (rc < 0 && rc != ZM_AGAIN) {
            const char *why = zm_tls_error(t);
            FUZZ_CHECK(why && why[0]);
        }
        if (rc == ZM_OK) {
            uint8_t buf[512];
            ssize_t got;
            while ((got = zm_tls_read(t, buf, sizeof(buf))) > 0)
                ;
            drain(t);
        }
    }
    FUZZ_CHECK(!zm_tls_established(t) || rc == ZM_OK);
    zm_tls_free(&t);
    FUZZ_CHECK(t == NULL);
    return 0;
}
