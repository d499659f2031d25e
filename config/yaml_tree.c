/*
 * yaml_tree.c — libyaml events to an arena tree (see yaml_tree.h for the contract).
 *
 * The builder keeps a stack of open collections (at most MC_YAML_MAX_DEPTH).
 * Children collect in a malloc'ed scratch array per frame and are copied
 * into the arena when the collection ends, so the arena holds only final
 * nodes. A map's pairs are checked for duplicates, and merge keys applied,
 * with one sort by key (n log n, so a hostile map with many keys stays
 * cheap). Anchors are per document and are registered when their node
 * ends, so an alias can never point into a node still being built: cycles
 * are impossible and the tree is a DAG.
 */
#include "yaml_tree.h"

#include <yaml.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_ANCHORS 10000

typedef struct frame {
    mc_yaml_node_t *node;        /* MAP or SEQ being built */
    const char *anchor;          /* registered when the node ends */
    const mc_yaml_node_t **kids; /* SEQ: items; MAP: key, value, key, value ... */
    size_t n, cap;
    const mc_yaml_node_t **merges; /* values of `<<` keys, in order */
    size_t n_merges, cap_merges;
    bool merge_pending; /* the last key was a plain `<<` */
} frame_t;

typedef struct anchor {
    const char *name;
    const mc_yaml_node_t *node;
} anchor_t;

typedef struct builder {
    mc_yaml_set_t *set;
    const char *file;
    zm_err_t *err;
    frame_t frames[MC_YAML_MAX_DEPTH];
    int depth;
    const mc_yaml_node_t *root;
    anchor_t *anchors;
    size_t n_anchors, cap_anchors;
} builder_t;

static int oom(builder_t *b, int line)
{
    zm_err_set(b->err, b->file, line, "out of memory");
    return -ENOMEM;
}

static int grow(void *pp, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 8;
    void *p = realloc(*(void **)pp, nc * elem);
    if (p == NULL)
        return -ENOMEM;
    *(void **)pp = p;
    *cap = nc;
    return 0;
}

static void frame_release(frame_t *f)
{
    free(f->kids);
    free(f->merges);
    memset(f, 0, sizeof(*f));
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a + b < a ? UINT64_MAX : a + b;
}

static int register_anchor(builder_t *b, const char *name, const mc_yaml_node_t *node)
{
    if (name == NULL)
        return 0;
    if (b->n_anchors >= MAX_ANCHORS)
        return zm_err_set(b->err, b->file, node->line, "too many anchors (limit %d)", MAX_ANCHORS);
    if (grow(&b->anchors, &b->cap_anchors, b->n_anchors, sizeof(anchor_t)) < 0)
        return oom(b, node->line);
    b->anchors[b->n_anchors++] = (anchor_t){name, node};
    return 0;
}

static const mc_yaml_node_t *find_anchor(builder_t *b, const char *name)
{
    /* Newest first: YAML lets a later anchor of the same name shadow. */
    for (size_t i = b->n_anchors; i-- > 0;)
        if (strcmp(b->anchors[i].name, name) == 0)
            return b->anchors[i].node;
    return NULL;
}

/* Adds a finished node to the open collection (or makes it the root). */
static int add_child(builder_t *b, const mc_yaml_node_t *v)
{
    if (b->depth == 0) {
        b->root = v;
        return 0;
    }
    frame_t *f = &b->frames[b->depth - 1];
    if (f->node->kind == MC_YAML_MAP) {
        bool is_key = f->n % 2 == 0 && !f->merge_pending;
        if (is_key) {
            if (v->kind != MC_YAML_SCALAR && v->kind != MC_YAML_NULL)
                return zm_err_set(b->err, b->file, v->line, "a map key must be a scalar, not a %s",
                                  mc_yaml_kind_name(v));
            if (v->kind == MC_YAML_SCALAR && v->plain && strcmp(v->str, "<<") == 0) {
                f->merge_pending = true;
                return 0;
            }
        } else if (f->merge_pending) {
            f->merge_pending = false;
            bool ok = v->kind == MC_YAML_MAP;
            if (v->kind == MC_YAML_SEQ) {
                ok = true;
                for (size_t i = 0; i < v->n; i++)
                    ok = ok && v->items[i]->kind == MC_YAML_MAP;
            }
            if (!ok)
                return zm_err_set(b->err, b->file, v->line,
                                  "a merge key (<<) needs a map or a list of maps");
            if (grow(&f->merges, &f->cap_merges, f->n_merges, sizeof(*f->merges)) < 0)
                return oom(b, v->line);
            f->merges[f->n_merges++] = v;
            return 0;
        }
    }
    if (grow(&f->kids, &f->cap, f->n, sizeof(*f->kids)) < 0)
        return oom(b, v->line);
    f->kids[f->n++] = v;
    return 0;
}

