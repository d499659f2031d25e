/*
 * compile.h — a resolved mesh model in, the daemons' libconfig files out.
 *
 * One file per node for its ztunnel (ztunnel-<node>.cfg) and one per
 * waypoint (waypoint-<namespace>-<name>.cfg). Each carries the node or proxy
 * settings and the whole mesh (workloads and services, config/SCHEMA.md):
 * a ztunnel serves the workloads of its node but must know every other one
 * to reach it. The same model gives byte-identical files: everything is
 * emitted in the model's sorted order and nothing depends on time or
 * addresses of memory.
 *
 * Every generated text is loaded back with the daemons' own loader before
 * anything is written, and the files are written to temporary names and
 * renamed, so an invalid model or a failing check writes nothing and a
 * reader never sees half a file.
 */
#ifndef MC_COMPILE_H
#define MC_COMPILE_H

#include "model.h"
#include "strbuf.h"

typedef struct mc_compile_opts {
    const char *cert_dir;  /* where the daemons read certificates; NULL: /var/run/zmesh/certs */
    const char *log_level; /* NULL: "info" */
    /* ztunnel's enrollment socket is <run_dir>/<node>/ztunnel.sock; NULL:
     * the daemon's default (/var/run/ztunnel/ztunnel.sock). */
    const char *run_dir;
} mc_compile_opts_t;

/* Appends s as a libconfig string literal (quotes, backslashes and control
 * bytes escaped). */
void mc_cfg_put_str(zm_strbuf_t *out, const char *s);

/* Appends the ztunnel config of node to out. */
int mc_compile_ztunnel(const mc_model_t *m, const mc_node_t *node, const mc_compile_opts_t *o,
                       zm_strbuf_t *out);
/* Appends the config of waypoint gw to out. */
int mc_compile_waypoint(const mc_model_t *m, const mc_gateway_t *gw, const mc_compile_opts_t *o,
                        zm_strbuf_t *out);

/* Writes every file into dir (created if missing). Returns the number of
 * files written, or < 0 with err set; nothing is written on failure. */
int mc_compile_write(const mc_model_t *m, const char *dir, const mc_compile_opts_t *o,
                     zm_err_t *err);

/* File names, for callers that start daemons: "ztunnel-node-1.cfg". */
void mc_compile_ztunnel_name(const mc_node_t *node, char *buf, size_t len);
void mc_compile_waypoint_name(const mc_gateway_t *gw, char *buf, size_t len);

#endif
