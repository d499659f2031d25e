/*
 * Unit tests of config.c: defaults, every key, every kind of invalid input
 * with its exact file:line message, reload by pointer swap (old readers keep
 * the old snapshot), refused reloads, the inotify watch, and the JSON dump.
 * Each test works in its own mkdtemp directory, removed afterwards.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

typedef struct tdir {
    char path[64];       /* as created (absolute) */
    char real[PATH_MAX]; /* realpath, what relative config paths resolve to */
} tdir_t;

static int setup(void **state)
{
    tdir_t *d = calloc(1, sizeof(*d));
    snprintf(d->path, sizeof(d->path), "/tmp/zm_config_XXXXXX");
    if (!mkdtemp(d->path) || !realpath(d->path, d->real))
        return -1;
    *state = d;
    return 0;
}

static void rm_tree(const char *path)
{
    DIR *dir = opendir(path);
    struct dirent *e;
    while (dir && (e = readdir(dir))) {
        char p[PATH_MAX * 2];
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
        if (e->d_type == DT_DIR)
            rm_tree(p);
        else
            unlink(p);
    }
    if (dir)
        closedir(dir);
    rmdir(path);
}

static int teardown(void **state)
{
    tdir_t *d = *state;
    rm_tree(d->path);
    free(d);
    return 0;
}

