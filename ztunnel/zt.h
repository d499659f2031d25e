/*
 * zt.h — the ztunnel daemon's shared types and the prototypes of its
 * modules. One ztunnel runs per node:
 *
 *   control thread: enrollment socket (add/del/snapshot from the node
 *     agent), certificate rotation checks, config reload, admin HTTP;
 *   worker threads (one io_uring loop each): for every enrolled local pod,
 *     listeners inside the pod's network namespace on 15001 (outbound
 *     capture), 15006 (inbound plaintext) and 15008 (inbound HBONE); the
 *     HBONE client pool; every proxied connection.
 *
 * A zt_pod_t is created by the control thread when a pod is enrolled and is
 * immutable afterwards except for its reference count; each worker holds a
 * reference for as long as it has listeners or connections for the pod.
 * Config snapshots are taken per connection (zm_config_slot_acquire) so a
 * reload never changes a decision half way.
 */
#ifndef ZT_H
#define ZT_H

#include "config.h"
#include "hbone_io.h"
#include "loop.h"
#include "metrics.h"
#include "tls.h"
#include "workers.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>

#define ZT_MARK 0x539 /* ztunnel's own sockets: the capture rules let them pass */

typedef struct zt_daemon zt_daemon_t;
typedef struct zt_worker zt_worker_t;
typedef struct zt_certs zt_certs_t;
typedef struct zt_telemetry zt_telemetry_t;

/* A local workload enrolled by the node agent. */
typedef struct zt_pod {
    char uid[128];
    char name[128];
    char ns[64];
    char service_account[64];
    char address[64];
    struct in_addr ip;
    int netns_fd;
    atomic_uint refs;
} zt_pod_t;

struct zt_daemon {
    const char *config_path;
    zm_config_slot_t *config;
    zt_certs_t *certs;
    zm_metrics_t *metrics;
    zt_telemetry_t *telemetry;
    zm_workers_t *workers;
    zt_worker_t **worker; /* [n_workers] */
    unsigned n_workers;
    int host_netns_fd; /* the namespace ztunnel started in */
    atomic_bool ready;
    atomic_bool draining;
    /* The captured pods as JSON for the admin /workloads page: written by
     * the control thread, read by the admin thread, under workloads_mu. */
    pthread_mutex_t workloads_mu;
    char *workloads_json;
};

/* ---- pods (pods.c) ---- */

zt_pod_t *zt_pod_ref(zt_pod_t *p);
void zt_pod_unref(zt_pod_t **p);

/* A socket of `type` created inside the pod's network namespace (or the
 * host's when nsfd < 0), marked ZT_MARK, with TCP congestion control
 * `congestion` (NULL or "": the namespace's default). -errno on failure. */
int zt_netns_socket(int nsfd, int host_nsfd, int type, const char *congestion);
/* A listening TCP socket in nsfd on port (SO_REUSEPORT, so each worker has
 * its own); the connections it accepts inherit `congestion`. */
int zt_netns_listen(int nsfd, int host_nsfd, uint16_t port, const char *congestion);

/* Which TCP congestion control a socket gets (config tcp.*): legs between
 * ztunnel and a local pod's application never leave the node, legs to
 * other nodes do. Copied out of the snapshot (names are at most 15 chars)
 * so a socket made after its release still gets it. */
typedef struct zt_congestion {
    char pod[16];
    char mesh[16];
} zt_congestion_t;
void zt_congestion_of(zt_congestion_t *out, const zm_config_t *cfg);

/* ---- certificates (certs.c) ---- */

int zt_certs_new(zt_certs_t **out, const char *cert_dir, const char *trust_domain);
void zt_certs_free(zt_certs_t **c);
/* A new reference to the TLS context of identity (ns, sa), loaded on first
 * use from cert_dir/<ns>/<sa>/; NULL (err filled) if it cannot be loaded. */
zm_tls_ctx_t *zt_certs_get(zt_certs_t *c, const char *ns, const char *sa, bool server,
                           zm_err_t *err);
/* Re-reads changed files of every loaded identity (control thread). */
int zt_certs_reload(zt_certs_t *c);
/* JSON for the admin /certs page: identity → not_after. */
char *zt_certs_dump(zt_certs_t *c);

/* ---- workers (worker.c) ---- */

/* Per worker: the loop, the HBONE pool, the pods it serves. */
int zt_worker_init(zm_loop_t *loop, unsigned idx, void *daemon);
void zt_worker_drain(zm_loop_t *loop, unsigned idx, void *daemon);
void zt_worker_fini(zm_loop_t *loop, unsigned idx, void *daemon);
/* Control thread → every worker: start / stop serving pod (posted). */
int zt_workers_add_pod(zt_daemon_t *d, zt_pod_t *p);
int zt_workers_remove_pod(zt_daemon_t *d, zt_pod_t *p);
/* After a config reload: every worker re-judges its inbound connections. */
int zt_workers_recheck(zt_daemon_t *d);

#endif
