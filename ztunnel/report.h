/*
 * report.h — Istio's connection labels from what ztunnel knows of both
 * ends (config workloads, the service dialled, the peer's identity), for
 * telemetry.h. Strings point into the snapshot or into `bufs`, so the
 * labels are valid while both are; zt_telemetry_open copies them.
 */
#ifndef ZT_REPORT_H
#define ZT_REPORT_H

#include "config.h"
#include "telemetry.h"

typedef struct zt_report_bufs {
    char src_principal[256], dst_principal[256];
} zt_report_bufs_t;

/* outbound: reporter "source"; else "destination". src or dst may be NULL
 * (unknown: outside the mesh); peer_principal overrides the source's
 * (inbound: what its certificate proved). */
void zt_report_labels(zt_conn_labels_t *l, zt_report_bufs_t *b, const zm_config_t *cfg,
                      bool outbound, const zm_config_workload_t *src, const char *peer_principal,
                      const zm_config_workload_t *dst, const zm_config_service_t *svc, bool mtls);

#endif
