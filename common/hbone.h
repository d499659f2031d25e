/*
 * hbone.h — HBONE: HTTP/2 CONNECT tunnels (nghttp2), transport-agnostic.
 *
 * A zm_hbone_conn_t is one HTTP/2 connection, client or server side. It
 * consumes plaintext bytes (zm_hbone_feed, from TLS) and produces plaintext
 * bytes (zm_hbone_output, to TLS) through nghttp2's mem_recv / mem_send
 * (nghttp2 1.52 has no mem_recv2 / mem_send2), so it is tested in memory and
 * wired to sockets by hbone_io. Nothing here calls nghttp2_session_send from
 * inside a callback.
 *
 * Each zm_hbone_stream_t is one CONNECT tunnel. Flow control is manual
 * (no_auto_window_update): bytes handed to on_stream_data count against the
 * peer's window until the owner calls zm_hbone_stream_consume(), which it
 * does only once those bytes were really written on the other side. So a slow
 * reader slows its writer end to end. Writes are accepted up to a bounded
 * per-stream buffer; when it is full, zm_hbone_stream_write() returns
 * ZM_AGAIN and on_stream_writable fires once it drains.
 *
 * END_STREAM maps to a TCP half-close in each direction; RST_STREAM to a
 * reset. Malformed input ends the connection with GOAWAY (and the owner's
 * on_conn_close); it never aborts. PING keepalive is driven by the owner's
 * timer through zm_hbone_ping().
 *
 * Callbacks run from inside zm_hbone_feed / zm_hbone_output only. They may
 * call zm_hbone_stream_write / shutdown / reset / consume / set_ctx,
 * zm_hbone_respond, zm_hbone_open, zm_hbone_ping and zm_hbone_goaway; they
 * must not call zm_hbone_feed, zm_hbone_output or zm_hbone_conn_free (free
 * the connection after feed/output returned). A stream pointer is valid from
 * zm_hbone_open / on_request until on_stream_close returns; the library frees
 * the stream then, so the owner drops its pointer in that callback.
 *
 * A client may write before the response: bytes wait in the stream's buffer
 * and go out once a 2xx arrives. A CONNECT without :authority is malformed:
 * nghttp2 resets it with RST_STREAM(PROTOCOL_ERROR) and on_request never
 * sees it.
 *
 * Threading: one thread.
 */
#ifndef ZM_HBONE_H
#define ZM_HBONE_H

#include "zm.h"

#include <stdbool.h>
#include <sys/uio.h>
#include <sys/types.h>

typedef struct zm_hbone_conn zm_hbone_conn_t;
typedef struct zm_hbone_stream zm_hbone_stream_t;

/* A zero field means its default. */
typedef struct zm_hbone_settings {
    uint32_t stream_window;          /* default 4 MiB */
    uint32_t conn_window;            /* default 16 MiB */
    uint32_t max_frame_size;         /* default 1 MiB */
    uint32_t max_concurrent_streams; /* server: default 200; client cap: 100 */
    uint32_t max_header_list;        /* default 64 KiB server, 16 KiB client */
    size_t stream_send_buffer;       /* bytes buffered per stream; default 1 MiB */
} zm_hbone_settings_t;

/* A header, as received or to send. */
typedef struct zm_hbone_header {
    const char *name;
    const char *value;
} zm_hbone_header_t;

/* What a server sees of a CONNECT request. */
typedef struct zm_hbone_request {
    const char *method;               /* "CONNECT" for a valid tunnel */
    const char *authority;            /* "ip:port"; never NULL for CONNECT, may be
                                         NULL for other methods (answer 400) */
    const zm_hbone_header_t *headers; /* other headers */
    size_t n_headers;
} zm_hbone_request_t;

typedef struct zm_hbone_callbacks {
    /* Server: a request arrived. Answer with zm_hbone_respond() now or later
     * (e.g. after connecting upstream). */
    void (*on_request)(zm_hbone_conn_t *c, zm_hbone_stream_t *s, const zm_hbone_request_t *req);
    /* Client: the response's status (200 opens the tunnel; anything else is
     * followed by on_stream_close). */
    void (*on_response)(zm_hbone_stream_t *s, int status, const zm_hbone_header_t *headers,
                        size_t n_headers);
    /* Tunnel bytes from the peer; call zm_hbone_stream_consume() later. */
    void (*on_stream_data)(zm_hbone_stream_t *s, const uint8_t *data, size_t len);
    /* The peer sent END_STREAM (its half-close), after all its data. Not
     * sent for a refused (non-2xx) response. */
    void (*on_stream_eof)(zm_hbone_stream_t *s);
    /* Room in the send buffer again (at most half full) after a ZM_AGAIN or
     * a short write. */
    void (*on_stream_writable)(zm_hbone_stream_t *s);
    /* The stream is gone: error_code 0 after a clean END_STREAM both ways,
     * else the RST_STREAM code (ours or theirs). Last callback of a stream. */
    void (*on_stream_close)(zm_hbone_stream_t *s, uint32_t error_code);
    /* The connection is finished (GOAWAY either way and no stream left, or
     * a protocol error). Called once, from feed/output. The owner then
     * flushes zm_hbone_output until it returns 0 (a GOAWAY may be queued)
     * and frees the connection. reason is a constant string for logs and
     * metrics: "protocol_error", "bad_preface", "flooded", "nomem",
     * "internal_error", "goaway", "peer_goaway". */
    void (*on_conn_close)(zm_hbone_conn_t *c, const char *reason);
} zm_hbone_callbacks_t;

void zm_hbone_settings_defaults(zm_hbone_settings_t *s, bool server);

