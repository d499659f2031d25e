/*
 * fuzz_hbone_client.c — a client zm_hbone_conn_t, with a CONNECT stream
 * open, fed arbitrary server bytes.
 *
 * Input layout: byte 0 is a set of flags, byte 1 the feed chunk size (0:
 * everything at once; odd: DATA also goes out through the zero-copy
 * writer), the rest is what the server sent. With FL_PREFACE
 * an empty SETTINGS frame (the server's preface) goes first. The stream is
 * opened with a header and a few bytes written before any response, as
 * hbone_io does. After every chunk the output is pulled until empty.
 *
 * Properties checked: feed returns 0 or -EPROTO and keeps failing once it
 * failed; on_conn_close at most once (and before a failed feed returns);
 * one on_response at most per stream, before its on_stream_close, which
 * comes at most once; output terminates. Everything is freed per input.
 *
 * Threading: one thread.
 */
#include "fuzz_hbone.h"

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <string.h>

enum {
    FL_PREFACE = 1 << 0, /* prepend an empty SETTINGS frame */
    FL_SMALL = 1 << 1,   /* small windows and send buffers */
    FL_HOLD = 1 << 2,    /* never consume */
    FL_SHUT = 1 << 3,    /* half-close right after opening */
    FL_SECOND = 1 << 4,  /* open another stream on each 2xx response */
    FL_PING = 1 << 5,    /* PING after the first chunk */
    FL_GOAWAY = 1 << 6,  /* GOAWAY halfway */
    FL_RESET = 1 << 7,   /* reset a stream when its first data arrives */
};

#define MAX_TRACKED 64

typedef struct fstream {
    zm_hbone_stream_t *s;
    int responses, closes;
} fstream_t;

typedef struct fuzz_env {
    unsigned flags;
    zm_hbone_conn_t *c;
    fstream_t st[MAX_TRACKED];
    unsigned n_st;
    int conn_closes;
} fuzz_env_t;

static const uint8_t server_preface[] = "\x00\x00\x00\x04\x00\x00\x00\x00\x00";

static fuzz_env_t *env_of(zm_hbone_conn_t *c)
{
    return zm_hbone_conn_ctx(c);
}

static void open_stream(fuzz_env_t *e)
{
    static const zm_hbone_header_t hdr[] = {{"baggage", "k8s.namespace.name=fuzz"}};
    if (e->n_st >= MAX_TRACKED)
        return;
    fstream_t *f = &e->st[e->n_st];
    f->s = zm_hbone_open(e->c, "10.1.0.5:8080", hdr, 1, f);
    if (!f->s)
        return;
    e->n_st++;
    ssize_t w = zm_hbone_stream_write(f->s, (const uint8_t *)"hello\n", 6);
    FUZZ_CHECK(w == 6);
    if (e->flags & FL_SHUT)
        FUZZ_CHECK(zm_hbone_stream_shutdown(f->s) == 0);
}

static void on_response(zm_hbone_stream_t *s, int status, const zm_hbone_header_t *h, size_t n)
{
    fstream_t *f = zm_hbone_stream_ctx(s);
    FUZZ_CHECK(f && f->s == s && f->closes == 0);
    f->responses++;
    FUZZ_CHECK(f->responses == 1);
    FUZZ_CHECK(status >= 200 && status <= 999);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(h[i].name && h[i].value);
    fuzz_env_t *e = env_of(zm_hbone_stream_conn(s));
    if ((e->flags & FL_SECOND) && status < 300)
        open_stream(e);
}

static void on_data(zm_hbone_stream_t *s, const uint8_t *data, size_t len)
{
    fstream_t *f = zm_hbone_stream_ctx(s);
    FUZZ_CHECK(f && f->responses == 1);
    fuzz_env_t *e = env_of(zm_hbone_stream_conn(s));
    if (e->flags & FL_RESET) {
        zm_hbone_stream_reset(s, NGHTTP2_CANCEL);
        return;
    }
    if (!(e->flags & FL_HOLD))
        zm_hbone_stream_consume(s, len);
    ssize_t w = zm_hbone_stream_write(s, data, len);
    FUZZ_CHECK((w >= 0 && (size_t)w <= len) || w == ZM_AGAIN || w == -EPIPE);
}

static void on_eof(zm_hbone_stream_t *s)
{
    int r = zm_hbone_stream_shutdown(s);
    (void)r; /* may already be shut or reset */
}

static void on_stream_close(zm_hbone_stream_t *s, uint32_t code)
{
    fstream_t *f = zm_hbone_stream_ctx(s);
    FUZZ_CHECK(f && f->s == s);
    f->closes++;
    FUZZ_CHECK(f->closes == 1);
    f->s = NULL;
}

static void on_conn_close(zm_hbone_conn_t *c, const char *reason)
{
    FUZZ_CHECK(reason && reason[0]);
    env_of(c)->conn_closes++;
    FUZZ_CHECK(env_of(c)->conn_closes == 1);
}

static const zm_hbone_callbacks_t callbacks = {
    .on_response = on_response,
    .on_stream_data = on_data,
    .on_stream_eof = on_eof,
    .on_stream_close = on_stream_close,
    .on_conn_close = on_conn_close,
};

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
        set.max_concurrent_streams = 2;
        set.max_header_list = 1024;
        set.stream_send_buffer = 16384;
    }
    FUZZ_CHECK(zm_hbone_conn_new(&env.c, false, &set, &callbacks, &env) == 0);
    if (zero_copy)
        zm_hbone_set_writer(env.c, fuzz_hbone_writer, &writes);
    open_stream(&env);
    FUZZ_CHECK(env.n_st == 1);
    fuzz_hbone_drain(env.c); /* preface, SETTINGS, HEADERS */

    int rc = 0;
    if (env.flags & FL_PREFACE) {
        rc = zm_hbone_feed(env.c, server_preface, sizeof(server_preface) - 1);
        FUZZ_CHECK(rc == 0);
        fuzz_hbone_drain(env.c);
    }
    size_t off = 0;
    bool first = true;
    while (off < size) {
        size_t n = ZM_MIN(chunk, size - off);
        int r = zm_hbone_feed(env.c, data + off, n);
        FUZZ_CHECK(r == 0 || r == -EPROTO);
        if (rc < 0)
            FUZZ_CHECK(r < 0);
        if (r < 0)
            FUZZ_CHECK(env.conn_closes == 1);
        rc = r;
        off += n;
        if (first && (env.flags & FL_PING))
            zm_hbone_ping(env.c);
        if ((env.flags & FL_GOAWAY) && off >= size / 2 && off - n < size / 2)
            zm_hbone_goaway(env.c, 0);
        first = false;
        fuzz_hbone_drain(env.c);
    }
    if (rc < 0)
        FUZZ_CHECK(zm_hbone_feed(env.c, server_preface, 9) < 0);
    zm_hbone_conn_free(&env.c);
    FUZZ_CHECK(env.c == NULL);
    return 0;
}
