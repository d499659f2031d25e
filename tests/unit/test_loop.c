/*
 * Unit tests of loop.c / loop_sock.c / workers.c on real sockets over
 * 127.0.0.1 (and socketpairs): echo with half-close, stale completions after
 * close and slot reuse, pool exhaustion, backpressure with pause/resume,
 * timers, cross-thread post, and SO_REUSEPORT workers with drain. Every wait
 * is a bounded loop and alarm(20) bounds the whole binary.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop.h"
#include "workers.h"

/* Runs the loop until *flag becomes true (bounded). */
static void run_until(zm_loop_t *loop, const bool *flag)
{
    for (int i = 0; i < 20000 && !*flag; i++)
        assert_true(zm_loop_run_once(loop, 20) >= 0);
    assert_true(*flag);
}

static struct sockaddr_in lo_addr(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static uint8_t pattern(size_t i)
{
    return (uint8_t)(i * 31 + (i >> 13));
}

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}
#define FNV0 1469598103934665603ull

/* ---- echo ---- */

#define ECHO_TOTAL (4u << 20)

struct echo {
    zm_sock_t *server, *client;
    size_t sent, recvd, recvd_at_eof;
    uint64_t sum_sent, sum_recv;
    bool server_eof, client_eof, server_closed, client_closed;
    int client_err;
};
static struct echo E;

static void srv_data(zm_sock_t *s, const uint8_t *d, size_t n)
{
    assert_int_equal(zm_sock_send(s, d, n), 0);
}
static void srv_eof(zm_sock_t *s)
{
    E.server_eof = true;
    assert_int_equal(zm_sock_shutdown_write(s), 0);
}
static void srv_close(zm_sock_t *s, int err)
{
    E.server_closed = true;
}
static void srv_drain(zm_sock_t *s)
{
    if (E.server_eof && zm_sock_send_queued(s) == 0)
        zm_sock_close(s, 0);
}
static const zm_sock_handlers_t srv_h = {
    .on_data = srv_data, .on_eof = srv_eof, .on_close = srv_close, .on_drain = srv_drain};

static void echo_accept(zm_listener_t *l, int fd, const struct sockaddr *peer, socklen_t plen,
                        void *ctx)
{
    assert_true(plen > 0);
    assert_int_equal(peer->sa_family, AF_INET);
    assert_int_equal(zm_sock_wrap(&E.server, ctx, fd, &srv_h, NULL), 0);
}

static void cli_pump(zm_sock_t *s)
{
    static uint8_t piece[7919];
    while (E.sent < ECHO_TOTAL && zm_sock_send_queued(s) < 512 * 1024) {
        size_t n = ZM_MIN(sizeof(piece), ECHO_TOTAL - E.sent);
        for (size_t i = 0; i < n; i++)
            piece[i] = pattern(E.sent + i);
        assert_int_equal(zm_sock_send(s, piece, n), 0);
        E.sum_sent = fnv(E.sum_sent, piece, n);
        E.sent += n;
    }
    if (E.sent == ECHO_TOTAL)
        zm_sock_shutdown_write(s);
}
static void cli_connect(zm_sock_t *s, int res)
{
    assert_int_equal(res, 0);
    cli_pump(s);
}
static void cli_data(zm_sock_t *s, const uint8_t *d, size_t n)
{
    assert_false(E.client_eof);
    E.sum_recv = fnv(E.sum_recv, d, n);
    E.recvd += n;
}
static void cli_eof(zm_sock_t *s)
{
    E.client_eof = true;
    E.recvd_at_eof = E.recvd;
    zm_sock_close(s, 0);
}
static void cli_close(zm_sock_t *s, int err)
{
    E.client_closed = true;
    E.client_err = err;
}
static const zm_sock_handlers_t cli_h = {.on_connect = cli_connect,
                                         .on_data = cli_data,
                                         .on_eof = cli_eof,
                                         .on_drain = cli_pump,
                                         .on_close = cli_close};

