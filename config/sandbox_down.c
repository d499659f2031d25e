/*
 * sandbox_down.c — `meshctl down` and `meshctl exec`.
 *
 * down: stop the processes sandbox.json lists (node agents, which stop
 * their ztunnels, then the other daemons, then apps),
 * then mc_net_down (which also stops what net.json recorded and whatever
 * still runs in the prefix's namespaces, and sweeps the prefix), then
 * remove the files up made: config/, certs/, logs/, run/, ca/ when up
 * created it, sandbox.json, and the state dir itself when up created it.
 * sandbox.json goes last, so an interrupted down can simply be repeated.
 */
#include "sandbox.h"

#include "netns.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STOP_MS 2000

static int rmtree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISDIR(st.st_mode))
        return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
    DIR *d = opendir(path);
    if (!d)
        return -errno;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char sub[4096];
        if (snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name) >= (int)sizeof(sub)) {
            rc = -ENAMETOOLONG;
            continue;
        }
        int r = rmtree(sub);
        if (r < 0 && rc == 0)
            rc = r;
    }
    closedir(d);
    if (rmdir(path) < 0 && errno != ENOENT && rc == 0)
        rc = -errno;
    return rc;
}

static void stop_kind(json_t *st, const char *kind, bool match)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(st, "procs"), i, v)
    {
        const char *k = json_string_value(json_object_get(v, "kind"));
        if (!k || (strcmp(k, kind) == 0) != match)
            continue;
        pid_t pid = (pid_t)json_integer_value(json_object_get(v, "pid"));
        unsigned long long start =
            (unsigned long long)json_integer_value(json_object_get(v, "start"));
        mc_proc_stop(pid, start, STOP_MS);
    }
}

int mc_sandbox_down(const char *state_dir, zm_err_t *err)
{
    json_t *st = NULL;
    int rc = mc_sandbox_load(state_dir, &st);
    if (rc < 0) {
        zm_err_set(err, NULL, 0, "%s/%s: unreadable (%s)", state_dir, MC_SANDBOX_JSON,
                   strerror(-rc));
        return rc;
    }
    const char *prefix = json_string_value(json_object_get(st, "prefix"));
    /* Agents first (each stops its ztunnel; nothing restarts it then), then
     * the other daemons, then apps: a ztunnel never sees its pods vanish
     * under it. */
    stop_kind(st, "agent", true);
    stop_kind(st, "app", false);
    stop_kind(st, "app", true);
    rc = mc_net_down(state_dir, prefix, err);
    if (rc < 0) {
        json_decref(st);
        return rc; /* keep sandbox.json: down can be run again */
    }
    static const char *const subs[] = {"config", "certs", "logs", "run"};
    char path[4096];
    for (size_t i = 0; i < ZM_ARRAY_LEN(subs); i++) {
        snprintf(path, sizeof(path), "%s/%s", state_dir, subs[i]);
        int r = rmtree(path);
        if (r < 0 && rc == 0) {
            rc = r;
            zm_err_set(err, NULL, 0, "cannot remove %s (%s)", path, strerror(-r));
        }
    }
    if (json_is_true(json_object_get(st, "ca_created"))) {
        snprintf(path, sizeof(path), "%s/ca", state_dir);
        rmtree(path);
    }
    if (rc == 0) {
        snprintf(path, sizeof(path), "%s/%s", state_dir, MC_SANDBOX_JSON);
        if (unlink(path) < 0 && errno != ENOENT)
            rc = -errno;
        if (rc == 0 && json_is_true(json_object_get(st, "created_state_dir")))
            rmdir(state_dir); /* only if empty: never someone else's files */
    }
    json_decref(st);
    return rc;
}

int mc_sandbox_exec(const char *state_dir, const char *ns, const char *pod, char *const argv[],
                    zm_err_t *err)
{
    json_t *st = NULL;
    int rc = mc_sandbox_load(state_dir, &st);
    if (rc < 0 || !st) {
        zm_err_set(err, NULL, 0, "no sandbox in %s (run meshctl up)", state_dir);
        return rc < 0 ? rc : -ENOENT;
    }
    const char *netns = NULL;
    static const char *const lists[] = {"pods", "waypoints"};
    for (size_t l = 0; l < 2 && !netns; l++) {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(st, lists[l]), i, v)
        {
            if (!strcmp(json_string_value(json_object_get(v, "name")), pod) &&
                !strcmp(json_string_value(json_object_get(v, "namespace")), ns)) {
                netns = json_string_value(json_object_get(v, "netns"));
                break;
            }
        }
    }
    if (!netns) {
        zm_err_set(err, NULL, 0, "no pod %s in namespace %s (see meshctl status)", pod, ns);
        json_decref(st);
        return -ENOENT;
    }
    mc_net_plan_t plan = {.state_dir = state_dir,
                          .prefix = json_string_value(json_object_get(st, "prefix"))};
    rc = mc_net_exec(&plan, netns, argv, 0, err);
    json_decref(st);
    return rc;
}
