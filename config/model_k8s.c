/*
 * model_k8s.c — Pods, Deployments and Services from their YAML objects.
 *
 * A Deployment is expanded at load time into spec.replicas pods named
 * `<deploy>-<i>` built from its template, so the rest of meshctl only ever
 * sees pods. Field errors name the object and the field path as written
 * (spec.template.spec.containers[1].ports[0].containerPort), at the line of
 * the offending value.
 */
#include "model_int.h"

#include <stdio.h>
#include <string.h>

/* Reads a pod spec (spec of a Pod, spec.template.spec of a Deployment). */
static int load_pod_spec(mc_load_t *l, const mc_yaml_node_t *spec, const char *at, mc_pod_t *pod)
{
    char f[160];
    int rc;
    pod->service_account = "default";
    if (spec == NULL || spec->kind == MC_YAML_NULL)
        return 0;
    if (spec->kind != MC_YAML_MAP)
        return mc_load_fail(l, spec, "%s: must be a map, not a %s", at, mc_yaml_kind_name(spec));
    const char *sa = NULL;
    snprintf(f, sizeof(f), "%s.serviceAccountName", at);
    if ((rc = mc_load_opt_str(l, mc_yaml_get(spec, "serviceAccountName"), f, &sa)) < 0)
        return rc;
    if (sa == NULL) { /* the deprecated spelling */
        snprintf(f, sizeof(f), "%s.serviceAccount", at);
        if ((rc = mc_load_opt_str(l, mc_yaml_get(spec, "serviceAccount"), f, &sa)) < 0)
            return rc;
    }
    if (sa != NULL && sa[0])
        pod->service_account = sa;
    snprintf(f, sizeof(f), "%s.nodeName", at);
    if ((rc = mc_load_opt_str(l, mc_yaml_get(spec, "nodeName"), f, &pod->given_node)) < 0)
        return rc;
    if (pod->given_node && !pod->given_node[0])
        pod->given_node = NULL;

    const mc_yaml_node_t *cs = mc_yaml_get(spec, "containers");
    if (cs == NULL || cs->kind == MC_YAML_NULL)
        return 0;
    if (cs->kind != MC_YAML_SEQ)
        return mc_load_fail(l, cs, "%s.containers: must be a sequence, not a %s", at,
                            mc_yaml_kind_name(cs));
    size_t total = 0;
    for (size_t i = 0; i < cs->n; i++) {
        const mc_yaml_node_t *c = cs->items[i];
        if (c->kind != MC_YAML_MAP)
            return mc_load_fail(l, c, "%s.containers[%zu]: must be a map, not a %s", at, i,
                                mc_yaml_kind_name(c));
        const mc_yaml_node_t *ps = mc_yaml_get(c, "ports");
        if (ps != NULL && ps->kind != MC_YAML_NULL && ps->kind != MC_YAML_SEQ)
            return mc_load_fail(l, ps, "%s.containers[%zu].ports: must be a sequence, not a %s", at,
                                i, mc_yaml_kind_name(ps));
        if (ps != NULL && ps->kind == MC_YAML_SEQ)
            total += ps->n;
    }
    if (total == 0)
        return 0;
    mc_container_port_t *out = mc_arena_alloc(l->a, total * sizeof(*out));
    if (out == NULL)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < cs->n; i++) {
        const mc_yaml_node_t *ps = mc_yaml_get(cs->items[i], "ports");
        for (size_t j = 0; ps && ps->kind == MC_YAML_SEQ && j < ps->n; j++, k++) {
            const mc_yaml_node_t *p = ps->items[j];
            snprintf(f, sizeof(f), "%s.containers[%zu].ports[%zu]", at, i, j);
            if (p->kind != MC_YAML_MAP)
                return mc_load_fail(l, p, "%s: must be a map, not a %s", f, mc_yaml_kind_name(p));
            const mc_yaml_node_t *cp = mc_yaml_get(p, "containerPort");
            char ff[200];
            snprintf(ff, sizeof(ff), "%s.containerPort", f);
            if (cp == NULL)
                return mc_load_fail(l, p, "%s is required", ff);
            if ((rc = mc_load_port(l, cp, ff, &out[k].port)) < 0)
                return rc;
            snprintf(ff, sizeof(ff), "%s.name", f);
            if ((rc = mc_load_opt_str(l, mc_yaml_get(p, "name"), ff, &out[k].name)) < 0)
                return rc;
            snprintf(ff, sizeof(ff), "%s.protocol", f);
            if ((rc = mc_load_opt_str(l, mc_yaml_get(p, "protocol"), ff, &out[k].protocol)) < 0)
                return rc;
            if (out[k].protocol == NULL)
                out[k].protocol = "TCP";
        }
    }
    pod->ports = out;
    pod->n_ports = total;
    return 0;
}

