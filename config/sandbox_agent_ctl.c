/*
 * sandbox_agent_ctl.c — the verbs' side of the node agents (see sandbox.h):
 * reading the files an agent keeps under STATE/run/<node>/, waiting after
 * `up` until every agent's ztunnel acked its first snapshot, and after
 * `apply` / `delete` signalling each agent and waiting for the snapshot
 * that follows.
 *
 * A new snapshot is asked for with sigqueue(SIGHUP, seq) where seq is one
 * more than the agent's last acked seq; the agent tags the next snapshot it
 * starts with the highest seq it received and writes that tag into
 * agent.ready once acked, so "ready seq >= asked seq" means a snapshot that
 * started after our signal (hence after our sandbox.json) went through.
 * Waits are bounded and give up early when an agent has exited, naming its
 * log; agent.error adds ztunnel's or the socket's reason.
 *
 * Threading: single-threaded callers (the verbs).
 */
#include "sandbox.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define AGENT_POLL_MS 10

int mc_agent_file(const char *state_dir, const char *node, const char *name, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/run/%s/%s", state_dir, node, name);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int read_small(const char *state_dir, const char *node, const char *name, char *buf,
                      size_t len)
{
    char path[4096];
    int rc = mc_agent_file(state_dir, node, name, path, sizeof(path));
    if (rc < 0)
        return rc;
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    size_t n = fread(buf, 1, len - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    return 0;
}

int mc_agent_read_ztunnel(const char *state_dir, const char *node, long *pid,
                          unsigned long long *start, long *restarts)
{
    char buf[128];
    int rc = read_small(state_dir, node, MC_AGENT_ZTUNNEL_FILE, buf, sizeof(buf));
    if (rc < 0)
        return rc;
    return sscanf(buf, "%ld %llu %ld", pid, start, restarts) == 3 ? 0 : -EBADMSG;
}

int mc_agent_read_ready(const char *state_dir, const char *node, long *seq, long *zt_pid)
{
    char buf[128];
    int rc = read_small(state_dir, node, MC_AGENT_READY_FILE, buf, sizeof(buf));
    if (rc < 0)
        return rc;
    return sscanf(buf, "%ld %ld", seq, zt_pid) == 2 ? 0 : -EBADMSG;
}

typedef struct agent_ref {
    const char *node;
    long pid;
    unsigned long long start;
    long want; /* done once agent.ready's seq reaches it */
    bool done;
} agent_ref_t;

/* The live agents among st's procs; count, or -ENOMEM. */
static int collect(json_t *st, agent_ref_t **out)
{
    json_t *procs = json_object_get(st, "procs"), *v;
    agent_ref_t *refs = calloc(json_array_size(procs) + 1, sizeof(*refs));
    if (!refs)
        return -ENOMEM;
    int n = 0;
    size_t i;
    json_array_foreach(procs, i, v)
    {
        const char *kind = json_string_value(json_object_get(v, "kind"));
        const char *node = json_string_value(json_object_get(v, "node"));
        if (!kind || strcmp(kind, "agent") != 0 || !node)
            continue;
        refs[n] = (agent_ref_t){
            .node = node,
            .pid = (long)json_integer_value(json_object_get(v, "pid")),
            .start = (unsigned long long)json_integer_value(json_object_get(v, "start")),
        };
        n++;
    }
    *out = refs;
    return n;
}

static void explain(const char *state_dir, const agent_ref_t *a, const char *what, zm_err_t *err)
{
    char reason[512] = "";
    if (read_small(state_dir, a->node, MC_AGENT_ERROR_FILE, reason, sizeof(reason)) < 0)
        reason[0] = '\0';
    zm_err_set(err, NULL, 0, "node agent of %s %s%s%s (see %s/logs/agent-%s.log)", a->node, what,
               reason[0] ? ": " : "", reason, state_dir, a->node);
}

static int wait_refs(const char *state_dir, agent_ref_t *refs, int n, int timeout_ms, zm_err_t *err)
{
    uint64_t deadline = zm_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        int left = 0;
        for (int i = 0; i < n; i++) {
            long seq = -1, zt = 0;
            if (!refs[i].done && mc_agent_read_ready(state_dir, refs[i].node, &seq, &zt) == 0)
                refs[i].done = seq >= refs[i].want;
            if (refs[i].done)
                continue;
            if (!mc_sandbox_pid_alive(refs[i].pid, refs[i].start)) {
                explain(state_dir, &refs[i], "exited", err);
                return -ESRCH;
            }
            left++;
        }
        if (left == 0)
            return 0;
        if (zm_now_ms() >= deadline) {
            for (int i = 0; i < n; i++)
                if (!refs[i].done) {
                    char what[64];
                    snprintf(what, sizeof(what), "got no ack from ztunnel within %d ms",
                             timeout_ms);
                    explain(state_dir, &refs[i], what, err);
                    break;
                }
            return -ETIMEDOUT;
        }
        struct timespec ts = {.tv_nsec = AGENT_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int mc_agent_wait_ready(const char *state_dir, json_t *st, int timeout_ms, zm_err_t *err)
{
    agent_ref_t *refs = NULL;
    int n = collect(st, &refs);
    int rc = n < 0 ? n : wait_refs(state_dir, refs, n, timeout_ms, err);
    free(refs);
    return rc;
}

int mc_agent_notify(const char *state_dir, json_t *st, int timeout_ms, zm_err_t *err)
{
    agent_ref_t *refs = NULL;
    int n = collect(st, &refs), live = 0;
    for (int i = 0; i < n; i++) {
        if (!mc_sandbox_pid_alive(refs[i].pid, refs[i].start)) {
            refs[i].done = true; /* gone: nothing to wait for */
            continue;
        }
        long seq = 0, zt = 0;
        if (mc_agent_read_ready(state_dir, refs[i].node, &seq, &zt) < 0)
            seq = 0;
        refs[i].want = seq + 1;
        union sigval sv = {.sival_int = (int)refs[i].want};
        if (sigqueue((pid_t)refs[i].pid, SIGHUP, sv) < 0) {
            refs[i].done = true;
            continue;
        }
        live++;
    }
    int rc = n < 0 ? n : live == 0 ? -ESRCH : wait_refs(state_dir, refs, n, timeout_ms, err);
    free(refs);
    return rc;
}
