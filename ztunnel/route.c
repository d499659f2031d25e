/*
 * route.c — the outbound decision of route.h. Linear look-ups over the
 * snapshot's workloads and services: fine for the sandbox's sizes; an index
 * built at snapshot load replaces them when meshes grow.
 */
#include "route.h"

#include "zt.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

static const zm_config_service_t *find_vip(const zm_config_t *cfg, const char *ip)
{
    for (size_t i = 0; i < cfg->n_services; i++)
        if (!strcmp(cfg->services[i].address, ip))
            return &cfg->services[i];
    return NULL;
}

static void hbone_to(const zm_config_t *cfg, const zm_config_workload_t *w, const char *authority,
                     zt_route_t *out)
{
    out->kind = ZT_ROUTE_HBONE;
    out->workload = w;
    out->next_hop.sin_family = AF_INET;
    out->next_hop.sin_port = htons(15008);
    inet_pton(AF_INET, w->address, &out->next_hop.sin_addr);
    snprintf(out->authority, sizeof(out->authority), "%s", authority);
    snprintf(out->dst_id, sizeof(out->dst_id), "spiffe://%s/ns/%s/sa/%s", cfg->node.trust_domain,
             w->ns, w->service_account);
}

static void tcp_to(const char *ip, uint16_t port, zt_route_t *out)
{
    out->kind = ZT_ROUTE_PASSTHROUGH;
    out->next_hop.sin_family = AF_INET;
    out->next_hop.sin_port = htons(port);
    inet_pton(AF_INET, ip, &out->next_hop.sin_addr);
}

/* Step 3 and 4 for a workload and the port it listens on. */
static void to_workload(const zm_config_t *cfg, const zm_config_workload_t *src,
                        const zm_config_workload_t *w, uint16_t port, zt_route_t *out)
{
    char authority[64];
    snprintf(authority, sizeof(authority), "%s:%u", w->address, port);
    if (w->waypoint[0] && !(src && !strcmp(src->uid, w->waypoint))) {
        const zm_config_workload_t *wp = zm_config_find_workload(cfg, w->waypoint);
        if (wp) {
            out->via_waypoint = true;
            hbone_to(cfg, wp, authority, out);
            return;
        }
    }
    if (w->protocol == ZM_CONFIG_PROTO_HBONE)
        hbone_to(cfg, w, authority, out);
    else {
        out->workload = w;
        tcp_to(w->address, port, out);
    }
}

int zt_route_outbound(const zm_config_t *cfg, const zm_config_workload_t *src,
                      const struct sockaddr_in *dst, uint64_t *rr, zt_route_t *out)
{
    memset(out, 0, sizeof(*out));
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &dst->sin_addr, ip, sizeof(ip));
    uint16_t port = ntohs(dst->sin_port);
    const zm_config_service_t *svc = find_vip(cfg, ip);
    if (svc) {
        out->service = svc;
        /* The waypoint itself dials the VIP to reach the endpoints. */
        if (svc->waypoint[0] && !(src && !strcmp(src->uid, svc->waypoint))) {
            const zm_config_workload_t *wp = zm_config_find_workload(cfg, svc->waypoint);
            if (wp) {
                char authority[64];
                snprintf(authority, sizeof(authority), "%s:%u", ip, port);
                out->via_waypoint = true;
                hbone_to(cfg, wp, authority, out);
                return 0;
            }
        }
        size_t candidates = 0;
        for (size_t i = 0; i < svc->n_endpoints; i++)
            candidates += svc->endpoints[i].port == port;
        if (candidates == 0) {
            out->kind = ZT_ROUTE_NO_UPSTREAM;
            return 0;
        }
        size_t pick = (size_t)((*rr)++ % candidates);
        for (size_t i = 0; i < svc->n_endpoints; i++) {
            const zm_config_endpoint_t *ep = &svc->endpoints[i];
            if (ep->port != port || pick-- != 0)
                continue;
            const zm_config_workload_t *w = zm_config_find_workload(cfg, ep->workload);
            if (!w) {
                out->kind = ZT_ROUTE_NO_UPSTREAM;
                return 0;
            }
            /* A VIP's traffic already passed the service's waypoint choice. */
            char authority[64];
            snprintf(authority, sizeof(authority), "%s:%u", w->address, ep->target_port);
            if (w->protocol == ZM_CONFIG_PROTO_HBONE)
                hbone_to(cfg, w, authority, out);
            else {
                out->workload = w;
                tcp_to(w->address, ep->target_port, out);
            }
            return 0;
        }
    }
    const zm_config_workload_t *w = zm_config_find_workload_by_address(cfg, ip);
    if (w) {
        to_workload(cfg, src, w, port, out);
        return 0;
    }
    tcp_to(ip, port, out);
    return 0;
}
