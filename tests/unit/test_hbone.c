/*
 * Unit tests of hbone.c: a client and a server connection in memory, pumped
 * through two byte queues (optionally a few KiB per round, to act as a slow
 * link). Tunnel bytes follow a per-stream pattern so every byte is checked at
 * the receiver; every loop is bounded so a bug fails instead of hanging.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "hbone.h"

#define MAXT 256
#define MIB (1u << 20)

typedef struct tstream {
    zm_hbone_stream_t *s;
    bool server;
    int idx; /* pattern seed: client->server idx*2, server->client idx*2+1 */
    uint64_t rx, tx, tx_target;
    bool shut_after, shut_done, eof, bad, eof_early;
    int closes;
    uint32_t close_code;
    int status, responses, writable, again;
    int seq_response, seq_close; /* event order */
} tstream_t;

typedef struct link {
    uint8_t *buf;
    size_t len, cap;
} link_t;

typedef struct env {
    zm_hbone_conn_t *cli, *srv;
    link_t c2s, s2c;
    tstream_t ts[MAXT];
    int nts, seq;
    /* server policy */
    int srv_status;
    bool srv_consume, cli_consume;
    uint64_t srv_tx;         /* bytes the server sends back per stream */
    bool srv_reply_on_eof;   /* start sending only after the client's eof */
    bool srv_defer_response; /* do not answer in on_request */
    /* observations */
    int requests, cli_closes, srv_closes, feed_errors;
    char authority[64], method[16], baggage[64];
    int x_idx_seen;
    zm_hbone_stream_t *last_req;
    /* zero-copy mode: DATA through a writer, writes lent not copied */
    bool lend;
    int writes, pause_every;
    bool write_on_writable; /* writers write from on_stream_writable */
} env_t;

static env_t *E;

static uint8_t pat(int seed, uint64_t off)
{
    return (uint8_t)(off * 7 + (off >> 9) + (uint64_t)seed * 13);
}

static tstream_t *ts_new(bool server, int idx)
{
    assert_true(E->nts < MAXT);
    tstream_t *t = &E->ts[E->nts++];
    memset(t, 0, sizeof(*t));
    t->server = server;
    t->idx = idx;
    return t;
}

/* ---- callbacks ---- */

static void on_request(zm_hbone_conn_t *c, zm_hbone_stream_t *s, const zm_hbone_request_t *req)
{
    E->requests++;
    E->last_req = s;
    snprintf(E->method, sizeof(E->method), "%s", req->method ? req->method : "");
    snprintf(E->authority, sizeof(E->authority), "%s", req->authority ? req->authority : "(null)");
    int idx = 0;
    for (size_t i = 0; i < req->n_headers; i++) {
        if (!strcmp(req->headers[i].name, "x-idx")) {
            idx = atoi(req->headers[i].value);
            E->x_idx_seen++;
        }
        if (!strcmp(req->headers[i].name, "baggage"))
            snprintf(E->baggage, sizeof(E->baggage), "%s", req->headers[i].value);
    }
    tstream_t *t = ts_new(true, idx);
    t->s = s;
    t->tx_target = E->srv_tx;
    t->shut_after = true;
    zm_hbone_stream_set_ctx(s, t);
    if (strcmp(E->method, "CONNECT") != 0) {
        assert_int_equal(zm_hbone_respond(s, 400, NULL, 0), 0);
        return;
    }
    if (!E->srv_defer_response)
        assert_int_equal(zm_hbone_respond(s, E->srv_status, NULL, 0), 0);
}

static void on_response(zm_hbone_stream_t *s, int status, const zm_hbone_header_t *h, size_t n)
{
    tstream_t *t = zm_hbone_stream_ctx(s);
    t->status = status;
    t->responses++;
    t->seq_response = ++E->seq;
}

static void on_data(zm_hbone_stream_t *s, const uint8_t *d, size_t len)
{
    tstream_t *t = zm_hbone_stream_ctx(s);
    int seed = t->server ? t->idx * 2 : t->idx * 2 + 1;
    for (size_t i = 0; i < len; i++)
        if (d[i] != pat(seed, t->rx + i))
            t->bad = true;
    t->rx += len;
    if (t->server ? E->srv_consume : E->cli_consume)
        zm_hbone_stream_consume(s, len);
}

static void on_eof(zm_hbone_stream_t *s)
{
    tstream_t *t = zm_hbone_stream_ctx(s);
    t->eof = true;
}

static void write_some(tstream_t *t);

static void on_writable(zm_hbone_stream_t *s)
{
    tstream_t *t = zm_hbone_stream_ctx(s);
    t->writable++;
    if (E->write_on_writable)
        write_some(t);
}

static void on_close(zm_hbone_stream_t *s, uint32_t code)
{
    tstream_t *t = zm_hbone_stream_ctx(s);
    if (!t)
        return;
    t->closes++;
    t->close_code = code;
    t->seq_close = ++E->seq;
    t->s = NULL;
}

static void on_conn_close(zm_hbone_conn_t *c, const char *reason)
{
    assert_non_null(reason);
    if (c == E->cli)
        E->cli_closes++;
    else
        E->srv_closes++;
}

