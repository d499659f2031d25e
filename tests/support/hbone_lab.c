/*
 * hbone_lab.c — certificates, a mode-driven TCP target and an HBONE server
 * for loopback tests, the demo and the benchmarks (see hbone_lab.h).
 */
#include "hbone_lab.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- certificates ---- */

int lab_certs_make(lab_certs_t *c)
{
    memset(c, 0, sizeof(*c));
    zm_err_t err;
    zm_cert_req_t ca = {.common_name = "zmesh lab CA", .is_ca = true};
    zm_cert_req_t srv = {.spiffe_id = LAB_SERVER_ID, .common_name = "server"};
    zm_cert_req_t cli = {.spiffe_id = LAB_CLIENT_ID, .common_name = "client"};
    if (zm_cert_issue(&ca, NULL, NULL, &c->ca_cert, &c->ca_key, &err) < 0 ||
        zm_cert_issue(&srv, c->ca_cert, c->ca_key, &c->server_cert, &c->server_key, &err) < 0 ||
        zm_cert_issue(&cli, c->ca_cert, c->ca_key, &c->client_cert, &c->client_key, &err) < 0) {
        fprintf(stderr, "lab: certificates: %s\n", err.msg);
        lab_certs_free(c);
        return -EINVAL;
    }
    return 0;
}

void lab_certs_free(lab_certs_t *c)
{
    free(c->ca_cert);
    free(c->ca_key);
    free(c->server_cert);
    free(c->server_key);
    free(c->client_cert);
    free(c->client_key);
    memset(c, 0, sizeof(*c));
}

static int write_file(const char *dir, const char *name, const char *data, mode_t mode)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0)
        return -errno;
    size_t len = strlen(data);
    ssize_t n = write(fd, data, len);
    close(fd);
    return n == (ssize_t)len ? 0 : -EIO;
}

int lab_certs_write(const lab_certs_t *c, const char *dir)
{
    mkdir(dir, 0700);
    int r = 0;
    r |= write_file(dir, "ca.pem", c->ca_cert, 0644);
    r |= write_file(dir, "server.pem", c->server_cert, 0644);
    r |= write_file(dir, "server.key", c->server_key, 0600);
    r |= write_file(dir, "client.pem", c->client_cert, 0644);
    r |= write_file(dir, "client.key", c->client_key, 0600);
    return r ? -EIO : 0;
}

static zm_tls_ctx_t *tls_ctx(const zm_tls_ctx_config_t *cfg)
{
    zm_tls_ctx_t *ctx = NULL;
    zm_err_t err;
    if (zm_tls_ctx_new(&ctx, cfg, &err) < 0) {
        char buf[800];
        fprintf(stderr, "lab: TLS context: %s\n", zm_err_str(&err, buf, sizeof(buf)));
        return NULL;
    }
    return ctx;
}

zm_tls_ctx_t *lab_tls_ctx(const char *cert, const char *key, const char *ca, bool server)
{
    zm_tls_ctx_config_t cfg = {.server = server, .cert_pem = cert, .key_pem = key, .ca_pem = ca};
    return tls_ctx(&cfg);
}

zm_tls_ctx_t *lab_tls_ctx_files(const char *cert, const char *key, const char *ca, bool server)
{
    zm_tls_ctx_config_t cfg = {.server = server, .cert_file = cert, .key_file = key, .ca_file = ca};
    return tls_ctx(&cfg);
}

void lab_pattern(uint8_t *buf, size_t len, uint64_t seed, uint64_t off)
{
    for (size_t i = 0; i < len; i++) {
        uint64_t x = (off + i) * 0x9E3779B97F4A7C15ull ^ seed;
        buf[i] = (uint8_t)(x >> 29);
    }
}

int lab_parse_addr(const char *s, struct sockaddr_in *out)
{
    return zm_parse_ipv4_port(s, out);
}

static int listen_on(zm_listener_t **l, zm_loop_t *loop, const char *ip, int port, unsigned flags,
                     zm_accept_cb cb, void *ctx)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
        return -EINVAL;
    return zm_listener_new(l, loop, (struct sockaddr *)&sa, sizeof(sa), flags, cb, ctx);
}

/* ---- target ---- */

typedef struct target_conn target_conn_t;

struct lab_target {
    zm_loop_t *loop;
    target_conn_t *stalled; /* 'P' connections, for lab_target_release */
    zm_listener_t *listener;
    uint64_t source_bytes;
    lab_target_stats_t stats;
};

struct target_conn {
    lab_target_t *t;
    zm_sock_t *sock;
    target_conn_t *next_stalled, *prev_stalled;
    int mode; /* 0 until the first byte */
    uint8_t *held;
    size_t held_len, held_cap;
    uint64_t sourced;
    bool stalled;
};

