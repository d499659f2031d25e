/*
 * hbone.c — HBONE connections over nghttp2, in memory.
 *
 * Owns one nghttp2 session per zm_hbone_conn_t and everything about the
 * connection: its nghttp2 callbacks, the scratch arena for the header block
 * being decoded (HPACK blocks never interleave, so one per connection is
 * enough), the output buffer that coalesces small frames, feed / output,
 * keepalive and GOAWAY. The stream objects, their send buffers and the
 * stream API live in hbone_stream.c; the types both share are in
 * hbone_int.h.
 *
 * Invariants:
 * - nghttp2_session_mem_recv / mem_send run only in zm_hbone_feed /
 *   zm_hbone_output, never from an nghttp2 callback. User callbacks run from
 *   inside those two calls (or, for on_stream_writable, right after mem_send
 *   returns) and may call stream_write / shutdown / reset / consume /
 *   respond / open / ping / goaway, but never feed, output or conn_free.
 * - A stream object lives from open (client) or the request's HEADERS
 *   (server) until nghttp2 closes the stream; on_stream_close is then called
 *   exactly once and the object is recycled when it returns. Server streams
 *   the owner never saw (refused, malformed) are recycled silently.
 * - Flow control is manual: DATA counts against the windows until the owner
 *   consumes it. Bytes a stream never consumed are returned to the
 *   connection window when it closes, so a dead stream cannot starve others.
 * - on_conn_close fires at most once: on a protocol error (feed returns < 0)
 *   or when nghttp2 wants neither to read nor to write any more.
 *
 * Threading: one thread per connection; nothing is shared between conns.
 */
#include "hbone_int.h"

#include <stdlib.h>
#include <string.h>

void zm_hbone_settings_defaults(zm_hbone_settings_t *s, bool server)
{
    s->stream_window = 4u << 20;
    s->conn_window = 16u << 20;
    s->max_frame_size = 1u << 20;
    s->max_concurrent_streams = server ? 200 : 100;
    s->max_header_list = server ? 64u << 10 : 16u << 10;
    s->stream_send_buffer = 1u << 20;
}

/* ---- nghttp2 callbacks ---- */

static int on_begin_headers_cb(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    zm_hbone_conn_t *c = ud;
    if (f->hd.type != NGHTTP2_HEADERS)
        return 0;
    c->hdr_stream = f->hd.stream_id;
    c->hlen = c->hlist = c->n_hdrs = 0;
    c->method = c->authority = NULL;
    c->status = 0;
    if (!c->server || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    if (c->n_streams >= c->set.max_concurrent_streams) {
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_REFUSED_STREAM);
        return 0;
    }
    zm_hbone_stream_t *s = zm__hbone_stream_new(c, NULL);
    if (!s) {
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_REFUSED_STREAM);
        return 0;
    }
    s->id = f->hd.stream_id;
    nghttp2_session_set_stream_user_data(ng, s->id, s);
    return 0;
}

static char *arena_copy(zm_hbone_conn_t *c, const uint8_t *p, size_t n)
{
    char *d = c->hbuf + c->hlen;
    memcpy(d, p, n);
    d[n] = '\0';
    c->hlen += n + 1;
    return d;
}

static int on_header_cb(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                        size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                        void *ud)
{
    zm_hbone_conn_t *c = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->hd.stream_id != c->hdr_stream)
        return 0;
    /* RFC 9113 6.5.2 accounting; the arena needs less (two NULs, no 32). */
    c->hlist += namelen + valuelen + 32;
    if (c->hlist > c->set.max_header_list || c->hlen + namelen + valuelen + 2 > c->hcap)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST_STREAM for this stream */
    if (namelen > 0 && name[0] == ':') {
        if (namelen == 7 && !memcmp(name, ":method", 7))
            c->method = arena_copy(c, value, valuelen);
        else if (namelen == 10 && !memcmp(name, ":authority", 10))
            c->authority = arena_copy(c, value, valuelen);
        else if (namelen == 7 && !memcmp(name, ":status", 7) && valuelen == 3) {
            c->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
            /* nghttp2 takes "000".."099" for a final status; we would take
             * it for an interim one and deliver DATA before on_response. */
            if (c->status < 100)
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
        return 0;
    }
    if (c->n_hdrs >= c->hdr_cap)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    zm_hbone_header_t *h = &c->hdrs[c->n_hdrs++];
    h->name = arena_copy(c, name, namelen);
    h->value = arena_copy(c, value, valuelen);
    return 0;
}

