/* Unit tests of metrics.c: exact text exposition, lock-free updates from
 * many threads, bounded cardinality. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static int setup(void **state)
{
    zm_metrics_t *m = NULL;
    if (zm_metrics_new(&m) < 0)
        return -1;
    *state = m;
    return 0;
}

static int teardown(void **state)
{
    zm_metrics_t *m = *state;
    zm_metrics_free(&m);
    assert_null(m);
    return 0;
}

/* Render into a fresh string; the caller frees it. */
static char *render(zm_metrics_t *m)
{
    zm_strbuf_t sb = {0};
    assert_int_equal(zm_metrics_render(m, &sb), 0);
    char *s = zm_strbuf_detach(&sb, NULL);
    return s ? s : strdup("");
}

static void assert_render(zm_metrics_t *m, const char *expected)
{
    char *got = render(m);
    assert_string_equal(got, expected);
    free(got);
}

static void counters_render_exactly(void **state)
{
    zm_metrics_t *m = *state;
    zm_metric_family_t *req = zm_metrics_counter(m, "zm_requests_total", "Requests handled.",
                                                 ZM_LABELS("method", "code"));
    zm_metric_family_t *up = zm_metrics_counter(m, "zm_starts_total", "Starts.", NULL);
    assert_non_null(req);
    assert_non_null(up);
    zm_metric_series_t *get = zm_metric_series(req, ZM_LABELS("GET", "200"));
    zm_metric_series_t *post = zm_metric_series(req, ZM_LABELS("POST", "500"));
    assert_ptr_equal(zm_metric_series(req, ZM_LABELS("GET", "200")), get);
    zm_counter_add(get, 3);
    zm_counter_inc(post);
    zm_counter_inc(zm_metric_series(up, NULL));
    assert_int_equal(zm_counter_get(get), 3);
    assert_render(m, "# HELP zm_requests_total Requests handled.\n"
                     "# TYPE zm_requests_total counter\n"
                     "zm_requests_total{method=\"GET\",code=\"200\"} 3\n"
                     "zm_requests_total{method=\"POST\",code=\"500\"} 1\n"
                     "# HELP zm_starts_total Starts.\n"
                     "# TYPE zm_starts_total counter\n"
                     "zm_starts_total 1\n");
}

static void gauges_add_and_set(void **state)
{
    zm_metrics_t *m = *state;
    zm_metric_family_t *g = zm_metrics_gauge(m, "zm_conns", "Open connections.", ZM_LABELS("dir"));
    zm_metric_series_t *in = zm_metric_series(g, ZM_LABELS("in"));
    zm_metric_series_t *out = zm_metric_series(g, ZM_LABELS("out"));
    zm_gauge_add(in, 5);
    zm_gauge_add(in, -2);
    zm_gauge_set(out, -7);
    assert_int_equal(zm_gauge_get(in), 3);
    assert_render(m, "# HELP zm_conns Open connections.\n"
                     "# TYPE zm_conns gauge\n"
                     "zm_conns{dir=\"in\"} 3\n"
                     "zm_conns{dir=\"out\"} -7\n");
}

