/*
 * sandbox_up.c — the `meshctl up` sequence (see sandbox.h):
 *
 *   1. load + resolve the model, build and check the network plan (input
 *      errors: nothing is created);
 *   2. write sandbox.json (prefix, inputs) — from here on down can clean;
 *   3. mc_net_up: namespaces, bridge, veths, service rules, hosts files;
 *   4. CA and workload certificates, compiled configs;
 *   5. every pod's app, then wait until each one listens;
 *   6. daemons, when their binaries exist: a node agent per node (`meshctl
 *      node-agent`, in the node's namespace: it runs, restarts and enrolls
 *      the node's ztunnel; up waits until every ztunnel acked its pods), a
 *      waypoint per waypoint Gateway in its pseudo pod's namespace.
 *
 * ztunnel's enrollment socket is STATE/run/<node>/ztunnel.sock, written
 * into its config (node.enroll_socket) by mc_run_compile. mc_run_enroll_*
 * below is the direct way (one connection per sync), used by apply when no
 * agent runs.
 *
 * The test hook ZMESH_TEST_DIE_AFTER=N makes the process SIGKILL itself
 * after N network creation steps, leaving the state as a real crash would.
 */
#include "sandbox_run.h"

#include "compile.h"
#include "netns.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define READY_TIMEOUT_MS 10000
#define ENROLL_TIMEOUT_MS 5000
#define AGENT_READY_TIMEOUT_MS 15000

static json_t *abs_paths(const char *const *files, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        char real[PATH_MAX];
        json_array_append_new(arr, json_string(realpath(files[i], real) ? real : files[i]));
    }
    return arr;
}

static int spawn_daemon(mc_run_t *r, const char *kind, const char *component, const char *netns,
                        char *const argv[], const char *node, zm_err_t *err)
{
    char log[4096];
    mc_sandbox_log_path(r->state_dir, component, log, sizeof(log));
    pid_t pid = 0;
    int rc = mc_net_spawn(&r->plan.net, netns, argv, log, &pid, err);
    if (rc < 0)
        return rc;
    json_array_append_new(json_object_get(r->st, "procs"),
                          json_pack("{s:s, s:s, s:I, s:I, s:s, s:s}", "component", component,
                                    "kind", kind, "pid", (json_int_t)pid, "start",
                                    (json_int_t)mc_proc_start_time(pid), "netns", netns, "log",
                                    log));
    if (node) /* an agent: apply and status find it by its node */
        json_object_set_new(json_array_get(json_object_get(r->st, "procs"),
                                           json_array_size(json_object_get(r->st, "procs")) - 1),
                            "node", json_string(node));
    return mc_sandbox_save(r->state_dir, r->st);
}

/* One node's ambient pods, handed to its ztunnel. */
int mc_run_enroll_node(mc_run_t *r, const mc_node_t *node, const char *sock, zm_err_t *err)
{
    const mc_model_t *m = r->model;
    mc_agent_pod_t *pods = calloc(m->n_pods + 1, sizeof(*pods));
    char(*uids)[256] = calloc(m->n_pods + 1, sizeof(*uids));
    char(*names)[MC_NET_NETNS_MAX + 1] = calloc(m->n_pods + 1, sizeof(*names));
    int rc = -ENOMEM;
    if (pods && uids && names) {
        size_t n = 0;
        for (size_t i = 0; i < m->n_pods; i++) {
            const mc_pod_t *p = &m->pods[i];
            if (!p->ambient || p->gateway || p->node != node)
                continue;
            snprintf(uids[n], sizeof(uids[n]), "%s/%s", p->meta.ns, p->meta.name);
            mc_net_pod_netns(r->prefix, p->meta.ns, p->meta.name, names[n], sizeof(names[n]));
            pods[n] = (mc_agent_pod_t){.uid = uids[n],
                                       .name = p->meta.name,
                                       .ns = p->meta.ns,
                                       .service_account = p->service_account,
                                       .netns = names[n]};
            n++;
        }
        rc = mc_agent_sync(sock, pods, n, ENROLL_TIMEOUT_MS, err);
    }
    free(pods);
    free(uids);
    free(names);
    return rc;
}

