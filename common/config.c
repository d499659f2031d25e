/*
 * config.c — libconfig file → immutable zm_config_t snapshot; the snapshot
 * slot with reload by pointer swap; the inotify watch of the config file.
 *
 * The schema is data: each section is a table of fields (key, C type and
 * offset, range, default) and the loader, the defaults, the unknown-key check
 * and the JSON dump are all driven by those tables. A section that is not a
 * flat group of scalars (lists of workloads, services, policies) plugs in its
 * own parse / dump / free hooks in the same table, so extending the schema is
 * adding a section entry and its parse function.
 *
 * Parsing never stops at the first problem: every problem is recorded (the
 * first in the caller's zm_err_t, all of them in an optional report), so a
 * user fixes a file in one pass. File names in messages are the main file as
 * given, and included files resolved against its directory.
 *
 * A snapshot lives inside a snap_t that adds the reference count and the list
 * of files it came from (for the watch). The slot's current pointer is read
 * and retained under a mutex: acquire happens once per connection, and the
 * lock closes the race between loading the pointer and taking the reference
 * (a swap-and-release between those two steps would free it). Release is a
 * lock-free atomic decrement; whoever drops the last reference frees.
 */
#include "config.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <libconfig.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Schema tables                                                       */

enum { K_UINT, K_STR, K_ENUM };

#define FL_PATH 0x1    /* relative values are resolved against the config dir */
#define FL_LOGSINK 0x2 /* "stderr", "stdout" and "off" are names, not paths */

typedef struct pctx pctx_t;

typedef struct field {
    const char *key;
    uint8_t kind;
    uint8_t size; /* K_UINT: bytes of the member */
    uint8_t flags;
    size_t off;                         /* in zm_config_t */
    int64_t min, max;                   /* K_UINT: value range; K_STR: length range */
    int64_t def;                        /* K_UINT value, K_ENUM index */
    const char *sdef;                   /* K_STR default */
    const char *const *names;           /* K_ENUM values, NULL-terminated */
    const char *(*check)(const char *); /* K_STR: problem or NULL */
} field_t;

#define F_UINT(member, k, lo, hi, d)                                                               \
    {                                                                                              \
        .key = k, .kind = K_UINT, .size = sizeof(((zm_config_t *)0)->member),                      \
        .off = offsetof(zm_config_t, member), .min = lo, .max = hi, .def = d                       \
    }
#define F_STR(member, k, lo, hi, d, fl, chk)                                                       \
    {                                                                                              \
        .key = k, .kind = K_STR, .flags = fl, .off = offsetof(zm_config_t, member), .min = lo,     \
        .max = hi, .sdef = d, .check = chk                                                         \
    }
#define F_ENUM(member, k, nm, d)                                                                   \
    {                                                                                              \
        .key = k, .kind = K_ENUM, .off = offsetof(zm_config_t, member), .names = nm, .def = d      \
    }

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

static const char *const level_names[] = {"trace", "debug", "info", "warn", "error", NULL};
static const char *const format_names[] = {"text", "json", NULL};

#define MS_HOUR 3600000
#define PORT(m, k, d) F_UINT(listen.m, k, 0, 65535, d)

