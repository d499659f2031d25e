/*
 * netns.c — named network namespaces (iproute2's /run/netns convention) and
 * the processes inside them.
 *
 * Creation follows `ip netns add`: /run/netns is made a shared mount point
 * (bind-mounted onto itself first if it is not a mount point yet), an empty
 * file /run/netns/NAME is created with O_EXCL, and a thread that unshared
 * its network namespace bind-mounts /proc/thread-self/ns/net onto it. The
 * thread then exits; the bind mount keeps the namespace alive until
 * mc_netns_delete unmounts it. Every setns() happens on a throwaway thread,
 * so no caller ever finds itself in the wrong namespace after an error.
 *
 * Processes are found by the inode of their /proc/PID/ns/net, which is the
 * inode of the bind-mounted namespace file; that is how down kills what the
 * state lost. A pid is trusted only together with its start time, so a
 * reused pid is never killed.
 */
#include "netns.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int path_of(char *buf, size_t len, const char *dir, const char *name)
{
    int n = snprintf(buf, len, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int ensure_run_dir(void)
{
    if (mkdir(MC_NETNS_RUN_DIR, 0755) < 0 && errno != EEXIST)
        return -errno;
    bool made = false;
    while (mount("", MC_NETNS_RUN_DIR, "none", MS_SHARED | MS_REC, NULL) < 0) {
        /* EINVAL: not a mount point yet; make it one, once. */
        if (errno != EINVAL || made)
            return -errno;
        if (mount(MC_NETNS_RUN_DIR, MC_NETNS_RUN_DIR, "none", MS_BIND | MS_REC, NULL) < 0)
            return -errno;
        made = true;
    }
    return 0;
}

typedef struct ns_call {
    int nsfd;
    int (*fn)(void *);
    void *arg;
    int rc;
} ns_call_t;

static void *ns_thread(void *p)
{
    ns_call_t *c = p;
    if (c->nsfd >= 0 && setns(c->nsfd, CLONE_NEWNET) < 0)
        c->rc = -errno;
    else
        c->rc = c->fn(c->arg);
    return NULL;
}

static int run_on_thread(int nsfd, int (*fn)(void *), void *arg)
{
    ns_call_t c = {.nsfd = nsfd, .fn = fn, .arg = arg, .rc = -EINTR};
    pthread_t t;
    int rc = pthread_create(&t, NULL, ns_thread, &c);
    if (rc != 0)
        return -rc;
    pthread_join(t, NULL);
    return c.rc;
}

int mc_netns_run(int nsfd, int (*fn)(void *), void *arg)
{
    if (nsfd < 0)
        return -EBADF;
    return run_on_thread(nsfd, fn, arg);
}

static int bind_new_ns(void *arg)
{
    if (unshare(CLONE_NEWNET) < 0)
        return -errno;
    if (mount("/proc/thread-self/ns/net", (const char *)arg, "none", MS_BIND, NULL) < 0)
        return -errno;
    return 0;
}

int mc_netns_create(const char *name)
{
    char path[512];
    int rc = path_of(path, sizeof(path), MC_NETNS_RUN_DIR, name);
    if (rc < 0)
        return rc;
    if ((rc = ensure_run_dir()) < 0)
        return rc;
    int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    close(fd);
    rc = run_on_thread(-1, bind_new_ns, path);
    if (rc < 0)
        unlink(path);
    return rc;
}

int mc_netns_delete(const char *name)
{
    char path[512];
    int rc = path_of(path, sizeof(path), MC_NETNS_RUN_DIR, name);
    if (rc < 0)
        return rc;
    /* EINVAL: not mounted (a crash between create and bind); still unlink. */
    if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
        return -errno;
    if (unlink(path) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}

int mc_netns_exists(const char *name)
{
    char path[512];
    struct stat st;
    if (path_of(path, sizeof(path), MC_NETNS_RUN_DIR, name) < 0)
        return 0;
    return stat(path, &st) == 0;
}

int mc_netns_open(const char *name)
{
    char path[512];
    int rc = path_of(path, sizeof(path), MC_NETNS_RUN_DIR, name);
    if (rc < 0)
        return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

void mc_netns_names_free(char ***names, int n)
{
    if (!names || !*names)
        return;
    for (int i = 0; i < n; i++)
        free((*names)[i]);
    free(*names);
    *names = NULL;
}

int mc_netns_list(const char *dir, const char *start, char ***names)
{
    *names = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    size_t slen = strlen(start);
    int n = 0, cap = 0, rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, start, slen) != 0 || !strcmp(de->d_name, ".") ||
            !strcmp(de->d_name, ".."))
            continue;
        if (n == cap) {
            int ncap = cap ? cap * 2 : 16;
            char **p = realloc(*names, (size_t)ncap * sizeof(*p));
            if (!p) {
                rc = -ENOMEM;
                break;
            }
            *names = p;
            cap = ncap;
        }
        if (!((*names)[n] = strdup(de->d_name))) {
            rc = -ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (rc < 0) {
        mc_netns_names_free(names, n);
        return rc;
    }
    return n;
}

unsigned long long mc_proc_start_time(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    /* comm may hold spaces and parentheses: fields count from the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ')
        return 0;
    p += 2; /* field 3, state */
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p)
            return 0;
        p++;
    }
    return strtoull(p, NULL, 10);
}

static char proc_state(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' ? p[2] : 0;
}

/* Gone: reaped here (our child), no such pid, or someone else's zombie.
 * Our own child is gone only once reaped: a multithreaded process shows its
 * leader as 'Z' while its other threads are still exiting. */
static bool proc_gone(pid_t pid)
{
    pid_t r = waitpid(pid, NULL, WNOHANG);
    if (r == pid)
        return true;
    if (r == 0)
        return false;
    if (kill(pid, 0) < 0 && errno == ESRCH)
        return true;
    char s = proc_state(pid);
    return s == 0 || s == 'Z' || s == 'X';
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static bool wait_gone(pid_t pid, int timeout_ms)
{
    for (int waited = 0;; waited += 10) {
        if (proc_gone(pid))
            return true;
        if (waited >= timeout_ms)
            return false;
        sleep_ms(10);
    }
}

static void signal_proc(pid_t pid, int sig)
{
    if (getpgid(pid) == pid)
        kill(-pid, sig);
    kill(pid, sig);
}

int mc_proc_stop(pid_t pid, unsigned long long start_time, int timeout_ms)
{
    if (pid <= 1 || pid == getpid())
        return 0;
    if (start_time && mc_proc_start_time(pid) != start_time) {
        waitpid(pid, NULL, WNOHANG); /* a zombie child of ours has no start time to match */
        return 0;
    }
    if (proc_gone(pid))
        return 0;
    signal_proc(pid, SIGTERM);
    if (wait_gone(pid, timeout_ms))
        return 0;
    signal_proc(pid, SIGKILL);
    return wait_gone(pid, timeout_ms) ? 0 : -ETIMEDOUT;
}

static int procs_in_ns(ino_t ino, pid_t *pids, int max)
{
    DIR *d = opendir("/proc");
    if (!d)
        return -errno;
    char want[64], link[64], path[64];
    snprintf(want, sizeof(want), "net:[%llu]", (unsigned long long)ino);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && n < max) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 1 || pid == getpid())
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/ns/net", pid);
        ssize_t len = readlink(path, link, sizeof(link) - 1);
        if (len <= 0)
            continue;
        link[len] = '\0';
        if (!strcmp(link, want) && !proc_gone((pid_t)pid))
            pids[n++] = (pid_t)pid;
    }
    closedir(d);
    return n;
}

