/*
 * config_mesh.c — the `workloads` and `services` sections: the mesh as
 * meshctl compiles it, in the file every daemon loads.
 *
 *   workloads = ( { uid = "bookinfo/reviews-v1-0"; name = "reviews-v1-0";
 *                   namespace = "bookinfo"; service_account = "reviews";
 *                   node = "node-1"; address = "10.244.1.12";
 *                   protocol = "hbone"; kind = "pod"; waypoint = "";
 *                   canonical_name = "reviews"; canonical_revision = "v1";
 *                   labels = ( ["app", "reviews"], ["version", "v1"] ); } );
 *   services  = ( { name = "reviews"; namespace = "bookinfo";
 *                   hostname = "reviews.bookinfo.svc.cluster.local";
 *                   address = "10.96.0.12"; waypoint = "";
 *                   ports = ( { port = 9080; name = "http"; app_protocol = "http"; } );
 *                   endpoints = ( { workload = "bookinfo/reviews-v1-0";
 *                                   port = 9080; target_port = 9080; } ); } );
 *
 * Labels are pairs because label keys ("app.kubernetes.io/name") are not
 * valid libconfig names. Cross references (endpoint → workload, waypoint →
 * a waypoint workload) and uniqueness (uid, address) are checked here, so a
 * daemon never holds a snapshot that points at nothing.
 */
#include "config_schema.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

static const char *check_ip(const char *v)
{
    unsigned char buf[16];
    if (inet_pton(AF_INET, v, buf) == 1 || inet_pton(AF_INET6, v, buf) == 1)
        return NULL;
    return "must be an IPv4 or IPv6 address";
}

static const char *check_uid(const char *v)
{
    const char *slash = strchr(v, '/');
    if (!slash || slash == v || !slash[1] || strchr(slash + 1, '/'))
        return "must be '<namespace>/<name>'";
    return NULL;
}

static const char *check_ref(const char *v)
{
    return v[0] ? check_uid(v) : NULL;
}

static const char *const proto_names[] = {"hbone", "tcp", NULL};
static const char *const kind_names[] = {"pod", "waypoint", NULL};

#define WSTR(m, k, lo, d, chk) ZM_CONFIG_STR(zm_config_workload_t, m, k, lo, 253, d, 0, chk)
static const zm_config_field_t workload_fields[] = {
    WSTR(uid, "uid", 1, "", check_uid),
    WSTR(name, "name", 1, "", NULL),
    WSTR(ns, "namespace", 1, "", NULL),
    WSTR(service_account, "service_account", 1, "default", NULL),
    WSTR(node, "node", 1, "", NULL),
    WSTR(address, "address", 2, "", check_ip),
    ZM_CONFIG_ENUM(zm_config_workload_t, protocol, "protocol", proto_names, 0),
    ZM_CONFIG_ENUM(zm_config_workload_t, kind, "kind", kind_names, 0),
    WSTR(waypoint, "waypoint", 0, "", check_ref),
    WSTR(canonical_name, "canonical_name", 0, "", NULL),
    WSTR(canonical_revision, "canonical_revision", 0, "", NULL),
};
/* "labels" is parsed by hand (pairs). */

#define SSTR(m, k, lo, d, chk) ZM_CONFIG_STR(zm_config_service_t, m, k, lo, 253, d, 0, chk)
static const zm_config_field_t service_fields[] = {
    SSTR(name, "name", 1, "", NULL),
    SSTR(ns, "namespace", 1, "", NULL),
    SSTR(hostname, "hostname", 1, "", NULL),
    SSTR(address, "address", 2, "", check_ip),
    SSTR(waypoint, "waypoint", 0, "", check_ref),
};

static const zm_config_field_t port_fields[] = {
    ZM_CONFIG_UINT(zm_config_service_port_t, port, "port", 1, 65535, 0),
    ZM_CONFIG_STR(zm_config_service_port_t, name, "name", 0, 63, "", 0, NULL),
    ZM_CONFIG_STR(zm_config_service_port_t, app_protocol, "app_protocol", 0, 63, "", 0, NULL),
};

static const zm_config_field_t endpoint_fields[] = {
    ZM_CONFIG_STR(zm_config_endpoint_t, workload, "workload", 1, 253, "", 0, check_uid),
    ZM_CONFIG_UINT(zm_config_endpoint_t, port, "port", 1, 65535, 0),
    ZM_CONFIG_UINT(zm_config_endpoint_t, target_port, "target_port", 1, 65535, 0),
};

