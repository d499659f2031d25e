/*
 * inbound.c — traffic arriving at a local pod. On 15008 (HBONE): mTLS with
 * the pod's own certificate, a client certificate of our trust domain
 * required (tls.c), then per CONNECT: the method, the :authority (must be
 * this pod's address: Istio's IPMismatch rule), authorization, and a
 * connection to the application from inside the pod. Answers as Istio's
 * ztunnel: 400 bad request, 401 denied by policy, 503 unknown workload or
 * the application refusing. On 15006 (plaintext from outside the mesh):
 * spliced to the application when PeerAuthentication allows it.
 */
#include "capture.h"
#include "rbac.h"
#include "report.h"
#include "splice.h"
#include "tunnel.h"
#include "zt_proxy.h"

#include "log.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One inbound HBONE connection: keeps its pod alive while it lasts. */
typedef struct in_conn {
    zt_worker_t *w;
    zt_pod_t *pod;
    struct sockaddr_in peer; /* the source pod's address (it dials from its netns) */
} in_conn_t;

static void refuse(zm_hbone_stream_t *s, int status, const in_conn_t *ic, const char *why,
                   const char *authority)
{
    zm_log_ctx_t lc = {.worker = -1, .conn_id = -1, .action = "inbound HBONE"};
    zm_log_ratelimited(ZM_LOG_WARN, &lc, "inbound refused", "%s/%s: CONNECT %s: %d %s", ic->pod->ns,
                       ic->pod->name, authority ? authority : "-", status, why);
    zm_hbone_respond(s, status, NULL, 0);
}

/* A socket to the application from inside the pod, bound to the client's
 * own address (IP_TRANSPARENT; capture.h routes the replies back to us), so
 * the application sees who really called, as with Istio. The source port
 * must differ from avoid_port: for plaintext the client's original
 * connection to the same address and port is still in conntrack (it was
 * redirected to 15006), and reusing its tuple would redirect us too. */
static int app_socket(const zt_pod_t *pod, int host_nsfd, const struct sockaddr_in *client,
                      uint16_t avoid_port, const char *congestion)
{
    struct sockaddr_in src = *client;
    if (!avoid_port) {
        src.sin_port = 0; /* chosen at connect time */
        return zt_netns_connect_socket(pod->netns_fd, host_nsfd, &src, true, congestion);
    }
    for (int attempt = 0; attempt < 16; attempt++) {
        uint16_t port = (uint16_t)(32768 + (avoid_port + 7919u * (attempt + 1)) % 28000);
        if (port == avoid_port)
            continue;
        src.sin_port = htons(port);
        int fd = zt_netns_connect_socket(pod->netns_fd, host_nsfd, &src, true, congestion);
        if (fd != -EADDRINUSE)
            return fd;
    }
    return -EADDRINUSE;
}

/* ---- admitted connections, kept for re-checks ---- */

static zt_inconn_t *inconn_new(zt_worker_t *w, zt_pod_t *pod, const char *src_id,
                               const struct sockaddr_in *src, const struct sockaddr_in *dst)
{
    zt_inconn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->w = w;
    c->pod = zt_pod_ref(pod);
    snprintf(c->src_id, sizeof(c->src_id), "%s", src_id ? src_id : "");
    if (src)
        c->src = *src;
    c->dst = *dst;
    c->next = w->inbound;
    if (w->inbound)
        w->inbound->prev = c;
    w->inbound = c;
    return c;
}

static void inconn_free(zt_inconn_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        c->w->inbound = c->next;
    if (c->next)
        c->next->prev = c->prev;
    zt_pod_unref(&c->pod);
    free(c);
}

/* Judges c under cfg (the same facts as at admission). */
static bool inconn_allowed(const zm_config_t *cfg, const zt_inconn_t *c, const char **why)
{
    zm_rbac_conn_t rc = {.src_identity = c->src_id[0] ? c->src_id : NULL,
                         .dst_port = ntohs(c->dst.sin_port),
                         .dst = zm_config_find_workload(cfg, c->pod->uid)};
    zm_rbac_ip_from_sockaddr((const struct sockaddr *)&c->src, &rc.src_ip);
    zm_rbac_ip_from_sockaddr((const struct sockaddr *)&c->dst, &rc.dst_ip);
    zm_rbac_verdict_t v = {0};
    bool ok = rc.dst && zm_rbac_check(cfg, &rc, &v) == 0 && v.allow;
    *why = v.reason ? v.reason : "workload no longer in the mesh";
    return ok;
}

