/*
 * netns_sock.c — sockets created inside a pod's network namespace.
 *
 * A socket belongs to the network namespace its creating thread was in at
 * socket() time and stays there whatever the thread does next, so ztunnel
 * makes a pod's listeners and its outbound/inbound connection sockets by
 * moving the calling thread into the pod's namespace (setns CLONE_NEWNET),
 * creating and configuring the socket, and moving the thread back to
 * host_nsfd (the namespace ztunnel started in).
 *
 * Invariant: every function here returns with the calling thread in
 * host_nsfd, whatever failed in between. If the switch back itself fails
 * (it cannot for a valid host_nsfd held open by the daemon) nothing can
 * repair the thread; that is reported as -ENOTRECOVERABLE so the caller
 * stops using it rather than open host sockets in a pod.
 *
 * Every socket is SOCK_CLOEXEC and carries a packet mark: ZT_MARK (0x539)
 * for ztunnel's own sockets, which the capture rules let pass, or
 * ZT_TPROXY_MARK (0x111) for the transparent sockets that connect to the
 * application with the client's address (see capture.h for why the two
 * differ). nsfd < 0 means "in the host namespace": no switch at all.
 *
 * A socket may also get a TCP congestion control (tcp.* in the config):
 * one that cannot be set (not built into this kernel) is logged and the
 * namespace's default stays; the connection itself is not refused for it.
 *
 * Threading: any thread; only the calling thread moves, and only for the
 * duration of the call.
 */
#include "capture.h"
#include "zt.h"

#include "log.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdio.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int zt_netns_run(int nsfd, int host_nsfd, int (*fn)(void *), void *arg)
{
    if (nsfd < 0)
        return fn(arg);
    if (host_nsfd < 0)
        return -EBADF;
    if (setns(nsfd, CLONE_NEWNET) < 0)
        return -errno; /* still in host_nsfd: setns changes nothing on failure */
    int rc = fn(arg);
    if (setns(host_nsfd, CLONE_NEWNET) < 0)
        return -ENOTRECOVERABLE; /* fn's work stands, the thread is lost */
    return rc;
}

typedef struct sock_req {
    int type;
    uint32_t mark;
    uint16_t port;    /* listeners: bind 0.0.0.0:port */
    bool listen;      /* bind + listen */
    bool transparent; /* IP_TRANSPARENT */
    bool has_src;     /* bind to src before connecting */
    struct sockaddr_in src;
    const char *congestion; /* NULL or "": the namespace's default */
    int fd;                 /* out */
    int congestion_err;     /* out: errno of a congestion control not set */
} sock_req_t;

static int set_int(int fd, int level, int opt, int v)
{
    return setsockopt(fd, level, opt, &v, sizeof(v)) < 0 ? -errno : 0;
}

static int make_socket(void *arg)
{
    sock_req_t *r = arg;
    int fd = socket(AF_INET, r->type | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc = set_int(fd, SOL_SOCKET, SO_MARK, (int)r->mark);
    /* Before listen(): accepted connections inherit it from the listener. */
    if (!rc && r->congestion && r->congestion[0] &&
        setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, r->congestion, strlen(r->congestion)) < 0)
        r->congestion_err = errno;
    if (!rc && r->listen) {
        rc = set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
        if (!rc)
            rc = set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(r->port)};
        if (!rc && bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
            rc = -errno;
        if (!rc && listen(fd, 4096) < 0)
            rc = -errno;
    }
    if (!rc && r->transparent)
        rc = set_int(fd, SOL_IP, IP_TRANSPARENT, 1);
    /* Bound to a possibly foreign address: let connect() pick the port late
     * so two connections from one client address do not exhaust it. */
    if (!rc && r->has_src)
        rc = set_int(fd, SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1);
    if (!rc && r->has_src && bind(fd, (const struct sockaddr *)&r->src, sizeof(r->src)) < 0)
        rc = -errno;
    if (rc < 0) {
        close(fd);
        return rc;
    }
    r->fd = fd;
    return 0;
}

static int run_req(int nsfd, int host_nsfd, sock_req_t *r)
{
    r->fd = -1;
    int rc = zt_netns_run(nsfd, host_nsfd, make_socket, r);
    if (rc < 0) {
        if (r->fd >= 0)
            close(r->fd);
        return rc;
    }
    if (r->congestion_err) {
        zm_log_ctx_t lc = {.worker = -1, .conn_id = -1, .action = "tcp congestion"};
        zm_log_ratelimited(ZM_LOG_WARN, &lc, "congestion control not set",
                           "TCP congestion control '%s' not set (%s): the namespace's default "
                           "applies (see /proc/sys/net/ipv4/tcp_available_congestion_control)",
                           r->congestion, strerror(r->congestion_err));
    }
    return r->fd;
}

void zt_congestion_of(zt_congestion_t *out, const zm_config_t *cfg)
{
    snprintf(out->pod, sizeof(out->pod), "%s", cfg->tcp.pod_congestion);
    snprintf(out->mesh, sizeof(out->mesh), "%s", cfg->tcp.mesh_congestion);
}

int zt_netns_socket(int nsfd, int host_nsfd, int type, const char *congestion)
{
    sock_req_t r = {.type = type, .mark = ZT_MARK, .congestion = congestion};
    return run_req(nsfd, host_nsfd, &r);
}

int zt_netns_listen(int nsfd, int host_nsfd, uint16_t port, const char *congestion)
{
    sock_req_t r = {.type = SOCK_STREAM,
                    .mark = ZT_MARK,
                    .port = port,
                    .listen = true,
                    .congestion = congestion};
    return run_req(nsfd, host_nsfd, &r);
}

int zt_netns_connect_socket(int nsfd, int host_nsfd, const struct sockaddr_in *bind_src,
                            bool transparent, const char *congestion)
{
    sock_req_t r = {.type = SOCK_STREAM,
                    .mark = transparent ? ZT_TPROXY_MARK : ZT_MARK,
                    .transparent = transparent,
                    .congestion = congestion};
    if (bind_src) {
        if (bind_src->sin_family != AF_INET)
            return -EAFNOSUPPORT;
        r.has_src = true;
        r.src = *bind_src;
    }
    return run_req(nsfd, host_nsfd, &r);
}
