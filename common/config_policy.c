/*
 * config_policy.c — the `policies` section: L4 authorization policies as
 * ztunnel receives them from istiod (istio.security.Authorization), compiled
 * by meshctl from AuthorizationPolicy and PeerAuthentication objects.
 *
 *   policies = (
 *     { name = "allow-web"; namespace = "shop"; scope = "workload";
 *       action = "allow"; workloads = [ "shop/web-0" ];
 *       rules = (                                  # any rule
 *         ( ( { principals = [ "cluster.local/ns/shop/sa/front" ];   # clause: any match
 *               destination_ports = [ 8080 ]; } ),
 *           ( { namespaces = [ "shop", "ops-*" ]; } ) )  # every clause of the rule
 *       ); } );
 *
 * String matches use Istio's wildcards ("*" any non-empty value, "x*"
 * prefix, "*x" suffix, otherwise exact); principals are written without
 * "spiffe://"; service accounts as "namespace/name"; addresses as CIDRs or
 * plain IPs. A policy of scope "workload" lists the uids it applies to;
 * "namespace" covers its namespace, "global" the whole mesh. After every
 * section is parsed the check hook verifies references and builds, per
 * workload, the list of policies that apply to it (zm_config_t's
 * workload_policies), so evaluation (common/rbac.c) never searches.
 *
 * Everything parsed is malloc'd and owned by the snapshot; the same
 * structures built by meshctl are freed with zm_config_policy_clear.
 */
#include "config_schema.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

static const char *const scope_names[] = {"global", "namespace", "workload", NULL};
static const char *const action_names[] = {"allow", "deny", NULL};

static const zm_config_field_t policy_fields[] = {
    ZM_CONFIG_STR(zm_config_policy_t, name, "name", 1, 253, "", 0, NULL),
    ZM_CONFIG_STR(zm_config_policy_t, ns, "namespace", 1, 253, "", 0, NULL),
    ZM_CONFIG_ENUM(zm_config_policy_t, scope, "scope", scope_names, ZM_CONFIG_SCOPE_WORKLOAD),
    ZM_CONFIG_ENUM(zm_config_policy_t, action, "action", action_names, ZM_CONFIG_ACTION_ALLOW),
};
#define N_POLICY_FIELDS ZM_ARRAY_LEN(policy_fields)

enum { L_STR, L_SA, L_CIDR, L_PORT };

/* The match fields: file key, JSON key (ztunnel's), list type, offset. */
static const struct match_key {
    const char *key, *json;
    int type;
    size_t off;
} match_keys[] = {
#define MK(k, j, t)                                                                                \
    {                                                                                              \
#k, j, t, offsetof(zm_config_match_t, k)                                                   \
    }
    MK(principals, "principals", L_STR),
    MK(not_principals, "notPrincipals", L_STR),
    MK(namespaces, "namespaces", L_STR),
    MK(not_namespaces, "notNamespaces", L_STR),
    MK(service_accounts, "serviceAccounts", L_SA),
    MK(not_service_accounts, "notServiceAccounts", L_SA),
    MK(source_ips, "sourceIps", L_CIDR),
    MK(not_source_ips, "notSourceIps", L_CIDR),
    MK(destination_ips, "destinationIps", L_CIDR),
    MK(not_destination_ips, "notDestinationIps", L_CIDR),
    MK(destination_ports, "destinationPorts", L_PORT),
    MK(not_destination_ports, "notDestinationPorts", L_PORT),
#undef MK
};

static const char *const strmatch_json[] = {"exact", "prefix", "suffix", "presence"};

const char *zm_config_policy_scope_name(zm_config_policy_scope_t scope)
{
    static const char *const n[] = {"GLOBAL", "NAMESPACE", "WORKLOAD_SELECTOR"};
    return (unsigned)scope < ZM_ARRAY_LEN(n) ? n[scope] : "?";
}

const char *zm_config_policy_action_name(zm_config_policy_action_t action)
{
    return action == ZM_CONFIG_ACTION_DENY ? "DENY" : "ALLOW";
}

