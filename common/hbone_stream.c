/*
 * hbone_stream.c — HBONE stream objects, their send buffers, the stream API.
 *
 * Owns the life of a zm_hbone_stream_t (one per CONNECT tunnel, kept as
 * nghttp2 stream user data and in its connection's list), each stream's
 * bounded send buffer (a list of fixed chunks drawn from a per-connection
 * free list), the queue of streams owed an on_stream_writable, the nghttp2
 * data provider that drains a send buffer into DATA frames, and the public
 * stream calls: zm_hbone_open / respond / stream_write / shutdown / reset /
 * consume and the accessors. hbone.c drives them from its nghttp2 callbacks
 * through the zm__hbone_ helpers declared in hbone_int.h.
 *
 * Invariants:
 * - Queued bytes per stream never exceed settings.stream_send_buffer.
 * - At most FREE_CHUNKS_MAX chunks and max_concurrent_streams stream objects
 *   wait for reuse per connection; the rest go back to malloc.
 * - A stream is on the writable queue exactly when s->wqueued; it leaves it
 *   before it is freed, shut or reset.
 * - DATA flows only once s->can_send (2xx sent or received); until then the
 *   data provider defers and writes wait in the buffer.
 *
 * Threading: one thread per connection; nothing is shared between conns.
 */
#include "hbone_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* ---- chunks and stream objects ---- */

static chunk_t *chunk_get(zm_hbone_conn_t *c)
{
    chunk_t *k = c->free_chunks;
    if (k) {
        c->free_chunks = k->next;
        c->n_free_chunks--;
    } else if (!(k = malloc(sizeof(*k)))) {
        return NULL;
    }
    k->next = NULL;
    k->start = k->end = 0;
    return k;
}

static void chunk_put(zm_hbone_conn_t *c, chunk_t *k)
{
    if (c->n_free_chunks >= FREE_CHUNKS_MAX) {
        free(k);
        return;
    }
    k->next = c->free_chunks;
    c->free_chunks = k;
    c->n_free_chunks++;
}

void zm__hbone_stream_drop_buffer(zm_hbone_stream_t *s)
{
    while (s->head) {
        chunk_t *k = s->head;
        s->head = k->next;
        chunk_put(s->conn, k);
    }
    s->tail = NULL;
    s->lent = NULL;
    s->lent_len = 0;
    s->queued = 0;
}

zm_hbone_stream_t *zm__hbone_stream_new(zm_hbone_conn_t *c, void *ctx)
{
    zm_hbone_stream_t *s = c->free_streams;
    if (s) {
        c->free_streams = s->next;
        c->n_free_streams--;
    } else if (!(s = malloc(sizeof(*s)))) {
        return NULL;
    }
    memset(s, 0, sizeof(*s));
    s->conn = c;
    s->ctx = ctx;
    s->next = c->streams;
    if (c->streams)
        c->streams->prev = s;
    c->streams = s;
    c->n_streams++;
    return s;
}

void zm__hbone_wq_remove(zm_hbone_conn_t *c, zm_hbone_stream_t *s)
{
    if (!s->wqueued)
        return;
    if (s->wprev)
        s->wprev->wnext = s->wnext;
    else
        c->wq_head = s->wnext;
    if (s->wnext)
        s->wnext->wprev = s->wprev;
    else
        c->wq_tail = s->wprev;
    s->wprev = s->wnext = NULL;
    s->wqueued = false;
}

static void wq_add(zm_hbone_conn_t *c, zm_hbone_stream_t *s)
{
    if (s->wqueued)
        return;
    s->wqueued = true;
    s->wnext = NULL;
    s->wprev = c->wq_tail;
    if (c->wq_tail)
        c->wq_tail->wnext = s;
    else
        c->wq_head = s;
    c->wq_tail = s;
}

/* Unlinks and recycles s; no callback. */
void zm__hbone_stream_free(zm_hbone_conn_t *c, zm_hbone_stream_t *s)
{
    zm__hbone_wq_remove(c, s);
    zm__hbone_stream_drop_buffer(s);
    if (s->prev)
        s->prev->next = s->next;
    else
        c->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    c->n_streams--;
    if (c->n_free_streams < c->set.max_concurrent_streams) {
        s->next = c->free_streams;
        c->free_streams = s;
        c->n_free_streams++;
    } else {
        free(s);
    }
}

