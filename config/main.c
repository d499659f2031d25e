/*
 * main.c — meshctl's entry point: only wiring. Parsing and dispatch live in
 * cli.c, each verb in verb_<verb>.c (see verbs.h).
 */
#include <stdio.h>

#include "cli.h"
#include "tls.h"

int main(int argc, char **argv)
{
    int rc = mc_cli_run(argc, argv, stdout, stderr);
    zm_tls_global_cleanup();
    if (fflush(stdout) != 0 && rc == MC_EXIT_OK)
        rc = MC_EXIT_FAIL; /* e.g. stdout was a full disk or a closed pipe */
    return rc;
}
