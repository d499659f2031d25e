/*
 * telemetry.c — Istio's TCP metrics and the access log for one ztunnel.
 *
 * A connection record holds its resolved label values (one allocation: the
 * record, then the strings), the series it counts bytes on and its own byte
 * totals for the access log. The series for closed/failed are looked up at
 * close because the response flags are only final then; looking them up at
 * open would also render a zero failed series for every healthy label set.
 *
 * Threading: the families' series lookups lock inside the registry; the
 * record itself is touched by one thread at a time (the connection's).
 */
#include "telemetry.h"

#include "log.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const ZT_TELEMETRY_LABELS[] = {
    "reporter",
    "source_workload",
    "source_canonical_service",
    "source_canonical_revision",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_cluster",
    "destination_service",
    "destination_service_namespace",
    "destination_service_name",
    "destination_workload",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_cluster",
    "request_protocol",
    "response_flags",
    "connection_security_policy",
    NULL,
};

/* Indexes into ZT_TELEMETRY_LABELS. */
enum {
    L_REPORTER,
    L_SRC_WORKLOAD,
    L_SRC_CSVC,
    L_SRC_CREV,
    L_SRC_NS,
    L_SRC_PRINCIPAL,
    L_SRC_APP,
    L_SRC_VERSION,
    L_SRC_CLUSTER,
    L_DST_SERVICE,
    L_DST_SVC_NS,
    L_DST_SVC_NAME,
    L_DST_WORKLOAD,
    L_DST_CSVC,
    L_DST_CREV,
    L_DST_NS,
    L_DST_PRINCIPAL,
    L_DST_APP,
    L_DST_VERSION,
    L_DST_CLUSTER,
    L_PROTOCOL,
    L_FLAGS,
    L_SECURITY,
    L_COUNT,
};

_Static_assert(L_COUNT == ZT_TELEMETRY_N_LABELS, "label count");

#define UNKNOWN "unknown"

struct zt_telemetry {
    zm_metric_family_t *opened;
    zm_metric_family_t *closed;
    zm_metric_family_t *sent;
    zm_metric_family_t *received;
    zm_metric_family_t *failed;
    char cluster[128];
};

struct zt_tcp_conn {
    zt_telemetry_t *t;
    zm_metric_series_t *sent;
    zm_metric_series_t *received;
    uint64_t start_ns;
    uint64_t sent_total;
    uint64_t received_total;
    const char *values[L_COUNT + 1]; /* NULL-terminated, point into strings */
    const char *src_addr;            /* NULL when not given */
    const char *dst_addr;
    const char *dst_hbone_addr;
    char strings[];
};

int zt_telemetry_new(zt_telemetry_t **out, zm_metrics_t *m, const char *cluster)
{
    zt_telemetry_t *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    snprintf(t->cluster, sizeof(t->cluster), "%s", cluster && *cluster ? cluster : "Kubernetes");
    t->opened =
        zm_metrics_counter(m, "istio_tcp_connections_opened_total",
                           "The total number of TCP connections opened", ZT_TELEMETRY_LABELS);
    t->closed =
        zm_metrics_counter(m, "istio_tcp_connections_closed_total",
                           "The total number of TCP connections closed", ZT_TELEMETRY_LABELS);
    t->sent = zm_metrics_counter(
        m, "istio_tcp_sent_bytes_total",
        "The size of total bytes sent during response in case of a TCP connection",
        ZT_TELEMETRY_LABELS);
    t->received = zm_metrics_counter(
        m, "istio_tcp_received_bytes_total",
        "The size of total bytes received during request in case of a TCP connection",
        ZT_TELEMETRY_LABELS);
    t->failed = zm_metrics_counter(m, "istio_tcp_connections_failed_total",
                                   "The total number of TCP connections that failed to establish",
                                   ZT_TELEMETRY_LABELS);
    zm_metric_family_t *build = zm_metrics_gauge(m, "istio_build", "Istio component build info",
                                                 ZM_LABELS("component", "tag"));
    zm_metric_series_t *b = zm_metric_series(build, ZM_LABELS("ztunnel", ZT_VERSION));
    if (!t->opened || !t->closed || !t->sent || !t->received || !t->failed || !b) {
        free(t);
        return -EINVAL;
    }
    zm_gauge_set(b, 1);
    *out = t;
    return 0;
}

