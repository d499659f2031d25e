/*
 * report.c — fills Istio's CommonTrafficLabels (see report.h). Unknown
 * values stay NULL; telemetry.c writes them as "unknown".
 */
#include "report.h"

#include <stdio.h>
#include <string.h>

static const char *label(const zm_config_workload_t *w, const char *key)
{
    for (size_t i = 0; w && i < w->n_labels; i++)
        if (!strcmp(w->labels[i].key, key))
            return w->labels[i].value;
    return NULL;
}

/* Istio names the workload by its owner (the Deployment); our pods carry
 * it as canonical_name when they have no app label, so use the pod name
 * minus nothing: the config keeps the pod name, which is what users see. */
static const char *workload_name(const zm_config_workload_t *w)
{
    return w ? w->name : NULL;
}

void zt_report_labels(zt_conn_labels_t *l, zt_report_bufs_t *b, const zm_config_t *cfg,
                      bool outbound, const zm_config_workload_t *src, const char *peer_principal,
                      const zm_config_workload_t *dst, const zm_config_service_t *svc, bool mtls)
{
    memset(l, 0, sizeof(*l));
    l->reporter = outbound ? "source" : "destination";
    if (peer_principal)
        snprintf(b->src_principal, sizeof(b->src_principal), "%s", peer_principal);
    else if (src)
        snprintf(b->src_principal, sizeof(b->src_principal), "spiffe://%s/ns/%s/sa/%s",
                 cfg->node.trust_domain, src->ns, src->service_account);
    else
        b->src_principal[0] = 0;
    if (dst)
        snprintf(b->dst_principal, sizeof(b->dst_principal), "spiffe://%s/ns/%s/sa/%s",
                 cfg->node.trust_domain, dst->ns, dst->service_account);
    else
        b->dst_principal[0] = 0;
    l->source_workload = workload_name(src);
    l->source_canonical_service = src ? src->canonical_name : NULL;
    l->source_canonical_revision = src ? src->canonical_revision : NULL;
    l->source_workload_namespace = src ? src->ns : NULL;
    l->source_principal = b->src_principal[0] ? b->src_principal : NULL;
    l->source_app = label(src, "app");
    l->source_version = label(src, "version");
    l->destination_service = svc ? svc->hostname : NULL;
    l->destination_service_namespace = svc ? svc->ns : (dst ? dst->ns : NULL);
    l->destination_service_name = svc ? svc->name : NULL;
    l->destination_workload = workload_name(dst);
    l->destination_canonical_service = dst ? dst->canonical_name : NULL;
    l->destination_canonical_revision = dst ? dst->canonical_revision : NULL;
    l->destination_workload_namespace = dst ? dst->ns : NULL;
    l->destination_principal = b->dst_principal[0] ? b->dst_principal : NULL;
    l->destination_app = label(dst, "app");
    l->destination_version = label(dst, "version");
    l->connection_security_policy = mtls ? "mutual_tls" : "unknown";
}
