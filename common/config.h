/*
 * config.h — the daemons' configuration: a libconfig file loaded into an
 * immutable, reference-counted snapshot, and a slot that swaps snapshots on
 * reload.
 *
 * A zm_config_t is never modified once published. Readers take a reference
 * (zm_config_slot_acquire, once per connection, not per byte), read fields
 * freely, and drop it with zm_config_release. A reload parses the file into
 * a new snapshot; when it is valid the slot's pointer is swapped and the old
 * snapshot is freed when its last reader lets go. An invalid file is refused:
 * the old snapshot stays and zm_config_slot_reload_failures() grows.
 *
 * Every key has a safe default, so an empty file is a valid configuration.
 * Unknown keys, wrong types and out-of-range values are errors that name the
 * file and line (`mesh.cfg:12: unknown key 'outbond' in section 'listen'`).
 * `@include "x.cfg"` is resolved against the config file's directory.
 * The full reference (types, ranges, meaning) is config/SCHEMA.md. The
 * schema itself is a set of field tables in config.c (machinery in
 * config_schema.h): a new section is a struct here, a parse function and a
 * line in config.c's `sections` table, plus its rows in SCHEMA.md.
 *
 *   key                            default                    range / values
 *   node.name                      "node-1"                   1..253 chars
 *   node.trust_domain              "cluster.local"            [a-z0-9._-], 1..255
 *   workers                        0 (one per core)           0..1024
 *   listen.outbound                15001                      0..65535 (0 = off)
 *   listen.inbound_plain           15006                      0..65535
 *   listen.hbone                   15008                      0..65535
 *   listen.admin                   15000                      0..65535
 *   listen.metrics                 15020                      0..65535
 *   listen.readiness               15021                      0..65535
 *   listen.admin_address           "127.0.0.1"                IPv4/IPv6 literal
 *   limits.max_connections         65536                      1..16777216
 *   limits.max_streams_per_conn    100                        1..65535
 *   limits.max_header_bytes        65536                      1024..16777216
 *   limits.max_body_buffer         1048576                    0..1073741824
 *   limits.send_queue_bytes        8388608                    65536..1073741824
 *   hbone.stream_window            4194304                    65535..2147483647
 *   hbone.conn_window              16777216                   65535..2147483647
 *   hbone.max_frame_size           1048576                    16384..16777215
 *   hbone.pool_idle_timeout_ms     300000                     0..86400000
 *   hbone.ping_interval_ms         10000                      0..3600000 (0 = off)
 *   hbone.ping_timeout_ms          20000                      100..3600000
 *   tcp.pod_congestion             "cubic"                    [a-z0-9_-], 0..15 ("" = node's)
 *   tcp.mesh_congestion            "" (the node's default)    [a-z0-9_-], 0..15
 *   tls.cert_dir                   "/var/run/zmesh/certs"     path
 *   tls.ca_file                    "" (= cert_dir/ca.pem)     path
 *   log.level                      "info"                     trace|debug|info|warn|error
 *   log.format                     "text"                     text|json
 *   log.access_log                 "stderr"                   stderr|stdout|off|path
 *   drain_grace_ms                 5000                       0..3600000
 *   workloads, services, policies  empty                      lists (config/SCHEMA.md)
 *
 * Relative paths (tls.*, log.access_log) are resolved against the config
 * file's directory when the file is loaded.
 *
 * Threading: snapshots are read-only and may be shared by any threads.
 * zm_config_slot_acquire, zm_config_release, zm_config_slot_reload and
 * zm_config_slot_reload_failures are thread-safe. The watch functions and
 * zm_config_slot_destroy belong to one control thread.
 */
#ifndef ZM_CONFIG_H
#define ZM_CONFIG_H

#include "zm.h"

#include <stdint.h>
#include <stdio.h>

typedef enum zm_config_log_level {
    ZM_CONFIG_LOG_TRACE,
    ZM_CONFIG_LOG_DEBUG,
    ZM_CONFIG_LOG_INFO,
    ZM_CONFIG_LOG_WARN,
    ZM_CONFIG_LOG_ERROR,
} zm_config_log_level_t;

typedef enum zm_config_log_format {
    ZM_CONFIG_LOG_TEXT,
    ZM_CONFIG_LOG_JSON,
} zm_config_log_format_t;

typedef struct zm_config_node {
    const char *name;
    const char *trust_domain;
    const char *enroll_socket; /* ztunnel: where the node agent enrolls pods */
} zm_config_node_t;

