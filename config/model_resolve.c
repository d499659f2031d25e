/*
 * model_resolve.c — mc_model_resolve: everything derived from the objects.
 *
 * Determinism is the invariant: each step walks arrays sorted by
 * (namespace, name) and allocates from counters, so the same input always
 * gives the same nodes, addresses and endpoints. Order of the steps:
 * implicit namespaces, nodes, waypoint pseudo pods (after regular pods, so
 * adding a waypoint never moves a regular pod), node placement
 * (round-robin), pod IPs (10.244.<node>.10.. skipping given ones), cluster
 * IPs (10.96.0.10.. skipping given ones), identities, ambient flags,
 * waypoints, endpoints. Cross pointers are set only once no array can grow
 * again.
 */
#include "model_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POD_NET 0x0af40000u      /* 10.244.0.0 */
#define SERVICE_NET 0x0a60000au  /* 10.96.0.10, the first allocated cluster IP */
#define SERVICE_LAST 0x0a6ffffeu /* 10.111.255.254: end of 10.96.0.0/12 */
#define FIRST_HOST 10u
#define LAST_HOST 254u

static int oom(zm_err_t *err)
{
    zm_err_set(err, NULL, 0, "out of memory");
    return -ENOMEM;
}

static int u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static bool used(const uint32_t *set, size_t n, uint32_t ip)
{
    return bsearch(&ip, set, n, sizeof(ip), u32_cmp) != NULL;
}

/* qsort that accepts an empty (possibly NULL) array. */
static void sort(void *base, size_t n, size_t elem, int (*cmp)(const void *, const void *))
{
    if (n > 1)
        qsort(base, n, elem, cmp);
}

static int meta_cmp_q(const void *a, const void *b)
{
    return mc_meta_cmp(a, b);
}

static bool has_namespace(const mc_model_t *m, const char *ns)
{
    for (size_t i = 0; i < m->n_namespaces; i++)
        if (strcmp(m->namespaces[i].meta.name, ns) == 0)
            return true;
    return false;
}

static int add_implicit(mc_model_t *m, const char *ns)
{
    if (ns[0] == 0 || has_namespace(m, ns))
        return 0;
    mc_namespace_t *n = MC_PUSH(m, namespaces, CAP_NS);
    if (n == NULL)
        return -ENOMEM;
    n->meta.name = ns;
    n->meta.ns = "";
    n->implicit = true;
    return 0;
}

static int implicit_namespaces(mc_model_t *m)
{
    int rc = 0;
    for (size_t i = 0; i < m->n_pods && rc == 0; i++)
        rc = add_implicit(m, m->pods[i].meta.ns);
    for (size_t i = 0; i < m->n_services && rc == 0; i++)
        rc = add_implicit(m, m->services[i].meta.ns);
    for (size_t i = 0; i < m->n_service_accounts && rc == 0; i++)
        rc = add_implicit(m, m->service_accounts[i].meta.ns);
    for (size_t i = 0; i < m->n_gateways && rc == 0; i++)
        rc = add_implicit(m, m->gateways[i].meta.ns);
    for (size_t i = 0; i < m->n_objects && rc == 0; i++)
        rc = add_implicit(m, m->objects[i].meta.ns);
    if (rc == 0)
        sort(m->namespaces, m->n_namespaces, sizeof(*m->namespaces), meta_cmp_q);
    return rc;
}

