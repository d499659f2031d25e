/*
 * zm-demo — what `make demo` runs until the sandbox mesh exists: one HBONE
 * round trip on loopback, narrated. A mesh CA issues two SPIFFE identities;
 * an HBONE server (mTLS on an io_uring loop) accepts a CONNECT from a client
 * and splices it to a TCP echo; the client sends a line and reads it back.
 * It prints who proved what to whom, the bytes, and the Prometheus metrics
 * as the metrics endpoint serves them. Exit 0 only if the echo came back.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "hbone_lab.h"
#include "httpd.h"
#include "metrics.h"

static const char message[] = "hello from zmesh, through an HBONE tunnel\n";

typedef struct demo {
    zm_loop_t *loop;
    zm_hbc_t *conn;
    bool conn_closed;
    int status;
    char echoed[256];
    size_t echoed_len;
    bool eof, stream_closed;
    uint32_t close_code;
    zm_metrics_t *metrics;
} demo_t;

typedef struct demo_stream {
    const zm_hbs_ops_t *ops;
    demo_t *d;
} demo_stream_t;

static void ds_response(zm_hbone_stream_t *s, int status)
{
    demo_t *d = ((demo_stream_t *)zm_hbone_stream_ctx(s))->d;
    d->status = status;
    if (status != 200)
        return;
    static const uint8_t mode = LAB_MODE_ECHO;
    zm_hbone_stream_write(s, &mode, 1);
    zm_hbone_stream_write(s, (const uint8_t *)message, sizeof(message) - 1);
    zm_hbone_stream_shutdown(s);
    zm_hbc_flush(d->conn);
}

static void ds_data(zm_hbone_stream_t *s, const uint8_t *data, size_t len)
{
    demo_t *d = ((demo_stream_t *)zm_hbone_stream_ctx(s))->d;
    size_t n = ZM_MIN(len, sizeof(d->echoed) - 1 - d->echoed_len);
    memcpy(d->echoed + d->echoed_len, data, n);
    d->echoed_len += n;
    zm_hbone_stream_consume(s, len);
}

static void ds_eof(zm_hbone_stream_t *s)
{
    ((demo_stream_t *)zm_hbone_stream_ctx(s))->d->eof = true;
}

static void ds_close(zm_hbone_stream_t *s, uint32_t code)
{
    demo_t *d = ((demo_stream_t *)zm_hbone_stream_ctx(s))->d;
    d->stream_closed = true;
    d->close_code = code;
}

static const zm_hbs_ops_t ds_ops = {
    .on_response = ds_response, .on_data = ds_data, .on_eof = ds_eof, .on_close = ds_close};

static void conn_closed(zm_hbc_t *c, const char *reason)
{
    ((demo_t *)zm_hbc_ctx(c))->conn_closed = true;
}

static const zm_hbc_handlers_t conn_handlers = {.on_close = conn_closed};

static int metrics_handler(const zm_httpd_request_t *req, zm_strbuf_t *body,
                           const char **content_type, void *arg)
{
    *content_type = ZM_METRICS_CONTENT_TYPE;
    zm_metrics_render(arg, body);
    return 200;
}

/* A plain HTTP client in a thread, as Prometheus would scrape. */
typedef struct scrape {
    int port;
    char *body;
    bool done;
} scrape_t;

static void *scrape_main(void *arg)
{
    scrape_t *sc = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)sc->port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    zm_strbuf_t resp = {0};
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        static const char req[] = "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n";
        if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) == (ssize_t)sizeof(req) - 1) {
            char buf[4096];
            ssize_t n;
            while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
                zm_strbuf_append(&resp, buf, (size_t)n);
        }
    }
    close(fd);
    const char *s = zm_strbuf_str(&resp);
    const char *body = strstr(s, "\r\n\r\n");
    sc->body = strdup(body ? body + 4 : s);
    zm_strbuf_free(&resp);
    __atomic_store_n(&sc->done, true, __ATOMIC_RELEASE);
    return NULL;
}

static void run_until(demo_t *d, bool *flag, uint64_t ms)
{
    uint64_t until = zm_now_ms() + ms;
    while (!__atomic_load_n(flag, __ATOMIC_ACQUIRE) && zm_now_ms() < until)
        zm_loop_run_once(d->loop, 20);
}

static void record_metrics(demo_t *d, const lab_server_stats_t *st)
{
    const char *const labels[] = {"reporter", "source_principal", "destination_principal",
                                  "connection_security_policy", NULL};
    const char *const values[] = {"destination", st->last_peer_id, LAB_SERVER_ID, "mutual_tls",
                                  NULL};
    zm_counter_add(
        zm_metric_series(zm_metrics_counter(d->metrics, "istio_tcp_connections_opened_total",
                                            "TCP connections opened", labels),
                         values),
        st->streams);
    zm_counter_add(
        zm_metric_series(zm_metrics_counter(d->metrics, "istio_tcp_connections_closed_total",
                                            "TCP connections closed", labels),
                         values),
        st->streams);
    zm_counter_add(zm_metric_series(zm_metrics_counter(d->metrics, "istio_tcp_received_bytes_total",
                                                       "Bytes received from the client", labels),
                                    values),
                   st->bytes_to_upstream);
    zm_counter_add(zm_metric_series(zm_metrics_counter(d->metrics, "istio_tcp_sent_bytes_total",
                                                       "Bytes sent to the client", labels),
                                    values),
                   st->bytes_from_upstream);
}