static const field_t root_fields[] = {
    F_UINT(workers, "workers", 0, 1024, 0),
    F_UINT(drain_grace_ms, "drain_grace_ms", 0, MS_HOUR, 5000),
};
static const field_t node_fields[] = {
    F_STR(node.name, "name", 1, 253, "node-1", 0, check_node_name),
    F_STR(node.trust_domain, "trust_domain", 1, 255, "cluster.local", 0, check_trust_domain),
};
static const field_t listen_fields[] = {
    PORT(outbound, "outbound", 15001),
    PORT(inbound_plain, "inbound_plain", 15006),
    PORT(hbone, "hbone", 15008),
    PORT(admin, "admin", 15000),
    PORT(metrics, "metrics", 15020),
    PORT(readiness, "readiness", 15021),
    F_STR(listen.admin_address, "admin_address", 1, 64, "127.0.0.1", 0, check_ip),
};
static const field_t limits_fields[] = {
    F_UINT(limits.max_connections, "max_connections", 1, 16777216, 65536),
    F_UINT(limits.max_streams_per_conn, "max_streams_per_conn", 1, 65535, 100),
    F_UINT(limits.max_header_bytes, "max_header_bytes", 1024, 16777216, 65536),
    F_UINT(limits.max_body_buffer, "max_body_buffer", 0, 1073741824, 1048576),
    F_UINT(limits.send_queue_bytes, "send_queue_bytes", 65536, 1073741824, 8388608),
};
static const field_t hbone_fields[] = {
    F_UINT(hbone.stream_window, "stream_window", 65535, INT32_MAX, 4194304),
    F_UINT(hbone.conn_window, "conn_window", 65535, INT32_MAX, 16777216),
    F_UINT(hbone.max_frame_size, "max_frame_size", 16384, 16777215, 1048576),
    F_UINT(hbone.pool_idle_timeout_ms, "pool_idle_timeout_ms", 0, 86400000, 300000),
    F_UINT(hbone.ping_interval_ms, "ping_interval_ms", 0, MS_HOUR, 10000),
    F_UINT(hbone.ping_timeout_ms, "ping_timeout_ms", 100, MS_HOUR, 20000),
};
static const field_t tls_fields[] = {
    F_STR(tls.cert_dir, "cert_dir", 1, PATH_MAX - 1, "/var/run/zmesh/certs", FL_PATH, NULL),
    F_STR(tls.ca_file, "ca_file", 0, PATH_MAX - 1, "", FL_PATH, NULL),
};
static const field_t log_fields[] = {
    F_ENUM(log.level, "level", level_names, ZM_CONFIG_LOG_INFO),
    F_ENUM(log.format, "format", format_names, ZM_CONFIG_LOG_TEXT),
    F_STR(log.access_log, "access_log", 1, PATH_MAX - 1, "stderr", FL_PATH | FL_LOGSINK, NULL),
};

static void check_listen(pctx_t *ctx, const config_setting_t *s, zm_config_t *cfg);
static void check_tls(pctx_t *ctx, const config_setting_t *s, zm_config_t *cfg);

/* A section of the file. Flat sections list fields; a section with lists or
 * maps inside sets parse (instead of fields), dump and free. check runs after
 * the fields were parsed (s is NULL when the section is absent). */
typedef struct section {
    const char *name;
    const field_t *fields;
    size_t n_fields;
    void (*check)(pctx_t *ctx, const config_setting_t *s, zm_config_t *cfg);
    void (*parse)(pctx_t *ctx, const config_setting_t *s, zm_config_t *cfg);
    int (*dump)(const zm_config_t *cfg, json_t *obj);
    void (*free)(zm_config_t *cfg);
} section_t;

#define FIELDS(t) t, ZM_ARRAY_LEN(t)
static const section_t sections[] = {
    {"node", FIELDS(node_fields), NULL, NULL, NULL, NULL},
    {"listen", FIELDS(listen_fields), check_listen, NULL, NULL, NULL},
    {"limits", FIELDS(limits_fields), NULL, NULL, NULL, NULL},
    {"hbone", FIELDS(hbone_fields), NULL, NULL, NULL, NULL},
    {"tls", FIELDS(tls_fields), check_tls, NULL, NULL, NULL},
    {"log", FIELDS(log_fields), NULL, NULL, NULL, NULL},
};

/* ------------------------------------------------------------------ */
/* Snapshots                                                           */

typedef struct snap {
    zm_config_t cfg; /* first: what callers see */
    atomic_uint refs;
    char **sources; /* files that contributed settings, as named in errors */
    size_t n_sources;
} snap_t;

static snap_t *snap_of(const zm_config_t *cfg)
{
    return ZM_CONTAINER_OF((zm_config_t *)cfg, snap_t, cfg);
}

static char **str_at(zm_config_t *cfg, const field_t *f)
{
    return (char **)((char *)cfg + f->off);
}

static void free_fields(zm_config_t *cfg, const field_t *fields, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fields[i].kind == K_STR) {
            free(*str_at(cfg, &fields[i]));
            *str_at(cfg, &fields[i]) = NULL;
        }
}

