/*
 * log.c — the process-wide logger (see log.h for the contract).
 *
 * An entry is built in a fixed stack buffer by a tiny line writer that never
 * overruns: it keeps LINE_TAIL bytes in reserve so that, when the content
 * does not fit, it can still close an open JSON string with "...", close the
 * object and end the line. A field either fits whole (or with its string
 * value cut) or is left out, so a truncated JSON line still parses.
 *
 * Strings are escaped one UTF-8 sequence at a time: valid sequences are
 * copied, invalid bytes become \ufffd (JSON) or \xHH (text), so the output is
 * always valid UTF-8 and parseable JSON whatever a peer sent.
 *
 * Rate limiter: RL_SLOTS slots claimed lock-free by CAS on the reason
 * pointer (open addressing on a hash of the reason's text). A slot's state is
 * one 64-bit word, (second << 32) | entries in that second, advanced by CAS;
 * suppressed entries only bump a counter, which whoever opens the next
 * window (or zm_log_flush_suppressed) exchanges with 0 and reports. When
 * every slot is taken, further reasons share one "other" slot.
 */
#include "log.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LINE_TAIL 16
#define LINE_CAP (ZM_LOG_LINE_MAX - LINE_TAIL)
#define MSG_MAX 2048
#define KV_MAX 32
#define RL_SLOTS 256

typedef uint64_t (*clock_fn)(void);

_Atomic int zm_log_threshold = ZM_LOG_INFO;
static _Atomic int log_fd = 2;
static _Atomic int log_format = ZM_LOG_TEXT;
static _Atomic int access_fd = -1;
static _Atomic int access_format = ZM_LOG_JSON;
static _Atomic unsigned rl_per_sec = ZM_LOG_DEFAULT_RATELIMIT;
static _Atomic uint64_t write_failures;
static _Atomic(clock_fn) rl_clock = zm_now_ns;

struct rl_slot {
    _Atomic(const char *) key;
    _Atomic uint64_t state; /* (second << 32) | count */
    _Atomic uint64_t suppressed;
    _Atomic int level; /* of the last suppressed entry, for the report */
};

static struct rl_slot rl_table[RL_SLOTS];
static struct rl_slot rl_other = {.key = "other"};

static const char *const level_lower[] = {"error", "warn", "info", "debug", "trace"};
static const char *const level_text[] = {"ERROR", "WARN ", "INFO ", "DEBUG", "TRACE"};

/* ---- line writer ---- */

struct line {
    char buf[ZM_LOG_LINE_MAX];
    size_t len;
    bool full; /* something did not fit; nothing more is added */
};

