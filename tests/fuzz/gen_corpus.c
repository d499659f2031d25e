/*
 * gen_corpus.c — writes the binary seed corpora of the HBONE and TLS fuzz
 * drivers by running the real endpoints in memory and recording what each
 * side sent.
 *
 *   fuzz_gen_corpus tests/fuzz/corpus
 *
 * writes the files of <dir>/hbone_server, <dir>/hbone_client and <dir>/tls_server
 * (each file starts with the driver's two control bytes: flags and chunk
 * size). HBONE transcripts come from a zm client talking to a zm server, and
 * from raw nghttp2 sessions for what zm never sends (GET, a CONNECT without
 * :authority, CONTINUATION, interim responses, refused streams). Contents
 * vary with the random TLS keys but the shapes do not; the committed files
 * need not be regenerated unless the protocol code changes. Not a test.
 *
 * Threading: one thread.
 */
#include "hbone.h"
#include "tls.h"

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct rec {
    uint8_t *p;
    size_t len, cap;
} rec_t;

static const char *outdir;

static void die(const char *what)
{
    fprintf(stderr, "gen_corpus: %s\n", what);
    exit(1);
}

static void rec_add(rec_t *r, const uint8_t *d, size_t n)
{
    if (r->len + n > r->cap) {
        size_t cap = (r->len + n) * 2;
        uint8_t *p = realloc(r->p, cap);
        if (!p)
            die("out of memory");
        r->p = p;
        r->cap = cap;
    }
    memcpy(r->p + r->len, d, n);
    r->len += n;
}

static void rec_free(rec_t *r)
{
    free(r->p);
    *r = (rec_t){0};
}

/* Writes <outdir>/<sub>/<name>: flags, chunk, then the recording. */
static void save(const char *sub, const char *name, uint8_t flags, uint8_t chunk, const rec_t *r)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", outdir, sub);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/%s/%s", outdir, sub, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        die(path);
    uint8_t hdr[2] = {flags, chunk};
    if (fwrite(hdr, 1, 2, f) != 2 || (r->len && fwrite(r->p, 1, r->len, f) != r->len) || fclose(f))
        die(path);
    printf("%s (%zu bytes)\n", path, r->len + 2);
}

/* ---- HBONE endpoints: a zm connection or a raw nghttp2 session ---- */

typedef struct peer {
    zm_hbone_conn_t *zm;
    nghttp2_session *ng;
    rec_t sent;
} peer_t;

static ssize_t peer_out(peer_t *p, const uint8_t **d)
{
    return p->zm ? zm_hbone_output(p->zm, d) : nghttp2_session_mem_send(p->ng, d);
}

static void peer_in(peer_t *p, const uint8_t *d, size_t n)
{
    if (p->zm)
        zm_hbone_feed(p->zm, d, n);
    else
        nghttp2_session_mem_recv(p->ng, d, n);
}

static size_t move(peer_t *from, peer_t *to)
{
    size_t moved = 0;
    const uint8_t *d;
    ssize_t n;
    for (int i = 0; i < 10000 && (n = peer_out(from, &d)) > 0; i++) {
        rec_add(&from->sent, d, (size_t)n);
        peer_in(to, d, (size_t)n);
        moved += (size_t)n;
    }
    return moved;
}

static void pump(peer_t *a, peer_t *b)
{
    for (int i = 0; i < 1000; i++)
        if (move(a, b) + move(b, a) == 0)
            return;
}

/* zm callbacks: the server answers CONNECT with srv_status and echoes. */
static int srv_status = 200;
static zm_hbone_stream_t *cli_streams[8];

static void on_request(zm_hbone_conn_t *c, zm_hbone_stream_t *s, const zm_hbone_request_t *req)
{
    bool ok = !strcmp(req->method, "CONNECT") && req->authority;
    zm_hbone_respond(s, ok ? srv_status : 400, NULL, 0);
    if (ok && srv_status == 200)
        zm_hbone_stream_write(s, (const uint8_t *)"hello from server\n", 18);
}

static void on_data(zm_hbone_stream_t *s, const uint8_t *d, size_t n)
{
    zm_hbone_stream_consume(s, n);
    if (zm_hbone_conn_ctx(zm_hbone_stream_conn(s)) == NULL) /* server */
        zm_hbone_stream_write(s, d, n);
}

