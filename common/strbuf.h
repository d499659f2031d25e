/*
 * strbuf.h — a small growable, always NUL-terminated string buffer.
 *
 * Owns one heap block (data, cap). A zeroed zm_strbuf_t is a valid empty
 * buffer; data stays NULL until the first append. After any successful
 * append data[len] == '\0'. An append that fails (-ENOMEM, or the buffer's
 * optional size limit) leaves the contents as they were before that call, so
 * a caller can append many pieces and check only the last result via
 * zm_strbuf_error(): the first failure is remembered (sticky) until reset.
 *
 * zm_strbuf_reset() keeps the memory for reuse (the warm-up pattern: after a
 * few rounds no append allocates); zm_strbuf_free() releases it.
 *
 * Threading: none; one owner at a time.
 */
#ifndef ZM_STRBUF_H
#define ZM_STRBUF_H

#include "zm.h"

#include <stdarg.h>

typedef struct zm_strbuf {
    char *data;   /* NULL or NUL-terminated contents */
    size_t len;   /* bytes before the NUL */
    size_t cap;   /* bytes allocated at data */
    size_t limit; /* 0 = unlimited; otherwise len never exceeds it (-ENOBUFS) */
    int err;      /* first failure since the last reset, 0 if none */
} zm_strbuf_t;

/* Make room for `extra` more bytes (plus the NUL). 0 or -ENOMEM/-ENOBUFS. */
int zm_strbuf_reserve(zm_strbuf_t *sb, size_t extra);

/* Append n bytes (may contain NULs, though then it is no longer a C string). */
int zm_strbuf_append(zm_strbuf_t *sb, const void *p, size_t n);

/* Append a C string. */
int zm_strbuf_appends(zm_strbuf_t *sb, const char *s);

/* Append one byte. */
int zm_strbuf_appendc(zm_strbuf_t *sb, char c);

/* printf-style append. */
int zm_strbuf_appendf(zm_strbuf_t *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int zm_strbuf_vappendf(zm_strbuf_t *sb, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Contents as a C string; "" when nothing was ever appended. */
static inline const char *zm_strbuf_str(const zm_strbuf_t *sb)
{
    return sb->data ? sb->data : "";
}

/* First failure since the last reset (0 if every append succeeded). */
static inline int zm_strbuf_error(const zm_strbuf_t *sb)
{
    return sb->err;
}

/* Empty the buffer (len 0, error cleared) and keep its memory. */
void zm_strbuf_reset(zm_strbuf_t *sb);

/* Release the memory; the buffer is zeroed (limit included) and reusable. */
void zm_strbuf_free(zm_strbuf_t *sb);

/* Hand the block to the caller (free() it) and leave sb empty. Returns NULL
 * when nothing was appended; *len (optional) gets the length. */
char *zm_strbuf_detach(zm_strbuf_t *sb, size_t *len);

#endif
