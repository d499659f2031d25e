/*
 * sandbox_state.c — STATE/net.json, the sandbox network's write-ahead
 * record, and the small file helpers for /etc/netns/NAME/.
 *
 * Invariant: a thing is added to the record and the record is on disk
 * (written to a temp file, fsync'ed, renamed over net.json) before the thing
 * is created, so a crash at any point leaves a record that covers at least
 * everything that exists. The record is small (one entry per namespace,
 * link and process), so rewriting it whole each time is fine.
 *
 * Threading: none; one meshctl per state dir.
 */
#include "netns.h"
#include "sandbox_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int mc_state_path(const char *state_dir, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/net.json", state_dir);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int mc_state_load(const char *state_dir, json_t **out)
{
    char path[4096];
    *out = NULL;
    int rc = mc_state_path(state_dir, path, sizeof(path));
    if (rc < 0)
        return rc;
    if (access(path, F_OK) < 0)
        return errno == ENOENT ? 0 : -errno;
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return -EBADMSG;
    }
    *out = j;
    return 0;
}

static int mkdir_p(const char *dir)
{
    char buf[4096];
    if (snprintf(buf, sizeof(buf), "%s", dir) >= (int)sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0755) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

int mc_write_file(const char *path, const char *text)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text), off = 0;
    int rc = 0;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -EIO;
            break;
        }
        off += (size_t)n;
    }
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    close(fd);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0)
        unlink(tmp);
    return rc;
}

int mc_state_save(const char *state_dir, json_t *state)
{
    char path[4096];
    int rc = mc_state_path(state_dir, path, sizeof(path));
    if (rc < 0)
        return rc;
    if ((rc = mkdir_p(state_dir)) < 0)
        return rc;
    char *text = json_dumps(state, JSON_INDENT(1) | JSON_SORT_KEYS);
    if (!text)
        return -ENOMEM;
    rc = mc_write_file(path, text);
    free(text);
    return rc;
}

int mc_state_add(json_t *state, const char *key, json_t *item)
{
    if (!item)
        return -ENOMEM;
    json_t *arr = json_object_get(state, key);
    if (!json_is_array(arr)) {
        arr = json_array();
        if (!arr || json_object_set_new(state, key, arr) < 0) {
            json_decref(item);
            return -ENOMEM;
        }
    }
    return json_array_append_new(arr, item) < 0 ? -ENOMEM : 0;
}

int mc_state_add_proc(const char *state_dir, pid_t pid, unsigned long long start, const char *netns)
{
    json_t *st = NULL;
    int rc = mc_state_load(state_dir, &st);
    if (rc < 0)
        return rc;
    if (!st && !(st = json_object()))
        return -ENOMEM;
    rc = mc_state_add(
        st, "procs",
        json_pack("{s:i, s:I, s:s}", "pid", (int)pid, "start", (json_int_t)start, "netns", netns));
    if (rc >= 0)
        rc = mc_state_save(state_dir, st);
    json_decref(st);
    return rc;
}

int mc_state_del_proc(const char *state_dir, pid_t pid, unsigned long long *start)
{
    json_t *st = NULL;
    int rc = mc_state_load(state_dir, &st);
    if (rc < 0 || !st)
        return rc;
    json_t *procs = json_object_get(st, "procs");
    size_t i;
    json_t *p;
    int found = 0;
    json_array_foreach(procs, i, p)
    {
        if (json_integer_value(json_object_get(p, "pid")) == pid) {
            if (start)
                *start = (unsigned long long)json_integer_value(json_object_get(p, "start"));
            json_array_remove(procs, i);
            found = 1;
            break;
        }
    }
    rc = found ? mc_state_save(state_dir, st) : 0;
    json_decref(st);
    return rc < 0 ? rc : found;
}

int mc_rmtree_etc(const char *netns)
{
    char dir[512], path[1024];
    if (!netns[0] || strchr(netns, '/') || !strcmp(netns, ".") || !strcmp(netns, ".."))
        return -EINVAL;
    if (snprintf(dir, sizeof(dir), "%s/%s", MC_NETNS_ETC_DIR, netns) >= (int)sizeof(dir))
        return -ENAMETOOLONG;
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (unlink(path) < 0 && errno != ENOENT && rc == 0)
            rc = -errno;
    }
    closedir(d);
    if (rmdir(dir) < 0 && errno != ENOENT && rc == 0)
        rc = -errno;
    return rc;
}
