/*
 * sandbox_link.c — links, addresses and routes with libnl, and nftables
 * rulesets with libnftables, each applied inside one network namespace.
 *
 * Every function here is meant to run on a thread that mc_netns_run has
 * moved into the target namespace: it opens its own netlink socket (or
 * nftables context) there, so the socket's namespace is the thread's, and
 * closes it before returning. Nothing here touches the host's namespace.
 *
 * The veth is made in one request from the cluster namespace with its peer
 * placed straight into the pod namespace (IFLA_NET_NS_FD inside the peer
 * info) and named eth0 there, so a half-made pair never sits in the wrong
 * namespace. libnl reports NLE_* codes; they are mapped to -errno here and
 * the libnl message goes to the request's errbuf.
 */
#include "sandbox_int.h"
#include "nft_apply.h"
#include "nl_route.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if.h>
#include <linux/rtnetlink.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>
#include <netlink/socket.h>
#include <stdio.h>
#include <string.h>

static int nl_fail(mc_link_req_t *r, const char *what, int nlerr)
{
    if (nlerr < 0)
        nlerr = -nlerr;
    snprintf(r->errbuf, sizeof(r->errbuf), "%s: %s", what, nl_geterror(nlerr));
    switch (nlerr) {
    case NLE_EXIST:
        return -EEXIST;
    case NLE_NOMEM:
        return -ENOMEM;
    case NLE_PERM:
        return -EPERM;
    case NLE_OBJ_NOTFOUND:
    case NLE_NODEV:
        return -ENODEV;
    case NLE_INVAL:
        return -EINVAL;
    default:
        return -EIO;
    }
}

static struct nl_sock *route_sock(mc_link_req_t *r, int *rc)
{
    struct nl_sock *sk = nl_socket_alloc();
    if (!sk) {
        *rc = nl_fail(r, "netlink socket", NLE_NOMEM);
        return NULL;
    }
    int err = nl_connect(sk, NETLINK_ROUTE);
    if (err < 0) {
        *rc = nl_fail(r, "netlink connect", err);
        nl_socket_free(sk);
        return NULL;
    }
    *rc = 0;
    return sk;
}

static int ifindex_of(struct nl_sock *sk, mc_link_req_t *r, const char *name)
{
    struct rtnl_link *link = NULL;
    int err = rtnl_link_get_kernel(sk, 0, name, &link);
    if (err < 0)
        return nl_fail(r, name, err);
    int idx = rtnl_link_get_ifindex(link);
    rtnl_link_put(link);
    return idx;
}

/* ip link set NAME up [master MASTER] */
static int link_up(struct nl_sock *sk, mc_link_req_t *r, const char *name, int master)
{
    struct rtnl_link *orig = NULL;
    int err = rtnl_link_get_kernel(sk, 0, name, &orig);
    if (err < 0)
        return nl_fail(r, name, err);
    struct rtnl_link *chg = rtnl_link_alloc();
    if (!chg) {
        rtnl_link_put(orig);
        return nl_fail(r, name, NLE_NOMEM);
    }
    rtnl_link_set_flags(chg, IFF_UP);
    if (master > 0)
        rtnl_link_set_master(chg, master);
    err = rtnl_link_change(sk, orig, chg, 0);
    rtnl_link_put(chg);
    rtnl_link_put(orig);
    return err < 0 ? nl_fail(r, name, err) : 0;
}

/* ip addr add CIDR dev IFINDEX */
static int addr_add(struct nl_sock *sk, mc_link_req_t *r, int ifindex, const char *cidr)
{
    struct nl_addr *local = NULL;
    int err = nl_addr_parse(cidr, AF_INET, &local);
    if (err < 0)
        return nl_fail(r, cidr, err);
    struct rtnl_addr *a = rtnl_addr_alloc();
    if (!a) {
        nl_addr_put(local);
        return nl_fail(r, cidr, NLE_NOMEM);
    }
    rtnl_addr_set_ifindex(a, ifindex);
    rtnl_addr_set_family(a, AF_INET);
    err = rtnl_addr_set_local(a, local);
    if (err >= 0) {
        rtnl_addr_set_prefixlen(a, nl_addr_get_prefixlen(local));
        err = rtnl_addr_add(sk, a, 0);
    }
    rtnl_addr_put(a);
    nl_addr_put(local);
    return err < 0 ? nl_fail(r, cidr, err) : 0;
}

