/*
 * nl_route.c — see nl_route.h. The route object owns its next hop once it
 * is added to it; everything is released on every path.
 */
#include "nl_route.h"

#include <netlink/addr.h>
#include <netlink/errno.h>
#include <sys/socket.h>

int zm_nl_route(struct nl_sock *sk, const zm_nl_route_spec_t *spec, bool add, int nlm_flags)
{
    struct nl_addr *dst = NULL, *via = NULL;
    int err = nl_addr_parse(spec->dst, AF_INET, &dst);
    if (err >= 0 && spec->via)
        err = nl_addr_parse(spec->via, AF_INET, &via);
    struct rtnl_route *rt = err >= 0 ? rtnl_route_alloc() : NULL;
    struct rtnl_nexthop *nh = rt ? rtnl_route_nh_alloc() : NULL;
    if (err >= 0 && !nh)
        err = -NLE_NOMEM;
    if (err >= 0) {
        rtnl_route_set_family(rt, AF_INET);
        rtnl_route_set_table(rt, spec->table);
        rtnl_route_set_protocol(rt, spec->protocol);
        rtnl_route_set_scope(rt, spec->scope);
        rtnl_route_set_type(rt, spec->type);
        err = rtnl_route_set_dst(rt, dst);
    }
    if (err >= 0) {
        rtnl_route_nh_set_ifindex(nh, spec->ifindex);
        if (via)
            rtnl_route_nh_set_gateway(nh, via);
        rtnl_route_add_nexthop(rt, nh); /* the route owns nh now */
        nh = NULL;
        err = add ? rtnl_route_add(sk, rt, nlm_flags) : rtnl_route_delete(sk, rt, 0);
    }
    if (nh)
        rtnl_route_nh_free(nh);
    if (rt)
        rtnl_route_put(rt);
    nl_addr_put(via);
    nl_addr_put(dst);
    return err < 0 ? err : 0;
}
