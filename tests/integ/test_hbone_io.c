/*
 * HBONE over real sockets on loopback: an io_uring loop runs an HBONE server
 * (mTLS, CONNECT → dial the target, splice) and a client, all in one thread;
 * a TCP target echoes, holds, sources, sinks or stalls by the first byte.
 * Every wait is bounded by a deadline and alarm().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <malloc.h>
#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "hbone_lab.h"

#define MIB (1024u * 1024u)

typedef struct lab {
    zm_loop_t *loop;
    lab_certs_t certs;
    zm_tls_ctx_t *server_tls, *client_tls;
    lab_target_t *target;
    lab_server_t *server;
    struct sockaddr_in server_addr;
    char target_authority[32];
} lab_t;

typedef struct cstream {
    const zm_hbs_ops_t *ops;
    zm_hbone_stream_t *s;
    lab_t *lab;
    char mode;
    bool mode_sent, shut, eof, closed, saw_again;
    bool send_after_eof; /* hold our bytes until the peer's FIN */
    uint64_t seed, expect_seed;
    uint64_t to_send, sent, received;
    uint64_t sum_sent, sum_recv;
    int status;
    uint32_t close_code;
    bool mismatch;
} cstream_t;

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static void cs_write_more(cstream_t *cs)
{
    if (cs->status != 200 || cs->shut || cs->closed)
        return;
    if (cs->send_after_eof && !cs->eof)
        return;
    if (!cs->mode_sent) {
        if (zm_hbone_stream_write(cs->s, (const uint8_t *)&cs->mode, 1) != 1)
            return;
        cs->mode_sent = true;
    }
    uint8_t buf[16384];
    while (cs->sent < cs->to_send) {
        size_t n = ZM_MIN(sizeof(buf), cs->to_send - cs->sent);
        lab_pattern(buf, n, cs->seed, cs->sent);
        ssize_t w = zm_hbone_stream_write(cs->s, buf, n);
        if (w == ZM_AGAIN) {
            cs->saw_again = true;
            break;
        }
        assert_true(w > 0);
        cs->sum_sent = fnv(cs->sum_sent, buf, (size_t)w);
        cs->sent += (uint64_t)w;
    }
    if (cs->sent == cs->to_send && cs->to_send != UINT64_MAX) {
        cs->shut = true;
        zm_hbone_stream_shutdown(cs->s);
    }
    zm_hbc_flush(zm_hbc_of_stream(cs->s));
}

static void cs_response(zm_hbone_stream_t *s, int status)
{
    cstream_t *cs = zm_hbone_stream_ctx(s);
    cs->status = status;
    cs_write_more(cs);
}

static void cs_data(zm_hbone_stream_t *s, const uint8_t *data, size_t len)
{
    cstream_t *cs = zm_hbone_stream_ctx(s);
    uint8_t expect[16384];
    size_t off = 0;
    while (off < len) {
        size_t n = ZM_MIN(sizeof(expect), len - off);
        lab_pattern(expect, n, cs->expect_seed, cs->received + off);
        if (memcmp(expect, data + off, n) != 0)
            cs->mismatch = true;
        off += n;
    }
    cs->sum_recv = fnv(cs->sum_recv, data, len);
    cs->received += len;
    zm_hbone_stream_consume(s, len);
}

static void cs_eof(zm_hbone_stream_t *s)
{
    cstream_t *cs = zm_hbone_stream_ctx(s);
    cs->eof = true;
    cs_write_more(cs);
}

static void cs_writable(zm_hbone_stream_t *s)
{
    cs_write_more(zm_hbone_stream_ctx(s));
}

static void cs_close(zm_hbone_stream_t *s, uint32_t code)
{
    cstream_t *cs = zm_hbone_stream_ctx(s);
    cs->closed = true;
    cs->close_code = code;
    cs->s = NULL;
}

static const zm_hbs_ops_t cs_ops = {
    .on_response = cs_response,
    .on_data = cs_data,
    .on_eof = cs_eof,
    .on_writable = cs_writable,
    .on_close = cs_close,
};