typedef struct entry {
    mc_yaml_pair_t pair;
    size_t idx;
    bool explicit_;
} entry_t;

static int key_cmp(const mc_yaml_node_t *a, const mc_yaml_node_t *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->str, b->str, n);
    if (c != 0)
        return c;
    return a->len < b->len ? -1 : a->len > b->len;
}

static int entry_by_key(const void *pa, const void *pb)
{
    const entry_t *a = pa, *b = pb;
    int c = key_cmp(a->pair.key, b->pair.key);
    if (c != 0)
        return c;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static int entry_by_idx(const void *pa, const void *pb)
{
    const entry_t *a = pa, *b = pb;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* Final pairs of a map: explicit pairs, then merged ones not shadowed. */
static int finish_map(builder_t *b, frame_t *f)
{
    mc_yaml_node_t *node = f->node;
    size_t n = f->n / 2;
    for (size_t m = 0; m < f->n_merges; m++) {
        const mc_yaml_node_t *src = f->merges[m];
        if (src->kind == MC_YAML_MAP)
            n += src->n;
        else
            for (size_t i = 0; i < src->n; i++)
                n += src->items[i]->n;
    }
    if (n == 0)
        return 0;
    entry_t *e = calloc(n, sizeof(*e));
    if (e == NULL)
        return oom(b, node->line);
    size_t k = 0;
    for (size_t i = 0; i + 1 < f->n; i += 2, k++)
        e[k] = (entry_t){{f->kids[i], f->kids[i + 1]}, k, true};
    for (size_t m = 0; m < f->n_merges; m++) {
        const mc_yaml_node_t *src = f->merges[m];
        size_t ns = src->kind == MC_YAML_MAP ? 1 : src->n;
        for (size_t s = 0; s < ns; s++) {
            const mc_yaml_node_t *mp = src->kind == MC_YAML_MAP ? src : src->items[s];
            for (size_t i = 0; i < mp->n; i++, k++)
                e[k] = (entry_t){mp->pairs[i], k, false};
        }
    }
    qsort(e, n, sizeof(*e), entry_by_key);
    size_t kept = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && key_cmp(e[i].pair.key, e[j].pair.key) == 0) {
            if (e[j].explicit_) {
                int line = e[j].pair.key->line;
                char key[64];
                snprintf(key, sizeof(key), "%s", e[j].pair.key->str);
                free(e);
                return zm_err_set(b->err, b->file, line, "duplicate key \"%s\"", key);
            }
            j++;
        }
        e[kept++] = e[i];
        i = j;
    }
    qsort(e, kept, sizeof(*e), entry_by_idx);
    mc_yaml_pair_t *pairs = mc_arena_alloc(&b->set->arena, kept * sizeof(*pairs));
    if (pairs == NULL) {
        free(e);
        return oom(b, node->line);
    }
    uint64_t size = 1;
    for (size_t i = 0; i < kept; i++) {
        pairs[i] = e[i].pair;
        size = sat_add(size, sat_add(pairs[i].key->size, pairs[i].value->size));
    }
    free(e);
    node->pairs = pairs;
    node->n = kept;
    node->size = size;
    return 0;
}

static int finish_seq(builder_t *b, frame_t *f)
{
    mc_yaml_node_t *node = f->node;
    if (f->n == 0)
        return 0;
    const mc_yaml_node_t **items = mc_arena_alloc(&b->set->arena, f->n * sizeof(*items));
    if (items == NULL)
        return oom(b, node->line);
    uint64_t size = 1;
    for (size_t i = 0; i < f->n; i++) {
        items[i] = f->kids[i];
        size = sat_add(size, items[i]->size);
    }
    node->items = items;
    node->n = f->n;
    node->size = size;
    return 0;
}