static int node_count(mc_model_t *m, const mc_resolve_opts_t *opts, zm_err_t *err)
{
    if (opts && opts->nodes > 0) {
        if (opts->nodes > MC_MAX_NODES)
            return zm_err_set(err, NULL, 0, "nodes: %d is over the limit of %d", opts->nodes,
                              MC_MAX_NODES);
        return opts->nodes;
    }
    int n = 0;
    const mc_namespace_t *from = NULL;
    for (size_t i = 0; i < m->n_namespaces; i++) {
        const mc_namespace_t *ns = &m->namespaces[i];
        const char *v = mc_labels_get(&ns->meta.annotations, MC_ANNOTATION_NODES);
        if (v == NULL)
            continue;
        char *end;
        long k = strtol(v, &end, 10);
        if (*v == 0 || *end != 0 || k < 1 || k > MC_MAX_NODES)
            return zm_err_set(err, ns->meta.file, ns->meta.line,
                              "Namespace %s: annotation %s: \"%s\" is not a node count 1..%d",
                              ns->meta.name, MC_ANNOTATION_NODES, v, MC_MAX_NODES);
        if (from == NULL) {
            n = (int)k;
            from = ns;
        } else if (k != n) {
            int rc = mc_model_warn(m, ns->meta.file, ns->meta.line,
                                   "Namespace %s: %s=%ld ignored, Namespace %s set %d first",
                                   ns->meta.name, MC_ANNOTATION_NODES, k, from->meta.name, n);
            if (rc < 0)
                return oom(err);
        }
    }
    return n ? n : MC_DEFAULT_NODES;
}

static int add_node(mc_model_t *m, const char *name, zm_err_t *err)
{
    if (m->n_nodes >= MC_MAX_NODES)
        return zm_err_set(err, NULL, 0, "more than %d nodes", MC_MAX_NODES);
    mc_node_t *n = MC_PUSH(m, nodes, CAP_NODE);
    if (n == NULL)
        return oom(err);
    n->name = name;
    n->index = (int)m->n_nodes;
    n->subnet = POD_NET | ((uint32_t)n->index << 8);
    char ip[16];
    mc_ipv4_format(n->subnet, ip);
    snprintf(n->cidr, sizeof(n->cidr), "%s/24", ip);
    return 0;
}

static int make_nodes(mc_model_t *m, const mc_resolve_opts_t *opts, zm_err_t *err)
{
    int count = node_count(m, opts, err);
    if (count < 0)
        return count;
    for (int i = 1; i <= count; i++) {
        char *name = mc_arena_printf(&m->_yaml->arena, "node-%d", i);
        if (name == NULL)
            return oom(err);
        int rc = add_node(m, name, err);
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; i < m->n_pods; i++) {
        const mc_pod_t *p = &m->pods[i];
        if (p->given_node && mc_model_find_node(m, p->given_node) == NULL) {
            int rc = add_node(m, p->given_node, err);
            if (rc < 0)
                return rc == -EINVAL ? zm_err_set(err, p->meta.file, p->meta.line,
                                                  "Pod %s/%s: spec.nodeName: more than %d nodes",
                                                  p->meta.ns, p->meta.name, MC_MAX_NODES)
                                     : rc;
        }
    }
    return 0;
}

/* A pseudo pod per waypoint Gateway, appended after the regular pods. */
static int waypoint_pods(mc_model_t *m, zm_err_t *err)
{
    for (size_t i = 0; i < m->n_gateways; i++) {
        const mc_gateway_t *gw = &m->gateways[i];
        if (!gw->is_waypoint)
            continue;
        const mc_pod_t *clash = NULL;
        for (size_t j = 0; j < m->n_pods && !clash; j++)
            if (strcmp(m->pods[j].meta.ns, gw->meta.ns) == 0 &&
                strcmp(m->pods[j].meta.name, gw->meta.name) == 0)
                clash = &m->pods[j];
        if (clash)
            return zm_err_set(err, gw->meta.file, gw->meta.line,
                              "Gateway %s/%s: its waypoint pod would clash with Pod %s/%s (%s:%d)",
                              gw->meta.ns, gw->meta.name, clash->meta.ns, clash->meta.name,
                              clash->meta.file, clash->meta.line);
        mc_kv_t *kv = mc_arena_alloc(&m->_yaml->arena, sizeof(*kv));
        mc_container_port_t *port = mc_arena_alloc(&m->_yaml->arena, sizeof(*port));
        mc_pod_t *p = MC_PUSH(m, pods, CAP_POD);
        if (kv == NULL || port == NULL || p == NULL)
            return oom(err);
        *kv = (mc_kv_t){"gateway.networking.k8s.io/gateway-name", gw->meta.name};
        *port = (mc_container_port_t){"hbone", MC_HBONE_PORT, "TCP"};
        p->meta = gw->meta;
        p->meta.labels = (mc_labels_t){kv, 1};
        p->meta.annotations = (mc_labels_t){0};
        p->service_account = gw->meta.name; /* Istio's waypoint SA is the gateway's name */
        p->ports = port;
        p->n_ports = 1;
        p->gateway = gw;
    }
    return 0;
}