int mc_netns_kill_procs(const char *name, int timeout_ms)
{
    char path[512];
    struct stat st;
    int rc = path_of(path, sizeof(path), MC_NETNS_RUN_DIR, name);
    if (rc < 0)
        return rc;
    if (stat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    pid_t pids[256];
    int n = procs_in_ns(st.st_ino, pids, (int)(sizeof(pids) / sizeof(pids[0])));
    if (n <= 0)
        return n;
    /* Each pid alone: every process inside is in the list, and a process
     * group may reach outside the namespace. */
    for (int i = 0; i < n; i++)
        kill(pids[i], SIGTERM);
    int total = n;
    for (int round = 0; round < 2; round++) {
        for (int waited = 0; waited < timeout_ms; waited += 10) {
            bool all = true;
            for (int i = 0; i < n; i++)
                all = all && proc_gone(pids[i]);
            if (all)
                return total;
            sleep_ms(10);
        }
        for (int i = 0; i < n; i++)
            if (!proc_gone(pids[i]))
                kill(pids[i], SIGKILL);
    }
    return -ETIMEDOUT;
}

int mc_netns_entry_prepare(mc_netns_entry_t *e, const char *name)
{
    memset(e, 0, sizeof(*e));
    e->nsfd = -1;
    if (snprintf(e->netns, sizeof(e->netns), "%s", name) >= (int)sizeof(e->netns))
        return -ENAMETOOLONG;
    int fd = mc_netns_open(name);
    if (fd < 0)
        return fd;
    e->nsfd = fd;
    char dir[512];
    if (path_of(dir, sizeof(dir), MC_NETNS_ETC_DIR, name) < 0)
        return 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0; /* no files to mount, as with ip netns exec */
    struct dirent *de;
    while ((de = readdir(d)) != NULL && e->n_etc < 8) {
        if (de->d_name[0] == '.')
            continue;
        if (path_of(e->etc_src[e->n_etc], sizeof(e->etc_src[0]), dir, de->d_name) < 0 ||
            path_of(e->etc_dst[e->n_etc], sizeof(e->etc_dst[0]), "/etc", de->d_name) < 0)
            continue;
        e->n_etc++;
    }
    closedir(d);
    return 0;
}

void mc_netns_entry_release(mc_netns_entry_t *e)
{
    if (e->nsfd >= 0)
        close(e->nsfd);
    e->nsfd = -1;
}

int mc_netns_entry_enter(const mc_netns_entry_t *e)
{
    if (setns(e->nsfd, CLONE_NEWNET) < 0)
        return -errno;
    if (unshare(CLONE_NEWNS) < 0)
        return -errno;
    /* Keep our bind mounts to ourselves. */
    if (mount("", "/", "none", MS_SLAVE | MS_REC, NULL) < 0)
        return -errno;
    /* As ip netns exec: /sys shows this namespace's devices (best effort). */
    if (umount2("/sys", MNT_DETACH) == 0)
        mount(e->netns, "/sys", "sysfs", 0, NULL);
    for (int i = 0; i < e->n_etc; i++)
        if (mount(e->etc_src[i], e->etc_dst[i], "none", MS_BIND, NULL) < 0 && errno != ENOENT)
            return -errno;
    return 0;
}
