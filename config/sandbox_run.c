/*
 * sandbox_run.c — the steps `up`, `apply` and `delete` share (see
 * sandbox_run.h): load the model, certificates, configs, the pod records
 * of sandbox.json, starting and stopping pod apps, and the readiness probe.
 *
 * The readiness probe runs on a thread inside the cluster namespace (the
 * bridge owns the gateway address, so every pod IP is one hop away there)
 * and retries non-blocking connects until each port accepts or the deadline
 * passes: no sleeps on a guess, no unbounded wait.
 */
#include "sandbox_run.h"

#include "ca.h"
#include "compile.h"
#include "netns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define APP_CERT_TTL_S (24 * 3600)

int mc_run_load(mc_run_t *r, const char *const *paths, size_t n, int nodes, bool *input_error,
                zm_err_t *err)
{
    int rc = mc_model_load(&r->model, paths, n, err);
    if (rc < 0) {
        *input_error = true;
        return rc;
    }
    mc_resolve_opts_t ro = {.nodes = nodes};
    if ((rc = mc_model_resolve(r->model, &ro, err)) < 0) {
        *input_error = true;
        return rc;
    }
    for (size_t i = 0; i < r->model->n_warnings; i++) {
        char buf[1024];
        fprintf(stderr, "%s\n", mc_warning_str(&r->model->warnings[i], buf, sizeof(buf)));
    }
    if ((rc = mc_sandbox_plan_build(r->model, r->prefix, r->state_dir, &r->plan)) < 0) {
        zm_err_set(err, NULL, 0, "out of memory");
        return rc;
    }
    if ((rc = mc_net_plan_check(&r->plan.net, err)) < 0)
        *input_error = true;
    return rc;
}

void mc_run_clear(mc_run_t *r)
{
    mc_sandbox_plan_clear(&r->plan);
    mc_model_free(&r->model);
    json_decref(r->st);
    r->st = NULL;
}

int mc_run_issue_certs(mc_run_t *r, zm_err_t *err)
{
    char ca[4096], key[4200], dir[4096];
    snprintf(ca, sizeof(ca), "%s/ca", r->state_dir);
    snprintf(key, sizeof(key), "%s/%s", ca, MC_CA_ROOT_KEY);
    int rc;
    if (access(key, F_OK) < 0) {
        /* Recorded first: down removes a CA only if up made it. */
        json_object_set_new(r->st, "ca_created", json_true());
        if ((rc = mc_sandbox_save(r->state_dir, r->st)) < 0 ||
            (rc = mc_ca_init(ca, false, err)) < 0) {
            if (rc != -EEXIST)
                zm_err_set(err, NULL, 0, "CA in %s: %s", ca, strerror(-rc));
            return rc;
        }
    }
    for (size_t i = 0; i < r->model->n_pods; i++) {
        const mc_pod_t *p = &r->model->pods[i];
        bool seen = false; /* pods share identities: issue each once */
        for (size_t j = 0; j < i && !seen; j++)
            seen = !strcmp(r->model->pods[j].identity, p->identity);
        if (seen)
            continue;
        if ((rc = mc_ca_identity_dir(r->state_dir, p->identity, dir, sizeof(dir))) < 0 ||
            (rc = mc_ca_issue_into(ca, p->identity, APP_CERT_TTL_S, dir, err)) < 0)
            return rc;
    }
    return 0;
}

int mc_run_compile(mc_run_t *r, zm_err_t *err)
{
    char cfg[4096], certs[4096], run[4096];
    snprintf(cfg, sizeof(cfg), "%s/config", r->state_dir);
    snprintf(certs, sizeof(certs), "%s/certs", r->state_dir);
    snprintf(run, sizeof(run), "%s/run", r->state_dir);
    mc_compile_opts_t co = {.cert_dir = certs, .run_dir = run};
    int rc = mc_compile_write(r->model, cfg, &co, err);
    return rc < 0 ? rc : 0;
}