static void cs_init(cstream_t *cs, lab_t *lab, char mode, uint64_t seed, uint64_t to_send)
{
    memset(cs, 0, sizeof(*cs));
    cs->ops = &cs_ops;
    cs->lab = lab;
    cs->mode = mode;
    cs->seed = cs->expect_seed = seed;
    cs->to_send = to_send;
    cs->sum_sent = cs->sum_recv = 0xcbf29ce484222325ull;
}

/* ---- fixtures ---- */

static int setup(void **state)
{
    alarm(120);
    lab_t *lab = calloc(1, sizeof(*lab));
    assert_non_null(lab);
    assert_int_equal(zm_tls_global_init(), 0);
    zm_loop_config_t cfg = {0};
    zm_loop_config_defaults(&cfg);
    assert_int_equal(zm_loop_new(&lab->loop, &cfg), 0);
    assert_int_equal(lab_certs_make(&lab->certs), 0);
    lab->server_tls =
        lab_tls_ctx(lab->certs.server_cert, lab->certs.server_key, lab->certs.ca_cert, true);
    lab->client_tls =
        lab_tls_ctx(lab->certs.client_cert, lab->certs.client_key, lab->certs.ca_cert, false);
    assert_non_null(lab->server_tls);
    assert_non_null(lab->client_tls);
    assert_int_equal(lab_target_start(&lab->target, lab->loop, "127.0.0.1", 0, 512 * 1024), 0);
    assert_int_equal(lab_server_start(&lab->server, lab->loop, "127.0.0.1", 0, lab->server_tls, 0),
                     0);
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", lab_server_port(lab->server));
    assert_int_equal(lab_parse_addr(addr, &lab->server_addr), 0);
    snprintf(lab->target_authority, sizeof(lab->target_authority), "127.0.0.1:%d",
             lab_target_port(lab->target));
    *state = lab;
    return 0;
}

typedef bool (*cond_fn)(void *arg);

/* Runs the loop until cond holds or timeout_ms passes; returns cond. */
static bool run_until(lab_t *lab, cond_fn cond, void *arg, uint64_t timeout_ms)
{
    uint64_t deadline = zm_now_ms() + timeout_ms;
    while (!cond(arg) && zm_now_ms() < deadline)
        zm_loop_run_once(lab->loop, 20);
    return cond(arg);
}

static bool server_idle(void *arg)
{
    lab_t *lab = arg;
    const lab_server_stats_t *st = lab_server_stats(lab->server);
    const lab_target_stats_t *tt = lab_target_stats(lab->target);
    return st->closed == st->connections && tt->closed == tt->accepted;
}

static bool target_idle(void *arg)
{
    const lab_target_stats_t *tt = lab_target_stats(((lab_t *)arg)->target);
    return tt->closed == tt->accepted;
}

static int teardown(void **state)
{
    lab_t *lab = *state;
    assert_true(run_until(lab, server_idle, lab, 10000));
    lab_server_stop(&lab->server);
    lab_target_stop(&lab->target);
    for (int i = 0; i < 10; i++)
        zm_loop_run_once(lab->loop, 1);
    zm_loop_destroy(&lab->loop);
    zm_tls_ctx_unref(&lab->server_tls);
    zm_tls_ctx_unref(&lab->client_tls);
    lab_certs_free(&lab->certs);
    free(lab);
    alarm(0);
    return 0;
}

typedef struct client {
    zm_hbc_t *c;
    bool closed;
    const char *reason;
} client_t;

static void client_closed(zm_hbc_t *c, const char *reason)
{
    client_t *cl = zm_hbc_ctx(c);
    cl->closed = true;
    cl->reason = reason;
}

static const zm_hbc_handlers_t client_handlers = {.on_close = client_closed};

static void client_connect(lab_t *lab, client_t *cl, const char *expected)
{
    const char *ids[] = {expected, NULL};
    memset(cl, 0, sizeof(*cl));
    assert_int_equal(zm_hbc_connect(&cl->c, lab->loop, -1, (struct sockaddr *)&lab->server_addr,
                                    sizeof(lab->server_addr), lab->client_tls, ids, NULL,
                                    &client_handlers, cl),
                     0);
}

