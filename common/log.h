/*
 * log.h — leveled, structured logging for the daemons, plus the access log.
 *
 * One process-wide logger. Each entry is formatted into a stack buffer
 * (no malloc) and written with a single write() to the log fd (default 2,
 * stderr), so lines from different threads never interleave (a pipe
 * guarantees this up to PIPE_BUF = 4096 bytes; entries are capped at
 * ZM_LOG_LINE_MAX and a longer message is cut and marked "..."). Control
 * characters in messages and values are escaped, so one entry is always
 * exactly one line: a peer cannot forge log lines.
 *
 * Formats: text, for people:
 *   2024-05-01T12:00:00.123Z WARN  [w1 c42 peer=spiffe://td/ns/a/sa/b] TLS handshake: bad cert
 * reason=expired or JSON lines, one object per line, keys in this order:
 *   {"ts":"2024-05-01T12:00:00.123Z","level":"warn","msg":"bad cert","worker":1,
 *    "conn":42,"peer":"spiffe://td/ns/a/sa/b","action":"TLS handshake","reason":"expired"}
 * Timestamps are UTC, RFC 3339 with milliseconds.
 *
 * zm_log() and friends are macros that test the level before evaluating any
 * argument, so a disabled debug line costs one relaxed load and a compare.
 * The level can change at run time from any thread (zm_log_set_level).
 *
 * Rate limiting (zm_log_ratelimited) is per reason: at most
 * zm_log_set_ratelimit() entries per reason per second; the rest are counted
 * and reported as "suppressed K similar messages" with the next entry of that
 * reason after the second is over (or by zm_log_flush_suppressed()). Reasons
 * are compared by content and must be string constants (the pointer is kept).
 * State is a fixed table of atomics: no lock, no allocation.
 *
 * The access log is a separate sink (its own fd and format, default JSON,
 * disabled until zm_log_set_access_fd()), not subject to the level.
 *
 * Threading: every function may be called from any thread. The logger does
 * not own its fds: the caller keeps them open while logging may happen. All
 * entry points preserve errno.
 */
#ifndef ZM_LOG_H
#define ZM_LOG_H

#include "zm.h"

#include <stdatomic.h>
#include <stdbool.h>

#define ZM_LOG_LINE_MAX 4096
#define ZM_LOG_DEFAULT_RATELIMIT 10

typedef enum zm_log_level {
    ZM_LOG_ERROR = 0,
    ZM_LOG_WARN,
    ZM_LOG_INFO,
    ZM_LOG_DEBUG,
    ZM_LOG_TRACE,
} zm_log_level_t;

typedef enum zm_log_format {
    ZM_LOG_TEXT = 0,
    ZM_LOG_JSON,
} zm_log_format_t;

/* What the entry is about. Any field may be absent: -1 for the numbers, NULL
 * for the strings (ZM_LOG_CTX_INIT gives an all-absent context). A NULL
 * context pointer means no context. */
typedef struct zm_log_ctx {
    int worker;         /* worker index */
    int64_t conn_id;    /* connection id */
    const char *peer;   /* peer identity, e.g. a SPIFFE id, or an address */
    const char *action; /* what it was doing: "TLS handshake", "CONNECT 10.1.0.5:8080" */
} zm_log_ctx_t;

#define ZM_LOG_CTX_INIT                                                                            \
    {                                                                                              \
        .worker = -1, .conn_id = -1, .peer = NULL, .action = NULL                                  \
    }

/* A typed structured field; build with the ZM_KV_* macros. */
typedef enum zm_log_kv_type {
    ZM_LOG_KV_STR,
    ZM_LOG_KV_INT,
    ZM_LOG_KV_UINT,
    ZM_LOG_KV_DOUBLE,
    ZM_LOG_KV_BOOL,
} zm_log_kv_type_t;

typedef struct zm_log_kv {
    const char *key;
    zm_log_kv_type_t type;
    union {
        const char *s; /* NULL renders as JSON null / text "-" */
        int64_t i;
        uint64_t u;
        double d; /* non-finite values render as JSON null */
        bool b;
    } v;
} zm_log_kv_t;