static void unstall(target_conn_t *tc)
{
    if (!tc->stalled)
        return;
    tc->stalled = false;
    if (tc->prev_stalled)
        tc->prev_stalled->next_stalled = tc->next_stalled;
    else
        tc->t->stalled = tc->next_stalled;
    if (tc->next_stalled)
        tc->next_stalled->prev_stalled = tc->prev_stalled;
}

void lab_target_release(lab_target_t *t)
{
    while (t->stalled) {
        target_conn_t *tc = t->stalled;
        unstall(tc);
        tc->mode = LAB_MODE_SINK;
        zm_sock_resume_read(tc->sock);
    }
}

static void target_source_more(zm_sock_t *s, target_conn_t *tc)
{
    uint8_t buf[16384];
    while (tc->sourced < tc->t->source_bytes && zm_sock_send_queued(s) < 1024 * 1024) {
        size_t n = ZM_MIN(sizeof(buf), tc->t->source_bytes - tc->sourced);
        lab_pattern(buf, n, 0, tc->sourced);
        if (zm_sock_send(s, buf, n) < 0)
            return;
        tc->sourced += n;
        tc->t->stats.bytes_out += n;
    }
    if (tc->sourced == tc->t->source_bytes) {
        tc->sourced++; /* FIN once */
        zm_sock_shutdown_write(s);
    }
}

static void target_data(zm_sock_t *s, const uint8_t *data, size_t len)
{
    target_conn_t *tc = zm_sock_ctx(s);
    tc->t->stats.bytes_in += len;
    if (!tc->mode && len) {
        switch (data[0]) {
        case LAB_MODE_ECHO:
        case LAB_MODE_HOLD:
        case LAB_MODE_SINK:
        case LAB_MODE_SOURCE:
        case LAB_MODE_NO_READ:
        case LAB_MODE_CLOSE:
            tc->mode = data[0];
            data++;
            len--;
            break;
        default:
            tc->mode = LAB_MODE_ECHO;
        }
        if (tc->mode == LAB_MODE_NO_READ) {
            zm_sock_pause_read(s);
            tc->stalled = true;
            tc->next_stalled = tc->t->stalled;
            if (tc->next_stalled)
                tc->next_stalled->prev_stalled = tc;
            tc->t->stalled = tc;
        }
        if (tc->mode == LAB_MODE_SOURCE)
            target_source_more(s, tc);
    }
    if (!len)
        return;
    if (tc->mode == LAB_MODE_CLOSE) {
        if (zm_sock_send(s, data, len) == 0)
            tc->t->stats.bytes_out += len;
        zm_sock_close(s, ZM_SOCK_CLOSE_FLUSH);
        return;
    }
    if (tc->mode == LAB_MODE_ECHO) {
        if (zm_sock_send(s, data, len) == 0)
            tc->t->stats.bytes_out += len;
        else
            zm_sock_close(s, 0);
        if (zm_sock_send_queued(s) > 1024 * 1024)
            zm_sock_pause_read(s);
    } else if (tc->mode == LAB_MODE_HOLD) {
        if (tc->held_len + len > tc->held_cap) {
            size_t cap = ZM_MAX(tc->held_cap * 2, tc->held_len + len);
            uint8_t *n = realloc(tc->held, cap);
            if (!n) {
                zm_sock_close(s, 0);
                return;
            }
            tc->held = n;
            tc->held_cap = cap;
        }
        memcpy(tc->held + tc->held_len, data, len);
        tc->held_len += len;
    }
}

static void target_drain(zm_sock_t *s)
{
    target_conn_t *tc = zm_sock_ctx(s);
    if (tc->mode == LAB_MODE_ECHO)
        zm_sock_resume_read(s);
    if (tc->mode == LAB_MODE_SOURCE)
        target_source_more(s, tc);
}

static void target_eof(zm_sock_t *s)
{
    target_conn_t *tc = zm_sock_ctx(s);
    if (tc->mode == LAB_MODE_HOLD && tc->held_len) {
        if (zm_sock_send(s, tc->held, tc->held_len) == 0)
            tc->t->stats.bytes_out += tc->held_len;
    }
    if (tc->mode != LAB_MODE_SOURCE)
        zm_sock_shutdown_write(s);
    /* Both directions done: close once the queue is out. */
    if (tc->mode != LAB_MODE_SOURCE || tc->sourced > tc->t->source_bytes)
        zm_sock_close(s, ZM_SOCK_CLOSE_FLUSH);
}

static void target_close(zm_sock_t *s, int err)
{
    target_conn_t *tc = zm_sock_ctx(s);
    unstall(tc);
    tc->t->stats.closed++;
    free(tc->held);
    free(tc);
}

static const zm_sock_handlers_t target_handlers = {
    .on_data = target_data,
    .on_eof = target_eof,
    .on_drain = target_drain,
    .on_close = target_close,
};

