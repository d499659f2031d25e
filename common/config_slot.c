/*
 * config_slot.c — the current snapshot of a config file, its reload by
 * pointer swap, and the inotify watch that says when to reload.
 *
 * The slot holds one reference on its current snapshot. Acquire loads the
 * pointer and takes a reference under a mutex: without it a reload could
 * swap and drop the last reference between those two steps and the reader
 * would retain freed memory. Acquire happens once per connection, so an
 * uncontended mutex costs nothing that matters; release is a lock-free
 * atomic decrement (config.c). A reload parses outside the lock and only
 * swaps under it, so readers never wait for a parse.
 *
 * The watch is on the file's directory, not the file: editors and
 * Kubernetes replace the file (rename, symlink swap), which a watch on the
 * old inode would never report.
 *
 * Threading: acquire, reload and reload_failures from any thread; the watch
 * functions and destroy from one control thread.
 */
#include "config.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

struct zm_config_slot {
    pthread_mutex_t lock; /* guards cur: load + retain, and swap */
    const zm_config_t *cur;
    char *path;
    atomic_uint_fast64_t failures;
    int watch_fd;
    char dir[PATH_MAX]; /* the watched directory, as the path names it */
};

zm_config_slot_t *zm_config_slot_new(const char *path, zm_err_t *err)
{
    const zm_config_t *cfg;
    if (zm_config_load(path, &cfg, err) < 0)
        return NULL;
    zm_config_slot_t *slot = calloc(1, sizeof(*slot));
    if (!slot || !(slot->path = strdup(path))) {
        free(slot);
        zm_config_release(&cfg);
        zm_err_set(err, path, 0, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&slot->lock, NULL);
    slot->cur = cfg;
    slot->watch_fd = -1;
    atomic_init(&slot->failures, 0);
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(slot->dir, sizeof(slot->dir), ".");
    else if (slash == path)
        snprintf(slot->dir, sizeof(slot->dir), "/");
    else
        snprintf(slot->dir, sizeof(slot->dir), "%.*s", (int)(slash - path), path);
    return slot;
}

void zm_config_slot_destroy(zm_config_slot_t **slotp)
{
    zm_config_slot_t *slot = slotp ? *slotp : NULL;
    if (!slot)
        return;
    *slotp = NULL;
    if (slot->watch_fd >= 0)
        close(slot->watch_fd);
    zm_config_release(&slot->cur);
    pthread_mutex_destroy(&slot->lock);
    free(slot->path);
    free(slot);
}

const zm_config_t *zm_config_slot_acquire(zm_config_slot_t *slot)
{
    pthread_mutex_lock(&slot->lock);
    const zm_config_t *cfg = zm_config_retain(slot->cur);
    pthread_mutex_unlock(&slot->lock);
    return cfg;
}

int zm_config_slot_reload(zm_config_slot_t *slot, zm_err_t *err)
{
    const zm_config_t *cfg;
    int rc = zm_config_load(slot->path, &cfg, err);
    if (rc < 0) {
        atomic_fetch_add_explicit(&slot->failures, 1, memory_order_relaxed);
        return rc;
    }
    pthread_mutex_lock(&slot->lock);
    const zm_config_t *old = slot->cur;
    /* Not published yet (heap memory, only const by API): the one write to
     * a snapshot after its load. The unlock orders it before any acquire. */
    ((zm_config_t *)cfg)->generation = old->generation + 1;
    slot->cur = cfg;
    pthread_mutex_unlock(&slot->lock);
    zm_config_release(&old);
    return 1;
}

uint64_t zm_config_slot_reload_failures(const zm_config_slot_t *slot)
{
    return atomic_load_explicit(&((zm_config_slot_t *)slot)->failures, memory_order_relaxed);
}

int zm_config_watch_fd(zm_config_slot_t *slot)
{
    if (slot->watch_fd >= 0)
        return slot->watch_fd;
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (inotify_add_watch(fd, slot->dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    slot->watch_fd = fd;
    return fd;
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Is `name` (an entry of the watched dir) a file the current snapshot was
 * read from? Includes in subdirectories are not watched. */
static bool watched_name(zm_config_slot_t *slot, const char *name)
{
    if (!strcmp(name, base_name(slot->path)) || !strcmp(name, "..data"))
        return true;
    const zm_config_t *cfg = zm_config_slot_acquire(slot);
    size_t dl = strlen(slot->dir);
    bool hit = false;
    for (size_t i = 0; i < cfg->n_sources && !hit; i++) {
        const char *src = cfg->sources[i];
        const char *rel = !strncmp(src, slot->dir, dl) && src[dl] == '/' ? src + dl + 1 : src;
        hit = !strchr(rel, '/') && !strcmp(rel, name);
    }
    zm_config_release(&cfg);
    return hit;
}

/* A new regular file is written next (IN_CLOSE_WRITE follows); reloading on
 * its creation would read it half-written and count a spurious failure.
 * A new symlink (ln -sf) is complete at once. */
static bool is_symlink(zm_config_slot_t *slot, const char *name)
{
    char p[PATH_MAX * 2];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s", slot->dir, name);
    return lstat(p, &st) == 0 && S_ISLNK(st.st_mode);
}

int zm_config_watch_check(zm_config_slot_t *slot)
{
    if (slot->watch_fd < 0)
        return -EBADF;
    _Alignas(struct inotify_event) char buf[4096];
    int due = 0;
    for (;;) {
        ssize_t n = read(slot->watch_fd, buf, sizeof(buf));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? due : -errno;
        }
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            p += sizeof(*ev) + ev->len;
            if (ev->mask & (IN_Q_OVERFLOW | IN_IGNORED)) {
                due = 1; /* events were lost, or the directory went away */
                continue;
            }
            if (!ev->len || !watched_name(slot, ev->name))
                continue;
            if ((ev->mask & IN_CREATE) && !is_symlink(slot, ev->name))
                continue;
            due = 1;
        }
    }
}