void mc_run_app_component(const mc_pod_t *pod, char *buf, size_t len)
{
    snprintf(buf, len, "%s.%s", pod->meta.ns, pod->meta.name);
}

static json_t *pod_json(mc_run_t *r, const mc_pod_t *p)
{
    char netns[MC_NET_NETNS_MAX + 1], wp[256] = "";
    mc_net_pod_netns(r->prefix, p->meta.ns, p->meta.name, netns, sizeof(netns));
    if (p->waypoint)
        snprintf(wp, sizeof(wp), "%s/%s", p->waypoint->meta.ns, p->waypoint->meta.name);
    json_t *ports = json_array();
    for (size_t j = 0; j < p->n_ports; j++)
        json_array_append_new(ports, json_integer(p->ports[j].port));
    return json_pack("{s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:s, s:s, s:o}", "name", p->meta.name,
                     "namespace", p->meta.ns, "node", p->node->name, "ip", p->ip_str, "ambient",
                     p->ambient, "netns", netns, "waypoint", wp, "service_account",
                     p->service_account, "identity", p->identity, "ports", ports);
}

int mc_run_record_model(mc_run_t *r)
{
    const mc_model_t *m = r->model;
    json_t *nodes = json_array(), *pods = json_array(), *wps = json_array();
    for (size_t i = 0; i < m->n_nodes; i++) {
        char netns[MC_NET_NETNS_MAX + 1], ip[16];
        mc_net_node_netns(r->prefix, m->nodes[i].name, netns, sizeof(netns));
        mc_sandbox_node_ip(&m->nodes[i], ip);
        json_array_append_new(nodes,
                              json_pack("{s:s, s:s, s:s, s:s}", "name", m->nodes[i].name, "ip", ip,
                                        "pod_cidr", m->nodes[i].cidr, "netns", netns));
    }
    for (size_t i = 0; i < m->n_pods; i++) {
        const mc_pod_t *p = &m->pods[i];
        json_t *j = pod_json(r, p);
        if (p->gateway) {
            json_object_set_new(j, "gateway_class", json_string(p->gateway->class_name));
            json_array_append_new(wps, j);
        } else {
            json_array_append_new(pods, j);
        }
    }
    json_t *svcs = json_array();
    for (size_t i = 0; i < m->n_services; i++) {
        const mc_service_t *s = &m->services[i];
        json_array_append_new(svcs, json_pack("{s:s, s:s, s:s}", "name", s->meta.name, "namespace",
                                              s->meta.ns, "cluster_ip",
                                              s->headless ? "None" : s->cluster_ip_str));
    }
    json_object_set_new(r->st, "nodes", nodes);
    json_object_set_new(r->st, "pods", pods);
    json_object_set_new(r->st, "waypoints", wps);
    json_object_set_new(r->st, "services", svcs);
    return mc_sandbox_save(r->state_dir, r->st);
}

/* argv for a pod's app: zm-echo on every TCP container port, or the
 * command the annotation names (through /bin/sh -c, so quoting works). */
