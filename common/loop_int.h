/*
 * loop_int.h — private structures shared by loop.c (ring, op pool, buffers,
 * timers, post queue), loop_sock.c (sockets) and loop_listen.c (listeners).
 * Not a public header: nothing outside those three files includes it.
 *
 * Invariants:
 * - An op slot is either free or owned by exactly one submission still
 *   known to the kernel; it returns to the free list only at that
 *   submission's final CQE (one without IORING_CQE_F_MORE). A detached
 *   ("zombie") op has had its generation bumped: its late CQEs are counted
 *   as stale and only release resources (buffers, accepted fds, the owner's
 *   in-flight count), never reach a callback.
 * - A socket slot is freed only when its in-flight op count is zero, so no
 *   op ever outlives the socket whose memory (msghdr, iovecs, sockaddr,
 *   send chunks) it references.
 * - Deferred work (arming recv, flushing sends, delivering held data,
 *   finalizing closes) runs from the ready list outside CQE dispatch, so
 *   user callbacks are never re-entered from zm_sock_* calls.
 *
 * Threading: everything here is touched by the loop thread only, except
 * post_* fields (under post_mu) and stop (atomic).
 */
#ifndef ZM_LOOP_INT_H
#define ZM_LOOP_INT_H

#include "loop.h"

#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/uio.h>

#define OP_NONE UINT32_MAX
/* user_data of cancel SQEs (submitted with CQE_SKIP_SUCCESS); ignored. */
#define UD_IGNORE UINT64_MAX
#define SEND_IOV_MAX 16

enum op_kind { OP_FREE, OP_EVENTFD, OP_ACCEPT, OP_RECV, OP_SEND, OP_CONNECT, OP_SHUTDOWN };

struct op {
    uint32_t gen;
    uint8_t kind;
    bool detached;
    uint32_t next_free;
    void *owner;
};

struct chunk {
    struct chunk *next;
    uint32_t len;
    uint8_t data[];
};

/* Socket state flags. */
enum {
    SF_CONNECTING = 1u << 0,
    SF_PAUSED = 1u << 1,
    SF_EOF = 1u << 2,         /* FIN seen (maybe not delivered yet) */
    SF_EOF_DONE = 1u << 3,    /* on_eof delivered */
    SF_RECV_CANCEL = 1u << 4, /* a pause cancel is pending on recv_op */
    SF_NOBUFS = 1u << 5,      /* waiting on the loop's nobufs list */
    SF_SHUT_REQ = 1u << 6,
    SF_SHUT_SENT = 1u << 7,
    SF_CLOSE_FLUSH = 1u << 8,
    SF_CLOSING = 1u << 9,
    SF_DRAIN_ARMED = 1u << 10,
    SF_READY = 1u << 11, /* on the ready list */
};

struct zm_sock {
    zm_loop_t *loop;
    int fd;
    uint32_t idx;
    unsigned flags;
    int err;
    unsigned ops; /* in flight, live or detached */
    uint32_t recv_op, send_op, connect_op, shut_op;
    zm_sock_handlers_t h;
    void *ctx;
    /* send queue */
    struct chunk *sq_head, *sq_tail;
    struct chunk *resv; /* handed out by zm_sock_send_reserve, not yet queued */
    uint32_t head_off;
    size_t queued;
    /* receive buffers held while paused (bids, linked through loop->held_next) */
    int32_t held_head, held_tail;
    zm_sock_t *ready_next;
    zm_sock_t *nobufs_next;
    uint32_t next_free;
    struct msghdr msg;
    struct iovec iov[SEND_IOV_MAX];
    struct sockaddr_storage peer;
    socklen_t peer_len;
};

struct zm_listener {
    zm_loop_t *loop;
    int fd;
    uint32_t op;
    unsigned ops; /* in flight, live or detached */
    bool closing;
    bool in_cb;
    zm_accept_cb cb;
    void *ctx;
    zm_timer_t retry;
    zm_listener_t *prev, *next;
};

struct post {
    struct post *next;
    zm_post_cb fn;
    void *arg;
};

struct zm_loop {
    struct io_uring ring;
    zm_loop_config_t cfg;
    bool destroying;
    bool wait_no_iowait; /* the kernel takes IORING_ENTER_NO_IOWAIT */

    struct op *ops;
    uint32_t op_free;
    unsigned ops_used;
    uint64_t stale;

    zm_sock_t *socks;
    uint32_t sock_free;
    uint32_t sock_fresh; /* slots [sock_fresh, max_socks) never used: untouched memory */
    unsigned socks_open;
    zm_sock_t *ready_head, *ready_tail;
    zm_sock_t *nobufs_head;
    zm_listener_t *listeners;

    /* provided buffer ring, group 0 */
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    uint8_t *bufs;
    int32_t *held_next;
    uint32_t *held_len;
    unsigned held_count;
    bool br_registered;

    struct chunk *chunk_free;
    unsigned chunks_made, chunks_idle;

    zm_timer_t **heap; /* 1-based */
    unsigned heap_len, heap_cap;

    int efd;
    uint64_t efd_val;
    uint32_t efd_op;
    pthread_mutex_t post_mu;
    struct post *post_head, *post_tail;
    atomic_bool stop;
};

/* loop.c services used by loop_sock.c */
uint32_t zm__op_alloc(zm_loop_t *loop, enum op_kind kind, void *owner);
void zm__op_free(zm_loop_t *loop, uint32_t idx);
uint64_t zm__op_ud(const zm_loop_t *loop, uint32_t idx);
/* Gets an SQE, submitting to make room when the SQ is full; NULL if none. */
struct io_uring_sqe *zm__sqe(zm_loop_t *loop);
/* Detaches op idx (its CQEs become stale) and asks the kernel to cancel it. */
void zm__op_cancel(zm_loop_t *loop, uint32_t idx, bool detach);
void zm__buf_recycle(zm_loop_t *loop, unsigned bid);
uint8_t *zm__buf_addr(const zm_loop_t *loop, unsigned bid);
struct chunk *zm__chunk_get(zm_loop_t *loop);
void zm__chunk_put(zm_loop_t *loop, struct chunk *c);
unsigned zm__chunks_available(const zm_loop_t *loop);

/* loop_sock.c entry points used by loop.c */
void zm__sock_cqe(zm_loop_t *loop, struct op *op, uint32_t idx, const struct io_uring_cqe *cqe,
                  bool stale);
void zm__listener_cqe(zm_loop_t *loop, struct op *op, uint32_t idx, const struct io_uring_cqe *cqe,
                      bool stale);
void zm__sock_schedule(zm_sock_t *s);
/* Clears O_NONBLOCK: io_uring fails such fds with -EAGAIN instead of
 * waiting for readiness. */
void zm__set_blocking(int fd);
void zm__listener_free(zm_listener_t *l);
void zm__run_ready(zm_loop_t *loop);
/* Destroy: zm__close_all starts closing every socket and listener (no
 * callbacks: loop->destroying); zm__free_all frees what remains. */
void zm__close_all(zm_loop_t *loop);
void zm__free_all(zm_loop_t *loop);

#endif
