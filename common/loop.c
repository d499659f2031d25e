/*
 * loop.c — the io_uring ring of one worker: set-up with feature fallback,
 * the bounded op pool and its generations, the provided receive buffer
 * ring, the send chunk pool, the timer heap, the cross-thread post queue and
 * the run loop. Sockets and listeners live in loop_sock.c.
 *
 * One batch: submit pending SQEs and wait (bounded by the next timer and
 * the caller's timeout) in one io_uring_enter, dispatch every available CQE,
 * advance the CQ once, run expired timers, then run deferred socket work.
 * Completions are decoded from user_data = (op slot << 32) | generation;
 * a generation that no longer matches means the op was detached (socket
 * closed, listener closed) and the CQE only releases what it carries.
 *
 * Threading: the loop's own thread only, except zm_loop_post/zm_loop_stop,
 * which take post_mu / an atomic and poke the eventfd the ring is reading.
 */
#include "loop_int.h"

#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Newer than the kernel headers Debian 12 builds against (Linux 6.15). */
#ifndef IORING_ENTER_NO_IOWAIT
#define IORING_ENTER_NO_IOWAIT (1U << 7)
#endif
#ifndef IORING_FEAT_NO_IOWAIT
#define IORING_FEAT_NO_IOWAIT (1U << 17)
#endif

void zm_loop_config_defaults(zm_loop_config_t *cfg)
{
    if (!cfg->sq_entries)
        cfg->sq_entries = 1024;
    if (!cfg->max_ops)
        cfg->max_ops = 16384;
    if (!cfg->max_socks)
        cfg->max_socks = 8192;
    if (!cfg->recv_buf_size)
        cfg->recv_buf_size = 16 * 1024;
    if (!cfg->recv_buf_count)
        cfg->recv_buf_count = 1024;
    if (!cfg->send_queue_limit)
        cfg->send_queue_limit = 8u << 20;
    if (!cfg->send_low_water)
        cfg->send_low_water = 256 * 1024;
    if (!cfg->send_chunk_size)
        cfg->send_chunk_size = 16 * 1024;
    if (!cfg->send_chunk_count)
        cfg->send_chunk_count = 4096;
}

/* ---- op pool ---- */

uint32_t zm__op_alloc(zm_loop_t *loop, enum op_kind kind, void *owner)
{
    uint32_t idx = loop->op_free;
    if (idx == OP_NONE)
        return OP_NONE;
    struct op *op = &loop->ops[idx];
    loop->op_free = op->next_free;
    op->kind = (uint8_t)kind;
    op->owner = owner;
    op->detached = false;
    loop->ops_used++;
    return idx;
}

void zm__op_free(zm_loop_t *loop, uint32_t idx)
{
    struct op *op = &loop->ops[idx];
    op->gen++;
    op->kind = OP_FREE;
    op->owner = NULL;
    op->detached = false;
    op->next_free = loop->op_free;
    loop->op_free = idx;
    loop->ops_used--;
}

uint64_t zm__op_ud(const zm_loop_t *loop, uint32_t idx)
{
    return ((uint64_t)idx << 32) | loop->ops[idx].gen;
}

struct io_uring_sqe *zm__sqe(zm_loop_t *loop)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&loop->ring);
    if (!sqe) {
        io_uring_submit(&loop->ring);
        sqe = io_uring_get_sqe(&loop->ring);
    }
    return sqe;
}

void zm__op_cancel(zm_loop_t *loop, uint32_t idx, bool detach)
{
    uint64_t ud = zm__op_ud(loop, idx);
    if (detach) {
        /* The old generation stays recognisable as this op's zombie. */
        loop->ops[idx].gen++;
        loop->ops[idx].detached = true;
    }
    struct io_uring_sqe *sqe = zm__sqe(loop);
    if (!sqe)
        return; /* the op still completes on its own (fd close, data) */
    io_uring_prep_cancel64(sqe, ud, 0);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(sqe, UD_IGNORE);
}

/* ---- provided receive buffers ---- */

uint8_t *zm__buf_addr(const zm_loop_t *loop, unsigned bid)
{
    return loop->bufs + (size_t)bid * loop->cfg.recv_buf_size;
}

