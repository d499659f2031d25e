/*
 * strbuf.c — growable string buffer (see strbuf.h for the contract).
 *
 * Growth doubles the capacity (minimum 64 bytes) so that n appends cost
 * O(n) amortised; a failed growth leaves the old block untouched.
 */
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(zm_strbuf_t *sb, int err)
{
    if (!sb->err)
        sb->err = err;
    return err;
}

int zm_strbuf_reserve(zm_strbuf_t *sb, size_t extra)
{
    if (extra > SIZE_MAX - sb->len - 1)
        return fail(sb, -ENOMEM);
    size_t need = sb->len + extra + 1;
    if (sb->limit && sb->len + extra > sb->limit)
        return fail(sb, -ENOBUFS);
    if (need <= sb->cap)
        return 0;
    size_t cap = sb->cap ? sb->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(sb->data, cap);
    if (!p)
        return fail(sb, -ENOMEM);
    if (!sb->data)
        p[0] = '\0';
    sb->data = p;
    sb->cap = cap;
    return 0;
}

int zm_strbuf_append(zm_strbuf_t *sb, const void *p, size_t n)
{
    int rc = zm_strbuf_reserve(sb, n);
    if (rc < 0)
        return rc;
    if (n)
        memcpy(sb->data + sb->len, p, n);
    sb->len += n;
    sb->data[sb->len] = '\0';
    return 0;
}

int zm_strbuf_appends(zm_strbuf_t *sb, const char *s)
{
    return zm_strbuf_append(sb, s, strlen(s));
}

int zm_strbuf_appendc(zm_strbuf_t *sb, char c)
{
    return zm_strbuf_append(sb, &c, 1);
}

int zm_strbuf_vappendf(zm_strbuf_t *sb, const char *fmt, va_list ap)
{
    /* Try the space we already have first: most appends fit. */
    size_t room = sb->cap > sb->len ? sb->cap - sb->len : 0;
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(room ? sb->data + sb->len : NULL, room, fmt, cp);
    va_end(cp);
    if (n < 0)
        return fail(sb, -EINVAL);
    if ((size_t)n < room) {
        if (sb->limit && sb->len + (size_t)n > sb->limit) {
            sb->data[sb->len] = '\0';
            return fail(sb, -ENOBUFS);
        }
        sb->len += (size_t)n;
        return 0;
    }
    if (room)
        sb->data[sb->len] = '\0'; /* undo the truncated attempt */
    int rc = zm_strbuf_reserve(sb, (size_t)n);
    if (rc < 0)
        return rc;
    vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
    sb->len += (size_t)n;
    return 0;
}

int zm_strbuf_appendf(zm_strbuf_t *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = zm_strbuf_vappendf(sb, fmt, ap);
    va_end(ap);
    return rc;
}

void zm_strbuf_reset(zm_strbuf_t *sb)
{
    sb->len = 0;
    sb->err = 0;
    if (sb->data)
        sb->data[0] = '\0';
}

void zm_strbuf_free(zm_strbuf_t *sb)
{
    free(sb->data);
    memset(sb, 0, sizeof(*sb));
}

char *zm_strbuf_detach(zm_strbuf_t *sb, size_t *len)
{
    char *p = sb->data;
    if (len)
        *len = sb->len;
    size_t limit = sb->limit;
    memset(sb, 0, sizeof(*sb));
    sb->limit = limit;
    return p;
}
