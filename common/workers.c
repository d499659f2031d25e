/*
 * workers.c — worker threads with one loop each, start-up handshake,
 * graceful drain and signal waiting.
 *
 * A worker's loop exists only while its thread runs: the thread creates it,
 * and destroys it after zm_loop_run returns. The main thread touches a loop
 * (post, stop) only under w->mu while the worker's `live` flag is set; the
 * worker clears it under the same lock before destroying the loop.
 *
 * Draining: a posted callback runs the daemon's drain hook, then a 10 ms
 * check timer on the worker's loop stops it once the worker is idle (it said
 * so, or no socket is open) or the grace deadline has passed.
 */
#include "workers.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

struct worker {
    zm_workers_t *w;
    unsigned idx;
    pthread_t tid;
    bool started;
    zm_loop_t *loop;
    bool live;
    bool idle;
    bool draining;
    uint64_t deadline_ms;
    zm_timer_t check;
};

struct zm_workers {
    zm_workers_config_t cfg;
    unsigned count;
    struct worker *ws;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned ready;
    int err;
};

static __thread struct worker *tls_worker;

static void drain_check(zm_timer_t *t)
{
    struct worker *wk = ZM_CONTAINER_OF(t, struct worker, check);
    if (wk->idle || zm_loop_socks_open(wk->loop) == 0 || zm_now_ms() >= wk->deadline_ms)
        zm_loop_stop(wk->loop);
    else
        zm_timer_start(wk->loop, &wk->check, 10, drain_check);
}

static void drain_post(zm_loop_t *loop, void *arg)
{
    struct worker *wk = arg;
    if (wk->draining)
        return;
    wk->draining = true;
    if (wk->w->cfg.drain)
        wk->w->cfg.drain(loop, wk->idx, wk->w->cfg.arg);
    drain_check(&wk->check);
}

void zm_workers_worker_idle(zm_loop_t *loop)
{
    struct worker *wk = tls_worker;
    if (!wk || wk->loop != loop)
        return;
    wk->idle = true;
    if (wk->draining)
        zm_loop_stop(loop);
}

static void *worker_main(void *arg)
{
    struct worker *wk = arg;
    zm_workers_t *w = wk->w;
    tls_worker = wk;
    zm_loop_t *loop = NULL;
    int rc = zm_loop_new(&loop, &w->cfg.loop);
    if (rc == 0 && w->cfg.init)
        rc = w->cfg.init(loop, wk->idx, w->cfg.arg);
    pthread_mutex_lock(&w->mu);
    wk->loop = loop;
    wk->live = rc == 0;
    if (rc < 0 && !w->err)
        w->err = rc;
    w->ready++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (rc == 0)
        zm_loop_run(loop);
    if (loop && w->cfg.fini)
        w->cfg.fini(loop, wk->idx, w->cfg.arg);
    pthread_mutex_lock(&w->mu);
    wk->live = false;
    pthread_mutex_unlock(&w->mu);
    if (loop)
        zm_timer_stop(loop, &wk->check);
    zm_loop_destroy(&loop);
    tls_worker = NULL;
    return NULL;
}

static void stop_all(zm_workers_t *w)
{
    pthread_mutex_lock(&w->mu);
    for (unsigned i = 0; i < w->count; i++)
        if (w->ws[i].live)
            zm_loop_stop(w->ws[i].loop);
    pthread_mutex_unlock(&w->mu);
}

static void join_all(zm_workers_t *w)
{
    for (unsigned i = 0; i < w->count; i++) {
        if (w->ws[i].started) {
            pthread_join(w->ws[i].tid, NULL);
            w->ws[i].started = false;
        }
    }
}

int zm_workers_start(zm_workers_t **out, const zm_workers_config_t *cfg)
{
    *out = NULL;
    zm_workers_t *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->cfg = *cfg;
    w->count = cfg->count;
    if (!w->count) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        w->count = n > 0 ? (unsigned)n : 1;
    }
    w->ws = calloc(w->count, sizeof(*w->ws));
    if (!w->ws) {
        free(w);
        return -ENOMEM;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    /* Threads inherit the mask: keep termination signals for main. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    unsigned started = 0;
    int rc = 0;
    for (unsigned i = 0; i < w->count; i++) {
        struct worker *wk = &w->ws[i];
        wk->w = w;
        wk->idx = i;
        rc = -pthread_create(&wk->tid, NULL, worker_main, wk);
        if (rc < 0)
            break;
        wk->started = true;
        started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_mutex_lock(&w->mu);
    while (w->ready < started)
        pthread_cond_wait(&w->cv, &w->mu);
    if (!rc)
        rc = w->err;
    pthread_mutex_unlock(&w->mu);
    if (rc < 0) {
        zm_workers_destroy(&w);
        return rc;
    }
    *out = w;
    return 0;
}

unsigned zm_workers_count(const zm_workers_t *w)
{
    return w->count;
}

void zm_workers_drain(zm_workers_t *w, unsigned grace_ms)
{
    uint64_t deadline = zm_now_ms() + grace_ms;
    pthread_mutex_lock(&w->mu);
    for (unsigned i = 0; i < w->count; i++) {
        struct worker *wk = &w->ws[i];
        if (!wk->live)
            continue;
        wk->deadline_ms = deadline; /* read on the worker after the post */
        if (zm_loop_post(wk->loop, drain_post, wk) < 0)
            zm_loop_stop(wk->loop);
    }
    pthread_mutex_unlock(&w->mu);
    join_all(w);
}

void zm_workers_destroy(zm_workers_t **pw)
{
    zm_workers_t *w = *pw;
    if (!w)
        return;
    *pw = NULL;
    stop_all(w);
    join_all(w);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w->ws);
    free(w);
}

int zm_workers_wait_signal(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    int rc = pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (rc)
        return -rc;
    int sig = 0;
    rc = sigwait(&set, &sig);
    return rc ? -rc : sig;
}