int zm_hbone_conn_new(zm_hbone_conn_t **out, bool server, const zm_hbone_settings_t *settings,
                      const zm_hbone_callbacks_t *cb, void *ctx);
/* Frees the connection and every stream (no callbacks). */
void zm_hbone_conn_free(zm_hbone_conn_t **c);
void *zm_hbone_conn_ctx(const zm_hbone_conn_t *c);

/* Plaintext from the peer, all of it consumed. -EPROTO on a protocol error
 * (GOAWAY(PROTOCOL_ERROR or nghttp2's code) is queued and on_conn_close
 * called); later calls return -EPROTO too. Also serializes the frames the
 * input caused into the output buffer, so a previous zm_hbone_output
 * pointer is invalid after it. */
int zm_hbone_feed(zm_hbone_conn_t *c, const uint8_t *data, size_t len);
/* Next bytes to send to the peer: returns their length (0 = nothing now) and
 * points *data at them; valid until the next call on c. Small frames are
 * coalesced (up to 64 KiB). Call until it returns 0. */
ssize_t zm_hbone_output(zm_hbone_conn_t *c, const uint8_t **data);
/* DATA without copies: once set, nghttp2 leaves DATA payloads where they
 * are (NGHTTP2_DATA_FLAG_NO_COPY) and each DATA frame is written during
 * zm_hbone_output through write(ctx, iov, n): its 9-byte header, then the
 * payload from the stream's buffer or loan; coalesced output waiting before
 * it goes first, so bytes keep their order. write must not call into c; it
 * returns 0, 1 (written, but the transport is full: zm_hbone_output
 * returns what it has and stops) or < 0 (the connection fails). */
typedef int (*zm_hbone_writer_fn)(void *ctx, const struct iovec *iov, int iovcnt);
void zm_hbone_set_writer(zm_hbone_conn_t *c, zm_hbone_writer_fn write, void *ctx);
bool zm_hbone_want_output(const zm_hbone_conn_t *c);

/* Client: opens a CONNECT stream to authority with extra headers (no
 * pseudo-headers, at most 62). NULL when the connection is closing, a
 * GOAWAY was sent or received, or at its stream cap: min(settings cap,
 * peer's SETTINGS_MAX_CONCURRENT_STREAMS). */
zm_hbone_stream_t *zm_hbone_open(zm_hbone_conn_t *c, const char *authority,
                                 const zm_hbone_header_t *headers, size_t n_headers, void *ctx);
/* Streams open now, and whether another may be opened. */
unsigned zm_hbone_active_streams(const zm_hbone_conn_t *c);
bool zm_hbone_can_open(const zm_hbone_conn_t *c);

/* Server: answers a request; a 2xx status opens the tunnel, anything else
 * (>= 300) ends the stream: HEADERS with END_STREAM, then RST_STREAM
 * (NO_ERROR) if the client had not finished. -EINVAL if already answered,
 * on a client stream, or for a status outside 200..999. */
int zm_hbone_respond(zm_hbone_stream_t *s, int status, const zm_hbone_header_t *headers,
                     size_t n_headers);

/* Queues tunnel bytes: returns bytes accepted (maybe fewer than len),
 * ZM_AGAIN if none fit, -EPIPE after shutdown or reset. */
ssize_t zm_hbone_stream_write(zm_hbone_stream_t *s, const uint8_t *data, size_t len);
/* The same without the copy: the bytes stay the caller's, DATA frames
 * written (through the connection's writer) before zm_hbone_stream_settle
 * are read from them in place, and settle copies what is left. The caller
 * must settle before data goes away; a write, lend or the stream's end
 * settles first. settle returns 0 or -ENOMEM (the rest is dropped then). */
ssize_t zm_hbone_stream_lend(zm_hbone_stream_t *s, const uint8_t *data, size_t len);
int zm_hbone_stream_settle(zm_hbone_stream_t *s);
/* END_STREAM after the queued bytes. */
int zm_hbone_stream_shutdown(zm_hbone_stream_t *s);
/* RST_STREAM with error_code (e.g. NGHTTP2_CANCEL, NGHTTP2_CONNECT_ERROR).
 * Queued bytes are dropped; on_stream_close(error_code) follows once it is
 * sent. Data arriving meanwhile is consumed by the library. */
void zm_hbone_stream_reset(zm_hbone_stream_t *s, uint32_t error_code);
/* n bytes from on_stream_data were delivered: reopen the window. Bytes a
 * stream never consumed return to the connection window when it closes. */
void zm_hbone_stream_consume(zm_hbone_stream_t *s, size_t n);
size_t zm_hbone_stream_queued(const zm_hbone_stream_t *s);

void *zm_hbone_stream_ctx(const zm_hbone_stream_t *s);
void zm_hbone_stream_set_ctx(zm_hbone_stream_t *s, void *ctx);
zm_hbone_conn_t *zm_hbone_stream_conn(const zm_hbone_stream_t *s);
int32_t zm_hbone_stream_id(const zm_hbone_stream_t *s);

/* Keepalive PING; and GOAWAY (no new streams, open ones finish). A server's
 * graceful goaway (error_code 0) sends a shutdown notice, then the final
 * GOAWAY one PING round trip later; otherwise GOAWAY goes out at once. */
int zm_hbone_ping(zm_hbone_conn_t *c);
/* Milliseconds since the last PING ack, or since creation. */
uint64_t zm_hbone_ms_since_ack(const zm_hbone_conn_t *c);
int zm_hbone_goaway(zm_hbone_conn_t *c, uint32_t error_code);

#endif
