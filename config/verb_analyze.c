/*
 * verb_analyze.c — `meshctl analyze`. Placeholder until its implementation lands:
 * the options are already parsed and checked (cli.c); replace this body (see
 * verbs.h for the contract and exit codes).
 */
#include <stdio.h>

#include "verbs.h"

int mc_verb_analyze(const mc_opts_t *o)
{
    (void)o;
    fprintf(stderr, "meshctl: analyze: not implemented yet\n");
    return MC_EXIT_FAIL;
}
