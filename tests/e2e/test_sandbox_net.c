/*
 * The sandbox network end to end (root): up builds 2 nodes and 4 pods on one
 * bridge in a cluster namespace; pods reach each other by IP and services
 * by name through the hosts files and the nftables DNAT (both endpoints of
 * a 2-endpoint service serve, a named target port lands on the right port,
 * an endpoint-less service resets); the host's own namespace gains no link,
 * address or route; down leaves no namespace, mount, /etc/netns dir or
 * process; down after a crashed up (plus strays the state never knew)
 * cleans everything and a new up works.
 *
 * Everything is named zmt-<pid>-*; every test's teardown runs down, and
 * every wait is bounded (exec timeouts, python socket timeouts, alarm).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "netns.h"
#include "sandbox_net.h"
#include "strbuf.h"

typedef struct fx {
    char prefix[32];
    char state[256];
    char pfx_dash[40]; /* "zmt-PID-" */
    pid_t spawned[8];
    int n_spawned;
    char *host_links, *host_routes, *host_addrs;
} fx_t;

static const mc_net_node_t NODES[] = {
    {.name = "node-1", .ip = "10.244.0.11", .pod_cidr = "10.244.1.0/24"},
    {.name = "node-2", .ip = "10.244.0.12", .pod_cidr = "10.244.2.0/24"},
};
static const mc_net_pod_t PODS[] = {
    {.ns = "a", .name = "p1", .node = "node-1", .ip = "10.244.1.2"},
    {.ns = "a", .name = "p2", .node = "node-2", .ip = "10.244.2.2"},
    {.ns = "b", .name = "p3", .node = "node-1", .ip = "10.244.1.3"},
    {.ns = "b", .name = "p4", .node = "node-2", .ip = "10.244.2.3"},
};
static const mc_net_svc_port_t WEB_PORTS[] = {{.port = 80, .target_port = 8080}};
static const mc_net_endpoint_t WEB_EPS[] = {{.ip = "10.244.1.2"}, {.ip = "10.244.2.2"}};
/* api: port 81's targetPort is a name that resolved to 9090 on p3; 82 → 8080. */
static const mc_net_svc_port_t API_PORTS[] = {{.port = 81, .target_port = 0},
                                              {.port = 82, .target_port = 8080}};
static const uint16_t P3_TARGETS[] = {9090, 0};
static const mc_net_endpoint_t API_EPS[] = {{.ip = "10.244.1.3", .target_ports = P3_TARGETS}};
static const mc_net_svc_port_t EMPTY_PORTS[] = {{.port = 80, .target_port = 8080}};
static const mc_net_service_t SERVICES[] = {
    {.ns = "a",
     .name = "web",
     .cluster_ip = "10.96.0.10",
     .ports = WEB_PORTS,
     .n_ports = 1,
     .endpoints = WEB_EPS,
     .n_endpoints = 2},
    {.ns = "b",
     .name = "api",
     .cluster_ip = "10.96.0.11",
     .ports = API_PORTS,
     .n_ports = 2,
     .endpoints = API_EPS,
     .n_endpoints = 1},
    {.ns = "b", .name = "empty", .cluster_ip = "10.96.0.12", .ports = EMPTY_PORTS, .n_ports = 1},
};

static mc_net_plan_t plan_of(fx_t *f)
{
    return (mc_net_plan_t){.prefix = f->prefix,
                           .state_dir = f->state,
                           .bridge = "zmtbr0",
                           .gateway = "10.244.0.1",
                           .prefix_len = 16,
                           .nodes = NODES,
                           .n_nodes = 2,
                           .pods = PODS,
                           .n_pods = 4,
                           .services = SERVICES,
                           .n_services = 3};
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return strdup("");
    zm_strbuf_t sb = {0};
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), fp)) > 0)
        zm_strbuf_append(&sb, buf, n);
    fclose(fp);
    char *s = zm_strbuf_detach(&sb, NULL);
    return s ? s : strdup("");
}

/* Interface names only (counters change all the time). */
static char *host_links(void)
{
    char *all = slurp("/proc/net/dev");
    zm_strbuf_t sb = {0};
    for (char *save = NULL, *line = strtok_r(all, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char *colon = strchr(line, ':');
        if (colon) {
            *colon = '\0';
            zm_strbuf_appendf(&sb, "%s\n", line);
        }
    }
    free(all);
    char *s = zm_strbuf_detach(&sb, NULL);
    return s ? s : strdup("");
}

static char *host_addrs(void)
{
    struct ifaddrs *ifa = NULL;
    zm_strbuf_t sb = {0};
    if (getifaddrs(&ifa) == 0) {
        for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
            char buf[INET6_ADDRSTRLEN] = "";
            if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET)
                inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, buf,
                          sizeof(buf));
            else if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET6)
                inet_ntop(AF_INET6, &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, buf,
                          sizeof(buf));
            if (buf[0])
                zm_strbuf_appendf(&sb, "%s %s\n", i->ifa_name, buf);
        }
        freeifaddrs(ifa);
    }
    char *s = zm_strbuf_detach(&sb, NULL);
    return s ? s : strdup("");
}

