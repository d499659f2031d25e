/*
 * sandbox_net.c — plan checks, names, the generated texts (nftables
 * ruleset, hosts, resolv.conf), and the up / down sequences of the sandbox
 * network (see sandbox_net.h for the layout).
 *
 * up is a write-ahead sequence: for each namespace (cluster first, then
 * nodes, then pods) the namespace, its veth and its /etc/netns dir are added
 * to net.json and the file is saved, then they are made. down never trusts
 * the record alone: it also sweeps names with the prefix, kills what runs in
 * those namespaces, and only then unmounts them, so it works after a crash
 * at any point and is safe to repeat.
 *
 * Threading: see sandbox_net.h; namespace work goes through mc_netns_run.
 */
#include "sandbox_net.h"

#include "netns.h"
#include "sandbox_int.h"
#include "strbuf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROC_STOP_MS 2000

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 16777619u;
    }
    return h;
}

void mc_net_veth_name(const char *netns, char buf[MC_NET_IFNAMSIZ])
{
    snprintf(buf, MC_NET_IFNAMSIZ, "zv%08x", fnv1a(netns));
}

/* Join parts with '-'; names longer than MC_NET_NETNS_MAX keep a hash. */
static int make_name(char *buf, size_t len, const char *a, const char *b, const char *c,
                     const char *d)
{
    char full[1024];
    int n = snprintf(full, sizeof(full), "%s-%s%s%s%s%s", a, b, c ? "-" : "", c ? c : "",
                     d ? "-" : "", d ? d : "");
    if (n < 0 || (size_t)n >= sizeof(full))
        return -ENAMETOOLONG;
    if (n > MC_NET_NETNS_MAX) {
        uint32_t h = fnv1a(full);
        snprintf(full + MC_NET_NETNS_MAX - 9, 10, "-%08x", h);
        n = MC_NET_NETNS_MAX;
    }
    if ((size_t)n >= len)
        return -ENAMETOOLONG;
    memcpy(buf, full, (size_t)n + 1);
    return n;
}

int mc_net_cluster_netns(const char *prefix, char *buf, size_t len)
{
    return make_name(buf, len, prefix, "cluster", NULL, NULL);
}

int mc_net_node_netns(const char *prefix, const char *node, char *buf, size_t len)
{
    return make_name(buf, len, prefix, "node", node, NULL);
}

int mc_net_pod_netns(const char *prefix, const char *ns, const char *pod, char *buf, size_t len)
{
    return make_name(buf, len, prefix, "pod", ns, pod);
}

static const char *bridge_of(const mc_net_plan_t *p)
{
    return p->bridge ? p->bridge : "zmbr0";
}

static const char *domain_of(const mc_net_plan_t *p)
{
    return p->domain ? p->domain : "cluster.local";
}

/* ---- checks ---- */

static bool ip4_ok(const char *s, uint32_t *out)
{
    struct in_addr a;
    if (!s || inet_pton(AF_INET, s, &a) != 1)
        return false;
    if (out)
        *out = ntohl(a.s_addr);
    return true;
}

static bool cidr_has(const char *cidr, uint32_t ip)
{
    char buf[32];
    const char *slash = strchr(cidr, '/');
    if (!slash || (size_t)(slash - cidr) >= sizeof(buf))
        return false;
    memcpy(buf, cidr, (size_t)(slash - cidr));
    buf[slash - cidr] = '\0';
    uint32_t net;
    char *end;
    long plen = strtol(slash + 1, &end, 10);
    if (!ip4_ok(buf, &net) || *end || plen < 0 || plen > 32)
        return false;
    uint32_t mask = plen ? ~0u << (32 - plen) : 0;
    return (net & mask) == (ip & mask);
}

static bool name_ok(const char *s, size_t max)
{
    if (!s || !*s || strlen(s) > max)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '.'))
            return false;
    return true;
}

static int fail(zm_err_t *err, int rc, const char *fmt, const char *a, const char *b)
{
    zm_err_set(err, NULL, 0, fmt, a ? a : "", b ? b : "");
    return rc;
}

