/*
 * echo_h1.c — HTTP/1.1 for the echo app, parsed by libhttp-parser.
 *
 * One request at a time: when the parser completes a message it is paused
 * (http_parser_pause) and socket reads stop, so pipelined requests wait
 * their turn and are answered in order, each after its own delay. Input is
 * copied into `pend` and parsed from there; what follows a finished message
 * stays in `pend` (bounded: reads stop while a reply is pending, so at most
 * one receive plus the sniff buffer) until the reply has been queued. Keep-alive follows
 * http_should_keep_alive(); bodies (Content-Length or chunked) are counted
 * and dropped. A reply body is queued piecewise, stopping above the send
 * queue's low water and resuming on drain.
 *
 * Any parse error, or a request over a bound, is answered (400/414/431) with
 * Connection: close and the connection closes after flushing. Upgrade
 * requests (h2c) are answered as plain HTTP/1.1 and the parser restarts.
 *
 * Threading: the loop's thread.
 */
#include "echo.h"
#include "log.h"

#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PEND_MAX (256 * 1024)
#define HEADER_PIECE_MAX 8192 /* one header name or value (431 beyond) */

struct mc_echo_h1 {
    mc_echo_conn_t *conn;
    http_parser parser;
    mc_echo_req_t req;
    zm_strbuf_t field, value; /* the header being received */
    bool in_value;
    bool req_done;   /* a message completed: answer it before parsing on */
    bool busy;       /* a reply is delayed or being sent */
    bool keep_alive; /* of the request being answered */
    bool dead;       /* answered with an error: only flushing remains */
    bool head;       /* the request being answered is a HEAD */
    bool in_process; /* process() is on the stack */
    zm_timer_t delay;
    mc_echo_reply_t reply;
    uint8_t *pend;
    size_t pend_off, pend_len, pend_cap;
};

static void process(mc_echo_h1_t *h);

/* ---- parser callbacks ---- */

static mc_echo_h1_t *of(http_parser *p)
{
    return p->data;
}

static void commit_header(mc_echo_h1_t *h)
{
    if (!h->in_value)
        return;
    if (zm_strbuf_error(&h->field) || zm_strbuf_error(&h->value))
        h->req.error = h->req.error ? h->req.error : 431;
    else
        mc_echo_req_add_header(&h->req, zm_strbuf_str(&h->field), h->field.len,
                               zm_strbuf_str(&h->value), h->value.len);
    zm_strbuf_reset(&h->field);
    zm_strbuf_reset(&h->value);
    h->in_value = false;
}

