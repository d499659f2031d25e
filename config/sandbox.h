/*
 * sandbox.h — `meshctl up` and friends above the network layer: the model
 * mapped onto a network plan, the sandbox's own state file, the node agent
 * (enrollment client), and the up / down / apply / status sequences.
 *
 * State: STATE/sandbox.json holds what the verbs after `up` need without
 * reloading YAML: the input paths, the prefix, nodes, pods (IP, node,
 * netns, ambient, waypoint), waypoints, and every process meshctl started
 * (component name, pid, start time, log). It is written before the network
 * is built (so `down` always knows the prefix) and after each phase.
 * STATE/net.json belongs to sandbox_net.c; both are removed by down.
 * Layout under STATE: ca/ (the CA, kept across down when up found it
 * there), certs/<ns>/<sa>/, config/<name>.cfg, logs/<component>.log,
 * run/<node>/ztunnel.sock and the node agent's files (below).
 *
 * Daemons: zm-echo, ztunnel and waypoint are looked up next to the meshctl
 * executable (build/config/meshctl → build/config/echo/zm-echo,
 * build/ztunnel/ztunnel, build/waypoint/waypoint; also in the same folder),
 * or given by ZMESH_ECHO / ZMESH_ZTUNNEL / ZMESH_WAYPOINT. When ztunnel or
 * waypoint is missing no daemon starts and pods talk directly.
 *
 * Threading: single-threaded callers; namespace work uses mc_netns_run.
 */
#ifndef MC_SANDBOX_H
#define MC_SANDBOX_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "model.h"
#include "sandbox_net.h"
#include "zm.h"

#define MC_SANDBOX_PREFIX "zm"
#define MC_SANDBOX_GATEWAY "10.244.0.1"
#define MC_SANDBOX_PREFIX_LEN 16
#define MC_SANDBOX_JSON "sandbox.json"
#define MC_ANNOTATION_COMMAND "zmesh.io/command"
/* Extra flags for the echo app, e.g. "--fail 0.5 --delay-ms 100". */
#define MC_ANNOTATION_ECHO_ARGS "zmesh.io/echo-args"

/* ---- model → network plan (sandbox_plan.c) ---- */

/* A network plan built from a resolved model; owns the arrays, borrows the
 * model's strings (keep the model alive as long as the plan). */
typedef struct mc_sandbox_plan {
    mc_net_plan_t net;
    mc_net_node_t *nodes;
    char (*node_ips)[16];
    mc_net_pod_t *pods;
    mc_net_service_t *services;
    mc_net_svc_port_t *ports;
    mc_net_endpoint_t *endpoints;
    uint16_t *target_ports;
} mc_sandbox_plan_t;

/* Every node (address 10.244.0.<index+1>, pod CIDR its /24), every pod
 * (waypoint pseudo pods included), every service; gateway 10.244.0.1/16.
 * A service's endpoints are the union of its ports' endpoints; each keeps
 * the port it resolved to per service port. 0 or -ENOMEM. */
int mc_sandbox_plan_build(const mc_model_t *m, const char *prefix, const char *state_dir,
                          mc_sandbox_plan_t *out);
void mc_sandbox_plan_clear(mc_sandbox_plan_t *p);
/* The node's address on the sandbox segment. */
void mc_sandbox_node_ip(const mc_node_t *n, char buf[16]);

/* ---- node agent (sandbox_agent.c) ---- */

typedef struct mc_agent_pod {
    const char *uid; /* stable per pod: "<ns>/<name>" */
    const char *name;
    const char *ns;
    const char *service_account;
    const char *netns; /* a name under /run/netns, or a path when it starts with '/' */
} mc_agent_pod_t;

/* Connects to a ztunnel's enrollment socket (retrying until timeout_ms
 * while nobody listens), sends add for every pod with its namespace fd,
 * then snapshot_sent, waiting for each ack (bounded by timeout_ms each).
 * 0, -ETIMEDOUT, -EREMOTEIO (a nack: err has ztunnel's reason), -errno. */
int mc_agent_sync(const char *sock_path, const mc_agent_pod_t *pods, size_t n, int timeout_ms,
                  zm_err_t *err);
/* The two halves of mc_agent_sync, for a connection kept open: connect
 * (retrying while nobody listens; -ETIMEDOUT then), and one snapshot on an
 * open connection (the socket stays open either way). */
int mc_agent_connect(const char *sock_path, int timeout_ms);
int mc_agent_send_snapshot(int sock, const mc_agent_pod_t *pods, size_t n, int timeout_ms,
                           zm_err_t *err);

