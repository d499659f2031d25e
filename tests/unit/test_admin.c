/*
 * ztunnel's admin thread on loopback with ephemeral ports: every endpoint
 * fetched with a blocking client (statuses, bodies, content types), the
 * readiness flip, the log level change, /quitquitquit, disabled listeners
 * and start-up errors, and a clean stop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "admin.h"
#include "log.h"
#include "metrics.h"

typedef struct response {
    int status;
    char head[4096];
    char body[65536];
} response_t;

/* One request over a fresh connection; returns the status or -1. */
static int http(int port, const char *method, const char *target, response_t *r)
{
    memset(r, 0, sizeof(*r));
    r->status = -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    char req[512];
    int n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: localhost\r\n\r\n", method, target);
    static char buf[sizeof(r->head) + sizeof(r->body)];
    size_t len = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        send(fd, req, (size_t)n, MSG_NOSIGNAL) == n) {
        ssize_t got;
        while (len < sizeof(buf) - 1 && (got = recv(fd, buf + len, sizeof(buf) - 1 - len, 0)) > 0)
            len += (size_t)got;
    }
    close(fd);
    buf[len] = 0;
    char *end = strstr(buf, "\r\n\r\n");
    if (!end || sscanf(buf, "HTTP/1.1 %d", &r->status) != 1)
        return -1;
    snprintf(r->head, sizeof(r->head), "%.*s", (int)(end - buf), buf);
    snprintf(r->body, sizeof(r->body), "%s", end + 4);
    return r->status;
}

static void assert_header(const response_t *r, const char *line)
{
    if (!strcasestr(r->head, line))
        fail_msg("no \"%s\" in:\n%s", line, r->head);
}

/* ---- the daemon side ---- */

typedef struct daemon_state {
    atomic_bool ready;
    atomic_int quits;
    atomic_int dumps;
} daemon_state_t;

static char *config_dump(void *arg)
{
    daemon_state_t *d = arg;
    atomic_fetch_add(&d->dumps, 1);
    return strdup("{\"workloads\":[],\"version\":\"test\"}");
}

static char *workloads(void *arg)
{
    return strdup("[{\"name\":\"sleep\",\"namespace\":\"default\"}]");
}

static char *certs_unavailable(void *arg)
{
    return NULL;
}

static bool is_ready(void *arg)
{
    daemon_state_t *d = arg;
    return atomic_load(&d->ready);
}

static void quit(void *arg)
{
    daemon_state_t *d = arg;
    atomic_fetch_add(&d->quits, 1);
}

typedef struct fixture {
    daemon_state_t d;
    zm_metrics_t *m;
    zm_metric_series_t *counter;
    zt_admin_t *admin;
    int admin_port, metrics_port, ready_port;
} fixture_t;

static int setup(void **state)
{
    alarm(60);
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(zm_metrics_new(&f->m), 0);
    zm_metric_family_t *fam =
        zm_metrics_counter(f->m, "test_requests_total", "Requests.", ZM_LABELS("code"));
    f->counter = zm_metric_series(fam, ZM_LABELS("200"));
    zm_counter_add(f->counter, 3);
    zt_admin_sources_t src = {
        .config_dump = config_dump,
        .workloads = workloads,
        .certs = certs_unavailable,
        .ready = is_ready,
        .quit = quit,
        .metrics = f->m,
        .arg = &f->d,
    };
    zm_err_t err = {0};
    int rc = zt_admin_start(&f->admin, "127.0.0.1", 0, "127.0.0.1", 0, 0, &src, &err);
    if (rc < 0)
        fail_msg("start: %s", err.msg);
    f->admin_port = zt_admin_port(f->admin, ZT_ADMIN_ADMIN);
    f->metrics_port = zt_admin_port(f->admin, ZT_ADMIN_METRICS);
    f->ready_port = zt_admin_port(f->admin, ZT_ADMIN_READINESS);
    assert_true(f->admin_port > 0 && f->metrics_port > 0 && f->ready_port > 0);
    assert_int_not_equal(f->admin_port, f->metrics_port);
    assert_int_not_equal(f->metrics_port, f->ready_port);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    zt_admin_stop(&f->admin);
    assert_null(f->admin);
    zm_metrics_free(&f->m);
    free(f);
    alarm(0);
    return 0;
}

