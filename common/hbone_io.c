/*
 * hbone_io.c — an HBONE connection on a loop socket (socket → TLS → HTTP/2).
 * The per-worker pool of client connections is in hbone_pool.c.
 *
 * Input path: on_data lends the socket's buffer to TLS (read in place, only
 * a trailing partial record is copied); while the handshake runs its output
 * goes straight to the socket; afterwards every plaintext byte goes to the
 * HTTP/2 session. Output path (hbc_flush): HTTP/2 frames are pulled only
 * while the socket's queue is under ZM_HBC_SOCK_HIGH_WATER; above it the
 * connection is marked ZM_HBC_BLOCKED_SOCK and resumes on the socket's
 * on_drain: that is what lets a slow TCP peer push back through the
 * streams' windows. TLS seals records straight into the socket queue (its
 * sink space) and DATA frames reach TLS without a copy (hbc_write, HBONE's
 * writer); what the queue refuses waits in TLS's output buffer
 * (push_tls_out).
 *
 * Lifetime: a connection dies only in the socket's on_close (nothing in
 * flight any more). Before freeing the HTTP/2 session every stream still open
 * gets its on_close, so owners never hold a dangling stream. Calls that
 * arrive while we are inside our own callbacks only set flags (`busy`).
 */
#include "hbone_io_int.h"
#include "log.h"

#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ZM_HBC_SOCK_HIGH_WATER (512u * 1024u)
#define ZM_HBC_MAX_TRACKED_STREAMS 1024u
#define ZM_HBC_HANDSHAKE_TIMEOUT_MS 10000u
#define ZM_HBC_PING_INTERVAL_MS 10000u
#define ZM_HBC_PING_TIMEOUT_MS 20000u

static void hbc_maybe_free(zm_hbc_t *c);
static void keepalive_fired(zm_timer_t *t);
static void hbc_flush_internal(zm_hbc_t *c);

static const zm_hbs_ops_t *stream_ops(zm_hbone_stream_t *s)
{
    void *ctx = zm_hbone_stream_ctx(s);
    return ctx ? *(const zm_hbs_ops_t **)ctx : NULL;
}

