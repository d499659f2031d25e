/*
 * echo_h2.c — h2c (HTTP/2 over cleartext, prior knowledge) for the echo app.
 *
 * An nghttp2 server session per connection, fed with mem_recv and drained
 * with mem_send into the socket's send queue; mem_send stops above the
 * queue's low water and resumes on drain, so a client that does not read
 * stalls only its own connection. Each request stream (h2_stream_t, calloc'd
 * at its HEADERS, freed by on_stream_close or with the session) collects the
 * request; END_STREAM answers it, after its delay if any (one loop timer
 * per stream). Response bodies are produced by a data provider reading the
 * reply piecewise, so size=N never sits in memory.
 *
 * Request bodies are counted and dropped as they arrive, so nghttp2's
 * automatic WINDOW_UPDATEs are right here: nothing is buffered that flow
 * control would have to protect. :authority is reported as the "host"
 * header; other pseudo-headers are not headers. A session error (bad
 * preface, protocol violation) flushes nghttp2's GOAWAY and closes.
 *
 * Threading: the loop's thread.
 */
#include "echo.h"
#include "log.h"

#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct h2_stream {
    mc_echo_h2_t *h2;
    int32_t id;
    bool answered;
    mc_echo_req_t req;
    mc_echo_reply_t reply;
    zm_timer_t delay;
    struct h2_stream *prev, *next;
} h2_stream_t;

struct mc_echo_h2 {
    mc_echo_conn_t *conn;
    nghttp2_session *sess;
    h2_stream_t *streams;
};

static void flush(mc_echo_h2_t *h);

/* ---- streams ---- */

static void stream_free(h2_stream_t *st)
{
    mc_echo_h2_t *h = st->h2;
    zm_timer_stop(h->conn->srv->loop, &st->delay);
    mc_echo_req_free(&st->req);
    mc_echo_reply_clear(&st->reply);
    if (st->prev)
        st->prev->next = st->next;
    else
        h->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    free(st);
}

static ssize_t body_read(nghttp2_session *sess, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *src, void *user)
{
    h2_stream_t *st = src->ptr;
    size_t n = mc_echo_reply_read(&st->reply, buf, length);
    if (st->reply.off >= st->reply.total)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static void submit(h2_stream_t *st)
{
    mc_echo_reply_t *r = &st->reply;
    char status[8], clen[24];
    snprintf(status, sizeof(status), "%d", r->status);
    snprintf(clen, sizeof(clen), "%llu", (unsigned long long)r->total);
    bool bodyless = mc_echo_status_bodyless(r->status);
    bool head = strcmp(st->req.method, "HEAD") == 0;
#define NV(n, v)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE             \
    }
    const nghttp2_nv nva[] = {NV(":status", status), NV("content-type", r->ctype),
                              NV("content-length", clen)};
#undef NV
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = body_read};
    int rv = nghttp2_submit_response(st->h2->sess, st->id, nva, bodyless ? 2 : 3,
                                     bodyless || head ? NULL : &prd);
    if (rv < 0)
        nghttp2_submit_rst_stream(st->h2->sess, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
}

static void delay_done(zm_timer_t *t)
{
    h2_stream_t *st = ZM_CONTAINER_OF(t, h2_stream_t, delay);
    mc_echo_h2_t *h = st->h2;
    if (h->conn->closing)
        return;
    submit(st);
    flush(h);
}