static void on_eof(zm_hbone_stream_t *s)
{
    zm_hbone_stream_shutdown(s);
}

static void on_close(zm_hbone_stream_t *s, uint32_t code)
{
    zm_hbone_stream_t **slot = zm_hbone_stream_ctx(s);
    if (slot)
        *slot = NULL;
}

static const zm_hbone_callbacks_t zm_cbs = {
    .on_request = on_request,
    .on_stream_data = on_data,
    .on_stream_eof = on_eof,
    .on_stream_close = on_close,
};

static void open_streams(peer_t *cli, int n, size_t bytes)
{
    static const zm_hbone_header_t hdrs[] = {
        {"baggage", "k8s.namespace.name=default,k8s.pod.name=web-0"},
        {"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    };
    uint8_t buf[4096];
    for (int i = 0; i < n; i++) {
        char auth[32];
        snprintf(auth, sizeof(auth), "10.1.0.%d:%d", 5 + i, 8080 + i);
        cli_streams[i] = zm_hbone_open(cli->zm, auth, hdrs, i % 3, &cli_streams[i]);
        if (!cli_streams[i])
            die("open");
        for (size_t off = 0; off < bytes;) {
            size_t k = bytes - off < sizeof(buf) ? bytes - off : sizeof(buf);
            for (size_t j = 0; j < k; j++)
                buf[j] = (uint8_t)((off + j) * 7 + (size_t)i);
            ssize_t w = zm_hbone_stream_write(cli_streams[i], buf, k);
            if (w <= 0)
                die("write");
            off += (size_t)w;
        }
    }
}

static void zm_pair(peer_t *cli, peer_t *srv, const zm_hbone_settings_t *set)
{
    *cli = (peer_t){0};
    *srv = (peer_t){0};
    static int cli_tag;
    if (zm_hbone_conn_new(&cli->zm, false, set, &zm_cbs, &cli_tag) < 0 ||
        zm_hbone_conn_new(&srv->zm, true, set, &zm_cbs, NULL) < 0)
        die("conn_new");
}

static void zm_done(const char *name, peer_t *cli, peer_t *srv, bool both_flags)
{
    char n[128];
    save("hbone_server", name, 0x00, 0, &cli->sent);
    save("hbone_client", name, 0x00, 0, &srv->sent);
    if (both_flags) { /* the same, fed in small pieces */
        snprintf(n, sizeof(n), "%s-chunked", name);
        save("hbone_server", n, 0x00, 7, &cli->sent);
        save("hbone_client", n, 0x00, 13, &srv->sent);
    }
    zm_hbone_conn_free(&cli->zm);
    zm_hbone_conn_free(&srv->zm);
    rec_free(&cli->sent);
    rec_free(&srv->sent);
    memset(cli_streams, 0, sizeof(cli_streams));
    srv_status = 200;
}

static void gen_zm(void)
{
    peer_t cli, srv;

    zm_pair(&cli, &srv, NULL);
    open_streams(&cli, 1, 6);
    zm_hbone_stream_shutdown(cli_streams[0]);
    pump(&cli, &srv);
    zm_done("connect-echo", &cli, &srv, true);

    zm_pair(&cli, &srv, NULL);
    open_streams(&cli, 3, 1000);
    for (int i = 0; i < 3; i++)
        zm_hbone_stream_shutdown(cli_streams[i]);
    pump(&cli, &srv);
    zm_done("three-streams", &cli, &srv, false);

    zm_pair(&cli, &srv, NULL);
    srv_status = 403;
    open_streams(&cli, 1, 100);
    pump(&cli, &srv);
    zm_done("refused-403", &cli, &srv, false);

    zm_pair(&cli, &srv, NULL);
    open_streams(&cli, 1, 10);
    pump(&cli, &srv);
    zm_hbone_ping(cli.zm);
    zm_hbone_ping(srv.zm);
    pump(&cli, &srv);
    zm_hbone_stream_shutdown(cli_streams[0]);
    zm_hbone_goaway(srv.zm, 0); /* graceful: notice, PING, final GOAWAY */
    pump(&cli, &srv);
    zm_hbone_goaway(cli.zm, 0);
    pump(&cli, &srv);
    zm_done("ping-goaway", &cli, &srv, false);

    zm_pair(&cli, &srv, NULL);
    open_streams(&cli, 2, 50);
    pump(&cli, &srv);
    zm_hbone_stream_reset(cli_streams[0], NGHTTP2_CANCEL);
    zm_hbone_stream_shutdown(cli_streams[1]);
    pump(&cli, &srv);
    zm_done("reset", &cli, &srv, false);

    /* Small windows: WINDOW_UPDATEs both ways. */
    zm_hbone_settings_t small = {.stream_window = 8192, .conn_window = 65535};
    zm_pair(&cli, &srv, &small);
    open_streams(&cli, 1, 12000);
    zm_hbone_stream_shutdown(cli_streams[0]);
    pump(&cli, &srv);
    zm_done("window-updates", &cli, &srv, false);
}

/* ---- raw nghttp2 peers ---- */

typedef enum {
    RAW_SRV_INTERIM,   /* 100, then 200 with a body and END_STREAM */
    RAW_SRV_RST,       /* RST_STREAM(REFUSED_STREAM) */
    RAW_SRV_GOAWAY,    /* GOAWAY(last 0) before any answer */
    RAW_SRV_NO_STATUS, /* a response without :status */
} raw_srv_mode_t;

static raw_srv_mode_t raw_mode;

static ssize_t body_cb(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                       nghttp2_data_source *src, void *ud)
{
    memcpy(buf, "tunnel bytes\n", 13);
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    return 13;
}

static int raw_srv_frame(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    int32_t id = f->hd.stream_id;
    nghttp2_nv st100[] = {{(uint8_t *)":status", (uint8_t *)"100", 7, 3, 0}};
    nghttp2_nv st200[] = {{(uint8_t *)":status", (uint8_t *)"200", 7, 3, 0},
                          {(uint8_t *)"server", (uint8_t *)"raw", 6, 3, 0}};
    nghttp2_nv nost[] = {{(uint8_t *)"server", (uint8_t *)"raw", 6, 3, 0}};
    nghttp2_data_provider prd = {.read_callback = body_cb};
    switch (raw_mode) {
    case RAW_SRV_INTERIM:
        nghttp2_submit_headers(ng, 0, id, NULL, st100, 1, NULL);
        nghttp2_submit_response(ng, id, st200, 2, &prd);
        break;
    case RAW_SRV_RST:
        nghttp2_submit_rst_stream(ng, 0, id, NGHTTP2_REFUSED_STREAM);
        break;
    case RAW_SRV_GOAWAY:
        break;
    case RAW_SRV_NO_STATUS:
        nghttp2_submit_headers(ng, NGHTTP2_FLAG_END_STREAM, id, NULL, nost, 1, NULL);
        break;
    }
    return 0;
}

static void raw_session(nghttp2_session **ng, bool server)
{
    nghttp2_session_callbacks *cbs;
    if (nghttp2_session_callbacks_new(&cbs))
        die("nghttp2");
    if (server)
        nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, raw_srv_frame);
    nghttp2_option *opt;
    nghttp2_option_new(&opt);
    /* Let us send what a careful peer would not. */
    nghttp2_option_set_no_http_messaging(opt, 1);
    int rv = server ? nghttp2_session_server_new2(ng, cbs, NULL, opt)
                    : nghttp2_session_client_new2(ng, cbs, NULL, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    if (rv)
        die("nghttp2 session");
    nghttp2_submit_settings(*ng, 0, NULL, 0);
}

static void gen_raw_server(const char *name, raw_srv_mode_t mode)
{
    peer_t cli = {0}, srv = {0};
    static int cli_tag;
    raw_mode = mode;
    if (zm_hbone_conn_new(&cli.zm, false, NULL, &zm_cbs, &cli_tag) < 0)
        die("conn_new");
    raw_session(&srv.ng, true);
    if (mode == RAW_SRV_GOAWAY)
        nghttp2_submit_goaway(srv.ng, 0, 0, NGHTTP2_NO_ERROR, (const uint8_t *)"bye", 3);
    open_streams(&cli, 1, 6);
    pump(&cli, &srv);
    save("hbone_client", name, 0x00, 0, &srv.sent);
    zm_hbone_conn_free(&cli.zm);
    nghttp2_session_del(srv.ng);
    rec_free(&cli.sent);
    rec_free(&srv.sent);
    memset(cli_streams, 0, sizeof(cli_streams));
}

#define NV(n, v)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), 0                                \
    }

static void gen_raw_client(void)
{
    static char big[20000];
    for (size_t i = 0; i < sizeof(big) - 1; i++)
        big[i] = (char)('!' + (i * 7919 % 89)); /* poorly compressible */
    nghttp2_nv get[] = {NV(":method", "GET"), NV(":scheme", "https"), NV(":path", "/"),
                        NV(":authority", "10.1.0.5:8080")};
    nghttp2_nv noauth[] = {NV(":method", "CONNECT")};
    nghttp2_nv bighdr[] = {NV(":method", "CONNECT"), NV(":authority", "10.1.0.5:8080"),
                           NV("x-big", big)};
    nghttp2_nv upper[] = {NV(":method", "CONNECT"), NV(":authority", "10.1.0.5:8080"),
                          NV("Bad-Name", "x"), NV("x-nul", "a")};
    struct {
        const char *name;
        nghttp2_nv *nv;
        size_t n;
        bool extras;
    } cases[] = {
        {"raw-get", get, 4, false},
        {"raw-connect-no-authority", noauth, 1, false},
        {"raw-continuation", bighdr, 3, false},
        {"raw-bad-header", upper, 4, false},
        {"raw-settings-priority-ping", get + 0, 0, true},
    };
    for (size_t i = 0; i < ZM_ARRAY_LEN(cases); i++) {
        peer_t cli = {0}, srv = {0};
        if (zm_hbone_conn_new(&srv.zm, true, NULL, &zm_cbs, NULL) < 0)
            die("conn_new");
        raw_session(&cli.ng, false);
        if (cases[i].extras) {
            nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, 0},
                                           {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1},
                                           {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, 16384}};
            nghttp2_submit_settings(cli.ng, 0, iv, 3);
            nghttp2_priority_spec pri;
            nghttp2_priority_spec_init(&pri, 0, 32, 1);
            nghttp2_submit_priority(cli.ng, 0, 3, &pri);
            nghttp2_submit_ping(cli.ng, 0, (const uint8_t *)"12345678");
            nghttp2_submit_window_update(cli.ng, 0, 0, 1000);
            nghttp2_nv conn[] = {NV(":method", "CONNECT"), NV(":authority", "[::1]:443")};
            int32_t id = nghttp2_submit_request(cli.ng, NULL, conn, 2, NULL, NULL);
            nghttp2_submit_rst_stream(cli.ng, 0, id, NGHTTP2_CANCEL);
            nghttp2_submit_goaway(cli.ng, 0, 0, NGHTTP2_NO_ERROR, NULL, 0);
        } else {
            nghttp2_submit_request(cli.ng, NULL, cases[i].nv, cases[i].n, NULL, NULL);
        }
        pump(&cli, &srv);
        save("hbone_server", cases[i].name, 0x00, 0, &cli.sent);
        zm_hbone_conn_free(&srv.zm);
        nghttp2_session_del(cli.ng);
        rec_free(&cli.sent);
        rec_free(&srv.sent);
    }
    /* Random frames after a valid preface (flag bit 0 adds it). */
    rec_t r = {0};
    rec_add(&r,
            (const uint8_t *)"\x00\x00\x08\x06\x00\x00\x00\x00\x00"
                             "abcdefgh",
            17); /* PING */
    rec_add(&r, (const uint8_t *)"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x7f\xff\xff\xff", 13);
    save("hbone_server", "frames-after-preface", 0x01, 0, &r);
    save("hbone_client", "frames-after-preface", 0x01, 0, &r);
    rec_free(&r);
}