int mc_net_plan_check(const mc_net_plan_t *p, zm_err_t *err)
{
    if (!name_ok(p->prefix, 24) || strchr(p->prefix, '.'))
        return fail(err, -EINVAL, "sandbox prefix '%s' must be 1-24 of [a-z0-9-]%s", p->prefix,
                    NULL);
    if (!p->state_dir || !*p->state_dir)
        return fail(err, -EINVAL, "no state directory%s%s", NULL, NULL);
    if (strlen(bridge_of(p)) >= MC_NET_IFNAMSIZ)
        return fail(err, -EINVAL, "bridge name '%s' is longer than 15%s", bridge_of(p), NULL);
    uint32_t gw;
    if (!ip4_ok(p->gateway, &gw) || p->prefix_len < 8 || p->prefix_len > 30)
        return fail(err, -EINVAL, "gateway '%s' must be an IPv4 address, prefix_len 8-30%s",
                    p->gateway, NULL);
    uint32_t mask = ~0u << (32 - p->prefix_len);
    size_t total = 1 + p->n_nodes + p->n_pods;
    char(*names)[MC_NET_NETNS_MAX + 1] = calloc(total, sizeof(*names));
    uint32_t *ips = calloc(total, sizeof(*ips));
    int rc = 0;
    if (!names || !ips) {
        rc = -ENOMEM;
        goto out;
    }
    mc_net_cluster_netns(p->prefix, names[0], sizeof(names[0]));
    ips[0] = gw;
    for (size_t i = 0; i < p->n_nodes && rc == 0; i++) {
        const mc_net_node_t *n = &p->nodes[i];
        if (!name_ok(n->name, 253))
            rc = fail(err, -EINVAL, "node name '%s' is not a DNS name%s", n->name, NULL);
        else if (!ip4_ok(n->ip, &ips[1 + i]) || (ips[1 + i] & mask) != (gw & mask))
            rc = fail(err, -EINVAL, "node '%s': IP '%s' is not on the gateway's segment", n->name,
                      n->ip);
        else
            mc_net_node_netns(p->prefix, n->name, names[1 + i], sizeof(names[0]));
    }
    for (size_t i = 0; i < p->n_pods && rc == 0; i++) {
        const mc_net_pod_t *pod = &p->pods[i];
        size_t k = 1 + p->n_nodes + i;
        const mc_net_node_t *node = NULL;
        for (size_t j = 0; j < p->n_nodes && pod->node; j++)
            if (!strcmp(p->nodes[j].name, pod->node))
                node = &p->nodes[j];
        if (!name_ok(pod->ns, 63) || !name_ok(pod->name, 253))
            rc = fail(err, -EINVAL, "pod '%s/%s' has an invalid name", pod->ns, pod->name);
        else if (!node)
            rc = fail(err, -EINVAL, "pod '%s': unknown node '%s'", pod->name, pod->node);
        else if (!ip4_ok(pod->ip, &ips[k]) || (ips[k] & mask) != (gw & mask))
            rc = fail(err, -EINVAL, "pod '%s': IP '%s' is not on the gateway's segment", pod->name,
                      pod->ip);
        else if (node->pod_cidr && !cidr_has(node->pod_cidr, ips[k]))
            rc = fail(err, -EINVAL, "pod '%s': IP '%s' is outside its node's pod CIDR", pod->name,
                      pod->ip);
        else
            mc_net_pod_netns(p->prefix, pod->ns, pod->name, names[k], sizeof(names[0]));
    }
    for (size_t i = 0; i < total && rc == 0; i++) {
        char vi[MC_NET_IFNAMSIZ], vj[MC_NET_IFNAMSIZ];
        mc_net_veth_name(names[i], vi);
        for (size_t j = i + 1; j < total && rc == 0; j++) {
            mc_net_veth_name(names[j], vj);
            if (!strcmp(names[i], names[j]))
                rc = fail(err, -EINVAL, "two sandbox namespaces would both be named '%s'%s",
                          names[i], NULL);
            else if (ips[i] == ips[j])
                rc = fail(err, -EINVAL, "'%s' and '%s' have the same IP", names[i], names[j]);
            else if (!strcmp(vi, vj))
                rc = fail(err, -EINVAL, "veth names of '%s' and '%s' collide", names[i], names[j]);
        }
    }
    for (size_t i = 0; i < p->n_services && rc == 0; i++) {
        const mc_net_service_t *s = &p->services[i];
        if (!name_ok(s->ns, 63) || !name_ok(s->name, 63) || strchr(s->name, '.'))
            rc = fail(err, -EINVAL, "service '%s/%s' has an invalid name", s->ns, s->name);
        else if (s->cluster_ip && !ip4_ok(s->cluster_ip, NULL))
            rc = fail(err, -EINVAL, "service '%s': bad cluster IP '%s'", s->name, s->cluster_ip);
        for (size_t j = 0; j < s->n_endpoints && rc == 0; j++)
            if (!ip4_ok(s->endpoints[j].ip, NULL))
                rc = fail(err, -EINVAL, "service '%s': bad endpoint IP '%s'", s->name,
                          s->endpoints[j].ip);
        for (size_t j = 0; j < s->n_ports && rc == 0; j++)
            if (!s->ports[j].port)
                rc = fail(err, -EINVAL, "service '%s': port 0%s", s->name, NULL);
    }
out:
    free(names);
    free(ips);
    return rc;
}

