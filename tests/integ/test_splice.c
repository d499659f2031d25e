/*
 * TCP splice on loopback: a client thread talks through a splicing proxy
 * (accept → zm_splice_connect) to the lab target; all bytes arrive in both
 * directions, half-close passes through, a refused upstream closes the
 * client, and the splice reports its byte counts once.
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

#include "hbone_lab.h"
#include "splice.h"

typedef struct proxy {
    zm_loop_t *loop;
    zm_listener_t *listener;
    struct sockaddr_in upstream;
    int done;
    zm_splice_stats_t last;
} proxy_t;

static void spliced(zm_splice_t *sp, const zm_splice_stats_t *st, void *ctx)
{
    proxy_t *p = ctx;
    p->last = *st;
    __atomic_add_fetch(&p->done, 1, __ATOMIC_RELEASE);
}

static void on_accept(zm_listener_t *l, int fd, const struct sockaddr *peer, socklen_t len,
                      void *ctx)
{
    proxy_t *p = ctx;
    zm_sock_t *a;
    static const zm_sock_handlers_t none = {0};
    if (zm_sock_wrap(&a, p->loop, fd, &none, NULL) < 0) {
        close(fd);
        return;
    }
    if (zm_splice_connect(NULL, a, -1, (struct sockaddr *)&p->upstream, sizeof(p->upstream),
                          spliced, p) < 0)
        zm_sock_close(a, 0);
}

typedef struct client {
    int port;
    size_t len;
    size_t received;
    bool match, eof, done;
} client_t;

static void *client_main(void *arg)
{
    client_t *c = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    uint8_t *buf = malloc(c->len + 1), *back = malloc(c->len + 1);
    buf[0] = LAB_MODE_HOLD;
    lab_pattern(buf + 1, c->len, 9, 0);
    c->match = true;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        size_t off = 0;
        while (off < c->len + 1) {
            ssize_t n = send(fd, buf + off, c->len + 1 - off, MSG_NOSIGNAL);
            if (n <= 0)
                break;
            off += (size_t)n;
        }
        shutdown(fd, SHUT_WR);
        ssize_t n;
        while ((n = recv(fd, back + c->received, c->len + 1 - c->received, 0)) > 0)
            c->received += (size_t)n;
        c->eof = n == 0;
        c->match = c->received == c->len && !memcmp(back, buf + 1, c->len);
    }
    close(fd);
    free(buf);
    free(back);
    __atomic_store_n(&c->done, true, __ATOMIC_RELEASE);
    return NULL;
}

static void run(proxy_t *p, bool *flag, int *count, int want)
{
    uint64_t until = zm_now_ms() + 20000;
    while (zm_now_ms() < until) {
        if (flag && !__atomic_load_n(flag, __ATOMIC_ACQUIRE)) {
            zm_loop_run_once(p->loop, 10);
            continue;
        }
        if (count && __atomic_load_n(count, __ATOMIC_ACQUIRE) < want) {
            zm_loop_run_once(p->loop, 10);
            continue;
        }
        break;
    }
}

static void bytes_and_half_close_pass_through(void **state)
{
    alarm(60);
    proxy_t p = {0};
    zm_loop_config_t cfg = {0};
    zm_loop_config_defaults(&cfg);
    assert_int_equal(zm_loop_new(&p.loop, &cfg), 0);
    lab_target_t *target;
    assert_int_equal(lab_target_start(&target, p.loop, "127.0.0.1", 0, 0), 0);
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", lab_target_port(target));
    assert_int_equal(lab_parse_addr(addr, &p.upstream), 0);
    struct sockaddr_in any = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &any.sin_addr);
    assert_int_equal(zm_listener_new(&p.listener, p.loop, (struct sockaddr *)&any, sizeof(any), 0,
                                     on_accept, &p),
                     0);
    client_t c = {.port = zm_listener_port(p.listener), .len = 3 * 1024 * 1024 + 5};
    pthread_t th;
    pthread_create(&th, NULL, client_main, &c);
    run(&p, &c.done, NULL, 0);
    pthread_join(th, NULL);
    run(&p, NULL, &p.done, 1);
    assert_true(c.eof);
    assert_true(c.match);
    assert_int_equal(p.done, 1);
    assert_null(p.last.error);
    assert_int_equal(p.last.a_to_b, c.len + 1);
    assert_int_equal(p.last.b_to_a, c.len);

    /* An upstream that refuses: the client is closed, the splice reports. */
    p.upstream.sin_port = htons(1);
    client_t refused = {.port = c.port, .len = 10};
    pthread_create(&th, NULL, client_main, &refused);
    run(&p, &refused.done, NULL, 0);
    pthread_join(th, NULL);
    run(&p, NULL, &p.done, 2);
    assert_int_equal(refused.received, 0);
    assert_int_equal(p.done, 2);
    assert_non_null(p.last.error);

    zm_listener_close(&p.listener);
    for (int i = 0; i < 50 && zm_loop_socks_open(p.loop) > 0; i++)
        zm_loop_run_once(p.loop, 10);
    lab_target_stop(&target);
    zm_loop_destroy(&p.loop);
    alarm(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bytes_and_half_close_pass_through),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