/* ---- TLS ---- */

static char *ca_cert, *ca_key;

static zm_tls_ctx_t *tls_ctx(bool server, const char *id, bool lax, const char *alpn)
{
    char *cert = NULL, *key = NULL;
    zm_err_t err;
    zm_cert_req_t req = {.spiffe_id = id, .common_name = "gen"};
    if (id && zm_cert_issue(&req, ca_cert, ca_key, &cert, &key, &err) < 0)
        die(err.msg);
    zm_tls_ctx_config_t cfg = {.server = server,
                               .cert_pem = cert,
                               .key_pem = key,
                               .ca_pem = ca_cert,
                               .trust_domain = id ? NULL : "cluster.local",
                               .allow_no_client_cert = lax,
                               .allow_tls12 = lax,
                               .alpn = alpn};
    zm_tls_ctx_t *ctx = NULL;
    if (zm_tls_ctx_new(&ctx, &cfg, &err) < 0)
        die(err.msg);
    free(cert);
    free(key);
    return ctx;
}

static void tls_move(zm_tls_t *from, zm_tls_t *to, rec_t *r)
{
    const uint8_t *d;
    size_t n = zm_tls_out(from, &d);
    if (!n)
        return;
    if (r)
        rec_add(r, d, n);
    zm_tls_feed(to, d, n);
    zm_tls_out_consume(from, n);
}

