/*
 * ztunnel end to end (root), in a sandbox with two nodes: ambient pods
 * client and other on node-1, server on node-2, and outsider, a pod outside
 * the mesh (tests/data/ztunnel/mesh.yaml).
 *
 * - On the bridge, client → server is TLS to port 15008 only: a marker the
 *   application sends never appears in plaintext, and nothing goes to the
 *   application's port on the wire.
 * - The server's ztunnel reports the client's SPIFFE identity.
 * - PERMISSIVE (the default) lets outsider's plaintext in; after applying a
 *   mesh-wide STRICT PeerAuthentication it is refused, ambient clients
 *   still pass.
 * - An ALLOW AuthorizationPolicy naming the client's principal and port
 *   admits the client and refuses other, and closes the connection other
 *   had open; deleting it restores other.
 * - The application sees the real client address, through HBONE and for
 *   admitted plaintext alike; ztunnel's legs to and from the applications
 *   use cubic (tcp.pod_congestion's default), its HBONE connections the
 *   pod namespace's default congestion control.
 * - A broken config file is refused (counted in zmesh_config_reloads_total)
 *   and traffic goes on under the old one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jansson.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox_fixture.h"

static char g_data[PATH_MAX - 64];

static void data_file(const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", g_data, name);
}

/* GET url from pod (NAME.NS); the echo JSON's "pod" into who. 0 on 200. */
static int get(const fx_t *f, const char *pod, const char *url, char *who, size_t len)
{
    char py[768];
    snprintf(py, sizeof(py),
             "import json, sys, urllib.request as u\n"
             "try:\n"
             "    print(json.loads(u.urlopen('%s', timeout=3).read())['pod'])\n"
             "except Exception as e:\n"
             "    print('refused:', e, file=sys.stderr)\n"
             "    sys.exit(1)\n",
             url);
    char *argv[] = {g_meshctl,          "exec", (char *)pod, "--state", (char *)f->state, "--",
                    "/usr/bin/python3", "-c",   py,          NULL};
    char *out = NULL;
    int rc = sbx_run(f, argv, &out, NULL);
    if (who && len) {
        snprintf(who, len, "%s", out ? out : "");
        who[strcspn(who, "\n")] = 0;
    }
    free(out);
    return rc;
}

/* Polls until get() from pod succeeds (want_ok) or fails (!want_ok), as a
 * reload takes effect: bounded, no timing asserted. */
static bool eventually(const fx_t *f, const char *pod, const char *url, bool want_ok)
{
    for (int i = 0; i < 40; i++) {
        int rc = get(f, pod, url, NULL, 0);
        if ((rc == 0) == want_ok)
            return true;
        usleep(250 * 1000);
    }
    return false;
}

static int meshctl_files(const fx_t *f, const char *verb, const char *file)
{
    char *argv[] = {g_meshctl, (char *)verb, "-f", (char *)file, "--state", (char *)f->state, NULL};
    return sbx_run(f, argv, NULL, NULL);
}

/* The pod's IP from status --json. */
static void pod_ip(const fx_t *f, const char *ns, const char *name, char *buf, size_t len)
{
    char *out = NULL;
    char *argv[] = {g_meshctl, "status", "--json", "--state", (char *)f->state, NULL};
    assert_int_equal(sbx_run(f, argv, &out, NULL), 0);
    json_t *st = json_loads(out, 0, NULL);
    assert_non_null(st);
    buf[0] = 0;
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(st, "pods"), i, p)
    {
        if (!strcmp(json_string_value(json_object_get(p, "namespace")) ?: "", ns) &&
            !strcmp(json_string_value(json_object_get(p, "name")) ?: "", name))
            snprintf(buf, len, "%s", json_string_value(json_object_get(p, "ip")) ?: "");
    }
    json_decref(st);
    free(out);
    assert_true(buf[0]);
}

static int up_mesh(const fx_t *f)
{
    int rc = sbx_up(f, NULL);
    char *out = NULL;
    char *argv[] = {g_meshctl, "status", "--state", (char *)f->state, NULL};
    sbx_run(f, argv, &out, NULL);
    bool zt = out && strstr(out, "ztunnel per node");
    free(out);
    return rc == 0 && zt ? 0 : -1;
}