/* ---- texts ---- */

static uint16_t target_of(const mc_net_service_t *s, size_t port, size_t ep)
{
    const mc_net_endpoint_t *e = &s->endpoints[ep];
    if (e->target_ports && e->target_ports[port])
        return e->target_ports[port];
    return s->ports[port].target_port ? s->ports[port].target_port : s->ports[port].port;
}

int mc_net_nft_ruleset(const mc_net_plan_t *p, zm_strbuf_t *sb)
{
    /* priority -90 = dstnat + 10: a capture chain at dstnat NATs first. */
    zm_strbuf_appends(sb, "table ip zmesh-svc {\n"
                          "  chain svc-dnat {\n"
                          "    type nat hook output priority -90; policy accept;\n");
    bool any = false;
    for (size_t i = 0; i < p->n_services; i++) {
        const mc_net_service_t *s = &p->services[i];
        if (!s->cluster_ip)
            continue;
        any = true;
        for (size_t j = 0; j < s->n_ports && s->n_endpoints; j++) {
            zm_strbuf_appendf(sb, "    ip daddr %s tcp dport %u dnat ip to ", s->cluster_ip,
                              s->ports[j].port);
            if (s->n_endpoints == 1) {
                zm_strbuf_appendf(sb, "%s:%u\n", s->endpoints[0].ip, target_of(s, j, 0));
                continue;
            }
            zm_strbuf_appendf(sb, "numgen random mod %zu map { ", s->n_endpoints);
            for (size_t k = 0; k < s->n_endpoints; k++)
                zm_strbuf_appendf(sb, "%s%zu : %s . %u", k ? ", " : "", k, s->endpoints[k].ip,
                                  target_of(s, j, k));
            zm_strbuf_appends(sb, " }\n");
        }
    }
    zm_strbuf_appends(sb, "  }\n");
    /* What is still addressed to a cluster IP after the DNAT above (no
     * endpoint, or a port the service lacks) fails at once. */
    zm_strbuf_appends(sb, "  chain svc-reject {\n"
                          "    type filter hook output priority 0; policy accept;\n");
    if (any) {
        zm_strbuf_appends(sb, "    ip daddr { ");
        bool first = true;
        for (size_t i = 0; i < p->n_services; i++) {
            if (!p->services[i].cluster_ip)
                continue;
            zm_strbuf_appendf(sb, "%s%s", first ? "" : ", ", p->services[i].cluster_ip);
            first = false;
        }
        zm_strbuf_appends(sb, " } meta l4proto tcp reject with tcp reset\n");
    }
    zm_strbuf_appends(sb, "  }\n}\n");
    return zm_strbuf_error(sb);
}

