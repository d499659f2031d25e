/*
 * echo.h — the sandbox's echo application (`zm-echo`), shared by its files.
 *
 * One io_uring loop thread serves every listening port. Each accepted
 * connection starts in "sniff" mode and is classified by its first bytes:
 * the HTTP/2 connection preface makes it h2c (echo_h2.c, nghttp2), an
 * HTTP/1 request line (`METHOD SP /target SP HTTP/1.x`) makes it HTTP/1.1
 * (echo_h1.c, libhttp-parser), anything else makes it a raw TCP echo
 * (echo_conn.c). Both HTTP flavours turn a request into an mc_echo_req_t and
 * answer with an mc_echo_reply_t built by echo_reply.c: one compact JSON
 * object on one line describing the request and which pod answered.
 *
 * Ownership: a connection (mc_echo_conn_t) is calloc'd at accept, listed on
 * its server (so shutdown can free what the loop no longer reports) and
 * freed in on_close, or by mc_echo_conn_free_all() before zm_loop_destroy().
 * Every buffer is bounded (sniff bytes, request target, header bytes, the
 * pending pipelined input); going over a bound is a 4xx or a closed
 * connection, never an abort. Timers are stopped before their owner goes.
 *
 * Threading: everything runs on the loop's thread; the SIGTERM handler only
 * calls zm_loop_stop(), which is async-signal-safe (an atomic and a write).
 */
#ifndef MC_ECHO_H
#define MC_ECHO_H

#include "loop.h"
#include "strbuf.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define MC_ECHO_MAX_TARGET 8192        /* request target bytes (414 beyond) */
#define MC_ECHO_MAX_HEADER_BYTES 65536 /* names + values of one request (431) */
#define MC_ECHO_MAX_SIZE (1ull << 30)  /* size=N bound */
#define MC_ECHO_MAX_DELAY_MS 600000ull /* delay=MS bound */
#define MC_ECHO_SNIFF_MAX 4096         /* bytes looked at to classify */
#define MC_ECHO_SNIFF_TIMEOUT_MS 3000  /* undecided prefix → raw echo */
#define MC_ECHO_H2_MAX_STREAMS 100

/* Per-process settings (flags and environment). */
typedef struct mc_echo_cfg {
    const char *pod;
    const char *ns;
    const char *version;
    int status;        /* 0 = 200 */
    uint64_t delay_ms; /* every request */
    uint32_t fail_ppm; /* fraction of 503s, in millionths */
} mc_echo_cfg_t;

typedef struct mc_echo_conn mc_echo_conn_t;

typedef struct mc_echo_srv {
    zm_loop_t *loop;
    mc_echo_cfg_t cfg;
    uint32_t fail_acc;     /* error-diffusion accumulator for fail_ppm, < 1e6 */
    mc_echo_conn_t *conns; /* every live connection */
} mc_echo_srv_t;

/* One request as received, HTTP/1 or HTTP/2 alike. */
typedef struct mc_echo_req {
    char method[24];
    zm_strbuf_t target; /* path?query as received */
    json_t *headers;    /* object: lowercased name → value (joined with ", ") */
    size_t header_bytes;
    uint64_t body_bytes;
    int error; /* 0, or the status to answer (414, 431, 400) */
} mc_echo_req_t;

/* A response: status and a body produced piecewise (head, pad, tail). */
typedef struct mc_echo_reply {
    int status;
    uint64_t delay_ms;
    const char *ctype;
    char *head; /* malloc'd */
    size_t head_len;
    uint64_t pad; /* filler bytes after head */
    const char *tail;
    size_t tail_len;
    uint64_t total; /* head_len + pad + tail_len */
    uint64_t off;   /* bytes already produced */
} mc_echo_reply_t;

typedef struct mc_echo_h1 mc_echo_h1_t;
typedef struct mc_echo_h2 mc_echo_h2_t;