static void echo_4mib_with_half_close(void **state)
{
    memset(&E, 0, sizeof(E));
    E.sum_sent = E.sum_recv = FNV0;
    zm_loop_t *loop;
    assert_int_equal(zm_loop_new(&loop, NULL), 0);
    struct sockaddr_in a = lo_addr(0);
    zm_listener_t *l;
    assert_int_equal(
        zm_listener_new(&l, loop, (struct sockaddr *)&a, sizeof(a), 0, echo_accept, loop), 0);
    int port = zm_listener_port(l);
    assert_true(port > 0);
    a = lo_addr(port);
    assert_int_equal(
        zm_sock_connect(&E.client, loop, (struct sockaddr *)&a, sizeof(a), &cli_h, NULL), 0);
    run_until(loop, &E.client_closed);
    run_until(loop, &E.server_closed);
    assert_true(E.server_eof);
    assert_int_equal(E.sent, ECHO_TOTAL);
    assert_int_equal(E.recvd_at_eof, ECHO_TOTAL);
    assert_true(E.sum_recv == E.sum_sent);
    assert_int_equal(E.client_err, 0);
    assert_int_equal(zm_loop_socks_open(loop), 0);
    zm_listener_close(&l);
    assert_null(l);
    zm_loop_destroy(&loop);
    assert_null(loop);
}

/* ---- stale completions ---- */

struct counts {
    int data, eof, close;
    size_t bytes;
    char buf[64];
};

static void cnt_data(zm_sock_t *s, const uint8_t *d, size_t n)
{
    struct counts *c = zm_sock_ctx(s);
    c->data++;
    if (c->bytes + n <= sizeof(c->buf))
        memcpy(c->buf + c->bytes, d, n);
    c->bytes += n;
}
static void cnt_eof(zm_sock_t *s)
{
    ((struct counts *)zm_sock_ctx(s))->eof++;
}
static void cnt_close(zm_sock_t *s, int err)
{
    ((struct counts *)zm_sock_ctx(s))->close++;
}
static const zm_sock_handlers_t cnt_h = {
    .on_data = cnt_data, .on_eof = cnt_eof, .on_close = cnt_close};

static void run_until_int(zm_loop_t *loop, const int *v, int want)
{
    for (int i = 0; i < 20000 && *v < want; i++)
        assert_true(zm_loop_run_once(loop, 20) >= 0);
    assert_int_equal(*v, want);
}

static void stale_completion_not_delivered_to_reused_slot(void **state)
{
    zm_loop_t *loop;
    assert_int_equal(zm_loop_new(&loop, NULL), 0);
    int a[2], b[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
    struct counts c1 = {0}, c2 = {0}, c3 = {0};
    zm_sock_t *s1, *s2, *s3;
    assert_int_equal(zm_sock_wrap(&s1, loop, a[0], &cnt_h, &c1), 0);
    zm_loop_run_once(loop, 0); /* the multishot recv is now in the kernel */
    unsigned ops_before = zm_loop_ops_in_flight(loop);
    uint64_t stale0 = zm_loop_stale_completions(loop);

    /* Data races the cancel: its CQE belongs to the closed socket. */
    assert_int_equal(write(a[1], "old", 3), 3);
    zm_sock_close(s1, 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b), 0);
    assert_int_equal(zm_sock_wrap(&s2, loop, b[0], &cnt_h, &c2), 0);
    assert_ptr_not_equal(s1, s2); /* s1's slot is not free before on_close */
    assert_int_equal(write(b[1], "new", 3), 3);
    run_until_int(loop, &c1.close, 1);
    run_until_int(loop, &c2.data, 1);
    assert_int_equal(c1.data, 0);
    assert_int_equal(c1.eof, 0);
    assert_int_equal(c2.bytes, 3);
    assert_memory_equal(c2.buf, "new", 3);
    assert_true(zm_loop_stale_completions(loop) > stale0);
    assert_true(zm_loop_ops_in_flight(loop) <= ops_before);

    /* Same slot, same fd number: only the new socket's events arrive. */
    int c[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c), 0);
    assert_int_equal(c[0], a[0]);
    assert_int_equal(zm_sock_wrap(&s3, loop, c[0], &cnt_h, &c3), 0);
    assert_ptr_equal(s3, s1);
    assert_int_equal(write(c[1], "three", 5), 5);
    close(c[1]);
    run_until_int(loop, &c3.eof, 1);
    assert_int_equal(c3.bytes, 5);
    assert_memory_equal(c3.buf, "three", 5);
    assert_int_equal(c1.data + c1.eof, 0);
    assert_int_equal(c1.close, 1);
    zm_sock_close(s3, 0);
    zm_sock_close(s2, 0);
    run_until_int(loop, &c3.close, 1);
    run_until_int(loop, &c2.close, 1);
    assert_int_equal(c1.close, 1);
    assert_int_equal(zm_loop_socks_open(loop), 0);
    close(a[1]);
    close(b[1]);
    zm_loop_destroy(&loop);
}

/* Reserve/commit queue bytes in place, in order with zm_sock_send, and
 * refuse past the queue limit without queueing anything. */