static void test_json_pages(void **state)
{
    fixture_t *f = *state;
    response_t r;
    assert_int_equal(http(f->admin_port, "GET", "/config_dump", &r), 200);
    assert_header(&r, "Content-Type: application/json");
    assert_string_equal(r.body, "{\"workloads\":[],\"version\":\"test\"}");
    assert_int_equal(atomic_load(&f->d.dumps), 1);
    assert_int_equal(http(f->admin_port, "GET", "/workloads", &r), 200);
    assert_string_equal(r.body, "[{\"name\":\"sleep\",\"namespace\":\"default\"}]");
    /* The source has nothing to give. */
    assert_int_equal(http(f->admin_port, "GET", "/certs", &r), 503);
    assert_int_equal(http(f->admin_port, "POST", "/config_dump", &r), 405);
    assert_int_equal(atomic_load(&f->d.dumps), 1);
    assert_int_equal(http(f->admin_port, "GET", "/", &r), 200);
    assert_non_null(strstr(r.body, "/config_dump"));
    assert_int_equal(http(f->admin_port, "GET", "/nope", &r), 404);
    /* Each listener serves only its own paths. */
    assert_int_equal(http(f->admin_port, "GET", "/metrics", &r), 404);
    assert_int_equal(http(f->metrics_port, "GET", "/config_dump", &r), 404);
    assert_int_equal(http(f->ready_port, "GET", "/metrics", &r), 404);
}

static void test_logging(void **state)
{
    fixture_t *f = *state;
    zm_log_level_t saved = zm_log_get_level();
    int prev_fd = zm_log_set_fd(-1);
    zm_log_set_level(ZM_LOG_INFO);
    response_t r;
    assert_int_equal(http(f->admin_port, "GET", "/logging", &r), 200);
    assert_string_equal(r.body, "current log level is info\n");

    assert_int_equal(http(f->admin_port, "POST", "/logging?level=debug", &r), 200);
    assert_string_equal(r.body, "current log level is debug\n");
    assert_int_equal(zm_log_get_level(), ZM_LOG_DEBUG);

    assert_int_equal(http(f->admin_port, "POST", "/logging?x=1&level=WARN", &r), 200);
    assert_int_equal(zm_log_get_level(), ZM_LOG_WARN);

    /* Refused changes leave the level alone. */
    assert_int_equal(http(f->admin_port, "POST", "/logging?level=verbose", &r), 400);
    assert_non_null(strstr(r.body, "verbose"));
    assert_int_equal(http(f->admin_port, "POST", "/logging", &r), 400);
    assert_int_equal(http(f->admin_port, "POST", "/logging?levels=debug", &r), 400);
    /* GET never changes it. */
    assert_int_equal(http(f->admin_port, "GET", "/logging?level=trace", &r), 200);
    assert_int_equal(zm_log_get_level(), ZM_LOG_WARN);

    zm_log_set_level(saved);
    zm_log_set_fd(prev_fd);
}

static void test_quit(void **state)
{
    fixture_t *f = *state;
    int prev_fd = zm_log_set_fd(-1);
    response_t r;
    assert_int_equal(http(f->admin_port, "GET", "/quitquitquit", &r), 405);
    assert_int_equal(atomic_load(&f->d.quits), 0);
    assert_int_equal(http(f->admin_port, "POST", "/quitquitquit", &r), 200);
    assert_int_equal(atomic_load(&f->d.quits), 1);
    zm_log_set_fd(prev_fd);
}

static void test_metrics(void **state)
{
    fixture_t *f = *state;
    response_t r;
    assert_int_equal(http(f->metrics_port, "GET", "/metrics", &r), 200);
    assert_header(&r, "Content-Type: " ZM_METRICS_CONTENT_TYPE);
    assert_non_null(strstr(r.body, "# TYPE test_requests_total counter\n"));
    assert_non_null(strstr(r.body, "\ntest_requests_total{code=\"200\"} 3\n"));
    /* Rendered per request: a later increment shows. */
    zm_counter_inc(f->counter);
    assert_int_equal(http(f->metrics_port, "GET", "/stats/prometheus", &r), 200);
    assert_non_null(strstr(r.body, "\ntest_requests_total{code=\"200\"} 4\n"));
    assert_int_equal(http(f->metrics_port, "POST", "/metrics", &r), 405);
}

static void test_readiness(void **state)
{
    fixture_t *f = *state;
    response_t r;
    assert_int_equal(http(f->ready_port, "GET", "/healthz/ready", &r), 503);
    assert_string_equal(r.body, "not ready\n");
    atomic_store(&f->d.ready, true);
    assert_int_equal(http(f->ready_port, "GET", "/healthz/ready", &r), 200);
    assert_string_equal(r.body, "ready\n");
    atomic_store(&f->d.ready, false);
    assert_int_equal(http(f->ready_port, "GET", "/healthz/ready", &r), 503);
}