static const zm_hbone_callbacks_t CB = {on_request,  on_response, on_data,      on_eof,
                                        on_writable, on_close,    on_conn_close};

/* ---- pump ---- */

static void link_push(link_t *l, const uint8_t *p, size_t n)
{
    if (l->len + n > l->cap) {
        l->cap = (l->len + n) * 2;
        l->buf = realloc(l->buf, l->cap);
        assert_non_null(l->buf);
    }
    memcpy(l->buf + l->len, p, n);
    l->len += n;
}

static void link_feed(link_t *l, zm_hbone_conn_t *to, size_t limit)
{
    size_t n = ZM_MIN(l->len, limit);
    if (n == 0)
        return;
    if (zm_hbone_feed(to, l->buf, n) < 0)
        E->feed_errors++;
    memmove(l->buf, l->buf + n, l->len - n);
    l->len -= n;
}

static size_t drain_output(zm_hbone_conn_t *c, link_t *l)
{
    size_t moved = 0;
    const uint8_t *p;
    ssize_t n;
    for (int i = 0; i < 100000 && (n = zm_hbone_output(c, &p)) > 0; i++) {
        link_push(l, p, (size_t)n);
        moved += (size_t)n;
    }
    return moved;
}

/* The zero-copy writer: frames go onto the link; every pause_every-th
 * write says "transport full". */
static int link_writer(void *ctx, const struct iovec *iov, int n)
{
    link_t *l = ctx;
    for (int i = 0; i < n; i++)
        link_push(l, iov[i].iov_base, iov[i].iov_len);
    E->writes++;
    return E->pause_every && E->writes % E->pause_every == 0;
}

/* Writes t's pattern until the stream refuses or t is done (copying). */
static void write_some(tstream_t *t)
{
    static uint8_t buf[64 * 1024];
    int seed = t->server ? t->idx * 2 + 1 : t->idx * 2;
    while (t->tx < t->tx_target) {
        size_t n = (size_t)ZM_MIN((uint64_t)sizeof(buf), t->tx_target - t->tx);
        for (size_t k = 0; k < n; k++)
            buf[k] = pat(seed, t->tx + k);
        ssize_t w = zm_hbone_stream_write(t->s, buf, n);
        if (w <= 0)
            return;
        t->tx += (uint64_t)w;
    }
}

static void zero_copy_mode(int pause_every)
{
    E->lend = true;
    E->pause_every = pause_every;
    zm_hbone_set_writer(E->cli, link_writer, &E->c2s);
    zm_hbone_set_writer(E->srv, link_writer, &E->s2c);
}

/* Writers write what they can; returns whether anything was written. */
static bool app_step(void)
{
    static uint8_t buf[64 * 1024];
    bool any = false;
    for (int i = 0; i < E->nts; i++) {
        tstream_t *t = &E->ts[i];
        if (!t->s || (t->server && E->srv_reply_on_eof && !t->eof))
            continue;
        if (!t->server && t->status == 0)
            continue; /* tunnel not open yet */
        int seed = t->server ? t->idx * 2 + 1 : t->idx * 2;
        while (t->tx < t->tx_target) {
            size_t n = (size_t)ZM_MIN((uint64_t)sizeof(buf), t->tx_target - t->tx);
            for (size_t k = 0; k < n; k++)
                buf[k] = pat(seed, t->tx + k);
            ssize_t w =
                E->lend ? zm_hbone_stream_lend(t->s, buf, n) : zm_hbone_stream_write(t->s, buf, n);
            if (w == ZM_AGAIN) {
                t->again++;
                break;
            }
            assert_true(w > 0);
            if (E->lend) {
                /* DATA may go out from the loan now; settle copies the
                 * rest, and the poison shows any later read of it. */
                drain_output(t->server ? E->srv : E->cli, t->server ? &E->s2c : &E->c2s);
                assert_int_equal(zm_hbone_stream_settle(t->s), 0);
                memset(buf, 0xEE, n);
            }
            t->tx += (uint64_t)w;
            any = true;
            if ((size_t)w < n)
                break;
        }
        if (t->tx == t->tx_target && t->shut_after && !t->shut_done) {
            assert_int_equal(zm_hbone_stream_shutdown(t->s), 0);
            t->shut_done = true;
            any = true;
        }
    }
    return any;
}

/* Moves bytes both ways (at most limit per direction per round) until
 * nothing moves; bounded. */
static void pump(size_t limit)
{
    for (int round = 0; round < 200000; round++) {
        bool any = app_step();
        if (E->cli)
            any |= drain_output(E->cli, &E->c2s) > 0;
        if (E->srv)
            any |= drain_output(E->srv, &E->s2c) > 0;
        any |= E->c2s.len > 0 || E->s2c.len > 0;
        if (E->srv)
            link_feed(&E->c2s, E->srv, limit);
        if (E->cli)
            link_feed(&E->s2c, E->cli, limit);
        if (!any)
            return;
    }
    fail_msg("pump did not settle");
}

static int setup(void **state)
{
    E = calloc(1, sizeof(*E));
    E->srv_status = 200;
    E->srv_consume = E->cli_consume = true;
    assert_int_equal(zm_hbone_conn_new(&E->cli, false, NULL, &CB, NULL), 0);
    assert_int_equal(zm_hbone_conn_new(&E->srv, true, NULL, &CB, NULL), 0);
    return 0;
}

