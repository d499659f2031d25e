/*
 * fuzz_hbone_server.c — a server zm_hbone_conn_t fed arbitrary client bytes.
 *
 * Input layout: byte 0 is a set of flags choosing the server's behaviour,
 * byte 1 the feed chunk size (0: everything at once; odd: DATA also goes
 * out through the zero-copy writer), the rest is what the client sent. With FL_PREFACE the driver
 * puts a valid client preface (magic + empty SETTINGS) in front, so random bytes reach the frame
 * parser instead of dying at the magic. After every chunk the output is
 * pulled until empty, as hbone_io does.
 *
 * Properties checked: feed returns 0 or -EPROTO and, once it failed, keeps
 * failing; on_conn_close fires at most once, and has fired when feed
 * failed; every stream the owner saw closes at most once; output terminates.
 * Everything is freed at the end of each input (zm_hbone_conn_free).
 *
 * Threading: one thread.
 */
#include "fuzz_hbone.h"

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <string.h>

enum {
    FL_PREFACE = 1 << 0, /* prepend magic + SETTINGS */
    FL_REFUSE = 1 << 1,  /* answer CONNECT with 400 instead of 200 */
    FL_SMALL = 1 << 2,   /* small windows, 4 streams, 16 KiB send buffers */
    FL_HOLD = 1 << 3,    /* never consume: windows close */
    FL_DEFER = 1 << 4,   /* answer requests after the feed returns */
    FL_PING = 1 << 5,    /* PING after the first chunk */
    FL_GOAWAY = 1 << 6,  /* graceful GOAWAY halfway */
    FL_RESET = 1 << 7,   /* reset a stream when its first data arrives */
};

#define MAX_TRACKED 512

typedef struct fstream {
    zm_hbone_stream_t *s;
    bool pending; /* awaiting a deferred answer */
    int closes;
} fstream_t;

typedef struct fuzz_env {
    unsigned flags;
    fstream_t st[MAX_TRACKED];
    unsigned n_st;
    int conn_closes;
} fuzz_env_t;

static const uint8_t client_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                                        "\x00\x00\x00\x04\x00\x00\x00\x00\x00";

static fuzz_env_t *env_of(zm_hbone_conn_t *c)
{
    return zm_hbone_conn_ctx(c);
}

/* deferred: the stream may have been reset meanwhile (-EINVAL) or nghttp2
 * may refuse a response on a stream it is closing (-EPIPE). */
static void answer(fuzz_env_t *e, zm_hbone_stream_t *s, bool deferred)
{
    static const zm_hbone_header_t hdr[] = {{"server", "zm-fuzz"}};
    int status = (e->flags & FL_REFUSE) ? 400 : 200;
    int r = zm_hbone_respond(s, status, hdr, 1);
    FUZZ_CHECK(r == 0 || (deferred && (r == -EINVAL || r == -EPIPE)));
    if (r < 0)
        return;
    FUZZ_CHECK(zm_hbone_respond(s, 200, NULL, 0) == -EINVAL); /* once only */
    if (status == 200) {
        ssize_t w = zm_hbone_stream_write(s, (const uint8_t *)"hello\n", 6);
        FUZZ_CHECK(w == 6 || w == ZM_AGAIN || w == -EPIPE);
    }
}

static void on_request(zm_hbone_conn_t *c, zm_hbone_stream_t *s, const zm_hbone_request_t *req)
{
    fuzz_env_t *e = env_of(c);
    FUZZ_CHECK(req->method);
    for (size_t i = 0; i < req->n_headers; i++)
        FUZZ_CHECK(req->headers[i].name && req->headers[i].value);
    fstream_t *f = NULL;
    if (e->n_st < MAX_TRACKED) {
        f = &e->st[e->n_st++];
        f->s = s;
        zm_hbone_stream_set_ctx(s, f);
    }
    if (strcmp(req->method, "CONNECT") != 0 || !req->authority) {
        FUZZ_CHECK(zm_hbone_respond(s, 400, NULL, 0) == 0);
        return;
    }
    if ((e->flags & FL_DEFER) && f)
        f->pending = true;
    else
        answer(e, s, false);
}

