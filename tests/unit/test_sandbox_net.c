/*
 * The sandbox network's pure parts: namespace and veth names (length limits,
 * hashing of long names), plan checks, the nftables ruleset and the hosts
 * text. Nothing here touches the system; the e2e test does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "sandbox_net.h"
#include "strbuf.h"

static const mc_net_node_t NODES[] = {
    {.name = "n1", .ip = "10.244.0.11", .pod_cidr = "10.244.1.0/24"}};
static const mc_net_pod_t PODS[] = {
    {.ns = "a", .name = "p1", .node = "n1", .ip = "10.244.1.2"},
    {.ns = "b", .name = "p2", .node = "n1", .ip = "10.244.1.3"},
};
static const mc_net_svc_port_t PORTS[] = {{.port = 80, .target_port = 8080}, {.port = 81}};
static const uint16_t OVERRIDE[] = {0, 9090};
static const mc_net_endpoint_t EPS[] = {{.ip = "10.244.1.2"},
                                        {.ip = "10.244.1.3", .target_ports = OVERRIDE}};
static const mc_net_service_t SVCS[] = {
    {.ns = "a",
     .name = "web",
     .cluster_ip = "10.96.0.10",
     .ports = PORTS,
     .n_ports = 2,
     .endpoints = EPS,
     .n_endpoints = 2},
    {.ns = "b",
     .name = "one",
     .cluster_ip = "10.96.0.11",
     .ports = PORTS,
     .n_ports = 1,
     .endpoints = EPS,
     .n_endpoints = 1},
    {.ns = "b", .name = "none", .cluster_ip = "10.96.0.12", .ports = PORTS, .n_ports = 1},
    {.ns = "b", .name = "headless", .ports = PORTS, .n_ports = 1},
};

static mc_net_plan_t plan(void)
{
    return (mc_net_plan_t){.prefix = "zm",
                           .state_dir = "/nonexistent",
                           .gateway = "10.244.0.1",
                           .prefix_len = 16,
                           .nodes = NODES,
                           .n_nodes = 1,
                           .pods = PODS,
                           .n_pods = 2,
                           .services = SVCS,
                           .n_services = 4};
}

static void names(void **state)
{
    char buf[256], v[MC_NET_IFNAMSIZ], v2[MC_NET_IFNAMSIZ];
    assert_int_equal(mc_net_cluster_netns("zm", buf, sizeof(buf)), 10);
    assert_string_equal(buf, "zm-cluster");
    assert_true(mc_net_node_netns("zm", "node-1", buf, sizeof(buf)) > 0);
    assert_string_equal(buf, "zm-node-node-1");
    assert_true(mc_net_pod_netns("zm", "default", "web-1", buf, sizeof(buf)) > 0);
    assert_string_equal(buf, "zm-pod-default-web-1");
    assert_int_equal(mc_net_pod_netns("zm", "default", "web-1", buf, 8), -ENAMETOOLONG);

    char longname[254], other[254];
    memset(longname, 'x', 253);
    longname[253] = '\0';
    memcpy(other, longname, sizeof(other));
    other[252] = 'y';
    char b2[256];
    assert_int_equal(mc_net_pod_netns("zm", "ns", longname, buf, sizeof(buf)), MC_NET_NETNS_MAX);
    assert_int_equal(mc_net_pod_netns("zm", "ns", other, b2, sizeof(b2)), MC_NET_NETNS_MAX);
    assert_int_equal(strlen(buf), MC_NET_NETNS_MAX);
    assert_string_not_equal(buf, b2); /* the hash keeps cut names apart */
    assert_int_equal(buf[MC_NET_NETNS_MAX - 9], '-');

    mc_net_veth_name("zm-pod-a-p1", v);
    mc_net_veth_name("zm-pod-a-p2", v2);
    assert_int_equal(strlen(v), 10);
    assert_memory_equal(v, "zv", 2);
    assert_string_not_equal(v, v2);
}

