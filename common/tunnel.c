/*
 * tunnel.c — splices one TCP socket and one HBONE stream.
 *
 * Invariants:
 * - Bytes read from TCP go to the stream in order, lent rather than copied:
 *   the flush that follows writes DATA frames straight from the receive
 *   buffer, and settling copies only what did not go out before the buffer
 *   returns to the ring. Those the stream cannot take yet (CONNECT not
 *   answered, send buffer full) wait in `pending`, and reading is paused
 *   while anything is pending. `pending` is bounded by
 *   what arrives between pausing and the kernel stopping (a few receive
 *   buffers), capped at ZM_TUNNEL_PENDING_MAX.
 * - Stream bytes are acknowledged (nghttp2_session_consume) only while the
 *   socket queue is under its low-water mark; otherwise they are counted in
 *   `unacked` and acknowledged on the socket's on_drain.
 * - The tunnel is freed exactly once, when neither the socket nor the
 *   stream can call it any more; on_done runs just before.
 */
#include "tunnel.h"

#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ZM_TUNNEL_PENDING_PAUSE (64u * 1024u)
#define ZM_TUNNEL_PENDING_MAX (1024u * 1024u)

#define ZM_TF_OPEN 0x01u       /* CONNECT answered 200 */
#define ZM_TF_SOCK_EOF 0x02u   /* TCP peer sent FIN */
#define ZM_TF_STREAM_EOF 0x04u /* HBONE peer sent END_STREAM */
#define ZM_TF_SOCK_CLOSED 0x08u
#define ZM_TF_STREAM_CLOSED 0x10u /* stream gone (or never attached) */
#define ZM_TF_STREAM_SHUT 0x20u   /* we sent END_STREAM */
#define ZM_TF_READ_PAUSED 0x40u
#define ZM_TF_SERVER 0x80u
#define ZM_TF_DONE 0x100u

struct zm_tunnel {
    const zm_hbs_ops_t *ops; /* first: hbone_io dispatches through it */
    zm_sock_t *sock;
    zm_hbone_stream_t *stream;
    unsigned flags;
    unsigned busy;
    uint8_t *pending;
    size_t pending_len, pending_cap;
    size_t unacked;
    zm_tunnel_done_cb done;
    void *ctx;
    zm_tunnel_stats_t stats;
};

static void tunnel_check(zm_tunnel_t *t);

static void set_error(zm_tunnel_t *t, const char *reason)
{
    if (!t->stats.error)
        t->stats.error = reason;
}

static void flush_conn(zm_tunnel_t *t)
{
    if (t->stream)
        zm_hbc_flush(zm_hbc_of_stream(t->stream));
}

void zm_tunnel_abort(zm_tunnel_t *t, const char *reason)
{
    set_error(t, reason);
    t->busy++;
    if (t->stream) {
        zm_hbone_stream_t *s = t->stream;
        zm_hbc_t *c = zm_hbc_of_stream(s);
        zm_hbone_stream_reset(s, NGHTTP2_CANCEL);
        zm_hbc_flush(c);
    }
    if (t->sock && !(t->flags & ZM_TF_SOCK_CLOSED))
        zm_sock_close(t->sock, 0);
    t->busy--;
    tunnel_check(t);
}

/* Frees the tunnel once both sides are gone; closes TCP after a clean end. */
static void tunnel_check(zm_tunnel_t *t)
{
    if (t->busy || (t->flags & ZM_TF_DONE))
        return;
    if ((t->flags & ZM_TF_SOCK_EOF) && (t->flags & ZM_TF_STREAM_EOF) && t->sock &&
        !(t->flags & ZM_TF_SOCK_CLOSED) && t->pending_len == 0) {
        t->busy++;
        zm_sock_close(t->sock, ZM_SOCK_CLOSE_FLUSH);
        t->busy--;
    }
    if (!(t->flags & ZM_TF_SOCK_CLOSED) || !(t->flags & ZM_TF_STREAM_CLOSED))
        return;
    t->flags |= ZM_TF_DONE;
    t->stats.ended_ns = zm_now_ns();
    if (t->done)
        t->done(t, &t->stats, t->ctx);
    free(t->pending);
    free(t);
}

