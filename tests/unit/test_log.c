/* Unit tests of log.c: JSON lines parse back with jansson, text layout,
 * escaping and truncation keep one entry per line, level checks happen
 * before argument evaluation, per-reason rate limits, the access sink. Output
 * is captured in a tmpfile; the rate limiter runs on a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static FILE *cap;
static FILE *acc;
static uint64_t fake_now;

static uint64_t fake_clock(void)
{
    return fake_now;
}

static int setup(void **state)
{
    cap = tmpfile();
    acc = tmpfile();
    if (!cap || !acc)
        return -1;
    zm_log_set_fd(fileno(cap));
    zm_log_set_access_fd(-1);
    zm_log_set_level(ZM_LOG_INFO);
    zm_log_set_format(ZM_LOG_JSON);
    zm_log_set_access_format(ZM_LOG_JSON);
    zm_log_set_ratelimit(ZM_LOG_DEFAULT_RATELIMIT);
    fake_now = 100ull * 1000000000u;
    zm_log_set_clock(fake_clock);
    return 0;
}

static int teardown(void **state)
{
    zm_log_set_fd(2);
    zm_log_set_access_fd(-1);
    zm_log_set_clock(NULL);
    fclose(cap);
    fclose(acc);
    return 0;
}

/* Everything written to f since the last call; the caller frees it. */
static char *drain(FILE *f)
{
    int fd = fileno(f);
    off_t end = lseek(fd, 0, SEEK_END);
    assert_true(end >= 0);
    char *buf = malloc((size_t)end + 1);
    assert_non_null(buf);
    assert_int_equal(pread(fd, buf, (size_t)end, 0), end);
    buf[end] = '\0';
    assert_int_equal(ftruncate(fd, 0), 0);
    lseek(fd, 0, SEEK_SET);
    return buf;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Parse a captured output that must hold exactly one JSON line. */
static json_t *one_json(void)
{
    char *out = drain(cap);
    assert_int_equal(count_lines(out), 1);
    assert_int_equal(out[strlen(out) - 1], '\n');
    json_error_t err;
    json_t *j = json_loads(out, 0, &err);
    if (!j)
        fail_msg("not JSON (%s): %s", err.text, out);
    free(out);
    return j;
}

static const char *jstr(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    assert_non_null(v);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static void json_line_has_all_fields(void **state)
{
    zm_log_ctx_t ctx = {
        .worker = 1, .conn_id = 42, .peer = "spiffe://td/ns/a/sa/b", .action = "TLS handshake"};
    zm_log(ZM_LOG_WARN, &ctx, "hello %s %d", "world", 7);
    json_t *j = one_json();
    const char *ts = jstr(j, "ts");
    /* RFC 3339, UTC, milliseconds: 2024-05-01T12:00:00.123Z */
    assert_int_equal(strlen(ts), 24);
    assert_int_equal(ts[4], '-');
    assert_int_equal(ts[10], 'T');
    assert_int_equal(ts[19], '.');
    assert_int_equal(ts[23], 'Z');
    assert_string_equal(jstr(j, "level"), "warn");
    assert_string_equal(jstr(j, "msg"), "hello world 7");
    assert_int_equal(json_integer_value(json_object_get(j, "worker")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "conn")), 42);
    assert_string_equal(jstr(j, "peer"), "spiffe://td/ns/a/sa/b");
    assert_string_equal(jstr(j, "action"), "TLS handshake");
    json_decref(j);
}

static void absent_context_is_omitted(void **state)
{
    zm_log_ctx_t ctx = ZM_LOG_CTX_INIT;
    zm_log(ZM_LOG_ERROR, &ctx, "x");
    json_t *j = one_json();
    assert_int_equal(json_object_size(j), 3); /* ts, level, msg */
    json_decref(j);
    zm_log(ZM_LOG_ERROR, NULL, "y");
    j = one_json();
    assert_int_equal(json_object_size(j), 3);
    json_decref(j);
}

static void hostile_strings_stay_one_valid_line(void **state)
{
    zm_log_ctx_t ctx = {.worker = -1, .conn_id = -1, .peer = "evil\n{\"level\":\"error\"}"};
    zm_log(ZM_LOG_INFO, &ctx, "q\" b\\ nl\n tab\t c\x01 bad\xff\xc0\x80 ok\xc3\xa9 del\x7f");
    json_t *j = one_json();
    assert_string_equal(jstr(j, "msg"),
                        "q\" b\\ nl\n tab\t c\x01 bad\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd "
                        "ok\xc3\xa9 del\x7f");
    assert_string_equal(jstr(j, "peer"), "evil\n{\"level\":\"error\"}");
    json_decref(j);

    zm_log_set_format(ZM_LOG_TEXT);
    zm_log(ZM_LOG_INFO, NULL, "a\nb\xff");
    char *out = drain(cap);
    assert_int_equal(count_lines(out), 1);
    assert_string_equal(out + 24, " INFO  a\\nb\\xff\n");
    free(out);
}

static void key_values(void **state)
{
    zm_logkv(ZM_LOG_INFO, NULL, "conn closed", "reason", "peer \"reset\"", "dir", "in", NULL);
    json_t *j = one_json();
    assert_string_equal(jstr(j, "msg"), "conn closed");
    assert_string_equal(jstr(j, "reason"), "peer \"reset\"");
    assert_string_equal(jstr(j, "dir"), "in");
    json_decref(j);

    zm_log_kv_t kv[] = {
        ZM_KV_I("status", -3), ZM_KV_U("bytes", 1234567890123ull), ZM_KV_D("secs", 0.25),
        ZM_KV_B("tls", true),  ZM_KV_S("nothing", NULL),           ZM_KV_D("inf", 1.0 / 0.0),
    };
    zm_logf(ZM_LOG_INFO, NULL, "typed", kv, ZM_ARRAY_LEN(kv));
    j = one_json();
    assert_int_equal(json_integer_value(json_object_get(j, "status")), -3);
    assert_int_equal(json_integer_value(json_object_get(j, "bytes")), 1234567890123ll);
    assert_true(json_number_value(json_object_get(j, "secs")) == 0.25);
    assert_true(json_is_true(json_object_get(j, "tls")));
    assert_true(json_is_null(json_object_get(j, "nothing")));
    assert_true(json_is_null(json_object_get(j, "inf")));
    json_decref(j);
}

static void text_layout(void **state)
{
    zm_log_set_format(ZM_LOG_TEXT);
    zm_log_ctx_t ctx = {
        .worker = 1, .conn_id = 42, .peer = "spiffe://x", .action = "TLS handshake"};
    zm_logkv(ZM_LOG_WARN, &ctx, "bad cert", "reason", "expired", "k", "a b", "e", "", NULL);
    char *out = drain(cap);
    assert_int_equal(out[23], 'Z');
    assert_string_equal(out + 24, " WARN  [w1 c42 peer=spiffe://x] TLS handshake: bad cert "
                                  "reason=expired k=\"a b\" e=\"\"\n");
    free(out);
    zm_log_ctx_t c2 = {.worker = -1, .conn_id = 7, .action = "CONNECT 10.1.0.5:8080"};
    zm_log(ZM_LOG_ERROR, &c2, "refused");
    out = drain(cap);
    assert_string_equal(out + 24, " ERROR [c7] CONNECT 10.1.0.5:8080: refused\n");
    free(out);
}

static void long_entries_are_cut_but_valid(void **state)
{
    char *big = malloc(10000);
    memset(big, 'a', 9999);
    big[9999] = '\0';
    zm_log(ZM_LOG_INFO, NULL, "%s", big);
    json_t *j = one_json();
    const char *msg = jstr(j, "msg");
    assert_true(strlen(msg) < ZM_LOG_LINE_MAX);
    assert_string_equal(msg + strlen(msg) - 3, "...");
    json_decref(j);

    /* many long fields: later ones drop out, the line still parses */
    zm_log_kv_t kv[12];
    char keys[12][8];
    for (int i = 0; i < 12; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%d", i);
        kv[i] = ZM_KV_S(keys[i], big + 9999 - 700);
    }
    zm_logf(ZM_LOG_INFO, NULL, "m", kv, 12);
    char *out = drain(cap);
    assert_true(strlen(out) <= ZM_LOG_LINE_MAX);
    assert_int_equal(count_lines(out), 1);
    json_error_t err;
    j = json_loads(out, 0, &err);
    if (!j)
        fail_msg("not JSON (%s): %s", err.text, out);
    assert_non_null(json_object_get(j, "k0"));
    assert_null(json_object_get(j, "k11"));
    json_decref(j);
    free(out);

    /* escapes that expand 6x near the limit */
    memset(big, '\x01', 9999);
    zm_log(ZM_LOG_INFO, NULL, "%s", big);
    j = one_json();
    json_decref(j);
    zm_log_set_format(ZM_LOG_TEXT);
    zm_log(ZM_LOG_INFO, NULL, "%s", big);
    out = drain(cap);
    assert_int_equal(count_lines(out), 1);
    assert_true(strlen(out) <= ZM_LOG_LINE_MAX);
    free(out);
    free(big);
}

static int calls;
static int side_effect(void)
{
    return ++calls;
}

static void disabled_levels_skip_formatting(void **state)
{
    calls = 0;
    zm_log_set_level(ZM_LOG_INFO);
    zm_log(ZM_LOG_DEBUG, NULL, "%d", side_effect());
    zm_log(ZM_LOG_TRACE, NULL, "%d", side_effect());
    zm_logkv(ZM_LOG_DEBUG, NULL, "m", "k", side_effect() ? "v" : "w", NULL);
    zm_log_ratelimited(ZM_LOG_DEBUG, NULL, "r", "%d", side_effect());
    assert_int_equal(calls, 0);
    char *out = drain(cap);
    assert_string_equal(out, "");
    free(out);

    zm_log_set_level(ZM_LOG_DEBUG);
    assert_int_equal(zm_log_get_level(), ZM_LOG_DEBUG);
    zm_log(ZM_LOG_DEBUG, NULL, "%d", side_effect());
    assert_int_equal(calls, 1);
    json_t *j = one_json();
    assert_string_equal(jstr(j, "level"), "debug");
    json_decref(j);

    zm_log_set_level(ZM_LOG_ERROR);
    zm_log(ZM_LOG_WARN, NULL, "%d", side_effect());
    assert_int_equal(calls, 1);
    zm_log(ZM_LOG_ERROR, NULL, "%d", side_effect());
    assert_int_equal(calls, 2);
    free(drain(cap));
}

static void level_names(void **state)
{
    assert_int_equal(zm_log_level_parse("debug"), ZM_LOG_DEBUG);
    assert_int_equal(zm_log_level_parse("TRACE"), ZM_LOG_TRACE);
    assert_int_equal(zm_log_level_parse("Warning"), ZM_LOG_WARN);
    assert_int_equal(zm_log_level_parse("error"), ZM_LOG_ERROR);
    assert_int_equal(zm_log_level_parse("info"), ZM_LOG_INFO);
    assert_int_equal(zm_log_level_parse("verbose"), -EINVAL);
    assert_int_equal(zm_log_level_parse(NULL), -EINVAL);
    assert_string_equal(zm_log_level_name(ZM_LOG_WARN), "warn");
    assert_string_equal(zm_log_level_name((zm_log_level_t)9), "?");
    zm_log_set_level((zm_log_level_t)9); /* ignored */
    assert_int_equal(zm_log_get_level(), ZM_LOG_INFO);
}

/* Count lines of out whose msg equals msg (JSON format). */
static int count_msgs(const char *out, const char *msg, const char *reason)
{
    int n = 0;
    char *copy = strdup(out), *save = NULL;
    for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        json_t *j = json_loads(l, 0, NULL);
        assert_non_null(j);
        const char *m = json_string_value(json_object_get(j, "msg"));
        const char *r = json_string_value(json_object_get(j, "reason"));
        if (m && r && strcmp(m, msg) == 0 && strcmp(r, reason) == 0)
            n++;
        json_decref(j);
    }
    free(copy);
    return n;
}