static void answer(h2_stream_t *st)
{
    mc_echo_h2_t *h = st->h2;
    st->answered = true;
    if (mc_echo_reply_build(h->conn->srv, &st->req, &st->reply) < 0) {
        nghttp2_submit_rst_stream(h->sess, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    if (st->reply.delay_ms)
        zm_timer_start(h->conn->srv->loop, &st->delay, st->reply.delay_ms, delay_done);
    else
        submit(st);
}

/* ---- nghttp2 callbacks ---- */

static int on_begin_headers(nghttp2_session *sess, const nghttp2_frame *frame, void *user)
{
    mc_echo_h2_t *h = user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    h2_stream_t *st = calloc(1, sizeof(*st));
    if (!st)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    st->h2 = h;
    st->id = frame->hd.stream_id;
    mc_echo_req_init(&st->req);
    st->next = h->streams;
    if (st->next)
        st->next->prev = st;
    h->streams = st;
    nghttp2_session_set_stream_user_data(sess, st->id, st);
    return 0;
}

static int on_header(nghttp2_session *sess, const nghttp2_frame *frame, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
    h2_stream_t *st = nghttp2_session_get_stream_user_data(sess, frame->hd.stream_id);
    if (!st || st->answered)
        return 0;
    const char *n = (const char *)name, *v = (const char *)value;
    if (nlen && n[0] == ':') {
        if (nlen == 7 && memcmp(n, ":method", 7) == 0)
            mc_echo_req_set_method(&st->req, v, vlen);
        else if (nlen == 5 && memcmp(n, ":path", 5) == 0)
            mc_echo_req_add_target(&st->req, v, vlen);
        else if (nlen == 10 && memcmp(n, ":authority", 10) == 0)
            mc_echo_req_add_header(&st->req, "host", 4, v, vlen);
        return 0;
    }
    mc_echo_req_add_header(&st->req, n, nlen, v, vlen);
    return 0;
}

static int on_data_chunk(nghttp2_session *sess, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *user)
{
    h2_stream_t *st = nghttp2_session_get_stream_user_data(sess, id);
    if (st)
        st->req.body_bytes += len;
    return 0;
}

static int on_frame_recv(nghttp2_session *sess, const nghttp2_frame *frame, void *user)
{
    if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    h2_stream_t *st = nghttp2_session_get_stream_user_data(sess, frame->hd.stream_id);
    if (st && !st->answered)
        answer(st);
    return 0;
}

static int on_stream_close(nghttp2_session *sess, int32_t id, uint32_t error_code, void *user)
{
    h2_stream_t *st = nghttp2_session_get_stream_user_data(sess, id);
    if (st) {
        nghttp2_session_set_stream_user_data(sess, id, NULL);
        stream_free(st);
    }
    return 0;
}

/* ---- the connection ---- */

static void flush(mc_echo_h2_t *h)
{
    mc_echo_conn_t *c = h->conn;
    while (!c->closing && !zm_sock_above_low_water(c->sock)) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(h->sess, &data);
        if (n < 0 || (n > 0 && zm_sock_send(c->sock, data, (size_t)n) < 0)) {
            mc_echo_conn_close(c, false);
            return;
        }
        if (n == 0)
            break;
    }
    if (c->closing)
        return;
    bool want_write = nghttp2_session_want_write(h->sess);
    if ((!nghttp2_session_want_read(h->sess) && !want_write) ||
        (c->peer_eof && !h->streams && !want_write))
        mc_echo_conn_close(c, true);
}

void mc_echo_h2_input(mc_echo_conn_t *c, const uint8_t *data, size_t len)
{
    mc_echo_h2_t *h = c->h2;
    if (c->closing || len == 0)
        return;
    /* Callbacks only submit; bytes move to the socket in flush(), after. */
    ssize_t rv = nghttp2_session_mem_recv(h->sess, data, len);
    if (rv < 0) {
        zm_log_ratelimited(ZM_LOG_INFO, NULL, "h2_session", "echo: h2c session error: %s",
                           nghttp2_strerror((int)rv));
        /* nghttp2 has queued a GOAWAY where it could: send it, then go. */
        flush(h);
        mc_echo_conn_close(c, true);
        return;
    }
    flush(h);
}

void mc_echo_h2_drain(mc_echo_conn_t *c)
{
    flush(c->h2);
}

void mc_echo_h2_eof(mc_echo_conn_t *c)
{
    flush(c->h2);
}

int mc_echo_h2_start(mc_echo_conn_t *c)
{
    mc_echo_h2_t *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->conn = c;
    nghttp2_session_callbacks *cbs;
    if (nghttp2_session_callbacks_new(&cbs) != 0) {
        free(h);
        return -ENOMEM;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    int rv = nghttp2_session_server_new(&h->sess, cbs, h);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0) {
        free(h);
        return -ENOMEM;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, MC_ECHO_H2_MAX_STREAMS},
    };
    if (nghttp2_submit_settings(h->sess, NGHTTP2_FLAG_NONE, iv, ZM_ARRAY_LEN(iv)) != 0) {
        nghttp2_session_del(h->sess);
        free(h);
        return -ENOMEM;
    }
    c->h2 = h;
    return 0;
}

void mc_echo_h2_free(mc_echo_conn_t *c)
{
    mc_echo_h2_t *h = c->h2;
    if (!h)
        return;
    nghttp2_session_del(h->sess);
    while (h->streams)
        stream_free(h->streams);
    free(h);
    c->h2 = NULL;
}
