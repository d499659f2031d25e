/*
 * httpd.c — one-request-per-connection HTTP/1.1 for operational endpoints.
 *
 * Each connection accumulates its request head in a fixed buffer; once the
 * blank line arrives the route runs, the response is queued with
 * Connection: close and the socket closes after flushing. Connections hold
 * a pointer to the server, so the server counts them and is freed only when
 * the last one has closed (`dying`). They are also linked into the server's
 * list so zm_httpd_close_all can reach them.
 */
#include "httpd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct zm_httpd {
    zm_loop_t *loop;
    zm_listener_t *listener;
    const zm_httpd_route_t *routes;
    size_t n_routes;
    unsigned conns;
    bool dying;
    struct httpd_conn *head; /* open connections */
};

typedef struct httpd_conn {
    zm_httpd_t *srv;
    struct httpd_conn *prev, *next;
    zm_timer_t timeout;
    zm_sock_t *sock;
    bool answered;
    size_t len;
    char head[ZM_HTTPD_MAX_HEAD + 1];
} httpd_conn_t;

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return status < 400 ? "OK" : "Error";
    }
}

static void respond(httpd_conn_t *hc, int status, const char *ctype, const char *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, reason_phrase(status), ctype, len);
    hc->answered = true;
    if (zm_sock_send(hc->sock, head, (size_t)n) == 0 && len)
        zm_sock_send(hc->sock, body, len);
    zm_sock_close(hc->sock, ZM_SOCK_CLOSE_FLUSH);
}

static void respond_text(httpd_conn_t *hc, int status, const char *text)
{
    respond(hc, status, "text/plain; charset=utf-8", text, strlen(text));
}

int zm_httpd_parse_head(char *head, zm_httpd_request_t *req)
{
    char *line_end = strstr(head, "\r\n");
    if (!line_end)
        return -EINVAL;
    *line_end = 0;
    char *method = head;
    char *target = strchr(method, ' ');
    char *version = target ? strchr(target + 1, ' ') : NULL;
    if (!target || !version || strncmp(version + 1, "HTTP/1.", 7) != 0 || target[1] != '/')
        return -EINVAL;
    *target++ = 0;
    *version = 0;
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
        return -EOPNOTSUPP;
    char *query = strchr(target, '?');
    if (query)
        *query++ = 0;
    *req = (zm_httpd_request_t){.method = method, .path = target, .query = query ? query : ""};
    return 0;
}

/* Parses the request line and runs the route. */
static void dispatch(httpd_conn_t *hc)
{
    zm_httpd_request_t req;
    int rc = zm_httpd_parse_head(hc->head, &req);
    if (rc == -EOPNOTSUPP) {
        respond_text(hc, 405, "method not allowed\n");
        return;
    }
    if (rc < 0) {
        respond_text(hc, 400, "bad request line\n");
        return;
    }
    for (size_t i = 0; i < hc->srv->n_routes; i++) {
        const zm_httpd_route_t *r = &hc->srv->routes[i];
        if (strcmp(r->path, req.path) != 0)
            continue;
        zm_strbuf_t body = {0};
        const char *ctype = "text/plain; charset=utf-8";
        int status = r->handler(&req, &body, &ctype, r->arg);
        if (zm_strbuf_error(&body))
            respond_text(hc, 503, "response too large\n");
        else
            respond(hc, status, ctype, zm_strbuf_str(&body), body.len);
        zm_strbuf_free(&body);
        return;
    }
    respond_text(hc, 404, "not found\n");
}

static void conn_data(zm_sock_t *s, const uint8_t *data, size_t len)
{
    httpd_conn_t *hc = zm_sock_ctx(s);
    if (hc->answered)
        return;
    if (hc->len + len > ZM_HTTPD_MAX_HEAD) {
        respond_text(hc, 431, "request head too large\n");
        return;
    }
    memcpy(hc->head + hc->len, data, len);
    hc->len += len;
    hc->head[hc->len] = 0;
    if (memchr(hc->head, 0, hc->len)) {
        respond_text(hc, 400, "NUL in request\n");
        return;
    }
    if (strstr(hc->head, "\r\n\r\n"))
        dispatch(hc);
}

static void conn_eof(zm_sock_t *s)
{
    httpd_conn_t *hc = zm_sock_ctx(s);
    if (!hc->answered)
        zm_sock_close(s, 0);
}

static void server_release(zm_httpd_t *srv)
{
    if (srv->dying && srv->conns == 0)
        free(srv);
}

static void conn_close(zm_sock_t *s, int err)
{
    httpd_conn_t *hc = zm_sock_ctx(s);
    zm_httpd_t *srv = hc->srv;
    zm_timer_stop(srv->loop, &hc->timeout);
    if (hc->prev)
        hc->prev->next = hc->next;
    else
        srv->head = hc->next;
    if (hc->next)
        hc->next->prev = hc->prev;
    free(hc);
    srv->conns--;
    server_release(srv);
}

static void conn_timeout(zm_timer_t *t)
{
    httpd_conn_t *hc = ZM_CONTAINER_OF(t, httpd_conn_t, timeout);
    zm_sock_close(hc->sock, 0);
}

static const zm_sock_handlers_t conn_handlers = {
    .on_data = conn_data,
    .on_eof = conn_eof,
    .on_close = conn_close,
};

static void on_accept(zm_listener_t *l, int fd, const struct sockaddr *peer, socklen_t peer_len,
                      void *ctx)
{
    zm_httpd_t *srv = ctx;
    httpd_conn_t *hc = calloc(1, sizeof(*hc));
    if (!hc) {
        close(fd);
        return;
    }
    hc->srv = srv;
    if (zm_sock_wrap(&hc->sock, srv->loop, fd, &conn_handlers, hc) < 0) {
        free(hc);
        close(fd);
        return;
    }
    srv->conns++;
    hc->next = srv->head;
    if (srv->head)
        srv->head->prev = hc;
    srv->head = hc;
    zm_timer_start(srv->loop, &hc->timeout, ZM_HTTPD_TIMEOUT_MS, conn_timeout);
}

int zm_httpd_new(zm_httpd_t **out, zm_loop_t *loop, const struct sockaddr *addr, socklen_t addr_len,
                 unsigned listen_flags, const zm_httpd_route_t *routes, size_t n_routes)
{
    zm_httpd_t *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return -ENOMEM;
    srv->loop = loop;
    srv->routes = routes;
    srv->n_routes = n_routes;
    int r = zm_listener_new(&srv->listener, loop, addr, addr_len, listen_flags, on_accept, srv);
    if (r < 0) {
        free(srv);
        return r;
    }
    *out = srv;
    return 0;
}

int zm_httpd_port(const zm_httpd_t *h)
{
    return zm_listener_port(h->listener);
}

void zm_httpd_close_all(zm_httpd_t *h)
{
    /* next is read first in case a close ever completes synchronously. */
    for (httpd_conn_t *hc = h ? h->head : NULL, *next; hc; hc = next) {
        next = hc->next;
        zm_sock_close(hc->sock, 0);
    }
}

void zm_httpd_free(zm_httpd_t **ph)
{
    zm_httpd_t *srv = *ph;
    if (!srv)
        return;
    zm_listener_close(&srv->listener);
    srv->dying = true;
    server_release(srv);
    *ph = NULL;
}
