/*
 * echo_reply.c — what the echo app answers: requests in, replies out.
 *
 * A request (mc_echo_req_t) is filled by either HTTP flavour: method,
 * target, headers as a jansson object (names lowercased, a repeated name's
 * values joined with ", ", in order of first appearance), body byte count.
 * Bounds: MC_ECHO_MAX_TARGET target bytes (414) and MC_ECHO_MAX_HEADER_BYTES
 * of names and values (431); past a bound the request is only marked.
 *
 * The reply body is one compact JSON object on one line, keys in this order:
 *   {"pod","namespace","version","method","path","query","headers",
 *    "body_bytes"} then "\n".
 * Options, first found wins: query parameters (status, delay, size, fail),
 * then headers (x-echo-status, x-echo-delay, x-echo-size, x-echo-fail), then
 * the pod's flags (--status, --delay-ms, --fail). size=N pads the JSON with
 * a last "pad" field of 'x' characters so the body is at least N bytes
 * (exactly N once N exceeds the unpadded JSON by 10 or more); the pad is
 * produced while sending, never held in memory. fail=F answers 503 to a
 * fraction F of the requests, deterministically: an error-diffusion counter
 * in millionths (F=0 never, F=1 always, F=0.25 every fourth request).
 * Strings that are not UTF-8 are rendered with '?' for each byte >= 0x80.
 *
 * Threading: the loop's thread (the fail counter lives on the server).
 */
#include "echo.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- requests ---- */

void mc_echo_req_init(mc_echo_req_t *r)
{
    memset(r, 0, sizeof(*r));
    r->target.limit = MC_ECHO_MAX_TARGET;
}

void mc_echo_req_reset(mc_echo_req_t *r)
{
    r->method[0] = 0;
    zm_strbuf_reset(&r->target);
    json_decref(r->headers);
    r->headers = NULL;
    r->header_bytes = 0;
    r->body_bytes = 0;
    r->error = 0;
}

void mc_echo_req_free(mc_echo_req_t *r)
{
    mc_echo_req_reset(r);
    zm_strbuf_free(&r->target);
}

void mc_echo_req_set_method(mc_echo_req_t *r, const char *m, size_t len)
{
    if (len >= sizeof(r->method)) {
        r->error = 400;
        len = 0;
    }
    memcpy(r->method, m, len);
    r->method[len] = 0;
}

void mc_echo_req_add_target(mc_echo_req_t *r, const char *p, size_t len)
{
    if (r->error)
        return;
    if (zm_strbuf_append(&r->target, p, len) < 0)
        r->error = 414;
}

/* A JSON string of p[0..len), with '?' for the bytes of invalid UTF-8. */
static json_t *jstr(const char *p, size_t len)
{
    json_t *s = json_stringn(p, len);
    if (s)
        return s;
    char *copy = malloc(len + 1);
    if (!copy)
        return NULL;
    for (size_t i = 0; i < len; i++)
        copy[i] = (unsigned char)p[i] >= 0x80 ? '?' : p[i];
    s = json_stringn(copy, len);
    free(copy);
    return s;
}

void mc_echo_req_add_header(mc_echo_req_t *r, const char *name, size_t nlen, const char *value,
                            size_t vlen)
{
    if (r->error)
        return;
    r->header_bytes += nlen + vlen;
    if (r->header_bytes > MC_ECHO_MAX_HEADER_BYTES) {
        r->error = 431;
        return;
    }
    if (!r->headers && !(r->headers = json_object())) {
        r->error = 503;
        return;
    }
    char key[256];
    if (nlen == 0 || nlen >= sizeof(key)) {
        r->error = nlen ? 431 : 400;
        return;
    }
    for (size_t i = 0; i < nlen; i++) {
        unsigned char ch = (unsigned char)name[i];
        key[i] = ch >= 0x80 || ch == 0 ? '?' : (char)tolower(ch);
    }
    key[nlen] = 0;
    json_t *old = json_object_get(r->headers, key);
    json_t *v;
    if (old) {
        const char *ov = json_string_value(old);
        size_t olen = json_string_length(old);
        char *joined = malloc(olen + 2 + vlen);
        if (!joined) {
            r->error = 503;
            return;
        }
        memcpy(joined, ov, olen);
        memcpy(joined + olen, ", ", 2);
        memcpy(joined + olen + 2, value, vlen);
        v = jstr(joined, olen + 2 + vlen);
        free(joined);
    } else {
        v = jstr(value, vlen);
    }
    if (!v || json_object_set_new(r->headers, key, v) < 0)
        r->error = 503;
}

