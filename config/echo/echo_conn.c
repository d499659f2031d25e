/*
 * echo_conn.c — echo connections: accept, protocol sniffing, raw TCP echo.
 *
 * A new connection is in sniff mode: its first bytes are copied into a
 * fixed buffer (MC_ECHO_SNIFF_MAX) until mc_echo_classify() decides. The
 * HTTP/2 preface means h2c; `METHOD SP /target SP HTTP/1.<digit>` means
 * HTTP/1.x; the first byte that cannot continue either means raw echo. A
 * prefix that stays undecided for MC_ECHO_SNIFF_TIMEOUT_MS (say a raw client
 * that sent "GET" and waits), or that ends with the peer's FIN, is echoed
 * raw; one that fills the buffer while still looking like a request line is
 * handed to HTTP/1 (which answers 414). A connection that sends nothing
 * keeps waiting, so an idle pooled HTTP connection is never misclassified.
 *
 * Raw echo queues every received byte back; above the send queue's low
 * water it stops reading until on_drain, so a peer that does not read
 * cannot make us buffer without bound. FIN from the peer: what is queued
 * goes out, then our FIN, then the socket closes.
 *
 * Threading: the loop's thread.
 */
#include "echo.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

enum mc_echo_kind mc_echo_classify(const uint8_t *p, size_t len)
{
    size_t plen = sizeof(h2_preface) - 1;
    if (len && memcmp(p, h2_preface, ZM_MIN(len, plen)) == 0)
        return len >= plen ? MC_ECHO_KIND_H2 : MC_ECHO_UNDECIDED;
    size_t i = 0;
    /* Method: 1..20 upper-case letters (or '-', as in M-SEARCH). */
    while (i < len && ((p[i] >= 'A' && p[i] <= 'Z') || (i && p[i] == '-')))
        i++;
    if (i > 20 || (i < len && (i == 0 || p[i] != ' ')))
        return MC_ECHO_KIND_RAW;
    if (i++ == len)
        return MC_ECHO_UNDECIDED;
    if (i == len)
        return MC_ECHO_UNDECIDED;
    if (p[i] != '/' && p[i] != '*')
        return MC_ECHO_KIND_RAW;
    while (i < len && p[i] > 0x20 && p[i] < 0x7f)
        i++;
    if (i == len)
        return MC_ECHO_UNDECIDED;
    if (p[i++] != ' ')
        return MC_ECHO_KIND_RAW;
    static const char ver[] = "HTTP/1.";
    for (size_t k = 0; k < sizeof(ver) - 1; k++, i++) {
        if (i == len)
            return MC_ECHO_UNDECIDED;
        if (p[i] != (uint8_t)ver[k])
            return MC_ECHO_KIND_RAW;
    }
    if (i == len)
        return MC_ECHO_UNDECIDED;
    return p[i] >= '0' && p[i] <= '9' ? MC_ECHO_KIND_H1 : MC_ECHO_KIND_RAW;
}

void mc_echo_conn_close(mc_echo_conn_t *c, bool flush)
{
    if (c->closing)
        return;
    c->closing = true;
    zm_timer_stop(c->srv->loop, &c->sniff_timer);
    zm_sock_close(c->sock, flush ? ZM_SOCK_CLOSE_FLUSH : 0);
}

/* ---- raw echo ---- */

static void raw_send(mc_echo_conn_t *c, const uint8_t *data, size_t len)
{
    if (c->closing || len == 0)
        return;
    if (zm_sock_send(c->sock, data, len) < 0) {
        /* Queue limit or chunk pool exhausted: we cannot keep the bytes. */
        mc_echo_conn_close(c, false);
        return;
    }
    if (zm_sock_above_low_water(c->sock))
        zm_sock_pause_read(c->sock);
}

static void raw_drain(mc_echo_conn_t *c)
{
    if (c->peer_eof) {
        /* Our FIN is out (or everything was sent and close sends it). */
        if (zm_sock_send_queued(c->sock) == 0)
            mc_echo_conn_close(c, false);
        return;
    }
    zm_sock_resume_read(c->sock);
}

/* ---- sniffing ---- */

static void decide(mc_echo_conn_t *c, enum mc_echo_kind kind, const uint8_t *rest, size_t rest_len)
{
    zm_timer_stop(c->srv->loop, &c->sniff_timer);
    size_t n = c->sniff_len;
    c->sniff_len = 0;
    switch (kind) {
    case MC_ECHO_KIND_H2:
        if (mc_echo_h2_start(c) < 0) {
            mc_echo_conn_close(c, false);
            return;
        }
        c->mode = MC_ECHO_H2;
        mc_echo_h2_input(c, c->sniff, n);
        if (rest_len && !c->closing)
            mc_echo_h2_input(c, rest, rest_len);
        return;
    case MC_ECHO_KIND_H1:
        if (mc_echo_h1_start(c) < 0) {
            mc_echo_conn_close(c, false);
            return;
        }
        c->mode = MC_ECHO_H1;
        mc_echo_h1_input(c, c->sniff, n);
        if (rest_len && !c->closing)
            mc_echo_h1_input(c, rest, rest_len);
        return;
    default:
        c->mode = MC_ECHO_RAW;
        raw_send(c, c->sniff, n);
        raw_send(c, rest, rest_len);
        return;
    }
}

