/*
 * verb_down.c — `meshctl down`: glue to mc_sandbox_down (sandbox_down.c).
 * Idempotent: a state dir with nothing in it is a success.
 */
#include <stdio.h>

#include "sandbox.h"
#include "verbs.h"

int mc_verb_down(const mc_opts_t *o)
{
    zm_err_t err = {0};
    char buf[1024];
    if (mc_sandbox_down(o->state_dir, &err) < 0) {
        fprintf(stderr, "meshctl: down: %s\n", zm_err_str(&err, buf, sizeof(buf)));
        return MC_EXIT_FAIL;
    }
    return MC_EXIT_OK;
}
