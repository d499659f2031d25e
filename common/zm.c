/*
 * zm.c — shared helpers of zm.h: error records and the monotonic clock.
 */
#include "zm.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
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

int zm_parse_ipv4_port(const char *s, struct sockaddr_in *out)
{
    char host[INET_ADDRSTRLEN];
    const char *colon = s ? strrchr(s, ':') : NULL;
    if (!colon || colon == s || (size_t)(colon - s) >= sizeof(host))
        return -EINVAL;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == 0 || *end || port <= 0 || port > 65535)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &out->sin_addr) == 1 ? 0 : -EINVAL;
}
