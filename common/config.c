/*
 * config.c — the schema of zm_config_t, the loader (libconfig file → a new
 * immutable snapshot), snapshot references and the JSON dump. The slot and
 * the file watch are config_slot.c; the table machinery config_schema.c.
 *
 * The schema is data: the top level and each section are tables of fields
 * (config_schema.h), and defaults, parsing, the unknown-key check and the
 * dump are all driven by them. A section that is not a flat group of scalars
 * (lists of workloads, services, policies) sets its own parse / dump / free
 * hooks in `sections`, so extending the schema is adding a struct to
 * zm_config_t, a parse function and one line in that table.
 *
 * Parsing never stops at the first problem: each is recorded (the first in
 * the caller's zm_err_t, all in an optional report) so a user fixes a file
 * in one pass; a file with any problem yields no snapshot.
 *
 * A snapshot lives inside a snap_t that adds the reference count. Nothing
 * writes a snapshot once it was returned by a load, except the slot setting
 * the generation before it publishes it. The last release frees.
 */
#include "config_schema.h"

#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Schema                                                              */

static const char *check_trust_domain(const char *v)
{
    for (const char *p = v; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' ||
              *p == '_'))
            return "may only contain lowercase letters, digits, '.', '-' and '_'";
    return NULL;
}

static const char *check_node_name(const char *v)
{
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == '/' || *p == 0x7f)
            return "may not contain spaces, control characters or '/'";
    return NULL;
}

static const char *check_ip(const char *v)
{
    unsigned char buf[16];
    if (inet_pton(AF_INET, v, buf) == 1 || inet_pton(AF_INET6, v, buf) == 1)
        return NULL;
    return "must be an IPv4 or IPv6 address";
}

/* The kernel's names (TCP_CA_NAME_MAX is 16 with the NUL); whether the
 * algorithm is there is only known where ztunnel runs. */