static bool client_gone(void *arg)
{
    return ((client_t *)arg)->closed;
}

static void client_close(lab_t *lab, client_t *cl)
{
    if (!cl->closed)
        zm_hbc_close(cl->c, "test done");
    assert_true(run_until(lab, client_gone, cl, 5000));
}

typedef struct streams {
    cstream_t *v;
    size_t n;
} streams_t;

static bool all_closed(void *arg)
{
    streams_t *ss = arg;
    for (size_t i = 0; i < ss->n; i++)
        if (!ss->v[i].closed)
            return false;
    return true;
}

static void open_stream(client_t *cl, cstream_t *cs, const char *authority)
{
    cs->s = zm_hbc_open(cl->c, authority, NULL, 0, cs);
    assert_non_null(cs->s);
}

/* ---- tests ---- */

static void hundred_streams_of_a_mebibyte_each_way(void **state)
{
    lab_t *lab = *state;
    client_t cl;
    client_connect(lab, &cl, LAB_SERVER_ID);
    streams_t ss = {.v = calloc(100, sizeof(cstream_t)), .n = 100};
    for (size_t i = 0; i < ss.n; i++) {
        cs_init(&ss.v[i], lab, LAB_MODE_ECHO, 1000 + i, MIB);
        open_stream(&cl, &ss.v[i], lab->target_authority);
    }
    assert_true(run_until(lab, all_closed, &ss, 60000));
    for (size_t i = 0; i < ss.n; i++) {
        cstream_t *cs = &ss.v[i];
        assert_int_equal(cs->status, 200);
        assert_true(cs->eof);
        assert_int_equal(cs->close_code, 0);
        assert_int_equal(cs->sent, MIB);
        assert_int_equal(cs->received, MIB);
        assert_false(cs->mismatch);
        assert_true(cs->sum_sent == cs->sum_recv);
    }
    const lab_server_stats_t *st = lab_server_stats(lab->server);
    assert_string_equal(st->last_peer_id, LAB_CLIENT_ID);
    assert_string_equal(zm_hbc_peer_id(cl.c)->uri, LAB_SERVER_ID);
    assert_int_equal(st->streams, 100);
    assert_int_equal(st->connections, 1);
    free(ss.v);
    client_close(lab, &cl);
}

static void half_close_from_client_delivers_everything(void **state)
{
    lab_t *lab = *state;
    client_t cl;
    client_connect(lab, &cl, LAB_SERVER_ID);
    cstream_t cs;
    cs_init(&cs, lab, LAB_MODE_HOLD, 7, 300 * 1024 + 17);
    open_stream(&cl, &cs, lab->target_authority);
    streams_t ss = {.v = &cs, .n = 1};
    assert_true(run_until(lab, all_closed, &ss, 20000));
    /* The target echoed only after our END_STREAM reached it as a FIN. */
    assert_int_equal(cs.status, 200);
    assert_int_equal(cs.received, 300 * 1024 + 17);
    assert_false(cs.mismatch);
    assert_true(cs.eof);
    assert_int_equal(cs.close_code, 0);
    client_close(lab, &cl);
}

static void half_close_from_server_delivers_everything(void **state)
{
    lab_t *lab = *state;
    client_t cl;
    client_connect(lab, &cl, LAB_SERVER_ID);
    cstream_t cs;
    /* The target sources 512 KiB then FIN; we send only after that FIN. */
    cs_init(&cs, lab, LAB_MODE_SOURCE, 99, 256 * 1024);
    cs.expect_seed = 0;
    cs.send_after_eof = true;
    open_stream(&cl, &cs, lab->target_authority);
    /* The mode byte has to go first, before the target sources anything. */
    zm_hbone_stream_write(cs.s, (const uint8_t *)&cs.mode, 1);
    cs.mode_sent = true;
    uint64_t in_before = lab_target_stats(lab->target)->bytes_in;
    streams_t ss = {.v = &cs, .n = 1};
    assert_true(run_until(lab, all_closed, &ss, 20000));
    assert_int_equal(cs.received, 512 * 1024);
    assert_false(cs.mismatch);
    assert_true(cs.eof);
    assert_int_equal(cs.sent, 256 * 1024);
    assert_int_equal(cs.close_code, 0);
    assert_true(run_until(lab, target_idle, lab, 5000));
    assert_int_equal(lab_target_stats(lab->target)->bytes_in - in_before, 1 + 256 * 1024);
    client_close(lab, &cl);
}

