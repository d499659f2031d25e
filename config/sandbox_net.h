/*
 * sandbox_net.h — the network layer of `meshctl up`: network namespaces, one
 * bridge, veths, addresses, routes, service NAT and hosts files.
 *
 * Layout (DESIGN.md "Sandbox model"): a cluster namespace PREFIX-cluster
 * holds the bridge and the gateway address; every node (PREFIX-node-NAME,
 * where its ztunnel runs) and every pod (PREFIX-pod-NS-NAME) is a namespace
 * whose eth0 is a veth whose peer sits in the cluster namespace, enslaved to
 * the bridge. All of them share one L2 segment (gateway/prefix_len, e.g.
 * 10.244.0.0/16) and have a default route via the gateway, which forwards
 * nothing (the cluster namespace keeps ip_forward off), so nothing leaves
 * the sandbox and nothing is added to the host's own namespace. Namespaces
 * are named the way iproute2 names them (a bind mount under /run/netns), so
 * `ip netns exec NAME CMD` works for users too.
 *
 * Services are kube-proxy style: every pod and node namespace gets an
 * nftables table `ip zmesh-svc` whose nat output chain DNATs tcp to
 * clusterIP:port onto one endpoint (numgen random) and its target port; a
 * port with no endpoint is rejected with a tcp reset. The chain runs at
 * priority dstnat+10 so that a capture chain at dstnat (ztunnel's in-pod
 * redirection) sees the service address first: the first NAT of a
 * connection wins.
 *
 * Names resolve from per-namespace files /etc/netns/NETNS/{hosts,
 * resolv.conf} that `ip netns exec`, mc_net_spawn and mc_net_exec bind-mount
 * over /etc: localhost, the pod itself, and every service with a cluster IP
 * as svc.ns and svc.ns.svc.DOMAIN (plus bare svc inside its own namespace).
 * resolv.conf points at 127.0.0.1 with timeout:1 attempts:1: no DNS server
 * listens there, so a name that is not in hosts fails at once (port
 * unreachable) instead of leaking to the host's resolver.
 *
 * State: everything is recorded in STATE/net.json before it is created
 * (namespaces, /etc/netns dirs, veths, spawned processes with their start
 * times), so mc_net_down after a crash or a partial up removes it all; down
 * also sweeps namespaces and /etc/netns dirs that carry the prefix but that
 * the state lost, and kills every process still inside those namespaces.
 *
 * Threading: namespace work runs on short-lived threads that setns() into
 * the namespace (the caller's thread never changes namespace). The functions
 * are not reentrant on one state dir: one meshctl at a time.
 */
#ifndef MC_SANDBOX_NET_H
#define MC_SANDBOX_NET_H

#include "zm.h"

#include <stdint.h>
#include <sys/types.h>

#define MC_NET_IFNAMSIZ 16   /* IFNAMSIZ: 15 characters + NUL */
#define MC_NET_NETNS_MAX 200 /* longest netns name we make (< NAME_MAX) */

typedef struct mc_net_node {
    const char *name;     /* "node-1": namespace PREFIX-node-node-1 */
    const char *ip;       /* its address on the segment, e.g. "10.244.0.11" */
    const char *pod_cidr; /* "10.244.1.0/24": its pods' IPs must fall in it; NULL: unchecked */
} mc_net_node_t;

typedef struct mc_net_pod {
    const char *ns;   /* Kubernetes namespace */
    const char *name; /* pod name; namespace PREFIX-pod-NS-NAME */
    const char *node; /* a node's name in the plan */
    const char *ip;   /* "10.244.1.5" */
} mc_net_pod_t;

typedef struct mc_net_svc_port {
    uint16_t port;        /* service port on the cluster IP */
    uint16_t target_port; /* endpoint port unless the endpoint overrides it */
} mc_net_svc_port_t;

typedef struct mc_net_endpoint {
    const char *ip; /* pod IP */
    /* NULL, or one entry per service port: the port a named targetPort
     * resolved to on this pod (0 = the service port's target_port). */
    const uint16_t *target_ports;
} mc_net_endpoint_t;

typedef struct mc_net_service {
    const char *ns;
    const char *name;
    const char *cluster_ip; /* NULL: headless, neither NATed nor in hosts */
    const mc_net_svc_port_t *ports;
    size_t n_ports;
    const mc_net_endpoint_t *endpoints; /* may be empty: connections are reset */
    size_t n_endpoints;
} mc_net_service_t;