int zm_config_strmatch_parse(const char *s, zm_config_strmatch_t *out)
{
    size_t len = strlen(s);
    const char *v = s;
    size_t vlen = len;
    /* Istio's order: "*" alone, then a leading '*', then a trailing one. */
    if (!strcmp(s, "*")) {
        out->kind = ZM_CONFIG_MATCH_PRESENCE;
        vlen = 0;
    } else if (s[0] == '*') {
        out->kind = ZM_CONFIG_MATCH_SUFFIX;
        v = s + 1;
        vlen = len - 1;
    } else if (len && s[len - 1] == '*') {
        out->kind = ZM_CONFIG_MATCH_PREFIX;
        vlen = len - 1;
    } else {
        out->kind = ZM_CONFIG_MATCH_EXACT;
    }
    out->value = strndup(v, vlen);
    return out->value ? 0 : -ENOMEM;
}

int zm_config_cidr_parse(const char *s, zm_config_cidr_t *out)
{
    char buf[INET6_ADDRSTRLEN + 8];
    if (strlen(s) >= sizeof(buf))
        return -EINVAL;
    snprintf(buf, sizeof(buf), "%s", s);
    char *slash = strchr(buf, '/');
    long len = -1;
    if (slash) {
        char *end;
        *slash = 0;
        if (!slash[1] || slash[1] == '-' || slash[1] == '+')
            return -EINVAL;
        len = strtol(slash + 1, &end, 10);
        if (*end)
            return -EINVAL;
    }
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, buf, out->addr) == 1)
        out->family = AF_INET;
    else if (inet_pton(AF_INET6, buf, out->addr) == 1)
        out->family = AF_INET6;
    else
        return -EINVAL;
    long max = out->family == AF_INET ? 32 : 128;
    if (len < 0)
        len = max;
    if (len > max)
        return -EINVAL;
    out->len = (uint8_t)len;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Parsing                                                             */

static bool is_seq(const config_setting_t *s)
{
    return config_setting_is_list(s) || config_setting_is_array(s);
}

static void parse_match_list(zm_config_parse_t *ctx, const struct match_key *k,
                             const config_setting_t *m, zm_config_match_t *match)
{
    void *field = (char *)match + k->off;
    if (!config_setting_is_array(m) && !config_setting_is_list(m)) {
        zm_config_problem(ctx, m, "'%s' must be an array [ ... ]", k->key);
        return;
    }
    int n = config_setting_length(m);
    if (n == 0)
        return;
    size_t esz = k->type == L_STR    ? sizeof(zm_config_strmatch_t)
                 : k->type == L_SA   ? sizeof(zm_config_sa_t)
                 : k->type == L_CIDR ? sizeof(zm_config_cidr_t)
                                     : sizeof(uint16_t);
    void *arr = calloc((size_t)n, esz);
    if (!arr) {
        ctx->nomem = true;
        return;
    }
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(m, (unsigned)i);
        if (k->type == L_PORT) {
            if (config_setting_type(e) != CONFIG_TYPE_INT &&
                config_setting_type(e) != CONFIG_TYPE_INT64) {
                zm_config_problem(ctx, e, "'%s' must hold port numbers", k->key);
                continue;
            }
            long long v = config_setting_get_int64(e);
            if (config_setting_type(e) == CONFIG_TYPE_INT)
                v = config_setting_get_int(e);
            if (v < 0 || v > 65535) {
                zm_config_problem(ctx, e, "'%s': %lld is not a port (0..65535)", k->key, v);
                continue;
            }
            ((uint16_t *)arr)[used++] = (uint16_t)v;
            continue;
        }
        const char *s = config_setting_get_string(e);
        if (!s) {
            zm_config_problem(ctx, e, "'%s' must hold strings", k->key);
            continue;
        }
        if (k->type == L_STR) {
            if (zm_config_strmatch_parse(s, (zm_config_strmatch_t *)arr + used) < 0)
                ctx->nomem = true;
            else
                used++;
        } else if (k->type == L_CIDR) {
            if (zm_config_cidr_parse(s, (zm_config_cidr_t *)arr + used) < 0)
                zm_config_problem(ctx, e, "'%s': '%s' is not an IP address or CIDR", k->key, s);
            else
                used++;
        } else {
            const char *slash = strchr(s, '/');
            if (!slash || slash == s || !slash[1] || strchr(slash + 1, '/')) {
                zm_config_problem(ctx, e, "'%s': '%s' must be '<namespace>/<service account>'",
                                  k->key, s);
                continue;
            }
            zm_config_sa_t *sa = (zm_config_sa_t *)arr + used++;
            sa->ns = strndup(s, (size_t)(slash - s));
            sa->name = strdup(slash + 1);
            if (!sa->ns || !sa->name)
                ctx->nomem = true;
        }
    }
    /* Every list type is { T *v; size_t n; }. */
    switch (k->type) {
    case L_STR:
        *(zm_config_strmatches_t *)field = (zm_config_strmatches_t){arr, used};
        break;
    case L_SA:
        *(zm_config_sas_t *)field = (zm_config_sas_t){arr, used};
        break;
    case L_CIDR:
        *(zm_config_cidrs_t *)field = (zm_config_cidrs_t){arr, used};
        break;
    default:
        *(zm_config_ports_t *)field = (zm_config_ports_t){arr, used};
    }
}

