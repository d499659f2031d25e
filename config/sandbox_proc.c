/*
 * sandbox_proc.c — running programs inside sandbox namespaces: spawned
 * daemons (recorded in net.json, stopped by down) and waited-for commands
 * (`meshctl exec`).
 *
 * A child enters the namespace as `ip netns exec` does: setns into the
 * network namespace, a private mount namespace (slave to the host's, so
 * nothing propagates back), /sys remounted for the namespace, and every file
 * of /etc/netns/NAME/ bind-mounted over /etc. The paths are gathered before
 * fork, so the child only makes system calls before exec.
 *
 * Write-ahead for processes: a spawned child waits on a pipe until the
 * parent has recorded its pid and start time in net.json; if the parent
 * dies first, the child reads EOF and exits without running anything. A
 * second pipe (close-on-exec) tells the parent whether exec succeeded.
 *
 * Threading: fork from a thread that holds no locks the child needs; the
 * child makes system calls only until exec.
 */
#include "netns.h"
#include "sandbox_int.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROC_STOP_MS 2000

static int read_full(int fd, void *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = read(fd, (char *)buf + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return (int)off;
        off += (size_t)n;
    }
    return (int)off;
}

/* In the child: never returns. */
__attribute__((noreturn)) static void child_run(const mc_netns_entry_t *e, char *const argv[],
                                                int go_fd, int err_fd, int in_fd, int out_fd,
                                                int new_session)
{
    int code = 0;
    if (go_fd >= 0) {
        char c;
        if (read_full(go_fd, &c, 1) != 1)
            _exit(126); /* the parent died before recording us */
        close(go_fd);
    }
    if (new_session)
        setsid();
    if (in_fd >= 0 && dup2(in_fd, 0) < 0)
        code = errno;
    if (out_fd >= 0 && (dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0))
        code = errno;
    if (!code) {
        int rc = mc_netns_entry_enter(e);
        code = rc < 0 ? -rc : 0;
    }
    if (!code) {
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], argv);
        code = errno;
    }
    ssize_t w = write(err_fd, &code, sizeof(code));
    (void)w;
    _exit(127);
}

typedef struct launch {
    mc_netns_entry_t entry;
    int go[2];
    int err[2];
    int in_fd, out_fd;
} launch_t;

static void launch_close(launch_t *l)
{
    for (int i = 0; i < 2; i++) {
        if (l->go[i] >= 0)
            close(l->go[i]);
        if (l->err[i] >= 0)
            close(l->err[i]);
        l->go[i] = l->err[i] = -1;
    }
    if (l->in_fd >= 0)
        close(l->in_fd);
    if (l->out_fd >= 0)
        close(l->out_fd);
    l->in_fd = l->out_fd = -1;
    mc_netns_entry_release(&l->entry);
}