/* ---- the per-node agent process (sandbox_agent_loop.c, sandbox_agent_ctl.c) ----
 *
 * `meshctl node-agent --state DIR --node NODE` (started by up inside the
 * node's namespace, recorded in sandbox.json "procs" with kind "agent" and
 * "node") is the node's kubelet and CNI agent: it runs the node's ztunnel,
 * restarts it when it exits, and sends it the node's ambient pods (read
 * from sandbox.json) each time it connects and on SIGHUP. It talks to the
 * other verbs through files under STATE/run/<node>/, each replaced
 * atomically:
 *   ztunnel.pid  "<pid> <start-time> <restarts>": the ztunnel it runs now;
 *   agent.ready  "<seq> <ztunnel-pid>": the last snapshot ztunnel acked;
 *                seq is the highest SIGHUP sequence (sigqueue value) the
 *                snapshot covers, 0 for the first one;
 *   agent.error  the last enrollment failure (removed on success). */
#define MC_AGENT_ZTUNNEL_FILE "ztunnel.pid"
#define MC_AGENT_READY_FILE "agent.ready"
#define MC_AGENT_ERROR_FILE "agent.error"

struct json_t;

/* Runs the agent until SIGTERM/SIGINT (then stops its ztunnel): 0, or
 * -errno when it cannot start (err filled). Logs to stderr. */
int mc_agent_run(const char *state_dir, const char *node, zm_err_t *err);

/* STATE/run/<node>/<name>. */
int mc_agent_file(const char *state_dir, const char *node, const char *name, char *buf, size_t len);
/* The agent's files: 0, or -ENOENT / -EBADMSG. */
int mc_agent_read_ztunnel(const char *state_dir, const char *node, long *pid,
                          unsigned long long *start, long *restarts);
int mc_agent_read_ready(const char *state_dir, const char *node, long *seq, long *zt_pid);

/* up: waits (bounded) until every agent in st's procs acked a first
 * snapshot; -ETIMEDOUT or -ESRCH (an agent exited) with err naming its log. */
int mc_agent_wait_ready(const char *state_dir, struct json_t *st, int timeout_ms, zm_err_t *err);
/* apply / delete: signals every live agent to send a new snapshot and waits
 * (bounded) until each is acked. -ESRCH when no agent runs (the caller
 * enrolls directly then). */
int mc_agent_notify(const char *state_dir, struct json_t *st, int timeout_ms, zm_err_t *err);

/* ---- sandbox state (sandbox_state_json.c) ---- */

struct json_t;
/* STATE/sandbox.json: 0 with *out NULL when missing; -EBADMSG unreadable. */
int mc_sandbox_load(const char *state_dir, struct json_t **out);
int mc_sandbox_save(const char *state_dir, struct json_t *st);
/* A component's log path: STATE/logs/<component>.log. */
int mc_sandbox_log_path(const char *state_dir, const char *component, char *buf, size_t len);
/* Where a binary is (see the file comment): 0 with path filled, -ENOENT. */
int mc_sandbox_find_bin(const char *name, char *buf, size_t len);
/* True when pid is alive with that start time (0: any). */
bool mc_sandbox_pid_alive(long pid, unsigned long long start);

/* ---- verbs' work (sandbox_up.c, sandbox_down.c, sandbox_status.c) ---- */

typedef struct mc_sandbox_opts {
    const char *state_dir;
    const char *const *files;
    size_t nfiles;
    int nodes;               /* 0: from the model */
    const char *prefix;      /* NULL: $ZMESH_PREFIX, else "zm" */
    unsigned test_die_after; /* $ZMESH_TEST_DIE_AFTER: SIGKILL self after N net steps */
} mc_sandbox_opts_t;

/* Brings the sandbox up; prints a summary to out. *input_error is set when
 * the failure is the YAML's (exit 2). On failure after the network started
 * to be built, what exists stays recorded for down. */
int mc_sandbox_up(const mc_sandbox_opts_t *o, FILE *out, bool *input_error, zm_err_t *err);

/* Stops every process, removes the network and the state files up made.
 * Idempotent; works after a crash or partial up. */
int mc_sandbox_down(const char *state_dir, zm_err_t *err);

/* Prints the status (text table or one JSON object). */
int mc_sandbox_status(const char *state_dir, bool json, FILE *out, zm_err_t *err);

/* Runs argv in pod ns/name: its exit code, or -errno (-ENOENT: no such pod). */
int mc_sandbox_exec(const char *state_dir, const char *ns, const char *pod, char *const argv[],
                    zm_err_t *err);

/* Changes a running sandbox: apply adds files to the input set, delete
 * removes the objects the files name; both recompute the model and add or
 * remove pods, echo apps and service rules, then rewrite the configs. */
int mc_sandbox_apply(const char *state_dir, const char *const *files, size_t nfiles, bool del,
                     FILE *out, bool *input_error, zm_err_t *err);

#endif