static void tunnel_is_mtls_on_the_wire(void **state)
{
    fx_t *f = *state;
    alarm(150);
    assert_int_equal(up_mesh(f), 0);
    char server_ip[32], url_vip[128], url_pod[128], cap[128], cmd[512];
    pod_ip(f, "zt", "server", server_ip, sizeof(server_ip));
    snprintf(cap, sizeof(cap), "%s/wire.txt", f->state);
    snprintf(cmd, sizeof(cmd),
             "exec /usr/bin/ip netns exec %s-cluster timeout 20 tcpdump -i any -nn -A -s0 -U "
             "tcp >%s 2>/dev/null",
             f->prefix, cap);
    pid_t dump = fork();
    if (dump == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    usleep(1500 * 1000); /* tcpdump attaches */
    snprintf(url_vip, sizeof(url_vip), "http://server.zt/MARKER-c0ffee-%d", (int)getpid());
    snprintf(url_pod, sizeof(url_pod), "http://%s:8080/MARKER-c0ffee-%d", server_ip, (int)getpid());
    char who[64];
    assert_int_equal(get(f, "client.zt", url_vip, who, sizeof(who)), 0);
    assert_string_equal(who, "server");
    assert_int_equal(get(f, "client.zt", url_pod, who, sizeof(who)), 0);
    assert_string_equal(who, "server");
    usleep(500 * 1000);
    kill(dump, SIGTERM);
    waitpid(dump, NULL, 0);
    FILE *fp = fopen(cap, "r");
    assert_non_null(fp);
    char line[4096];
    int to_hbone = 0, to_app = 0, marker = 0;
    while (fgets(line, sizeof(line), fp)) {
        marker += strstr(line, "MARKER-c0ffee") != NULL;
        char *gt = strstr(line, " > ");
        if (!gt)
            continue;
        to_hbone += strstr(gt, ".15008:") != NULL;
        to_app += strstr(gt, ".8080:") != NULL;
    }
    fclose(fp);
    assert_true(to_hbone > 0);
    assert_int_equal(to_app, 0);
    assert_int_equal(marker, 0);
    /* The destination saw who called. */
    char *m = sbx_metrics(f, "node-2");
    assert_non_null(strstr(m, "reporter=\"destination\",source_workload=\"client\""));
    assert_non_null(strstr(m, "source_principal=\"spiffe://cluster.local/ns/zt/sa/client\""));
    assert_non_null(strstr(m, "connection_security_policy=\"mutual_tls\""));
    free(m);
}

static void strict_refuses_plaintext_permissive_accepts(void **state)
{
    fx_t *f = *state;
    alarm(150);
    assert_int_equal(up_mesh(f), 0);
    char server_ip[32], url[128], strict[PATH_MAX];
    pod_ip(f, "zt", "server", server_ip, sizeof(server_ip));
    snprintf(url, sizeof(url), "http://%s:8080/plain", server_ip);
    char who[64];
    assert_int_equal(get(f, "outsider.legacy", url, who, sizeof(who)), 0); /* PERMISSIVE */
    assert_string_equal(who, "server");
    data_file("strict.yaml", strict, sizeof(strict));
    assert_int_equal(meshctl_files(f, "apply", strict), 0);
    assert_true(eventually(f, "outsider.legacy", url, false));
    assert_int_equal(get(f, "client.zt", url, who, sizeof(who)), 0); /* mTLS still in */
    assert_string_equal(who, "server");
}

static void authorization_policy_allows_only_the_client(void **state)
{
    fx_t *f = *state;
    alarm(150);
    assert_int_equal(up_mesh(f), 0);
    char policy[PATH_MAX];
    const char *url = "http://server.zt/authz";
    assert_int_equal(get(f, "other.zt", url, NULL, 0), 0);
    /* A connection other holds open while the policy changes: it exits 0
     * once the server side closes it, 3 if it is still open after 10 s. */
    static const char watcher[] = "import socket, sys, time\n"
                                  "s = socket.create_connection(('server.zt', 80), timeout=3)\n"
                                  "s.sendall(b'w'); s.recv(1)\n"
                                  "print('open', flush=True)\n"
                                  "end = time.time() + 10\n"
                                  "while time.time() < end:\n"
                                  "    try:\n"
                                  "        s.sendall(b'w')\n"
                                  "        if not s.recv(1): sys.exit(0)\n"
                                  "    except OSError: sys.exit(0)\n"
                                  "    time.sleep(0.2)\n"
                                  "sys.exit(3)\n";
    pid_t held = fork();
    if (held == 0) {
        setenv("ZMESH_PREFIX", f->prefix, 1);
        execl(g_meshctl, g_meshctl, "exec", "other.zt", "--state", f->state, "--",
              "/usr/bin/python3", "-c", watcher, (char *)NULL);
        _exit(127);
    }
    usleep(1500 * 1000); /* the watcher's connection is up */
    data_file("allow-client.yaml", policy, sizeof(policy));
    assert_int_equal(meshctl_files(f, "apply", policy), 0);
    int status = 0;
    waitpid(held, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0); /* closed by the policy change */
    assert_true(eventually(f, "other.zt", url, false));
    char who[64];
    assert_int_equal(get(f, "client.zt", url, who, sizeof(who)), 0);
    assert_string_equal(who, "server");
    assert_int_equal(meshctl_files(f, "delete", policy), 0);
    assert_true(eventually(f, "other.zt", url, true));
}

/* Holds a TCP connection from pod to addr:port open for a few seconds. */
static pid_t hold_connection(const fx_t *f, const char *pod, const char *host, int port)
{
    char py[512];
    snprintf(py, sizeof(py),
             "import socket, time\n"
             "s = socket.create_connection(('%s', %d), timeout=3)\n"
             "s.sendall(b'hold'); s.recv(4); time.sleep(4)\n",
             host, port);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("ZMESH_PREFIX", f->prefix, 1);
        execl(g_meshctl, g_meshctl, "exec", pod, "--state", f->state, "--", "/usr/bin/python3",
              "-c", py, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* The congestion control of the first established TCP socket in pod
 * netns NS matching the ss filter, into cc ("" when none). */
static void socket_cc(const fx_t *f, const char *ns, const char *filter, char *cc, size_t len)
{
    char *argv[] = {"/usr/bin/ip", "netns", "exec",        (char *)ns,     "ss",
                    "-Htin",       "state", "established", (char *)filter, NULL};
    char *out = NULL;
    cc[0] = 0;
    assert_int_equal(sbx_run(f, argv, &out, NULL), 0);
    /* "... <algorithm> wscale:..." on each socket's info line */
    const char *w = out ? strstr(out, " wscale:") : NULL;
    if (w) {
        const char *b = w;
        while (b > out && b[-1] != ' ' && b[-1] != '\t')
            b--;
        snprintf(cc, len, "%.*s", (int)(w - b), b);
    }
    free(out);
}

static void the_application_sees_the_real_client_address(void **state)
{
    fx_t *f = *state;
    alarm(150);
    assert_int_equal(up_mesh(f), 0);
    char server_ip[32], client_ip[32], outsider_ip[32];
    pod_ip(f, "zt", "server", server_ip, sizeof(server_ip));
    pod_ip(f, "zt", "client", client_ip, sizeof(client_ip));
    pod_ip(f, "legacy", "outsider", outsider_ip, sizeof(outsider_ip));
    pid_t a = hold_connection(f, "client.zt", "server.zt", 80);       /* HBONE */
    pid_t b = hold_connection(f, "outsider.legacy", server_ip, 8080); /* plaintext */
    char ns[128], *out = NULL;
    snprintf(ns, sizeof(ns), "%s-pod-zt-server", f->prefix);
    char *argv[] = {"/usr/bin/ip",       "netns", "exec", ns, "ss", "-Htn", "state", "established",
                    "( sport = :8080 )", NULL};
    bool saw_client = false, saw_outsider = false;
    for (int i = 0; i < 30 && !(saw_client && saw_outsider); i++) {
        usleep(200 * 1000);
        free(out);
        out = NULL;
        assert_int_equal(sbx_run(f, argv, &out, NULL), 0);
        char want_client[64], want_outsider[64];
        snprintf(want_client, sizeof(want_client), " %s:", client_ip);
        snprintf(want_outsider, sizeof(want_outsider), " %s:", outsider_ip);
        saw_client = strstr(out, want_client) != NULL;
        saw_outsider = strstr(out, want_outsider) != NULL;
    }
    free(out);
    /* While they are open: which congestion control each leg got. */
    char client_ns[128], dflt[32], cc[32];
    snprintf(client_ns, sizeof(client_ns), "%s-pod-zt-client", f->prefix);
    char *sysctl[] = {"/usr/bin/ip",
                      "netns",
                      "exec",
                      client_ns,
                      "/usr/sbin/sysctl",
                      "-n",
                      "net.ipv4.tcp_congestion_control",
                      NULL};
    out = NULL;
    assert_int_equal(sbx_run(f, sysctl, &out, NULL), 0);
    snprintf(dflt, sizeof(dflt), "%s", out ? out : "");
    dflt[strcspn(dflt, "\n")] = 0;
    free(out);
    socket_cc(f, client_ns, "( sport = :15001 )", cc, sizeof(cc));
    assert_string_equal(cc, "cubic"); /* captured from the client application */
    socket_cc(f, ns, "( dport = :8080 )", cc, sizeof(cc));
    assert_string_equal(cc, "cubic"); /* ztunnel to the server application */
    socket_cc(f, client_ns, "( dport = :15008 )", cc, sizeof(cc));
    assert_string_equal(cc, dflt); /* HBONE: the namespace's own */
    waitpid(a, NULL, 0);
    waitpid(b, NULL, 0);
    assert_true(saw_client);   /* through two ztunnels, still the client's address */
    assert_true(saw_outsider); /* plaintext allowed in: the outsider's address */
}

static void a_broken_config_file_is_refused_and_the_old_one_kept(void **state)
{
    fx_t *f = *state;
    alarm(150);
    assert_int_equal(up_mesh(f), 0);
    char path[256];
    snprintf(path, sizeof(path), "%s/config/ztunnel-node-2.cfg", f->state);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("node = { name = \"node-2\" ; \n workloads = ( { uid = ; } );\n", fp);
    fclose(fp);
    bool refused = false;
    for (int i = 0; i < 40 && !refused; i++) {
        usleep(100 * 1000);
        char *m = sbx_metrics(f, "node-2");
        refused = strstr(m, "zmesh_config_reloads_total{result=\"refused\"} 1") != NULL;
        free(m);
    }
    assert_true(refused);
    char who[64];
    assert_int_equal(get(f, "client.zt", "http://server.zt/still", who, sizeof(who)), 0);
    assert_string_equal(who, "server");
}

static void per_pod_echo_flags_apply(void **state)
{
    fx_t *f = *state;
    alarm(100);
    assert_int_equal(up_mesh(f), 0);
    char ip[32], py[512];
    pod_ip(f, "zt", "teapot", ip, sizeof(ip));
    snprintf(py, sizeof(py),
             "import urllib.request as u, urllib.error as e\n"
             "try:\n"
             "    print(u.urlopen('http://%s:8080/tea', timeout=3).status)\n"
             "except e.HTTPError as x:\n"
             "    print(x.code)\n",
             ip);
    char *argv[] = {g_meshctl,          "exec", "client.zt", "--state", f->state, "--",
                    "/usr/bin/python3", "-c",   py,          NULL};
    char *out = NULL;
    assert_int_equal(sbx_run(f, argv, &out, NULL), 0);
    assert_string_equal(out, "418\n");
    free(out);
}

int main(void)
{
    if (sbx_preflight("test_ztunnel") < 0)
        return 1;
    char src[PATH_MAX];
    snprintf(src, sizeof(src), "%s", __FILE__);
    snprintf(g_data, sizeof(g_data), "%s/../data/ztunnel", dirname(src));
    snprintf(g_example, sizeof(g_example), "%s/mesh.yaml", g_data);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(tunnel_is_mtls_on_the_wire, sbx_setup, sbx_teardown),
        cmocka_unit_test_setup_teardown(strict_refuses_plaintext_permissive_accepts, sbx_setup,
                                        sbx_teardown),
        cmocka_unit_test_setup_teardown(authorization_policy_allows_only_the_client, sbx_setup,
                                        sbx_teardown),
        cmocka_unit_test_setup_teardown(the_application_sees_the_real_client_address, sbx_setup,
                                        sbx_teardown),
        cmocka_unit_test_setup_teardown(a_broken_config_file_is_refused_and_the_old_one_kept,
                                        sbx_setup, sbx_teardown),
        cmocka_unit_test_setup_teardown(per_pod_echo_flags_apply, sbx_setup, sbx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
