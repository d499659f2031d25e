/*
 * worker.c — one ztunnel worker: its loop, its HBONE client pool and, for
 * every enrolled local pod, its own three listeners inside the pod's network
 * namespace (SO_REUSEPORT spreads a pod's connections over the workers).
 *
 * The control thread creates the listening sockets (it is the one that may
 * switch namespaces freely) and posts them here; a worker adopts them and
 * owns them until the pod is removed. Connections hold a reference on their
 * pod, not on the worker's listener set, so removing a pod stops new
 * connections and lets open ones finish.
 */
#include "zt.h"
#include "zt_proxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

zt_pod_t *zt_pod_ref(zt_pod_t *p)
{
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    return p;
}

void zt_pod_unref(zt_pod_t **pp)
{
    zt_pod_t *p = *pp;
    *pp = NULL;
    if (p && atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1) {
        if (p->netns_fd >= 0)
            close(p->netns_fd);
        free(p);
    }
}

/* The socket for a new pooled HBONE connection: inside the source pod's
 * namespace, so it leaves with the pod's IP (Istio keys its pool on it). */
static int pool_socket(const zm_hbone_pool_key_t *key, void *arg)
{
    zt_worker_t *w = arg;
    const struct sockaddr_in *src = (const struct sockaddr_in *)&key->src_ip;
    for (zt_wpod_t *wp = w->pods; wp; wp = wp->next) {
        if (wp->pod->ip.s_addr != src->sin_addr.s_addr)
            continue;
        const zm_config_t *cfg = zm_config_slot_acquire(w->d->config);
        int fd = zt_netns_socket(wp->pod->netns_fd, w->d->host_netns_fd, SOCK_STREAM,
                                 cfg->tcp.mesh_congestion);
        zm_config_release(&cfg);
        return fd;
    }
    return -ENOENT;
}

int zt_worker_init(zm_loop_t *loop, unsigned idx, void *arg)
{
    zt_daemon_t *d = arg;
    zt_worker_t *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->d = d;
    w->loop = loop;
    w->idx = idx;
    w->trace_state = zm_now_ns() ^ ((uint64_t)(idx + 1) << 48) ^ (uint64_t)(uintptr_t)w;
    const zm_config_t *cfg = zm_config_slot_acquire(d->config);
    zm_hbone_pool_config_t pc = {
        .max_streams_per_conn = cfg->limits.max_streams_per_conn,
        .idle_timeout_ms = cfg->hbone.pool_idle_timeout_ms,
        .make_socket = pool_socket,
        .make_socket_arg = w,
    };
    zm_hbone_settings_defaults(&pc.settings, false);
    pc.settings.stream_window = cfg->hbone.stream_window;
    pc.settings.conn_window = cfg->hbone.conn_window;
    zm_config_release(&cfg);
    int r = zm_hbone_pool_new(&w->pool, loop, &pc);
    if (r < 0) {
        free(w);
        return r;
    }
    d->worker[idx] = w;
    return 0;
}

static void wpod_close(zt_wpod_t *wp)
{
    zm_listener_close(&wp->outbound);
    zm_listener_close(&wp->inbound_plain);
    zm_listener_close(&wp->hbone);
    zt_pod_unref(&wp->pod);
    free(wp);
}

void zt_worker_drain(zm_loop_t *loop, unsigned idx, void *arg)
{
    zt_daemon_t *d = arg;
    zt_worker_t *w = d->worker[idx];
    /* No new connections; open ones finish (the pool's end with GOAWAY). */
    while (w->pods) {
        zt_wpod_t *wp = w->pods;
        w->pods = wp->next;
        wpod_close(wp);
    }
    zm_hbone_pool_drain(w->pool);
}

void zt_worker_fini(zm_loop_t *loop, unsigned idx, void *arg)
{
    zt_daemon_t *d = arg;
    zt_worker_t *w = d->worker[idx];
    if (!w)
        return;
    while (w->pods) {
        zt_wpod_t *wp = w->pods;
        w->pods = wp->next;
        wpod_close(wp);
    }
    zm_hbone_pool_free(&w->pool);
    free(w);
    d->worker[idx] = NULL;
}

/* ---- pods come and go (posted from the control thread) ---- */

typedef struct pod_msg {
    zt_daemon_t *d;
    zt_pod_t *pod; /* a reference owned by the message */
    int fds[3];    /* outbound, inbound plaintext, HBONE; -1 when absent */
    bool remove;
} pod_msg_t;