/* Listener ports; 0 disables that listener. Non-zero ports are distinct. */
typedef struct zm_config_listen {
    uint16_t outbound;
    uint16_t inbound_plain;
    uint16_t hbone;
    uint16_t admin;
    uint16_t metrics;
    uint16_t readiness;
    const char *admin_address; /* admin, metrics and readiness bind here */
} zm_config_listen_t;

typedef struct zm_config_limits {
    uint32_t max_connections;      /* per worker */
    uint32_t max_streams_per_conn; /* concurrent HTTP/2 streams */
    uint32_t max_header_bytes;     /* one request's header block */
    uint32_t max_body_buffer;      /* body bytes buffered per request */
    uint32_t send_queue_bytes;     /* queued bytes per socket */
} zm_config_limits_t;

typedef struct zm_config_hbone {
    uint32_t stream_window;
    uint32_t conn_window;
    uint32_t max_frame_size;
    uint32_t pool_idle_timeout_ms;
    uint32_t ping_interval_ms; /* 0 = no keepalive pings */
    uint32_t ping_timeout_ms;
} zm_config_hbone_t;

/* TCP congestion control per kind of connection; "" keeps the network
 * namespace's default (net.ipv4.tcp_congestion_control). */
typedef struct zm_config_tcp {
    const char *pod_congestion;  /* legs between ztunnel and a local pod's app */
    const char *mesh_congestion; /* legs that cross the network (HBONE, passthrough) */
} zm_config_tcp_t;

typedef struct zm_config_tls {
    const char *cert_dir; /* absolute after loading */
    const char *ca_file;  /* absolute; cert_dir/ca.pem when not set */
} zm_config_tls_t;

typedef struct zm_config_log {
    zm_config_log_level_t level;
    zm_config_log_format_t format;
    const char *access_log; /* "stderr", "stdout", "off" or an absolute path */
} zm_config_log_t;

/* ---- the mesh: what meshctl compiles from Kubernetes and Istio objects ---- */

typedef enum zm_config_protocol {
    ZM_CONFIG_PROTO_HBONE, /* ambient: reached through HBONE on :15008 */
    ZM_CONFIG_PROTO_TCP,   /* outside the mesh: plain TCP */
} zm_config_protocol_t;

typedef enum zm_config_workload_kind {
    ZM_CONFIG_WORKLOAD_POD,
    ZM_CONFIG_WORKLOAD_WAYPOINT,
} zm_config_workload_kind_t;

typedef struct zm_config_label {
    const char *key, *value;
} zm_config_label_t;

/* A pod (or a waypoint proxy) anywhere in the mesh. */
typedef struct zm_config_workload {
    const char *uid; /* "<namespace>/<name>", unique */
    const char *name, *ns;
    const char *service_account; /* identity = spiffe://<td>/ns/<ns>/sa/<sa> */
    const char *node;            /* the node whose ztunnel serves it */
    const char *address;         /* pod IP, unique */
    zm_config_protocol_t protocol;
    zm_config_workload_kind_t kind;
    const char *waypoint;           /* uid of its waypoint, "" for none */
    const char *canonical_name;     /* app label (metrics) */
    const char *canonical_revision; /* version label (metrics) */
    zm_config_label_t *labels;
    size_t n_labels;
} zm_config_workload_t;

typedef struct zm_config_service_port {
    uint16_t port;
    const char *name;
    const char *app_protocol; /* "http", "http2", "grpc", "tcp", ... or "" */
} zm_config_service_port_t;

/* One (workload, service port) the service spreads connections over. */
typedef struct zm_config_endpoint {
    const char *workload; /* uid */
    uint16_t port;        /* the service port */
    uint16_t target_port; /* where that workload listens for it */
} zm_config_endpoint_t;

typedef struct zm_config_service {
    const char *name, *ns;
    const char *hostname; /* name.ns.svc.cluster.local */
    const char *address;  /* cluster IP (VIP) */
    const char *waypoint; /* uid of its waypoint, "" for none */
    zm_config_service_port_t *ports;
    size_t n_ports;
    zm_config_endpoint_t *endpoints;
    size_t n_endpoints;
} zm_config_service_t;

/* ---- L4 authorization (Istio's istio.security.Authorization for ztunnel) ----
 * A policy holds rules (any may match), a rule holds clauses (all must
 * match), a clause holds matches (any may match); within one match every
 * non-empty field must hold (positive lists: one entry matches; not_ lists:
 * none matches). config_policy.c documents the file form, common/rbac.h the
 * evaluation. */

