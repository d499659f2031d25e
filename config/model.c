/*
 * model.c — loading YAML documents into the typed model: the document walk,
 * kind dispatch (by apiVersion group and kind), metadata, the small kinds
 * (Namespace, ServiceAccount, Gateway, raw Istio / Gateway API objects),
 * duplicate detection, lookups and freeing. Pods, Deployments and Services
 * live in model_k8s.c; mc_model_resolve in model_resolve.c.
 *
 * Invariant: a load either returns a complete model or frees everything it
 * built; the model's strings point into the YAML set's arena, which the
 * model owns.
 */
#include "model_int.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LIST_DEPTH 4

typedef struct kind_entry {
    const char *group; /* "" is the core group (apiVersion "v1") */
    const char *name;
    mc_kind_t kind;
} kind_entry_t;

static const kind_entry_t kinds[] = {
    {"", "Namespace", MC_KIND_NAMESPACE},
    {"", "Pod", MC_KIND_POD},
    {"", "Service", MC_KIND_SERVICE},
    {"", "ServiceAccount", MC_KIND_SERVICE_ACCOUNT},
    {"", "List", MC_KIND_LIST},
    {"apps", "Deployment", MC_KIND_DEPLOYMENT},
    {"gateway.networking.k8s.io", "Gateway", MC_KIND_GATEWAY},
    {"gateway.networking.k8s.io", "GatewayClass", MC_KIND_GATEWAY_CLASS},
    {"gateway.networking.k8s.io", "HTTPRoute", MC_KIND_HTTP_ROUTE},
    {"gateway.networking.k8s.io", "GRPCRoute", MC_KIND_GRPC_ROUTE},
    {"gateway.networking.k8s.io", "TCPRoute", MC_KIND_TCP_ROUTE},
    {"gateway.networking.k8s.io", "TLSRoute", MC_KIND_TLS_ROUTE},
    {"gateway.networking.k8s.io", "ReferenceGrant", MC_KIND_REFERENCE_GRANT},
    {"networking.istio.io", "VirtualService", MC_KIND_VIRTUAL_SERVICE},
    {"networking.istio.io", "DestinationRule", MC_KIND_DESTINATION_RULE},
    {"networking.istio.io", "Gateway", MC_KIND_ISTIO_GATEWAY},
    {"networking.istio.io", "ServiceEntry", MC_KIND_SERVICE_ENTRY},
    {"networking.istio.io", "Sidecar", MC_KIND_SIDECAR},
    {"security.istio.io", "PeerAuthentication", MC_KIND_PEER_AUTHENTICATION},
    {"security.istio.io", "AuthorizationPolicy", MC_KIND_AUTHORIZATION_POLICY},
    {"security.istio.io", "RequestAuthentication", MC_KIND_REQUEST_AUTHENTICATION},
    {"telemetry.istio.io", "Telemetry", MC_KIND_TELEMETRY},
};

const char *mc_kind_name(mc_kind_t kind)
{
    for (size_t i = 0; i < ZM_ARRAY_LEN(kinds); i++)
        if (kinds[i].kind == kind)
            return kinds[i].name;
    return "Unknown";
}

void *mc_model_push(mc_model_t *m, void **arr, size_t *n, int cap_idx, size_t elem)
{
    size_t *cap = &m->_cap[cap_idx];
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        void *p = realloc(*arr, nc * elem);
        if (p == NULL)
            return NULL;
        *arr = p;
        *cap = nc;
    }
    void *e = (char *)*arr + *n * elem;
    memset(e, 0, elem);
    (*n)++;
    return e;
}

int mc_load_fail(mc_load_t *l, const mc_yaml_node_t *at, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    const char *file = at ? at->file : NULL;
    int line = at ? at->line : 0;
    if (l->name && l->ns && l->ns[0])
        return zm_err_set(l->err, file, line, "%s %s/%s: %s", l->kind, l->ns, l->name, msg);
    if (l->name)
        return zm_err_set(l->err, file, line, "%s %s: %s", l->kind, l->name, msg);
    return zm_err_set(l->err, file, line, "%s: %s", l->kind, msg);
}