static int place_and_address(mc_model_t *m, zm_err_t *err)
{
    uint32_t *given = m->n_pods ? calloc(m->n_pods, sizeof(*given)) : NULL;
    size_t n_given = 0;
    if (m->n_pods && given == NULL)
        return oom(err);
    for (size_t i = 0; i < m->n_pods; i++)
        if (m->pods[i].given_ip)
            given[n_given++] = m->pods[i].ip;
    sort(given, n_given, sizeof(*given), u32_cmp);
    int rc = 0;
    for (size_t i = 1; i < n_given; i++) {
        if (given[i] != given[i - 1])
            continue;
        const mc_pod_t *a = NULL, *b = NULL;
        for (size_t j = 0; j < m->n_pods; j++) {
            if (m->pods[j].given_ip && m->pods[j].ip == given[i]) {
                if (a == NULL)
                    a = &m->pods[j];
                else if (b == NULL)
                    b = &m->pods[j];
            }
        }
        rc = zm_err_set(err, b->meta.file, b->meta.line,
                        "Pod %s/%s: status.podIP %s is already used by Pod %s/%s", b->meta.ns,
                        b->meta.name, b->given_ip, a->meta.ns, a->meta.name);
        break;
    }
    uint32_t *next = calloc(m->n_nodes, sizeof(*next));
    if (next == NULL && rc == 0)
        rc = oom(err);
    size_t rr = 0;
    for (size_t i = 0; i < m->n_pods && rc == 0; i++) {
        mc_pod_t *p = &m->pods[i];
        const mc_node_t *node =
            p->given_node ? mc_model_find_node(m, p->given_node) : &m->nodes[rr++ % m->n_nodes];
        size_t k = (size_t)(node - m->nodes);
        p->node = node;
        m->nodes[k].n_pods++;
        if (p->given_ip == NULL) {
            if (next[k] == 0)
                next[k] = FIRST_HOST;
            while (next[k] <= LAST_HOST && used(given, n_given, node->subnet | next[k]))
                next[k]++;
            if (next[k] > LAST_HOST) {
                rc = zm_err_set(err, p->meta.file, p->meta.line,
                                "Pod %s/%s: no address left in %s (node %s)", p->meta.ns,
                                p->meta.name, node->cidr, node->name);
                break;
            }
            p->ip = node->subnet | next[k]++;
        }
        mc_ipv4_format(p->ip, p->ip_str);
    }
    free(next);
    free(given);
    return rc;
}