/* Writes dir/name and returns its path in a static-per-call buffer. */
static const char *put(const tdir_t *d, const char *name, const char *text, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", d->path, name);
    FILE *f = fopen(out, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    return out;
}

/* Loads text as dir/main.cfg expecting failure; returns the formatted error. */
static const char *load_error(const tdir_t *d, const char *text, char *msg, size_t len)
{
    char path[PATH_MAX];
    const zm_config_t *cfg = NULL;
    zm_err_t err;
    memset(&err, 0, sizeof(err));
    put(d, "main.cfg", text, path, sizeof(path));
    assert_int_equal(zm_config_load(path, &cfg, &err), -EINVAL);
    assert_null(cfg);
    return zm_err_str(&err, msg, len);
}

/* The expected "DIR/file:line: message". */
static const char *at(const tdir_t *d, const char *file, int line, const char *msg, char *out,
                      size_t len)
{
    snprintf(out, len, "%s/%s:%d: %s", d->path, file, line, msg);
    return out;
}

static void defaults_when_empty(void **state)
{
    tdir_t *d = *state;
    char path[PATH_MAX];
    const zm_config_t *cfg = NULL;
    zm_err_t err;
    put(d, "main.cfg", "", path, sizeof(path));
    assert_int_equal(zm_config_load(path, &cfg, &err), 0);
    assert_non_null(cfg);
    assert_int_equal(cfg->generation, 1);
    assert_string_equal(cfg->path, path);
    assert_string_equal(cfg->node.name, "node-1");
    assert_string_equal(cfg->node.trust_domain, "cluster.local");
    assert_int_equal(cfg->workers, 0);
    assert_int_equal(cfg->listen.outbound, 15001);
    assert_int_equal(cfg->listen.inbound_plain, 15006);
    assert_int_equal(cfg->listen.hbone, 15008);
    assert_int_equal(cfg->listen.admin, 15000);
    assert_int_equal(cfg->listen.metrics, 15020);
    assert_int_equal(cfg->listen.readiness, 15021);
    assert_string_equal(cfg->listen.admin_address, "127.0.0.1");
    assert_int_equal(cfg->limits.max_connections, 65536);
    assert_int_equal(cfg->limits.max_streams_per_conn, 100);
    assert_int_equal(cfg->limits.max_header_bytes, 65536);
    assert_int_equal(cfg->limits.max_body_buffer, 1048576);
    assert_int_equal(cfg->limits.send_queue_bytes, 8388608);
    assert_int_equal(cfg->hbone.stream_window, 4194304);
    assert_int_equal(cfg->hbone.conn_window, 16777216);
    assert_int_equal(cfg->hbone.max_frame_size, 1048576);
    assert_int_equal(cfg->hbone.pool_idle_timeout_ms, 300000);
    assert_int_equal(cfg->hbone.ping_interval_ms, 10000);
    assert_int_equal(cfg->hbone.ping_timeout_ms, 20000);
    assert_string_equal(cfg->tcp.pod_congestion, "cubic");
    assert_string_equal(cfg->tcp.mesh_congestion, "");
    assert_string_equal(cfg->tls.cert_dir, "/var/run/zmesh/certs");
    assert_string_equal(cfg->tls.ca_file, "/var/run/zmesh/certs/ca.pem");
    assert_int_equal(cfg->log.level, ZM_CONFIG_LOG_INFO);
    assert_int_equal(cfg->log.format, ZM_CONFIG_LOG_TEXT);
    assert_string_equal(cfg->log.access_log, "stderr");
    assert_int_equal(cfg->drain_grace_ms, 5000);
    zm_config_release(&cfg);
    assert_null(cfg);
    zm_config_release(&cfg); /* NULL is fine */
}

static const char full_cfg[] = "node = { name = \"worker-7\"; trust_domain = \"prod.example\"; };\n"
                               "workers = 2;\n"
                               "listen = {\n"
                               "  outbound = 25001; inbound_plain = 25006; hbone = 25008;\n"
                               "  admin = 0; metrics = 25020; readiness = 25021;\n"
                               "  admin_address = \"::1\";\n"
                               "};\n"
                               "limits = { max_connections = 1000; max_streams_per_conn = 50;\n"
                               "  max_header_bytes = 8192; max_body_buffer = 0;\n"
                               "  send_queue_bytes = 1048576; };\n"
                               "hbone = { stream_window = 65535; conn_window = 2147483647;\n"
                               "  max_frame_size = 16384; pool_idle_timeout_ms = 0;\n"
                               "  ping_interval_ms = 0; ping_timeout_ms = 100; };\n"
                               "tcp = { pod_congestion = \"\"; mesh_congestion = \"bbr\"; };\n"
                               "tls = { cert_dir = \"certs\"; ca_file = \"/etc/ca.pem\"; };\n"
                               "log = { level = \"debug\"; format = \"json\";\n"
                               "  access_log = \"logs/access.log\"; };\n"
                               "drain_grace_ms = 0;\n";

static void every_key_parsed(void **state)
{
    tdir_t *d = *state;
    char path[PATH_MAX], want[PATH_MAX * 2];
    const zm_config_t *cfg = NULL;
    zm_err_t err;
    put(d, "main.cfg", full_cfg, path, sizeof(path));
    assert_int_equal(zm_config_load(path, &cfg, &err), 0);
    assert_string_equal(cfg->node.name, "worker-7");
    assert_string_equal(cfg->node.trust_domain, "prod.example");
    assert_int_equal(cfg->workers, 2);
    assert_int_equal(cfg->listen.outbound, 25001);
    assert_int_equal(cfg->listen.inbound_plain, 25006);
    assert_int_equal(cfg->listen.hbone, 25008);
    assert_int_equal(cfg->listen.admin, 0);
    assert_int_equal(cfg->listen.metrics, 25020);
    assert_int_equal(cfg->listen.readiness, 25021);
    assert_string_equal(cfg->listen.admin_address, "::1");
    assert_int_equal(cfg->limits.max_connections, 1000);
    assert_int_equal(cfg->limits.max_streams_per_conn, 50);
    assert_int_equal(cfg->limits.max_header_bytes, 8192);
    assert_int_equal(cfg->limits.max_body_buffer, 0);
    assert_int_equal(cfg->limits.send_queue_bytes, 1048576);
    assert_int_equal(cfg->hbone.stream_window, 65535);
    assert_int_equal(cfg->hbone.conn_window, 2147483647u);
    assert_int_equal(cfg->hbone.max_frame_size, 16384);
    assert_int_equal(cfg->hbone.pool_idle_timeout_ms, 0);
    assert_int_equal(cfg->hbone.ping_interval_ms, 0);
    assert_int_equal(cfg->hbone.ping_timeout_ms, 100);
    assert_string_equal(cfg->tcp.pod_congestion, "");
    assert_string_equal(cfg->tcp.mesh_congestion, "bbr");
    snprintf(want, sizeof(want), "%s/certs", d->real);
    assert_string_equal(cfg->tls.cert_dir, want);
    assert_string_equal(cfg->tls.ca_file, "/etc/ca.pem");
    assert_int_equal(cfg->log.level, ZM_CONFIG_LOG_DEBUG);
    assert_int_equal(cfg->log.format, ZM_CONFIG_LOG_JSON);
    snprintf(want, sizeof(want), "%s/logs/access.log", d->real);
    assert_string_equal(cfg->log.access_log, want);
    assert_int_equal(cfg->drain_grace_ms, 0);
    assert_string_equal(zm_config_log_level_name(cfg->log.level), "debug");
    assert_string_equal(zm_config_log_format_name(cfg->log.format), "json");
    zm_config_release(&cfg);
}

static void include_and_derived_ca(void **state)
{
    tdir_t *d = *state;
    char path[PATH_MAX], inc[PATH_MAX];
    const zm_config_t *cfg = NULL;
    zm_err_t err;
    put(d, "limits.cfg", "limits = { max_connections = 77; };\n", inc, sizeof(inc));
    put(d, "main.cfg", "workers = 1;\n@include \"limits.cfg\"\ntls = { cert_dir = \"/c\"; };\n",
        path, sizeof(path));
    assert_int_equal(zm_config_load(path, &cfg, &err), 0);
    assert_int_equal(cfg->workers, 1);
    assert_int_equal(cfg->limits.max_connections, 77);
    assert_string_equal(cfg->tls.ca_file, "/c/ca.pem");
    assert_int_equal(cfg->n_sources, 2);
    assert_string_equal(cfg->sources[0], path);
    assert_string_equal(cfg->sources[1], inc);
    zm_config_release(&cfg);
}

static void syntax_error(void **state)
{
    tdir_t *d = *state;
    char msg[1024], want[1024];
    load_error(d, "workers = 1;\nlisten = { outbound = ; };\n", msg, sizeof(msg));
    assert_string_equal(msg, at(d, "main.cfg", 2, "syntax error", want, sizeof(want)));
    /* libconfig needs '=' or ':' before a group */
    load_error(d, "\n\nnode { name = \"x\"; };\n", msg, sizeof(msg));
    assert_string_equal(msg, at(d, "main.cfg", 3, "syntax error", want, sizeof(want)));
}

static void unknown_keys(void **state)
{
    tdir_t *d = *state;
    char msg[1024], want[1024];
    load_error(d, "listen = {\n  hbone = 1;\n  outbond = 2;\n};\n", msg, sizeof(msg));
    assert_string_equal(msg, at(d, "main.cfg", 3,
                                "unknown key 'outbond' in section 'listen' (did you mean "
                                "'outbound'?)",
                                want, sizeof(want)));
    load_error(d, "listen = { zzzzzz = 2; };\n", msg, sizeof(msg));
    assert_string_equal(
        msg, at(d, "main.cfg", 1, "unknown key 'zzzzzz' in section 'listen'", want, sizeof(want)));
    load_error(d, "\nworkerz = 4;\n", msg, sizeof(msg));
    assert_string_equal(msg, at(d, "main.cfg", 2, "unknown key 'workerz' (did you mean 'workers'?)",
                                want, sizeof(want)));
}

static void wrong_types(void **state)
{
    tdir_t *d = *state;
    char msg[1024], want[1024];
    load_error(d, "workers = \"4\";\n", msg, sizeof(msg));
    assert_string_equal(msg,
                        at(d, "main.cfg", 1, "'workers' must be an integer", want, sizeof(want)));
    load_error(d, "hbone = {\n stream_window = 1.5;\n};\n", msg, sizeof(msg));
    assert_string_equal(
        msg, at(d, "main.cfg", 2, "'hbone.stream_window' must be an integer", want, sizeof(want)));
    load_error(d, "node = { name = 5; };\n", msg, sizeof(msg));
    assert_string_equal(msg,
                        at(d, "main.cfg", 1, "'node.name' must be a string", want, sizeof(want)));
    load_error(d, "\nlisten = 15001;\n", msg, sizeof(msg));
    assert_string_equal(msg, at(d, "main.cfg", 2, "'listen' must be a group: listen = { ... };",
                                want, sizeof(want)));
}

static void out_of_range(void **state)
{
    tdir_t *d = *state;
    char msg[1024], want[1024];
    load_error(d, "listen = {\n\n outbound = 70000; };\n", msg, sizeof(msg));
    assert_string_equal(msg, at(d, "main.cfg", 3,
                                "'listen.outbound' must be between 0 and 65535 (got 70000)", want,
                                sizeof(want)));
    load_error(d, "hbone = { conn_window = 1000; };\n", msg, sizeof(msg));
    assert_string_equal(msg, at(d, "main.cfg", 1,
                                "'hbone.conn_window' must be between 65535 and 2147483647 (got "
                                "1000)",
                                want, sizeof(want)));
    load_error(d, "hbone = { stream_window = 2147483648L; };\n", msg, sizeof(msg));
    assert_string_equal(msg, at(d, "main.cfg", 1,
                                "'hbone.stream_window' must be between 65535 and 2147483647 (got "
                                "2147483648)",
                                want, sizeof(want)));
    load_error(d, "workers = -1;\n", msg, sizeof(msg));
    assert_string_equal(msg, at(d, "main.cfg", 1, "'workers' must be between 0 and 1024 (got -1)",
                                want, sizeof(want)));
    load_error(d, "node = { trust_domain = \"Cluster.Local\"; };\n", msg, sizeof(msg));
    assert_string_equal(msg, at(d, "main.cfg", 1,
                                "'node.trust_domain' may only contain lowercase letters, digits, "
                                "'.', '-' and '_'",
                                want, sizeof(want)));
    load_error(d, "node = { name = \"\"; };\n", msg, sizeof(msg));
    assert_string_equal(msg,
                        at(d, "main.cfg", 1, "'node.name' must not be empty", want, sizeof(want)));
    load_error(d, "tcp = {\n mesh_congestion = \"BBR\";\n};\n", msg, sizeof(msg));
    assert_string_equal(msg, at(d, "main.cfg", 2,
                                "'tcp.mesh_congestion' must be a TCP congestion control name such "
                                "as \"cubic\" or \"bbr\" (lowercase letters, digits, '_' and "
                                "'-'), or \"\" for the node's default",
                                want, sizeof(want)));
    load_error(d, "tcp = { pod_congestion = \"a-name-of-16-chr\"; };\n", msg, sizeof(msg));
    assert_string_equal(
        msg, at(d, "main.cfg", 1, "'tcp.pod_congestion' is too long", want, sizeof(want)));
    load_error(d, "listen = { admin_address = \"localhost\"; };\n", msg, sizeof(msg));
    assert_string_equal(msg, at(d, "main.cfg", 1,
                                "'listen.admin_address' must be an IPv4 or IPv6 address", want,
                                sizeof(want)));
    load_error(d, "listen = {\n admin = 15008;\n};\n", msg, sizeof(msg));
    assert_string_equal(msg, at(d, "main.cfg", 2,
                                "'listen.hbone' and 'listen.admin' both use port 15008", want,
                                sizeof(want)));
    load_error(
        d, "limits = { send_queue_bytes = 4194304; };\nhbone = {\n stream_window = 4194304;\n};\n",
        msg, sizeof(msg));
    assert_string_equal(msg,
                        at(d, "main.cfg", 3,
                           "'hbone.stream_window' (4194304) needs 'limits.send_queue_bytes' of "
                           "at least 4456448 (it is 4194304): a stream's unacknowledged bytes "
                           "share one socket's queue",
                           want, sizeof(want)));
}

static void bad_enum(void **state)
{
    tdir_t *d = *state;
    char msg[1024], want[1024];
    load_error(d, "log = {\n  level = \"verbose\";\n};\n", msg, sizeof(msg));
    assert_string_equal(msg, at(d, "main.cfg", 2,
                                "'log.level' must be one of trace, debug, info, warn, error (got "
                                "'verbose')",
                                want, sizeof(want)));
    load_error(d, "log = { format = \"xml\"; };\n", msg, sizeof(msg));
    assert_string_equal(msg,
                        at(d, "main.cfg", 1, "'log.format' must be one of text, json (got 'xml')",
                           want, sizeof(want)));
}

static void errors_inside_include(void **state)
{
    tdir_t *d = *state;
    char msg[1024], want[1024], inc[PATH_MAX];
    put(d, "inc.cfg", "# limits\n\nlimits = { max_streams_per_conn = 0; };\n", inc, sizeof(inc));
    load_error(d, "workers = 1;\n@include \"inc.cfg\"\n", msg, sizeof(msg));
    assert_string_equal(msg, at(d, "inc.cfg", 3,
                                "'limits.max_streams_per_conn' must be between 1 and 65535 (got 0)",
                                want, sizeof(want)));
    put(d, "inc.cfg", "a = 1;\nb = ;\n", inc, sizeof(inc));
    load_error(d, "@include \"inc.cfg\"\n", msg, sizeof(msg));
    assert_string_equal(msg, at(d, "inc.cfg", 2, "syntax error", want, sizeof(want)));
    load_error(d, "workers = 1;\n@include \"missing.cfg\"\n", msg, sizeof(msg));
    assert_string_equal(msg, at(d, "main.cfg", 2, "cannot open include file", want, sizeof(want)));
}

static void every_problem_reported(void **state)
{
    tdir_t *d = *state;
    char path[PATH_MAX], report[2048], want[4 * PATH_MAX], msg[1024];
    const zm_config_t *cfg = NULL;
    zm_err_t err;
    put(d, "main.cfg", "workers = \"x\";\nlisten = { bogus = 1; };\nlog = { level = \"loud\"; };\n",
        path, sizeof(path));
    assert_int_equal(zm_config_load_report(path, &cfg, &err, report, sizeof(report)), -EINVAL);
    assert_null(cfg);
    snprintf(want, sizeof(want),
             "%s:1: 'workers' must be an integer\n"
             "%s:2: unknown key 'bogus' in section 'listen'\n"
             "%s:3: 'log.level' must be one of trace, debug, info, warn, error (got 'loud')\n",
             path, path, path);
    assert_string_equal(report, want);
    /* err holds the first */
    assert_string_equal(zm_err_str(&err, msg, sizeof(msg)),
                        at(d, "main.cfg", 1, "'workers' must be an integer", want, sizeof(want)));
    /* a tiny buffer is truncated, never overrun */
    char small[16];
    assert_int_equal(zm_config_load_report(path, &cfg, &err, small, sizeof(small)), -EINVAL);
    assert_int_equal(strlen(small), sizeof(small) - 1);
}

static void missing_file(void **state)
{
    tdir_t *d = *state;
    char path[PATH_MAX], msg[1024], want[PATH_MAX + 64];
    const zm_config_t *cfg = NULL;
    zm_err_t err;
    snprintf(path, sizeof(path), "%s/nope.cfg", d->path);
    assert_int_equal(zm_config_load(path, &cfg, &err), -ENOENT);
    snprintf(want, sizeof(want), "%s: cannot read: %s", path, strerror(ENOENT));
    assert_string_equal(zm_err_str(&err, msg, sizeof(msg)), want);
    assert_int_equal(zm_config_load(d->path, &cfg, &err), -EISDIR);
    assert_null(zm_config_slot_new(path, &err));
}

static void load_from_string(void **state)
{
    const zm_config_t *cfg = NULL;
    zm_err_t err;
    char msg[1024];
    assert_int_equal(zm_config_load_string("workers = 3;", "inline", &cfg, &err), 0);
    assert_int_equal(cfg->workers, 3);
    zm_config_release(&cfg);
    assert_int_equal(zm_config_load_string("\nworkers = 3000;", "inline", &cfg, &err), -EINVAL);
    assert_string_equal(zm_err_str(&err, msg, sizeof(msg)),
                        "inline:2: 'workers' must be between 0 and 1024 (got 3000)");
}

static void dump_is_json(void **state)
{
    tdir_t *d = *state;
    char path[PATH_MAX];
    const zm_config_t *cfg = NULL;
    zm_err_t err;
    put(d, "main.cfg", full_cfg, path, sizeof(path));
    assert_int_equal(zm_config_load(path, &cfg, &err), 0);
    char *s = zm_config_dump_string(cfg);
    assert_non_null(s);
    json_error_t jerr;
    json_t *j = json_loads(s, 0, &jerr);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "generation")), 1);
    assert_string_equal(json_string_value(json_object_get(j, "path")), path);
    assert_int_equal(json_integer_value(json_object_get(j, "workers")), 2);
    json_t *listen = json_object_get(j, "listen");
    assert_int_equal(json_integer_value(json_object_get(listen, "outbound")), 25001);
    assert_string_equal(json_string_value(json_object_get(listen, "admin_address")), "::1");
    json_t *hb = json_object_get(j, "hbone");
    assert_int_equal(json_integer_value(json_object_get(hb, "conn_window")), 2147483647);
    json_t *lg = json_object_get(j, "log");
    assert_string_equal(json_string_value(json_object_get(lg, "level")), "debug");
    assert_string_equal(json_string_value(json_object_get(lg, "format")), "json");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "node"), "name")),
                        "worker-7");
    assert_int_equal(json_array_size(json_object_get(j, "sources")), 1);
    json_decref(j);
    free(s);

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(zm_config_dump(cfg, f), 0);
    fclose(f);
    assert_non_null(strstr(buf, "\"max_frame_size\": 16384"));
    free(buf);
    zm_config_release(&cfg);
}

