/*
 * capture.c — installs and removes the in-pod capture described in
 * capture.h: the nftables table through libnftables and the fwmark rule
 * plus the loopback route through libnl, all inside the pod's namespace.
 *
 * The nftables ruleset is one text applied with nft_run_cmd_from_buffer,
 * which is one kernel transaction: "add table; delete table; table {...}"
 * replaces an existing table atomically (and never fails because it is
 * missing), so a pod is never half captured and installing twice is the
 * same as once. The policy routing is two netlink requests, each made
 * idempotent (the rule is deleted before it is added, the route is added
 * with NLM_F_REPLACE); it matters only to ZT_TPROXY_MARK packets, so a
 * failure between them leaves ordinary traffic unaffected, and install
 * removes everything again when any step fails.
 *
 * The nftables context and the netlink socket are created after the thread
 * has entered the pod namespace (a netlink socket belongs to the namespace
 * it was opened in) and are freed before it returns.
 *
 * Threading: see capture.h; no shared state here.
 */
#include "capture.h"
#include "nft_apply.h"
#include "nl_route.h"
#include "zt.h"

#include <errno.h>
#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>
#include <netlink/route/rule.h>
#include <netlink/socket.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80 /* linux/netfilter_ipv4.h, which clashes with netinet/in.h */
#endif

#define STR_(x) #x
#define STR(x) STR_(x)

/* The whole table. `add; delete; table {}` in one buffer is one transaction
 * that replaces whatever was there. */
static const char RULESET[] =
    "add table ip " ZT_CAPTURE_TABLE "\n"
    "delete table ip " ZT_CAPTURE_TABLE "\n"
    "table ip " ZT_CAPTURE_TABLE " {\n"
    "  chain output_nat {\n"
    "    type nat hook output priority -100; policy accept;\n"
    "    meta mark & " STR(ZT_MARK_MASK) " { " STR(ZT_MARK) ", " STR(
        ZT_TPROXY_MARK) " } return\n"
                        "    oif lo return\n"
                        "    ip daddr { 127.0.0.0/8, " ZT_PROBE_ADDR " } return\n"
                        "    meta l4proto tcp redirect to :" STR(
                            ZT_PORT_OUTBOUND) "\n"
                                              "  }\n"
                                              "  chain prerouting_nat {\n"
                                              "    type nat hook prerouting priority -100; policy "
                                              "accept;\n"
                                              "    iif lo return\n"
                                              "    ip daddr 127.0.0.0/8 return\n"
                                              "    ip saddr " ZT_PROBE_ADDR " return\n"
                                              "    tcp dport " STR(
                                                  ZT_PORT_HBONE) " return\n"
                                                                 "    meta l4proto tcp redirect to "
                                                                 ":" STR(
                                                                     ZT_PORT_INBOUND) "\n"
                                                                                      "  }\n"
                                                                                      "  chain "
                                                                                      "output_"
                                                                                      "route {\n"
                                                                                      "    type "
                                                                                      "route hook "
                                                                                      "output "
                                                                                      "priority "
                                                                                      "mangle; "
                                                                                      "policy "
                                                                                      "accept;\n"
                                                                                      "    meta "
                                                                                      "mark & " STR(ZT_MARK_MASK) " == " STR(ZT_TPROXY_MARK) " ct mark set ct mark & 0xfffff000 | " STR(
                                                                                          ZT_TPROXY_MARK) "\n"
                                                                                                          "    ct mark & " STR(ZT_MARK_MASK) " == " STR(
                                                                                                              ZT_TPROXY_MARK) " meta mark set ct mark\n"
                                                                                                                              "  }\n"
                                                                                                                              "}\n";

static const char REMOVE_RULESET[] = "add table ip " ZT_CAPTURE_TABLE "\n"
                                     "delete table ip " ZT_CAPTURE_TABLE "\n";

typedef struct cap_req {
    bool install;
    char errbuf[400];
} cap_req_t;

static int nft_apply(cap_req_t *r, const char *text)
{
    return zm_nft_apply(text, r->errbuf, sizeof(r->errbuf));
}

static int nl_to_errno(int nlerr)
{
    switch (nlerr < 0 ? -nlerr : nlerr) {
    case NLE_EXIST:
        return -EEXIST;
    case NLE_NOMEM:
        return -ENOMEM;
    case NLE_PERM:
        return -EPERM;
    case NLE_OBJ_NOTFOUND:
        return -ENOENT;
    case NLE_NODEV:
        return -ENODEV;
    case NLE_INVAL:
        return -EINVAL;
    default:
        return -EIO;
    }
}

static int nl_fail(cap_req_t *r, const char *what, int nlerr)
{
    snprintf(r->errbuf, sizeof(r->errbuf), "%s: %s", what, nl_geterror(nlerr));
    return nl_to_errno(nlerr);
}