static void histograms_are_cumulative(void **state)
{
    zm_metrics_t *m = *state;
    const double bounds[] = {0.25, 1, 2.5};
    zm_metric_family_t *h =
        zm_metrics_histogram(m, "zm_latency_seconds", "Latency.", ZM_LABELS("route"), bounds, 3);
    const double b2[] = {0.005, 10};
    zm_metric_family_t *h2 = zm_metrics_histogram(m, "zm_size", "Sizes.", NULL, b2, 2);
    assert_non_null(h);
    assert_non_null(h2);
    zm_metric_series_t *s = zm_metric_series(h, ZM_LABELS("r1"));
    zm_histogram_observe(s, 0.125);
    zm_histogram_observe(s, 0.25); /* le is inclusive */
    zm_histogram_observe(s, 0.5);
    zm_histogram_observe(s, 3);
    zm_histogram_observe(s, NAN); /* NaN: ignored */
    assert_int_equal(zm_histogram_count(s), 4);
    assert_true(zm_histogram_sum(s) == 3.875);
    zm_histogram_observe(zm_metric_series(h2, NULL), 0.001);
    assert_render(m, "# HELP zm_latency_seconds Latency.\n"
                     "# TYPE zm_latency_seconds histogram\n"
                     "zm_latency_seconds_bucket{route=\"r1\",le=\"0.25\"} 2\n"
                     "zm_latency_seconds_bucket{route=\"r1\",le=\"1\"} 3\n"
                     "zm_latency_seconds_bucket{route=\"r1\",le=\"2.5\"} 3\n"
                     "zm_latency_seconds_bucket{route=\"r1\",le=\"+Inf\"} 4\n"
                     "zm_latency_seconds_sum{route=\"r1\"} 3.875\n"
                     "zm_latency_seconds_count{route=\"r1\"} 4\n"
                     "# HELP zm_size Sizes.\n"
                     "# TYPE zm_size histogram\n"
                     "zm_size_bucket{le=\"0.005\"} 1\n"
                     "zm_size_bucket{le=\"10\"} 1\n"
                     "zm_size_bucket{le=\"+Inf\"} 1\n"
                     "zm_size_sum 0.001\n"
                     "zm_size_count 1\n");
}

static void labels_escaped_and_in_declared_order(void **state)
{
    zm_metrics_t *m = *state;
    zm_metric_family_t *f = zm_metrics_counter(m, "zm_x", "Help with \\ and\nnewline \"quoted\".",
                                               ZM_LABELS("zeta", "alpha"));
    zm_counter_add(zm_metric_series(f, ZM_LABELS("b", "a\\b\"c\nd")), 2);
    zm_counter_add(zm_metric_series(f, ZM_LABELS("a", "")), 1);
    assert_render(m, "# HELP zm_x Help with \\\\ and\\nnewline \"quoted\".\n"
                     "# TYPE zm_x counter\n"
                     "zm_x{zeta=\"b\",alpha=\"a\\\\b\\\"c\\nd\"} 2\n"
                     "zm_x{zeta=\"a\",alpha=\"\"} 1\n");
}

static void registration_rules(void **state)
{
    zm_metrics_t *m = *state;
    const double b[] = {1, 2}, bad[] = {2, 1};
    zm_metric_family_t *f = zm_metrics_counter(m, "zm_c", NULL, ZM_LABELS("a"));
    assert_non_null(f);
    assert_ptr_equal(zm_metrics_counter(m, "zm_c", "other help", ZM_LABELS("a")), f);
    assert_null(zm_metrics_gauge(m, "zm_c", NULL, ZM_LABELS("a")));
    assert_null(zm_metrics_counter(m, "zm_c", NULL, ZM_LABELS("b")));
    assert_null(zm_metrics_counter(m, "9bad", NULL, NULL));
    assert_null(zm_metrics_counter(m, "bad-name", NULL, NULL));
    assert_null(zm_metrics_counter(m, "zm_d", NULL, ZM_LABELS("__reserved")));
    assert_null(zm_metrics_counter(m, "zm_d", NULL, ZM_LABELS("a", "a")));
    assert_null(zm_metrics_counter(m, "zm_d", NULL, ZM_LABELS("a:b")));
    assert_null(zm_metrics_histogram(m, "zm_h", NULL, ZM_LABELS("le"), b, 2));
    assert_null(zm_metrics_histogram(m, "zm_h", NULL, NULL, bad, 2));
    assert_null(zm_metrics_histogram(m, "zm_h", NULL, NULL, b, 0));
    assert_non_null(zm_metrics_histogram(m, "ns:zm_h", NULL, NULL, b, 2));
    /* wrong number of label values is misuse: NULL, and updates on NULL are no-ops */
    assert_null(zm_metric_series(f, NULL));
    assert_null(zm_metric_series(f, ZM_LABELS("x", "y")));
    zm_counter_inc(NULL);
    zm_gauge_set(NULL, 1);
    zm_histogram_observe(NULL, 1);
    /* help defaults to empty */
    assert_render(m, "# HELP zm_c \n# TYPE zm_c counter\n"
                     "# HELP ns:zm_h \n# TYPE ns:zm_h histogram\n"
                     "ns:zm_h_bucket{le=\"1\"} 0\nns:zm_h_bucket{le=\"2\"} 0\n"
                     "ns:zm_h_bucket{le=\"+Inf\"} 0\nns:zm_h_sum 0\nns:zm_h_count 0\n");
}