static const char *check_congestion(const char *v)
{
    for (const char *p = v; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
            return "must be a TCP congestion control name such as \"cubic\" or \"bbr\" "
                   "(lowercase letters, digits, '_' and '-'), or \"\" for the node's default";
    return NULL;
}

static const char *const level_names[] = {"trace", "debug", "info", "warn", "error", NULL};
static const char *const format_names[] = {"text", "json", NULL};

#define MS_HOUR 3600000
#define UINT(m, k, lo, hi, d) ZM_CONFIG_UINT(zm_config_t, m, k, lo, hi, d)
#define STR(m, k, lo, hi, d, fl, chk) ZM_CONFIG_STR(zm_config_t, m, k, lo, hi, d, fl, chk)
#define ENUM(m, k, nm, d) ZM_CONFIG_ENUM(zm_config_t, m, k, nm, d)
#define PORT(m, k, d) UINT(listen.m, k, 0, 65535, d)
#define PATHF ZM_CONFIG_FL_PATH

static const zm_config_field_t root_fields[] = {
    UINT(workers, "workers", 0, 1024, 0),
    UINT(drain_grace_ms, "drain_grace_ms", 0, MS_HOUR, 5000),
};
static const zm_config_field_t node_fields[] = {
    STR(node.name, "name", 1, 253, "node-1", 0, check_node_name),
    STR(node.trust_domain, "trust_domain", 1, 255, "cluster.local", 0, check_trust_domain),
    STR(node.enroll_socket, "enroll_socket", 1, 107, "/var/run/ztunnel/ztunnel.sock", PATHF, NULL),
};
static const zm_config_field_t listen_fields[] = {
    PORT(outbound, "outbound", 15001),
    PORT(inbound_plain, "inbound_plain", 15006),
    PORT(hbone, "hbone", 15008),
    PORT(admin, "admin", 15000),
    PORT(metrics, "metrics", 15020),
    PORT(readiness, "readiness", 15021),
    STR(listen.admin_address, "admin_address", 1, 64, "127.0.0.1", 0, check_ip),
};
static const zm_config_field_t limits_fields[] = {
    UINT(limits.max_connections, "max_connections", 1, 16777216, 65536),
    UINT(limits.max_streams_per_conn, "max_streams_per_conn", 1, 65535, 100),
    UINT(limits.max_header_bytes, "max_header_bytes", 1024, 16777216, 65536),
    UINT(limits.max_body_buffer, "max_body_buffer", 0, 1073741824, 1048576),
    UINT(limits.send_queue_bytes, "send_queue_bytes", 65536, 1073741824, 8388608),
};
static const zm_config_field_t hbone_fields[] = {
    UINT(hbone.stream_window, "stream_window", 65535, INT32_MAX, 4194304),
    UINT(hbone.conn_window, "conn_window", 65535, INT32_MAX, 16777216),
    UINT(hbone.max_frame_size, "max_frame_size", 16384, 16777215, 1048576),
    UINT(hbone.pool_idle_timeout_ms, "pool_idle_timeout_ms", 0, 86400000, 300000),
    UINT(hbone.ping_interval_ms, "ping_interval_ms", 0, MS_HOUR, 10000),
    UINT(hbone.ping_timeout_ms, "ping_timeout_ms", 100, MS_HOUR, 20000),
};
static const zm_config_field_t tcp_fields[] = {
    STR(tcp.pod_congestion, "pod_congestion", 0, 15, "cubic", 0, check_congestion),
    STR(tcp.mesh_congestion, "mesh_congestion", 0, 15, "", 0, check_congestion),
};
static const zm_config_field_t tls_fields[] = {
    STR(tls.cert_dir, "cert_dir", 1, PATH_MAX - 1, "/var/run/zmesh/certs", PATHF, NULL),
    STR(tls.ca_file, "ca_file", 0, PATH_MAX - 1, "", PATHF, NULL),
};
static const zm_config_field_t log_fields[] = {
    ENUM(log.level, "level", level_names, ZM_CONFIG_LOG_INFO),
    ENUM(log.format, "format", format_names, ZM_CONFIG_LOG_TEXT),
    STR(log.access_log, "access_log", 1, PATH_MAX - 1, "stderr", PATHF | ZM_CONFIG_FL_LOGSINK,
        NULL),
};

/* Two listeners on one port would fail at bind time, far from the cause. */
static void check_listen(zm_config_parse_t *ctx, const config_setting_t *s, zm_config_t *cfg)
{
    const zm_config_field_t *ports[ZM_ARRAY_LEN(listen_fields)];
    size_t n = 0;
    for (size_t i = 0; i < ZM_ARRAY_LEN(listen_fields); i++)
        if (listen_fields[i].kind == ZM_CONFIG_K_UINT)
            ports[n++] = &listen_fields[i];
    for (size_t i = 0; i < n; i++) {
        uint16_t pi = *(uint16_t *)((char *)cfg + ports[i]->off);
        for (size_t j = 0; j < i && pi; j++) {
            if (pi != *(uint16_t *)((char *)cfg + ports[j]->off))
                continue;
            const config_setting_t *at = s ? config_setting_get_member(s, ports[i]->key) : NULL;
            if (!at && s)
                at = config_setting_get_member(s, ports[j]->key);
            zm_config_problem(ctx, at ? at : s, "'listen.%s' and 'listen.%s' both use port %u",
                              ports[j]->key, ports[i]->key, pi);
            break;
        }
    }
}

/* All of a stream's unacknowledged bytes can land in one socket's queue
 * (bytes are acknowledged while it is under its 256 KiB low-water mark):
 * a window the queue cannot hold would abort tunnels under load. */
static void check_hbone(zm_config_parse_t *ctx, const config_setting_t *s, zm_config_t *cfg)
{
    uint64_t need = (uint64_t)cfg->hbone.stream_window + 256 * 1024;
    if (need <= cfg->limits.send_queue_bytes)
        return;
    const config_setting_t *at = s ? config_setting_get_member(s, "stream_window") : NULL;
    zm_config_problem(ctx, at ? at : s,
                      "'hbone.stream_window' (%u) needs 'limits.send_queue_bytes' of at least "
                      "%llu (it is %u): a stream's unacknowledged bytes share one socket's queue",
                      (unsigned)cfg->hbone.stream_window, (unsigned long long)need,
                      (unsigned)cfg->limits.send_queue_bytes);
}

/* ca_file defaults to cert_dir/ca.pem, wherever cert_dir points. */
static void check_tls(zm_config_parse_t *ctx, const config_setting_t *s, zm_config_t *cfg)
{
    if (cfg->tls.ca_file && !cfg->tls.ca_file[0] && cfg->tls.cert_dir) {
        char *ca = NULL;
        if (asprintf(&ca, "%s/ca.pem", cfg->tls.cert_dir) < 0)
            ca = NULL;
        zm_config_field_set_str(ctx, &tls_fields[1], cfg, ca);
    }
}

#define FIELDS(t) t, ZM_ARRAY_LEN(t)
static const zm_config_section_t sections[] = {
    {"node", FIELDS(node_fields), NULL, NULL, NULL, NULL},
    {"listen", FIELDS(listen_fields), check_listen, NULL, NULL, NULL},
    {"limits", FIELDS(limits_fields), NULL, NULL, NULL, NULL},
    {"hbone", FIELDS(hbone_fields), check_hbone, NULL, NULL, NULL},
    {"tcp", FIELDS(tcp_fields), NULL, NULL, NULL, NULL},
    {"tls", FIELDS(tls_fields), check_tls, NULL, NULL, NULL},
    {"log", FIELDS(log_fields), NULL, NULL, NULL, NULL},
    {"workloads", NULL, 0, zm_config_mesh_check_workloads, zm_config_mesh_parse_workloads,
     zm_config_mesh_dump_workloads, zm_config_mesh_free_workloads},
    {"services", NULL, 0, zm_config_mesh_check_services, zm_config_mesh_parse_services,
     zm_config_mesh_dump_services, zm_config_mesh_free_services},
    {"policies", NULL, 0, zm_config_policy_check, zm_config_policy_parse, zm_config_policy_dump,
     zm_config_policy_free},
};

/* ------------------------------------------------------------------ */
/* Snapshots                                                           */

typedef struct snap {
    zm_config_t cfg; /* what callers see */
    atomic_uint refs;
} snap_t;

static snap_t *snap_of(const zm_config_t *cfg)
{
    return ZM_CONTAINER_OF((zm_config_t *)cfg, snap_t, cfg);
}

static void snap_free(snap_t *sn)
{
    zm_config_t *cfg = &sn->cfg;
    zm_config_fields_free(FIELDS(root_fields), cfg);
    for (size_t i = 0; i < ZM_ARRAY_LEN(sections); i++) {
        if (sections[i].free)
            sections[i].free(cfg);
        zm_config_fields_free(sections[i].fields, sections[i].n_fields, cfg);
    }
    for (size_t i = 0; i < cfg->n_sources; i++)
        free((char *)cfg->sources[i]);
    free((char **)cfg->sources);
    free((char *)cfg->path);
    free(sn);
}

const zm_config_t *zm_config_retain(const zm_config_t *cfg)
{
    if (cfg)
        atomic_fetch_add_explicit(&snap_of(cfg)->refs, 1, memory_order_relaxed);
    return cfg;
}

void zm_config_release(const zm_config_t **cfg)
{
    if (!cfg || !*cfg)
        return;
    snap_t *sn = snap_of(*cfg);
    *cfg = NULL;
    if (atomic_fetch_sub_explicit(&sn->refs, 1, memory_order_acq_rel) == 1)
        snap_free(sn);
}

/* ------------------------------------------------------------------ */
/* Loading                                                             */

static void parse_root(zm_config_parse_t *ctx, const config_setting_t *root, zm_config_t *cfg)
{
    const config_setting_t *present[ZM_ARRAY_LEN(sections)] = {0};
    const char *known[ZM_ARRAY_LEN(root_fields) + ZM_ARRAY_LEN(sections)];
    size_t n_known = 0;
    zm_config_fields_defaults(ctx, FIELDS(root_fields), cfg);
    for (size_t i = 0; i < ZM_ARRAY_LEN(root_fields); i++)
        known[n_known++] = root_fields[i].key;
    for (size_t i = 0; i < ZM_ARRAY_LEN(sections); i++) {
        zm_config_fields_defaults(ctx, sections[i].fields, sections[i].n_fields, cfg);
        known[n_known++] = sections[i].name;
    }
    for (int i = 0; i < config_setting_length(root); i++) {
        const config_setting_t *m = config_setting_get_elem(root, (unsigned)i);
        const char *name = config_setting_name(m);
        zm_config_note_source(ctx, m);
        const zm_config_field_t *f = zm_config_field_find(FIELDS(root_fields), name);
        if (f) {
            zm_config_field_parse(ctx, NULL, f, m, cfg);
            continue;
        }
        size_t j = 0;
        while (j < ZM_ARRAY_LEN(sections) && strcmp(sections[j].name, name))
            j++;
        if (j == ZM_ARRAY_LEN(sections)) {
            zm_config_unknown_key(ctx, m, NULL, known, n_known);
            continue;
        }
        present[j] = m;
        if (sections[j].parse)
            sections[j].parse(ctx, m, cfg);
        else
            zm_config_fields_parse(ctx, sections[j].name, sections[j].fields, sections[j].n_fields,
                                   m, cfg);
    }
    for (size_t i = 0; i < ZM_ARRAY_LEN(sections); i++)
        if (sections[i].check)
            sections[i].check(ctx, present[i], cfg);
}

static void ctx_init(zm_config_parse_t *ctx, const char *path, zm_err_t *err, char *report,
                     size_t len)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->path = path;
    ctx->err = err;
    ctx->report = report;
    ctx->report_len = len;
    if (report && len)
        report[0] = 0;
}

