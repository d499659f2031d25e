/* Unit tests of config/model*.c: loading realistic manifests (bookinfo,
 * anchors and Lists, Istio examples, the Gateway API conformance base),
 * resolving them (nodes, IPs, identities, ambient, waypoints, endpoints),
 * and input errors reported as exact `file:line: message` strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

/* tests/data/model, found from this file's path (CMake passes it absolute). */
static const char *data(const char *name)
{
    static char buf[1024];
    const char *slash = strrchr(__FILE__, '/');
    int dir = slash ? (int)(slash - __FILE__) : 1;
    snprintf(buf, sizeof(buf), "%.*s/../data/model/%s", dir, slash ? __FILE__ : ".", name);
    return buf;
}

static mc_model_t *load_files(const char *const *names, size_t n, const mc_resolve_opts_t *opts)
{
    char paths[8][1024];
    const char *p[8];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        snprintf(paths[i], sizeof(paths[i]), "%s", data(names[i]));
        p[i] = paths[i];
    }
    mc_model_t *m = NULL;
    zm_err_t err = {0};
    char buf[1024];
    if (mc_model_load(&m, p, n, &err) != 0)
        fail_msg("load: %s", zm_err_str(&err, buf, sizeof(buf)));
    if (mc_model_resolve(m, opts, &err) != 0)
        fail_msg("resolve: %s", zm_err_str(&err, buf, sizeof(buf)));
    return m;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static const mc_pod_t *pod(const mc_model_t *m, const char *ns, const char *name)
{
    const mc_pod_t *p = mc_model_find_pod(m, ns, name);
    if (p == NULL)
        fail_msg("no pod %s/%s", ns, name);
    return p;
}

