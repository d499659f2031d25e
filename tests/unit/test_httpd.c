/*
 * The operational HTTP endpoint on a real loop over loopback: routes,
 * query handling, and the error statuses for bad requests. A client thread
 * does plain blocking HTTP while the test thread runs the loop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "httpd.h"
#include "metrics.h"

typedef struct exchange {
    int port;
    const char *request;
    size_t request_len;
    char response[65536];
    size_t response_len;
    bool done;
} exchange_t;

static void *client_main(void *arg)
{
    exchange_t *x = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)x->port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        send(fd, x->request, x->request_len, MSG_NOSIGNAL) == (ssize_t)x->request_len) {
        ssize_t n;
        while (x->response_len < sizeof(x->response) - 1 &&
               (n = recv(fd, x->response + x->response_len,
                         sizeof(x->response) - 1 - x->response_len, 0)) > 0)
            x->response_len += (size_t)n;
    }
    x->response[x->response_len] = 0;
    close(fd);
    __atomic_store_n(&x->done, true, __ATOMIC_RELEASE);
    return NULL;
}

typedef struct fixture {
    zm_loop_t *loop;
    zm_httpd_t *httpd;
    zm_metrics_t *metrics;
    char last_query[256];
} fixture_t;

static int metrics_route(const zm_httpd_request_t *req, zm_strbuf_t *body, const char **ctype,
                         void *arg)
{
    *ctype = ZM_METRICS_CONTENT_TYPE;
    return zm_metrics_render(arg, body) == 0 ? 200 : 503;
}

static fixture_t *the_fixture;

static int echo_query_route(const zm_httpd_request_t *req, zm_strbuf_t *body, const char **ctype,
                            void *arg)
{
    snprintf(the_fixture->last_query, sizeof(the_fixture->last_query), "%s", req->query);
    zm_strbuf_appendf(body, "%s %s ?%s\n", req->method, req->path, req->query);
    return 200;
}

static zm_httpd_route_t routes[2];

static int setup(void **state)
{
    alarm(30);
    fixture_t *f = calloc(1, sizeof(*f));
    the_fixture = f;
    zm_loop_config_t cfg = {0};
    zm_loop_config_defaults(&cfg);
    assert_int_equal(zm_loop_new(&f->loop, &cfg), 0);
    assert_int_equal(zm_metrics_new(&f->metrics), 0);
    zm_counter_add(
        zm_metric_series(zm_metrics_counter(f->metrics, "demo_total", "Demo.", ZM_LABELS("kind")),
                         ZM_LABELS("a\"b")),
        7);
    routes[0] = (zm_httpd_route_t){"/metrics", metrics_route, f->metrics};
    routes[1] = (zm_httpd_route_t){"/echo", echo_query_route, NULL};
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(
        zm_httpd_new(&f->httpd, f->loop, (struct sockaddr *)&sa, sizeof(sa), 0, routes, 2), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    zm_httpd_free(&f->httpd);
    for (int i = 0; i < 50 && zm_loop_socks_open(f->loop) > 0; i++)
        zm_loop_run_once(f->loop, 10);
    zm_loop_destroy(&f->loop);
    zm_metrics_free(&f->metrics);
    free(f);
    alarm(0);
    return 0;
}

static void exchange(fixture_t *f, exchange_t *x, const char *request, size_t len)
{
    memset(x, 0, sizeof(*x));
    x->port = zm_httpd_port(f->httpd);
    x->request = request;
    x->request_len = len;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, client_main, x), 0);
    uint64_t until = zm_now_ms() + 10000;
    while (!__atomic_load_n(&x->done, __ATOMIC_ACQUIRE) && zm_now_ms() < until)
        zm_loop_run_once(f->loop, 10);
    pthread_join(th, NULL);
    assert_true(x->done);
}

#define EXCHANGE(f, x, lit) exchange((f), (x), (lit), sizeof(lit) - 1)

static void serves_metrics_in_prometheus_text(void **state)
{
    fixture_t *f = *state;
    exchange_t x;
    EXCHANGE(f, &x, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_non_null(strstr(x.response, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(x.response, "Content-Type: text/plain; version=0.0.4"));
    assert_non_null(strstr(x.response, "Connection: close\r\n"));
    assert_non_null(strstr(x.response, "\r\n\r\n# HELP demo_total Demo.\n"));
    assert_non_null(strstr(x.response, "demo_total{kind=\"a\\\"b\"} 7\n"));
    const char *body = strstr(x.response, "\r\n\r\n") + 4;
    char expect_len[64];
    snprintf(expect_len, sizeof(expect_len), "Content-Length: %zu\r\n", strlen(body));
    assert_non_null(strstr(x.response, expect_len));
}

static void hands_the_query_to_the_route(void **state)
{
    fixture_t *f = *state;
    exchange_t x;
    EXCHANGE(f, &x, "POST /echo?level=debug HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(x.response, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(x.response, "\r\n\r\nPOST /echo ?level=debug\n"));
    assert_string_equal(f->last_query, "level=debug");
}

static void answers_errors_with_their_statuses(void **state)
{
    fixture_t *f = *state;
    exchange_t x;
    EXCHANGE(f, &x, "GET /nope HTTP/1.1\r\n\r\n");
    assert_non_null(strstr(x.response, "HTTP/1.1 404 Not Found\r\n"));
    EXCHANGE(f, &x, "DELETE /metrics HTTP/1.1\r\n\r\n");
    assert_non_null(strstr(x.response, "HTTP/1.1 405 "));
    EXCHANGE(f, &x, "GET metrics\r\n\r\n");
    assert_non_null(strstr(x.response, "HTTP/1.1 400 "));
    EXCHANGE(f, &x, "GET /metrics SPDY/3\r\n\r\n");
    assert_non_null(strstr(x.response, "HTTP/1.1 400 "));
    EXCHANGE(f, &x, "GET /me\0trics HTTP/1.1\r\n\r\n");
    assert_non_null(strstr(x.response, "HTTP/1.1 400 "));
    static char huge[ZM_HTTPD_MAX_HEAD + 100];
    memset(huge, 'a', sizeof(huge));
    memcpy(huge, "GET /metrics HTTP/1.1\r\nX: ", 26);
    exchange(f, &x, huge, sizeof(huge));
    assert_non_null(strstr(x.response, "HTTP/1.1 431 "));
    /* Still serving after all that. */
    EXCHANGE(f, &x, "GET /metrics HTTP/1.1\r\n\r\n");
    assert_non_null(strstr(x.response, "HTTP/1.1 200 OK\r\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(serves_metrics_in_prometheus_text, setup, teardown),
        cmocka_unit_test_setup_teardown(hands_the_query_to_the_route, setup, teardown),
        cmocka_unit_test_setup_teardown(answers_errors_with_their_statuses, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
