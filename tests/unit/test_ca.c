/*
 * Unit tests of the mesh CA (config/ca.c) in a temporary directory: file
 * modes, the issued certificate chaining to the root (checked by a real TLS
 * 1.3 handshake in memory between two issued identities loaded from their
 * files), validity, rotation (generations, the `current` swap, pruning),
 * refusal to overwrite a CA, and bad input. Also `meshctl ca` exit codes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ca.h"
#include "cli.h"
#include "tls.h"
#include "tls_support.h"

#define ID_WEB "spiffe://cluster.local/ns/shop/sa/web"
#define ID_API "spiffe://cluster.local/ns/shop/sa/api"

static char tmp[64];

static char *path(const char *rel)
{
    static char bufs[4][512];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof(bufs[0]), "%s/%s", tmp, rel);
    return b;
}

static char *slurp(const char *p)
{
    FILE *f = fopen(p, "r");
    if (!f)
        fail_msg("cannot open %s: %s", p, strerror(errno));
    char *buf = calloc(1, 65536);
    assert_non_null(buf);
    size_t n = fread(buf, 1, 65535, f);
    fclose(f);
    assert_true(n > 0);
    return buf;
}

static mode_t mode_of(const char *p)
{
    struct stat st;
    if (stat(p, &st) != 0)
        fail_msg("stat %s: %s", p, strerror(errno));
    return st.st_mode & 07777;
}

static bool exists(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0;
}

static void check_ok(int r, const zm_err_t *err)
{
    if (r < 0) {
        char buf[800];
        fail_msg("%d: %s", r, zm_err_str(err, buf, sizeof(buf)));
    }
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(p);
}

static int setup(void **state)
{
    snprintf(tmp, sizeof(tmp), "/tmp/zmt-ca-XXXXXX");
    assert_non_null(mkdtemp(tmp));
    zm_err_t err = {0};
    check_ok(mc_ca_init(path("ca"), false, &err), &err);
    return 0;
}

static int teardown(void **state)
{
    nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static void test_init_layout(void **state)
{
    assert_int_equal(mode_of(path("ca")), 0700);
    assert_int_equal(mode_of(path("ca/root-key.pem")), 0600);
    assert_int_equal(mode_of(path("ca/root-cert.pem")), 0644);
    assert_int_equal(mode_of(path("ca/ca.pem")), 0644);
    char *cert = slurp(path("ca/root-cert.pem")), *bundle = slurp(path("ca/ca.pem"));
    char *key = slurp(path("ca/root-key.pem"));
    assert_string_equal(cert, bundle);
    assert_non_null(strstr(cert, "-----BEGIN CERTIFICATE-----"));
    assert_non_null(strstr(key, "PRIVATE KEY-----"));
    /* self-signed, and valid for about ten years */
    assert_int_equal(ts_verify_chain(cert, cert), 0);
    free(cert), free(bundle), free(key);
    /* no temporary files left behind */
    assert_false(exists(path("ca/.root-key.pem.tmp")));
    assert_false(exists(path("ca/.ca.pem.tmp")));
}

static void test_init_refuses_overwrite(void **state)
{
    zm_err_t err = {0};
    char *before = slurp(path("ca/root-cert.pem"));
    assert_int_equal(mc_ca_init(path("ca"), false, &err), -EEXIST);
    assert_non_null(strstr(err.msg, "--force"));
    char *same = slurp(path("ca/root-cert.pem"));
    assert_string_equal(before, same);

    check_ok(mc_ca_init(path("ca"), true, &err), &err);
    char *after = slurp(path("ca/root-cert.pem"));
    assert_string_not_equal(before, after);
    assert_int_equal(mode_of(path("ca/root-key.pem")), 0600);
    free(before), free(same), free(after);

    /* nested, missing parents are created */
    check_ok(mc_ca_init(path("a/b/ca"), false, &err), &err);
    assert_int_equal(mode_of(path("a/b/ca")), 0700);
}

