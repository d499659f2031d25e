/*
 * loop_sock.c — sockets of a zm_loop: multishot recv over the loop's
 * provided buffer ring, the bounded send queue flushed with one sendmsg over
 * several chunks at a time, connect, half-close and close. Listeners are in
 * loop_listen.c.
 *
 * A socket has at most one op of each kind in flight (recv, send, connect,
 * shutdown) and counts them in s->ops. State changes made by API calls only
 * set flags and schedule the socket; sock_progress() then arms, flushes or
 * finalizes from the ready list, so no zm_sock_* call ever re-enters a
 * callback (callbacks run from CQE dispatch or the ready list only).
 * Closing detaches every live op (bumping its generation) and cancels it;
 * the socket is finalized (fd closed, on_close, slot freed) once s->ops
 * reaches zero.
 *
 * While paused, data CQEs that were already on their way are held (their
 * buffers kept out of the ring) and delivered in order on resume; FIN too.
 *
 * Threading: loop thread only.
 */
#include "loop_int.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void hard_close(zm_sock_t *s, int err);

/* ---- socket slots and the ready list ---- */

static zm_sock_t *sock_alloc(zm_loop_t *loop, int fd, const zm_sock_handlers_t *h, void *ctx)
{
    uint32_t i = loop->sock_free;
    zm_sock_t *s;
    if (i != OP_NONE) {
        s = &loop->socks[i];
        loop->sock_free = s->next_free;
    } else if (loop->sock_fresh < loop->cfg.max_socks) {
        i = loop->sock_fresh++;
        s = &loop->socks[i];
    } else {
        return NULL;
    }
    memset(s, 0, sizeof(*s));
    s->idx = i;
    s->loop = loop;
    s->fd = fd;
    s->recv_op = s->send_op = s->connect_op = s->shut_op = OP_NONE;
    s->held_head = s->held_tail = -1;
    if (h)
        s->h = *h;
    s->ctx = ctx;
    loop->socks_open++;
    return s;
}

static void sock_release(zm_sock_t *s)
{
    zm_loop_t *loop = s->loop;
    s->loop = NULL;
    s->flags = 0;
    s->next_free = loop->sock_free;
    loop->sock_free = s->idx;
    loop->socks_open--;
}

void zm__sock_schedule(zm_sock_t *s)
{
    zm_loop_t *loop = s->loop;
    if (s->flags & SF_READY)
        return;
    s->flags |= SF_READY;
    s->ready_next = NULL;
    if (loop->ready_tail)
        loop->ready_tail->ready_next = s;
    else
        loop->ready_head = s;
    loop->ready_tail = s;
}

static void nobufs_unlink(zm_sock_t *s)
{
    zm_sock_t **pp = &s->loop->nobufs_head;
    while (*pp && *pp != s)
        pp = &(*pp)->nobufs_next;
    if (*pp)
        *pp = s->nobufs_next;
    s->nobufs_next = NULL;
    s->flags &= ~SF_NOBUFS;
}

