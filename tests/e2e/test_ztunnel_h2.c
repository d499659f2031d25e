/*
 * ztunnel's 15008 against an independent HTTP/2 client (root): Debian's
 * python3-h2 over Python's ssl (OpenSSL), in tests/e2e/h2_connect.py, so
 * a bug shared by zmesh's client and server halves (nghttp2 + wolfSSL on
 * both ends) cannot hide here. One sandbox (tests/data/ztunnel/mesh.yaml)
 * for the whole group: up in the group setup, `meshctl down` in the group
 * teardown, also from the SIGALRM backstop.
 *
 * The client runs in outsider's namespace: outsider is not captured, so
 * its connection to <server-ip>:15008 reaches the server pod's ztunnel
 * listener directly, with nothing of zmesh on the client side.
 *
 * - The client pod's certificate: TLS 1.3, ALPN h2, the server presents
 *   spiffe://cluster.local/ns/zt/sa/server, CONNECT <server-ip>:8080 gets
 *   200 and an HTTP/1.1 request through the tunnel reaches the echo app.
 * - No client certificate; a certificate for spiffe://other.domain/... from
 *   the sandbox's own CA; a cluster.local certificate from a foreign CA:
 *   each refused in TLS (ztunnel's log names the first two reasons).
 * - :authority of another pod's IP (client's): 400 (Istio's IPMismatch);
 *   a GET instead of CONNECT: 400.
 * - The listener still serves after all the refusals.
 *
 * h2_connect.py's exit codes (its header has the list) say which refusal.
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
#include <unistd.h>

#include "sandbox_fixture.h"

#define H2_OK 0
#define H2_TLS_REFUSED 3
#define H2_STATUS 4
#define H2_IDENTITY 7

#define SERVER_ID "spiffe://cluster.local/ns/zt/sa/server"
#define APP_MARK "\"pod\":\"server\""

static char g_helper[PATH_MAX];
static char g_server_ip[32], g_client_ip[32];
static bool g_up;

/* For the SIGALRM backstop: the group's fixture and a ready environment. */
static fx_t *g_fx;
static char g_prefix_env[64];
static char **g_down_env;

extern char **environ;

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "test_ztunnel_h2: timed out, tearing the sandbox down\n";
    ssize_t wr = write(2, msg, sizeof(msg) - 1);
    (void)wr;
    if (g_fx && g_down_env) {
        pid_t pid = fork();
        if (pid == 0) {
            char *argv[] = {g_meshctl, "down", "--state", g_fx->state, NULL};
            execve(g_meshctl, argv, g_down_env);
            _exit(127);
        }
        if (pid > 0)
            waitpid(pid, NULL, 0);
        pid = fork();
        if (pid == 0) {
            char *argv[] = {"/bin/rm", "-rf", g_fx->state, NULL};
            execve(argv[0], argv, g_down_env);
            _exit(127);
        }
        if (pid > 0)
            waitpid(pid, NULL, 0);
    }
    _exit(1);
}

/* environ plus ZMESH_PREFIX, built before it is needed in a signal handler. */
static void prepare_alarm(fx_t *f)
{
    size_t n = 0;
    while (environ[n])
        n++;
    g_down_env = calloc(n + 2, sizeof(char *));
    if (!g_down_env)
        return;
    snprintf(g_prefix_env, sizeof(g_prefix_env), "ZMESH_PREFIX=%s", f->prefix);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "ZMESH_PREFIX=", 13) != 0)
            g_down_env[k++] = environ[i];
    g_down_env[k] = g_prefix_env;
    g_fx = f;
    signal(SIGALRM, on_alarm);
    alarm(55);
}

/* The pod's IP from status --json ("" if absent). */
static void pod_ip(const fx_t *f, const char *ns, const char *name, char *buf, size_t len)
{
    char *out = NULL;
    char *argv[] = {g_meshctl, "status", "--json", "--state", (char *)f->state, NULL};
    buf[0] = 0;
    int rc = sbx_run(f, argv, &out, NULL);
    json_t *st = rc == 0 ? json_loads(out, 0, NULL) : NULL;
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
}

static int group_setup(void **state)
{
    if (sbx_setup(state) < 0)
        return -1;
    fx_t *f = *state;
    prepare_alarm(f);
    /* A failed up still returns 0 so that the group teardown runs `down`;
     * every test asserts g_up. */
    g_up = sbx_up(f, NULL) == 0;
    pod_ip(f, "zt", "server", g_server_ip, sizeof(g_server_ip));
    pod_ip(f, "zt", "client", g_client_ip, sizeof(g_client_ip));
    g_up = g_up && g_server_ip[0] && g_client_ip[0];
    return 0;
}