static void rate_limit_suppresses_and_reports(void **state)
{
    zm_log_set_ratelimit(3);
    for (int i = 0; i < 10; i++)
        zm_log_ratelimited(ZM_LOG_WARN, NULL, "bad_request", "bad request %d", i);
    zm_log_ratelimited(ZM_LOG_WARN, NULL, "timeout", "timed out");
    char *out = drain(cap);
    assert_int_equal(count_lines(out), 4);
    assert_int_equal(count_msgs(out, "bad request 0", "bad_request"), 1);
    assert_int_equal(count_msgs(out, "bad request 2", "bad_request"), 1);
    assert_int_equal(count_msgs(out, "bad request 3", "bad_request"), 0);
    assert_int_equal(count_msgs(out, "timed out", "timeout"), 1);
    free(out);

    /* the next second: the count comes first, then the entry */
    fake_now += 1000000000u;
    char reason[] = "bad_request"; /* same text, other address: same reason */
    zm_log_ratelimited(ZM_LOG_WARN, NULL, reason, "again");
    out = drain(cap);
    assert_int_equal(count_lines(out), 2);
    assert_int_equal(count_msgs(out, "suppressed 7 similar messages", "bad_request"), 1);
    assert_int_equal(count_msgs(out, "again", "bad_request"), 1);
    assert_true(strstr(out, "suppressed") < strstr(out, "again"));
    free(out);

    /* nothing pending: flush is silent; then 2 allowed, 3 suppressed, flushed */
    zm_log_flush_suppressed();
    out = drain(cap);
    assert_string_equal(out, "");
    free(out);
    for (int i = 0; i < 5; i++)
        zm_log_ratelimited(ZM_LOG_WARN, NULL, "bad_request", "more");
    zm_log_flush_suppressed();
    out = drain(cap);
    assert_int_equal(count_msgs(out, "more", "bad_request"), 2);
    assert_int_equal(count_msgs(out, "suppressed 3 similar messages", "bad_request"), 1);
    free(out);

    zm_log_set_ratelimit(0);
    zm_log_ratelimited(ZM_LOG_WARN, NULL, "x", "never");
    out = drain(cap);
    assert_string_equal(out, "");
    free(out);
}

