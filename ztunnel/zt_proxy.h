/*
 * zt_proxy.h — the worker's view of things (internal to ztunnel/): the
 * worker, its per-pod listener sets, and the three accept handlers that
 * start every proxied connection (outbound.c, inbound.c).
 */
#ifndef ZT_PROXY_H
#define ZT_PROXY_H

#include "splice.h"
#include "telemetry.h"
#include "tunnel.h"
#include "zt.h"

typedef struct zt_wpod zt_wpod_t;
typedef struct zt_inconn zt_inconn_t;

struct zt_worker {
    zt_daemon_t *d;
    zm_loop_t *loop;
    unsigned idx;
    zm_hbone_pool_t *pool;
    zt_wpod_t *pods;
    uint64_t rr;          /* round-robin cursor for service endpoints */
    uint64_t trace_state; /* traceparent ids */
    zt_inconn_t *inbound; /* admitted inbound connections, re-checked on policy change */
};

/* An inbound connection that authorization admitted: kept with the facts
 * it was judged on, so a new config can judge it again (Istio closes
 * connections a policy change no longer allows). */
struct zt_inconn {
    zt_inconn_t *next, *prev;
    zt_worker_t *w;
    zt_pod_t *pod;
    zm_tunnel_t *tunnel; /* HBONE stream, or */
    zm_splice_t *splice; /* admitted plaintext */
    zt_tcp_conn_t *tc;
    char src_id[256]; /* "" for plaintext */
    struct sockaddr_in src, dst;
};

/* Re-judges every admitted inbound connection under the current config
 * and closes those no longer allowed (on the worker's thread). */
void zt_worker_recheck(zt_worker_t *w);

/* One pod's listeners on one worker. */
struct zt_wpod {
    zt_wpod_t *next;
    zt_worker_t *w;
    zt_pod_t *pod;
    zm_listener_t *outbound, *inbound_plain, *hbone;
};

/* 15001: an application in the pod connects out. */
void zt_outbound_accept(zm_listener_t *l, int fd, const struct sockaddr *peer, socklen_t len,
                        void *ctx);
/* 15006: plaintext from outside the mesh to the pod (PeerAuthentication). */
void zt_inbound_plain_accept(zm_listener_t *l, int fd, const struct sockaddr *peer, socklen_t len,
                             void *ctx);
/* 15008: HBONE to the pod. */
void zt_inbound_accept(zm_listener_t *l, int fd, const struct sockaddr *peer, socklen_t len,
                       void *ctx);

/* The original destination of a redirected connection. */
int zt_orig_dst(int fd, struct sockaddr_in *out);

/* "spiffe://td/ns/NS/sa/SA" into buf. */
void zt_identity(const zm_config_t *cfg, const char *ns, const char *sa, char *buf, size_t len);

/* forwarded, baggage and traceparent for a CONNECT from pod (src: its
 * config workload, may be NULL; peer: the application's socket address;
 * svc: the service dialled, may be NULL). trace_state: a per-worker PRNG. */
void zt_request_headers(uint64_t *trace_state, const zt_pod_t *pod, const zm_config_workload_t *src,
                        const struct sockaddr *peer, const zm_config_service_t *svc, char *fwd,
                        size_t fwd_len, char *baggage, size_t baggage_len, char *traceparent,
                        size_t tp_len);

#endif
