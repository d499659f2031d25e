/*
 * sandbox_fixture.h — end-to-end tests drive `meshctl` as a child process:
 * each test gets its own prefix (zmt-<pid>-<n>) and state dir, every child
 * has a deadline, and teardown always runs `meshctl down` and checks that
 * nothing is left behind.
 */
#ifndef ZM_SANDBOX_FIXTURE_H
#define ZM_SANDBOX_FIXTURE_H

#include <limits.h>
#include <stdbool.h>

typedef struct fx {
    char prefix[32];
    char state[64];
    char *host_links;
} fx_t;

/* meshctl's path and the YAML that sbx_up brings up (set by the test's
 * main, e.g. with sbx_locate). */
extern char g_meshctl[PATH_MAX];
extern char g_example[PATH_MAX];

/* Finds meshctl next to the test binary (or $ZMESH_MESHCTL). */
int sbx_locate_meshctl(void);
/* What every sandbox test's main checks first: root (namespaces) and
 * meshctl found; -1 after saying on stderr which is missing. */
int sbx_preflight(const char *test);

/* Runs argv with ZMESH_PREFIX set; captures stdout into *out (may be
 * NULL). Returns the exit code, 128+signal, or -1 on timeout/failure. */
int sbx_run(const fx_t *f, char *const argv[], char **out, const char *extra_env);
int sbx_meshctl(const fx_t *f, const char *verb, char **out);
int sbx_up(const fx_t *f, const char *extra_env);
/* The Prometheus text of a node's ztunnel (:15020, fetched inside the
 * node's namespace); malloc'd, fails the test when unreachable. */
char *sbx_metrics(const fx_t *f, const char *node);
char *sbx_host_links(void);
int sbx_count_prefixed(const char *dir, const char *prefix);
int sbx_mounts_with(const char *prefix);
void sbx_assert_clean(const fx_t *f);
bool sbx_pid_gone(long pid);
int sbx_setup(void **state);
int sbx_teardown(void **state);

#endif
