/* Keeps the test support library non-empty before any helper exists. */
typedef int zm_test_support_empty;
