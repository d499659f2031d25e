/* Unit tests of common/rbac.c and the `policies` section of the config
 * (common/config_policy.c): ztunnel's own rbac.rs cases (each match field
 * and its not-form against a plaintext, an mTLS and another mTLS
 * connection; nesting; empty policies, clauses and matches; string
 * wildcards), assert_rbac's DENY-then-ALLOW order with the deciding policy,
 * the per-workload index, and `file:line` errors of invalid sections. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "rbac.h"

static const char workloads[] =
    "workloads = ( { uid = \"namespace/a\"; name = \"a\"; namespace = \"namespace\";\n"
    "  node = \"n\"; address = \"127.0.0.2\"; },\n"
    " { uid = \"ns-alt/b\"; name = \"b\"; namespace = \"ns-alt\"; node = \"n\";\n"
    "  address = \"127.0.0.4\"; } );\n";

static const zm_config_t *load(const char *policies)
{
    char text[8192];
    snprintf(text, sizeof(text), "%spolicies = ( %s );\n", workloads, policies);
    const zm_config_t *cfg = NULL;
    zm_err_t err = {0};
    char buf[1024];
    if (zm_config_load_string(text, "t.cfg", &cfg, &err) != 0)
        fail_msg("%s", zm_err_str(&err, buf, sizeof(buf)));
    return cfg;
}

/* ztunnel's plaintext_conn, tls_conn and tls_conn_alt. */
enum { PLAIN, TLS, TLS_ALT };
static zm_rbac_conn_t conn(const zm_config_t *cfg, int which)
{
    zm_rbac_conn_t c = {0};
    bool alt = which == TLS_ALT;
    c.src_identity = which == PLAIN ? NULL
                     : alt          ? "spiffe://td-alt/ns/ns-alt/sa/sa=alt"
                                    : "spiffe://td/ns/namespace/sa/account";
    zm_rbac_ip_parse(alt ? "127.0.0.3" : "127.0.0.1", &c.src_ip);
    zm_rbac_ip_parse(alt ? "127.0.0.4" : "127.0.0.2", &c.dst_ip);
    c.dst_port = alt ? 9090 : 8080;
    c.dst = &cfg->workloads[0];
    return c;
}

/* One global ALLOW policy of a single match; checks the three connections. */
static void one_match(const char *match, bool plain, bool tls, bool alt)
{
    char pol[1024];
    snprintf(pol, sizeof(pol),
             "{ name = \"p\"; namespace = \"istio-system\"; scope = \"global\"; "
             "rules = ( ( ( { %s } ) ) ); }",
             match);
    const zm_config_t *cfg = load(pol);
    bool want[] = {plain, tls, alt};
    for (int i = 0; i < 3; i++) {
        zm_rbac_conn_t c = conn(cfg, i);
        if (zm_rbac_policy_matches(&cfg->policies[0], &c) != want[i])
            fail_msg("%s: connection %d: want %d", match, i, want[i]);
    }
    zm_config_release(&cfg);
}

static void ztunnel_match_fields(void **state)
{
    (void)state;
    one_match("namespaces = [\"namespace\"];", false, true, false);
    one_match("not_namespaces = [\"namespace\"];", true, false, true);
    one_match("service_accounts = [\"namespace/account\"];", false, true, false);
    one_match("not_service_accounts = [\"namespace/account\"];", true, false, true);
    one_match("principals = [\"td/ns/namespace/sa/account\"];", false, true, false);
    one_match("not_principals = [\"td/ns/namespace/sa/account\"];", true, false, true);
    one_match("source_ips = [\"127.0.0.1/32\"];", true, true, false);
    one_match("not_source_ips = [\"127.0.0.1\"];", false, false, true);
    one_match("destination_ips = [\"127.0.0.2/32\"];", true, true, false);
    one_match("not_destination_ips = [\"127.0.0.2/32\"];", false, false, true);
    one_match("destination_ips = [\"127.0.0.1/24\"];", true, true, true); /* cidr_range */
    one_match("destination_ports = [8080];", true, true, false);
    one_match("not_destination_ports = [8080];", false, false, true);
    /* STRICT's static policy: notPrincipals presence holds for plaintext only */
    one_match("not_principals = [\"*\"];", true, false, false);
    one_match("principals = [\"td/*\"];", false, true, false);
    one_match("principals = [\"*/sa/account\"];", false, true, false);
    one_match("namespaces = [\"ns-*\"]; destination_ports = [9090];", false, false, true);
    one_match("destination_ips = [\"::1/128\"];", false, false, false); /* v6 never holds v4 */
}

