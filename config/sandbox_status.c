/*
 * sandbox_status.c — `meshctl status`: sandbox.json plus what is true now
 * (is each process alive with its recorded start time, does each netns
 * still exist), as text tables or one JSON object. Reads only; never
 * changes the state.
 *
 * JSON shape: {"state_dir","prefix","files":[...],"dataplane","nodes":[...],
 * "pods":[{name,namespace,node,ip,ambient,netns,netns_exists,waypoint,
 * app:{pid,alive,log}|null}], "waypoints":[...], "services":[...],
 * "processes":[{component,kind,pid,alive,netns,log}]}: what sandbox.json
 * records (node agents also carry "node"), and after each agent the
 * ztunnel it runs now, {component "ztunnel-<node>", kind "ztunnel", pid,
 * alive, ready (it acked the agent's pods), restarts, node, netns, log}.
 */
#include "sandbox.h"

#include "netns.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

static json_t *find_proc(json_t *st, const char *component)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(st, "procs"), i, v)
    {
        if (!strcmp(json_string_value(json_object_get(v, "component")), component))
            return v;
    }
    return NULL;
}

static bool proc_alive(json_t *p)
{
    return mc_sandbox_pid_alive(
        (long)json_integer_value(json_object_get(p, "pid")),
        (unsigned long long)json_integer_value(json_object_get(p, "start")));
}

static const char *s_of(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* The ztunnel an agent runs now (STATE/run/<node>/ztunnel.pid): ready
 * once it acked the agent's snapshot (agent.ready names it). Nothing while
 * the agent is between two ztunnels. */
static void add_ztunnel(const char *state_dir, json_t *agent, json_t *procs)
{
    const char *node = s_of(agent, "node");
    long pid = 0, restarts = 0, seq = 0, ready_pid = 0;
    unsigned long long start = 0;
    if (mc_agent_read_ztunnel(state_dir, node, &pid, &start, &restarts) < 0)
        return;
    bool alive = mc_sandbox_pid_alive(pid, start);
    bool ready =
        alive && mc_agent_read_ready(state_dir, node, &seq, &ready_pid) == 0 && ready_pid == pid;
    char comp[300], log[4096];
    snprintf(comp, sizeof(comp), "ztunnel-%s", node);
    mc_sandbox_log_path(state_dir, comp, log, sizeof(log));
    json_array_append_new(procs,
                          json_pack("{s:s, s:s, s:I, s:b, s:b, s:I, s:s, s:O?, s:s}", "component",
                                    comp, "kind", "ztunnel", "pid", (json_int_t)pid, "alive", alive,
                                    "ready", ready, "restarts", (json_int_t)restarts, "node", node,
                                    "netns", json_object_get(agent, "netns"), "log", log));
}

/* Adds live facts to a copy of the state. */
static json_t *build(const char *state_dir, json_t *st)
{
    json_t *out = json_pack("{s:s, s:s, s:O?, s:s, s:O?, s:O?}", "state_dir", state_dir, "prefix",
                            s_of(st, "prefix"), "files", json_object_get(st, "files"), "dataplane",
                            s_of(st, "dataplane_note"), "nodes", json_object_get(st, "nodes"),
                            "services", json_object_get(st, "services"));
    if (!out)
        return NULL;
    json_t *pods = json_array(), *wps = json_array(), *procs = json_array();
    static const char *const lists[] = {"pods", "waypoints"};
    for (int l = 0; l < 2; l++) {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(st, lists[l]), i, v)
        {
            json_t *p = json_deep_copy(v);
            json_object_set_new(p, "netns_exists",
                                json_boolean(mc_netns_exists(s_of(v, "netns")) == 1));
            char comp[512];
            snprintf(comp, sizeof(comp), "%s.%s", s_of(v, "namespace"), s_of(v, "name"));
            json_t *proc = find_proc(st, comp);
            json_object_set_new(
                p, "app",
                proc ? json_pack("{s:O?, s:b, s:O?}", "pid", json_object_get(proc, "pid"), "alive",
                                 proc_alive(proc), "log", json_object_get(proc, "log"))
                     : json_null());
            json_array_append_new(l == 0 ? pods : wps, p);
        }
    }
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(st, "procs"), i, v)
    {
        json_t *p = json_pack("{s:O?, s:O?, s:O?, s:b, s:O?, s:O?}", "component",
                              json_object_get(v, "component"), "kind", json_object_get(v, "kind"),
                              "pid", json_object_get(v, "pid"), "alive", proc_alive(v), "netns",
                              json_object_get(v, "netns"), "log", json_object_get(v, "log"));
        if (json_object_get(v, "node"))
            json_object_set(p, "node", json_object_get(v, "node"));
        json_array_append_new(procs, p);
        if (!strcmp(s_of(v, "kind"), "agent") && json_object_get(v, "node"))
            add_ztunnel(state_dir, v, procs);
    }
    json_object_set_new(out, "pods", pods);
    json_object_set_new(out, "waypoints", wps);
    json_object_set_new(out, "processes", procs);
    return out;
}