static void reload_swaps_and_refuses(void **state)
{
    tdir_t *d = *state;
    char path[PATH_MAX], msg[1024], want[1024];
    zm_err_t err;
    put(d, "main.cfg", "workers = 1;\n", path, sizeof(path));
    zm_config_slot_t *slot = zm_config_slot_new(path, &err);
    assert_non_null(slot);
    const zm_config_t *old = zm_config_slot_acquire(slot);
    assert_int_equal(old->workers, 1);
    assert_int_equal(old->generation, 1);

    put(d, "main.cfg", "workers = 2;\nnode = { name = \"n2\"; };\n", path, sizeof(path));
    assert_int_equal(zm_config_slot_reload(slot, &err), 1);
    /* a reader holding the old snapshot still sees the old values */
    assert_int_equal(old->workers, 1);
    assert_string_equal(old->node.name, "node-1");
    const zm_config_t *cur = zm_config_slot_acquire(slot);
    assert_int_equal(cur->workers, 2);
    assert_string_equal(cur->node.name, "n2");
    assert_int_equal(cur->generation, 2);
    const zm_config_t *extra = zm_config_retain(cur);
    zm_config_release(&extra);
    zm_config_release(&old); /* frees generation 1 (ASan would see a leak otherwise) */
    zm_config_release(&cur);
    assert_int_equal(zm_config_slot_reload_failures(slot), 0);

    put(d, "main.cfg", "workers = 2;\nlisten = { hbone = 99999; };\n", path, sizeof(path));
    assert_true(zm_config_slot_reload(slot, &err) < 0);
    assert_string_equal(zm_err_str(&err, msg, sizeof(msg)),
                        at(d, "main.cfg", 2,
                           "'listen.hbone' must be between 0 and 65535 (got 99999)", want,
                           sizeof(want)));
    assert_int_equal(zm_config_slot_reload_failures(slot), 1);
    cur = zm_config_slot_acquire(slot);
    assert_int_equal(cur->workers, 2);
    assert_int_equal(cur->generation, 2);

    /* the slot may go before its readers */
    zm_config_slot_destroy(&slot);
    assert_null(slot);
    assert_string_equal(cur->node.name, "n2");
    zm_config_release(&cur);
    zm_config_slot_destroy(&slot); /* NULL is fine */
}

