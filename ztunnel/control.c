/*
 * control.c — ztunnel's control thread (the process's main thread after
 * start-up): it serves the node agent's enrollment socket, installs and
 * removes each pod's capture rules, hands pods to the workers, reloads the
 * config file and rotated certificates, and turns SIGTERM into a drain.
 *
 * One agent connection at a time (the agent is one process per node); a
 * new connection replaces the old one and starts a new snapshot: pods not
 * re-added before snapshot_sent are released, as Istio's ZDS does.
 */
#include "control.h"

#include "capture.h"
#include "enroll.h"
#include "log.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#define ZT_MAX_PODS 1024
#define ZT_RELOAD_EVERY_MS 2000

typedef struct control {
    zt_daemon_t *d;
    zt_pod_t *pods[ZT_MAX_PODS];
    bool seen[ZT_MAX_PODS]; /* in the current snapshot */
    size_t n_pods;
    int listen_fd, conn_fd;
    bool in_snapshot;
} control_t;

/* Publishes the captured pods for the admin thread. */
static void publish_workloads(control_t *c)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < c->n_pods; i++) {
        const zt_pod_t *p = c->pods[i];
        json_array_append_new(arr,
                              json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "uid", p->uid, "name", p->name,
                                        "namespace", p->ns, "service_account", p->service_account,
                                        "address", p->address, "capture", "in-pod"));
    }
    char *text = json_dumps(arr, JSON_INDENT(2));
    json_decref(arr);
    pthread_mutex_lock(&c->d->workloads_mu);
    free(c->d->workloads_json);
    c->d->workloads_json = text;
    pthread_mutex_unlock(&c->d->workloads_mu);
}

static zm_log_ctx_t lctx = {.worker = -1, .conn_id = -1, .action = "enrollment"};

static void release_pod(control_t *c, size_t i)
{
    zt_pod_t *p = c->pods[i];
    zt_workers_remove_pod(c->d, p);
    zt_capture_remove(p->netns_fd, c->d->host_netns_fd);
    zm_log(ZM_LOG_INFO, &lctx, "released %s", p->uid);
    zt_pod_unref(&c->pods[i]);
    c->pods[i] = c->pods[c->n_pods - 1];
    c->seen[i] = c->seen[c->n_pods - 1];
    c->pods[--c->n_pods] = NULL;
    publish_workloads(c);
}

static bool same_netns(int a, int b)
{
    struct stat sa, sb;
    return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_ino == sb.st_ino &&
           sa.st_dev == sb.st_dev;
}

static const char *add_pod(control_t *c, zm_enroll_msg_t *m)
{
    for (size_t i = 0; i < c->n_pods; i++) {
        if (strcmp(c->pods[i]->uid, m->uid) != 0)
            continue;
        if (same_netns(c->pods[i]->netns_fd, m->netns_fd)) {
            c->seen[i] = true; /* known already: keep it */
            return NULL;
        }
        release_pod(c, i); /* re-created under the same name */
        break;
    }
    if (c->n_pods == ZT_MAX_PODS)
        return "too many pods on this node";
    const zm_config_t *cfg = zm_config_slot_acquire(c->d->config);
    const zm_config_workload_t *w = zm_config_find_workload(cfg, m->uid);
    if (!w) {
        /* The agent may enroll a pod before our file watch saw the new
         * config that describes it: read the file now. */
        zm_config_release(&cfg);
        zm_err_t err = {0};
        zm_config_slot_reload(c->d->config, &err);
        cfg = zm_config_slot_acquire(c->d->config);
        w = zm_config_find_workload(cfg, m->uid);
    }
    const char *problem = NULL;
    if (!w)
        problem = "unknown workload (not in the config)";
    else if (strcmp(w->node, cfg->node.name) != 0)
        problem = "workload belongs to another node";
    zt_pod_t *p = problem ? NULL : calloc(1, sizeof(*p));
    if (p) {
        snprintf(p->uid, sizeof(p->uid), "%s", w->uid);
        snprintf(p->name, sizeof(p->name), "%s", w->name);
        snprintf(p->ns, sizeof(p->ns), "%s", w->ns);
        snprintf(p->service_account, sizeof(p->service_account), "%s", w->service_account);
        snprintf(p->address, sizeof(p->address), "%s", w->address);
        inet_pton(AF_INET, w->address, &p->ip);
        p->netns_fd = m->netns_fd;
        m->netns_fd = -1;
        atomic_init(&p->refs, 1);
    } else if (!problem) {
        problem = "out of memory";
    }
    zm_config_release(&cfg);
    if (problem)
        return problem;
    zm_err_t err = {0};
    if (zt_capture_install(p->netns_fd, c->d->host_netns_fd, &err) < 0) {
        zt_pod_unref(&p);
        return "cannot install capture rules";
    }
    if (zt_workers_add_pod(c->d, p) < 0) {
        zt_capture_remove(p->netns_fd, c->d->host_netns_fd);
        zt_pod_unref(&p);
        return "cannot listen in the pod's namespace";
    }
    c->pods[c->n_pods] = p;
    c->seen[c->n_pods++] = true;
    zm_log(ZM_LOG_INFO, &lctx, "captured %s (%s)", p->uid, p->address);
    publish_workloads(c);
    return NULL;
}

