/* Unit tests of config/policy*.c: every case of Istio's own projection
 * testdata (tests/data/policy, copied from istio/istio's ambient
 * authorization testdata: X-in.yaml in, X.yaml the expected ztunnel
 * Authorization, compared as canonical JSON), the libconfig text meshctl
 * emits loaded back by the daemons' loader, the seed's AuthorizationPolicy
 * and PeerAuthentication examples decided by common/rbac.c end to end
 * (YAML → compile → config snapshot → verdict), and analyze's warnings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compile.h"
#include "config.h"
#include "model.h"
#include "policy.h"
#include "rbac.h"

static const char *data_dir(void)
{
    static char buf[1024];
    const char *slash = strrchr(__FILE__, '/');
    int dir = slash ? (int)(slash - __FILE__) : 1;
    snprintf(buf, sizeof(buf), "%.*s/../data/policy", dir, slash ? __FILE__ : ".");
    return buf;
}

static mc_model_t *load_text(const char *text)
{
    mc_model_t *m = NULL;
    zm_err_t err = {0};
    char buf[1024];
    if (mc_model_load_string(&m, "test.yaml", text, strlen(text), &err) != 0)
        fail_msg("load: %s", zm_err_str(&err, buf, sizeof(buf)));
    if (mc_model_resolve(m, NULL, &err) != 0)
        fail_msg("resolve: %s", zm_err_str(&err, buf, sizeof(buf)));
    return m;
}

/* ---- Istio's expected YAML → the JSON shape of zm_config_policy_json ---- */

static json_t *yaml_json(const mc_yaml_node_t *n)
{
    if (!n || n->kind == MC_YAML_NULL)
        return json_null();
    if (n->kind == MC_YAML_SCALAR) {
        long long v;
        if (mc_yaml_is_int(n) && mc_yaml_int(n, &v) == 0)
            return json_integer(v);
        return json_string(n->str);
    }
    if (n->kind == MC_YAML_SEQ) {
        json_t *a = json_array();
        for (size_t i = 0; i < n->n; i++)
            json_array_append_new(a, yaml_json(n->items[i]));
        return a;
    }
    json_t *o = json_object();
    for (size_t i = 0; i < n->n; i++)
        json_object_set_new(o, n->pairs[i].key->str, yaml_json(n->pairs[i].value));
    return o;
}

static size_t b64_decode(const char *s, unsigned char *out, size_t cap)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned acc = 0, bits = 0;
    size_t n = 0;
    for (; *s && *s != '='; s++) {
        const char *p = strchr(tab, *s);
        assert_non_null(p);
        acc = (acc << 6) | (unsigned)(p - tab);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            assert_true(n < cap);
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    return n;
}

/* {address: base64, length} → "ip/len", as our dump writes addresses. */
static void fix_addresses(json_t *match)
{
    const char *key;
    json_t *val;
    json_object_foreach(match, key, val)
    {
        if (!strstr(key, "Ips"))
            continue;
        size_t i;
        json_t *a;
        json_array_foreach(val, i, a)
        {
            unsigned char raw[16];
            size_t n = b64_decode(json_string_value(json_object_get(a, "address")), raw, 16);
            char ip[64], buf[80];
            assert_non_null(inet_ntop(n == 4 ? AF_INET : AF_INET6, raw, ip, sizeof(ip)));
            snprintf(buf, sizeof(buf), "%s/%lld", ip,
                     (long long)json_integer_value(json_object_get(a, "length")));
            json_array_set_new(val, i, json_string(buf));
        }
    }
}

