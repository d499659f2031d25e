/*
 * sandbox_run.h — steps shared by `up` (sandbox_up.c) and `apply` /
 * `delete` (sandbox_apply.c); internal to the sandbox verbs.
 *
 * A run context carries the state dir, the prefix, the loaded model and the
 * plan built from it, and the sandbox.json object being updated. Every
 * step that creates something records it in sandbox.json (or net.json, for
 * processes through mc_net_spawn) before it returns, so down finds it.
 */
#ifndef MC_SANDBOX_RUN_H
#define MC_SANDBOX_RUN_H

#include "sandbox.h"

#include <jansson.h>

typedef struct mc_run {
    const char *state_dir;
    const char *prefix;
    mc_model_t *model;
    mc_sandbox_plan_t plan;
    json_t *st; /* sandbox.json */
    FILE *out;
} mc_run_t;

/* Loads and resolves paths into r->model and builds r->plan. Input errors
 * set *input_error. */
int mc_run_load(mc_run_t *r, const char *const *paths, size_t n, int nodes, bool *input_error,
                zm_err_t *err);
void mc_run_clear(mc_run_t *r);

/* CA (created when missing, remembered in sandbox.json) and one certificate
 * per workload identity; then every config file into STATE/config. */
int mc_run_issue_certs(mc_run_t *r, zm_err_t *err);
int mc_run_compile(mc_run_t *r, zm_err_t *err);

/* Rewrites sandbox.json's nodes, pods and waypoints from the model (keeps
 * procs). */
int mc_run_record_model(mc_run_t *r);

/* Starts the app of one pod (no-op for waypoint pods and pods without TCP
 * ports or command) and records it in sandbox.json "procs". */
int mc_run_start_app(mc_run_t *r, const mc_pod_t *pod, zm_err_t *err);

/* Waits (bounded by timeout_ms) until every listed pod's app accepts
 * connections on every container port; pods NULL: every pod. */
int mc_run_wait_ready(mc_run_t *r, const mc_pod_t *const *pods, size_t n, int timeout_ms,
                      zm_err_t *err);

/* Stops one recorded process by component name and forgets it. */
int mc_run_stop_component(mc_run_t *r, const char *component);

/* The component name of a pod's app: "<ns>.<pod>". */
void mc_run_app_component(const mc_pod_t *pod, char *buf, size_t len);

/* Hands node's ambient pods to its ztunnel at sock (add each, then
 * snapshot_sent: ztunnel drops the pods not in the snapshot). */
int mc_run_enroll_node(mc_run_t *r, const mc_node_t *node, const char *sock, zm_err_t *err);

/* After apply/delete: every running ztunnel gets the new snapshot. */
int mc_run_enroll_all(mc_run_t *r, zm_err_t *err);

#endif
