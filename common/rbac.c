/*
 * rbac.c — L4 policy evaluation (see rbac.h). A transcription of ztunnel's
 * src/rbac.rs Authorization::matches and src/state.rs assert_rbac, kept in
 * the same order so their documented edge cases hold: an empty match is
 * skipped (never matches), an empty clause holds, a policy without rules
 * never matches; principals are compared after stripping "spiffe://" and
 * fail when it is absent (plaintext); an IPv4 CIDR never contains an IPv6
 * address (IPv4-mapped IPv6 sources are unmapped first, as Rust's
 * to_canonical does for the sockets ztunnel sees).
 */
#include "rbac.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

/* The identity split as ztunnel's Identity::Spiffe; all "" when none. */
typedef struct ident {
    const char *principal; /* after "spiffe://"; NULL: none (plaintext) */
    const char *ns;
    size_t ns_len;
    const char *sa;
} ident_t;

static void ident_parse(const char *id, ident_t *out)
{
    memset(out, 0, sizeof(*out));
    out->ns = out->sa = "";
    if (!id || strncmp(id, "spiffe://", 9))
        return;
    out->principal = id + 9;
    const char *p = strstr(out->principal, "/ns/");
    if (!p)
        return;
    const char *ns = p + 4, *sa = strstr(ns, "/sa/");
    if (!sa)
        return;
    out->ns = ns;
    out->ns_len = (size_t)(sa - ns);
    out->sa = sa + 4;
}

static bool str_matches(const zm_config_strmatch_t *m, const char *s, size_t len)
{
    size_t vl = strlen(m->value);
    switch (m->kind) {
    case ZM_CONFIG_MATCH_PRESENCE:
        return len > 0;
    case ZM_CONFIG_MATCH_PREFIX:
        return len >= vl && !memcmp(s, m->value, vl);
    case ZM_CONFIG_MATCH_SUFFIX:
        return len >= vl && !memcmp(s + len - vl, m->value, vl);
    default:
        return len == vl && !memcmp(s, m->value, vl);
    }
}

static bool any_str(const zm_config_strmatches_t *l, const char *s, size_t len)
{
    for (size_t i = 0; i < l->n; i++)
        if (str_matches(&l->v[i], s, len))
            return true;
    return false;
}

/* matches_principal: no "spiffe://" (plaintext) never matches. */
static bool any_principal(const zm_config_strmatches_t *l, const ident_t *id)
{
    return id->principal && any_str(l, id->principal, strlen(id->principal));
}

static bool any_sa(const zm_config_sas_t *l, const ident_t *id)
{
    if (!id->principal || !id->ns_len)
        return false;
    for (size_t i = 0; i < l->n; i++)
        if (strlen(l->v[i].ns) == id->ns_len && !memcmp(l->v[i].ns, id->ns, id->ns_len) &&
            !strcmp(l->v[i].name, id->sa))
            return true;
    return false;
}

static bool cidr_contains(const zm_config_cidr_t *c, const zm_rbac_ip_t *ip)
{
    if (!ip->family || c->family != ip->family)
        return false;
    unsigned full = c->len / 8, rest = c->len % 8;
    if (memcmp(c->addr, ip->addr, full))
        return false;
    if (!rest)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (c->addr[full] & mask) == (ip->addr[full] & mask);
}

static bool any_cidr(const zm_config_cidrs_t *l, const zm_rbac_ip_t *ip)
{
    for (size_t i = 0; i < l->n; i++)
        if (cidr_contains(&l->v[i], ip))
            return true;
    return false;
}

static bool any_port(const zm_config_ports_t *l, uint16_t port)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i] == port)
            return true;
    return false;
}

/* matches_internal: positive (if any) must hit, negative (if any) must not. */
#define PAIR(pos, neg, hit_pos, hit_neg) ((!(pos).n || (hit_pos)) && (!(neg).n || !(hit_neg)))

static bool match_empty(const zm_config_match_t *m)
{
    return !m->principals.n && !m->not_principals.n && !m->namespaces.n && !m->not_namespaces.n &&
           !m->service_accounts.n && !m->not_service_accounts.n && !m->source_ips.n &&
           !m->not_source_ips.n && !m->destination_ips.n && !m->not_destination_ips.n &&
           !m->destination_ports.n && !m->not_destination_ports.n;
}