int mc_net_hosts_text(const mc_net_plan_t *p, const char *pod_ns, const char *self_ip,
                      const char *self_names, zm_strbuf_t *sb)
{
    zm_strbuf_appends(sb, "# zmesh sandbox (meshctl up): mounted over /etc/hosts in this "
                          "namespace\n"
                          "127.0.0.1\tlocalhost\n"
                          "::1\tlocalhost ip6-localhost ip6-loopback\n");
    if (self_ip && self_names)
        zm_strbuf_appendf(sb, "%s\t%s\n", self_ip, self_names);
    for (size_t i = 0; i < p->n_services; i++) {
        const mc_net_service_t *s = &p->services[i];
        if (!s->cluster_ip)
            continue;
        zm_strbuf_appendf(sb, "%s\t", s->cluster_ip);
        if (pod_ns && !strcmp(pod_ns, s->ns))
            zm_strbuf_appendf(sb, "%s ", s->name);
        zm_strbuf_appendf(sb, "%s.%s %s.%s.svc.%s\n", s->name, s->ns, s->name, s->ns, domain_of(p));
    }
    return zm_strbuf_error(sb);
}

static const char RESOLV_CONF[] =
    "# zmesh sandbox: names come from /etc/hosts only. Nothing listens on\n"
    "# 127.0.0.1:53 in this namespace, so any DNS query fails at once.\n"
    "nameserver 127.0.0.1\n"
    "options timeout:1 attempts:1\n";

/* ---- up ---- */

typedef struct up_ctx {
    const mc_net_plan_t *p;
    zm_err_t *err;
    json_t *state;
    int cluster_fd;
    unsigned steps;
    zm_strbuf_t ruleset;
} up_ctx_t;

static int up_fail(up_ctx_t *u, int rc, const char *netns, const char *what)
{
    zm_err_set(u->err, NULL, 0, "sandbox namespace %s: %s (%s)", netns, what, strerror(-rc));
    return rc;
}

static int step(up_ctx_t *u)
{
    u->steps++;
    if (u->p->debug_stop_after && u->steps > u->p->debug_stop_after) {
        zm_err_set(u->err, NULL, 0, "stopped after %u steps (test hook)", u->steps - 1);
        return -EINTR;
    }
    return 0;
}

static int write_etc(const char *netns, const char *hosts)
{
    char dir[512], path[600];
    snprintf(dir, sizeof(dir), "%s/%s", MC_NETNS_ETC_DIR, netns);
    if (mkdir(MC_NETNS_ETC_DIR, 0755) < 0 && errno != EEXIST)
        return -errno;
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return -errno;
    snprintf(path, sizeof(path), "%s/hosts", dir);
    int rc = mc_write_file(path, hosts);
    if (rc < 0)
        return rc;
    snprintf(path, sizeof(path), "%s/resolv.conf", dir);
    return mc_write_file(path, RESOLV_CONF);
}

/* One member namespace (node or pod): record, create, wire, configure. */
static int up_member(up_ctx_t *u, const char *netns, const char *ip, const char *pod_ns,
                     const char *self_names)
{
    const mc_net_plan_t *p = u->p;
    char veth[MC_NET_IFNAMSIZ], cidr[40];
    mc_net_veth_name(netns, veth);
    int rc = step(u);
    if (rc < 0)
        return rc;
    if ((rc = mc_state_add(u->state, "netns", json_string(netns))) < 0 ||
        (rc = mc_state_add(u->state, "etc", json_string(netns))) < 0 ||
        (rc = mc_state_add(u->state, "links",
                           json_pack("{s:s, s:s}", "netns", netns, "name", veth))) < 0 ||
        (rc = mc_state_save(p->state_dir, u->state)) < 0)
        return up_fail(u, rc, netns, "cannot record it in net.json");
    if ((rc = mc_netns_create(netns)) < 0)
        return up_fail(u, rc, netns, "cannot create it");
    int fd = mc_netns_open(netns);
    if (fd < 0)
        return up_fail(u, fd, netns, "cannot open it");
    snprintf(cidr, sizeof(cidr), "%s/%u", ip, p->prefix_len);
    mc_link_req_t req = {.bridge = bridge_of(p),
                         .host_if = veth,
                         .peer_nsfd = fd,
                         .addr = cidr,
                         .gateway = p->gateway};
    rc = mc_netns_run(u->cluster_fd, mc_link_veth_add, &req);
    if (rc >= 0)
        rc = mc_netns_run(fd, mc_link_iface_setup, &req);
    if (rc < 0) {
        close(fd);
        return up_fail(u, rc, netns, req.errbuf[0] ? req.errbuf : "netlink");
    }
    mc_nft_req_t nft = {.ruleset = zm_strbuf_str(&u->ruleset)};
    rc = mc_netns_run(fd, mc_nft_apply, &nft);
    close(fd);
    if (rc < 0)
        return up_fail(u, rc, netns, nft.errbuf);
    zm_strbuf_t hosts = {0};
    rc = mc_net_hosts_text(p, pod_ns, ip, self_names, &hosts);
    if (rc >= 0)
        rc = write_etc(netns, zm_strbuf_str(&hosts));
    zm_strbuf_free(&hosts);
    return rc < 0 ? up_fail(u, rc, netns, "cannot write /etc/netns files") : 0;
}

