/*
 * hbone_pool.c — the per-worker pool of HBONE client connections, keyed by
 * (source identity, destination identity, next hop, source IP) as Istio's
 * ztunnel keys its pool: a stream goes on a live connection with the same
 * key and room for it (max_streams_per_conn, and the peer's limit), else on
 * a new one. A connection without streams for idle_timeout_ms drains.
 *
 * Threading: the loop's thread only.
 */
#include "hbone_io_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- pool bookkeeping ---- */

void zm__hbc_pool_unlink(zm_hbc_t *c)
{
    zm_hbone_pool_t *p = c->pool;
    if (!p)
        return;
    if (c->pool_prev)
        c->pool_prev->pool_next = c->pool_next;
    else
        p->head = c->pool_next;
    if (c->pool_next)
        c->pool_next->pool_prev = c->pool_prev;
    c->pool_next = c->pool_prev = NULL;
    c->pool = NULL;
    p->n_conns--;
    zm_timer_stop(c->loop, &c->idle_timer);
}

static void idle_expired(zm_timer_t *t)
{
    zm_hbc_t *c = ZM_CONTAINER_OF(t, zm_hbc_t, idle_timer);
    if (c->n_streams == 0)
        zm_hbc_drain(c);
}

void zm__hbc_pool_note_activity(zm_hbc_t *c)
{
    if (!c->pool)
        return;
    /* Our own count: nghttp2 still counts a stream inside its close callback. */
    if (c->n_streams == 0 && !(c->flags & ZM_HBC_CLOSING))
        zm_timer_start(c->loop, &c->idle_timer, c->pool->cfg.idle_timeout_ms, idle_expired);
    else
        zm_timer_stop(c->loop, &c->idle_timer);
}

/* ---- pool ---- */

int zm_hbone_pool_new(zm_hbone_pool_t **out, zm_loop_t *loop, const zm_hbone_pool_config_t *cfg)
{
    zm_hbone_pool_t *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->loop = loop;
    if (cfg)
        p->cfg = *cfg;
    if (!p->cfg.max_streams_per_conn)
        p->cfg.max_streams_per_conn = 100;
    if (!p->cfg.idle_timeout_ms)
        p->cfg.idle_timeout_ms = 300000;
    if (!p->cfg.settings.stream_window)
        zm_hbone_settings_defaults(&p->cfg.settings, false);
    *out = p;
    return 0;
}

void zm_hbone_pool_free(zm_hbone_pool_t **pp)
{
    zm_hbone_pool_t *p = *pp;
    if (!p)
        return;
    while (p->head) {
        zm_hbc_t *c = p->head;
        zm__hbc_pool_unlink(c);
        zm_hbc_close(c, "pool closed");
    }
    free(p);
    *pp = NULL;
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b,
                      bool with_port)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_addr.s_addr == y->sin_addr.s_addr &&
               (!with_port || x->sin_port == y->sin_port);
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) &&
               (!with_port || x->sin6_port == y->sin6_port);
    }
    return a->ss_family == AF_UNSPEC;
}

static bool key_matches(const zm_hbc_t *c, const zm_hbone_pool_key_t *k)
{
    return !strcmp(c->src_id, k->src_id ? k->src_id : "") &&
           !strcmp(c->dst_id, k->dst_id ? k->dst_id : "") &&
           same_addr(&c->next_hop, &k->next_hop, true) && same_addr(&c->src_ip, &k->src_ip, false);
}

static socklen_t addr_len(const struct sockaddr_storage *a)
{
    return a->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

int zm_hbone_pool_open(zm_hbone_pool_t *p, const zm_hbone_pool_key_t *key, zm_tls_ctx_t *tls,
                       const char *authority, const zm_hbone_header_t *headers, size_t n_headers,
                       void *stream_ctx, zm_hbone_stream_t **out_stream)
{
    for (zm_hbc_t *c = p->head; c; c = c->pool_next) {
        if (c->flags & (ZM_HBC_CLOSING | ZM_HBC_DRAINING) || !key_matches(c, key))
            continue;
        if (zm_hbone_active_streams(c->h2) >= p->cfg.max_streams_per_conn ||
            !zm_hbone_can_open(c->h2))
            continue;
        zm_hbone_stream_t *s = zm_hbc_open(c, authority, headers, n_headers, stream_ctx);
        if (s) {
            *out_stream = s;
            return 0;
        }
    }
    int fd = -1;
    if (p->cfg.make_socket) {
        fd = p->cfg.make_socket(key, p->cfg.make_socket_arg);
        if (fd < 0)
            return fd;
    }
    zm_hbc_t *c;
    int r =
        zm__hbc_connect(&c, p->loop, fd, (const struct sockaddr *)&key->next_hop,
                        addr_len(&key->next_hop), tls, NULL, &p->cfg.settings, NULL, NULL, p, key);
    if (r < 0)
        return r;
    zm_hbone_stream_t *s = zm_hbc_open(c, authority, headers, n_headers, stream_ctx);
    if (!s) {
        zm_hbc_close(c, "stream open failed");
        return -ENOBUFS;
    }
    *out_stream = s;
    return 0;
}

unsigned zm_hbone_pool_conns(const zm_hbone_pool_t *p)
{
    return p->n_conns;
}

void zm_hbone_pool_drain(zm_hbone_pool_t *p)
{
    while (p->head)
        zm_hbc_drain(p->head); /* unlinks itself */
}