static mc_yaml_node_t *new_node(builder_t *b, mc_yaml_kind_t kind, const yaml_mark_t *mark)
{
    mc_yaml_node_t *n = mc_arena_alloc(&b->set->arena, sizeof(*n));
    if (n == NULL)
        return NULL;
    n->kind = kind;
    n->file = b->file;
    n->line = (int)mark->line + 1;
    n->str = "";
    n->size = 1;
    return n;
}

static const char *dup_anchor(builder_t *b, const yaml_char_t *anchor)
{
    return anchor ? mc_arena_strdup(&b->set->arena, (const char *)anchor) : NULL;
}

static int on_scalar(builder_t *b, const yaml_event_t *ev)
{
    mc_yaml_node_t *n = new_node(b, MC_YAML_SCALAR, &ev->start_mark);
    if (n == NULL)
        return oom(b, (int)ev->start_mark.line + 1);
    const char *v = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    if (tag && strcmp(tag, YAML_STR_TAG) == 0)
        n->plain = false;
    n->str = mc_arena_strndup(&b->set->arena, v, len);
    if (n->str == NULL)
        return oom(b, n->line);
    n->len = len;
    if ((n->plain && (len == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
                      strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0)) ||
        (tag && strcmp(tag, YAML_NULL_TAG) == 0))
        n->kind = MC_YAML_NULL;
    const char *anchor = dup_anchor(b, ev->data.scalar.anchor);
    if (ev->data.scalar.anchor && anchor == NULL)
        return oom(b, n->line);
    int rc = register_anchor(b, anchor, n);
    return rc < 0 ? rc : add_child(b, n);
}

static int on_start(builder_t *b, const yaml_event_t *ev, mc_yaml_kind_t kind)
{
    int line = (int)ev->start_mark.line + 1;
    if (b->depth >= MC_YAML_MAX_DEPTH)
        return zm_err_set(b->err, b->file, line, "nesting deeper than %d levels",
                          MC_YAML_MAX_DEPTH);
    mc_yaml_node_t *n = new_node(b, kind, &ev->start_mark);
    if (n == NULL)
        return oom(b, line);
    const yaml_char_t *a =
        kind == MC_YAML_MAP ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
    frame_t *f = &b->frames[b->depth++];
    memset(f, 0, sizeof(*f));
    f->node = n;
    f->anchor = dup_anchor(b, a);
    if (a && f->anchor == NULL)
        return oom(b, line);
    return 0;
}

static int on_end(builder_t *b)
{
    frame_t *f = &b->frames[b->depth - 1];
    mc_yaml_node_t *n = f->node;
    int rc = n->kind == MC_YAML_MAP ? finish_map(b, f) : finish_seq(b, f);
    const char *anchor = f->anchor;
    frame_release(f);
    b->depth--;
    if (rc < 0)
        return rc;
    if (n->size > MC_YAML_MAX_EXPANDED)
        return zm_err_set(b->err, b->file, n->line,
                          "document too large once aliases are expanded (over %u nodes)",
                          MC_YAML_MAX_EXPANDED);
    rc = register_anchor(b, anchor, n);
    return rc < 0 ? rc : add_child(b, n);
}

static int on_alias(builder_t *b, const yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    const mc_yaml_node_t *n = find_anchor(b, name);
    if (n == NULL)
        return zm_err_set(b->err, b->file, (int)ev->start_mark.line + 1, "unknown anchor *%s",
                          name);
    return add_child(b, n);
}

static int push_doc(builder_t *b)
{
    const mc_yaml_node_t *root = b->root;
    if (root == NULL || root->kind == MC_YAML_NULL)
        return 0; /* empty document */
    mc_yaml_set_t *s = b->set;
    if (grow(&s->docs, &s->cap_docs, s->n_docs, sizeof(*s->docs)) < 0)
        return oom(b, root->line);
    s->docs[s->n_docs++] = (mc_yaml_doc_t){b->file, root->line, root};
    return 0;
}

