/*
 * admin.c — the admin, metrics and readiness listeners on their own thread.
 *
 * The thread creates its loop (io_uring rings belong to their creator),
 * binds the three zm_httpd servers, reports the outcome to zt_admin_start
 * through a mutex and condition variable, then runs the loop until
 * zt_admin_stop. The route tables live in zt_admin_t because each route
 * carries the admin as its argument; they outlive the servers, which are
 * freed on the thread before the loop is.
 *
 * The loop is sized for a handful of operational requests, not for
 * traffic: small rings and pools, but a send queue large enough for a
 * metrics page of many series (pages above it are cut off by httpd).
 */
#include "admin.h"

#include "httpd.h"
#include "log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_LISTENERS 3
#define MAX_ROUTES 8

typedef struct listener_spec {
    struct sockaddr_storage addr;
    socklen_t addr_len;
    bool enabled;
} listener_spec_t;

struct zt_admin {
    zt_admin_sources_t src;
    listener_spec_t spec[N_LISTENERS];
    zm_httpd_route_t routes[N_LISTENERS][MAX_ROUTES];
    size_t n_routes[N_LISTENERS];
    zm_httpd_t *httpd[N_LISTENERS];
    int port[N_LISTENERS];
    pthread_t thread;
    zm_loop_t *loop;
    /* start handshake */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool started;
    int start_rc;
    zm_err_t start_err;
};

static const char *const listener_names[N_LISTENERS] = {"admin", "metrics", "readiness"};

/* ---- handlers ---- */

static int text(zm_strbuf_t *body, int status, const char *msg)
{
    zm_strbuf_appends(body, msg);
    return status;
}

static int only(const zm_httpd_request_t *req, const char *method, zm_strbuf_t *body)
{
    if (strcmp(req->method, method) == 0)
        return 0;
    return text(body, 405, "method not allowed\n");
}

static int index_page(const zm_httpd_request_t *req, zm_strbuf_t *body, const char **ctype,
                      void *arg)
{
    return text(body, 200,
                "ztunnel admin\n"
                "  GET  /config_dump\n"
                "  GET  /workloads\n"
                "  GET  /certs\n"
                "  GET  /logging, POST /logging?level=<error|warn|info|debug|trace>\n"
                "  POST /quitquitquit\n");
}

static int json_page(char *(*fn)(void *), void *arg, const zm_httpd_request_t *req,
                     zm_strbuf_t *body, const char **ctype)
{
    int rc = only(req, "GET", body);
    if (rc)
        return rc;
    if (!fn)
        return text(body, 404, "not available\n");
    char *json = fn(arg);
    if (!json)
        return text(body, 503, "unavailable\n");
    zm_strbuf_appends(body, json);
    free(json);
    *ctype = "application/json";
    return 200;
}

static int config_dump_page(const zm_httpd_request_t *req, zm_strbuf_t *body, const char **ctype,
                            void *arg)
{
    zt_admin_t *a = arg;
    return json_page(a->src.config_dump, a->src.arg, req, body, ctype);
}

static int workloads_page(const zm_httpd_request_t *req, zm_strbuf_t *body, const char **ctype,
                          void *arg)
{
    zt_admin_t *a = arg;
    return json_page(a->src.workloads, a->src.arg, req, body, ctype);
}

static int certs_page(const zm_httpd_request_t *req, zm_strbuf_t *body, const char **ctype,
                      void *arg)
{
    zt_admin_t *a = arg;
    return json_page(a->src.certs, a->src.arg, req, body, ctype);
}

/* The value of `key` in a query string ("a=1&level=debug"), copied into
 * buf; false when absent. No percent-decoding: levels are plain words. */
static bool query_get(const char *query, const char *key, char *buf, size_t len)
{
    size_t klen = strlen(key);
    for (const char *p = query; *p;) {
        const char *end = strchr(p, '&');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
            snprintf(buf, len, "%.*s", (int)(n - klen - 1), p + klen + 1);
            return true;
        }
        p += n + (end ? 1 : 0);
    }
    return false;
}

static int logging_page(const zm_httpd_request_t *req, zm_strbuf_t *body, const char **ctype,
                        void *arg)
{
    if (strcmp(req->method, "POST") == 0) {
        char value[32];
        if (!query_get(req->query, "level", value, sizeof(value)))
            return text(body, 400, "usage: POST /logging?level=<error|warn|info|debug|trace>\n");
        int level = zm_log_level_parse(value);
        if (level < 0) {
            zm_strbuf_appendf(body, "invalid level \"%s\"\n", value);
            return 400;
        }
        zm_log_set_level((zm_log_level_t)level);
        zm_log(ZM_LOG_INFO, NULL, "admin: log level set to %s",
               zm_log_level_name((zm_log_level_t)level));
    }
    zm_strbuf_appendf(body, "current log level is %s\n", zm_log_level_name(zm_log_get_level()));
    return 200;
}

