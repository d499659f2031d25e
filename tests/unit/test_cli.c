/*
 * Unit tests of meshctl's command line (config/cli.c): every verb's
 * required arguments, option forms, usage errors and their messages, `--`
 * for exec, help, exit codes of mc_cli_run(), and duration parsing. Verbs
 * are not run here except for help and usage errors (the placeholders of
 * verbs.h will be replaced by real implementations).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define MAX_ARGS 32

static mc_opts_t opts;
static char msg[512];

/* Parses "meshctl" followed by the NULL-terminated words. */
static int parse_v(const char *first, va_list ap)
{
    char *argv[MAX_ARGS + 1] = {"meshctl"};
    int argc = 1;
    for (const char *a = first; a; a = va_arg(ap, const char *)) {
        assert_true(argc < MAX_ARGS);
        argv[argc++] = (char *)a;
    }
    mc_opts_clear(&opts);
    memset(msg, 0, sizeof(msg));
    return mc_cli_parse(argc, argv, &opts, msg, sizeof(msg));
}

static int parse(const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    int r = parse_v(first, ap);
    va_end(ap);
    return r;
}

/* Expects a usage error whose message contains `needle`. */
static void expect_error(const char *needle, const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    int r = parse_v(first, ap);
    va_end(ap);
    if (r != -EINVAL || !strstr(msg, needle))
        fail_msg("expected a usage error containing '%s', got %d '%s'", needle, r, msg);
}

static int teardown(void **state)
{
    mc_opts_clear(&opts);
    return 0;
}

static void test_help(void **state)
{
    assert_int_equal(parse("--help", NULL), MC_PARSE_HELP);
    assert_ptr_equal(opts.help, mc_cli_usage(MC_VERB_NONE));
    assert_int_equal(parse("-h", NULL), MC_PARSE_HELP);
    assert_int_equal(parse("help", NULL), MC_PARSE_HELP);
    assert_ptr_equal(opts.help, mc_cli_usage(MC_VERB_NONE));

    assert_int_equal(parse("compile", "--help", NULL), MC_PARSE_HELP);
    assert_ptr_equal(opts.help, mc_cli_usage(MC_VERB_COMPILE));
    assert_non_null(strstr(opts.help, "meshctl compile -f PATH... -o DIR"));
    assert_int_equal(parse("help", "compile", NULL), MC_PARSE_HELP);
    assert_ptr_equal(opts.help, mc_cli_usage(MC_VERB_COMPILE));
    /* --help wins over errors elsewhere on the line */
    assert_int_equal(parse("up", "--bogus", "-h", NULL), MC_PARSE_HELP);
    assert_ptr_equal(opts.help, mc_cli_usage(MC_VERB_UP));

    assert_int_equal(parse("ca", "--help", NULL), MC_PARSE_HELP);
    assert_non_null(strstr(opts.help, "meshctl ca init DIR"));
    assert_non_null(strstr(opts.help, "meshctl ca issue"));
    assert_int_equal(parse("help", "ca", NULL), MC_PARSE_HELP);
    assert_non_null(strstr(opts.help, "meshctl ca init DIR"));
    assert_int_equal(parse("ca", "issue", "--help", NULL), MC_PARSE_HELP);
    assert_ptr_equal(opts.help, mc_cli_usage(MC_VERB_CA_ISSUE));
    assert_int_equal(parse("help", "ca", "init", NULL), MC_PARSE_HELP);
    assert_ptr_equal(opts.help, mc_cli_usage(MC_VERB_CA_INIT));

    /* every verb has its own usage text */
    for (int v = MC_VERB_NONE + 1; v < MC_VERB_COUNT; v++) {
        const char *u = mc_cli_usage((mc_verb_t)v);
        assert_non_null(u);
        assert_ptr_not_equal(u, mc_cli_usage(MC_VERB_NONE));
        assert_int_equal(strncmp(u, "Usage: meshctl ", 15), 0);
    }
    expect_error("unknown verb 'nope'", "help", "nope", NULL);
}