static int on_message_begin(http_parser *p)
{
    mc_echo_h1_t *h = of(p);
    mc_echo_req_reset(&h->req);
    zm_strbuf_reset(&h->field);
    zm_strbuf_reset(&h->value);
    h->in_value = false;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    mc_echo_req_add_target(&of(p)->req, at, len);
    return of(p)->req.error != 0; /* stop at once: answer with that status */
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    mc_echo_h1_t *h = of(p);
    commit_header(h);
    zm_strbuf_append(&h->field, at, len);
    return h->req.error != 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    mc_echo_h1_t *h = of(p);
    h->in_value = true;
    zm_strbuf_append(&h->value, at, len);
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    mc_echo_h1_t *h = of(p);
    commit_header(h);
    const char *m = http_method_str((enum http_method)p->method);
    mc_echo_req_set_method(&h->req, m, strlen(m));
    json_t *expect = h->req.headers ? json_object_get(h->req.headers, "expect") : NULL;
    if (expect && strcasecmp(json_string_value(expect), "100-continue") == 0 && !h->req.error &&
        p->http_minor >= 1) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        zm_sock_send(h->conn->sock, cont, sizeof(cont) - 1);
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    of(p)->req.body_bytes += len;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    mc_echo_h1_t *h = of(p);
    h->req_done = true;
    h->keep_alive = http_should_keep_alive(p) != 0;
    h->head = p->method == HTTP_HEAD;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- replies ---- */

static const char *reason(int status)
{
    if (status == 418)
        return "I'm a teapot"; /* not in http_parser 2.9's table */
    const char *r = http_status_str((enum http_status)status);
    return r && strcmp(r, "<unknown>") != 0 ? r : "Status";
}

/* Queues body bytes until done or above low water. 1 done, 0 more later,
 * -1 the connection failed. */
static int pump(mc_echo_h1_t *h)
{
    zm_sock_t *s = h->conn->sock;
    uint8_t buf[16384];
    while (h->reply.off < h->reply.total && !zm_sock_above_low_water(s)) {
        size_t n = mc_echo_reply_read(&h->reply, buf, sizeof(buf));
        if (zm_sock_send(s, buf, n) < 0)
            return -1;
    }
    return h->reply.off >= h->reply.total;
}

static void reply_finished(mc_echo_h1_t *h)
{
    mc_echo_reply_clear(&h->reply);
    h->busy = false;
    if (!h->keep_alive || h->dead) {
        mc_echo_conn_close(h->conn, true);
        return;
    }
    process(h);
}

static void reply_send(mc_echo_h1_t *h)
{
    mc_echo_reply_t *r = &h->reply;
    bool bodyless = mc_echo_status_bodyless(r->status);
    char head[256];
    int n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n", r->status,
                     reason(r->status), r->ctype);
    if (!bodyless)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Length: %llu\r\n",
                      (unsigned long long)r->total);
    n += snprintf(head + n, sizeof(head) - (size_t)n, "%s\r\n",
                  h->keep_alive ? "" : "Connection: close\r\n");
    if (bodyless || h->head)
        r->off = r->total;
    if (zm_sock_send(h->conn->sock, head, (size_t)n) < 0) {
        mc_echo_conn_close(h->conn, false);
        return;
    }
    int rc = pump(h);
    if (rc < 0)
        mc_echo_conn_close(h->conn, false);
    else if (rc > 0)
        reply_finished(h);
}

static void delay_done(zm_timer_t *t)
{
    mc_echo_h1_t *h = ZM_CONTAINER_OF(t, mc_echo_h1_t, delay);
    if (!h->conn->closing)
        reply_send(h);
}

/* Answers the completed request (or an error when status != 0). */
static void answer(mc_echo_h1_t *h, int status)
{
    h->busy = true;
    zm_sock_pause_read(h->conn->sock);
    int rc;
    if (status) {
        h->dead = true;
        h->keep_alive = false;
        rc = mc_echo_reply_text(&h->reply, status,
                                status == 400 ? "bad request\n" : "request too large\n");
    } else {
        rc = mc_echo_reply_build(h->conn->srv, &h->req, &h->reply);
        if (h->req.error) {
            h->dead = true;
            h->keep_alive = false;
        }
    }
    if (rc < 0) {
        mc_echo_conn_close(h->conn, false);
        return;
    }
    if (h->reply.delay_ms)
        zm_timer_start(h->conn->srv->loop, &h->delay, h->reply.delay_ms, delay_done);
    else
        reply_send(h);
}

/* ---- input ---- */

/* Parses data until a message completes or an error; returns bytes used. */
static size_t parse(mc_echo_h1_t *h, const uint8_t *data, size_t len)
{
    size_t used = http_parser_execute(&h->parser, &settings, (const char *)data, len);
    enum http_errno err = HTTP_PARSER_ERRNO(&h->parser);
    if (h->req_done) {
        h->req_done = false;
        if (err == HPE_PAUSED)
            http_parser_pause(&h->parser, 0);
        if (h->parser.upgrade) {
            /* We do not switch protocols: parse what follows as HTTP/1. */
            http_parser_init(&h->parser, HTTP_REQUEST);
            h->parser.data = h;
        }
        answer(h, 0);
        return used;
    }
    if (err != HPE_OK) {
        zm_log_ratelimited(ZM_LOG_INFO, NULL, "http1_parse", "echo: bad HTTP/1 request: %s",
                           http_errno_name(err));
        int status = h->req.error ? h->req.error : 400;
        if (err == HPE_HEADER_OVERFLOW)
            status = 431;
        answer(h, status);
        return len;
    }
    return used;
}