void zt_telemetry_free(zt_telemetry_t **t)
{
    free(*t);
    *t = NULL;
}

static bool known(const char *s)
{
    return s && *s;
}

static const char *or_default(const char *s, const char *dflt)
{
    return known(s) ? s : dflt;
}

/* The label values Istio would render for l, before copying. */
static void resolve(const zt_telemetry_t *t, const zt_conn_labels_t *l, const char *v[L_COUNT])
{
    v[L_REPORTER] = or_default(l->reporter, UNKNOWN);
    v[L_SRC_WORKLOAD] = or_default(l->source_workload, UNKNOWN);
    v[L_SRC_CSVC] = or_default(l->source_canonical_service, UNKNOWN);
    v[L_SRC_CREV] = or_default(l->source_canonical_revision, UNKNOWN);
    v[L_SRC_NS] = or_default(l->source_workload_namespace, UNKNOWN);
    v[L_SRC_PRINCIPAL] = or_default(l->source_principal, UNKNOWN);
    v[L_SRC_APP] = or_default(l->source_app, v[L_SRC_CSVC]);
    v[L_SRC_VERSION] = or_default(l->source_version, v[L_SRC_CREV]);
    v[L_SRC_CLUSTER] =
        or_default(l->source_cluster, known(l->source_workload) ? t->cluster : UNKNOWN);
    v[L_DST_SERVICE] = or_default(l->destination_service, UNKNOWN);
    v[L_DST_SVC_NS] = or_default(l->destination_service_namespace, UNKNOWN);
    v[L_DST_SVC_NAME] = or_default(l->destination_service_name, UNKNOWN);
    v[L_DST_WORKLOAD] = or_default(l->destination_workload, UNKNOWN);
    v[L_DST_CSVC] = or_default(l->destination_canonical_service, UNKNOWN);
    v[L_DST_CREV] = or_default(l->destination_canonical_revision, UNKNOWN);
    v[L_DST_NS] = or_default(l->destination_workload_namespace, UNKNOWN);
    v[L_DST_PRINCIPAL] = or_default(l->destination_principal, UNKNOWN);
    v[L_DST_APP] = or_default(l->destination_app, v[L_DST_CSVC]);
    v[L_DST_VERSION] = or_default(l->destination_version, v[L_DST_CREV]);
    v[L_DST_CLUSTER] =
        or_default(l->destination_cluster, known(l->destination_workload) ? t->cluster : UNKNOWN);
    v[L_PROTOCOL] = or_default(l->request_protocol, "tcp");
    v[L_FLAGS] = or_default(l->response_flags, "-");
    v[L_SECURITY] = or_default(l->connection_security_policy, UNKNOWN);
}

/* Copies s to *p and returns the copy (NULL stays NULL). */
static const char *stash(char **p, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    memcpy(*p, s, n);
    const char *copy = *p;
    *p += n;
    return copy;
}

zt_tcp_conn_t *zt_telemetry_open(zt_telemetry_t *t, const zt_conn_labels_t *l,
                                 const zt_conn_addrs_t *addrs)
{
    if (!t || !l)
        return NULL;
    const char *v[L_COUNT];
    resolve(t, l, v);
    const zt_conn_addrs_t none = {0};
    if (!addrs)
        addrs = &none;
    const char *extra[3] = {addrs->src_addr, addrs->dst_addr, addrs->dst_hbone_addr};
    size_t total = 0;
    for (size_t i = 0; i < L_COUNT; i++)
        total += strlen(v[i]) + 1;
    for (size_t i = 0; i < 3; i++)
        total += known(extra[i]) ? strlen(extra[i]) + 1 : 0;
    zt_tcp_conn_t *c = malloc(sizeof(*c) + total);
    if (!c)
        return NULL;
    char *p = c->strings;
    for (size_t i = 0; i < L_COUNT; i++)
        c->values[i] = stash(&p, v[i]);
    c->values[L_COUNT] = NULL;
    c->src_addr = stash(&p, known(extra[0]) ? extra[0] : NULL);
    c->dst_addr = stash(&p, known(extra[1]) ? extra[1] : NULL);
    c->dst_hbone_addr = stash(&p, known(extra[2]) ? extra[2] : NULL);
    c->t = t;
    c->start_ns = zm_now_ns();
    c->sent_total = c->received_total = 0;
    /* Istio counts opened and binds the byte counters with the labels known
     * at open; only closed sees the final response flags. */
    zm_counter_inc(zm_metric_series(t->opened, c->values));
    c->sent = zm_metric_series(t->sent, c->values);
    c->received = zm_metric_series(t->received, c->values);
    return c;
}

