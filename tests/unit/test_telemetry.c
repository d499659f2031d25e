/*
 * ztunnel's Istio TCP metrics and access log: the exact exposition lines
 * for connections that open and close cleanly, that are denied, that move
 * bytes in several deltas; Istio's defaults for unknown labels; and the
 * "connection complete" JSON line read back from a pipe.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "telemetry.h"

typedef struct fixture {
    zm_metrics_t *m;
    zt_telemetry_t *t;
    zm_strbuf_t out;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(zm_metrics_new(&f->m), 0);
    assert_int_equal(zt_telemetry_new(&f->t, f->m, "cluster-a"), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    zt_telemetry_free(&f->t);
    assert_null(f->t);
    zm_metrics_free(&f->m);
    zm_strbuf_free(&f->out);
    free(f);
    return 0;
}

static const char *render(fixture_t *f)
{
    zm_strbuf_reset(&f->out);
    assert_int_equal(zm_metrics_render(f->m, &f->out), 0);
    return zm_strbuf_str(&f->out);
}

/* The full line "name{labels} value\n" for these 23 values in order. */
static char *line(const char *name, const char *const v[23], unsigned long long value)
{
    zm_strbuf_t sb = {0};
    zm_strbuf_appendf(&sb, "\n%s{", name);
    for (size_t i = 0; i < 23; i++)
        zm_strbuf_appendf(&sb, "%s%s=\"%s\"", i ? "," : "", ZT_TELEMETRY_LABELS[i], v[i]);
    zm_strbuf_appendf(&sb, "} %llu\n", value);
    assert_int_equal(zm_strbuf_error(&sb), 0);
    return zm_strbuf_detach(&sb, NULL);
}

static void assert_line(const char *text, const char *name, const char *const v[23],
                        unsigned long long value)
{
    char *l = line(name, v, value);
    if (!strstr(text, l))
        fail_msg("missing line:%s--- in:\n%s", l, text);
    free(l);
}

static const zt_conn_labels_t outbound = {
    .reporter = "source",
    .source_workload = "sleep",
    .source_canonical_service = "sleep",
    .source_canonical_revision = "v1",
    .source_workload_namespace = "default",
    .source_principal = "spiffe://cluster.local/ns/default/sa/sleep",
    .destination_service = "echo.default.svc.cluster.local",
    .destination_service_namespace = "default",
    .destination_service_name = "echo",
    .destination_workload = "echo-v2",
    .destination_canonical_service = "echo",
    .destination_canonical_revision = "v2",
    .destination_workload_namespace = "default",
    .destination_principal = "spiffe://cluster.local/ns/default/sa/echo",
    .destination_app = "echo-app",
    .destination_cluster = "cluster-b",
    .connection_security_policy = "mutual_tls",
};

/* The values Istio renders for `outbound` (app/version fall back to the
 * canonical name/revision; the source cluster is ours). */
static const char *const outbound_values[23] = {
    "source",
    "sleep",
    "sleep",
    "v1",
    "default",
    "spiffe://cluster.local/ns/default/sa/sleep",
    "sleep",
    "v1",
    "cluster-a",
    "echo.default.svc.cluster.local",
    "default",
    "echo",
    "echo-v2",
    "echo",
    "v2",
    "default",
    "spiffe://cluster.local/ns/default/sa/echo",
    "echo-app",
    "v2",
    "cluster-b",
    "tcp",
    "-",
    "mutual_tls",
};

static void test_build_info(void **state)
{
    fixture_t *f = *state;
    const char *text = render(f);
    assert_non_null(strstr(text, "# TYPE istio_build gauge\n"));
    assert_non_null(
        strstr(text, "\nistio_build{component=\"ztunnel\",tag=\"" ZT_VERSION "\"} 1\n"));
    assert_non_null(strstr(text, "# TYPE istio_tcp_connections_opened_total counter\n"));
    /* Nothing counted yet: no traffic series. */
    assert_null(strstr(text, "istio_tcp_connections_opened_total{"));
    /* Registering twice on the same registry is fine (same definitions). */
    zt_telemetry_t *again = NULL;
    assert_int_equal(zt_telemetry_new(&again, f->m, NULL), 0);
    zt_telemetry_free(&again);
}