static void gen_tls_case(const char *name, uint8_t flags, zm_tls_ctx_t *cctx, zm_tls_ctx_t *sctx)
{
    zm_tls_t *c = NULL, *s = NULL;
    if (zm_tls_new(&c, cctx, NULL) < 0 || zm_tls_new(&s, sctx, NULL) < 0)
        die("tls_new");
    rec_t hello = {0}, all = {0};
    zm_tls_handshake(c);
    const uint8_t *d;
    size_t n = zm_tls_out(c, &d);
    rec_add(&hello, d, n);
    for (int i = 0; i < 20; i++) {
        int rc = zm_tls_handshake(c), rs = zm_tls_handshake(s);
        tls_move(c, s, &all);
        tls_move(s, c, NULL);
        if ((rc == 0 && rs == 0) || (rc < 0 && rc != ZM_AGAIN) || (rs < 0 && rs != ZM_AGAIN))
            break;
    }
    if (zm_tls_established(c)) {
        zm_tls_write(c, (const uint8_t *)"GET / HTTP/1.1\r\n\r\n", 18);
        zm_tls_shutdown(c);
        tls_move(c, s, &all);
    }
    char full[128];
    snprintf(full, sizeof(full), "%s-transcript", name);
    save("tls_server", name, flags, 0, &hello);
    save("tls_server", full, flags, 0, &all);
    if (flags == 0) {
        snprintf(full, sizeof(full), "%s-chunked", name);
        save("tls_server", full, flags, 5, &hello);
    }
    rec_free(&hello);
    rec_free(&all);
    zm_tls_free(&c);
    zm_tls_free(&s);
}