static void snap_free(snap_t *sn)
{
    zm_config_t *cfg = &sn->cfg;
    free_fields(cfg, FIELDS(root_fields));
    for (size_t i = 0; i < ZM_ARRAY_LEN(sections); i++) {
        if (sections[i].free)
            sections[i].free(cfg);
        free_fields(cfg, sections[i].fields, sections[i].n_fields);
    }
    for (size_t i = 0; i < sn->n_sources; i++)
        free(sn->sources[i]);
    free(sn->sources);
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
/* Parsing                                                             */

struct pctx {
    const char *path;      /* main file as given, or the name of a string */
    char dir[PATH_MAX];    /* its directory as given ("" for strings) */
    char absdir[PATH_MAX]; /* its directory, absolute ("" for strings) */
    snap_t *snap;
    zm_err_t *err;
    int n_problems;
    bool nomem;
    char *report;
    size_t report_len, report_used;
};

/* How a file is named in messages: included files relative to the dir. */
static void source_name(const pctx_t *ctx, const char *file, char *out, size_t len)
{
    if (!file || !strcmp(file, ctx->path) || file[0] == '/' || !ctx->dir[0] ||
        !strcmp(ctx->dir, "."))
        snprintf(out, len, "%s", file ? file : ctx->path);
    else
        snprintf(out, len, "%s/%s", ctx->dir, file);
}

__attribute__((format(printf, 4, 5))) static void problem_at(pctx_t *ctx, const char *file,
                                                             int line, const char *fmt, ...)
{
    char name[PATH_MAX], msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    source_name(ctx, file, name, sizeof(name));
    if (ctx->n_problems++ == 0 && ctx->err)
        zm_err_set(ctx->err, name, line, "%s", msg);
    if (ctx->report && ctx->report_used + 1 < ctx->report_len) {
        int n = line > 0
                    ? snprintf(ctx->report + ctx->report_used, ctx->report_len - ctx->report_used,
                               "%s:%d: %s\n", name, line, msg)
                    : snprintf(ctx->report + ctx->report_used, ctx->report_len - ctx->report_used,
                               "%s: %s\n", name, msg);
        if (n > 0)
            ctx->report_used = ZM_MIN(ctx->report_used + (size_t)n, ctx->report_len - 1);
    }
}

#define problem(ctx, s, ...)                                                                       \
    problem_at(ctx, (s) ? config_setting_source_file(s) : NULL,                                    \
               (s) ? (int)config_setting_source_line(s) : 0, __VA_ARGS__)

static void note_source(pctx_t *ctx, const config_setting_t *s)
{
    char name[PATH_MAX];
    snap_t *sn = ctx->snap;
    source_name(ctx, config_setting_source_file(s), name, sizeof(name));
    for (size_t i = 0; i < sn->n_sources; i++)
        if (!strcmp(sn->sources[i], name))
            return;
    char **v = realloc(sn->sources, (sn->n_sources + 1) * sizeof(*v));
    char *dup = v ? strdup(name) : NULL;
    if (v)
        sn->sources = v;
    if (!dup) {
        ctx->nomem = true;
        return;
    }
    sn->sources[sn->n_sources++] = dup;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[65];
    if (la > 64 || lb > 64)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t sub = diag + (a[i - 1] != b[j - 1]);
            row[j] = ZM_MIN(sub, ZM_MIN(row[j] + 1, row[j - 1] + 1));
            diag = up;
        }
    }
    return row[lb];
}

/* " (did you mean 'x'?)" when one known key is close, else "". */
static void suggest(const char *name, const char *const *known, size_t n, char *out, size_t len)
{
    out[0] = 0;
    size_t best = 3;
    for (size_t i = 0; i < n; i++) {
        size_t d = edit_distance(name, known[i]);
        if (d < best) {
            best = d;
            snprintf(out, len, " (did you mean '%s'?)", known[i]);
        }
    }
}

static void unknown_key(pctx_t *ctx, const config_setting_t *m, const section_t *sec)
{
    const char *known[32];
    size_t n = 0;
    char hint[96];
    if (sec) {
        for (size_t i = 0; i < sec->n_fields && n < ZM_ARRAY_LEN(known); i++)
            known[n++] = sec->fields[i].key;
    } else {
        for (size_t i = 0; i < ZM_ARRAY_LEN(root_fields); i++)
            known[n++] = root_fields[i].key;
        for (size_t i = 0; i < ZM_ARRAY_LEN(sections) && n < ZM_ARRAY_LEN(known); i++)
            known[n++] = sections[i].name;
    }
    suggest(config_setting_name(m), known, n, hint, sizeof(hint));
    if (sec)
        problem(ctx, m, "unknown key '%s' in section '%s'%s", config_setting_name(m), sec->name,
                hint);
    else
        problem(ctx, m, "unknown key '%s'%s", config_setting_name(m), hint);
}