static int pend_put(mc_echo_h1_t *h, const uint8_t *data, size_t len)
{
    if (h->pend_off == h->pend_len)
        h->pend_off = h->pend_len = 0;
    if (h->pend_len + len > h->pend_cap) {
        size_t cap = ZM_MAX(h->pend_cap * 2, h->pend_len + len);
        if (cap > PEND_MAX)
            return -ENOBUFS;
        if (h->pend_off) {
            memmove(h->pend, h->pend + h->pend_off, h->pend_len - h->pend_off);
            h->pend_len -= h->pend_off;
            h->pend_off = 0;
        }
        uint8_t *p = realloc(h->pend, cap);
        if (!p)
            return -ENOMEM;
        h->pend = p;
        h->pend_cap = cap;
    }
    memcpy(h->pend + h->pend_len, data, len);
    h->pend_len += len;
    return 0;
}

/* Parses what has been received until a reply is pending. Replies that
 * finish at once come back here through reply_finished(); in_process turns
 * that into another turn of this loop instead of recursion. */
static void process(mc_echo_h1_t *h)
{
    mc_echo_conn_t *c = h->conn;
    if (h->in_process)
        return;
    h->in_process = true;
    while (!c->closing && !h->busy && !h->dead && h->pend_off < h->pend_len)
        h->pend_off += parse(h, h->pend + h->pend_off, h->pend_len - h->pend_off);
    h->in_process = false;
    if (c->closing || h->busy || h->dead)
        return;
    h->pend_off = h->pend_len = 0;
    if (c->peer_eof)
        mc_echo_conn_close(c, true);
    else
        zm_sock_resume_read(c->sock);
}

void mc_echo_h1_input(mc_echo_conn_t *c, const uint8_t *data, size_t len)
{
    mc_echo_h1_t *h = c->h1;
    if (c->closing || h->dead || len == 0)
        return;
    if (pend_put(h, data, len) < 0) {
        mc_echo_conn_close(c, false);
        return;
    }
    process(h);
}

void mc_echo_h1_drain(mc_echo_conn_t *c)
{
    mc_echo_h1_t *h = c->h1;
    if (!h->busy || zm_timer_armed(&h->delay))
        return;
    int rc = pump(h);
    if (rc < 0)
        mc_echo_conn_close(c, false);
    else if (rc > 0)
        reply_finished(h);
}

void mc_echo_h1_eof(mc_echo_conn_t *c)
{
    mc_echo_h1_t *h = c->h1;
    /* A request in progress can no longer complete; pending ones still get
     * their answers (process() closes once they are out). */
    if (!h->busy && h->pend_off == h->pend_len)
        mc_echo_conn_close(c, true);
}

int mc_echo_h1_start(mc_echo_conn_t *c)
{
    mc_echo_h1_t *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->conn = c;
    http_parser_init(&h->parser, HTTP_REQUEST);
    h->parser.data = h;
    mc_echo_req_init(&h->req);
    h->field.limit = HEADER_PIECE_MAX;
    h->value.limit = HEADER_PIECE_MAX;
    c->h1 = h;
    return 0;
}

void mc_echo_h1_free(mc_echo_conn_t *c)
{
    mc_echo_h1_t *h = c->h1;
    if (!h)
        return;
    zm_timer_stop(c->srv->loop, &h->delay);
    mc_echo_req_free(&h->req);
    zm_strbuf_free(&h->field);
    zm_strbuf_free(&h->value);
    mc_echo_reply_clear(&h->reply);
    free(h->pend);
    free(h);
    c->h1 = NULL;
}
