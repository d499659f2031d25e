/*
 * splice.h — two TCP sockets on one loop joined byte for byte: ztunnel's
 * plaintext paths (passthrough to destinations outside the mesh, inbound
 * plaintext allowed by PeerAuthentication).
 *
 * Bytes read from one side are queued on the other; when that queue rises
 * above its low-water mark the reading side pauses until on_drain, so memory
 * per splice is bounded by the send queue limits. A FIN is passed on as a
 * half-close; the splice ends when both directions are done or either side
 * fails, and reports once through on_done.
 *
 * Threading: the loop's thread.
 */
#ifndef ZM_SPLICE_H
#define ZM_SPLICE_H

#include "loop.h"

typedef struct zm_splice zm_splice_t;

typedef struct zm_splice_stats {
    uint64_t a_to_b, b_to_a; /* bytes */
    uint64_t started_ns, ended_ns;
    const char *error; /* NULL after a clean end */
} zm_splice_stats_t;

typedef void (*zm_splice_done_cb)(zm_splice_t *sp, const zm_splice_stats_t *st, void *ctx);

/* Joins a (connected, e.g. accepted) with a new connection made from fd_b
 * (created by the caller; -1 for a plain socket) to addr. Bytes from a wait
 * in a's kernel buffer until b is connected; a connect failure closes a.
 * The splice takes both sockets' handlers. */
int zm_splice_connect(zm_splice_t **out, zm_sock_t *a, int fd_b, const struct sockaddr *addr,
                      socklen_t addr_len, zm_splice_done_cb done, void *ctx);

/* Ends it now (both sockets closed without flushing). */
void zm_splice_abort(zm_splice_t *sp, const char *reason);

#endif