/* ---- threads ---- */

#define THREADS 4
#define LINES 2000

static void *log_thread(void *p)
{
    int id = (int)(intptr_t)p;
    char pad[300];
    memset(pad, 'p', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    zm_log_ctx_t ctx = {.worker = id, .conn_id = -1};
    for (int i = 0; i < LINES; i++) {
        zm_log(ZM_LOG_INFO, &ctx, "line %d %s", i, pad);
        zm_log_ratelimited(ZM_LOG_ERROR, &ctx, "shared_reason", "rl %d", i);
    }
    return NULL;
}

static void threads_write_whole_lines(void **state)
{
    zm_log_set_ratelimit(10);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, log_thread, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    zm_log_flush_suppressed();
    char *out = drain(cap);
    assert_int_equal(count_lines(out), THREADS * LINES + 10 + 1);
    char expect[64];
    snprintf(expect, sizeof(expect), "suppressed %d similar messages", THREADS * LINES - 10);
    assert_int_equal(count_msgs(out, expect, "shared_reason"), 1);
    int per_worker[THREADS] = {0}, rl = 0;
    char *save = NULL;
    for (char *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        json_t *j = json_loads(l, 0, NULL);
        assert_non_null(j);
        const char *m = json_string_value(json_object_get(j, "msg"));
        if (strncmp(m, "line ", 5) == 0)
            per_worker[json_integer_value(json_object_get(j, "worker"))]++;
        else if (strncmp(m, "rl ", 3) == 0)
            rl++;
        json_decref(j);
    }
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(per_worker[i], LINES);
    assert_int_equal(rl, 10);
    free(out);
    zm_log_ratelimited(ZM_LOG_ERROR, NULL, "shared_reason", "x"); /* still suppressed */
    zm_log_flush_suppressed();
    out = drain(cap);
    assert_int_equal(count_msgs(out, "suppressed 1 similar messages", "shared_reason"), 1);
    free(out);
}

static void access_log_is_its_own_sink(void **state)
{
    zm_log_kv_t kv[] = {ZM_KV_S("src", "10.0.0.1:5555"), ZM_KV_S("dst", "10.0.0.2:80"),
                        ZM_KV_U("bytes_sent", 1234), ZM_KV_I("status", 200)};
    zm_log_access(kv, ZM_ARRAY_LEN(kv)); /* disabled: nowhere */
    assert_int_equal(zm_log_set_access_fd(fileno(acc)), -1);
    zm_log_set_level(ZM_LOG_ERROR); /* the access log ignores the level */
    zm_log_access(kv, ZM_ARRAY_LEN(kv));
    char *main_out = drain(cap);
    assert_string_equal(main_out, "");
    free(main_out);
    char *out = drain(acc);
    assert_int_equal(count_lines(out), 1);
    json_t *j = json_loads(out, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_object_size(j), 5);
    assert_non_null(json_object_get(j, "ts"));
    assert_null(json_object_get(j, "level"));
    assert_string_equal(jstr(j, "src"), "10.0.0.1:5555");
    assert_int_equal(json_integer_value(json_object_get(j, "bytes_sent")), 1234);
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 200);
    json_decref(j);
    free(out);

    zm_log_set_access_format(ZM_LOG_TEXT);
    zm_log_access(kv, 2);
    out = drain(acc);
    assert_string_equal(out + 24, " src=10.0.0.1:5555 dst=10.0.0.2:80\n");
    free(out);
}

static void errno_is_preserved(void **state)
{
    errno = EPIPE;
    zm_log(ZM_LOG_ERROR, NULL, "x");
    assert_int_equal(errno, EPIPE);
    zm_log_set_fd(-1); /* discards */
    zm_log(ZM_LOG_ERROR, NULL, "x");
    assert_int_equal(errno, EPIPE);
    zm_log_set_fd(fileno(cap));
    char *out = drain(cap);
    assert_int_equal(count_lines(out), 1);
    free(out);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(json_line_has_all_fields),
        T(absent_context_is_omitted),
        T(hostile_strings_stay_one_valid_line),
        T(key_values),
        T(text_layout),
        T(long_entries_are_cut_but_valid),
        T(disabled_levels_skip_formatting),
        T(level_names),
        T(rate_limit_suppresses_and_reports),
        T(threads_write_whole_lines),
        T(access_log_is_its_own_sink),
        T(errno_is_preserved),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