#define FIELDS(t) t, ZM_ARRAY_LEN(t)

/* Keys every element must have (their table defaults are placeholders). */
static const char *const workload_required[] = {"uid",  "name",    "namespace",
                                                "node", "address", NULL};
static const char *const service_required[] = {"name", "namespace", "hostname", "address", NULL};
static const char *const port_required[] = {"port", NULL};
static const char *const endpoint_required[] = {"workload", "port", "target_port", NULL};

static void require(zm_config_parse_t *ctx, const config_setting_t *elem, const char *where,
                    const char *const *keys)
{
    for (; keys && *keys; keys++)
        if (!config_setting_get_member(elem, *keys))
            zm_config_problem(ctx, elem, "'%s' needs '%s'", where, *keys);
}

/* Parses a list of groups into a calloc'd array of elem_size structs. */
static void *parse_list(zm_config_parse_t *ctx, const config_setting_t *s, const char *where,
                        const zm_config_field_t *fields, size_t n_fields, size_t elem_size,
                        const char *const *required, size_t *count,
                        void (*extra)(zm_config_parse_t *, const config_setting_t *, void *))
{
    *count = 0;
    if (!config_setting_is_list(s)) {
        zm_config_problem(ctx, s, "'%s' must be a list: %s = ( { ... }, ... );", where, where);
        return NULL;
    }
    int len = config_setting_length(s);
    if (len == 0)
        return NULL;
    char *arr = calloc((size_t)len, elem_size);
    if (!arr) {
        ctx->nomem = true;
        return NULL;
    }
    for (int i = 0; i < len; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        void *base = arr + (size_t)i * elem_size;
        zm_config_fields_defaults(ctx, fields, n_fields, base);
        if (!config_setting_is_group(e)) {
            zm_config_problem(ctx, e, "each element of '%s' must be a group { ... }", where);
            continue;
        }
        /* Members the field table does not know are handled by `extra`. */
        for (int j = 0; j < config_setting_length(e); j++) {
            const config_setting_t *m = config_setting_get_elem(e, (unsigned)j);
            zm_config_note_source(ctx, m);
            const zm_config_field_t *f =
                zm_config_field_find(fields, n_fields, config_setting_name(m));
            if (f)
                zm_config_field_parse(ctx, where, f, m, base);
            else if (!extra) {
                const char *known[16];
                size_t k = 0;
                for (; k < n_fields && k < ZM_ARRAY_LEN(known); k++)
                    known[k] = fields[k].key;
                zm_config_unknown_key(ctx, m, where, known, k);
            }
        }
        if (extra)
            extra(ctx, e, base);
        require(ctx, e, where, required);
    }
    *count = (size_t)len;
    return arr;
}

static void workload_extra(zm_config_parse_t *ctx, const config_setting_t *e, void *base)
{
    zm_config_workload_t *w = base;
    for (int j = 0; j < config_setting_length(e); j++) {
        const config_setting_t *m = config_setting_get_elem(e, (unsigned)j);
        const char *key = config_setting_name(m);
        if (zm_config_field_find(FIELDS(workload_fields), key))
            continue;
        if (strcmp(key, "labels") != 0) {
            const char *known[ZM_ARRAY_LEN(workload_fields) + 1];
            for (size_t k = 0; k < ZM_ARRAY_LEN(workload_fields); k++)
                known[k] = workload_fields[k].key;
            known[ZM_ARRAY_LEN(workload_fields)] = "labels";
            zm_config_unknown_key(ctx, m, "workloads", known, ZM_ARRAY_LEN(known));
            continue;
        }
        if (!config_setting_is_list(m)) {
            zm_config_problem(ctx, m, "'labels' must be a list of [\"key\", \"value\"] pairs");
            continue;
        }
        int n = config_setting_length(m);
        w->labels = n ? calloc((size_t)n, sizeof(*w->labels)) : NULL;
        if (n && !w->labels) {
            ctx->nomem = true;
            continue;
        }
        for (int i = 0; i < n; i++) {
            const config_setting_t *pair = config_setting_get_elem(m, (unsigned)i);
            const char *k = config_setting_get_string_elem(pair, 0);
            const char *v = config_setting_get_string_elem(pair, 1);
            if (!config_setting_is_array(pair) || config_setting_length(pair) != 2 || !k || !v) {
                zm_config_problem(ctx, pair, "a label must be [\"key\", \"value\"]");
                continue;
            }
            zm_config_label_t *l = &w->labels[w->n_labels++];
            l->key = strdup(k);
            l->value = strdup(v);
            if (!l->key || !l->value)
                ctx->nomem = true;
        }
    }
}