/* No sources at all, and listeners left out. */
static void test_defaults_and_disabled(void **state)
{
    alarm(60);
    zt_admin_t *a = NULL;
    zm_err_t err = {0};
    assert_int_equal(zt_admin_start(&a, NULL, 0, "127.0.0.1", ZT_ADMIN_DISABLED, 0, NULL, &err), 0);
    assert_true(zt_admin_port(a, ZT_ADMIN_ADMIN) > 0);
    assert_int_equal(zt_admin_port(a, ZT_ADMIN_METRICS), -ENOENT);
    int rp = zt_admin_port(a, ZT_ADMIN_READINESS);
    assert_true(rp > 0);
    int ap = zt_admin_port(a, ZT_ADMIN_ADMIN);
    response_t r;
    assert_int_equal(http(ap, "GET", "/config_dump", &r), 404);
    assert_int_equal(http(ap, "POST", "/quitquitquit", &r), 404);
    assert_int_equal(http(rp, "GET", "/healthz/ready", &r), 200);
    zt_admin_stop(&a);
    assert_null(a);
    zt_admin_stop(&a); /* idempotent on NULL */
    /* The listener is closed after stop. */
    assert_int_equal(http(ap, "GET", "/", &r), -1);
}

static void test_start_errors(void **state)
{
    alarm(60);
    zt_admin_t *a = NULL, *b = NULL;
    zm_err_t err = {0};
    assert_int_equal(
        zt_admin_start(&a, "not-an-ip", 0, NULL, ZT_ADMIN_DISABLED, ZT_ADMIN_DISABLED, NULL, &err),
        -EINVAL);
    assert_non_null(strstr(err.msg, "not-an-ip"));
    assert_null(a);
    assert_int_equal(zt_admin_start(&a, "127.0.0.1", 70000, NULL, ZT_ADMIN_DISABLED,
                                    ZT_ADMIN_DISABLED, NULL, &err),
                     -EINVAL);
    /* A port already taken fails on the thread and is reported here. */
    assert_int_equal(zt_admin_start(&a, "127.0.0.1", 0, "127.0.0.1", ZT_ADMIN_DISABLED,
                                    ZT_ADMIN_DISABLED, NULL, &err),
                     0);
    int port = zt_admin_port(a, ZT_ADMIN_ADMIN);
    memset(&err, 0, sizeof(err));
    int rc = zt_admin_start(&b, "127.0.0.1", port, "127.0.0.1", ZT_ADMIN_DISABLED,
                            ZT_ADMIN_DISABLED, NULL, &err);
    assert_int_equal(rc, -EADDRINUSE);
    assert_null(b);
    assert_non_null(strstr(err.msg, "admin listener"));
    /* IPv6 loopback works too (when the host has it). */
    rc = zt_admin_start(&b, "::1", 0, "::1", ZT_ADMIN_DISABLED, ZT_ADMIN_DISABLED, NULL, &err);
    if (rc == 0)
        assert_true(zt_admin_port(b, ZT_ADMIN_ADMIN) > 0);
    zt_admin_stop(&b);
    zt_admin_stop(&a);
}

/* A client that never finishes its request does not hold stop up, and its
 * connection is dropped without a leak (ASan checks the latter). */
static void test_stop_drops_in_flight(void **state)
{
    alarm(60);
    zt_admin_t *a = NULL;
    zm_err_t err = {0};
    assert_int_equal(
        zt_admin_start(&a, "127.0.0.1", 0, "127.0.0.1", 0, ZT_ADMIN_DISABLED, NULL, &err), 0);
    int fds[2];
    for (int i = 0; i < 2; i++) {
        int port = zt_admin_port(a, i == 0 ? ZT_ADMIN_ADMIN : ZT_ADMIN_METRICS);
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        struct timeval tv = {.tv_sec = 5};
        setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        assert_int_equal(connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(send(fds[i], "GET /", 5, MSG_NOSIGNAL), 5);
    }
    /* A completed request on the same server, so the partial one has
     * certainly been accepted before stop (connections are taken in order). */
    response_t r;
    assert_int_equal(http(zt_admin_port(a, ZT_ADMIN_ADMIN), "GET", "/", &r), 200);
    assert_int_equal(http(zt_admin_port(a, ZT_ADMIN_METRICS), "GET", "/metrics", &r), 200);
    zt_admin_stop(&a);
    for (int i = 0; i < 2; i++) {
        char c;
        errno = 0;
        ssize_t n = recv(fds[i], &c, 1, 0);
        /* EOF or reset: dropped, not left to time out. */
        assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
        close(fds[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_json_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readiness, setup, teardown),
        cmocka_unit_test(test_defaults_and_disabled),
        cmocka_unit_test(test_start_errors),
        cmocka_unit_test(test_stop_drops_in_flight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
