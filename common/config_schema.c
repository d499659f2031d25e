/*
 * config_schema.c — the table-driven parse, default, dump and free of config
 * structs, and problem reporting with file and line (see config_schema.h).
 *
 * File names in messages: the main file as the caller gave it; an included
 * file as libconfig names it (the @include argument), joined to the main
 * file's directory, which is where libconfig looked for it. So every
 * message names a file the user can open.
 */
#include "config_schema.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char **str_at(void *base, const zm_config_field_t *f)
{
    return (char **)((char *)base + f->off);
}

/* How a file is named in messages. */
static void source_name(const zm_config_parse_t *ctx, const char *file, char *out, size_t len)
{
    if (!file || !strcmp(file, ctx->path) || file[0] == '/' || !ctx->dir[0] ||
        !strcmp(ctx->dir, "."))
        snprintf(out, len, "%s", file ? file : ctx->path);
    else if (snprintf(out, len, "%s/%s", ctx->dir, file) >= (int)len)
        snprintf(out, len, "%s", file); /* too long to qualify: the bare name still helps */
}

void zm_config_problem_at(zm_config_parse_t *ctx, const char *file, int line, const char *fmt, ...)
{
    char name[PATH_MAX], msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    source_name(ctx, file, name, sizeof(name));
    if (ctx->n_problems++ == 0 && ctx->err)
        zm_err_set(ctx->err, name, line, "%s", msg);
    if (!ctx->report || ctx->report_used + 1 >= ctx->report_len)
        return;
    char *at = ctx->report + ctx->report_used;
    size_t room = ctx->report_len - ctx->report_used;
    int n = line > 0 ? snprintf(at, room, "%s:%d: %s\n", name, line, msg)
                     : snprintf(at, room, "%s: %s\n", name, msg);
    if (n > 0)
        ctx->report_used = ZM_MIN(ctx->report_used + (size_t)n, ctx->report_len - 1);
}

void zm_config_note_source(zm_config_parse_t *ctx, const config_setting_t *s)
{
    char name[PATH_MAX];
    source_name(ctx, config_setting_source_file(s), name, sizeof(name));
    for (size_t i = 0; i < ctx->n_sources; i++)
        if (!strcmp(ctx->sources[i], name))
            return;
    char **v = realloc(ctx->sources, (ctx->n_sources + 1) * sizeof(*v));
    char *dup = v ? strdup(name) : NULL;
    if (v)
        ctx->sources = v;
    if (!dup) {
        ctx->nomem = true;
        return;
    }
    ctx->sources[ctx->n_sources++] = dup;
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

void zm_config_unknown_key(zm_config_parse_t *ctx, const config_setting_t *m, const char *where,
                           const char *const *known, size_t n_known)
{
    const char *name = config_setting_name(m);
    char hint[96] = "";
    size_t best = 3; /* a typo is at most two edits away */
    for (size_t i = 0; i < n_known; i++) {
        size_t d = edit_distance(name, known[i]);
        if (d < best) {
            best = d;
            snprintf(hint, sizeof(hint), " (did you mean '%s'?)", known[i]);
        }
    }
    if (where)
        zm_config_problem(ctx, m, "unknown key '%s' in section '%s'%s", name, where, hint);
    else
        zm_config_problem(ctx, m, "unknown key '%s'%s", name, hint);
}

const zm_config_field_t *zm_config_field_find(const zm_config_field_t *fields, size_t n,
                                              const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(fields[i].key, key))
            return &fields[i];
    return NULL;
}

static char *resolve_path(zm_config_parse_t *ctx, const zm_config_field_t *f, const char *v)
{
    bool sink = (f->flags & ZM_CONFIG_FL_LOGSINK) &&
                (!strcmp(v, "stderr") || !strcmp(v, "stdout") || !strcmp(v, "off"));
    if (!(f->flags & ZM_CONFIG_FL_PATH) || sink || v[0] == '/' || !v[0] || !ctx->absdir[0])
        return strdup(v);
    char *out = NULL;
    if (asprintf(&out, "%s/%s", ctx->absdir, v) < 0)
        return NULL;
    return out;
}