static void ctx_fini(zm_config_parse_t *ctx)
{
    for (size_t i = 0; i < ctx->n_sources; i++)
        free(ctx->sources[i]);
    free(ctx->sources);
    ctx->sources = NULL;
    ctx->n_sources = 0;
}

/* Turns a libconfig tree that was read without error into a snapshot. */
static int build(zm_config_parse_t *ctx, config_t *lc, const zm_config_t **out)
{
    snap_t *sn = calloc(1, sizeof(*sn));
    if (!sn)
        return -ENOMEM;
    atomic_init(&sn->refs, 1);
    sn->cfg.generation = 1;
    sn->cfg.path = strdup(ctx->path);
    parse_root(ctx, config_root_setting(lc), &sn->cfg);
    sn->cfg.sources = (const char *const *)ctx->sources;
    sn->cfg.n_sources = ctx->n_sources;
    ctx->sources = NULL;
    ctx->n_sources = 0;
    if (ctx->nomem || !sn->cfg.path || ctx->n_problems) {
        snap_free(sn);
        return ctx->n_problems ? -EINVAL : -ENOMEM;
    }
    *out = &sn->cfg;
    return 0;
}

static int read_failed(zm_config_parse_t *ctx, config_t *lc)
{
    if (config_error_type(lc) != CONFIG_ERR_FILE_IO) {
        zm_config_problem_at(ctx, config_error_file(lc), config_error_line(lc), "%s",
                             config_error_text(lc));
        return -EINVAL;
    }
    /* libconfig says only "file I/O error"; find out which. */
    int e = EIO;
    struct stat st;
    if (stat(ctx->path, &st) < 0)
        e = errno;
    else if (S_ISDIR(st.st_mode))
        e = EISDIR;
    else if (access(ctx->path, R_OK) < 0)
        e = errno;
    zm_config_problem_at(ctx, ctx->path, 0, "cannot read: %s", strerror(e));
    return -e;
}