static void ztunnel_empty_policies(void **state)
{
    (void)state;
    const zm_config_t *cfg =
        load("{ name = \"m\"; namespace = \"x\"; scope = \"global\"; rules = ( ( ( {} ) ) ); },"
             "{ name = \"c\"; namespace = \"x\"; scope = \"global\"; rules = ( ( ( ) ) ); },"
             "{ name = \"r\"; namespace = \"x\"; scope = \"global\"; rules = ( ( ) ); },"
             "{ name = \"n\"; namespace = \"x\"; scope = \"global\"; rules = ( ); }");
    zm_rbac_conn_t c = conn(cfg, PLAIN);
    assert_false(zm_rbac_policy_matches(&cfg->policies[0], &c)); /* empty match: skipped */
    assert_true(zm_rbac_policy_matches(&cfg->policies[1], &c));  /* empty clause holds */
    assert_true(zm_rbac_policy_matches(&cfg->policies[2], &c));  /* rule without clauses */
    assert_false(zm_rbac_policy_matches(&cfg->policies[3], &c)); /* no rules */
    zm_config_release(&cfg);
}

static void ztunnel_nesting(void **state)
{
    (void)state;
    /* (ns a OR ns b) AND port 80 ; second policy: ns a OR ns b as two rules */
    const zm_config_t *cfg =
        load("{ name = \"nested\"; namespace = \"x\"; scope = \"global\"; rules = ( ( "
             "( { namespaces = [\"a\"]; }, { namespaces = [\"b\"]; } ), "
             "( { destination_ports = [80]; } ) ) ); }");
    zm_rbac_conn_t c = conn(cfg, TLS);
    c.dst_port = 80;
    c.src_identity = "spiffe://td/ns/a/sa/account";
    assert_true(zm_rbac_policy_matches(&cfg->policies[0], &c));
    c.src_identity = "spiffe://td/ns/b/sa/account";
    assert_true(zm_rbac_policy_matches(&cfg->policies[0], &c));
    c.src_identity = "spiffe://td/ns/bad/sa/account";
    assert_false(zm_rbac_policy_matches(&cfg->policies[0], &c));
    c.src_identity = "spiffe://td/ns/b/sa/account";
    c.dst_port = 12345;
    assert_false(zm_rbac_policy_matches(&cfg->policies[0], &c));
    zm_config_release(&cfg);
}

static void deny_then_allow(void **state)
{
    (void)state;
    const zm_config_t *cfg =
        load("{ name = \"deny-9090\"; namespace = \"namespace\"; scope = \"namespace\"; "
             "  action = \"deny\"; rules = ( ( ( { destination_ports = [9090]; } ) ) ); },"
             "{ name = \"allow-td\"; namespace = \"namespace\"; scope = \"workload\"; "
             "  workloads = [\"namespace/a\"]; rules = ( ( ( { principals = [\"td/*\"]; } ) ) ); },"
             "{ name = \"deny-alt\"; namespace = \"istio-system\"; scope = \"global\"; action = "
             "\"deny\";"
             "  rules = ( ( ( { namespaces = [\"ns-alt\"]; } ) ) ); }");
    /* the index: a gets all three, b only the global one */
    assert_int_equal(cfg->workload_policies[0].n, 3);
    assert_int_equal(cfg->workload_policies[1].n, 1);
    assert_int_equal(cfg->workload_policies[1].idx[0], 2);
    zm_rbac_verdict_t v;
    zm_rbac_conn_t c = conn(cfg, TLS);
    assert_int_equal(zm_rbac_check(cfg, &c, &v), 0);
    assert_true(v.allow);
    assert_string_equal(v.policy->name, "allow-td");
    assert_string_equal(v.reason, "allowed by");
    c.dst_port = 9090; /* DENY wins over a matching ALLOW */
    assert_int_equal(zm_rbac_check(cfg, &c, &v), 0);
    assert_false(v.allow);
    assert_string_equal(v.policy->name, "deny-9090");
    assert_string_equal(v.reason, "explicitly denied by");
    c = conn(cfg, PLAIN); /* ALLOW policies exist, none matches */
    assert_int_equal(zm_rbac_check(cfg, &c, &v), 0);
    assert_false(v.allow);
    assert_null(v.policy);
    assert_string_equal(v.reason, "allow policies exist, but none allowed");
    c = conn(cfg, PLAIN); /* b: no ALLOW policy at all */
    c.dst = &cfg->workloads[1];
    assert_int_equal(zm_rbac_check(cfg, &c, &v), 0);
    assert_true(v.allow);
    assert_string_equal(v.reason, "no allow policies");
    c = conn(cfg, TLS_ALT);
    c.dst = &cfg->workloads[1];
    assert_int_equal(zm_rbac_check(cfg, &c, &v), 0);
    assert_false(v.allow);
    assert_string_equal(v.policy->name, "deny-alt");
    zm_rbac_conn_t bad = {0};
    assert_int_equal(zm_rbac_check(cfg, &bad, &v), -EINVAL);
    assert_false(v.allow);
    /* dump */
    char *dump = zm_config_dump_string(cfg);
    assert_non_null(strstr(dump, "\"WORKLOAD_SELECTOR\""));
    assert_non_null(strstr(dump, "\"prefix\": \"td/\""));
    free(dump);
    zm_config_release(&cfg);
}