static void test_issue_layout(void **state)
{
    zm_err_t err = {0};
    int64_t na = 0;
    check_ok(mc_ca_issue(path("ca"), ID_WEB, 3600, path("w"), &na, &err), &err);
    assert_true(na > 0);
    assert_int_equal(mode_of(path("w")), 0700);
    assert_int_equal(mode_of(path("w/gen-1")), 0700);
    assert_int_equal(mode_of(path("w/key.pem")), 0600); /* through the symlinks */
    assert_int_equal(mode_of(path("w/cert.pem")), 0644);
    char link[256];
    ssize_t n = readlink(path("w/current"), link, sizeof(link) - 1);
    assert_true(n > 0);
    link[n] = '\0';
    assert_string_equal(link, "gen-1");
    n = readlink(path("w/cert.pem"), link, sizeof(link) - 1);
    assert_true(n > 0);
    link[n] = '\0';
    assert_string_equal(link, "current/cert.pem");
    n = readlink(path("w/key.pem"), link, sizeof(link) - 1);
    assert_true(n > 0);
    link[n] = '\0';
    assert_string_equal(link, "current/key.pem");

    char *root = slurp(path("ca/root-cert.pem")), *bundle = slurp(path("w/ca.pem"));
    char *cert = slurp(path("w/cert.pem"));
    assert_string_equal(root, bundle);
    assert_int_equal(ts_verify_chain(root, cert), 0);
    free(root), free(bundle), free(cert);
}

static zm_tls_ctx_t *ctx_from(const char *dir, bool server)
{
    char c[512], k[512], a[512];
    snprintf(c, sizeof(c), "%s/cert.pem", dir);
    snprintf(k, sizeof(k), "%s/key.pem", dir);
    snprintf(a, sizeof(a), "%s/ca.pem", dir);
    zm_tls_ctx_config_t cfg = {.server = server, .cert_file = c, .key_file = k, .ca_file = a};
    zm_tls_ctx_t *ctx = NULL;
    zm_err_t err = {0};
    check_ok(zm_tls_ctx_new(&ctx, &cfg, &err), &err);
    return ctx;
}

static void test_issued_handshake(void **state)
{
    zm_err_t err = {0};
    check_ok(mc_ca_issue_into(path("ca"), ID_WEB, 3600, path("web"), &err), &err);
    check_ok(mc_ca_issue_into(path("ca"), ID_API, 3600, path("api"), &err), &err);
    zm_tls_ctx_t *sctx = ctx_from(path("web"), true), *cctx = ctx_from(path("api"), false);
    assert_string_equal(zm_tls_ctx_identity(sctx)->uri, ID_WEB);
    assert_string_equal(zm_tls_ctx_identity(cctx)->uri, ID_API);

    const char *expect[] = {ID_WEB, NULL};
    zm_tls_t *s = NULL, *c = NULL;
    assert_int_equal(zm_tls_new(&s, sctx, NULL), 0);
    assert_int_equal(zm_tls_new(&c, cctx, expect), 0);
    ts_pump_result_t res = ts_pump(c, s);
    assert_int_equal(res.client, ZM_OK);
    assert_int_equal(res.server, ZM_OK);
    assert_non_null(zm_tls_peer_id(s));
    assert_non_null(zm_tls_peer_id(c));
    assert_string_equal(zm_tls_peer_id(s)->uri, ID_API);
    assert_string_equal(zm_tls_peer_id(c)->uri, ID_WEB);
    assert_string_equal(zm_tls_peer_id(c)->ns, "shop");
    assert_string_equal(zm_tls_peer_id(c)->sa, "web");
    zm_tls_free(&s);
    zm_tls_free(&c);

    /* An identity from a different CA is refused. */
    check_ok(mc_ca_init(path("other"), false, &err), &err);
    check_ok(mc_ca_issue_into(path("other"), ID_API, 3600, path("api2"), &err), &err);
    zm_tls_ctx_t *octx = ctx_from(path("api2"), false);
    assert_int_equal(zm_tls_new(&s, sctx, NULL), 0);
    assert_int_equal(zm_tls_new(&c, octx, NULL), 0);
    res = ts_pump(c, s);
    assert_true(res.client != ZM_OK || res.server != ZM_OK);
    zm_tls_free(&s);
    zm_tls_free(&c);
    zm_tls_ctx_unref(&octx);
    zm_tls_ctx_unref(&sctx);
    zm_tls_ctx_unref(&cctx);
}