/* ip rule {add,del} fwmark 0x111/0xfff lookup 133 pref 32764 */
static int rule_op(struct nl_sock *sk, cap_req_t *r, bool add)
{
    struct rtnl_rule *rule = rtnl_rule_alloc();
    if (!rule)
        return nl_fail(r, "ip rule", -NLE_NOMEM);
    rtnl_rule_set_family(rule, AF_INET);
    rtnl_rule_set_prio(rule, ZT_CAPTURE_RULE_PRIO);
    rtnl_rule_set_mark(rule, ZT_TPROXY_MARK);
    rtnl_rule_set_mask(rule, ZT_MARK_MASK);
    rtnl_rule_set_table(rule, ZT_CAPTURE_RT_TABLE);
    rtnl_rule_set_action(rule, FR_ACT_TO_TBL);
    int err =
        add ? rtnl_rule_add(sk, rule, NLM_F_CREATE | NLM_F_EXCL) : rtnl_rule_delete(sk, rule, 0);
    rtnl_rule_put(rule);
    return err < 0 ? nl_fail(r, add ? "ip rule add" : "ip rule del", err) : 0;
}

/* ip route {replace,del} local 0.0.0.0/0 dev lo table 133 */
static int route_op(struct nl_sock *sk, cap_req_t *r, bool add)
{
    struct rtnl_link *lo = NULL;
    int err = rtnl_link_get_kernel(sk, 0, "lo", &lo);
    if (err < 0)
        return nl_fail(r, "lo", err);
    zm_nl_route_spec_t spec = {.dst = "0.0.0.0/0",
                               .ifindex = rtnl_link_get_ifindex(lo),
                               .table = ZT_CAPTURE_RT_TABLE,
                               .protocol = RTPROT_BOOT,
                               .scope = RT_SCOPE_HOST,
                               .type = RTN_LOCAL};
    rtnl_link_put(lo);
    err = zm_nl_route(sk, &spec, add, NLM_F_CREATE | NLM_F_REPLACE);
    return err < 0 ? nl_fail(r, add ? "ip route add table 133" : "ip route del table 133", err) : 0;
}

static int absent_ok(int rc)
{
    return rc == -ENOENT || rc == -ENODEV || rc == -ESRCH ? 0 : rc;
}

/* Delete the rule until none is left (an older install or a hand-made
 * `ip rule add` may have left duplicates, which would also make the
 * NLM_F_EXCL add fail). */
static int rule_delete_all(struct nl_sock *sk, cap_req_t *r)
{
    int rc = 0;
    for (int i = 0; i < 16 && rc == 0; i++)
        rc = rule_op(sk, r, false);
    return absent_ok(rc);
}

/* Remove all three, keep going after a failure, report the first. */
static int remove_in_ns(cap_req_t *r, struct nl_sock *sk)
{
    int first = nft_apply(r, REMOVE_RULESET);
    if (sk) {
        int rc = rule_delete_all(sk, r);
        if (!first)
            first = rc;
        rc = absent_ok(route_op(sk, r, false));
        if (!first)
            first = rc;
    }
    return first;
}

static int capture_in_ns(void *arg)
{
    cap_req_t *r = arg;
    struct nl_sock *sk = nl_socket_alloc();
    int rc = sk ? nl_connect(sk, NETLINK_ROUTE) : -NLE_NOMEM;
    if (rc < 0) {
        rc = nl_fail(r, "netlink", rc);
        if (sk)
            nl_socket_free(sk);
        if (!r->install) /* still take the nftables table away */
            (void)nft_apply(r, REMOVE_RULESET);
        return rc;
    }
    if (!r->install) {
        rc = remove_in_ns(r, sk);
        nl_socket_free(sk);
        return rc;
    }
    /* Routing first: a captured pod whose transparent replies would leak
     * through eth0 is worse than a pod not captured yet. */
    rc = rule_delete_all(sk, r);
    if (rc == 0)
        rc = rule_op(sk, r, true);
    if (rc == 0)
        rc = route_op(sk, r, true);
    if (rc == 0)
        rc = nft_apply(r, RULESET);
    if (rc < 0) {
        cap_req_t undo = {.install = false};
        (void)remove_in_ns(&undo, sk);
    }
    nl_socket_free(sk);
    return rc;
}

int zt_capture_install(int nsfd, int host_nsfd, zm_err_t *err)
{
    if (nsfd < 0) {
        zm_err_set(err, NULL, 0, "capture: no pod namespace");
        return -EBADF;
    }
    cap_req_t r = {.install = true};
    int rc = zt_netns_run(nsfd, host_nsfd, capture_in_ns, &r);
    if (rc < 0) {
        if (!r.errbuf[0])
            snprintf(r.errbuf, sizeof(r.errbuf), "entering the pod namespace: %s", strerror(-rc));
        zm_err_set(err, NULL, 0, "capture: %s", r.errbuf);
    }
    return rc;
}

int zt_capture_remove(int nsfd, int host_nsfd)
{
    if (nsfd < 0)
        return -EBADF;
    cap_req_t r = {.install = false};
    return zt_netns_run(nsfd, host_nsfd, capture_in_ns, &r);
}

int zt_original_dst(int fd, struct sockaddr_in *out)
{
    socklen_t len = sizeof(*out);
    memset(out, 0, sizeof(*out));
    if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, out, &len) < 0)
        return -errno;
    return out->sin_family == AF_INET ? 0 : -EAFNOSUPPORT;
}