/* ---- options ---- */

typedef struct opts {
    int status;       /* -1 unset */
    int64_t delay_ms; /* -1 unset */
    int64_t size;     /* -1 unset */
    int64_t fail_ppm; /* -1 unset */
} opts_t;

static bool parse_uint(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    if (len == 0 || len > 19)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

static bool parse_fraction(const char *s, size_t len, uint32_t *ppm)
{
    char buf[32];
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, s, len);
    buf[len] = 0;
    if (!isdigit((unsigned char)buf[0]) && buf[0] != '.')
        return false;
    char *end;
    double f = strtod(buf, &end);
    if (*end || !isfinite(f) || f < 0 || f > 1)
        return false;
    *ppm = (uint32_t)lround(f * 1e6);
    return true;
}

/* Sets one option from name=value unless already set. 0 ok, -1 bad value;
 * unknown names are ignored (they are the application's query). */
static int opt_set(opts_t *o, const char *name, size_t nlen, const char *v, size_t vlen)
{
    uint64_t u;
    uint32_t ppm;
#define IS(lit) (nlen == sizeof(lit) - 1 && memcmp(name, lit, nlen) == 0)
    if (IS("status")) {
        if (o->status >= 0)
            return 0;
        if (!parse_uint(v, vlen, 599, &u) || u < 200)
            return -1;
        o->status = (int)u;
    } else if (IS("delay")) {
        if (o->delay_ms >= 0)
            return 0;
        if (!parse_uint(v, vlen, MC_ECHO_MAX_DELAY_MS, &u))
            return -1;
        o->delay_ms = (int64_t)u;
    } else if (IS("size")) {
        if (o->size >= 0)
            return 0;
        if (!parse_uint(v, vlen, MC_ECHO_MAX_SIZE, &u))
            return -1;
        o->size = (int64_t)u;
    } else if (IS("fail")) {
        if (o->fail_ppm >= 0)
            return 0;
        if (!parse_fraction(v, vlen, &ppm))
            return -1;
        o->fail_ppm = ppm;
    }
#undef IS
    return 0;
}

static int opts_from_query(opts_t *o, const char *q, size_t len)
{
    const char *end = q + len;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *seg_end = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(seg_end - q));
        if (eq && opt_set(o, q, (size_t)(eq - q), eq + 1, (size_t)(seg_end - eq - 1)) < 0)
            return -1;
        q = amp ? amp + 1 : end;
    }
    return 0;
}

static int opts_from_headers(opts_t *o, json_t *headers)
{
    static const char *const names[] = {"status", "delay", "size", "fail"};
    for (size_t i = 0; headers && i < ZM_ARRAY_LEN(names); i++) {
        char key[32];
        snprintf(key, sizeof(key), "x-echo-%s", names[i]);
        json_t *v = json_object_get(headers, key);
        if (v &&
            opt_set(o, names[i], strlen(names[i]), json_string_value(v), json_string_length(v)) < 0)
            return -1;
    }
    return 0;
}

/* Error diffusion: over any run of requests with the same fraction, the
 * share of 503s is within one request of ppm/1e6. */
static bool fail_draw(mc_echo_srv_t *srv, uint32_t ppm)
{
    srv->fail_acc += ppm;
    if (srv->fail_acc >= 1000000u) {
        srv->fail_acc -= 1000000u;
        return true;
    }
    return false;
}

/* ---- replies ---- */

bool mc_echo_status_bodyless(int status)
{
    return status < 200 || status == 204 || status == 304;
}

void mc_echo_reply_clear(mc_echo_reply_t *r)
{
    free(r->head);
    memset(r, 0, sizeof(*r));
}

int mc_echo_reply_text(mc_echo_reply_t *out, int status, const char *text)
{
    mc_echo_reply_clear(out);
    out->status = status;
    out->ctype = "text/plain; charset=utf-8";
    out->head = strdup(text);
    if (!out->head)
        return -ENOMEM;
    out->head_len = strlen(text);
    out->tail = "";
    out->total = out->head_len;
    return 0;
}

static int obj_add(json_t *o, const char *key, json_t *v)
{
    return v ? json_object_set_new(o, key, v) : -1;
}

