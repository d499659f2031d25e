/*
 * sandbox_json.c — STATE/sandbox.json (the sandbox's model-level state, see
 * sandbox.h), log paths, locating the binaries meshctl starts, and process
 * liveness. Writes are atomic (temp file, fsync, rename) so a crash leaves
 * either the old or the new state, never half of one.
 */
#include "sandbox.h"

#include "netns.h"
#include "sandbox_int.h"

#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int mc_sandbox_load(const char *state_dir, json_t **out)
{
    char path[4096];
    *out = NULL;
    if (snprintf(path, sizeof(path), "%s/%s", state_dir, MC_SANDBOX_JSON) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    if (access(path, F_OK) < 0)
        return errno == ENOENT ? 0 : -errno;
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    if (!json_is_object(j)) {
        json_decref(j);
        return -EBADMSG;
    }
    *out = j;
    return 0;
}

int mc_sandbox_save(const char *state_dir, json_t *st)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/%s", state_dir, MC_SANDBOX_JSON) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    if (mkdir(state_dir, 0755) < 0 && errno != EEXIST)
        return -errno;
    char *text = json_dumps(st, JSON_INDENT(1) | JSON_SORT_KEYS);
    if (!text)
        return -ENOMEM;
    int rc = mc_write_file(path, text);
    free(text);
    return rc;
}

int mc_sandbox_log_path(const char *state_dir, const char *component, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/logs/%s.log", state_dir, component);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static const char *env_for(const char *name)
{
    if (!strcmp(name, "zm-echo"))
        return getenv("ZMESH_ECHO");
    if (!strcmp(name, "ztunnel"))
        return getenv("ZMESH_ZTUNNEL");
    if (!strcmp(name, "waypoint"))
        return getenv("ZMESH_WAYPOINT");
    return NULL;
}

int mc_sandbox_find_bin(const char *name, char *buf, size_t len)
{
    const char *env = env_for(name);
    if (env && *env) {
        /* An empty-but-set override is "not there": tests use it. */
        if (access(env, X_OK) < 0)
            return -ENOENT;
        snprintf(buf, len, "%s", env);
        return 0;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return -ENOENT;
    exe[n] = '\0';
    char *dir = dirname(exe); /* build/config */
    /* zm-echo builds in config/echo; the daemons in their own top folders. */
    const char *sub = !strcmp(name, "zm-echo") ? "echo" : NULL;
    char cand[3][PATH_MAX + 64];
    snprintf(cand[0], sizeof(cand[0]), "%s/%s", dir, name);
    if (sub)
        snprintf(cand[1], sizeof(cand[1]), "%s/%s/%s", dir, sub, name);
    else
        snprintf(cand[1], sizeof(cand[1]), "%s/../%s/%s", dir, name, name);
    snprintf(cand[2], sizeof(cand[2]), "%s/../config/echo/%s", dir, name);
    for (int i = 0; i < 3; i++) {
        struct stat st;
        if (stat(cand[i], &st) == 0 && S_ISREG(st.st_mode) && access(cand[i], X_OK) == 0) {
            char real[PATH_MAX];
            if (!realpath(cand[i], real))
                continue;
            if ((size_t)snprintf(buf, len, "%s", real) >= len)
                return -ENAMETOOLONG;
            return 0;
        }
    }
    return -ENOENT;
}

bool mc_sandbox_pid_alive(long pid, unsigned long long start)
{
    if (pid <= 0)
        return false;
    unsigned long long now = mc_proc_start_time((pid_t)pid);
    if (now == 0)
        return false;
    if (start && now != start)
        return false;
    /* A zombie still has /proc/PID/stat: check its state. */
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');
    return !(rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'));
}