static void host_snapshot(fx_t *f)
{
    f->host_links = host_links();
    f->host_routes = slurp("/proc/net/route");
    f->host_addrs = host_addrs();
}

static void host_unchanged(fx_t *f)
{
    char *l = host_links(), *r = slurp("/proc/net/route"), *a = host_addrs();
    assert_string_equal(l, f->host_links);
    assert_string_equal(r, f->host_routes);
    assert_string_equal(a, f->host_addrs);
    free(l);
    free(r);
    free(a);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    snprintf(f->prefix, sizeof(f->prefix), "zmt-%d", (int)getpid());
    snprintf(f->pfx_dash, sizeof(f->pfx_dash), "zmt-%d-", (int)getpid());
    snprintf(f->state, sizeof(f->state), "/tmp/zmt-%d-state", (int)getpid());
    host_snapshot(f);
    alarm(90); /* last resort; every wait below is bounded on its own */
    *state = f;
    return 0;
}

static void rm_state(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    char path[512];
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static int teardown(void **state)
{
    fx_t *f = *state;
    zm_err_t err = {0};
    int rc = mc_net_down(f->state, f->prefix, &err);
    if (rc < 0)
        fprintf(stderr, "teardown: down: %s\n", err.msg);
    rm_state(f->state);
    alarm(0);
    free(f->host_links);
    free(f->host_routes);
    free(f->host_addrs);
    free(f);
    return rc < 0 ? -1 : 0;
}

static void must_up(const mc_net_plan_t *p)
{
    zm_err_t err = {0};
    int rc = mc_net_up(p, &err);
    if (rc < 0)
        fprintf(stderr, "up: %s\n", err.msg);
    assert_int_equal(rc, 0);
}

static const char LISTENER[] =
    "import socket, sys, threading\n"
    "name = sys.argv[1]\n"
    "def serve(port):\n"
    "    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "    s.bind(('0.0.0.0', port)); s.listen(64)\n"
    "    while True:\n"
    "        c, _ = s.accept(); c.sendall(('%s:%d\\n' % (name, port)).encode()); c.close()\n"
    "ts = [threading.Thread(target=serve, args=(p,), daemon=True) for p in (8080, 9090)]\n"
    "[t.start() for t in ts]\n"
    "[t.join() for t in ts]\n";

/* argv: OUT TARGET... where TARGET is host:port; one line per target. */
static const char CLIENT[] =
    "import socket, sys, time\n"
    "out = open(sys.argv[1], 'w')\n"
    "def once(host, port):\n"
    "    try:\n"
    "        ip = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]\n"
    "    except OSError as e:\n"
    "        return 'ERR:resolve'\n"
    "    try:\n"
    "        s = socket.create_connection((ip, port), timeout=3)\n"
    "        data = b''\n"
    "        while True:\n"
    "            d = s.recv(100)\n"
    "            if not d: break\n"
    "            data += d\n"
    "        s.close()\n"
    "        return data.decode().strip()\n"
    "    except OSError as e:\n"
    "        return 'ERR:' + type(e).__name__\n"
    "for t in sys.argv[2:]:\n"
    "    host, port = t.rsplit(':', 1)\n"
    "    out.write('%s %s\\n' % (t, once(host, int(port))))\n"
    "out.close()\n";

/* Polls until the pod's listeners accept (bounded by the deadline). */
static const char READY[] =
    "import socket, time\n"
    "end = time.time() + 10\n"
    "for port in (8080, 9090):\n"
    "    while True:\n"
    "        try:\n"
    "            socket.create_connection(('127.0.0.1', port), timeout=1).close(); break\n"
    "        except OSError:\n"
    "            if time.time() > end: raise SystemExit(1)\n"
    "            time.sleep(0.02)\n";

static void pod_netns(fx_t *f, size_t i, char *buf, size_t len)
{
    assert_true(mc_net_pod_netns(f->prefix, PODS[i].ns, PODS[i].name, buf, len) > 0);
}

static void start_listeners(fx_t *f, const mc_net_plan_t *p)
{
    for (size_t i = 0; i < 4; i++) {
        char ns[256], log[300];
        pod_netns(f, i, ns, sizeof(ns));
        snprintf(log, sizeof(log), "%s/%s.log", f->state, PODS[i].name);
        char *argv[] = {"/usr/bin/python3", "-c", (char *)LISTENER, (char *)PODS[i].name, NULL};
        zm_err_t err = {0};
        pid_t pid = 0;
        int rc = mc_net_spawn(p, ns, argv, log, &pid, &err);
        if (rc < 0)
            fprintf(stderr, "spawn: %s\n", err.msg);
        assert_int_equal(rc, 0);
        assert_true(pid > 0);
        f->spawned[f->n_spawned++] = pid;
    }
    for (size_t i = 0; i < 4; i++) {
        char ns[256];
        pod_netns(f, i, ns, sizeof(ns));
        char *argv[] = {"/usr/bin/python3", "-c", (char *)READY, NULL};
        assert_int_equal(mc_net_exec(p, ns, argv, 15000, NULL), 0);
    }
}

/* Run the client in pod i against targets; returns the output text. */
static char *client(fx_t *f, const mc_net_plan_t *p, size_t i, char **targets, size_t n)
{
    char ns[256], out[300];
    pod_netns(f, i, ns, sizeof(ns));
    snprintf(out, sizeof(out), "%s/client-%s.out", f->state, PODS[i].name);
    char *argv[80] = {"/usr/bin/python3", "-c", (char *)CLIENT, out};
    assert_true(n + 5 <= 80);
    for (size_t k = 0; k < n; k++)
        argv[4 + k] = targets[k];
    zm_err_t err = {0};
    int rc = mc_net_exec(p, ns, argv, 30000, &err);
    if (rc != 0)
        fprintf(stderr, "client in %s: rc %d %s\n", ns, rc, err.msg);
    assert_int_equal(rc, 0);
    return slurp(out);
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *s = hay; (s = strstr(s, needle)) != NULL; s += strlen(needle))
        n++;
    return n;
}

