/*
 * httpd.h — a small HTTP/1.1 server on the event loop for the operational
 * endpoints (/metrics on 15020, admin on 15000, /healthz/ready on 15021).
 *
 * It is not the data path: one request per connection (answered with
 * Connection: close), a request head of at most 8 KiB, a body ignored, a
 * fixed route table matched on the path (query string stripped and handed
 * to the handler). Anything malformed gets a 400, an unknown path a 404,
 * a method other than GET/POST a 405. A slow client is cut off after
 * ZM_HTTPD_TIMEOUT_MS.
 *
 * Threading: the loop's thread; handlers run there and must be quick.
 */
#ifndef ZM_HTTPD_H
#define ZM_HTTPD_H

#include "loop.h"
#include "strbuf.h"

#define ZM_HTTPD_MAX_HEAD 8192
#define ZM_HTTPD_TIMEOUT_MS 10000

typedef struct zm_httpd zm_httpd_t;

typedef struct zm_httpd_request {
    const char *method;
    const char *path;  /* without the query */
    const char *query; /* after '?', or "" */
} zm_httpd_request_t;

/* Fills body and content_type; returns the HTTP status to send. */
typedef int (*zm_httpd_handler)(const zm_httpd_request_t *req, zm_strbuf_t *body,
                                const char **content_type, void *arg);

typedef struct zm_httpd_route {
    const char *path; /* exact match */
    zm_httpd_handler handler;
    void *arg;
} zm_httpd_route_t;

/* Parses the request line of a NUL-terminated request head in place
 * ("METHOD SP /target SP HTTP/1.x CRLF ..."): fills req with pointers into
 * head (query split off at '?'). Returns 0, -EINVAL for a malformed line
 * (answered 400) or -EOPNOTSUPP for a method other than GET/POST (405).
 * Headers after the first line are not looked at. Public for the fuzzer. */
int zm_httpd_parse_head(char *head, zm_httpd_request_t *req);

/* Listens on addr; routes must outlive the server. */
int zm_httpd_new(zm_httpd_t **out, zm_loop_t *loop, const struct sockaddr *addr, socklen_t addr_len,
                 unsigned listen_flags, const zm_httpd_route_t *routes, size_t n_routes);
int zm_httpd_port(const zm_httpd_t *h);
/* Closes every connection now (unsent response bytes are dropped); their
 * memory is released as the loop reports each close. */
void zm_httpd_close_all(zm_httpd_t *h);
/* Stops accepting; requests in progress finish on their own (call
 * zm_httpd_close_all first to drop them, e.g. before destroying the loop,
 * which would otherwise leak them). */
void zm_httpd_free(zm_httpd_t **h);

#endif