static void test_open_close(void **state)
{
    fixture_t *f = *state;
    zt_tcp_conn_t *c = zt_telemetry_open(f->t, &outbound, NULL);
    assert_non_null(c);
    const char *text = render(f);
    assert_line(text, "istio_tcp_connections_opened_total", outbound_values, 1);
    assert_line(text, "istio_tcp_sent_bytes_total", outbound_values, 0);
    assert_line(text, "istio_tcp_received_bytes_total", outbound_values, 0);
    assert_null(strstr(text, "istio_tcp_connections_closed_total{"));

    zt_telemetry_bytes(c, 1000, 250);
    zt_telemetry_close(&c, "-", NULL);
    assert_null(c);
    text = render(f);
    assert_line(text, "istio_tcp_connections_opened_total", outbound_values, 1);
    assert_line(text, "istio_tcp_connections_closed_total", outbound_values, 1);
    assert_line(text, "istio_tcp_sent_bytes_total", outbound_values, 1000);
    assert_line(text, "istio_tcp_received_bytes_total", outbound_values, 250);
    assert_null(strstr(text, "istio_tcp_connections_failed_total{"));

    /* NULL flags at close mean clean too; the series is shared. */
    c = zt_telemetry_open(f->t, &outbound, NULL);
    zt_telemetry_close(&c, NULL, NULL);
    text = render(f);
    assert_line(text, "istio_tcp_connections_opened_total", outbound_values, 2);
    assert_line(text, "istio_tcp_connections_closed_total", outbound_values, 2);
    /* A NULL record is accepted everywhere. */
    zt_telemetry_bytes(NULL, 1, 1);
    zt_telemetry_close(&c, "-", NULL);
}

static void test_denied(void **state)
{
    fixture_t *f = *state;
    zt_conn_labels_t l = outbound;
    l.reporter = "destination";
    zt_tcp_conn_t *c = zt_telemetry_open(f->t, &l, NULL);
    zt_telemetry_close(&c, "DENY", "connection closed due to policy rejection");

    const char *open_v[23], *deny_v[23];
    memcpy(open_v, outbound_values, sizeof(open_v));
    open_v[0] = "destination";
    memcpy(deny_v, open_v, sizeof(deny_v));
    deny_v[21] = "DENY";
    const char *text = render(f);
    /* Opened and bytes carry the flags known at open, closed/failed the final. */
    assert_line(text, "istio_tcp_connections_opened_total", open_v, 1);
    assert_line(text, "istio_tcp_sent_bytes_total", open_v, 0);
    assert_line(text, "istio_tcp_connections_closed_total", deny_v, 1);
    assert_line(text, "istio_tcp_connections_failed_total", deny_v, 1);
    char *no = line("istio_tcp_connections_closed_total", open_v, 1);
    assert_null(strstr(text, no));
    free(no);

    /* Flags already known at open (e.g. an early CONNECT failure). */
    l.response_flags = "CONNECT";
    c = zt_telemetry_open(f->t, &l, NULL);
    zt_telemetry_close(&c, "CONNECT", "connection refused");
    open_v[21] = "CONNECT";
    text = render(f);
    assert_line(text, "istio_tcp_connections_opened_total", open_v, 1);
    assert_line(text, "istio_tcp_connections_closed_total", open_v, 1);
    assert_line(text, "istio_tcp_connections_failed_total", open_v, 1);
}

static void test_byte_deltas(void **state)
{
    fixture_t *f = *state;
    zt_tcp_conn_t *a = zt_telemetry_open(f->t, &outbound, NULL);
    zt_tcp_conn_t *b = zt_telemetry_open(f->t, &outbound, NULL);
    zt_telemetry_bytes(a, 10, 0);
    const char *text = render(f);
    /* A long connection shows its bytes before it ends. */
    assert_line(text, "istio_tcp_sent_bytes_total", outbound_values, 10);
    assert_line(text, "istio_tcp_received_bytes_total", outbound_values, 0);
    zt_telemetry_bytes(a, 5, 7);
    zt_telemetry_bytes(b, 1u << 20, 3);
    zt_telemetry_bytes(a, 0, 0);
    text = render(f);
    assert_line(text, "istio_tcp_sent_bytes_total", outbound_values, 15 + (1u << 20));
    assert_line(text, "istio_tcp_received_bytes_total", outbound_values, 10);
    assert_line(text, "istio_tcp_connections_opened_total", outbound_values, 2);
    zt_telemetry_close(&a, "-", NULL);
    zt_telemetry_close(&b, "-", NULL);
    text = render(f);
    assert_line(text, "istio_tcp_sent_bytes_total", outbound_values, 15 + (1u << 20));
    assert_line(text, "istio_tcp_connections_closed_total", outbound_values, 2);
}

static void test_unknown_labels(void **state)
{
    fixture_t *f = *state;
    /* Passthrough from a pod to outside the mesh: almost nothing known. */
    zt_conn_labels_t l = {
        .reporter = "source",
        .source_workload = "sleep",
        .source_workload_namespace = "default",
        .destination_service = "",
    };
    zt_tcp_conn_t *c = zt_telemetry_open(f->t, &l, NULL);
    zt_telemetry_close(&c, "-", NULL);
    const char *const v[23] = {
        "source",    "sleep",   "unknown", "unknown", "default", "unknown", "unknown", "unknown",
        "cluster-a", "unknown", "unknown", "unknown", "unknown", "unknown", "unknown", "unknown",
        "unknown",   "unknown", "unknown", "unknown", "tcp",     "-",       "unknown",
    };
    const char *text = render(f);
    assert_line(text, "istio_tcp_connections_opened_total", v, 1);
    assert_line(text, "istio_tcp_connections_closed_total", v, 1);
    assert_null(zt_telemetry_open(NULL, &l, NULL));
    assert_null(zt_telemetry_open(f->t, NULL, NULL));
}