static int track_stream(zm_hbc_t *c, zm_hbone_stream_t *s)
{
    if (c->n_streams == c->cap_streams) {
        unsigned cap = c->cap_streams ? c->cap_streams * 2 : 16;
        if (cap > ZM_HBC_MAX_TRACKED_STREAMS)
            return -ENOBUFS;
        zm_hbone_stream_t **n = realloc(c->streams, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        c->streams = n;
        c->cap_streams = cap;
    }
    c->streams[c->n_streams++] = s;
    return 0;
}

static void untrack_stream(zm_hbc_t *c, zm_hbone_stream_t *s)
{
    for (unsigned i = 0; i < c->n_streams; i++) {
        if (c->streams[i] == s) {
            c->streams[i] = c->streams[--c->n_streams];
            return;
        }
    }
}

/* ---- HTTP/2 callbacks: dispatch to stream owners ---- */

static void h2_on_request(zm_hbone_conn_t *h2, zm_hbone_stream_t *s, const zm_hbone_request_t *req)
{
    zm_hbc_t *c = zm_hbone_conn_ctx(h2);
    if (track_stream(c, s) < 0 || (c->flags & ZM_HBC_CLOSING)) {
        zm_hbone_respond(s, 503, NULL, 0);
        return;
    }
    if (c->h && c->h->on_request)
        c->h->on_request(c, s, req);
    else
        zm_hbone_respond(s, 503, NULL, 0);
}

static void h2_on_response(zm_hbone_stream_t *s, int status, const zm_hbone_header_t *headers,
                           size_t n_headers)
{
    const zm_hbs_ops_t *ops = stream_ops(s);
    if (ops && ops->on_response)
        ops->on_response(s, status);
}

static void h2_on_data(zm_hbone_stream_t *s, const uint8_t *data, size_t len)
{
    const zm_hbs_ops_t *ops = stream_ops(s);
    if (ops && ops->on_data)
        ops->on_data(s, data, len);
    else
        zm_hbone_stream_consume(s, len); /* nobody wants it: keep the window open */
}

static void h2_on_eof(zm_hbone_stream_t *s)
{
    const zm_hbs_ops_t *ops = stream_ops(s);
    if (ops && ops->on_eof)
        ops->on_eof(s);
}

static void h2_on_writable(zm_hbone_stream_t *s)
{
    const zm_hbs_ops_t *ops = stream_ops(s);
    if (ops && ops->on_writable)
        ops->on_writable(s);
}

static void h2_on_stream_close(zm_hbone_stream_t *s, uint32_t error_code)
{
    zm_hbc_t *c = zm_hbone_conn_ctx(zm_hbone_stream_conn(s));
    untrack_stream(c, s);
    const zm_hbs_ops_t *ops = stream_ops(s);
    if (ops && ops->on_close)
        ops->on_close(s, error_code);
    zm__hbc_pool_note_activity(c);
    if ((c->flags & ZM_HBC_DRAINING) && c->n_streams == 0)
        zm_hbc_close(c, "drained");
}

static void h2_on_conn_close(zm_hbone_conn_t *h2, const char *reason)
{
    zm_hbc_t *c = zm_hbone_conn_ctx(h2);
    if (!c->reason)
        c->reason = reason;
    c->flags |= ZM_HBC_CLOSING;
}

static const zm_hbone_callbacks_t h2_callbacks = {
    .on_request = h2_on_request,
    .on_response = h2_on_response,
    .on_stream_data = h2_on_data,
    .on_stream_eof = h2_on_eof,
    .on_stream_writable = h2_on_writable,
    .on_stream_close = h2_on_stream_close,
    .on_conn_close = h2_on_conn_close,
};

/* Records why the connection ends badly; the log line is written once, at
 * teardown, rate limited: a flood of bad peers costs counters, not disk. */
static void hbc_fail(zm_hbc_t *c, const char *reason)
{
    if (!c->reason)
        c->reason = reason;
    c->flags |= ZM_HBC_FAILED;
}

/* ---- the byte path ---- */

/* TLS's sink: records go from wolfSSL's buffer straight into the socket
 * queue. What the socket refuses stays in TLS's output buffer, which
 * push_tls_out drains (on_drain, flush) before anything newer. */
static int tls_sink(void *ctx, const uint8_t *p, size_t n)
{
    zm_hbc_t *c = ctx;
    return c->sock ? zm_sock_send(c->sock, p, n) : -EPIPE;
}

/* Our record layer seals records right in the socket's queue. */
static uint8_t *tls_space(void *ctx, size_t min, size_t *avail)
{
    zm_hbc_t *c = ctx;
    *avail = 0;
    return c->sock ? zm_sock_send_reserve(c->sock, min, avail) : NULL;
}

static void tls_space_commit(void *ctx, size_t n)
{
    zm_hbc_t *c = ctx;
    zm_sock_send_commit(c->sock, n);
}

/* Moves TLS ciphertext into the socket queue. -ENOBUFS: socket full. */
static int push_tls_out(zm_hbc_t *c)
{
    const uint8_t *data;
    size_t len;
    while ((len = zm_tls_out(c->tls, &data)) > 0) {
        int r = zm_sock_send(c->sock, data, len);
        if (r < 0)
            return r;
        zm_tls_out_consume(c->tls, len);
    }
    return 0;
}

/* Before the handshake: its deadline. After: PING every interval, and a
 * peer silent for longer than the timeout is gone (Istio: 10 s / 20 s). */
static void keepalive_fired(zm_timer_t *t)
{
    zm_hbc_t *c = ZM_CONTAINER_OF(t, zm_hbc_t, keepalive);
    if (c->flags & (ZM_HBC_DEAD | ZM_HBC_CLOSING))
        return;
    if (!(c->flags & ZM_HBC_ESTABLISHED)) {
        hbc_fail(c, "TLS handshake timeout");
        zm_hbc_close(c, NULL);
        return;
    }
    if (zm_hbone_ms_since_ack(c->h2) > ZM_HBC_PING_TIMEOUT_MS) {
        hbc_fail(c, "keepalive timeout");
        zm_hbc_close(c, NULL);
        return;
    }
    zm_hbone_ping(c->h2);
    zm_hbc_flush(c);
    zm_timer_start(c->loop, &c->keepalive, ZM_HBC_PING_INTERVAL_MS, keepalive_fired);
}

static void hbc_flush_internal(zm_hbc_t *c)
{
    if (c->flags & ZM_HBC_DEAD)
        return;
    if (push_tls_out(c) == -ENOBUFS) {
        c->flags |= ZM_HBC_BLOCKED_SOCK;
        return;
    }
    if (!(c->flags & ZM_HBC_ESTABLISHED))
        return;
    for (;;) {
        if (zm_sock_send_queued(c->sock) >= ZM_HBC_SOCK_HIGH_WATER) {
            c->flags |= ZM_HBC_BLOCKED_SOCK;
            return;
        }
        const uint8_t *data;
        ssize_t n = zm_hbone_output(c->h2, &data);
        if (n <= 0)
            break;
        if (zm_tls_write(c->tls, data, (size_t)n) < 0) {
            zm_hbc_close(c, "TLS write failed");
            return;
        }
        if (push_tls_out(c) == -ENOBUFS) {
            c->flags |= ZM_HBC_BLOCKED_SOCK;
            return;
        }
    }
    /* DATA frames went out through hbc_write inside zm_hbone_output; it
     * stops nghttp2 once the socket is full, and we wait for on_drain. */
    const uint8_t *waiting;
    if (zm_sock_send_queued(c->sock) >= ZM_HBC_SOCK_HIGH_WATER || zm_tls_out(c->tls, &waiting)) {
        c->flags |= ZM_HBC_BLOCKED_SOCK;
        return;
    }
    c->flags &= ~ZM_HBC_BLOCKED_SOCK;
    if ((c->flags & ZM_HBC_CLOSING) && !(c->flags & ZM_HBC_DEAD) && c->sock)
        zm_sock_close(c->sock, ZM_SOCK_CLOSE_FLUSH);
}

/* HBONE's writer: DATA frames straight from the streams' buffers into
 * TLS, which seals them into the socket's queue (no copy on the way).
 * Answers 1 once the socket is full: HBONE then stops producing. */
static int hbc_write(void *ctx, const struct iovec *iov, int iovcnt)
{
    zm_hbc_t *c = ctx;
    if (zm_tls_writev(c->tls, iov, iovcnt) < 0)
        return -EPROTO;
    if (push_tls_out(c) == -ENOBUFS)
        return 1;
    return zm_sock_send_queued(c->sock) >= ZM_HBC_SOCK_HIGH_WATER ? 1 : 0;
}

static int finish_handshake(zm_hbc_t *c)
{
    c->flags |= ZM_HBC_ESTABLISHED;
    zm_hbone_set_writer(c->h2, hbc_write, c);
    zm_timer_start(c->loop, &c->keepalive, ZM_HBC_PING_INTERVAL_MS, keepalive_fired);
    if ((c->flags & ZM_HBC_SERVER) && c->h && c->h->on_handshake && c->h->on_handshake(c) < 0)
        return -EACCES;
    return 0;
}

static void on_sock_data(zm_sock_t *s, const uint8_t *data, size_t len)
{
    zm_hbc_t *c = zm_sock_ctx(s);
    if (c->flags & ZM_HBC_CLOSING)
        return;
    c->busy++;
    /* TLS reads the socket's buffer in place; settle (at out) keeps only a
     * trailing partial record. */
    if (zm_tls_feed_borrow(c->tls, data, len) < 0) {
        hbc_fail(c, "TLS input overflow");
        zm_hbc_close(c, NULL);
        goto out;
    }
    if (!(c->flags & ZM_HBC_ESTABLISHED)) {
        int r = zm_tls_handshake(c->tls);
        push_tls_out(c);
        if (r == ZM_AGAIN)
            goto out;
        if (r < 0) {
            const char *why = zm_tls_error(c->tls);
            hbc_fail(c, why ? why : "TLS handshake failed");
            c->flags |= ZM_HBC_CLOSING;
            zm_sock_close(c->sock, ZM_SOCK_CLOSE_FLUSH);
            goto out;
        }
        if (finish_handshake(c) < 0) {
            zm_hbc_close(c, "connection refused by policy");
            goto out;
        }
    }
    uint8_t buf[32 * 1024];
    for (;;) {
        ssize_t n = zm_tls_read(c->tls, buf, sizeof(buf));
        if (n == ZM_AGAIN)
            break;
        if (n == 0) {
            c->flags |= ZM_HBC_CLOSING;
            if (!c->reason)
                c->reason = "peer closed TLS";
            break;
        }
        if (n < 0) {
            const char *why = zm_tls_error(c->tls);
            hbc_fail(c, why ? why : "TLS read failed");
            c->flags |= ZM_HBC_CLOSING;
            break;
        }
        if (zm_hbone_feed(c->h2, buf, (size_t)n) < 0) {
            hbc_fail(c, "HTTP/2 protocol error");
            c->flags |= ZM_HBC_CLOSING;
            break; /* flush sends the GOAWAY, then the socket closes */
        }
    }
    hbc_flush_internal(c);
out:
    if (zm_tls_feed_settle(c->tls) < 0) {
        hbc_fail(c, "TLS input overflow");
        zm_hbc_close(c, NULL);
    }
    c->busy--;
    hbc_maybe_free(c);
}

static void on_sock_eof(zm_sock_t *s)
{
    zm_hbc_t *c = zm_sock_ctx(s);
    zm_hbc_close(c, c->reason ? c->reason : "peer closed connection");
}

static void on_sock_drain(zm_sock_t *s)
{
    zm_hbc_t *c = zm_sock_ctx(s);
    if (!(c->flags & ZM_HBC_BLOCKED_SOCK))
        return;
    c->busy++;
    c->flags &= ~ZM_HBC_BLOCKED_SOCK;
    hbc_flush_internal(c);
    c->busy--;
    hbc_maybe_free(c);
}

static void on_sock_connect(zm_sock_t *s, int res)
{
    zm_hbc_t *c = zm_sock_ctx(s);
    if (res < 0) {
        hbc_fail(c, "connect failed");
        return; /* on_close follows */
    }
    c->busy++;
    int r = zm_tls_handshake(c->tls);
    push_tls_out(c);
    if (r < 0 && r != ZM_AGAIN)
        zm_hbc_close(c, "TLS handshake failed");
    c->busy--;
    hbc_maybe_free(c);
}

static void on_sock_close(zm_sock_t *s, int err)
{
    zm_hbc_t *c = zm_sock_ctx(s);
    c->sock = NULL;
    c->flags |= ZM_HBC_DEAD | ZM_HBC_CLOSING;
    /* A reset with nothing in flight is how many clients say goodbye. */
    if (err && !c->reason && (!(c->flags & ZM_HBC_ESTABLISHED) || c->n_streams > 0))
        hbc_fail(c, "socket error");
    else if (err && !c->reason)
        c->reason = "peer reset an idle connection";
    if (!c->reason)
        c->reason = "closed";
    hbc_maybe_free(c);
}

static const zm_sock_handlers_t sock_handlers = {
    .on_connect = on_sock_connect,
    .on_data = on_sock_data,
    .on_eof = on_sock_eof,
    .on_drain = on_sock_drain,
    .on_close = on_sock_close,
};

static void hbc_maybe_free(zm_hbc_t *c)
{
    if (!(c->flags & ZM_HBC_DEAD) || c->busy)
        return;
    c->busy++; /* owners' on_close may call back into us */
    zm_timer_stop(c->loop, &c->keepalive);
    zm__hbc_pool_unlink(c);
    while (c->n_streams > 0) {
        zm_hbone_stream_t *s = c->streams[--c->n_streams];
        const zm_hbs_ops_t *ops = stream_ops(s);
        if (ops && ops->on_close)
            ops->on_close(s, NGHTTP2_CANCEL);
    }
    const zm_spiffe_id_t *peer = c->tls ? zm_tls_peer_id(c->tls) : NULL;
    zm_log_ctx_t lctx = {.worker = -1,
                         .conn_id = -1,
                         .peer = peer ? peer->uri : NULL,
                         .action = (c->flags & ZM_HBC_SERVER) ? "HBONE inbound" : "HBONE outbound"};
    if (c->flags & ZM_HBC_FAILED)
        zm_log_ratelimited(ZM_LOG_WARN, &lctx, "hbone connection failed",
                           "HBONE connection failed: %s", c->reason);
    else
        zm_log(ZM_LOG_DEBUG, &lctx, "HBONE connection closed: %s", c->reason);
    if (c->h && c->h->on_close)
        c->h->on_close(c, c->reason);
    zm_hbone_conn_free(&c->h2);
    zm_tls_free(&c->tls);
    zm_tls_ctx_unref(&c->tls_ctx);
    free(c->streams);
    free(c);
}

/* ---- construction ---- */

/* The TLS object is made by the caller once the expected ids are in place. */
static int hbc_new(zm_hbc_t **out, zm_loop_t *loop, zm_tls_ctx_t *tls, bool server,
                   const zm_hbone_settings_t *settings, const zm_hbc_handlers_t *h, void *ctx)
{
    zm_hbc_t *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->loop = loop;
    c->h = h;
    c->ctx = ctx;
    c->flags = server ? ZM_HBC_SERVER : 0;
    zm_hbone_settings_t defaults;
    if (!settings) {
        zm_hbone_settings_defaults(&defaults, server);
        settings = &defaults;
    }
    int r = zm_hbone_conn_new(&c->h2, server, settings, &h2_callbacks, c);
    if (r < 0)
        goto fail;
    zm_tls_ctx_ref(tls);
    c->tls_ctx = tls;
    zm_timer_start(loop, &c->keepalive, ZM_HBC_HANDSHAKE_TIMEOUT_MS, keepalive_fired);
    *out = c;
    return 0;
fail:
    zm_hbone_conn_free(&c->h2);
    zm_tls_ctx_unref(&c->tls_ctx);
    free(c);
    return r;
}

int zm_hbc_accept(zm_hbc_t **out, zm_loop_t *loop, int fd, zm_tls_ctx_t *tls,
                  const zm_hbone_settings_t *settings, const zm_hbc_handlers_t *h, void *ctx)
{
    zm_hbc_t *c;
    int r = hbc_new(&c, loop, tls, true, settings, h, ctx);
    if (r < 0) {
        close(fd);
        return r;
    }
    r = zm_tls_new(&c->tls, tls, NULL);
    if (r >= 0) {
        zm_tls_set_sink(c->tls, tls_sink, c);
        zm_tls_set_sink_space(c->tls, tls_space, tls_space_commit, c);
    }
    if (r >= 0)
        r = zm_sock_wrap(&c->sock, loop, fd, &sock_handlers, c);
    if (r < 0) {
        close(fd);
        c->flags |= ZM_HBC_DEAD;
        c->h = NULL;
        hbc_maybe_free(c);
        return r;
    }
    if (out)
        *out = c;
    return 0;
}

int zm__hbc_connect(zm_hbc_t **out, zm_loop_t *loop, int fd, const struct sockaddr *addr,
                    socklen_t addr_len, zm_tls_ctx_t *tls, const char *const *expected,
                    const zm_hbone_settings_t *settings, const zm_hbc_handlers_t *h, void *ctx,
                    zm_hbone_pool_t *pool, const zm_hbone_pool_key_t *key)
{
    zm_hbc_t *c;
    const char *const *exp = expected;
    int r = hbc_new(&c, loop, tls, false, settings, h, ctx);
    if (r < 0)
        goto fail_fd;
    if (key) {
        snprintf(c->src_id, sizeof(c->src_id), "%s", key->src_id ? key->src_id : "");
        snprintf(c->dst_id, sizeof(c->dst_id), "%s", key->dst_id ? key->dst_id : "");
        c->next_hop = key->next_hop;
        c->src_ip = key->src_ip;
        if (key->dst_id) {
            c->expected[0] = c->dst_id;
            exp = c->expected;
        }
    }
    r = zm_tls_new(&c->tls, tls, exp);
    if (r < 0)
        goto fail_c;
    zm_tls_set_sink(c->tls, tls_sink, c);
    zm_tls_set_sink_space(c->tls, tls_space, tls_space_commit, c);
    if (fd >= 0)
        r = zm_sock_connect_fd(&c->sock, loop, fd, addr, addr_len, &sock_handlers, c);
    else
        r = zm_sock_connect(&c->sock, loop, addr, addr_len, &sock_handlers, c);
    fd = -1;
    if (r < 0)
        goto fail_c;
    if (pool) {
        c->pool = pool;
        c->pool_next = pool->head;
        if (pool->head)
            pool->head->pool_prev = c;
        pool->head = c;
        pool->n_conns++;
    }
    *out = c;
    return 0;
fail_c:
    c->flags |= ZM_HBC_DEAD;
    c->h = NULL;
    hbc_maybe_free(c);
fail_fd:
    if (fd >= 0)
        close(fd);
    return r;
}

int zm_hbc_connect(zm_hbc_t **out, zm_loop_t *loop, int fd, const struct sockaddr *addr,
                   socklen_t addr_len, zm_tls_ctx_t *tls, const char *const *expected_ids,
                   const zm_hbone_settings_t *settings, const zm_hbc_handlers_t *h, void *ctx)
{
    return zm__hbc_connect(out, loop, fd, addr, addr_len, tls, expected_ids, settings, h, ctx, NULL,
                           NULL);
}

zm_hbone_stream_t *zm_hbc_open(zm_hbc_t *c, const char *authority, const zm_hbone_header_t *headers,
                               size_t n_headers, void *stream_ctx)
{
    if (c->flags & (ZM_HBC_CLOSING | ZM_HBC_DRAINING))
        return NULL;
    zm_hbone_stream_t *s = zm_hbone_open(c->h2, authority, headers, n_headers, stream_ctx);
    if (!s)
        return NULL;
    if (track_stream(c, s) < 0) {
        zm_hbone_stream_set_ctx(s, NULL);
        zm_hbone_stream_reset(s, NGHTTP2_REFUSED_STREAM);
        return NULL;
    }
    zm__hbc_pool_note_activity(c);
    zm_hbc_flush(c);
    return s;
}

void zm_hbc_flush(zm_hbc_t *c)
{
    if (c->busy) {
        /* Our caller's frame flushes on the way out. */
        return;
    }
    c->busy++;
    hbc_flush_internal(c);
    c->busy--;
    hbc_maybe_free(c);
}

void zm_hbc_drain(zm_hbc_t *c)
{
    if (c->flags & (ZM_HBC_DRAINING | ZM_HBC_CLOSING))
        return;
    c->flags |= ZM_HBC_DRAINING;
    zm__hbc_pool_unlink(c);
    zm_hbone_goaway(c->h2, NGHTTP2_NO_ERROR);
    if (c->n_streams == 0)
        zm_hbc_close(c, "drained");
    else
        zm_hbc_flush(c);
}

void zm_hbc_close(zm_hbc_t *c, const char *reason)
{
    if (!c->reason)
        c->reason = reason;
    if (c->flags & ZM_HBC_DEAD)
        return;
    bool was_closing = c->flags & ZM_HBC_CLOSING;
    c->flags |= ZM_HBC_CLOSING;
    zm__hbc_pool_unlink(c);
    if (!was_closing && c->sock)
        zm_sock_close(c->sock, ZM_SOCK_CLOSE_FLUSH);
}

void *zm_hbc_ctx(const zm_hbc_t *c)
{
    return c->ctx;
}

zm_hbone_conn_t *zm_hbc_h2(const zm_hbc_t *c)
{
    return c->h2;
}

zm_hbc_t *zm_hbc_of_stream(const zm_hbone_stream_t *s)
{
    return zm_hbone_conn_ctx(zm_hbone_stream_conn(s));
}

const zm_spiffe_id_t *zm_hbc_peer_id(const zm_hbc_t *c)
{
    return zm_tls_peer_id(c->tls);
}

bool zm_hbc_ready(const zm_hbc_t *c)
{
    return c->flags & ZM_HBC_ESTABLISHED;
}

zm_loop_t *zm_hbc_loop(const zm_hbc_t *c)
{
    return c->loop;
}