static bool match_holds(const zm_config_match_t *m, const zm_rbac_conn_t *c, const ident_t *id)
{
    return PAIR(m->destination_ips, m->not_destination_ips,
                any_cidr(&m->destination_ips, &c->dst_ip),
                any_cidr(&m->not_destination_ips, &c->dst_ip)) &&
           PAIR(m->source_ips, m->not_source_ips, any_cidr(&m->source_ips, &c->src_ip),
                any_cidr(&m->not_source_ips, &c->src_ip)) &&
           PAIR(m->destination_ports, m->not_destination_ports,
                any_port(&m->destination_ports, c->dst_port),
                any_port(&m->not_destination_ports, c->dst_port)) &&
           PAIR(m->service_accounts, m->not_service_accounts, any_sa(&m->service_accounts, id),
                any_sa(&m->not_service_accounts, id)) &&
           PAIR(m->principals, m->not_principals, any_principal(&m->principals, id),
                any_principal(&m->not_principals, id)) &&
           PAIR(m->namespaces, m->not_namespaces, any_str(&m->namespaces, id->ns, id->ns_len),
                any_str(&m->not_namespaces, id->ns, id->ns_len));
}

static bool policy_matches(const zm_config_policy_t *p, const zm_rbac_conn_t *c, const ident_t *id)
{
    for (size_t r = 0; r < p->n_rules; r++) {
        const zm_config_rule_t *rule = &p->rules[r];
        bool rule_match = true;
        for (size_t k = 0; k < rule->n_clauses && rule_match; k++) {
            const zm_config_clause_t *cl = &rule->clauses[k];
            bool clause_match = cl->n_matches == 0;
            for (size_t i = 0; i < cl->n_matches && !clause_match; i++)
                clause_match = !match_empty(&cl->matches[i]) && match_holds(&cl->matches[i], c, id);
            rule_match = clause_match;
        }
        if (rule_match)
            return true;
    }
    return false;
}

bool zm_rbac_policy_matches(const zm_config_policy_t *p, const zm_rbac_conn_t *c)
{
    ident_t id;
    ident_parse(c->src_identity, &id);
    return policy_matches(p, c, &id);
}

int zm_rbac_check(const zm_config_t *cfg, const zm_rbac_conn_t *c, zm_rbac_verdict_t *v)
{
    v->allow = false;
    v->policy = NULL;
    v->reason = "unknown destination workload";
    if (!c->dst || c->dst < cfg->workloads || c->dst >= cfg->workloads + cfg->n_workloads)
        return -EINVAL;
    const zm_config_policy_set_t *set =
        cfg->workload_policies ? &cfg->workload_policies[c->dst - cfg->workloads] : NULL;
    size_t n = set ? set->n : 0;
    ident_t id;
    ident_parse(c->src_identity, &id);
    bool have_allow = false;
    for (size_t i = 0; i < n; i++) {
        const zm_config_policy_t *p = &cfg->policies[set->idx[i]];
        if (p->action != ZM_CONFIG_ACTION_DENY) {
            have_allow = true;
            continue;
        }
        if (policy_matches(p, c, &id)) {
            v->policy = p;
            v->reason = "explicitly denied by";
            return 0;
        }
    }
    if (!have_allow) {
        v->allow = true;
        v->reason = "no allow policies";
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        const zm_config_policy_t *p = &cfg->policies[set->idx[i]];
        if (p->action == ZM_CONFIG_ACTION_ALLOW && policy_matches(p, c, &id)) {
            v->allow = true;
            v->policy = p;
            v->reason = "allowed by";
            return 0;
        }
    }
    v->reason = "allow policies exist, but none allowed";
    return 0;
}

int zm_rbac_ip_parse(const char *text, zm_rbac_ip_t *out)
{
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, text, out->addr) == 1)
        out->family = AF_INET;
    else if (inet_pton(AF_INET6, text, out->addr) == 1)
        out->family = AF_INET6;
    else
        return -EINVAL;
    return 0;
}

int zm_rbac_ip_from_sockaddr(const struct sockaddr *sa, zm_rbac_ip_t *out)
{
    memset(out, 0, sizeof(*out));
    if (sa->sa_family == AF_INET) {
        out->family = AF_INET;
        memcpy(out->addr, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family != AF_INET6)
        return -EINVAL;
    const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a6)) {
        out->family = AF_INET;
        memcpy(out->addr, &a6->s6_addr[12], 4);
    } else {
        out->family = AF_INET6;
        memcpy(out->addr, a6->s6_addr, 16);
    }
    return 0;
}