static bool never(void *arg)
{
    return false;
}

static void stalled_reader_bounds_sender_memory(void **state)
{
    lab_t *lab = *state;
    client_t cl;
    client_connect(lab, &cl, LAB_SERVER_ID);
    cstream_t cs;
    cs_init(&cs, lab, LAB_MODE_NO_READ, 5, UINT64_MAX); /* write forever */
    size_t heap_before = mallinfo2().uordblks;
    open_stream(&cl, &cs, lab->target_authority);
    /* Let the pipeline fill: the sender keeps writing on every on_writable. */
    run_until(lab, never, NULL, 2000);
    uint64_t sent_at_2s = cs.sent;
    run_until(lab, never, NULL, 1000);
    size_t heap_after = mallinfo2().uordblks;
    printf("# stalled peer: accepted %.1f MiB, heap grew %.1f MiB\n", cs.sent / (double)MIB,
           (double)(heap_after - heap_before) / MIB);
    assert_int_equal(cs.status, 200);
    assert_true(cs.saw_again);
    assert_true(cs.sent == sent_at_2s); /* writing stopped: the reader stalls us */
    /* Windows 4 MiB + client buffer 1 MiB + server socket queue and kernel
     * socket buffers: far below what an unbounded sender would take. */
    assert_true(cs.sent < 48ull * MIB);
    assert_true(heap_after < heap_before || heap_after - heap_before < 32ull * MIB);
    zm_hbone_stream_reset(cs.s, NGHTTP2_CANCEL);
    zm_hbc_flush(cl.c);
    lab_target_release(lab->target); /* let the stalled reader see its EOF */
    streams_t ss = {.v = &cs, .n = 1};
    assert_true(run_until(lab, all_closed, &ss, 5000));
    client_close(lab, &cl);
}

static void refusals_answer_400_and_503(void **state)
{
    lab_t *lab = *state;
    client_t cl;
    client_connect(lab, &cl, LAB_SERVER_ID);
    cstream_t bad, closed_port;
    cs_init(&bad, lab, LAB_MODE_ECHO, 1, 10);
    cs_init(&closed_port, lab, LAB_MODE_ECHO, 1, 10);
    open_stream(&cl, &bad, "not-an-address");
    open_stream(&cl, &closed_port, "127.0.0.1:1");
    streams_t a = {.v = &bad, .n = 1}, b = {.v = &closed_port, .n = 1};
    assert_true(run_until(lab, all_closed, &a, 5000));
    assert_true(run_until(lab, all_closed, &b, 5000));
    assert_int_equal(bad.status, 400);
    assert_int_equal(closed_port.status, 503);
    assert_false(cl.closed); /* the connection survives refused streams */
    client_close(lab, &cl);
}

static void wrong_server_identity_is_refused(void **state)
{
    lab_t *lab = *state;
    client_t cl;
    client_connect(lab, &cl, "spiffe://cluster.local/ns/lab/sa/someone-else");
    cstream_t cs;
    cs_init(&cs, lab, LAB_MODE_ECHO, 1, 10);
    open_stream(&cl, &cs, lab->target_authority);
    streams_t ss = {.v = &cs, .n = 1};
    assert_true(run_until(lab, all_closed, &ss, 5000));
    assert_int_not_equal(cs.status, 200);
    assert_true(run_until(lab, client_gone, &cl, 5000));
    assert_int_equal(lab_server_stats(lab->server)->streams, 0);
}

/* A raw peer in a thread: TLS by hand over a blocking socket, then bytes
 * that are not HTTP/2. The server must answer GOAWAY and close. */