static int quit_page(const zm_httpd_request_t *req, zm_strbuf_t *body, const char **ctype,
                     void *arg)
{
    zt_admin_t *a = arg;
    if (!a->src.quit)
        return text(body, 404, "not available\n");
    int rc = only(req, "POST", body);
    if (rc)
        return rc;
    zm_log(ZM_LOG_INFO, NULL, "admin: /quitquitquit received");
    a->src.quit(a->src.arg);
    return text(body, 200, "OK\n");
}

static int metrics_page(const zm_httpd_request_t *req, zm_strbuf_t *body, const char **ctype,
                        void *arg)
{
    zt_admin_t *a = arg;
    int rc = only(req, "GET", body);
    if (rc)
        return rc;
    *ctype = ZM_METRICS_CONTENT_TYPE;
    if (a->src.metrics)
        zm_metrics_render(a->src.metrics, body); /* httpd answers 503 on its error */
    return 200;
}

static int ready_page(const zm_httpd_request_t *req, zm_strbuf_t *body, const char **ctype,
                      void *arg)
{
    zt_admin_t *a = arg;
    int rc = only(req, "GET", body);
    if (rc)
        return rc;
    if (a->src.ready && !a->src.ready(a->src.arg))
        return text(body, 503, "not ready\n");
    return text(body, 200, "ready\n");
}

static void add_route(zt_admin_t *a, int which, const char *path, zm_httpd_handler h)
{
    a->routes[which][a->n_routes[which]++] = (zm_httpd_route_t){path, h, a};
}

static void build_routes(zt_admin_t *a)
{
    add_route(a, ZT_ADMIN_ADMIN, "/", index_page);
    add_route(a, ZT_ADMIN_ADMIN, "/config_dump", config_dump_page);
    add_route(a, ZT_ADMIN_ADMIN, "/workloads", workloads_page);
    add_route(a, ZT_ADMIN_ADMIN, "/certs", certs_page);
    add_route(a, ZT_ADMIN_ADMIN, "/logging", logging_page);
    add_route(a, ZT_ADMIN_ADMIN, "/quitquitquit", quit_page);
    add_route(a, ZT_ADMIN_METRICS, "/metrics", metrics_page);
    add_route(a, ZT_ADMIN_METRICS, "/stats/prometheus", metrics_page);
    add_route(a, ZT_ADMIN_READINESS, "/healthz/ready", ready_page);
}

/* ---- set-up ---- */

