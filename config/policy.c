/*
 * policy.c — AuthorizationPolicy → ztunnel policies (see policy.h), the
 * libconfig text of a policy set, and the warnings `meshctl analyze` shows.
 * PeerAuthentication is policy_peer.c.
 *
 * The projection follows istiod's convertAuthorizationPolicy / handleRule
 * step by step: for each rule, one clause of the `to` operations' port
 * matches, one clause of the `from` sources' matches, then one clause per
 * `when` condition, each holding a single match (empty when its key is L7:
 * ztunnel skips empty matches, so such a clause never holds). Ports and
 * addresses that do not parse are dropped as istiod drops them.
 */
#include "compile.h"
#include "policy_int.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Building                                                            */

static void *grow(mc_proj_t *pj, void **arr, size_t *n, size_t *cap, size_t elem)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        void *na = realloc(*arr, nc * elem);
        if (!na) {
            pj->err = -ENOMEM;
            return NULL;
        }
        *arr = na;
        *cap = nc;
    }
    void *e = (char *)*arr + *n * elem;
    memset(e, 0, elem);
    (*n)++;
    return e;
}

/* A policy's own arrays are small: grow them one element at a time. */
static void *push(mc_proj_t *pj, void **arr, size_t *n, size_t elem)
{
    void *na = realloc(*arr, (*n + 1) * elem);
    if (!na) {
        pj->err = -ENOMEM;
        return NULL;
    }
    *arr = na;
    void *e = (char *)na + *n * elem;
    memset(e, 0, elem);
    (*n)++;
    return e;
}

zm_config_policy_t *mc_proj_add(mc_proj_t *pj, const char *ns, const char *name,
                                zm_config_policy_scope_t scope, zm_config_policy_action_t action)
{
    zm_config_policy_t *p =
        grow(pj, (void **)&pj->set->policies, &pj->set->n, &pj->cap, sizeof(*p));
    if (!p)
        return NULL;
    p->ns = strdup(ns);
    p->name = strdup(name);
    p->scope = scope;
    p->action = action;
    if (!p->ns || !p->name)
        pj->err = -ENOMEM;
    return p;
}

zm_config_rule_t *mc_proj_rule(mc_proj_t *pj, zm_config_policy_t *p)
{
    return push(pj, (void **)&p->rules, &p->n_rules, sizeof(*p->rules));
}

zm_config_clause_t *mc_proj_clause(mc_proj_t *pj, zm_config_rule_t *rule)
{
    return push(pj, (void **)&rule->clauses, &rule->n_clauses, sizeof(*rule->clauses));
}

zm_config_match_t *mc_proj_match(mc_proj_t *pj, zm_config_clause_t *cl)
{
    return push(pj, (void **)&cl->matches, &cl->n_matches, sizeof(*cl->matches));
}

void mc_proj_workload(mc_proj_t *pj, zm_config_policy_t *p, const mc_pod_t *pod)
{
    const char **slot = push(pj, (void **)&p->workloads, &p->n_workloads, sizeof(*p->workloads));
    if (!slot)
        return;
    char *uid = NULL;
    if (asprintf(&uid, "%s/%s", pod->meta.ns, pod->meta.name) < 0) {
        uid = NULL;
        pj->err = -ENOMEM;
    }
    *slot = uid;
}

void mc_proj_port(mc_proj_t *pj, zm_config_ports_t *l, uint16_t port)
{
    uint16_t *v = push(pj, (void **)&l->v, &l->n, sizeof(*l->v));
    if (v)
        *v = port;
}

void mc_proj_presence(mc_proj_t *pj, zm_config_strmatches_t *l)
{
    zm_config_strmatch_t *v = push(pj, (void **)&l->v, &l->n, sizeof(*l->v));
    if (v && zm_config_strmatch_parse("*", v) < 0)
        pj->err = -ENOMEM;
}