void zm_config_mesh_parse_workloads(zm_config_parse_t *ctx, const config_setting_t *s,
                                    zm_config_t *cfg)
{
    cfg->workloads =
        parse_list(ctx, s, "workloads", FIELDS(workload_fields), sizeof(zm_config_workload_t),
                   workload_required, &cfg->n_workloads, workload_extra);
}

static void service_extra(zm_config_parse_t *ctx, const config_setting_t *e, void *base)
{
    zm_config_service_t *svc = base;
    for (int j = 0; j < config_setting_length(e); j++) {
        const config_setting_t *m = config_setting_get_elem(e, (unsigned)j);
        const char *key = config_setting_name(m);
        if (zm_config_field_find(FIELDS(service_fields), key))
            continue;
        if (!strcmp(key, "ports")) {
            svc->ports =
                parse_list(ctx, m, "ports", FIELDS(port_fields), sizeof(zm_config_service_port_t),
                           port_required, &svc->n_ports, NULL);
        } else if (!strcmp(key, "endpoints")) {
            svc->endpoints = parse_list(ctx, m, "endpoints", FIELDS(endpoint_fields),
                                        sizeof(zm_config_endpoint_t), endpoint_required,
                                        &svc->n_endpoints, NULL);
        } else {
            const char *known[ZM_ARRAY_LEN(service_fields) + 2];
            for (size_t k = 0; k < ZM_ARRAY_LEN(service_fields); k++)
                known[k] = service_fields[k].key;
            known[ZM_ARRAY_LEN(service_fields)] = "ports";
            known[ZM_ARRAY_LEN(service_fields) + 1] = "endpoints";
            zm_config_unknown_key(ctx, m, "services", known, ZM_ARRAY_LEN(known));
        }
    }
}

void zm_config_mesh_parse_services(zm_config_parse_t *ctx, const config_setting_t *s,
                                   zm_config_t *cfg)
{
    cfg->services =
        parse_list(ctx, s, "services", FIELDS(service_fields), sizeof(zm_config_service_t),
                   service_required, &cfg->n_services, service_extra);
}

const zm_config_workload_t *zm_config_find_workload(const zm_config_t *cfg, const char *uid)
{
    for (size_t i = 0; i < cfg->n_workloads; i++)
        if (cfg->workloads[i].uid && !strcmp(cfg->workloads[i].uid, uid))
            return &cfg->workloads[i];
    return NULL;
}

const zm_config_workload_t *zm_config_find_workload_by_address(const zm_config_t *cfg,
                                                               const char *address)
{
    for (size_t i = 0; i < cfg->n_workloads; i++)
        if (cfg->workloads[i].address && !strcmp(cfg->workloads[i].address, address))
            return &cfg->workloads[i];
    return NULL;
}

/* The setting of the i-th element of list `name`, for error lines. */
static const config_setting_t *elem_at(const config_setting_t *root_section, size_t i)
{
    return root_section ? config_setting_get_elem(root_section, (unsigned)i) : NULL;
}

static void check_waypoint_ref(zm_config_parse_t *ctx, const zm_config_t *cfg,
                               const config_setting_t *at, const char *ref)
{
    if (!ref || !ref[0])
        return;
    const zm_config_workload_t *w = zm_config_find_workload(cfg, ref);
    if (!w)
        zm_config_problem(ctx, at, "waypoint '%s' is not a workload", ref);
    else if (w->kind != ZM_CONFIG_WORKLOAD_WAYPOINT)
        zm_config_problem(ctx, at, "waypoint '%s' is a %s, not a waypoint", ref, "pod");
}

void zm_config_mesh_check_workloads(zm_config_parse_t *ctx, const config_setting_t *s,
                                    zm_config_t *cfg)
{
    for (size_t i = 0; i < cfg->n_workloads; i++) {
        const zm_config_workload_t *w = &cfg->workloads[i];
        const config_setting_t *at = elem_at(s, i);
        for (size_t j = 0; j < i; j++) {
            const zm_config_workload_t *o = &cfg->workloads[j];
            if (w->uid && o->uid && !strcmp(w->uid, o->uid))
                zm_config_problem(ctx, at, "workload '%s' appears twice", w->uid);
            else if (w->address && o->address && !strcmp(w->address, o->address))
                zm_config_problem(ctx, at, "workloads '%s' and '%s' share address %s", o->uid,
                                  w->uid, w->address);
        }
        check_waypoint_ref(ctx, cfg, at, w->waypoint);
    }
}