int mc_model_warn(mc_model_t *m, const char *file, int line, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    mc_warning_t *w = MC_PUSH(m, warnings, CAP_WARN);
    if (w == NULL || (w->msg = mc_arena_strdup(&m->_yaml->arena, msg)) == NULL)
        return -ENOMEM;
    w->file = file;
    w->line = line;
    return 0;
}

const char *mc_warning_str(const mc_warning_t *w, char *buf, size_t len)
{
    if (w->file && w->line > 0)
        snprintf(buf, len, "%s:%d: warning: %s", w->file, w->line, w->msg);
    else
        snprintf(buf, len, "warning: %s", w->msg);
    return buf;
}

int mc_load_opt_str(mc_load_t *l, const mc_yaml_node_t *node, const char *field, const char **out)
{
    *out = NULL;
    if (node == NULL || node->kind == MC_YAML_NULL)
        return 0;
    if (node->kind != MC_YAML_SCALAR)
        return mc_load_fail(l, node, "%s: must be a string, not a %s", field,
                            mc_yaml_kind_name(node));
    *out = node->str;
    return 0;
}

int mc_load_port(mc_load_t *l, const mc_yaml_node_t *node, const char *field, uint16_t *out)
{
    long long v;
    if (mc_yaml_int(node, &v) < 0)
        return mc_load_fail(l, node, "%s: must be an integer, not %s%s%s", field,
                            node->kind == MC_YAML_SCALAR ? "\"" : "a ",
                            node->kind == MC_YAML_SCALAR ? node->str : mc_yaml_kind_name(node),
                            node->kind == MC_YAML_SCALAR ? "\"" : "");
    if (v < 1 || v > 65535)
        return mc_load_fail(l, node, "%s: %lld is out of range 1..65535", field, v);
    *out = (uint16_t)v;
    return 0;
}

static int kv_cmp(const void *a, const void *b)
{
    return strcmp(((const mc_kv_t *)a)->key, ((const mc_kv_t *)b)->key);
}

int mc_load_labels(mc_load_t *l, const mc_yaml_node_t *node, const char *field, mc_labels_t *out)
{
    *out = (mc_labels_t){0};
    if (node == NULL || node->kind == MC_YAML_NULL)
        return 0;
    if (node->kind != MC_YAML_MAP)
        return mc_load_fail(l, node, "%s: must be a map, not a %s", field, mc_yaml_kind_name(node));
    if (node->n == 0)
        return 0;
    mc_kv_t *kv = mc_arena_alloc(l->a, node->n * sizeof(*kv));
    if (kv == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < node->n; i++) {
        const mc_yaml_node_t *v = node->pairs[i].value;
        if (v->kind == MC_YAML_MAP || v->kind == MC_YAML_SEQ)
            return mc_load_fail(l, v, "%s.%s: must be a string, not a %s", field,
                                node->pairs[i].key->str, mc_yaml_kind_name(v));
        kv[i].key = node->pairs[i].key->str;
        kv[i].value = v->kind == MC_YAML_NULL ? "" : v->str;
    }
    qsort(kv, node->n, sizeof(*kv), kv_cmp);
    *out = (mc_labels_t){kv, node->n};
    return 0;
}

const char *mc_labels_get(const mc_labels_t *labels, const char *key)
{
    size_t lo = 0, hi = labels->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(labels->items[mid].key, key);
        if (c == 0)
            return labels->items[mid].value;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

bool mc_labels_match(const mc_labels_t *selector, const mc_labels_t *labels)
{
    for (size_t i = 0; i < selector->n; i++) {
        const char *v = mc_labels_get(labels, selector->items[i].key);
        if (v == NULL || strcmp(v, selector->items[i].value) != 0)
            return false;
    }
    return true;
}

/* DNS-1123-ish: lowercase alphanumerics, '-' and '.', alphanumeric ends. */
static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool an = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!an && ((c != '-' && c != '.') || i == 0 || i == n - 1))
            return false;
    }
    return true;
}

