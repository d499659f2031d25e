/*
 * nl_route.h — one IPv4 route added or deleted through libnl-route, for the
 * two places that shape a network namespace's routing: the sandbox's pod
 * links (config/sandbox_link.c: the default route) and ztunnel's capture
 * (ztunnel/capture.c: the local route of its TPROXY table).
 *
 * Threading: whatever thread owns the netlink socket (and sits in the
 * namespace to change).
 */
#ifndef ZM_NL_ROUTE_H
#define ZM_NL_ROUTE_H

#include <netlink/route/route.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct zm_nl_route_spec {
    const char *dst; /* "a.b.c.d/len" */
    const char *via; /* gateway, or NULL */
    int ifindex;
    uint32_t table;
    uint8_t protocol, scope, type; /* RTPROT_*, RT_SCOPE_*, RTN_* */
} zm_nl_route_spec_t;

/* Adds (with nlm_flags such as NLM_F_CREATE | NLM_F_EXCL) or deletes the
 * route. Returns 0 or a negative libnl error (-NLE_*), for nl_geterror. */
int zm_nl_route(struct nl_sock *sk, const zm_nl_route_spec_t *spec, bool add, int nlm_flags);

#endif