void zt_worker_recheck(zt_worker_t *w)
{
    const zm_config_t *cfg = zm_config_slot_acquire(w->d->config);
    for (zt_inconn_t *c = w->inbound, *next; c; c = next) {
        next = c->next; /* an abort may end (and free) c at once */
        const char *why;
        if (inconn_allowed(cfg, c, &why))
            continue;
        zm_log_ctx_t lc = {.worker = (int)w->idx, .conn_id = -1, .action = "policy re-check"};
        zm_log(ZM_LOG_INFO, &lc, "%s/%s: closing a connection from %s: %s", c->pod->ns,
               c->pod->name, c->src_id[0] ? c->src_id : "plaintext", why);
        if (c->tunnel)
            zm_tunnel_abort(c->tunnel, "denied by policy change");
        else if (c->splice)
            zm_splice_abort(c->splice, "denied by policy change");
    }
    zm_config_release(&cfg);
}

static void stream_done(zm_tunnel_t *t, const zm_tunnel_stats_t *st, void *ctx)
{
    zt_inconn_t *c = ctx;
    /* Reporter destination: sent = towards the client, received = from it. */
    zt_telemetry_bytes(c->tc, st->bytes_to_stream, st->bytes_from_stream);
    zt_telemetry_close(&c->tc, st->error && st->status != 200 ? "CONNECT" : "-", st->error);
    inconn_free(c);
}

static void on_request(zm_hbc_t *c, zm_hbone_stream_t *s, const zm_hbone_request_t *req)
{
    in_conn_t *ic = zm_hbc_ctx(c);
    struct sockaddr_in target;
    if (!req->method || strcmp(req->method, "CONNECT") != 0) {
        refuse(s, 400, ic, "method is not CONNECT", req->authority);
        return;
    }
    if (zm_parse_ipv4_port(req->authority, &target) < 0) {
        refuse(s, 400, ic, "bad authority", req->authority);
        return;
    }
    /* Istio lets a waypoint through with another :authority (the service
     * VIP it serves, in its "sandwich" mode). zmesh's waypoints terminate
     * HBONE on their own 15008 and are never enrolled here (DESIGN.md), so
     * every workload captured by this ztunnel is the target itself. */
    if (target.sin_addr.s_addr != ic->pod->ip.s_addr) {
        refuse(s, 400, ic, "destination is not this workload", req->authority);
        return;
    }
    const zm_spiffe_id_t *peer_id = zm_hbc_peer_id(c);
    const zm_config_t *cfg = zm_config_slot_acquire(ic->w->d->config);
    const zm_config_workload_t *dst = zm_config_find_workload(cfg, ic->pod->uid);
    char peer_ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &ic->peer.sin_addr, peer_ip, sizeof(peer_ip));
    const zm_config_workload_t *src = zm_config_find_workload_by_address(cfg, peer_ip);
    zt_conn_labels_t labels;
    zt_report_bufs_t bufs;
    zt_report_labels(&labels, &bufs, cfg, false, src, peer_id ? peer_id->uri : NULL, dst, NULL,
                     true);
    zt_conn_addrs_t addrs = {.src_addr = peer_ip, .dst_addr = req->authority};
    zm_rbac_conn_t rc = {.src_identity = peer_id ? peer_id->uri : NULL,
                         .dst_port = ntohs(target.sin_port),
                         .dst = dst};
    zm_rbac_ip_from_sockaddr((const struct sockaddr *)&ic->peer, &rc.src_ip);
    zm_rbac_ip_from_sockaddr((const struct sockaddr *)&target, &rc.dst_ip);
    zm_rbac_verdict_t v = {0};
    if (!dst || zm_rbac_check(cfg, &rc, &v) < 0 || !v.allow) {
        zt_tcp_conn_t *tc = zt_telemetry_open(ic->w->d->telemetry, &labels, &addrs);
        zt_telemetry_close(&tc, "DENY", v.reason ? v.reason : "unknown workload");
        zm_config_release(&cfg);
        refuse(s, dst ? 401 : 503, ic, v.reason ? v.reason : "unknown workload", req->authority);
        return;
    }
    zt_tcp_conn_t *tc = zt_telemetry_open(ic->w->d->telemetry, &labels, &addrs);
    zt_congestion_t cc;
    zt_congestion_of(&cc, cfg);
    zm_config_release(&cfg);
    zt_inconn_t *rec =
        inconn_new(ic->w, ic->pod, peer_id ? peer_id->uri : NULL, &ic->peer, &target);
    int fd = rec ? app_socket(ic->pod, ic->w->d->host_netns_fd, &ic->peer, 0, cc.pod) : -ENOMEM;
    if (rec)
        rec->tc = tc;
    if (fd < 0 || zm_tunnel_server(&rec->tunnel, s, fd, (struct sockaddr *)&target, sizeof(target),
                                   stream_done, rec) < 0) {
        zt_telemetry_close(&tc, "CONNECT", "cannot reach the application");
        if (rec)
            inconn_free(rec);
        refuse(s, 503, ic, "cannot reach the application", req->authority);
    }
}