static void test_ttl(void **state)
{
    zm_err_t err = {0};
    static const int64_t ttls[] = {90 * 60, 7 * 86400, 365 * 86400};
    for (size_t i = 0; i < ZM_ARRAY_LEN(ttls); i++) {
        int64_t t0 = (int64_t)time(NULL), na = 0;
        check_ok(mc_ca_issue(path("ca"), ID_WEB, ttls[i], path("t"), &na, &err), &err);
        int64_t t1 = (int64_t)time(NULL);
        zm_tls_ctx_t *ctx = ctx_from(path("t"), true);
        int64_t got = zm_tls_ctx_not_after(ctx);
        assert_int_equal(got, na);
        assert_true(got >= t0 + ttls[i] && got <= t1 + ttls[i]);
        zm_tls_ctx_unref(&ctx);
    }
    /* past the CA's own expiry (10 years), or not positive */
    assert_int_equal(mc_ca_issue_into(path("ca"), ID_WEB, 20LL * 365 * 86400, path("t"), &err),
                     -ERANGE);
    assert_non_null(strstr(err.msg, "expiry"));
    assert_true(mc_ca_issue_into(path("ca"), ID_WEB, 0, path("t"), &err) < 0);
    assert_true(mc_ca_issue_into(path("ca"), ID_WEB, -5, path("t"), &err) < 0);
}

static void read_link(const char *p, char *buf, size_t len)
{
    ssize_t n = readlink(p, buf, len - 1);
    if (n <= 0)
        fail_msg("readlink %s: %s", p, strerror(errno));
    buf[n] = '\0';
}

static void test_rotation(void **state)
{
    zm_err_t err = {0};
    char link[64];
    check_ok(mc_ca_issue_into(path("ca"), ID_WEB, 3600, path("r"), &err), &err);
    char *c1 = slurp(path("r/cert.pem")), *k1 = slurp(path("r/key.pem"));

    check_ok(mc_ca_issue_into(path("ca"), ID_WEB, 3600, path("r"), &err), &err);
    char *c2 = slurp(path("r/cert.pem")), *k2 = slurp(path("r/key.pem"));
    assert_string_not_equal(c1, c2);
    assert_string_not_equal(k1, k2);
    read_link(path("r/current"), link, sizeof(link));
    assert_string_equal(link, "gen-2");
    assert_true(exists(path("r/gen-1/cert.pem"))); /* previous kept for late readers */
    char *old = slurp(path("r/gen-1/cert.pem"));
    assert_string_equal(old, c1);

    /* A reader holding the new generation gets a matching pair. */
    zm_tls_ctx_t *ctx = ctx_from(path("r/gen-2"), true);
    assert_string_equal(zm_tls_ctx_identity(ctx)->uri, ID_WEB);
    zm_tls_ctx_unref(&ctx);

    check_ok(mc_ca_issue_into(path("ca"), ID_WEB, 3600, path("r"), &err), &err);
    read_link(path("r/current"), link, sizeof(link));
    assert_string_equal(link, "gen-3");
    assert_false(exists(path("r/gen-1")));
    assert_true(exists(path("r/gen-2")));
    assert_true(exists(path("r/gen-3")));
    char *c3 = slurp(path("r/cert.pem"));
    assert_string_not_equal(c2, c3);

    /* A generation left half-written by a crash is skipped and pruned, and
     * the previous current one survives. */
    assert_int_equal(mkdir(path("r/gen-4"), 0700), 0);
    FILE *f = fopen(path("r/gen-4/cert.pem"), "w");
    assert_non_null(f);
    fputs("partial", f);
    fclose(f);
    check_ok(mc_ca_issue_into(path("ca"), ID_WEB, 3600, path("r"), &err), &err);
    read_link(path("r/current"), link, sizeof(link));
    assert_string_equal(link, "gen-5");
    assert_false(exists(path("r/gen-4")));
    assert_false(exists(path("r/gen-2")));
    assert_true(exists(path("r/gen-3")));
    assert_false(exists(path("r/.current.lnk")));

    free(c1), free(k1), free(c2), free(k2), free(c3), free(old);
}

