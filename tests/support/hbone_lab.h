/*
 * hbone_lab.h — a small HBONE setup on loopback, shared by the HBONE
 * integration tests, the demo and the benchmark tools.
 *
 * - certificates: a mesh CA and SPIFFE workload certificates, in memory or
 *   written as files;
 * - a target TCP server whose behaviour is chosen by the first byte a
 *   client sends (echo, echo after EOF, sink, source, never read);
 * - an HBONE server: mTLS, answers CONNECT by dialling :authority itself
 *   and splicing (400 for other methods or a bad authority, 503 when the
 *   dial fails).
 *
 * Threading: each server belongs to the loop it was made on.
 */
#ifndef ZM_HBONE_LAB_H
#define ZM_HBONE_LAB_H

#include "hbone_io.h"
#include "tunnel.h"

/* First byte a client sends to the target. */
#define LAB_MODE_ECHO 'E'    /* echo every byte, FIN after the peer's FIN */
#define LAB_MODE_HOLD 'H'    /* keep everything until FIN, then echo it all */
#define LAB_MODE_SINK 'D'    /* discard */
#define LAB_MODE_SOURCE 'S'  /* send lab_source_bytes of pattern, FIN, keep reading */
#define LAB_MODE_NO_READ 'P' /* never read (a stalled peer) */
/* Echo the first bytes after this one, then close: ends a tunnel without a
 * half-close, which proxies with an HTTP/1 hop (nghttpx) need. */
#define LAB_MODE_CLOSE 'C'

typedef struct lab_certs {
    char *ca_cert, *ca_key;
    char *server_cert, *server_key;
    char *client_cert, *client_key;
} lab_certs_t;

#define LAB_SERVER_ID "spiffe://cluster.local/ns/lab/sa/server"
#define LAB_CLIENT_ID "spiffe://cluster.local/ns/lab/sa/client"

int lab_certs_make(lab_certs_t *c);
void lab_certs_free(lab_certs_t *c);
/* Writes ca.pem, server.pem, server.key, client.pem, client.key into dir. */
int lab_certs_write(const lab_certs_t *c, const char *dir);

/* TLS contexts from PEM strings. */
zm_tls_ctx_t *lab_tls_ctx(const char *cert, const char *key, const char *ca, bool server);
/* The same from PEM files. */
zm_tls_ctx_t *lab_tls_ctx_files(const char *cert, const char *key, const char *ca, bool server);

typedef struct lab_target lab_target_t;
typedef struct lab_target_stats {
    uint64_t accepted, closed;
    uint64_t bytes_in, bytes_out;
} lab_target_stats_t;

int lab_target_start(lab_target_t **out, zm_loop_t *loop, const char *ip, int port,
                     uint64_t source_bytes);
int lab_target_port(const lab_target_t *t);
const lab_target_stats_t *lab_target_stats(const lab_target_t *t);
/* Stalled ('P') connections start reading (and discarding) again. */
void lab_target_release(lab_target_t *t);
void lab_target_stop(lab_target_t **t);

typedef struct lab_server lab_server_t;
typedef struct lab_server_stats {
    uint64_t connections, closed, handshakes_failed, streams, refused;
    uint64_t bytes_to_upstream, bytes_from_upstream;
    char last_peer_id[ZM_SPIFFE_ID_MAX];
} lab_server_stats_t;

int lab_server_start(lab_server_t **out, zm_loop_t *loop, const char *ip, int port,
                     zm_tls_ctx_t *tls, unsigned listen_flags);
int lab_server_port(const lab_server_t *s);
const lab_server_stats_t *lab_server_stats(const lab_server_t *s);
/* Stops accepting and frees the server: call once every connection it
 * accepted has closed (stats.closed == stats.connections). */
void lab_server_stop(lab_server_t **s);

/* Fills buf with the pattern for stream `seed` starting at offset `off`. */
void lab_pattern(uint8_t *buf, size_t len, uint64_t seed, uint64_t off);

/* "127.0.0.1:8080" → sockaddr_in; -EINVAL if not ip:port. */
int lab_parse_addr(const char *s, struct sockaddr_in *out);

#endif
