/*
 * tunnel.h — one TCP connection spliced to one HBONE stream.
 *
 * Bytes from the TCP socket become DATA on the stream, DATA from the stream
 * is written to the socket, FIN becomes END_STREAM and the reverse, an error
 * on either side resets the other. Backpressure both ways: the socket stops
 * being read while the stream's send buffer is full, and stream bytes are
 * acknowledged to the HTTP/2 peer (its window reopened) only once the socket
 * queue is below its low-water mark — so a slow reader slows the writer at
 * the far end, and memory per tunnel stays bounded.
 *
 * The tunnel frees itself after both sides are closed and reports once
 * through on_done with the byte counts and the first error.
 *
 * Threading: the loop's thread.
 */
#ifndef ZM_TUNNEL_H
#define ZM_TUNNEL_H

#include "hbone_io.h"

typedef struct zm_tunnel zm_tunnel_t;

typedef struct zm_tunnel_stats {
    uint64_t bytes_to_stream;   /* read from TCP, sent into the tunnel */
    uint64_t bytes_from_stream; /* received from the tunnel, written to TCP */
    uint64_t started_ns, ended_ns;
    int status;        /* HTTP status of the CONNECT (client side) */
    const char *error; /* NULL on a clean close */
} zm_tunnel_stats_t;

typedef void (*zm_tunnel_done_cb)(zm_tunnel_t *t, const zm_tunnel_stats_t *stats, void *ctx);

/* Client side: wraps an established TCP socket (the tunnel takes its
 * handlers and ctx). Open the stream with zm_tunnel_stream_ctx(t) as its
 * ctx, then zm_tunnel_attach(); bytes from TCP wait until the CONNECT is
 * answered 200 (a refusal ends the tunnel with that status). */
int zm_tunnel_client(zm_tunnel_t **out, zm_sock_t *sock, zm_tunnel_done_cb done, void *ctx);
void *zm_tunnel_stream_ctx(zm_tunnel_t *t);
void zm_tunnel_attach(zm_tunnel_t *t, zm_hbone_stream_t *s);

/* Server side: for an accepted CONNECT stream, connects fd (or a new
 * socket when fd < 0) to upstream, then answers 200 and starts splicing, or
 * 503 if the connect fails. */
int zm_tunnel_server(zm_tunnel_t **out, zm_hbone_stream_t *s, int fd,
                     const struct sockaddr *upstream, socklen_t upstream_len,
                     zm_tunnel_done_cb done, void *ctx);

/* Ends the tunnel now: the socket is closed and the stream reset. */
void zm_tunnel_abort(zm_tunnel_t *t, const char *reason);

void *zm_tunnel_ctx(const zm_tunnel_t *t);
const zm_tunnel_stats_t *zm_tunnel_stats(const zm_tunnel_t *t);

#endif