static void set_uint(void *base, const zm_config_field_t *f, uint64_t v)
{
    void *p = (char *)base + f->off;
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

static uint64_t get_uint(const void *base, const zm_config_field_t *f)
{
    const void *p = (const char *)base + f->off;
    return f->size == 2   ? *(const uint16_t *)p
           : f->size == 4 ? *(const uint32_t *)p
                          : *(const uint64_t *)p;
}

void zm_config_field_set_str(zm_config_parse_t *ctx, const zm_config_field_t *f, void *base,
                             char *v)
{
    if (!v) {
        ctx->nomem = true;
        return;
    }
    free(*str_at(base, f));
    *str_at(base, f) = v;
}

void zm_config_field_parse(zm_config_parse_t *ctx, const char *where, const zm_config_field_t *f,
                           const config_setting_t *m, void *base)
{
    char key[128];
    snprintf(key, sizeof(key), "%s%s%s", where ? where : "", where ? "." : "", f->key);
    int type = config_setting_type(m);
    if (f->kind == ZM_CONFIG_K_UINT) {
        if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64) {
            zm_config_problem(ctx, m, "'%s' must be an integer", key);
            return;
        }
        long long v = config_setting_get_int64(m);
        if (v < f->min || v > f->max) {
            zm_config_problem(ctx, m, "'%s' must be between %lld and %lld (got %lld)", key,
                              (long long)f->min, (long long)f->max, v);
            return;
        }
        set_uint(base, f, (uint64_t)v);
        return;
    }
    if (type != CONFIG_TYPE_STRING) {
        zm_config_problem(ctx, m, "'%s' must be a string", key);
        return;
    }
    const char *v = config_setting_get_string(m);
    if (f->kind == ZM_CONFIG_K_ENUM) {
        char list[256] = "";
        for (int i = 0; f->names[i]; i++) {
            if (!strcmp(v, f->names[i])) {
                *(int *)((char *)base + f->off) = i;
                return;
            }
            size_t used = strlen(list);
            snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", f->names[i]);
        }
        zm_config_problem(ctx, m, "'%s' must be one of %s (got '%s')", key, list, v);
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
        zm_config_problem(ctx, m, "'%s' %s", key, why);
        return;
    }
    zm_config_field_set_str(ctx, f, base, resolve_path(ctx, f, v));
}

void zm_config_fields_defaults(zm_config_parse_t *ctx, const zm_config_field_t *fields, size_t n,
                               void *base)
{
    for (size_t i = 0; i < n; i++) {
        const zm_config_field_t *f = &fields[i];
        if (f->kind == ZM_CONFIG_K_UINT)
            set_uint(base, f, (uint64_t)f->def);
        else if (f->kind == ZM_CONFIG_K_ENUM)
            *(int *)((char *)base + f->off) = (int)f->def;
        else
            zm_config_field_set_str(ctx, f, base, strdup(f->sdef));
    }
}

void zm_config_fields_parse(zm_config_parse_t *ctx, const char *where,
                            const zm_config_field_t *fields, size_t n,
                            const config_setting_t *group, void *base)
{
    if (!config_setting_is_group(group)) {
        const char *w = where ? where : "value";
        zm_config_problem(ctx, group, "'%s' must be a group: %s = { ... };", w, w);
        return;
    }
    for (int i = 0; i < config_setting_length(group); i++) {
        const config_setting_t *m = config_setting_get_elem(group, (unsigned)i);
        zm_config_note_source(ctx, m);
        const zm_config_field_t *f = zm_config_field_find(fields, n, config_setting_name(m));
        if (f) {
            zm_config_field_parse(ctx, where, f, m, base);
            continue;
        }
        const char *known[64];
        size_t k = 0;
        for (; k < n && k < ZM_ARRAY_LEN(known); k++)
            known[k] = fields[k].key;
        zm_config_unknown_key(ctx, m, where, known, k);
    }
}

void zm_config_fields_free(const zm_config_field_t *fields, size_t n, void *base)
{
    for (size_t i = 0; i < n; i++)
        if (fields[i].kind == ZM_CONFIG_K_STR) {
            free(*str_at(base, &fields[i]));
            *str_at(base, &fields[i]) = NULL;
        }
}

int zm_config_fields_dump(const zm_config_field_t *fields, size_t n, const void *base, json_t *obj)
{
    for (size_t i = 0; i < n; i++) {
        const zm_config_field_t *f = &fields[i];
        const void *p = (const char *)base + f->off;
        json_t *v;
        if (f->kind == ZM_CONFIG_K_UINT)
            v = json_integer((json_int_t)get_uint(base, f));
        else if (f->kind == ZM_CONFIG_K_ENUM)
            v = json_string(f->names[*(const int *)p]);
        else
            v = json_string(*(const char *const *)p);
        if (json_object_set_new(obj, f->key, v) < 0)
            return -ENOMEM;
    }
    return 0;
}
