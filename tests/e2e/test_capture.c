/*
 * In-pod capture end to end (root): two "pods" A (10.250.0.1) and B
 * (10.250.0.2) on a bridge in a third namespace, capture installed in A.
 *   - outbound: an unmarked client in A is redirected to A's 15001 with
 *     SO_ORIGINAL_DST = B:80; a ZT_MARK socket reaches B:80 itself (the
 *     fwmark rule does not turn it to lo);
 *   - inbound: B → A:8080 lands on A's 15006 (original dst A:8080),
 *     B → A:15008 on A's 15008 listener un-NATed;
 *   - source-IP preservation: a transparent socket bound to B's address
 *     connects to an app on A:9090, the app sees B's address and bytes flow
 *     both ways (the replies come back over lo);
 *   - sockets get the TCP congestion control asked for (listeners pass
 *     theirs to accepted connections; an unknown name keeps the default);
 *   - install twice leaves one table, one rule, one route; remove takes
 *     them all away and traffic goes direct again (and the transparent
 *     connection no longer completes).
 *
 * Namespaces are named zmt-cap-<pid>-{a,b,c}; teardown, atexit and the
 * alarm handler delete them, and stale ones of dead runs are swept at
 * start. Every wait is a poll with a timeout; alarm(20) bounds the whole.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/fib_rules.h>
#include <netlink/netlink.h>
#include <netlink/route/route.h>
#include <netlink/route/rule.h>
#include <netlink/socket.h>
#include <nftables/libnftables.h>

#include "capture.h"
#include "netns.h"
#include "sandbox_int.h"
#include "zt.h"

#define IP_A "10.250.0.1"
#define IP_B "10.250.0.2"
#define WAIT_MS 3000

static char ns_name[3][64]; /* a, b, c (the bridge) */
static bool ns_made[3];
static int nsfd_a = -1, nsfd_b = -1, host_ns = -1;

static int fds[32];
static int n_fds;

static int keep(int fd)
{
    if (fd >= 0 && n_fds < (int)ZM_ARRAY_LEN(fds))
        fds[n_fds++] = fd;
    return fd;
}

static void close_fds(void)
{
    for (int i = 0; i < n_fds; i++)
        close(fds[i]);
    n_fds = 0;
}

static void delete_namespaces(void)
{
    for (int i = 0; i < 3; i++)
        if (ns_made[i]) {
            (void)mc_netns_delete(ns_name[i]);
            ns_made[i] = false;
        }
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "test_capture: timed out\n";
    ssize_t w = write(2, msg, sizeof(msg) - 1);
    (void)w;
    delete_namespaces();
    _exit(1);
}

/* Namespaces of earlier runs that died before their teardown. */
static void sweep_stale(void)
{
    char **names = NULL;
    int n = mc_netns_list(MC_NETNS_RUN_DIR, "zmt-cap-", &names);
    for (int i = 0; i < n; i++) {
        long pid = strtol(names[i] + strlen("zmt-cap-"), NULL, 10);
        if (pid > 0 && pid != getpid() && kill((pid_t)pid, 0) < 0 && errno == ESRCH)
            (void)mc_netns_delete(names[i]);
    }
    if (n > 0)
        mc_netns_names_free(&names, n);
}

/* ---- sockets ---- */

typedef struct plain_req {
    const char *ip; /* listen: bind address (NULL: any) */
    uint16_t port;
    bool listen;
    int fd;
} plain_req_t;