static void test_verb_errors(void **state)
{
    expect_error("no verb", NULL);
    expect_error("unknown verb 'frobnicate'", "frobnicate", NULL);
    expect_error("unknown verb '--state'", "--state", "x", "up", NULL);
    expect_error("ca: missing subcommand", "ca", NULL);
    expect_error("ca: unknown subcommand 'revoke'", "ca", "revoke", NULL);
    expect_error("unknown verb 'init'", "init", "x", NULL);
}

static void test_compile(void **state)
{
    assert_int_equal(parse("compile", "-f", "a.yaml", "-f", "dir", "more.yaml", "-o", "out",
                           "--nodes", "3", "--trust-domain", "example.org", NULL),
                     MC_PARSE_RUN);
    assert_int_equal(opts.verb, MC_VERB_COMPILE);
    assert_int_equal(opts.nfiles, 3);
    assert_string_equal(opts.files[0], "a.yaml");
    assert_string_equal(opts.files[1], "dir");
    assert_string_equal(opts.files[2], "more.yaml");
    assert_string_equal(opts.out_dir, "out");
    assert_int_equal(opts.nodes, 3);
    assert_string_equal(opts.trust_domain, "example.org");

    /* --long=value, long -f, defaults */
    assert_int_equal(parse("compile", "--filename=x", "--out=o", NULL), MC_PARSE_RUN);
    assert_int_equal(opts.nfiles, 1);
    assert_string_equal(opts.files[0], "x");
    assert_string_equal(opts.out_dir, "o");
    assert_int_equal(opts.nodes, 0);
    assert_string_equal(opts.trust_domain, MC_DEFAULT_TRUST_DOMAIN);

    expect_error("compile: missing -f PATH", "compile", "-o", "out", NULL);
    expect_error("compile: missing --out DIR", "compile", "-f", "a", NULL);
    expect_error("compile: unknown option '--bogus'", "compile", "-f", "a", "-o", "o", "--bogus",
                 NULL);
    expect_error("compile: unknown option '--json'", "compile", "--json", NULL);
    expect_error("compile: unknown option '-x'", "compile", "-x", NULL);
    expect_error("unexpected argument 'a.yaml'", "compile", "a.yaml", "-o", "o", NULL);
    expect_error("unexpected argument 'b'", "compile", "-f", "a", "-o", "o", "b", NULL);
    expect_error("-f needs a value", "compile", "-o", "o", "-f", NULL);
    expect_error("stdin", "compile", "-f", "-", "-o", "o", NULL);
    expect_error("--out given twice", "compile", "-f", "a", "-o", "o", "--out", "p", NULL);
    expect_error("--out: empty value", "compile", "-f", "a", "--out=", NULL);
    expect_error("--nodes '0'", "compile", "-f", "a", "-o", "o", "--nodes", "0", NULL);
    expect_error("--nodes 'x'", "compile", "-f", "a", "-o", "o", "--nodes", "x", NULL);
    expect_error("--nodes '2x'", "compile", "-f", "a", "-o", "o", "--nodes", "2x", NULL);
    expect_error("--nodes '5000'", "compile", "-f", "a", "-o", "o", "--nodes", "5000", NULL);
    expect_error("--trust-domain 'Bad!'", "compile", "-f", "a", "-o", "o", "--trust-domain", "Bad!",
                 NULL);
    expect_error("--trust-domain 'a/b'", "compile", "-f", "a", "-o", "o", "--trust-domain", "a/b",
                 NULL);
    expect_error("unexpected '--'", "compile", "-f", "a", "-o", "o", "--", "x", NULL);
}

static void test_analyze_and_files(void **state)
{
    assert_int_equal(parse("analyze", "-f", "a", "b", "c", NULL), MC_PARSE_RUN);
    assert_int_equal(opts.verb, MC_VERB_ANALYZE);
    assert_int_equal(opts.nfiles, 3);
    assert_string_equal(opts.files[2], "c");
    expect_error("analyze: missing -f", "analyze", NULL);
    expect_error("analyze: unknown option '-o'", "analyze", "-f", "a", "-o", "x", NULL);
}

