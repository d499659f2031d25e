/*
 * verb_up.c — `meshctl up`: glue from the options to mc_sandbox_up
 * (sandbox_up.c). The prefix comes from $ZMESH_PREFIX (default "zm"); the
 * test hook $ZMESH_TEST_DIE_AFTER=N kills meshctl after N network steps.
 */
#include <stdio.h>
#include <stdlib.h>

#include "sandbox.h"
#include "verbs.h"

int mc_verb_up(const mc_opts_t *o)
{
    const char *die = getenv("ZMESH_TEST_DIE_AFTER");
    mc_sandbox_opts_t so = {.state_dir = o->state_dir,
                            .files = o->files,
                            .nfiles = o->nfiles,
                            .nodes = o->nodes,
                            .test_die_after = die ? (unsigned)strtoul(die, NULL, 10) : 0};
    zm_err_t err = {0};
    bool input_error = false;
    char buf[1024];
    if (mc_sandbox_up(&so, stdout, &input_error, &err) < 0) {
        if (input_error) {
            fprintf(stderr, "%s\n", zm_err_str(&err, buf, sizeof(buf)));
            return MC_EXIT_USAGE;
        }
        fprintf(stderr, "meshctl: up: %s\nmeshctl: up: run 'meshctl down --state %s' to clean up\n",
                zm_err_str(&err, buf, sizeof(buf)), o->state_dir);
        return MC_EXIT_FAIL;
    }
    return MC_EXIT_OK;
}
