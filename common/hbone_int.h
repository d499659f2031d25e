/*
 * hbone_int.h — HBONE internals, private to hbone.c and hbone_stream.c.
 *
 * Nothing else includes this file: the module's API is hbone.h. It holds the
 * connection and stream objects, the send-buffer chunk, the constants both
 * files size things by, and the few stream-object helpers that the nghttp2
 * callbacks and the connection code in hbone.c need from hbone_stream.c
 * (named zm__hbone_<verb>: linkable, but not part of the API). The rules
 * these objects live by are in hbone.c's opening comment; field-level ones
 * sit next to the fields.
 *
 * Threading: one thread per connection; nothing is shared between conns.
 */
#ifndef ZM_HBONE_INT_H
#define ZM_HBONE_INT_H

#include "hbone.h"

#include <nghttp2/nghttp2.h>

#define ZM_HBONE_RESET_BURST 100000 /* incoming RST_STREAM before rate limiting */
#define ZM_HBONE_RESET_RATE 10000   /* then per second */
#define CHUNK_SIZE (16 * 1024)
#define OUT_CAP (64 * 1024)
/* DATA frames of up to 64 KiB on the wire (payload + 9-byte header): four
 * full 16 KiB TLS records per frame, a quarter of the frames, callbacks and
 * zm_tls_write calls of nghttp2's default 16 KiB payload (data_length_cb). */
#define DATA_FRAME_WIRE (64 * 1024)
/* Frames from this size up skip the coalescing copy into out: TLS reads
 * them from nghttp2's own buffer; only small frames are worth batching. */
#define PASS_THROUGH_MIN (8 * 1024)
#define FREE_CHUNKS_MAX 64 /* per connection: 1 MiB kept for reuse */
#define MAX_SEND_HEADERS 64
#define NOTICE_LAST_ID ((int32_t)((1u << 31) - 1))

typedef struct chunk {
    struct chunk *next;
    uint32_t start, end;
    uint8_t data[CHUNK_SIZE];
} chunk_t;

struct zm_hbone_stream {
    zm_hbone_conn_t *conn;
    int32_t id;
    void *ctx;
    zm_hbone_stream_t *prev, *next;   /* conn->streams */
    zm_hbone_stream_t *wprev, *wnext; /* conn's on_stream_writable queue */
    chunk_t *head, *tail;
    /* A loan (zm_hbone_stream_lend): the caller's bytes after the chunks,
     * until zm_hbone_stream_settle copies what is left of them. */
    const uint8_t *lent;
    size_t lent_len;
    size_t queued;       /* chunk bytes + lent_len */
    uint64_t unconsumed; /* handed to on_stream_data, not consumed yet */
    uint32_t reset_code;
    bool announced;      /* the owner knows it (on_request delivered / opened) */
    bool can_send;       /* DATA may flow: 2xx sent (server) or received (client) */
    bool shut_wr;        /* END_STREAM once drained */
    bool reset;          /* RST_STREAM submitted by us */
    bool responded;      /* server: respond() done; client: final status seen */
    bool want_writable;  /* a write returned short; notify below half */
    bool rst_after_resp; /* server refused: RST_STREAM(NO_ERROR) once it is out */
    bool wqueued;
};

enum { GOAWAY_NONE, GOAWAY_NOTICE, GOAWAY_NOTICE_SENT, GOAWAY_FINAL };

struct zm_hbone_conn {
    nghttp2_session *ng;
    bool server;
    zm_hbone_settings_t set;
    zm_hbone_callbacks_t cb;
    void *ctx;

    zm_hbone_stream_t *streams; /* every live stream object */
    unsigned n_streams;
    zm_hbone_stream_t *free_streams; /* recycled objects, linked by next */
    unsigned n_free_streams;
    zm_hbone_stream_t *wq_head, *wq_tail;
    chunk_t *free_chunks;
    unsigned n_free_chunks;

    /* Header block being decoded. */
    char *hbuf;
    size_t hcap, hlen, hlist;
    zm_hbone_header_t *hdrs;
    size_t hdr_cap, n_hdrs;
    int32_t hdr_stream;
    const char *method, *authority;
    int status;

    zm_hbone_writer_fn writer; /* set: DATA goes out without copies */
    void *writer_ctx;
    bool writer_full; /* it answered "transport full" during this staging */

    uint8_t *out;
    size_t out_len;
    bool out_returned;   /* out was handed to the owner by zm_hbone_output */
    const uint8_t *pend; /* a frame from mem_send that did not fit in out */
    size_t pend_len;

    int goaway_state;
    uint32_t goaway_code;
    bool peer_goaway, goaway_sent, failed, close_notified;
    bool terminated; /* nghttp2 sent a GOAWAY with an error we did not ask for */
    const char *close_reason;
    uint64_t last_ack_ms;
};

/* Takes a recycled stream object (or mallocs one) and links it into
 * c->streams; NULL when out of memory. */
zm_hbone_stream_t *zm__hbone_stream_new(zm_hbone_conn_t *c, void *ctx);

/* Unlinks and recycles s; no callback. */
void zm__hbone_stream_free(zm_hbone_conn_t *c, zm_hbone_stream_t *s);

/* The stream is gone for nghttp2: tell the owner, give back the connection
 * window its unconsumed bytes held, recycle. */
void zm__hbone_stream_release(zm_hbone_conn_t *c, zm_hbone_stream_t *s, uint32_t code);

/* Returns every queued chunk of s to the connection's free list. */
void zm__hbone_stream_drop_buffer(zm_hbone_stream_t *s);

/* Writes a DATA frame through the connection's writer: the 9-byte header
 * framehd, then length bytes of s's buffer and loan, which it consumes.
 * Returns the writer's answer (0, 1: transport full, < 0: failed). */
int zm__hbone_send_data(zm_hbone_conn_t *c, zm_hbone_stream_t *s, const uint8_t *framehd,
                        size_t length);

/* Takes s off the connection's on_stream_writable queue, if it is on it. */
void zm__hbone_wq_remove(zm_hbone_conn_t *c, zm_hbone_stream_t *s);

/* The stream object nghttp2 keeps as the stream's user data, or NULL. */
static inline zm_hbone_stream_t *zm__hbone_stream_of(zm_hbone_conn_t *c, int32_t id)
{
    return nghttp2_session_get_stream_user_data(c->ng, id);
}

#endif