static const char *error_text(int status)
{
    switch (status) {
    case 414:
        return "request target too long\n";
    case 431:
        return "request header fields too large\n";
    case 503:
        return "out of memory\n";
    default:
        return "bad request\n";
    }
}

int mc_echo_reply_build(mc_echo_srv_t *srv, const mc_echo_req_t *req, mc_echo_reply_t *out)
{
    mc_echo_reply_clear(out);
    if (req->error)
        return mc_echo_reply_text(out, req->error, error_text(req->error));
    const char *target = zm_strbuf_str(&req->target);
    size_t tlen = req->target.len;
    const char *qmark = memchr(target, '?', tlen);
    size_t plen = qmark ? (size_t)(qmark - target) : tlen;
    const char *query = qmark ? qmark + 1 : "";
    size_t qlen = qmark ? tlen - plen - 1 : 0;

    opts_t o = {.status = -1, .delay_ms = -1, .size = -1, .fail_ppm = -1};
    if (opts_from_query(&o, query, qlen) < 0 || opts_from_headers(&o, req->headers) < 0)
        return mc_echo_reply_text(out, 400, "bad echo option\n");
    const mc_echo_cfg_t *cfg = &srv->cfg;
    int status = o.status >= 0 ? o.status : cfg->status ? cfg->status : 200;
    uint32_t ppm = o.fail_ppm >= 0 ? (uint32_t)o.fail_ppm : cfg->fail_ppm;
    if (fail_draw(srv, ppm))
        status = 503;

    json_t *obj = json_object();
    if (!obj)
        return -ENOMEM;
    int rc = 0;
    rc |= obj_add(obj, "pod", json_string(cfg->pod ? cfg->pod : ""));
    rc |= obj_add(obj, "namespace", json_string(cfg->ns ? cfg->ns : ""));
    rc |= obj_add(obj, "version", json_string(cfg->version ? cfg->version : ""));
    rc |= obj_add(obj, "method", jstr(req->method, strlen(req->method)));
    rc |= obj_add(obj, "path", jstr(target, plen));
    rc |= obj_add(obj, "query", jstr(query, qlen));
    rc |= obj_add(obj, "headers", req->headers ? json_incref(req->headers) : json_object());
    rc |= obj_add(obj, "body_bytes", json_integer((json_int_t)req->body_bytes));
    char *dump = rc == 0 ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!dump)
        return -ENOMEM;

    /* dump ends with '}': the head is everything before it. */
    size_t dlen = strlen(dump);
    out->status = status;
    out->delay_ms = o.delay_ms >= 0 ? (uint64_t)o.delay_ms : cfg->delay_ms;
    out->ctype = "application/json";
    out->head = dump;
    out->head_len = dlen - 1;
    out->tail = "}\n";
    uint64_t natural = dlen + 1;
    if (o.size >= 0 && (uint64_t)o.size > natural) {
        static const char pad_key[] = ",\"pad\":\"";
        char *h = realloc(dump, dlen - 1 + sizeof(pad_key));
        if (!h) {
            free(dump);
            out->head = NULL;
            return -ENOMEM;
        }
        memcpy(h + dlen - 1, pad_key, sizeof(pad_key));
        out->head = h;
        out->head_len = dlen - 1 + sizeof(pad_key) - 1;
        out->tail = "\"}\n";
        uint64_t fixed = out->head_len + 3;
        out->pad = (uint64_t)o.size > fixed ? (uint64_t)o.size - fixed : 0;
    }
    out->tail_len = strlen(out->tail);
    out->total = out->head_len + out->pad + out->tail_len;
    return 0;
}

size_t mc_echo_reply_read(mc_echo_reply_t *r, uint8_t *buf, size_t cap)
{
    size_t n = 0;
    while (n < cap && r->off < r->total) {
        uint64_t off = r->off;
        size_t take;
        if (off < r->head_len) {
            take = ZM_MIN(cap - n, r->head_len - (size_t)off);
            memcpy(buf + n, r->head + off, take);
        } else if (off < r->head_len + r->pad) {
            take = (size_t)ZM_MIN((uint64_t)(cap - n), r->head_len + r->pad - off);
            memset(buf + n, 'x', take);
        } else {
            size_t toff = (size_t)(off - r->head_len - r->pad);
            take = ZM_MIN(cap - n, r->tail_len - toff);
            memcpy(buf + n, r->tail + toff, take);
        }
        n += take;
        r->off += take;
    }
    return n;
}