static char *resolve_path(pctx_t *ctx, const field_t *f, const char *v)
{
    bool sink = (f->flags & FL_LOGSINK) &&
                (!strcmp(v, "stderr") || !strcmp(v, "stdout") || !strcmp(v, "off"));
    if (!(f->flags & FL_PATH) || sink || v[0] == '/' || !v[0] || !ctx->absdir[0])
        return strdup(v);
    char *out = NULL;
    if (asprintf(&out, "%s/%s", ctx->absdir, v) < 0)
        return NULL;
    return out;
}

static void set_uint(zm_config_t *cfg, const field_t *f, uint64_t v)
{
    void *p = (char *)cfg + f->off;
    switch (f->size) {
    case 2:
        *(uint16_t *)p = (uint16_t)v;
        break;
    case 4:
        *(uint32_t *)p = (uint32_t)v;
        break;
    default:
        *(uint64_t *)p = v;
        break;
    }
}

static void set_str(pctx_t *ctx, zm_config_t *cfg, const field_t *f, char *v)
{
    if (!v) {
        ctx->nomem = true;
        return;
    }
    free(*str_at(cfg, f));
    *str_at(cfg, f) = v;
}

static void parse_field(pctx_t *ctx, const section_t *sec, const field_t *f,
                        const config_setting_t *m, zm_config_t *cfg)
{
    char key[128];
    snprintf(key, sizeof(key), "%s%s%s", sec ? sec->name : "", sec ? "." : "", f->key);
    int type = config_setting_type(m);
    if (f->kind == K_UINT) {
        if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64) {
            problem(ctx, m, "'%s' must be an integer", key);
            return;
        }
        long long v = config_setting_get_int64(m);
        if (v < f->min || v > f->max) {
            problem(ctx, m, "'%s' must be between %lld and %lld (got %lld)", key, (long long)f->min,
                    (long long)f->max, v);
            return;
        }
        set_uint(cfg, f, (uint64_t)v);
        return;
    }
    if (type != CONFIG_TYPE_STRING) {
        problem(ctx, m, "'%s' must be a string", key);
        return;
    }
    const char *v = config_setting_get_string(m);
    if (f->kind == K_ENUM) {
        char list[256] = "";
        for (int i = 0; f->names[i]; i++) {
            if (!strcmp(v, f->names[i])) {
                *(int *)((char *)cfg + f->off) = i;
                return;
            }
            size_t used = strlen(list);
            snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", f->names[i]);
        }
        problem(ctx, m, "'%s' must be one of %s (got '%s')", key, list, v);
        return;
    }
    size_t len = strlen(v);
    const char *why = NULL;
    if ((int64_t)len < f->min)
        why = "must not be empty";
    else if ((int64_t)len > f->max)
        why = "is too long";
    else if (f->check)
        why = f->check(v);
    if (why) {
        problem(ctx, m, "'%s' %s", key, why);
        return;
    }
    set_str(ctx, cfg, f, resolve_path(ctx, f, v));
}

static void set_defaults(pctx_t *ctx, zm_config_t *cfg, const field_t *fields, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const field_t *f = &fields[i];
        if (f->kind == K_UINT)
            set_uint(cfg, f, (uint64_t)f->def);
        else if (f->kind == K_ENUM)
            *(int *)((char *)cfg + f->off) = (int)f->def;
        else
            set_str(ctx, cfg, f, strdup(f->sdef));
    }
}

static const field_t *find_field(const field_t *fields, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(fields[i].key, name))
            return &fields[i];
    return NULL;
}