static void set_nodelay(int fd)
{
    int one = 1;
    /* Fails harmlessly on non-TCP sockets (socketpairs in tests). */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void zm__set_blocking(int fd)
{
    /* io_uring honours O_NONBLOCK by failing with -EAGAIN instead of
     * waiting for readiness; the loop wants the waiting. */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && (fl & O_NONBLOCK))
        (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
}

/* ---- submissions ---- */

static int sock_submit(zm_sock_t *s, enum op_kind kind, uint32_t *slot, struct io_uring_sqe **out)
{
    zm_loop_t *loop = s->loop;
    uint32_t op = zm__op_alloc(loop, kind, s);
    if (op == OP_NONE)
        return -ENOBUFS;
    struct io_uring_sqe *sqe = zm__sqe(loop);
    if (!sqe) {
        zm__op_free(loop, op);
        return -EBUSY;
    }
    /* Set before prep: liburing 2.3 prep helpers leave user_data alone. */
    io_uring_sqe_set_data64(sqe, zm__op_ud(loop, op));
    *slot = op;
    s->ops++;
    *out = sqe;
    return 0;
}

static int recv_arm(zm_sock_t *s)
{
    struct io_uring_sqe *sqe;
    int rc = sock_submit(s, OP_RECV, &s->recv_op, &sqe);
    if (rc < 0)
        return rc;
    io_uring_prep_recv_multishot(sqe, s->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = 0;
    return 0;
}

static int send_arm(zm_sock_t *s)
{
    unsigned n = 0;
    uint32_t off = s->head_off;
    for (struct chunk *c = s->sq_head; c && n < SEND_IOV_MAX; c = c->next, off = 0) {
        if (c->len > off) {
            s->iov[n].iov_base = c->data + off;
            s->iov[n].iov_len = c->len - off;
            n++;
        }
    }
    memset(&s->msg, 0, sizeof(s->msg));
    s->msg.msg_iov = s->iov;
    s->msg.msg_iovlen = n;
    struct io_uring_sqe *sqe;
    int rc = sock_submit(s, OP_SEND, &s->send_op, &sqe);
    if (rc < 0)
        return rc;
    io_uring_prep_sendmsg(sqe, s->fd, &s->msg, MSG_NOSIGNAL);
    return 0;
}

static int shut_arm(zm_sock_t *s)
{
    struct io_uring_sqe *sqe;
    int rc = sock_submit(s, OP_SHUTDOWN, &s->shut_op, &sqe);
    if (rc < 0)
        return rc;
    io_uring_prep_shutdown(sqe, s->fd, SHUT_WR);
    s->flags |= SF_SHUT_SENT;
    return 0;
}

/* ---- held receive buffers ---- */

static void held_push(zm_sock_t *s, unsigned bid, uint32_t len)
{
    zm_loop_t *loop = s->loop;
    loop->held_next[bid] = -1;
    loop->held_len[bid] = len;
    if (s->held_tail >= 0)
        loop->held_next[s->held_tail] = (int32_t)bid;
    else
        s->held_head = (int32_t)bid;
    s->held_tail = (int32_t)bid;
    loop->held_count++;
}

static int held_pop(zm_sock_t *s)
{
    zm_loop_t *loop = s->loop;
    int32_t bid = s->held_head;
    if (bid < 0)
        return -1;
    s->held_head = loop->held_next[bid];
    if (s->held_head < 0)
        s->held_tail = -1;
    loop->held_count--;
    return bid;
}

static void send_queue_free(zm_sock_t *s)
{
    while (s->sq_head) {
        struct chunk *c = s->sq_head;
        s->sq_head = c->next;
        zm__chunk_put(s->loop, c);
    }
    s->sq_tail = NULL;
    s->queued = 0;
    s->head_off = 0;
    zm_sock_send_commit(s, 0);
}

/* ---- progress: everything deferred out of callbacks ---- */

static void sock_finalize(zm_sock_t *s)
{
    zm_loop_t *loop = s->loop;
    int bid;
    while ((bid = held_pop(s)) >= 0)
        zm__buf_recycle(loop, (unsigned)bid);
    send_queue_free(s);
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    if (!loop->destroying && s->h.on_close)
        s->h.on_close(s, s->err);
    sock_release(s);
}

static void sock_progress(zm_sock_t *s)
{
    zm_loop_t *loop = s->loop;
    if (s->flags & SF_CLOSING) {
        if (!s->ops)
            sock_finalize(s);
        return;
    }
    if (s->flags & SF_CONNECTING)
        return;
    int bid;
    while (!(s->flags & SF_PAUSED) && (bid = held_pop(s)) >= 0) {
        if (s->h.on_data)
            s->h.on_data(s, zm__buf_addr(loop, (unsigned)bid), loop->held_len[bid]);
        zm__buf_recycle(loop, (unsigned)bid);
        if (s->flags & SF_CLOSING)
            return;
    }
    if ((s->flags & (SF_EOF | SF_EOF_DONE | SF_PAUSED)) == SF_EOF && s->held_head < 0) {
        s->flags |= SF_EOF_DONE;
        if (s->h.on_eof)
            s->h.on_eof(s);
        if (s->flags & SF_CLOSING)
            return;
    }
    int rc = 0;
    if (!(s->flags & (SF_PAUSED | SF_EOF | SF_NOBUFS)) && s->recv_op == OP_NONE)
        rc = recv_arm(s);
    if (rc == 0 && s->send_op == OP_NONE) {
        if (s->queued)
            rc = send_arm(s);
        else if ((s->flags & (SF_SHUT_REQ | SF_SHUT_SENT)) == SF_SHUT_REQ)
            rc = shut_arm(s);
        else if (s->flags & SF_CLOSE_FLUSH)
            hard_close(s, 0);
    }
    if (rc < 0)
        hard_close(s, rc); /* op pool or SQ exhausted: drop this connection */
}

void zm__run_ready(zm_loop_t *loop)
{
    zm_sock_t *s;
    while ((s = loop->ready_head)) {
        loop->ready_head = s->ready_next;
        if (!loop->ready_head)
            loop->ready_tail = NULL;
        s->ready_next = NULL;
        s->flags &= ~SF_READY;
        sock_progress(s);
    }
}

static void hard_close(zm_sock_t *s, int err)
{
    if (s->flags & SF_CLOSING)
        return;
    zm_loop_t *loop = s->loop;
    s->flags |= SF_CLOSING;
    s->flags &= ~SF_CLOSE_FLUSH;
    if (!s->err)
        s->err = err;
    if (s->flags & SF_NOBUFS)
        nobufs_unlink(s);
    uint32_t *ops[] = {&s->recv_op, &s->send_op, &s->connect_op, &s->shut_op};
    for (size_t i = 0; i < ZM_ARRAY_LEN(ops); i++) {
        if (*ops[i] != OP_NONE) {
            zm__op_cancel(loop, *ops[i], true);
            *ops[i] = OP_NONE;
        }
    }
    zm__sock_schedule(s);
}

/* ---- completions ---- */

static void op_done(zm_sock_t *s, uint32_t idx, uint32_t *slot)
{
    zm__op_free(s->loop, idx);
    if (slot)
        *slot = OP_NONE;
    s->ops--;
}

static void recv_cqe(zm_sock_t *s, uint32_t idx, const struct io_uring_cqe *cqe)
{
    zm_loop_t *loop = s->loop;
    bool more = cqe->flags & IORING_CQE_F_MORE;
    int res = cqe->res;
    if (!more) {
        op_done(s, idx, &s->recv_op);
        s->flags &= ~SF_RECV_CANCEL;
        zm__sock_schedule(s);
    }
    if (res > 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
        unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        if ((s->flags & SF_PAUSED) || s->held_head >= 0) {
            held_push(s, bid, (uint32_t)res);
            zm__sock_schedule(s);
        } else {
            if (s->h.on_data)
                s->h.on_data(s, zm__buf_addr(loop, bid), (size_t)res);
            zm__buf_recycle(loop, bid);
        }
    } else if (res == 0) {
        s->flags |= SF_EOF;
    } else if (res == -ENOBUFS) {
        /* Ring ran dry. Buffers not held by paused sockets are in CQEs we
         * are about to recycle: retry now; else wait for a recycle. */
        if (loop->held_count < loop->cfg.recv_buf_count) {
            zm__sock_schedule(s);
        } else if (!(s->flags & SF_NOBUFS)) {
            s->flags |= SF_NOBUFS;
            s->nobufs_next = loop->nobufs_head;
            loop->nobufs_head = s;
        }
    } else if (res < 0 && res != -ECANCELED && res != -EINTR && res != -EAGAIN) {
        hard_close(s, res);
    }
}

static void send_consume(zm_sock_t *s, size_t n)
{
    s->queued -= n;
    while (n) {
        struct chunk *c = s->sq_head;
        size_t avail = c->len - s->head_off;
        if (n < avail) {
            s->head_off += (uint32_t)n;
            return;
        }
        n -= avail;
        s->sq_head = c->next;
        if (!s->sq_head)
            s->sq_tail = NULL;
        s->head_off = 0;
        zm__chunk_put(s->loop, c);
    }
}

static void send_cqe(zm_sock_t *s, uint32_t idx, int res)
{
    op_done(s, idx, &s->send_op);
    zm__sock_schedule(s);
    if (res == -EAGAIN || res == -EINTR)
        return;
    if (res < 0) {
        hard_close(s, res);
        return;
    }
    send_consume(s, (size_t)res);
    if ((s->flags & SF_DRAIN_ARMED) && s->queued <= s->loop->cfg.send_low_water) {
        s->flags &= ~SF_DRAIN_ARMED;
        if (s->h.on_drain && !(s->flags & SF_CLOSE_FLUSH))
            s->h.on_drain(s);
    }
}

void zm__sock_cqe(zm_loop_t *loop, struct op *op, uint32_t idx, const struct io_uring_cqe *cqe,
                  bool stale)
{
    zm_sock_t *s = op->owner;
    if (stale) {
        /* Detached by close: release what the CQE carries, count the op. */
        if (cqe->flags & IORING_CQE_F_BUFFER)
            zm__buf_recycle(loop, cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        if (!(cqe->flags & IORING_CQE_F_MORE)) {
            op_done(s, idx, NULL);
            zm__sock_schedule(s);
        }
        return;
    }
    switch (op->kind) {
    case OP_RECV:
        recv_cqe(s, idx, cqe);
        break;
    case OP_SEND:
        send_cqe(s, idx, cqe->res);
        break;
    case OP_CONNECT:
        op_done(s, idx, &s->connect_op);
        s->flags &= ~SF_CONNECTING;
        zm__sock_schedule(s);
        if (cqe->res == 0)
            set_nodelay(s->fd);
        if (s->h.on_connect)
            s->h.on_connect(s, cqe->res);
        if (cqe->res < 0)
            hard_close(s, cqe->res);
        break;
    case OP_SHUTDOWN:
        op_done(s, idx, &s->shut_op);
        zm__sock_schedule(s);
        if (cqe->res < 0)
            hard_close(s, cqe->res);
        else if (s->h.on_drain)
            s->h.on_drain(s);
        break;
    }
}

/* ---- public socket API ---- */

int zm_sock_wrap(zm_sock_t **out, zm_loop_t *loop, int fd, const zm_sock_handlers_t *h, void *ctx)
{
    *out = NULL;
    zm_sock_t *s = sock_alloc(loop, fd, h, ctx);
    if (!s)
        return -ENOBUFS;
    zm__set_blocking(fd);
    set_nodelay(fd);
    int rc = recv_arm(s);
    if (rc < 0) {
        sock_release(s); /* the caller keeps the fd */
        return rc;
    }
    *out = s;
    return 0;
}

int zm_sock_connect_fd(zm_sock_t **out, zm_loop_t *loop, int fd, const struct sockaddr *addr,
                       socklen_t addr_len, const zm_sock_handlers_t *h, void *ctx)
{
    *out = NULL;
    if (addr_len > sizeof(struct sockaddr_storage))
        return -EINVAL;
    zm_sock_t *s = sock_alloc(loop, fd, h, ctx);
    if (!s)
        return -ENOBUFS;
    zm__set_blocking(fd);
    set_nodelay(fd);
    memcpy(&s->peer, addr, addr_len);
    s->peer_len = addr_len;
    struct io_uring_sqe *sqe;
    int rc = sock_submit(s, OP_CONNECT, &s->connect_op, &sqe);
    if (rc < 0) {
        sock_release(s);
        return rc;
    }
    io_uring_prep_connect(sqe, fd, (struct sockaddr *)&s->peer, s->peer_len);
    s->flags |= SF_CONNECTING;
    *out = s;
    return 0;
}

int zm_sock_connect(zm_sock_t **out, zm_loop_t *loop, const struct sockaddr *addr,
                    socklen_t addr_len, const zm_sock_handlers_t *h, void *ctx)
{
    *out = NULL;
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc = zm_sock_connect_fd(out, loop, fd, addr, addr_len, h, ctx);
    if (rc < 0)
        close(fd);
    return rc;
}

void *zm_sock_ctx(const zm_sock_t *s)
{
    return s->ctx;
}

void zm_sock_set_ctx(zm_sock_t *s, void *ctx)
{
    s->ctx = ctx;
}

void zm_sock_set_handlers(zm_sock_t *s, const zm_sock_handlers_t *h)
{
    if (h)
        s->h = *h;
    else
        memset(&s->h, 0, sizeof(s->h));
}

zm_loop_t *zm_sock_loop(const zm_sock_t *s)
{
    return s->loop;
}

int zm_sock_fd(const zm_sock_t *s)
{
    return s->fd;
}

size_t zm_sock_send_queued(const zm_sock_t *s)
{
    return s->queued;
}

bool zm_sock_above_low_water(const zm_sock_t *s)
{
    return s->queued > s->loop->cfg.send_low_water;
}

int zm_sock_send(zm_sock_t *s, const void *data, size_t len)
{
    if (s->flags & (SF_CLOSING | SF_CLOSE_FLUSH | SF_SHUT_REQ))
        return -EPIPE;
    if (!len)
        return 0;
    zm_loop_t *loop = s->loop;
    size_t cs = loop->cfg.send_chunk_size;
    size_t room = s->sq_tail ? cs - s->sq_tail->len : 0;
    size_t need = len > room ? (len - room + cs - 1) / cs : 0;
    if (s->queued + len > loop->cfg.send_queue_limit || need > zm__chunks_available(loop)) {
        s->flags |= SF_DRAIN_ARMED;
        return -ENOBUFS;
    }
    /* Take every chunk first so a failed allocation queues nothing. */
    struct chunk *first = NULL, *last = NULL;
    for (size_t i = 0; i < need; i++) {
        struct chunk *c = zm__chunk_get(loop);
        if (!c) {
            while (first) {
                struct chunk *n = first->next;
                zm__chunk_put(loop, first);
                first = n;
            }
            s->flags |= SF_DRAIN_ARMED;
            return -ENOBUFS;
        }
        if (last)
            last->next = c;
        else
            first = c;
        last = c;
    }
    const uint8_t *p = data;
    size_t left = len;
    if (room) {
        size_t n = ZM_MIN(room, left);
        memcpy(s->sq_tail->data + s->sq_tail->len, p, n);
        s->sq_tail->len += (uint32_t)n;
        p += n;
        left -= n;
    }
    for (struct chunk *c = first; c; c = c->next) {
        size_t n = ZM_MIN(cs, left);
        memcpy(c->data, p, n);
        c->len = (uint32_t)n;
        p += n;
        left -= n;
    }
    if (first) {
        if (s->sq_tail)
            s->sq_tail->next = first;
        else
            s->sq_head = first;
        s->sq_tail = last;
    }
    s->queued += len;
    if (s->queued > loop->cfg.send_low_water)
        s->flags |= SF_DRAIN_ARMED;
    zm__sock_schedule(s);
    return 0;
}

uint8_t *zm_sock_send_reserve(zm_sock_t *s, size_t min, size_t *avail)
{
    zm_loop_t *loop = s->loop;
    size_t cs = loop->cfg.send_chunk_size;
    *avail = 0;
    if ((s->flags & (SF_CLOSING | SF_CLOSE_FLUSH | SF_SHUT_REQ)) || min > cs)
        return NULL;
    if (s->queued + min > loop->cfg.send_queue_limit) {
        s->flags |= SF_DRAIN_ARMED;
        return NULL;
    }
    struct chunk *t = s->sq_tail;
    if (t && cs - t->len >= min) {
        zm_sock_send_commit(s, 0); /* a reservation given up on */
        *avail = cs - t->len;
        return t->data + t->len;
    }
    if (!s->resv && !(s->resv = zm__chunk_get(loop))) {
        s->flags |= SF_DRAIN_ARMED;
        return NULL;
    }
    s->resv->len = 0;
    *avail = cs;
    return s->resv->data;
}

void zm_sock_send_commit(zm_sock_t *s, size_t n)
{
    struct chunk *c = s->resv;
    if (!n) {
        if (c) {
            s->resv = NULL;
            zm__chunk_put(s->loop, c);
        }
        return;
    }
    if (c) {
        s->resv = NULL;
        c->len = (uint32_t)n;
        c->next = NULL;
        if (s->sq_tail)
            s->sq_tail->next = c;
        else
            s->sq_head = c;
        s->sq_tail = c;
    } else {
        s->sq_tail->len += (uint32_t)n;
    }
    s->queued += n;
    if (s->queued > s->loop->cfg.send_low_water)
        s->flags |= SF_DRAIN_ARMED;
    zm__sock_schedule(s);
}

int zm_sock_shutdown_write(zm_sock_t *s)
{
    if (s->flags & (SF_CLOSING | SF_CLOSE_FLUSH))
        return -EPIPE;
    s->flags |= SF_SHUT_REQ;
    zm__sock_schedule(s);
    return 0;
}

void zm_sock_pause_read(zm_sock_t *s)
{
    if (s->flags & (SF_CLOSING | SF_PAUSED))
        return;
    s->flags |= SF_PAUSED;
    if (s->recv_op != OP_NONE && !(s->flags & SF_RECV_CANCEL)) {
        /* Not detached: CQEs already on their way are held, not lost. */
        zm__op_cancel(s->loop, s->recv_op, false);
        s->flags |= SF_RECV_CANCEL;
    }
}

void zm_sock_resume_read(zm_sock_t *s)
{
    if ((s->flags & SF_CLOSING) || !(s->flags & SF_PAUSED))
        return;
    s->flags &= ~SF_PAUSED;
    zm__sock_schedule(s);
}

void zm_sock_close(zm_sock_t *s, unsigned flags)
{
    if (!s || (s->flags & SF_CLOSING))
        return;
    if ((flags & ZM_SOCK_CLOSE_FLUSH) && (s->queued || s->send_op != OP_NONE)) {
        zm_sock_pause_read(s);
        s->flags |= SF_CLOSE_FLUSH;
        zm__sock_schedule(s);
        return;
    }
    hard_close(s, 0);
}

/* ---- teardown ---- */

void zm__close_all(zm_loop_t *loop)
{
    for (zm_listener_t *l = loop->listeners, *next; l; l = next) {
        next = l->next;
        zm_listener_t *tmp = l;
        zm_listener_close(&tmp);
    }
    for (unsigned i = 0; loop->socks && i < loop->cfg.max_socks; i++)
        if (loop->socks[i].loop)
            hard_close(&loop->socks[i], 0);
}

void zm__free_all(zm_loop_t *loop)
{
    zm__run_ready(loop);
    while (loop->listeners)
        zm__listener_free(loop->listeners);
    for (unsigned i = 0; loop->socks && i < loop->cfg.max_socks; i++)
        if (loop->socks[i].loop)
            sock_finalize(&loop->socks[i]);
}