void mc_proj_warn(mc_proj_t *pj, const char *file, int line, const char *fmt, ...)
{
    mc_warning_t *w =
        grow(pj, (void **)&pj->set->warnings, &pj->set->n_warnings, &pj->cap_warn, sizeof(*w));
    if (!w)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0) {
        msg = NULL;
        pj->err = -ENOMEM;
    }
    va_end(ap);
    w->file = file;
    w->line = line;
    w->msg = msg ? msg : "";
}

bool mc_proj_selector(const mc_yaml_node_t *spec, const mc_yaml_node_t **labels)
{
    const mc_yaml_node_t *sel = mc_yaml_get(spec, "selector");
    *labels = mc_yaml_get(sel, "matchLabels");
    return sel && sel->kind == MC_YAML_MAP;
}

size_t mc_proj_n_labels(const mc_yaml_node_t *labels)
{
    return labels && labels->kind == MC_YAML_MAP ? labels->n : 0;
}

bool mc_proj_selects(const mc_yaml_node_t *labels, const mc_pod_t *pod)
{
    for (size_t i = 0; i < mc_proj_n_labels(labels); i++) {
        const char *k = mc_yaml_str(labels->pairs[i].key);
        const char *want = mc_yaml_str(labels->pairs[i].value);
        const char *have = k ? mc_labels_get(&pod->meta.labels, k) : NULL;
        if (!have || !want || strcmp(have, want))
            return false;
    }
    return true;
}

/* ------------------------------------------------------------------ */
/* AuthorizationPolicy                                                 */

/* A non-empty sequence (istiod tests len(field) > 0). */
static const mc_yaml_node_t *seq_of(const mc_yaml_node_t *map, const char *key)
{
    const mc_yaml_node_t *n = mc_yaml_get(map, key);
    return n && n->kind == MC_YAML_SEQ && n->n ? n : NULL;
}

static void add_strs(mc_proj_t *pj, zm_config_strmatches_t *l, const mc_yaml_node_t *seq)
{
    for (size_t i = 0; seq && i < seq->n; i++) {
        const char *s = mc_yaml_str(seq->items[i]);
        if (!s)
            continue;
        zm_config_strmatch_t *v = push(pj, (void **)&l->v, &l->n, sizeof(*l->v));
        if (v && zm_config_strmatch_parse(s, v) < 0) {
            l->n--;
            pj->err = -ENOMEM;
        }
    }
}

static void add_sas(mc_proj_t *pj, zm_config_sas_t *l, const mc_yaml_node_t *seq, const char *ns)
{
    for (size_t i = 0; seq && i < seq->n; i++) {
        const char *s = mc_yaml_str(seq->items[i]);
        if (!s)
            continue;
        zm_config_sa_t *v = push(pj, (void **)&l->v, &l->n, sizeof(*l->v));
        if (!v)
            return;
        const char *slash = strchr(s, '/');
        v->ns = slash ? strndup(s, (size_t)(slash - s)) : strdup(ns);
        v->name = strdup(slash ? slash + 1 : s);
        if (!v->ns || !v->name)
            pj->err = -ENOMEM;
    }
}

static void add_cidrs(mc_proj_t *pj, zm_config_cidrs_t *l, const mc_yaml_node_t *seq)
{
    for (size_t i = 0; seq && i < seq->n; i++) {
        const char *s = mc_yaml_str(seq->items[i]);
        zm_config_cidr_t c;
        if (!s || !s[0] || zm_config_cidr_parse(s, &c) < 0)
            continue; /* istiod skips what does not parse */
        zm_config_cidr_t *v = push(pj, (void **)&l->v, &l->n, sizeof(*l->v));
        if (v)
            *v = c;
    }
}

static void add_ports(mc_proj_t *pj, zm_config_ports_t *l, const mc_yaml_node_t *seq)
{
    for (size_t i = 0; seq && i < seq->n; i++) {
        const char *s = mc_yaml_str(seq->items[i]);
        char *end;
        if (!s || !s[0] || s[0] == '-' || s[0] == '+')
            continue;
        unsigned long p = strtoul(s, &end, 10);
        if (*end || p > 65535)
            continue; /* named ports ("http") are dropped, as by istiod */
        mc_proj_port(pj, l, (uint16_t)p);
    }
}