int zm_config_load_report(const char *path, const zm_config_t **out, zm_err_t *err, char *report,
                          size_t len)
{
    zm_config_parse_t ctx;
    *out = NULL;
    ctx_init(&ctx, path ? path : "", err, report, len);
    if (!path || !path[0]) {
        zm_config_problem_at(&ctx, NULL, 0, "no config file given");
        return -EINVAL;
    }
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(ctx.dir, sizeof(ctx.dir), ".");
    else if (slash == path)
        snprintf(ctx.dir, sizeof(ctx.dir), "/");
    else
        snprintf(ctx.dir, sizeof(ctx.dir), "%.*s", (int)(slash - path), path);
    if (!realpath(ctx.dir, ctx.absdir))
        snprintf(ctx.absdir, sizeof(ctx.absdir), "%s", ctx.dir);
    if (!strcmp(ctx.absdir, "/"))
        ctx.absdir[0] = 0; /* "/" + "/x" would give "//x" */

    config_t lc;
    config_init(&lc);
    config_set_include_dir(&lc, ctx.dir);
    int rc = config_read_file(&lc, path) ? build(&ctx, &lc, out) : read_failed(&ctx, &lc);
    config_destroy(&lc);
    ctx_fini(&ctx);
    return rc;
}

int zm_config_load(const char *path, const zm_config_t **out, zm_err_t *err)
{
    return zm_config_load_report(path, out, err, NULL, 0);
}

