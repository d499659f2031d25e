/*
 * workers.h — N worker threads, each running its own zm_loop.
 *
 * Each worker creates its loop on its own thread (the ring is bound to its
 * creator), calls init there (where a daemon opens its SO_REUSEPORT
 * listeners), then runs the loop until drained or destroyed. Worker threads
 * start with SIGTERM/SIGINT blocked so those signals reach the main thread,
 * which waits for them with zm_workers_wait_signal().
 *
 * Threading: the zm_workers_* functions are called from the thread that
 * started the workers, except zm_workers_worker_idle(), which a worker calls
 * on its own loop thread.
 */
#ifndef ZM_WORKERS_H
#define ZM_WORKERS_H

#include "loop.h"

typedef struct zm_workers zm_workers_t;

/* On the worker's thread, before its loop runs; < 0 aborts the start. */
typedef int (*zm_worker_init_cb)(zm_loop_t *loop, unsigned worker_index, void *arg);
/* On the worker's thread when draining starts: close listeners, let
 * connections finish, then call zm_workers_worker_idle(loop). */
typedef void (*zm_worker_drain_cb)(zm_loop_t *loop, unsigned worker_index, void *arg);
/* On the worker's thread after its loop stopped, before it is destroyed. */
typedef void (*zm_worker_fini_cb)(zm_loop_t *loop, unsigned worker_index, void *arg);

typedef struct zm_workers_config {
    unsigned count; /* 0 = number of online CPUs */
    zm_loop_config_t loop;
    zm_worker_init_cb init;
    zm_worker_drain_cb drain; /* may be NULL */
    zm_worker_fini_cb fini;   /* may be NULL */
    void *arg;
} zm_workers_config_t;

/* Starts the threads and waits until every init returned. On failure all
 * workers are stopped and joined and the first error is returned. */
int zm_workers_start(zm_workers_t **out, const zm_workers_config_t *cfg);
unsigned zm_workers_count(const zm_workers_t *w);

/* Posts drain to every loop; a loop stops once it reports idle
 * (zm_workers_worker_idle, or no socket open) or grace_ms passed. Blocks
 * until every worker thread has exited. */
void zm_workers_drain(zm_workers_t *w, unsigned grace_ms);
/* Called on a worker's loop thread: this worker has nothing left to do. */
void zm_workers_worker_idle(zm_loop_t *loop);

/* Stops every loop at once (no drain), joins and frees. */
void zm_workers_destroy(zm_workers_t **w);

/* Blocks SIGTERM and SIGINT in the calling thread and waits for one;
 * returns the signal number or -errno. */
int zm_workers_wait_signal(void);

#endif