static void bookinfo(void **state)
{
    const char *files[] = {"bookinfo.yaml"};
    mc_model_t *m = load_files(files, 1, NULL);
    assert_int_equal(m->n_warnings, 0);
    assert_int_equal(m->n_namespaces, 2);
    assert_string_equal(m->namespaces[0].meta.name, "bookinfo");
    assert_true(m->namespaces[0].ambient);
    assert_false(m->namespaces[0].implicit);
    assert_string_equal(m->namespaces[1].meta.name, "default");
    assert_true(m->namespaces[1].implicit);
    assert_int_equal(m->n_services, 4);
    assert_int_equal(m->n_service_accounts, 4);
    assert_int_equal(m->n_gateways, 1);
    assert_int_equal(m->n_pods, 9); /* 7 from Deployments, sleep, the waypoint */
    assert_string_equal(m->trust_domain, "cluster.local");

    /* three nodes from the namespace annotation, pods round-robin in order */
    assert_int_equal(m->n_nodes, 3);
    assert_string_equal(m->nodes[2].name, "node-3");
    assert_string_equal(m->nodes[2].cidr, "10.244.3.0/24");
    assert_int_equal(m->nodes[0].n_pods, 4);
    assert_int_equal(m->nodes[1].n_pods, 3);
    assert_int_equal(m->nodes[2].n_pods, 2);
    static const struct {
        const char *ns, *name, *node, *ip;
    } want[] = {
        {"bookinfo", "details-v1-0", "node-1", "10.244.1.10"},
        {"bookinfo", "productpage-v1-0", "node-2", "10.244.2.10"},
        {"bookinfo", "ratings-v1-0", "node-3", "10.244.3.10"},
        {"bookinfo", "reviews-v1-0", "node-1", "10.244.1.11"},
        {"bookinfo", "reviews-v2-0", "node-2", "10.244.2.11"},
        {"bookinfo", "reviews-v2-1", "node-3", "10.244.3.11"},
        {"bookinfo", "reviews-v3-0", "node-1", "10.244.1.13"}, /* .12 is sleep's */
        {"bookinfo", "waypoint", "node-2", "10.244.2.12"},     /* after regular pods */
        {"default", "sleep", "node-1", "10.244.1.12"},
    };
    for (size_t i = 0; i < ZM_ARRAY_LEN(want); i++) {
        const mc_pod_t *p = &m->pods[i]; /* sorted by (namespace, name) */
        assert_string_equal(p->meta.ns, want[i].ns);
        assert_string_equal(p->meta.name, want[i].name);
        assert_string_equal(p->node->name, want[i].node);
        assert_string_equal(p->ip_str, want[i].ip);
    }

    const mc_pod_t *details = pod(m, "bookinfo", "details-v1-0");
    assert_string_equal(details->identity,
                        "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-details");
    assert_string_equal(details->owner, "details-v1");
    assert_string_equal(mc_labels_get(&details->meta.labels, "version"), "v1");
    assert_true(ends_with(details->meta.file, "bookinfo.yaml"));
    assert_true(details->ambient);
    assert_false(pod(m, "bookinfo", "ratings-v1-0")->ambient); /* dataplane-mode=none */
    const mc_pod_t *sleep = pod(m, "default", "sleep");
    assert_false(sleep->ambient);
    assert_null(sleep->owner);
    assert_null(sleep->waypoint);
    assert_string_equal(sleep->identity, "spiffe://cluster.local/ns/default/sa/default");
    assert_int_equal(sleep->ip, 0x0af4010c);
    const mc_pod_t *pp = pod(m, "bookinfo", "productpage-v1-0");
    assert_string_equal(mc_labels_get(&pp->meta.annotations, "prometheus.io/port"), "9080");

    /* the waypoint and its pseudo pod */
    const mc_gateway_t *wp = mc_model_find_gateway(m, "bookinfo", "waypoint");
    assert_non_null(wp);
    assert_true(wp->is_waypoint);
    assert_string_equal(wp->class_name, "istio-waypoint");
    assert_non_null(wp->pod);
    assert_ptr_equal(wp->pod->gateway, wp);
    assert_string_equal(wp->pod->identity, "spiffe://cluster.local/ns/bookinfo/sa/waypoint");
    assert_int_equal(wp->pod->n_ports, 1);
    assert_int_equal(wp->pod->ports[0].port, 15008);
    assert_false(wp->pod->ambient);
    assert_null(wp->pod->waypoint);
    assert_ptr_equal(m->namespaces[0].waypoint, wp);
    assert_ptr_equal(details->waypoint, wp);

    /* services: cluster IPs in order, skipping ratings' given one */
    const mc_service_t *sd = mc_model_find_service(m, "bookinfo", "details");
    const mc_service_t *sp = mc_model_find_service(m, "bookinfo", "productpage");
    const mc_service_t *sr = mc_model_find_service(m, "bookinfo", "ratings");
    const mc_service_t *sv = mc_model_find_service(m, "bookinfo", "reviews");
    assert_string_equal(sd->cluster_ip_str, "10.96.0.10");
    assert_string_equal(sp->cluster_ip_str, "10.96.0.12");
    assert_string_equal(sr->cluster_ip_str, "10.96.0.11");
    assert_string_equal(sv->cluster_ip_str, "10.96.0.13");
    assert_ptr_equal(sd->waypoint, wp);
    assert_null(sr->waypoint); /* use-waypoint: none */
    assert_ptr_equal(sv->waypoint, wp);

    /* endpoints: a named target port resolves per pod; v3 lacks it */
    assert_int_equal(sv->n_ports, 1);
    const mc_service_port_t *rp = &sv->ports[0];
    assert_string_equal(rp->target_port_name, "http");
    assert_string_equal(rp->app_protocol, "http");
    assert_int_equal(rp->n_endpoints, 3);
    assert_string_equal(rp->endpoints[0].pod->meta.name, "reviews-v1-0");
    assert_int_equal(rp->endpoints[0].port, 9080);
    assert_string_equal(rp->endpoints[1].pod->meta.name, "reviews-v2-0");
    assert_int_equal(rp->endpoints[1].port, 9081);
    assert_string_equal(rp->endpoints[2].pod->meta.name, "reviews-v2-1");
    assert_int_equal(rp->endpoints[2].port, 9081);
    assert_int_equal(sd->ports[0].target_port, 9080); /* defaulted from port */
    assert_int_equal(sd->ports[0].n_endpoints, 1);
    assert_ptr_equal(sd->ports[0].endpoints[0].pod, details);
    assert_string_equal(sd->ports[0].protocol, "TCP");

    /* host lookups as Istio resources write them */
    assert_ptr_equal(mc_model_find_host(m, "reviews", "bookinfo"), sv);
    assert_ptr_equal(mc_model_find_host(m, "reviews.bookinfo", "default"), sv);
    assert_ptr_equal(mc_model_find_host(m, "reviews.bookinfo.svc", "x"), sv);
    assert_ptr_equal(mc_model_find_host(m, "reviews.bookinfo.svc.cluster.local", "x"), sv);
    assert_null(mc_model_find_host(m, "reviews", "default"));
    assert_null(mc_model_find_host(m, "reviews.bookinfo.com", "x"));
    assert_null(mc_model_find_host(m, "reviews.bookinfo.svc.example.org", "x"));
    assert_non_null(mc_model_find_service_account(m, "bookinfo", "bookinfo-reviews"));
    assert_non_null(mc_model_find_node(m, "node-2"));
    assert_null(mc_model_find_node(m, "node-4"));

    zm_err_t err = {0};
    assert_int_equal(mc_model_resolve(m, NULL, &err), -EALREADY);
    mc_model_free(&m);
    assert_null(m);
    mc_model_free(&m);
}

