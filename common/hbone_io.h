/*
 * hbone_io.h — HBONE connections on real sockets, and the client pool.
 *
 * A zm_hbc_t ("HBONE connection") stacks the three layers of an HBONE
 * connection on one loop socket: bytes from the socket go into TLS, TLS
 * plaintext into the HTTP/2 session; HTTP/2 output goes through TLS into the
 * socket's send queue. When the socket's queue is full the connection stops
 * pulling HTTP/2 output until it drains, so the streams' bounded buffers and
 * the peer's flow-control windows hold the rest.
 *
 * Streams are owned by whoever opened or accepted them. A stream's ctx must
 * point at a struct whose first member is `const zm_hbs_ops_t *`: the
 * connection dispatches stream events through it (the nginx "handler first"
 * habit), so one connection can carry tunnels of different kinds.
 *
 * The pool (one per worker) reuses client connections keyed by
 * (source identity, destination identity, next-hop address, source IP), as
 * Istio's ztunnel does, caps streams per connection and closes connections
 * idle for longer than idle_timeout_ms.
 *
 * Threading: everything belongs to the loop's thread.
 */
#ifndef ZM_HBONE_IO_H
#define ZM_HBONE_IO_H

#include "hbone.h"
#include "loop.h"
#include "tls.h"

#include <netinet/in.h>

typedef struct zm_hbc zm_hbc_t;
typedef struct zm_hbone_pool zm_hbone_pool_t;

/* Stream event handlers; the stream ctx points at a struct starting with a
 * pointer to one of these. */
typedef struct zm_hbs_ops {
    void (*on_response)(zm_hbone_stream_t *s, int status);
    void (*on_data)(zm_hbone_stream_t *s, const uint8_t *data, size_t len);
    void (*on_eof)(zm_hbone_stream_t *s);
    void (*on_writable)(zm_hbone_stream_t *s);
    void (*on_close)(zm_hbone_stream_t *s, uint32_t error_code);
} zm_hbs_ops_t;

typedef struct zm_hbc_handlers {
    /* Server: TLS is up (peer identity known) — return <0 to refuse the
     * connection (e.g. policy), else 0. */
    int (*on_handshake)(zm_hbc_t *c);
    /* Server: a request; answer with zm_hbone_respond() and set the stream
     * ctx (zm_hbone_stream_set_ctx) before returning or soon after. */
    void (*on_request)(zm_hbc_t *c, zm_hbone_stream_t *s, const zm_hbone_request_t *req);
    /* The connection is gone (after every stream's on_close). */
    void (*on_close)(zm_hbc_t *c, const char *reason);
} zm_hbc_handlers_t;

/* Server side: takes an accepted fd. */
int zm_hbc_accept(zm_hbc_t **out, zm_loop_t *loop, int fd, zm_tls_ctx_t *tls,
                  const zm_hbone_settings_t *settings, const zm_hbc_handlers_t *h, void *ctx);
/* Client side: connects fd (created by the caller, not yet connected; -1 to
 * let the loop create one) to addr. Streams may be opened at once: their
 * frames go out when the handshake completes. */
int zm_hbc_connect(zm_hbc_t **out, zm_loop_t *loop, int fd, const struct sockaddr *addr,
                   socklen_t addr_len, zm_tls_ctx_t *tls, const char *const *expected_ids,
                   const zm_hbone_settings_t *settings, const zm_hbc_handlers_t *h, void *ctx);

/* Opens a CONNECT stream (client). NULL when at the stream cap or closing. */
zm_hbone_stream_t *zm_hbc_open(zm_hbc_t *c, const char *authority, const zm_hbone_header_t *headers,
                               size_t n_headers, void *stream_ctx);
/* Sends what the HTTP/2 layer has queued. Stream owners call it after
 * writing, consuming or resetting (it is cheap when there is nothing). */
void zm_hbc_flush(zm_hbc_t *c);
/* Graceful: GOAWAY, open streams finish, then close. */
void zm_hbc_drain(zm_hbc_t *c);
/* Immediate: streams are reset, the socket closed. */
void zm_hbc_close(zm_hbc_t *c, const char *reason);

void *zm_hbc_ctx(const zm_hbc_t *c);
zm_hbone_conn_t *zm_hbc_h2(const zm_hbc_t *c);
zm_hbc_t *zm_hbc_of_stream(const zm_hbone_stream_t *s);
const zm_spiffe_id_t *zm_hbc_peer_id(const zm_hbc_t *c);
bool zm_hbc_ready(const zm_hbc_t *c);
zm_loop_t *zm_hbc_loop(const zm_hbc_t *c);

/* ---- the client pool ---- */

typedef struct zm_hbone_pool_key {
    const char *src_id;               /* our identity (SPIFFE URI) */
    const char *dst_id;               /* expected peer identity, or NULL */
    struct sockaddr_storage next_hop; /* ip:15008 */
    struct sockaddr_storage src_ip;   /* port ignored; AF_UNSPEC = any */
} zm_hbone_pool_key_t;

typedef struct zm_hbone_pool_config {
    unsigned max_streams_per_conn; /* default 100 */
    uint64_t idle_timeout_ms;      /* default 300000 */
    zm_hbone_settings_t settings;  /* zeroed: client defaults */
    /* Creates the socket for a new connection (e.g. in a pod's netns,
     * marked, bound to the source IP). NULL: a plain socket. */
    int (*make_socket)(const zm_hbone_pool_key_t *key, void *arg);
    void *make_socket_arg;
} zm_hbone_pool_config_t;

int zm_hbone_pool_new(zm_hbone_pool_t **out, zm_loop_t *loop, const zm_hbone_pool_config_t *cfg);
/* Closes every connection (streams reset) and frees the pool. */
void zm_hbone_pool_free(zm_hbone_pool_t **p);

/* Opens a stream to authority over a pooled connection for key, creating
 * one (with tls as the client context) when none has room. *out_stream is
 * the new stream; returns 0 or -errno (-ENOBUFS at a limit). */
int zm_hbone_pool_open(zm_hbone_pool_t *p, const zm_hbone_pool_key_t *key, zm_tls_ctx_t *tls,
                       const char *authority, const zm_hbone_header_t *headers, size_t n_headers,
                       void *stream_ctx, zm_hbone_stream_t **out_stream);
unsigned zm_hbone_pool_conns(const zm_hbone_pool_t *p);
/* Graceful close of every pooled connection. */
void zm_hbone_pool_drain(zm_hbone_pool_t *p);

#endif
