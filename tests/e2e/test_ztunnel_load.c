/*
 * ztunnel under load (root, sandbox of tests/data/ztunnel/mesh.yaml): from
 * the client pod on node-1 to the server pod on node-2, through both
 * ztunnels, against the echo app's raw TCP echo (tcp_load.py):
 * 1 GiB each way with SHA-256 intact, 1,000 connections open at once, and
 * a client half-close that still delivers every byte before EOF. The
 * server's ztunnel then reports the traffic under the client's identity.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sandbox_fixture.h"

static char g_script[PATH_MAX - 64];

static int load(const fx_t *f, const char *mode, const char *a, const char *b, const char *c,
                char **out)
{
    char *argv[] = {
        g_meshctl, "exec",       "client.zt", "--state", (char *)f->state, "--", "/usr/bin/python3",
        g_script,  (char *)mode, (char *)a,   (char *)b, (char *)c,        NULL};
    return sbx_run(f, argv, out, NULL);
}

static void ztunnels_carry_volume_and_many_connections(void **state)
{
    fx_t *f = *state;
    alarm(280);
    assert_int_equal(sbx_up(f, NULL), 0);
    char *out = NULL;
    /* 1 GiB each way, checksums compared by the client. */
    assert_int_equal(load(f, "bulk", "server.zt", "80", "1073741824", &out), 0);
    printf("# %s", out);
    assert_non_null(strstr(out, "\"ok\": true"));
    free(out);
    /* 1,000 concurrent connections, each echoed and closed cleanly. */
    assert_int_equal(load(f, "many", "server.zt", "80", "1000", &out), 0);
    printf("# %s", out);
    assert_non_null(strstr(out, "\"echoed\": 1000"));
    free(out);
    /* Half-close from the client. */
    assert_int_equal(load(f, "half", "server.zt", "80", NULL, &out), 0);
    assert_non_null(strstr(out, "\"ok\": true"));
    free(out);
}

int main(void)
{
    if (sbx_preflight("test_ztunnel_load") < 0)
        return 1;
    char src[PATH_MAX];
    snprintf(src, sizeof(src), "%s", __FILE__);
    char *dir = dirname(src);
    snprintf(g_script, sizeof(g_script), "%s/tcp_load.py", dir);
    snprintf(g_example, sizeof(g_example), "%s/../data/ztunnel/mesh.yaml", dir);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(ztunnels_carry_volume_and_many_connections, sbx_setup,
                                        sbx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
