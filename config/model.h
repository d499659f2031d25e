/*
 * model.h — the typed mesh model meshctl compiles from Kubernetes YAML.
 *
 * Two steps. mc_model_load parses YAML (files, folders, "-") into typed
 * objects: Namespaces, Pods (Deployments expanded into pods `<deploy>-<i>`),
 * Services, ServiceAccounts, Gateways (gateway.networking.k8s.io; class
 * istio-waypoint makes a waypoint) and "raw" objects (Istio kinds and
 * Gateway API routes) whose spec stays a YAML tree for later stages. Input
 * errors fail with `file:line: message`; unknown kinds become warnings.
 * mc_model_resolve then fills in everything a sandbox or a config compiler
 * needs, deterministically (same input, same output): nodes, pod IPs,
 * service cluster IPs, ambient enrollment, SPIFFE identities, endpoints with
 * target ports resolved, and waypoints (each waypoint Gateway also becomes a
 * pseudo pod with its own IP and identity). After resolve every array is
 * sorted by (namespace, name).
 *
 * Ownership: the model owns every string and array it exposes (an arena
 * plus a few malloc'ed arrays); all of it stays valid until mc_model_free.
 * Cross-object pointers (pod->node, pod->waypoint, endpoint->pod, ...) are
 * NULL until mc_model_resolve succeeds. IPv4 addresses are uint32_t in host
 * byte order, with their dotted text alongside.
 *
 * Threading: none. A model is built by one thread; once resolved it is
 * read-only and may be read from any thread.
 */
#ifndef MC_MODEL_H
#define MC_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "yaml_tree.h"
#include "zm.h"

#define MC_DEFAULT_TRUST_DOMAIN "cluster.local"
#define MC_DEFAULT_NODES 2
#define MC_MAX_NODES 250     /* node k owns 10.244.k.0/24 */
#define MC_MAX_REPLICAS 1000 /* per Deployment */
#define MC_WAYPOINT_CLASS "istio-waypoint"
#define MC_HBONE_PORT 15008

/* Labels and annotations this model interprets. */
#define MC_LABEL_DATAPLANE_MODE "istio.io/dataplane-mode" /* ambient | none */
#define MC_LABEL_USE_WAYPOINT "istio.io/use-waypoint"     /* gateway name | none */
#define MC_LABEL_USE_WAYPOINT_NS "istio.io/use-waypoint-namespace"
#define MC_ANNOTATION_NODES "zmesh.io/nodes" /* on a Namespace: node count */

/* Kinds the model knows. The raw kinds keep their spec as a YAML tree. */
typedef enum mc_kind {
    MC_KIND_UNKNOWN = 0,
    MC_KIND_NAMESPACE,
    MC_KIND_POD,
    MC_KIND_DEPLOYMENT,
    MC_KIND_SERVICE,
    MC_KIND_SERVICE_ACCOUNT,
    MC_KIND_GATEWAY, /* gateway.networking.k8s.io */
    MC_KIND_LIST,
    /* raw kinds (mc_object_t) */
    MC_KIND_VIRTUAL_SERVICE, /* networking.istio.io */
    MC_KIND_DESTINATION_RULE,
    MC_KIND_ISTIO_GATEWAY,
    MC_KIND_SERVICE_ENTRY,
    MC_KIND_SIDECAR,
    MC_KIND_PEER_AUTHENTICATION, /* security.istio.io */
    MC_KIND_AUTHORIZATION_POLICY,
    MC_KIND_REQUEST_AUTHENTICATION,
    MC_KIND_TELEMETRY,     /* telemetry.istio.io */
    MC_KIND_GATEWAY_CLASS, /* gateway.networking.k8s.io */
    MC_KIND_HTTP_ROUTE,
    MC_KIND_GRPC_ROUTE,
    MC_KIND_TCP_ROUTE,
    MC_KIND_TLS_ROUTE,
    MC_KIND_REFERENCE_GRANT,
    MC_KIND_COUNT_
} mc_kind_t;

/* A key/value pair of labels, annotations or a selector. */
typedef struct mc_kv {
    const char *key;
    const char *value;
} mc_kv_t;