static char **app_argv(const mc_pod_t *p, const char *echo)
{
    const char *cmd = mc_labels_get(&p->meta.annotations, MC_ANNOTATION_COMMAND);
    const char *extra = mc_labels_get(&p->meta.annotations, MC_ANNOTATION_ECHO_ARGS);
    size_t n_extra = 0;
    for (const char *q = extra; q && *q; q++)
        n_extra += *q != ' ' && (q == extra || q[-1] == ' ');
    char **argv = calloc(2 * p->n_ports + 10 + n_extra, sizeof(*argv));
    if (!argv)
        return NULL;
    size_t n = 0;
    if (cmd) {
        argv[n++] = strdup("/bin/sh");
        argv[n++] = strdup("-c");
        argv[n++] = strdup(cmd);
    } else {
        argv[n++] = strdup(echo);
        for (size_t j = 0; j < p->n_ports; j++) {
            if (p->ports[j].protocol && strcmp(p->ports[j].protocol, "TCP") != 0)
                continue;
            char port[8];
            snprintf(port, sizeof(port), "%u", p->ports[j].port);
            argv[n++] = strdup("--listen");
            argv[n++] = strdup(port);
        }
        if (n == 1) { /* no TCP port: nothing to serve */
            free(argv[0]);
            free(argv);
            return NULL;
        }
        argv[n++] = strdup("--pod");
        argv[n++] = strdup(p->meta.name);
        argv[n++] = strdup("--namespace");
        argv[n++] = strdup(p->meta.ns);
        const char *v = mc_labels_get(&p->meta.labels, "version");
        if (v) {
            argv[n++] = strdup("--version");
            argv[n++] = strdup(v);
        }
        /* Per-pod behaviour (e.g. "--fail 0.5 --delay-ms 100"): words
         * split on spaces, appended to the echo app's own flags. */
        for (const char *q = extra; q && *q;) {
            while (*q == ' ')
                q++;
            size_t len = strcspn(q, " ");
            if (len)
                argv[n++] = strndup(q, len);
            q += len;
        }
    }
    return argv;
}

static void argv_free(char **argv)
{
    for (size_t i = 0; argv && argv[i]; i++)
        free(argv[i]);
    free(argv);
}

static int ensure_dir(const char *state_dir, const char *sub)
{
    char d[4096];
    snprintf(d, sizeof(d), "%s/%s", state_dir, sub);
    return mkdir(d, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

int mc_run_start_app(mc_run_t *r, const mc_pod_t *pod, zm_err_t *err)
{
    if (pod->gateway)
        return 0;
    char echo[4096] = "zm-echo";
    bool has_cmd = mc_labels_get(&pod->meta.annotations, MC_ANNOTATION_COMMAND) != NULL;
    if (!has_cmd && mc_sandbox_find_bin("zm-echo", echo, sizeof(echo)) < 0) {
        zm_err_set(err, NULL, 0, "zm-echo not found next to meshctl (set ZMESH_ECHO)");
        return -ENOENT;
    }
    char **argv = app_argv(pod, echo);
    if (!argv)
        return 0;
    char comp[512], log[4096], netns[MC_NET_NETNS_MAX + 1];
    mc_run_app_component(pod, comp, sizeof(comp));
    mc_sandbox_log_path(r->state_dir, comp, log, sizeof(log));
    mc_net_pod_netns(r->prefix, pod->meta.ns, pod->meta.name, netns, sizeof(netns));
    int rc = ensure_dir(r->state_dir, "logs");
    /* The app (zm-echo or the command) learns who it is from these too. */
    const char *v = mc_labels_get(&pod->meta.labels, "version");
    setenv("POD_NAME", pod->meta.name, 1);
    setenv("POD_NAMESPACE", pod->meta.ns, 1);
    setenv("POD_VERSION", v ? v : "", 1);
    setenv("POD_IP", pod->ip_str, 1);
    pid_t pid = 0;
    if (rc >= 0)
        rc = mc_net_spawn(&r->plan.net, netns, argv, log, &pid, err);
    else
        zm_err_set(err, NULL, 0, "%s/logs: %s", r->state_dir, strerror(-rc));
    unsetenv("POD_NAME");
    unsetenv("POD_NAMESPACE");
    unsetenv("POD_VERSION");
    unsetenv("POD_IP");
    argv_free(argv);
    if (rc < 0)
        return rc;
    json_t *procs = json_object_get(r->st, "procs");
    if (!json_is_array(procs)) {
        procs = json_array();
        json_object_set_new(r->st, "procs", procs);
    }
    json_array_append_new(procs, json_pack("{s:s, s:s, s:I, s:I, s:s, s:s}", "component", comp,
                                           "kind", "app", "pid", (json_int_t)pid, "start",
                                           (json_int_t)mc_proc_start_time(pid), "netns", netns,
                                           "log", log));
    return mc_sandbox_save(r->state_dir, r->st);
}

int mc_run_stop_component(mc_run_t *r, const char *component)
{
    json_t *procs = json_object_get(r->st, "procs"), *v;
    size_t i;
    json_array_foreach(procs, i, v)
    {
        if (strcmp(json_string_value(json_object_get(v, "component")), component) != 0)
            continue;
        pid_t pid = (pid_t)json_integer_value(json_object_get(v, "pid"));
        int rc = mc_net_kill(&r->plan.net, pid);
        json_array_remove(procs, i);
        mc_sandbox_save(r->state_dir, r->st);
        return rc == -ESRCH ? 0 : rc;
    }
    return 0;
}

/* ---- readiness ---- */

typedef struct probe_target {
    uint32_t ip;
    uint16_t port;
    bool ready;
    const mc_pod_t *pod;
} probe_target_t;

typedef struct probe_req {
    probe_target_t *t;
    size_t n;
    int timeout_ms;
} probe_req_t;

static bool try_connect(uint32_t ip, uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(ip)};
    bool ok = false;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        ok = true;
    } else if (errno == EINPROGRESS) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        if (poll(&pfd, 1, 200) == 1) {
            int e = 0;
            socklen_t l = sizeof(e);
            ok = getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) == 0 && e == 0;
        }
    }
    close(fd);
    return ok;
}

