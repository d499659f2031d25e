/*
 * verb_node_agent.c — `meshctl node-agent --state DIR --node NODE`, the
 * internal verb `up` starts once per node: glue to mc_agent_run
 * (sandbox_agent_loop.c). It runs until SIGTERM; its stderr is the agent's
 * log (up points it at STATE/logs/agent-<node>.log).
 */
#include <stdio.h>
#include <string.h>

#include "sandbox.h"
#include "verbs.h"

int mc_verb_node_agent(const mc_opts_t *o)
{
    /* The node name becomes a path component under STATE/run/. */
    if (strchr(o->node, '/') || o->node[0] == '.') {
        fprintf(stderr, "meshctl: node-agent: bad node name '%s'\n", o->node);
        return MC_EXIT_USAGE;
    }
    zm_err_t err = {0};
    char buf[1024];
    if (mc_agent_run(o->state_dir, o->node, &err) < 0) {
        fprintf(stderr, "meshctl: node-agent: %s\n", zm_err_str(&err, buf, sizeof(buf)));
        return MC_EXIT_FAIL;
    }
    return MC_EXIT_OK;
}
