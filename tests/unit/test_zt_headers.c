/*
 * The CONNECT headers ztunnel sends (Istio: forwarded, baggage,
 * traceparent): their shapes, and trace ids that differ per request.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>

#include "zt_proxy.h"

static void headers_have_istios_shapes(void **state)
{
    zt_pod_t pod = {.name = "client-0", .ns = "shop", .address = "10.244.1.10"};
    zm_config_workload_t w = {.canonical_name = "client", .canonical_revision = "v2"};
    zm_config_service_t svc = {.hostname = "cart.shop.svc.cluster.local"};
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(41000)};
    inet_pton(AF_INET, "10.244.1.10", &peer.sin_addr);
    uint64_t rng = 12345;
    char fwd[384], bag[640], tp1[64], tp2[64];
    zt_request_headers(&rng, &pod, &w, (struct sockaddr *)&peer, &svc, fwd, sizeof(fwd), bag,
                       sizeof(bag), tp1, sizeof(tp1));
    assert_string_equal(fwd, "for=\"10.244.1.10:41000\";host=cart.shop.svc.cluster.local");
    assert_string_equal(bag, "k8s.cluster.name=Kubernetes,k8s.namespace.name=shop,"
                             "k8s.pod.name=client-0,service.name=client,service.version=v2");
    /* 00-<32 hex>-<16 hex>-01 */
    assert_int_equal(strlen(tp1), 55);
    assert_memory_equal(tp1, "00-", 3);
    assert_true(tp1[35] == '-' && tp1[52] == '-' && !strcmp(tp1 + 53, "01"));
    for (int i = 3; i < 52; i++)
        if (i != 35)
            assert_true(isxdigit((unsigned char)tp1[i]));
    zt_request_headers(&rng, &pod, NULL, NULL, NULL, fwd, sizeof(fwd), bag, sizeof(bag), tp2,
                       sizeof(tp2));
    assert_string_equal(fwd, "for=\"10.244.1.10\"");
    assert_non_null(strstr(bag, "service.name=client-0,service.version=latest"));
    assert_string_not_equal(tp1, tp2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(headers_have_istios_shapes)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