static void options_override(void **state)
{
    const char *files[] = {"bookinfo.yaml"};
    mc_resolve_opts_t o = {.nodes = 1, .trust_domain = "example.org"};
    mc_model_t *m = load_files(files, 1, &o);
    assert_int_equal(m->n_nodes, 1);
    assert_int_equal(m->nodes[0].n_pods, 9);
    assert_string_equal(pod(m, "bookinfo", "details-v1-0")->ip_str, "10.244.1.10");
    assert_string_equal(pod(m, "bookinfo", "productpage-v1-0")->ip_str, "10.244.1.11");
    assert_string_equal(pod(m, "bookinfo", "ratings-v1-0")->ip_str, "10.244.1.13");
    assert_string_equal(pod(m, "bookinfo", "waypoint")->ip_str, "10.244.1.18");
    assert_string_equal(pod(m, "bookinfo", "reviews-v1-0")->identity,
                        "spiffe://example.org/ns/bookinfo/sa/bookinfo-reviews");
    assert_non_null(mc_model_find_host(m, "reviews.bookinfo.svc.example.org", "x"));
    mc_model_free(&m);
}

static void anchors_lists_and_warnings(void **state)
{
    const char *files[] = {"anchors.yaml"};
    mc_model_t *m = load_files(files, 1, NULL);
    char buf[1024];
    assert_int_equal(m->n_warnings, 1);
    assert_true(ends_with(mc_warning_str(&m->warnings[0], buf, sizeof(buf)),
                          "/anchors.yaml:53: warning: unknown kind ConfigMap (ignored)"));
    assert_int_equal(m->n_namespaces, 1);
    assert_int_equal(m->n_pods, 4);
    /* an unknown nodeName becomes a node after node-1..2 */
    assert_int_equal(m->n_nodes, 3);
    assert_string_equal(m->nodes[2].name, "edge-1");
    assert_int_equal(m->nodes[2].index, 3);
    assert_string_equal(pod(m, "shop", "cart-0")->node->name, "node-1");
    assert_string_equal(pod(m, "shop", "cart-1")->node->name, "node-2");
    assert_string_equal(pod(m, "shop", "cart-2")->node->name, "edge-1");
    assert_string_equal(pod(m, "shop", "cart-2")->ip_str, "10.244.3.10");
    const mc_pod_t *edge = pod(m, "shop", "edge-proxy");
    assert_string_equal(edge->ip_str, "10.244.3.11");
    assert_string_equal(edge->service_account, "edge");
    assert_false(edge->ambient);
    const mc_pod_t *c0 = pod(m, "shop", "cart-0");
    assert_true(c0->ambient);
    assert_string_equal(mc_labels_get(&c0->meta.labels, "app"), "cart");
    assert_string_equal(mc_labels_get(&c0->meta.labels, "version"), "v1");
    assert_int_equal(c0->n_ports, 4);
    assert_null(c0->ports[2].name);
    assert_int_equal(c0->ports[3].port, 8081);

    /* the Service's metadata was merged from the Deployment's */
    const mc_service_t *s = mc_model_find_service(m, "shop", "cart");
    assert_non_null(s);
    assert_string_equal(mc_labels_get(&s->meta.labels, "app"), "cart");
    assert_string_equal(mc_labels_get(&s->meta.annotations, "note"),
                        "merged from the Deployment's metadata");
    assert_int_equal(s->selector.n, 1);
    assert_int_equal(s->n_ports, 4);
    static const uint16_t targets[] = {8080, 9090, 15090, 8081};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(s->ports[i].n_endpoints, 3);
        for (size_t j = 0; j < 3; j++)
            assert_int_equal(s->ports[i].endpoints[j].port, targets[i]);
    }
    assert_string_equal(s->ports[1].app_protocol, "grpc");
    assert_null(s->ports[2].app_protocol);
    assert_null(s->waypoint);
    mc_model_free(&m);
}

