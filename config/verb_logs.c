/*
 * verb_logs.c — `meshctl logs COMPONENT`: copies STATE/logs/COMPONENT.log
 * to stdout. Components: "<ns>.<pod>" (a pod's app), "ztunnel-<node>",
 * "waypoint-<ns>-<name>"; an unknown one lists those that have a log.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sandbox.h"
#include "verbs.h"

static void list_known(const char *state_dir)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/logs", state_dir);
    DIR *d = opendir(dir);
    fprintf(stderr, "meshctl: logs: known components:");
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t n = strlen(e->d_name);
            if (n > 4 && !strcmp(e->d_name + n - 4, ".log"))
                fprintf(stderr, " %.*s", (int)(n - 4), e->d_name);
        }
        closedir(d);
    }
    fprintf(stderr, "\n");
}

int mc_verb_logs(const mc_opts_t *o)
{
    char path[4096];
    if (strchr(o->component, '/') || o->component[0] == '.' ||
        mc_sandbox_log_path(o->state_dir, o->component, path, sizeof(path)) < 0) {
        fprintf(stderr, "meshctl: logs: bad component name '%s'\n", o->component);
        return MC_EXIT_USAGE;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "meshctl: logs: no log for '%s' in %s\n", o->component, o->state_dir);
        list_known(o->state_dir);
        return MC_EXIT_FAIL;
    }
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        fwrite(buf, 1, n, stdout);
    fclose(f);
    return MC_EXIT_OK;
}
