/* Unit tests of config/yaml_tree.c: node kinds and lines, scalar styles,
 * anchors and merge keys, empty documents, limits, errors as file:line, and
 * folder walking in sorted order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "yaml_tree.h"

static mc_yaml_set_t *load(const char *text)
{
    mc_yaml_set_t *s = NULL;
    zm_err_t err = {0};
    assert_int_equal(mc_yaml_set_new(&s), 0);
    int rc = mc_yaml_load_string(s, "t.yaml", text, strlen(text), &err);
    if (rc != 0)
        fail_msg("unexpected error: %s:%d: %s", err.file, err.line, err.msg);
    return s;
}

/* Loads text expecting a failure; returns "file:line: message". */
static const char *load_fail(const char *text, char *buf, size_t len)
{
    mc_yaml_set_t *s = NULL;
    zm_err_t err = {0};
    assert_int_equal(mc_yaml_set_new(&s), 0);
    assert_true(mc_yaml_load_string(s, "bad.yaml", text, strlen(text), &err) < 0);
    mc_yaml_set_free(&s);
    return zm_err_str(&err, buf, len);
}

static void kinds_lines_styles(void **state)
{
    mc_yaml_set_t *s = load("# comment\n"
                            "a: 80\n"
                            "b: \"80\"\n"
                            "c: true\n"
                            "d: 'true'\n"
                            "e:\n"
                            "f: ~\n"
                            "g:\n"
                            "  - x\n"
                            "  - {k: v}\n"
                            "h: !!str 12\n"
                            "i: |\n"
                            "  block\n"
                            "j: -5\n");
    assert_int_equal(s->n_docs, 1);
    const mc_yaml_node_t *r = s->docs[0].root;
    assert_int_equal(r->kind, MC_YAML_MAP);
    assert_int_equal(r->line, 2);
    assert_string_equal(r->file, "t.yaml");
    assert_int_equal(r->n, 10);
    long long v = 0;
    bool bv = false;
    const mc_yaml_node_t *a = mc_yaml_get(r, "a"), *b = mc_yaml_get(r, "b");
    assert_true(a->plain);
    assert_int_equal(mc_yaml_int(a, &v), 0);
    assert_int_equal(v, 80);
    assert_false(b->plain);
    assert_int_equal(mc_yaml_int(b, &v), -EINVAL);
    assert_string_equal(mc_yaml_str(b), "80");
    assert_int_equal(b->line, 3);
    assert_int_equal(mc_yaml_bool(mc_yaml_get(r, "c"), &bv), 0);
    assert_true(bv);
    assert_false(mc_yaml_is_bool(mc_yaml_get(r, "d")));
    assert_int_equal(mc_yaml_get(r, "e")->kind, MC_YAML_NULL);
    assert_int_equal(mc_yaml_get(r, "f")->kind, MC_YAML_NULL);
    const mc_yaml_node_t *g = mc_yaml_get(r, "g");
    assert_int_equal(g->kind, MC_YAML_SEQ);
    assert_int_equal(g->n, 2);
    assert_int_equal(g->items[0]->line, 9);
    assert_int_equal(g->items[1]->kind, MC_YAML_MAP);
    assert_int_equal(g->items[1]->line, 10);
    assert_string_equal(mc_yaml_str(mc_yaml_get(g->items[1], "k")), "v");
    assert_false(mc_yaml_is_int(mc_yaml_get(r, "h")));
    assert_string_equal(mc_yaml_str(mc_yaml_get(r, "i")), "block\n");
    assert_int_equal(mc_yaml_int(mc_yaml_get(r, "j"), &v), 0);
    assert_int_equal(v, -5);
    assert_null(mc_yaml_get(r, "zz"));
    assert_null(mc_yaml_get(g, "x"));
    assert_string_equal(mc_yaml_kind_name(g), "sequence");
    mc_yaml_set_free(&s);
    assert_null(s);
}

static void documents_and_paths(void **state)
{
    mc_yaml_set_t *s = load("---\n"
                            "# only a comment\n"
                            "---\n"
                            "a: {b: {c: 3}}\n"
                            "---\n"
                            "---\n"
                            "- 1\n"
                            "...\n"
                            "---\n"
                            "null\n");
    assert_int_equal(s->n_docs, 2);
    assert_int_equal(s->docs[0].line, 4);
    const mc_yaml_node_t *c = mc_yaml_path(s->docs[0].root, "a.b.c");
    assert_non_null(c);
    assert_string_equal(c->str, "3");
    assert_null(mc_yaml_path(s->docs[0].root, "a.x.c"));
    assert_null(mc_yaml_path(s->docs[0].root, "a.b.c.d"));
    assert_int_equal(s->docs[1].root->kind, MC_YAML_SEQ);
    assert_int_equal(s->docs[1].line, 7);
    mc_yaml_set_free(&s);
}

static void anchors_and_merges(void **state)
{
    mc_yaml_set_t *s = load("base: &b {x: 1, y: 2}\n"
                            "other: &o {y: 20, z: 30}\n"
                            "m1:\n"
                            "  <<: *b\n"
                            "  y: 5\n"
                            "m2:\n"
                            "  <<: [*o, *b]\n"
                            "s: &s scalar\n"
                            "t: *s\n"
                            "q:\n"
                            "  \"<<\": not-a-merge\n");
    const mc_yaml_node_t *r = s->docs[0].root;
    const mc_yaml_node_t *m1 = mc_yaml_get(r, "m1"), *m2 = mc_yaml_get(r, "m2");
    assert_int_equal(m1->n, 2);
    assert_string_equal(m1->pairs[0].key->str, "y"); /* explicit keys first */
    assert_string_equal(mc_yaml_get(m1, "y")->str, "5");
    assert_string_equal(mc_yaml_get(m1, "x")->str, "1");
    assert_int_equal(m2->n, 3);
    assert_string_equal(mc_yaml_get(m2, "y")->str, "20"); /* earlier source wins */
    assert_string_equal(mc_yaml_get(m2, "x")->str, "1");
    assert_string_equal(mc_yaml_get(m2, "z")->str, "30");
    assert_ptr_equal(mc_yaml_get(r, "t"), mc_yaml_get(r, "s")); /* shared, not copied */
    assert_string_equal(mc_yaml_get(mc_yaml_get(r, "q"), "<<")->str, "not-a-merge");
    mc_yaml_set_free(&s);
}

