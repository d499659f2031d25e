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

#include "lab_fixture.h"

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
        cmocka_unit_test_setup_teardown(hundred_streams_of_a_mebibyte_each_way, lab_setup,
                                        lab_teardown),
        cmocka_unit_test_setup_teardown(half_close_from_client_delivers_everything, lab_setup,
                                        lab_teardown),
        cmocka_unit_test_setup_teardown(half_close_from_server_delivers_everything, lab_setup,
                                        lab_teardown),
        cmocka_unit_test_setup_teardown(stalled_reader_bounds_sender_memory, lab_setup,
                                        lab_teardown),
        cmocka_unit_test_setup_teardown(refusals_answer_400_and_503, lab_setup, lab_teardown),
        cmocka_unit_test_setup_teardown(wrong_server_identity_is_refused, lab_setup, lab_teardown),
        cmocka_unit_test_setup_teardown(malformed_http2_gets_goaway_and_server_lives, lab_setup,
                                        lab_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