static const char *const l7_operation[] = {"hosts",      "notHosts", "methods",
                                           "notMethods", "paths",    "notPaths"};
static const char *const l7_source[] = {"remoteIpBlocks", "notRemoteIpBlocks", "requestPrincipals",
                                        "notRequestPrincipals"};
static const char *const l4_when[] = {"source.ip", "source.namespace", "source.principal",
                                      "destination.ip", "destination.port"};

/* Collects L7 attribute names found (sorted, unique) for the warning. */
typedef struct l7set {
    const char *names[32];
    size_t n;
} l7set_t;

static void l7_add(l7set_t *s, const char *name)
{
    size_t i = 0;
    while (i < s->n && strcmp(s->names[i], name) < 0)
        i++;
    if ((i < s->n && !strcmp(s->names[i], name)) || s->n == ZM_ARRAY_LEN(s->names))
        return;
    memmove(&s->names[i + 1], &s->names[i], (s->n - i) * sizeof(s->names[0]));
    s->names[i] = name;
    s->n++;
}

static bool l7_scan(const mc_yaml_node_t *map, const char *const *keys, size_t n, l7set_t *found)
{
    bool any = false;
    for (size_t i = 0; i < n; i++)
        if (seq_of(map, keys[i])) {
            l7_add(found, keys[i]);
            any = true;
        }
    return any;
}

static void when_values(mc_proj_t *pj, zm_config_match_t *m, const char *key,
                        const mc_yaml_node_t *vals, bool neg)
{
    if (!strcmp(key, "source.namespace"))
        add_strs(pj, neg ? &m->not_namespaces : &m->namespaces, vals);
    else if (!strcmp(key, "source.principal"))
        add_strs(pj, neg ? &m->not_principals : &m->principals, vals);
    else if (!strcmp(key, "source.ip"))
        add_cidrs(pj, neg ? &m->not_source_ips : &m->source_ips, vals);
    else if (!strcmp(key, "destination.port"))
        add_ports(pj, neg ? &m->not_destination_ports : &m->destination_ports, vals);
    else if (!strcmp(key, "destination.ip"))
        add_cidrs(pj, neg ? &m->not_destination_ips : &m->destination_ips, vals);
}

