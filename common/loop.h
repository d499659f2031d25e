/*
 * loop.h — one io_uring event loop per worker thread.
 *
 * The loop owns every socket operation: accept, connect, receive, send,
 * shutdown, close, timers and cancellation all go through its ring; nothing
 * above it calls read/write/send on a socket. A connection never leaves the
 * loop that accepted or opened it, so nothing here takes a lock except the
 * cross-thread post queue.
 *
 * Operations are drawn from a bounded pool. Each submission's user_data is
 * (slot index, generation) of its op object, never an fd: when an op is
 * cancelled or its socket closed, the slot's generation moves on and a late
 * completion is dropped. The submitter owns every byte an SQE references
 * until its CQE arrives; a socket is freed only once none of its ops is in
 * flight. Pool exhaustion returns -ENOBUFS, never aborts.
 *
 * Receive uses multishot recv with a provided buffer ring; a buffer goes back
 * to the ring as soon as on_data returns, so on_data must consume or copy.
 * Send copies into the socket's bounded send queue (chunks from a per-loop
 * pool); on_drain fires when the queue falls below its low-water mark after
 * having been above it, which is how a slow reader slows its writer.
 *
 * Threading: every function except zm_loop_post() and zm_loop_stop() must be
 * called on the loop's own thread, and the loop must be created on that
 * thread (IORING_SETUP_SINGLE_ISSUER binds the ring to its creator).
 * Requires Linux >= 6.0 (multishot recv, provided buffer rings).
 */
#ifndef ZM_LOOP_H
#define ZM_LOOP_H

#include "zm.h"

#include <stdbool.h>
#include <sys/socket.h>

typedef struct zm_loop zm_loop_t;
typedef struct zm_sock zm_sock_t;
typedef struct zm_listener zm_listener_t;
typedef struct zm_timer zm_timer_t;

typedef struct zm_loop_config {
    unsigned sq_entries;       /* ring size; default 1024 */
    unsigned max_ops;          /* op pool; default 16384 */
    unsigned max_socks;        /* socket pool; default 8192 */
    unsigned recv_buf_size;    /* provided buffer size; default 16 KiB */
    unsigned recv_buf_count;   /* provided buffers (power of two); default 1024 */
    size_t send_queue_limit;   /* per-socket queued bytes before -ENOBUFS; default 8 MiB */
    size_t send_low_water;     /* on_drain threshold; default 256 KiB */
    unsigned send_chunk_size;  /* send queue chunk; default 16 KiB */
    unsigned send_chunk_count; /* per-loop chunk pool bound (allocated lazily,
                                  then recycled); default 4096 */
} zm_loop_config_t;

/* Callbacks of one socket. Any may be NULL. `s` stays valid during the call. */
typedef struct zm_sock_handlers {
    /* Connect finished: res 0 or -errno. On failure on_close follows. */
    void (*on_connect)(zm_sock_t *s, int res);
    /* Bytes arrived; valid only during the call. */
    void (*on_data)(zm_sock_t *s, const uint8_t *data, size_t len);
    /* The peer sent FIN; reading stops. Writing may continue. */
    void (*on_eof)(zm_sock_t *s);
    /* The send queue fell below low water after having been above it, or
     * emptied after zm_sock_shutdown_write's FIN went out (then queued==0). */
    void (*on_drain)(zm_sock_t *s);
    /* Final: fd closed, no op in flight; err 0 or -errno (first error seen).
     * The socket is freed when this returns. */
    void (*on_close)(zm_sock_t *s, int err);
} zm_sock_handlers_t;

/* An accepted connection. Wrap fd with zm_sock_wrap() or close it. */
typedef void (*zm_accept_cb)(zm_listener_t *l, int fd, const struct sockaddr *peer,
                             socklen_t peer_len, void *ctx);
typedef void (*zm_timer_cb)(zm_timer_t *t);
typedef void (*zm_post_cb)(zm_loop_t *loop, void *arg);

/* Embed in your own struct; a zeroed timer is idle. */
struct zm_timer {
    uint64_t deadline_ms;
    zm_timer_cb cb;
    unsigned heap_index; /* 0 = not armed */
};

/* Sets defaults for every zero field. */
void zm_loop_config_defaults(zm_loop_config_t *cfg);

int zm_loop_new(zm_loop_t **out, const zm_loop_config_t *cfg);
/* Closes every socket and listener (without callbacks), reaps the ring's
 * cancelled ops, frees the loop. On the loop's thread. */
void zm_loop_destroy(zm_loop_t **loop);

/* Runs until zm_loop_stop(). Returns 0 or -errno. */
int zm_loop_run(zm_loop_t *loop);
/* Waits at most timeout_ms (-1 forever) for completions, dispatches them and
 * expired timers; returns the number of completions handled or -errno. */
int zm_loop_run_once(zm_loop_t *loop, int timeout_ms);
/* Thread-safe: makes zm_loop_run return after its current batch (a stop
 * requested before zm_loop_run starts is honoured, once). */
