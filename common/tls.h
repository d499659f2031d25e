/*
 * tls.h — TLS (wolfSSL) driven over memory buffers.
 *
 * wolfSSL never touches a socket: custom IO callbacks read ciphertext from an
 * input buffer that the caller fills with zm_tls_feed() and write ciphertext
 * to an output buffer that the caller drains with zm_tls_out() /
 * zm_tls_out_consume() and hands to the event loop. So the same code is
 * exercised in memory by tests and over io_uring in the daemons. On the data
 * path the bytes are copied as little as possible: borrowed input
 * (zm_tls_feed_borrow) is read in place, and a sink takes ciphertext
 * straight into the socket's queue (zm_tls_set_sink copies each record in;
 * zm_tls_set_sink_space lets records be sealed right there). Once the
 * handshake is done on an AES-GCM suite, records are protected by our own
 * TLS 1.3 record layer (tls_record.c) rather than wolfSSL's, which decrypts
 * straight from the socket's buffer into the reader's and encrypts straight
 * into the socket's queue.
 *
 * Between mesh proxies: TLS 1.3 only, ALPN "h2", mutual authentication, peer
 * identity = the SPIFFE ID in the certificate's first URI SAN. A server
 * requires the client's trust domain to equal its own; a client may also
 * require the server to hold one of a list of expected identities.
 *
 * A zm_tls_ctx_t holds one identity (certificate, key, trust bundle). It is
 * reference counted: a connection keeps the context it started with, so
 * reloading files builds a new context and swaps it in without dropping open
 * connections (see zm_tls_slot_reload()).
 *
 * Threading: a context may be shared by workers (wolfSSL_CTX is read-only
 * after set-up; the refcount is atomic); a zm_tls_t belongs to one thread.
 */
#ifndef ZM_TLS_H
#define ZM_TLS_H

#include "zm.h"

#include <stdbool.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef struct zm_tls_ctx zm_tls_ctx_t;
typedef struct zm_tls zm_tls_t;

#define ZM_SPIFFE_ID_MAX 256

typedef struct zm_tls_ctx_config {
    bool server;
    /* PEM files, or PEM in memory when the *_pem field is set instead.
     * A client may give no certificate/key at all (it then needs
     * trust_domain); a server always needs both. */
    const char *cert_file, *key_file, *ca_file;
    const char *cert_pem, *key_pem, *ca_pem;
    /* Peers must present a SPIFFE ID in this trust domain. NULL: take it
     * from our own certificate's URI SAN. */
    const char *trust_domain;
    /* Server: require a client certificate (default true between proxies;
     * set allow_no_client_cert for an ingress gateway's public listener). */
    bool allow_no_client_cert;
    /* Allow TLS 1.2 as well (never between mesh proxies). */
    bool allow_tls12;
    /* ALPN protocol to offer / require; NULL means "h2". */
    const char *alpn;
    /* TLS 1.3 suites to offer or accept, wolfSSL names joined by ':'; NULL:
     * TLS13-AES128-GCM-SHA256, TLS13-AES256-GCM-SHA384 and
     * TLS13-CHACHA20-POLY1305-SHA256 (plus their TLS 1.2 ECDHE-ECDSA
     * counterparts with allow_tls12). */
    const char *ciphers;
    /* Leave record protection to wolfSSL after the handshake too (slower:
     * for tests that compare both record layers). */
    bool wolfssl_records;
} zm_tls_ctx_config_t;

/* A parsed spiffe://<td>/ns/<ns>/sa/<sa>. */
typedef struct zm_spiffe_id {
    char uri[ZM_SPIFFE_ID_MAX];
    char trust_domain[128];
    char ns[64];
    char sa[64];
} zm_spiffe_id_t;

/* Parses a SPIFFE URI; -EINVAL if it is not of the /ns/NS/sa/SA form. */
int zm_spiffe_parse(const char *uri, zm_spiffe_id_t *out);

/* One-time library set-up; safe to call more than once (zm_tls_ctx_new
 * calls it). zm_tls_global_cleanup() frees wolfSSL's globals at process exit
 * (after every context is gone); TLS cannot be used again afterwards. */
int zm_tls_global_init(void);
void zm_tls_global_cleanup(void);

int zm_tls_ctx_new(zm_tls_ctx_t **out, const zm_tls_ctx_config_t *cfg, zm_err_t *err);
void zm_tls_ctx_ref(zm_tls_ctx_t *ctx);
void zm_tls_ctx_unref(zm_tls_ctx_t **ctx);
/* Our own SPIFFE ID (from our certificate). */
const zm_spiffe_id_t *zm_tls_ctx_identity(const zm_tls_ctx_t *ctx);
/* Seconds since the epoch at which our certificate expires. */
int64_t zm_tls_ctx_not_after(const zm_tls_ctx_t *ctx);

/* A reloadable slot: holds the current context for one identity and swaps
 * it when the files change. zm_tls_slot_get() returns a new reference. */
typedef struct zm_tls_slot zm_tls_slot_t;
int zm_tls_slot_new(zm_tls_slot_t **out, const zm_tls_ctx_config_t *cfg, zm_err_t *err);
/* Re-reads the files if their mtime/size changed: 1 swapped, 0 unchanged,
 * <0 the new files are invalid (err filled; the old context stays). */
