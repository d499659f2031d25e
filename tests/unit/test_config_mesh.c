/*
 * The mesh sections of the daemons' config: workloads and services as
 * meshctl writes them, and every cross-reference problem named by line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "config.h"

static const char *const mesh =
    "workloads = (\n"
    "  { uid = \"bookinfo/reviews-v1-0\"; name = \"reviews-v1-0\"; namespace = \"bookinfo\";\n"
    "    service_account = \"reviews\"; node = \"node-1\"; address = \"10.244.1.12\";\n"
    "    waypoint = \"bookinfo/waypoint\"; canonical_name = \"reviews\";\n"
    "    canonical_revision = \"v1\";\n"
    "    labels = ( [\"app\", \"reviews\"], [\"app.kubernetes.io/version\", \"v1\"] ); },\n"
    "  { uid = \"bookinfo/waypoint\"; name = \"waypoint\"; namespace = \"bookinfo\";\n"
    "    service_account = \"waypoint\"; node = \"node-2\"; address = \"10.244.2.10\";\n"
    "    kind = \"waypoint\"; },\n"
    "  { uid = \"legacy/client\"; name = \"client\"; namespace = \"legacy\";\n"
    "    node = \"node-2\"; address = \"10.244.2.11\"; protocol = \"tcp\"; }\n"
    ");\n"
    "services = (\n"
    "  { name = \"reviews\"; namespace = \"bookinfo\";\n"
    "    hostname = \"reviews.bookinfo.svc.cluster.local\"; address = \"10.96.0.12\";\n"
    "    ports = ( { port = 9080; name = \"http\"; app_protocol = \"http\"; } );\n"
    "    endpoints = ( { workload = \"bookinfo/reviews-v1-0\"; port = 9080;\n"
    "                    target_port = 9081; } ); }\n"
    ");\n";

static void parses_workloads_and_services(void **state)
{
    const zm_config_t *cfg = NULL;
    zm_err_t err = {0};
    assert_int_equal(zm_config_load_string(mesh, "mesh.cfg", &cfg, &err), 0);
    assert_int_equal(cfg->n_workloads, 3);
    const zm_config_workload_t *w = zm_config_find_workload(cfg, "bookinfo/reviews-v1-0");
    assert_non_null(w);
    assert_string_equal(w->service_account, "reviews");
    assert_string_equal(w->node, "node-1");
    assert_int_equal(w->protocol, ZM_CONFIG_PROTO_HBONE);
    assert_int_equal(w->kind, ZM_CONFIG_WORKLOAD_POD);
    assert_string_equal(w->waypoint, "bookinfo/waypoint");
    assert_int_equal(w->n_labels, 2);
    assert_string_equal(w->labels[1].key, "app.kubernetes.io/version");
    assert_string_equal(w->labels[1].value, "v1");
    const zm_config_workload_t *legacy = zm_config_find_workload_by_address(cfg, "10.244.2.11");
    assert_non_null(legacy);
    assert_int_equal(legacy->protocol, ZM_CONFIG_PROTO_TCP);
    assert_string_equal(legacy->service_account, "default");
    assert_string_equal(legacy->waypoint, "");
    assert_int_equal(cfg->n_services, 1);
    const zm_config_service_t *svc = &cfg->services[0];
    assert_string_equal(svc->address, "10.96.0.12");
    assert_int_equal(svc->n_ports, 1);
    assert_string_equal(svc->ports[0].app_protocol, "http");
    assert_int_equal(svc->n_endpoints, 1);
    assert_int_equal(svc->endpoints[0].target_port, 9081);
    char *dump = zm_config_dump_string(cfg);
    assert_non_null(strstr(dump, "\"app.kubernetes.io/version\""));
    assert_non_null(strstr(dump, "\"target_port\": 9081"));
    free(dump);
    zm_config_release(&cfg);
}

static void expect_problem(const char *text, const char *want)
{
    const zm_config_t *cfg = NULL;
    zm_err_t err = {0};
    char buf[1024], report[4096];
    (void)buf;
    assert_true(zm_config_load_string(text, "mesh.cfg", &cfg, &err) < 0);
    assert_null(cfg);
    (void)report;
    assert_string_equal(zm_err_str(&err, buf, sizeof(buf)), want);
}

static void names_each_problem_with_its_line(void **state)
{
    expect_problem("workloads = ( { uid = \"a/b\"; name = \"b\"; namespace = \"a\";\n"
                   "  node = \"n\"; address = \"10.0.0.300\"; } );\n",
                   "mesh.cfg:2: 'workloads.address' must be an IPv4 or IPv6 address");
    expect_problem("workloads = (\n { uid = \"a/b\"; name = \"b\"; namespace = \"a\";\n"
                   "  address = \"10.0.0.1\"; } );\n",
                   "mesh.cfg:2: 'workloads' needs 'node'");
    expect_problem("workloads = (\n { uid = \"ab\"; name = \"b\"; namespace = \"a\";\n"
                   "  node = \"n\"; address = \"10.0.0.1\"; } );\n",
                   "mesh.cfg:2: 'workloads.uid' must be '<namespace>/<name>'");
    expect_problem("workloads = (\n"
                   " { uid = \"a/b\"; name = \"b\"; namespace = \"a\"; node = \"n\";"
                   " address = \"10.0.0.1\"; },\n"
                   " { uid = \"a/c\"; name = \"c\"; namespace = \"a\"; node = \"n\";"
                   " address = \"10.0.0.1\"; } );\n",
                   "mesh.cfg:3: workloads 'a/b' and 'a/c' share address 10.0.0.1");
    expect_problem("workloads = (\n"
                   " { uid = \"a/b\"; name = \"b\"; namespace = \"a\"; node = \"n\";"
                   " address = \"10.0.0.1\"; waypoint = \"a/wp\"; } );\n",
                   "mesh.cfg:2: waypoint 'a/wp' is not a workload");
    expect_problem(
        "services = (\n"
        " { name = \"s\"; namespace = \"a\"; hostname = \"s.a\"; address = \"10.96.0.1\";\n"
        "   ports = ( { port = 80; } );\n"
        "   endpoints = ( { workload = \"a/ghost\"; port = 80; target_port = 8080; } );"
        " } );\n",
        "mesh.cfg:2: service 'a/s': endpoint 'a/ghost' is not a workload");
    expect_problem("workloads = (\n { uid = \"a/b\"; name = \"b\"; namespace = \"a\"; node = \"n\";"
                   " address = \"10.0.0.1\";\n  labels = ( [\"app\"] ); } );\n",
                   "mesh.cfg:3: a label must be [\"key\", \"value\"]");
    expect_problem("services = (\n { name = \"s\"; namespace = \"a\"; hostname = \"s.a\";"
                   " address = \"10.96.0.1\";\n   ports = ( { prot = 80; } ); } );\n",
                   "mesh.cfg:3: unknown key 'prot' in section 'ports' (did you mean 'port'?)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_workloads_and_services),
        cmocka_unit_test(names_each_problem_with_its_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
