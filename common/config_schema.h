/*
 * config_schema.h — internal to the config module: the table-driven schema
 * machinery shared by config.c (the sections and the loader) and by files
 * that add sections (workloads, services, policies).
 *
 * A flat group of scalars is a table of zm_config_field_t (key, C type and
 * offset in some struct, range, default); zm_config_fields_* parse, default,
 * dump and free such a struct from the table. A section that holds lists
 * (one struct per element) gives the section table its own parse / dump /
 * free hooks and calls zm_config_fields_parse on each element with a field
 * table of the element's struct. Every problem goes through
 * zm_config_problem, which records it with the setting's file and line and
 * lets parsing go on, so one run reports everything.
 *
 * Strings parsed by the field helpers are malloc'd and owned by the struct
 * they were written into; zm_config_fields_free releases them.
 *
 * Threading: a parse context belongs to one load on one thread.
 */
#ifndef ZM_CONFIG_SCHEMA_H
#define ZM_CONFIG_SCHEMA_H

#include "config.h"

#include <jansson.h>
#include <libconfig.h>
#include <limits.h>
#include <stdbool.h>

enum { ZM_CONFIG_K_UINT, ZM_CONFIG_K_STR, ZM_CONFIG_K_ENUM };

#define ZM_CONFIG_FL_PATH 0x1    /* relative values are resolved against the config dir */
#define ZM_CONFIG_FL_LOGSINK 0x2 /* "stderr", "stdout" and "off" are names, not paths */

typedef struct zm_config_field {
    const char *key;
    uint8_t kind;
    uint8_t size; /* K_UINT: bytes of the member (2, 4 or 8) */
    uint8_t flags;
    size_t off;                         /* in the struct the table describes */
    int64_t min, max;                   /* K_UINT: value range; K_STR: length range */
    int64_t def;                        /* K_UINT value, K_ENUM index */
    const char *sdef;                   /* K_STR default */
    const char *const *names;           /* K_ENUM values, NULL-terminated; stored as int */
    const char *(*check)(const char *); /* K_STR: a problem ("must be ...") or NULL */
} zm_config_field_t;

#define ZM_CONFIG_UINT(T, member, k, lo, hi, d)                                                    \
    {                                                                                              \
        .key = k, .kind = ZM_CONFIG_K_UINT, .size = sizeof(((T *)0)->member),                      \
        .off = offsetof(T, member), .min = lo, .max = hi, .def = d                                 \
    }
#define ZM_CONFIG_STR(T, member, k, lo, hi, d, fl, chk)                                            \
    {                                                                                              \
        .key = k, .kind = ZM_CONFIG_K_STR, .flags = fl, .off = offsetof(T, member), .min = lo,     \
        .max = hi, .sdef = d, .check = chk                                                         \
    }
#define ZM_CONFIG_ENUM(T, member, k, nm, d)                                                        \
    {                                                                                              \
        .key = k, .kind = ZM_CONFIG_K_ENUM, .off = offsetof(T, member), .names = nm, .def = d      \
    }

/* One load in progress. */
typedef struct zm_config_parse {
    const char *path;      /* main file as given, or the name of a string */
    char dir[PATH_MAX];    /* its directory as given ("" for strings) */
    char absdir[PATH_MAX]; /* its directory, absolute ("" for strings) */
    zm_err_t *err;         /* receives the first problem */
    int n_problems;
    bool nomem;
    char *report; /* every problem, "file:line: message\n" each */
    size_t report_len, report_used;
    char **sources; /* files that contributed settings (moved into the snapshot) */
    size_t n_sources;
} zm_config_parse_t;

/* A top-level section. Flat sections list fields (offsets in zm_config_t);
 * others set parse and usually dump and free. check runs after every
 * section was parsed, for rules across keys (s is NULL when the section is
 * absent from the file). dump adds to the section's JSON object. */
