/*
 * sandbox_plan.c — a resolved mesh model mapped onto the network layer's
 * plan (see sandbox.h). Pure: nothing here touches the system, so the
 * mapping is unit-tested.
 *
 * Services: the network layer keeps one endpoint list per service with an
 * optional per-port target override, while the model resolves endpoints
 * per service port. The plan's endpoints are the union of the ports'
 * endpoint pods (in first-seen order); an endpoint that lacks a port keeps
 * the service's numeric target port for it (0: the port itself).
 */
#include "sandbox.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void mc_sandbox_node_ip(const mc_node_t *n, char buf[16])
{
    snprintf(buf, 16, "10.244.0.%u", (unsigned)(n->index + 1) & 0xffu);
}

void mc_sandbox_plan_clear(mc_sandbox_plan_t *p)
{
    if (!p)
        return;
    free(p->nodes);
    free(p->node_ips);
    free(p->pods);
    free(p->services);
    free(p->ports);
    free(p->endpoints);
    free(p->target_ports);
    memset(p, 0, sizeof(*p));
}

static long find_ep(const mc_net_endpoint_t *eps, size_t n, const char *ip)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(eps[i].ip, ip))
            return (long)i;
    return -1;
}

static void map_service(const mc_service_t *s, mc_net_service_t *ns, mc_net_svc_port_t *ports,
                        mc_net_endpoint_t *eps, uint16_t *tps)
{
    ns->ns = s->meta.ns;
    ns->name = s->meta.name;
    ns->cluster_ip = s->headless || !s->cluster_ip ? NULL : s->cluster_ip_str;
    ns->ports = ports;
    ns->n_ports = s->n_ports;
    ns->endpoints = eps;
    size_t n_eps = 0;
    for (size_t j = 0; j < s->n_ports; j++) {
        ports[j].port = s->ports[j].port;
        ports[j].target_port = s->ports[j].target_port;
        for (size_t k = 0; k < s->ports[j].n_endpoints; k++) {
            const mc_endpoint_t *e = &s->ports[j].endpoints[k];
            long at = find_ep(eps, n_eps, e->pod->ip_str);
            if (at < 0) {
                at = (long)n_eps++;
                eps[at].ip = e->pod->ip_str;
                eps[at].target_ports = tps + (size_t)at * s->n_ports;
            }
            tps[(size_t)at * s->n_ports + j] = e->port;
        }
    }
    ns->n_endpoints = n_eps;
}

int mc_sandbox_plan_build(const mc_model_t *m, const char *prefix, const char *state_dir,
                          mc_sandbox_plan_t *p)
{
    memset(p, 0, sizeof(*p));
    size_t n_ports = 0, n_eps = 0, n_tps = 0;
    for (size_t i = 0; i < m->n_services; i++) {
        const mc_service_t *s = &m->services[i];
        size_t e = 0;
        for (size_t j = 0; j < s->n_ports; j++)
            e += s->ports[j].n_endpoints;
        n_ports += s->n_ports;
        n_eps += e;
        n_tps += e * s->n_ports;
    }
    p->nodes = calloc(m->n_nodes + 1, sizeof(*p->nodes));
    p->node_ips = calloc(m->n_nodes + 1, sizeof(*p->node_ips));
    p->pods = calloc(m->n_pods + 1, sizeof(*p->pods));
    p->services = calloc(m->n_services + 1, sizeof(*p->services));
    p->ports = calloc(n_ports + 1, sizeof(*p->ports));
    p->endpoints = calloc(n_eps + 1, sizeof(*p->endpoints));
    p->target_ports = calloc(n_tps + 1, sizeof(*p->target_ports));
    if (!p->nodes || !p->node_ips || !p->pods || !p->services || !p->ports || !p->endpoints ||
        !p->target_ports) {
        mc_sandbox_plan_clear(p);
        return -ENOMEM;
    }
    for (size_t i = 0; i < m->n_nodes; i++) {
        mc_sandbox_node_ip(&m->nodes[i], p->node_ips[i]);
        p->nodes[i] = (mc_net_node_t){
            .name = m->nodes[i].name, .ip = p->node_ips[i], .pod_cidr = m->nodes[i].cidr};
    }
    for (size_t i = 0; i < m->n_pods; i++) {
        const mc_pod_t *pod = &m->pods[i];
        p->pods[i] = (mc_net_pod_t){
            .ns = pod->meta.ns, .name = pod->meta.name, .node = pod->node->name, .ip = pod->ip_str};
    }
    size_t po = 0, eo = 0, to = 0;
    for (size_t i = 0; i < m->n_services; i++) {
        const mc_service_t *s = &m->services[i];
        size_t e = 0;
        for (size_t j = 0; j < s->n_ports; j++)
            e += s->ports[j].n_endpoints;
        map_service(s, &p->services[i], p->ports + po, p->endpoints + eo, p->target_ports + to);
        po += s->n_ports;
        eo += e;
        to += e * s->n_ports;
    }
    p->net = (mc_net_plan_t){
        .prefix = prefix,
        .state_dir = state_dir,
        .gateway = MC_SANDBOX_GATEWAY,
        .prefix_len = MC_SANDBOX_PREFIX_LEN,
        .domain = m->trust_domain,
        .nodes = p->nodes,
        .n_nodes = m->n_nodes,
        .pods = p->pods,
        .n_pods = m->n_pods,
        .services = p->services,
        .n_services = m->n_services,
    };
    return 0;
}