typedef enum zm_config_policy_scope {
    ZM_CONFIG_SCOPE_GLOBAL,    /* every workload of the mesh (root namespace) */
    ZM_CONFIG_SCOPE_NAMESPACE, /* every workload of the policy's namespace */
    ZM_CONFIG_SCOPE_WORKLOAD,  /* the workloads listed in the policy */
} zm_config_policy_scope_t;

typedef enum zm_config_policy_action {
    ZM_CONFIG_ACTION_ALLOW,
    ZM_CONFIG_ACTION_DENY,
} zm_config_policy_action_t;

typedef enum zm_config_strmatch_kind {
    ZM_CONFIG_MATCH_EXACT,
    ZM_CONFIG_MATCH_PREFIX,
    ZM_CONFIG_MATCH_SUFFIX,
    ZM_CONFIG_MATCH_PRESENCE, /* any non-empty value */
} zm_config_strmatch_kind_t;

typedef struct zm_config_strmatch {
    zm_config_strmatch_kind_t kind;
    const char *value; /* "" for presence */
} zm_config_strmatch_t;

typedef struct zm_config_sa {
    const char *ns, *name; /* identity's namespace and service account */
} zm_config_sa_t;

typedef struct zm_config_cidr {
    uint8_t family; /* AF_INET or AF_INET6 */
    uint8_t len;    /* prefix length */
    uint8_t addr[16];
} zm_config_cidr_t;

typedef struct zm_config_strmatches {
    zm_config_strmatch_t *v;
    size_t n;
} zm_config_strmatches_t;
typedef struct zm_config_sas {
    zm_config_sa_t *v;
    size_t n;
} zm_config_sas_t;
typedef struct zm_config_cidrs {
    zm_config_cidr_t *v;
    size_t n;
} zm_config_cidrs_t;
typedef struct zm_config_ports {
    uint16_t *v;
    size_t n;
} zm_config_ports_t;

/* One match; a match with every list empty never matches (as ztunnel). */
typedef struct zm_config_match {
    zm_config_strmatches_t principals, not_principals; /* compared without "spiffe://" */
    zm_config_strmatches_t namespaces, not_namespaces;
    zm_config_sas_t service_accounts, not_service_accounts;
    zm_config_cidrs_t source_ips, not_source_ips;
    zm_config_cidrs_t destination_ips, not_destination_ips;
    zm_config_ports_t destination_ports, not_destination_ports;
} zm_config_match_t;

/* Any match holds (an empty clause holds). */
typedef struct zm_config_clause {
    zm_config_match_t *matches;
    size_t n_matches;
} zm_config_clause_t;

/* Every clause holds. */
typedef struct zm_config_rule {
    zm_config_clause_t *clauses;
    size_t n_clauses;
} zm_config_rule_t;

typedef struct zm_config_policy {
    const char *name, *ns;
    zm_config_policy_scope_t scope;
    zm_config_policy_action_t action;
    zm_config_rule_t *rules; /* none: the policy never matches */
    size_t n_rules;
    const char **workloads; /* SCOPE_WORKLOAD: uids it applies to */
    size_t n_workloads;
} zm_config_policy_t;

/* The policies that apply to one workload, as indexes into cfg->policies. */
typedef struct zm_config_policy_set {
    uint32_t *idx;
    size_t n;
} zm_config_policy_set_t;

/* One immutable snapshot. Strings are owned by the snapshot. */
typedef struct zm_config {
    uint64_t generation;        /* 1 on first load; +1 per reload accepted by a slot */
    const char *path;           /* the file it was read from */
    const char *const *sources; /* files that contributed settings (main, @includes) */
    size_t n_sources;
    zm_config_node_t node;
    uint32_t workers; /* 0 = one per core */
    zm_config_listen_t listen;
    zm_config_limits_t limits;
    zm_config_hbone_t hbone;
    zm_config_tcp_t tcp;
    zm_config_tls_t tls;
    zm_config_log_t log;
    uint32_t drain_grace_ms;
    /* The mesh, sorted as written (meshctl writes them sorted by uid). */
    zm_config_workload_t *workloads;
    size_t n_workloads;
    zm_config_service_t *services;
    size_t n_services;
    zm_config_policy_t *policies; /* as written */
    size_t n_policies;
    /* Parallel to workloads: the global, namespace and workload policies
     * of each, computed at load so a connection does not search. */
    zm_config_policy_set_t *workload_policies;
} zm_config_t;

typedef struct zm_config_slot zm_config_slot_t;

/* --- snapshots --- */

/* Parses path into a new snapshot holding one reference (*out). Returns 0, or
 * -EINVAL with err naming the first problem's file and line, or -errno when
 * the file cannot be read (-ENOENT, -EACCES, ...), -ENOMEM. */