/* An unmarked socket, as an application would make it. */
static int plain_in_ns(void *arg)
{
    plain_req_t *r = arg;
    r->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (r->fd < 0)
        return -errno;
    if (!r->listen)
        return 0;
    int one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(r->port)};
    if (r->ip)
        inet_pton(AF_INET, r->ip, &a.sin_addr);
    if (setsockopt(r->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(r->fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(r->fd, 16) < 0) {
        int e = -errno;
        close(r->fd);
        r->fd = -1;
        return e;
    }
    return 0;
}

static int app_socket(int nsfd)
{
    plain_req_t r = {.fd = -1};
    int rc = zt_netns_run(nsfd, host_ns, plain_in_ns, &r);
    return rc < 0 ? rc : keep(r.fd);
}

static int app_listen(int nsfd, uint16_t port)
{
    plain_req_t r = {.port = port, .listen = true, .fd = -1};
    int rc = zt_netns_run(nsfd, host_ns, plain_in_ns, &r);
    return rc < 0 ? rc : keep(r.fd);
}

static struct sockaddr_in sin_of(const char *ip, uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

/* Non-blocking connect bounded by timeout_ms: 0 or -errno (-ETIMEDOUT). */
static int connect_to(int fd, const char *ip, uint16_t port, int timeout_ms)
{
    struct sockaddr_in a = sin_of(ip, port);
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    int rc = connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ? -errno : 0;
    if (rc == -EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int n = poll(&p, 1, timeout_ms);
        if (n <= 0) {
            rc = -ETIMEDOUT;
        } else {
            int e = 0;
            socklen_t l = sizeof(e);
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l);
            rc = -e;
        }
    }
    fcntl(fd, F_SETFL, fl);
    return rc;
}

static bool readable(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, timeout_ms) == 1;
}

static int accept_within(int lfd, int timeout_ms, struct sockaddr_in *peer)
{
    if (!readable(lfd, timeout_ms))
        return -ETIMEDOUT;
    struct sockaddr_in tmp;
    socklen_t l = sizeof(tmp);
    int fd = accept4(lfd, (struct sockaddr *)(peer ? peer : &tmp), &l, SOCK_CLOEXEC);
    return fd < 0 ? -errno : keep(fd);
}

/* One message each way between two connected sockets. */
static void exchange(int a, int b)
{
    char buf[16];
    assert_int_equal(send(a, "ping", 4, MSG_NOSIGNAL), 4);
    assert_true(readable(b, WAIT_MS));
    assert_int_equal(recv(b, buf, sizeof(buf), 0), 4);
    assert_memory_equal(buf, "ping", 4);
    assert_int_equal(send(b, "pong", 4, MSG_NOSIGNAL), 4);
    assert_true(readable(a, WAIT_MS));
    assert_int_equal(recv(a, buf, sizeof(buf), 0), 4);
    assert_memory_equal(buf, "pong", 4);
}

static void assert_addr(const struct sockaddr_in *a, const char *ip, int port)
{
    char s[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &a->sin_addr, s, sizeof(s));
    assert_string_equal(s, ip);
    if (port >= 0)
        assert_int_equal(ntohs(a->sin_port), port);
}

/* ---- what is installed in A ---- */

typedef struct inspect {
    int rules, routes, redirects; /* redirects: -1 when the table is missing */
} inspect_t;

static int inspect_in_ns(void *arg)
{
    inspect_t *r = arg;
    struct nl_sock *sk = nl_socket_alloc();
    if (!sk || nl_connect(sk, NETLINK_ROUTE) < 0) {
        if (sk)
            nl_socket_free(sk);
        return -EIO;
    }
    struct nl_cache *cache = NULL;
    if (rtnl_rule_alloc_cache(sk, AF_INET, &cache) == 0) {
        for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
            struct rtnl_rule *rule = (struct rtnl_rule *)o;
            if (rtnl_rule_get_mark(rule) == ZT_TPROXY_MARK &&
                rtnl_rule_get_table(rule) == ZT_CAPTURE_RT_TABLE)
                r->rules++;
        }
        nl_cache_free(cache);
    }
    cache = NULL;
    if (rtnl_route_alloc_cache(sk, AF_INET, 0, &cache) == 0) {
        for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o))
            if (rtnl_route_get_table((struct rtnl_route *)o) == ZT_CAPTURE_RT_TABLE)
                r->routes++;
        nl_cache_free(cache);
    }
    nl_socket_free(sk);

    struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);
    if (!nft)
        return -ENOMEM;
    nft_ctx_buffer_output(nft);
    nft_ctx_buffer_error(nft);
    r->redirects = -1;
    if (nft_run_cmd_from_buffer(nft, "list table ip " ZT_CAPTURE_TABLE) == 0) {
        r->redirects = 0;
        for (const char *p = nft_ctx_get_output_buffer(nft); (p = strstr(p, "redirect to")); p++)
            r->redirects++;
    }
    nft_ctx_free(nft);
    return 0;
}

