/*
 * verb_exec.c — `meshctl exec POD[.NS] -- CMD...`: runs CMD in the pod's
 * network namespace with its hosts files mounted; exits with CMD's code.
 */
#include <stdio.h>

#include "sandbox.h"
#include "verbs.h"

int mc_verb_exec(const mc_opts_t *o)
{
    zm_err_t err = {0};
    char buf[1024];
    fflush(stdout);
    int rc = mc_sandbox_exec(o->state_dir, o->pod_ns, o->pod, o->cmd, &err);
    if (rc < 0) {
        fprintf(stderr, "meshctl: exec: %s\n", zm_err_str(&err, buf, sizeof(buf)));
        return MC_EXIT_FAIL;
    }
    return rc;
}