/* handleRule: adds the rule to p unless it is dropped (ALLOW with L7). */
static void project_rule(mc_proj_t *pj, zm_config_policy_t *p, const mc_yaml_node_t *rule,
                         const char *ns, l7set_t *found)
{
    /* Built aside, then moved into p or dropped. */
    zm_config_policy_t tmp = {0};
    zm_config_rule_t *rp = mc_proj_rule(pj, &tmp);
    if (!rp)
        return;
    zm_config_rule_t r = {0};
    bool l7 = false;
    const mc_yaml_node_t *to = mc_yaml_get(rule, "to"), *from = mc_yaml_get(rule, "from");
    const mc_yaml_node_t *when = mc_yaml_get(rule, "when");
    if (to && to->kind == MC_YAML_SEQ && to->n) {
        zm_config_clause_t *cl = mc_proj_clause(pj, &r);
        for (size_t i = 0; cl && i < to->n; i++) {
            const mc_yaml_node_t *op = mc_yaml_get(to->items[i], "operation");
            l7 |= l7_scan(op, l7_operation, ZM_ARRAY_LEN(l7_operation), found);
            zm_config_match_t *m = mc_proj_match(pj, cl);
            if (!m)
                break;
            add_ports(pj, &m->destination_ports, seq_of(op, "ports"));
            add_ports(pj, &m->not_destination_ports, seq_of(op, "notPorts"));
        }
    }
    if (from && from->kind == MC_YAML_SEQ && from->n) {
        zm_config_clause_t *cl = mc_proj_clause(pj, &r);
        for (size_t i = 0; cl && i < from->n; i++) {
            const mc_yaml_node_t *src = mc_yaml_get(from->items[i], "source");
            l7 |= l7_scan(src, l7_source, ZM_ARRAY_LEN(l7_source), found);
            zm_config_match_t *m = mc_proj_match(pj, cl);
            if (!m)
                break;
            add_cidrs(pj, &m->source_ips, seq_of(src, "ipBlocks"));
            add_cidrs(pj, &m->not_source_ips, seq_of(src, "notIpBlocks"));
            add_strs(pj, &m->namespaces, seq_of(src, "namespaces"));
            add_strs(pj, &m->not_namespaces, seq_of(src, "notNamespaces"));
            add_sas(pj, &m->service_accounts, seq_of(src, "serviceAccounts"), ns);
            add_sas(pj, &m->not_service_accounts, seq_of(src, "notServiceAccounts"), ns);
            add_strs(pj, &m->principals, seq_of(src, "principals"));
            add_strs(pj, &m->not_principals, seq_of(src, "notPrincipals"));
        }
    }
    for (size_t i = 0; when && when->kind == MC_YAML_SEQ && i < when->n; i++) {
        const char *key = mc_yaml_str(mc_yaml_get(when->items[i], "key"));
        bool l4 = false;
        for (size_t k = 0; key && k < ZM_ARRAY_LEN(l4_when); k++)
            l4 |= !strcmp(key, l4_when[k]);
        if (!l4) {
            l7 = true;
            l7_add(found, key ? key : "(no key)");
        }
        zm_config_clause_t *cl = mc_proj_clause(pj, &r);
        zm_config_match_t *m = cl ? mc_proj_match(pj, cl) : NULL;
        if (m && key) {
            when_values(pj, m, key, seq_of(when->items[i], "values"), false);
            when_values(pj, m, key, seq_of(when->items[i], "notValues"), true);
        }
    }
    *rp = r;
    /* L7 rules never match for ALLOW; in DENY they match more broadly. */
    zm_config_rule_t *slot = p->action == ZM_CONFIG_ACTION_ALLOW && l7 ? NULL : mc_proj_rule(pj, p);
    if (slot) {
        *slot = r;
        free(tmp.rules);
        return;
    }
    zm_config_policy_clear(&tmp);
}

static bool has_target_refs(const mc_yaml_node_t *spec)
{
    const mc_yaml_node_t *one = mc_yaml_get(spec, "targetRef");
    return seq_of(spec, "targetRefs") || (one && one->kind == MC_YAML_MAP);
}

/* Returns the L7 attributes found (for analyze) through found. */
static void project_authz(mc_proj_t *pj, const mc_object_t *o, l7set_t *found)
{
    const mc_yaml_node_t *spec = o->spec;
    if (has_target_refs(spec))
        return; /* for waypoints, not ztunnel */
    const char *action = mc_yaml_str(mc_yaml_get(spec, "action"));
    zm_config_policy_action_t act = ZM_CONFIG_ACTION_ALLOW;
    if (action && !strcmp(action, "DENY"))
        act = ZM_CONFIG_ACTION_DENY;
    else if (action && strcmp(action, "ALLOW")) {
        mc_proj_warn(pj, o->meta.file, o->meta.line,
                     "AuthorizationPolicy %s/%s: ztunnel does not support the %s action (ignored)",
                     o->meta.ns, o->meta.name, action);
        return;
    }
    const mc_yaml_node_t *labels;
    bool selector = mc_proj_selector(spec, &labels);
    zm_config_policy_scope_t scope = selector ? ZM_CONFIG_SCOPE_WORKLOAD
                                     : !strcmp(o->meta.ns, MC_ROOT_NAMESPACE)
                                         ? ZM_CONFIG_SCOPE_GLOBAL
                                         : ZM_CONFIG_SCOPE_NAMESPACE;
    zm_config_policy_t *p = mc_proj_add(pj, o->meta.ns, o->meta.name, scope, act);
    if (!p)
        return;
    const mc_yaml_node_t *rules = mc_yaml_get(spec, "rules");
    for (size_t i = 0; rules && rules->kind == MC_YAML_SEQ && i < rules->n; i++)
        project_rule(pj, p, rules->items[i], o->meta.ns, found);
    /* The root namespace's selector applies in every namespace. */
    bool root = !strcmp(o->meta.ns, MC_ROOT_NAMESPACE);
    for (size_t i = 0; selector && i < pj->m->n_pods; i++) {
        const mc_pod_t *pod = &pj->m->pods[i];
        if ((root || !strcmp(pod->meta.ns, o->meta.ns)) && mc_proj_selects(labels, pod))
            mc_proj_workload(pj, p, pod);
    }
}