static void parse_match(zm_config_parse_t *ctx, const config_setting_t *g, zm_config_match_t *match)
{
    if (!config_setting_is_group(g)) {
        zm_config_problem(ctx, g, "a match must be a group { ... }");
        return;
    }
    for (int j = 0; j < config_setting_length(g); j++) {
        const config_setting_t *m = config_setting_get_elem(g, (unsigned)j);
        const char *key = config_setting_name(m);
        const struct match_key *k = NULL;
        for (size_t i = 0; i < ZM_ARRAY_LEN(match_keys) && !k; i++)
            if (!strcmp(match_keys[i].key, key))
                k = &match_keys[i];
        if (!k) {
            const char *known[ZM_ARRAY_LEN(match_keys)];
            for (size_t i = 0; i < ZM_ARRAY_LEN(match_keys); i++)
                known[i] = match_keys[i].key;
            zm_config_unknown_key(ctx, m, "policies.rules", known, ZM_ARRAY_LEN(known));
            continue;
        }
        parse_match_list(ctx, k, m, match);
    }
}

static void parse_rules(zm_config_parse_t *ctx, const config_setting_t *s, zm_config_policy_t *p)
{
    static const char shape[] = "'rules' must be ( ( ( { match }, ... ), ... ), ... ): "
                                "rules of clauses of matches";
    if (!is_seq(s)) {
        zm_config_problem(ctx, s, shape);
        return;
    }
    int nr = config_setting_length(s);
    p->rules = nr ? calloc((size_t)nr, sizeof(*p->rules)) : NULL;
    if (nr && !p->rules) {
        ctx->nomem = true;
        return;
    }
    p->n_rules = (size_t)nr;
    for (int r = 0; r < nr; r++) {
        const config_setting_t *rs = config_setting_get_elem(s, (unsigned)r);
        zm_config_rule_t *rule = &p->rules[r];
        if (!is_seq(rs)) {
            zm_config_problem(ctx, rs, shape);
            continue;
        }
        int nc = config_setting_length(rs);
        rule->clauses = nc ? calloc((size_t)nc, sizeof(*rule->clauses)) : NULL;
        if (nc && !rule->clauses) {
            ctx->nomem = true;
            continue;
        }
        rule->n_clauses = (size_t)nc;
        for (int c = 0; c < nc; c++) {
            const config_setting_t *cs = config_setting_get_elem(rs, (unsigned)c);
            zm_config_clause_t *cl = &rule->clauses[c];
            if (!is_seq(cs)) {
                zm_config_problem(ctx, cs, shape);
                continue;
            }
            int nm = config_setting_length(cs);
            cl->matches = nm ? calloc((size_t)nm, sizeof(*cl->matches)) : NULL;
            if (nm && !cl->matches) {
                ctx->nomem = true;
                continue;
            }
            cl->n_matches = (size_t)nm;
            for (int k = 0; k < nm; k++)
                parse_match(ctx, config_setting_get_elem(cs, (unsigned)k), &cl->matches[k]);
        }
    }
}