static int group_teardown(void **state)
{
    int rc = sbx_teardown(state);
    g_fx = NULL;
    alarm(0);
    free(g_down_env);
    g_down_env = NULL;
    return rc;
}

typedef struct probe {
    const char *cert_dir;  /* holds cert.pem and key.pem; NULL: no client certificate */
    const char *authority; /* NULL: <server-ip>:8080 */
    const char *method;    /* NULL: CONNECT */
    const char *expect_id; /* NULL: SERVER_ID */
} probe_t;

/* Runs h2_connect.py from outsider's namespace against the server's 15008.
 * Returns its exit code; *res gets its JSON line (never NULL on return). */
static int h2(const fx_t *f, const probe_t *p, json_t **res)
{
    char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX], auth[64];
    snprintf(ca, sizeof(ca), "%s/ca/ca.pem", f->state);
    snprintf(auth, sizeof(auth), "%s:8080", g_server_ip);
    char *argv[32] = {g_meshctl,
                      "exec",
                      "outsider.legacy",
                      "--state",
                      (char *)f->state,
                      "--",
                      "/usr/bin/python3",
                      g_helper,
                      "--host",
                      g_server_ip,
                      "--ca",
                      ca,
                      "--expect-id",
                      (char *)(p->expect_id ? p->expect_id : SERVER_ID),
                      "--authority",
                      (char *)(p->authority ? p->authority : auth),
                      "--method",
                      (char *)(p->method ? p->method : "CONNECT"),
                      "--timeout",
                      "8"};
    int n = 20;
    if (p->cert_dir) {
        snprintf(cert, sizeof(cert), "%s/cert.pem", p->cert_dir);
        snprintf(key, sizeof(key), "%s/key.pem", p->cert_dir);
        argv[n++] = "--cert";
        argv[n++] = cert;
        argv[n++] = "--key";
        argv[n++] = key;
    }
    argv[n] = NULL;
    char *out = NULL;
    int rc = sbx_run(f, argv, &out, NULL);
    print_message("h2_connect: rc=%d %s", rc, out ? out : "(no output)\n");
    *res = json_loads(out ? out : "", JSON_DISABLE_EOF_CHECK, NULL);
    free(out);
    if (!*res)
        *res = json_object();
    return rc;
}

static int json_int(const json_t *o, const char *k)
{
    return (int)json_integer_value(json_object_get(o, k));
}

static const char *json_str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k)) ?: "";
}

/* node-2's ztunnel log (stdout and stderr) as of now. */
static char *server_log(const fx_t *f)
{
    char *argv[] = {g_meshctl, "logs", "ztunnel-node-2", "--state", (char *)f->state, NULL};
    char *out = NULL;
    sbx_run(f, argv, &out, NULL);
    return out;
}

/* Waits (bounded) for node-2's ztunnel log to contain needle. */
static bool server_log_has(const fx_t *f, const char *needle)
{
    for (int i = 0; i < 20; i++) {
        char *out = server_log(f);
        bool found = out && strstr(out, needle);
        free(out);
        if (found)
            return true;
        usleep(100 * 1000);
    }
    return false;
}

static void client_dir(const fx_t *f, char *buf, size_t len)
{
    snprintf(buf, len, "%s/certs/zt/client", f->state);
}

static void assert_reaches_app(const fx_t *f)
{
    char dir[PATH_MAX];
    client_dir(f, dir, sizeof(dir));
    json_t *r = NULL;
    assert_int_equal(h2(f, &(probe_t){.cert_dir = dir}, &r), H2_OK);
    assert_int_equal(json_int(r, "status"), 200);
    assert_string_equal(json_str(r, "tls"), "TLSv1.3");
    assert_string_equal(json_str(r, "server_id"), SERVER_ID);
    assert_non_null(strstr(json_str(r, "body"), "HTTP/1.1 200"));
    assert_non_null(strstr(json_str(r, "body"), APP_MARK));
    assert_non_null(strstr(json_str(r, "body"), "\"path\":\"/h2probe\""));
    json_decref(r);
}

static void workload_cert_reaches_the_app(void **state)
{
    fx_t *f = *state;
    assert_true(g_up);
    assert_reaches_app(f);
    /* The probe's own identity check is not vacuous. */
    char dir[PATH_MAX];
    client_dir(f, dir, sizeof(dir));
    json_t *r = NULL;
    probe_t p = {.cert_dir = dir, .expect_id = "spiffe://cluster.local/ns/zt/sa/client"};
    assert_int_equal(h2(f, &p, &r), H2_IDENTITY);
    json_decref(r);
}

static void no_client_cert_is_refused(void **state)
{
    fx_t *f = *state;
    assert_true(g_up);
    json_t *r = NULL;
    assert_int_equal(h2(f, &(probe_t){0}, &r), H2_TLS_REFUSED);
    assert_null(json_object_get(r, "status"));
    json_decref(r);
    assert_true(server_log_has(f, "no client certificate"));
}