static void target_accept(zm_listener_t *l, int fd, const struct sockaddr *peer, socklen_t peer_len,
                          void *ctx)
{
    lab_target_t *t = ctx;
    target_conn_t *tc = calloc(1, sizeof(*tc));
    zm_sock_t *s;
    if (!tc || zm_sock_wrap(&s, t->loop, fd, &target_handlers, tc) < 0) {
        free(tc);
        close(fd);
        return;
    }
    tc->t = t;
    tc->sock = s;
    t->stats.accepted++;
}

int lab_target_start(lab_target_t **out, zm_loop_t *loop, const char *ip, int port,
                     uint64_t source_bytes)
{
    lab_target_t *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->loop = loop;
    t->source_bytes = source_bytes;
    int r = listen_on(&t->listener, loop, ip, port, 0, target_accept, t);
    if (r < 0) {
        free(t);
        return r;
    }
    *out = t;
    return 0;
}

int lab_target_port(const lab_target_t *t)
{
    return zm_listener_port(t->listener);
}

const lab_target_stats_t *lab_target_stats(const lab_target_t *t)
{
    return &t->stats;
}

void lab_target_stop(lab_target_t **pt)
{
    lab_target_t *t = *pt;
    if (!t)
        return;
    zm_listener_close(&t->listener);
    free(t);
    *pt = NULL;
}

/* ---- HBONE server ---- */

struct lab_server {
    zm_loop_t *loop;
    zm_listener_t *listener;
    zm_tls_ctx_t *tls;
    lab_server_stats_t stats;
};

static int server_handshake(zm_hbc_t *c)
{
    lab_server_t *srv = zm_hbc_ctx(c);
    const zm_spiffe_id_t *peer = zm_hbc_peer_id(c);
    if (peer)
        snprintf(srv->stats.last_peer_id, sizeof(srv->stats.last_peer_id), "%s", peer->uri);
    return 0;
}

static void tunnel_done(zm_tunnel_t *t, const zm_tunnel_stats_t *st, void *ctx)
{
    lab_server_t *srv = ctx;
    srv->stats.bytes_to_upstream += st->bytes_from_stream;
    srv->stats.bytes_from_upstream += st->bytes_to_stream;
}

static void server_request(zm_hbc_t *c, zm_hbone_stream_t *s, const zm_hbone_request_t *req)
{
    lab_server_t *srv = zm_hbc_ctx(c);
    struct sockaddr_in upstream;
    srv->stats.streams++;
    if (!req->method || strcmp(req->method, "CONNECT") != 0 || !req->authority ||
        lab_parse_addr(req->authority, &upstream) < 0) {
        srv->stats.refused++;
        zm_hbone_respond(s, 400, NULL, 0);
        return;
    }
    if (zm_tunnel_server(NULL, s, -1, (struct sockaddr *)&upstream, sizeof(upstream), tunnel_done,
                         srv) < 0) {
        srv->stats.refused++;
        zm_hbone_respond(s, 503, NULL, 0);
    }
}

static void server_conn_close(zm_hbc_t *c, const char *reason)
{
    lab_server_t *srv = zm_hbc_ctx(c);
    srv->stats.closed++;
    if (!zm_hbc_ready(c))
        srv->stats.handshakes_failed++;
}

static const zm_hbc_handlers_t server_handlers = {
    .on_handshake = server_handshake,
    .on_request = server_request,
    .on_close = server_conn_close,
};

static void server_accept(zm_listener_t *l, int fd, const struct sockaddr *peer, socklen_t peer_len,
                          void *ctx)
{
    lab_server_t *srv = ctx;
    srv->stats.connections++;
    zm_hbc_accept(NULL, srv->loop, fd, srv->tls, NULL, &server_handlers, srv);
}

int lab_server_start(lab_server_t **out, zm_loop_t *loop, const char *ip, int port,
                     zm_tls_ctx_t *tls, unsigned listen_flags)
{
    lab_server_t *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return -ENOMEM;
    srv->loop = loop;
    zm_tls_ctx_ref(tls);
    srv->tls = tls;
    int r = listen_on(&srv->listener, loop, ip, port, listen_flags, server_accept, srv);
    if (r < 0) {
        zm_tls_ctx_unref(&srv->tls);
        free(srv);
        return r;
    }
    *out = srv;
    return 0;
}

int lab_server_port(const lab_server_t *s)
{
    return zm_listener_port(s->listener);
}

const lab_server_stats_t *lab_server_stats(const lab_server_t *s)
{
    return &s->stats;
}

void lab_server_stop(lab_server_t **ps)
{
    lab_server_t *srv = *ps;
    if (!srv)
        return;
    zm_listener_close(&srv->listener);
    zm_tls_ctx_unref(&srv->tls);
    free(srv);
    *ps = NULL;
}