static void parse_workloads(zm_config_parse_t *ctx, const config_setting_t *m,
                            zm_config_policy_t *p)
{
    if (!is_seq(m)) {
        zm_config_problem(ctx, m, "'workloads' must be an array of workload uids");
        return;
    }
    int n = config_setting_length(m);
    p->workloads = n ? calloc((size_t)n, sizeof(*p->workloads)) : NULL;
    if (n && !p->workloads) {
        ctx->nomem = true;
        return;
    }
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(m, (unsigned)i);
        const char *s = config_setting_get_string(e);
        if (!s) {
            zm_config_problem(ctx, e, "'workloads' must hold workload uids (strings)");
            continue;
        }
        if (!(p->workloads[p->n_workloads++] = strdup(s)))
            ctx->nomem = true;
    }
}

void zm_config_policy_parse(zm_config_parse_t *ctx, const config_setting_t *s, zm_config_t *cfg)
{
    if (!config_setting_is_list(s)) {
        zm_config_problem(ctx, s, "'policies' must be a list: policies = ( { ... }, ... );");
        return;
    }
    int len = config_setting_length(s);
    if (len == 0)
        return;
    cfg->policies = calloc((size_t)len, sizeof(*cfg->policies));
    if (!cfg->policies) {
        ctx->nomem = true;
        return;
    }
    cfg->n_policies = (size_t)len;
    for (int i = 0; i < len; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        zm_config_policy_t *p = &cfg->policies[i];
        zm_config_fields_defaults(ctx, policy_fields, N_POLICY_FIELDS, p);
        if (!config_setting_is_group(e)) {
            zm_config_problem(ctx, e, "each element of 'policies' must be a group { ... }");
            continue;
        }
        for (int j = 0; j < config_setting_length(e); j++) {
            const config_setting_t *m = config_setting_get_elem(e, (unsigned)j);
            const char *key = config_setting_name(m);
            zm_config_note_source(ctx, m);
            const zm_config_field_t *f = zm_config_field_find(policy_fields, N_POLICY_FIELDS, key);
            if (f)
                zm_config_field_parse(ctx, "policies", f, m, p);
            else if (!strcmp(key, "rules"))
                parse_rules(ctx, m, p);
            else if (!strcmp(key, "workloads"))
                parse_workloads(ctx, m, p);
            else {
                const char *known[] = {"name",   "namespace", "scope",
                                       "action", "rules",     "workloads"};
                zm_config_unknown_key(ctx, m, "policies", known, ZM_ARRAY_LEN(known));
            }
        }
        if (!config_setting_get_member(e, "name"))
            zm_config_problem(ctx, e, "'policies' needs 'name'");
        if (!config_setting_get_member(e, "namespace"))
            zm_config_problem(ctx, e, "'policies' needs 'namespace'");
        if (!config_setting_get_member(e, "scope"))
            zm_config_problem(ctx, e, "'policies' needs 'scope'");
    }
}

/* ------------------------------------------------------------------ */
/* Cross checks and the per-workload index                             */

static bool applies(const zm_config_policy_t *p, const zm_config_workload_t *w)
{
    switch (p->scope) {
    case ZM_CONFIG_SCOPE_GLOBAL:
        return true;
    case ZM_CONFIG_SCOPE_NAMESPACE:
        return p->ns && w->ns && !strcmp(p->ns, w->ns);
    default:
        for (size_t i = 0; i < p->n_workloads; i++)
            if (w->uid && !strcmp(p->workloads[i], w->uid))
                return true;
        return false;
    }
}