int zm_config_load(const char *path, const zm_config_t **out, zm_err_t *err);

/* Like zm_config_load; in addition every problem found (not only the first)
 * is written to report, one "file:line: message\n" each, truncated to len.
 * report may be NULL. For `meshctl analyze` and daemon start-up logs. */
int zm_config_load_report(const char *path, const zm_config_t **out, zm_err_t *err, char *report,
                          size_t len);

/* Parses a string (for tests and tools); name stands for the file in errors.
 * @include and relative paths are resolved against the current directory. */
int zm_config_load_string(const char *text, const char *name, const zm_config_t **out,
                          zm_err_t *err);

/* Takes another reference (e.g. a connection handing it to its streams). */
const zm_config_t *zm_config_retain(const zm_config_t *cfg);

/* Drops a reference and clears *cfg; the last one frees. NULL is fine. */
void zm_config_release(const zm_config_t **cfg);

/* JSON rendering of every key (after defaults and path resolution) plus
 * generation and path, for the admin /config_dump endpoint. Returns 0 or
 * -errno. The string form is malloc'd (free()), NULL on failure. */
int zm_config_dump(const zm_config_t *cfg, FILE *f);
char *zm_config_dump_string(const zm_config_t *cfg);

/* Names of enum values ("info", "json"), for logs and the dump. */
const char *zm_config_log_level_name(zm_config_log_level_t level);
const char *zm_config_log_format_name(zm_config_log_format_t format);

/* Look-ups in a snapshot (linear; callers index what they use often). */
const zm_config_workload_t *zm_config_find_workload(const zm_config_t *cfg, const char *uid);
const zm_config_workload_t *zm_config_find_workload_by_address(const zm_config_t *cfg,
                                                               const char *address);

/* Policies (config_policy.c). zm_config_policy_clear frees what a policy
 * owns when it was built outside a snapshot (meshctl) and zeroes it. The
 * JSON form (ztunnel's shape: rules as nested arrays, camelCase fields,
 * string matches as {"exact": v} / {"prefix": v} / {"suffix": v} /
 * {"presence": {}}, addresses as "ip/len") is what /config_dump shows. */
void zm_config_policy_clear(zm_config_policy_t *p);
struct json_t *zm_config_policy_json(const zm_config_policy_t *p);
const char *zm_config_policy_scope_name(zm_config_policy_scope_t scope);    /* "GLOBAL", ... */
const char *zm_config_policy_action_name(zm_config_policy_action_t action); /* "ALLOW", ... */
/* Parses Istio's wildcard form: "*" presence, "x*" prefix, "*x" suffix,
 * else exact. value is malloc'd (free it); -ENOMEM on failure. */
int zm_config_strmatch_parse(const char *s, zm_config_strmatch_t *out);
/* "1.2.3.4", "10.0.0.0/8", "::1/128"; -EINVAL when not one. */
int zm_config_cidr_parse(const char *s, zm_config_cidr_t *out);

/* --- the slot: current snapshot and reload --- */

/* Loads path; NULL with err filled when it cannot be loaded. */
zm_config_slot_t *zm_config_slot_new(const char *path, zm_err_t *err);
/* Releases the slot's reference and closes the watch fd; readers may still
 * hold snapshots, which stay valid until they release them. */
void zm_config_slot_destroy(zm_config_slot_t **slot);

/* The current snapshot with a reference; pair with zm_config_release. */
const zm_config_t *zm_config_slot_acquire(zm_config_slot_t *slot);

/* Reads the file again. Valid: the new snapshot replaces the current one,
 * returns 1. Invalid or unreadable: returns < 0 with err filled, the current
 * snapshot stays, and the refused-reload counter grows. */
int zm_config_slot_reload(zm_config_slot_t *slot, zm_err_t *err);

/* Reloads refused since the slot was created (for a metric). */
uint64_t zm_config_slot_reload_failures(const zm_config_slot_t *slot);

/* --- file watch (inotify) --- */

/* An inotify fd watching the config file's directory, created on first call
 * and owned by the slot; poll it for reading. Returns the fd or -errno. It
 * reports the file being written (IN_CLOSE_WRITE), renamed over (IN_MOVED_TO)
 * or re-created as a symlink (IN_CREATE), Kubernetes' `..data` symlink swap
 * of ConfigMap volumes, and the same for @include'd files in that directory. */
int zm_config_watch_fd(zm_config_slot_t *slot);

/* Drains pending events without blocking. Returns 1 when a reload is due,
 * 0 when nothing relevant happened, -errno on failure. Does not reload. */
int zm_config_watch_check(zm_config_slot_t *slot);

#endif