/* ---- access log ---- */

static json_t *read_entry(int fd)
{
    char buf[8192];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = 0;
    assert_int_equal(buf[n - 1], '\n');
    assert_null(memchr(buf, '\n', (size_t)n - 1)); /* exactly one line */
    json_error_t jerr;
    json_t *j = json_loads(buf, 0, &jerr);
    if (!j)
        fail_msg("bad JSON (%s): %s", jerr.text, buf);
    return j;
}

static const char *jstr(json_t *j, const char *key)
{
    return json_string_value(json_object_get(j, key));
}

static void assert_duration(json_t *j)
{
    const char *d = jstr(j, "duration");
    assert_non_null(d);
    char *end;
    (void)strtoull(d, &end, 10);
    assert_true(end > d);
    assert_string_equal(end, "ms");
}

static void test_access_log(void **state)
{
    fixture_t *f = *state;
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK), 0);
    int prev = zm_log_set_access_fd(p[1]);

    zt_conn_addrs_t addrs = {
        .src_addr = "10.0.1.5:41234",
        .dst_addr = "10.96.0.10:8080",
        .dst_hbone_addr = "10.0.2.7:8080",
    };
    zt_tcp_conn_t *c = zt_telemetry_open(f->t, &outbound, &addrs);
    zt_telemetry_bytes(c, 100, 40);
    zt_telemetry_bytes(c, 23, 2);
    zt_telemetry_close(&c, "-", NULL);
    json_t *j = read_entry(p[0]);
    assert_non_null(jstr(j, "ts"));
    assert_string_equal(jstr(j, "level"), "info");
    assert_string_equal(jstr(j, "scope"), "access");
    assert_string_equal(jstr(j, "message"), "connection complete");
    assert_string_equal(jstr(j, "src.addr"), "10.0.1.5:41234");
    assert_string_equal(jstr(j, "src.workload"), "sleep");
    assert_string_equal(jstr(j, "src.namespace"), "default");
    assert_string_equal(jstr(j, "src.identity"), "spiffe://cluster.local/ns/default/sa/sleep");
    assert_string_equal(jstr(j, "src.cluster"), "cluster-a");
    assert_string_equal(jstr(j, "dst.addr"), "10.96.0.10:8080");
    assert_string_equal(jstr(j, "dst.hbone_addr"), "10.0.2.7:8080");
    assert_string_equal(jstr(j, "dst.service"), "echo.default.svc.cluster.local");
    assert_string_equal(jstr(j, "dst.workload"), "echo-v2");
    assert_string_equal(jstr(j, "dst.namespace"), "default");
    assert_string_equal(jstr(j, "dst.identity"), "spiffe://cluster.local/ns/default/sa/echo");
    assert_string_equal(jstr(j, "dst.cluster"), "cluster-b");
    assert_string_equal(jstr(j, "direction"), "outbound");
    assert_int_equal(json_integer_value(json_object_get(j, "bytes_sent")), 123);
    assert_int_equal(json_integer_value(json_object_get(j, "bytes_recv")), 42);
    assert_duration(j);
    assert_null(json_object_get(j, "error"));
    json_decref(j);

    /* Inbound and denied, with little known: unknown fields are left out. */
    zt_conn_labels_t l = {
        .reporter = "destination",
        .source_principal = "spiffe://cluster.local/ns/other/sa/x",
        .destination_workload = "echo-v2",
        .destination_workload_namespace = "default",
    };
    c = zt_telemetry_open(f->t, &l, &(zt_conn_addrs_t){.src_addr = "10.0.3.3:5555"});
    zt_telemetry_close(&c, "DENY", "connection closed due to policy rejection");
    j = read_entry(p[0]);
    assert_string_equal(jstr(j, "level"), "error");
    assert_string_equal(jstr(j, "direction"), "inbound");
    assert_string_equal(jstr(j, "src.addr"), "10.0.3.3:5555");
    assert_string_equal(jstr(j, "src.identity"), "spiffe://cluster.local/ns/other/sa/x");
    assert_null(json_object_get(j, "src.workload"));
    assert_null(json_object_get(j, "src.cluster"));
    assert_null(json_object_get(j, "dst.addr"));
    assert_null(json_object_get(j, "dst.hbone_addr"));
    assert_null(json_object_get(j, "dst.service"));
    assert_string_equal(jstr(j, "dst.workload"), "echo-v2");
    assert_string_equal(jstr(j, "dst.cluster"), "cluster-a");
    assert_int_equal(json_integer_value(json_object_get(j, "bytes_sent")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "bytes_recv")), 0);
    assert_string_equal(jstr(j, "error"), "connection closed due to policy rejection");
    assert_duration(j);
    json_decref(j);

    zm_log_set_access_fd(prev);
    close(p[0]);
    close(p[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_build_info, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_denied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_byte_deltas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_labels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_access_log, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
