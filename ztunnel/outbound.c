/*
 * outbound.c — connections an ambient pod's application makes (redirected
 * to 15001 inside the pod). The original destination decides the route
 * (route.h); HBONE routes go through the worker's pool with the source
 * pod's own certificate, plain routes are spliced from inside the pod's
 * namespace, so either way the connection leaves with the pod's IP.
 */
#include "report.h"
#include "route.h"
#include "splice.h"
#include "tunnel.h"
#include "zt_proxy.h"

#include "log.h"

#include <arpa/inet.h>
#include <linux/netfilter_ipv4.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int zt_orig_dst(int fd, struct sockaddr_in *out)
{
    socklen_t len = sizeof(*out);
    if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, out, &len) < 0)
        return -errno;
    return 0;
}

void zt_identity(const zm_config_t *cfg, const char *ns, const char *sa, char *buf, size_t len)
{
    snprintf(buf, len, "spiffe://%s/ns/%s/sa/%s", cfg->node.trust_domain, ns, sa);
}

/* One outbound connection, kept for its log line. */
typedef struct out_conn {
    zt_pod_t *pod;
    zt_tcp_conn_t *tc;
    char dst[64];
    char via[128];
} out_conn_t;

static void tunnel_done(zm_tunnel_t *t, const zm_tunnel_stats_t *st, void *ctx)
{
    out_conn_t *oc = ctx;
    zm_log_ctx_t lc = {.worker = -1, .conn_id = -1, .action = "outbound"};
    if (st->error)
        zm_log_ratelimited(ZM_LOG_WARN, &lc, "outbound failed", "%s/%s → %s via %s: %s (status %d)",
                           oc->pod->ns, oc->pod->name, oc->dst, oc->via, st->error, st->status);
    else
        zm_log(ZM_LOG_DEBUG, &lc, "%s/%s → %s via %s: %llu bytes out, %llu in", oc->pod->ns,
               oc->pod->name, oc->dst, oc->via, (unsigned long long)st->bytes_to_stream,
               (unsigned long long)st->bytes_from_stream);
    zt_telemetry_bytes(oc->tc, st->bytes_to_stream, st->bytes_from_stream);
    zt_telemetry_close(&oc->tc, st->error ? "CONNECT" : "-", st->error);
    zt_pod_unref(&oc->pod);
    free(oc);
}

static void splice_done(zm_splice_t *sp, const zm_splice_stats_t *st, void *ctx)
{
    out_conn_t *oc = ctx;
    zt_telemetry_bytes(oc->tc, st->a_to_b, st->b_to_a);
    zt_telemetry_close(&oc->tc, st->error ? "CONNECT" : "-", st->error);
    zt_pod_unref(&oc->pod);
    free(oc);
}