static void sockaddr_facts(void **state)
{
    (void)state;
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "::ffff:10.1.2.3", &s6.sin6_addr);
    zm_rbac_ip_t ip, want;
    assert_int_equal(zm_rbac_ip_from_sockaddr((struct sockaddr *)&s6, &ip), 0);
    assert_int_equal(zm_rbac_ip_parse("10.1.2.3", &want), 0);
    assert_memory_equal(&ip, &want, sizeof(ip));
    assert_int_equal(zm_rbac_ip_parse("nope", &ip), -EINVAL);
}

static void expect_error(const char *policies, const char *want)
{
    char text[4096], buf[1024];
    snprintf(text, sizeof(text), "%spolicies = (\n%s\n);\n", workloads, policies);
    const zm_config_t *cfg = NULL;
    zm_err_t err = {0};
    assert_int_equal(zm_config_load_string(text, "t.cfg", &cfg, &err), -EINVAL);
    assert_null(cfg);
    assert_string_equal(zm_err_str(&err, buf, sizeof(buf)), want);
}

static void invalid_sections(void **state)
{
    (void)state;
    /* workloads take lines 1-4; the policies list opens on 5 */
    expect_error(
        "{ name = \"p\"; namespace = \"n\"; scope = \"everywhere\"; }",
        "t.cfg:6: 'policies.scope' must be one of global, namespace, workload (got 'everywhere')");
    expect_error("{ name = \"p\"; namespace = \"n\"; scope = \"global\";\n"
                 "  rules = ( ( ( { source_ips = [\"10.0.0.0/33\"]; } ) ) ); }",
                 "t.cfg:7: 'source_ips': '10.0.0.0/33' is not an IP address or CIDR");
    expect_error("{ name = \"p\"; namespace = \"n\"; scope = \"global\";\n"
                 "  rules = ( ( ( { destination_ports = [70000]; } ) ) ); }",
                 "t.cfg:7: 'destination_ports': 70000 is not a port (0..65535)");
    expect_error("{ name = \"p\"; namespace = \"n\"; scope = \"workload\";\n"
                 "  workloads = [\"namespace/zzz\"]; }",
                 "t.cfg:6: policy 'n/p': workload 'namespace/zzz' is not a workload");
    expect_error("{ name = \"p\"; namespace = \"n\"; scope = \"global\";\n"
                 "  rules = ( ( ( { principal = [\"x\"]; } ) ) ); }",
                 "t.cfg:7: unknown key 'principal' in section 'policies.rules' (did you mean "
                 "'principals'?)");
    expect_error("{ name = \"p\"; namespace = \"n\"; scope = \"global\"; },\n"
                 "{ name = \"p\"; namespace = \"n\"; scope = \"global\"; }",
                 "t.cfg:7: policy 'n/p' appears twice");
    expect_error("{ name = \"p\"; namespace = \"n\"; scope = \"global\";\n"
                 "  rules = ( { } ); }",
                 "t.cfg:7: 'rules' must be ( ( ( { match }, ... ), ... ), ... ): rules of "
                 "clauses of matches");
    expect_error("{ name = \"p\"; scope = \"global\"; }", "t.cfg:6: 'policies' needs 'namespace'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ztunnel_match_fields), cmocka_unit_test(ztunnel_empty_policies),
        cmocka_unit_test(ztunnel_nesting),      cmocka_unit_test(deny_then_allow),
        cmocka_unit_test(sockaddr_facts),       cmocka_unit_test(invalid_sections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
