/*
 * ztunnel's outbound routing decision against a small mesh: VIPs to
 * endpoints round robin, waypoints for services and pods (not for the
 * waypoint itself), HBONE vs plain TCP by the destination's protocol,
 * passthrough outside the mesh, no upstream for an empty service.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>

#include "route.h"

static const char mesh[] =
    "node = { name = \"node-1\"; trust_domain = \"td.local\"; };\n"
    "workloads = (\n"
    " { uid = \"a/client\"; name = \"client\"; namespace = \"a\"; node = \"node-1\";"
    "   address = \"10.244.1.10\"; service_account = \"client\"; },\n"
    " { uid = \"a/web-0\"; name = \"web-0\"; namespace = \"a\"; node = \"node-1\";"
    "   address = \"10.244.1.11\"; service_account = \"web\"; },\n"
    " { uid = \"a/web-1\"; name = \"web-1\"; namespace = \"a\"; node = \"node-2\";"
    "   address = \"10.244.2.10\"; service_account = \"web\"; },\n"
    " { uid = \"a/legacy\"; name = \"legacy\"; namespace = \"a\"; node = \"node-2\";"
    "   address = \"10.244.2.11\"; protocol = \"tcp\"; },\n"
    " { uid = \"b/waypoint\"; name = \"waypoint\"; namespace = \"b\"; node = \"node-2\";"
    "   address = \"10.244.2.12\"; service_account = \"waypoint\"; kind = \"waypoint\"; },\n"
    " { uid = \"b/api-0\"; name = \"api-0\"; namespace = \"b\"; node = \"node-1\";"
    "   address = \"10.244.1.12\"; service_account = \"api\"; waypoint = \"b/waypoint\"; }\n"
    ");\n"
    "services = (\n"
    " { name = \"web\"; namespace = \"a\"; hostname = \"web.a.svc.td.local\";"
    "   address = \"10.96.0.10\"; ports = ( { port = 80; } );\n"
    "   endpoints = ( { workload = \"a/web-0\"; port = 80; target_port = 8080; },"
    "                 { workload = \"a/web-1\"; port = 80; target_port = 8081; } ); },\n"
    " { name = \"api\"; namespace = \"b\"; hostname = \"api.b.svc.td.local\";"
    "   address = \"10.96.0.11\"; waypoint = \"b/waypoint\"; ports = ( { port = 9080; } );\n"
    "   endpoints = ( { workload = \"b/api-0\"; port = 9080; target_port = 9080; } ); },\n"
    " { name = \"empty\"; namespace = \"a\"; hostname = \"empty.a.svc.td.local\";"
    "   address = \"10.96.0.12\"; ports = ( { port = 80; } ); }\n"
    ");\n";

static const zm_config_t *cfg;

static int setup(void **state)
{
    zm_err_t err = {0};
    return zm_config_load_string(mesh, "mesh.cfg", &cfg, &err);
}

static int teardown(void **state)
{
    zm_config_release(&cfg);
    return 0;
}

static zt_route_t route(const char *src_uid, const char *ip, uint16_t port, uint64_t *rr)
{
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, ip, &dst.sin_addr);
    zt_route_t r;
    uint64_t cursor = 0;
    assert_int_equal(zt_route_outbound(cfg, src_uid ? zm_config_find_workload(cfg, src_uid) : NULL,
                                       &dst, rr ? rr : &cursor, &r),
                     0);
    return r;
}

static void next_hop_is(const zt_route_t *r, const char *ip, uint16_t port)
{
    char got[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &r->next_hop.sin_addr, got, sizeof(got));
    assert_string_equal(got, ip);
    assert_int_equal(ntohs(r->next_hop.sin_port), port);
}

static void vip_spreads_over_endpoints_over_hbone(void **state)
{
    uint64_t rr = 0;
    zt_route_t r1 = route("a/client", "10.96.0.10", 80, &rr);
    zt_route_t r2 = route("a/client", "10.96.0.10", 80, &rr);
    assert_int_equal(r1.kind, ZT_ROUTE_HBONE);
    next_hop_is(&r1, "10.244.1.11", 15008);
    assert_string_equal(r1.authority, "10.244.1.11:8080");
    assert_string_equal(r1.dst_id, "spiffe://td.local/ns/a/sa/web");
    next_hop_is(&r2, "10.244.2.10", 15008);
    assert_string_equal(r2.authority, "10.244.2.10:8081");
    assert_false(r1.via_waypoint);
    assert_non_null(r1.service);
}

static void service_waypoint_gets_the_vip_as_authority(void **state)
{
    zt_route_t r = route("a/client", "10.96.0.11", 9080, NULL);
    assert_int_equal(r.kind, ZT_ROUTE_HBONE);
    assert_true(r.via_waypoint);
    next_hop_is(&r, "10.244.2.12", 15008);
    assert_string_equal(r.authority, "10.96.0.11:9080");
    assert_string_equal(r.dst_id, "spiffe://td.local/ns/b/sa/waypoint");
    /* The waypoint itself goes to the endpoint. */
    zt_route_t w = route("b/waypoint", "10.96.0.11", 9080, NULL);
    assert_false(w.via_waypoint);
    next_hop_is(&w, "10.244.1.12", 15008);
    assert_string_equal(w.authority, "10.244.1.12:9080");
}

static void pod_waypoint_unless_sent_by_the_waypoint(void **state)
{
    zt_route_t r = route("a/client", "10.244.1.12", 9080, NULL);
    assert_true(r.via_waypoint);
    assert_string_equal(r.authority, "10.244.1.12:9080");
    next_hop_is(&r, "10.244.2.12", 15008);
    zt_route_t w = route("b/waypoint", "10.244.1.12", 9080, NULL);
    assert_false(w.via_waypoint);
    next_hop_is(&w, "10.244.1.12", 15008);
}

static void plain_tcp_outside_the_mesh(void **state)
{
    zt_route_t legacy = route("a/client", "10.244.2.11", 5432, NULL);
    assert_int_equal(legacy.kind, ZT_ROUTE_PASSTHROUGH);
    next_hop_is(&legacy, "10.244.2.11", 5432);
    zt_route_t outside = route("a/client", "192.0.2.7", 443, NULL);
    assert_int_equal(outside.kind, ZT_ROUTE_PASSTHROUGH);
    next_hop_is(&outside, "192.0.2.7", 443);
    assert_null(outside.workload);
}

static void empty_service_has_no_upstream(void **state)
{
    assert_int_equal(route("a/client", "10.96.0.12", 80, NULL).kind, ZT_ROUTE_NO_UPSTREAM);
    /* A port the service does not have. */
    assert_int_equal(route("a/client", "10.96.0.10", 81, NULL).kind, ZT_ROUTE_NO_UPSTREAM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(vip_spreads_over_endpoints_over_hbone),
        cmocka_unit_test(service_waypoint_gets_the_vip_as_authority),
        cmocka_unit_test(pod_waypoint_unless_sent_by_the_waypoint),
        cmocka_unit_test(plain_tcp_outside_the_mesh),
        cmocka_unit_test(empty_service_has_no_upstream),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