static int teardown(void **state)
{
    zm_hbone_conn_free(&E->cli);
    zm_hbone_conn_free(&E->srv);
    assert_null(E->cli);
    free(E->c2s.buf);
    free(E->s2c.buf);
    free(E);
    E = NULL;
    return 0;
}

static tstream_t *open_stream(int idx, uint64_t tx)
{
    char v[16];
    snprintf(v, sizeof(v), "%d", idx);
    zm_hbone_header_t h[] = {{"x-idx", v}, {"baggage", "k8s.pod.name=a"}};
    tstream_t *t = ts_new(false, idx);
    t->tx_target = tx;
    t->shut_after = true;
    t->s = zm_hbone_open(E->cli, "10.0.0.1:8080", h, 2, t);
    return t;
}

static tstream_t *server_of(int idx)
{
    for (int i = 0; i < E->nts; i++)
        if (E->ts[i].server && E->ts[i].idx == idx)
            return &E->ts[i];
    return NULL;
}

/* ---- tests ---- */

static void one_connect(void **state)
{
    E->srv_tx = MIB;
    E->srv_reply_on_eof = true; /* client half-closes first, server still sends */
    tstream_t *c = open_stream(0, MIB);
    assert_non_null(c->s);
    assert_int_equal(zm_hbone_stream_id(c->s) % 2, 1);
    assert_ptr_equal(zm_hbone_stream_conn(c->s), E->cli);
    pump(SIZE_MAX);

    assert_int_equal(E->requests, 1);
    assert_string_equal(E->method, "CONNECT");
    assert_string_equal(E->authority, "10.0.0.1:8080");
    assert_string_equal(E->baggage, "k8s.pod.name=a");
    assert_int_equal(E->x_idx_seen, 1);
    tstream_t *s = server_of(0);
    assert_non_null(s);
    assert_int_equal(c->responses, 1);
    assert_int_equal(c->status, 200);
    assert_int_equal(s->rx, MIB);
    assert_int_equal(c->rx, MIB);
    assert_false(s->bad);
    assert_false(c->bad);
    assert_true(s->eof);
    assert_true(c->eof);
    assert_int_equal(s->closes, 1);
    assert_int_equal(c->closes, 1);
    assert_int_equal(s->close_code, 0);
    assert_int_equal(c->close_code, 0);
    assert_int_equal(zm_hbone_active_streams(E->cli), 0);
    assert_int_equal(zm_hbone_active_streams(E->srv), 0);
    assert_int_equal(E->cli_closes + E->srv_closes, 0);
    assert_int_equal(E->feed_errors, 0);
    assert_true(zm_hbone_can_open(E->cli));
}

static void hundred_streams(void **state)
{
    E->srv_tx = MIB;
    /* Let the client learn the server's SETTINGS first. */
    pump(SIZE_MAX);
    for (int i = 0; i < 100; i++) {
        assert_true(zm_hbone_can_open(E->cli));
        assert_non_null(open_stream(i, MIB)->s);
    }
    assert_int_equal(zm_hbone_active_streams(E->cli), 100);
    assert_false(zm_hbone_can_open(E->cli));
    zm_hbone_header_t h = {"x-idx", "100"};
    assert_null(zm_hbone_open(E->cli, "10.0.0.1:80", &h, 1, NULL));
    pump(SIZE_MAX);
    assert_int_equal(E->requests, 100);
    for (int i = 0; i < 100; i++) {
        tstream_t *c = &E->ts[i], *s = server_of(i);
        assert_non_null(s);
        assert_int_equal(c->rx, MIB);
        assert_int_equal(s->rx, MIB);
        assert_false(c->bad || s->bad);
        assert_true(c->eof && s->eof);
        assert_int_equal(c->closes, 1);
        assert_int_equal(s->closes, 1);
        assert_int_equal(c->close_code, 0);
        assert_int_equal(s->close_code, 0);
    }
    assert_int_equal(zm_hbone_active_streams(E->cli), 0);
    assert_true(zm_hbone_can_open(E->cli));
}

static void flow_control(void **state)
{
    zm_hbone_settings_t def;
    zm_hbone_settings_defaults(&def, false);
    E->srv_consume = false;
    E->srv_tx = 0;
    const uint64_t total = 12 * MIB;
    tstream_t *c = open_stream(7, total);
    pump(64 * 1024); /* slow link */
    tstream_t *s = server_of(7);
    assert_non_null(s);
    assert_true(c->again > 0);
    assert_true(c->tx < total);
    assert_true(zm_hbone_stream_queued(c->s) <= def.stream_send_buffer);
    assert_true(c->tx <= (uint64_t)def.stream_window + def.stream_send_buffer);
    assert_true(s->rx <= def.stream_window);
    assert_true(s->rx > 0);
    assert_int_equal(s->rx + zm_hbone_stream_queued(c->s), c->tx);

    /* Another round changes nothing: the sender is stopped. */
    uint64_t rx = s->rx;
    pump(SIZE_MAX);
    assert_int_equal(s->rx, rx);

    /* The owner delivers: everything flows to completion. */
    E->srv_consume = true;
    zm_hbone_stream_consume(s->s, (size_t)s->rx);
    pump(64 * 1024);
    assert_int_equal(s->rx, total);
    assert_false(s->bad);
    assert_true(s->eof);
    assert_true(c->writable > 0);
    assert_int_equal(c->closes, 1);
    assert_int_equal(s->closes, 1);
    assert_int_equal(c->close_code, 0);
}