void zm_config_policy_check(zm_config_parse_t *ctx, const config_setting_t *s, zm_config_t *cfg)
{
    for (size_t i = 0; i < cfg->n_policies; i++) {
        const zm_config_policy_t *p = &cfg->policies[i];
        const config_setting_t *at = s ? config_setting_get_elem(s, (unsigned)i) : NULL;
        for (size_t j = 0; j < i && p->name && p->ns; j++) {
            const zm_config_policy_t *o = &cfg->policies[j];
            if (o->name && o->ns && !strcmp(p->name, o->name) && !strcmp(p->ns, o->ns)) {
                zm_config_problem(ctx, at, "policy '%s/%s' appears twice", p->ns, p->name);
                break;
            }
        }
        if (p->scope != ZM_CONFIG_SCOPE_WORKLOAD && p->n_workloads)
            zm_config_problem(ctx, at, "policy '%s/%s': 'workloads' needs scope \"workload\"",
                              p->ns, p->name);
        for (size_t k = 0; k < p->n_workloads; k++)
            if (!zm_config_find_workload(cfg, p->workloads[k]))
                zm_config_problem(ctx, at, "policy '%s/%s': workload '%s' is not a workload", p->ns,
                                  p->name, p->workloads[k]);
    }
    if (!cfg->n_workloads || ctx->n_problems || ctx->nomem)
        return;
    cfg->workload_policies = calloc(cfg->n_workloads, sizeof(*cfg->workload_policies));
    if (!cfg->workload_policies) {
        ctx->nomem = true;
        return;
    }
    /* One block for every list (the first list starts it), so freeing does
     * not depend on the workloads section, which is freed first. */
    size_t total = 0;
    for (size_t w = 0; w < cfg->n_workloads; w++)
        for (size_t i = 0; i < cfg->n_policies; i++)
            total += applies(&cfg->policies[i], &cfg->workloads[w]);
    uint32_t *block = total ? calloc(total, sizeof(*block)) : NULL;
    if (total && !block) {
        ctx->nomem = true;
        return;
    }
    size_t off = 0;
    for (size_t w = 0; w < cfg->n_workloads && block; w++) {
        zm_config_policy_set_t *set = &cfg->workload_policies[w];
        set->idx = block + off;
        for (size_t i = 0; i < cfg->n_policies; i++)
            if (applies(&cfg->policies[i], &cfg->workloads[w]))
                set->idx[set->n++] = (uint32_t)i;
        off += set->n;
    }
}

/* ------------------------------------------------------------------ */
/* Freeing and dumping                                                 */

static void match_clear(zm_config_match_t *m)
{
    for (size_t i = 0; i < ZM_ARRAY_LEN(match_keys); i++) {
        void *field = (char *)m + match_keys[i].off;
        if (match_keys[i].type == L_STR) {
            zm_config_strmatches_t *l = field;
            for (size_t k = 0; k < l->n; k++)
                free((char *)l->v[k].value);
            free(l->v);
        } else if (match_keys[i].type == L_SA) {
            zm_config_sas_t *l = field;
            for (size_t k = 0; k < l->n; k++) {
                free((char *)l->v[k].ns);
                free((char *)l->v[k].name);
            }
            free(l->v);
        } else if (match_keys[i].type == L_CIDR) {
            free(((zm_config_cidrs_t *)field)->v);
        } else {
            free(((zm_config_ports_t *)field)->v);
        }
    }
    memset(m, 0, sizeof(*m));
}

void zm_config_policy_clear(zm_config_policy_t *p)
{
    if (!p)
        return;
    for (size_t r = 0; r < p->n_rules; r++) {
        zm_config_rule_t *rule = &p->rules[r];
        for (size_t c = 0; c < rule->n_clauses; c++) {
            for (size_t k = 0; k < rule->clauses[c].n_matches; k++)
                match_clear(&rule->clauses[c].matches[k]);
            free(rule->clauses[c].matches);
        }
        free(rule->clauses);
    }
    free(p->rules);
    for (size_t i = 0; i < p->n_workloads; i++)
        free((char *)p->workloads[i]);
    free((char **)p->workloads);
    free((char *)p->name);
    free((char *)p->ns);
    memset(p, 0, sizeof(*p));
}

