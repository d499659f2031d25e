/*
 * admin.h — ztunnel's operational HTTP endpoints, as Istio's ztunnel lays
 * them out, served by one thread with its own event loop:
 *
 *   admin (Istio: localhost:15000)
 *     GET  /                  the list of endpoints
 *     GET  /config_dump       src->config_dump() (JSON)
 *     GET  /workloads         src->workloads()   (JSON)
 *     GET  /certs             src->certs()       (JSON)
 *     GET  /logging           "current log level is <level>"
 *     POST /logging?level=L   zm_log_set_level(L); 400 for an unknown level
 *     POST /quitquitquit      src->quit(): the daemon starts draining
 *   metrics (Istio: 0.0.0.0:15020)
 *     GET  /metrics, /stats/prometheus   zm_metrics_render(src->metrics)
 *   readiness (Istio: 0.0.0.0:15021)
 *     GET  /healthz/ready     200 "ready" when src->ready(), else 503
 *
 * A JSON source that is NULL answers 404; one that returns NULL answers 503.
 * A wrong method on a known path answers 405. ready NULL counts as ready;
 * quit NULL makes /quitquitquit a 404.
 *
 * Ports: ZT_ADMIN_DISABLED (-1) leaves that listener out, 0 binds an
 * ephemeral port (read it with zt_admin_port), 1..65535 that port. The
 * readiness listener binds metrics_address, because the kubelet probes it
 * from outside the pod like Prometheus scrapes the metrics.
 *
 * Threading: the source callbacks run on the admin thread, concurrently
 * with the daemon's threads: they must be thread-safe and quick (each
 * request waits for them). zt_admin_start/stop from one control thread.
 */
#ifndef ZT_ADMIN_H
#define ZT_ADMIN_H

#include "metrics.h"
#include "zm.h"

#include <stdbool.h>

#define ZT_ADMIN_DISABLED (-1)

typedef struct zt_admin zt_admin_t;

typedef struct zt_admin_sources {
    char *(*config_dump)(void *arg); /* malloc'd JSON, or NULL */
    char *(*workloads)(void *arg);
    char *(*certs)(void *arg);
    bool (*ready)(void *arg);
    void (*quit)(void *arg);
    zm_metrics_t *metrics; /* must outlive the admin; NULL: empty page */
    void *arg;
} zt_admin_sources_t;

/* Which listener zt_admin_port reports. */
typedef enum zt_admin_listener {
    ZT_ADMIN_ADMIN = 0,
    ZT_ADMIN_METRICS,
    ZT_ADMIN_READINESS,
} zt_admin_listener_t;

/*
 * Starts the admin thread, which creates its loop and binds the listeners
 * before this returns: admin on address:admin_port (NULL address:
 * "127.0.0.1"), metrics and readiness on metrics_address (NULL: "0.0.0.0").
 * Addresses are numeric IPv4 or IPv6, or "localhost". src is copied.
 * Returns 0, or -errno with err filled (bad address, port in use, ...).
 */
int zt_admin_start(zt_admin_t **out, const char *address, int admin_port,
                   const char *metrics_address, int metrics_port, int readiness_port,
                   const zt_admin_sources_t *src, zm_err_t *err);

/* The bound port of a listener, or -ENOENT when it is disabled. */
int zt_admin_port(const zt_admin_t *a, zt_admin_listener_t which);

/* Stops the thread: requests in progress are dropped, the listeners close,
 * the loop is destroyed (waiting at most ZT_ADMIN_STOP_TIMEOUT_MS for the
 * kernel to report the closes). *a becomes NULL; NULL is a no-op. */
void zt_admin_stop(zt_admin_t **a);

#define ZT_ADMIN_STOP_TIMEOUT_MS 1000

#endif