static int parser_error(builder_t *b, const yaml_parser_t *p)
{
    const char *problem = p->problem ? p->problem : "invalid YAML";
    if (p->error == YAML_MEMORY_ERROR)
        return oom(b, 0);
    int line = (int)p->problem_mark.line + 1;
    if (p->error == YAML_READER_ERROR)
        return zm_err_set(b->err, b->file, 0, "%s (at byte %zu)", problem, p->problem_offset);
    /* libyaml notices the problem where parsing stopped; the context mark
     * says where the construct that went wrong began, often the real typo. */
    if (p->context)
        return zm_err_set(b->err, b->file, line, "%s (%s that starts at line %d)", problem,
                          p->context, (int)p->context_mark.line + 1);
    return zm_err_set(b->err, b->file, line, "%s", problem);
}

int mc_yaml_load_string(mc_yaml_set_t *set, const char *name, const char *text, size_t len,
                        zm_err_t *err)
{
    builder_t b = {.set = set, .err = err};
    b.file = mc_arena_strdup(&set->arena, name);
    if (b.file == NULL)
        return zm_err_set(err, name, 0, "out of memory"), -ENOMEM;
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return zm_err_set(err, name, 0, "out of memory"), -ENOMEM;
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int rc = 0;
    for (bool done = false; !done && rc == 0;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = parser_error(&b, &p);
            break;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            b.root = NULL;
            b.n_anchors = 0;
            break;
        case YAML_DOCUMENT_END_EVENT:
            rc = push_doc(&b);
            break;
        case YAML_SCALAR_EVENT:
            rc = on_scalar(&b, &ev);
            break;
        case YAML_ALIAS_EVENT:
            rc = on_alias(&b, &ev);
            break;
        case YAML_SEQUENCE_START_EVENT:
            rc = on_start(&b, &ev, MC_YAML_SEQ);
            break;
        case YAML_MAPPING_START_EVENT:
            rc = on_start(&b, &ev, MC_YAML_MAP);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            rc = on_end(&b);
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    while (b.depth > 0)
        frame_release(&b.frames[--b.depth]);
    free(b.anchors);
    yaml_parser_delete(&p);
    return rc < 0 ? rc : 0;
}

static int load_file(mc_yaml_set_t *set, const char *path, zm_err_t *err)
{
    bool is_stdin = strcmp(path, "-") == 0;
    const char *name = is_stdin ? "<stdin>" : path;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (f == NULL)
        return zm_err_set(err, name, 0, "cannot open: %s", strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (len == cap) {
            size_t nc = cap ? cap * 2 : 65536;
            if (cap >= MC_YAML_MAX_FILE) {
                rc = zm_err_set(err, name, 0, "file larger than %u bytes", MC_YAML_MAX_FILE);
                break;
            }
            char *nb = realloc(buf, nc);
            if (nb == NULL) {
                rc = zm_err_set(err, name, 0, "out of memory");
                break;
            }
            buf = nb;
            cap = nc;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f))
                rc = zm_err_set(err, name, 0, "read error: %s", strerror(errno));
            break;
        }
    }
    if (!is_stdin)
        fclose(f);
    if (rc == 0)
        rc = mc_yaml_load_string(set, name, buf ? buf : "", len, err);
    free(buf);
    return rc;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool yaml_name(const char *n)
{
    size_t l = strlen(n);
    return (l > 5 && strcmp(n + l - 5, ".yaml") == 0) || (l > 4 && strcmp(n + l - 4, ".yml") == 0);
}