enum mc_echo_mode { MC_ECHO_SNIFF, MC_ECHO_RAW, MC_ECHO_H1, MC_ECHO_H2 };

struct mc_echo_conn {
    mc_echo_srv_t *srv;
    zm_sock_t *sock;
    mc_echo_conn_t *prev, *next;
    enum mc_echo_mode mode;
    bool closing;  /* zm_sock_close called: do no more work */
    bool peer_eof; /* the peer sent FIN */
    zm_timer_t sniff_timer;
    size_t sniff_len;
    uint8_t sniff[MC_ECHO_SNIFF_MAX];
    mc_echo_h1_t *h1;
    mc_echo_h2_t *h2;
};

/* ---- echo_conn.c ---- */

/* Accept callback for every listener (ctx: the server). */
void mc_echo_on_accept(zm_listener_t *l, int fd, const struct sockaddr *peer, socklen_t peer_len,
                       void *ctx);
/* Closes the connection (flushing queued bytes when flush). */
void mc_echo_conn_close(mc_echo_conn_t *c, bool flush);
/* At shutdown, before zm_loop_destroy() (which closes sockets without
 * callbacks): frees every connection and stops its timers. */
void mc_echo_conn_free_all(mc_echo_srv_t *srv);

/* Classification of a connection's first bytes. */
enum mc_echo_kind { MC_ECHO_UNDECIDED, MC_ECHO_KIND_RAW, MC_ECHO_KIND_H1, MC_ECHO_KIND_H2 };
enum mc_echo_kind mc_echo_classify(const uint8_t *p, size_t len);

/* ---- echo_h1.c ---- */

int mc_echo_h1_start(mc_echo_conn_t *c);
/* Input bytes (copied as needed). */
void mc_echo_h1_input(mc_echo_conn_t *c, const uint8_t *data, size_t len);
void mc_echo_h1_drain(mc_echo_conn_t *c);
void mc_echo_h1_eof(mc_echo_conn_t *c);
void mc_echo_h1_free(mc_echo_conn_t *c);

/* ---- echo_h2.c ---- */

int mc_echo_h2_start(mc_echo_conn_t *c);
void mc_echo_h2_input(mc_echo_conn_t *c, const uint8_t *data, size_t len);
void mc_echo_h2_drain(mc_echo_conn_t *c);
void mc_echo_h2_eof(mc_echo_conn_t *c);
void mc_echo_h2_free(mc_echo_conn_t *c);

/* ---- echo_reply.c ---- */

void mc_echo_req_init(mc_echo_req_t *r);
/* Empties r for the next request (keeps the target's memory). */
void mc_echo_req_reset(mc_echo_req_t *r);
void mc_echo_req_free(mc_echo_req_t *r);
void mc_echo_req_set_method(mc_echo_req_t *r, const char *m, size_t len);
/* Appends to the target; sets r->error = 414 past the bound. */
void mc_echo_req_add_target(mc_echo_req_t *r, const char *p, size_t len);
/* Records one header (name lowercased, repeats joined with ", "); sets
 * r->error = 431 past the bound. */
void mc_echo_req_add_header(mc_echo_req_t *r, const char *name, size_t nlen, const char *value,
                            size_t vlen);

/* Builds the answer to req: options (query, then x-echo-* headers, then the
 * pod's flags), the fail draw, the JSON body. Returns 0 or -ENOMEM. */
int mc_echo_reply_build(mc_echo_srv_t *srv, const mc_echo_req_t *req, mc_echo_reply_t *out);
/* A small text/plain answer (errors). */
int mc_echo_reply_text(mc_echo_reply_t *out, int status, const char *text);
/* Copies up to cap next body bytes into buf; returns how many (0 = done). */
size_t mc_echo_reply_read(mc_echo_reply_t *r, uint8_t *buf, size_t cap);
/* Whether the status forbids a body (1xx, 204, 304). */
bool mc_echo_status_bodyless(int status);
void mc_echo_reply_clear(mc_echo_reply_t *r);

#endif