static void print_text(json_t *s, FILE *out)
{
    fprintf(out, "sandbox %s (prefix %s)\ndataplane: %s\n\n", s_of(s, "state_dir"),
            s_of(s, "prefix"), s_of(s, "dataplane"));
    size_t i;
    json_t *v;
    fprintf(out, "NODE        IP            POD CIDR        NETNS\n");
    json_array_foreach(json_object_get(s, "nodes"), i, v)
        fprintf(out, "%-11s %-13s %-15s %s\n", s_of(v, "name"), s_of(v, "ip"), s_of(v, "pod_cidr"),
                s_of(v, "netns"));
    fprintf(out, "\nNAMESPACE    POD                    NODE     IP            AMBIENT  "
                 "WAYPOINT         APP      NETNS\n");
    json_array_foreach(json_object_get(s, "pods"), i, v)
    {
        json_t *app = json_object_get(v, "app");
        const char *w = s_of(v, "waypoint");
        fprintf(out, "%-12s %-22s %-8s %-13s %-8s %-16s %-8s %s%s\n", s_of(v, "namespace"),
                s_of(v, "name"), s_of(v, "node"), s_of(v, "ip"),
                json_is_true(json_object_get(v, "ambient")) ? "yes" : "no", *w ? w : "-",
                !json_is_object(app)                          ? "-"
                : json_is_true(json_object_get(app, "alive")) ? "running"
                                                              : "DEAD",
                s_of(v, "netns"),
                json_is_true(json_object_get(v, "netns_exists")) ? "" : " (gone)");
    }
    if (json_array_size(json_object_get(s, "waypoints"))) {
        fprintf(out, "\nWAYPOINT                         NODE     IP            NETNS\n");
        json_array_foreach(json_object_get(s, "waypoints"), i, v)
        {
            char name[300];
            snprintf(name, sizeof(name), "%s/%s", s_of(v, "namespace"), s_of(v, "name"));
            fprintf(out, "%-32s %-8s %-13s %s\n", name, s_of(v, "node"), s_of(v, "ip"),
                    s_of(v, "netns"));
        }
    }
    fprintf(out, "\nSERVICE                        CLUSTER IP\n");
    json_array_foreach(json_object_get(s, "services"), i, v)
    {
        char name[300];
        snprintf(name, sizeof(name), "%s.%s", s_of(v, "name"), s_of(v, "namespace"));
        fprintf(out, "%-30s %s\n", name, s_of(v, "cluster_ip"));
    }
    fprintf(out, "\nPROCESS                        KIND      PID      HEALTH\n");
    json_array_foreach(json_object_get(s, "processes"), i, v)
    {
        json_t *ready = json_object_get(v, "ready");
        const char *health = !json_is_true(json_object_get(v, "alive")) ? "DEAD"
                             : !ready                                   ? "alive"
                             : json_is_true(ready)                      ? "ready"
                                                                        : "starting";
        long long restarts = json_integer_value(json_object_get(v, "restarts"));
        fprintf(out, "%-30s %-9s %-8lld %s", s_of(v, "component"), s_of(v, "kind"),
                (long long)json_integer_value(json_object_get(v, "pid")), health);
        if (restarts)
            fprintf(out, " (%lld restarts)", restarts);
        fputc('\n', out);
    }
}

int mc_sandbox_status(const char *state_dir, bool as_json, FILE *out, zm_err_t *err)
{
    json_t *st = NULL;
    int rc = mc_sandbox_load(state_dir, &st);
    if (rc < 0 || !st) {
        zm_err_set(err, NULL, 0, "no sandbox in %s (run meshctl up)", state_dir);
        return rc < 0 ? rc : -ENOENT;
    }
    json_t *s = build(state_dir, st);
    json_decref(st);
    if (!s)
        return -ENOMEM;
    if (as_json) {
        json_dumpf(s, out, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        fputc('\n', out);
    } else {
        print_text(s, out);
    }
    json_decref(s);
    return 0;
}