static void cardinality_is_capped(void **state)
{
    zm_metrics_t *m = *state;
    zm_metrics_set_series_limit(m, 2);
    zm_metric_family_t *f = zm_metrics_counter(m, "zm_peer_total", "Per peer.", ZM_LABELS("peer"));
    zm_metric_series_t *a = zm_metric_series(f, ZM_LABELS("a"));
    zm_metric_series_t *b = zm_metric_series(f, ZM_LABELS("b"));
    zm_metric_series_t *c = zm_metric_series(f, ZM_LABELS("c"));
    zm_metric_series_t *d = zm_metric_series(f, ZM_LABELS("d"));
    assert_non_null(c);
    assert_ptr_equal(c, d); /* the shared overflow series */
    assert_ptr_not_equal(a, c);
    assert_ptr_equal(zm_metric_series(f, ZM_LABELS("a")), a); /* old ones still found */
    assert_ptr_equal(zm_metric_series(f, ZM_LABELS(ZM_METRICS_OVERFLOW_VALUE)), c);
    assert_int_equal(zm_metric_family_series_count(f), 2);
    assert_int_equal(zm_metric_family_overflows(f), 2);
    for (int i = 0; i < 1000; i++) {
        char v[16];
        snprintf(v, sizeof(v), "p%d", i);
        zm_counter_inc(zm_metric_series(f, ZM_LABELS(v)));
    }
    assert_int_equal(zm_metric_family_series_count(f), 2);
    zm_counter_inc(a);
    zm_counter_inc(b);
    zm_counter_inc(d);
    assert_render(m, "# HELP zm_peer_total Per peer.\n"
                     "# TYPE zm_peer_total counter\n"
                     "zm_peer_total{peer=\"a\"} 1\n"
                     "zm_peer_total{peer=\"b\"} 1\n"
                     "zm_peer_total{peer=\"__overflow__\"} 1001\n"
                     "# HELP zmesh_metrics_series_overflow_total Series lookups that hit a "
                     "family's series limit.\n"
                     "# TYPE zmesh_metrics_series_overflow_total counter\n"
                     "zmesh_metrics_series_overflow_total{family=\"zm_peer_total\"} 1002\n");
    /* raising the cap lets new series in again */
    zm_metric_family_set_series_limit(f, 3);
    assert_ptr_not_equal(zm_metric_series(f, ZM_LABELS("e")), c);
    assert_int_equal(zm_metric_family_series_count(f), 3);
}

static void many_series_hash_and_grow(void **state)
{
    zm_metrics_t *m = *state;
    zm_metric_family_t *f = zm_metrics_gauge(m, "zm_g", "g", ZM_LABELS("a", "b"));
    zm_metric_series_t *s[500];
    for (int i = 0; i < 500; i++) {
        char a[16], b[16];
        snprintf(a, sizeof(a), "%d", i);
        snprintf(b, sizeof(b), "x%d", i % 7);
        s[i] = zm_metric_series(f, ZM_LABELS(a, b));
        zm_gauge_set(s[i], i);
    }
    /* ("ab","") and ("a","b") are different series */
    assert_ptr_not_equal(zm_metric_series(f, ZM_LABELS("ab", "")),
                         zm_metric_series(f, ZM_LABELS("a", "b")));
    for (int i = 0; i < 500; i++) {
        char a[16], b[16];
        snprintf(a, sizeof(a), "%d", i);
        snprintf(b, sizeof(b), "x%d", i % 7);
        assert_ptr_equal(zm_metric_series(f, ZM_LABELS(a, b)), s[i]);
        assert_int_equal(zm_gauge_get(s[i]), i);
    }
    assert_int_equal(zm_metric_family_series_count(f), 502);
}

/* ---- concurrency ---- */

#define THREADS 8
#define ITERS 100000