static int probe_fn(void *arg)
{
    probe_req_t *q = arg;
    uint64_t deadline = zm_now_ns() + (uint64_t)q->timeout_ms * 1000000ull;
    for (;;) {
        size_t left = 0;
        for (size_t i = 0; i < q->n; i++) {
            if (!q->t[i].ready)
                q->t[i].ready = try_connect(q->t[i].ip, q->t[i].port);
            left += !q->t[i].ready;
        }
        if (left == 0)
            return 0;
        if (zm_now_ns() >= deadline)
            return -ETIMEDOUT;
        poll(NULL, 0, 50);
    }
}

int mc_run_wait_ready(mc_run_t *r, const mc_pod_t *const *pods, size_t n, int timeout_ms,
                      zm_err_t *err)
{
    const mc_model_t *m = r->model;
    size_t cap = 0, count = pods ? n : m->n_pods;
    for (size_t i = 0; i < count; i++)
        cap += (pods ? pods[i] : &m->pods[i])->n_ports;
    probe_target_t *t = calloc(cap + 1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < count; i++) {
        const mc_pod_t *p = pods ? pods[i] : &m->pods[i];
        /* Only the echo app's ports are ours to wait for. */
        if (p->gateway || mc_labels_get(&p->meta.annotations, MC_ANNOTATION_COMMAND))
            continue;
        for (size_t j = 0; j < p->n_ports; j++)
            if (!p->ports[j].protocol || !strcmp(p->ports[j].protocol, "TCP"))
                t[k++] = (probe_target_t){.ip = p->ip, .port = p->ports[j].port, .pod = p};
    }
    char cluster[MC_NET_NETNS_MAX + 1];
    mc_net_cluster_netns(r->prefix, cluster, sizeof(cluster));
    int fd = mc_netns_open(cluster), rc;
    if (fd < 0) {
        zm_err_set(err, NULL, 0, "namespace %s: %s", cluster, strerror(-fd));
        free(t);
        return fd;
    }
    probe_req_t q = {.t = t, .n = k, .timeout_ms = timeout_ms};
    rc = mc_netns_run(fd, probe_fn, &q);
    close(fd);
    for (size_t i = 0; i < k && rc < 0; i++) {
        if (!t[i].ready) {
            zm_err_set(err, NULL, 0,
                       "pod %s/%s: nothing listens on %s:%u after %d ms (see %s/logs)",
                       t[i].pod->meta.ns, t[i].pod->meta.name, t[i].pod->ip_str, t[i].port,
                       timeout_ms, r->state_dir);
            break;
        }
    }
    free(t);
    return rc;
}