int zm_config_load_string(const char *text, const char *name, const zm_config_t **out,
                          zm_err_t *err)
{
    zm_config_parse_t ctx;
    *out = NULL;
    ctx_init(&ctx, name ? name : "<string>", err, NULL, 0);
    config_t lc;
    config_init(&lc);
    int rc = config_read_string(&lc, text) ? build(&ctx, &lc, out) : read_failed(&ctx, &lc);
    config_destroy(&lc);
    ctx_fini(&ctx);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Dump                                                                */

static json_t *to_json(const zm_config_t *cfg)
{
    json_t *root = json_object(), *srcs = json_array();
    int rc = root && srcs ? 0 : -ENOMEM;
    for (size_t i = 0; !rc && i < cfg->n_sources; i++)
        rc = json_array_append_new(srcs, json_string(cfg->sources[i]));
    if (!rc)
        rc = json_object_set_new(root, "generation", json_integer((json_int_t)cfg->generation));
    if (!rc)
        rc = json_object_set_new(root, "path", json_string(cfg->path));
    if (!rc) {
        rc = json_object_set_new(root, "sources", srcs);
        srcs = NULL;
    }
    if (!rc)
        rc = zm_config_fields_dump(FIELDS(root_fields), cfg, root);
    for (size_t i = 0; !rc && i < ZM_ARRAY_LEN(sections); i++) {
        json_t *obj = json_object();
        rc = obj ? zm_config_fields_dump(sections[i].fields, sections[i].n_fields, cfg, obj)
                 : -ENOMEM;
        if (!rc && sections[i].dump)
            rc = sections[i].dump(cfg, obj);
        if (!rc)
            rc = json_object_set_new(root, sections[i].name, obj);
        else
            json_decref(obj);
    }
    json_decref(srcs);
    if (rc) {
        json_decref(root);
        return NULL;
    }
    return root;
}

char *zm_config_dump_string(const zm_config_t *cfg)
{
    json_t *j = to_json(cfg);
    char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    return s;
}

int zm_config_dump(const zm_config_t *cfg, FILE *f)
{
    char *s = zm_config_dump_string(cfg);
    if (!s)
        return -ENOMEM;
    int rc = fprintf(f, "%s\n", s) < 0 ? -EIO : 0;
    free(s);
    return rc;
}

const char *zm_config_log_level_name(zm_config_log_level_t level)
{
    return (unsigned)level < ZM_ARRAY_LEN(level_names) - 1 ? level_names[level] : "?";
}

const char *zm_config_log_format_name(zm_config_log_format_t format)
{
    return (unsigned)format < ZM_ARRAY_LEN(format_names) - 1 ? format_names[format] : "?";
}
