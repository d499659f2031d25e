/*
 * `meshctl up` end to end (root): the bookinfo example (2 nodes, 7 pods)
 * comes up; every pod reaches every service by each of its names and every
 * reviews replica serves some requests (the echo JSON's "pod"); status
 * --json lists the pods with their IPs and live apps; down leaves no
 * namespace, /etc/netns dir, mount, host link or process behind. Then an
 * up killed with SIGKILL part-way (ZMESH_TEST_DIE_AFTER) is refused a
 * second up until down, after which down cleans everything and a new up
 * works.
 *
 * meshctl is run as a child process (build/config/meshctl next to this
 * test's build/tests, or $ZMESH_MESHCTL); every sandbox is prefixed
 * zmt-<pid>, every child has a deadline and every test's teardown runs
 * down.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox_fixture.h"

static const char CLIENT_PY[] =
    "import json, urllib.request as u\n"
    "names = ['{s}', '{s}.bookinfo', '{s}.bookinfo.svc.cluster.local']\n"
    "for svc, n in (('details', 3), ('ratings', 3), ('reviews', 24), ('productpage', 3)):\n"
    "    for i in range(n):\n"
    "        url = 'http://' + names[i % 3].format(s=svc) + ':9080/x'\n"
    "        r = json.loads(u.urlopen(url, timeout=3).read())\n"
    "        print(svc, r['pod'], r['namespace'])\n";

static void test_up_reach_status_down(void **state)
{
    fx_t *f = *state;
    alarm(120);
    assert_int_equal(sbx_up(f, NULL), 0);

    char *out = NULL;
    assert_int_equal(sbx_meshctl(f, "status", &out), 0);
    assert_non_null(strstr(out, "reviews-v3-0"));
    free(out);
    char *argv_json[] = {g_meshctl, "status", "--json", "--state", f->state, NULL};
    assert_int_equal(sbx_run(f, argv_json, &out, NULL), 0);
    json_error_t jerr;
    json_t *st = json_loads(out, 0, &jerr);
    free(out);
    assert_non_null(st);
    json_t *pods = json_object_get(st, "pods");
    assert_int_equal(json_array_size(pods), 7);
    long pids[16];
    size_t n_pids = 0, i;
    json_t *v;
    json_array_foreach(pods, i, v)
    {
        assert_non_null(json_string_value(json_object_get(v, "ip")));
        assert_true(strncmp(json_string_value(json_object_get(v, "ip")), "10.244.", 7) == 0);
        assert_true(json_is_true(json_object_get(v, "netns_exists")));
        json_t *app = json_object_get(v, "app");
        assert_true(json_is_true(json_object_get(app, "alive")));
        pids[n_pids++] = (long)json_integer_value(json_object_get(app, "pid"));
    }
    assert_int_equal(json_array_size(json_object_get(st, "nodes")), 2);

    /* Every pod reaches every service by every name; reviews spreads. */
    bool seen_reviews[3] = {false, false, false};
    json_array_foreach(pods, i, v)
    {
        char target[256];
        snprintf(target, sizeof(target), "%s.%s", json_string_value(json_object_get(v, "name")),
                 json_string_value(json_object_get(v, "namespace")));
        char *argv[] = {g_meshctl, "exec",    target, "--state",         f->state,
                        "--",      "python3", "-c",   (char *)CLIENT_PY, NULL};
        assert_int_equal(sbx_run(f, argv, &out, NULL), 0);
        int lines = 0;
        for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
            char svc[64], pod[128], ns[64];
            assert_int_equal(sscanf(line, "%63s %127s %63s", svc, pod, ns), 3);
            assert_string_equal(ns, "bookinfo");
            assert_true(strncmp(pod, svc, strlen(svc)) == 0); /* answered by that service */
            for (int k = 0; k < 3; k++) {
                char want[32];
                snprintf(want, sizeof(want), "reviews-v%d-0", k + 1);
                seen_reviews[k] |= !strcmp(pod, want);
            }
            lines++;
        }
        assert_int_equal(lines, 33);
        free(out);
    }
    for (int k = 0; k < 3; k++)
        assert_true(seen_reviews[k]);

    /* A name that is not a service fails fast, not through the host's DNS. */
    char *bad[] = {g_meshctl,
                   "exec",
                   "sleep-0.bookinfo",
                   "--state",
                   f->state,
                   "--",
                   "python3",
                   "-c",
                   "import socket\ntry:\n socket.getaddrinfo('nope.bookinfo', 80)\n"
                   "except OSError:\n raise SystemExit(3)\n",
                   NULL};
    assert_int_equal(sbx_run(f, bad, NULL, NULL), 3);

    assert_int_equal(sbx_meshctl(f, "down", NULL), 0);
    sbx_assert_clean(f);
    for (size_t k = 0; k < n_pids; k++)
        assert_true(sbx_pid_gone(pids[k]));
    json_decref(st);
    /* Idempotent. */
    assert_int_equal(sbx_meshctl(f, "down", NULL), 0);
    alarm(0);
}