/* DATA written from loans and stream buffers through a writer (pausing
 * now and then), data intact both ways, flow control still holding. */
static void zero_copy_streams(void **state)
{
    zero_copy_mode(3);
    E->srv_tx = MIB;
    pump(SIZE_MAX);
    for (int i = 0; i < 20; i++)
        assert_non_null(open_stream(i, MIB + (size_t)i * 777)->s);
    pump(100 * 1024);
    for (int i = 0; i < 20; i++) {
        tstream_t *c = &E->ts[i], *sv = server_of(i);
        assert_non_null(sv);
        assert_int_equal(sv->rx, MIB + (size_t)i * 777);
        assert_int_equal(c->rx, MIB);
        assert_false(c->bad || sv->bad);
        assert_true(c->eof && sv->eof);
        assert_int_equal(c->close_code, 0);
    }
    assert_true(E->writes > 20 * 16);
}

/* What an owner writes from on_stream_writable goes out in the same
 * zm_hbone_output call: with a writer, DATA frames return nothing from it,
 * so it must not stop at the first round. */
static void zero_copy_writes_from_writable(void **state)
{
    zm_hbone_set_writer(E->cli, link_writer, &E->c2s);
    zm_hbone_set_writer(E->srv, link_writer, &E->s2c);
    E->write_on_writable = true;
    E->srv_tx = 0;
    tstream_t *c = open_stream(3, 0);
    c->shut_after = false;
    pump(SIZE_MAX); /* open the tunnel; nothing written yet */
    assert_int_equal(c->status, 200);
    c->tx_target = 3 * MIB;
    write_some(c); /* fills the 1 MiB stream buffer */
    assert_int_equal(c->tx, MIB);
    size_t before = E->c2s.len;
    const uint8_t *p;
    assert_int_equal(zm_hbone_output(E->cli, &p), 0);
    /* One call: the buffer, then what on_stream_writable wrote, up to the
     * peer's 4 MiB window. */
    assert_true(E->c2s.len - before > 2 * MIB);
    assert_true(c->writable > 0);
    pump(SIZE_MAX);
    tstream_t *sv = server_of(3);
    assert_non_null(sv);
    assert_int_equal(sv->rx, 3 * MIB);
    assert_false(sv->bad);
}

static void zero_copy_flow_control(void **state)
{
    zero_copy_mode(0);
    flow_control(state);
}

static void refused_request(void **state)
{
    E->srv_status = 401;
    tstream_t *c = open_stream(3, MIB);
    pump(SIZE_MAX);
    assert_int_equal(E->requests, 1);
    assert_int_equal(c->responses, 1);
    assert_int_equal(c->status, 401);
    assert_int_equal(c->closes, 1);
    assert_true(c->seq_response < c->seq_close);
    assert_int_equal(c->rx, 0);
    assert_int_equal(server_of(3)->closes, 1);
    assert_int_equal(zm_hbone_active_streams(E->cli), 0);
    assert_int_equal(zm_hbone_active_streams(E->srv), 0);
    assert_int_equal(E->feed_errors, 0);
}

/* True if a frame of type `type` is among the frames in buf. */
static bool has_frame(const uint8_t *b, size_t len, uint8_t type)
{
    size_t off = 0;
    if (len >= NGHTTP2_CLIENT_MAGIC_LEN &&
        !memcmp(b, NGHTTP2_CLIENT_MAGIC, NGHTTP2_CLIENT_MAGIC_LEN))
        off = NGHTTP2_CLIENT_MAGIC_LEN; /* a client's output starts with the preface */
    while (off + 9 <= len) {
        size_t flen = ((size_t)b[off] << 16) | ((size_t)b[off + 1] << 8) | b[off + 2];
        if (b[off + 3] == type)
            return true;
        off += 9 + flen;
    }
    return false;
}

static size_t collect_output(zm_hbone_conn_t *c, uint8_t *out, size_t cap)
{
    size_t len = 0;
    const uint8_t *p;
    ssize_t n;
    while ((n = zm_hbone_output(c, &p)) > 0) {
        assert_true(len + (size_t)n <= cap);
        memcpy(out + len, p, (size_t)n);
        len += (size_t)n;
    }
    return len;
}

static void malformed_garbage(void **state)
{
    static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    static uint8_t out[1 << 16];
    assert_true(zm_hbone_feed(E->srv, (const uint8_t *)junk, sizeof(junk) - 1) < 0);
    assert_int_equal(E->srv_closes, 1);
    size_t len = collect_output(E->srv, out, sizeof(out));
    assert_true(has_frame(out, len, 0x7));
    assert_true(zm_hbone_feed(E->srv, (const uint8_t *)junk, sizeof(junk) - 1) < 0);
    assert_int_equal(E->srv_closes, 1);

    /* A client that gets garbage instead of SETTINGS. */
    assert_true(zm_hbone_feed(E->cli, (const uint8_t *)junk, sizeof(junk) - 1) < 0);
    assert_int_equal(E->cli_closes, 1);
    len = collect_output(E->cli, out, sizeof(out));
    assert_true(has_frame(out, len, 0x7));
}