/* ip route add default via GW dev IFINDEX */
static int default_route(struct nl_sock *sk, mc_link_req_t *r, int ifindex, const char *gw)
{
    zm_nl_route_spec_t spec = {.dst = "0.0.0.0/0",
                               .via = gw,
                               .ifindex = ifindex,
                               .table = RT_TABLE_MAIN,
                               .protocol = RTPROT_STATIC,
                               .scope = RT_SCOPE_UNIVERSE,
                               .type = RTN_UNICAST};
    int err = zm_nl_route(sk, &spec, true, NLM_F_CREATE | NLM_F_EXCL);
    return err < 0 ? nl_fail(r, "default route", err) : 0;
}

int mc_link_bridge_setup(void *arg)
{
    mc_link_req_t *r = arg;
    int rc;
    struct nl_sock *sk = route_sock(r, &rc);
    if (!sk)
        return rc;
    rc = link_up(sk, r, "lo", 0);
    if (rc >= 0) {
        int err = rtnl_link_bridge_add(sk, r->bridge);
        rc = err < 0 ? nl_fail(r, r->bridge, err) : 0;
    }
    int idx = rc >= 0 ? ifindex_of(sk, r, r->bridge) : rc;
    rc = idx < 0 ? idx : addr_add(sk, r, idx, r->addr);
    if (rc >= 0)
        rc = link_up(sk, r, r->bridge, 0);
    nl_socket_free(sk);
    return rc;
}

int mc_link_veth_add(void *arg)
{
    mc_link_req_t *r = arg;
    int rc;
    struct nl_sock *sk = route_sock(r, &rc);
    if (!sk)
        return rc;
    int br = ifindex_of(sk, r, r->bridge);
    if (br < 0) {
        nl_socket_free(sk);
        return br;
    }
    struct rtnl_link *veth = rtnl_link_veth_alloc();
    if (!veth) {
        nl_socket_free(sk);
        return nl_fail(r, r->host_if, NLE_NOMEM);
    }
    rtnl_link_set_name(veth, r->host_if);
    struct rtnl_link *peer = rtnl_link_veth_get_peer(veth);
    rtnl_link_set_name(peer, "eth0");
    rtnl_link_set_ns_fd(peer, r->peer_nsfd);
    rtnl_link_put(peer);
    int err = rtnl_link_add(sk, veth, NLM_F_CREATE | NLM_F_EXCL);
    rtnl_link_veth_release(veth);
    rc = err < 0 ? nl_fail(r, r->host_if, err) : link_up(sk, r, r->host_if, br);
    nl_socket_free(sk);
    return rc;
}

int mc_link_iface_setup(void *arg)
{
    mc_link_req_t *r = arg;
    int rc;
    struct nl_sock *sk = route_sock(r, &rc);
    if (!sk)
        return rc;
    rc = link_up(sk, r, "lo", 0);
    int idx = rc >= 0 ? ifindex_of(sk, r, "eth0") : rc;
    rc = idx < 0 ? idx : addr_add(sk, r, idx, r->addr);
    if (rc >= 0)
        rc = link_up(sk, r, "eth0", 0);
    if (rc >= 0 && r->gateway)
        rc = default_route(sk, r, idx, r->gateway);
    nl_socket_free(sk);
    return rc;
}

int mc_nft_apply(void *arg)
{
    mc_nft_req_t *r = arg;
    return zm_nft_apply(r->ruleset, r->errbuf, sizeof(r->errbuf));
}

int mc_link_del(void *arg)
{
    mc_link_req_t *r = arg;
    int rc;
    struct nl_sock *sk = route_sock(r, &rc);
    if (!sk)
        return rc;
    struct rtnl_link *link = rtnl_link_alloc();
    if (!link) {
        nl_socket_free(sk);
        return -ENOMEM;
    }
    rtnl_link_set_name(link, r->host_if);
    int err = rtnl_link_delete(sk, link);
    rc = err < 0 && err != -NLE_NODEV && err != -NLE_OBJ_NOTFOUND ? nl_fail(r, r->host_if, err) : 0;
    rtnl_link_put(link);
    nl_socket_free(sk);
    return rc;
}
