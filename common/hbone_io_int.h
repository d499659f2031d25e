/*
 * hbone_io_int.h — HBONE connection internals, private to hbone_io.c and
 * hbone_pool.c: the connection and pool objects, the connection's state
 * flags, and the few helpers the pool needs from the connection code (named
 * zm__hbc_<verb>: linkable, not part of the API, which is hbone_io.h).
 *
 * Threading: a connection and its pool belong to one loop thread.
 */
#ifndef ZM_HBONE_IO_INT_H
#define ZM_HBONE_IO_INT_H

#include "hbone_io.h"

/* Why a connection is not moving; HAProxy-style flags. */
#define ZM_HBC_ESTABLISHED 0x01u
#define ZM_HBC_BLOCKED_SOCK 0x02u /* socket queue above high water */
#define ZM_HBC_CLOSING 0x04u
#define ZM_HBC_SERVER 0x08u
#define ZM_HBC_DRAINING 0x10u
#define ZM_HBC_DEAD 0x20u   /* socket closed; free when not busy */
#define ZM_HBC_FAILED 0x40u /* ended by an error worth a log line */

struct zm_hbc {
    zm_loop_t *loop;
    zm_sock_t *sock;
    zm_tls_ctx_t *tls_ctx;
    zm_tls_t *tls;
    zm_hbone_conn_t *h2;
    const zm_hbc_handlers_t *h;
    void *ctx;
    unsigned flags;
    unsigned busy;
    const char *reason;

    zm_hbone_stream_t **streams; /* open streams, for on_close at teardown */
    unsigned n_streams, cap_streams;

    /* Pool membership (client connections made by a pool). */
    zm_hbone_pool_t *pool;
    zm_hbc_t *pool_next, *pool_prev;
    char src_id[ZM_SPIFFE_ID_MAX];
    char dst_id[ZM_SPIFFE_ID_MAX];
    const char *expected[2];
    struct sockaddr_storage next_hop, src_ip;
    zm_timer_t idle_timer;
    zm_timer_t keepalive; /* handshake deadline, then PING cadence */
};

struct zm_hbone_pool {
    zm_loop_t *loop;
    zm_hbone_pool_config_t cfg;
    zm_hbc_t *head;
    unsigned n_conns;
};

/* Connects a client connection; with a pool, as its member for key. */
int zm__hbc_connect(zm_hbc_t **out, zm_loop_t *loop, int fd, const struct sockaddr *addr,
                    socklen_t addr_len, zm_tls_ctx_t *tls, const char *const *expected,
                    const zm_hbone_settings_t *settings, const zm_hbc_handlers_t *h, void *ctx,
                    zm_hbone_pool_t *pool, const zm_hbone_pool_key_t *key);

/* Pool membership: leave the pool (no-op for a connection outside one);
 * restart or stop the idle timer as streams come and go. */
void zm__hbc_pool_unlink(zm_hbc_t *c);
void zm__hbc_pool_note_activity(zm_hbc_t *c);

#endif