static void test_killed_up_then_down_and_up(void **state)
{
    fx_t *f = *state;
    alarm(120);
    /* Cluster, two nodes, then killed while making the pods. */
    assert_int_equal(sbx_up(f, "ZMESH_TEST_DIE_AFTER=4"), 128 + SIGKILL);
    assert_true(sbx_count_prefixed("/run/netns", f->prefix) >= 3);
    /* A second up refuses to build over the wreck. */
    assert_int_equal(sbx_up(f, NULL), 1);
    assert_int_equal(sbx_meshctl(f, "down", NULL), 0);
    sbx_assert_clean(f);

    assert_int_equal(sbx_up(f, NULL), 0);
    char *out = NULL;
    char *argv[] = {g_meshctl,
                    "exec",
                    "productpage-v1-0.bookinfo",
                    "--state",
                    f->state,
                    "--",
                    "python3",
                    "-c",
                    "import urllib.request as u\n"
                    "print(u.urlopen('http://details:9080/', timeout=3).read().decode())\n",
                    NULL};
    assert_int_equal(sbx_run(f, argv, &out, NULL), 0);
    assert_non_null(strstr(out, "\"pod\":\"details-v1-0\""));
    free(out);
    /* logs: a pod's app log exists; an unknown component is an error. */
    char *logs[] = {g_meshctl, "logs", "bookinfo.details-v1-0", "--state", f->state, NULL};
    assert_int_equal(sbx_run(f, logs, &out, NULL), 0);
    assert_non_null(strstr(out, "listening"));
    free(out);
    char *nologs[] = {g_meshctl, "logs", "ztunnel-node-9", "--state", f->state, NULL};
    assert_int_equal(sbx_run(f, nologs, NULL, NULL), 1);
    assert_int_equal(sbx_meshctl(f, "down", NULL), 0);
    sbx_assert_clean(f);
    alarm(0);
}

static const char EXTRA_YAML[] =
    "apiVersion: v1\n"
    "kind: Service\n"
    "metadata: {name: extra, namespace: bookinfo}\n"
    "spec:\n"
    "  selector: {app: extra}\n"
    "  ports: [{port: 80, targetPort: 8080}]\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: Pod\n"
    "metadata: {name: extra-0, namespace: bookinfo, labels: {app: extra}}\n"
    "spec:\n"
    "  nodeName: node-2\n"
    "  containers: [{name: e, ports: [{containerPort: 8080}]}]\n";

static int get_from_sleep(const fx_t *f, const char *url, char **out)
{
    char py[512];
    snprintf(py, sizeof(py),
             "import urllib.request as u\nprint(u.urlopen('%s', timeout=3).read().decode())\n",
             url);
    char *argv[] = {
        g_meshctl, "exec", "sleep-0.bookinfo", "--state", (char *)f->state, "--", "python3", "-c",
        py,        NULL};
    return sbx_run(f, argv, out, NULL);
}

/* apply adds a pod and a service (other pods may move: they are re-made),
 * delete removes them again; everything keeps answering. */
static void test_apply_delete(void **state)
{
    fx_t *f = *state;
    alarm(120);
    char extra[128];
    snprintf(extra, sizeof(extra), "%s/extra.yaml", f->state);
    FILE *fp = fopen(extra, "w");
    assert_non_null(fp);
    fputs(EXTRA_YAML, fp);
    fclose(fp);
    assert_int_equal(sbx_up(f, NULL), 0);
    char *argv[] = {g_meshctl, "apply", "-f", extra, "--state", f->state, NULL};
    assert_int_equal(sbx_run(f, argv, NULL, NULL), 0);
    char *out = NULL;
    assert_int_equal(get_from_sleep(f, "http://extra/", &out), 0);
    assert_non_null(strstr(out, "\"pod\":\"extra-0\""));
    free(out);
    assert_int_equal(get_from_sleep(f, "http://productpage:9080/", &out), 0);
    assert_non_null(strstr(out, "\"pod\":\"productpage-v1-0\""));
    free(out);
    argv[1] = "delete";
    assert_int_equal(sbx_run(f, argv, NULL, NULL), 0);
    assert_int_not_equal(get_from_sleep(f, "http://extra/", NULL), 0);
    assert_int_equal(get_from_sleep(f, "http://productpage:9080/", &out), 0);
    assert_non_null(strstr(out, "\"pod\":\"productpage-v1-0\""));
    free(out);
    char ns[256];
    snprintf(ns, sizeof(ns), "/run/netns/%s-pod-bookinfo-extra-0", f->prefix);
    assert_int_not_equal(access(ns, F_OK), 0);
    /* Deleting what is not an input is an input error. */
    assert_int_equal(sbx_run(f, argv, NULL, NULL), 2);
    unlink(extra);
    assert_int_equal(sbx_meshctl(f, "down", NULL), 0);
    sbx_assert_clean(f);
    alarm(0);
}

int main(void)
{
    if (sbx_preflight("test_sandbox_up") < 0)
        return 1;
    char src[PATH_MAX];
    snprintf(src, sizeof(src), "%s", __FILE__); /* .../tests/e2e/test_sandbox_up.c */
    snprintf(g_example, sizeof(g_example), "%s/../../deploy/examples/bookinfo", dirname(src));
    if (access(g_example, R_OK) < 0) {
        fprintf(stderr, "the example (%s) is missing\n", g_example);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_up_reach_status_down, sbx_setup, sbx_teardown),
        cmocka_unit_test_setup_teardown(test_killed_up_then_down_and_up, sbx_setup, sbx_teardown),
        cmocka_unit_test_setup_teardown(test_apply_delete, sbx_setup, sbx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
