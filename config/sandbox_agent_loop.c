/*
 * sandbox_agent_loop.c — the per-node agent process (`meshctl node-agent`,
 * see sandbox.h): what the DaemonSet controller, the kubelet and the CNI
 * node agent do for a Kubernetes node, for one sandbox node.
 *
 * It runs inside the node's network namespace (up spawned it there, with
 * the node's /etc files), so ztunnel is a plain fork + exec away and
 * inherits both. One poll loop over a signalfd (SIGCHLD, SIGHUP, SIGTERM,
 * SIGINT) and the enrollment connection drives a small state machine:
 *
 *   no ztunnel      → start it once next_start_ms has come; restarts back
 *                     off (100 ms, doubling up to 5 s while it keeps dying
 *                     young) and are capped at RESTARTS_PER_MIN a minute;
 *   no connection   → connect to its enrollment socket, retrying every
 *                     20 ms until it listens;
 *   snapshot wanted → every ambient pod of the node (re-read from
 *                     sandbox.json each time) as add, then snapshot_sent,
 *                     each acked (bounded); then agent.ready;
 *   connected       → wait; the connection ending (ztunnel died or dropped
 *                     us) means reconnect and send the full set again.
 *
 * SIGHUP asks for a new snapshot on the open connection (after apply or
 * delete; its sigqueue value is the sequence apply waits for, see
 * sandbox_agent_ctl.c). SIGTERM stops ztunnel (SIGTERM, bounded wait, then
 * SIGKILL) and exits.
 *
 * Invariants: at most one ztunnel child; ztunnel.pid names it while it
 * runs; a snapshot is sent only on a connection made after the current
 * ztunnel started. Files are written atomically (temp + rename) because
 * status, up and apply read them at any time.
 *
 * Threading: single-threaded; signals only through the signalfd.
 */
#include "sandbox.h"
#include "sandbox_int.h"

#include "compile.h"
#include "enroll.h"
#include "netns.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ENROLL_TIMEOUT_MS 5000
#define CONNECT_RETRY_MS 20
#define NACK_RETRY_MS 1000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define LIVED_LONG_MS 10000 /* a run this long resets the backoff */
#define RESTARTS_PER_MIN 10
#define STOP_GRACE_MS 1500
#define IDLE_POLL_MS 1000

typedef struct agent {
    const char *state_dir;
    const char *node;
    char zt_bin[4096], cfg[4096], sock_path[4096], zt_log[4096];
    char f_pid[4096], f_ready[4096], f_err[4096];
    pid_t child;
    unsigned long long child_start;
    uint64_t child_started_ms;
    uint64_t next_start_ms;
    int backoff_ms;
    uint64_t starts[RESTARTS_PER_MIN]; /* ring of recent start times */
    size_t n_starts;
    bool limit_logged;
    long restarts;
    int sock;
    uint64_t next_connect_ms;
    bool dirty;        /* a snapshot is owed on the connection */
    long want, synced; /* SIGHUP sequence: asked for / acked */
    int sfd;
} agent_t;