static int cluster_ips(mc_model_t *m, zm_err_t *err)
{
    uint32_t *given = m->n_services ? calloc(m->n_services, sizeof(*given)) : NULL;
    size_t n_given = 0;
    if (m->n_services && given == NULL)
        return oom(err);
    int rc = 0;
    for (size_t i = 0; i < m->n_services && rc == 0; i++) {
        mc_service_t *s = &m->services[i];
        s->headless = s->given_cluster_ip && strcmp(s->given_cluster_ip, "None") == 0;
        if (s->given_cluster_ip == NULL || s->headless)
            continue;
        for (size_t j = 0; j < n_given && rc == 0; j++)
            if (given[j] == s->cluster_ip)
                rc = zm_err_set(err, s->meta.file, s->meta.line,
                                "Service %s/%s: spec.clusterIP %s is already used", s->meta.ns,
                                s->meta.name, s->given_cluster_ip);
        given[n_given++] = s->cluster_ip;
    }
    sort(given, n_given, sizeof(*given), u32_cmp);
    uint32_t next = SERVICE_NET;
    for (size_t i = 0; i < m->n_services && rc == 0; i++) {
        mc_service_t *s = &m->services[i];
        if (s->headless) {
            s->cluster_ip = 0;
            continue;
        }
        if (s->given_cluster_ip == NULL) {
            while (next <= SERVICE_LAST && used(given, n_given, next))
                next++;
            if (next > SERVICE_LAST) {
                rc = zm_err_set(err, s->meta.file, s->meta.line,
                                "Service %s/%s: no cluster IP left", s->meta.ns, s->meta.name);
                break;
            }
            s->cluster_ip = next++;
        }
        mc_ipv4_format(s->cluster_ip, s->cluster_ip_str);
    }
    free(given);
    return rc;
}

/* The waypoint an object's labels ask for: *out NULL when none. *labelled
 * says the object has its own use-waypoint label (a name, or "none" to opt
 * out), which then wins over its namespace's even when the named Gateway
 * is unknown: falling back would route through a waypoint nobody asked
 * for. Unknown or non-waypoint Gateways warn. */
static int waypoint_of(mc_model_t *m, const mc_meta_t *meta, const char *what, const char *ns,
                       const mc_gateway_t **out, bool *labelled)
{
    const char *name = mc_labels_get(&meta->labels, MC_LABEL_USE_WAYPOINT);
    const char *wns = mc_labels_get(&meta->labels, MC_LABEL_USE_WAYPOINT_NS);
    *out = NULL;
    *labelled = name != NULL;
    if (name == NULL || strcmp(name, "none") == 0)
        return 0;
    if (wns == NULL || wns[0] == 0)
        wns = ns;
    const mc_gateway_t *gw = mc_model_find_gateway(m, wns, name);
    const char *why = gw == NULL         ? "not found"
                      : !gw->is_waypoint ? "is not of class " MC_WAYPOINT_CLASS
                                         : NULL;
    if (why) {
        char who[300];
        if (meta->ns[0])
            snprintf(who, sizeof(who), "%s %s/%s", what, meta->ns, meta->name);
        else
            snprintf(who, sizeof(who), "%s %s", what, meta->name);
        return mc_model_warn(m, meta->file, meta->line, "%s: waypoint %s/%s %s (ignored)", who, wns,
                             name, why);
    }
    *out = gw;
    return 0;
}

static int enroll(mc_model_t *m, const mc_resolve_opts_t *opts, zm_err_t *err)
{
    const char *td = opts && opts->trust_domain ? opts->trust_domain : MC_DEFAULT_TRUST_DOMAIN;
    m->trust_domain = mc_arena_strdup(&m->_yaml->arena, td);
    if (m->trust_domain == NULL)
        return oom(err);
    bool labelled;
    for (size_t i = 0; i < m->n_namespaces; i++) {
        mc_namespace_t *ns = &m->namespaces[i];
        if (waypoint_of(m, &ns->meta, "Namespace", ns->meta.name, &ns->waypoint, &labelled) < 0)
            return oom(err);
    }
    for (size_t i = 0; i < m->n_pods; i++) {
        mc_pod_t *p = &m->pods[i];
        p->identity = mc_arena_printf(&m->_yaml->arena, "spiffe://%s/ns/%s/sa/%s", td, p->meta.ns,
                                      p->service_account);
        if (p->identity == NULL)
            return oom(err);
        if (p->gateway != NULL) {
            ((mc_gateway_t *)p->gateway)->pod = p;
            continue; /* a waypoint is a proxy: neither captured nor behind a waypoint */
        }
        const mc_namespace_t *ns = mc_model_find_namespace(m, p->meta.ns);
        const char *mode = mc_labels_get(&p->meta.labels, MC_LABEL_DATAPLANE_MODE);
        p->ambient = mode ? strcmp(mode, "ambient") == 0 : ns && ns->ambient;
        if (waypoint_of(m, &p->meta, "Pod", p->meta.ns, &p->waypoint, &labelled) < 0)
            return oom(err);
        if (p->waypoint == NULL && !labelled && ns)
            p->waypoint = ns->waypoint;
    }
    for (size_t i = 0; i < m->n_services; i++) {
        mc_service_t *s = &m->services[i];
        if (waypoint_of(m, &s->meta, "Service", s->meta.ns, &s->waypoint, &labelled) < 0)
            return oom(err);
        const mc_namespace_t *ns = mc_model_find_namespace(m, s->meta.ns);
        if (s->waypoint == NULL && !labelled && ns)
            s->waypoint = ns->waypoint;
    }
    return 0;
}