static void send_reserve_commit_in_order(void **state)
{
    zm_loop_config_t cfg = {.send_chunk_size = 4096, .send_queue_limit = 64 * 1024};
    zm_loop_t *loop;
    assert_int_equal(zm_loop_new(&loop, &cfg), 0);
    int a[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
    struct counts c = {0};
    zm_sock_t *s;
    assert_int_equal(zm_sock_wrap(&s, loop, a[0], &cnt_h, &c), 0);
    size_t avail;
    assert_null(zm_sock_send_reserve(s, 4097, &avail)); /* more than a chunk */
    uint8_t *p = zm_sock_send_reserve(s, 10, &avail);
    assert_non_null(p);
    assert_int_equal(avail, 4096);
    memcpy(p, "first-", 6);
    zm_sock_send_commit(s, 6);
    assert_int_equal(zm_sock_send(s, "second-", 7), 0);
    p = zm_sock_send_reserve(s, 100, &avail); /* the tail chunk's room */
    assert_non_null(p);
    assert_int_equal(avail, 4096 - 13);
    memcpy(p, "third-", 6);
    zm_sock_send_commit(s, 6);
    p = zm_sock_send_reserve(s, 4090, &avail); /* too little room left: a new chunk */
    assert_non_null(p);
    assert_int_equal(avail, 4096);
    zm_sock_send_commit(s, 0); /* given up: nothing queued */
    p = zm_sock_send_reserve(s, 4000, &avail);
    memcpy(p, "fourth", 6);
    zm_sock_send_commit(s, 6);
    assert_int_equal(zm_sock_send_queued(s), 25);
    /* A reservation that would pass the queue limit is refused. */
    uint8_t big[60 * 1024];
    memset(big, 'x', sizeof(big));
    assert_int_equal(zm_sock_send(s, big, sizeof(big)), 0);
    assert_null(zm_sock_send_reserve(s, 4096, &avail));
    assert_int_equal(zm_sock_send_queued(s), 25 + sizeof(big));

    size_t want = 25 + sizeof(big), got = 0;
    uint8_t rbuf[256];
    for (int i = 0; i < 20000 && got < want; i++) {
        zm_loop_run_once(loop, 1);
        ssize_t n;
        while ((n = recv(a[1], rbuf, sizeof(rbuf), MSG_DONTWAIT)) > 0) {
            if (got < 25)
                assert_memory_equal(rbuf, "first-second-third-fourth" + got,
                                    ZM_MIN((size_t)n, 25 - got));
            got += (size_t)n;
        }
    }
    assert_int_equal(got, want);
    zm_sock_close(s, 0);
    run_until_int(loop, &c.close, 1);
    close(a[1]);
    zm_loop_destroy(&loop);
}

/* ---- pool exhaustion ---- */

static void pools_exhaust_with_enobufs_and_recover(void **state)
{
    zm_loop_config_t cfg = {.max_socks = 2,
                            .max_ops = 16,
                            .send_chunk_size = 1024,
                            .send_chunk_count = 3,
                            .send_queue_limit = 2500,
                            .recv_buf_count = 8};
    zm_loop_t *loop;
    assert_int_equal(zm_loop_new(&loop, &cfg), 0);
    struct counts c[3] = {0};
    zm_sock_t *s[3];
    int p[3][2];
    for (int round = 0; round < 2; round++) {
        memset(c, 0, sizeof(c));
        for (int i = 0; i < 3; i++)
            assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p[i]), 0);
        assert_int_equal(zm_sock_wrap(&s[0], loop, p[0][0], &cnt_h, &c[0]), 0);
        assert_int_equal(zm_sock_wrap(&s[1], loop, p[1][0], &cnt_h, &c[1]), 0);
        assert_int_equal(zm_sock_wrap(&s[2], loop, p[2][0], &cnt_h, &c[2]), -ENOBUFS);
        assert_null(s[2]);
        close(p[2][0]); /* a failed wrap leaves the fd with the caller */
        close(p[2][1]);
        assert_int_equal(zm_loop_socks_open(loop), 2);

        uint8_t buf[2000];
        memset(buf, 'x', sizeof(buf));
        assert_int_equal(zm_sock_send(s[0], buf, 2000), 0);        /* 2 chunks */
        assert_int_equal(zm_sock_send(s[0], buf, 1000), -ENOBUFS); /* over the limit */
        assert_int_equal(zm_sock_send_queued(s[0]), 2000);
        assert_int_equal(zm_sock_send(s[1], buf, 1024), 0);     /* last chunk */
        assert_int_equal(zm_sock_send(s[1], buf, 1), -ENOBUFS); /* pool empty */
        assert_int_equal(zm_sock_send_queued(s[1]), 1024);
        zm_sock_close(s[0], ZM_SOCK_CLOSE_FLUSH);
        zm_sock_close(s[1], ZM_SOCK_CLOSE_FLUSH);
        assert_int_equal(zm_sock_send(s[1], buf, 1), -EPIPE);
        run_until_int(loop, &c[0].close, 1);
        run_until_int(loop, &c[1].close, 1);
        assert_int_equal(zm_loop_socks_open(loop), 0);
        /* Flushed before close: the peers got every byte. */
        char rb[4096];
        ssize_t n0 = 0, n;
        while ((n = read(p[0][1], rb, sizeof(rb))) > 0)
            n0 += n;
        assert_int_equal(n0, 2000);
        close(p[0][1]);
        close(p[1][1]);
    }
    zm_loop_destroy(&loop);

    /* Op pool: the eventfd read holds one op, each socket one recv op. */
    zm_loop_config_t cfg2 = {.max_socks = 8, .max_ops = 3};
    assert_int_equal(zm_loop_new(&loop, &cfg2), 0);
    int q[3][2];
    for (int i = 0; i < 3; i++)
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, q[i]), 0);
    memset(c, 0, sizeof(c));
    assert_int_equal(zm_sock_wrap(&s[0], loop, q[0][0], &cnt_h, &c[0]), 0);
    assert_int_equal(zm_sock_wrap(&s[1], loop, q[1][0], &cnt_h, &c[1]), 0);
    assert_int_equal(zm_sock_wrap(&s[2], loop, q[2][0], &cnt_h, &c[2]), -ENOBUFS);
    assert_int_equal(zm_loop_ops_in_flight(loop), 3);
    assert_int_equal(zm_loop_socks_open(loop), 2);
    zm_sock_close(s[1], 0);
    run_until_int(loop, &c[1].close, 1);
    assert_int_equal(zm_sock_wrap(&s[2], loop, q[2][0], &cnt_h, &c[2]), 0);
    /* No op left for s[0]'s send: that connection closes with -ENOBUFS. */
    assert_int_equal(zm_sock_send(s[0], "z", 1), 0);
    run_until_int(loop, &c[0].close, 1);
    zm_sock_close(s[2], 0);
    run_until_int(loop, &c[2].close, 1);
    assert_int_equal(zm_loop_ops_in_flight(loop), 1);
    for (int i = 0; i < 3; i++)
        close(q[i][1]);
    zm_loop_destroy(&loop);
}