static json_t *expected_policy(const mc_yaml_node_t *root)
{
    json_t *raw = yaml_json(root), *out = json_object(), *rules = json_array();
    const char *ns = json_string_value(json_object_get(raw, "namespace"));
    const char *scope = json_string_value(json_object_get(raw, "scope"));
    const char *action = json_string_value(json_object_get(raw, "action"));
    json_object_set_new(out, "name", json_copy(json_object_get(raw, "name")));
    json_object_set_new(out, "namespace", json_string(ns ? ns : "default"));
    json_object_set_new(out, "scope", json_string(scope ? scope : "WORKLOAD_SELECTOR"));
    json_object_set_new(out, "action", json_string(action ? action : "ALLOW"));
    size_t i, j, k;
    json_t *g, *r, *mt;
    json_array_foreach(json_object_get(raw, "groups"), i, g)
    {
        json_t *rule = json_array();
        json_array_foreach(json_object_get(g, "rules"), j, r)
        {
            json_t *clause = json_array();
            json_array_foreach(json_object_get(r, "matches"), k, mt)
            {
                json_t *m = json_deep_copy(mt);
                fix_addresses(m);
                json_array_append_new(clause, m);
            }
            json_array_append_new(rule, clause);
        }
        json_array_append_new(rules, rule);
    }
    json_object_set_new(out, "rules", rules);
    json_decref(raw);
    return out;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = calloc(1, (size_t)n + 1);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return s;
}

/* One case: true when the projection equals Istio's expectation. */
static bool run_case(const char *base)
{
    char in[2048], want[2048];
    snprintf(in, sizeof(in), "%s/%s-in.yaml", data_dir(), base);
    snprintf(want, sizeof(want), "%s/%s.yaml", data_dir(), base);
    const char *paths[] = {in};
    mc_model_t *m = NULL;
    zm_err_t err = {0};
    char buf[1024];
    if (mc_model_load(&m, paths, 1, &err) != 0)
        fail_msg("%s: %s", base, zm_err_str(&err, buf, sizeof(buf)));
    assert_int_equal(mc_model_resolve(m, NULL, &err), 0);
    mc_policy_set_t *set = NULL;
    assert_int_equal(mc_policy_project(m, &set), 0);
    json_t *got = json_array(), *exp = json_array();
    for (size_t i = 0; i < set->n; i++) {
        json_t *j = zm_config_policy_json(&set->policies[i]);
        assert_int_equal(json_array_size(json_object_get(j, "workloads")), 0);
        json_object_del(j, "workloads");
        json_array_append_new(got, j);
    }
    char *text = slurp(want);
    assert_non_null(text);
    if (text[0]) {
        mc_yaml_set_t *ys = NULL;
        assert_int_equal(mc_yaml_set_new(&ys), 0);
        assert_int_equal(mc_yaml_load_string(ys, want, text, strlen(text), &err), 0);
        for (size_t d = 0; d < ys->n_docs; d++)
            json_array_append_new(exp, expected_policy(ys->docs[d].root));
        mc_yaml_set_free(&ys);
    }
    bool ok = json_equal(got, exp);
    if (!ok) {
        char *g = json_dumps(got, JSON_INDENT(1)), *e = json_dumps(exp, JSON_INDENT(1));
        print_message("%s:\n got %s\n want %s\n", base, g, e);
        free(g);
        free(e);
    }
    /* What meshctl writes for it loads in the daemons (no workloads here). */
    zm_strbuf_t sb = {0};
    mc_policy_write(set, &sb);
    assert_int_equal(zm_strbuf_error(&sb), 0);
    const zm_config_t *cfg = NULL;
    if (zm_config_load_string(zm_strbuf_str(&sb), base, &cfg, &err) != 0)
        fail_msg("%s: %s\n%s", base, zm_err_str(&err, buf, sizeof(buf)), zm_strbuf_str(&sb));
    assert_int_equal(cfg->n_policies, set->n);
    for (size_t i = 0; i < set->n; i++) {
        json_t *a = zm_config_policy_json(&set->policies[i]);
        json_t *b = zm_config_policy_json(&cfg->policies[i]);
        assert_true(json_equal(a, b)); /* lossless round trip */
        json_decref(a);
        json_decref(b);
    }
    zm_config_release(&cfg);
    zm_strbuf_free(&sb);
    free(text);
    json_decref(got);
    json_decref(exp);
    mc_policy_set_free(&set);
    mc_model_free(&m);
    return ok;
}