static void handle_message(control_t *c)
{
    zm_enroll_msg_t m;
    int r = zm_enroll_recv(c->conn_fd, &m);
    if (r == -ECONNRESET || r == -EPIPE || r == -ENOTCONN) {
        close(c->conn_fd);
        c->conn_fd = -1;
        return;
    }
    if (r < 0) {
        zm_log(ZM_LOG_WARN, &lctx, "bad message from the node agent: %s", strerror(-r));
        zm_enroll_ack(c->conn_fd, "malformed message");
        return;
    }
    const char *problem = NULL;
    switch (m.type) {
    case ZM_ENROLL_ADD:
        problem = add_pod(c, &m);
        if (problem)
            zm_log(ZM_LOG_WARN, &lctx, "cannot capture %s: %s", m.uid, problem);
        break;
    case ZM_ENROLL_DEL:
        for (size_t i = 0; i < c->n_pods; i++)
            if (!strcmp(c->pods[i]->uid, m.uid)) {
                release_pod(c, i);
                break;
            }
        break;
    case ZM_ENROLL_SNAPSHOT_SENT:
        for (size_t i = c->n_pods; i-- > 0;)
            if (!c->seen[i])
                release_pod(c, i);
        c->in_snapshot = false;
        atomic_store(&c->d->ready, true);
        break;
    default:
        problem = "unexpected message";
    }
    if (m.netns_fd >= 0)
        close(m.netns_fd);
    zm_enroll_ack(c->conn_fd, problem);
}

static void accept_agent(control_t *c)
{
    int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    if (c->conn_fd >= 0)
        close(c->conn_fd);
    c->conn_fd = fd;
    c->in_snapshot = true;
    for (size_t i = 0; i < c->n_pods; i++)
        c->seen[i] = false;
    zm_log(ZM_LOG_INFO, &lctx, "node agent connected");
}

/* Reloads counted by outcome, so a refused file shows on dashboards and
 * not only in the log. */
static void count_reload(control_t *c, const char *result)
{
    zm_metric_family_t *f =
        zm_metrics_counter(c->d->metrics, "zmesh_config_reloads_total",
                           "Config file reloads by result (ok, refused)", ZM_LABELS("result"));
    zm_counter_inc(zm_metric_series(f, ZM_LABELS(result)));
}

/* Enrolling a pod (nftables' parser and caches) and loading a config
 * allocate a few MiB for a moment; glibc keeps freed memory below anything
 * still live, so without this a node agent's second pod left ztunnel 1.7 MiB
 * larger for good. Both are rare, and the trim takes well under a ms. */
static void return_freed_memory(void)
{
    malloc_trim(0);
}

static void reload(control_t *c)
{
    zm_err_t err = {0};
    int r = zm_config_slot_reload(c->d->config, &err);
    if (r != 0)
        count_reload(c, r < 0 ? "refused" : "ok");
    if (r < 0) {
        char buf[700];
        zm_log(ZM_LOG_ERROR, NULL, "config reload refused, keeping the old one: %s",
               zm_err_str(&err, buf, sizeof(buf)));
    } else if (r == 1) {
        zm_log(ZM_LOG_INFO, NULL, "config reloaded");
        zt_workers_recheck(c->d);
    }
    return_freed_memory();
}

int zt_control_run(zt_daemon_t *d)
{
    control_t *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->d = d;
    c->conn_fd = -1;
    const zm_config_t *cfg = zm_config_slot_acquire(d->config);
    c->listen_fd = zm_enroll_listen(cfg->node.enroll_socket);
    if (c->listen_fd < 0)
        zm_log(ZM_LOG_ERROR, NULL, "cannot listen on %s: %s", cfg->node.enroll_socket,
               strerror(-c->listen_fd));
    uint32_t grace = cfg->drain_grace_ms;
    zm_config_release(&cfg);
    if (c->listen_fd < 0) {
        free(c);
        return -EADDRNOTAVAIL;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    int watch = zm_config_watch_fd(d->config);
    bool running = true;
    uint64_t next_reload = zm_now_ms() + ZT_RELOAD_EVERY_MS;
    while (running) {
        struct pollfd pfd[4] = {
            {.fd = sfd, .events = POLLIN},
            {.fd = c->listen_fd, .events = POLLIN},
            {.fd = c->conn_fd, .events = POLLIN},
            {.fd = watch, .events = POLLIN},
        };
        int n = poll(pfd, 4, 500);
        if (n < 0 && errno != EINTR)
            break;
        if (pfd[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
                if (si.ssi_signo == SIGHUP)
                    reload(c);
                else
                    running = false;
            }
        }
        if (pfd[1].revents & POLLIN)
            accept_agent(c);
        if (c->conn_fd >= 0 && (pfd[2].revents & (POLLIN | POLLHUP | POLLERR))) {
            handle_message(c);
            return_freed_memory();
        }
        if (watch >= 0 && (pfd[3].revents & POLLIN) && zm_config_watch_check(d->config) == 1)
            reload(c);
        if (zm_now_ms() >= next_reload) {
            next_reload = zm_now_ms() + ZT_RELOAD_EVERY_MS;
            zt_certs_reload(d->certs);
        }
    }
    zm_log(ZM_LOG_INFO, NULL, "draining (grace %u ms)", grace);
    atomic_store(&d->ready, false);
    atomic_store(&d->draining, true);
    /* Removals are posted before the drain, so workers see them first. */
    while (c->n_pods)
        release_pod(c, c->n_pods - 1);
    zm_workers_drain(d->workers, grace);
    if (c->conn_fd >= 0)
        close(c->conn_fd);
    close(c->listen_fd);
    close(sfd);
    free(c);
    return 0;
}