static void istio_seed_examples(void **state)
{
    const char *files[] = {"seed-traffic.yaml", "seed-security.yaml", "seed-telemetry.yaml"};
    mc_model_t *m = load_files(files, 3, NULL);
    assert_int_equal(m->n_warnings, 0);
    assert_int_equal(m->n_objects, 12);
    assert_int_equal(m->n_pods, 0);
    static const struct {
        mc_kind_t kind;
        const char *ns, *name;
    } want[] = {
        {MC_KIND_VIRTUAL_SERVICE, "default", "database-latency"},
        {MC_KIND_VIRTUAL_SERVICE, "production", "order-api"},
        {MC_KIND_VIRTUAL_SERVICE, "production", "payment-service-fault"},
        {MC_KIND_DESTINATION_RULE, "production", "order-api"},
        {MC_KIND_ISTIO_GATEWAY, "production", "order-api-gateway"},
        {MC_KIND_PEER_AUTHENTICATION, "istio-system", "default"},
        {MC_KIND_PEER_AUTHENTICATION, "legacy-service", "default"},
        {MC_KIND_PEER_AUTHENTICATION, "production", "order-api"},
        {MC_KIND_AUTHORIZATION_POLICY, "production", "deny-all"},
        {MC_KIND_AUTHORIZATION_POLICY, "production", "order-api-allow"},
        {MC_KIND_REQUEST_AUTHENTICATION, "production", "jwt-auth"},
        {MC_KIND_TELEMETRY, "production", "custom-access-log"},
    };
    for (size_t i = 0; i < ZM_ARRAY_LEN(want); i++) {
        const mc_object_t *o = &m->objects[i];
        assert_int_equal(o->kind, want[i].kind);
        assert_string_equal(o->meta.ns, want[i].ns);
        assert_string_equal(o->meta.name, want[i].name);
        assert_non_null(o->spec);
    }
    /* raw specs are the YAML trees, with their lines */
    const mc_object_t *vs = &m->objects[1];
    assert_string_equal(vs->api_version, "networking.istio.io/v1beta1");
    assert_string_equal(vs->kind_name, "VirtualService");
    const mc_yaml_node_t *hosts = mc_yaml_get(vs->spec, "hosts");
    assert_int_equal(hosts->n, 2);
    assert_string_equal(hosts->items[1]->str, "order-api.example.com");
    assert_int_equal(hosts->items[1]->line, 10);
    const mc_yaml_node_t *http = mc_yaml_get(vs->spec, "http");
    const mc_yaml_node_t *match = mc_yaml_get(http->items[0], "match");
    const mc_yaml_node_t *exact = mc_yaml_path(match->items[0], "headers.x-canary.exact");
    assert_string_equal(exact->str, "true");
    assert_false(exact->plain);
    assert_int_equal(m->objects[8].spec->kind, MC_YAML_MAP); /* deny-all: spec {} */
    assert_int_equal(m->objects[8].spec->n, 0);
    const mc_yaml_node_t *plm = mc_yaml_path(m->objects[7].spec, "portLevelMtls.8080.mode");
    assert_string_equal(plm->str, "PERMISSIVE");
    /* namespaces only referenced become implicit ones */
    assert_int_equal(m->n_namespaces, 4);
    assert_true(m->namespaces[1].implicit);
    assert_string_equal(m->namespaces[1].meta.name, "istio-system");
    assert_string_equal(mc_kind_name(MC_KIND_TELEMETRY), "Telemetry");
    mc_model_free(&m);
}