typedef struct race {
    zm_config_slot_t *slot;
    int iterations;
    int bad;
} race_t;

static void *reader(void *arg)
{
    race_t *r = arg;
    for (int i = 0; i < r->iterations; i++) {
        const zm_config_t *cfg = zm_config_slot_acquire(r->slot);
        if (cfg->workers != 1 && cfg->workers != 2)
            r->bad++;
        zm_config_release(&cfg);
    }
    return NULL;
}

/* Readers on another thread acquire/release while the file is reloaded:
 * no use-after-free (ASan/TSan-visible), every snapshot is one of the two. */
static void reload_while_reading(void **state)
{
    tdir_t *d = *state;
    char path[PATH_MAX], alt[PATH_MAX];
    zm_err_t err;
    put(d, "main.cfg", "workers = 1;\n", path, sizeof(path));
    race_t r = {.iterations = 20000};
    r.slot = zm_config_slot_new(path, &err);
    assert_non_null(r.slot);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, reader, &r), 0);
    for (int i = 0; i < 200; i++) {
        put(d, "next.cfg", i % 2 ? "workers = 1;\n" : "workers = 2;\n", alt, sizeof(alt));
        assert_int_equal(rename(alt, path), 0);
        assert_int_equal(zm_config_slot_reload(r.slot, &err), 1);
    }
    pthread_join(t, NULL);
    assert_int_equal(r.bad, 0);
    const zm_config_t *cfg = zm_config_slot_acquire(r.slot);
    assert_int_equal(cfg->generation, 201);
    zm_config_release(&cfg);
    zm_config_slot_destroy(&r.slot);
}