static int launch_prepare(launch_t *l, const char *netns, int with_go, int detach,
                          const char *log_path, zm_err_t *err)
{
    l->go[0] = l->go[1] = l->err[0] = l->err[1] = l->in_fd = l->out_fd = -1;
    int rc = mc_netns_entry_prepare(&l->entry, netns);
    if (rc < 0) {
        zm_err_set(err, NULL, 0, "network namespace %s: %s", netns, strerror(-rc));
        return rc;
    }
    if ((with_go && pipe2(l->go, O_CLOEXEC) < 0) || pipe2(l->err, O_CLOEXEC) < 0) {
        rc = -errno;
        zm_err_set(err, NULL, 0, "pipe: %s", strerror(errno));
        return rc;
    }
    if (detach) {
        l->in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        l->out_fd = open(log_path ? log_path : "/dev/null",
                         O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (l->in_fd < 0 || l->out_fd < 0) {
            rc = -errno;
            zm_err_set(err, NULL, 0, "%s: %s", log_path ? log_path : "/dev/null", strerror(errno));
            return rc;
        }
    }
    return 0;
}

/* After fork, in the parent: did exec succeed? 0 or -errno from the child. */
static int exec_result(launch_t *l)
{
    close(l->err[1]);
    l->err[1] = -1;
    int code = 0;
    if (read_full(l->err[0], &code, sizeof(code)) == (int)sizeof(code))
        return -code;
    return 0;
}

/* Prepares the namespace entry and forks; the child runs argv (a spawned
 * daemon waits for the go byte and detaches, an exec'd command does not)
 * and never returns. The parent gets *pid with l still open. */
static int launch_fork(launch_t *l, const char *netns, bool spawn, const char *log_path,
                       char *const argv[], pid_t *pid, zm_err_t *err)
{
    int rc = launch_prepare(l, netns, spawn, spawn, log_path, err);
    if (rc < 0) {
        launch_close(l);
        return rc;
    }
    *pid = fork();
    if (*pid < 0) {
        rc = -errno;
        launch_close(l);
        zm_err_set(err, NULL, 0, "fork: %s", strerror(-rc));
        return rc;
    }
    if (*pid == 0) {
        if (spawn) {
            close(l->go[1]);
            child_run(&l->entry, argv, l->go[0], l->err[1], l->in_fd, l->out_fd, 1);
        }
        child_run(&l->entry, argv, -1, l->err[1], -1, -1, 0);
    }
    return 0;
}

int mc_net_spawn(const mc_net_plan_t *plan, const char *netns, char *const argv[],
                 const char *log_path, pid_t *pid_out, zm_err_t *err)
{
    if (!argv || !argv[0])
        return -EINVAL;
    launch_t l;
    pid_t pid;
    int rc = launch_fork(&l, netns, true, log_path, argv, &pid, err);
    if (rc < 0)
        return rc;
    close(l.go[0]);
    l.go[0] = -1;
    unsigned long long start = mc_proc_start_time(pid);
    rc = mc_state_add_proc(plan->state_dir, pid, start, netns);
    if (rc < 0) {
        launch_close(&l); /* EOF on go: the child exits */
        waitpid(pid, NULL, 0);
        zm_err_set(err, NULL, 0, "%s/net.json: cannot record pid (%s)", plan->state_dir,
                   strerror(-rc));
        return rc;
    }
    ssize_t w = write(l.go[1], "g", 1);
    (void)w;
    rc = exec_result(&l);
    launch_close(&l);
    if (rc < 0) {
        waitpid(pid, NULL, 0);
        mc_state_del_proc(plan->state_dir, pid, NULL);
        zm_err_set(err, NULL, 0, "%s in %s: %s", argv[0], netns, strerror(-rc));
        return rc;
    }
    if (pid_out)
        *pid_out = pid;
    return 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int mc_net_exec(const mc_net_plan_t *plan, const char *netns, char *const argv[], int timeout_ms,
                zm_err_t *err)
{
    (void)plan;
    if (!argv || !argv[0])
        return -EINVAL;
    launch_t l;
    pid_t pid;
    int rc = launch_fork(&l, netns, false, NULL, argv, &pid, err);
    if (rc < 0)
        return rc;
    rc = exec_result(&l);
    launch_close(&l);
    int status = 0;
    if (rc < 0) {
        waitpid(pid, &status, 0);
        zm_err_set(err, NULL, 0, "%s in %s: %s", argv[0], netns, strerror(-rc));
        return rc;
    }
    if (timeout_ms <= 0) {
        while (waitpid(pid, &status, 0) < 0)
            if (errno != EINTR)
                return -errno;
    } else {
        int waited = 0;
        for (;;) {
            pid_t r = waitpid(pid, &status, WNOHANG);
            if (r == pid)
                break;
            if (r < 0 && errno != EINTR)
                return -errno;
            if (waited >= timeout_ms) {
                kill(pid, SIGKILL);
                waitpid(pid, &status, 0);
                zm_err_set(err, NULL, 0, "%s in %s: timed out after %d ms", argv[0], netns,
                           timeout_ms);
                return -ETIMEDOUT;
            }
            sleep_ms(5);
            waited += 5;
        }
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 255;
}

int mc_net_kill(const mc_net_plan_t *plan, pid_t pid)
{
    unsigned long long start = 0;
    int rc = mc_state_del_proc(plan->state_dir, pid, &start);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return -ESRCH; /* not ours to kill */
    return mc_proc_stop(pid, start, PROC_STOP_MS);
}