static void gateway_api_conformance_base(void **state)
{
    const char *files[] = {"gateway-api-base.yaml"};
    mc_model_t *m = load_files(files, 1, NULL);
    char buf[1024];
    assert_int_equal(m->n_warnings, 1);
    assert_non_null(strstr(mc_warning_str(&m->warnings[0], buf, sizeof(buf)),
                           "warning: unknown kind ConfigMap (ignored)"));
    assert_int_equal(m->n_namespaces, 3);
    assert_int_equal(m->n_gateways, 4);
    assert_int_equal(m->n_services, 14);
    assert_int_equal(m->n_pods, 23);
    for (size_t i = 0; i < m->n_gateways; i++) {
        assert_false(m->gateways[i].is_waypoint);
        assert_null(m->gateways[i].pod);
        assert_string_equal(m->gateways[i].class_name, "{GATEWAY_CLASS_NAME}");
    }
    const mc_service_t *s =
        mc_model_find_service(m, "gateway-conformance-infra", "infra-backend-v1");
    assert_non_null(s);
    assert_int_equal(s->n_ports, 3);
    assert_int_equal(s->ports[1].target_port, 3001);
    assert_string_equal(s->ports[1].app_protocol, "kubernetes.io/h2c");
    assert_true(s->ports[0].n_endpoints > 0);
    mc_model_free(&m);
}

/* Loads (and resolves) text named bad.yaml expecting an error. */
static const char *fails(const char *text, char *buf, size_t len)
{
    mc_model_t *m = NULL;
    zm_err_t err = {0};
    int rc = mc_model_load_string(&m, "bad.yaml", text, strlen(text), &err);
    if (rc == 0) {
        rc = mc_model_resolve(m, NULL, &err);
        mc_model_free(&m);
    }
    assert_true(rc < 0);
    assert_null(m);
    return zm_err_str(&err, buf, len);
}

#define SVC_HEAD "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n"