/* ------------------------------------------------------------------ */
/* The set                                                             */

static int project(const mc_model_t *m, mc_policy_set_t **out, bool analyze)
{
    *out = NULL;
    mc_policy_set_t *set = calloc(1, sizeof(*set));
    if (!set)
        return -ENOMEM;
    mc_proj_t pj = {.m = m, .set = set};
    for (size_t i = 0; i < m->n_objects && !pj.err; i++) {
        const mc_object_t *o = &m->objects[i];
        if (o->kind != MC_KIND_AUTHORIZATION_POLICY)
            continue;
        l7set_t found = {0};
        project_authz(&pj, o, &found);
        if (!analyze || !found.n)
            continue;
        char list[512] = "";
        for (size_t k = 0; k < found.n; k++)
            snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", k ? ", " : "",
                     found.names[k]);
        const char *action = mc_yaml_str(mc_yaml_get(o->spec, "action"));
        bool deny = action && !strcmp(action, "DENY");
        mc_proj_warn(&pj, o->meta.file, o->meta.line,
                     "AuthorizationPolicy %s/%s: ztunnel does not support HTTP attributes "
                     "(found: %s). In ambient mode you must use a waypoint proxy to enforce "
                     "HTTP rules (targetRefs to it). %s",
                     o->meta.ns, o->meta.name, list,
                     deny ? "DENY policy with HTTP attributes is enforced without the HTTP "
                            "rules. This will be more restrictive than requested."
                          : "Within an ALLOW policy, rules matching HTTP attributes are "
                            "omitted. This will be more restrictive than requested.");
    }
    if (!pj.err)
        mc_proj_peer_authentications(&pj);
    *out = set;
    if (pj.err) {
        mc_policy_set_free(out);
        return pj.err;
    }
    return 0;
}

int mc_policy_project(const mc_model_t *m, mc_policy_set_t **out)
{
    return project(m, out, false);
}

void mc_policy_set_free(mc_policy_set_t **set)
{
    if (!set || !*set)
        return;
    mc_policy_set_t *s = *set;
    for (size_t i = 0; i < s->n; i++)
        zm_config_policy_clear(&s->policies[i]);
    free(s->policies);
    mc_policy_warnings_free(&s->warnings, s->n_warnings);
    free(s);
    *set = NULL;
}

void mc_policy_warnings_free(mc_warning_t **w, size_t n)
{
    if (!w || !*w)
        return;
    for (size_t i = 0; i < n; i++)
        if ((*w)[i].msg && (*w)[i].msg[0])
            free((char *)(*w)[i].msg);
    free(*w);
    *w = NULL;
}

/* ------------------------------------------------------------------ */
/* libconfig text                                                      */