/* Sorted by key (unique keys); find with mc_labels_get. */
typedef struct mc_labels {
    const mc_kv_t *items;
    size_t n;
} mc_labels_t;

/* metadata plus where the object was written. */
typedef struct mc_meta {
    const char *name;
    const char *ns; /* "default" when absent; "" for Namespace and GatewayClass */
    mc_labels_t labels;
    mc_labels_t annotations;
    const char *file; /* the object's document (for a Deployment pod: its template) */
    int line;
    unsigned _seq; /* load order, to report the later of two duplicates */
} mc_meta_t;

typedef struct mc_node {
    const char *name; /* node-1.. or a pod's spec.nodeName */
    int index;        /* 1-based; the node's pod subnet is 10.244.<index>.0/24 */
    uint32_t subnet;
    char cidr[20];
    size_t n_pods; /* waypoint pseudo pods included */
} mc_node_t;

typedef struct mc_gateway mc_gateway_t;

typedef struct mc_namespace {
    mc_meta_t meta;
    bool implicit;                /* no Namespace object: created by resolve for a used namespace */
    bool ambient;                 /* label istio.io/dataplane-mode=ambient */
    const mc_gateway_t *waypoint; /* from istio.io/use-waypoint (after resolve) */
} mc_namespace_t;

typedef struct mc_container_port {
    const char *name; /* NULL when unnamed */
    uint16_t port;
    const char *protocol; /* "TCP" default */
} mc_container_port_t;

typedef struct mc_pod {
    mc_meta_t meta;
    const char *service_account;      /* "default" when absent */
    const char *owner;                /* Deployment name, or NULL for a Pod object */
    const char *given_node;           /* spec.nodeName, or NULL */
    const char *given_ip;             /* status.podIP, or NULL */
    const mc_container_port_t *ports; /* all containers' ports, in order */
    size_t n_ports;
    /* filled by resolve */
    const mc_node_t *node;
    uint32_t ip;
    char ip_str[16];
    const char *identity;         /* spiffe://TD/ns/NS/sa/SA */
    bool ambient;                 /* captured by its node's ztunnel */
    const mc_gateway_t *waypoint; /* for traffic addressed to the pod, or NULL */
    const mc_gateway_t *gateway;  /* non-NULL: this pod is that waypoint's pseudo pod */
} mc_pod_t;

/* One ready endpoint of a service port. */
typedef struct mc_endpoint {
    const mc_pod_t *pod;
    uint16_t port; /* target port on the pod, resolved */
} mc_endpoint_t;

typedef struct mc_service_port {
    const char *name; /* NULL when unnamed */
    uint16_t port;
    uint16_t target_port; /* 0 when target_port_name is set */
    const char *target_port_name;
    const char *protocol;     /* "TCP" default */
    const char *app_protocol; /* NULL when absent */
    /* filled by resolve: pods of the selector that have the target port */
    const mc_endpoint_t *endpoints;
    size_t n_endpoints;
} mc_service_port_t;

typedef struct mc_service {
    mc_meta_t meta;
    mc_labels_t selector; /* n == 0: no selector, hence no endpoints */
    const mc_service_port_t *ports;
    size_t n_ports;
    const char *given_cluster_ip; /* spec.clusterIP, or NULL; "None" = headless */
    /* filled by resolve */
    bool headless;
    uint32_t cluster_ip; /* 0 when headless */
    char cluster_ip_str[16];
    const mc_gateway_t *waypoint;
} mc_service_t;

typedef struct mc_service_account {
    mc_meta_t meta;
} mc_service_account_t;

struct mc_gateway {
    mc_meta_t meta;
    const char *class_name;
    bool is_waypoint;           /* class istio-waypoint */
    const mc_yaml_node_t *spec; /* raw spec (listeners ...) */
    const mc_pod_t *pod;        /* waypoint's pseudo pod (after resolve), else NULL */
};

