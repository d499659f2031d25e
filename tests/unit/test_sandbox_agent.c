/*
 * The verbs' side of the node agents (sandbox_agent_ctl.c), against fake
 * agents: the files under STATE/run/<node>/ are parsed (and malformed ones
 * refused); up's wait ends when agent.ready appears, fails fast naming the
 * node when the agent is dead, and times out with agent.error's reason;
 * apply's notify sends SIGHUP with the next sequence number (a forked fake
 * agent answers with agent.ready) and says -ESRCH when no agent runs.
 * Every wait is bounded (timeouts, alarm).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "netns.h"
#include "sandbox.h"

typedef struct fx {
    char dir[64];
} fx_t;

static void put(const fx_t *f, const char *node, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/run", f->dir);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/run/%s", f->dir, node);
    mkdir(path, 0755);
    assert_int_equal(mc_agent_file(f->dir, node, name, path, sizeof(path)), 0);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static json_t *state_with(const char *node, pid_t pid)
{
    return json_pack("{s:[{s:s, s:s, s:s, s:i, s:I}]}", "procs", "component", "agent-x", "kind",
                     "agent", "node", node, "pid", (int)pid, "start",
                     (json_int_t)mc_proc_start_time(pid));
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/zm-agent-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    int rc = system(cmd);
    (void)rc;
    free(f);
    return 0;
}

static void test_files(void **state)
{
    fx_t *f = *state;
    long pid = 0, restarts = 0, seq = 0, zt = 0;
    unsigned long long start = 0;
    assert_int_equal(mc_agent_read_ztunnel(f->dir, "n1", &pid, &start, &restarts), -ENOENT);
    assert_int_equal(mc_agent_read_ready(f->dir, "n1", &seq, &zt), -ENOENT);
    put(f, "n1", MC_AGENT_ZTUNNEL_FILE, "1234 987654 3\n");
    put(f, "n1", MC_AGENT_READY_FILE, "7 1234\n");
    assert_int_equal(mc_agent_read_ztunnel(f->dir, "n1", &pid, &start, &restarts), 0);
    assert_int_equal(pid, 1234);
    assert_int_equal(start, 987654);
    assert_int_equal(restarts, 3);
    assert_int_equal(mc_agent_read_ready(f->dir, "n1", &seq, &zt), 0);
    assert_int_equal(seq, 7);
    assert_int_equal(zt, 1234);
    put(f, "n1", MC_AGENT_READY_FILE, "garbage\n");
    assert_int_equal(mc_agent_read_ready(f->dir, "n1", &seq, &zt), -EBADMSG);
    char path[256];
    assert_int_equal(mc_agent_file(f->dir, "n1", "x", path, 8), -ENAMETOOLONG);
}

static void test_wait_ready(void **state)
{
    fx_t *f = *state;
    alarm(20);
    zm_err_t err = {0};
    char buf[1024];
    /* We are the live "agent": no ready file yet → timeout with the reason. */
    json_t *st = state_with("n1", getpid());
    put(f, "n1", MC_AGENT_ERROR_FILE, "enrollment: zt/a refused: unknown workload\n");
    assert_int_equal(mc_agent_wait_ready(f->dir, st, 100, &err), -ETIMEDOUT);
    zm_err_str(&err, buf, sizeof(buf));
    assert_non_null(strstr(buf, "node agent of n1 got no ack"));
    assert_non_null(strstr(buf, "unknown workload"));
    assert_non_null(strstr(buf, "logs/agent-n1.log"));
    /* Ready: done at once. */
    put(f, "n1", MC_AGENT_READY_FILE, "0 42\n");
    assert_int_equal(mc_agent_wait_ready(f->dir, st, 100, &err), 0);
    json_decref(st);

    /* A dead agent fails at once rather than at the deadline. */
    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    json_t *st2 = state_with("n2", dead); /* start time read while it may live */
    waitpid(dead, NULL, 0);
    assert_int_equal(mc_agent_wait_ready(f->dir, st2, 5000, &err), -ESRCH);
    zm_err_str(&err, buf, sizeof(buf));
    assert_non_null(strstr(buf, "node agent of n2 exited"));
    json_decref(st2);

    /* No agents: nothing to wait for. */
    json_t *none = json_pack("{s:[]}", "procs");
    assert_int_equal(mc_agent_wait_ready(f->dir, none, 100, &err), 0);
    json_decref(none);
}

static void test_notify(void **state)
{
    fx_t *f = *state;
    alarm(20);
    zm_err_t err = {0};
    json_t *none = json_pack("{s:[]}", "procs");
    assert_int_equal(mc_agent_notify(f->dir, none, 100, &err), -ESRCH);
    json_decref(none);

    put(f, "n1", MC_AGENT_READY_FILE, "4 42\n");
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    pid_t agent = fork();
    if (agent == 0) {
        /* The fake agent: one SIGHUP, answered with its sequence number. */
        siginfo_t si;
        struct timespec ts = {.tv_sec = 10};
        if (sigtimedwait(&set, &si, &ts) != SIGHUP)
            _exit(1);
        char path[512], tmp[520], text[64];
        mc_agent_file(f->dir, "n1", MC_AGENT_READY_FILE, path, sizeof(path));
        snprintf(tmp, sizeof(tmp), "%s.t", path);
        snprintf(text, sizeof(text), "%d 43\n", si.si_code == SI_QUEUE ? si.si_int : -1);
        FILE *fp = fopen(tmp, "w");
        if (!fp)
            _exit(2);
        fputs(text, fp);
        fclose(fp);
        rename(tmp, path);
        pause(); /* alive until killed, as an agent is */
        _exit(0);
    }
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    json_t *st = state_with("n1", agent);
    assert_int_equal(mc_agent_notify(f->dir, st, 5000, &err), 0);
    long seq = 0, zt = 0;
    assert_int_equal(mc_agent_read_ready(f->dir, "n1", &seq, &zt), 0);
    assert_int_equal(seq, 5); /* one more than the last acked */
    assert_int_equal(zt, 43);
    kill(agent, SIGKILL);
    waitpid(agent, NULL, 0);
    json_decref(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_ready, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
