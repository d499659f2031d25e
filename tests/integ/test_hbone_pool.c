/*
 * The HBONE client pool on loopback: connections are shared per
 * (source identity, destination identity, next hop, source IP), capped in
 * streams, and closed after being idle; keepalive and the handshake
 * deadline close dead peers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lab_fixture.h"

static zm_hbone_pool_key_t key_for(lab_t *lab, const char *src_id, const char *src_ip)
{
    zm_hbone_pool_key_t k = {.src_id = src_id, .dst_id = LAB_SERVER_ID};
    memcpy(&k.next_hop, &lab->server_addr, sizeof(lab->server_addr));
    if (src_ip) {
        struct sockaddr_in *sa = (struct sockaddr_in *)&k.src_ip;
        sa->sin_family = AF_INET;
        inet_pton(AF_INET, src_ip, &sa->sin_addr);
    }
    return k;
}

static void pool_open(lab_t *lab, zm_hbone_pool_t *p, const zm_hbone_pool_key_t *k, cstream_t *cs)
{
    assert_int_equal(
        zm_hbone_pool_open(p, k, lab->client_tls, lab->target_authority, NULL, 0, cs, &cs->s), 0);
}

static bool pool_empty(void *arg)
{
    return zm_hbone_pool_conns(arg) == 0;
}

static void streams_share_connections_up_to_the_cap(void **state)
{
    lab_t *lab = *state;
    zm_hbone_pool_config_t cfg = {.max_streams_per_conn = 10};
    zm_hbone_pool_t *p;
    assert_int_equal(zm_hbone_pool_new(&p, lab->loop, &cfg), 0);
    zm_hbone_pool_key_t k = key_for(lab, LAB_CLIENT_ID, NULL);
    streams_t ss = {.v = calloc(25, sizeof(cstream_t)), .n = 25};
    for (size_t i = 0; i < ss.n; i++) {
        cs_init(&ss.v[i], lab, LAB_MODE_ECHO, i, 64 * 1024);
        pool_open(lab, p, &k, &ss.v[i]);
    }
    assert_int_equal(zm_hbone_pool_conns(p), 3); /* 10 + 10 + 5 */
    assert_true(run_until(lab, all_closed, &ss, 20000));
    for (size_t i = 0; i < ss.n; i++) {
        assert_int_equal(ss.v[i].status, 200);
        assert_int_equal(ss.v[i].received, 64 * 1024);
        assert_false(ss.v[i].mismatch);
    }
    /* Once streams are done the same connections take new ones. */
    cstream_t again;
    cs_init(&again, lab, LAB_MODE_ECHO, 77, 1000);
    pool_open(lab, p, &k, &again);
    assert_int_equal(zm_hbone_pool_conns(p), 3);
    streams_t one = {.v = &again, .n = 1};
    assert_true(run_until(lab, all_closed, &one, 5000));
    assert_int_equal(lab_server_stats(lab->server)->connections, 3);
    free(ss.v);
    zm_hbone_pool_free(&p);
}

static void keys_that_differ_get_their_own_connection(void **state)
{
    lab_t *lab = *state;
    zm_hbone_pool_t *p;
    assert_int_equal(zm_hbone_pool_new(&p, lab->loop, NULL), 0);
    zm_hbone_pool_key_t a = key_for(lab, LAB_CLIENT_ID, NULL);
    zm_hbone_pool_key_t b = key_for(lab, "spiffe://cluster.local/ns/lab/sa/other", NULL);
    zm_hbone_pool_key_t c = key_for(lab, LAB_CLIENT_ID, "127.0.0.1");
    cstream_t v[4];
    for (int i = 0; i < 4; i++)
        cs_init(&v[i], lab, LAB_MODE_ECHO, (uint64_t)i, 1000);
    pool_open(lab, p, &a, &v[0]);
    pool_open(lab, p, &a, &v[1]);
    assert_int_equal(zm_hbone_pool_conns(p), 1);
    pool_open(lab, p, &b, &v[2]);
    assert_int_equal(zm_hbone_pool_conns(p), 2);
    pool_open(lab, p, &c, &v[3]);
    assert_int_equal(zm_hbone_pool_conns(p), 3);
    streams_t ss = {.v = v, .n = 4};
    assert_true(run_until(lab, all_closed, &ss, 5000));
    for (int i = 0; i < 4; i++)
        assert_int_equal(v[i].received, 1000);
    zm_hbone_pool_free(&p);
}

static void idle_connections_are_released(void **state)
{
    lab_t *lab = *state;
    zm_hbone_pool_config_t cfg = {.idle_timeout_ms = 200};
    zm_hbone_pool_t *p;
    assert_int_equal(zm_hbone_pool_new(&p, lab->loop, &cfg), 0);
    zm_hbone_pool_key_t k = key_for(lab, LAB_CLIENT_ID, NULL);
    cstream_t cs;
    cs_init(&cs, lab, LAB_MODE_ECHO, 1, 5000);
    pool_open(lab, p, &k, &cs);
    streams_t ss = {.v = &cs, .n = 1};
    assert_true(run_until(lab, all_closed, &ss, 5000));
    assert_int_equal(zm_hbone_pool_conns(p), 1);
    assert_true(run_until(lab, pool_empty, p, 5000));
    /* The server saw the connection go, with GOAWAY rather than a reset. */
    assert_true(run_until(lab, server_idle, lab, 5000));
    zm_hbone_pool_free(&p);
}

static bool server_saw_close(void *arg)
{
    const lab_server_stats_t *st = lab_server_stats(((lab_t *)arg)->server);
    return st->connections == 1 && st->closed == 1;
}

static void silent_peer_is_cut_at_the_handshake_deadline(void **state)
{
    lab_t *lab = *state;
    /* A TCP client that never speaks TLS: the server drops it. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&lab->server_addr, sizeof(lab->server_addr)),
                     0);
    assert_true(run_until(lab, server_saw_close, lab, 15000));
    assert_int_equal(lab_server_stats(lab->server)->handshakes_failed, 1);
    char b;
    assert_int_equal(recv(fd, &b, 1, 0), 0); /* closed from the server side */
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(streams_share_connections_up_to_the_cap, lab_setup,
                                        lab_teardown),
        cmocka_unit_test_setup_teardown(keys_that_differ_get_their_own_connection, lab_setup,
                                        lab_teardown),
        cmocka_unit_test_setup_teardown(idle_connections_are_released, lab_setup, lab_teardown),
        cmocka_unit_test_setup_teardown(silent_peer_is_cut_at_the_handshake_deadline, lab_setup,
                                        lab_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