int mc_load_pod(mc_load_t *l, const mc_yaml_node_t *obj)
{
    mc_pod_t pod = {0};
    int rc = mc_load_meta(l, obj, false, &pod.meta);
    if (rc < 0)
        return rc;
    if ((rc = load_pod_spec(l, mc_yaml_get(obj, "spec"), "spec", &pod)) < 0)
        return rc;
    const mc_yaml_node_t *ipn = mc_yaml_path(obj, "status.podIP");
    if ((rc = mc_load_opt_str(l, ipn, "status.podIP", &pod.given_ip)) < 0)
        return rc;
    if (pod.given_ip && !pod.given_ip[0])
        pod.given_ip = NULL;
    if (pod.given_ip && mc_ipv4_parse(pod.given_ip, &pod.ip) < 0)
        return mc_load_fail(l, ipn, "status.podIP: \"%s\" is not an IPv4 address", pod.given_ip);
    mc_pod_t *p = MC_PUSH(l->m, pods, CAP_POD);
    if (p == NULL)
        return -ENOMEM;
    *p = pod;
    return 0;
}

int mc_load_deployment(mc_load_t *l, const mc_yaml_node_t *obj)
{
    mc_meta_t dm = {0};
    int rc = mc_load_meta(l, obj, false, &dm);
    if (rc < 0)
        return rc;
    const mc_yaml_node_t *spec = mc_yaml_get(obj, "spec");
    if (spec == NULL || spec->kind != MC_YAML_MAP)
        return mc_load_fail(l, spec ? spec : obj, "spec is required (a map)");
    long long replicas = 1;
    const mc_yaml_node_t *rn = mc_yaml_get(spec, "replicas");
    if (rn != NULL && rn->kind != MC_YAML_NULL) {
        if (mc_yaml_int(rn, &replicas) < 0)
            return mc_load_fail(l, rn, "spec.replicas: must be an integer");
        if (replicas < 0)
            return mc_load_fail(l, rn, "spec.replicas: %lld is negative", replicas);
        if (replicas > MC_MAX_REPLICAS)
            return mc_load_fail(l, rn, "spec.replicas: %lld is over the limit of %d", replicas,
                                MC_MAX_REPLICAS);
    }
    const mc_yaml_node_t *tpl = mc_yaml_get(spec, "template");
    if (tpl == NULL || tpl->kind != MC_YAML_MAP)
        return mc_load_fail(l, tpl ? tpl : spec, "spec.template is required (a map)");
    mc_meta_t tm = dm;
    const mc_yaml_node_t *tmd = mc_yaml_get(tpl, "metadata");
    if ((rc = mc_load_labels(l, mc_yaml_get(tmd, "labels"), "spec.template.metadata.labels",
                             &tm.labels)) < 0 ||
        (rc = mc_load_labels(l, mc_yaml_get(tmd, "annotations"),
                             "spec.template.metadata.annotations", &tm.annotations)) < 0)
        return rc;
    tm.file = tpl->file;
    tm.line = tpl->line;
    mc_pod_t proto = {.meta = tm, .owner = dm.name};
    if ((rc = load_pod_spec(l, mc_yaml_get(tpl, "spec"), "spec.template.spec", &proto)) < 0)
        return rc;
    for (long long i = 0; i < replicas; i++) {
        mc_pod_t *p = MC_PUSH(l->m, pods, CAP_POD);
        if (p == NULL)
            return -ENOMEM;
        *p = proto;
        p->meta.name = mc_arena_printf(l->a, "%s-%lld", dm.name, i);
        p->meta._seq = l->seq++;
        if (p->meta.name == NULL)
            return -ENOMEM;
    }
    return 0;
}