static int up_cluster(up_ctx_t *u, const char *netns)
{
    const mc_net_plan_t *p = u->p;
    char cidr[40];
    int rc = step(u);
    if (rc < 0)
        return rc;
    if ((rc = mc_state_add(u->state, "netns", json_string(netns))) < 0 ||
        (rc = mc_state_add(u->state, "links",
                           json_pack("{s:s, s:s}", "netns", netns, "name", bridge_of(p)))) < 0 ||
        (rc = mc_state_save(p->state_dir, u->state)) < 0)
        return up_fail(u, rc, netns, "cannot record it in net.json");
    if ((rc = mc_netns_create(netns)) < 0)
        return up_fail(u, rc, netns, "cannot create it");
    if ((u->cluster_fd = mc_netns_open(netns)) < 0)
        return up_fail(u, u->cluster_fd, netns, "cannot open it");
    snprintf(cidr, sizeof(cidr), "%s/%u", p->gateway, p->prefix_len);
    mc_link_req_t req = {.bridge = bridge_of(p), .addr = cidr};
    rc = mc_netns_run(u->cluster_fd, mc_link_bridge_setup, &req);
    return rc < 0 ? up_fail(u, rc, netns, req.errbuf) : 0;
}

int mc_net_up(const mc_net_plan_t *p, zm_err_t *err)
{
    int rc = mc_net_plan_check(p, err);
    if (rc < 0)
        return rc;
    char name[MC_NET_NETNS_MAX + 1], path[4096];
    json_t *old = NULL;
    mc_state_path(p->state_dir, path, sizeof(path));
    if ((rc = mc_state_load(p->state_dir, &old)) < 0 || old) {
        json_decref(old);
        zm_err_set(err, NULL, 0, "%s exists: the sandbox is up (or was not taken down)", path);
        return -EEXIST;
    }
    mc_net_cluster_netns(p->prefix, name, sizeof(name));
    if (mc_netns_exists(name)) {
        zm_err_set(err, NULL, 0, "network namespace %s exists: run down first", name);
        return -EEXIST;
    }
    up_ctx_t u = {.p = p, .err = err, .cluster_fd = -1};
    u.state =
        json_pack("{s:i, s:s, s:s}", "version", 1, "prefix", p->prefix, "bridge", bridge_of(p));
    if (!u.state)
        return -ENOMEM;
    rc = mc_net_nft_ruleset(p, &u.ruleset);
    if (rc >= 0)
        rc = up_cluster(&u, name);
    for (size_t i = 0; i < p->n_nodes && rc >= 0; i++) {
        mc_net_node_netns(p->prefix, p->nodes[i].name, name, sizeof(name));
        rc = up_member(&u, name, p->nodes[i].ip, NULL, p->nodes[i].name);
    }
    for (size_t i = 0; i < p->n_pods && rc >= 0; i++) {
        const mc_net_pod_t *pod = &p->pods[i];
        mc_net_pod_netns(p->prefix, pod->ns, pod->name, name, sizeof(name));
        rc = up_member(&u, name, pod->ip, pod->ns, pod->name);
    }
    if (u.cluster_fd >= 0)
        close(u.cluster_fd);
    zm_strbuf_free(&u.ruleset);
    json_decref(u.state);
    return rc < 0 ? rc : 0;
}

/* ---- down ---- */

static int first_err(int *acc, int rc)
{
    if (rc < 0 && *acc == 0)
        *acc = rc;
    return rc;
}