static void sniff_timeout(zm_timer_t *t)
{
    mc_echo_conn_t *c = ZM_CONTAINER_OF(t, mc_echo_conn_t, sniff_timer);
    if (!c->closing && c->mode == MC_ECHO_SNIFF)
        decide(c, MC_ECHO_KIND_RAW, NULL, 0);
}

static void sniff(mc_echo_conn_t *c, const uint8_t *data, size_t len)
{
    size_t take = ZM_MIN(len, sizeof(c->sniff) - c->sniff_len);
    memcpy(c->sniff + c->sniff_len, data, take);
    c->sniff_len += take;
    enum mc_echo_kind kind = mc_echo_classify(c->sniff, c->sniff_len);
    if (kind == MC_ECHO_UNDECIDED) {
        if (c->sniff_len < sizeof(c->sniff)) {
            if (!zm_timer_armed(&c->sniff_timer))
                zm_timer_start(c->srv->loop, &c->sniff_timer, MC_ECHO_SNIFF_TIMEOUT_MS,
                               sniff_timeout);
            return;
        }
        kind = MC_ECHO_KIND_H1; /* a request line longer than we look at */
    }
    decide(c, kind, data + take, len - take);
}

/* ---- socket callbacks ---- */

static void conn_data(zm_sock_t *s, const uint8_t *data, size_t len)
{
    mc_echo_conn_t *c = zm_sock_ctx(s);
    if (c->closing)
        return;
    switch (c->mode) {
    case MC_ECHO_SNIFF:
        sniff(c, data, len);
        break;
    case MC_ECHO_RAW:
        raw_send(c, data, len);
        break;
    case MC_ECHO_H1:
        mc_echo_h1_input(c, data, len);
        break;
    case MC_ECHO_H2:
        mc_echo_h2_input(c, data, len);
        break;
    }
}

static void conn_eof(zm_sock_t *s)
{
    mc_echo_conn_t *c = zm_sock_ctx(s);
    c->peer_eof = true;
    if (c->closing)
        return;
    if (c->mode == MC_ECHO_SNIFF)
        decide(c, MC_ECHO_KIND_RAW, NULL, 0);
    if (c->closing)
        return;
    switch (c->mode) {
    case MC_ECHO_RAW:
        if (zm_sock_shutdown_write(s) < 0)
            mc_echo_conn_close(c, false);
        break;
    case MC_ECHO_H1:
        mc_echo_h1_eof(c);
        break;
    case MC_ECHO_H2:
        mc_echo_h2_eof(c);
        break;
    default:
        break;
    }
}

static void conn_drain(zm_sock_t *s)
{
    mc_echo_conn_t *c = zm_sock_ctx(s);
    if (c->closing)
        return;
    switch (c->mode) {
    case MC_ECHO_RAW:
        raw_drain(c);
        break;
    case MC_ECHO_H1:
        mc_echo_h1_drain(c);
        break;
    case MC_ECHO_H2:
        mc_echo_h2_drain(c);
        break;
    default:
        break;
    }
}

static void conn_free(mc_echo_conn_t *c)
{
    mc_echo_srv_t *srv = c->srv;
    zm_timer_stop(srv->loop, &c->sniff_timer);
    mc_echo_h1_free(c);
    mc_echo_h2_free(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
}

static void conn_close(zm_sock_t *s, int err)
{
    conn_free(zm_sock_ctx(s));
}

static const zm_sock_handlers_t conn_handlers = {
    .on_data = conn_data,
    .on_eof = conn_eof,
    .on_drain = conn_drain,
    .on_close = conn_close,
};

void mc_echo_on_accept(zm_listener_t *l, int fd, const struct sockaddr *peer, socklen_t peer_len,
                       void *ctx)
{
    mc_echo_srv_t *srv = ctx;
    mc_echo_conn_t *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return;
    }
    c->srv = srv;
    if (zm_sock_wrap(&c->sock, srv->loop, fd, &conn_handlers, c) < 0) {
        free(c);
        close(fd);
        return;
    }
    c->next = srv->conns;
    if (c->next)
        c->next->prev = c;
    srv->conns = c;
}

void mc_echo_conn_free_all(mc_echo_srv_t *srv)
{
    while (srv->conns)
        conn_free(srv->conns);
}