static void watch_sees_rename(void **state)
{
    tdir_t *d = *state;
    char path[PATH_MAX], tmp[PATH_MAX], other[PATH_MAX], inc[PATH_MAX];
    zm_err_t err;
    put(d, "inc.cfg", "workers = 1;\n", inc, sizeof(inc));
    put(d, "main.cfg", "@include \"inc.cfg\"\n", path, sizeof(path));
    zm_config_slot_t *slot = zm_config_slot_new(path, &err);
    assert_non_null(slot);
    assert_int_equal(zm_config_watch_check(slot), -EBADF);
    int fd = zm_config_watch_fd(slot);
    assert_true(fd >= 0);
    assert_int_equal(zm_config_watch_fd(slot), fd);
    assert_int_equal(zm_config_watch_check(slot), 0);

    /* an unrelated file in the same directory is ignored */
    put(d, "other.txt", "hello", other, sizeof(other));
    assert_int_equal(zm_config_watch_check(slot), 0);

    /* an editor's write-to-temp + rename over the file */
    put(d, ".main.cfg.swp", "workers = 2;\n", tmp, sizeof(tmp));
    assert_int_equal(zm_config_watch_check(slot), 0);
    assert_int_equal(rename(tmp, path), 0);
    assert_int_equal(zm_config_watch_check(slot), 1);
    assert_int_equal(zm_config_watch_check(slot), 0); /* drained */
    assert_int_equal(zm_config_slot_reload(slot, &err), 1);

    /* written in place */
    put(d, "main.cfg", "workers = 3;\n", path, sizeof(path));
    assert_int_equal(zm_config_watch_check(slot), 1);

    /* an included file changes (it was a source of the first snapshot; the
     * current one no longer includes it, so only the main file counts now) */
    put(d, "inc.cfg", "workers = 4;\n", inc, sizeof(inc));
    assert_int_equal(zm_config_watch_check(slot), 0);
    put(d, "main.cfg", "@include \"inc.cfg\"\n", path, sizeof(path));
    assert_int_equal(zm_config_watch_check(slot), 1);
    assert_int_equal(zm_config_slot_reload(slot, &err), 1);
    put(d, "inc.cfg", "workers = 5;\n", inc, sizeof(inc));
    assert_int_equal(zm_config_watch_check(slot), 1);

    zm_config_slot_destroy(&slot);
}