int mc_run_enroll_all(mc_run_t *r, zm_err_t *err)
{
    int rc = 0;
    for (size_t i = 0; i < r->model->n_nodes && rc >= 0; i++) {
        char sock[4096];
        struct stat stt;
        snprintf(sock, sizeof(sock), "%s/run/%s/ztunnel.sock", r->state_dir,
                 r->model->nodes[i].name);
        if (stat(sock, &stt) < 0)
            continue; /* no ztunnel on that node: pods talk directly */
        rc = mc_run_enroll_node(r, &r->model->nodes[i], sock, err);
    }
    return rc;
}

/* One node agent per node (it runs the node's ztunnel and enrolls the
 * node's pods, see sandbox_agent_loop.c), then wait until every ztunnel
 * acked its first snapshot: up returns with the mesh capturing. */
static int start_agents(mc_run_t *r, zm_err_t *err)
{
    char self[PATH_MAX], state[PATH_MAX], dir[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (len <= 0 || !realpath(r->state_dir, state)) {
        zm_err_set(err, NULL, 0, "cannot locate meshctl itself or %s", r->state_dir);
        return -ENOENT;
    }
    self[len] = '\0';
    snprintf(dir, sizeof(dir), "%s/run", r->state_dir);
    mkdir(dir, 0755);
    const mc_model_t *m = r->model;
    int rc = 0;
    for (size_t i = 0; i < m->n_nodes && rc >= 0; i++) {
        const mc_node_t *node = &m->nodes[i];
        char comp[300], netns[MC_NET_NETNS_MAX + 1];
        snprintf(dir, sizeof(dir), "%s/run/%s", r->state_dir, node->name);
        mkdir(dir, 0755);
        snprintf(comp, sizeof(comp), "agent-%s", node->name);
        mc_net_node_netns(r->prefix, node->name, netns, sizeof(netns));
        char *argv[] = {self, "node-agent", "--state", state, "--node", (char *)node->name, NULL};
        rc = spawn_daemon(r, "agent", comp, netns, argv, node->name, err);
    }
    if (rc >= 0)
        rc = mc_agent_wait_ready(r->state_dir, r->st, AGENT_READY_TIMEOUT_MS, err);
    return rc;
}

static int start_daemons(mc_run_t *r, zm_err_t *err)
{
    char zt[4096], wp[4096];
    bool have_zt = mc_sandbox_find_bin("ztunnel", zt, sizeof(zt)) == 0;
    bool have_wp = mc_sandbox_find_bin("waypoint", wp, sizeof(wp)) == 0;
    const char *mode = have_zt ? "ztunnel" : "direct";
    json_object_set_new(r->st, "dataplane", json_string(mode));
    json_object_set_new(
        r->st, "dataplane_note",
        json_string(have_zt ? "ztunnel per node" : "no ztunnel binary: pods talk directly"));
    int rc = mc_sandbox_save(r->state_dir, r->st);
    const mc_model_t *m = r->model;
    if (rc >= 0 && have_zt)
        rc = start_agents(r, err);
    for (size_t i = 0; i < m->n_gateways && have_zt && have_wp && rc >= 0; i++) {
        const mc_gateway_t *gw = &m->gateways[i];
        if (!gw->is_waypoint || !gw->pod)
            continue;
        char comp[300], cfg[4096], cfgname[256], netns[MC_NET_NETNS_MAX + 1];
        snprintf(comp, sizeof(comp), "waypoint-%s-%s", gw->meta.ns, gw->meta.name);
        mc_compile_waypoint_name(gw, cfgname, sizeof(cfgname));
        snprintf(cfg, sizeof(cfg), "%s/config/%s", r->state_dir, cfgname);
        mc_net_pod_netns(r->prefix, gw->pod->meta.ns, gw->pod->meta.name, netns, sizeof(netns));
        char *argv[] = {wp, "--config", cfg, NULL};
        rc = spawn_daemon(r, "waypoint", comp, netns, argv, NULL, err);
    }
    return rc;
}

static void summary(mc_run_t *r, FILE *out)
{
    const mc_model_t *m = r->model;
    size_t pods = 0, ambient = 0, wps = 0;
    for (size_t i = 0; i < m->n_pods; i++) {
        if (m->pods[i].gateway) {
            wps++;
            continue;
        }
        pods++;
        ambient += m->pods[i].ambient;
    }
    fprintf(out,
            "sandbox up: %zu nodes, %zu pods (%zu ambient), %zu services, %zu waypoints\n"
            "  state %s, prefix %s\n"
            "  dataplane: %s\n",
            m->n_nodes, pods, ambient, m->n_services, wps, r->state_dir, r->prefix,
            json_string_value(json_object_get(r->st, "dataplane_note")));
    for (size_t i = 0; i < m->n_pods && i < 1; i++)
        fprintf(out, "  try: meshctl exec %s.%s --state %s -- cat /etc/hosts\n",
                m->pods[i].meta.name, m->pods[i].meta.ns, r->state_dir);
}

static const char *pick_prefix(const mc_sandbox_opts_t *o)
{
    if (o->prefix)
        return o->prefix;
    const char *e = getenv("ZMESH_PREFIX");
    return e && *e ? e : MC_SANDBOX_PREFIX;
}

int mc_sandbox_up(const mc_sandbox_opts_t *o, FILE *out, bool *input_error, zm_err_t *err)
{
    *input_error = false;
    mc_run_t r = {.state_dir = o->state_dir, .prefix = pick_prefix(o), .out = out};
    json_t *old = NULL;
    int rc = mc_sandbox_load(o->state_dir, &old);
    if (rc < 0 || old) {
        json_decref(old);
        zm_err_set(err, NULL, 0, "%s/%s exists: the sandbox is up (run meshctl down first)",
                   o->state_dir, MC_SANDBOX_JSON);
        return -EEXIST;
    }
    if ((rc = mc_run_load(&r, o->files, o->nfiles, o->nodes, input_error, err)) < 0)
        goto out;
    bool made_dir = mkdir(o->state_dir, 0755) == 0;
    if (!made_dir && errno != EEXIST) {
        rc = -errno;
        zm_err_set(err, NULL, 0, "%s: %s", o->state_dir, strerror(errno));
        goto out;
    }
    r.st = json_pack("{s:i, s:s, s:o, s:i, s:b, s:o}", "version", 1, "prefix", r.prefix, "files",
                     abs_paths(o->files, o->nfiles), "nodes_opt", o->nodes, "created_state_dir",
                     made_dir, "procs", json_array());
    if (!r.st) {
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = mc_run_record_model(&r)) < 0) {
        zm_err_set(err, NULL, 0, "%s/%s: %s", o->state_dir, MC_SANDBOX_JSON, strerror(-rc));
        goto out;
    }
    r.plan.net.debug_stop_after = o->test_die_after;
    rc = mc_net_up(&r.plan.net, err);
    if (rc == -EINTR && o->test_die_after)
        kill(getpid(), SIGKILL); /* the crash the test asked for */
    if (rc < 0 || (rc = mc_run_issue_certs(&r, err)) < 0 || (rc = mc_run_compile(&r, err)) < 0)
        goto out;
    for (size_t i = 0; i < r.model->n_pods && rc >= 0; i++)
        rc = mc_run_start_app(&r, &r.model->pods[i], err);
    if (rc >= 0)
        rc = mc_run_wait_ready(&r, NULL, 0, READY_TIMEOUT_MS, err);
    if (rc >= 0)
        rc = start_daemons(&r, err);
    if (rc >= 0)
        summary(&r, out);
out:
    mc_run_clear(&r);
    return rc;
}
