/*
 * tls_int.h — TLS internals, private to tls.c, tls_ctx.c and tls_record.c.
 *
 * tls.c drives wolfSSL (handshake, identity checks, contexts); once a
 * connection is established on an AES-GCM suite, tls_record.c takes over
 * record protection with the traffic secrets wolfSSL handed over during the
 * handshake (see tls_record.c for why and how). Both work on the same
 * connection object and its input/output byte buffers, defined here.
 * Helpers are named zm__tls_<verb>: linkable, not part of the API.
 *
 * Threading: a zm_tls_t belongs to one thread.
 */
#ifndef ZM_TLS_INT_H
#define ZM_TLS_INT_H

#include <wolfssl/options.h>

#include <wolfssl/ssl.h>

#include <stdatomic.h>
#include <sys/uio.h>

#include "tls.h"

#define ZM_TLS_IN_MAX (256u * 1024)
#define ZM_TLS_OUT_MAX (16u * 1024 * 1024)
#define ZM_TLS_BUF_INIT (17u * 1024 + 512) /* one full TLS record */
#define ZM_TLS_SECRET_MAX 48               /* SHA-384 */

#if defined(HAVE_SECRET_CALLBACK) && defined(WOLFSSL_AESGCM_STREAM)
#define ZM_TLS_RECORD_LAYER 1
#else
#define ZM_TLS_RECORD_LAYER 0
#endif

struct zm_tls_ctx {
    atomic_int refs;
    WOLFSSL_CTX *ssl_ctx;
    bool server, allow_no_client_cert, wolfssl_records;
    char alpn[32];
    char trust_domain[128];
    zm_spiffe_id_t self;
    int64_t not_after;
};

#if ZM_TLS_RECORD_LAYER
#include <wolfssl/wolfcrypt/aes.h>
#if ZM_HAVE_IPSEC_MB
#include <intel-ipsec-mb.h>
#endif

/* One direction's AES-GCM key (tls_gcm.c): ipsec-mb's when available. */
typedef struct zm_tls_gcm {
#if ZM_HAVE_IPSEC_MB
    struct gcm_key_data mb_key; /* 64-byte aligned: the holder must be too */
    const struct mb_fns *mb;    /* NULL: wolfCrypt's */
#endif
    Aes aes;
    bool aes_live;
} zm_tls_gcm_t;

/* The state of one sealing in progress. */
typedef struct zm_tls_gcm_op {
#if ZM_HAVE_IPSEC_MB
    struct gcm_context_data mb_ctx;
#endif
    int unused;
} zm_tls_gcm_op_t;

/* "ipsec-mb" or "wolfcrypt": which AES-GCM the record layer uses here. */
const char *zm__tls_gcm_engine(void);
/* Tests: keys made from now on use wolfCrypt even where ipsec-mb is there. */
void zm__tls_gcm_use_wolfcrypt(bool on);
int zm__tls_gcm_init(zm_tls_gcm_t *g, const uint8_t *key, unsigned key_len);
void zm__tls_gcm_free(zm_tls_gcm_t *g);
/* Sealing in pieces: begin (nonce and additional data), updates, end. */
int zm__tls_gcm_seal_begin(zm_tls_gcm_t *g, zm_tls_gcm_op_t *op, const uint8_t nonce[12],
                           const uint8_t *aad, size_t aad_len);
int zm__tls_gcm_seal_update(zm_tls_gcm_t *g, zm_tls_gcm_op_t *op, uint8_t *out, const uint8_t *in,
                            size_t n);
int zm__tls_gcm_seal_end(zm_tls_gcm_t *g, zm_tls_gcm_op_t *op, uint8_t tag[16]);
/* Opens n bytes at once: 0, or -EBADMSG when the tag is wrong (out then
 * holds nothing to use). */
int zm__tls_gcm_open(zm_tls_gcm_t *g, const uint8_t nonce[12], const uint8_t *aad, size_t aad_len,
                     uint8_t *out, const uint8_t *in, size_t n, const uint8_t tag[16]);
#endif

typedef struct zm_tls_buf {
    uint8_t *p;
    size_t cap, head, tail;
} zm_tls_buf_t;

typedef struct zm_tls_rl zm_tls_rl_t;

struct zm_tls {
    WOLFSSL *ssl;
    zm_tls_ctx_t *ctx;
    zm_tls_buf_t in, out;
    const uint8_t *lent; /* borrowed input, until zm_tls_feed_settle */
    size_t lent_len;
    zm_tls_sink_fn sink;
    void *sink_ctx;
    zm_tls_reserve_fn space_reserve;
    zm_tls_commit_fn space_commit;
    void *space_ctx;
    char **expected; /* NULL-terminated copy, one allocation */
    bool established, has_peer, closed;
    int rc; /* sticky failure, 0 while healthy */
    /* The application traffic secrets, caught from wolfSSL during the
     * handshake and moved into rl (then wiped) when it takes over. */
    uint8_t secret_client[ZM_TLS_SECRET_MAX], secret_server[ZM_TLS_SECRET_MAX];
    uint8_t secret_len;
    zm_tls_rl_t *rl; /* set: records are ours, wolfSSL only did the handshake */
    zm_spiffe_id_t peer;
    char alpn[32];
    char err[384];
};

/* Makes room for n more bytes at b's tail (at most max in use), compacting
 * only when needed. */
int zm__tls_buf_reserve(zm_tls_buf_t *b, size_t n, size_t max);

/* First URI SAN of a certificate: 1 found (copied), 0 none, < 0 error. */
int zm__tls_first_uri_san(WOLFSSL_X509 *x, char *out, size_t cap);
/* wolfSSL's verify callback for every context: a reason for each refusal,
 * and the SPIFFE identity checks on the leaf (tls.c). */
int zm__tls_verify_cb(int preverify, WOLFSSL_X509_STORE_CTX *store);

/* A TLS alert's name, and whether it means the peer refused our identity. */
const char *zm__tls_alert_name(int code);
bool zm__tls_alert_is_refusal(int code);

/* Registers the secret callback on a new connection (no-op without
 * ZM_TLS_RECORD_LAYER). */
void zm__tls_catch_secrets(zm_tls_t *t);
/* Right after a successful handshake: takes over record protection when
 * the suite is AES-GCM and both secrets were caught; otherwise wolfSSL
 * keeps the records. Returns 0 or -ENOMEM. */
int zm__tls_rl_start(zm_tls_t *t);
void zm__tls_rl_free(zm_tls_t *t);
/* The record-layer halves of zm_tls_read / zm_tls_write / zm_tls_shutdown. */
ssize_t zm__tls_rl_read(zm_tls_t *t, uint8_t *buf, size_t len);
ssize_t zm__tls_rl_write(zm_tls_t *t, const uint8_t *data, size_t len);
ssize_t zm__tls_rl_writev(zm_tls_t *t, const struct iovec *iov, int cnt);
int zm__tls_rl_shutdown(zm_tls_t *t);
/* Seals one record of any inner content type (tests and the fuzz driver
 * send what a peer might: handshake messages, alerts, padding-only). */
int zm__tls_rl_send_record(zm_tls_t *t, uint8_t type, const uint8_t *data, size_t len);

#endif