static void gen_tls(void)
{
    zm_err_t err;
    zm_cert_req_t ca = {.common_name = "gen CA", .is_ca = true};
    if (zm_cert_issue(&ca, NULL, NULL, &ca_cert, &ca_key, &err) < 0)
        die(err.msg);
    const char *sid = "spiffe://cluster.local/ns/fuzz/sa/server";
    const char *cid = "spiffe://cluster.local/ns/fuzz/sa/client";
    zm_tls_ctx_t *strict = tls_ctx(true, sid, false, NULL);
    zm_tls_ctx_t *lax = tls_ctx(true, sid, true, NULL);
    zm_tls_ctx_t *mtls = tls_ctx(false, cid, false, NULL);
    zm_tls_ctx_t *anon12 = tls_ctx(false, NULL, true, NULL);
    zm_tls_ctx_t *h1 = tls_ctx(false, cid, false, "http/1.1");
    gen_tls_case("mtls13-hello", 0x00, mtls, strict);
    gen_tls_case("tls12-anon-hello", 0x01, anon12, lax);
    gen_tls_case("alpn-http11-hello", 0x00, h1, strict);
    gen_tls_case("anon-to-strict-hello", 0x00, anon12, strict);
    zm_tls_ctx_unref(&strict);
    zm_tls_ctx_unref(&lax);
    zm_tls_ctx_unref(&mtls);
    zm_tls_ctx_unref(&anon12);
    zm_tls_ctx_unref(&h1);
    free(ca_cert);
    free(ca_key);
    zm_tls_global_cleanup();
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
        return 2;
    }
    outdir = argv[1];
    mkdir(outdir, 0755);
    gen_zm();
    gen_raw_server("raw-interim-100", RAW_SRV_INTERIM);
    gen_raw_server("raw-rst-refused", RAW_SRV_RST);
    gen_raw_server("raw-goaway-first", RAW_SRV_GOAWAY);
    gen_raw_server("raw-no-status", RAW_SRV_NO_STATUS);
    gen_raw_client();
    gen_tls();
    return 0;
}