static void malformed_frame_length(void **state)
{
    static uint8_t out[1 << 16];
    uint8_t in[64];
    size_t n = 0;
    memcpy(in, NGHTTP2_CLIENT_MAGIC, NGHTTP2_CLIENT_MAGIC_LEN);
    n += NGHTTP2_CLIENT_MAGIC_LEN;
    /* SETTINGS with length 5: not a multiple of 6 → FRAME_SIZE_ERROR */
    const uint8_t settings[] = {0, 0, 5, 0x4, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0};
    memcpy(in + n, settings, sizeof(settings));
    n += sizeof(settings);
    assert_true(zm_hbone_feed(E->srv, in, n) < 0);
    assert_int_equal(E->srv_closes, 1);
    size_t len = collect_output(E->srv, out, sizeof(out));
    assert_true(has_frame(out, len, 0x7));
    assert_int_equal(E->requests, 0);
}

/* Raw request HEADERS on stream 1 after a valid preface; block is HPACK. */
static size_t raw_request(uint8_t *in, const uint8_t *block, size_t blen)
{
    size_t n = 0;
    memcpy(in, NGHTTP2_CLIENT_MAGIC, NGHTTP2_CLIENT_MAGIC_LEN);
    n += NGHTTP2_CLIENT_MAGIC_LEN;
    const uint8_t settings[] = {0, 0, 0, 0x4, 0, 0, 0, 0, 0};
    memcpy(in + n, settings, sizeof(settings));
    n += sizeof(settings);
    const uint8_t hd[] = {0, 0, (uint8_t)blen, 0x1, 0x4, 0, 0, 0, 1}; /* HEADERS END_HEADERS */
    memcpy(in + n, hd, sizeof(hd));
    n += sizeof(hd);
    memcpy(in + n, block, blen);
    return n + blen;
}

static void connect_without_authority(void **state)
{
    static uint8_t out[1 << 16];
    uint8_t in[128];
    /* :method CONNECT (literal, indexed name 2) and nothing else */
    const uint8_t block[] = {0x02, 7, 'C', 'O', 'N', 'N', 'E', 'C', 'T'};
    size_t n = raw_request(in, block, sizeof(block));
    assert_int_equal(zm_hbone_feed(E->srv, in, n), 0);
    size_t len = collect_output(E->srv, out, sizeof(out));
    assert_true(has_frame(out, len, 0x3)); /* RST_STREAM */
    assert_int_equal(E->requests, 0);
    assert_int_equal(E->srv_closes, 0);
    assert_int_equal(zm_hbone_active_streams(E->srv), 0);
}

static void non_connect_gets_400(void **state)
{
    static uint8_t out[1 << 16];
    uint8_t in[128];
    /* :method GET, :scheme http, :path /, :authority x */
    const uint8_t block[] = {0x82, 0x86, 0x84, 0x41, 1, 'x'};
    size_t n = raw_request(in, block, sizeof(block));
    assert_int_equal(zm_hbone_feed(E->srv, in, n), 0);
    assert_int_equal(E->requests, 1);
    assert_string_equal(E->method, "GET");
    assert_string_equal(E->authority, "x");
    size_t len = collect_output(E->srv, out, sizeof(out));
    assert_true(has_frame(out, len, 0x1)); /* the 400 HEADERS */
    assert_int_equal(E->srv_closes, 0);
}

static void reset_from_client(void **state)
{
    E->srv_tx = 0;
    tstream_t *c = open_stream(1, 0);
    c->shut_after = false;
    pump(SIZE_MAX);
    tstream_t *s = server_of(1);
    assert_non_null(s);
    s->shut_after = false;
    zm_hbone_stream_reset(c->s, NGHTTP2_CONNECT_ERROR);
    pump(SIZE_MAX);
    assert_int_equal(s->closes, 1);
    assert_int_equal(s->close_code, NGHTTP2_CONNECT_ERROR);
    assert_int_equal(c->closes, 1);
    assert_int_equal(c->close_code, NGHTTP2_CONNECT_ERROR);
}

/* Applications reset connections all the time; each becomes an RST_STREAM
 * on a shared tunnel. 2,000 in a burst must not cost the connection
 * (nghttp2's default guard would GOAWAY after 1,000). */
static void many_resets_keep_the_connection(void **state)
{
    E->srv_tx = 0;
    for (int round = 0; round < 40; round++) {
        E->nts = 0;
        tstream_t *cs[50];
        for (int i = 0; i < 50; i++) {
            cs[i] = open_stream(round * 50 + i, 0);
            assert_non_null(cs[i]->s);
            cs[i]->shut_after = false;
        }
        pump(SIZE_MAX);
        for (int i = 0; i < 50; i++)
            zm_hbone_stream_reset(cs[i]->s, NGHTTP2_CANCEL);
        pump(SIZE_MAX);
        for (int i = 0; i < 50; i++)
            assert_int_equal(cs[i]->closes, 1);
    }
    assert_int_equal(E->srv_closes, 0);
    assert_int_equal(E->cli_closes, 0);
    assert_true(zm_hbone_can_open(E->cli));
}