static void on_data(zm_hbone_stream_t *s, const uint8_t *data, size_t len)
{
    fuzz_env_t *e = env_of(zm_hbone_stream_conn(s));
    if (e->flags & FL_RESET) {
        zm_hbone_stream_reset(s, NGHTTP2_CANCEL);
        return;
    }
    if (!(e->flags & FL_HOLD))
        zm_hbone_stream_consume(s, len);
    ssize_t w = zm_hbone_stream_write(s, data, len); /* echo */
    FUZZ_CHECK((w >= 0 && (size_t)w <= len) || w == ZM_AGAIN || w == -EPIPE);
}

static void on_eof(zm_hbone_stream_t *s)
{
    int r = zm_hbone_stream_shutdown(s);
    (void)r; /* may already be shut or reset */
}

static void on_writable(zm_hbone_stream_t *s)
{
    ssize_t w = zm_hbone_stream_write(s, (const uint8_t *)"more\n", 5);
    FUZZ_CHECK(w == 5 || w == ZM_AGAIN || w == -EPIPE);
}

static void on_stream_close(zm_hbone_stream_t *s, uint32_t code)
{
    fstream_t *f = zm_hbone_stream_ctx(s);
    if (!f)
        return;
    FUZZ_CHECK(f->s == s);
    f->closes++;
    FUZZ_CHECK(f->closes == 1);
    f->s = NULL;
    f->pending = false;
}

static void on_conn_close(zm_hbone_conn_t *c, const char *reason)
{
    FUZZ_CHECK(reason && reason[0]);
    env_of(c)->conn_closes++;
    FUZZ_CHECK(env_of(c)->conn_closes == 1);
}

static const zm_hbone_callbacks_t callbacks = {
    .on_request = on_request,
    .on_stream_data = on_data,
    .on_stream_eof = on_eof,
    .on_stream_writable = on_writable,
    .on_stream_close = on_stream_close,
    .on_conn_close = on_conn_close,
};

static void answer_deferred(fuzz_env_t *e)
{
    for (unsigned i = 0; i < e->n_st; i++) {
        fstream_t *f = &e->st[i];
        if (f->pending && f->s) {
            f->pending = false;
            answer(e, f->s, true);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static fuzz_env_t env;
    memset(&env, 0, sizeof(env));
    env.flags = data[0];
    size_t chunk = data[1] ? data[1] : size;
    bool zero_copy = data[1] & 1;
    unsigned writes = 0;
    data += 2;
    size -= 2;

    zm_hbone_settings_t set = {0};
    if (env.flags & FL_SMALL) {
        set.stream_window = 65535;
        set.conn_window = 65535;
        set.max_frame_size = 16384;
        set.max_concurrent_streams = 4;
        set.max_header_list = 4096;
        set.stream_send_buffer = 16384;
    }
    zm_hbone_conn_t *c = NULL;
    FUZZ_CHECK(zm_hbone_conn_new(&c, true, &set, &callbacks, &env) == 0);
    if (zero_copy)
        zm_hbone_set_writer(c, fuzz_hbone_writer, &writes);
    fuzz_hbone_drain(c); /* our SETTINGS */

    int rc = 0;
    if (env.flags & FL_PREFACE) {
        rc = zm_hbone_feed(c, client_preface, sizeof(client_preface) - 1);
        FUZZ_CHECK(rc == 0);
        fuzz_hbone_drain(c);
    }
    size_t off = 0;
    bool first = true;
    while (off < size) {
        size_t n = ZM_MIN(chunk, size - off);
        int r = zm_hbone_feed(c, data + off, n);
        FUZZ_CHECK(r == 0 || r == -EPROTO);
        if (rc < 0)
            FUZZ_CHECK(r < 0); /* failed stays failed */
        if (r < 0)
            FUZZ_CHECK(env.conn_closes == 1);
        rc = r;
        off += n;
        if (rc == 0)
            answer_deferred(&env);
        if (first && (env.flags & FL_PING))
            zm_hbone_ping(c);
        if ((env.flags & FL_GOAWAY) && off >= size / 2 && off - n < size / 2)
            zm_hbone_goaway(c, 0);
        first = false;
        fuzz_hbone_drain(c);
    }
    if (rc < 0)
        FUZZ_CHECK(zm_hbone_feed(c, client_preface, 9) < 0);
    FUZZ_CHECK(env.conn_closes <= 1);
    zm_hbone_conn_free(&c);
    FUZZ_CHECK(c == NULL);
    return 0;
}