/* The stream is gone for nghttp2: tell the owner, give back the connection
 * window its unconsumed bytes held, recycle. */
void zm__hbone_stream_release(zm_hbone_conn_t *c, zm_hbone_stream_t *s, uint32_t code)
{
    if (s->id > 0 && nghttp2_session_get_stream_user_data(c->ng, s->id) == s)
        nghttp2_session_set_stream_user_data(c->ng, s->id, NULL);
    if (s->unconsumed)
        nghttp2_session_consume_connection(c->ng, (size_t)s->unconsumed);
    if (s->announced && c->cb.on_stream_close)
        c->cb.on_stream_close(s, code);
    zm__hbone_stream_free(c, s);
}

/* ---- the data provider ---- */

/* Takes up to n bytes off the front of s's buffer, then its loan, into
 * iov (at most max pieces) without copying; returns the pieces used. The
 * chunks stay until take_done. */
static int take_pieces(zm_hbone_stream_t *s, size_t n, struct iovec *iov, int max)
{
    int k = 0;
    for (chunk_t *ch = s->head; n > 0 && ch && k < max; ch = ch->next) {
        size_t t = ZM_MIN(n, (size_t)(ch->end - ch->start));
        iov[k++] = (struct iovec){ch->data + ch->start, t};
        n -= t;
    }
    if (n > 0 && k < max && s->lent_len >= n)
        iov[k++] = (struct iovec){(void *)s->lent, n};
    return k;
}

/* Drops n sent bytes from the front of s's buffer and loan. */
static void take_done(zm_hbone_conn_t *c, zm_hbone_stream_t *s, size_t n)
{
    s->queued -= n;
    while (n > 0 && s->head) {
        chunk_t *k = s->head;
        size_t t = ZM_MIN(n, (size_t)(k->end - k->start));
        k->start += (uint32_t)t;
        n -= t;
        if (k->start == k->end) {
            s->head = k->next;
            if (!s->head)
                s->tail = NULL;
            chunk_put(c, k);
        }
    }
    if (n > 0) { /* the rest came from the loan (NULL when there is none) */
        s->lent += n;
        s->lent_len -= n;
    }
    /* Delivered after mem_send returns, where the owner may write freely. */
    if (s->want_writable && !s->shut_wr && s->queued <= c->set.stream_send_buffer / 2)
        wq_add(c, s);
}

static ssize_t data_read_cb(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
                            uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    zm_hbone_conn_t *c = ud;
    zm_hbone_stream_t *s = zm__hbone_stream_of(c, id);
    if (!s || !s->can_send)
        return NGHTTP2_ERR_DEFERRED;
    size_t n = ZM_MIN(length, s->queued);
    if (n == s->queued && s->shut_wr)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    else if (n == 0)
        return NGHTTP2_ERR_DEFERRED;
    if (c->writer) {
        *flags |= NGHTTP2_DATA_FLAG_NO_COPY; /* zm__hbone_send_data writes it */
        return (ssize_t)n;
    }
    struct iovec iov[8];
    size_t off = 0;
    while (off < n) {
        int k = take_pieces(s, n - off, iov, (int)ZM_ARRAY_LEN(iov));
        size_t got = 0;
        for (int i = 0; i < k; i++) {
            memcpy(buf + off + got, iov[i].iov_base, iov[i].iov_len);
            got += iov[i].iov_len;
        }
        take_done(c, s, got);
        off += got;
    }
    return (ssize_t)n;
}

int zm__hbone_send_data(zm_hbone_conn_t *c, zm_hbone_stream_t *s, const uint8_t *framehd,
                        size_t length)
{
    /* A frame is at most 64 KiB: a few chunks and the loan. */
    struct iovec iov[2 + DATA_FRAME_WIRE / CHUNK_SIZE + 2];
    iov[0] = (struct iovec){(void *)framehd, 9};
    int k = 1 + take_pieces(s, length, iov + 1, (int)ZM_ARRAY_LEN(iov) - 1);
    size_t got = 0;
    for (int i = 1; i < k; i++)
        got += iov[i].iov_len;
    if (got != length)
        return -EPROTO; /* nghttp2 asked for more than data_read_cb offered */
    int r = c->writer(c->writer_ctx, iov, k);
    if (r >= 0)
        take_done(c, s, length);
    return r;
}