static void on_response_headers(zm_hbone_conn_t *c, zm_hbone_stream_t *s, const nghttp2_frame *f)
{
    if (s->responded || c->status < 200)
        return; /* interim 1xx or trailers */
    s->responded = true;
    bool ok = c->status >= 200 && c->status < 300;
    if (c->cb.on_response)
        c->cb.on_response(s, c->status, c->hdrs, c->n_hdrs);
    if (s->reset)
        return;
    if (!ok) {
        /* Refused: nothing of ours goes out. End our side (or cancel if the
         * peer goes on sending a body) so the stream closes. */
        zm__hbone_stream_drop_buffer(s);
        s->shut_wr = true;
        zm__hbone_wq_remove(c, s);
        if (!(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
            zm_hbone_stream_reset(s, NGHTTP2_CANCEL);
            return;
        }
    }
    s->can_send = true;
    nghttp2_session_resume_data(c->ng, s->id);
}

static int on_frame_recv_cb(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    zm_hbone_conn_t *c = ud;
    zm_hbone_stream_t *s = f->hd.stream_id ? zm__hbone_stream_of(c, f->hd.stream_id) : NULL;
    switch (f->hd.type) {
    case NGHTTP2_HEADERS:
        if (!s || f->hd.stream_id != c->hdr_stream)
            break;
        if (c->server && f->headers.cat == NGHTTP2_HCAT_REQUEST && !s->announced) {
            zm_hbone_request_t req = {c->method, c->authority, c->hdrs, c->n_hdrs};
            s->announced = true;
            if (c->cb.on_request)
                c->cb.on_request(c, s, &req);
        } else if (!c->server) {
            on_response_headers(c, s, f);
        }
        if ((f->hd.flags & NGHTTP2_FLAG_END_STREAM) && s->announced && !s->reset &&
            (c->server || (s->can_send && c->status < 300)) && c->cb.on_stream_eof)
            c->cb.on_stream_eof(s);
        break;
    case NGHTTP2_DATA:
        if (s && s->announced && !s->reset && (f->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
            c->cb.on_stream_eof)
            c->cb.on_stream_eof(s);
        break;
    case NGHTTP2_GOAWAY:
        c->peer_goaway = true;
        break;
    case NGHTTP2_PING:
        if (!(f->hd.flags & NGHTTP2_FLAG_ACK))
            break;
        c->last_ack_ms = zm_now_ms();
        if (c->goaway_state == GOAWAY_NOTICE_SENT) {
            /* One round trip after the notice: requests in flight have
             * arrived, so the final last_stream_id is exact. */
            c->goaway_state = GOAWAY_FINAL;
            nghttp2_submit_goaway(ng, NGHTTP2_FLAG_NONE,
                                  nghttp2_session_get_last_proc_stream_id(ng), c->goaway_code, NULL,
                                  0);
        }
        break;
    default:
        break;
    }
    return 0;
}

static int on_data_chunk_cb(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                            size_t len, void *ud)
{
    zm_hbone_conn_t *c = ud;
    zm_hbone_stream_t *s = zm__hbone_stream_of(c, id);
    if (!s || !s->announced || s->reset || !c->cb.on_stream_data) {
        nghttp2_session_consume(ng, id, len); /* nobody will: keep the window open */
        return 0;
    }
    s->unconsumed += len;
    c->cb.on_stream_data(s, data, len);
    return 0;
}

/* Sizes DATA frames so that a frame with its 9-byte header fills whole
 * 16 KiB TLS records: DATA_FRAME_WIRE against our own peers (1 MiB max
 * frame), 16384 - 9 against a peer keeping the 16 KiB default, where
 * nghttp2's own 16384-byte payload would cost a 9-byte record per frame.
 * Above the windows nghttp2 cuts the frame to them itself. */
static ssize_t data_length_cb(nghttp2_session *ng, uint8_t type, int32_t id, int32_t conn_window,
                              int32_t stream_window, uint32_t peer_max_frame, void *ud)
{
    (void)ng, (void)type, (void)id, (void)conn_window, (void)stream_window, (void)ud;
    size_t record = 16384, wire = ZM_MIN((size_t)DATA_FRAME_WIRE, (size_t)peer_max_frame + 9);
    wire = ZM_MAX(wire / record * record, record);
    return (ssize_t)ZM_MIN(wire - 9, (size_t)peer_max_frame);
}

/* A DATA frame nghttp2 left in place (NO_COPY, only with a writer): what
 * stage_output coalesced before it goes first. */
static int send_data_cb(nghttp2_session *ng, nghttp2_frame *frame, const uint8_t *framehd,
                        size_t length, nghttp2_data_source *src, void *ud)
{
    (void)ng, (void)src;
    zm_hbone_conn_t *c = ud;
    zm_hbone_stream_t *s = zm__hbone_stream_of(c, frame->hd.stream_id);
    if (!s || frame->data.padlen)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (c->out_len > 0) {
        struct iovec iov = {c->out, c->out_len};
        if (c->writer(c->writer_ctx, &iov, 1) < 0)
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        c->out_len = 0;
    }
    int r = zm__hbone_send_data(c, s, framehd, length);
    if (r < 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    c->writer_full = r > 0;
    return r > 0 ? NGHTTP2_ERR_PAUSE : 0;
}

static int on_stream_close_cb(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
    zm_hbone_conn_t *c = ud;
    zm_hbone_stream_t *s = zm__hbone_stream_of(c, id);
    if (s)
        zm__hbone_stream_release(c, s, code);
    return 0;
}

static int on_frame_send_cb(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    zm_hbone_conn_t *c = ud;
    if (f->hd.type == NGHTTP2_HEADERS) {
        /* Submitted earlier, the RST would have cancelled the response. */
        zm_hbone_stream_t *s = zm__hbone_stream_of(c, f->hd.stream_id);
        if (s && s->rst_after_resp && (f->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
            !nghttp2_session_get_stream_remote_close(ng, s->id)) {
            s->rst_after_resp = false;
            nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
        }
        return 0;
    }
    if (f->hd.type != NGHTTP2_GOAWAY)
        return 0;
    if (f->goaway.last_stream_id == NOTICE_LAST_ID && c->goaway_state == GOAWAY_NOTICE) {
        c->goaway_state = GOAWAY_NOTICE_SENT;
        nghttp2_submit_ping(ng, NGHTTP2_FLAG_NONE, NULL);
        return 0;
    }
    c->goaway_sent = true;
    /* nghttp2 answers connection errors itself with a terminating GOAWAY
     * and has no API that tells; this is where we learn of it. */
    if (f->goaway.error_code != NGHTTP2_NO_ERROR &&
        !(c->goaway_state == GOAWAY_FINAL && c->goaway_code == f->goaway.error_code))
        c->terminated = true;
    return 0;
}

static int on_frame_not_send_cb(nghttp2_session *ng, const nghttp2_frame *f, int err, void *ud)
{
    zm_hbone_conn_t *c = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    /* A request that never opened its stream (GOAWAY received, reset while
     * queued): nghttp2 will not call on_stream_close, so we do. */
    if (nghttp2_session_get_stream_user_data(ng, f->hd.stream_id))
        return 0;
    for (zm_hbone_stream_t *s = c->streams; s; s = s->next) {
        if (s->id == f->hd.stream_id) {
            zm__hbone_stream_release(c, s, s->reset ? s->reset_code : NGHTTP2_REFUSED_STREAM);
            break;
        }
    }
    return 0;
}

/* ---- connection ---- */

static void fill_defaults(zm_hbone_settings_t *s, const zm_hbone_settings_t *in, bool server)
{
    zm_hbone_settings_defaults(s, server);
    if (!in)
        return;
#define TAKE(f)                                                                                    \
    if (in->f)                                                                                     \
    s->f = in->f
    TAKE(stream_window);
    TAKE(conn_window);
    TAKE(max_frame_size);
    TAKE(max_concurrent_streams);
    TAKE(max_header_list);
    TAKE(stream_send_buffer);
#undef TAKE
}

int zm_hbone_conn_new(zm_hbone_conn_t **out, bool server, const zm_hbone_settings_t *settings,
                      const zm_hbone_callbacks_t *cb, void *ctx)
{
    *out = NULL;
    zm_hbone_settings_t set;
    fill_defaults(&set, settings, server);
    if (set.stream_window > NGHTTP2_MAX_WINDOW_SIZE || set.conn_window > NGHTTP2_MAX_WINDOW_SIZE ||
        set.conn_window < NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE || set.max_frame_size < 16384u ||
        set.max_frame_size > 16777215u || set.max_header_list < 256)
        return -EINVAL;

    zm_hbone_conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->server = server;
    c->set = set;
    if (cb)
        c->cb = *cb;
    c->ctx = ctx;
    c->last_ack_ms = zm_now_ms();
    c->hcap = set.max_header_list;
    c->hdr_cap = set.max_header_list / 32 + 1;
    c->hbuf = malloc(c->hcap);
    c->hdrs = calloc(c->hdr_cap, sizeof(*c->hdrs));
    c->out = malloc(OUT_CAP);

    nghttp2_session_callbacks *cbs = NULL;
    nghttp2_option *opt = NULL;
    int rv = -ENOMEM;
    if (!c->hbuf || !c->hdrs || !c->out || nghttp2_session_callbacks_new(&cbs) != 0 ||
        nghttp2_option_new(&opt) != 0)
        goto fail;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers_cb);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header_cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv_cb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk_cb);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close_cb);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send_cb);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, on_frame_not_send_cb);
    nghttp2_session_callbacks_set_data_source_read_length_callback(cbs, data_length_cb);
    nghttp2_session_callbacks_set_send_data_callback(cbs, send_data_cb);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    /* Every TCP reset an application makes becomes an RST_STREAM on a
     * shared tunnel; nghttp2's rapid-reset guard (1,000 then 33/s) would
     * GOAWAY a whole node's connection for a busy client. Keep a guard,
     * sized for a proxy's traffic rather than a browser's. */
    nghttp2_option_set_stream_reset_rate_limit(opt, ZM_HBONE_RESET_BURST, ZM_HBONE_RESET_RATE);
    if (!server)
        nghttp2_option_set_peer_max_concurrent_streams(opt, set.max_concurrent_streams);

    rv = server ? nghttp2_session_server_new2(&c->ng, cbs, c, opt)
                : nghttp2_session_client_new2(&c->ng, cbs, c, opt);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_option_del(opt);
    cbs = NULL;
    opt = NULL;
    if (rv != 0) {
        rv = -ENOMEM;
        goto fail;
    }

    nghttp2_settings_entry iv[5];
    size_t niv = 0;
    iv[niv++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_ENABLE_PUSH, 0};
    iv[niv++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, set.stream_window};
    iv[niv++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_FRAME_SIZE, set.max_frame_size};
    iv[niv++] =
        (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, set.max_header_list};
    if (server)
        iv[niv++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
                                             set.max_concurrent_streams};
    if (nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, niv) != 0 ||
        nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0,
                                              (int32_t)set.conn_window) != 0) {
        rv = -ENOMEM;
        goto fail;
    }
    *out = c;
    return 0;
