/*
 * tls_support.h — test helpers for anything that runs TLS in memory (TLS,
 * HBONE): a throw-away CA issuing SPIFFE identities as PEM strings, context
 * construction from those strings, and a pump that shuttles ciphertext
 * between two zm_tls_t until both finish the handshake or one fails.
 *
 * Not thread-safe; tests only. Every function asserts (cmocka) on set-up
 * failures so tests stay short.
 */
#ifndef ZM_TLS_SUPPORT_H
#define ZM_TLS_SUPPORT_H

#include "tls.h"

/* A CA as PEM strings (malloc'd). */
typedef struct ts_ca {
    char *cert_pem, *key_pem;
} ts_ca_t;

/* An identity issued by a ts_ca_t, with the CA's certificate as bundle. */
typedef struct ts_ident {
    char *cert_pem, *key_pem;
    const char *ca_pem; /* borrowed from the CA */
} ts_ident_t;

void ts_ca_make(ts_ca_t *ca, const char *cn);
void ts_ca_free(ts_ca_t *ca);

/* Issues spiffe_id (NULL: no URI SAN) valid [not_before, not_after]
 * (0, 0: now - 60 s .. now + 24 h). */
void ts_ident_issue(ts_ident_t *id, const ts_ca_t *ca, const char *spiffe_id, int64_t not_before,
                    int64_t not_after);
void ts_ident_free(ts_ident_t *id);

/* A context for id (server or client) with otherwise default settings. */
zm_tls_ctx_t *ts_ctx(const ts_ident_t *id, bool server, const char *trust_domain);

/* Result of pumping: each side's last zm_tls_handshake() value. */
typedef struct ts_pump_result {
    int client, server;
} ts_pump_result_t;

/* Moves all pending output of a into b's input; returns bytes moved or
 * < 0 when zm_tls_feed refused. */
ssize_t ts_move(zm_tls_t *from, zm_tls_t *to);

/* Runs both handshakes, moving bytes both ways, until both are established,
 * one fails and no bytes remain in flight, or nothing moves any more. */
ts_pump_result_t ts_pump(zm_tls_t *client, zm_tls_t *server);

/* Verifies cert_pem against ca_pem with wolfSSL's certificate manager:
 * 0 valid, else the wolfSSL error code. */
int ts_verify_chain(const char *ca_pem, const char *cert_pem);

#endif