/* ---- backpressure ---- */

struct bp {
    zm_sock_t *server, *client;
    bool connected, server_eof, server_closed, client_closed;
    size_t recvd, max_queued;
    uint64_t sum_recv;
};
static struct bp B;

static void bp_srv_data(zm_sock_t *s, const uint8_t *d, size_t n)
{
    B.sum_recv = fnv(B.sum_recv, d, n);
    B.recvd += n;
}
static void bp_srv_eof(zm_sock_t *s)
{
    B.server_eof = true;
    zm_sock_close(s, 0);
}
static void bp_srv_close(zm_sock_t *s, int err)
{
    B.server_closed = true;
}
static const zm_sock_handlers_t bp_srv_h = {
    .on_data = bp_srv_data, .on_eof = bp_srv_eof, .on_close = bp_srv_close};
static void bp_accept(zm_listener_t *l, int fd, const struct sockaddr *peer, socklen_t plen,
                      void *ctx)
{
    assert_int_equal(zm_sock_wrap(&B.server, ctx, fd, &bp_srv_h, NULL), 0);
    zm_sock_pause_read(B.server);
    zm_sock_pause_read(B.server); /* idempotent */
}
static void bp_cli_connect(zm_sock_t *s, int res)
{
    assert_int_equal(res, 0);
    B.connected = true;
}
static void bp_cli_close(zm_sock_t *s, int err)
{
    B.client_closed = true;
}

