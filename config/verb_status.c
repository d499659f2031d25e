/*
 * verb_status.c — `meshctl status [--json]`: glue to mc_sandbox_status
 * (sandbox_status.c).
 */
#include <stdio.h>

#include "sandbox.h"
#include "verbs.h"

int mc_verb_status(const mc_opts_t *o)
{
    zm_err_t err = {0};
    char buf[1024];
    if (mc_sandbox_status(o->state_dir, o->json, stdout, &err) < 0) {
        fprintf(stderr, "meshctl: status: %s\n", zm_err_str(&err, buf, sizeof(buf)));
        return MC_EXIT_FAIL;
    }
    return MC_EXIT_OK;
}