static void reset_from_server(void **state)
{
    E->srv_tx = 0;
    tstream_t *c = open_stream(2, 0);
    c->shut_after = false;
    pump(SIZE_MAX);
    tstream_t *s = server_of(2);
    s->shut_after = false;
    zm_hbone_stream_reset(s->s, NGHTTP2_CANCEL);
    assert_int_equal(zm_hbone_stream_write(s->s, (const uint8_t *)"x", 1), -EPIPE);
    pump(SIZE_MAX);
    assert_int_equal(c->closes, 1);
    assert_int_equal(c->close_code, NGHTTP2_CANCEL);
    assert_int_equal(s->closes, 1);
    assert_int_equal(zm_hbone_active_streams(E->srv), 0);
}

static void goaway_server(void **state)
{
    E->srv_tx = MIB;
    E->srv_reply_on_eof = true;
    tstream_t *c = open_stream(4, MIB);
    c->shut_after = false; /* keep it open across the GOAWAY */
    pump(SIZE_MAX);
    assert_int_equal(zm_hbone_goaway(E->srv, NGHTTP2_NO_ERROR), 0);
    pump(SIZE_MAX);
    assert_false(zm_hbone_can_open(E->cli));
    assert_null(zm_hbone_open(E->cli, "10.0.0.2:80", NULL, 0, NULL));
    assert_int_equal(E->cli_closes + E->srv_closes, 0);
    /* The existing stream finishes both ways. */
    c->shut_after = true;
    pump(SIZE_MAX);
    tstream_t *s = server_of(4);
    assert_int_equal(s->rx, MIB);
    assert_int_equal(c->rx, MIB);
    assert_false(s->bad || c->bad);
    assert_int_equal(c->closes, 1);
    assert_int_equal(c->close_code, 0);
    assert_int_equal(E->cli_closes, 1);
    assert_int_equal(E->srv_closes, 1);
    assert_int_equal(E->feed_errors, 0);
}

static void goaway_client(void **state)
{
    tstream_t *c = open_stream(5, 0);
    c->shut_after = false;
    pump(SIZE_MAX);
    assert_int_equal(zm_hbone_goaway(E->cli, NGHTTP2_NO_ERROR), 0);
    assert_null(zm_hbone_open(E->cli, "10.0.0.2:80", NULL, 0, NULL));
    pump(SIZE_MAX);
    assert_int_equal(E->cli_closes + E->srv_closes, 0);
    c->shut_after = true;
    pump(SIZE_MAX);
    assert_int_equal(c->closes, 1);
    assert_int_equal(E->cli_closes, 1);
    assert_int_equal(E->srv_closes, 1);
}

static void ping_ack(void **state)
{
    pump(SIZE_MAX);
    uint64_t t0 = zm_now_ms();
    assert_int_equal(zm_hbone_ping(E->cli), 0);
    assert_true(zm_hbone_want_output(E->cli));
    pump(SIZE_MAX);
    /* The ack arrived after t0, so it is at most that old. */
    uint64_t since = zm_hbone_ms_since_ack(E->cli);
    assert_true(since <= zm_now_ms() - t0);
    assert_int_equal(E->cli_closes + E->srv_closes, 0);
}

static void header_list_limit(void **state)
{
    zm_hbone_conn_free(&E->srv);
    zm_hbone_settings_t set = {.max_header_list = 1024};
    assert_int_equal(zm_hbone_conn_new(&E->srv, true, &set, &CB, NULL), 0);
    static char big[4096];
    memset(big, 'a', sizeof(big) - 1);
    zm_hbone_header_t h = {"x-big", big};
    tstream_t *c = ts_new(false, 9);
    c->s = zm_hbone_open(E->cli, "10.0.0.1:80", &h, 1, c);
    assert_non_null(c->s);
    pump(SIZE_MAX);
    assert_int_equal(E->requests, 0);
    assert_int_equal(c->closes, 1);
    assert_true(c->close_code != 0);
    assert_int_equal(zm_hbone_active_streams(E->srv), 0);
}

static void deferred_response_and_bad_args(void **state)
{
    E->srv_defer_response = true;
    tstream_t *c = open_stream(6, 1000);
    assert_null(zm_hbone_open(E->cli, NULL, NULL, 0, NULL));
    zm_hbone_header_t bad = {":path", "/"};
    assert_null(zm_hbone_open(E->cli, "1.2.3.4:5", &bad, 1, NULL));
    pump(SIZE_MAX);
    assert_int_equal(E->requests, 1);
    assert_int_equal(c->responses, 0);
    assert_int_equal(zm_hbone_respond(c->s, 200, NULL, 0), -EINVAL); /* client side */
    assert_int_equal(zm_hbone_respond(E->last_req, 99, NULL, 0), -EINVAL);
    zm_hbone_header_t extra = {"x-ok", "1"};
    assert_int_equal(zm_hbone_respond(E->last_req, 200, &extra, 1), 0);
    assert_int_equal(zm_hbone_respond(E->last_req, 200, NULL, 0), -EINVAL);
    pump(SIZE_MAX);
    assert_int_equal(c->status, 200);
    assert_int_equal(server_of(6)->rx, 1000);
    assert_int_equal(c->closes, 1);
}