static void input_errors(void **state)
{
    char b[1024];
    assert_string_equal(fails("apiVersion: v1\nkind: Pod\n metadata: {}\n", b, sizeof(b)),
                        "bad.yaml:3: mapping values are not allowed in this context");
    assert_string_equal(
        fails("apiVersion: v1\nkind: Service\nmetadata:\n  namespace: x\n", b, sizeof(b)),
        "bad.yaml:4: Service: metadata.name is required");
    assert_string_equal(fails("apiVersion: v1\nkind: Pod\n", b, sizeof(b)),
                        "bad.yaml:1: Pod: metadata.name is required");
    assert_string_equal(fails(SVC_HEAD "  ports:\n  - port: 70000\n", b, sizeof(b)),
                        "bad.yaml:7: Service default/web: spec.ports[0].port: 70000 is out of "
                        "range 1..65535");
    assert_string_equal(fails(SVC_HEAD "  ports:\n  - port: 80\n  - port: \"81\"\n", b, sizeof(b)),
                        "bad.yaml:8: Service default/web: spec.ports[1].port: must be an "
                        "integer, not \"81\"");
    assert_string_equal(
        fails(SVC_HEAD "  ports:\n  - port: 80\n    targetPort: [80]\n", b, sizeof(b)),
        "bad.yaml:8: Service default/web: spec.ports[0].targetPort: must be a "
        "port number or a port name, not a sequence");
    assert_string_equal(
        fails(SVC_HEAD "  ports:\n  - port: 80\n    targetPort: true\n", b, sizeof(b)),
        "bad.yaml:8: Service default/web: spec.ports[0].targetPort: must be a "
        "port number or a port name, not a boolean");
    assert_string_equal(
        fails(SVC_HEAD "  ports:\n  - port: 80\n    targetPort: \"8080\"\n", b, sizeof(b)),
        "bad.yaml:8: Service default/web: spec.ports[0].targetPort: \"8080\" is "
        "not a port name (write a number unquoted)");
    assert_string_equal(fails(SVC_HEAD "  ports: []\n---\n" SVC_HEAD "  ports: []\n", b, sizeof(b)),
                        "bad.yaml:8: duplicate Service default/web (first at bad.yaml:1)");
    assert_string_equal(fails("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"
                              "spec:\n  replicas: -1\n  template: {}\n",
                              b, sizeof(b)),
                        "bad.yaml:5: Deployment default/web: spec.replicas: -1 is negative");
    assert_string_equal(fails("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"
                              "spec:\n  replicas: two\n  template: {}\n",
                              b, sizeof(b)),
                        "bad.yaml:5: Deployment default/web: spec.replicas: must be an integer");
    /* a Deployment's pod colliding with a Pod object */
    assert_string_equal(fails("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"
                              "spec:\n  template: {}\n---\n"
                              "apiVersion: v1\nkind: Pod\nmetadata: {name: web-0}\n",
                              b, sizeof(b)),
                        "bad.yaml:7: duplicate Pod default/web-0 (first at bad.yaml:5)");
    assert_string_equal(fails("kind: Pod\nmetadata: {name: a}\n", b, sizeof(b)),
                        "bad.yaml:1: Pod: apiVersion is required (a string)");
    assert_string_equal(fails("apiVersion: v1\nmetadata: {name: a}\n", b, sizeof(b)),
                        "bad.yaml:1: kind is required (a string)");
    assert_string_equal(fails("- a\n- b\n", b, sizeof(b)),
                        "bad.yaml:1: an object must be a map, not a sequence");
    assert_string_equal(fails("apiVersion: v1\nkind: Pod\nmetadata: {name: Web_1}\n", b, sizeof(b)),
                        "bad.yaml:3: Pod: metadata.name: \"Web_1\" is not a valid name "
                        "(lowercase letters, digits, '-' and '.')");
    assert_string_equal(fails("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n"
                              "spec:\n  containers:\n  - name: c\n    ports:\n"
                              "    - containerPort: 0\n",
                              b, sizeof(b)),
                        "bad.yaml:8: Pod default/a: spec.containers[0].ports[0].containerPort: "
                        "0 is out of range 1..65535");
    assert_string_equal(fails("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n"
                              "status: {podIP: 10.1.2}\n",
                              b, sizeof(b)),
                        "bad.yaml:4: Pod default/a: status.podIP: \"10.1.2\" is not an IPv4 "
                        "address");
    assert_string_equal(fails("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
                              "metadata: {name: gw}\nspec: {listeners: []}\n",
                              b, sizeof(b)),
                        "bad.yaml:4: Gateway default/gw: spec.gatewayClassName is required");
    assert_string_equal(fails("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n"
                              "  annotations: {zmesh.io/nodes: \"lots\"}\n",
                              b, sizeof(b)),
                        "bad.yaml:1: Namespace a: annotation zmesh.io/nodes: \"lots\" is not a "
                        "node count 1..250");
}

