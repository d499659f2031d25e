/*
 * zm.h — the vocabulary every zmesh module shares.
 *
 * Return convention (as cqe->res): >= 0 is success or a count, a negative
 * value is -errno. ZM_AGAIN means "nothing wrong, call me when more input or
 * room exists". Set-up errors (config, certificates) carry a message and,
 * when they come from a file, its name and line, so that meshctl and the
 * daemons can print `file:line: message`.
 */
#ifndef ZM_ZM_H
#define ZM_ZM_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#define ZM_OK 0
#define ZM_AGAIN (-EAGAIN)

#define ZM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define ZM_MIN(a, b) ((a) < (b) ? (a) : (b))
#define ZM_MAX(a, b) ((a) > (b) ? (a) : (b))
#define ZM_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* A set-up error: message plus where it came from (file may be empty). */
typedef struct zm_err {
    char msg[512];
    char file[256];
    int line;
} zm_err_t;

/* Fill err (may be NULL) with a printf-style message; returns -EINVAL. */
int zm_err_set(zm_err_t *err, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* "file:line: message", or just "message" when no file is known. */
const char *zm_err_str(const zm_err_t *err, char *buf, size_t len);

struct sockaddr_in;
/* "10.1.2.3:8080" → IPv4 socket address; -EINVAL unless exactly ip:port
 * with a port in 1..65535. */
int zm_parse_ipv4_port(const char *s, struct sockaddr_in *out);

/* Monotonic clock in nanoseconds / milliseconds. */
uint64_t zm_now_ns(void);
static inline uint64_t zm_now_ms(void)
{
    return zm_now_ns() / 1000000u;
}

#endif
