/*
 * lab_fixture.c — see lab_fixture.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lab_fixture.h"

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

const zm_hbs_ops_t cs_ops = {
    .on_response = cs_response,
    .on_data = cs_data,
    .on_eof = cs_eof,
    .on_writable = cs_writable,
    .on_close = cs_close,
};

void cs_init(cstream_t *cs, lab_t *lab, char mode, uint64_t seed, uint64_t to_send)
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

int lab_setup(void **state)
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

/* Runs the loop until cond holds or timeout_ms passes; returns cond. */
bool run_until(lab_t *lab, cond_fn cond, void *arg, uint64_t timeout_ms)
{
    uint64_t deadline = zm_now_ms() + timeout_ms;
    while (!cond(arg) && zm_now_ms() < deadline)
        zm_loop_run_once(lab->loop, 20);
    return cond(arg);
}

bool server_idle(void *arg)
{
    lab_t *lab = arg;
    const lab_server_stats_t *st = lab_server_stats(lab->server);
    const lab_target_stats_t *tt = lab_target_stats(lab->target);
    return st->closed == st->connections && tt->closed == tt->accepted;
}

bool target_idle(void *arg)
{
    const lab_target_stats_t *tt = lab_target_stats(((lab_t *)arg)->target);
    return tt->closed == tt->accepted;
}

int lab_teardown(void **state)
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

static void client_closed(zm_hbc_t *c, const char *reason)
{
    client_t *cl = zm_hbc_ctx(c);
    cl->closed = true;
    cl->reason = reason;
}

static const zm_hbc_handlers_t client_handlers = {.on_close = client_closed};

void client_connect(lab_t *lab, client_t *cl, const char *expected)
{
    const char *ids[] = {expected, NULL};
    memset(cl, 0, sizeof(*cl));
    assert_int_equal(zm_hbc_connect(&cl->c, lab->loop, -1, (struct sockaddr *)&lab->server_addr,
                                    sizeof(lab->server_addr), lab->client_tls, ids, NULL,
                                    &client_handlers, cl),
                     0);
}

bool client_gone(void *arg)
{
    return ((client_t *)arg)->closed;
}

void client_close(lab_t *lab, client_t *cl)
{
    if (!cl->closed)
        zm_hbc_close(cl->c, "test done");
    assert_true(run_until(lab, client_gone, cl, 5000));
}

bool all_closed(void *arg)
{
    streams_t *ss = arg;
    for (size_t i = 0; i < ss->n; i++)
        if (!ss->v[i].closed)
            return false;
    return true;
}

void open_stream(client_t *cl, cstream_t *cs, const char *authority)
{
    cs->s = zm_hbc_open(cl->c, authority, NULL, 0, cs);
    assert_non_null(cs->s);
}