/* ---- streams ---- */

unsigned zm_hbone_active_streams(const zm_hbone_conn_t *c)
{
    return c->n_streams;
}

bool zm_hbone_can_open(const zm_hbone_conn_t *c)
{
    if (c->server || c->failed || c->peer_goaway || c->goaway_state != GOAWAY_NONE ||
        c->close_notified || !nghttp2_session_check_request_allowed(c->ng))
        return false;
    uint32_t peer =
        nghttp2_session_get_remote_settings(c->ng, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    return c->n_streams < ZM_MIN(c->set.max_concurrent_streams, peer);
}

static nghttp2_nv nv_make(const char *name, const char *value)
{
    return (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
                        NGHTTP2_NV_FLAG_NONE};
}

static bool headers_ok(const zm_hbone_header_t *h, size_t n)
{
    if (n > MAX_SEND_HEADERS - 2)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!h[i].name || !h[i].value || !h[i].name[0] || h[i].name[0] == ':')
            return false;
    return true;
}

zm_hbone_stream_t *zm_hbone_open(zm_hbone_conn_t *c, const char *authority,
                                 const zm_hbone_header_t *headers, size_t n_headers, void *ctx)
{
    if (!authority || !*authority || !headers_ok(headers, n_headers) || !zm_hbone_can_open(c))
        return NULL;
    nghttp2_nv nva[MAX_SEND_HEADERS];
    size_t nn = 0;
    nva[nn++] = nv_make(":method", "CONNECT");
    nva[nn++] = nv_make(":authority", authority);
    for (size_t i = 0; i < n_headers; i++)
        nva[nn++] = nv_make(headers[i].name, headers[i].value);
    zm_hbone_stream_t *s = zm__hbone_stream_new(c, ctx);
    if (!s)
        return NULL;
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = data_read_cb};
    int32_t id = nghttp2_submit_request(c->ng, NULL, nva, nn, &prd, s);
    if (id < 0) {
        zm__hbone_stream_free(c, s);
        return NULL;
    }
    s->id = id;
    s->announced = true;
    return s;
}

int zm_hbone_respond(zm_hbone_stream_t *s, int status, const zm_hbone_header_t *headers,
                     size_t n_headers)
{
    zm_hbone_conn_t *c = s->conn;
    if (!c->server || s->responded || s->reset || status < 200 || status > 999 ||
        !headers_ok(headers, n_headers))
        return -EINVAL;
    char st[4];
    snprintf(st, sizeof(st), "%d", status);
    nghttp2_nv nva[MAX_SEND_HEADERS];
    size_t nn = 0;
    nva[nn++] = nv_make(":status", st);
    for (size_t i = 0; i < n_headers; i++)
        nva[nn++] = nv_make(headers[i].name, headers[i].value);
    int rv;
    if (status < 300) {
        nghttp2_data_provider prd = {.source.ptr = s, .read_callback = data_read_cb};
        s->can_send = true;
        rv = nghttp2_submit_response(c->ng, s->id, nva, nn, &prd);
    } else {
        zm__hbone_stream_drop_buffer(s);
        s->shut_wr = true;
        zm__hbone_wq_remove(c, s);
        /* RFC 9113 8.1: after a complete response, RST_STREAM(NO_ERROR)
         * asks the client to stop sending and closes the stream. */
        s->rst_after_resp = true;
        rv = nghttp2_submit_response(c->ng, s->id, nva, nn, NULL);
    }
    if (rv != 0)
        return rv == NGHTTP2_ERR_NOMEM ? -ENOMEM : -EPIPE;
    s->responded = true;
    return 0;
}

/* Copies data into s's chunks; returns the bytes copied (short only when
 * out of memory). Not counted in queued. */