static void backpressure_pause_bounds_queue_and_resume_delivers(void **state)
{
    memset(&B, 0, sizeof(B));
    B.sum_recv = FNV0;
    zm_loop_config_t cfg = {.send_queue_limit = 1u << 20};
    zm_loop_t *loop;
    assert_int_equal(zm_loop_new(&loop, &cfg), 0);
    struct sockaddr_in a = lo_addr(0);
    zm_listener_t *l;
    assert_int_equal(
        zm_listener_new(&l, loop, (struct sockaddr *)&a, sizeof(a), 0, bp_accept, loop), 0);
    a = lo_addr(zm_listener_port(l));
    zm_sock_handlers_t ch = {.on_connect = bp_cli_connect, .on_close = bp_cli_close};
    assert_int_equal(zm_sock_connect(&B.client, loop, (struct sockaddr *)&a, sizeof(a), &ch, NULL),
                     0);
    run_until(loop, &B.connected);
    static uint8_t piece[65536];
    size_t sent = 0;
    uint64_t sum_sent = FNV0;
    bool full = false;
    for (int i = 0; i < 5000 && !full; i++) {
        for (size_t k = 0; k < sizeof(piece); k++)
            piece[k] = pattern(sent + k);
        int rc = zm_sock_send(B.client, piece, sizeof(piece));
        if (rc == -ENOBUFS) {
            full = true;
            break;
        }
        assert_int_equal(rc, 0);
        sent += sizeof(piece);
        sum_sent = fnv(sum_sent, piece, sizeof(piece));
        B.max_queued = ZM_MAX(B.max_queued, zm_sock_send_queued(B.client));
        zm_loop_run_once(loop, 1);
    }
    assert_true(full);
    assert_true(B.max_queued <= cfg.send_queue_limit);
    assert_int_equal(B.recvd, 0); /* paused: nothing delivered */
    assert_non_null(B.server);

    zm_sock_resume_read(B.server);
    zm_sock_resume_read(B.server);
    assert_int_equal(zm_sock_shutdown_write(B.client), 0);
    assert_int_equal(zm_sock_send(B.client, "x", 1), -EPIPE);
    run_until(loop, &B.server_eof);
    assert_int_equal(B.recvd, sent);
    assert_true(B.sum_recv == sum_sent);
    run_until(loop, &B.server_closed);
    zm_sock_close(B.client, 0);
    run_until(loop, &B.client_closed);
    zm_listener_close(&l);
    zm_loop_destroy(&loop);
}

/* ---- held data and an empty buffer ring ---- */

struct hold {
    zm_sock_t *self;
    bool paused;
    size_t bytes;
};

static void hold_data(zm_sock_t *s, const uint8_t *d, size_t n)
{
    struct hold *h = zm_sock_ctx(s);
    assert_false(h->paused); /* nothing is delivered while paused */
    for (size_t i = 0; i < n; i++)
        assert_int_equal(d[i], pattern(h->bytes + i));
    h->bytes += n;
}
static const zm_sock_handlers_t hold_h = {.on_data = hold_data};

static void pause_posted(zm_loop_t *loop, void *arg)
{
    struct hold *h = arg;
    zm_sock_pause_read(h->self);
    h->paused = true;
}

static void write_pattern(int fd, size_t from, size_t n)
{
    uint8_t buf[4096];
    while (n) {
        size_t k = ZM_MIN(n, sizeof(buf));
        for (size_t i = 0; i < k; i++)
            buf[i] = pattern(from + i);
        assert_int_equal(write(fd, buf, k), (ssize_t)k);
        from += k;
        n -= k;
    }
}

static void paused_data_is_held_and_nobufs_recovers(void **state)
{
    /* Four 512-byte buffers. The posted pause is dispatched (eventfd read,
     * submitted first) before A's recv CQEs for its 16 KiB: all four
     * buffers end up held by paused A, so B's recv runs dry and waits for
     * a recycle, which comes when A resumes. */
    zm_loop_config_t cfg = {.recv_buf_count = 4, .recv_buf_size = 512};
    zm_loop_t *loop;
    assert_int_equal(zm_loop_new(&loop, &cfg), 0);
    int a[2], b[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b), 0);
    struct hold ha = {0}, hb = {0};
    write_pattern(a[1], 0, 16384);
    assert_int_equal(zm_sock_wrap(&ha.self, loop, a[0], &hold_h, &ha), 0);
    assert_int_equal(zm_loop_post(loop, pause_posted, &ha), 0);
    for (int i = 0; i < 10; i++)
        zm_loop_run_once(loop, 2);
    assert_true(ha.paused);
    write_pattern(b[1], 0, 2048);
    assert_int_equal(zm_sock_wrap(&hb.self, loop, b[0], &hold_h, &hb), 0);
    for (int i = 0; i < 10; i++)
        zm_loop_run_once(loop, 2);
    assert_int_equal(ha.bytes, 0); /* all four buffers held by A */
    assert_int_equal(hb.bytes, 0); /* so B waits on the nobufs list */
    ha.paused = false;
    zm_sock_resume_read(ha.self);
    for (int i = 0; i < 20000 && (ha.bytes < 16384 || hb.bytes < 2048); i++)
        assert_true(zm_loop_run_once(loop, 20) >= 0);
    assert_int_equal(ha.bytes, 16384);
    assert_int_equal(hb.bytes, 2048);
    zm_sock_close(ha.self, 0);
    zm_sock_close(hb.self, 0);
    close(a[1]);
    close(b[1]);
    zm_loop_destroy(&loop); /* closes without callbacks */
}