/* Names under dir that belong to prefix: PREFIX-cluster, PREFIX-node-*,
 * PREFIX-pod-*. Appended to arr (a json array of strings). */
static int sweep_names(const char *dir, const char *prefix, json_t *arr)
{
    static const char *const kinds[] = {"-cluster", "-node-", "-pod-"};
    for (size_t k = 0; k < 3; k++) {
        char start[64];
        snprintf(start, sizeof(start), "%s%s", prefix, kinds[k]);
        char **names = NULL;
        int n = mc_netns_list(dir, start, &names);
        if (n < 0)
            return n;
        for (int i = 0; i < n; i++)
            if (k != 0 || !strcmp(names[i], start))
                json_array_append_new(arr, json_string(names[i]));
        mc_netns_names_free(&names, n);
    }
    return 0;
}

static bool in_array(json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (!strcmp(json_string_value(v), s)) return true;
    return false;
}

/* The union of the state's `key` list and what is found under dir. */
static json_t *names_to_remove(json_t *st, const char *key, const char *dir, const char *prefix)
{
    json_t *out = json_array(), *found = json_array();
    if (!out || !found) {
        json_decref(out);
        json_decref(found);
        return NULL;
    }
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(st, key), i, v)
    {
        const char *s = json_string_value(v);
        if (s && !in_array(out, s))
            json_array_append_new(out, json_string(s));
    }
    if (prefix)
        sweep_names(dir, prefix, found);
    json_array_foreach(found, i, v)
    {
        if (!in_array(out, json_string_value(v)))
            json_array_append(out, v);
    }
    json_decref(found);
    return out;
}

int mc_net_down(const char *state_dir, const char *prefix, zm_err_t *err)
{
    json_t *st = NULL;
    int acc = 0, rc = mc_state_load(state_dir, &st);
    if (rc < 0) {
        zm_err_set(err, NULL, 0, "%s/net.json: unreadable (%s)", state_dir, strerror(-rc));
        return rc; /* keep it: a human should look before we sweep blindly */
    }
    if (!prefix)
        prefix = json_string_value(json_object_get(st, "prefix"));
    if (!prefix && !st)
        return 0;
    if (prefix && !name_ok(prefix, 24)) {
        json_decref(st);
        zm_err_set(err, NULL, 0, "bad sandbox prefix '%s'", prefix);
        return -EINVAL;
    }
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(st, "procs"), i, v)
    {
        pid_t pid = (pid_t)json_integer_value(json_object_get(v, "pid"));
        unsigned long long start =
            (unsigned long long)json_integer_value(json_object_get(v, "start"));
        if (first_err(&acc, mc_proc_stop(pid, start, PROC_STOP_MS)) < 0)
            zm_err_set(err, NULL, 0, "process %d does not stop", (int)pid);
    }
    json_t *ns = names_to_remove(st, "netns", MC_NETNS_RUN_DIR, prefix);
    json_t *etc = names_to_remove(st, "etc", MC_NETNS_ETC_DIR, prefix);
    if (!ns || !etc)
        first_err(&acc, -ENOMEM);
    json_array_foreach(ns, i, v)
    {
        const char *name = json_string_value(v);
        if (first_err(&acc, mc_netns_kill_procs(name, PROC_STOP_MS)) < 0)
            zm_err_set(err, NULL, 0, "processes in %s do not stop", name);
        if ((rc = first_err(&acc, mc_netns_delete(name))) < 0)
            zm_err_set(err, NULL, 0, "cannot remove namespace %s (%s)", name, strerror(-rc));
    }
    json_array_foreach(etc, i, v)
    {
        const char *name = json_string_value(v);
        if ((rc = first_err(&acc, mc_rmtree_etc(name))) < 0)
            zm_err_set(err, NULL, 0, "cannot remove %s/%s (%s)", MC_NETNS_ETC_DIR, name,
                       strerror(-rc));
    }
    json_decref(ns);
    json_decref(etc);
    json_decref(st);
    if (acc == 0) {
        char path[4096];
        mc_state_path(state_dir, path, sizeof(path));
        if (unlink(path) < 0 && errno != ENOENT)
            first_err(&acc, -errno);
    }
    return acc;
}