static void istio_testdata(void **state)
{
    (void)state;
    DIR *d = opendir(data_dir());
    assert_non_null(d);
    struct dirent *e;
    int cases = 0, failed = 0;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 9 || strcmp(e->d_name + n - 8, "-in.yaml"))
            continue;
        char base[512];
        snprintf(base, sizeof(base), "%.*s", (int)(n - 8), e->d_name);
        cases++;
        failed += !run_case(base);
    }
    closedir(d);
    assert_int_equal(cases, 22);
    assert_int_equal(failed, 0);
}

/* ---- seed examples decided end to end ---- */

#define POD(ns, name, sa, app)                                                                     \
    "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " name "\n  namespace: " ns                     \
    "\n  labels:\n    app: " app "\nspec:\n  serviceAccountName: " sa                              \
    "\n  containers:\n  - name: c\n    image: x\n    ports:\n    - containerPort: 8080\n---\n"

static const char pods[] = POD("production", "order-api", "order-api", "order-api")
    POD("production", "inventory", "inventory", "inventory")
        POD("legacy-service", "legacy", "legacy", "legacy");

/* The seed's deny-all baseline and order-api-allow, L4 parts only. */
static const char seed_l4[] =
    "apiVersion: security.istio.io/v1beta1\n"
    "kind: AuthorizationPolicy\n"
    "metadata: {name: deny-all, namespace: production}\n"
    "spec: {}\n"
    "---\n"
    "apiVersion: security.istio.io/v1beta1\n"
    "kind: AuthorizationPolicy\n"
    "metadata: {name: order-api-allow, namespace: production}\n"
    "spec:\n"
    "  selector: {matchLabels: {app: order-api}}\n"
    "  action: ALLOW\n"
    "  rules:\n"
    "  - from:\n"
    "    - source:\n"
    "        principals: [cluster.local/ns/production/sa/payment-service]\n"
    "    to:\n"
    "    - operation: {ports: [\"8080\"]}\n"
    "  - from:\n"
    "    - source: {namespaces: [istio-system]}\n"
    "  - from:\n"
    "    - source:\n"
    "        principals: [cluster.local/ns/platform/sa/admin-service]\n"
    "    to:\n"
    "    - operation: {ports: [\"9090\"]}\n";

/* The seed's order-api-allow as written: every rule has methods/paths. */
static const char seed_l7[] =
    "apiVersion: security.istio.io/v1beta1\n"
    "kind: AuthorizationPolicy\n"
    "metadata: {name: order-api-allow, namespace: production}\n"
    "spec:\n"
    "  selector: {matchLabels: {app: order-api}}\n"
    "  action: ALLOW\n"
    "  rules:\n"
    "  - from:\n"
    "    - source:\n"
    "        principals: [cluster.local/ns/production/sa/payment-service]\n"
    "    to:\n"
    "    - operation: {methods: [POST], paths: [\"/api/orders/*/payment\"]}\n"
    "  - from:\n"
    "    - source: {namespaces: [istio-system]}\n"
    "    to:\n"
    "    - operation: {methods: [GET], paths: [\"/api/*\"]}\n";

/* The seed's PeerAuthentications. */
static const char seed_peer[] = "apiVersion: security.istio.io/v1beta1\n"
                                "kind: PeerAuthentication\n"
                                "metadata: {name: default, namespace: istio-system}\n"
                                "spec: {mtls: {mode: STRICT}}\n"
                                "---\n"
                                "apiVersion: security.istio.io/v1beta1\n"
                                "kind: PeerAuthentication\n"
                                "metadata: {name: default, namespace: legacy-service}\n"
                                "spec: {mtls: {mode: PERMISSIVE}}\n"
                                "---\n"
                                "apiVersion: security.istio.io/v1beta1\n"
                                "kind: PeerAuthentication\n"
                                "metadata: {name: order-api, namespace: production}\n"
                                "spec:\n"
                                "  selector: {matchLabels: {app: order-api}}\n"
                                "  mtls: {mode: STRICT}\n"
                                "  portLevelMtls:\n"
                                "    8080: {mode: PERMISSIVE}\n";

