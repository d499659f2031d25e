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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(istio_testdata),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