fail:
    if (cbs)
        nghttp2_session_callbacks_del(cbs);
    if (opt)
        nghttp2_option_del(opt);
    zm_hbone_conn_free(&c);
    return rv;
}

void zm_hbone_conn_free(zm_hbone_conn_t **cp)
{
    zm_hbone_conn_t *c = *cp;
    if (!c)
        return;
    *cp = NULL;
    while (c->streams)
        zm__hbone_stream_free(c, c->streams);
    while (c->free_streams) {
        zm_hbone_stream_t *s = c->free_streams;
        c->free_streams = s->next;
        free(s);
    }
    while (c->free_chunks) {
        chunk_t *k = c->free_chunks;
        c->free_chunks = k->next;
        free(k);
    }
    if (c->ng)
        nghttp2_session_del(c->ng);
    free(c->hbuf);
    free(c->hdrs);
    free(c->out);
    free(c);
}

void *zm_hbone_conn_ctx(const zm_hbone_conn_t *c)
{
    return c->ctx;
}

static void notify_close(zm_hbone_conn_t *c, const char *reason)
{
    if (c->close_notified)
        return;
    c->close_notified = true;
    c->close_reason = reason;
    if (c->cb.on_conn_close)
        c->cb.on_conn_close(c, reason);
}

/* A protocol or fatal error: GOAWAY(PROTOCOL_ERROR) (or nghttp2's own, if it
 * already queued one) goes out on the next output; no more input. */