typedef struct world {
    mc_model_t *m;
    const zm_config_t *cfg;
} world_t;

/* YAML → model → meshctl's ztunnel config text → the daemons' snapshot. */
static world_t build(const char *policies)
{
    size_t n = strlen(pods) + strlen(policies) + 8;
    char *text = malloc(n);
    snprintf(text, n, "%s%s", pods, policies);
    world_t w = {load_text(text), NULL};
    free(text);
    zm_strbuf_t sb = {0};
    assert_int_equal(mc_compile_ztunnel(w.m, &w.m->nodes[0], NULL, &sb), 0);
    zm_err_t err = {0};
    char buf[1024];
    if (zm_config_load_string(zm_strbuf_str(&sb), "ztunnel.cfg", &w.cfg, &err) != 0)
        fail_msg("%s\n%s", zm_err_str(&err, buf, sizeof(buf)), zm_strbuf_str(&sb));
    zm_strbuf_free(&sb);
    return w;
}

static void world_free(world_t *w)
{
    zm_config_release(&w->cfg);
    mc_model_free(&w->m);
}

/* Decides src (an identity, or NULL for plaintext) → dst_uid:port; returns
 * allow and checks the deciding policy's "ns/name" (NULL: none). */
static bool decide(const world_t *w, const char *src, const char *dst_uid, uint16_t port,
                   const char *want_policy)
{
    const zm_config_workload_t *dst = zm_config_find_workload(w->cfg, dst_uid);
    assert_non_null(dst);
    zm_rbac_conn_t c = {.src_identity = src, .dst_port = port, .dst = dst};
    assert_int_equal(zm_rbac_ip_parse("10.244.1.200", &c.src_ip), 0);
    assert_int_equal(zm_rbac_ip_parse(dst->address, &c.dst_ip), 0);
    zm_rbac_verdict_t v;
    assert_int_equal(zm_rbac_check(w->cfg, &c, &v), 0);
    assert_non_null(v.reason);
    if (want_policy) {
        assert_non_null(v.policy);
        char key[512];
        snprintf(key, sizeof(key), "%s/%s", v.policy->ns, v.policy->name);
        assert_string_equal(key, want_policy);
    } else {
        assert_null(v.policy);
    }
    return v.allow;
}

#define ID(ns, sa) "spiffe://cluster.local/ns/" ns "/sa/" sa

static void seed_authorization_l4(void **state)
{
    (void)state;
    world_t w = build(seed_l4);
    const char *payment = ID("production", "payment-service");
    const char *allow = "production/order-api-allow";
    /* principal + port */
    assert_true(decide(&w, payment, "production/order-api", 8080, allow));
    assert_false(decide(&w, payment, "production/order-api", 9090, NULL));
    /* namespace, any port */
    assert_true(decide(&w, ID("istio-system", "ingress"), "production/order-api", 8080, allow));
    assert_true(decide(&w, ID("istio-system", "ingress"), "production/order-api", 1234, allow));
    /* the admin principal only on 9090 */
    assert_true(decide(&w, ID("platform", "admin-service"), "production/order-api", 9090, allow));
    assert_false(decide(&w, ID("platform", "admin-service"), "production/order-api", 8080, NULL));
    /* other identities, plaintext: none of the ALLOW rules */
    assert_false(decide(&w, ID("production", "inventory"), "production/order-api", 8080, NULL));
    assert_false(decide(&w, NULL, "production/order-api", 8080, NULL));
    /* another trust domain is another principal */
    assert_false(decide(&w, "spiffe://other.td/ns/production/sa/payment-service",
                        "production/order-api", 8080, NULL));
    /* deny-all baseline: inventory has only `spec: {}` → nobody */
    assert_false(decide(&w, payment, "production/inventory", 8080, NULL));
    assert_false(decide(&w, ID("istio-system", "ingress"), "production/inventory", 8080, NULL));
    /* no policy at all in legacy-service: allowed */
    assert_true(decide(&w, NULL, "legacy-service/legacy", 8080, NULL));
    world_free(&w);
}

