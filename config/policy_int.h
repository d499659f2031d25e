/*
 * policy_int.h — what policy.c (AuthorizationPolicy, output, warnings) and
 * policy_peer.c (PeerAuthentication) share. Not part of the public API.
 */
#ifndef MC_POLICY_INT_H
#define MC_POLICY_INT_H

#include "policy.h"

typedef struct mc_proj {
    const mc_model_t *m;
    mc_policy_set_t *set;
    size_t cap, cap_warn;
    int err; /* -ENOMEM once anything failed */
} mc_proj_t;

/* Appends a zeroed policy named ns/name (copied); NULL on OOM. */
zm_config_policy_t *mc_proj_add(mc_proj_t *pj, const char *ns, const char *name,
                                zm_config_policy_scope_t scope, zm_config_policy_action_t action);
/* Appends a zeroed clause to rule / match to clause; NULL on OOM. */
zm_config_clause_t *mc_proj_clause(mc_proj_t *pj, zm_config_rule_t *rule);
zm_config_match_t *mc_proj_match(mc_proj_t *pj, zm_config_clause_t *cl);
zm_config_rule_t *mc_proj_rule(mc_proj_t *pj, zm_config_policy_t *p);
/* Adds a uid to p's workloads. */
void mc_proj_workload(mc_proj_t *pj, zm_config_policy_t *p, const mc_pod_t *pod);
void mc_proj_port(mc_proj_t *pj, zm_config_ports_t *l, uint16_t port);
void mc_proj_presence(mc_proj_t *pj, zm_config_strmatches_t *l);

void mc_proj_warn(mc_proj_t *pj, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* spec.selector present (Istio: GetSelector() != nil)? *labels gets its
 * matchLabels map (NULL: none). PeerAuthentication instead asks whether
 * matchLabels has entries (mc_proj_n_labels). */
bool mc_proj_selector(const mc_yaml_node_t *spec, const mc_yaml_node_t **labels);
size_t mc_proj_n_labels(const mc_yaml_node_t *labels);
/* Every matchLabels pair is among the pod's labels. */
bool mc_proj_selects(const mc_yaml_node_t *labels, const mc_pod_t *pod);

/* PeerAuthentications (policy_peer.c). */
void mc_proj_peer_authentications(mc_proj_t *pj);

#endif