static void parse_section(pctx_t *ctx, const section_t *sec, const config_setting_t *s,
                          zm_config_t *cfg)
{
    if (!config_setting_is_group(s)) {
        problem(ctx, s, "'%s' must be a group: %s = { ... };", sec->name, sec->name);
        return;
    }
    if (sec->parse) {
        sec->parse(ctx, s, cfg);
        return;
    }
    for (int i = 0; i < config_setting_length(s); i++) {
        const config_setting_t *m = config_setting_get_elem(s, (unsigned)i);
        note_source(ctx, m);
        const field_t *f = find_field(sec->fields, sec->n_fields, config_setting_name(m));
        if (f)
            parse_field(ctx, sec, f, m, cfg);
        else
            unknown_key(ctx, m, sec);
    }
}

static void parse_root(pctx_t *ctx, const config_setting_t *root, zm_config_t *cfg)
{
    const config_setting_t *present[ZM_ARRAY_LEN(sections)] = {0};
    set_defaults(ctx, cfg, FIELDS(root_fields));
    for (size_t i = 0; i < ZM_ARRAY_LEN(sections); i++)
        set_defaults(ctx, cfg, sections[i].fields, sections[i].n_fields);
    for (int i = 0; i < config_setting_length(root); i++) {
        const config_setting_t *m = config_setting_get_elem(root, (unsigned)i);
        const char *name = config_setting_name(m);
        note_source(ctx, m);
        const field_t *f = find_field(FIELDS(root_fields), name);
        if (f) {
            parse_field(ctx, NULL, f, m, cfg);
            continue;
        }
        size_t j = 0;
        while (j < ZM_ARRAY_LEN(sections) && strcmp(sections[j].name, name))
            j++;
        if (j == ZM_ARRAY_LEN(sections)) {
            unknown_key(ctx, m, NULL);
            continue;
        }
        present[j] = m;
        parse_section(ctx, &sections[j], m, cfg);
    }
    for (size_t i = 0; i < ZM_ARRAY_LEN(sections); i++)
        if (sections[i].check)
            sections[i].check(ctx, present[i], cfg);
}

/* Two listeners on one port would fail at bind time, far from the cause. */
static void check_listen(pctx_t *ctx, const config_setting_t *s, zm_config_t *cfg)
{
    size_t n = 0;
    const field_t *ports[ZM_ARRAY_LEN(listen_fields)];
    for (size_t i = 0; i < ZM_ARRAY_LEN(listen_fields); i++)
        if (listen_fields[i].kind == K_UINT)
            ports[n++] = &listen_fields[i];
    for (size_t i = 0; i < n; i++) {
        uint16_t pi = *(uint16_t *)((char *)cfg + ports[i]->off);
        for (size_t j = 0; j < i && pi; j++) {
            if (pi != *(uint16_t *)((char *)cfg + ports[j]->off))
                continue;
            const config_setting_t *at = s ? config_setting_get_member(s, ports[i]->key) : NULL;
            if (!at && s)
                at = config_setting_get_member(s, ports[j]->key);
            problem(ctx, at ? at : s, "'listen.%s' and 'listen.%s' both use port %u", ports[j]->key,
                    ports[i]->key, pi);
            break;
        }
    }
}

static void check_tls(pctx_t *ctx, const config_setting_t *s, zm_config_t *cfg)
{
    if (cfg->tls.ca_file && !cfg->tls.ca_file[0] && cfg->tls.cert_dir) {
        char *ca = NULL;
        if (asprintf(&ca, "%s/ca.pem", cfg->tls.cert_dir) < 0)
            ca = NULL;
        set_str(ctx, cfg, &tls_fields[1], ca);
    }
}

static void ctx_init(pctx_t *ctx, const char *path, zm_err_t *err, char *report, size_t len)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->path = path;
    ctx->err = err;
    ctx->report = report;
    ctx->report_len = len;
    if (report && len)
        report[0] = 0;
}

/* Parses an already-read libconfig tree into a new snapshot. */
static int build(pctx_t *ctx, config_t *lc, const zm_config_t **out)
{
    snap_t *sn = calloc(1, sizeof(*sn));
    if (!sn)
        return -ENOMEM;
    atomic_init(&sn->refs, 1);
    sn->cfg.generation = 1;
    sn->cfg.path = strdup(ctx->path);
    ctx->snap = sn;
    parse_root(ctx, config_root_setting(lc), &sn->cfg);
    if (ctx->nomem || !sn->cfg.path || ctx->n_problems) {
        snap_free(sn);
        return ctx->n_problems ? -EINVAL : -ENOMEM;
    }
    *out = &sn->cfg;
    return 0;
}

