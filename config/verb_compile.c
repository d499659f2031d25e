/*
 * verb_compile.c — `meshctl compile` and `meshctl analyze`: load the YAML,
 * resolve the mesh, then either write the daemons' configs or only report.
 * Input problems print `file:line: message` and exit 2; warnings go to
 * stderr and do not change the exit code.
 */
#include <stdio.h>

#include "compile.h"
#include "model.h"
#include "policy.h"
#include "verbs.h"

static void print_err(const zm_err_t *err)
{
    char buf[1024];
    fprintf(stderr, "%s\n", zm_err_str(err, buf, sizeof(buf)));
}

/* Loads and resolves; prints warnings. NULL (after printing) on error. */
static mc_model_t *load_resolved(const mc_opts_t *o)
{
    mc_model_t *m = NULL;
    zm_err_t err = {0};
    if (mc_model_load(&m, o->files, o->nfiles, &err) < 0) {
        print_err(&err);
        return NULL;
    }
    mc_resolve_opts_t ro = {.nodes = o->nodes, .trust_domain = o->trust_domain};
    if (mc_model_resolve(m, &ro, &err) < 0) {
        print_err(&err);
        mc_model_free(&m);
        return NULL;
    }
    char buf[1024];
    for (size_t i = 0; i < m->n_warnings; i++)
        fprintf(stderr, "%s\n", mc_warning_str(&m->warnings[i], buf, sizeof(buf)));
    return m;
}

int mc_verb_compile(const mc_opts_t *o)
{
    mc_model_t *m = load_resolved(o);
    if (!m)
        return MC_EXIT_USAGE;
    zm_err_t err = {0};
    int n = mc_compile_write(m, o->out_dir, NULL, &err);
    if (n < 0) {
        print_err(&err);
        mc_model_free(&m);
        return MC_EXIT_FAIL;
    }
    printf("meshctl: wrote %d files to %s (%zu nodes, %zu workloads, %zu services)\n", n,
           o->out_dir, m->n_nodes, m->n_pods, m->n_services);
    mc_model_free(&m);
    return MC_EXIT_OK;
}

int mc_verb_analyze(const mc_opts_t *o)
{
    mc_model_t *m = load_resolved(o);
    if (!m)
        return MC_EXIT_USAGE;
    size_t ambient = 0, waypoints = 0;
    for (size_t i = 0; i < m->n_pods; i++)
        ambient += m->pods[i].ambient;
    for (size_t i = 0; i < m->n_gateways; i++)
        waypoints += m->gateways[i].is_waypoint;
    mc_warning_t *pw = NULL;
    size_t n_pw = mc_policy_warnings(m, &pw);
    char buf[2048];
    for (size_t i = 0; i < n_pw; i++)
        fprintf(stderr, "%s\n", mc_warning_str(&pw[i], buf, sizeof(buf)));
    mc_policy_warnings_free(&pw, n_pw);
    printf("meshctl: %zu pods (%zu ambient), %zu services, %zu waypoints, %zu Istio objects, "
           "%zu warnings\n",
           m->n_pods, ambient, m->n_services, waypoints, m->n_objects, m->n_warnings + n_pw);
    mc_model_free(&m);
    return MC_EXIT_OK;
}