/* ---- TCP → stream ---- */

static int keep_pending(zm_tunnel_t *t, const uint8_t *data, size_t len)
{
    if (t->pending_len + len > ZM_TUNNEL_PENDING_MAX)
        return -ENOBUFS;
    if (t->pending_len + len > t->pending_cap) {
        /* Usually a request's first bytes before the CONNECT is answered:
         * start small, grow by doubling up to the cap. */
        size_t cap = t->pending_cap ? t->pending_cap : 16384;
        while (cap < t->pending_len + len)
            cap *= 2;
        cap = ZM_MIN(cap, ZM_TUNNEL_PENDING_MAX);
        uint8_t *p = realloc(t->pending, cap);
        if (!p)
            return -ENOMEM;
        t->pending = p;
        t->pending_cap = cap;
    }
    memcpy(t->pending + t->pending_len, data, len);
    t->pending_len += len;
    if (t->pending_len >= ZM_TUNNEL_PENDING_PAUSE && !(t->flags & ZM_TF_READ_PAUSED)) {
        t->flags |= ZM_TF_READ_PAUSED;
        zm_sock_pause_read(t->sock);
    }
    return 0;
}

static void maybe_shutdown_stream(zm_tunnel_t *t)
{
    if ((t->flags & ZM_TF_SOCK_EOF) && !(t->flags & ZM_TF_STREAM_SHUT) && t->pending_len == 0 &&
        t->stream && (t->flags & ZM_TF_OPEN)) {
        t->flags |= ZM_TF_STREAM_SHUT;
        zm_hbone_stream_shutdown(t->stream);
    }
}

/* Moves pending bytes into the stream as far as it takes them. */
static void drain_pending(zm_tunnel_t *t)
{
    if (!t->stream || !(t->flags & ZM_TF_OPEN))
        return;
    size_t off = 0;
    while (off < t->pending_len) {
        ssize_t n = zm_hbone_stream_write(t->stream, t->pending + off, t->pending_len - off);
        if (n <= 0) {
            if (n != ZM_AGAIN)
                set_error(t, "stream write failed");
            break;
        }
        off += (size_t)n;
        t->stats.bytes_to_stream += (uint64_t)n;
    }
    if (off) {
        memmove(t->pending, t->pending + off, t->pending_len - off);
        t->pending_len -= off;
    }
    if (t->pending_len == 0 && (t->flags & ZM_TF_READ_PAUSED) && t->sock) {
        t->flags &= ~ZM_TF_READ_PAUSED;
        zm_sock_resume_read(t->sock);
    }
    maybe_shutdown_stream(t);
}

static void sock_on_data(zm_sock_t *s, const uint8_t *data, size_t len)
{
    zm_tunnel_t *t = zm_sock_ctx(s);
    t->busy++;
    bool lent = false;
    if (t->pending_len == 0 && t->stream && (t->flags & ZM_TF_OPEN)) {
        /* Lent, not copied: the flush below writes DATA frames straight
         * from the receive buffer; settle keeps only what did not go. */
        ssize_t n = zm_hbone_stream_lend(t->stream, data, len);
        if (n > 0) {
            lent = true;
            t->stats.bytes_to_stream += (uint64_t)n;
            data += n;
            len -= (size_t)n;
        }
    }
    if (len && keep_pending(t, data, len) < 0) {
        if (lent && t->stream)
            zm_hbone_stream_settle(t->stream);
        t->busy--;
        zm_tunnel_abort(t, "tunnel buffer overflow");
        return;
    }
    flush_conn(t);
    if (lent && t->stream && zm_hbone_stream_settle(t->stream) < 0) {
        t->busy--;
        zm_tunnel_abort(t, "out of memory");
        return;
    }
    t->busy--;
    tunnel_check(t);
}