/* A second copy of the fwmark rule, as a hand-made `ip rule add` would. */
static int dup_rule_in_ns(void *arg)
{
    (void)arg;
    struct nl_sock *sk = nl_socket_alloc();
    struct rtnl_rule *rule = rtnl_rule_alloc();
    int rc = -ENOMEM;
    if (sk && rule && nl_connect(sk, NETLINK_ROUTE) == 0) {
        rtnl_rule_set_family(rule, AF_INET);
        rtnl_rule_set_prio(rule, ZT_CAPTURE_RULE_PRIO);
        rtnl_rule_set_mark(rule, ZT_TPROXY_MARK);
        rtnl_rule_set_mask(rule, ZT_MARK_MASK);
        rtnl_rule_set_table(rule, ZT_CAPTURE_RT_TABLE);
        rtnl_rule_set_action(rule, FR_ACT_TO_TBL);
        rc = rtnl_rule_add(sk, rule, NLM_F_CREATE) < 0 ? -EIO : 0;
    }
    if (rule)
        rtnl_rule_put(rule);
    if (sk)
        nl_socket_free(sk);
    return rc;
}

static inspect_t inspect_a(void)
{
    inspect_t r = {0};
    assert_int_equal(zt_netns_run(nsfd_a, host_ns, inspect_in_ns, &r), 0);
    return r;
}

/* ---- fixture ---- */

static int group_setup(void **state)
{
    (void)state;
    sweep_stale();
    static const char *suffix[3] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        snprintf(ns_name[i], sizeof(ns_name[i]), "zmt-cap-%d-%s", (int)getpid(), suffix[i]);
        if (mc_netns_create(ns_name[i]) < 0) {
            fprintf(stderr, "cannot create namespace %s (root needed)\n", ns_name[i]);
            return -1;
        }
        ns_made[i] = true;
    }
    host_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    nsfd_a = mc_netns_open(ns_name[0]);
    nsfd_b = mc_netns_open(ns_name[1]);
    int nsfd_c = mc_netns_open(ns_name[2]);
    if (host_ns < 0 || nsfd_a < 0 || nsfd_b < 0 || nsfd_c < 0)
        return -1;

    char br[16], va[16], vb[16];
    snprintf(br, sizeof(br), "zc%dbr", (int)getpid());
    snprintf(va, sizeof(va), "zc%da", (int)getpid());
    snprintf(vb, sizeof(vb), "zc%db", (int)getpid());
    mc_link_req_t rb = {.bridge = br, .addr = "10.250.0.254/24"};
    /* A default route, as pods have: service VIPs are routed before the DNAT. */
    mc_link_req_t ra = {.bridge = br,
                        .host_if = va,
                        .peer_nsfd = nsfd_a,
                        .addr = IP_A "/24",
                        .gateway = "10.250.0.254"};
    mc_link_req_t rbb = {.bridge = br, .host_if = vb, .peer_nsfd = nsfd_b, .addr = IP_B "/24"};
    int rc = mc_netns_run(nsfd_c, mc_link_bridge_setup, &rb);
    if (rc >= 0)
        rc = mc_netns_run(nsfd_c, mc_link_veth_add, &ra);
    if (rc >= 0)
        rc = mc_netns_run(nsfd_c, mc_link_veth_add, &rbb);
    if (rc >= 0)
        rc = mc_netns_run(nsfd_a, mc_link_iface_setup, &ra);
    if (rc >= 0)
        rc = mc_netns_run(nsfd_b, mc_link_iface_setup, &rbb);
    close(nsfd_c);
    if (rc < 0) {
        fprintf(stderr, "network setup: %s %s %s\n", rb.errbuf, ra.errbuf, rbb.errbuf);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    close_fds();
    if (nsfd_a >= 0)
        close(nsfd_a);
    if (nsfd_b >= 0)
        close(nsfd_b);
    if (host_ns >= 0)
        close(host_ns);
    nsfd_a = nsfd_b = host_ns = -1;
    delete_namespaces();
    return 0;
}

