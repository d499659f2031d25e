/*
 * zm-echo end to end on loopback: the test spawns the real binary
 * (build/config/echo/zm-echo, found next to this test's build directory
 * through /proc/self/exe), reads the ephemeral port from its "listening"
 * line, and talks HTTP/1.1, h2c (an nghttp2 client session over a blocking
 * socket) and raw TCP to it. Every socket has a receive timeout and every
 * test an alarm(), so nothing can hang; the server must exit 0 on SIGTERM
 * (under ASan that also means it leaked nothing).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TEST_ALARM_S 30

typedef struct server {
    pid_t pid;
    int port;
} server_t;

/* ---- the zm-echo process ---- */

static void echo_bin(char *out, size_t len)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    assert_true(n > 0);
    self[n] = 0;
    snprintf(out, len, "%s/../config/echo/zm-echo", dirname(self));
}

static void server_start(server_t *srv, const char *const *extra)
{
    char bin[PATH_MAX];
    echo_bin(bin, sizeof(bin));
    if (access(bin, X_OK) != 0)
        fail_msg("zm-echo not built at %s", bin);
    const char *argv[32] = {bin,     "--listen",    "0",    "--bind",    "127.0.0.1", "--pod",
                            "pod-a", "--namespace", "ns-a", "--version", "v1"};
    size_t n = 11;
    for (size_t i = 0; extra && extra[i] && n < 31; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    srv->pid = pid;
    srv->port = -1;
    char line[256];
    size_t len = 0;
    /* Bounded: 20 s for the line (the binary may run under ASan). */
    for (int i = 0; i < 200 && srv->port < 0; i++) {
        struct pollfd pfd = {.fd = p[0], .events = POLLIN};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t r = read(p[0], line + len, sizeof(line) - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        line[len] = 0;
        char *nl = strchr(line, '\n');
        char *colon = nl ? memrchr(line, ':', (size_t)(nl - line)) : NULL;
        if (colon)
            srv->port = atoi(colon + 1);
    }
    close(p[0]);
    assert_true(srv->port > 0);
}

/* SIGTERM, then wait (bounded) and expect a clean exit. */
static void server_stop(server_t *srv)
{
    kill(srv->pid, SIGTERM);
    int st = 0;
    pid_t r = 0;
    for (int i = 0; i < 200 && r == 0; i++) {
        r = waitpid(srv->pid, &st, WNOHANG);
        if (r == 0)
            usleep(50000);
    }
    if (r == 0) {
        kill(srv->pid, SIGKILL);
        waitpid(srv->pid, &st, 0);
        fail_msg("zm-echo did not exit on SIGTERM");
    }
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static int setup(void **state)
{
    static server_t srv;
    alarm(TEST_ALARM_S);
    server_start(&srv, NULL);
    *state = &srv;
    return 0;
}

/* Each test gets its own bound. */
static int arm(void **state)
{
    alarm(TEST_ALARM_S);
    return 0;
}

static int teardown(void **state)
{
    alarm(TEST_ALARM_S);
    server_stop(*state);
    alarm(0);
    return 0;
}

/* ---- sockets ---- */

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static void send_all(int fd, const void *p, size_t len)
{
    const char *c = p;
    while (len) {
        ssize_t n = send(fd, c, len, MSG_NOSIGNAL);
        assert_true(n > 0);
        c += n;
        len -= (size_t)n;
    }
}

/* Reads until EOF (or timeout: then fails). Returns a malloc'd buffer. */
static char *read_to_eof(int fd, size_t *out_len)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (len == cap)
            buf = realloc(buf, (cap *= 2) + 1);
        ssize_t n = recv(fd, buf + len, cap - len, 0);
        if (n == 0)
            break;
        if (n < 0) {
            free(buf);
            fail_msg("recv: %s", strerror(errno));
        }
        len += (size_t)n;
    }
    buf[len] = 0;
    *out_len = len;
    return buf;
}

/* An HTTP/1.1 client connection with a carry-over buffer (keep-alive). */
typedef struct h1c {
    int fd;
    char buf[1 << 16];
    size_t len;
} h1c_t;

typedef struct resp {
    int status;
    bool close;
    char *body; /* malloc'd, NUL-terminated */
    size_t body_len;
} resp_t;

static bool fill(h1c_t *c)
{
    assert_true(c->len < sizeof(c->buf));
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    assert_true(n >= 0);
    c->len += (size_t)n;
    return n > 0;
}

static void read_resp(h1c_t *c, resp_t *r)
{
    char *end;
    for (;;) {
        c->buf[c->len < sizeof(c->buf) ? c->len : sizeof(c->buf) - 1] = 0;
        if ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
            break;
        assert_true(fill(c));
    }
    size_t head_len = (size_t)(end - c->buf) + 4;
    *end = 0;
    assert_int_equal(sscanf(c->buf, "HTTP/1.1 %d", &r->status), 1);
    const char *cl = strcasestr(c->buf, "\r\nContent-Length: ");
    size_t body_len = cl ? strtoul(cl + 18, NULL, 10) : 0;
    r->close = strcasestr(c->buf, "\r\nConnection: close") != NULL;
    while (c->len < head_len + body_len)
        assert_true(fill(c));
    r->body = malloc(body_len + 1);
    memcpy(r->body, c->buf + head_len, body_len);
    r->body[body_len] = 0;
    r->body_len = body_len;
    memmove(c->buf, c->buf + head_len + body_len, c->len - head_len - body_len);
    c->len -= head_len + body_len;
}

static void resp_free(resp_t *r)
{
    free(r->body);
    r->body = NULL;
}

/* One request on a fresh connection. */
static void request(int port, const char *req, resp_t *r)
{
    h1c_t *c = calloc(1, sizeof(*c));
    c->fd = tcp_connect(port);
    send_all(c->fd, req, strlen(req));
    read_resp(c, r);
    close(c->fd);
    free(c);
}

static json_t *body_json(const resp_t *r)
{
    assert_true(r->body_len > 0);
    assert_int_equal(r->body[r->body_len - 1], '\n');
    assert_null(memchr(r->body, '\n', r->body_len - 1));
    json_error_t err;
    json_t *j = json_loads(r->body, 0, &err);
    if (!j)
        fail_msg("bad JSON (%s): %s", err.text, r->body);
    return j;
}

static const char *jget(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    assert_non_null(v);
    return json_string_value(v);
}

static json_int_t jint(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

/* ---- HTTP/1.1 ---- */

static void get_with_query_and_headers(void **state)
{
    server_t *srv = *state;
    resp_t r;
    request(srv->port,
            "GET /a/b?x=1&y=two HTTP/1.1\r\nHost: h\r\nX-Foo: a\r\nx-foo: b\r\nX-Bar: c\r\n\r\n",
            &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"pod\":\"pod-a\",\"namespace\":\"ns-a\",\"version\":\"v1\","
                                "\"method\":\"GET\",\"path\":\"/a/b\",\"query\":\"x=1&y=two\","
                                "\"headers\":{\"host\":\"h\",\"x-foo\":\"a, b\",\"x-bar\":\"c\"},"
                                "\"body_bytes\":0}\n");
    resp_free(&r);
}

static void keep_alive_two_requests_then_pipelined(void **state)
{
    server_t *srv = *state;
    h1c_t *c = calloc(1, sizeof(*c));
    c->fd = tcp_connect(srv->port);
    const char *paths[] = {"/one", "/two"};
    for (int i = 0; i < 2; i++) {
        char req[128];
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: h\r\n\r\n", paths[i]);
        send_all(c->fd, req, strlen(req));
        resp_t r;
        read_resp(c, &r);
        assert_int_equal(r.status, 200);
        assert_false(r.close);
        json_t *j = body_json(&r);
        assert_string_equal(jget(j, "path"), paths[i]);
        json_decref(j);
        resp_free(&r);
    }
    /* Pipelined, the first one delayed: answers come in request order. */
    const char *pipe_req = "GET /p1?delay=100 HTTP/1.1\r\nHost: h\r\n\r\n"
                           "GET /p2 HTTP/1.1\r\nHost: h\r\n\r\n"
                           "GET /p3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    send_all(c->fd, pipe_req, strlen(pipe_req));
    for (int i = 1; i <= 3; i++) {
        resp_t r;
        read_resp(c, &r);
        assert_int_equal(r.status, 200);
        json_t *j = body_json(&r);
        char want[8];
        snprintf(want, sizeof(want), "/p%d", i);
        assert_string_equal(jget(j, "path"), want);
        assert_int_equal(r.close, i == 3);
        json_decref(j);
        resp_free(&r);
    }
    assert_false(fill(c)); /* closed after Connection: close */
    close(c->fd);
    free(c);
}

static void post_bodies_are_counted(void **state)
{
    server_t *srv = *state;
    resp_t r;
    request(srv->port, "POST /cl HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world", &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_string_equal(jget(j, "method"), "POST");
    assert_int_equal(jint(j, "body_bytes"), 11);
    json_decref(j);
    resp_free(&r);

    request(srv->port,
            "POST /chunked HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            "5\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n",
            &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_string_equal(jget(j, "path"), "/chunked");
    assert_int_equal(jint(j, "body_bytes"), 21);
    json_decref(j);
    resp_free(&r);
}

static void options_status_delay_size_fail(void **state)
{
    server_t *srv = *state;
    resp_t r;
    request(srv->port, "GET /?status=418 HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    assert_int_equal(r.status, 418);
    json_decref(body_json(&r));
    resp_free(&r);

    request(srv->port, "GET / HTTP/1.1\r\nHost: h\r\nX-Echo-Status: 202\r\n\r\n", &r);
    assert_int_equal(r.status, 202);
    resp_free(&r);

    /* Delayed through a loop timer: it must still arrive (no timing check). */
    request(srv->port, "GET /slow?delay=200 HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_string_equal(jget(j, "path"), "/slow");
    json_decref(j);
    resp_free(&r);

    request(srv->port, "GET /?size=1000 HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 1000);
    j = body_json(&r);
    assert_true(strspn(jget(j, "pad"), "x") == strlen(jget(j, "pad")));
    json_decref(j);
    resp_free(&r);

    for (int i = 0; i < 3; i++) {
        request(srv->port, "GET /?fail=1.0 HTTP/1.1\r\nHost: h\r\n\r\n", &r);
        assert_int_equal(r.status, 503);
        resp_free(&r);
        request(srv->port, "GET /?fail=0 HTTP/1.1\r\nHost: h\r\n\r\n", &r);
        assert_int_equal(r.status, 200);
        resp_free(&r);
    }
    request(srv->port, "GET /?status=abc HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    assert_int_equal(r.status, 400);
    resp_free(&r);
}

static void garbage_after_request_line_is_400_and_closes(void **state)
{
    server_t *srv = *state;
    int fd = tcp_connect(srv->port);
    const char *req = "GET / HTTP/1.1\r\n\x01\x02 this is no header\r\n\r\n";
    send_all(fd, req, strlen(req));
    size_t len;
    char *all = read_to_eof(fd, &len);
    assert_true(strncmp(all, "HTTP/1.1 400 ", 13) == 0);
    assert_non_null(strstr(all, "Connection: close\r\n"));
    free(all);
    close(fd);
}

static void pod_flags_apply_to_every_request(void **state)
{
    server_t other;
    const char *const extra[] = {"--fail", "1", "--delay-ms", "50", NULL};
    server_start(&other, extra);
    resp_t r;
    request(other.port, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    assert_int_equal(r.status, 503);
    json_t *j = body_json(&r);
    assert_string_equal(jget(j, "pod"), "pod-a");
    json_decref(j);
    resp_free(&r);
    /* The request's own option wins over the pod's. */
    request(other.port, "GET /?fail=0 HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    server_stop(&other);
}

/* ---- raw TCP ---- */

static void raw_bytes_echo_and_half_close(void **state)
{
    server_t *srv = *state;
    size_t n = 64 * 1024;
    uint8_t *data = malloc(n);
    memcpy(data, "hello, not HTTP\0\xff", 17);
    for (size_t i = 17; i < n; i++)
        data[i] = (uint8_t)(i * 2654435761u >> 13);
    int fd = tcp_connect(srv->port);
    send_all(fd, data, n);
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    size_t len;
    char *back = read_to_eof(fd, &len);
    assert_int_equal(len, n);
    assert_memory_equal(back, data, n);
    free(back);
    free(data);
    close(fd);

    /* A prefix that could still become HTTP, then FIN: echoed as is. */
    fd = tcp_connect(srv->port);
    send_all(fd, "GET", 3);
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    back = read_to_eof(fd, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(back, "GET", 3);
    free(back);
    close(fd);
}

/* ---- h2c ---- */

typedef struct h2_stream {
    int32_t id;
    int status;
    bool closed;
    char body[4096];
    size_t body_len;
} h2_stream_t;

static int h2_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                        size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *u)
{
    h2_stream_t *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (st && nlen == 7 && memcmp(name, ":status", 7) == 0)
        st->status = atoi((const char *)value);
    return 0;
}

static int h2_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
                      size_t len, void *u)
{
    h2_stream_t *st = nghttp2_session_get_stream_user_data(s, id);
    if (st && st->body_len + len < sizeof(st->body)) {
        memcpy(st->body + st->body_len, data, len);
        st->body_len += len;
    }
    return 0;
}

static int h2_on_close(nghttp2_session *s, int32_t id, uint32_t code, void *u)
{
    h2_stream_t *st = nghttp2_session_get_stream_user_data(s, id);
    if (st)
        st->closed = true;
    return 0;
}

static ssize_t h2_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                       nghttp2_data_source *src, void *u)
{
    memcpy(buf, "ping!", 5);
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    return 5;
}

#define NV(n, v)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE                 \
    }

static void h2c_prior_knowledge_streams(void **state)
{
    server_t *srv = *state;
    int fd = tcp_connect(srv->port);
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, h2_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, h2_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, h2_on_close);
    nghttp2_session *sess;
    assert_int_equal(nghttp2_session_client_new(&sess, cbs, NULL), 0);
    nghttp2_session_callbacks_del(cbs);
    assert_int_equal(nghttp2_submit_settings(sess, NGHTTP2_FLAG_NONE, NULL, 0), 0);

    h2_stream_t st[3] = {0};
    const nghttp2_nv get1[] = {NV(":method", "GET"), NV(":scheme", "http"),
                               NV(":authority", "echo.test"), NV(":path", "/h2/one?k=v"),
                               NV("x-test", "1")};
    const nghttp2_nv get2[] = {NV(":method", "GET"), NV(":scheme", "http"),
                               NV(":authority", "echo.test"), NV(":path", "/h2/two?delay=100")};
    const nghttp2_nv post[] = {NV(":method", "POST"), NV(":scheme", "http"),
                               NV(":authority", "echo.test"), NV(":path", "/h2/post?status=201")};
    nghttp2_data_provider prd = {.read_callback = h2_body};
    st[0].id =
        nghttp2_submit_request(sess, NULL, get1, sizeof(get1) / sizeof(get1[0]), NULL, &st[0]);
    st[1].id =
        nghttp2_submit_request(sess, NULL, get2, sizeof(get2) / sizeof(get2[0]), NULL, &st[1]);
    st[2].id =
        nghttp2_submit_request(sess, NULL, post, sizeof(post) / sizeof(post[0]), &prd, &st[2]);
    for (int i = 0; i < 3; i++)
        assert_true(st[i].id > 0);

    /* Pump until all three streams closed; bounded by 400 rounds. */
    for (int round = 0; round < 400 && !(st[0].closed && st[1].closed && st[2].closed); round++) {
        const uint8_t *out;
        ssize_t n;
        while ((n = nghttp2_session_mem_send(sess, &out)) > 0)
            send_all(fd, out, (size_t)n);
        assert_true(n == 0);
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        uint8_t buf[16384];
        ssize_t r = recv(fd, buf, sizeof(buf), 0);
        assert_true(r > 0);
        assert_int_equal(nghttp2_session_mem_recv(sess, buf, (size_t)r), r);
    }
    for (int i = 0; i < 3; i++)
        assert_true(st[i].closed);

    assert_int_equal(st[0].status, 200);
    st[0].body[st[0].body_len] = 0;
    resp_t r0 = {.body = st[0].body, .body_len = st[0].body_len};
    json_t *j = body_json(&r0);
    assert_string_equal(jget(j, "method"), "GET");
    assert_string_equal(jget(j, "path"), "/h2/one");
    assert_string_equal(jget(j, "query"), "k=v");
    json_t *h = json_object_get(j, "headers");
    assert_string_equal(jget(h, "x-test"), "1");
    assert_string_equal(jget(h, "host"), "echo.test");
    json_decref(j);

    assert_int_equal(st[1].status, 200);
    st[1].body[st[1].body_len] = 0;
    resp_t r1 = {.body = st[1].body, .body_len = st[1].body_len};
    j = body_json(&r1);
    assert_string_equal(jget(j, "path"), "/h2/two");
    json_decref(j);

    assert_int_equal(st[2].status, 201);
    st[2].body[st[2].body_len] = 0;
    resp_t r2 = {.body = st[2].body, .body_len = st[2].body_len};
    j = body_json(&r2);
    assert_string_equal(jget(j, "method"), "POST");
    assert_int_equal(jint(j, "body_bytes"), 5);
    json_decref(j);

    nghttp2_session_del(sess);
    close(fd);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(get_with_query_and_headers, arm),
        cmocka_unit_test_setup(keep_alive_two_requests_then_pipelined, arm),
        cmocka_unit_test_setup(post_bodies_are_counted, arm),
        cmocka_unit_test_setup(options_status_delay_size_fail, arm),
        cmocka_unit_test_setup(garbage_after_request_line_is_400_and_closes, arm),
        cmocka_unit_test_setup(pod_flags_apply_to_every_request, arm),
        cmocka_unit_test_setup(raw_bytes_echo_and_half_close, arm),
        cmocka_unit_test_setup(h2c_prior_knowledge_streams, arm),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