static void sock_on_eof(zm_sock_t *s)
{
    zm_tunnel_t *t = zm_sock_ctx(s);
    t->busy++;
    t->flags |= ZM_TF_SOCK_EOF;
    maybe_shutdown_stream(t);
    flush_conn(t);
    t->busy--;
    tunnel_check(t);
}

/* ---- stream → TCP ---- */

static void sock_on_drain(zm_sock_t *s)
{
    zm_tunnel_t *t = zm_sock_ctx(s);
    if (t->unacked && t->stream) {
        zm_hbone_stream_consume(t->stream, t->unacked);
        t->unacked = 0;
        flush_conn(t);
    }
}

static void sock_on_connect(zm_sock_t *s, int res);

static void sock_on_close(zm_sock_t *s, int err)
{
    zm_tunnel_t *t = zm_sock_ctx(s);
    t->flags |= ZM_TF_SOCK_CLOSED;
    t->sock = NULL;
    if (err)
        set_error(t, "connection error");
    t->busy++;
    if (t->stream && !((t->flags & ZM_TF_STREAM_SHUT) && (t->flags & ZM_TF_STREAM_EOF))) {
        zm_hbone_stream_t *st = t->stream;
        zm_hbc_t *c = zm_hbc_of_stream(st);
        if ((t->flags & ZM_TF_SERVER) && !(t->flags & ZM_TF_OPEN))
            zm_hbone_respond(st, 503, NULL, 0); /* upstream connect failed */
        else
            zm_hbone_stream_reset(st, NGHTTP2_CONNECT_ERROR);
        zm_hbc_flush(c);
    }
    t->busy--;
    tunnel_check(t);
}

static const zm_sock_handlers_t tunnel_sock_handlers = {
    .on_connect = sock_on_connect,
    .on_data = sock_on_data,
    .on_eof = sock_on_eof,
    .on_drain = sock_on_drain,
    .on_close = sock_on_close,
};

/* ---- stream events ---- */

static zm_tunnel_t *of_stream(zm_hbone_stream_t *s)
{
    return zm_hbone_stream_ctx(s);
}

static void st_on_response(zm_hbone_stream_t *s, int status)
{
    zm_tunnel_t *t = of_stream(s);
    t->stats.status = status;
    if (status != 200) {
        set_error(t, "CONNECT refused");
        return; /* the stream closes next; on_close ends the tunnel */
    }
    t->busy++;
    t->flags |= ZM_TF_OPEN;
    drain_pending(t);
    t->busy--;
}

static void st_on_data(zm_hbone_stream_t *s, const uint8_t *data, size_t len)
{
    zm_tunnel_t *t = of_stream(s);
    if (!t->sock || (t->flags & ZM_TF_SOCK_CLOSED)) {
        zm_hbone_stream_consume(s, len);
        return;
    }
    int r = zm_sock_send(t->sock, data, len);
    if (r < 0) {
        zm_tunnel_abort(t, "socket send queue full");
        return;
    }
    t->stats.bytes_from_stream += len;
    if (zm_sock_above_low_water(t->sock))
        t->unacked += len;
    else
        zm_hbone_stream_consume(s, len);
}

static void st_on_eof(zm_hbone_stream_t *s)
{
    zm_tunnel_t *t = of_stream(s);
    t->flags |= ZM_TF_STREAM_EOF;
    if (t->sock && !(t->flags & ZM_TF_SOCK_CLOSED))
        zm_sock_shutdown_write(t->sock);
}

static void st_on_writable(zm_hbone_stream_t *s)
{
    zm_tunnel_t *t = of_stream(s);
    t->busy++;
    drain_pending(t);
    t->busy--;
}

