/*
 * yaml_tree.h — YAML files to an in-memory tree with file:line on every node.
 *
 * meshctl reads Kubernetes-style manifests: files or folders (walked
 * recursively, *.yaml and *.yml in sorted order so the result never depends
 * on readdir order) holding multi-document YAML. libyaml's event parser
 * builds a tree of four node kinds (null, scalar, map, seq); every node
 * remembers its file and 1-based line so every later error can say
 * `file:line: message`.
 *
 * Invariants: all nodes and strings live in the set's arena and stay valid
 * until mc_yaml_set_free. Aliases (*a) point at the anchored node itself,
 * so the tree is a DAG; a shared node is never copied. To stop a
 * "billion laughs" document from making later walks explode, each node
 * knows its expanded size and a document whose expansion exceeds
 * MC_YAML_MAX_EXPANDED nodes is refused. Merge keys (`<<: *a` or
 * `<<: [*a, *b]`) are applied while parsing: the map gets the merged pairs,
 * explicit keys win, earlier merge sources win over later ones. Duplicate
 * keys are an error. Nesting deeper than MC_YAML_MAX_DEPTH is an error.
 * Empty documents (nothing, or only comments, between `---`) are skipped.
 * Scalars keep whether they were plain so that `80` and `"80"`, or `true`
 * and `"true"`, can be told apart; a plain empty / ~ / null scalar becomes
 * a NULL node. A `!!str` tag makes a scalar non-plain.
 *
 * Threading: none; a set is built and read by one thread.
 */
#ifndef MC_YAML_H
#define MC_YAML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "zm.h"

#define MC_YAML_MAX_DEPTH 64
#define MC_YAML_MAX_EXPANDED 1000000u /* nodes per document, aliases expanded */
#define MC_YAML_MAX_FILE (64u << 20)  /* bytes per input file */
#define MC_YAML_MAX_DIR_DEPTH 16      /* folder recursion when walking paths */

typedef enum mc_yaml_kind {
    MC_YAML_NULL = 0,
    MC_YAML_SCALAR,
    MC_YAML_MAP,
    MC_YAML_SEQ,
} mc_yaml_kind_t;

typedef struct mc_yaml_node mc_yaml_node_t;

/* One map entry; a key is a SCALAR (or NULL for `~:`); other keys are errors. */
typedef struct mc_yaml_pair {
    const mc_yaml_node_t *key; /* SCALAR or NULL */
    const mc_yaml_node_t *value;
} mc_yaml_pair_t;

struct mc_yaml_node {
    mc_yaml_kind_t kind;
    bool plain;                         /* scalar written without quotes, block style or !!str */
    const char *file;                   /* the input's name as given (or "<stdin>") */
    int line;                           /* 1-based */
    const char *str;                    /* SCALAR and NULL: the text, NUL-terminated ("" if none) */
    size_t len;                         /* SCALAR: length of str (may hold embedded NULs) */
    const mc_yaml_pair_t *pairs;        /* MAP, in document order after merges */
    const mc_yaml_node_t *const *items; /* SEQ */
    size_t n;                           /* MAP: pairs, SEQ: items */
    uint64_t size;                      /* expanded node count of this subtree, itself included */
};

/* One document of one file. */
typedef struct mc_yaml_doc {
    const char *file;
    int line; /* where the document's root starts */
    const mc_yaml_node_t *root;
} mc_yaml_doc_t;

/* Documents in load order (paths in the order given, folders sorted). */
typedef struct mc_yaml_set {
    mc_arena_t arena;
    mc_yaml_doc_t *docs; /* malloc'ed array */
    size_t n_docs;
    size_t cap_docs;
} mc_yaml_set_t;

/* Creates an empty set; free with mc_yaml_set_free. 0 or -ENOMEM. */
int mc_yaml_set_new(mc_yaml_set_t **out);

/* Appends every document of path: a file (any name), a folder (recursive,
 * *.yaml / *.yml, sorted by name), or "-" for standard input. On failure
 * err holds `file:line: message` (line 0 for I/O errors) and the set keeps
 * the documents of files that loaded before the failing one. */
int mc_yaml_load_path(mc_yaml_set_t *set, const char *path, zm_err_t *err);

/* Appends the documents of an in-memory text; name is used as the file. */
int mc_yaml_load_string(mc_yaml_set_t *set, const char *name, const char *text, size_t len,
                        zm_err_t *err);

/* Frees the set, its arena and every node; clears *set. NULL-safe. */
void mc_yaml_set_free(mc_yaml_set_t **set);

/* Value for key in a MAP node; NULL when node is not a map or lacks key. */
const mc_yaml_node_t *mc_yaml_get(const mc_yaml_node_t *map, const char *key);

/* Walks a dotted path of map keys ("spec.template.metadata"); NULL if any
 * step is missing or not a map. */
const mc_yaml_node_t *mc_yaml_path(const mc_yaml_node_t *node, const char *dotted);

/* Typed views of a scalar. Each returns 0, or -EINVAL when the node has
 * another type: an int must be a plain decimal (optionally signed) scalar
 * fitting long long; a bool a plain true/false (also True/TRUE/False/FALSE);
 * a string any scalar (plain or quoted; a plain number is a string too). */
int mc_yaml_int(const mc_yaml_node_t *node, long long *out);
int mc_yaml_bool(const mc_yaml_node_t *node, bool *out);
const char *mc_yaml_str(const mc_yaml_node_t *node); /* NULL if not SCALAR */

/* True for a plain scalar that reads as an int or a bool (not a string). */
bool mc_yaml_is_int(const mc_yaml_node_t *node);
bool mc_yaml_is_bool(const mc_yaml_node_t *node);

/* "null", "scalar", "map", "sequence" — for error messages. */
const char *mc_yaml_kind_name(const mc_yaml_node_t *node);

#endif