int main(void)
{
    demo_t d = {0};
    lab_certs_t certs;
    int rc = 1;
    printf("zmesh demo: one HBONE round trip on loopback\n\n");
    if (lab_certs_make(&certs) < 0)
        return 1;
    printf("1. The mesh CA issued two workload identities (ECDSA P-256, URI SAN):\n"
           "     client  %s\n     server  %s\n\n",
           LAB_CLIENT_ID, LAB_SERVER_ID);
    zm_loop_config_t lc = {0};
    zm_loop_config_defaults(&lc);
    if (zm_loop_new(&d.loop, &lc) < 0) {
        fprintf(stderr, "demo: io_uring is not available\n");
        return 1;
    }
    zm_tls_ctx_t *stls = lab_tls_ctx(certs.server_cert, certs.server_key, certs.ca_cert, true);
    zm_tls_ctx_t *ctls = lab_tls_ctx(certs.client_cert, certs.client_key, certs.ca_cert, false);
    lab_target_t *target = NULL;
    lab_server_t *server = NULL;
    zm_httpd_t *httpd = NULL;
    zm_metrics_new(&d.metrics);
    zm_httpd_route_t routes[] = {{"/metrics", metrics_handler, d.metrics}};
    struct sockaddr_in any = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &any.sin_addr);
    if (!stls || !ctls || lab_target_start(&target, d.loop, "127.0.0.1", 0, 0) < 0 ||
        lab_server_start(&server, d.loop, "127.0.0.1", 0, stls, 0) < 0 ||
        zm_httpd_new(&httpd, d.loop, (struct sockaddr *)&any, sizeof(any), 0, routes, 1) < 0) {
        fprintf(stderr, "demo: set-up failed\n");
        goto out;
    }
    char authority[32];
    snprintf(authority, sizeof(authority), "127.0.0.1:%d", lab_target_port(target));
    printf("2. An echo app listens on %s; the HBONE server (io_uring, wolfSSL, nghttp2)\n"
           "   listens on 127.0.0.1:%d and requires a client certificate.\n\n",
           authority, lab_server_port(server));

    struct sockaddr_in srv = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)lab_server_port(server))};
    inet_pton(AF_INET, "127.0.0.1", &srv.sin_addr);
    const char *expected[] = {LAB_SERVER_ID, NULL};
    demo_stream_t ds = {.ops = &ds_ops, .d = &d};
    if (zm_hbc_connect(&d.conn, d.loop, -1, (struct sockaddr *)&srv, sizeof(srv), ctls, expected,
                       NULL, &conn_handlers, &d) < 0 ||
        !zm_hbc_open(d.conn, authority, NULL, 0, &ds)) {
        fprintf(stderr, "demo: client failed to start\n");
        goto out;
    }
    run_until(&d, &d.stream_closed, 10000);
    const lab_server_stats_t *st = lab_server_stats(server);
    const zm_spiffe_id_t *peer_id = d.conn_closed ? NULL : zm_hbc_peer_id(d.conn);
    char peer[ZM_SPIFFE_ID_MAX];
    snprintf(peer, sizeof(peer), "%s", peer_id ? peer_id->uri : "");
    printf("3. The client opened TLS 1.3 with ALPN h2 and sent CONNECT %s:\n", authority);
    printf("     client verified the server as  %s\n", peer[0] ? peer : "(none)");
    printf("     server verified the client as  %s\n",
           st->last_peer_id[0] ? st->last_peer_id : "(none)");
    printf("     CONNECT answered               %d\n\n", d.status);
    printf("4. Through the tunnel:\n     sent     %zu bytes: %s", sizeof(message) - 1, message);
    printf("     echoed   %zu bytes: %.*s", d.echoed_len, (int)d.echoed_len, d.echoed);
    printf("     both directions half-closed cleanly: %s\n\n",
           d.eof && d.close_code == 0 ? "yes" : "no");
    zm_hbc_close(d.conn, "demo done");
    run_until(&d, &d.conn_closed, 5000);

    record_metrics(&d, st);
    scrape_t sc = {.port = zm_httpd_port(httpd)};
    pthread_t th;
    pthread_create(&th, NULL, scrape_main, &sc);
    run_until(&d, &sc.done, 5000);
    pthread_join(th, NULL);
    printf("5. GET http://127.0.0.1:%d/metrics:\n%s\n", sc.port, sc.body ? sc.body : "");
    free(sc.body);

    bool ok = d.status == 200 && d.echoed_len == sizeof(message) - 1 &&
              !memcmp(d.echoed, message, d.echoed_len) &&
              !strcmp(st->last_peer_id, LAB_CLIENT_ID) && !strcmp(peer, LAB_SERVER_ID);
    printf("%s\n", ok ? "demo: OK" : "demo: FAILED");
    rc = ok ? 0 : 1;
out:
    zm_httpd_free(&httpd);
    for (int i = 0; i < 20; i++)
        zm_loop_run_once(d.loop, 5);
    if (server && lab_server_stats(server)->closed == lab_server_stats(server)->connections)
        lab_server_stop(&server);
    lab_target_stop(&target);
    zm_loop_destroy(&d.loop);
    zm_tls_ctx_unref(&stls);
    zm_tls_ctx_unref(&ctls);
    zm_metrics_free(&d.metrics);
    lab_certs_free(&certs);
    return rc;
}
