/*
 * rbac.h — L4 authorization decisions, exactly as ztunnel's assert_rbac and
 * rbac.rs make them, over the policies of a config snapshot.
 *
 * A connection's facts (source identity or none for plaintext, source and
 * destination address, destination port, destination workload) are checked
 * against the policies that apply to the destination workload (global ones,
 * its namespace's, and those listing it; precomputed at snapshot load).
 * Order: any DENY policy matching → deny; no ALLOW policy → allow; any
 * ALLOW policy matching → allow; otherwise deny. A policy without rules
 * never matches (so `spec: {}` in ALLOW denies everything). Within a
 * match, a missing identity gives the empty principal and namespace: a
 * positive list then fails and a not_ list holds (so STRICT's
 * `not_principals = ["*"]` DENY rejects plaintext).
 *
 * Pure: no I/O, no allocation, no locks; safe from any thread while the
 * snapshot is held.
 */
#ifndef ZM_RBAC_H
#define ZM_RBAC_H

#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct zm_rbac_ip {
    uint8_t family; /* AF_INET or AF_INET6; 0 = unknown (matches no CIDR) */
    uint8_t addr[16];
} zm_rbac_ip_t;

typedef struct zm_rbac_conn {
    /* "spiffe://<td>/ns/<ns>/sa/<sa>", or NULL for plaintext (no identity). */
    const char *src_identity;
    zm_rbac_ip_t src_ip; /* the original client address */
    zm_rbac_ip_t dst_ip;
    uint16_t dst_port;
    const zm_config_workload_t *dst; /* an element of cfg->workloads */
} zm_rbac_conn_t;

typedef struct zm_rbac_verdict {
    bool allow;
    /* The deciding policy: the DENY or ALLOW that matched; NULL when no
     * ALLOW policy exists (allowed) or none of them matched (denied). */
    const zm_config_policy_t *policy;
    /* For logs and metrics, ztunnel's words: "explicitly denied by",
     * "allowed by", "no allow policies", "allow policies exist, but none
     * allowed". Static strings. */
    const char *reason;
} zm_rbac_verdict_t;

/* Decides for c under cfg's policies. Returns 0 with *v filled, or -EINVAL
 * when c->dst is not a workload of cfg (v then denies). */
int zm_rbac_check(const zm_config_t *cfg, const zm_rbac_conn_t *c, zm_rbac_verdict_t *v);

/* Whether one policy matches c (ignores its action). */
bool zm_rbac_policy_matches(const zm_config_policy_t *p, const zm_rbac_conn_t *c);

/* Helpers to build the facts. Return 0 or -EINVAL. */
int zm_rbac_ip_parse(const char *text, zm_rbac_ip_t *out);
int zm_rbac_ip_from_sockaddr(const struct sockaddr *sa, zm_rbac_ip_t *out);

#endif