static void seed_authorization_l7_rules_never_match(void **state)
{
    (void)state;
    world_t w = build(seed_l7);
    /* Both rules carry methods/paths: dropped, the ALLOW policy is empty. */
    assert_false(
        decide(&w, ID("production", "payment-service"), "production/order-api", 8080, NULL));
    assert_false(decide(&w, ID("istio-system", "x"), "production/order-api", 8080, NULL));
    assert_true(decide(&w, ID("istio-system", "x"), "production/inventory", 8080, NULL));
    world_free(&w);
    /* analyze says why */
    mc_model_t *m = load_text(seed_l7);
    mc_warning_t *ws = NULL;
    size_t n = mc_policy_warnings(m, &ws);
    assert_int_equal(n, 1);
    assert_non_null(strstr(ws[0].msg, "found: methods, paths"));
    assert_non_null(strstr(ws[0].msg, "production/order-api-allow"));
    assert_int_equal(ws[0].line, 1); /* the object */
    mc_policy_warnings_free(&ws, n);
    mc_model_free(&m);
}

static void seed_peer_authentication(void **state)
{
    (void)state;
    world_t w = build(seed_peer);
    const char *strict = "istio-system/" MC_STATIC_STRICT_POLICY;
    /* mesh STRICT: plaintext refused, mTLS accepted */
    assert_false(decide(&w, NULL, "production/inventory", 8080, strict));
    assert_true(decide(&w, ID("production", "x"), "production/inventory", 8080, NULL));
    /* legacy-service PERMISSIVE: plaintext accepted */
    assert_true(decide(&w, NULL, "legacy-service/legacy", 8080, NULL));
    assert_true(decide(&w, ID("production", "x"), "legacy-service/legacy", 8080, NULL));
    /* order-api STRICT with 8080 PERMISSIVE: only 8080 takes plaintext */
    const char *conv = "production/converted_peer_authentication_order-api";
    assert_true(decide(&w, NULL, "production/order-api", 8080, NULL));
    assert_false(decide(&w, NULL, "production/order-api", 9090, conv));
    assert_true(decide(&w, ID("production", "x"), "production/order-api", 9090, NULL));
    world_free(&w);
}

static void analyze_target_refs_without_waypoint(void **state)
{
    (void)state;
    mc_model_t *m = load_text("apiVersion: security.istio.io/v1\n"
                              "kind: AuthorizationPolicy\n"
                              "metadata: {name: wp, namespace: production}\n"
                              "spec:\n"
                              "  targetRefs:\n"
                              "  - {kind: Gateway, group: gateway.networking.k8s.io, name: none}\n"
                              "  rules:\n"
                              "  - to:\n"
                              "    - operation: {methods: [GET]}\n"
                              "---\n"
                              "apiVersion: security.istio.io/v1\n"
                              "kind: AuthorizationPolicy\n"
                              "metadata: {name: ext, namespace: production}\n"
                              "spec: {action: CUSTOM, provider: {name: x}, rules: [{}]}\n");
    mc_policy_set_t *set = NULL;
    assert_int_equal(mc_policy_project(m, &set), 0);
    assert_int_equal(set->n, 0); /* targetRefs: waypoint's; CUSTOM: unsupported */
    mc_policy_set_free(&set);
    mc_warning_t *ws = NULL;
    size_t n = mc_policy_warnings(m, &ws);
    assert_int_equal(n, 2);
    bool custom = false, target = false;
    for (size_t i = 0; i < n; i++) {
        custom |= strstr(ws[i].msg, "does not support the CUSTOM action") != NULL;
        target |= strstr(ws[i].msg, "targetRef Gateway none has no waypoint") != NULL;
    }
    assert_true(custom && target);
    mc_policy_warnings_free(&ws, n);
    mc_model_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(istio_testdata),
        cmocka_unit_test(seed_authorization_l4),
        cmocka_unit_test(seed_authorization_l7_rules_never_match),
        cmocka_unit_test(seed_peer_authentication),
        cmocka_unit_test(analyze_target_refs_without_waypoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