static void put_strmatches(zm_strbuf_t *out, const char *key, const zm_config_strmatches_t *l)
{
    if (!l->n)
        return;
    zm_strbuf_appendf(out, " %s = [", key);
    for (size_t i = 0; i < l->n; i++) {
        const zm_config_strmatch_t *v = &l->v[i];
        char *s = NULL;
        int r = v->kind == ZM_CONFIG_MATCH_PRESENCE ? asprintf(&s, "*")
                : v->kind == ZM_CONFIG_MATCH_PREFIX ? asprintf(&s, "%s*", v->value)
                : v->kind == ZM_CONFIG_MATCH_SUFFIX ? asprintf(&s, "*%s", v->value)
                                                    : asprintf(&s, "%s", v->value);
        if (r < 0) {
            out->err = -ENOMEM;
            return;
        }
        zm_strbuf_appends(out, i ? ", " : " ");
        mc_cfg_put_str(out, s);
        free(s);
    }
    zm_strbuf_appends(out, " ];");
}

static void put_sas(zm_strbuf_t *out, const char *key, const zm_config_sas_t *l)
{
    if (!l->n)
        return;
    zm_strbuf_appendf(out, " %s = [", key);
    for (size_t i = 0; i < l->n; i++) {
        zm_strbuf_appends(out, i ? ", \"" : " \"");
        zm_strbuf_appendf(out, "%s/%s\"", l->v[i].ns, l->v[i].name);
    }
    zm_strbuf_appends(out, " ];");
}

static void put_cidrs(zm_strbuf_t *out, const char *key, const zm_config_cidrs_t *l)
{
    if (!l->n)
        return;
    zm_strbuf_appendf(out, " %s = [", key);
    for (size_t i = 0; i < l->n; i++) {
        char ip[64];
        if (!inet_ntop(l->v[i].family, l->v[i].addr, ip, sizeof(ip)))
            snprintf(ip, sizeof(ip), "0.0.0.0");
        zm_strbuf_appendf(out, "%s\"%s/%u\"", i ? ", " : " ", ip, l->v[i].len);
    }
    zm_strbuf_appends(out, " ];");
}

static void put_ports(zm_strbuf_t *out, const char *key, const zm_config_ports_t *l)
{
    if (!l->n)
        return;
    zm_strbuf_appendf(out, " %s = [", key);
    for (size_t i = 0; i < l->n; i++)
        zm_strbuf_appendf(out, "%s%u", i ? ", " : " ", l->v[i]);
    zm_strbuf_appends(out, " ];");
}

static void put_match(zm_strbuf_t *out, const zm_config_match_t *m)
{
    zm_strbuf_appendc(out, '{');
    put_strmatches(out, "principals", &m->principals);
    put_strmatches(out, "not_principals", &m->not_principals);
    put_strmatches(out, "namespaces", &m->namespaces);
    put_strmatches(out, "not_namespaces", &m->not_namespaces);
    put_sas(out, "service_accounts", &m->service_accounts);
    put_sas(out, "not_service_accounts", &m->not_service_accounts);
    put_cidrs(out, "source_ips", &m->source_ips);
    put_cidrs(out, "not_source_ips", &m->not_source_ips);
    put_cidrs(out, "destination_ips", &m->destination_ips);
    put_cidrs(out, "not_destination_ips", &m->not_destination_ips);
    put_ports(out, "destination_ports", &m->destination_ports);
    put_ports(out, "not_destination_ports", &m->not_destination_ports);
    zm_strbuf_appends(out, " }");
}

static void put_policy(zm_strbuf_t *out, const zm_config_policy_t *p)
{
    static const char *const scopes[] = {"global", "namespace", "workload"};
    zm_strbuf_appends(out, "  { name = ");
    mc_cfg_put_str(out, p->name);
    zm_strbuf_appends(out, "; namespace = ");
    mc_cfg_put_str(out, p->ns);
    zm_strbuf_appendf(out, "; scope = \"%s\"; action = \"%s\";", scopes[p->scope],
                      p->action == ZM_CONFIG_ACTION_DENY ? "deny" : "allow");
    if (p->scope == ZM_CONFIG_SCOPE_WORKLOAD) {
        zm_strbuf_appends(out, "\n    workloads = [");
        for (size_t i = 0; i < p->n_workloads; i++) {
            zm_strbuf_appends(out, i ? ", " : " ");
            mc_cfg_put_str(out, p->workloads[i]);
        }
        zm_strbuf_appends(out, p->n_workloads ? " ];" : "];");
    }
    zm_strbuf_appends(out, "\n    rules = (");
    for (size_t r = 0; r < p->n_rules; r++) {
        const zm_config_rule_t *rule = &p->rules[r];
        zm_strbuf_appends(out, r ? ",\n      (" : "\n      (");
        for (size_t c = 0; c < rule->n_clauses; c++) {
            const zm_config_clause_t *cl = &rule->clauses[c];
            zm_strbuf_appends(out, c ? ", (" : " (");
            for (size_t k = 0; k < cl->n_matches; k++) {
                zm_strbuf_appends(out, k ? ", " : " ");
                put_match(out, &cl->matches[k]);
            }
            zm_strbuf_appends(out, " )");
        }
        zm_strbuf_appends(out, " )");
    }
    zm_strbuf_appends(out, " ); }");
}

