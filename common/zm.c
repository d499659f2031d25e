/*
 * zm.c — shared helpers of zm.h: error records and the monotonic clock.
 */
#include "zm.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int zm_err_set(zm_err_t *err, const char *file, int line, const char *fmt, ...)
{
    if (!err)
        return -EINVAL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    snprintf(err->file, sizeof(err->file), "%s", file ? file : "");
    err->line = line;
    return -EINVAL;
}

const char *zm_err_str(const zm_err_t *err, char *buf, size_t len)
{
    if (err->file[0] && err->line > 0)
        snprintf(buf, len, "%s:%d: %s", err->file, err->line, err->msg);
    else if (err->file[0])
        snprintf(buf, len, "%s: %s", err->file, err->msg);
    else
        snprintf(buf, len, "%s", err->msg);
    return buf;
}

uint64_t zm_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