int mc_load_meta(mc_load_t *l, const mc_yaml_node_t *obj, bool cluster_scoped, mc_meta_t *meta)
{
    const mc_yaml_node_t *md = mc_yaml_get(obj, "metadata");
    meta->file = obj->file;
    meta->line = obj->line;
    meta->_seq = l->seq++;
    if (md == NULL || md->kind == MC_YAML_NULL)
        return mc_load_fail(l, obj, "metadata.name is required");
    if (md->kind != MC_YAML_MAP)
        return mc_load_fail(l, md, "metadata: must be a map, not a %s", mc_yaml_kind_name(md));
    const mc_yaml_node_t *name = mc_yaml_get(md, "name");
    if (name == NULL || name->kind == MC_YAML_NULL)
        return mc_load_fail(l, md, "metadata.name is required");
    if (name->kind != MC_YAML_SCALAR)
        return mc_load_fail(l, name, "metadata.name: must be a string, not a %s",
                            mc_yaml_kind_name(name));
    if (!valid_name(name->str))
        return mc_load_fail(l, name,
                            "metadata.name: \"%s\" is not a valid name (lowercase letters, "
                            "digits, '-' and '.')",
                            name->str);
    meta->name = name->str;
    l->name = meta->name;
    meta->ns = cluster_scoped ? "" : "default";
    int rc;
    const char *ns;
    if (!cluster_scoped) {
        const mc_yaml_node_t *nsn = mc_yaml_get(md, "namespace");
        if ((rc = mc_load_opt_str(l, nsn, "metadata.namespace", &ns)) < 0)
            return rc;
        if (ns != NULL && !valid_name(ns))
            return mc_load_fail(l, nsn, "metadata.namespace: \"%s\" is not a valid name", ns);
        if (ns != NULL)
            meta->ns = ns;
    }
    l->ns = meta->ns;
    if ((rc = mc_load_labels(l, mc_yaml_get(md, "labels"), "metadata.labels", &meta->labels)) < 0)
        return rc;
    return mc_load_labels(l, mc_yaml_get(md, "annotations"), "metadata.annotations",
                          &meta->annotations);
}

static int load_namespace(mc_load_t *l, const mc_yaml_node_t *obj)
{
    mc_namespace_t *ns = MC_PUSH(l->m, namespaces, CAP_NS);
    if (ns == NULL)
        return -ENOMEM;
    int rc = mc_load_meta(l, obj, true, &ns->meta);
    if (rc < 0)
        return rc;
    const char *mode = mc_labels_get(&ns->meta.labels, MC_LABEL_DATAPLANE_MODE);
    ns->ambient = mode && strcmp(mode, "ambient") == 0;
    return 0;
}

static int load_service_account(mc_load_t *l, const mc_yaml_node_t *obj)
{
    mc_service_account_t *sa = MC_PUSH(l->m, service_accounts, CAP_SA);
    return sa ? mc_load_meta(l, obj, false, &sa->meta) : -ENOMEM;
}

static int load_gateway(mc_load_t *l, const mc_yaml_node_t *obj)
{
    mc_gateway_t *gw = MC_PUSH(l->m, gateways, CAP_GW);
    if (gw == NULL)
        return -ENOMEM;
    int rc = mc_load_meta(l, obj, false, &gw->meta);
    if (rc < 0)
        return rc;
    gw->spec = mc_yaml_get(obj, "spec");
    const mc_yaml_node_t *cls = mc_yaml_path(obj, "spec.gatewayClassName");
    if (cls == NULL || cls->kind == MC_YAML_NULL)
        return mc_load_fail(l, gw->spec ? gw->spec : obj, "spec.gatewayClassName is required");
    if ((rc = mc_load_opt_str(l, cls, "spec.gatewayClassName", &gw->class_name)) < 0)
        return rc;
    gw->is_waypoint = strcmp(gw->class_name, MC_WAYPOINT_CLASS) == 0;
    return 0;
}

