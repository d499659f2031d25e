/*
 * splice.c — see splice.h. Each side is a `half`: its socket, whether it
 * has seen FIN, and whether we paused it because the other side's queue is
 * full. The splice frees itself when both sockets have closed.
 */
#include "splice.h"

#include <stdlib.h>
#include <unistd.h>

typedef struct half {
    zm_sock_t *sock;
    bool eof, closed, paused, connected;
} half_t;

struct zm_splice {
    half_t a, b;
    unsigned busy;
    zm_splice_done_cb done;
    void *ctx;
    zm_splice_stats_t st;
};

static half_t *self_of(zm_splice_t *sp, zm_sock_t *s)
{
    return sp->a.sock == s ? &sp->a : &sp->b;
}

static half_t *peer_of(zm_splice_t *sp, half_t *h)
{
    return h == &sp->a ? &sp->b : &sp->a;
}

static void check_done(zm_splice_t *sp)
{
    if (sp->busy)
        return;
    /* Both directions finished cleanly: close what is still open. */
    if (sp->a.eof && sp->b.eof) {
        if (!sp->a.closed && sp->a.sock)
            zm_sock_close(sp->a.sock, ZM_SOCK_CLOSE_FLUSH);
        if (!sp->b.closed && sp->b.sock)
            zm_sock_close(sp->b.sock, ZM_SOCK_CLOSE_FLUSH);
    }
    if (!sp->a.closed || !sp->b.closed)
        return;
    sp->st.ended_ns = zm_now_ns();
    if (sp->done)
        sp->done(sp, &sp->st, sp->ctx);
    free(sp);
}

void zm_splice_abort(zm_splice_t *sp, const char *reason)
{
    if (!sp->st.error)
        sp->st.error = reason;
    sp->busy++;
    if (!sp->a.closed && sp->a.sock)
        zm_sock_close(sp->a.sock, 0);
    if (!sp->b.closed && sp->b.sock)
        zm_sock_close(sp->b.sock, 0);
    sp->busy--;
    check_done(sp);
}

static void on_data(zm_sock_t *s, const uint8_t *data, size_t len)
{
    zm_splice_t *sp = zm_sock_ctx(s);
    half_t *self = self_of(sp, s), *peer = peer_of(sp, self);
    if (peer->closed) {
        zm_splice_abort(sp, "peer closed");
        return;
    }
    if (zm_sock_send(peer->sock, data, len) < 0) {
        zm_splice_abort(sp, "send queue overflow");
        return;
    }
    if (self == &sp->a)
        sp->st.a_to_b += len;
    else
        sp->st.b_to_a += len;
    if (zm_sock_above_low_water(peer->sock) && !self->paused) {
        self->paused = true;
        zm_sock_pause_read(s);
    }
}

static void on_drain(zm_sock_t *s)
{
    zm_splice_t *sp = zm_sock_ctx(s);
    half_t *self = self_of(sp, s), *peer = peer_of(sp, self);
    if (peer->paused && !peer->closed) {
        peer->paused = false;
        zm_sock_resume_read(peer->sock);
    }
}

static void on_eof(zm_sock_t *s)
{
    zm_splice_t *sp = zm_sock_ctx(s);
    half_t *self = self_of(sp, s), *peer = peer_of(sp, self);
    self->eof = true;
    if (!peer->closed)
        zm_sock_shutdown_write(peer->sock);
    check_done(sp);
}

static void on_close(zm_sock_t *s, int err)
{
    zm_splice_t *sp = zm_sock_ctx(s);
    half_t *self = self_of(sp, s), *peer = peer_of(sp, self);
    self->closed = true;
    if (err && !sp->st.error)
        sp->st.error = "connection error";
    if (!peer->closed && !(self->eof && peer->eof)) {
        /* One side is gone before both directions ended: end the other. */
        sp->busy++;
        zm_sock_close(peer->sock, err ? 0 : ZM_SOCK_CLOSE_FLUSH);
        sp->busy--;
    }
    check_done(sp);
}

static void on_connect(zm_sock_t *s, int res)
{
    zm_splice_t *sp = zm_sock_ctx(s);
    if (res < 0) {
        sp->st.error = "upstream connect failed";
        return; /* on_close of b follows and closes a */
    }
    sp->b.connected = true;
    if (sp->a.paused) {
        sp->a.paused = false;
        zm_sock_resume_read(sp->a.sock);
    }
}

static const zm_sock_handlers_t handlers = {
    .on_connect = on_connect,
    .on_data = on_data,
    .on_eof = on_eof,
    .on_drain = on_drain,
    .on_close = on_close,
};

int zm_splice_connect(zm_splice_t **out, zm_sock_t *a, int fd_b, const struct sockaddr *addr,
                      socklen_t addr_len, zm_splice_done_cb done, void *ctx)
{
    zm_splice_t *sp = calloc(1, sizeof(*sp));
    if (!sp) {
        if (fd_b >= 0)
            close(fd_b);
        return -ENOMEM;
    }
    sp->done = done;
    sp->ctx = ctx;
    sp->st.started_ns = zm_now_ns();
    zm_loop_t *loop = zm_sock_loop(a);
    int r = fd_b >= 0 ? zm_sock_connect_fd(&sp->b.sock, loop, fd_b, addr, addr_len, &handlers, sp)
                      : zm_sock_connect(&sp->b.sock, loop, addr, addr_len, &handlers, sp);
    if (r < 0) {
        if (fd_b >= 0)
            close(fd_b);
        free(sp);
        return r;
    }
    sp->a.sock = a;
    /* Hold a's bytes in the kernel until b can take them. */
    sp->a.paused = true;
    zm_sock_pause_read(a);
    zm_sock_set_ctx(a, sp);
    zm_sock_set_handlers(a, &handlers);
    if (out)
        *out = sp;
    return 0;
}
