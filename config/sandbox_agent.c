/*
 * sandbox_agent.c — meshctl as a node's agent: hand every ambient pod's
 * network namespace to that node's ztunnel over the enrollment socket
 * (common/enroll.h), then say the snapshot is complete.
 *
 * mc_agent_sync is one connection per sync (the fallback when no node agent
 * runs); the node agent (sandbox_agent_loop.c) keeps one connection open
 * and sends each snapshot on it with mc_agent_send_snapshot. Each message
 * waits for its ack, bounded by a receive timeout on the socket, so a
 * ztunnel that hangs never hangs `up`.
 * The namespace fd of each add is ours until sent and closed right after:
 * ztunnel got its own copy through SCM_RIGHTS.
 */
#include "sandbox.h"

#include "enroll.h"
#include "netns.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Connect, retrying while the daemon is still starting (no socket yet, or
 * nobody accepting). */
static int connect_bounded(const char *path, int timeout_ms)
{
    int waited = 0;
    for (;;) {
        int fd = zm_enroll_connect(path);
        if (fd >= 0 || (fd != -ENOENT && fd != -ECONNREFUSED) || waited >= timeout_ms)
            return fd;
        sleep_ms(20);
        waited += 20;
    }
}

static int wait_ack(int sock, const char *what, zm_err_t *err)
{
    char reason[256] = "";
    int rc = zm_enroll_wait_ack(sock, reason, sizeof(reason));
    if (rc == -EAGAIN || rc == -EWOULDBLOCK)
        rc = -ETIMEDOUT;
    if (rc == -EREMOTEIO)
        zm_err_set(err, NULL, 0, "enrollment: %s refused: %s", what, reason);
    else if (rc < 0)
        zm_err_set(err, NULL, 0, "enrollment: no ack for %s (%s)", what, strerror(-rc));
    return rc;
}

/* A name under /run/netns, or a path (e.g. /proc/PID/ns/net). */
static int open_ns(const char *netns)
{
    if (netns[0] != '/')
        return mc_netns_open(netns);
    int fd = open(netns, O_RDONLY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int mc_agent_connect(const char *sock_path, int timeout_ms)
{
    int sock = connect_bounded(sock_path, timeout_ms);
    if (sock < 0)
        return sock == -ENOENT || sock == -ECONNREFUSED ? -ETIMEDOUT : sock;
    return sock;
}

int mc_agent_send_snapshot(int sock, const mc_agent_pod_t *pods, size_t n, int timeout_ms,
                           zm_err_t *err)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int rc = 0;
    for (size_t i = 0; i < n && rc >= 0; i++) {
        const mc_agent_pod_t *p = &pods[i];
        zm_enroll_msg_t m = {.type = ZM_ENROLL_ADD};
        snprintf(m.uid, sizeof(m.uid), "%s", p->uid);
        snprintf(m.name, sizeof(m.name), "%s", p->name);
        snprintf(m.ns, sizeof(m.ns), "%s", p->ns);
        snprintf(m.service_account, sizeof(m.service_account), "%s", p->service_account);
        m.netns_fd = open_ns(p->netns);
        if (m.netns_fd < 0) {
            rc = m.netns_fd;
            zm_err_set(err, NULL, 0, "enrollment: namespace %s: %s", p->netns, strerror(-rc));
            break;
        }
        rc = zm_enroll_send(sock, &m);
        close(m.netns_fd);
        if (rc < 0)
            zm_err_set(err, NULL, 0, "enrollment: sending %s: %s", p->uid, strerror(-rc));
        else
            rc = wait_ack(sock, p->uid, err);
    }
    if (rc >= 0) {
        zm_enroll_msg_t m = {.type = ZM_ENROLL_SNAPSHOT_SENT, .netns_fd = -1};
        rc = zm_enroll_send(sock, &m);
        if (rc < 0)
            zm_err_set(err, NULL, 0, "enrollment: sending snapshot_sent: %s", strerror(-rc));
        else
            rc = wait_ack(sock, "snapshot_sent", err);
    }
    return rc < 0 ? rc : 0;
}

int mc_agent_sync(const char *sock_path, const mc_agent_pod_t *pods, size_t n, int timeout_ms,
                  zm_err_t *err)
{
    int sock = connect_bounded(sock_path, timeout_ms);
    if (sock < 0) {
        zm_err_set(err, NULL, 0, "enrollment socket %s: %s", sock_path, strerror(-sock));
        return sock == -ENOENT || sock == -ECONNREFUSED ? -ETIMEDOUT : sock;
    }
    int rc = mc_agent_send_snapshot(sock, pods, n, timeout_ms, err);
    close(sock);
    return rc;
}
