/*
 * lab_fixture.h — the loopback HBONE fixture shared by the integration
 * tests: a loop with an HBONE server and a target (hbone_lab), client
 * connections, and a checking client stream (cstream) that writes a seeded
 * pattern and verifies every byte that comes back.
 */
#ifndef ZM_LAB_FIXTURE_H
#define ZM_LAB_FIXTURE_H

#include "hbone_lab.h"

#define MIB (1024u * 1024u)

typedef struct lab {
    zm_loop_t *loop;
    lab_certs_t certs;
    zm_tls_ctx_t *server_tls, *client_tls;
    lab_target_t *target;
    lab_server_t *server;
    struct sockaddr_in server_addr;
    char target_authority[32];
} lab_t;

typedef struct cstream {
    const zm_hbs_ops_t *ops;
    zm_hbone_stream_t *s;
    lab_t *lab;
    char mode;
    bool mode_sent, shut, eof, closed, saw_again;
    bool send_after_eof; /* hold our bytes until the peer's FIN */
    uint64_t seed, expect_seed;
    uint64_t to_send, sent, received;
    uint64_t sum_sent, sum_recv;
    int status;
    uint32_t close_code;
    bool mismatch;
} cstream_t;

typedef bool (*cond_fn)(void *arg);

typedef struct client {
    zm_hbc_t *c;
    bool closed;
    const char *reason;
} client_t;

typedef struct streams {
    cstream_t *v;
    size_t n;
} streams_t;

/* cmocka setup/teardown: *state becomes a lab_t. Teardown waits until the
 * server and target have no connection left, and fails otherwise. */
int lab_setup(void **state);
int lab_teardown(void **state);

/* Runs the loop until cond holds or timeout_ms passes; returns cond. */
bool run_until(lab_t *lab, cond_fn cond, void *arg, uint64_t timeout_ms);
bool server_idle(void *arg);
bool target_idle(void *arg);

void cs_init(cstream_t *cs, lab_t *lab, char mode, uint64_t seed, uint64_t to_send);
extern const zm_hbs_ops_t cs_ops;

void client_connect(lab_t *lab, client_t *cl, const char *expected);
bool client_gone(void *arg);
void client_close(lab_t *lab, client_t *cl);
bool all_closed(void *arg);
void open_stream(client_t *cl, cstream_t *cs, const char *authority);

#endif
