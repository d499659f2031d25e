/*
 * arena.h — a bump allocator for meshctl's parse trees and models.
 *
 * Everything a YAML tree or a mesh model points to (strings, nodes, small
 * arrays) is carved from one arena and released at once by
 * mc_arena_destroy, so a model never frees piecemeal and can never leak a
 * sub-object. Allocations are 16-byte aligned and zeroed. Chunks grow
 * geometrically; a request larger than a chunk gets a chunk of its own.
 * Not thread-safe: one arena belongs to one model, built by one thread.
 */
#ifndef MC_ARENA_H
#define MC_ARENA_H

#include <stddef.h>

typedef struct mc_arena_chunk mc_arena_chunk_t;

/* A zeroed mc_arena_t is a valid empty arena. */
typedef struct mc_arena {
    mc_arena_chunk_t *head; /* newest chunk first */
    size_t used;            /* bytes handed out, for limits and tests */
} mc_arena_t;

/* Zeroed memory of size bytes, or NULL when out of memory. */
void *mc_arena_alloc(mc_arena_t *a, size_t size);

/* Copies of s (NUL-terminated, len bytes + NUL for strndup); NULL on OOM.
 * strndup keeps embedded NULs: the copy is exactly len bytes plus a NUL. */
char *mc_arena_strdup(mc_arena_t *a, const char *s);
char *mc_arena_strndup(mc_arena_t *a, const char *s, size_t len);

/* printf into the arena; NULL on OOM. */
char *mc_arena_printf(mc_arena_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Releases every chunk; the arena is empty (and reusable) afterwards. */
void mc_arena_destroy(mc_arena_t *a);

#endif