typedef struct raw_peer {
    lab_t *lab;
    bool done, saw_goaway, saw_eof;
    int goaway_error;
} raw_peer_t;

static int raw_send_tls(int fd, zm_tls_t *t)
{
    const uint8_t *data;
    size_t n;
    while ((n = zm_tls_out(t, &data)) > 0) {
        if (send(fd, data, n, MSG_NOSIGNAL) != (ssize_t)n)
            return -1;
        zm_tls_out_consume(t, n);
    }
    return 0;
}

static void *raw_peer_main(void *arg)
{
    raw_peer_t *rp = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    zm_tls_t *t = NULL;
    uint8_t buf[65536];
    uint8_t plain[65536];
    size_t plain_len = 0;
    if (connect(fd, (struct sockaddr *)&rp->lab->server_addr, sizeof(rp->lab->server_addr)) < 0)
        goto out;
    if (zm_tls_new(&t, rp->lab->client_tls, NULL) < 0)
        goto out;
    int r;
    while ((r = zm_tls_handshake(t)) == ZM_AGAIN) {
        raw_send_tls(fd, t);
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0)
            goto out;
        zm_tls_feed(t, buf, (size_t)n);
    }
    if (r < 0)
        goto out;
    raw_send_tls(fd, t);
    static const char junk[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                               "\x00\x00\x04\x09\x00\x00\x00\x00\x00garbage-frame-of-wrong-type";
    zm_tls_write(t, (const uint8_t *)junk, sizeof(junk) - 1);
    raw_send_tls(fd, t);
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) {
            rp->saw_eof = n == 0;
            break;
        }
        zm_tls_feed(t, buf, (size_t)n);
        ssize_t p;
        while (plain_len < sizeof(plain) &&
               (p = zm_tls_read(t, plain + plain_len, sizeof(plain) - plain_len)) > 0)
            plain_len += (size_t)p;
    }
    /* Walk the frames the server sent. */
    for (size_t off = 0; off + 9 <= plain_len;) {
        size_t len = (size_t)plain[off] << 16 | (size_t)plain[off + 1] << 8 | plain[off + 2];
        if (plain[off + 3] == NGHTTP2_GOAWAY && off + 9 + 8 <= plain_len) {
            rp->saw_goaway = true;
            rp->goaway_error = plain[off + 9 + 7];
        }
        off += 9 + len;
    }
out:
    zm_tls_free(&t);
    close(fd);
    __atomic_store_n(&rp->done, true, __ATOMIC_RELEASE);
    return NULL;
}

static bool raw_done(void *arg)
{
    return __atomic_load_n(&((raw_peer_t *)arg)->done, __ATOMIC_ACQUIRE);
}

static void malformed_http2_gets_goaway_and_server_lives(void **state)
{
    lab_t *lab = *state;
    raw_peer_t rp = {.lab = lab};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, raw_peer_main, &rp), 0);
    bool finished = run_until(lab, raw_done, &rp, 10000);
    pthread_join(th, NULL);
    assert_true(finished);
    assert_true(rp.saw_goaway);
    assert_int_not_equal(rp.goaway_error, 0);
    assert_true(rp.saw_eof);
    /* The server still serves a well-behaved client. */
    client_t cl;
    client_connect(lab, &cl, LAB_SERVER_ID);
    cstream_t cs;
    cs_init(&cs, lab, LAB_MODE_ECHO, 3, 4096);
    open_stream(&cl, &cs, lab->target_authority);
    streams_t ss = {.v = &cs, .n = 1};
    assert_true(run_until(lab, all_closed, &ss, 5000));
    assert_int_equal(cs.received, 4096);
    client_close(lab, &cl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(hundred_streams_of_a_mebibyte_each_way, setup, teardown),
        cmocka_unit_test_setup_teardown(half_close_from_client_delivers_everything, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(half_close_from_server_delivers_everything, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(stalled_reader_bounds_sender_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(refusals_answer_400_and_503, setup, teardown),
        cmocka_unit_test_setup_teardown(wrong_server_identity_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(malformed_http2_gets_goaway_and_server_lives, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