static int parse_addr(listener_spec_t *s, const char *addr, int port, zm_err_t *err,
                      const char *what)
{
    if (port == ZT_ADMIN_DISABLED)
        return 0;
    if (port < 0 || port > 65535) {
        zm_err_set(err, NULL, 0, "%s port %d out of range", what, port);
        return -EINVAL;
    }
    if (strcmp(addr, "localhost") == 0)
        addr = "127.0.0.1";
    memset(&s->addr, 0, sizeof(s->addr));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&s->addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&s->addr;
    if (inet_pton(AF_INET, addr, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        s->addr_len = sizeof(*v4);
    } else if (inet_pton(AF_INET6, addr, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        s->addr_len = sizeof(*v6);
    } else {
        zm_err_set(err, NULL, 0, "%s address \"%s\" is not a numeric IP address", what, addr);
        return -EINVAL;
    }
    s->enabled = true;
    return 0;
}

static void free_servers(zt_admin_t *a)
{
    for (int i = 0; i < N_LISTENERS; i++)
        zm_httpd_free(&a->httpd[i]);
}

/* On the admin thread: the loop and the listeners; 0 or -errno. */
static int thread_setup(zt_admin_t *a, zm_err_t *err)
{
    zm_loop_config_t cfg = {
        .sq_entries = 64,
        .max_ops = 256,
        .max_socks = 64,
        .recv_buf_size = 8192,
        .recv_buf_count = 32,
        .send_queue_limit = 64u << 20,
        .send_chunk_size = 64 * 1024,
        .send_chunk_count = 1024,
    };
    zm_loop_config_defaults(&cfg);
    int rc = zm_loop_new(&a->loop, &cfg);
    if (rc < 0) {
        zm_err_set(err, NULL, 0, "admin loop: %s", strerror(-rc));
        return rc;
    }
    for (int i = 0; i < N_LISTENERS; i++) {
        a->port[i] = -ENOENT;
        if (!a->spec[i].enabled)
            continue;
        rc = zm_httpd_new(&a->httpd[i], a->loop, (struct sockaddr *)&a->spec[i].addr,
                          a->spec[i].addr_len, 0, a->routes[i], a->n_routes[i]);
        if (rc < 0) {
            zm_err_set(err, NULL, 0, "%s listener: %s", listener_names[i], strerror(-rc));
            free_servers(a);
            zm_loop_destroy(&a->loop);
            return rc;
        }
        a->port[i] = zm_httpd_port(a->httpd[i]);
    }
    return 0;
}

/* After the loop stopped: drop the requests in progress, close the
 * listeners, and turn the loop until the closes are reported (bounded) so
 * that httpd frees its connections before the loop goes. */
static void thread_teardown(zt_admin_t *a)
{
    for (int i = 0; i < N_LISTENERS; i++)
        zm_httpd_close_all(a->httpd[i]);
    free_servers(a);
    uint64_t deadline = zm_now_ms() + ZT_ADMIN_STOP_TIMEOUT_MS;
    while (zm_loop_socks_open(a->loop) && zm_now_ms() < deadline)
        zm_loop_run_once(a->loop, 10);
    zm_loop_destroy(&a->loop);
}

static void *admin_main(void *arg)
{
    zt_admin_t *a = arg;
    zm_err_t err = {0};
    int rc = thread_setup(a, &err);
    pthread_mutex_lock(&a->mu);
    a->started = true;
    a->start_rc = rc;
    a->start_err = err;
    pthread_cond_signal(&a->cond);
    pthread_mutex_unlock(&a->mu);
    if (rc < 0)
        return NULL;
    rc = zm_loop_run(a->loop);
    if (rc < 0)
        zm_log(ZM_LOG_ERROR, NULL, "admin loop stopped: %s", strerror(-rc));
    thread_teardown(a);
    return NULL;
}

int zt_admin_start(zt_admin_t **out, const char *address, int admin_port,
                   const char *metrics_address, int metrics_port, int readiness_port,
                   const zt_admin_sources_t *src, zm_err_t *err)
{
    zt_admin_t *a = calloc(1, sizeof(*a));
    if (!a) {
        zm_err_set(err, NULL, 0, "admin: out of memory");
        return -ENOMEM;
    }
    if (src)
        a->src = *src;
    const char *admin_addr = address ? address : "127.0.0.1";
    const char *public_addr = metrics_address ? metrics_address : "0.0.0.0";
    int rc = parse_addr(&a->spec[ZT_ADMIN_ADMIN], admin_addr, admin_port, err, "admin");
    if (rc == 0)
        rc = parse_addr(&a->spec[ZT_ADMIN_METRICS], public_addr, metrics_port, err, "metrics");
    if (rc == 0)
        rc =
            parse_addr(&a->spec[ZT_ADMIN_READINESS], public_addr, readiness_port, err, "readiness");
    if (rc < 0) {
        free(a);
        return rc;
    }
    build_routes(a);
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cond, NULL);
    rc = -pthread_create(&a->thread, NULL, admin_main, a);
    if (rc < 0) {
        zm_err_set(err, NULL, 0, "admin thread: %s", strerror(-rc));
    } else {
        pthread_mutex_lock(&a->mu);
        while (!a->started)
            pthread_cond_wait(&a->cond, &a->mu);
        pthread_mutex_unlock(&a->mu);
        rc = a->start_rc;
        if (rc < 0) {
            if (err)
                *err = a->start_err;
            pthread_join(a->thread, NULL);
        }
    }
    if (rc < 0) {
        pthread_cond_destroy(&a->cond);
        pthread_mutex_destroy(&a->mu);
        free(a);
        return rc;
    }
    *out = a;
    return 0;
}

int zt_admin_port(const zt_admin_t *a, zt_admin_listener_t which)
{
    if (!a || (unsigned)which >= N_LISTENERS)
        return -EINVAL;
    return a->port[which];
}

void zt_admin_stop(zt_admin_t **pa)
{
    zt_admin_t *a = *pa;
    if (!a)
        return;
    *pa = NULL;
    zm_loop_stop(a->loop);
    pthread_join(a->thread, NULL);
    pthread_cond_destroy(&a->cond);
    pthread_mutex_destroy(&a->mu);
    free(a);
}