/* ---- connect failure and listener flags ---- */

struct cf {
    int connect_res, close_err, closes;
    bool closed;
};
static void cf_connect(zm_sock_t *s, int res)
{
    ((struct cf *)zm_sock_ctx(s))->connect_res = res;
}
static void cf_close(zm_sock_t *s, int err)
{
    struct cf *c = zm_sock_ctx(s);
    c->close_err = err;
    c->closes++;
    c->closed = true;
}

static void connect_refused_then_close_once(void **state)
{
    zm_loop_t *loop;
    assert_int_equal(zm_loop_new(&loop, NULL), 0);
    /* A port that was just free: bind, read it, close. */
    int r = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = lo_addr(0);
    socklen_t alen = sizeof(a);
    assert_int_equal(bind(r, (struct sockaddr *)&a, sizeof(a)), 0);
    getsockname(r, (struct sockaddr *)&a, &alen);
    close(r);
    struct cf c = {0};
    zm_sock_handlers_t h = {.on_connect = cf_connect, .on_close = cf_close};
    zm_sock_t *s;
    assert_int_equal(zm_sock_connect(&s, loop, (struct sockaddr *)&a, sizeof(a), &h, &c), 0);
    assert_int_equal(zm_sock_send(s, "early", 5), 0); /* queued until connected */
    run_until(loop, &c.closed);
    for (int i = 0; i < 5; i++)
        zm_loop_run_once(loop, 1);
    assert_int_equal(c.connect_res, -ECONNREFUSED);
    assert_int_equal(c.close_err, -ECONNREFUSED);
    assert_int_equal(c.closes, 1);
    assert_int_equal(zm_loop_socks_open(loop), 0);
    zm_loop_destroy(&loop);
}

static void listener_flags(void **state)
{
    zm_loop_t *loop;
    assert_int_equal(zm_loop_new(&loop, NULL), 0);
    struct sockaddr_in a = lo_addr(0);
    zm_listener_t *l1, *l2;
    int rc = zm_listener_new(&l1, loop, (struct sockaddr *)&a, sizeof(a),
                             ZM_LISTEN_REUSEPORT | ZM_LISTEN_TRANSPARENT, echo_accept, loop);
    if (rc == -EPERM) { /* IP_TRANSPARENT needs CAP_NET_ADMIN */
        rc = zm_listener_new(&l1, loop, (struct sockaddr *)&a, sizeof(a), ZM_LISTEN_REUSEPORT,
                             echo_accept, loop);
    }
    assert_int_equal(rc, 0);
    a = lo_addr(zm_listener_port(l1));
    assert_int_equal(zm_listener_new(&l2, loop, (struct sockaddr *)&a, sizeof(a),
                                     ZM_LISTEN_REUSEPORT, echo_accept, loop),
                     0);
    assert_int_equal(zm_listener_port(l2), zm_listener_port(l1));
    zm_listener_t *l3;
    assert_int_equal(
        zm_listener_new(&l3, loop, (struct sockaddr *)&a, sizeof(a), 0, echo_accept, loop),
        -EADDRINUSE);
    assert_null(l3);
    zm_listener_close(&l1);
    zm_loop_run_once(loop, 0);
    zm_listener_close(&l2); /* destroy reaps the pending cancel */
    zm_loop_destroy(&loop);
}

/* ---- timers and post ---- */

struct tmr {
    zm_timer_t t;
    int id;
};
static int fired[8], nfired;
static void on_timer(zm_timer_t *t)
{
    fired[nfired++] = ZM_CONTAINER_OF(t, struct tmr, t)->id;
}