static int test_setup(void **state)
{
    (void)state;
    zm_err_t err = {0};
    int rc = zt_capture_install(nsfd_a, host_ns, &err);
    if (rc < 0)
        fprintf(stderr, "install: %s\n", err.msg);
    return rc;
}

static int test_teardown(void **state)
{
    (void)state;
    close_fds();
    return 0;
}

/* ---- tests ---- */

static void test_outbound(void **state)
{
    (void)state;
    int l1 = keep(zt_netns_listen(nsfd_a, host_ns, ZT_PORT_OUTBOUND, NULL));
    int lb = keep(zt_netns_listen(nsfd_b, host_ns, 80, NULL));
    assert_true(l1 >= 0);
    assert_true(lb >= 0);

    /* The application's connection is captured. */
    int c = app_socket(nsfd_a);
    assert_true(c >= 0);
    assert_int_equal(connect_to(c, IP_B, 80, WAIT_MS), 0);
    struct sockaddr_in peer, odst;
    int s = accept_within(l1, WAIT_MS, &peer);
    assert_true(s >= 0);
    assert_addr(&peer, IP_A, -1); /* the pod's own address, kept */
    assert_int_equal(zt_original_dst(s, &odst), 0);
    assert_addr(&odst, IP_B, 80);
    exchange(c, s);
    assert_false(readable(lb, 0));

    /* A kube-proxy style DNAT at dstnat+10 (the sandbox's services) runs
     * after the capture: ztunnel sees the service VIP, not the endpoint. */
    mc_nft_req_t svc = {.ruleset = "table ip zmt-svc {\n"
                                   "  chain out { type nat hook output priority -90;\n"
                                   "    ip daddr 10.96.0.10 tcp dport 80 dnat to " IP_B ":80\n"
                                   "  }\n"
                                   "}\n"};
    assert_int_equal(mc_netns_run(nsfd_a, mc_nft_apply, &svc), 0);
    c = app_socket(nsfd_a);
    assert_true(c >= 0);
    assert_int_equal(connect_to(c, "10.96.0.10", 80, WAIT_MS), 0);
    s = accept_within(l1, WAIT_MS, NULL);
    assert_true(s >= 0);
    assert_int_equal(zt_original_dst(s, &odst), 0);
    assert_addr(&odst, "10.96.0.10", 80);
    assert_false(readable(lb, 0));

    /* ztunnel's own (ZT_MARK) connection goes out through eth0 to B, and
     * the service DNAT still applies to it. */
    int v = keep(zt_netns_connect_socket(nsfd_a, host_ns, NULL, false, NULL));
    assert_true(v >= 0);
    assert_int_equal(connect_to(v, "10.96.0.10", 80, WAIT_MS), 0);
    s = accept_within(lb, WAIT_MS, NULL);
    assert_true(s >= 0);
    exchange(v, s);

    int m = keep(zt_netns_connect_socket(nsfd_a, host_ns, NULL, false, NULL));
    assert_true(m >= 0);
    assert_int_equal(connect_to(m, IP_B, 80, WAIT_MS), 0);
    s = accept_within(lb, WAIT_MS, &peer);
    assert_true(s >= 0);
    assert_addr(&peer, IP_A, -1);
    exchange(m, s);
    assert_false(readable(l1, 0));

    /* Kept source address (outbound HBONE from the pod's IP). */
    struct sockaddr_in src = sin_of(IP_A, 0);
    m = keep(zt_netns_connect_socket(nsfd_a, host_ns, &src, false, NULL));
    assert_true(m >= 0);
    assert_int_equal(connect_to(m, IP_B, 80, WAIT_MS), 0);
    s = accept_within(lb, WAIT_MS, &peer);
    assert_true(s >= 0);
    exchange(m, s);
}

