/*
 * sandbox_int.h — pieces of the sandbox network layer shared between its
 * files (sandbox_net.c, sandbox_link.c, sandbox_proc.c, sandbox_state.c);
 * not for other modules.
 *
 * The mc_link_* functions run inside a namespace (called through
 * mc_netns_run) and each opens and closes its own netlink socket there, so
 * the socket belongs to that namespace. On failure they write a reason into
 * the caller's errbuf.
 */
#ifndef MC_SANDBOX_INT_H
#define MC_SANDBOX_INT_H

#include "sandbox_net.h"

#include <stddef.h>
#include <sys/types.h>

typedef struct mc_link_req {
    const char *bridge;  /* cluster side: the bridge */
    const char *host_if; /* cluster side: the veth end on the bridge */
    int peer_nsfd;       /* the namespace that gets eth0 */
    const char *addr;    /* "10.244.1.5/16" */
    const char *gateway; /* "10.244.0.1" (NULL: no default route) */
    char errbuf[256];
} mc_link_req_t;

/* In the cluster namespace: lo up, bridge created, addr on it, up. */
int mc_link_bridge_setup(void *req);
/* In the cluster namespace: veth host_if (on bridge, up) <-> eth0 in peer_nsfd. */
int mc_link_veth_add(void *req);
/* In the cluster namespace: delete link host_if (a veth takes its peer
 * along at once, unlike a namespace's deletion, which the kernel finishes
 * later); 0 when it does not exist. */
int mc_link_del(void *req);
/* In a pod or node namespace: lo and eth0 up, addr on eth0, default route. */
int mc_link_iface_setup(void *req);

typedef struct mc_nft_req {
    const char *ruleset;
    char errbuf[256];
} mc_nft_req_t;

/* In a namespace: apply an nftables ruleset text with libnftables. */
int mc_nft_apply(void *req);

/* net.json. The state is a jansson object kept in memory by the caller:
 * {"version":1, "prefix":..., "netns":[...], "etc":[...],
 *  "links":[{"netns","name"}], "procs":[{"pid","start","netns"}]}. */
struct json_t;
int mc_state_path(const char *state_dir, char *buf, size_t len);
/* Load (missing file: *out = NULL, returns 0). */
int mc_state_load(const char *state_dir, struct json_t **out);
/* Write atomically (temp file, fsync, rename); creates state_dir. */
int mc_state_save(const char *state_dir, struct json_t *state);
/* Append a string / object to the array `key` (created if missing). */
int mc_state_add(struct json_t *state, const char *key, struct json_t *item);
/* Record one process and save. */
int mc_state_add_proc(const char *state_dir, pid_t pid, unsigned long long start,
                      const char *netns);
/* Forget one process (if recorded) and save; 1 if it was recorded. */
int mc_state_del_proc(const char *state_dir, pid_t pid, unsigned long long *start);

/* Text writers for /etc/netns/NAME/. */
int mc_write_file(const char *path, const char *text);
int mc_rmtree_etc(const char *netns);

#endif
