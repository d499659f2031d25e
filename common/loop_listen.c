/*
 * loop_listen.c — listeners of a zm_loop: socket set-up (SO_REUSEPORT,
 * IP_TRANSPARENT), one multishot accept per listener, re-armed when the
 * kernel ends it (IORING_CQE_F_MORE clear) and after a short back-off when
 * it ended on an error such as EMFILE.
 *
 * A listener is freed only once its accept op has completed (l->ops == 0)
 * and no accept callback is running; closing detaches and cancels the op,
 * and fds accepted by a detached op are closed unseen.
 *
 * Threading: loop thread only.
 */
#include "loop_int.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <unistd.h>

void zm__listener_free(zm_listener_t *l)
{
    zm_loop_t *loop = l->loop;
    zm_timer_stop(loop, &l->retry);
    if (l->fd >= 0)
        close(l->fd);
    if (l->prev)
        l->prev->next = l->next;
    else
        loop->listeners = l->next;
    if (l->next)
        l->next->prev = l->prev;
    free(l);
}

static int listener_arm(zm_listener_t *l)
{
    zm_loop_t *loop = l->loop;
    uint32_t op = zm__op_alloc(loop, OP_ACCEPT, l);
    if (op == OP_NONE)
        return -ENOBUFS;
    struct io_uring_sqe *sqe = zm__sqe(loop);
    if (!sqe) {
        zm__op_free(loop, op);
        return -EBUSY;
    }
    /* No address buffer: multishot reuses it for every CQE, so the peer
     * is read with getpeername() at dispatch instead. */
    io_uring_prep_multishot_accept(sqe, l->fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, zm__op_ud(loop, op));
    l->op = op;
    l->ops++;
    return 0;
}

static void listener_retry(zm_timer_t *t)
{
    zm_listener_t *l = ZM_CONTAINER_OF(t, zm_listener_t, retry);
    if (listener_arm(l) < 0)
        zm_timer_start(l->loop, &l->retry, 100, listener_retry);
}

void zm__listener_cqe(zm_loop_t *loop, struct op *op, uint32_t idx, const struct io_uring_cqe *cqe,
                      bool stale)
{
    zm_listener_t *l = op->owner;
    bool more = cqe->flags & IORING_CQE_F_MORE;
    if (!more) {
        zm__op_free(loop, idx);
        l->ops--;
        if (!stale)
            l->op = OP_NONE;
    }
    if (cqe->res >= 0) {
        if (stale || l->closing || !l->cb) {
            close(cqe->res);
        } else {
            struct sockaddr_storage peer;
            socklen_t plen = sizeof(peer);
            if (getpeername(cqe->res, (struct sockaddr *)&peer, &plen) < 0)
                plen = 0;
            l->in_cb = true;
            l->cb(l, cqe->res, (struct sockaddr *)&peer, plen, l->ctx);
            l->in_cb = false;
        }
    }
    if (l->closing) {
        if (!l->ops && !l->in_cb)
            zm__listener_free(l);
        return;
    }
    if (!more && l->op == OP_NONE) {
        /* Errors such as EMFILE end the multishot: back off before re-arming. */
        if (cqe->res < 0 || listener_arm(l) < 0)
            zm_timer_start(loop, &l->retry, cqe->res < 0 ? 50 : 100, listener_retry);
    }
}

int zm_listener_adopt(zm_listener_t **out, zm_loop_t *loop, int fd, zm_accept_cb cb, void *ctx)
{
    *out = NULL;
    zm_listener_t *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->loop = loop;
    l->fd = fd;
    l->op = OP_NONE;
    l->cb = cb;
    l->ctx = ctx;
    zm__set_blocking(fd);
    int rc = listener_arm(l);
    if (rc < 0) {
        free(l); /* the caller keeps the fd */
        return rc;
    }
    l->next = loop->listeners;
    if (l->next)
        l->next->prev = l;
    loop->listeners = l;
    *out = l;
    return 0;
}

int zm_listener_new(zm_listener_t **out, zm_loop_t *loop, const struct sockaddr *addr,
                    socklen_t addr_len, unsigned flags, zm_accept_cb cb, void *ctx)
{
    *out = NULL;
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1, rc = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
        rc = -errno;
    if (!rc && (flags & ZM_LISTEN_REUSEPORT) &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        rc = -errno;
    if (!rc && (flags & ZM_LISTEN_TRANSPARENT)) {
        bool v6 = addr->sa_family == AF_INET6;
        if (setsockopt(fd, v6 ? SOL_IPV6 : SOL_IP, v6 ? IPV6_TRANSPARENT : IP_TRANSPARENT, &one,
                       sizeof(one)) < 0)
            rc = -errno;
    }
    if (!rc && bind(fd, addr, addr_len) < 0)
        rc = -errno;
    if (!rc && listen(fd, 4096) < 0)
        rc = -errno;
    if (!rc)
        rc = zm_listener_adopt(out, loop, fd, cb, ctx);
    if (rc < 0)
        close(fd);
    return rc;
}

int zm_listener_port(const zm_listener_t *l)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(l->fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -EAFNOSUPPORT;
}

void zm_listener_close(zm_listener_t **pl)
{
    zm_listener_t *l = *pl;
    if (!l)
        return;
    *pl = NULL;
    if (l->closing)
        return;
    l->closing = true;
    zm_timer_stop(l->loop, &l->retry);
    if (l->op != OP_NONE) {
        zm__op_cancel(l->loop, l->op, true);
        l->op = OP_NONE;
    }
    if (!l->ops && !l->in_cb)
        zm__listener_free(l);
}