void zm_config_policy_free(zm_config_t *cfg)
{
    if (cfg->workload_policies)
        free(cfg->workload_policies[0].idx);
    free(cfg->workload_policies);
    cfg->workload_policies = NULL;
    for (size_t i = 0; i < cfg->n_policies; i++)
        zm_config_policy_clear(&cfg->policies[i]);
    free(cfg->policies);
    cfg->policies = NULL;
    cfg->n_policies = 0;
}

static json_t *cidr_json(const zm_config_cidr_t *c)
{
    char ip[INET6_ADDRSTRLEN], buf[INET6_ADDRSTRLEN + 8];
    if (!inet_ntop(c->family, c->addr, ip, sizeof(ip)))
        snprintf(ip, sizeof(ip), "?");
    snprintf(buf, sizeof(buf), "%s/%u", ip, c->len);
    return json_string(buf);
}

static json_t *match_json(const zm_config_match_t *m)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < ZM_ARRAY_LEN(match_keys); i++) {
        const void *field = (const char *)m + match_keys[i].off;
        json_t *arr = json_array();
        size_t n = 0;
        if (match_keys[i].type == L_STR) {
            const zm_config_strmatches_t *l = field;
            for (n = 0; n < l->n; n++) {
                json_t *sm = json_object();
                const zm_config_strmatch_t *v = &l->v[n];
                json_object_set_new(sm, strmatch_json[v->kind],
                                    v->kind == ZM_CONFIG_MATCH_PRESENCE ? json_object()
                                                                        : json_string(v->value));
                json_array_append_new(arr, sm);
            }
        } else if (match_keys[i].type == L_SA) {
            const zm_config_sas_t *l = field;
            for (n = 0; n < l->n; n++)
                json_array_append_new(arr, json_pack("{s:s, s:s}", "namespace", l->v[n].ns,
                                                     "serviceAccount", l->v[n].name));
        } else if (match_keys[i].type == L_CIDR) {
            const zm_config_cidrs_t *l = field;
            for (n = 0; n < l->n; n++)
                json_array_append_new(arr, cidr_json(&l->v[n]));
        } else {
            const zm_config_ports_t *l = field;
            for (n = 0; n < l->n; n++)
                json_array_append_new(arr, json_integer(l->v[n]));
        }
        if (n)
            json_object_set_new(o, match_keys[i].json, arr);
        else
            json_decref(arr);
    }
    return o;
}

json_t *zm_config_policy_json(const zm_config_policy_t *p)
{
    json_t *o = json_object(), *rules = json_array(), *wl = json_array();
    for (size_t r = 0; r < p->n_rules; r++) {
        json_t *rule = json_array();
        for (size_t c = 0; c < p->rules[r].n_clauses; c++) {
            const zm_config_clause_t *cl = &p->rules[r].clauses[c];
            json_t *clause = json_array();
            for (size_t k = 0; k < cl->n_matches; k++)
                json_array_append_new(clause, match_json(&cl->matches[k]));
            json_array_append_new(rule, clause);
        }
        json_array_append_new(rules, rule);
    }
    for (size_t i = 0; i < p->n_workloads; i++)
        json_array_append_new(wl, json_string(p->workloads[i]));
    json_object_set_new(o, "name", json_string(p->name ? p->name : ""));
    json_object_set_new(o, "namespace", json_string(p->ns ? p->ns : ""));
    json_object_set_new(o, "scope", json_string(zm_config_policy_scope_name(p->scope)));
    json_object_set_new(o, "action", json_string(zm_config_policy_action_name(p->action)));
    json_object_set_new(o, "rules", rules);
    json_object_set_new(o, "workloads", wl);
    return o;
}

int zm_config_policy_dump(const zm_config_t *cfg, json_t *obj)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < cfg->n_policies; i++)
        json_array_append_new(arr, zm_config_policy_json(&cfg->policies[i]));
    return json_object_set_new(obj, "items", arr) == 0 ? 0 : -ENOMEM;
}