static int read_failed(pctx_t *ctx, config_t *lc)
{
    if (config_error_type(lc) != CONFIG_ERR_FILE_IO) {
        problem_at(ctx, config_error_file(lc), config_error_line(lc), "%s", config_error_text(lc));
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
    problem_at(ctx, ctx->path, 0, "cannot read: %s", strerror(e));
    return -e;
}

static int load(const char *path, const zm_config_t **out, zm_err_t *err, char *report, size_t len)
{
    pctx_t ctx;
    *out = NULL;
    ctx_init(&ctx, path ? path : "", err, report, len);
    if (!path || !path[0]) {
        problem_at(&ctx, NULL, 0, "no config file given");
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
    return rc;
}

int zm_config_load(const char *path, const zm_config_t **out, zm_err_t *err)
{
    return load(path, out, err, NULL, 0);
}

int zm_config_load_report(const char *path, const zm_config_t **out, zm_err_t *err, char *report,
                          size_t len)
{
    return load(path, out, err, report, len);
}

int zm_config_load_string(const char *text, const char *name, const zm_config_t **out,
                          zm_err_t *err)
{
    pctx_t ctx;
    *out = NULL;
    ctx_init(&ctx, name ? name : "<string>", err, NULL, 0);
    config_t lc;
    config_init(&lc);
    int rc = config_read_string(&lc, text) ? build(&ctx, &lc, out) : read_failed(&ctx, &lc);
    config_destroy(&lc);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Dump                                                                */

static int dump_fields(const zm_config_t *cfg, const field_t *fields, size_t n, json_t *obj)
{
    for (size_t i = 0; i < n; i++) {
        const field_t *f = &fields[i];
        const void *p = (const char *)cfg + f->off;
        json_t *v;
        if (f->kind == K_UINT)
            v = json_integer(f->size == 2   ? *(const uint16_t *)p
                             : f->size == 4 ? *(const uint32_t *)p
                                            : (json_int_t) * (const uint64_t *)p);
        else if (f->kind == K_ENUM)
            v = json_string(f->names[*(const int *)p]);
        else
            v = json_string(*(const char *const *)p);
        if (json_object_set_new(obj, f->key, v) < 0)
            return -ENOMEM;
    }
    return 0;
}

static json_t *to_json(const zm_config_t *cfg)
{
    const snap_t *sn = snap_of(cfg);
    json_t *root = json_object(), *srcs = json_array();
    int rc = root && srcs ? 0 : -ENOMEM;
    for (size_t i = 0; !rc && i < sn->n_sources; i++)
        rc = json_array_append_new(srcs, json_string(sn->sources[i]));
    if (!rc)
        rc = json_object_set_new(root, "generation", json_integer((json_int_t)cfg->generation));
    if (!rc)
        rc = json_object_set_new(root, "path", json_string(cfg->path));
    if (!rc) {
        rc = json_object_set_new(root, "sources", srcs);
        srcs = NULL;
    }
    if (!rc)
        rc = dump_fields(cfg, FIELDS(root_fields), root);
    for (size_t i = 0; !rc && i < ZM_ARRAY_LEN(sections); i++) {
        json_t *obj = json_object();
        rc = obj ? dump_fields(cfg, sections[i].fields, sections[i].n_fields, obj) : -ENOMEM;
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

/* ------------------------------------------------------------------ */
/* Slot and watch                                                      */

struct zm_config_slot {
    pthread_mutex_t lock; /* guards cur (pointer load + retain, and swap) */
    const zm_config_t *cur;
    char *path;
    atomic_uint_fast64_t failures;
    int watch_fd;
    char dir[PATH_MAX];
};

zm_config_slot_t *zm_config_slot_new(const char *path, zm_err_t *err)
{
    const zm_config_t *cfg;
    if (zm_config_load(path, &cfg, err) < 0)
        return NULL;
    zm_config_slot_t *slot = calloc(1, sizeof(*slot));
    if (!slot || !(slot->path = strdup(path))) {
        free(slot);
        zm_config_release(&cfg);
        zm_err_set(err, path, 0, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&slot->lock, NULL);
    slot->cur = cfg;
    slot->watch_fd = -1;
    atomic_init(&slot->failures, 0);
    return slot;
}

void zm_config_slot_destroy(zm_config_slot_t **slotp)
{
    zm_config_slot_t *slot = slotp ? *slotp : NULL;
    if (!slot)
        return;
    *slotp = NULL;
    if (slot->watch_fd >= 0)
        close(slot->watch_fd);
    zm_config_release(&slot->cur);
    pthread_mutex_destroy(&slot->lock);
    free(slot->path);
    free(slot);
}

const zm_config_t *zm_config_slot_acquire(zm_config_slot_t *slot)
{
    pthread_mutex_lock(&slot->lock);
    const zm_config_t *cfg = zm_config_retain(slot->cur);
    pthread_mutex_unlock(&slot->lock);
    return cfg;
}

int zm_config_slot_reload(zm_config_slot_t *slot, zm_err_t *err)
{
    const zm_config_t *cfg;
    int rc = zm_config_load(slot->path, &cfg, err);
    if (rc < 0) {
        atomic_fetch_add_explicit(&slot->failures, 1, memory_order_relaxed);
        return rc;
    }
    pthread_mutex_lock(&slot->lock);
    const zm_config_t *old = slot->cur;
    /* Not yet published: the one place a snapshot is written after build. */
    snap_of(cfg)->cfg.generation = old->generation + 1;
    slot->cur = cfg;
    pthread_mutex_unlock(&slot->lock);
    zm_config_release(&old);
    return 1;
}

uint64_t zm_config_slot_reload_failures(const zm_config_slot_t *slot)
{
    return atomic_load_explicit(&((zm_config_slot_t *)slot)->failures, memory_order_relaxed);
}

int zm_config_watch_fd(zm_config_slot_t *slot)
{
    if (slot->watch_fd >= 0)
        return slot->watch_fd;
    const char *slash = strrchr(slot->path, '/');
    if (!slash)
        snprintf(slot->dir, sizeof(slot->dir), ".");
    else if (slash == slot->path)
        snprintf(slot->dir, sizeof(slot->dir), "/");
    else
        snprintf(slot->dir, sizeof(slot->dir), "%.*s", (int)(slash - slot->path), slot->path);
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (inotify_add_watch(fd, slot->dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    slot->watch_fd = fd;
    return fd;
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Is `name` (an entry of the watched dir) one of the files we read? */
static bool watched_name(zm_config_slot_t *slot, const char *name)
{
    if (!strcmp(name, base_name(slot->path)) || !strcmp(name, "..data"))
        return true;
    const zm_config_t *cfg = zm_config_slot_acquire(slot);
    const snap_t *sn = snap_of(cfg);
    bool hit = false;
    size_t dl = strlen(slot->dir);
    for (size_t i = 0; i < sn->n_sources && !hit; i++) {
        const char *src = sn->sources[i];
        const char *rel = !strncmp(src, slot->dir, dl) && src[dl] == '/' ? src + dl + 1 : src;
        hit = !strchr(rel, '/') && !strcmp(rel, name);
    }
    zm_config_release(&cfg);
    return hit;
}

/* A new regular file is written next (IN_CLOSE_WRITE follows); reloading on
 * its creation would read it half-written and count a spurious failure.
 * A new symlink (ln -sf, ..data swaps) is complete at once. */
static bool created_symlink(zm_config_slot_t *slot, const char *name)
{
    char p[PATH_MAX * 2];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s", slot->dir, name);
    return lstat(p, &st) == 0 && S_ISLNK(st.st_mode);
}

int zm_config_watch_check(zm_config_slot_t *slot)
{
    if (slot->watch_fd < 0)
        return -EBADF;
    _Alignas(struct inotify_event) char buf[4096];
    int due = 0;
    for (;;) {
        ssize_t n = read(slot->watch_fd, buf, sizeof(buf));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return due;
            return -errno;
        }
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            p += sizeof(*ev) + ev->len;
            if (ev->mask & (IN_Q_OVERFLOW | IN_IGNORED)) {
                due = 1; /* events were lost, or the directory went away */
                continue;
            }
            if (!ev->len || !watched_name(slot, ev->name))
                continue;
            if ((ev->mask & IN_CREATE) && !created_symlink(slot, ev->name))
                continue;
            due = 1;
        }
    }
}