static int fail(zm_hbone_conn_t *c, const char *reason)
{
    if (!c->failed) {
        c->failed = true;
        nghttp2_session_terminate_session(c->ng, NGHTTP2_PROTOCOL_ERROR);
    }
    notify_close(c, reason);
    return -EPROTO;
}

static void check_finished(zm_hbone_conn_t *c)
{
    if (c->close_notified || c->pend || (c->out_len > 0 && !c->out_returned) ||
        nghttp2_session_want_read(c->ng) || nghttp2_session_want_write(c->ng))
        return;
    notify_close(c, c->peer_goaway ? "peer_goaway" : "goaway");
}

/* Pulls frames from nghttp2 into out, coalescing, until out is full or
 * nghttp2 has nothing; a frame that does not fit, or a big one (DATA) that
 * would gain nothing from coalescing, waits in pend and is handed over in
 * place (zm_hbone_output). */
static void stage_output(zm_hbone_conn_t *c)
{
    if (c->out_returned) {
        c->out_len = 0;
        c->out_returned = false;
    }
    c->writer_full = false;
    while (!c->pend) {
        const uint8_t *p;
        ssize_t n = nghttp2_session_mem_send(c->ng, &p);
        if (n < 0) {
            fail(c, "internal_error");
            return;
        }
        if (n == 0)
            return;
        if ((size_t)n < PASS_THROUGH_MIN && c->out_len + (size_t)n <= OUT_CAP) {
            memcpy(c->out + c->out_len, p, (size_t)n);
            c->out_len += (size_t)n;
        } else {
            c->pend = p; /* valid until the next mem_send */
            c->pend_len = (size_t)n;
        }
    }
}

