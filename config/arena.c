/*
 * arena.c — chunked bump allocator (see arena.h).
 *
 * Chunks are singly linked, newest first; only the newest chunk is bumped.
 * A request that does not fit starts a new chunk of max(2 * last, request)
 * bytes (capped growth at 1 MiB per chunk beyond that), so the number of
 * chunks stays logarithmic for typical inputs.
 */
#include "arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 16u
#define ARENA_FIRST 4096u
#define ARENA_MAX_CHUNK (1u << 20)

struct mc_arena_chunk {
    mc_arena_chunk_t *next;
    size_t size; /* usable bytes in data */
    size_t off;
    _Alignas(16) unsigned char data[];
};

void *mc_arena_alloc(mc_arena_t *a, size_t size)
{
    size_t need = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (need < size)
        return NULL;
    if (need == 0)
        need = ARENA_ALIGN;
    mc_arena_chunk_t *c = a->head;
    if (c == NULL || c->size - c->off < need) {
        size_t sz = c ? c->size * 2 : ARENA_FIRST;
        if (sz > ARENA_MAX_CHUNK)
            sz = ARENA_MAX_CHUNK;
        if (sz < need)
            sz = need;
        if (sz > SIZE_MAX - sizeof(*c))
            return NULL;
        mc_arena_chunk_t *n = malloc(sizeof(*n) + sz);
        if (n == NULL)
            return NULL;
        n->size = sz;
        n->off = 0;
        /* A big one-off chunk goes behind the current one so the current
         * chunk's free space stays usable. */
        if (c != NULL && need > c->size) {
            n->next = c->next;
            c->next = n;
        } else {
            n->next = c;
            a->head = n;
        }
        c = n;
    }
    void *p = c->data + c->off;
    c->off += need;
    a->used += need;
    memset(p, 0, need);
    return p;
}

char *mc_arena_strndup(mc_arena_t *a, const char *s, size_t len)
{
    if (len == SIZE_MAX)
        return NULL;
    char *p = mc_arena_alloc(a, len + 1);
    if (p != NULL && len > 0)
        memcpy(p, s, len);
    return p;
}

char *mc_arena_strdup(mc_arena_t *a, const char *s)
{
    return mc_arena_strndup(a, s, strlen(s));
}

char *mc_arena_printf(mc_arena_t *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *p = mc_arena_alloc(a, (size_t)n + 1);
    if (p == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void mc_arena_destroy(mc_arena_t *a)
{
    mc_arena_chunk_t *c = a->head;
    while (c != NULL) {
        mc_arena_chunk_t *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->used = 0;
}
