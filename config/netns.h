/*
 * netns.h — named network namespaces the iproute2 way, and the processes in
 * them (internal to the sandbox: sandbox_net.c, sandbox_proc.c).
 *
 * A named namespace is a bind mount of a namespace file onto
 * /run/netns/NAME; /run/netns itself is made a shared mount point exactly as
 * `ip netns add` does, so iproute2 and we see the same names. Work inside a
 * namespace runs on a short-lived thread that setns()es into it and is
 * joined before the call returns: the caller's thread never moves.
 */
#ifndef MC_NETNS_H
#define MC_NETNS_H

#include <stddef.h>
#include <sys/types.h>

#define MC_NETNS_RUN_DIR "/run/netns"
#define MC_NETNS_ETC_DIR "/etc/netns"

/* Create /run/netns/NAME holding a fresh namespace (lo is down). -EEXIST if
 * the name is taken. */
int mc_netns_create(const char *name);

/* Unmount and unlink /run/netns/NAME; 0 when it does not exist. */
int mc_netns_delete(const char *name);

/* 1 if /run/netns/NAME exists, 0 if not. */
int mc_netns_exists(const char *name);

/* Open the namespace file (O_RDONLY|O_CLOEXEC): an fd, or -errno. */
int mc_netns_open(const char *name);

/* Run fn(arg) on a thread inside the namespace fd; fn's result, or the
 * -errno of setns/pthread_create. */
int mc_netns_run(int nsfd, int (*fn)(void *), void *arg);

/* Names under dir (/run/netns or /etc/netns) that begin with `start`: a
 * malloc'd array of malloc'd strings in *names (free with
 * mc_netns_names_free), count returned, or -errno. A missing dir is 0. */
int mc_netns_list(const char *dir, const char *start, char ***names);
void mc_netns_names_free(char ***names, int n);

/* Kill every process whose network namespace is /run/netns/NAME (not this
 * process), SIGTERM then SIGKILL; bounded by about 2 * timeout_ms. Returns
 * the number found, or -errno. */
int mc_netns_kill_procs(const char *name, int timeout_ms);

/* The start time (clock ticks since boot, /proc/PID/stat field 22) of pid:
 * > 0, or 0 if it does not exist. */
unsigned long long mc_proc_start_time(pid_t pid);

/* Stop pid unless it is gone or start_time (0: unknown) shows its pid was
 * reused: SIGTERM to it and its process group when it leads one, reap it if
 * it is our child, SIGKILL after timeout_ms, wait up to timeout_ms more.
 * 0 once it is gone, -ETIMEDOUT otherwise. */
int mc_proc_stop(pid_t pid, unsigned long long start_time, int timeout_ms);

/* What a forked child needs to enter a namespace without allocating. */
typedef struct mc_netns_entry {
    char netns[256];
    int nsfd;
    int n_etc;
    char etc_src[8][512]; /* /etc/netns/NAME/FILE */
    char etc_dst[8][512]; /* /etc/FILE */
} mc_netns_entry_t;

/* In the parent: open the namespace and list its /etc/netns files. */
int mc_netns_entry_prepare(mc_netns_entry_t *e, const char *name);
void mc_netns_entry_release(mc_netns_entry_t *e);

/* In the forked child: setns, a private mount namespace, /sys remounted
 * for the namespace, /etc/netns files bound over /etc. 0 or -errno. */
int mc_netns_entry_enter(const mc_netns_entry_t *e);

#endif