static int load_dir(mc_yaml_set_t *set, const char *dir, int depth, zm_err_t *err)
{
    if (depth > MC_YAML_MAX_DIR_DEPTH)
        return zm_err_set(err, dir, 0, "folders nested deeper than %d levels",
                          MC_YAML_MAX_DIR_DEPTH);
    DIR *d = opendir(dir);
    if (d == NULL)
        return zm_err_set(err, dir, 0, "cannot open folder: %s", strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (grow(&names, &cap, n, sizeof(*names)) < 0 || !(names[n] = strdup(de->d_name))) {
            rc = zm_err_set(err, dir, 0, "out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (rc == 0 && n > 1)
        qsort(names, n, sizeof(*names), name_cmp);
    for (size_t i = 0; i < n && rc == 0; i++) {
        char path[PATH_MAX];
        int l = snprintf(path, sizeof(path), "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/",
                         names[i]);
        if (l < 0 || (size_t)l >= sizeof(path)) {
            rc = zm_err_set(err, dir, 0, "path too long");
            break;
        }
        struct stat st;
        if (stat(path, &st) < 0)
            continue; /* dangling symlink: not an input */
        if (S_ISDIR(st.st_mode))
            rc = load_dir(set, path, depth + 1, err);
        else if (S_ISREG(st.st_mode) && yaml_name(names[i]))
            rc = load_file(set, path, err);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

int mc_yaml_load_path(mc_yaml_set_t *set, const char *path, zm_err_t *err)
{
    if (strcmp(path, "-") == 0)
        return load_file(set, path, err);
    struct stat st;
    if (stat(path, &st) < 0)
        return zm_err_set(err, path, 0, "cannot open: %s", strerror(errno));
    if (S_ISDIR(st.st_mode))
        return load_dir(set, path, 0, err);
    return load_file(set, path, err);
}

int mc_yaml_set_new(mc_yaml_set_t **out)
{
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : -ENOMEM;
}

void mc_yaml_set_free(mc_yaml_set_t **set)
{
    if (set == NULL || *set == NULL)
        return;
    mc_arena_destroy(&(*set)->arena);
    free((*set)->docs);
    free(*set);
    *set = NULL;
}

const mc_yaml_node_t *mc_yaml_get(const mc_yaml_node_t *map, const char *key)
{
    if (map == NULL || map->kind != MC_YAML_MAP)
        return NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; i < map->n; i++) {
        const mc_yaml_node_t *k = map->pairs[i].key;
        if (k->len == kl && memcmp(k->str, key, kl) == 0)
            return map->pairs[i].value;
    }
    return NULL;
}

const mc_yaml_node_t *mc_yaml_path(const mc_yaml_node_t *node, const char *dotted)
{
    char step[256];
    while (node != NULL && *dotted) {
        const char *dot = strchr(dotted, '.');
        size_t l = dot ? (size_t)(dot - dotted) : strlen(dotted);
        if (l >= sizeof(step))
            return NULL;
        memcpy(step, dotted, l);
        step[l] = 0;
        node = mc_yaml_get(node, step);
        dotted += l + (dot != NULL);
    }
    return node;
}

bool mc_yaml_is_int(const mc_yaml_node_t *node)
{
    long long v;
    return mc_yaml_int(node, &v) == 0;
}

int mc_yaml_int(const mc_yaml_node_t *node, long long *out)
{
    if (node == NULL || node->kind != MC_YAML_SCALAR || !node->plain || node->len == 0)
        return -EINVAL;
    const char *s = node->str;
    size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
    if (i == node->len)
        return -EINVAL;
    for (size_t j = i; j < node->len; j++)
        if (s[j] < '0' || s[j] > '9')
            return -EINVAL;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != 0)
        return -EINVAL;
    *out = v;
    return 0;
}

int mc_yaml_bool(const mc_yaml_node_t *node, bool *out)
{
    static const char *const t[] = {"true", "True", "TRUE"}, *const f[] = {"false", "False",
                                                                           "FALSE"};
    if (node == NULL || node->kind != MC_YAML_SCALAR || !node->plain)
        return -EINVAL;
    for (size_t i = 0; i < 3; i++) {
        if (strcmp(node->str, t[i]) == 0)
            return *out = true, 0;
        if (strcmp(node->str, f[i]) == 0)
            return *out = false, 0;
    }
    return -EINVAL;
}

bool mc_yaml_is_bool(const mc_yaml_node_t *node)
{
    bool v;
    return mc_yaml_bool(node, &v) == 0;
}

const char *mc_yaml_str(const mc_yaml_node_t *node)
{
    return node && node->kind == MC_YAML_SCALAR ? node->str : NULL;
}

const char *mc_yaml_kind_name(const mc_yaml_node_t *node)
{
    if (node == NULL)
        return "nothing";
    switch (node->kind) {
    case MC_YAML_NULL:
        return "null";
    case MC_YAML_SCALAR:
        return "scalar";
    case MC_YAML_MAP:
        return "map";
    case MC_YAML_SEQ:
        return "sequence";
    }
    return "?";
}