void mc_policy_write(const mc_policy_set_t *set, zm_strbuf_t *out)
{
    zm_strbuf_appends(out, "policies = (\n");
    for (size_t i = 0; i < set->n; i++) {
        put_policy(out, &set->policies[i]);
        zm_strbuf_appends(out, i + 1 < set->n ? ",\n" : "\n");
    }
    zm_strbuf_appends(out, ");\n");
}

void mc_policy_emit(const mc_model_t *m, zm_strbuf_t *out)
{
    mc_policy_set_t *set = NULL;
    int r = mc_policy_project(m, &set);
    if (r < 0) {
        out->err = r;
        return;
    }
    mc_policy_write(set, out);
    mc_policy_set_free(&set);
}

/* ------------------------------------------------------------------ */
/* analyze                                                             */

/* targetRefs that no waypoint serves: nothing enforces the policy. */
static void check_target_refs(mc_proj_t *pj, const mc_object_t *o)
{
    const mc_yaml_node_t *refs = seq_of(o->spec, "targetRefs");
    const mc_yaml_node_t *one = mc_yaml_get(o->spec, "targetRef");
    size_t n = refs ? refs->n : (one && one->kind == MC_YAML_MAP);
    for (size_t i = 0; i < n; i++) {
        const mc_yaml_node_t *ref = refs ? refs->items[i] : one;
        const char *kind = mc_yaml_str(mc_yaml_get(ref, "kind"));
        const char *name = mc_yaml_str(mc_yaml_get(ref, "name"));
        if (!kind || !name)
            continue;
        bool served = true;
        if (!strcmp(kind, "Gateway")) {
            const mc_gateway_t *gw = mc_model_find_gateway(pj->m, o->meta.ns, name);
            served = gw && gw->is_waypoint;
        } else if (!strcmp(kind, "Service")) {
            const mc_service_t *svc = mc_model_find_service(pj->m, o->meta.ns, name);
            served = svc && svc->waypoint;
        } else {
            continue; /* ServiceEntry, GatewayClass: not modelled */
        }
        if (!served)
            mc_proj_warn(pj, ref->file, ref->line,
                         "AuthorizationPolicy %s/%s: targetRef %s %s has no waypoint: "
                         "nothing enforces this policy",
                         o->meta.ns, o->meta.name, kind, name);
    }
}

size_t mc_policy_warnings(const mc_model_t *m, mc_warning_t **out)
{
    *out = NULL;
    mc_policy_set_t *set = NULL;
    if (project(m, &set, true) < 0)
        return 0;
    mc_proj_t pj = {.m = m, .set = set, .cap_warn = set->n_warnings};
    for (size_t i = 0; i < m->n_objects; i++)
        if (m->objects[i].kind == MC_KIND_AUTHORIZATION_POLICY &&
            has_target_refs(m->objects[i].spec))
            check_target_refs(&pj, &m->objects[i]);
    size_t n = set->n_warnings;
    *out = set->warnings;
    set->warnings = NULL;
    set->n_warnings = 0;
    mc_policy_set_free(&set);
    return n;
}