/* ---- changes to a running sandbox (apply / delete) ---- */

/* Loads net.json and opens the cluster namespace for up_member. */
static int change_begin(const mc_net_plan_t *p, up_ctx_t *u, zm_err_t *err)
{
    char name[MC_NET_NETNS_MAX + 1];
    *u = (up_ctx_t){.p = p, .err = err, .cluster_fd = -1};
    int rc = mc_state_load(p->state_dir, &u->state);
    if (rc < 0 || !u->state) {
        zm_err_set(err, NULL, 0, "%s/net.json: %s", p->state_dir,
                   rc < 0 ? strerror(-rc) : "missing (is the sandbox up?)");
        return rc < 0 ? rc : -ENOENT;
    }
    mc_net_cluster_netns(p->prefix, name, sizeof(name));
    if ((u->cluster_fd = mc_netns_open(name)) < 0) {
        zm_err_set(err, NULL, 0, "namespace %s: %s", name, strerror(-u->cluster_fd));
        return u->cluster_fd;
    }
    return mc_net_nft_ruleset(p, &u->ruleset);
}

static void change_end(up_ctx_t *u)
{
    if (u->cluster_fd >= 0)
        close(u->cluster_fd);
    zm_strbuf_free(&u->ruleset);
    json_decref(u->state);
}

/* In a pod namespace: a gratuitous ARP from eth0. A re-added pod may get
 * an IP that an old pod had; without this, neighbours' caches keep the old
 * MAC for up to a reachable-time and connections go nowhere. */
