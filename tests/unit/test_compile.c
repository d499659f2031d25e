/*
 * meshctl compile: the bookinfo example against golden files (regenerate
 * with ZM_UPDATE_GOLDEN=1 and review the diff), byte-identical output for
 * the same input, output the daemons' loader accepts, and nothing written
 * for invalid input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compile.h"
#include "config.h"
#include "model.h"

static const char *data_path(const char *sub, const char *name)
{
    static char buf[4096];
    const char *slash = strrchr(__FILE__, '/');
    int dir = slash ? (int)(slash - __FILE__) : 1;
    snprintf(buf, sizeof(buf), "%.*s/../data/%s/%s", dir, slash ? __FILE__ : ".", sub, name);
    return buf;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n)
        n = 0;
    buf[n] = 0;
    fclose(f);
    return buf;
}

static mc_model_t *bookinfo(void)
{
    mc_model_t *m = NULL;
    zm_err_t err = {0};
    const char *path = data_path("model", "bookinfo.yaml");
    assert_int_equal(mc_model_load(&m, &path, 1, &err), 0);
    assert_int_equal(mc_model_resolve(m, NULL, &err), 0);
    return m;
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[4096];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

static void bookinfo_matches_golden_files(void **state)
{
    mc_model_t *m = bookinfo();
    char dir[] = "/tmp/zm-compile-XXXXXX";
    assert_non_null(mkdtemp(dir));
    zm_err_t err = {0};
    int n = mc_compile_write(m, dir, NULL, &err);
    assert_int_equal(n, (int)m->n_nodes + 1); /* one waypoint */
    bool update = getenv("ZM_UPDATE_GOLDEN") != NULL;
    DIR *d = opendir(dir);
    struct dirent *e;
    int compared = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char got_path[4096];
        snprintf(got_path, sizeof(got_path), "%s/%s", dir, e->d_name);
        char *got = slurp(got_path);
        char golden_name[512];
        snprintf(golden_name, sizeof(golden_name), "bookinfo/%s", e->d_name);
        const char *golden_path = data_path("compile", golden_name);
        if (update) {
            FILE *f = fopen(golden_path, "wb");
            assert_non_null(f);
            fputs(got, f);
            fclose(f);
        }
        char *want = slurp(golden_path);
        assert_non_null(want);
        assert_string_equal(got, want);
        /* What the daemons will load. */
        const zm_config_t *cfg = NULL;
        assert_int_equal(zm_config_load(got_path, &cfg, &err), 0);
        assert_int_equal(cfg->n_workloads, m->n_pods);
        zm_config_release(&cfg);
        free(got);
        free(want);
        compared++;
    }
    closedir(d);
    assert_int_equal(compared, n);
    rm_dir(dir);
    mc_model_free(&m);
}

static void same_input_same_bytes(void **state)
{
    zm_strbuf_t a = {0}, b = {0};
    mc_model_t *m1 = bookinfo(), *m2 = bookinfo();
    assert_int_equal(mc_compile_ztunnel(m1, &m1->nodes[0], NULL, &a), 0);
    assert_int_equal(mc_compile_ztunnel(m2, &m2->nodes[0], NULL, &b), 0);
    assert_true(a.len > 0 && a.len == b.len && !memcmp(a.data, b.data, a.len));
    zm_strbuf_free(&a);
    zm_strbuf_free(&b);
    mc_model_free(&m1);
    mc_model_free(&m2);
}

static void the_ztunnel_config_describes_the_mesh(void **state)
{
    mc_model_t *m = bookinfo();
    zm_strbuf_t out = {0};
    mc_compile_opts_t o = {.cert_dir = "/run/zmesh/certs"};
    assert_int_equal(mc_compile_ztunnel(m, &m->nodes[1], &o, &out), 0);
    const zm_config_t *cfg = NULL;
    zm_err_t err = {0};
    assert_int_equal(zm_config_load_string(out.data, "ztunnel-node-2.cfg", &cfg, &err), 0);
    assert_string_equal(cfg->node.name, m->nodes[1].name);
    assert_string_equal(cfg->tls.cert_dir, "/run/zmesh/certs");
    const mc_service_t *reviews = mc_model_find_service(m, "bookinfo", "reviews");
    assert_non_null(reviews);
    const zm_config_service_t *svc = NULL;
    for (size_t i = 0; i < cfg->n_services; i++)
        if (!strcmp(cfg->services[i].name, "reviews"))
            svc = &cfg->services[i];
    assert_non_null(svc);
    assert_string_equal(svc->address, reviews->cluster_ip_str);
    size_t endpoints = 0;
    for (size_t p = 0; p < reviews->n_ports; p++)
        endpoints += reviews->ports[p].n_endpoints;
    assert_int_equal(svc->n_endpoints, endpoints);
    for (size_t i = 0; i < m->n_pods; i++) {
        const mc_pod_t *p = &m->pods[i];
        char uid[300];
        snprintf(uid, sizeof(uid), "%s/%s", p->meta.ns, p->meta.name);
        const zm_config_workload_t *w = zm_config_find_workload(cfg, uid);
        assert_non_null(w);
        assert_string_equal(w->address, p->ip_str);
        assert_int_equal(w->protocol,
                         p->ambient || p->gateway ? ZM_CONFIG_PROTO_HBONE : ZM_CONFIG_PROTO_TCP);
    }
    zm_config_release(&cfg);
    zm_strbuf_free(&out);
    mc_model_free(&m);
}

static void invalid_input_writes_nothing(void **state)
{
    mc_model_t *m = NULL;
    zm_err_t err = {0};
    static const char bad[] = "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n"
                              "spec:\n  ports:\n  - port: 70000\n";
    assert_true(mc_model_load_string(&m, "bad.yaml", bad, sizeof(bad) - 1, &err) < 0);
    char buf[700];
    assert_non_null(strstr(zm_err_str(&err, buf, sizeof(buf)), "bad.yaml:7:"));
    assert_null(m);
    /* An unresolved model is refused before any file is created. */
    static const char ok[] = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n";
    assert_int_equal(mc_model_load_string(&m, "ok.yaml", ok, sizeof(ok) - 1, &err), 0);
    char dir[] = "/tmp/zm-compile-XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_true(mc_compile_write(m, dir, NULL, &err) < 0);
    assert_int_equal(count_files(dir), 0);
    rm_dir(dir);
    mc_model_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bookinfo_matches_golden_files),
        cmocka_unit_test(same_input_same_bytes),
        cmocka_unit_test(the_ztunnel_config_describes_the_mesh),
        cmocka_unit_test(invalid_input_writes_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
