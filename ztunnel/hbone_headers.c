/*
 * hbone_headers.c — the headers ztunnel puts on an outbound CONNECT.
 */
#include "zt_proxy.h"

#include <arpa/inet.h>
#include <stdio.h>

/* The CONNECT's headers as Istio's ztunnel sends them: who the client is
 * (forwarded), what workload it is (baggage) and a fresh W3C trace
 * context (traceparent), so the far side can report and trace it. */
void zt_request_headers(uint64_t *trace_state, const zt_pod_t *pod, const zm_config_workload_t *src,
                        const struct sockaddr *peer, const zm_config_service_t *svc, char *fwd,
                        size_t fwd_len, char *baggage, size_t baggage_len, char *traceparent,
                        size_t tp_len)
{
    char client[64];
    if (peer && peer->sa_family == AF_INET) {
        const struct sockaddr_in *pa = (const struct sockaddr_in *)peer;
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &pa->sin_addr, ip, sizeof(ip));
        snprintf(client, sizeof(client), "%s:%u", ip, ntohs(pa->sin_port));
    } else {
        snprintf(client, sizeof(client), "%s", pod->address);
    }
    if (svc)
        snprintf(fwd, fwd_len, "for=\"%s\";host=%s", client, svc->hostname);
    else
        snprintf(fwd, fwd_len, "for=\"%s\"", client);
    snprintf(baggage, baggage_len,
             "k8s.cluster.name=Kubernetes,k8s.namespace.name=%s,k8s.pod.name=%s,"
             "service.name=%s,service.version=%s",
             pod->ns, pod->name, src && src->canonical_name[0] ? src->canonical_name : pod->name,
             src && src->canonical_revision[0] ? src->canonical_revision : "latest");
    /* xorshift64*: trace ids need to be unique, not secret. */
    uint64_t x[3];
    for (int i = 0; i < 3; i++) {
        *trace_state ^= *trace_state >> 12;
        *trace_state ^= *trace_state << 25;
        *trace_state ^= *trace_state >> 27;
        x[i] = *trace_state * 0x2545F4914F6CDD1Dull;
    }
    snprintf(traceparent, tp_len, "00-%016llx%016llx-%016llx-01", (unsigned long long)x[0],
             (unsigned long long)x[1], (unsigned long long)x[2]);
}