static void test_sandbox_verbs(void **state)
{
    assert_int_equal(parse("up", "-f", "mesh/", NULL), MC_PARSE_RUN);
    assert_int_equal(opts.verb, MC_VERB_UP);
    assert_string_equal(opts.state_dir, MC_DEFAULT_STATE_DIR);
    assert_int_equal(parse("up", "--state", "/tmp/s", "-f", "m", "--nodes", "2", NULL),
                     MC_PARSE_RUN);
    assert_string_equal(opts.state_dir, "/tmp/s");
    assert_int_equal(opts.nodes, 2);
    expect_error("up: missing -f", "up", "--state", "s", NULL);

    assert_int_equal(parse("apply", "-f", "x.yaml", "--state=/s", NULL), MC_PARSE_RUN);
    assert_int_equal(opts.verb, MC_VERB_APPLY);
    assert_string_equal(opts.state_dir, "/s");
    expect_error("apply: missing -f", "apply", NULL);
    assert_int_equal(parse("delete", "-f", "x.yaml", NULL), MC_PARSE_RUN);
    assert_int_equal(opts.verb, MC_VERB_DELETE);
    expect_error("delete: missing -f", "delete", NULL);
    expect_error("delete: unknown option '--nodes'", "delete", "-f", "x", "--nodes", "2", NULL);

    assert_int_equal(parse("status", NULL), MC_PARSE_RUN);
    assert_int_equal(opts.verb, MC_VERB_STATUS);
    assert_false(opts.json);
    assert_int_equal(parse("status", "--json", "--state", "/x", NULL), MC_PARSE_RUN);
    assert_true(opts.json);
    assert_string_equal(opts.state_dir, "/x");
    expect_error("--json takes no value", "status", "--json=yes", NULL);
    expect_error("status: unexpected argument 'pods'", "status", "pods", NULL);

    assert_int_equal(parse("logs", "ztunnel-node1", NULL), MC_PARSE_RUN);
    assert_int_equal(opts.verb, MC_VERB_LOGS);
    assert_string_equal(opts.component, "ztunnel-node1");
    expect_error("logs: missing COMPONENT", "logs", "--state", "s", NULL);
    expect_error("logs: unexpected argument 'b'", "logs", "a", "b", NULL);

    assert_int_equal(parse("down", NULL), MC_PARSE_RUN);
    assert_int_equal(opts.verb, MC_VERB_DOWN);
    assert_int_equal(parse("down", "--state", "/tmp/z", NULL), MC_PARSE_RUN);
    assert_string_equal(opts.state_dir, "/tmp/z");
    expect_error("down: unknown option '-f'", "down", "-f", "x", NULL);
    expect_error("--state needs a value", "down", "--state", NULL);
}

