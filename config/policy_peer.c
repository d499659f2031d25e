/*
 * policy_peer.c — PeerAuthentication → ztunnel policies, transcribing
 * istiod's convertedSelectorPeerAuthentications (which policies a workload
 * references) and convertPeerAuthentication (the DENY policy a workload
 * PeerAuthentication with portLevelMtls becomes), conditions kept in
 * istiod's order and grouping so the golden cases of its testdata hold.
 *
 * "Oldest wins" ties are broken by metadata.creationTimestamp (RFC 3339
 * compares as text; absent counts as oldest, like Go's zero time), then by
 * load order. A mode that is absent or unknown counts as UNSET, a port key
 * that is not a number is skipped with a warning.
 */
#include "policy_int.h"

#include <stdlib.h>
#include <string.h>

enum { M_UNSET, M_DISABLE, M_PERMISSIVE, M_STRICT };

typedef struct port_mode {
    uint16_t port;
    int mode;
} port_mode_t;

typedef struct pa {
    const mc_object_t *o;
    const char *created; /* "" when absent */
    const mc_yaml_node_t *labels;
    bool has_selector;   /* selector with matchLabels entries */
    bool selector_field; /* spec.selector present at all */
    int mode;
    port_mode_t *ports; /* sorted by port (Go's maps.SeqStable) */
    size_t n_ports;
} pa_t;

static int mode_of(const mc_yaml_node_t *mtls)
{
    const char *s = mc_yaml_str(mc_yaml_get(mtls, "mode"));
    if (!s)
        return M_UNSET;
    return !strcmp(s, "STRICT")       ? M_STRICT
           : !strcmp(s, "PERMISSIVE") ? M_PERMISSIVE
           : !strcmp(s, "DISABLE")    ? M_DISABLE
                                      : M_UNSET;
}

static int port_cmp(const void *a, const void *b)
{
    return (int)((const port_mode_t *)a)->port - (int)((const port_mode_t *)b)->port;
}

static bool older(const pa_t *a, const pa_t *b)
{
    int c = strcmp(a->created, b->created);
    return c ? c < 0 : a->o->meta._seq < b->o->meta._seq;
}

static int load_pa(mc_proj_t *pj, const mc_object_t *o, pa_t *pa)
{
    memset(pa, 0, sizeof(*pa));
    pa->o = o;
    const char *ts = mc_yaml_str(mc_yaml_path(o->root, "metadata.creationTimestamp"));
    pa->created = ts ? ts : "";
    pa->selector_field = mc_proj_selector(o->spec, &pa->labels);
    pa->has_selector = mc_proj_n_labels(pa->labels) > 0;
    pa->mode = mode_of(mc_yaml_get(o->spec, "mtls"));
    const mc_yaml_node_t *plm = mc_yaml_get(o->spec, "portLevelMtls");
    if (!plm || plm->kind != MC_YAML_MAP || !plm->n)
        return 0;
    pa->ports = calloc(plm->n, sizeof(*pa->ports));
    if (!pa->ports)
        return -ENOMEM;
    for (size_t i = 0; i < plm->n; i++) {
        const char *k = mc_yaml_str(plm->pairs[i].key);
        char *end = NULL;
        unsigned long port = k ? strtoul(k, &end, 10) : 0;
        if (!k || !k[0] || *end || port == 0 || port > 65535) {
            mc_proj_warn(pj, plm->pairs[i].value ? plm->pairs[i].value->file : o->meta.file,
                         plm->pairs[i].value ? plm->pairs[i].value->line : o->meta.line,
                         "PeerAuthentication %s/%s: portLevelMtls key '%s' is not a port "
                         "(ignored)",
                         o->meta.ns, o->meta.name, k ? k : "");
            continue;
        }
        pa->ports[pa->n_ports++] = (port_mode_t){(uint16_t)port, mode_of(plm->pairs[i].value)};
    }
    qsort(pa->ports, pa->n_ports, sizeof(*pa->ports), port_cmp);
    return 0;
}

/* The oldest policy without selector in ns (mesh level: the root ns). */
static const pa_t *oldest_unselected(const pa_t *pas, size_t n, const char *ns)
{
    const pa_t *best = NULL;
    for (size_t i = 0; i < n; i++)
        if (!pas[i].has_selector && !strcmp(pas[i].o->meta.ns, ns) &&
            (!best || older(&pas[i], best)))
            best = &pas[i];
    return best;
}

