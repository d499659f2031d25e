/*
 * A killed ztunnel comes back (issue 4): in the sandbox of
 * tests/data/ztunnel/mesh.yaml (client on node-1, server on node-2), the
 * node agent restarts a ztunnel that was SIGKILLed and sends it the node's
 * pods again, and new connections client → server work within 1 s of the
 * new ztunnel's readiness (/healthz/ready on :15021 in the node namespace),
 * on the server's node and on the client's. `meshctl down` then leaves no
 * agent and no ztunnel behind.
 *
 * Timing: readiness is observed by a poller inside the node namespace (every
 * 20 ms) and stamped with CLOCK_MONOTONIC, which every namespace shares; a
 * prober inside the client pod opens a new connection every 50 ms from the
 * moment of the kill and, once told the readiness stamp, reports how long
 * after it its first success came. The 1 s bound is the functional
 * deadline; the measured time is printed ("# ..."). Those connections must
 * have gone through the new ztunnel (its metrics), not around it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jansson.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox_fixture.h"

#define WAIT_BACK_S 10

/* Waits for the old ztunnel to be gone, then polls readiness (bounded).
 * Prints the CLOCK_MONOTONIC second it first saw 200. */
static const char READY_PY[] =
    "import time, urllib.request as u\n"
    "end = time.monotonic() + 10\n"
    "while time.monotonic() < end:\n"
    "    try:\n"
    "        if u.urlopen('http://127.0.0.1:15021/healthz/ready', timeout=0.5).status == 200:\n"
    "            print('%.6f' % time.monotonic())\n"
    "            raise SystemExit(0)\n"
    "    except OSError:\n"
    "        pass\n"
    "    time.sleep(0.02)\n"
    "raise SystemExit(1)\n";

/* A new connection to server.zt every 50 ms; once stdin gives the
 * readiness stamp, prints how many seconds after it the first success
 * completed (exit 0), or exits 3 when none came within 5 s of it. */
static const char PROBE_PY[] =
    "import json, select, sys, time, urllib.request as u\n"
    "t0 = None\n"
    "end = time.monotonic() + 30\n"
    "while time.monotonic() < end:\n"
    "    if t0 is None and select.select([sys.stdin], [], [], 0)[0]:\n"
    "        line = sys.stdin.readline()\n"
    "        if not line:\n"
    "            sys.exit(4)\n"
    "        t0 = float(line)\n"
    "    try:\n"
    "        r = u.urlopen('http://server.zt/restart', timeout=0.5).read()\n"
    "        ok = json.loads(r)['pod'] == 'server'\n"
    "    except Exception:\n"
    "        ok = False\n"
    "    t = time.monotonic()\n"
    "    if t0 is not None and ok and t >= t0:\n"
    "        print('%.6f' % (t - t0), flush=True)\n"
    "        sys.exit(0)\n"
    "    if t0 is not None and t > t0 + 5:\n"
    "        sys.exit(3)\n"
    "    time.sleep(0.05)\n"
    "sys.exit(2)\n";

static json_t *status_json(const fx_t *f)
{
    char *out = NULL;
    char *argv[] = {g_meshctl, "status", "--json", "--state", (char *)f->state, NULL};
    int rc = sbx_run(f, argv, &out, NULL);
    json_t *st = rc == 0 ? json_loads(out, 0, NULL) : NULL;
    free(out);
    return st;
}

/* The process entry of a component in status --json (a new reference). */
static json_t *find_proc(const fx_t *f, const char *component)
{
    json_t *st = status_json(f), *v, *found = NULL;
    size_t i;
    json_array_foreach(json_object_get(st, "processes"), i, v)
    {
        const char *c = json_string_value(json_object_get(v, "component"));
        if (c && !strcmp(c, component))
            found = json_incref(v);
    }
    json_decref(st);
    return found;
}

static long proc_pid(const fx_t *f, const char *component)
{
    json_t *p = find_proc(f, component);
    long pid = p ? (long)json_integer_value(json_object_get(p, "pid")) : 0;
    json_decref(p);
    return pid;
}

static int get_server(const fx_t *f)
{
    char *argv[] = {g_meshctl,
                    "exec",
                    "client.zt",
                    "--state",
                    (char *)f->state,
                    "--",
                    "/usr/bin/python3",
                    "-c",
                    "import json, urllib.request as u\n"
                    "r = json.loads(u.urlopen('http://server.zt/hello', timeout=3).read())\n"
                    "raise SystemExit(0 if r['pod'] == 'server' else 1)\n",
                    NULL};
    return sbx_run(f, argv, NULL, NULL);
}

typedef struct prober {
    pid_t pid;
    int in_fd, out_fd;
} prober_t;

