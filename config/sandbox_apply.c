/*
 * sandbox_apply.c — `meshctl apply` and `meshctl delete` on a running
 * sandbox.
 *
 * The input set (sandbox.json "files") changes: apply adds paths (a path
 * already there is simply re-read, so edited files take effect); delete
 * removes the given paths (a file, or every input under a folder). The
 * whole model is then rebuilt from the new set and diffed against the pods
 * sandbox.json records, by (namespace, name): a pod that is gone, or whose
 * IP or node moved, is removed (app stopped, namespace deleted); a new or
 * moved one is added (namespace, app, readiness); a pod whose ports changed
 * gets its app restarted. Then every namespace's service rules and hosts
 * files are replaced, certificates issued for new identities, and the
 * configs rewritten (running daemons reload them on change), and each
 * node agent is signalled to send its ztunnel the new pod set (apply waits
 * for the acks).
 *
 * Limits: the node set cannot change on a running sandbox (down and up);
 * deleting single objects out of a file that stays in the set is not
 * supported (delete the file, or apply an edited one).
 */
#include "sandbox_run.h"

#include "netns.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define READY_TIMEOUT_MS 10000
#define ENROLL_TIMEOUT_MS 15000

static bool under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    return !strcmp(path, dir) || (!strncmp(path, dir, n) && path[n] == '/');
}

/* The new input set; NULL with err set when a delete names no input. */
static json_t *new_files(json_t *old, const char *const *files, size_t n, bool del, zm_err_t *err)
{
    json_t *out = json_deep_copy(old);
    if (!json_is_array(out)) {
        json_decref(out);
        out = json_array();
    }
    for (size_t i = 0; i < n; i++) {
        char real[PATH_MAX];
        if (!realpath(files[i], real)) {
            zm_err_set(err, files[i], 0, "%s", strerror(errno));
            json_decref(out);
            return NULL;
        }
        bool found = false;
        for (size_t j = json_array_size(out); j-- > 0;) {
            const char *s = json_string_value(json_array_get(out, j));
            if (del ? under(s, real) : !strcmp(s, real)) {
                found = true;
                if (del)
                    json_array_remove(out, j);
            }
        }
        if (del && !found) {
            zm_err_set(err, files[i], 0,
                       "not an input of this sandbox (delete takes files or folders given to "
                       "up or apply)");
            json_decref(out);
            return NULL;
        }
        if (!del && !found)
            json_array_append_new(out, json_string(real));
    }
    return out;
}

static json_t *find_old(json_t *st, const char *ns, const char *name)
{
    static const char *const lists[] = {"pods", "waypoints"};
    for (int l = 0; l < 2; l++) {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(st, lists[l]), i, v)
        {
            if (!strcmp(json_string_value(json_object_get(v, "namespace")), ns) &&
                !strcmp(json_string_value(json_object_get(v, "name")), name))
                return v;
        }
    }
    return NULL;
}

/* Same IP and node, and its namespace still there (a failed apply may
 * have removed it without recording that). */
static bool same_place(json_t *old, const mc_pod_t *p)
{
    return mc_netns_exists(json_string_value(json_object_get(old, "netns"))) == 1 &&
           !strcmp(json_string_value(json_object_get(old, "ip")), p->ip_str) &&
           !strcmp(json_string_value(json_object_get(old, "node")), p->node->name);
}

static bool same_ports(json_t *old, const mc_pod_t *p)
{
    json_t *ports = json_object_get(old, "ports");
    if (json_array_size(ports) != p->n_ports)
        return false;
    for (size_t j = 0; j < p->n_ports; j++)
        if (json_integer_value(json_array_get(ports, j)) != p->ports[j].port)
            return false;
    return true;
}

static int check_nodes(mc_run_t *r, json_t *old_st, zm_err_t *err)
{
    json_t *nodes = json_object_get(old_st, "nodes");
    bool same = json_array_size(nodes) == r->model->n_nodes;
    for (size_t i = 0; same && i < r->model->n_nodes; i++)
        same = !strcmp(json_string_value(json_object_get(json_array_get(nodes, i), "name")),
                       r->model->nodes[i].name);
    if (!same)
        zm_err_set(err, NULL, 0,
                   "the change needs a different set of nodes: run meshctl down, then up");
    return same ? 0 : -EINVAL;
}