static bool any_port(const pa_t *pa, int m1, int m2)
{
    for (size_t i = 0; i < pa->n_ports; i++)
        if (pa->ports[i].mode == m1 || pa->ports[i].mode == m2)
            return true;
    return false;
}

/* Adds a rule [[match]] where match is notPrincipals presence and/or the
 * port list given. */
static void add_port_rule(mc_proj_t *pj, zm_config_rule_t *rule, bool not_principals,
                          const uint16_t *port, bool not_port)
{
    zm_config_clause_t *cl = mc_proj_clause(pj, rule);
    zm_config_match_t *m = cl ? mc_proj_match(pj, cl) : NULL;
    if (!m)
        return;
    if (not_principals)
        mc_proj_presence(pj, &m->not_principals);
    if (port)
        mc_proj_port(pj, not_port ? &m->not_destination_ports : &m->destination_ports, *port);
}

/* convertPeerAuthentication; NULL when the policy converts to nothing. */
static zm_config_policy_t *convert(mc_proj_t *pj, const pa_t *cfg, const pa_t *ns_cfg,
                                   const pa_t *root_cfg)
{
    const char *ns = cfg->o->meta.ns;
    if (!strcmp(ns, MC_ROOT_NAMESPACE) || !cfg->selector_field || !cfg->n_ports)
        return NULL;
    int mode = cfg->mode;
    /* "rules" of istiod: one group holding them; "groups": one per port. */
    zm_config_policy_t rules = {0}, groups = {0};
    zm_config_rule_t *group = mc_proj_rule(pj, &rules);
    if (!group)
        return NULL;
    if (mode == M_STRICT)
        add_port_rule(pj, group, true, NULL, false);
    bool found_non_strict = false;
    for (size_t i = 0; i < cfg->n_ports; i++) {
        int pm = cfg->ports[i].mode;
        const uint16_t *port = &cfg->ports[i].port;
        if (pm == M_STRICT) {
            if (mode == M_STRICT || (mode == M_UNSET && ns_cfg && ns_cfg->mode == M_STRICT) ||
                ((!ns_cfg || ns_cfg->mode == M_UNSET) && root_cfg && root_cfg->mode == M_STRICT))
                continue; /* enforced by the parent policy */
            zm_config_rule_t *g = mc_proj_rule(pj, &groups);
            if (g)
                add_port_rule(pj, g, true, port, false);
        } else if (pm == M_PERMISSIVE || pm == M_DISABLE) {
            if (mode == M_PERMISSIVE || mode == M_DISABLE)
                continue;
            if (mode == M_UNSET &&
                ((ns_cfg && ns_cfg->mode != M_STRICT) ||
                 (!ns_cfg && root_cfg && root_cfg->mode != M_STRICT) || (!ns_cfg && !root_cfg)))
                continue;
            found_non_strict = true;
            /* Exempts the port from the deny: no principal requirement. */
            add_port_rule(pj, group, false, port, true);
        }
    }
    zm_config_policy_t *out = NULL;
    if (!(mode == M_STRICT && !found_non_strict) && (group->n_clauses || groups.n_rules)) {
        bool merge = (root_cfg && root_cfg->mode == M_STRICT &&
                      (!ns_cfg || ns_cfg->mode == M_UNSET || ns_cfg->mode == M_STRICT)) ||
                     (ns_cfg && ns_cfg->mode == M_STRICT);
        if (merge && found_non_strict)
            add_port_rule(pj, group, true, NULL, false);
        char name[300];
        snprintf(name, sizeof(name), "converted_peer_authentication_%s", cfg->o->meta.name);
        out = mc_proj_add(pj, ns, name, ZM_CONFIG_SCOPE_WORKLOAD, ZM_CONFIG_ACTION_DENY);
        for (size_t i = 0; out && i < groups.n_rules; i++) {
            zm_config_rule_t *r = mc_proj_rule(pj, out);
            if (r) {
                *r = groups.rules[i];
                groups.rules[i] = (zm_config_rule_t){0};
            }
        }
        zm_config_rule_t *r = out && group->n_clauses ? mc_proj_rule(pj, out) : NULL;
        if (r) {
            *r = *group;
            *group = (zm_config_rule_t){0};
        }
    }
    zm_config_policy_clear(&rules);
    zm_config_policy_clear(&groups);
    return out;
}

/* convertedSelectorPeerAuthentications for one workload: whether it uses
 * the static STRICT policy, and which workload policy (or NULL). */
