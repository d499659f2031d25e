/*
 * zm-hbone-bench — the HBONE benchmark client, and its helpers.
 *
 *   --mkcerts DIR                  CA, server and client certificates
 *   --serve-target IP:PORT         the TCP target (hbone_lab modes)
 *   --connect IP:PORT --cert C --key K --ca CA --target IP:PORT
 *        --mode throughput|streams --seconds N [--concurrency C]
 *
 * The same client measures zmesh's HBONE server and any other HTTP/2
 * CONNECT proxy (nghttpx), so the ratio compares servers, not clients.
 * throughput: one CONNECT stream uploads to a sink ('D') for N seconds;
 * bytes count once the HTTP/2 layer has accepted them, which the peer's
 * flow-control window keeps within a few MiB of what it really received.
 * streams: C streams at a time, each CONNECT → 1 byte echoed → END_STREAM
 * both ways; completed streams per second.
 * Results are one JSON line on stdout.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hbone_lab.h"

typedef struct bench {
    zm_loop_t *loop;
    zm_hbc_t *conn;
    zm_tls_ctx_t *tls;
    const char *target;
    struct sockaddr_in server;
    bool stop, conn_closed;
    const char *conn_reason;
    uint64_t bytes, streams_done, streams_failed;
    unsigned concurrency, active;
    uint64_t start_ns;
} bench_t;

typedef struct bstream {
    const zm_hbs_ops_t *ops;
    bench_t *b;
    zm_hbone_stream_t *s;
    bool upload;
    bool got_byte;
} bstream_t;

static uint8_t payload[64 * 1024];

static void open_next(bench_t *b);

static void upload_more(bstream_t *bs)
{
    while (!bs->b->stop) {
        ssize_t n = zm_hbone_stream_write(bs->s, payload, sizeof(payload));
        if (n <= 0)
            break;
        bs->b->bytes += (uint64_t)n;
    }
    zm_hbc_flush(bs->b->conn);
}

static void bs_response(zm_hbone_stream_t *s, int status)
{
    bstream_t *bs = zm_hbone_stream_ctx(s);
    if (status != 200) {
        bs->b->streams_failed++;
        return;
    }
    if (bs->upload) {
        static const uint8_t mode = LAB_MODE_SINK;
        zm_hbone_stream_write(s, &mode, 1);
        upload_more(bs);
    } else {
        static const uint8_t ping[2] = {LAB_MODE_CLOSE, 'x'};
        zm_hbone_stream_write(s, ping, sizeof(ping));
        zm_hbone_stream_shutdown(s);
        zm_hbc_flush(bs->b->conn);
    }
}

static void bs_data(zm_hbone_stream_t *s, const uint8_t *data, size_t len)
{
    bstream_t *bs = zm_hbone_stream_ctx(s);
    bs->got_byte = true;
    zm_hbone_stream_consume(s, len);
}

static void bs_writable(zm_hbone_stream_t *s)
{
    bstream_t *bs = zm_hbone_stream_ctx(s);
    if (bs->upload)
        upload_more(bs);
}

static void bs_close(zm_hbone_stream_t *s, uint32_t code)
{
    bstream_t *bs = zm_hbone_stream_ctx(s);
    bench_t *b = bs->b;
    bool upload = bs->upload;
    if (!upload) {
        if (code == 0 && bs->got_byte)
            b->streams_done++;
        else
            b->streams_failed++;
    }
    b->active--;
    free(bs);
    if (!upload && !b->stop)
        open_next(b);
}

static const zm_hbs_ops_t bs_ops = {
    .on_response = bs_response,
    .on_data = bs_data,
    .on_writable = bs_writable,
    .on_close = bs_close,
};

static void conn_closed(zm_hbc_t *c, const char *reason)
{
    bench_t *b = zm_hbc_ctx(c);
    b->conn_closed = true;
    b->conn_reason = reason;
    b->stop = true;
}

static const zm_hbc_handlers_t conn_handlers = {.on_close = conn_closed};

static bstream_t *open_stream(bench_t *b, bool upload)
{
    bstream_t *bs = calloc(1, sizeof(*bs));
    if (!bs)
        return NULL;
    bs->ops = &bs_ops;
    bs->b = b;
    bs->upload = upload;
    bs->s = zm_hbc_open(b->conn, b->target, NULL, 0, bs);
    if (!bs->s) {
        free(bs);
        return NULL;
    }
    b->active++;
    return bs;
}

static void open_next(bench_t *b)
{
    while (b->active < b->concurrency && !b->stop)
        if (!open_stream(b, false))
            break;
}

static void on_deadline(zm_timer_t *t)
{
    (void)t;
}

static int run(bench_t *b, const char *mode, unsigned seconds)
{
    const char *ids[] = {NULL};
    if (zm_hbc_connect(&b->conn, b->loop, -1, (struct sockaddr *)&b->server, sizeof(b->server),
                       b->tls, ids, NULL, &conn_handlers, b) < 0) {
        fprintf(stderr, "zm-hbone-bench: connect failed\n");
        return 1;
    }
    bool upload = !strcmp(mode, "throughput");
    b->start_ns = zm_now_ns();
    if (upload)
        open_stream(b, true);
    else
        open_next(b);
    zm_timer_t deadline = {0};
    zm_timer_start(b->loop, &deadline, (uint64_t)seconds * 1000, on_deadline);
    uint64_t end_ns = b->start_ns + (uint64_t)seconds * 1000000000ull;
    while (!b->conn_closed && zm_now_ns() < end_ns)
        zm_loop_run_once(b->loop, 100);
    double secs = (double)(zm_now_ns() - b->start_ns) / 1e9;
    b->stop = true;
    zm_timer_stop(b->loop, &deadline);
    if (b->conn_closed && b->bytes == 0 && b->streams_done == 0) {
        fprintf(stderr, "zm-hbone-bench: connection closed: %s\n",
                b->conn_reason ? b->conn_reason : "?");
        return 1;
    }
    if (upload)
        printf("{\"mode\":\"throughput\",\"bytes\":%llu,\"seconds\":%.3f,\"mbps\":%.1f}\n",
               (unsigned long long)b->bytes, secs, (double)b->bytes / secs / 1e6);
    else
        printf("{\"mode\":\"streams\",\"streams\":%llu,\"failed\":%llu,\"seconds\":%.3f,"
               "\"per_sec\":%.1f}\n",
               (unsigned long long)b->streams_done, (unsigned long long)b->streams_failed, secs,
               (double)b->streams_done / secs);
    fflush(stdout);
    if (!b->conn_closed) {
        zm_hbc_close(b->conn, "bench done");
        uint64_t until = zm_now_ms() + 2000;
        while (!b->conn_closed && zm_now_ms() < until)
            zm_loop_run_once(b->loop, 50);
    }
    return 0;
}

static volatile sig_atomic_t stop_target;
static void on_signal(int sig)
{
    stop_target = 1;
}

static int serve_target(zm_loop_t *loop, const char *addr)
{
    struct sockaddr_in sa;
    char ip[32];
    if (lab_parse_addr(addr, &sa) < 0)
        return 2;
    inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof(ip));
    lab_target_t *t;
    if (lab_target_start(&t, loop, ip, ntohs(sa.sin_port), 0) < 0) {
        fprintf(stderr, "zm-hbone-bench: cannot listen on %s\n", addr);
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    while (!stop_target)
        zm_loop_run_once(loop, 200);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: zm-hbone-bench --mkcerts DIR\n"
               "       zm-hbone-bench --serve-target IP:PORT\n"
               "       zm-hbone-bench --connect IP:PORT --cert C --key K --ca CA\n"
               "                      --target IP:PORT --mode throughput|streams\n"
               "                      [--seconds N] [--concurrency C]\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"mkcerts", required_argument, 0, 'm'}, {"serve-target", required_argument, 0, 's'},
        {"connect", required_argument, 0, 'c'}, {"cert", required_argument, 0, 'C'},
        {"key", required_argument, 0, 'K'},     {"ca", required_argument, 0, 'A'},
        {"target", required_argument, 0, 't'},  {"mode", required_argument, 0, 'M'},
        {"seconds", required_argument, 0, 'S'}, {"concurrency", required_argument, 0, 'n'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0},
    };
    const char *mkcerts = NULL, *serve = NULL, *connect_to = NULL, *cert = NULL, *key = NULL,
               *ca = NULL, *target = NULL, *mode = "throughput";
    unsigned seconds = 5, concurrency = 16;
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'm':
            mkcerts = optarg;
            break;
        case 's':
            serve = optarg;
            break;
        case 'c':
            connect_to = optarg;
            break;
        case 'C':
            cert = optarg;
            break;
        case 'K':
            key = optarg;
            break;
        case 'A':
            ca = optarg;
            break;
        case 't':
            target = optarg;
            break;
        case 'M':
            mode = optarg;
            break;
        case 'S':
            seconds = (unsigned)atoi(optarg);
            break;
        case 'n':
            concurrency = (unsigned)atoi(optarg);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    zm_tls_global_init();
    if (mkcerts) {
        lab_certs_t c;
        if (lab_certs_make(&c) < 0)
            return 1;
        int r = lab_certs_write(&c, mkcerts);
        lab_certs_free(&c);
        return r < 0 ? 1 : 0;
    }
    zm_loop_config_t lc = {0};
    zm_loop_config_defaults(&lc);
    bench_t b = {.concurrency = concurrency, .target = target};
    if (zm_loop_new(&b.loop, &lc) < 0) {
        fprintf(stderr, "zm-hbone-bench: io_uring unavailable\n");
        return 1;
    }
    if (serve)
        return serve_target(b.loop, serve);
    if (!connect_to || !cert || !key || !ca || !target || seconds == 0 ||
        lab_parse_addr(connect_to, &b.server) < 0 ||
        (strcmp(mode, "throughput") && strcmp(mode, "streams"))) {
        usage(stderr);
        return 2;
    }
    memset(payload, 'z', sizeof(payload));
    b.tls = lab_tls_ctx_files(cert, key, ca, false);
    if (!b.tls)
        return 2;
    int rc = run(&b, mode, seconds);
    zm_tls_ctx_unref(&b.tls);
    zm_loop_destroy(&b.loop);
    return rc;
}
