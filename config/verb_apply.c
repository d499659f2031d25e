/*
 * verb_apply.c — `meshctl apply -f PATH...`: glue to mc_sandbox_apply
 * (sandbox_apply.c), which changes a running sandbox in place.
 */
#include <stdio.h>

#include "sandbox.h"
#include "verbs.h"

int mc_verb_apply(const mc_opts_t *o)
{
    zm_err_t err = {0};
    bool input_error = false;
    char buf[1024];
    if (mc_sandbox_apply(o->state_dir, o->files, o->nfiles, false, stdout, &input_error, &err) <
        0) {
        if (input_error) {
            fprintf(stderr, "%s\n", zm_err_str(&err, buf, sizeof(buf)));
            return MC_EXIT_USAGE;
        }
        fprintf(stderr, "meshctl: apply: %s\n", zm_err_str(&err, buf, sizeof(buf)));
        return MC_EXIT_FAIL;
    }
    return MC_EXIT_OK;
}