static void timers_fire_in_order(void **state)
{
    zm_loop_t *loop;
    assert_int_equal(zm_loop_new(&loop, NULL), 0);
    nfired = 0;
    struct tmr t[5] = {{.id = 30}, {.id = 10}, {.id = 20}, {.id = 15}, {.id = 5}};
    zm_timer_start(loop, &t[0].t, 30, on_timer);
    zm_timer_start(loop, &t[1].t, 10, on_timer);
    zm_timer_start(loop, &t[2].t, 20, on_timer);
    zm_timer_start(loop, &t[3].t, 15, on_timer);
    zm_timer_start(loop, &t[4].t, 5, on_timer);
    assert_true(zm_timer_armed(&t[3].t));
    zm_timer_stop(loop, &t[3].t);
    zm_timer_stop(loop, &t[3].t);
    assert_false(zm_timer_armed(&t[3].t));
    zm_timer_start(loop, &t[4].t, 25, on_timer); /* re-arming moves it */
    for (int i = 0; i < 1000 && nfired < 4; i++)
        zm_loop_run_once(loop, -1);
    assert_int_equal(nfired, 4);
    assert_int_equal(fired[0], 10);
    assert_int_equal(fired[1], 20);
    assert_int_equal(fired[2], 5);
    assert_int_equal(fired[3], 30);
    /* run_once returns when its timeout passes with nothing to do */
    uint64_t t0 = zm_now_ms();
    assert_int_equal(zm_loop_run_once(loop, 30), 0);
    assert_true(zm_now_ms() >= t0 + 20);
    assert_int_equal(nfired, 4);
    zm_loop_destroy(&loop);
}

struct post_ctx {
    zm_loop_t *loop;
    pthread_t loop_thread;
    atomic_int ran;
    bool on_loop_thread;
};
static void posted(zm_loop_t *loop, void *arg)
{
    struct post_ctx *p = arg;
    p->on_loop_thread = pthread_equal(pthread_self(), p->loop_thread);
    atomic_fetch_add(&p->ran, 1);
}
static void *poster(void *arg)
{
    struct post_ctx *p = arg;
    for (int i = 0; i < 100; i++)
        assert_int_equal(zm_loop_post(p->loop, posted, p), 0);
    zm_loop_stop(p->loop);
    return NULL;
}

static void post_from_thread_runs_on_loop_thread(void **state)
{
    struct post_ctx p = {.loop_thread = pthread_self()};
    assert_int_equal(zm_loop_new(&p.loop, NULL), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, poster, &p), 0);
    assert_int_equal(zm_loop_run(p.loop), 0); /* returns on the poster's stop */
    pthread_join(th, NULL);
    for (int i = 0; i < 1000 && atomic_load(&p.ran) < 100; i++)
        zm_loop_run_once(p.loop, 10);
    assert_int_equal(atomic_load(&p.ran), 100);
    assert_true(p.on_loop_thread);
    /* Posts still queued at destroy are freed, not run. */
    assert_int_equal(zm_loop_post(p.loop, posted, &p), 0);
    zm_loop_destroy(&p.loop);
    assert_int_equal(atomic_load(&p.ran), 100);
}

/* ---- workers ---- */

#define NCONN 64
struct wctx {
    int port;
    zm_listener_t *l[2];
    atomic_int accepted[2];
    atomic_int drained;
};
static void w_accept(zm_listener_t *l, int fd, const struct sockaddr *peer, socklen_t plen,
                     void *ctx)
{
    atomic_int *n = ctx;
    atomic_fetch_add(n, 1);
    close(fd);
}
static int w_init(zm_loop_t *loop, unsigned idx, void *arg)
{
    struct wctx *w = arg;
    struct sockaddr_in a = lo_addr(w->port);
    return zm_listener_new(&w->l[idx], loop, (struct sockaddr *)&a, sizeof(a), ZM_LISTEN_REUSEPORT,
                           w_accept, &w->accepted[idx]);
}
static void w_drain(zm_loop_t *loop, unsigned idx, void *arg)
{
    struct wctx *w = arg;
    zm_listener_close(&w->l[idx]);
    atomic_fetch_add(&w->drained, 1);
}