#define ZM_KV_S(k, x) ((zm_log_kv_t){.key = (k), .type = ZM_LOG_KV_STR, .v.s = (x)})
#define ZM_KV_I(k, x) ((zm_log_kv_t){.key = (k), .type = ZM_LOG_KV_INT, .v.i = (x)})
#define ZM_KV_U(k, x) ((zm_log_kv_t){.key = (k), .type = ZM_LOG_KV_UINT, .v.u = (x)})
#define ZM_KV_D(k, x) ((zm_log_kv_t){.key = (k), .type = ZM_LOG_KV_DOUBLE, .v.d = (x)})
#define ZM_KV_B(k, x) ((zm_log_kv_t){.key = (k), .type = ZM_LOG_KV_BOOL, .v.b = (x)})

/* The current threshold; read it through zm_log_enabled(). */
extern _Atomic int zm_log_threshold;

static inline bool zm_log_enabled(zm_log_level_t level)
{
    return (int)level <= atomic_load_explicit(&zm_log_threshold, memory_order_relaxed);
}

/* zm_log(level, ctx, fmt, ...): printf-style message. */
#define zm_log(level, ctx, ...)                                                                    \
    do {                                                                                           \
        if (zm_log_enabled(level))                                                                 \
            zm_log_emit((level), (ctx), __VA_ARGS__);                                              \
    } while (0)

/* zm_logkv(level, ctx, msg, "key", "value", ..., NULL): string fields. */
#define zm_logkv(level, ctx, msg, ...)                                                             \
    do {                                                                                           \
        if (zm_log_enabled(level))                                                                 \
            zm_log_emitkv((level), (ctx), (msg), __VA_ARGS__);                                     \
    } while (0)

/* zm_logf(level, ctx, msg, kv_array, n): typed fields. */
#define zm_logf(level, ctx, msg, kv, n)                                                            \
    do {                                                                                           \
        if (zm_log_enabled(level))                                                                 \
            zm_log_emit_fields((level), (ctx), (msg), (kv), (n));                                  \
    } while (0)

/* zm_log_ratelimited(level, ctx, reason, fmt, ...): for per-request errors.
 * The entry carries a "reason" field. */
#define zm_log_ratelimited(level, ctx, reason, ...)                                                \
    do {                                                                                           \
        if (zm_log_enabled(level))                                                                 \
            zm_log_emit_ratelimited((level), (ctx), (reason), __VA_ARGS__);                        \
    } while (0)

/* ---- configuration ---- */

void zm_log_set_level(zm_log_level_t level);
zm_log_level_t zm_log_get_level(void);

/* "error", "warn" (or "warning"), "info", "debug", "trace", any case:
 * the level, or -EINVAL. */
int zm_log_level_parse(const char *s);

/* "error", "warn", ...; "?" for an out-of-range value. */
const char *zm_log_level_name(zm_log_level_t level);

void zm_log_set_format(zm_log_format_t fmt);
/* Where entries go (not owned); -1 discards. Returns the previous fd. */
int zm_log_set_fd(int fd);

/* Access log sink (not owned); -1 (the default) disables it. Returns the
 * previous fd. Its format defaults to JSON. */
int zm_log_set_access_fd(int fd);
void zm_log_set_access_format(zm_log_format_t fmt);

/* Entries allowed per reason per second (0 suppresses all rate-limited ones). */
void zm_log_set_ratelimit(unsigned per_second);

/* Report every pending suppressed count now (e.g. from a 1 s timer). */
void zm_log_flush_suppressed(void);

/* Tests: replace the rate limiter's clock (NULL restores zm_now_ns) and
 * forget every reason's state. */
void zm_log_set_clock(uint64_t (*now_ns)(void));

/* Entries that could not be written (write failed), since start. */
uint64_t zm_log_write_failures(void);

/* ---- the functions behind the macros (they do not test the level) ---- */

void zm_log_emit(zm_log_level_t level, const zm_log_ctx_t *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void zm_log_emitkv(zm_log_level_t level, const zm_log_ctx_t *ctx, const char *msg, ...)
    __attribute__((sentinel));
void zm_log_emit_fields(zm_log_level_t level, const zm_log_ctx_t *ctx, const char *msg,
                        const zm_log_kv_t *kv, size_t n);
void zm_log_emit_ratelimited(zm_log_level_t level, const zm_log_ctx_t *ctx, const char *reason,
                             const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* One access-log entry: "ts" then the fields (no level, no msg). */
void zm_log_access(const zm_log_kv_t *kv, size_t n);

#endif