static void errors_have_file_and_line(void **state)
{
    char buf[600];
    assert_string_equal(load_fail("a: 1\nb: [1, 2\nc: 3\n", buf, sizeof(buf)),
                        "bad.yaml:3: did not find expected ',' or ']' (while parsing a flow "
                        "sequence that starts at line 2)");
    assert_string_equal(load_fail("a:\n  b: 1\n c: 2\n", buf, sizeof(buf)),
                        "bad.yaml:3: did not find expected key (while parsing a block mapping that "
                        "starts at line 1)");
    assert_string_equal(load_fail("a: 1\nb: 2\na: 3\n", buf, sizeof(buf)),
                        "bad.yaml:3: duplicate key \"a\"");
    assert_string_equal(load_fail("a: *nope\n", buf, sizeof(buf)),
                        "bad.yaml:1: unknown anchor *nope");
    assert_string_equal(load_fail("x: &a [1]\nm:\n  <<: *a\n", buf, sizeof(buf)),
                        "bad.yaml:1: a merge key (<<) needs a map or a list of maps");
    assert_string_equal(load_fail("? [a]\n: 1\n", buf, sizeof(buf)),
                        "bad.yaml:1: a map key must be a scalar, not a sequence");
    assert_string_equal(load_fail("a: 1\n\tb: 2\n", buf, sizeof(buf)),
                        "bad.yaml:2: found a tab character that violates indentation (while "
                        "scanning a plain scalar that starts at line 1)");
}

static void depth_is_bounded(void **state)
{
    char text[400], buf[600];
    size_t n = 0;
    for (int i = 0; i < 70; i++)
        text[n++] = '[';
    for (int i = 0; i < 70; i++)
        text[n++] = ']';
    text[n] = 0;
    assert_string_equal(load_fail(text, buf, sizeof(buf)),
                        "bad.yaml:1: nesting deeper than 64 levels");
    /* 64 levels are fine */
    memset(text, 0, sizeof(text));
    for (int i = 0; i < 64; i++)
        text[i] = '[', text[64 + i] = ']';
    mc_yaml_set_t *s = load(text);
    assert_int_equal(s->docs[0].root->size, 64);
    mc_yaml_set_free(&s);
}

static void billion_laughs_is_refused(void **state)
{
    char buf[600];
    const char *lol = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                      "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                      "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                      "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                      "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                      "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                      "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
                      "h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n";
    assert_string_equal(load_fail(lol, buf, sizeof(buf)),
                        "bad.yaml:6: document too large once aliases are expanded (over 1000000 "
                        "nodes)");
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void folders_sorted_and_recursive(void **state)
{
    char dir[] = "/tmp/zmt-yaml-XXXXXX", p[300];
    assert_non_null(mkdtemp(dir));
    snprintf(p, sizeof(p), "%s/b.yaml", dir);
    write_file(p, "n: b\n");
    snprintf(p, sizeof(p), "%s/a.yml", dir);
    write_file(p, "n: a\n---\nn: a2\n");
    snprintf(p, sizeof(p), "%s/c.txt", dir);
    write_file(p, "n: [not yaml to us\n");
    snprintf(p, sizeof(p), "%s/sub", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/sub/0.yaml", dir);
    write_file(p, "n: sub\n");

    mc_yaml_set_t *s = NULL;
    zm_err_t err = {0};
    assert_int_equal(mc_yaml_set_new(&s), 0);
    assert_int_equal(mc_yaml_load_path(s, dir, &err), 0);
    assert_int_equal(s->n_docs, 4);
    const char *want[] = {"a", "a2", "b", "sub"};
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(mc_yaml_get(s->docs[i].root, "n")->str, want[i]);
    snprintf(p, sizeof(p), "%s/sub/0.yaml", dir);
    assert_string_equal(s->docs[3].file, p);
    /* a file given by name loads whatever its extension; errors name it */
    snprintf(p, sizeof(p), "%s/c.txt", dir);
    assert_true(mc_yaml_load_path(s, p, &err) < 0);
    assert_string_equal(err.file, p);
    assert_int_equal(err.line, 2);
    snprintf(p, sizeof(p), "%s/missing.yaml", dir);
    assert_true(mc_yaml_load_path(s, p, &err) < 0);
    assert_string_equal(err.msg, "cannot open: No such file or directory");
    assert_int_equal(err.line, 0);
    mc_yaml_set_free(&s);

    const char *names[] = {"b.yaml", "a.yml", "c.txt", "sub/0.yaml", "sub"};
    for (size_t i = 0; i < ZM_ARRAY_LEN(names); i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
        assert_int_equal(remove(p), 0);
    }
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kinds_lines_styles),
        cmocka_unit_test(documents_and_paths),
        cmocka_unit_test(anchors_and_merges),
        cmocka_unit_test(errors_have_file_and_line),
        cmocka_unit_test(depth_is_bounded),
        cmocka_unit_test(billion_laughs_is_refused),
        cmocka_unit_test(folders_sorted_and_recursive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