void zt_telemetry_bytes(zt_tcp_conn_t *c, uint64_t sent, uint64_t received)
{
    if (!c)
        return;
    c->sent_total += sent;
    c->received_total += received;
    if (sent)
        zm_counter_add(c->sent, sent);
    if (received)
        zm_counter_add(c->received, received);
}

/* The access log value of a resolved label: left out when unknown. */
static const char *field(const zt_tcp_conn_t *c, int i)
{
    return strcmp(c->values[i], UNKNOWN) == 0 ? NULL : c->values[i];
}

static void access_log(const zt_tcp_conn_t *c, const char *error)
{
    uint64_t now = zm_now_ns();
    char duration[32];
    snprintf(duration, sizeof(duration), "%" PRIu64 "ms",
             now > c->start_ns ? (now - c->start_ns) / 1000000u : 0);
    const char *direction = strcmp(c->values[L_REPORTER], "source") == 0 ? "outbound" : "inbound";
    const struct {
        const char *key;
        const char *value;
    } strs[] = {
        {"src.addr", c->src_addr},
        {"src.workload", field(c, L_SRC_WORKLOAD)},
        {"src.namespace", field(c, L_SRC_NS)},
        {"src.identity", field(c, L_SRC_PRINCIPAL)},
        {"src.cluster", field(c, L_SRC_CLUSTER)},
        {"dst.addr", c->dst_addr},
        {"dst.hbone_addr", c->dst_hbone_addr},
        {"dst.service", field(c, L_DST_SERVICE)},
        {"dst.workload", field(c, L_DST_WORKLOAD)},
        {"dst.namespace", field(c, L_DST_NS)},
        {"dst.identity", field(c, L_DST_PRINCIPAL)},
        {"dst.cluster", field(c, L_DST_CLUSTER)},
        {"direction", direction},
    };
    zm_log_kv_t kv[4 + ZM_ARRAY_LEN(strs) + 4];
    size_t n = 0;
    kv[n++] = ZM_KV_S("level", error ? "error" : "info");
    kv[n++] = ZM_KV_S("scope", "access");
    kv[n++] = ZM_KV_S("message", "connection complete");
    for (size_t i = 0; i < ZM_ARRAY_LEN(strs); i++)
        if (strs[i].value)
            kv[n++] = ZM_KV_S(strs[i].key, strs[i].value);
    kv[n++] = ZM_KV_U("bytes_sent", c->sent_total);
    kv[n++] = ZM_KV_U("bytes_recv", c->received_total);
    kv[n++] = ZM_KV_S("duration", duration);
    if (error)
        kv[n++] = ZM_KV_S("error", error);
    zm_log_access(kv, n);
}

void zt_telemetry_close(zt_tcp_conn_t **pc, const char *response_flags, const char *error)
{
    zt_tcp_conn_t *c = *pc;
    if (!c)
        return;
    *pc = NULL;
    const char *v[L_COUNT + 1];
    memcpy(v, c->values, sizeof(v));
    v[L_FLAGS] = or_default(response_flags, "-");
    zm_counter_inc(zm_metric_series(c->t->closed, v));
    if (error)
        zm_counter_inc(zm_metric_series(c->t->failed, v));
    access_log(c, error);
    free(c);
}