/* Kubernetes ConfigMap volumes: main.cfg -> ..data/main.cfg, and an update
 * swaps the ..data symlink with a rename. */
static void watch_sees_configmap_swap(void **state)
{
    tdir_t *d = *state;
    char p[PATH_MAX], q[PATH_MAX], path[PATH_MAX];
    zm_err_t err;
    snprintf(p, sizeof(p), "%s/..v1", d->path);
    assert_int_equal(mkdir(p, 0755), 0);
    put(d, "..v1/main.cfg", "workers = 1;\n", q, sizeof(q));
    snprintf(p, sizeof(p), "%s/..data", d->path);
    assert_int_equal(symlink("..v1", p), 0);
    snprintf(path, sizeof(path), "%s/main.cfg", d->path);
    assert_int_equal(symlink("..data/main.cfg", path), 0);

    zm_config_slot_t *slot = zm_config_slot_new(path, &err);
    assert_non_null(slot);
    assert_true(zm_config_watch_fd(slot) >= 0);

    snprintf(p, sizeof(p), "%s/..v2", d->path);
    assert_int_equal(mkdir(p, 0755), 0);
    put(d, "..v2/main.cfg", "workers = 2;\n", q, sizeof(q));
    snprintf(p, sizeof(p), "%s/..data_tmp", d->path);
    assert_int_equal(symlink("..v2", p), 0);
    snprintf(q, sizeof(q), "%s/..data", d->path);
    assert_int_equal(rename(p, q), 0);
    assert_int_equal(zm_config_watch_check(slot), 1);
    assert_int_equal(zm_config_slot_reload(slot, &err), 1);
    const zm_config_t *cfg = zm_config_slot_acquire(slot);
    assert_int_equal(cfg->workers, 2);
    zm_config_release(&cfg);

    /* the file itself re-created as a symlink (ln -sf) */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(symlink("..v1/main.cfg", path), 0);
    assert_int_equal(zm_config_watch_check(slot), 1);
    zm_config_slot_destroy(&slot);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(defaults_when_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(every_key_parsed, setup, teardown),
        cmocka_unit_test_setup_teardown(include_and_derived_ca, setup, teardown),
        cmocka_unit_test_setup_teardown(syntax_error, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(wrong_types, setup, teardown),
        cmocka_unit_test_setup_teardown(out_of_range, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_enum, setup, teardown),
        cmocka_unit_test_setup_teardown(errors_inside_include, setup, teardown),
        cmocka_unit_test_setup_teardown(every_problem_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(load_from_string, setup, teardown),
        cmocka_unit_test_setup_teardown(dump_is_json, setup, teardown),
        cmocka_unit_test_setup_teardown(reload_swaps_and_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(reload_while_reading, setup, teardown),
        cmocka_unit_test_setup_teardown(watch_sees_rename, setup, teardown),
        cmocka_unit_test_setup_teardown(watch_sees_configmap_swap, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