static size_t append_copy(zm_hbone_stream_t *s, const uint8_t *data, size_t want)
{
    zm_hbone_conn_t *c = s->conn;
    size_t n = 0;
    while (n < want) {
        chunk_t *k = s->tail;
        if (!k || k->end == CHUNK_SIZE) {
            if (!(k = chunk_get(c)))
                break;
            if (s->tail)
                s->tail->next = k;
            else
                s->head = k;
            s->tail = k;
        }
        size_t take = ZM_MIN(want - n, (size_t)(CHUNK_SIZE - k->end));
        memcpy(k->data + k->end, data + n, take);
        k->end += (uint32_t)take;
        n += take;
    }
    return n;
}

int zm_hbone_stream_settle(zm_hbone_stream_t *s)
{
    if (!s->lent_len)
        return 0;
    size_t n = append_copy(s, s->lent, s->lent_len), lost = s->lent_len - n;
    s->queued -= lost;
    s->lent = NULL;
    s->lent_len = 0;
    return lost ? -ENOMEM : 0;
}

/* Room for len more bytes: how many are accepted, ZM_AGAIN for none, or
 * -EPIPE. */
static ssize_t stream_room(zm_hbone_stream_t *s, size_t len)
{
    zm_hbone_conn_t *c = s->conn;
    if (s->shut_wr || s->reset || c->failed)
        return -EPIPE;
    size_t room = c->set.stream_send_buffer - s->queued;
    if (room == 0) {
        s->want_writable = true;
        return ZM_AGAIN;
    }
    if (len > room)
        s->want_writable = true;
    return (ssize_t)ZM_MIN(len, room);
}

static void stream_queued(zm_hbone_stream_t *s, size_t n)
{
    s->queued += n;
    if (s->can_send && n > 0)
        nghttp2_session_resume_data(s->conn->ng, s->id); /* fails harmlessly if not deferred */
}

ssize_t zm_hbone_stream_write(zm_hbone_stream_t *s, const uint8_t *data, size_t len)
{
    if (zm_hbone_stream_settle(s) < 0)
        return -ENOMEM;
    ssize_t want = stream_room(s, len);
    if (want <= 0)
        return want;
    size_t n = append_copy(s, data, (size_t)want);
    if (n == 0 && len > 0)
        return -ENOMEM;
    if (n < (size_t)want)
        s->want_writable = true;
    stream_queued(s, n);
    return (ssize_t)n;
}

ssize_t zm_hbone_stream_lend(zm_hbone_stream_t *s, const uint8_t *data, size_t len)
{
    if (zm_hbone_stream_settle(s) < 0)
        return -ENOMEM;
    ssize_t n = stream_room(s, len);
    if (n <= 0)
        return n;
    s->lent = data;
    s->lent_len = (size_t)n;
    stream_queued(s, (size_t)n);
    return n;
}

int zm_hbone_stream_shutdown(zm_hbone_stream_t *s)
{
    if (s->reset)
        return -EPIPE;
    if (s->shut_wr)
        return 0;
    s->shut_wr = true;
    zm__hbone_wq_remove(s->conn, s);
    if (s->can_send)
        nghttp2_session_resume_data(s->conn->ng, s->id);
    return 0;
}

void zm_hbone_stream_reset(zm_hbone_stream_t *s, uint32_t error_code)
{
    if (s->reset)
        return;
    s->reset = true;
    s->reset_code = error_code;
    zm__hbone_stream_drop_buffer(s);
    zm__hbone_wq_remove(s->conn, s);
    nghttp2_submit_rst_stream(s->conn->ng, NGHTTP2_FLAG_NONE, s->id, error_code);
}

void zm_hbone_stream_consume(zm_hbone_stream_t *s, size_t n)
{
    n = (size_t)ZM_MIN((uint64_t)n, s->unconsumed);
    if (n == 0)
        return;
    s->unconsumed -= n;
    nghttp2_session_consume(s->conn->ng, s->id, n);
}

size_t zm_hbone_stream_queued(const zm_hbone_stream_t *s)
{
    return s->queued;
}

void *zm_hbone_stream_ctx(const zm_hbone_stream_t *s)
{
    return s->ctx;
}

void zm_hbone_stream_set_ctx(zm_hbone_stream_t *s, void *ctx)
{
    s->ctx = ctx;
}

zm_hbone_conn_t *zm_hbone_stream_conn(const zm_hbone_stream_t *s)
{
    return s->conn;
}

int32_t zm_hbone_stream_id(const zm_hbone_stream_t *s)
{
    return s->id;
}