static void slow_link(void **state)
{
    E->srv_tx = 300 * 1000;
    tstream_t *c = open_stream(8, 200 * 1000);
    pump(1500); /* frames arrive in pieces */
    tstream_t *s = server_of(8);
    assert_non_null(s);
    assert_int_equal(s->rx, 200 * 1000);
    assert_int_equal(c->rx, 300 * 1000);
    assert_false(s->bad || c->bad);
    assert_true(s->eof && c->eof);
    assert_int_equal(c->closes, 1);
    assert_int_equal(s->closes, 1);
    assert_int_equal(E->feed_errors, 0);
}

static void peer_stream_limit(void **state)
{
    zm_hbone_conn_free(&E->srv);
    zm_hbone_settings_t set = {.max_concurrent_streams = 5};
    assert_int_equal(zm_hbone_conn_new(&E->srv, true, &set, &CB, NULL), 0);
    pump(SIZE_MAX);
    for (int i = 0; i < 5; i++)
        assert_non_null(open_stream(i, 0)->s);
    assert_false(zm_hbone_can_open(E->cli));
    assert_null(zm_hbone_open(E->cli, "10.0.0.1:80", NULL, 0, NULL));
    pump(SIZE_MAX);
    assert_int_equal(E->requests, 5);
    assert_int_equal(zm_hbone_active_streams(E->cli), 0);
    assert_true(zm_hbone_can_open(E->cli));
}

/* Requests still queued when they can no longer go out are closed too. */
static void queued_request_refused_or_reset(void **state)
{
    pump(SIZE_MAX);
    tstream_t *a = open_stream(1, 0), *b = open_stream(2, 0);
    assert_non_null(a->s);
    assert_non_null(b->s);
    zm_hbone_stream_reset(b->s, NGHTTP2_CANCEL); /* before its HEADERS left */
    assert_int_equal(zm_hbone_goaway(E->srv, NGHTTP2_NO_ERROR), 0);
    assert_true(drain_output(E->srv, &E->s2c) > 0);
    link_feed(&E->s2c, E->cli, SIZE_MAX); /* the client sees GOAWAY first */
    pump(SIZE_MAX);
    assert_int_equal(E->requests, 0);
    assert_int_equal(a->closes, 1);
    assert_int_equal(a->close_code, NGHTTP2_REFUSED_STREAM);
    assert_int_equal(b->closes, 1);
    assert_int_equal(b->close_code, NGHTTP2_CANCEL);
    assert_int_equal(zm_hbone_active_streams(E->cli), 0);
}

/* Random frames after a valid preface: any outcome but a crash, a leak or a
 * second on_conn_close. Fixed seed, so it is reproducible. */
static void random_input(void **state)
{
    static uint8_t in[4096];
    static uint8_t out[1 << 17];
    uint32_t seed = 12345;
    int errors = 0;
    for (int iter = 0; iter < 300; iter++) {
        zm_hbone_conn_free(&E->srv);
        E->srv_closes = 0;
        E->nts = 0;
        assert_int_equal(zm_hbone_conn_new(&E->srv, true, NULL, &CB, NULL), 0);
        size_t n = 0;
        memcpy(in, NGHTTP2_CLIENT_MAGIC, NGHTTP2_CLIENT_MAGIC_LEN);
        n += NGHTTP2_CLIENT_MAGIC_LEN;
        const uint8_t settings[] = {0, 0, 0, 0x4, 0, 0, 0, 0, 0};
        memcpy(in + n, settings, sizeof(settings));
        n += sizeof(settings);
        while (n < sizeof(in) - 64) {
            seed = seed * 1103515245u + 12345u;
            size_t plen = (seed >> 16) % 40;
            in[n++] = 0;
            in[n++] = 0;
            in[n++] = (uint8_t)plen;
            in[n++] = (uint8_t)((seed >> 8) % 11); /* type DATA..CONTINUATION, some unknown */
            in[n++] = (uint8_t)(seed >> 3);
            in[n++] = 0;
            in[n++] = 0;
            in[n++] = 0;
            in[n++] = (uint8_t)((seed >> 20) % 8);
            for (size_t k = 0; k < plen; k++) {
                seed = seed * 1103515245u + 12345u;
                in[n++] = (uint8_t)(seed >> 16);
            }
        }
        int rv = 0;
        for (size_t off = 0; off < n && rv >= 0;) {
            size_t step = ZM_MIN(n - off, (size_t)(1 + (off * 7919) % 97));
            rv = zm_hbone_feed(E->srv, in + off, step);
            off += step;
        }
        if (rv < 0) {
            errors++;
            assert_int_equal(E->srv_closes, 1);
            size_t len = collect_output(E->srv, out, sizeof(out));
            assert_true(has_frame(out, len, 0x7));
        } else {
            collect_output(E->srv, out, sizeof(out));
        }
        assert_true(E->srv_closes <= 1);
    }
    assert_true(errors > 0); /* the input is hostile enough to matter */
}