static void prober_start(const fx_t *f, prober_t *p)
{
    int in[2], out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    p->pid = fork();
    assert_true(p->pid >= 0);
    if (p->pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        setenv("ZMESH_PREFIX", f->prefix, 1);
        execl(g_meshctl, g_meshctl, "exec", "client.zt", "--state", f->state, "--",
              "/usr/bin/python3", "-c", PROBE_PY, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    p->in_fd = in[1];
    p->out_fd = out[0];
}

/* Hands the prober the readiness stamp; its answer: seconds from readiness
 * to the first working connection, or -1 when it reported none. */
static double prober_finish(prober_t *p, const char *t0)
{
    char line[64];
    snprintf(line, sizeof(line), "%s\n", t0);
    ssize_t w = write(p->in_fd, line, strlen(line));
    assert_int_equal(w, (ssize_t)strlen(line));
    close(p->in_fd);
    char buf[256] = "";
    size_t len = 0;
    for (int i = 0; i < 200 && len < sizeof(buf) - 1; i++) { /* bounded: 10 s */
        struct pollfd pfd = {.fd = p->out_fd, .events = POLLIN};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        ssize_t n = read(p->out_fd, buf + len, sizeof(buf) - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    close(p->out_fd);
    int status = 0;
    for (int i = 0; i < 100 && waitpid(p->pid, &status, WNOHANG) == 0; i++)
        usleep(20 * 1000); /* the prober exits once it answered */
    if (waitpid(p->pid, &status, WNOHANG) == 0) {
        kill(p->pid, SIGKILL); /* its python dies with the pod at down */
        waitpid(p->pid, &status, 0);
    }
    char *end = NULL;
    double s = strtod(buf, &end);
    return end && end != buf ? s : -1;
}

/* Kills node's ztunnel, waits until a new one is alive and ready, and
 * checks that client → server works within 1 s of that readiness, through
 * the new ztunnel: its own counters (a new process starts at zero) show the
 * connections, in mutual TLS. Working is not enough: traffic that bypassed
 * the mesh would work too. */
static void kill_and_measure(const fx_t *f, const char *node)
{
    char comp[64], netns[128];
    snprintf(comp, sizeof(comp), "ztunnel-%s", node);
    snprintf(netns, sizeof(netns), "%s-node-%s", f->prefix, node);
    long old = proc_pid(f, comp);
    assert_true(old > 1);
    prober_t p;
    prober_start(f, &p);
    assert_int_equal(kill((pid_t)old, SIGKILL), 0);
    for (int i = 0; i < WAIT_BACK_S * 100 && !sbx_pid_gone(old); i++)
        usleep(10 * 1000);
    assert_true(sbx_pid_gone(old));

    char *argv[] = {"/usr/bin/ip",      "netns", "exec",           netns,
                    "/usr/bin/python3", "-c",    (char *)READY_PY, NULL};
    char *t0 = NULL;
    assert_int_equal(sbx_run(f, argv, &t0, NULL), 0);
    t0[strcspn(t0, "\n")] = '\0';
    assert_true(t0[0]);

    /* status agrees: a new ztunnel, alive, ready, counted as a restart. */
    json_t *z = find_proc(f, comp);
    assert_non_null(z);
    long now = (long)json_integer_value(json_object_get(z, "pid"));
    assert_true(now > 1);
    assert_true(now != old);
    assert_true(json_is_true(json_object_get(z, "alive")));
    assert_true(json_is_true(json_object_get(z, "ready")));
    assert_true(json_integer_value(json_object_get(z, "restarts")) >= 1);
    json_decref(z);

    double s = prober_finish(&p, t0);
    free(t0);
    printf("# %s: ztunnel %ld killed, %ld ready; first new connection %.0f ms after readiness\n",
           node, old, now, s * 1000);
    assert_true(s >= 0);
    assert_true(s <= 1.0);

    char *m = sbx_metrics(f, node);
    const char *reporter =
        strcmp(node, "node-1") == 0 ? "reporter=\"source\"" : "reporter=\"destination\"";
    char *rows = strdup(m), *save = NULL;
    assert_non_null(rows);
    bool seen = false;
    for (char *row = strtok_r(rows, "\n", &save); row && !seen; row = strtok_r(NULL, "\n", &save))
        seen = strncmp(row, "istio_tcp_connections_opened_total{", 35) == 0 &&
               strstr(row, reporter) && strstr(row, "mutual_tls") &&
               strstr(row, "source_workload=\"client\"") && !strstr(row, "} 0");
    free(rows);
    if (!seen)
        fail_msg("%s: the new ztunnel counted no mutual-TLS connection from the client:\n%s", node,
                 m);
    free(m);
}

static void killed_ztunnels_come_back(void **state)
{
    fx_t *f = *state;
    alarm(60);
    assert_int_equal(sbx_up(f, NULL), 0);
    assert_int_equal(get_server(f), 0);

    kill_and_measure(f, "node-2"); /* the server's side */
    kill_and_measure(f, "node-1"); /* the client's side */
    assert_int_equal(get_server(f), 0);

    /* down stops agents and ztunnels: none survives. */
    long pids[8];
    size_t n = 0;
    static const char *const comps[] = {"agent-node-1", "agent-node-2", "ztunnel-node-1",
                                        "ztunnel-node-2"};
    for (size_t i = 0; i < 4; i++) {
        pids[n] = proc_pid(f, comps[i]);
        assert_true(pids[n] > 1);
        n++;
    }
    assert_int_equal(sbx_meshctl(f, "down", NULL), 0);
    for (size_t i = 0; i < n; i++)
        assert_true(sbx_pid_gone(pids[i]));
    sbx_assert_clean(f);
}

int main(void)
{
    if (sbx_preflight("test_ztunnel_restart") < 0)
        return 1;
    char src[PATH_MAX];
    snprintf(src, sizeof(src), "%s", __FILE__);
    snprintf(g_example, sizeof(g_example), "%s/../data/ztunnel/mesh.yaml", dirname(src));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(killed_ztunnels_come_back, sbx_setup, sbx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