static int load_target_port(mc_load_t *l, const mc_yaml_node_t *tp, const char *f,
                            mc_service_port_t *sp)
{
    if (tp == NULL || tp->kind == MC_YAML_NULL) {
        sp->target_port = sp->port;
        return 0;
    }
    if (mc_yaml_is_int(tp))
        return mc_load_port(l, tp, f, &sp->target_port);
    if (tp->kind != MC_YAML_SCALAR || mc_yaml_is_bool(tp))
        return mc_load_fail(l, tp, "%s: must be a port number or a port name, not a %s", f,
                            tp->kind == MC_YAML_SCALAR ? "boolean" : mc_yaml_kind_name(tp));
    bool letter = false;
    for (size_t i = 0; i < tp->len; i++)
        letter = letter || (tp->str[i] >= 'a' && tp->str[i] <= 'z') ||
                 (tp->str[i] >= 'A' && tp->str[i] <= 'Z');
    if (!letter)
        return mc_load_fail(l, tp, "%s: \"%s\" is not a port name (write a number unquoted)", f,
                            tp->str);
    sp->target_port_name = tp->str;
    return 0;
}

int mc_load_service(mc_load_t *l, const mc_yaml_node_t *obj)
{
    mc_service_t svc = {0};
    int rc = mc_load_meta(l, obj, false, &svc.meta);
    if (rc < 0)
        return rc;
    const mc_yaml_node_t *spec = mc_yaml_get(obj, "spec");
    if (spec == NULL || spec->kind != MC_YAML_MAP)
        return mc_load_fail(l, spec ? spec : obj, "spec is required (a map)");
    if ((rc = mc_load_labels(l, mc_yaml_get(spec, "selector"), "spec.selector", &svc.selector)) < 0)
        return rc;
    const mc_yaml_node_t *cip = mc_yaml_get(spec, "clusterIP");
    if ((rc = mc_load_opt_str(l, cip, "spec.clusterIP", &svc.given_cluster_ip)) < 0)
        return rc;
    if (svc.given_cluster_ip && !svc.given_cluster_ip[0])
        svc.given_cluster_ip = NULL;
    if (svc.given_cluster_ip && strcmp(svc.given_cluster_ip, "None") != 0 &&
        mc_ipv4_parse(svc.given_cluster_ip, &svc.cluster_ip) < 0)
        return mc_load_fail(l, cip, "spec.clusterIP: \"%s\" is not an IPv4 address or None",
                            svc.given_cluster_ip);

    const mc_yaml_node_t *ps = mc_yaml_get(spec, "ports");
    if (ps != NULL && ps->kind != MC_YAML_NULL && ps->kind != MC_YAML_SEQ)
        return mc_load_fail(l, ps, "spec.ports: must be a sequence, not a %s",
                            mc_yaml_kind_name(ps));
    size_t n = ps && ps->kind == MC_YAML_SEQ ? ps->n : 0;
    mc_service_port_t *out = n ? mc_arena_alloc(l->a, n * sizeof(*out)) : NULL;
    if (n && out == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const mc_yaml_node_t *p = ps->items[i];
        char f[64];
        if (p->kind != MC_YAML_MAP)
            return mc_load_fail(l, p, "spec.ports[%zu]: must be a map, not a %s", i,
                                mc_yaml_kind_name(p));
        const mc_yaml_node_t *pn = mc_yaml_get(p, "port");
        snprintf(f, sizeof(f), "spec.ports[%zu].port", i);
        if (pn == NULL)
            return mc_load_fail(l, p, "%s is required", f);
        if ((rc = mc_load_port(l, pn, f, &out[i].port)) < 0)
            return rc;
        snprintf(f, sizeof(f), "spec.ports[%zu].targetPort", i);
        if ((rc = load_target_port(l, mc_yaml_get(p, "targetPort"), f, &out[i])) < 0)
            return rc;
        snprintf(f, sizeof(f), "spec.ports[%zu].name", i);
        if ((rc = mc_load_opt_str(l, mc_yaml_get(p, "name"), f, &out[i].name)) < 0)
            return rc;
        snprintf(f, sizeof(f), "spec.ports[%zu].protocol", i);
        if ((rc = mc_load_opt_str(l, mc_yaml_get(p, "protocol"), f, &out[i].protocol)) < 0)
            return rc;
        if (out[i].protocol == NULL)
            out[i].protocol = "TCP";
        snprintf(f, sizeof(f), "spec.ports[%zu].appProtocol", i);
        if ((rc = mc_load_opt_str(l, mc_yaml_get(p, "appProtocol"), f, &out[i].app_protocol)) < 0)
            return rc;
    }
    svc.ports = out;
    svc.n_ports = n;
    mc_service_t *s = MC_PUSH(l->m, services, CAP_SVC);
    if (s == NULL)
        return -ENOMEM;
    *s = svc;
    return 0;
}