/* The connection window bounds all streams together, and what a closed
 * stream never consumed is given back to it. */
static void connection_window(void **state)
{
    zm_hbone_settings_t def;
    zm_hbone_settings_defaults(&def, true);
    E->srv_consume = false;
    for (int i = 0; i < 5; i++)
        open_stream(i, def.stream_window);
    pump(SIZE_MAX);
    uint64_t rx = 0;
    for (int i = 0; i < E->nts; i++)
        if (E->ts[i].server)
            rx += E->ts[i].rx;
    assert_true(rx <= def.conn_window);
    assert_true(rx > 3ull * def.stream_window); /* more than three windows' worth arrived */
    for (int i = 0; i < 5; i++)
        zm_hbone_stream_reset(server_of(i)->s, NGHTTP2_CANCEL);
    pump(SIZE_MAX);
    assert_int_equal(zm_hbone_active_streams(E->srv), 0);
    assert_int_equal(zm_hbone_active_streams(E->cli), 0);
    E->srv_consume = true;
    tstream_t *c = open_stream(9, 8 * MIB);
    pump(SIZE_MAX);
    assert_int_equal(server_of(9)->rx, 8 * MIB);
    assert_int_equal(c->closes, 1);
    assert_int_equal(c->close_code, 0);
}

/* Sends 300 KiB on an open stream and checks how the DATA went out: each
 * zm_hbone_output chunk holding DATA is one frame whose wire size (with its
 * 9-byte header) is want_wire (whole 16 KiB TLS records), but the last. */
static void check_data_frames(size_t want_wire)
{
    tstream_t *c = open_stream(4, 0);
    c->shut_after = false;
    pump(SIZE_MAX);
    assert_int_equal(c->status, 200);
    static uint8_t buf[300 * 1024];
    for (size_t k = 0; k < sizeof(buf); k++)
        buf[k] = pat(8, k);
    assert_int_equal(zm_hbone_stream_write(c->s, buf, sizeof(buf)), (ssize_t)sizeof(buf));
    c->tx = c->tx_target = sizeof(buf);
    const uint8_t *p;
    ssize_t n;
    size_t data_frames = 0, payload = 0, odd = 0;
    for (int i = 0; i < 1000 && (n = zm_hbone_output(E->cli, &p)) > 0; i++) {
        size_t len = ((size_t)p[0] << 16) | ((size_t)p[1] << 8) | p[2];
        if (p[3] == 0x0) {
            assert_int_equal((size_t)n, len + 9); /* handed over alone */
            data_frames++;
            payload += len;
            odd += len + 9 != want_wire;
        }
        link_push(&E->c2s, p, (size_t)n);
    }
    assert_int_equal(payload, sizeof(buf));
    assert_true(data_frames >= sizeof(buf) / want_wire);
    assert_true(odd <= 1);
    pump(SIZE_MAX);
    assert_int_equal(server_of(4)->rx, sizeof(buf));
    assert_false(server_of(4)->bad);
}

static void data_frames_fill_records(void **state)
{
    check_data_frames(64 * 1024);
}

/* A peer keeping the 16 KiB maximum frame size gets 16375-byte payloads:
 * one full TLS record per frame instead of 16384 + 9. */
static void data_frames_small_peer(void **state)
{
    zm_hbone_conn_free(&E->srv);
    zm_hbone_settings_t set;
    zm_hbone_settings_defaults(&set, true);
    set.max_frame_size = 16384;
    assert_int_equal(zm_hbone_conn_new(&E->srv, true, &set, &CB, NULL), 0);
    check_data_frames(16384);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(one_connect, setup, teardown),
        cmocka_unit_test_setup_teardown(hundred_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(flow_control, setup, teardown),
        cmocka_unit_test_setup_teardown(zero_copy_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(zero_copy_flow_control, setup, teardown),
        cmocka_unit_test_setup_teardown(zero_copy_writes_from_writable, setup, teardown),
        cmocka_unit_test_setup_teardown(refused_request, setup, teardown),
        cmocka_unit_test_setup_teardown(malformed_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(malformed_frame_length, setup, teardown),
        cmocka_unit_test_setup_teardown(connect_without_authority, setup, teardown),
        cmocka_unit_test_setup_teardown(non_connect_gets_400, setup, teardown),
        cmocka_unit_test_setup_teardown(reset_from_client, setup, teardown),
        cmocka_unit_test_setup_teardown(reset_from_server, setup, teardown),
        cmocka_unit_test_setup_teardown(goaway_server, setup, teardown),
        cmocka_unit_test_setup_teardown(goaway_client, setup, teardown),
        cmocka_unit_test_setup_teardown(ping_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(header_list_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(deferred_response_and_bad_args, setup, teardown),
        cmocka_unit_test_setup_teardown(slow_link, setup, teardown),
        cmocka_unit_test_setup_teardown(peer_stream_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(queued_request_refused_or_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(random_input, setup, teardown),
        cmocka_unit_test_setup_teardown(connection_window, setup, teardown),
        cmocka_unit_test_setup_teardown(data_frames_fill_records, setup, teardown),
        cmocka_unit_test_setup_teardown(data_frames_small_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(many_resets_keep_the_connection, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
