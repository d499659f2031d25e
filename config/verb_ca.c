/*
 * verb_ca.c — `meshctl ca init` and `meshctl ca issue`: the glue from parsed
 * options to the CA module (ca.h) and from its errors to exit codes.
 */
#include <stdio.h>
#include <time.h>

#include "ca.h"
#include "verbs.h"

/* The parser already refused malformed IDs and durations (exit 2), so what
 * is left (no CA, an existing CA, unreadable or mismatched CA files, the file
 * system) is a runtime failure. */
static int report(const char *verb, const zm_err_t *err)
{
    char buf[1024];
    fprintf(stderr, "meshctl: %s: %s\n", verb, zm_err_str(err, buf, sizeof(buf)));
    return MC_EXIT_FAIL;
}

int mc_verb_ca_init(const mc_opts_t *o)
{
    zm_err_t err = {0};
    int r = mc_ca_init(o->ca_dir, o->force, &err);
    if (r < 0)
        return report("ca init", &err);
    printf("created a mesh CA in %s (trust bundle: %s/%s)\n", o->ca_dir, o->ca_dir, MC_CA_BUNDLE);
    return MC_EXIT_OK;
}

int mc_verb_ca_issue(const mc_opts_t *o)
{
    zm_err_t err = {0};
    int64_t not_after = 0;
    int r = mc_ca_issue(o->ca_dir, o->id, o->ttl_s, o->out_dir, &not_after, &err);
    if (r < 0)
        return report("ca issue", &err);
    char when[64] = "?";
    time_t t = (time_t)not_after;
    struct tm tm;
    if (gmtime_r(&t, &tm))
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf("issued %s into %s (expires %s)\n", o->id, o->out_dir, when);
    return MC_EXIT_OK;
}