static void st_on_close(zm_hbone_stream_t *s, uint32_t error_code)
{
    zm_tunnel_t *t = of_stream(s);
    t->stream = NULL;
    t->flags |= ZM_TF_STREAM_CLOSED;
    t->busy++;
    if (error_code != 0 || !(t->flags & ZM_TF_OPEN)) {
        if (!(t->flags & ZM_TF_OPEN))
            set_error(t, "CONNECT refused");
        else
            set_error(t, "stream reset");
        if (t->sock && !(t->flags & ZM_TF_SOCK_CLOSED))
            zm_sock_close(t->sock, 0);
    }
    t->busy--;
    tunnel_check(t);
}

static const zm_hbs_ops_t tunnel_stream_ops = {
    .on_response = st_on_response,
    .on_data = st_on_data,
    .on_eof = st_on_eof,
    .on_writable = st_on_writable,
    .on_close = st_on_close,
};

/* ---- construction ---- */

static zm_tunnel_t *tunnel_alloc(zm_tunnel_done_cb done, void *ctx)
{
    zm_tunnel_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->ops = &tunnel_stream_ops;
    t->done = done;
    t->ctx = ctx;
    t->stats.started_ns = zm_now_ns();
    t->flags = ZM_TF_STREAM_CLOSED; /* until a stream is attached */
    return t;
}

int zm_tunnel_client(zm_tunnel_t **out, zm_sock_t *sock, zm_tunnel_done_cb done, void *ctx)
{
    zm_tunnel_t *t = tunnel_alloc(done, ctx);
    if (!t)
        return -ENOMEM;
    t->sock = sock;
    zm_sock_set_ctx(sock, t);
    zm_sock_set_handlers(sock, &tunnel_sock_handlers);
    *out = t;
    return 0;
}

void *zm_tunnel_stream_ctx(zm_tunnel_t *t)
{
    return t;
}

void zm_tunnel_attach(zm_tunnel_t *t, zm_hbone_stream_t *s)
{
    t->stream = s;
    t->flags &= ~ZM_TF_STREAM_CLOSED;
    if (t->flags & ZM_TF_SOCK_CLOSED) {
        /* The app went away while the stream was being opened. */
        zm_hbone_stream_reset(s, NGHTTP2_CANCEL);
    }
}

static void sock_on_connect(zm_sock_t *s, int res)
{
    zm_tunnel_t *t = zm_sock_ctx(s);
    if (res < 0) {
        set_error(t, "upstream connect failed");
        return; /* on_close answers 503 */
    }
    if (!t->stream)
        return;
    t->busy++;
    t->flags |= ZM_TF_OPEN;
    zm_hbone_respond(t->stream, 200, NULL, 0);
    t->stats.status = 200;
    drain_pending(t);
    flush_conn(t);
    t->busy--;
    tunnel_check(t);
}

int zm_tunnel_server(zm_tunnel_t **out, zm_hbone_stream_t *s, int fd,
                     const struct sockaddr *upstream, socklen_t upstream_len,
                     zm_tunnel_done_cb done, void *ctx)
{
    zm_tunnel_t *t = tunnel_alloc(done, ctx);
    if (!t) {
        if (fd >= 0)
            close(fd);
        return -ENOMEM;
    }
    t->flags = ZM_TF_SERVER;
    t->stream = s;
    zm_hbone_stream_set_ctx(s, t);
    zm_loop_t *loop = zm_hbc_loop(zm_hbc_of_stream(s));
    int r = fd >= 0
                ? zm_sock_connect_fd(&t->sock, loop, fd, upstream, upstream_len,
                                     &tunnel_sock_handlers, t)
                : zm_sock_connect(&t->sock, loop, upstream, upstream_len, &tunnel_sock_handlers, t);
    if (r < 0) {
        zm_hbone_stream_set_ctx(s, NULL);
        free(t);
        return r; /* the caller answers 503 */
    }
    if (out)
        *out = t;
    return 0;
}

void *zm_tunnel_ctx(const zm_tunnel_t *t)
{
    return t->ctx;
}

const zm_tunnel_stats_t *zm_tunnel_stats(const zm_tunnel_t *t)
{
    return &t->stats;
}