static void expect_line(const char *out, const char *line)
{
    if (!strstr(out, line))
        fprintf(stderr, "missing '%s' in:\n%s\n", line, out);
    assert_non_null(strstr(out, line));
}

static void traffic_checks(fx_t *f, const mc_net_plan_t *p)
{
    for (size_t i = 0; i < 4; i++) {
        char *targets[70];
        char bufs[8][64];
        size_t n = 0;
        for (size_t j = 0; j < 4; j++) {
            if (j == i)
                continue;
            snprintf(bufs[n], sizeof(bufs[n]), "%s:8080", PODS[j].ip);
            targets[n] = bufs[n];
            n++;
        }
        bool in_a = !strcmp(PODS[i].ns, "a");
        char *web = in_a ? "web:80" : "web.a:80";
        for (int k = 0; k < 40; k++)
            targets[n++] = web;
        targets[n++] = "api.b.svc.cluster.local:81";
        targets[n++] = "api.b:82";
        targets[n++] = "empty.b:80";
        targets[n++] = in_a ? "api:81" : "web:80"; /* short names: own namespace only */
        char *out = client(f, p, i, targets, n);
        for (size_t j = 0; j < 4; j++) {
            if (j == i)
                continue;
            char line[128];
            snprintf(line, sizeof(line), "%s:8080 %s:8080\n", PODS[j].ip, PODS[j].name);
            expect_line(out, line);
        }
        char l1[64], l2[64];
        snprintf(l1, sizeof(l1), "%s p1:8080\n", web);
        snprintf(l2, sizeof(l2), "%s p2:8080\n", web);
        int c1 = count(out, l1), c2 = count(out, l2);
        if (c1 + c2 != 40 || c1 == 0 || c2 == 0)
            fprintf(stderr, "web from %s: p1 %d p2 %d\n%s\n", PODS[i].name, c1, c2, out);
        assert_int_equal(c1 + c2, 40);
        assert_true(c1 > 0 && c2 > 0);
        expect_line(out, "api.b.svc.cluster.local:81 p3:9090\n");
        expect_line(out, "api.b:82 p3:8080\n");
        expect_line(out, "empty.b:80 ERR:ConnectionRefusedError\n");
        expect_line(out, in_a ? "api:81 ERR:resolve\n" : "web:80 ERR:resolve\n");
        free(out);
    }
}

static void must_down(fx_t *f)
{
    zm_err_t err = {0};
    int rc = mc_net_down(f->state, f->prefix, &err);
    if (rc < 0)
        fprintf(stderr, "down: %d %s\n", rc, err.msg);
    assert_int_equal(rc, 0);
}