static void adopt(zm_loop_t *loop, zm_listener_t **l, int *fd, zm_accept_cb cb, void *ctx)
{
    if (*fd < 0)
        return;
    if (zm_listener_adopt(l, loop, *fd, cb, ctx) < 0)
        close(*fd);
    *fd = -1;
}

static void on_pod_msg(zm_loop_t *loop, void *arg)
{
    pod_msg_t *m = arg;
    zt_worker_t *w = NULL;
    for (unsigned i = 0; i < m->d->n_workers; i++)
        if (m->d->worker[i] && m->d->worker[i]->loop == loop)
            w = m->d->worker[i];
    if (w && m->remove) {
        for (zt_wpod_t **pp = &w->pods; *pp; pp = &(*pp)->next) {
            if ((*pp)->pod == m->pod) {
                zt_wpod_t *wp = *pp;
                *pp = wp->next;
                wpod_close(wp);
                break;
            }
        }
    } else if (w) {
        zt_wpod_t *wp = calloc(1, sizeof(*wp));
        if (wp) {
            wp->w = w;
            wp->pod = zt_pod_ref(m->pod);
            adopt(loop, &wp->outbound, &m->fds[0], zt_outbound_accept, wp);
            adopt(loop, &wp->inbound_plain, &m->fds[1], zt_inbound_plain_accept, wp);
            adopt(loop, &wp->hbone, &m->fds[2], zt_inbound_accept, wp);
            wp->next = w->pods;
            w->pods = wp;
        }
    }
    for (int i = 0; i < 3; i++)
        if (m->fds[i] >= 0)
            close(m->fds[i]);
    zt_pod_unref(&m->pod);
    free(m);
}

int zt_workers_add_pod(zt_daemon_t *d, zt_pod_t *p)
{
    const zm_config_t *cfg = zm_config_slot_acquire(d->config);
    uint16_t ports[3] = {cfg->listen.outbound, cfg->listen.inbound_plain, cfg->listen.hbone};
    zt_congestion_t cc;
    zt_congestion_of(&cc, cfg);
    /* Only captured outbound comes from this pod; plaintext inbound and
     * HBONE arrive from other nodes. */
    const char *port_cc[3] = {cc.pod, cc.mesh, cc.mesh};
    zm_config_release(&cfg);
    int r = 0;
    for (unsigned i = 0; i < d->n_workers && r == 0; i++) {
        pod_msg_t *m = calloc(1, sizeof(*m));
        if (!m)
            return -ENOMEM;
        m->d = d;
        m->pod = zt_pod_ref(p);
        for (int k = 0; k < 3; k++) {
            m->fds[k] = ports[k]
                            ? zt_netns_listen(p->netns_fd, d->host_netns_fd, ports[k], port_cc[k])
                            : -1;
            if (ports[k] && m->fds[k] < 0 && r == 0)
                r = m->fds[k];
        }
        zm_loop_t *loop = d->worker[i]->loop;
        if (zm_loop_post(loop, on_pod_msg, m) < 0) {
            for (int k = 0; k < 3; k++)
                if (m->fds[k] >= 0)
                    close(m->fds[k]);
            zt_pod_unref(&m->pod);
            free(m);
            r = -ENOMEM;
        }
    }
    return r;
}

int zt_workers_remove_pod(zt_daemon_t *d, zt_pod_t *p)
{
    for (unsigned i = 0; i < d->n_workers; i++) {
        pod_msg_t *m = calloc(1, sizeof(*m));
        if (!m)
            return -ENOMEM;
        m->d = d;
        m->pod = zt_pod_ref(p);
        m->fds[0] = m->fds[1] = m->fds[2] = -1;
        m->remove = true;
        if (zm_loop_post(d->worker[i]->loop, on_pod_msg, m) < 0) {
            zt_pod_unref(&m->pod);
            free(m);
            return -ENOMEM;
        }
    }
    return 0;
}

static void on_recheck(zm_loop_t *loop, void *arg)
{
    zt_daemon_t *d = arg;
    for (unsigned i = 0; i < d->n_workers; i++)
        if (d->worker[i] && d->worker[i]->loop == loop)
            zt_worker_recheck(d->worker[i]);
}

int zt_workers_recheck(zt_daemon_t *d)
{
    int r = 0;
    for (unsigned i = 0; i < d->n_workers; i++)
        if (zm_loop_post(d->worker[i]->loop, on_recheck, d) < 0)
            r = -ENOMEM;
    return r;
}
