/*
 * telemetry.h — Istio's TCP traffic metrics and the per-connection access
 * log, as ztunnel exports them.
 *
 * Families (registered once in the daemon's registry, Istio's names):
 *   istio_tcp_connections_opened_total, istio_tcp_connections_closed_total,
 *   istio_tcp_sent_bytes_total, istio_tcp_received_bytes_total,
 *   istio_tcp_connections_failed_total  — CommonTrafficLabels, in Istio's
 *   order (ZT_TELEMETRY_LABELS below);
 *   istio_build{component="ztunnel",tag=<version>} — a gauge set to 1.
 *
 * Which label set each count lands on mirrors ztunnel's ConnectionResult
 * (src/proxy/metrics.rs): opened and the two byte counters use the labels
 * known at open (response_flags usually "-"); closed and failed use the same
 * labels with the final response_flags given at close. A connection's
 * series are looked up once at open (a mutex per family, an allocation for
 * the connection record); byte deltas afterwards are relaxed atomic adds.
 *
 * Unknown values: a NULL or empty label renders "unknown", as Istio does,
 * except request_protocol ("tcp"), response_flags ("-"), and app/version,
 * which fall back to the canonical service/revision like Istio derives them;
 * a cluster left NULL is the telemetry's own cluster when that side's
 * workload is known, else "unknown".
 *
 * The access log: at close, one entry through zm_log_access (JSON by
 * default) shaped like ztunnel's "connection complete":
 *   {"ts":..., "level":"info"|"error", "scope":"access",
 *    "message":"connection complete", "src.addr":..., "src.workload":...,
 *    "src.namespace":..., "src.identity":..., "src.cluster":..., "dst.addr":...,
 *    "dst.hbone_addr":..., "dst.service":..., "dst.workload":...,
 *    "dst.namespace":..., "dst.identity":..., "dst.cluster":...,
 *    "direction":"inbound"|"outbound", "bytes_sent":N, "bytes_recv":N,
 *    "duration":"12ms", "error":"..."}
 * Like Istio, a field whose value is unknown is left out (so is "error" on
 * a clean close); duration is a string of whole milliseconds with "ms", as
 * Istio prints it; bytes are numbers. direction is "outbound" for reporter
 * "source", "inbound" otherwise. bytes_sent is what this ztunnel sent
 * towards the connection's far end as counted by zt_telemetry_bytes, the
 * same figure as istio_tcp_sent_bytes_total.
 *
 * Threading: zt_telemetry_new/free on the control thread; open, bytes and
 * close from any thread, but one connection's record from one thread at a
 * time (its worker).
 */
#ifndef ZT_TELEMETRY_H
#define ZT_TELEMETRY_H

#include "metrics.h"

#include <stdint.h>

#ifndef ZT_VERSION
#define ZT_VERSION "0.1.0-dev"
#endif

typedef struct zt_telemetry zt_telemetry_t;
typedef struct zt_tcp_conn zt_tcp_conn_t;

/* CommonTrafficLabels. Strings are borrowed during the call only. */
typedef struct zt_conn_labels {
    const char *reporter; /* "source" (outbound) or "destination" (inbound) */
    const char *source_workload;
    const char *source_canonical_service;
    const char *source_canonical_revision;
    const char *source_workload_namespace;
    const char *source_principal; /* spiffe://td/ns/<ns>/sa/<sa> */
    const char *source_app;       /* NULL: source_canonical_service */
    const char *source_version;   /* NULL: source_canonical_revision */
    const char *source_cluster;
    const char *destination_service; /* hostname, e.g. echo.default.svc.cluster.local */
    const char *destination_service_namespace;
    const char *destination_service_name;
    const char *destination_workload;
    const char *destination_canonical_service;
    const char *destination_canonical_revision;
    const char *destination_workload_namespace;
    const char *destination_principal;
    const char *destination_app;     /* NULL: destination_canonical_service */
    const char *destination_version; /* NULL: destination_canonical_revision */
    const char *destination_cluster;
    const char *request_protocol;           /* NULL: "tcp" */
    const char *response_flags;             /* known at open; NULL: "-" */
    const char *connection_security_policy; /* "mutual_tls"; NULL: "unknown" */
} zt_conn_labels_t;

/* What the access log needs besides the labels ("ip:port" strings; NULL
 * when not known, e.g. no HBONE hop for passthrough). */
typedef struct zt_conn_addrs {
    const char *src_addr;
    const char *dst_addr;
    const char *dst_hbone_addr;
} zt_conn_addrs_t;

/* The label names of the traffic families, in order, NULL-terminated. */
extern const char *const ZT_TELEMETRY_LABELS[];
#define ZT_TELEMETRY_N_LABELS 23

/* Registers the families in m (which must outlive the telemetry) and sets
 * istio_build. cluster: this ztunnel's cluster id (NULL: "Kubernetes", Istio's
 * default). 0, -ENOMEM, or -EINVAL when a family name is already taken by a
 * different definition. */
int zt_telemetry_new(zt_telemetry_t **out, zm_metrics_t *m, const char *cluster);
/* After every connection record has been closed. */
void zt_telemetry_free(zt_telemetry_t **t);

/* A connection begins: counts opened and returns its record (the label
 * strings are copied), or NULL when memory runs out (then the connection
 * is simply not accounted; bytes/close accept NULL). addrs may be NULL. */
zt_tcp_conn_t *zt_telemetry_open(zt_telemetry_t *t, const zt_conn_labels_t *l,
                                 const zt_conn_addrs_t *addrs);

/* Adds deltas since the last call: sent towards the far end, received from
 * it. Call periodically on long connections and once more at close. */
void zt_telemetry_bytes(zt_tcp_conn_t *c, uint64_t sent, uint64_t received);

/* The connection ended: counts closed (with response_flags, "-" or NULL
 * when clean) and, when error is not NULL, failed; writes the access log
 * entry and frees the record. *c becomes NULL. */
void zt_telemetry_close(zt_tcp_conn_t **c, const char *response_flags, const char *error);

#endif
