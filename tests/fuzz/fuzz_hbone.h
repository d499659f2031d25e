/*
 * fuzz_hbone.h — what the two HBONE fuzz drivers share: pulling output the
 * way hbone_io does, and the zero-copy writer (zm_hbone_set_writer) that
 * half of their inputs run with, so DATA frames also take that path.
 */
#ifndef ZM_FUZZ_HBONE_H
#define ZM_FUZZ_HBONE_H

#include "fuzz.h"
#include "hbone.h"

/* Pulls output until there is none, touching every byte (so a sanitizer
 * checks the pointer) and bounding the loop (a livelock is a bug). */
static inline void fuzz_hbone_drain(zm_hbone_conn_t *c)
{
    unsigned sum = 0;
    for (int i = 0;; i++) {
        FUZZ_CHECK(i < 100000);
        const uint8_t *p = NULL;
        ssize_t n = zm_hbone_output(c, &p);
        FUZZ_CHECK(n >= 0);
        if (n == 0)
            break;
        FUZZ_CHECK(p);
        for (ssize_t k = 0; k < n; k++)
            sum += p[k];
    }
    (void)sum;
}

/* The writer: gets DATA frames (and frames coalesced before one), every
 * byte touched; every seventh call says the transport is full (nghttp2
 * must stop and pick up again on the next output call). */
static inline int fuzz_hbone_writer(void *ctx, const struct iovec *iov, int n)
{
    unsigned *calls = ctx, sum = 0;
    FUZZ_CHECK(n >= 1 && iov[0].iov_len > 0);
    for (int i = 0; i < n; i++)
        for (size_t k = 0; k < iov[i].iov_len; k++)
            sum += ((const uint8_t *)iov[i].iov_base)[k];
    (void)sum;
    return ++*calls % 7 == 0;
}

#endif