static void test_inbound(void **state)
{
    (void)state;
    int l6 = keep(zt_netns_listen(nsfd_a, host_ns, ZT_PORT_INBOUND, NULL));
    int l8 = keep(zt_netns_listen(nsfd_a, host_ns, ZT_PORT_HBONE, NULL));
    assert_true(l6 >= 0);
    assert_true(l8 >= 0);

    int c = app_socket(nsfd_b);
    assert_true(c >= 0);
    assert_int_equal(connect_to(c, IP_A, 8080, WAIT_MS), 0);
    struct sockaddr_in peer, odst;
    int s = accept_within(l6, WAIT_MS, &peer);
    assert_true(s >= 0);
    assert_addr(&peer, IP_B, -1);
    assert_int_equal(zt_original_dst(s, &odst), 0);
    assert_addr(&odst, IP_A, 8080);
    exchange(c, s);

    c = app_socket(nsfd_b);
    assert_true(c >= 0);
    assert_int_equal(connect_to(c, IP_A, ZT_PORT_HBONE, WAIT_MS), 0);
    s = accept_within(l8, WAIT_MS, &peer);
    assert_true(s >= 0);
    assert_addr(&peer, IP_B, -1);
    assert_int_equal(zt_original_dst(s, &odst), 0); /* tracked, not NATed: itself */
    assert_addr(&odst, IP_A, ZT_PORT_HBONE);
    exchange(c, s);
    assert_false(readable(l6, 0));
}

static void test_source_ip_preserved(void **state)
{
    (void)state;
    int app = app_listen(nsfd_a, 9090);
    assert_true(app >= 0);
    struct sockaddr_in src = sin_of(IP_B, 0);
    int t = keep(zt_netns_connect_socket(nsfd_a, host_ns, &src, true, NULL));
    assert_true(t >= 0);
    assert_int_equal(connect_to(t, IP_A, 9090, WAIT_MS), 0);
    struct sockaddr_in peer;
    int s = accept_within(app, WAIT_MS, &peer);
    assert_true(s >= 0);
    assert_addr(&peer, IP_B, -1);
    exchange(t, s);
    exchange(s, t);

    /* Meanwhile ZT_MARK traffic still leaves through eth0. */
    int lb = keep(zt_netns_listen(nsfd_b, host_ns, 80, NULL));
    int m = keep(zt_netns_connect_socket(nsfd_a, host_ns, NULL, false, NULL));
    assert_true(lb >= 0 && m >= 0);
    assert_int_equal(connect_to(m, IP_B, 80, WAIT_MS), 0);
    s = accept_within(lb, WAIT_MS, NULL);
    assert_true(s >= 0);
    exchange(m, s);
}

static void test_idempotent_and_remove(void **state)
{
    (void)state;
    inspect_t i = inspect_a();
    assert_int_equal(i.rules, 1);
    assert_int_equal(i.routes, 1);
    assert_int_equal(i.redirects, 2);
    assert_int_equal(zt_netns_run(nsfd_a, host_ns, dup_rule_in_ns, NULL), 0);
    assert_int_equal(inspect_a().rules, 2);
    zm_err_t err = {0};
    assert_int_equal(zt_capture_install(nsfd_a, host_ns, &err), 0);
    i = inspect_a();
    assert_int_equal(i.rules, 1);
    assert_int_equal(i.routes, 1);
    assert_int_equal(i.redirects, 2);

    assert_int_equal(zt_capture_remove(nsfd_a, host_ns), 0);
    i = inspect_a();
    assert_int_equal(i.rules, 0);
    assert_int_equal(i.routes, 0);
    assert_int_equal(i.redirects, -1);
    assert_int_equal(zt_capture_remove(nsfd_a, host_ns), 0); /* nothing left: fine */

    /* Direct again: A's client reaches B:80 itself, B reaches A:8080. */
    int l1 = keep(zt_netns_listen(nsfd_a, host_ns, ZT_PORT_OUTBOUND, NULL));
    int lb = keep(zt_netns_listen(nsfd_b, host_ns, 80, NULL));
    assert_true(l1 >= 0 && lb >= 0);
    int c = app_socket(nsfd_a);
    assert_true(c >= 0);
    assert_int_equal(connect_to(c, IP_B, 80, WAIT_MS), 0);
    int s = accept_within(lb, WAIT_MS, NULL);
    assert_true(s >= 0);
    exchange(c, s);
    assert_false(readable(l1, 0));

    int app = app_listen(nsfd_a, 8080);
    assert_true(app >= 0);
    c = app_socket(nsfd_b);
    assert_int_equal(connect_to(c, IP_A, 8080, WAIT_MS), 0);
    s = accept_within(app, WAIT_MS, NULL);
    assert_true(s >= 0);
    exchange(c, s);

    /* Without the fwmark route the app's reply to B's address leaves
     * through eth0, so a transparent connection cannot complete. */
    int app9 = app_listen(nsfd_a, 9091);
    struct sockaddr_in src = sin_of(IP_B, 0);
    int t = keep(zt_netns_connect_socket(nsfd_a, host_ns, &src, true, NULL));
    assert_true(app9 >= 0 && t >= 0);
    assert_int_not_equal(connect_to(t, IP_A, 9091, 1000), 0);
}

