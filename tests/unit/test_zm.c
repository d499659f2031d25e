/* Unit tests of zm.c: error records print as file:line: message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "zm.h"

static void err_with_file_and_line(void **state)
{
    zm_err_t err;
    char buf[600];
    assert_int_equal(zm_err_set(&err, "mesh.cfg", 12, "unknown key '%s'", "foo"), -EINVAL);
    assert_string_equal(zm_err_str(&err, buf, sizeof(buf)), "mesh.cfg:12: unknown key 'foo'");
}

static void err_without_file(void **state)
{
    zm_err_t err;
    char buf[600];
    zm_err_set(&err, NULL, 0, "no such identity");
    assert_string_equal(zm_err_str(&err, buf, sizeof(buf)), "no such identity");
}

static void clock_is_monotonic(void **state)
{
    uint64_t a = zm_now_ns(), b = zm_now_ns();
    assert_true(b >= a);
    assert_true(a > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(err_with_file_and_line),
        cmocka_unit_test(err_without_file),
        cmocka_unit_test(clock_is_monotonic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