static void workers_share_reuseport_and_drain(void **state)
{
    static struct wctx w;
    memset(&w, 0, sizeof(w));
    /* Reserve a port: a bound, non-listening REUSEPORT socket gets none of
     * the connections but keeps the number ours while workers bind it. */
    int r = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(r, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    struct sockaddr_in a = lo_addr(0);
    assert_int_equal(bind(r, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t alen = sizeof(a);
    getsockname(r, (struct sockaddr *)&a, &alen);
    w.port = ntohs(a.sin_port);

    zm_workers_config_t cfg = {
        .count = 2, .init = w_init, .drain = w_drain, .arg = &w, .loop = {.max_socks = 64}};
    zm_workers_t *ws;
    assert_int_equal(zm_workers_start(&ws, &cfg), 0);
    assert_int_equal(zm_workers_count(ws), 2);
    close(r);
    a = lo_addr(w.port);
    for (int i = 0; i < NCONN; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        close(fd);
    }
    for (int i = 0; i < 2000 && atomic_load(&w.accepted[0]) + atomic_load(&w.accepted[1]) < NCONN;
         i++)
        usleep(1000);
    assert_int_equal(atomic_load(&w.accepted[0]) + atomic_load(&w.accepted[1]), NCONN);
    assert_true(atomic_load(&w.accepted[0]) > 0);
    assert_true(atomic_load(&w.accepted[1]) > 0);
    zm_workers_drain(ws, 5000);
    assert_int_equal(atomic_load(&w.drained), 2);
    zm_workers_destroy(&ws);
    assert_null(ws);
}

static void workers_init_failure_reports_error(void **state)
{
    static struct wctx w;
    memset(&w, 0, sizeof(w));
    w.port = 1; /* privileged port we expect to be unused: bind succeeds as root */
    zm_workers_config_t cfg = {.count = 2, .init = NULL, .arg = &w};
    zm_workers_t *ws;
    assert_int_equal(zm_workers_start(&ws, &cfg), 0);
    zm_workers_destroy(&ws);     /* stop without drain */
    cfg.loop.recv_buf_count = 3; /* not a power of two: loop creation fails */
    assert_int_equal(zm_workers_start(&ws, &cfg), -EINVAL);
    assert_null(ws);
}

/* All CPUs' iowait ticks so far (/proc/stat). */
static unsigned long long iowait_ticks(void)
{
    unsigned long long user, nice, sys, idle, iowait = 0;
    FILE *f = fopen("/proc/stat", "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "cpu %llu %llu %llu %llu %llu", &user, &nice, &sys, &idle, &iowait),
                     5);
    fclose(f);
    return iowait;
}

/* An idle proxy waits with requests in flight (its multishot receive here):
 * that wait must not count as iowait, or every node running one would
 * show its idle CPU time as iowait. Whole-machine ticks: the 400 ms wait
 * alone would add about 40 of 100 per second if it counted. */
static void idle_wait_is_not_iowait(void **state)
{
    zm_loop_t *loop;
    assert_int_equal(zm_loop_new(&loop, NULL), 0);
    if (!zm_loop_waits_without_iowait(loop)) {
        /* A kernel before 6.15 has no way to say so: nothing to measure. */
        fprintf(stderr, "note: this kernel counts io_uring waits as iowait\n");
        zm_loop_destroy(&loop);
        return;
    }
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct counts got = {0};
    zm_sock_t *s;
    assert_int_equal(zm_sock_wrap(&s, loop, sv[0], &cnt_h, &got), 0);
    assert_true(zm_loop_ops_in_flight(loop) > 0);
    long hz = sysconf(_SC_CLK_TCK);
    unsigned long long before = iowait_ticks();
    uint64_t t0 = zm_now_ms();
    while (zm_now_ms() < t0 + 400)
        zm_loop_run_once(loop, 400);
    unsigned long long counted = iowait_ticks() - before;
    assert_true(counted < (unsigned long long)hz / 10);
    /* The same wait still wakes for data. */
    assert_int_equal(write(sv[1], "x", 1), 1);
    run_until_int(loop, &got.data, 1);
    zm_sock_close(s, 0);
    close(sv[1]);
    zm_loop_destroy(&loop);
}

static void wait_signal_returns_pending_signal(void **state)
{
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    kill(getpid(), SIGTERM);
    assert_int_equal(zm_workers_wait_signal(), SIGTERM);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

int main(void)
{
    alarm(20);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(echo_4mib_with_half_close),
        cmocka_unit_test(stale_completion_not_delivered_to_reused_slot),
        cmocka_unit_test(send_reserve_commit_in_order),
        cmocka_unit_test(pools_exhaust_with_enobufs_and_recover),
        cmocka_unit_test(backpressure_pause_bounds_queue_and_resume_delivers),
        cmocka_unit_test(paused_data_is_held_and_nobufs_recovers),
        cmocka_unit_test(connect_refused_then_close_once),
        cmocka_unit_test(listener_flags),
        cmocka_unit_test(timers_fire_in_order),
        cmocka_unit_test(post_from_thread_runs_on_loop_thread),
        cmocka_unit_test(workers_share_reuseport_and_drain),
        cmocka_unit_test(workers_init_failure_reports_error),
        cmocka_unit_test(wait_signal_returns_pending_signal),
        cmocka_unit_test(idle_wait_is_not_iowait),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