static void on_close(zm_hbc_t *c, const char *reason)
{
    in_conn_t *ic = zm_hbc_ctx(c);
    zt_pod_unref(&ic->pod);
    free(ic);
}

static const zm_hbc_handlers_t inbound_handlers = {
    .on_request = on_request,
    .on_close = on_close,
};

void zt_inbound_accept(zm_listener_t *l, int fd, const struct sockaddr *peer, socklen_t len,
                       void *ctx)
{
    zt_wpod_t *wp = ctx;
    zt_worker_t *w = wp->w;
    zm_err_t err = {0};
    zm_tls_ctx_t *tls =
        zt_certs_get(w->d->certs, wp->pod->ns, wp->pod->service_account, true, &err);
    in_conn_t *ic = calloc(1, sizeof(*ic));
    if (!tls || !ic) {
        zm_log_ctx_t lc = {.worker = -1, .conn_id = -1, .action = "inbound HBONE"};
        zm_log_ratelimited(ZM_LOG_WARN, &lc, "no certificate", "%s/%s: no certificate: %s",
                           wp->pod->ns, wp->pod->name, err.msg);
        free(ic);
        zm_tls_ctx_unref(&tls);
        close(fd);
        return;
    }
    ic->w = w;
    ic->pod = zt_pod_ref(wp->pod);
    if (peer && peer->sa_family == AF_INET)
        memcpy(&ic->peer, peer, sizeof(ic->peer));
    const zm_config_t *cfg = zm_config_slot_acquire(w->d->config);
    zm_hbone_settings_t hs;
    zm_hbone_settings_defaults(&hs, true);
    hs.stream_window = cfg->hbone.stream_window;
    hs.conn_window = cfg->hbone.conn_window;
    zm_config_release(&cfg);
    if (zm_hbc_accept(NULL, w->loop, fd, tls, &hs, &inbound_handlers, ic) < 0) {
        zt_pod_unref(&ic->pod);
        free(ic);
    }
    zm_tls_ctx_unref(&tls);
}

static void plain_done(zm_splice_t *sp, const zm_splice_stats_t *st, void *ctx)
{
    inconn_free(ctx);
}

void zt_inbound_plain_accept(zm_listener_t *l, int fd, const struct sockaddr *peer, socklen_t len,
                             void *ctx)
{
    zt_wpod_t *wp = ctx;
    zt_worker_t *w = wp->w;
    struct sockaddr_in dst;
    zm_sock_t *sock = NULL;
    static const zm_sock_handlers_t none = {0};
    if (zt_orig_dst(fd, &dst) < 0 || zm_sock_wrap(&sock, w->loop, fd, &none, NULL) < 0) {
        close(fd);
        return;
    }
    /* Plaintext has no identity: STRICT PeerAuthentication (a DENY of
     * "no principal") refuses it here, as Istio's inbound passthrough. */
    const zm_config_t *cfg = zm_config_slot_acquire(w->d->config);
    zm_rbac_conn_t rc = {.dst_port = ntohs(dst.sin_port),
                         .dst = zm_config_find_workload(cfg, wp->pod->uid)};
    zm_rbac_ip_from_sockaddr(peer, &rc.src_ip);
    zm_rbac_ip_from_sockaddr((const struct sockaddr *)&dst, &rc.dst_ip);
    zm_rbac_verdict_t v = {0};
    bool allowed = rc.dst && zm_rbac_check(cfg, &rc, &v) == 0 && v.allow;
    zt_congestion_t cc;
    zt_congestion_of(&cc, cfg);
    zm_config_release(&cfg);
    if (!allowed) {
        zm_log_ctx_t lc = {.worker = -1, .conn_id = -1, .action = "inbound plaintext"};
        zm_log_ratelimited(ZM_LOG_WARN, &lc, "plaintext refused", "%s/%s: plaintext refused: %s",
                           wp->pod->ns, wp->pod->name, v.reason ? v.reason : "unknown workload");
        zm_sock_close(sock, 0);
        return;
    }
    const struct sockaddr_in *client =
        peer && peer->sa_family == AF_INET ? (const struct sockaddr_in *)peer : NULL;
    zt_inconn_t *rec = inconn_new(w, wp->pod, NULL, client, &dst);
    int fd_b =
        !rec     ? -ENOMEM
        : client ? app_socket(wp->pod, w->d->host_netns_fd, client, ntohs(client->sin_port), cc.pod)
                 : zt_netns_socket(wp->pod->netns_fd, w->d->host_netns_fd, SOCK_STREAM, cc.pod);
    if (fd_b < 0 || zm_splice_connect(&rec->splice, sock, fd_b, (struct sockaddr *)&dst,
                                      sizeof(dst), plain_done, rec) < 0) {
        zm_sock_close(sock, 0);
        if (rec)
            inconn_free(rec);
    }
}