void zm_hbone_set_writer(zm_hbone_conn_t *c, zm_hbone_writer_fn write, void *ctx)
{
    c->writer = write;
    c->writer_ctx = ctx;
}

int zm_hbone_feed(zm_hbone_conn_t *c, const uint8_t *data, size_t len)
{
    if (c->failed)
        return -EPROTO;
    ssize_t rv = nghttp2_session_mem_recv(c->ng, data, len);
    if (rv < 0) {
        switch (rv) {
        case NGHTTP2_ERR_BAD_CLIENT_MAGIC:
            return fail(c, "bad_preface");
        case NGHTTP2_ERR_FLOODED:
            return fail(c, "flooded");
        case NGHTTP2_ERR_NOMEM:
            return fail(c, "nomem");
        default:
            return fail(c, "protocol_error");
        }
    }
    /* Serialize now what the input caused: a connection error shows up as
     * nghttp2's terminating GOAWAY (on_frame_send), and the owner learns it
     * from this return value. Once terminating, nghttp2 sends no DATA. */
    if (!c->pend || c->out_returned)
        stage_output(c);
    if (c->terminated)
        return fail(c, "protocol_error");
    check_finished(c);
    return c->failed ? -EPROTO : 0;
}

/* Returns whether an owner was told (and so may have written more). */
static bool deliver_writable(zm_hbone_conn_t *c)
{
    bool told = false;
    while (c->wq_head) {
        zm_hbone_stream_t *s = c->wq_head;
        zm__hbone_wq_remove(c, s);
        if (!s->want_writable || s->shut_wr || s->reset)
            continue;
        s->want_writable = false;
        if (c->cb.on_stream_writable) {
            c->cb.on_stream_writable(s);
            told = true;
        }
    }
    return told;
}

ssize_t zm_hbone_output(zm_hbone_conn_t *c, const uint8_t **data)
{
    /* With a writer, DATA leaves inside stage_output and returns nothing
     * here: what owners write from on_stream_writable must be staged in
     * this same call, or it would wait for the next event. */
    do {
        stage_output(c);
        if (c->terminated && !c->failed)
            fail(c, "protocol_error");
    } while (deliver_writable(c) && c->writer && !c->writer_full && !c->out_len && !c->pend &&
             !c->failed);
    if (c->out_len == 0 && c->pend) {
        /* Too big to coalesce: hand nghttp2's own buffer over. */
        *data = c->pend;
        ssize_t n = (ssize_t)c->pend_len;
        c->pend = NULL;
        return n;
    }
    check_finished(c);
    c->out_returned = true;
    *data = c->out;
    return (ssize_t)c->out_len;
}

bool zm_hbone_want_output(const zm_hbone_conn_t *c)
{
    return c->pend || (c->out_len > 0 && !c->out_returned) || nghttp2_session_want_write(c->ng);
}

/* ---- keepalive and shutdown ---- */

int zm_hbone_ping(zm_hbone_conn_t *c)
{
    if (c->failed)
        return -EPIPE;
    return nghttp2_submit_ping(c->ng, NGHTTP2_FLAG_NONE, NULL) == 0 ? 0 : -ENOMEM;
}

uint64_t zm_hbone_ms_since_ack(const zm_hbone_conn_t *c)
{
    return zm_now_ms() - c->last_ack_ms;
}

int zm_hbone_goaway(zm_hbone_conn_t *c, uint32_t error_code)
{
    if (c->failed)
        return -EPIPE;
    if (c->goaway_state != GOAWAY_NONE)
        return 0;
    c->goaway_code = error_code;
    if (c->server && error_code == NGHTTP2_NO_ERROR) {
        /* Graceful: the notice (last_stream_id 2^31-1) stops the client
         * opening streams; the final GOAWAY follows one PING round trip. */
        c->goaway_state = GOAWAY_NOTICE;
        return nghttp2_submit_shutdown_notice(c->ng) == 0 ? 0 : -ENOMEM;
    }
    c->goaway_state = GOAWAY_FINAL;
    int rv =
        nghttp2_submit_goaway(c->ng, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(c->ng), error_code, NULL, 0);
    return rv == 0 ? 0 : -ENOMEM;
}