/* What `up` builds. The plan borrows every string and array. */
typedef struct mc_net_plan {
    const char *prefix;    /* [a-z0-9-]{1,24}, e.g. "zm" */
    const char *state_dir; /* net.json lives here (created if missing) */
    const char *bridge;    /* bridge name in the cluster namespace; NULL: "zmbr0" */
    const char *gateway;   /* bridge address, e.g. "10.244.0.1" */
    unsigned prefix_len;   /* segment prefix length, e.g. 16 */
    const char *domain;    /* cluster domain; NULL: "cluster.local" */
    const mc_net_node_t *nodes;
    size_t n_nodes;
    const mc_net_pod_t *pods;
    size_t n_pods;
    const mc_net_service_t *services;
    size_t n_services;
    /* Tests only: behave as if killed after this many creation steps
     * (return -EINTR, leaving the state as a crash would); 0 = off. */
    unsigned debug_stop_after;
} mc_net_plan_t;

/* Check the plan (names, addresses, references, uniqueness, veth name
 * collisions). 0, or -EINVAL with err filled. */
int mc_net_plan_check(const mc_net_plan_t *plan, zm_err_t *err);

/* Build the sandbox network. Refuses (-EEXIST) when net.json or the
 * cluster namespace already exists (run down first). On failure what was
 * made stays recorded: call mc_net_down to remove it. */
int mc_net_up(const mc_net_plan_t *plan, zm_err_t *err);

/* Remove everything recorded in STATE/net.json and everything named with
 * the prefix (prefix NULL: the one recorded in the state; if neither exists
 * there is nothing to do). Kills recorded processes and every process still
 * inside the namespaces (SIGTERM, then SIGKILL after a bounded wait).
 * Idempotent. 0, or the first -errno with err filled (it keeps going). */
int mc_net_down(const char *state_dir, const char *prefix, zm_err_t *err);

/* Changes to a running sandbox (meshctl apply / delete), recorded in
 * net.json like up's steps. pod_add builds one more pod namespace (the
 * plan gives the services for its rules and hosts; the pod need not be in
 * plan->pods); pod_del stops what runs in it and removes it; and
 * services_update replaces the service rules and hosts files of every
 * node and pod of the plan (each table swap is one nftables transaction). */
int mc_net_pod_add(const mc_net_plan_t *plan, const mc_net_pod_t *pod, zm_err_t *err);
int mc_net_pod_del(const mc_net_plan_t *plan, const char *ns, const char *pod, zm_err_t *err);
int mc_net_services_update(const mc_net_plan_t *plan, zm_err_t *err);

/* Start argv (argv[0] looked up in PATH) inside network namespace `netns`
 * with its /etc/netns files mounted, in a new session, stdin /dev/null and
 * stdout+stderr appended to log_path (NULL: /dev/null). The pid is recorded
 * in the state before this returns, so down kills it. */
int mc_net_spawn(const mc_net_plan_t *plan, const char *netns, char *const argv[],
                 const char *log_path, pid_t *pid, zm_err_t *err);

/* Run argv inside `netns` like mc_net_spawn but with the caller's stdio and
 * wait for it: its exit code (128+signal when killed), or -ETIMEDOUT after
 * timeout_ms (0: wait forever) once it has been killed, or -errno. */
int mc_net_exec(const mc_net_plan_t *plan, const char *netns, char *const argv[], int timeout_ms,
                zm_err_t *err);

/* Stop one spawned process (SIGTERM, bounded wait, SIGKILL) and forget it. */
int mc_net_kill(const mc_net_plan_t *plan, pid_t pid);

/* Names. Each writes a NUL-terminated name into buf and returns its length,
 * or -ENAMETOOLONG. Names longer than MC_NET_NETNS_MAX are cut and end with
 * an 8-hex hash of the full name, so they stay unique. */
int mc_net_cluster_netns(const char *prefix, char *buf, size_t len);
int mc_net_node_netns(const char *prefix, const char *node, char *buf, size_t len);
int mc_net_pod_netns(const char *prefix, const char *ns, const char *pod, char *buf, size_t len);

/* The cluster-side veth of a namespace: "zv" + 8 hex digits of a hash of
 * the namespace name (fits IFNAMSIZ). The end inside the namespace is eth0. */
void mc_net_veth_name(const char *netns, char buf[MC_NET_IFNAMSIZ]);

/* Text generators (also used by up; exposed for tests). Each appends to sb
 * and returns 0 or the strbuf's -errno. pod_ns is the Kubernetes namespace
 * whose services get bare names (NULL: none, as in node namespaces); self
 * names and self_ip (may be NULL) add the namespace's own line. */
struct zm_strbuf;
int mc_net_nft_ruleset(const mc_net_plan_t *plan, struct zm_strbuf *sb);
int mc_net_hosts_text(const mc_net_plan_t *plan, const char *pod_ns, const char *self_ip,
                      const char *self_names, struct zm_strbuf *sb);

#endif