static void assert_all_gone(fx_t *f)
{
    char **names = NULL;
    int n = mc_netns_list(MC_NETNS_RUN_DIR, f->pfx_dash, &names);
    mc_netns_names_free(&names, n);
    assert_int_equal(n, 0);
    n = mc_netns_list(MC_NETNS_ETC_DIR, f->pfx_dash, &names);
    mc_netns_names_free(&names, n);
    assert_int_equal(n, 0);
    char *mi = slurp("/proc/self/mountinfo");
    char needle[64];
    snprintf(needle, sizeof(needle), "/run/netns/%s", f->pfx_dash);
    assert_null(strstr(mi, needle));
    free(mi);
    for (int i = 0; i < f->n_spawned; i++) {
        errno = 0;
        if (kill(f->spawned[i], 0) == 0) {
            char sp[64];
            snprintf(sp, sizeof(sp), "/proc/%d/stat", (int)f->spawned[i]);
            char *st = slurp(sp);
            fprintf(stderr, "pid %d (#%d) still there: %s\n", (int)f->spawned[i], i, st);
            free(st);
        }
        assert_int_equal(kill(f->spawned[i], 0), -1);
        assert_int_equal(errno, ESRCH);
    }
    char path[300];
    snprintf(path, sizeof(path), "%s/net.json", f->state);
    assert_int_equal(access(path, F_OK), -1);
}

static void up_traffic_down(void **state)
{
    fx_t *f = *state;
    mc_net_plan_t p = plan_of(f);
    must_up(&p);
    host_unchanged(f);

    /* iproute2 sees our namespaces and mounts our hosts file. */
    char ns[256], cmd[600];
    pod_netns(f, 2, ns, sizeof(ns));
    snprintf(cmd, sizeof(cmd),
             "timeout 10 ip netns exec %s grep -q 'api api.b api.b.svc.cluster.local' "
             "/etc/hosts",
             ns);
    assert_int_equal(system(cmd), 0);

    start_listeners(f, &p);
    traffic_checks(f, &p);
    host_unchanged(f);

    must_down(f);
    assert_all_gone(f);
    host_unchanged(f);
    must_down(f); /* idempotent */
}

static pid_t stray_process(const char *netns)
{
    pid_t pid = fork();
    if (pid == 0) {
        execlp("ip", "ip", "netns", "exec", netns, "sleep", "60", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void down_after_crashed_up(void **state)
{
    fx_t *f = *state;
    mc_net_plan_t p = plan_of(f);
    p.debug_stop_after = 4; /* cluster, 2 nodes, 1 pod */
    zm_err_t err = {0};
    assert_int_equal(mc_net_up(&p, &err), -EINTR);
    assert_int_equal(mc_net_up(&p, &err), -EEXIST); /* refuses to build over it */

    /* A recorded process and strays the state never heard of. */
    char node[256], stray[256];
    assert_true(mc_net_node_netns(f->prefix, "node-1", node, sizeof(node)) > 0);
    char *argv[] = {"sleep", "60", NULL};
    pid_t pid = 0;
    assert_int_equal(mc_net_spawn(&p, node, argv, NULL, &pid, &err), 0);
    f->spawned[f->n_spawned++] = pid;
    snprintf(stray, sizeof(stray), "%spod-stray-x", f->pfx_dash);
    assert_int_equal(mc_netns_create(stray), 0);
    char dir[300];
    snprintf(dir, sizeof(dir), "%s/%s", MC_NETNS_ETC_DIR, stray);
    assert_int_equal(mkdir(dir, 0755), 0);
    pid_t sp = stray_process(stray);
    assert_true(sp > 0);
    f->spawned[f->n_spawned++] = sp;
    /* Wait (bounded) until the stray has entered its namespace. */
    char want[64], link[64], path[300];
    struct stat st;
    snprintf(path, sizeof(path), "/run/netns/%s", stray);
    assert_int_equal(stat(path, &st), 0);
    snprintf(want, sizeof(want), "net:[%llu]", (unsigned long long)st.st_ino);
    snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)sp);
    bool entered = false;
    for (int i = 0; i < 500 && !entered; i++) {
        ssize_t n = readlink(path, link, sizeof(link) - 1);
        link[n > 0 ? n : 0] = '\0';
        entered = !strcmp(link, want);
        if (!entered)
            usleep(10000);
    }
    assert_true(entered);

    must_down(f);
    assert_all_gone(f);
    host_unchanged(f);

    /* A new up over the cleaned ground works. */
    p.debug_stop_after = 0;
    f->n_spawned = 0;
    must_up(&p);
    start_listeners(f, &p);
    char *targets[] = {"web.a:80", "10.244.2.3:8080"};
    char *out = client(f, &p, 2, targets, 2);
    assert_true(strstr(out, "web.a:80 p1:8080\n") || strstr(out, "web.a:80 p2:8080\n"));
    expect_line(out, "10.244.2.3:8080 p4:8080\n");
    free(out);
    must_down(f);
    assert_all_gone(f);
}

int main(void)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_sandbox_net needs root; skipped\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(up_traffic_down, setup, teardown),
        cmocka_unit_test_setup_teardown(down_after_crashed_up, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