static int send_garp(void *arg)
{
    const char *ip = arg;
    struct in_addr a;
    int ifindex = (int)if_nametoindex("eth0");
    if (ifindex == 0 || inet_pton(AF_INET, ip, &a) != 1)
        return -ENODEV;
    int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ARP));
    if (fd < 0)
        return -errno;
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "eth0");
    int rc = ioctl(fd, SIOCGIFHWADDR, &ifr) < 0 ? -errno : 0;
    uint8_t pkt[28] = {0, 1, 8, 0, 6, 4, 0, 1}; /* ethernet, IPv4, request */
    memcpy(pkt + 8, ifr.ifr_hwaddr.sa_data, 6);
    memcpy(pkt + 14, &a, 4);
    memcpy(pkt + 24, &a, 4); /* target = sender: gratuitous */
    struct sockaddr_ll to = {.sll_family = AF_PACKET,
                             .sll_protocol = htons(ETH_P_ARP),
                             .sll_ifindex = ifindex,
                             .sll_halen = 6,
                             .sll_addr = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
    if (rc == 0 && sendto(fd, pkt, sizeof(pkt), 0, (struct sockaddr *)&to, sizeof(to)) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

int mc_net_pod_add(const mc_net_plan_t *p, const mc_net_pod_t *pod, zm_err_t *err)
{
    up_ctx_t u;
    char name[MC_NET_NETNS_MAX + 1];
    int rc = change_begin(p, &u, err);
    if (rc >= 0) {
        mc_net_pod_netns(p->prefix, pod->ns, pod->name, name, sizeof(name));
        rc = up_member(&u, name, pod->ip, pod->ns, pod->name);
    }
    int fd = rc >= 0 ? mc_netns_open(name) : -1;
    if (fd >= 0) {
        mc_netns_run(fd, send_garp, (void *)pod->ip); /* best effort */
        close(fd);
    }
    change_end(&u);
    return rc < 0 ? rc : 0;
}

static void array_remove_str(json_t *arr, const char *s)
{
    for (size_t i = json_array_size(arr); i-- > 0;) {
        json_t *v = json_array_get(arr, i);
        const char *x = json_is_string(v) ? json_string_value(v)
                                          : json_string_value(json_object_get(v, "netns"));
        if (x && !strcmp(x, s))
            json_array_remove(arr, i);
    }
}

int mc_net_pod_del(const mc_net_plan_t *p, const char *ns, const char *pod, zm_err_t *err)
{
    char name[MC_NET_NETNS_MAX + 1];
    mc_net_pod_netns(p->prefix, ns, pod, name, sizeof(name));
    json_t *st = NULL;
    int rc = mc_state_load(p->state_dir, &st);
    if (rc < 0 || !st) {
        zm_err_set(err, NULL, 0, "%s/net.json: unreadable", p->state_dir);
        return rc < 0 ? rc : -ENOENT;
    }
    /* Its processes first, then the namespace (its veth dies with it). */
    json_t *procs = json_object_get(st, "procs");
    for (size_t i = json_array_size(procs); i-- > 0;) {
        json_t *v = json_array_get(procs, i);
        if (strcmp(json_string_value(json_object_get(v, "netns")) ?: "", name) != 0)
            continue;
        mc_proc_stop((pid_t)json_integer_value(json_object_get(v, "pid")),
                     (unsigned long long)json_integer_value(json_object_get(v, "start")),
                     PROC_STOP_MS);
        json_array_remove(procs, i);
    }
    mc_netns_kill_procs(name, PROC_STOP_MS);
    char cluster[MC_NET_NETNS_MAX + 1], veth[MC_NET_IFNAMSIZ];
    mc_net_cluster_netns(p->prefix, cluster, sizeof(cluster));
    mc_net_veth_name(name, veth);
    int cfd = mc_netns_open(cluster);
    if (cfd >= 0) {
        mc_link_req_t req = {.host_if = veth};
        mc_netns_run(cfd, mc_link_del, &req); /* a leftover would block a re-add */
        close(cfd);
    }
    if ((rc = mc_netns_delete(name)) < 0 || (rc = mc_rmtree_etc(name)) < 0) {
        zm_err_set(err, NULL, 0, "cannot remove namespace %s (%s)", name, strerror(-rc));
    } else {
        array_remove_str(json_object_get(st, "netns"), name);
        array_remove_str(json_object_get(st, "etc"), name);
        array_remove_str(json_object_get(st, "links"), name);
        rc = mc_state_save(p->state_dir, st);
    }
    json_decref(st);
    return rc;
}

/* One member: replace its service table atomically (add+delete+define in
 * one nftables transaction) and rewrite its hosts file. */
static int refresh_member(up_ctx_t *u, const char *netns, const char *ip, const char *pod_ns,
                          const char *self)
{
    int fd = mc_netns_open(netns);
    if (fd < 0)
        return up_fail(u, fd, netns, "cannot open it");
    zm_strbuf_t rs = {0};
    zm_strbuf_appends(&rs, "add table ip zmesh-svc\ndelete table ip zmesh-svc\n");
    zm_strbuf_appends(&rs, zm_strbuf_str(&u->ruleset));
    mc_nft_req_t nft = {.ruleset = zm_strbuf_str(&rs)};
    int rc = zm_strbuf_error(&rs);
    if (rc >= 0)
        rc = mc_netns_run(fd, mc_nft_apply, &nft);
    close(fd);
    zm_strbuf_free(&rs);
    if (rc < 0)
        return up_fail(u, rc, netns, nft.errbuf);
    zm_strbuf_t hosts = {0};
    rc = mc_net_hosts_text(u->p, pod_ns, ip, self, &hosts);
    if (rc >= 0)
        rc = write_etc(netns, zm_strbuf_str(&hosts));
    zm_strbuf_free(&hosts);
    return rc < 0 ? up_fail(u, rc, netns, "cannot write /etc/netns files") : 0;
}

int mc_net_services_update(const mc_net_plan_t *p, zm_err_t *err)
{
    up_ctx_t u;
    char name[MC_NET_NETNS_MAX + 1];
    int rc = change_begin(p, &u, err);
    for (size_t i = 0; i < p->n_nodes && rc >= 0; i++) {
        mc_net_node_netns(p->prefix, p->nodes[i].name, name, sizeof(name));
        rc = refresh_member(&u, name, p->nodes[i].ip, NULL, p->nodes[i].name);
    }
    for (size_t i = 0; i < p->n_pods && rc >= 0; i++) {
        const mc_net_pod_t *pod = &p->pods[i];
        mc_net_pod_netns(p->prefix, pod->ns, pod->name, name, sizeof(name));
        rc = refresh_member(&u, name, pod->ip, pod->ns, pod->name);
    }
    change_end(&u);
    return rc < 0 ? rc : 0;
}