static void other_trust_domain_is_refused(void **state)
{
    fx_t *f = *state;
    assert_true(g_up);
    char ca[PATH_MAX], out[PATH_MAX];
    snprintf(ca, sizeof(ca), "%s/ca", f->state);
    snprintf(out, sizeof(out), "%s/h2probe-other-td", f->state);
    char *argv[] = {
        g_meshctl, "ca", "issue", "--ca", ca, "--id", "spiffe://other.domain/ns/zt/sa/client",
        "--out",   out,  NULL};
    assert_int_equal(sbx_run(f, argv, NULL, NULL), 0);
    json_t *r = NULL;
    assert_int_equal(h2(f, &(probe_t){.cert_dir = out}, &r), H2_TLS_REFUSED);
    assert_null(json_object_get(r, "status"));
    json_decref(r);
    assert_true(server_log_has(f, "trust domain mismatch: got other.domain"));
}

static void foreign_ca_is_refused(void **state)
{
    fx_t *f = *state;
    assert_true(g_up);
    char ca[PATH_MAX], out[PATH_MAX];
    snprintf(ca, sizeof(ca), "%s/h2probe-foreign-ca", f->state);
    snprintf(out, sizeof(out), "%s/h2probe-foreign-client", f->state);
    char *init[] = {g_meshctl, "ca", "init", ca, NULL};
    assert_int_equal(sbx_run(f, init, NULL, NULL), 0);
    char *issue[] = {
        g_meshctl, "ca", "issue", "--ca", ca, "--id", "spiffe://cluster.local/ns/zt/sa/client",
        "--out",   out,  NULL};
    assert_int_equal(sbx_run(f, issue, NULL, NULL), 0);
    json_t *r = NULL;
    assert_int_equal(h2(f, &(probe_t){.cert_dir = out}, &r), H2_TLS_REFUSED);
    assert_null(json_object_get(r, "status"));
    json_decref(r);
}

static void authority_of_another_pod_is_400(void **state)
{
    fx_t *f = *state;
    assert_true(g_up);
    char dir[PATH_MAX], auth[64];
    client_dir(f, dir, sizeof(dir));
    snprintf(auth, sizeof(auth), "%s:8080", g_client_ip);
    json_t *r = NULL;
    assert_int_equal(h2(f, &(probe_t){.cert_dir = dir, .authority = auth}, &r), H2_STATUS);
    assert_int_equal(json_int(r, "status"), 400);
    json_decref(r);
    assert_true(server_log_has(f, "400 destination is not this workload"));
}

static void non_connect_is_400(void **state)
{
    fx_t *f = *state;
    assert_true(g_up);
    char dir[PATH_MAX];
    client_dir(f, dir, sizeof(dir));
    json_t *r = NULL;
    assert_int_equal(h2(f, &(probe_t){.cert_dir = dir, .method = "GET"}, &r), H2_STATUS);
    assert_int_equal(json_int(r, "status"), 400);
    json_decref(r);
    assert_true(server_log_has(f, "400 method is not CONNECT"));
}

static void still_serves_after_refusals(void **state)
{
    fx_t *f = *state;
    assert_true(g_up);
    assert_reaches_app(f);
    /* Under ZM_SANITIZE the ztunnel reports there (UBSan does not stop it). */
    char *log = server_log(f);
    assert_non_null(log);
    assert_null(strstr(log, "runtime error"));
    assert_null(strstr(log, "Sanitizer"));
    free(log);
}

int main(void)
{
    if (sbx_preflight("test_ztunnel_h2") < 0)
        return 1;
    if (access("/usr/bin/python3", X_OK) != 0 ||
        system("/usr/bin/python3 -c 'import h2' 2>/dev/null") != 0) {
        fprintf(stderr, "test_ztunnel_h2 needs Debian's python3-h2 (/usr/bin/python3)\n");
        return 1;
    }
    char src[PATH_MAX - 64];
    snprintf(src, sizeof(src), "%s", __FILE__);
    char *dir = dirname(src);
    snprintf(g_helper, sizeof(g_helper), "%s/h2_connect.py", dir);
    snprintf(g_example, sizeof(g_example), "%s/../data/ztunnel/mesh.yaml", dir);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(workload_cert_reaches_the_app),
        cmocka_unit_test(no_client_cert_is_refused),
        cmocka_unit_test(other_trust_domain_is_refused),
        cmocka_unit_test(foreign_ca_is_refused),
        cmocka_unit_test(authority_of_another_pod_is_400),
        cmocka_unit_test(non_connect_is_400),
        cmocka_unit_test(still_serves_after_refusals),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