int zm_tls_slot_reload(zm_tls_slot_t *slot, zm_err_t *err);
zm_tls_ctx_t *zm_tls_slot_get(zm_tls_slot_t *slot);
void zm_tls_slot_free(zm_tls_slot_t **slot);

/* A connection. expected_ids (client side; NULL-terminated, may be NULL)
 * lists the SPIFFE IDs the server may hold. */
int zm_tls_new(zm_tls_t **out, zm_tls_ctx_t *ctx, const char *const *expected_ids);
void zm_tls_free(zm_tls_t **t);

/* Appends ciphertext received from the network (copied). */
int zm_tls_feed(zm_tls_t *t, const uint8_t *data, size_t len);
/* The same without the copy: TLS reads data in place (after any bytes
 * buffered before) until zm_tls_feed_settle(), which the caller must call
 * before data goes away; it copies only what TLS has not consumed by then
 * (a partial record). settle returns 0 or -ENOBUFS (the remainder exceeds
 * the input bound, as zm_tls_feed would). Borrowing again before settling
 * settles first. */
int zm_tls_feed_borrow(zm_tls_t *t, const uint8_t *data, size_t len);
int zm_tls_feed_settle(zm_tls_t *t);

/* Advances the handshake: ZM_OK established, ZM_AGAIN needs more input
 * (send zm_tls_out first), -EACCES peer refused (identity, trust domain,
 * missing cert, expired, unknown CA), -EPROTO other failure. */
int zm_tls_handshake(zm_tls_t *t);
bool zm_tls_established(const zm_tls_t *t);

/* Plaintext out: n > 0 bytes, 0 the peer closed (close_notify), ZM_AGAIN
 * nothing buffered, < 0 error. */
ssize_t zm_tls_read(zm_tls_t *t, uint8_t *buf, size_t len);
/* Encrypts plaintext into the output buffer; returns len or < 0. The output
 * buffer grows as needed up to 16 MiB (then -ENOBUFS, fatal): drain it with
 * zm_tls_out() before writing more. Input is bounded at 256 KiB buffered
 * (zm_tls_feed returns -ENOBUFS): read plaintext before feeding more. */
ssize_t zm_tls_write(zm_tls_t *t, const uint8_t *data, size_t len);
/* The same for pieces that make one plaintext stream (e.g. a frame header
 * and the payload it announces): records are sealed across the pieces
 * without first joining them. Returns the total length or < 0. */
ssize_t zm_tls_writev(zm_tls_t *t, const struct iovec *iov, int iovcnt);
/* Queues close_notify. */
int zm_tls_shutdown(zm_tls_t *t);

/* Ciphertext sink: once set, wolfSSL's records go straight to write(ctx, p,
 * n) (e.g. a socket's send queue) instead of the output buffer. write
 * returns >= 0 when it took all n bytes, < 0 when it took none (-ENOBUFS:
 * full); refused bytes and everything after them go to the output buffer
 * as before, in order, until zm_tls_out() drains it: so a caller that
 * keeps draining zm_tls_out() (e.g. on the socket's drain event) needs no
 * other change. NULL write removes the sink. */
typedef int (*zm_tls_sink_fn)(void *ctx, const uint8_t *p, size_t n);
void zm_tls_set_sink(zm_tls_t *t, zm_tls_sink_fn write, void *ctx);
/* A sink records can be sealed into in place (used in addition to the
 * copying one, by our record layer): reserve returns at least min
 * contiguous bytes (*avail: how many) or NULL when full; commit(n) queues
 * the first n of them. Nothing else is written to the sink in between. */
typedef uint8_t *(*zm_tls_reserve_fn)(void *ctx, size_t min, size_t *avail);
typedef void (*zm_tls_commit_fn)(void *ctx, size_t n);
void zm_tls_set_sink_space(zm_tls_t *t, zm_tls_reserve_fn reserve, zm_tls_commit_fn commit,
                           void *ctx);
/* True once our record layer protects this connection's records. */
bool zm_tls_own_records(const zm_tls_t *t);

/* Ciphertext waiting to be sent: returns its length and points *data at it.
 * Call zm_tls_out_consume() once those bytes are queued on the socket. */
size_t zm_tls_out(zm_tls_t *t, const uint8_t **data);
void zm_tls_out_consume(zm_tls_t *t, size_t n);

/* After the handshake: the peer's SPIFFE ID (NULL if none), ALPN, version. */
const zm_spiffe_id_t *zm_tls_peer_id(const zm_tls_t *t);
const char *zm_tls_alpn(const zm_tls_t *t);
const char *zm_tls_version(const zm_tls_t *t);
/* Why the last failure happened, for logs ("certificate expired", ...). */
const char *zm_tls_error(const zm_tls_t *t);

/* ---- certificates (shared by tests and the mesh CA) ---- */

typedef struct zm_cert_req {
    const char *spiffe_id; /* URI SAN; NULL for a CA */
    const char *common_name;
    bool is_ca;
    int64_t not_before; /* seconds since epoch; 0 = now - 60 s */
    int64_t not_after;  /* 0 = not_before + 24 h */
} zm_cert_req_t;

/* Generates an ECDSA P-256 key and a certificate for it, signed by the CA
 * given as PEM (or self-signed when ca_cert_pem is NULL). Outputs are
 * malloc'd PEM strings. */
int zm_cert_issue(const zm_cert_req_t *req, const char *ca_cert_pem, const char *ca_key_pem,
                  char **cert_pem, char **key_pem, zm_err_t *err);

#endif