void zm_config_mesh_check_services(zm_config_parse_t *ctx, const config_setting_t *s,
                                   zm_config_t *cfg)
{
    for (size_t i = 0; i < cfg->n_services; i++) {
        const zm_config_service_t *svc = &cfg->services[i];
        const config_setting_t *at = elem_at(s, i);
        check_waypoint_ref(ctx, cfg, at, svc->waypoint);
        for (size_t e = 0; e < svc->n_endpoints; e++) {
            const zm_config_endpoint_t *ep = &svc->endpoints[e];
            if (ep->workload && !zm_config_find_workload(cfg, ep->workload))
                zm_config_problem(ctx, at, "service '%s/%s': endpoint '%s' is not a workload",
                                  svc->ns, svc->name, ep->workload);
            bool port_known = false;
            for (size_t p = 0; p < svc->n_ports; p++)
                port_known |= svc->ports[p].port == ep->port;
            if (!port_known)
                zm_config_problem(ctx, at,
                                  "service '%s/%s': endpoint port %u is not a service port",
                                  svc->ns, svc->name, ep->port);
        }
    }
}

void zm_config_mesh_free_workloads(zm_config_t *cfg)
{
    for (size_t i = 0; i < cfg->n_workloads; i++) {
        zm_config_workload_t *w = &cfg->workloads[i];
        zm_config_fields_free(FIELDS(workload_fields), w);
        for (size_t l = 0; l < w->n_labels; l++) {
            free((char *)w->labels[l].key);
            free((char *)w->labels[l].value);
        }
        free(w->labels);
    }
    free(cfg->workloads);
    cfg->workloads = NULL;
    cfg->n_workloads = 0;
}

void zm_config_mesh_free_services(zm_config_t *cfg)
{
    for (size_t i = 0; i < cfg->n_services; i++) {
        zm_config_service_t *svc = &cfg->services[i];
        zm_config_fields_free(FIELDS(service_fields), svc);
        for (size_t p = 0; p < svc->n_ports; p++)
            zm_config_fields_free(FIELDS(port_fields), &svc->ports[p]);
        for (size_t e = 0; e < svc->n_endpoints; e++)
            zm_config_fields_free(FIELDS(endpoint_fields), &svc->endpoints[e]);
        free(svc->ports);
        free(svc->endpoints);
    }
    free(cfg->services);
    cfg->services = NULL;
    cfg->n_services = 0;
}

int zm_config_mesh_dump_workloads(const zm_config_t *cfg, json_t *obj)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < cfg->n_workloads; i++) {
        const zm_config_workload_t *w = &cfg->workloads[i];
        json_t *o = json_object(), *labels = json_object();
        zm_config_fields_dump(FIELDS(workload_fields), w, o);
        for (size_t l = 0; l < w->n_labels; l++)
            json_object_set_new(labels, w->labels[l].key, json_string(w->labels[l].value));
        json_object_set_new(o, "labels", labels);
        json_array_append_new(arr, o);
    }
    return json_object_set_new(obj, "items", arr) == 0 ? 0 : -ENOMEM;
}

int zm_config_mesh_dump_services(const zm_config_t *cfg, json_t *obj)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < cfg->n_services; i++) {
        const zm_config_service_t *svc = &cfg->services[i];
        json_t *o = json_object(), *ports = json_array(), *eps = json_array();
        zm_config_fields_dump(FIELDS(service_fields), svc, o);
        for (size_t p = 0; p < svc->n_ports; p++) {
            json_t *po = json_object();
            zm_config_fields_dump(FIELDS(port_fields), &svc->ports[p], po);
            json_array_append_new(ports, po);
        }
        for (size_t e = 0; e < svc->n_endpoints; e++) {
            json_t *eo = json_object();
            zm_config_fields_dump(FIELDS(endpoint_fields), &svc->endpoints[e], eo);
            json_array_append_new(eps, eo);
        }
        json_object_set_new(o, "ports", ports);
        json_object_set_new(o, "endpoints", eps);
        json_array_append_new(arr, o);
    }
    return json_object_set_new(obj, "items", arr) == 0 ? 0 : -ENOMEM;
}