/* Append within LINE_CAP; all or nothing. */
static bool put(struct line *l, const char *s, size_t n)
{
    if (l->full || l->len + n > LINE_CAP) {
        l->full = true;
        return false;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
    return true;
}

static bool puts_(struct line *l, const char *s)
{
    return put(l, s, strlen(s));
}

/* Append into the reserved tail: for closing what is open. */
static void put_tail(struct line *l, const char *s)
{
    size_t n = strlen(s);
    if (l->len + n <= sizeof(l->buf)) {
        memcpy(l->buf + l->len, s, n);
        l->len += n;
    }
}

static bool putf(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool putf(struct line *l, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    return n > 0 && (size_t)n < sizeof(tmp) && put(l, tmp, (size_t)n);
}

/* Length of the valid UTF-8 sequence at s (>= 2 bytes), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned c = s[0];
    size_t n;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    for (size_t i = 1; i < n; i++) { /* a NUL fails this test: no overread */
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
        return 0;
    if (n == 4 && (cp < 0x10000 || cp > 0x10ffff))
        return 0;
    return n;
}

enum { ESC_JSON = 1, ESC_QUOTED = 2 };

/* Escape s (see the file comment). If it does not fit, end with "..." and
 * mark the line full. Returns false when cut. */
static bool put_esc(struct line *l, const char *str, int mode)
{
    const unsigned char *s = (const unsigned char *)str;
    bool json = mode & ESC_JSON, quoted = (mode & (ESC_JSON | ESC_QUOTED)) != 0;
    while (*s) {
        char unit[8];
        const char *p = unit;
        size_t n = 0, adv = 1;
        unsigned c = *s;
        if (c >= 0x80) {
            adv = utf8_seq(s);
            if (adv) {
                p = (const char *)s;
                n = adv;
            } else {
                adv = 1;
                n = (size_t)snprintf(unit, sizeof(unit), json ? "\\ufffd" : "\\x%02x", c);
            }
        } else if ((c == '"' || c == '\\') && quoted) {
            unit[0] = '\\', unit[1] = (char)c, n = 2;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            unit[0] = '\\', unit[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't', n = 2;
        } else if (c < 0x20 || c == 0x7f) {
            n = (size_t)snprintf(unit, sizeof(unit), json ? "\\u%04x" : "\\x%02x", c);
        } else {
            p = (const char *)s;
            n = 1;
        }
        if (!put(l, p, n)) {
            put_tail(l, "...");
            return false;
        }
        s += adv;
    }
    return true;
}

static void put_json_str(struct line *l, const char *s)
{
    if (!s) {
        puts_(l, "null");
        return;
    }
    if (!put(l, "\"", 1))
        return;
    put_esc(l, s, ESC_JSON);
    put_tail(l, "\""); /* always close: the reserve has room */
}

/* Text values are bare unless they would be ambiguous. */
static void put_text_value(struct line *l, const char *s)
{
    if (!s) {
        put(l, "-", 1);
        return;
    }
    bool quote = !*s;
    for (const unsigned char *p = (const unsigned char *)s; *p && !quote; p++)
        quote = *p <= ' ' || *p == '"' || *p == '=' || *p == 0x7f;
    if (!quote) {
        put_esc(l, s, 0);
        return;
    }
    if (!put(l, "\"", 1))
        return;
    put_esc(l, s, ESC_QUOTED);
    put_tail(l, "\"");
}

static void put_double(struct line *l, double d, bool json)
{
    char buf[40];
    if (!isfinite(d)) {
        puts_(l, json ? "null" : (isnan(d) ? "NaN" : d > 0 ? "+Inf" : "-Inf"));
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, d);
        if (prec == 17 || strtod(buf, NULL) == d)
            break;
    }
    puts_(l, buf);
}

/* One field. Left out entirely when its key does not fit. */
static void put_kv(struct line *l, const zm_log_kv_t *kv, bool json, bool first)
{
    if (!kv->key || l->full)
        return;
    size_t mark = l->len;
    if (json) {
        bool ok = (first || put(l, ",", 1)) && put(l, "\"", 1) && put_esc(l, kv->key, ESC_JSON) &&
                  put(l, "\":", 2);
        if (!ok) {
            l->len = mark; /* drop the partial key */
            return;
        }
    } else if (!(put(l, " ", 1) && put_esc(l, kv->key, 0) && put(l, "=", 1))) {
        l->len = mark;
        return;
    }
    switch (kv->type) {
    case ZM_LOG_KV_STR:
        if (json)
            put_json_str(l, kv->v.s);
        else
            put_text_value(l, kv->v.s);
        break;
    case ZM_LOG_KV_INT:
        putf(l, "%lld", (long long)kv->v.i);
        break;
    case ZM_LOG_KV_UINT:
        putf(l, "%llu", (unsigned long long)kv->v.u);
        break;
    case ZM_LOG_KV_DOUBLE:
        put_double(l, kv->v.d, json);
        break;
    case ZM_LOG_KV_BOOL:
        puts_(l, kv->v.b ? "true" : "false");
        break;
    }
    if (json && l->len > mark && l->buf[l->len - 1] == ':')
        l->len = mark; /* the value did not fit at all */
}

static void put_ts(struct line *l)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    putf(l, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
         tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

/* level < 0: an access entry (no level, no msg, no context). */
static void format_entry(struct line *l, zm_log_format_t fmt, int level, const zm_log_ctx_t *ctx,
                         const char *msg, const zm_log_kv_t *kv, size_t n)
{
    bool json = fmt == ZM_LOG_JSON;
    if (json) {
        put(l, "{\"ts\":\"", 7);
        put_ts(l);
        put(l, "\"", 1);
        if (level >= 0) {
            putf(l, ",\"level\":\"%s\"", level_lower[level]);
            zm_log_kv_t f = ZM_KV_S("msg", msg ? msg : "");
            put_kv(l, &f, true, false);
        }
        if (ctx && ctx->worker >= 0)
            putf(l, ",\"worker\":%d", ctx->worker);
        if (ctx && ctx->conn_id >= 0)
            putf(l, ",\"conn\":%lld", (long long)ctx->conn_id);
        if (ctx && ctx->peer) {
            zm_log_kv_t f = ZM_KV_S("peer", ctx->peer);
            put_kv(l, &f, true, false);
        }
        if (ctx && ctx->action) {
            zm_log_kv_t f = ZM_KV_S("action", ctx->action);
            put_kv(l, &f, true, false);
        }
        for (size_t i = 0; i < n; i++)
            put_kv(l, &kv[i], true, false);
        put_tail(l, "}\n");
        return;
    }
    put_ts(l);
    if (level >= 0) {
        put(l, " ", 1);
        puts_(l, level_text[level]);
    }
    if (ctx && (ctx->worker >= 0 || ctx->conn_id >= 0 || ctx->peer)) {
        const char *sep = "";
        put(l, " [", 2);
        if (ctx->worker >= 0)
            putf(l, "w%d", ctx->worker), sep = " ";
        if (ctx->conn_id >= 0)
            putf(l, "%sc%lld", sep, (long long)ctx->conn_id), sep = " ";
        if (ctx->peer && putf(l, "%speer=", sep))
            put_text_value(l, ctx->peer);
        put(l, "]", 1);
    }
    if (ctx && ctx->action) {
        put(l, " ", 1);
        put_esc(l, ctx->action, 0);
        put(l, ":", 1);
    }
    if (msg && *msg) {
        put(l, " ", 1);
        put_esc(l, msg, 0);
    }
    for (size_t i = 0; i < n; i++)
        put_kv(l, &kv[i], false, false);
    put_tail(l, "\n");
}

static void write_line(int fd, const struct line *l)
{
    size_t off = 0;
    while (off < l->len) {
        ssize_t w = write(fd, l->buf + off, l->len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            atomic_fetch_add_explicit(&write_failures, 1, memory_order_relaxed);
            return;
        }
        off += (size_t)w;
    }
}

static void emit(int level, const zm_log_ctx_t *ctx, const char *msg, const zm_log_kv_t *kv,
                 size_t n)
{
    int fd = atomic_load_explicit(&log_fd, memory_order_relaxed);
    if (fd < 0 || level < ZM_LOG_ERROR || level > ZM_LOG_TRACE)
        return;
    struct line l;
    l.len = 0;
    l.full = false;
    format_entry(&l, atomic_load_explicit(&log_format, memory_order_relaxed), level, ctx, msg, kv,
                 n);
    write_line(fd, &l);
}

/* vsnprintf into msg; a cut message ends with "...". */
static void format_msg(char msg[MSG_MAX], const char *fmt, va_list ap)
{
    int n = vsnprintf(msg, MSG_MAX, fmt, ap);
    if (n < 0)
        snprintf(msg, MSG_MAX, "(bad log format: %s)", fmt);
    else if (n >= MSG_MAX)
        memcpy(msg + MSG_MAX - 4, "...", 4);
}

/* ---- public entry points ---- */

void zm_log_emit(zm_log_level_t level, const zm_log_ctx_t *ctx, const char *fmt, ...)
{
    int saved = errno;
    char msg[MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    format_msg(msg, fmt, ap);
    va_end(ap);
    emit((int)level, ctx, msg, NULL, 0);
    errno = saved;
}

void zm_log_emitkv(zm_log_level_t level, const zm_log_ctx_t *ctx, const char *msg, ...)
{
    int saved = errno;
    zm_log_kv_t kv[KV_MAX];
    size_t n = 0;
    va_list ap;
    va_start(ap, msg);
    for (const char *k; (k = va_arg(ap, const char *));) {
        const char *v = va_arg(ap, const char *);
        if (n < KV_MAX)
            kv[n++] = ZM_KV_S(k, v);
    }
    va_end(ap);
    emit((int)level, ctx, msg, kv, n);
    errno = saved;
}

void zm_log_emit_fields(zm_log_level_t level, const zm_log_ctx_t *ctx, const char *msg,
                        const zm_log_kv_t *kv, size_t n)
{
    int saved = errno;
    emit((int)level, ctx, msg, kv, n);
    errno = saved;
}

void zm_log_access(const zm_log_kv_t *kv, size_t n)
{
    int saved = errno;
    int fd = atomic_load_explicit(&access_fd, memory_order_relaxed);
    if (fd >= 0) {
        struct line l;
        l.len = 0;
        l.full = false;
        format_entry(&l, atomic_load_explicit(&access_format, memory_order_relaxed), -1, NULL, NULL,
                     kv, n);
        write_line(fd, &l);
    }
    errno = saved;
}

/* ---- rate limiting ---- */

static struct rl_slot *rl_find(const char *reason)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)reason; *p; p++)
        h = (h ^ *p) * 16777619u;
    for (size_t i = 0; i < RL_SLOTS; i++) {
        struct rl_slot *s = &rl_table[(h + i) & (RL_SLOTS - 1)];
        const char *k = atomic_load_explicit(&s->key, memory_order_acquire);
        if (!k && atomic_compare_exchange_strong_explicit(&s->key, &k, reason, memory_order_acq_rel,
                                                          memory_order_acquire))
            return s;
        if (k == reason || strcmp(k, reason) == 0) /* k is the winner's key */
            return s;
    }
    return &rl_other;
}