static void plan_checks(void **state)
{
    zm_err_t err = {0};
    mc_net_plan_t p = plan();
    assert_int_equal(mc_net_plan_check(&p, &err), 0);

    p.prefix = "Bad_Prefix";
    assert_int_equal(mc_net_plan_check(&p, &err), -EINVAL);
    p = plan();
    p.gateway = "10.244.0";
    assert_int_equal(mc_net_plan_check(&p, &err), -EINVAL);

    mc_net_pod_t pods[2] = {PODS[0], PODS[1]};
    p = plan();
    p.pods = pods;
    pods[1].node = "nowhere";
    assert_int_equal(mc_net_plan_check(&p, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "unknown node"));
    pods[1] = PODS[1];
    pods[1].ip = "10.244.2.9"; /* outside n1's pod CIDR */
    assert_int_equal(mc_net_plan_check(&p, &err), -EINVAL);
    pods[1].ip = "10.245.1.9"; /* off the segment */
    assert_int_equal(mc_net_plan_check(&p, &err), -EINVAL);
    pods[1].ip = PODS[0].ip;
    assert_int_equal(mc_net_plan_check(&p, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "same IP"));

    /* ns "a-b" + pod "c" and ns "a" + pod "b-c" make the same name. */
    pods[0] = (mc_net_pod_t){.ns = "a-b", .name = "c", .node = "n1", .ip = "10.244.1.2"};
    pods[1] = (mc_net_pod_t){.ns = "a", .name = "b-c", .node = "n1", .ip = "10.244.1.3"};
    assert_int_equal(mc_net_plan_check(&p, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "named"));
}

static void ruleset(void **state)
{
    mc_net_plan_t p = plan();
    zm_strbuf_t sb = {0};
    assert_int_equal(mc_net_nft_ruleset(&p, &sb), 0);
    const char *s = zm_strbuf_str(&sb);
    assert_non_null(strstr(s, "table ip zmesh-svc {"));
    assert_non_null(strstr(s, "type nat hook output priority -90;"));
    assert_non_null(strstr(s, "ip daddr 10.96.0.10 tcp dport 80 dnat ip to numgen random mod 2 "
                              "map { 0 : 10.244.1.2 . 8080, 1 : 10.244.1.3 . 8080 }\n"));
    /* port 81 has no target port: the port itself, or the endpoint's override */
    assert_non_null(strstr(s, "ip daddr 10.96.0.10 tcp dport 81 dnat ip to numgen random mod 2 "
                              "map { 0 : 10.244.1.2 . 81, 1 : 10.244.1.3 . 9090 }\n"));
    assert_non_null(strstr(s, "ip daddr 10.96.0.11 tcp dport 80 dnat ip to 10.244.1.2:8080\n"));
    assert_null(strstr(s, "ip daddr 10.96.0.12 tcp"));
    assert_non_null(strstr(s, "ip daddr { 10.96.0.10, 10.96.0.11, 10.96.0.12 } meta l4proto tcp "
                              "reject with tcp reset\n"));
    zm_strbuf_free(&sb);
}

static void hosts(void **state)
{
    mc_net_plan_t p = plan();
    zm_strbuf_t sb = {0};
    assert_int_equal(mc_net_hosts_text(&p, "a", "10.244.1.2", "p1", &sb), 0);
    const char *s = zm_strbuf_str(&sb);
    assert_non_null(strstr(s, "127.0.0.1\tlocalhost\n"));
    assert_non_null(strstr(s, "10.244.1.2\tp1\n"));
    assert_non_null(strstr(s, "10.96.0.10\tweb web.a web.a.svc.cluster.local\n"));
    assert_non_null(strstr(s, "10.96.0.11\tone.b one.b.svc.cluster.local\n"));
    assert_null(strstr(s, "headless"));
    zm_strbuf_free(&sb);

    p.domain = "example.org";
    assert_int_equal(mc_net_hosts_text(&p, NULL, NULL, NULL, &sb), 0);
    assert_non_null(strstr(zm_strbuf_str(&sb), "10.96.0.10\tweb.a web.a.svc.example.org\n"));
    zm_strbuf_free(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names),
        cmocka_unit_test(plan_checks),
        cmocka_unit_test(ruleset),
        cmocka_unit_test(hosts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