static void test_exec(void **state)
{
    assert_int_equal(
        parse("exec", "web.shop", "--state", "/s", "--", "curl", "-s", "--help", "http://x/", NULL),
        MC_PARSE_RUN);
    assert_int_equal(opts.verb, MC_VERB_EXEC);
    assert_string_equal(opts.pod, "web");
    assert_string_equal(opts.pod_ns, "shop");
    assert_string_equal(opts.state_dir, "/s");
    assert_int_equal(opts.ncmd, 4);
    assert_string_equal(opts.cmd[0], "curl");
    assert_string_equal(opts.cmd[1], "-s");
    assert_string_equal(opts.cmd[2], "--help"); /* after --: the command's, not ours */
    assert_string_equal(opts.cmd[3], "http://x/");
    assert_null(opts.cmd[4]);

    assert_int_equal(parse("exec", "web", "--", "sh", NULL), MC_PARSE_RUN);
    assert_string_equal(opts.pod, "web");
    assert_string_equal(opts.pod_ns, MC_DEFAULT_NAMESPACE);
    assert_int_equal(opts.ncmd, 1);
    /* pod names may hold dots; namespaces may not */
    assert_int_equal(parse("exec", "a.b.ns", "--", "--", NULL), MC_PARSE_RUN);
    assert_string_equal(opts.pod, "a.b");
    assert_string_equal(opts.pod_ns, "ns");
    assert_string_equal(opts.cmd[0], "--");

    expect_error("exec: missing the command", "exec", "web", NULL);
    expect_error("exec: missing the command", "exec", "web", "--", NULL);
    expect_error("exec: missing POD[.NS]", "exec", "--", "ls", NULL);
    expect_error("exec: unexpected argument 'ls'", "exec", "web", "ls", NULL);
    expect_error("expected POD or POD.NAMESPACE", "exec", ".ns", "--", "ls", NULL);
    expect_error("expected POD or POD.NAMESPACE", "exec", "web.", "--", "ls", NULL);
    expect_error("exec: unknown option '--json'", "exec", "web", "--json", "--", "ls", NULL);
    char longname[300];
    memset(longname, 'p', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    expect_error("too long", "exec", longname, "--", "ls", NULL);
}

static void test_ca_args(void **state)
{
    assert_int_equal(parse("ca", "init", "/tmp/ca", NULL), MC_PARSE_RUN);
    assert_int_equal(opts.verb, MC_VERB_CA_INIT);
    assert_string_equal(opts.ca_dir, "/tmp/ca");
    assert_false(opts.force);
    assert_int_equal(parse("ca", "init", "--force", "d", NULL), MC_PARSE_RUN);
    assert_true(opts.force);
    assert_string_equal(opts.ca_dir, "d");
    expect_error("ca init: missing DIR", "ca", "init", NULL);
    expect_error("ca init: unexpected argument 'e'", "ca", "init", "d", "e", NULL);
    expect_error("ca init: unknown option '--ttl'", "ca", "init", "d", "--ttl", "1h", NULL);

    const char *id = "spiffe://cluster.local/ns/default/sa/web";
    assert_int_equal(parse("ca", "issue", "--ca", "c", "--id", id, "--out", "o", NULL),
                     MC_PARSE_RUN);
    assert_int_equal(opts.verb, MC_VERB_CA_ISSUE);
    assert_string_equal(opts.ca_dir, "c");
    assert_string_equal(opts.id, id);
    assert_string_equal(opts.out_dir, "o");
    assert_int_equal(opts.ttl_s, MC_DEFAULT_TTL_S);
    assert_int_equal(parse("ca", "issue", "--ca", "c", "--id", id, "-o", "o", "--ttl", "90m", NULL),
                     MC_PARSE_RUN);
    assert_int_equal(opts.ttl_s, 5400);

    expect_error("ca issue: missing --ca DIR", "ca", "issue", "--id", id, "--out", "o", NULL);
    expect_error("ca issue: missing --id SPIFFE-ID", "ca", "issue", "--ca", "c", "--out", "o",
                 NULL);
    expect_error("ca issue: missing --out DIR", "ca", "issue", "--ca", "c", "--id", id, NULL);
    expect_error("expected spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/SERVICE-ACCOUNT", "ca", "issue",
                 "--ca", "c", "--id", "spiffe://cluster.local/ns/default", "--out", "o", NULL);
    expect_error("--id 'web'", "ca", "issue", "--ca", "c", "--id", "web", "--out", "o", NULL);
    expect_error("--ttl '24'", "ca", "issue", "--ca", "c", "--id", id, "--out", "o", "--ttl", "24",
                 NULL);
    expect_error("--ttl '0s': must be more than 0", "ca", "issue", "--ca", "c", "--id", id, "--out",
                 "o", "--ttl", "0s", NULL);
    expect_error("ca issue: unknown option '--force'", "ca", "issue", "--force", NULL);
}

static void test_duration(void **state)
{
    static const struct {
        const char *s;
        int rc;
        int64_t v;
    } cases[] = {
        {"24h", 0, 86400},      {"90m", 0, 5400},
        {"3600s", 0, 3600},     {"7d", 0, 604800},
        {"1h30m", 0, 5400},     {"1d2h3m4s", 0, 93784},
        {"1s", 0, 1},           {"36500d", 0, 36500LL * 86400},
        {"36501d", -ERANGE, 0}, {"99999999999999999999s", -ERANGE, 0},
        {"0s", -ERANGE, 0},     {"0h0m", -ERANGE, 0},
        {"", -EINVAL, 0},       {"24", -EINVAL, 0},
        {"h", -EINVAL, 0},      {"1w", -EINVAL, 0},
        {"1.5h", -EINVAL, 0},   {"-1h", -EINVAL, 0},
        {" 1h", -EINVAL, 0},    {"1h ", -EINVAL, 0},
        {"1H", -EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t v = -1;
        int r = mc_parse_duration(cases[i].s, &v);
        if (r != cases[i].rc || (r == 0 && v != cases[i].v))
            fail_msg("'%s': got %d/%lld, want %d/%lld", cases[i].s, r, (long long)v, cases[i].rc,
                     (long long)cases[i].v);
    }
    assert_int_equal(mc_parse_duration(NULL, &(int64_t){0}), -EINVAL);
}

/* Runs mc_cli_run with stdout/stderr captured. */
static int run(char **out, char **err, const char *first, ...)
{
    char *argv[MAX_ARGS + 1] = {"meshctl"};
    int argc = 1;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    size_t on, en;
    FILE *o = open_memstream(out, &on), *e = open_memstream(err, &en);
    assert_non_null(o);
    assert_non_null(e);
    int rc = mc_cli_run(argc, argv, o, e);
    fclose(o);
    fclose(e);
    return rc;
}

static void test_run_exit_codes(void **state)
{
    char *out, *err;
    assert_int_equal(run(&out, &err, "--help", NULL), MC_EXIT_OK);
    assert_string_equal(out, mc_cli_usage(MC_VERB_NONE));
    assert_string_equal(err, "");
    free(out), free(err);

    assert_int_equal(run(&out, &err, "exec", "--help", NULL), MC_EXIT_OK);
    assert_string_equal(out, mc_cli_usage(MC_VERB_EXEC));
    free(out), free(err);

    assert_int_equal(run(&out, &err, NULL), MC_EXIT_USAGE);
    assert_string_equal(out, "");
    assert_string_equal(err, mc_cli_usage(MC_VERB_NONE));
    free(out), free(err);

    assert_int_equal(run(&out, &err, "compile", "--bogus", NULL), MC_EXIT_USAGE);
    assert_string_equal(out, "");
    assert_string_equal(err, "meshctl: compile: unknown option '--bogus'\n"
                             "Run 'meshctl compile --help' for usage.\n");
    free(out), free(err);

    assert_int_equal(run(&out, &err, "ca", "issue", "--ca", "x", "--out", "y", NULL),
                     MC_EXIT_USAGE);
    assert_non_null(strstr(err, "Run 'meshctl ca issue --help'"));
    free(out), free(err);

    assert_int_equal(run(&out, &err, "wat", NULL), MC_EXIT_USAGE);
    assert_non_null(strstr(err, "unknown verb 'wat'\nRun 'meshctl --help' for usage."));
    free(out), free(err);

    /* a runtime failure: the CA directory does not exist */
    assert_int_equal(run(&out, &err, "ca", "issue", "--ca", "/nonexistent/zmt-ca", "--id",
                         "spiffe://cluster.local/ns/a/sa/b", "--out", "/nonexistent/zmt-out", NULL),
                     MC_EXIT_FAIL);
    free(out), free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_help, teardown),
        cmocka_unit_test_teardown(test_verb_errors, teardown),
        cmocka_unit_test_teardown(test_compile, teardown),
        cmocka_unit_test_teardown(test_analyze_and_files, teardown),
        cmocka_unit_test_teardown(test_sandbox_verbs, teardown),
        cmocka_unit_test_teardown(test_exec, teardown),
        cmocka_unit_test_teardown(test_ca_args, teardown),
        cmocka_unit_test_teardown(test_duration, teardown),
        cmocka_unit_test_teardown(test_run_exit_codes, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