/* Removes pods that left or moved; returns how many. */
static int remove_old(mc_run_t *r, json_t *old_st, zm_err_t *err)
{
    static const char *const lists[] = {"pods", "waypoints"};
    int count = 0;
    for (int l = 0; l < 2; l++) {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(old_st, lists[l]), i, v)
        {
            const char *ns = json_string_value(json_object_get(v, "namespace"));
            const char *name = json_string_value(json_object_get(v, "name"));
            const mc_pod_t *p = mc_model_find_pod(r->model, ns, name);
            if (p && same_place(v, p))
                continue;
            char comp[512];
            snprintf(comp, sizeof(comp), "%s.%s", ns, name);
            mc_run_stop_component(r, comp);
            int rc = mc_net_pod_del(&r->plan.net, ns, name, err);
            if (rc < 0)
                return rc;
            count++;
        }
    }
    return count;
}

int mc_sandbox_apply(const char *state_dir, const char *const *files, size_t nfiles, bool del,
                     FILE *out, bool *input_error, zm_err_t *err)
{
    *input_error = false;
    json_t *old_st = NULL;
    int rc = mc_sandbox_load(state_dir, &old_st);
    if (rc < 0 || !old_st) {
        zm_err_set(err, NULL, 0, "no sandbox in %s (run meshctl up)", state_dir);
        return rc < 0 ? rc : -ENOENT;
    }
    mc_run_t r = {.state_dir = state_dir, .out = out};
    r.prefix = json_string_value(json_object_get(old_st, "prefix"));
    json_t *set = new_files(json_object_get(old_st, "files"), files, nfiles, del, err);
    const char **paths = NULL;
    if (!set || !r.prefix) {
        if (set)
            zm_err_set(err, NULL, 0, "%s/%s: no prefix", state_dir, MC_SANDBOX_JSON);
        *input_error = !set;
        rc = -EINVAL;
        goto out;
    }
    size_t n = json_array_size(set);
    paths = calloc(n + 1, sizeof(*paths));
    for (size_t i = 0; paths && i < n; i++)
        paths[i] = json_string_value(json_array_get(set, i));
    int nodes = (int)json_integer_value(json_object_get(old_st, "nodes_opt"));
    if (!paths) {
        rc = -ENOMEM;
        goto out;
    }
    if (n == 0) {
        zm_err_set(err, NULL, 0, "that would delete every input: use meshctl down");
        *input_error = true;
        rc = -EINVAL;
        goto out;
    }
    if ((rc = mc_run_load(&r, paths, n, nodes, input_error, err)) < 0 ||
        (rc = check_nodes(&r, old_st, err)) < 0)
        goto out;
    r.st = json_deep_copy(old_st);
    json_object_set(r.st, "files", set);
    int removed = remove_old(&r, old_st, err);
    if ((rc = removed) < 0)
        goto out;
    const mc_pod_t **added = calloc(r.model->n_pods + 1, sizeof(*added));
    size_t n_added = 0, restarted = 0;
    rc = added ? 0 : -ENOMEM;
    for (size_t i = 0; i < r.model->n_pods && rc >= 0; i++) {
        const mc_pod_t *p = &r.model->pods[i];
        json_t *old = find_old(old_st, p->meta.ns, p->meta.name);
        if (old && same_place(old, p)) {
            if (same_ports(old, p))
                continue;
            char comp[512];
            mc_run_app_component(p, comp, sizeof(comp));
            mc_run_stop_component(&r, comp);
            restarted++;
        } else {
            mc_net_pod_t np = {
                .ns = p->meta.ns, .name = p->meta.name, .node = p->node->name, .ip = p->ip_str};
            rc = mc_net_pod_add(&r.plan.net, &np, err);
        }
        if (rc >= 0)
            rc = mc_run_start_app(&r, p, err);
        added[n_added++] = p;
    }
    if (rc >= 0)
        rc = mc_net_services_update(&r.plan.net, err);
    if (rc >= 0)
        rc = mc_run_record_model(&r);
    if (rc >= 0)
        rc = mc_run_issue_certs(&r, err);
    if (rc >= 0)
        rc = mc_run_compile(&r, err);
    if (rc >= 0)
        rc = mc_run_wait_ready(&r, added, n_added, READY_TIMEOUT_MS, err);
    if (rc >= 0) {
        /* The node agents send the new snapshot; without them (a sandbox
         * from an older meshctl) meshctl enrolls directly. */
        rc = mc_agent_notify(state_dir, r.st, ENROLL_TIMEOUT_MS, err);
        if (rc == -ESRCH)
            rc = mc_run_enroll_all(&r, err);
    }
    free(added);
    if (rc >= 0)
        fprintf(out,
                "sandbox %s: %zu pods added, %d removed, %zu restarted; %zu pods, %zu services\n",
                del ? "delete" : "apply", n_added - restarted, removed, restarted, r.model->n_pods,
                r.model->n_services);
out:
    free(paths);
    json_decref(set);
    json_decref(old_st);
    mc_run_clear(&r);
    return rc;
}