void zt_outbound_accept(zm_listener_t *l, int fd, const struct sockaddr *peer, socklen_t len,
                        void *ctx)
{
    zt_wpod_t *wp = ctx;
    zt_worker_t *w = wp->w;
    struct sockaddr_in dst;
    if (zt_orig_dst(fd, &dst) < 0) {
        close(fd);
        return;
    }
    const zm_config_t *cfg = zm_config_slot_acquire(w->d->config);
    const zm_config_workload_t *src = zm_config_find_workload(cfg, wp->pod->uid);
    zt_route_t route;
    zt_route_outbound(cfg, src, &dst, &w->rr, &route);
    out_conn_t *oc = calloc(1, sizeof(*oc));
    zm_sock_t *sock = NULL;
    static const zm_sock_handlers_t none = {0};
    if (!oc || route.kind == ZT_ROUTE_NO_UPSTREAM ||
        zm_sock_wrap(&sock, w->loop, fd, &none, NULL) < 0) {
        free(oc);
        close(fd);
        zm_config_release(&cfg);
        return;
    }
    oc->pod = zt_pod_ref(wp->pod);
    inet_ntop(AF_INET, &dst.sin_addr, oc->dst, sizeof(oc->dst));
    snprintf(oc->dst + strlen(oc->dst), sizeof(oc->dst) - strlen(oc->dst), ":%u",
             ntohs(dst.sin_port));
    {
        zt_conn_labels_t labels;
        zt_report_bufs_t bufs;
        zt_report_labels(&labels, &bufs, cfg, true, src, NULL, route.workload, route.service,
                         route.kind == ZT_ROUTE_HBONE);
        zt_conn_addrs_t addrs = {.src_addr = wp->pod->address,
                                 .dst_addr = oc->dst,
                                 .dst_hbone_addr =
                                     route.kind == ZT_ROUTE_HBONE ? route.authority : NULL};
        oc->tc = zt_telemetry_open(w->d->telemetry, &labels, &addrs);
    }
    if (route.kind == ZT_ROUTE_PASSTHROUGH) {
        snprintf(oc->via, sizeof(oc->via), "passthrough");
        int fd_b = zt_netns_socket(wp->pod->netns_fd, w->d->host_netns_fd, SOCK_STREAM,
                                   cfg->tcp.mesh_congestion);
        if (fd_b < 0 || zm_splice_connect(NULL, sock, fd_b, (struct sockaddr *)&route.next_hop,
                                          sizeof(route.next_hop), splice_done, oc) < 0) {
            zm_sock_close(sock, 0);
            zt_telemetry_close(&oc->tc, "CONNECT", "cannot connect");
            zt_pod_unref(&oc->pod);
            free(oc);
        }
        zm_config_release(&cfg);
        return;
    }
    snprintf(oc->via, sizeof(oc->via), "HBONE %s", route.authority);
    char src_id[256];
    zt_identity(cfg, wp->pod->ns, wp->pod->service_account, src_id, sizeof(src_id));
    zm_err_t err = {0};
    zm_tls_ctx_t *tls =
        zt_certs_get(w->d->certs, wp->pod->ns, wp->pod->service_account, false, &err);
    zm_tunnel_t *t = NULL;
    zm_hbone_stream_t *s = NULL;
    zm_hbone_pool_key_t key = {.src_id = src_id, .dst_id = route.dst_id};
    memcpy(&key.next_hop, &route.next_hop, sizeof(route.next_hop));
    struct sockaddr_in *sip = (struct sockaddr_in *)&key.src_ip;
    sip->sin_family = AF_INET;
    sip->sin_addr = wp->pod->ip;
    char fwd[384], baggage[640], traceparent[64];
    zt_request_headers(&w->trace_state, wp->pod, src, peer, route.service, fwd, sizeof(fwd),
                       baggage, sizeof(baggage), traceparent, sizeof(traceparent));
    zm_hbone_header_t headers[] = {
        {"forwarded", fwd}, {"baggage", baggage}, {"traceparent", traceparent}};
    if (!tls || zm_tunnel_client(&t, sock, tunnel_done, oc) < 0) {
        zm_log_ctx_t lc = {.worker = -1, .conn_id = -1, .action = "outbound"};
        zm_log_ratelimited(ZM_LOG_WARN, &lc, "no certificate", "%s/%s: no certificate: %s",
                           wp->pod->ns, wp->pod->name, err.msg);
        zm_sock_close(sock, 0);
        zt_telemetry_close(&oc->tc, "TLS_FAILURE", "no certificate");
        zt_pod_unref(&oc->pod);
        free(oc);
    } else if (zm_hbone_pool_open(w->pool, &key, tls, route.authority, headers,
                                  ZM_ARRAY_LEN(headers), zm_tunnel_stream_ctx(t), &s) < 0) {
        zm_tunnel_abort(t, "HBONE pool full");
    } else {
        zm_tunnel_attach(t, s);
    }
    zm_tls_ctx_unref(&tls);
    zm_config_release(&cfg);
}