static uint16_t target_for(const mc_service_port_t *sp, const mc_pod_t *p)
{
    if (sp->target_port_name == NULL)
        return sp->target_port;
    for (size_t i = 0; i < p->n_ports; i++)
        if (p->ports[i].name && strcmp(p->ports[i].name, sp->target_port_name) == 0)
            return p->ports[i].port;
    return 0;
}

static int endpoints(mc_model_t *m, zm_err_t *err)
{
    for (size_t i = 0; i < m->n_services; i++) {
        mc_service_t *s = &m->services[i];
        if (s->selector.n == 0)
            continue;
        for (size_t j = 0; j < s->n_ports; j++) {
            mc_service_port_t *sp = (mc_service_port_t *)&s->ports[j];
            size_t n = 0;
            for (int pass = 0; pass < 2; pass++) {
                mc_endpoint_t *eps = NULL;
                if (pass == 1) {
                    if (n == 0)
                        break;
                    eps = mc_arena_alloc(&m->_yaml->arena, n * sizeof(*eps));
                    if (eps == NULL)
                        return oom(err);
                    sp->endpoints = eps;
                    sp->n_endpoints = n;
                    n = 0;
                }
                for (size_t k = 0; k < m->n_pods; k++) {
                    const mc_pod_t *p = &m->pods[k];
                    if (p->gateway || strcmp(p->meta.ns, s->meta.ns) != 0 ||
                        !mc_labels_match(&s->selector, &p->meta.labels))
                        continue;
                    uint16_t port = target_for(sp, p);
                    if (port == 0)
                        continue;
                    if (eps)
                        eps[n] = (mc_endpoint_t){p, port};
                    n++;
                }
            }
        }
    }
    return 0;
}

static int object_cmp(const void *pa, const void *pb)
{
    const mc_object_t *a = pa, *b = pb;
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    return mc_meta_cmp(&a->meta, &b->meta);
}

int mc_model_resolve(mc_model_t *m, const mc_resolve_opts_t *opts, zm_err_t *err)
{
    if (m->resolved)
        return zm_err_set(err, NULL, 0, "model already resolved"), -EALREADY;
    int rc;
    if (implicit_namespaces(m) < 0)
        return oom(err);
    /* Regular pods are sorted by load; waypoint pods go after them so that
     * placement and addresses of regular pods do not depend on waypoints. */
    size_t n_regular = m->n_pods;
    if ((rc = make_nodes(m, opts, err)) < 0 || (rc = waypoint_pods(m, err)) < 0)
        return rc;
    if (m->n_pods > n_regular)
        sort(m->pods + n_regular, m->n_pods - n_regular, sizeof(*m->pods), meta_cmp_q);
    if ((rc = place_and_address(m, err)) < 0 || (rc = cluster_ips(m, err)) < 0)
        return rc;
    sort(m->pods, m->n_pods, sizeof(*m->pods), meta_cmp_q);
    if ((rc = enroll(m, opts, err)) < 0 || (rc = endpoints(m, err)) < 0)
        return rc;
    sort(m->objects, m->n_objects, sizeof(*m->objects), object_cmp);
    m->resolved = true;
    return 0;
}
