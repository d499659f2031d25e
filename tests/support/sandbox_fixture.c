/*
 * sandbox_fixture.c — see sandbox_fixture.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox_fixture.h"

#define CHILD_TIMEOUT_S 30

char g_meshctl[PATH_MAX];
char g_example[PATH_MAX];

/* Runs argv with ZMESH_PREFIX set; captures stdout into *out (may be NULL).
 * Returns the exit code, 128+signal, or -1 on timeout/failure. */
int sbx_run(const fx_t *f, char *const argv[], char **out, const char *extra_env)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        setenv("ZMESH_PREFIX", f->prefix, 1);
        if (extra_env)
            putenv((char *)extra_env);
        execv(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    time_t deadline = time(NULL) + CHILD_TIMEOUT_S;
    for (;;) {
        struct pollfd pfd = {.fd = p[0], .events = POLLIN};
        int n = poll(&pfd, 1, 200);
        if (n > 0) {
            if (len + 2048 > cap)
                buf = realloc(buf, cap *= 2);
            ssize_t r = read(p[0], buf + len, cap - len - 1);
            if (r <= 0)
                break;
            len += (size_t)r;
        }
        if (time(NULL) > deadline) {
            kill(pid, SIGKILL);
            break;
        }
    }
    close(p[0]);
    buf[len] = '\0';
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (out)
        *out = buf;
    else
        free(buf);
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

int sbx_meshctl(const fx_t *f, const char *verb, char **out)
{
    char *argv[] = {g_meshctl, (char *)verb, "--state", (char *)f->state, NULL};
    return sbx_run(f, argv, out, NULL);
}

int sbx_up(const fx_t *f, const char *extra_env)
{
    char *argv[] = {g_meshctl, "up", "-f", g_example, "--state", (char *)f->state, NULL};
    return sbx_run(f, argv, NULL, extra_env);
}

char *sbx_metrics(const fx_t *f, const char *node)
{
    char ns[128];
    snprintf(ns, sizeof(ns), "%s-node-%s", f->prefix, node);
    char *argv[] = {"/usr/bin/ip",
                    "netns",
                    "exec",
                    ns,
                    "/usr/bin/python3",
                    "-c",
                    "import urllib.request as u\n"
                    "print(u.urlopen('http://127.0.0.1:15020/metrics', timeout=3).read().decode())",
                    NULL};
    char *out = NULL;
    assert_int_equal(sbx_run(f, argv, &out, NULL), 0);
    return out;
}

char *sbx_host_links(void)
{
    struct if_nameindex *ifs = if_nameindex();
    char *s = calloc(1, 8192);
    for (struct if_nameindex *i = ifs; i && i->if_index; i++) {
        strncat(s, i->if_name, 8000 - strlen(s));
        strncat(s, " ", 8000 - strlen(s));
    }
    if (ifs)
        if_freenameindex(ifs);
    return s;
}

int sbx_count_prefixed(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0 && e->d_name[strlen(prefix)] == '-';
    closedir(d);
    return n;
}

int sbx_mounts_with(const char *prefix)
{
    FILE *fp = fopen("/proc/self/mountinfo", "r");
    char line[4096];
    int n = 0;
    while (fp && fgets(line, sizeof(line), fp))
        n += strstr(line, prefix) != NULL;
    if (fp)
        fclose(fp);
    return n;
}

void sbx_assert_clean(const fx_t *f)
{
    assert_int_equal(sbx_count_prefixed("/run/netns", f->prefix), 0);
    assert_int_equal(sbx_count_prefixed("/etc/netns", f->prefix), 0);
    assert_int_equal(sbx_mounts_with(f->prefix), 0);
    char *now = sbx_host_links();
    assert_string_equal(now, f->host_links);
    free(now);
    char path[128];
    snprintf(path, sizeof(path), "%s/sandbox.json", f->state);
    assert_int_not_equal(access(path, F_OK), 0);
    snprintf(path, sizeof(path), "%s/net.json", f->state);
    assert_int_not_equal(access(path, F_OK), 0);
}

bool sbx_pid_gone(long pid)
{
    char path[64], buf[512] = "";
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return true;
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');
    return rp && (rp[2] == 'Z' || rp[2] == 'X'); /* a zombie waits for init only */
}

int sbx_setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    static int seq;
    snprintf(f->prefix, sizeof(f->prefix), "zmt-%d-%d", (int)getpid() % 100000, seq++);
    snprintf(f->state, sizeof(f->state), "/tmp/zmt-up-XXXXXX");
    if (!mkdtemp(f->state))
        return -1;
    f->host_links = sbx_host_links();
    *state = f;
    return 0;
}

int sbx_teardown(void **state)
{
    fx_t *f = *state;
    sbx_meshctl(f, "down", NULL);
    /* Leave nothing of ours in /tmp. */
    char *argv[] = {"/bin/rm", "-rf", f->state, NULL};
    sbx_run(f, argv, NULL, NULL);
    free(f->host_links);
    free(f);
    return 0;
}

int sbx_preflight(const char *test)
{
    if (geteuid() != 0) {
        fprintf(stderr, "%s needs root (network namespaces)\n", test);
        return -1;
    }
    if (sbx_locate_meshctl() < 0) {
        fprintf(stderr, "meshctl not found at %s\n", g_meshctl);
        return -1;
    }
    return 0;
}

int sbx_locate_meshctl(void)
{
    const char *env = getenv("ZMESH_MESHCTL");
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    snprintf(g_meshctl, sizeof(g_meshctl), "%s/../config/meshctl", dirname(exe));
    if (env && *env)
        snprintf(g_meshctl, sizeof(g_meshctl), "%s", env);
    return access(g_meshctl, X_OK) == 0 ? 0 : -1;
}
