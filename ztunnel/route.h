/*
 * route.h — where an outbound connection goes, decided as Istio's ztunnel
 * does (reference/istio-ztunnel.md §3 "How ztunnel chooses a path"):
 *
 *  1. To a service VIP whose service has a waypoint: HBONE to the waypoint,
 *     :authority = the VIP and port (the waypoint routes it).
 *  2. To a service VIP: one of its endpoints for that port, round robin;
 *     none → no healthy upstream (the connection is refused).
 *  3. To a pod that has a waypoint, unless the source is that waypoint:
 *     HBONE to the waypoint, :authority = the pod address and port.
 *  4. To a mesh pod (protocol hbone): HBONE to <pod IP>:15008,
 *     :authority = pod IP and target port, its identity expected.
 *     To a pod outside the mesh: plain TCP to it.
 *  5. Anything else: plain TCP passthrough to the original destination.
 *
 * Pure: reads a config snapshot, writes the decision; unit-tested.
 */
#ifndef ZT_ROUTE_H
#define ZT_ROUTE_H

#include "config.h"

#include <netinet/in.h>
#include <stdbool.h>

typedef enum zt_route_kind {
    ZT_ROUTE_HBONE,
    ZT_ROUTE_PASSTHROUGH,
    ZT_ROUTE_NO_UPSTREAM,
} zt_route_kind_t;

typedef struct zt_route {
    zt_route_kind_t kind;
    struct sockaddr_in next_hop;          /* HBONE: ip:15008; TCP: ip:port */
    char authority[64];                   /* HBONE :authority */
    char dst_id[256];                     /* HBONE: the identity to expect */
    const zm_config_workload_t *workload; /* where it lands (maybe a waypoint) */
    const zm_config_service_t *service;   /* when the VIP was dialled */
    bool via_waypoint;
} zt_route_t;

/* src: the connecting workload (may be NULL); rr: a round-robin cursor. */
int zt_route_outbound(const zm_config_t *cfg, const zm_config_workload_t *src,
                      const struct sockaddr_in *dst, uint64_t *rr, zt_route_t *out);

#endif