/* An object kept with its raw spec: Istio kinds, Gateway API routes. */
typedef struct mc_object {
    mc_meta_t meta;
    mc_kind_t kind;
    const char *kind_name;      /* as written, e.g. "VirtualService" */
    const char *api_version;    /* as written */
    const mc_yaml_node_t *spec; /* NULL when absent */
    const mc_yaml_node_t *root; /* the whole object */
} mc_object_t;

/* A non-fatal finding; print with mc_warning_str. */
typedef struct mc_warning {
    const char *file;
    int line;
    const char *msg; /* without the "warning: " prefix */
} mc_warning_t;

typedef struct mc_model {
    mc_namespace_t *namespaces;
    size_t n_namespaces;
    mc_pod_t *pods; /* Pods, Deployment pods, and (after resolve) waypoint pods */
    size_t n_pods;
    mc_service_t *services;
    size_t n_services;
    mc_service_account_t *service_accounts;
    size_t n_service_accounts;
    mc_gateway_t *gateways; /* all classes; see is_waypoint */
    size_t n_gateways;
    mc_object_t *objects; /* raw kinds, sorted by (kind, namespace, name) */
    size_t n_objects;
    mc_node_t *nodes; /* after resolve */
    size_t n_nodes;
    mc_warning_t *warnings; /* in input order, then resolve's */
    size_t n_warnings;
    const char *trust_domain; /* after resolve */
    bool resolved;
    /* private */
    mc_yaml_set_t *_yaml;
    size_t _cap[8];
} mc_model_t;

typedef struct mc_resolve_opts {
    int nodes;                /* > 0 forces the node count; 0: annotation, else 2 */
    const char *trust_domain; /* NULL: cluster.local */
} mc_resolve_opts_t;

/* Loads n paths (files, folders, "-") into a new model (*out). Returns 0,
 * or < 0 with err set to `file:line: message` and *out NULL. */
int mc_model_load(mc_model_t **out, const char *const *paths, size_t n, zm_err_t *err);

/* Same, from one in-memory YAML text named name (for tests and stdin). */
int mc_model_load_string(mc_model_t **out, const char *name, const char *text, size_t len,
                         zm_err_t *err);

/* Resolves the model in place (see the file comment). opts may be NULL.
 * Returns 0, or < 0 with err set (e.g. address space exhausted, duplicate
 * pod IP, a waypoint name colliding with a pod). Calling it twice fails
 * with -EALREADY. */
int mc_model_resolve(mc_model_t *m, const mc_resolve_opts_t *opts, zm_err_t *err);

/* Frees the model and everything it points to; clears *m. NULL-safe. */
void mc_model_free(mc_model_t **m);

/* Lookups by namespace and name (binary search: arrays are sorted from
 * load on). Namespaces are looked up by name alone. NULL when absent. */
const mc_namespace_t *mc_model_find_namespace(const mc_model_t *m, const char *name);
const mc_pod_t *mc_model_find_pod(const mc_model_t *m, const char *ns, const char *name);
const mc_service_t *mc_model_find_service(const mc_model_t *m, const char *ns, const char *name);
const mc_gateway_t *mc_model_find_gateway(const mc_model_t *m, const char *ns, const char *name);
const mc_service_account_t *mc_model_find_service_account(const mc_model_t *m, const char *ns,
                                                          const char *name);
const mc_node_t *mc_model_find_node(const mc_model_t *m, const char *name);

/* A service named by a host as Istio resources write it, relative to ns:
 * "reviews", "reviews.ns", "reviews.ns.svc", "reviews.ns.svc.<trust domain>"
 * (also "cluster.local" before resolve). NULL when no such service. */
const mc_service_t *mc_model_find_host(const mc_model_t *m, const char *host, const char *ns);

/* The value of key, or NULL. */
const char *mc_labels_get(const mc_labels_t *labels, const char *key);

/* True when every selector pair is in labels (an empty selector matches). */
bool mc_labels_match(const mc_labels_t *selector, const mc_labels_t *labels);

/* "file:line: warning: msg" into buf; returns buf. */
const char *mc_warning_str(const mc_warning_t *w, char *buf, size_t len);

/* "Pod", "VirtualService", ... for a kind. */
const char *mc_kind_name(mc_kind_t kind);

#endif