static bool effective(const pa_t *pas, size_t n, const mc_pod_t *pod, const pa_t **wl)
{
    const pa_t *mesh = NULL, *nsp = NULL, *w = NULL;
    for (size_t i = 0; i < n; i++) {
        const pa_t *c = &pas[i];
        bool root = !strcmp(c->o->meta.ns, MC_ROOT_NAMESPACE);
        if (!root && strcmp(c->o->meta.ns, pod->meta.ns))
            continue;
        if (!c->has_selector) {
            const pa_t **slot = root ? &mesh : &nsp;
            if (!*slot || older(c, *slot))
                *slot = c;
        } else if (!root && mc_proj_selects(c->labels, pod) && (!w || older(c, w))) {
            w = c;
        }
    }
    bool strict = mesh && mesh->mode == M_STRICT;
    if (nsp && nsp->mode != M_UNSET)
        strict = nsp->mode == M_STRICT;
    *wl = NULL;
    if (!w)
        return strict;
    if (w->mode == M_STRICT)
        strict = true;
    if (w->mode == M_PERMISSIVE || w->mode == M_DISABLE)
        strict = false;
    if (!w->n_ports)
        return strict;
    switch (w->mode) {
    case M_STRICT:
        if (any_port(w, M_PERMISSIVE, M_DISABLE)) {
            *wl = w;
            strict = false;
        }
        break;
    case M_PERMISSIVE:
    case M_DISABLE:
        if (any_port(w, M_STRICT, -1))
            *wl = w;
        break;
    default:
        if (strict) {
            if (any_port(w, M_PERMISSIVE, -1)) {
                *wl = w;
                strict = false;
            }
        } else {
            strict = false;
            if (any_port(w, M_STRICT, -1))
                *wl = w;
        }
    }
    return strict;
}

void mc_proj_peer_authentications(mc_proj_t *pj)
{
    const mc_model_t *m = pj->m;
    size_t n = 0;
    for (size_t i = 0; i < m->n_objects; i++)
        n += m->objects[i].kind == MC_KIND_PEER_AUTHENTICATION;
    pa_t *pas = n ? calloc(n, sizeof(*pas)) : NULL;
    /* Index in pj->set->policies of each PA's converted policy, or -1. */
    long *conv = n ? calloc(n, sizeof(*conv)) : NULL;
    if (n && (!pas || !conv)) {
        pj->err = -ENOMEM;
        goto out;
    }
    size_t k = 0;
    for (size_t i = 0; i < m->n_objects && !pj->err; i++)
        if (m->objects[i].kind == MC_KIND_PEER_AUTHENTICATION)
            if (load_pa(pj, &m->objects[i], &pas[k++]) < 0)
                pj->err = -ENOMEM;
    const pa_t *root_cfg = oldest_unselected(pas, n, MC_ROOT_NAMESPACE);
    for (size_t i = 0; i < n && !pj->err; i++) {
        const pa_t *ns_cfg = oldest_unselected(pas, n, pas[i].o->meta.ns);
        conv[i] = convert(pj, &pas[i], ns_cfg, root_cfg) ? (long)pj->set->n - 1 : -1;
    }
    long strict_idx = -1;
    for (size_t i = 0; i < m->n_pods && !pj->err; i++) {
        const mc_pod_t *pod = &m->pods[i];
        const pa_t *wl = NULL;
        if (effective(pas, n, pod, &wl)) {
            if (strict_idx < 0) {
                zm_config_policy_t *p =
                    mc_proj_add(pj, MC_ROOT_NAMESPACE, MC_STATIC_STRICT_POLICY,
                                ZM_CONFIG_SCOPE_WORKLOAD, ZM_CONFIG_ACTION_DENY);
                zm_config_rule_t *r = p ? mc_proj_rule(pj, p) : NULL;
                if (r)
                    add_port_rule(pj, r, true, NULL, false);
                strict_idx = (long)pj->set->n - 1;
            }
            if (!pj->err)
                mc_proj_workload(pj, &pj->set->policies[strict_idx], pod);
        }
        if (wl && conv[wl - pas] >= 0 && !pj->err)
            mc_proj_workload(pj, &pj->set->policies[conv[wl - pas]], pod);
    }
out:
    for (size_t i = 0; pas && i < n; i++)
        free(pas[i].ports);
    free(pas);
    free(conv);
}
