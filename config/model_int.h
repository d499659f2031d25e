/*
 * model_int.h — what model.c, model_k8s.c and model_resolve.c share.
 *
 * The loader's context (the model, the arena, the error) and small helpers
 * that turn YAML nodes into checked values with `file:line:` errors naming
 * the object and the field ("Service ns/web: spec.ports[0].port: ...").
 * Not part of the public API.
 */
#ifndef MC_MODEL_INT_H
#define MC_MODEL_INT_H

#include "model.h"

enum { CAP_NS, CAP_POD, CAP_SVC, CAP_SA, CAP_GW, CAP_OBJ, CAP_NODE, CAP_WARN };

typedef struct mc_load {
    mc_model_t *m;
    mc_arena_t *a;
    zm_err_t *err;
    const char *kind; /* the object being read, for messages */
    const char *ns;
    const char *name;
    unsigned seq;
} mc_load_t;

/* Appends a zeroed element to one of the model's arrays; NULL on OOM. */
void *mc_model_push(mc_model_t *m, void **arr, size_t *n, int cap_idx, size_t elem);
#define MC_PUSH(m, field, cap)                                                                     \
    ((__typeof__((m)->field))mc_model_push((m), (void **)&(m)->field, &(m)->n_##field, (cap),      \
                                           sizeof(*(m)->field)))

/* Error about the current object at node's line (or the object's line). */
int mc_load_fail(mc_load_t *l, const mc_yaml_node_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Adds a warning; -ENOMEM only. */
int mc_model_warn(mc_model_t *m, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Reads metadata (name required, namespace defaults to "default" unless
 * cluster_scoped) from obj. */
int mc_load_meta(mc_load_t *l, const mc_yaml_node_t *obj, bool cluster_scoped, mc_meta_t *meta);

/* A string->string map (labels, annotations, selector); node may be NULL. */
int mc_load_labels(mc_load_t *l, const mc_yaml_node_t *node, const char *field, mc_labels_t *out);

/* A port number 1..65535 from an int node. */
int mc_load_port(mc_load_t *l, const mc_yaml_node_t *node, const char *field, uint16_t *out);

/* An optional string field: *out NULL when absent or null. */
int mc_load_opt_str(mc_load_t *l, const mc_yaml_node_t *node, const char *field, const char **out);

/* Dotted IPv4 to host order; -EINVAL when not one. */
int mc_ipv4_parse(const char *s, uint32_t *out);
void mc_ipv4_format(uint32_t ip, char out[16]);

/* Kinds (model_k8s.c). */
int mc_load_pod(mc_load_t *l, const mc_yaml_node_t *obj);
int mc_load_deployment(mc_load_t *l, const mc_yaml_node_t *obj);
int mc_load_service(mc_load_t *l, const mc_yaml_node_t *obj);

/* Orders by (ns, name, load order). */
int mc_meta_cmp(const mc_meta_t *a, const mc_meta_t *b);

#endif