void zm_loop_stop(zm_loop_t *loop);
/* Thread-safe: runs fn(loop, arg) on the loop's thread soon. */
int zm_loop_post(zm_loop_t *loop, zm_post_cb fn, void *arg);

/* Ops currently in flight (for tests and metrics). */
unsigned zm_loop_ops_in_flight(const zm_loop_t *loop);
unsigned zm_loop_socks_open(const zm_loop_t *loop);
/* Completions dropped because their op's generation had moved on. */
uint64_t zm_loop_stale_completions(const zm_loop_t *loop);
/* Whether the loop's waits are kept out of the iowait statistics (kernels
 * since 6.15); older kernels count a thread waiting with requests in
 * flight, i.e. an idle proxy, as iowait. */
bool zm_loop_waits_without_iowait(const zm_loop_t *loop);

/* ---- listeners ---- */

#define ZM_LISTEN_REUSEPORT 0x1u
#define ZM_LISTEN_TRANSPARENT 0x2u /* IP_TRANSPARENT, for TPROXY capture */

/* Binds and listens (backlog 4096) then multishot-accepts. */
int zm_listener_new(zm_listener_t **out, zm_loop_t *loop, const struct sockaddr *addr,
                    socklen_t addr_len, unsigned flags, zm_accept_cb cb, void *ctx);
/* Same, on an already bound and listening fd (taken over; on error the
 * caller keeps it). */
int zm_listener_adopt(zm_listener_t **out, zm_loop_t *loop, int fd, zm_accept_cb cb, void *ctx);
/* The bound port (host order), useful after binding port 0. */
int zm_listener_port(const zm_listener_t *l);
/* Stops accepting and closes the fd once the accept op completes. */
void zm_listener_close(zm_listener_t **l);

/* ---- sockets ---- */

/* Takes ownership of a connected fd and starts receiving. On error
 * (-ENOBUFS: socket or op pool full) the caller keeps the fd. */
int zm_sock_wrap(zm_sock_t **out, zm_loop_t *loop, int fd, const zm_sock_handlers_t *h, void *ctx);
/* Opens a TCP socket and connects; on_connect reports the result. */
int zm_sock_connect(zm_sock_t **out, zm_loop_t *loop, const struct sockaddr *addr,
                    socklen_t addr_len, const zm_sock_handlers_t *h, void *ctx);
/* Connects an fd the caller created (e.g. inside a pod's netns, marked,
 * bound to a source address); ownership passes to the loop on success. */
int zm_sock_connect_fd(zm_sock_t **out, zm_loop_t *loop, int fd, const struct sockaddr *addr,
                       socklen_t addr_len, const zm_sock_handlers_t *h, void *ctx);

void *zm_sock_ctx(const zm_sock_t *s);
void zm_sock_set_ctx(zm_sock_t *s, void *ctx);
void zm_sock_set_handlers(zm_sock_t *s, const zm_sock_handlers_t *h);
zm_loop_t *zm_sock_loop(const zm_sock_t *s);
int zm_sock_fd(const zm_sock_t *s);

/* Queues a copy of data. -ENOBUFS past send_queue_limit or when the chunk
 * pool is empty (nothing queued then, and on_drain is armed: it fires at the
 * socket's next send completion that leaves the queue below low water);
 * -EPIPE after shutdown or close. */
int zm_sock_send(zm_sock_t *s, const void *data, size_t len);
/* The same without the copy: at least min (<= send_chunk_size) contiguous
 * bytes at the queue's tail to write into; *avail says how many (up to a
 * chunk). NULL when zm_sock_send would refuse min bytes (-ENOBUFS: on_drain
 * is armed; or the socket is closing). Nothing is queued until
 * zm_sock_send_commit(s, n <= *avail); no other send on s in between. */
uint8_t *zm_sock_send_reserve(zm_sock_t *s, size_t min, size_t *avail);
void zm_sock_send_commit(zm_sock_t *s, size_t n);
size_t zm_sock_send_queued(const zm_sock_t *s);
/* True while the queue is above send_low_water, i.e. on_drain is armed and
 * will fire when it falls back: "acknowledge upstream later". */
bool zm_sock_above_low_water(const zm_sock_t *s);
/* Sends FIN once the queue is empty. */
int zm_sock_shutdown_write(zm_sock_t *s);

/* Stop / restart receiving (backpressure). Idempotent. */
void zm_sock_pause_read(zm_sock_t *s);
void zm_sock_resume_read(zm_sock_t *s);

/* Cancels its ops and closes; on_close follows once nothing is in flight.
 * With ZM_SOCK_CLOSE_FLUSH queued bytes are sent first. */
#define ZM_SOCK_CLOSE_FLUSH 0x1u
void zm_sock_close(zm_sock_t *s, unsigned flags);

/* ---- timers (a min-heap served by one io_uring timeout) ---- */

void zm_timer_start(zm_loop_t *loop, zm_timer_t *t, uint64_t after_ms, zm_timer_cb cb);
void zm_timer_stop(zm_loop_t *loop, zm_timer_t *t);
static inline bool zm_timer_armed(const zm_timer_t *t)
{
    return t->heap_index != 0;
}

#endif