struct worker_arg {
    zm_metric_family_t *c, *g, *h;
};

static void *worker(void *p)
{
    struct worker_arg *a = p;
    /* every thread looks the series up itself: creation must race safely */
    zm_metric_series_t *c = zm_metric_series(a->c, ZM_LABELS("shared"));
    zm_metric_series_t *g = zm_metric_series(a->g, ZM_LABELS("shared"));
    zm_metric_series_t *h = zm_metric_series(a->h, ZM_LABELS("shared"));
    for (int i = 0; i < ITERS; i++) {
        zm_counter_inc(c);
        zm_gauge_add(g, (i & 1) ? -1 : 2);
        zm_histogram_observe(h, (i & 1) ? 0.5 : 4);
    }
    return NULL;
}

static void concurrent_updates_are_exact(void **state)
{
    zm_metrics_t *m = *state;
    const double bounds[] = {1, 2};
    struct worker_arg a = {
        .c = zm_metrics_counter(m, "zm_c_total", "c", ZM_LABELS("k")),
        .g = zm_metrics_gauge(m, "zm_g", "g", ZM_LABELS("k")),
        .h = zm_metrics_histogram(m, "zm_h", "h", ZM_LABELS("k"), bounds, 2),
    };
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker, &a), 0);
    /* render while they run: must not crash or race (ASan/TSan food) */
    for (int i = 0; i < 20; i++)
        free(render(m));
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(zm_metric_family_series_count(a.c), 1);
    zm_metric_series_t *h = zm_metric_series(a.h, ZM_LABELS("shared"));
    assert_int_equal(zm_counter_get(zm_metric_series(a.c, ZM_LABELS("shared"))),
                     (uint64_t)THREADS * ITERS);
    assert_int_equal(zm_gauge_get(zm_metric_series(a.g, ZM_LABELS("shared"))),
                     (int64_t)THREADS * ITERS / 2);
    assert_int_equal(zm_histogram_count(h), (uint64_t)THREADS * ITERS);
    /* 0.5 and 4 are exact in binary and the sums stay far below 2^53 */
    assert_true(zm_histogram_sum(h) == (double)THREADS * (ITERS / 2) * 4.5);
    char *txt = render(m);
    assert_non_null(strstr(txt, "zm_h_bucket{k=\"shared\",le=\"1\"} 400000\n"
                                "zm_h_bucket{k=\"shared\",le=\"2\"} 400000\n"
                                "zm_h_bucket{k=\"shared\",le=\"+Inf\"} 800000\n"
                                "zm_h_sum{k=\"shared\"} 1800000\n"
                                "zm_h_count{k=\"shared\"} 800000\n"));
    free(txt);
}

static void render_appends_and_reports_buffer_limit(void **state)
{
    zm_metrics_t *m = *state;
    zm_counter_inc(zm_metric_series(zm_metrics_counter(m, "zm_a", "a", NULL), NULL));
    zm_strbuf_t sb = {0};
    zm_strbuf_appends(&sb, "prefix\n");
    assert_int_equal(zm_metrics_render(m, &sb), 0);
    assert_string_equal(zm_strbuf_str(&sb), "prefix\n# HELP zm_a a\n# TYPE zm_a counter\nzm_a 1\n");
    zm_strbuf_free(&sb);
    sb.limit = 10;
    assert_int_equal(zm_metrics_render(m, &sb), -ENOBUFS);
    assert_true(sb.len <= 10);
    zm_strbuf_free(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(counters_render_exactly, setup, teardown),
        cmocka_unit_test_setup_teardown(gauges_add_and_set, setup, teardown),
        cmocka_unit_test_setup_teardown(histograms_are_cumulative, setup, teardown),
        cmocka_unit_test_setup_teardown(labels_escaped_and_in_declared_order, setup, teardown),
        cmocka_unit_test_setup_teardown(registration_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(cardinality_is_capped, setup, teardown),
        cmocka_unit_test_setup_teardown(many_series_hash_and_grow, setup, teardown),
        cmocka_unit_test_setup_teardown(concurrent_updates_are_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(render_appends_and_reports_buffer_limit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
