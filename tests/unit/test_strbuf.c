/* Unit tests of strbuf.c: growth, printf appends, limits, sticky errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

static void zeroed_is_empty(void **state)
{
    zm_strbuf_t sb = {0};
    assert_string_equal(zm_strbuf_str(&sb), "");
    assert_null(zm_strbuf_detach(&sb, NULL));
    zm_strbuf_free(&sb);
    zm_strbuf_reset(&sb);
}

static void appends_grow(void **state)
{
    zm_strbuf_t sb = {0};
    assert_int_equal(zm_strbuf_appends(&sb, "ab"), 0);
    assert_int_equal(zm_strbuf_appendc(&sb, 'c'), 0);
    assert_int_equal(zm_strbuf_append(&sb, "dxx", 1), 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(zm_strbuf_appendf(&sb, "%03d", i), 0);
    assert_int_equal(sb.len, 4 + 3000);
    assert_memory_equal(sb.data, "abcd000001002", 13);
    assert_string_equal(sb.data + sb.len - 3, "999");
    /* a long printf that does not fit the current room */
    char big[5000];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(zm_strbuf_appendf(&sb, "<%s>", big), 0);
    assert_int_equal(sb.len, 3004 + 5001);
    assert_int_equal(sb.data[sb.len - 1], '>');
    assert_int_equal(sb.data[sb.len], '\0');
    size_t cap = sb.cap;
    zm_strbuf_reset(&sb);
    assert_string_equal(zm_strbuf_str(&sb), "");
    assert_int_equal(sb.cap, cap); /* memory kept */
    size_t len;
    zm_strbuf_appends(&sb, "x");
    char *p = zm_strbuf_detach(&sb, &len);
    assert_string_equal(p, "x");
    assert_int_equal(len, 1);
    assert_null(sb.data);
    free(p);
}

static void limit_is_sticky_error(void **state)
{
    zm_strbuf_t sb = {.limit = 8};
    assert_int_equal(zm_strbuf_appends(&sb, "12345"), 0);
    assert_int_equal(zm_strbuf_appendf(&sb, "%s", "6789"), -ENOBUFS);
    assert_string_equal(zm_strbuf_str(&sb), "12345"); /* unchanged */
    assert_int_equal(zm_strbuf_appends(&sb, "678"), 0);
    assert_int_equal(zm_strbuf_appends(&sb, "9"), -ENOBUFS);
    assert_string_equal(zm_strbuf_str(&sb), "12345678");
    assert_int_equal(zm_strbuf_error(&sb), -ENOBUFS);
    zm_strbuf_reset(&sb);
    assert_int_equal(zm_strbuf_error(&sb), 0);
    zm_strbuf_free(&sb);
    assert_int_equal(sb.limit, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(zeroed_is_empty),
        cmocka_unit_test(appends_grow),
        cmocka_unit_test(limit_is_sticky_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
