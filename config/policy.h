/*
 * policy.h — AuthorizationPolicy and PeerAuthentication projected into the
 * L4 policies ztunnel enforces, as istiod does for ambient
 * (pilot/pkg/serviceregistry/kube/controller/ambient/authorization.go).
 *
 * AuthorizationPolicy: no selector → scope NAMESPACE (GLOBAL in the root
 * namespace istio-system); a selector → the workloads it matches (in its
 * namespace, or in every namespace for the root namespace). Supported:
 * from.source principals, namespaces, serviceAccounts ("ns/sa", or "sa" in
 * the policy's namespace), ipBlocks and their not-forms; to.operation ports
 * and notPorts; `when` on source.ip, source.namespace, source.principal,
 * destination.ip, destination.port. Any other attribute is L7: the whole
 * rule is dropped in an ALLOW policy (it never matches) and only its L7 part
 * in a DENY one. CUSTOM and AUDIT actions are skipped with a warning;
 * targetRefs policies belong to waypoints and are not projected.
 *
 * PeerAuthentication: the effective mode of each workload (mesh, namespace,
 * workload precedence; the oldest policy wins a tie) referencing the static
 * DENY policy istio-system/istio_converted_static_strict (notPrincipals
 * presence) when STRICT; workload policies with portLevelMtls become
 * converted_peer_authentication_<name> DENY policies with port rules.
 *
 * Output order: AuthorizationPolicies in the model's order, then converted
 * PeerAuthentications, then the static STRICT policy (only when some
 * workload uses it), so the same model always gives the same text.
 *
 * Malformed specs are skipped with a warning (istiod's admission would have
 * refused them). Threading: none; the model is only read.
 */
#ifndef MC_POLICY_H
#define MC_POLICY_H

#include "config.h"
#include "model.h"
#include "strbuf.h"

#define MC_ROOT_NAMESPACE "istio-system"
#define MC_STATIC_STRICT_POLICY "istio_converted_static_strict"

typedef struct mc_policy_set {
    zm_config_policy_t *policies; /* owned; zm_config_policy_clear each */
    size_t n;
    mc_warning_t *warnings; /* msg malloc'd; file/line point into the model */
    size_t n_warnings;
} mc_policy_set_t;

/* Projects m's policies into a new set (*out). m need not be resolved, but
 * selectors only match pods once it is. 0 or -ENOMEM. */
int mc_policy_project(const mc_model_t *m, mc_policy_set_t **out);
void mc_policy_set_free(mc_policy_set_t **set);

/* Appends `policies = ( ... );` (config/SCHEMA.md) for set / for m. On
 * failure the strbuf's error is set. */
void mc_policy_write(const mc_policy_set_t *set, zm_strbuf_t *out);
void mc_policy_emit(const mc_model_t *m, zm_strbuf_t *out);

/* The projection's warnings plus, for `meshctl analyze`, L7 attributes no
 * waypoint enforces (selector or namespace policies, or targetRefs to
 * something without a waypoint). *out is malloc'd; free with
 * mc_policy_warnings_free. Returns the count (0 with *out NULL on OOM). */
size_t mc_policy_warnings(const mc_model_t *m, mc_warning_t **out);
void mc_policy_warnings_free(mc_warning_t **w, size_t n);

#endif