__attribute__((format(printf, 1, 2))) static void agent_log(const char *fmt, ...)
{
    char ts[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", gmtime_r(&now, &tm));
    fprintf(stderr, "%s.%03u agent: ", ts, (unsigned)(zm_now_ms() % 1000));
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

static void write_pid_file(agent_t *a)
{
    char text[96];
    snprintf(text, sizeof(text), "%ld %llu %ld\n", (long)a->child, a->child_start, a->restarts);
    if (mc_write_file(a->f_pid, text) < 0)
        agent_log("cannot write %s: %s", a->f_pid, strerror(errno));
}

/* ---- ztunnel, the child ---- */

static void start_ztunnel(agent_t *a)
{
    uint64_t now = zm_now_ms();
    if (a->n_starts == RESTARTS_PER_MIN) {
        uint64_t oldest = a->starts[0];
        if (now < oldest + 60000) {
            if (!a->limit_logged)
                agent_log("ztunnel started %d times within a minute: next try in %llu ms",
                          RESTARTS_PER_MIN, (unsigned long long)(oldest + 60000 - now));
            a->limit_logged = true;
            a->next_start_ms = oldest + 60000;
            return;
        }
        memmove(a->starts, a->starts + 1, sizeof(a->starts[0]) * (RESTARTS_PER_MIN - 1));
        a->n_starts--;
    }
    a->limit_logged = false;
    int logfd = open(a->zt_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t pid = logfd >= 0 && nullfd >= 0 ? fork() : -1;
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        if (dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
            _exit(126);
        char *argv[] = {a->zt_bin, "--config", a->cfg, NULL};
        execv(a->zt_bin, argv);
        _exit(127);
    }
    int e = errno;
    if (logfd >= 0)
        close(logfd);
    if (nullfd >= 0)
        close(nullfd);
    if (pid < 0) {
        agent_log("cannot start ztunnel (%s): retrying in %d ms", strerror(e), BACKOFF_MAX_MS);
        a->next_start_ms = now + BACKOFF_MAX_MS;
        return;
    }
    a->child = pid;
    a->child_start = mc_proc_start_time(pid);
    a->child_started_ms = now;
    a->starts[a->n_starts++] = now;
    write_pid_file(a);
    agent_log("started ztunnel pid %ld (%s --config %s)", (long)pid, a->zt_bin, a->cfg);
    a->next_connect_ms = now;
}

static void drop_connection(agent_t *a, int retry_ms)
{
    if (a->sock >= 0)
        close(a->sock);
    a->sock = -1;
    a->next_connect_ms = zm_now_ms() + (uint64_t)retry_ms;
}

static void reap(agent_t *a)
{
    int status = 0;
    pid_t r;
    while ((r = waitpid(-1, &status, WNOHANG)) > 0) {
        if (r != a->child)
            continue;
        uint64_t now = zm_now_ms(), lived = now - a->child_started_ms;
        if (lived >= LIVED_LONG_MS || a->backoff_ms == 0)
            a->backoff_ms = BACKOFF_MIN_MS;
        else if ((a->backoff_ms *= 2) > BACKOFF_MAX_MS)
            a->backoff_ms = BACKOFF_MAX_MS;
        char why[160];
        if (WIFSIGNALED(status))
            snprintf(why, sizeof(why), "ztunnel pid %ld killed by signal %d after %llu ms", (long)r,
                     WTERMSIG(status), (unsigned long long)lived);
        else
            snprintf(why, sizeof(why), "ztunnel pid %ld exited with %d after %llu ms", (long)r,
                     WEXITSTATUS(status), (unsigned long long)lived);
        agent_log("%s: restarting in %d ms", why, a->backoff_ms);
        /* Until a snapshot succeeds again, up and apply report this. */
        char text[300];
        snprintf(text, sizeof(text), "%s (see logs/ztunnel-%s.log)\n", why, a->node);
        mc_write_file(a->f_err, text);
        a->child = 0;
        a->restarts++;
        a->next_start_ms = now + (uint64_t)a->backoff_ms;
        unlink(a->f_pid);
        drop_connection(a, 0);
    }
}

static void stop_ztunnel(agent_t *a)
{
    if (a->child <= 0)
        return;
    kill(a->child, SIGTERM);
    uint64_t deadline = zm_now_ms() + STOP_GRACE_MS;
    int status;
    while (waitpid(a->child, &status, WNOHANG) == 0) {
        if (zm_now_ms() >= deadline) {
            agent_log("ztunnel pid %ld did not stop within %d ms: SIGKILL", (long)a->child,
                      STOP_GRACE_MS);
            kill(a->child, SIGKILL);
            waitpid(a->child, &status, 0);
            break;
        }
        struct timespec ts = {.tv_nsec = 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    agent_log("stopped ztunnel pid %ld", (long)a->child);
    a->child = 0;
    unlink(a->f_pid);
}

/* ---- the snapshot ---- */

/* The node's ambient pods from sandbox.json; strings borrow from *st. */
static int load_pods(agent_t *a, json_t **st, mc_agent_pod_t **pods, char (**uids)[256], size_t *n)
{
    *pods = NULL;
    *uids = NULL;
    *n = 0;
    int rc = mc_sandbox_load(a->state_dir, st);
    if (rc < 0 || !*st)
        return rc < 0 ? rc : -ENOENT;
    json_t *list = json_object_get(*st, "pods"), *v;
    *pods = calloc(json_array_size(list) + 1, sizeof(**pods));
    *uids = calloc(json_array_size(list) + 1, sizeof(**uids));
    if (!*pods || !*uids)
        return -ENOMEM;
    size_t i;
    json_array_foreach(list, i, v)
    {
        const char *node = json_string_value(json_object_get(v, "node"));
        const char *name = json_string_value(json_object_get(v, "name"));
        const char *ns = json_string_value(json_object_get(v, "namespace"));
        const char *sa = json_string_value(json_object_get(v, "service_account"));
        const char *netns = json_string_value(json_object_get(v, "netns"));
        if (!json_is_true(json_object_get(v, "ambient")) || !node || strcmp(node, a->node) ||
            !name || !ns || !netns)
            continue;
        snprintf((*uids)[*n], sizeof((*uids)[*n]), "%s/%s", ns, name);
        (*pods)[*n] = (mc_agent_pod_t){.uid = (*uids)[*n],
                                       .name = name,
                                       .ns = ns,
                                       .service_account = sa ? sa : "default",
                                       .netns = netns};
        (*n)++;
    }
    return 0;
}

static void snapshot(agent_t *a)
{
    long tag = a->want;
    json_t *st = NULL;
    mc_agent_pod_t *pods = NULL;
    char(*uids)[256] = NULL;
    size_t n = 0;
    zm_err_t err = {0};
    int rc = load_pods(a, &st, &pods, &uids, &n);
    if (rc < 0)
        zm_err_set(&err, NULL, 0, "%s/%s: %s", a->state_dir, MC_SANDBOX_JSON, strerror(-rc));
    else
        rc = mc_agent_send_snapshot(a->sock, pods, n, ENROLL_TIMEOUT_MS, &err);
    free(pods);
    free(uids);
    json_decref(st);
    if (rc < 0) {
        char buf[700];
        zm_err_str(&err, buf, sizeof(buf));
        agent_log("snapshot failed: %s", buf);
        mc_write_file(a->f_err, buf);
        /* A refusal will not change by itself soon; anything else is the
         * connection, which a quick reconnect fixes. */
        drop_connection(a, rc == -EREMOTEIO ? NACK_RETRY_MS : CONNECT_RETRY_MS);
        return;
    }
    a->dirty = false;
    a->synced = tag;
    char text[64];
    snprintf(text, sizeof(text), "%ld %ld\n", a->synced, (long)a->child);
    mc_write_file(a->f_ready, text);
    unlink(a->f_err);
    agent_log("snapshot of %zu pods acked by ztunnel pid %ld (seq %ld)", n, (long)a->child, tag);
}

static void try_connect(agent_t *a)
{
    int fd = zm_enroll_connect(a->sock_path);
    if (fd < 0) {
        a->next_connect_ms = zm_now_ms() + CONNECT_RETRY_MS;
        return;
    }
    a->sock = fd;
    a->dirty = true; /* a new connection is a new snapshot for ztunnel */
    agent_log("connected to %s", a->sock_path);
}

/* The connection is readable: ztunnel never speaks first, so this is its
 * end (or noise, ignored). */
static void on_socket(agent_t *a)
{
    zm_enroll_msg_t m;
    int rc = zm_enroll_recv(a->sock, &m);
    if (rc == 0 || rc == -EBADMSG) {
        if (rc == 0 && m.netns_fd >= 0)
            close(m.netns_fd);
        return;
    }
    agent_log("ztunnel closed the enrollment connection (%s)", strerror(-rc));
    drop_connection(a, 0);
}

static int on_signal(agent_t *a)
{
    struct signalfd_siginfo si;
    int stop = 0;
    while (read(a->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGCHLD:
            reap(a);
            break;
        case SIGHUP: {
            long asked = si.ssi_code == SI_QUEUE ? (long)si.ssi_int : 0;
            a->want = asked > a->want + 1 ? asked : a->want + 1;
            a->dirty = true;
            agent_log("SIGHUP: new snapshot (seq %ld)", a->want);
            break;
        }
        default:
            stop = 1;
        }
    }
    return stop;
}

static int timeout_for(const agent_t *a)
{
    uint64_t now = zm_now_ms(), at = now + IDLE_POLL_MS;
    if (!a->child && a->next_start_ms < at)
        at = a->next_start_ms;
    if (a->child && a->sock < 0 && a->next_connect_ms < at)
        at = a->next_connect_ms;
    return at <= now ? 0 : (int)(at - now);
}

static int setup(agent_t *a, const char *state_dir, const char *node, zm_err_t *err)
{
    *a = (agent_t){.state_dir = state_dir, .node = node, .sock = -1, .sfd = -1};
    if (mc_sandbox_find_bin("ztunnel", a->zt_bin, sizeof(a->zt_bin)) < 0) {
        zm_err_set(err, NULL, 0, "no ztunnel binary next to meshctl (set ZMESH_ZTUNNEL)");
        return -ENOENT;
    }
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/run/%s", state_dir, node);
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        int rc = -errno;
        zm_err_set(err, NULL, 0, "%s: %s", dir, strerror(errno));
        return rc;
    }
    char comp[300], cfgname[300];
    mc_node_t mn = {.name = node};
    mc_compile_ztunnel_name(&mn, cfgname, sizeof(cfgname));
    snprintf(a->cfg, sizeof(a->cfg), "%s/config/%s", state_dir, cfgname);
    snprintf(comp, sizeof(comp), "ztunnel-%s", node);
    if (mc_sandbox_log_path(state_dir, comp, a->zt_log, sizeof(a->zt_log)) < 0 ||
        mc_agent_file(state_dir, node, "ztunnel.sock", a->sock_path, sizeof(a->sock_path)) < 0 ||
        mc_agent_file(state_dir, node, MC_AGENT_ZTUNNEL_FILE, a->f_pid, sizeof(a->f_pid)) < 0 ||
        mc_agent_file(state_dir, node, MC_AGENT_READY_FILE, a->f_ready, sizeof(a->f_ready)) < 0 ||
        mc_agent_file(state_dir, node, MC_AGENT_ERROR_FILE, a->f_err, sizeof(a->f_err)) < 0) {
        zm_err_set(err, NULL, 0, "%s: path too long", state_dir);
        return -ENAMETOOLONG;
    }
    /* Whatever a previous agent left describes no process of ours. */
    unlink(a->f_pid);
    unlink(a->f_ready);
    unlink(a->f_err);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    a->sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (a->sfd < 0) {
        int rc = -errno;
        zm_err_set(err, NULL, 0, "signalfd: %s", strerror(errno));
        return rc;
    }
    return 0;
}

int mc_agent_run(const char *state_dir, const char *node, zm_err_t *err)
{
    agent_t *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    int rc = setup(a, state_dir, node, err);
    if (rc < 0) {
        if (a->sfd >= 0)
            close(a->sfd);
        free(a);
        return rc;
    }
    agent_log("node %s: serving %s", node, a->sock_path);
    bool stop = false;
    while (!stop) {
        uint64_t now = zm_now_ms();
        if (!a->child && now >= a->next_start_ms)
            start_ztunnel(a);
        if (a->child && a->sock < 0 && now >= a->next_connect_ms)
            try_connect(a);
        if (a->sock >= 0 && a->dirty)
            snapshot(a);
        struct pollfd pfd[2] = {{.fd = a->sfd, .events = POLLIN},
                                {.fd = a->sock, .events = POLLIN}};
        int n = poll(pfd, 2, timeout_for(a));
        if (n < 0 && errno != EINTR)
            break;
        if (pfd[0].revents & POLLIN)
            stop = on_signal(a);
        if (a->sock >= 0 && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)))
            on_socket(a);
    }
    agent_log("stopping");
    drop_connection(a, 0);
    stop_ztunnel(a);
    close(a->sfd);
    free(a);
    return 0;
}