static void test_bad_input(void **state)
{
    zm_err_t err = {0};
    static const char *const bad[] = {"spiffe://cluster.local/ns/shop",
                                      "spiffe://cluster.local/ns/shop/sa/",
                                      "spiffe://cluster.local/ns/../sa/x",
                                      "https://cluster.local/ns/a/sa/b",
                                      "spiffe://Cluster.local/ns/a/sa/b",
                                      "",
                                      NULL};
    for (int i = 0; i < (int)ZM_ARRAY_LEN(bad); i++) {
        memset(&err, 0, sizeof(err));
        assert_int_equal(mc_ca_issue_into(path("ca"), bad[i], 3600, path("bad"), &err), -EINVAL);
        assert_non_null(strstr(err.msg, "SPIFFE"));
    }
    assert_false(exists(path("bad")));

    /* no CA there */
    assert_int_equal(mc_ca_issue_into(path("none"), ID_WEB, 3600, path("x"), &err), -ENOENT);
    assert_non_null(strstr(err.file, "root-cert.pem"));
    assert_false(exists(path("x")));

    /* a CA whose key is not its certificate's */
    zm_err_t e2 = {0};
    check_ok(mc_ca_init(path("ca2"), false, &e2), &e2);
    char *k2 = slurp(path("ca2/root-key.pem"));
    FILE *f = fopen(path("ca/root-key.pem"), "w");
    assert_non_null(f);
    fputs(k2, f);
    fclose(f);
    free(k2);
    assert_true(mc_ca_issue_into(path("ca"), ID_WEB, 3600, path("x"), &err) < 0);
    assert_non_null(strstr(err.msg, "does not match"));
    assert_false(exists(path("x/current")));

    /* garbage instead of a certificate */
    f = fopen(path("ca2/root-cert.pem"), "w");
    assert_non_null(f);
    fputs("not a certificate\n", f);
    fclose(f);
    assert_true(mc_ca_issue_into(path("ca2"), ID_WEB, 3600, path("x"), &err) < 0);

    /* the output is a file, not a directory */
    f = fopen(path("file"), "w");
    assert_non_null(f);
    fclose(f);
    check_ok(mc_ca_init(path("ca3"), false, &e2), &e2);
    assert_true(mc_ca_issue_into(path("ca3"), ID_WEB, 3600, path("file"), &err) < 0);
}

static void test_identity_dir(void **state)
{
    char buf[128];
    assert_int_equal(mc_ca_identity_dir("/run/zmesh", ID_WEB, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "/run/zmesh/certs/shop/web");
    assert_int_equal(mc_ca_identity_dir("/run/zmesh", "spiffe://x/ns/a", buf, sizeof(buf)),
                     -EINVAL);
    assert_int_equal(mc_ca_identity_dir("/run/zmesh", ID_WEB, buf, 10), -ENAMETOOLONG);

    /* the sandbox's loop: issue into the identity's place */
    zm_err_t err = {0};
    assert_int_equal(mc_ca_identity_dir(tmp, ID_WEB, buf, sizeof(buf)), 0);
    check_ok(mc_ca_issue_into(path("ca"), ID_WEB, 3600, buf, &err), &err);
    assert_true(exists(path("certs/shop/web/cert.pem")));
    assert_int_equal(mode_of(path("certs/shop/web")), 0700);
}

static int run(const char *first, ...)
{
    char *argv[16] = {"meshctl"};
    int argc = 1;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    FILE *null = fopen("/dev/null", "w");
    assert_non_null(null);
    fflush(stdout);
    int rc = mc_cli_run(argc, argv, null, null);
    fclose(null);
    return rc;
}

static void test_cli_exit_codes(void **state)
{
    assert_int_equal(run("ca", "init", path("c"), NULL), MC_EXIT_OK);
    assert_int_equal(run("ca", "init", path("c"), NULL), MC_EXIT_FAIL);
    assert_int_equal(run("ca", "init", path("c"), "--force", NULL), MC_EXIT_OK);
    assert_int_equal(
        run("ca", "issue", "--ca", path("c"), "--id", ID_WEB, "--out", path("o"), NULL),
        MC_EXIT_OK);
    assert_true(exists(path("o/key.pem")));
    assert_int_equal(run("ca", "issue", "--ca", path("c"), "--id", ID_WEB, "--out", path("o"),
                         "--ttl", "7d", NULL),
                     MC_EXIT_OK);
    assert_true(exists(path("o/gen-2")));
    assert_int_equal(run("ca", "issue", "--ca", path("c"), "--id", "spiffe://td/ns/a", "--out",
                         path("o2"), NULL),
                     MC_EXIT_USAGE);
    assert_false(exists(path("o2")));
    assert_int_equal(run("ca", "issue", "--ca", path("c"), "--id", ID_WEB, "--out", path("o2"),
                         "--ttl", "soon", NULL),
                     MC_EXIT_USAGE);
    assert_int_equal(
        run("ca", "issue", "--ca", path("missing"), "--id", ID_WEB, "--out", path("o2"), NULL),
        MC_EXIT_FAIL);
    assert_int_equal(run("ca", "issue", "--ca", path("c"), "--id", ID_WEB, "--out", path("o2"),
                         "--ttl", "36500d", NULL),
                     MC_EXIT_FAIL);
}

static int group_teardown(void **state)
{
    zm_tls_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_init_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_refuses_overwrite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_issue_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_issued_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identity_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_exit_codes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, group_teardown);
}