static void resolve_errors_and_warnings(void **state)
{
    char b[1024];
    /* duplicate given pod IPs */
    assert_string_equal(fails("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n"
                              "status: {podIP: 10.0.0.1}\n---\n"
                              "apiVersion: v1\nkind: Pod\nmetadata: {name: b}\n"
                              "status: {podIP: 10.0.0.1}\n",
                              b, sizeof(b)),
                        "bad.yaml:6: Pod default/b: status.podIP 10.0.0.1 is already used by "
                        "Pod default/a");
    /* a waypoint's pseudo pod would take an existing pod's name */
    assert_string_equal(fails("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
                              "metadata: {name: wp}\nspec: {gatewayClassName: istio-waypoint}\n"
                              "---\napiVersion: v1\nkind: Pod\nmetadata: {name: wp}\n",
                              b, sizeof(b)),
                        "bad.yaml:1: Gateway default/wp: its waypoint pod would clash with Pod "
                        "default/wp (bad.yaml:6)");

    /* unknown or non-waypoint gateways warn; a service's own label wins,
     * cross-namespace waypoints via use-waypoint-namespace */
    const char *text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: app\n"
                       "  labels: {istio.io/use-waypoint: shared, "
                       "istio.io/use-waypoint-namespace: infra}\n"
                       "---\n"
                       "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
                       "metadata: {name: shared, namespace: infra}\n"
                       "spec: {gatewayClassName: istio-waypoint}\n"
                       "---\n"
                       "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
                       "metadata: {name: ingress, namespace: app}\n"
                       "spec: {gatewayClassName: istio}\n"
                       "---\n"
                       "apiVersion: v1\nkind: Service\n"
                       "metadata: {name: a, namespace: app, labels: {istio.io/use-waypoint: "
                       "nope}}\nspec: {}\n"
                       "---\n"
                       "apiVersion: v1\nkind: Service\n"
                       "metadata: {name: b, namespace: app, labels: {istio.io/use-waypoint: "
                       "ingress}}\nspec: {}\n"
                       "---\n"
                       "apiVersion: v1\nkind: Service\n"
                       "metadata: {name: c, namespace: app}\nspec: {clusterIP: None}\n"
                       "---\n"
                       "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"
                       "---\n"
                       "apiVersion: example.com/v1\nkind: Pod\nmetadata: {name: w}\n";
    mc_model_t *m = NULL;
    zm_err_t err = {0};
    assert_int_equal(mc_model_load_string(&m, "w.yaml", text, strlen(text), &err), 0);
    assert_int_equal(mc_model_resolve(m, NULL, &err), 0);
    assert_int_equal(m->n_warnings, 4);
    const char *want[] = {
        "w.yaml:32: warning: unknown kind Widget (ignored)",
        "w.yaml:36: warning: unknown kind Pod in example.com/v1 (ignored)",
        "w.yaml:17: warning: Service app/a: waypoint app/nope not found (ignored)",
        "w.yaml:22: warning: Service app/b: waypoint app/ingress is not of class "
        "istio-waypoint (ignored)",
    };
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(mc_warning_str(&m->warnings[i], b, sizeof(b)), want[i]);
    const mc_gateway_t *shared = mc_model_find_gateway(m, "infra", "shared");
    assert_ptr_equal(mc_model_find_namespace(m, "app")->waypoint, shared);
    assert_null(mc_model_find_service(m, "app", "a")->waypoint);
    assert_null(mc_model_find_service(m, "app", "b")->waypoint);
    const mc_service_t *c = mc_model_find_service(m, "app", "c");
    assert_ptr_equal(c->waypoint, shared);
    assert_true(c->headless);
    assert_int_equal(c->cluster_ip, 0);
    assert_string_equal(mc_model_find_service(m, "app", "a")->cluster_ip_str, "10.96.0.10");
    assert_string_equal(shared->pod->identity, "spiffe://cluster.local/ns/infra/sa/shared");
    mc_model_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bookinfo),
        cmocka_unit_test(options_override),
        cmocka_unit_test(anchors_lists_and_warnings),
        cmocka_unit_test(istio_seed_examples),
        cmocka_unit_test(gateway_api_conformance_base),
        cmocka_unit_test(input_errors),
        cmocka_unit_test(resolve_errors_and_warnings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