typedef struct zm_config_section {
    const char *name;
    const zm_config_field_t *fields;
    size_t n_fields;
    void (*check)(zm_config_parse_t *ctx, const config_setting_t *s, zm_config_t *cfg);
    void (*parse)(zm_config_parse_t *ctx, const config_setting_t *s, zm_config_t *cfg);
    int (*dump)(const zm_config_t *cfg, json_t *obj);
    void (*free)(zm_config_t *cfg);
} zm_config_section_t;

/* Records a problem at a file and line (file NULL = the main file). */
void zm_config_problem_at(zm_config_parse_t *ctx, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Records a problem at a setting (NULL = the main file, no line). */
#define zm_config_problem(ctx, s, ...)                                                             \
    zm_config_problem_at(ctx, (s) ? config_setting_source_file(s) : NULL,                          \
                         (s) ? (int)config_setting_source_line(s) : 0, __VA_ARGS__)

/* Remembers the file a setting came from (the watch reloads on its change). */
void zm_config_note_source(zm_config_parse_t *ctx, const config_setting_t *s);

/* "unknown key 'x' in section 'where'" (or "unknown key 'x'" when where is
 * NULL), plus "(did you mean 'y'?)" when one of known is close. */
void zm_config_unknown_key(zm_config_parse_t *ctx, const config_setting_t *m, const char *where,
                           const char *const *known, size_t n_known);

const zm_config_field_t *zm_config_field_find(const zm_config_field_t *fields, size_t n,
                                              const char *key);

/* Parses one setting m into base according to f; where prefixes the key in
 * messages ("listen" → 'listen.outbound'), NULL for none. */
void zm_config_field_parse(zm_config_parse_t *ctx, const char *where, const zm_config_field_t *f,
                           const config_setting_t *m, void *base);

/* Sets every field of base to its default. */
void zm_config_fields_defaults(zm_config_parse_t *ctx, const zm_config_field_t *fields, size_t n,
                               void *base);
/* Parses every member of group into base (set the defaults first); unknown
 * keys, and a group that is not a group, are problems. */
void zm_config_fields_parse(zm_config_parse_t *ctx, const char *where,
                            const zm_config_field_t *fields, size_t n,
                            const config_setting_t *group, void *base);
void zm_config_fields_free(const zm_config_field_t *fields, size_t n, void *base);
int zm_config_fields_dump(const zm_config_field_t *fields, size_t n, const void *base, json_t *obj);

/* Replaces the string field f of base with v (owned; NULL means out of memory). */
void zm_config_field_set_str(zm_config_parse_t *ctx, const zm_config_field_t *f, void *base,
                             char *v);

/* The mesh sections (config_mesh.c). */
void zm_config_mesh_parse_workloads(zm_config_parse_t *ctx, const config_setting_t *s,
                                    zm_config_t *cfg);
void zm_config_mesh_check_workloads(zm_config_parse_t *ctx, const config_setting_t *s,
                                    zm_config_t *cfg);
int zm_config_mesh_dump_workloads(const zm_config_t *cfg, json_t *obj);
void zm_config_mesh_free_workloads(zm_config_t *cfg);
void zm_config_mesh_parse_services(zm_config_parse_t *ctx, const config_setting_t *s,
                                   zm_config_t *cfg);
void zm_config_mesh_check_services(zm_config_parse_t *ctx, const config_setting_t *s,
                                   zm_config_t *cfg);
int zm_config_mesh_dump_services(const zm_config_t *cfg, json_t *obj);
void zm_config_mesh_free_services(zm_config_t *cfg);

/* The policies section (config_policy.c). */
void zm_config_policy_parse(zm_config_parse_t *ctx, const config_setting_t *s, zm_config_t *cfg);
void zm_config_policy_check(zm_config_parse_t *ctx, const config_setting_t *s, zm_config_t *cfg);
int zm_config_policy_dump(const zm_config_t *cfg, json_t *obj);
void zm_config_policy_free(zm_config_t *cfg);

#endif