static void assert_thread_in_host_ns(void)
{
    char self[128], host[128], path[64];
    ssize_t n = readlink("/proc/thread-self/ns/net", self, sizeof(self) - 1);
    assert_true(n > 0);
    self[n] = '\0';
    snprintf(path, sizeof(path), "/proc/self/fd/%d", host_ns);
    n = readlink(path, host, sizeof(host) - 1);
    assert_true(n > 0);
    host[n] = '\0';
    assert_string_equal(self, host);
}

static void congestion_of(int fd, char *out, size_t len)
{
    socklen_t n = (socklen_t)len;
    memset(out, 0, len);
    assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, out, &n), 0);
}

/* tcp.pod_congestion / mesh_congestion: a listener's algorithm reaches the
 * connections it accepts, a connecting socket has its own, and a name this
 * kernel lacks leaves the namespace's default without failing the socket. */
static void test_congestion_control(void **state)
{
    (void)state;
    char dflt[16], want[16], got[16];
    int d = keep(zt_netns_connect_socket(nsfd_a, host_ns, NULL, false, NULL));
    assert_true(d >= 0);
    congestion_of(d, dflt, sizeof(dflt));
    /* reno is always built in; the test needs one that differs. */
    snprintf(want, sizeof(want), "%s", strcmp(dflt, "reno") ? "reno" : "cubic");

    int l = keep(zt_netns_listen(nsfd_b, host_ns, 80, want));
    assert_true(l >= 0);
    int c = keep(zt_netns_connect_socket(nsfd_a, host_ns, NULL, false, want));
    assert_true(c >= 0);
    congestion_of(c, got, sizeof(got));
    assert_string_equal(got, want);
    assert_int_equal(connect_to(c, IP_B, 80, WAIT_MS), 0);
    int s = accept_within(l, WAIT_MS, NULL);
    assert_true(s >= 0);
    congestion_of(s, got, sizeof(got));
    assert_string_equal(got, want);

    int x = keep(zt_netns_socket(nsfd_a, host_ns, SOCK_STREAM, "no-such-cc"));
    assert_true(x >= 0);
    congestion_of(x, got, sizeof(got));
    assert_string_equal(got, dflt);
    assert_thread_in_host_ns();
}

static void test_bad_namespace(void **state)
{
    (void)state;
    zm_err_t err = {0};
    assert_true(zt_capture_install(-1, host_ns, &err) < 0);
    assert_true(err.msg[0] != '\0');
    assert_int_equal(zt_netns_listen(nsfd_a, -1, 0, NULL), -EBADF);
    assert_thread_in_host_ns();

    /* Not a namespace: setns fails and the thread stays where it was. */
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(devnull >= 0);
    assert_int_equal(zt_netns_listen(devnull, host_ns, 0, NULL), -EINVAL);
    assert_int_equal(zt_capture_install(devnull, host_ns, &err), -EINVAL);
    assert_thread_in_host_ns();

    /* No way back: reported, the socket made in A is not leaked. */
    assert_int_equal(zt_netns_listen(nsfd_a, devnull, 0, NULL), -ENOTRECOVERABLE);
    assert_int_equal(setns(host_ns, CLONE_NEWNET), 0);
    assert_thread_in_host_ns();
    close(devnull);
}

int main(void)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_capture: needs root; skipped\n");
        return 77;
    }
    signal(SIGALRM, on_alarm);
    alarm(20);
    atexit(delete_namespaces);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_outbound, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_inbound, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_source_ip_preserved, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_idempotent_and_remove, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_congestion_control, test_setup, test_teardown),
        cmocka_unit_test_teardown(test_bad_namespace, test_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