void zm__buf_recycle(zm_loop_t *loop, unsigned bid)
{
    unsigned mask = loop->cfg.recv_buf_count - 1;
    io_uring_buf_ring_add(loop->br, zm__buf_addr(loop, bid), loop->cfg.recv_buf_size,
                          (unsigned short)bid, (int)mask, 0);
    io_uring_buf_ring_advance(loop->br, 1);
    /* Sockets that ran dry may now receive again. */
    while (loop->nobufs_head) {
        zm_sock_t *s = loop->nobufs_head;
        loop->nobufs_head = s->nobufs_next;
        s->nobufs_next = NULL;
        s->flags &= ~SF_NOBUFS;
        zm__sock_schedule(s);
    }
}

static int bufs_init(zm_loop_t *loop)
{
    unsigned n = loop->cfg.recv_buf_count;
    loop->br_bytes = (size_t)n * sizeof(struct io_uring_buf);
    void *br =
        mmap(NULL, loop->br_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (br == MAP_FAILED)
        return -errno;
    loop->br = br;
    loop->bufs = malloc((size_t)n * loop->cfg.recv_buf_size);
    loop->held_next = malloc(n * sizeof(*loop->held_next));
    loop->held_len = malloc(n * sizeof(*loop->held_len));
    if (!loop->bufs || !loop->held_next || !loop->held_len)
        return -ENOMEM;
    struct io_uring_buf_reg reg = {.ring_addr = (uintptr_t)br, .ring_entries = n, .bgid = 0};
    int rc = io_uring_register_buf_ring(&loop->ring, &reg, 0);
    if (rc < 0)
        return rc == -EINVAL ? -EOPNOTSUPP : rc;
    loop->br_registered = true;
    io_uring_buf_ring_init(loop->br);
    for (unsigned i = 0; i < n; i++)
        io_uring_buf_ring_add(loop->br, zm__buf_addr(loop, i), loop->cfg.recv_buf_size,
                              (unsigned short)i, (int)(n - 1), (int)i);
    io_uring_buf_ring_advance(loop->br, (int)n);
    return 0;
}

/* ---- send chunks: lazily allocated up to the bound, then recycled ---- */

unsigned zm__chunks_available(const zm_loop_t *loop)
{
    return loop->chunks_idle + (loop->cfg.send_chunk_count - loop->chunks_made);
}

#define ZM_LOOP_CHUNK_CACHE_BYTES (2u << 20) /* idle send chunks kept: 128 of 16 KiB */

struct chunk *zm__chunk_get(zm_loop_t *loop)
{
    struct chunk *c = loop->chunk_free;
    if (c) {
        loop->chunk_free = c->next;
        loop->chunks_idle--;
    } else {
        if (loop->chunks_made >= loop->cfg.send_chunk_count)
            return NULL;
        c = malloc(sizeof(*c) + loop->cfg.send_chunk_size);
        if (!c)
            return NULL;
        loop->chunks_made++;
    }
    c->next = NULL;
    c->len = 0;
    return c;
}

void zm__chunk_put(zm_loop_t *loop, struct chunk *c)
{
    /* Keep a warm cache, give the rest back: a burst must not pin the
     * whole pool's worth of memory for the life of the process. */
    if ((size_t)loop->chunks_idle * loop->cfg.send_chunk_size >= ZM_LOOP_CHUNK_CACHE_BYTES) {
        free(c);
        loop->chunks_made--;
        return;
    }
    c->next = loop->chunk_free;
    loop->chunk_free = c;
    loop->chunks_idle++;
}

/* ---- timers: binary min-heap, 1-based, heap_index 0 = idle ---- */

static bool heap_less(zm_loop_t *loop, unsigned a, unsigned b)
{
    return loop->heap[a]->deadline_ms < loop->heap[b]->deadline_ms;
}

static void heap_swap(zm_loop_t *loop, unsigned a, unsigned b)
{
    zm_timer_t *t = loop->heap[a];
    loop->heap[a] = loop->heap[b];
    loop->heap[b] = t;
    loop->heap[a]->heap_index = a;
    loop->heap[b]->heap_index = b;
}

static void heap_fix(zm_loop_t *loop, unsigned i)
{
    while (i > 1 && heap_less(loop, i, i / 2)) {
        heap_swap(loop, i, i / 2);
        i /= 2;
    }
    for (;;) {
        unsigned l = 2 * i, r = l + 1, m = i;
        if (l <= loop->heap_len && heap_less(loop, l, m))
            m = l;
        if (r <= loop->heap_len && heap_less(loop, r, m))
            m = r;
        if (m == i)
            break;
        heap_swap(loop, i, m);
        i = m;
    }
}

void zm_timer_stop(zm_loop_t *loop, zm_timer_t *t)
{
    unsigned i = t->heap_index;
    if (!i)
        return;
    unsigned last = loop->heap_len--;
    if (i != last) {
        loop->heap[i] = loop->heap[last];
        loop->heap[i]->heap_index = i;
        heap_fix(loop, i);
    }
    t->heap_index = 0;
}

void zm_timer_start(zm_loop_t *loop, zm_timer_t *t, uint64_t after_ms, zm_timer_cb cb)
{
    zm_timer_stop(loop, t);
    if (loop->heap_len + 1 >= loop->heap_cap) {
        /* Grows by doubling: allocation stops once the timer count peaks. */
        unsigned cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
        zm_timer_t **h = realloc(loop->heap, cap * sizeof(*h));
        if (!h)
            return; /* cannot arm; the caller sees zm_timer_armed() false */
        loop->heap = h;
        loop->heap_cap = cap;
    }
    t->deadline_ms = zm_now_ms() + after_ms;
    t->cb = cb;
    t->heap_index = ++loop->heap_len;
    loop->heap[t->heap_index] = t;
    heap_fix(loop, t->heap_index);
}

static void timers_run(zm_loop_t *loop)
{
    uint64_t now = zm_now_ms();
    /* Timers started by callbacks run no earlier than the next batch. */
    unsigned budget = loop->heap_len;
    while (budget-- && loop->heap_len && loop->heap[1]->deadline_ms <= now) {
        zm_timer_t *t = loop->heap[1];
        zm_timer_stop(loop, t);
        if (t->cb)
            t->cb(t);
    }
}

/* ---- post queue ---- */

static int efd_arm(zm_loop_t *loop)
{
    struct io_uring_sqe *sqe = zm__sqe(loop);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_read(sqe, loop->efd, &loop->efd_val, sizeof(loop->efd_val), 0);
    io_uring_sqe_set_data64(sqe, zm__op_ud(loop, loop->efd_op));
    return 0;
}

static void efd_poke(zm_loop_t *loop)
{
    uint64_t one = 1;
    ssize_t n = write(loop->efd, &one, sizeof(one));
    (void)n; /* only fails if the counter would overflow: awake anyway */
}

int zm_loop_post(zm_loop_t *loop, zm_post_cb fn, void *arg)
{
    struct post *p = malloc(sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->next = NULL;
    p->fn = fn;
    p->arg = arg;
    pthread_mutex_lock(&loop->post_mu);
    if (loop->post_tail)
        loop->post_tail->next = p;
    else
        loop->post_head = p;
    loop->post_tail = p;
    pthread_mutex_unlock(&loop->post_mu);
    efd_poke(loop);
    return 0;
}

static void posts_run(zm_loop_t *loop)
{
    pthread_mutex_lock(&loop->post_mu);
    struct post *p = loop->post_head;
    loop->post_head = loop->post_tail = NULL;
    pthread_mutex_unlock(&loop->post_mu);
    while (p) {
        struct post *next = p->next;
        if (!loop->destroying)
            p->fn(loop, p->arg);
        free(p);
        p = next;
    }
}

void zm_loop_stop(zm_loop_t *loop)
{
    atomic_store(&loop->stop, true);
    efd_poke(loop);
}

/* ---- set-up ---- */

static int ring_init(zm_loop_t *loop)
{
    static const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int rc = -EINVAL;
    for (size_t i = 0; i < ZM_ARRAY_LEN(tries); i++) {
        struct io_uring_params p = {0};
        /* Multishot ops post many CQEs per SQE: give the CQ room. */
        p.flags = tries[i] | IORING_SETUP_CQSIZE;
        p.cq_entries = loop->cfg.sq_entries * 4;
        rc = io_uring_queue_init_params(loop->cfg.sq_entries, &loop->ring, &p);
        if (rc != -EINVAL)
            return rc;
    }
    return rc;
}

int zm_loop_new(zm_loop_t **out, const zm_loop_config_t *cfg)
{
    *out = NULL;
    zm_loop_t *loop = calloc(1, sizeof(*loop));
    if (!loop)
        return -ENOMEM;
    if (cfg)
        loop->cfg = *cfg;
    zm_loop_config_defaults(&loop->cfg);
    zm_loop_config_t *c = &loop->cfg;
    if ((c->recv_buf_count & (c->recv_buf_count - 1)) || c->recv_buf_count > 32768 ||
        c->max_ops < 2 || c->max_ops > UINT32_MAX / 2) {
        free(loop);
        return -EINVAL;
    }
    loop->efd = -1;
    loop->op_free = OP_NONE;
    loop->sock_free = OP_NONE;
    pthread_mutex_init(&loop->post_mu, NULL);
    int rc = ring_init(loop);
    if (rc < 0) {
        pthread_mutex_destroy(&loop->post_mu);
        free(loop);
        return rc;
    }
    loop->wait_no_iowait = (loop->ring.features & IORING_FEAT_NO_IOWAIT) &&
                           (loop->ring.features & IORING_FEAT_EXT_ARG);
    loop->ops = calloc(c->max_ops, sizeof(*loop->ops));
    loop->socks = calloc(c->max_socks, sizeof(*loop->socks));
    if (!loop->ops || !loop->socks) {
        rc = -ENOMEM;
        goto fail;
    }
    for (uint32_t i = c->max_ops; i-- > 0;) {
        loop->ops[i].next_free = loop->op_free;
        loop->op_free = i;
    }
    /* Socket slots are handed out from sock_fresh upwards before any is
     * recycled, so calloc's pages stay untouched (not resident) until a
     * loop really holds that many sockets. */
    loop->sock_fresh = 0;
    loop->ops_used = 0;
    if ((rc = bufs_init(loop)) < 0)
        goto fail;
    /* Blocking: io_uring would answer a read on an O_NONBLOCK eventfd with
     * -EAGAIN instead of waiting for it to become readable. */
    loop->efd = eventfd(0, EFD_CLOEXEC);
    if (loop->efd < 0) {
        rc = -errno;
        goto fail;
    }
    loop->efd_op = zm__op_alloc(loop, OP_EVENTFD, loop);
    if ((rc = efd_arm(loop)) < 0)
        goto fail;
    *out = loop;
    return 0;
fail:
    zm_loop_destroy(&loop);
    return rc;
}

/* ---- dispatch ---- */

static void cqe_dispatch(zm_loop_t *loop, const struct io_uring_cqe *cqe)
{
    uint64_t ud = cqe->user_data;
    if (ud == UD_IGNORE)
        return;
    uint32_t idx = (uint32_t)(ud >> 32), gen = (uint32_t)ud;
    struct op *op = idx < loop->cfg.max_ops ? &loop->ops[idx] : NULL;
    bool stale = !op || gen != op->gen;
    if (stale && !(op && op->detached && gen == op->gen - 1)) {
        /* Nobody owns this CQE: release what it carries and count it. */
        loop->stale++;
        if (cqe->flags & IORING_CQE_F_BUFFER)
            zm__buf_recycle(loop, cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        return;
    }
    if (stale)
        loop->stale++;
    switch (op->kind) {
    case OP_EVENTFD:
        /* The counter is read (reset) by the CQE itself; posts may race in
         * after the swap below, but each one pokes the eventfd again. */
        posts_run(loop);
        if (loop->destroying || efd_arm(loop) < 0)
            zm__op_free(loop, idx);
        break;
    case OP_ACCEPT:
        zm__listener_cqe(loop, op, idx, cqe, stale);
        break;
    case OP_RECV:
    case OP_SEND:
    case OP_CONNECT:
    case OP_SHUTDOWN:
        zm__sock_cqe(loop, op, idx, cqe, stale);
        break;
    default:
        loop->stale++;
        break;
    }
}

static int cq_drain(zm_loop_t *loop)
{
    int n = 0;
    for (;;) {
        struct io_uring_cqe *cqe;
        unsigned head, batch = 0;
        io_uring_for_each_cqe(&loop->ring, head, cqe)
        {
            cqe_dispatch(loop, cqe);
            batch++;
        }
        if (!batch)
            return n;
        io_uring_cq_advance(&loop->ring, batch);
        n += (int)batch;
    }
}

/* A thread sleeping in io_uring with requests in flight counts as iowait
 * unless the wait says otherwise, and a proxy always has some (its
 * multishot accepts and receives): an idle ztunnel made its node look 100%
 * iowait, the usual alert, and cpufreq boosts for iowait. liburing 2.3 has
 * no way to pass IORING_ENTER_NO_IOWAIT, so this submits and waits with an
 * enter of its own; the SQ flush is liburing 2.3's (the SQ array is an
 * identity map set up at init, only the tail moves). ts NULL: no timeout. */
static int ring_wait(zm_loop_t *loop, struct __kernel_timespec *ts)
{
    struct io_uring_sq *sq = &loop->ring.sq;
    unsigned tail = sq->sqe_tail;
    if (sq->sqe_head != tail) {
        sq->sqe_head = tail;
        io_uring_smp_store_release(sq->ktail, tail);
    }
    unsigned submit = tail - *sq->khead;
    struct io_uring_getevents_arg arg = {.ts = (uint64_t)(uintptr_t)ts};
    unsigned flags = IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG | IORING_ENTER_NO_IOWAIT;
    long rc = syscall(__NR_io_uring_enter, loop->ring.ring_fd, submit, 1, flags, &arg, sizeof(arg));
    return rc < 0 ? -errno : (int)rc;
}

static bool work_pending(zm_loop_t *loop)
{
    return loop->ready_head || atomic_load(&loop->stop);
}

int zm_loop_run_once(zm_loop_t *loop, int timeout_ms)
{
    zm__run_ready(loop);
    int64_t wait = timeout_ms;
    if (loop->heap_len) {
        uint64_t now = zm_now_ms(), dl = loop->heap[1]->deadline_ms;
        int64_t left = dl > now ? (int64_t)(dl - now) : 0;
        if (wait < 0 || left < wait)
            wait = left;
    }
    if (work_pending(loop))
        wait = 0;
    int rc;
    struct io_uring_cqe *cqe = NULL;
    if (wait == 0) {
        rc = io_uring_submit_and_get_events(&loop->ring);
    } else if (loop->wait_no_iowait) {
        struct __kernel_timespec ts = {.tv_sec = wait / 1000, .tv_nsec = (wait % 1000) * 1000000};
        rc = ring_wait(loop, wait < 0 ? NULL : &ts);
    } else if (wait < 0) {
        rc = io_uring_submit_and_wait(&loop->ring, 1);
    } else {
        struct __kernel_timespec ts = {.tv_sec = wait / 1000, .tv_nsec = (wait % 1000) * 1000000};
        rc = io_uring_submit_and_wait_timeout(&loop->ring, &cqe, 1, &ts, NULL);
    }
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
        return rc;
    int n = cq_drain(loop);
    timers_run(loop);
    zm__run_ready(loop);
    return n;
}

int zm_loop_run(zm_loop_t *loop)
{
    int rc = 0;
    while (!atomic_load(&loop->stop)) {
        rc = zm_loop_run_once(loop, -1);
        if (rc < 0)
            break;
        rc = 0;
    }
    atomic_store(&loop->stop, false);
    return rc;
}

bool zm_loop_waits_without_iowait(const zm_loop_t *loop)
{
    return loop->wait_no_iowait;
}

unsigned zm_loop_ops_in_flight(const zm_loop_t *loop)
{
    return loop->ops_used;
}

unsigned zm_loop_socks_open(const zm_loop_t *loop)
{
    return loop->socks_open;
}

uint64_t zm_loop_stale_completions(const zm_loop_t *loop)
{
    return loop->stale;
}

/* ---- teardown ---- */

/* Cancels everything and reaps CQEs until no op references our memory. */
static void quiesce(zm_loop_t *loop)
{
    loop->destroying = true;
    zm__close_all(loop);
    struct io_uring_sqe *sqe = zm__sqe(loop);
    if (sqe) {
        io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        io_uring_sqe_set_data64(sqe, UD_IGNORE);
    }
    for (int i = 0; i < 200 && loop->ops_used; i++) {
        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000000};
        struct io_uring_cqe *cqe;
        io_uring_submit_and_wait_timeout(&loop->ring, &cqe, 1, &ts, NULL);
        cq_drain(loop);
        zm__run_ready(loop);
    }
    zm__free_all(loop);
}

void zm_loop_destroy(zm_loop_t **pl)
{
    zm_loop_t *loop = *pl;
    if (!loop)
        return;
    *pl = NULL;
    if (loop->ring.ring_fd >= 0 && loop->ops)
        quiesce(loop);
    if (loop->br_registered)
        io_uring_unregister_buf_ring(&loop->ring, 0);
    if (loop->ring.ring_fd >= 0)
        io_uring_queue_exit(&loop->ring);
    if (loop->efd >= 0)
        close(loop->efd);
    posts_run(loop); /* frees undelivered posts */
    while (loop->chunk_free) {
        struct chunk *c = loop->chunk_free;
        loop->chunk_free = c->next;
        free(c);
    }
    if (loop->br)
        munmap(loop->br, loop->br_bytes);
    free(loop->bufs);
    free(loop->held_next);
    free(loop->held_len);
    free(loop->heap);
    free(loop->ops);
    free(loop->socks);
    pthread_mutex_destroy(&loop->post_mu);
    free(loop);
}