static void rl_report(struct rl_slot *s, int level, uint64_t k)
{
    char msg[64];
    snprintf(msg, sizeof(msg), "suppressed %llu similar messages", (unsigned long long)k);
    zm_log_kv_t kv = ZM_KV_S("reason", atomic_load_explicit(&s->key, memory_order_acquire));
    emit(level, NULL, msg, &kv, 1);
}

void zm_log_emit_ratelimited(zm_log_level_t level, const zm_log_ctx_t *ctx, const char *reason,
                             const char *fmt, ...)
{
    int saved = errno;
    struct rl_slot *s = rl_find(reason ? reason : "(null)");
    uint32_t limit = atomic_load_explicit(&rl_per_sec, memory_order_relaxed);
    uint32_t sec =
        (uint32_t)(atomic_load_explicit(&rl_clock, memory_order_relaxed)() / 1000000000u);
    uint64_t old = atomic_load_explicit(&s->state, memory_order_relaxed);
    bool new_window;
    for (;;) {
        new_window = (uint32_t)(old >> 32) != sec;
        uint32_t cnt = new_window ? 0 : (uint32_t)old;
        if (cnt >= limit) {
            atomic_store_explicit(&s->level, (int)level, memory_order_relaxed);
            atomic_fetch_add_explicit(&s->suppressed, 1, memory_order_relaxed);
            errno = saved;
            return;
        }
        uint64_t nw = ((uint64_t)sec << 32) | (cnt + 1);
        if (atomic_compare_exchange_weak_explicit(&s->state, &old, nw, memory_order_relaxed,
                                                  memory_order_relaxed))
            break;
    }
    if (new_window) {
        uint64_t k = atomic_exchange_explicit(&s->suppressed, 0, memory_order_relaxed);
        if (k)
            rl_report(s, atomic_load_explicit(&s->level, memory_order_relaxed), k);
    }
    char msg[MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    format_msg(msg, fmt, ap);
    va_end(ap);
    zm_log_kv_t kv = ZM_KV_S("reason", reason);
    emit((int)level, ctx, msg, &kv, 1);
    errno = saved;
}

void zm_log_flush_suppressed(void)
{
    int saved = errno;
    for (size_t i = 0; i <= RL_SLOTS; i++) {
        struct rl_slot *s = i < RL_SLOTS ? &rl_table[i] : &rl_other;
        if (!atomic_load_explicit(&s->key, memory_order_acquire))
            continue;
        uint64_t k = atomic_exchange_explicit(&s->suppressed, 0, memory_order_relaxed);
        if (k)
            rl_report(s, atomic_load_explicit(&s->level, memory_order_relaxed), k);
    }
    errno = saved;
}

void zm_log_set_clock(uint64_t (*now_ns)(void))
{
    atomic_store(&rl_clock, now_ns ? now_ns : zm_now_ns);
    for (size_t i = 0; i <= RL_SLOTS; i++) {
        struct rl_slot *s = i < RL_SLOTS ? &rl_table[i] : &rl_other;
        if (i < RL_SLOTS)
            atomic_store(&s->key, NULL);
        atomic_store(&s->state, 0);
        atomic_store(&s->suppressed, 0);
    }
}

/* ---- configuration ---- */

void zm_log_set_level(zm_log_level_t level)
{
    if ((int)level >= ZM_LOG_ERROR && level <= ZM_LOG_TRACE)
        atomic_store_explicit(&zm_log_threshold, (int)level, memory_order_relaxed);
}

zm_log_level_t zm_log_get_level(void)
{
    return (zm_log_level_t)atomic_load_explicit(&zm_log_threshold, memory_order_relaxed);
}

int zm_log_level_parse(const char *s)
{
    if (!s)
        return -EINVAL;
    for (int i = ZM_LOG_ERROR; i <= ZM_LOG_TRACE; i++)
        if (strcasecmp(s, level_lower[i]) == 0)
            return i;
    if (strcasecmp(s, "warning") == 0)
        return ZM_LOG_WARN;
    return -EINVAL;
}

const char *zm_log_level_name(zm_log_level_t level)
{
    return (int)level >= ZM_LOG_ERROR && level <= ZM_LOG_TRACE ? level_lower[level] : "?";
}

void zm_log_set_format(zm_log_format_t fmt)
{
    atomic_store_explicit(&log_format, (int)fmt, memory_order_relaxed);
}

int zm_log_set_fd(int fd)
{
    return atomic_exchange(&log_fd, fd);
}

int zm_log_set_access_fd(int fd)
{
    return atomic_exchange(&access_fd, fd);
}

void zm_log_set_access_format(zm_log_format_t fmt)
{
    atomic_store_explicit(&access_format, (int)fmt, memory_order_relaxed);
}

void zm_log_set_ratelimit(unsigned per_second)
{
    atomic_store_explicit(&rl_per_sec, per_second, memory_order_relaxed);
}

uint64_t zm_log_write_failures(void)
{
    return atomic_load_explicit(&write_failures, memory_order_relaxed);
}