static int load_raw(mc_load_t *l, const mc_yaml_node_t *obj, mc_kind_t kind, const char *kname,
                    const char *api)
{
    mc_object_t *o = MC_PUSH(l->m, objects, CAP_OBJ);
    if (o == NULL)
        return -ENOMEM;
    o->kind = kind;
    o->kind_name = kname;
    o->api_version = api;
    o->root = obj;
    o->spec = mc_yaml_get(obj, "spec");
    return mc_load_meta(l, obj, kind == MC_KIND_GATEWAY_CLASS, &o->meta);
}

static int load_object(mc_load_t *l, const mc_yaml_node_t *obj, int list_depth);

static int load_list(mc_load_t *l, const mc_yaml_node_t *obj, int list_depth)
{
    const mc_yaml_node_t *items = mc_yaml_get(obj, "items");
    if (items == NULL || items->kind == MC_YAML_NULL)
        return 0;
    if (items->kind != MC_YAML_SEQ)
        return mc_load_fail(l, items, "items: must be a sequence, not a %s",
                            mc_yaml_kind_name(items));
    if (list_depth >= MAX_LIST_DEPTH)
        return mc_load_fail(l, obj, "Lists nested deeper than %d levels", MAX_LIST_DEPTH);
    for (size_t i = 0; i < items->n; i++) {
        int rc = load_object(l, items->items[i], list_depth + 1);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int load_object(mc_load_t *l, const mc_yaml_node_t *obj, int list_depth)
{
    l->kind = "object";
    l->ns = l->name = NULL;
    if (obj->kind != MC_YAML_MAP)
        return zm_err_set(l->err, obj->file, obj->line, "an object must be a map, not a %s",
                          mc_yaml_kind_name(obj));
    const mc_yaml_node_t *kn = mc_yaml_get(obj, "kind"), *an = mc_yaml_get(obj, "apiVersion");
    if (kn == NULL || kn->kind != MC_YAML_SCALAR || kn->len == 0)
        return zm_err_set(l->err, obj->file, kn ? kn->line : obj->line,
                          "kind is required (a string)");
    if (an == NULL || an->kind != MC_YAML_SCALAR || an->len == 0)
        return zm_err_set(l->err, obj->file, an ? an->line : obj->line,
                          "%s: apiVersion is required (a string)", kn->str);
    const char *slash = strchr(an->str, '/');
    size_t glen = slash ? (size_t)(slash - an->str) : 0;
    const kind_entry_t *k = NULL;
    bool known_name = false;
    for (size_t i = 0; i < ZM_ARRAY_LEN(kinds) && k == NULL; i++) {
        if (strcmp(kinds[i].name, kn->str) != 0)
            continue;
        known_name = true;
        if (strlen(kinds[i].group) == glen && strncmp(kinds[i].group, an->str, glen) == 0)
            k = &kinds[i];
    }
    if (k == NULL) {
        if (known_name)
            return mc_model_warn(l->m, obj->file, obj->line, "unknown kind %s in %s (ignored)",
                                 kn->str, an->str);
        return mc_model_warn(l->m, obj->file, obj->line, "unknown kind %s (ignored)", kn->str);
    }
    l->kind = k->name;
    switch (k->kind) {
    case MC_KIND_LIST:
        return load_list(l, obj, list_depth);
    case MC_KIND_NAMESPACE:
        return load_namespace(l, obj);
    case MC_KIND_POD:
        return mc_load_pod(l, obj);
    case MC_KIND_DEPLOYMENT:
        return mc_load_deployment(l, obj);
    case MC_KIND_SERVICE:
        return mc_load_service(l, obj);
    case MC_KIND_SERVICE_ACCOUNT:
        return load_service_account(l, obj);
    case MC_KIND_GATEWAY:
        return load_gateway(l, obj);
    default:
        return load_raw(l, obj, k->kind, k->name, an->str);
    }
}

int mc_meta_cmp(const mc_meta_t *a, const mc_meta_t *b)
{
    int c = strcmp(a->ns, b->ns);
    if (c == 0)
        c = strcmp(a->name, b->name);
    if (c == 0)
        c = a->_seq < b->_seq ? -1 : a->_seq > b->_seq;
    return c;
}

static int meta_qsort_cmp(const void *a, const void *b)
{
    return mc_meta_cmp(a, b);
}

static int object_cmp(const void *pa, const void *pb)
{
    const mc_object_t *a = pa, *b = pb;
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    return mc_meta_cmp(&a->meta, &b->meta);
}

/* Sorts one array (meta first in each element) and fails on the later of
 * any two objects with the same namespace and name. */
static int sort_check(mc_load_t *l, void *arr, size_t n, size_t elem, const char *kind,
                      int (*cmp)(const void *, const void *))
{
    if (n == 0)
        return 0;
    qsort(arr, n, elem, cmp);
    for (size_t i = 1; i < n; i++) {
        const mc_meta_t *a = (const mc_meta_t *)((char *)arr + (i - 1) * elem);
        const mc_meta_t *b = (const mc_meta_t *)((char *)arr + i * elem);
        if (cmp == object_cmp && ((const mc_object_t *)a)->kind != ((const mc_object_t *)b)->kind)
            continue;
        if (strcmp(a->ns, b->ns) != 0 || strcmp(a->name, b->name) != 0)
            continue;
        const char *k = cmp == object_cmp ? ((const mc_object_t *)b)->kind_name : kind;
        if (b->ns[0])
            return zm_err_set(l->err, b->file, b->line, "duplicate %s %s/%s (first at %s:%d)", k,
                              b->ns, b->name, a->file, a->line);
        return zm_err_set(l->err, b->file, b->line, "duplicate %s %s (first at %s:%d)", k, b->name,
                          a->file, a->line);
    }
    return 0;
}

static int check_duplicates(mc_load_t *l)
{
    mc_model_t *m = l->m;
    int rc;
    if ((rc = sort_check(l, m->namespaces, m->n_namespaces, sizeof(*m->namespaces), "Namespace",
                         meta_qsort_cmp)) < 0 ||
        (rc = sort_check(l, m->pods, m->n_pods, sizeof(*m->pods), "Pod", meta_qsort_cmp)) < 0 ||
        (rc = sort_check(l, m->services, m->n_services, sizeof(*m->services), "Service",
                         meta_qsort_cmp)) < 0 ||
        (rc = sort_check(l, m->service_accounts, m->n_service_accounts,
                         sizeof(*m->service_accounts), "ServiceAccount", meta_qsort_cmp)) < 0 ||
        (rc = sort_check(l, m->gateways, m->n_gateways, sizeof(*m->gateways), "Gateway",
                         meta_qsort_cmp)) < 0)
        return rc;
    return sort_check(l, m->objects, m->n_objects, sizeof(*m->objects), NULL, object_cmp);
}

static int load_docs(mc_model_t *m, zm_err_t *err)
{
    mc_load_t l = {.m = m, .a = &m->_yaml->arena, .err = err};
    for (size_t i = 0; i < m->_yaml->n_docs; i++) {
        int rc = load_object(&l, m->_yaml->docs[i].root, 0);
        if (rc == -ENOMEM)
            return zm_err_set(err, m->_yaml->docs[i].file, m->_yaml->docs[i].line, "out of memory"),
                   -ENOMEM;
        if (rc < 0)
            return rc;
    }
    return check_duplicates(&l);
}

static int model_new(mc_model_t **out, zm_err_t *err)
{
    *out = calloc(1, sizeof(**out));
    if (*out == NULL || mc_yaml_set_new(&(*out)->_yaml) < 0) {
        free(*out);
        *out = NULL;
        return zm_err_set(err, NULL, 0, "out of memory"), -ENOMEM;
    }
    return 0;
}

int mc_model_load(mc_model_t **out, const char *const *paths, size_t n, zm_err_t *err)
{
    int rc = model_new(out, err);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = mc_yaml_load_path((*out)->_yaml, paths[i], err);
    if (rc == 0)
        rc = load_docs(*out, err);
    if (rc < 0)
        mc_model_free(out);
    return rc;
}

int mc_model_load_string(mc_model_t **out, const char *name, const char *text, size_t len,
                         zm_err_t *err)
{
    int rc = model_new(out, err);
    if (rc == 0)
        rc = mc_yaml_load_string((*out)->_yaml, name, text, len, err);
    if (rc == 0)
        rc = load_docs(*out, err);
    if (rc < 0)
        mc_model_free(out);
    return rc;
}

void mc_model_free(mc_model_t **mp)
{
    if (mp == NULL || *mp == NULL)
        return;
    mc_model_t *m = *mp;
    free(m->namespaces);
    free(m->pods);
    free(m->services);
    free(m->service_accounts);
    free(m->gateways);
    free(m->objects);
    free(m->nodes);
    free(m->warnings);
    mc_yaml_set_free(&m->_yaml);
    free(m);
    *mp = NULL;
}

/* Lookup in an array whose elements start with mc_meta_t. */
static const void *find(const void *arr, size_t n, size_t elem, bool sorted, const char *ns,
                        const char *name)
{
    if (sorted) {
        size_t lo = 0, hi = n;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            const mc_meta_t *e = (const mc_meta_t *)((const char *)arr + mid * elem);
            int c = strcmp(e->ns, ns);
            if (c == 0)
                c = strcmp(e->name, name);
            if (c == 0)
                return e;
            if (c < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const mc_meta_t *e = (const mc_meta_t *)((const char *)arr + i * elem);
        if (strcmp(e->ns, ns) == 0 && strcmp(e->name, name) == 0)
            return e;
    }
    return NULL;
}

/* Arrays are sorted once loaded (duplicate check), so binary search holds
 * before and after resolve. */
const mc_namespace_t *mc_model_find_namespace(const mc_model_t *m, const char *name)
{
    return find(m->namespaces, m->n_namespaces, sizeof(*m->namespaces), true, "", name);
}

const mc_pod_t *mc_model_find_pod(const mc_model_t *m, const char *ns, const char *name)
{
    return find(m->pods, m->n_pods, sizeof(*m->pods), true, ns, name);
}

const mc_service_t *mc_model_find_service(const mc_model_t *m, const char *ns, const char *name)
{
    return find(m->services, m->n_services, sizeof(*m->services), true, ns, name);
}

const mc_gateway_t *mc_model_find_gateway(const mc_model_t *m, const char *ns, const char *name)
{
    return find(m->gateways, m->n_gateways, sizeof(*m->gateways), true, ns, name);
}

const mc_service_account_t *mc_model_find_service_account(const mc_model_t *m, const char *ns,
                                                          const char *name)
{
    return find(m->service_accounts, m->n_service_accounts, sizeof(*m->service_accounts), true, ns,
                name);
}

const mc_node_t *mc_model_find_node(const mc_model_t *m, const char *name)
{
    for (size_t i = 0; i < m->n_nodes; i++)
        if (strcmp(m->nodes[i].name, name) == 0)
            return &m->nodes[i];
    return NULL;
}

const mc_service_t *mc_model_find_host(const mc_model_t *m, const char *host, const char *ns)
{
    char buf[256];
    if (snprintf(buf, sizeof(buf), "%s", host) >= (int)sizeof(buf))
        return NULL;
    char *name = buf, *rest = strchr(buf, '.');
    if (rest == NULL)
        return mc_model_find_service(m, ns, name);
    *rest++ = 0;
    char *sns = rest;
    rest = strchr(rest, '.');
    if (rest != NULL) {
        *rest++ = 0;
        const char *td = m->trust_domain ? m->trust_domain : MC_DEFAULT_TRUST_DOMAIN;
        if (strncmp(rest, "svc", 3) != 0)
            return NULL;
        rest += 3;
        if (*rest != 0 && !(*rest == '.' && (strcmp(rest + 1, td) == 0 ||
                                             strcmp(rest + 1, MC_DEFAULT_TRUST_DOMAIN) == 0)))
            return NULL;
    }
    return mc_model_find_service(m, sns, name);
}

int mc_ipv4_parse(const char *s, uint32_t *out)
{
    struct in_addr a;
    if (inet_pton(AF_INET, s, &a) != 1)
        return -EINVAL;
    *out = ntohl(a.s_addr);
    return 0;
}

void mc_ipv4_format(uint32_t ip, char out[16])
{
    snprintf(out, 16, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
}
