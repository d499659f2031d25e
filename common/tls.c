/*
 * tls.c — wolfSSL connections driven over memory buffers and the mesh
 * identity checks (see tls.h; contexts are in tls_ctx.c, reloadable slots
 * in tls_slot.c, our record layer in tls_record.c, certificate issuing and
 * SPIFFE parsing in cert.c).
 *
 * IO: wolfSSL's IO callbacks never touch a socket. recv copies from `in`
 * (filled by zm_tls_feed), then from the borrowed bytes `lent` (the
 * caller's receive buffer, valid until zm_tls_feed_settle; `in` first keeps
 * the order: zm_tls_feed settles a loan first), and answers WANT_READ when
 * both are empty; send appends to `out` (drained by zm_tls_out /
 * zm_tls_out_consume). Both are head/tail byte buffers: consuming advances
 * head, an empty buffer resets to 0, and bytes move only when the tail runs
 * out of room (lazy compaction), so steady-state traffic neither allocates
 * nor memmoves per record. With a sink set, send hands each record to the
 * sink and uses `out` only while the sink refuses or `out` still holds
 * earlier bytes (ordering). Input is bounded (ZM_TLS_IN_MAX: a peer cannot
 * make us buffer more); output is bounded by ZM_TLS_OUT_MAX (the caller
 * must drain before writing more).
 *
 * Identity: the verify callback runs for every certificate (wolfSSL is built
 * with WOLFSSL_ALWAYS_VERIFY_CB); for the leaf it translates wolfSSL's
 * verdict into a reason string and, when the chain is good, checks the
 * SPIFFE ID, trust domain, expected IDs and ALPN. Refusing there (instead of
 * after the handshake) makes wolfSSL send the alert, so the peer learns why.
 *
 * Records: once the handshake is done on an AES-GCM suite, tls_record.c
 * protects them instead of wolfSSL (zm_tls_read / write / shutdown hand
 * over to it when t->rl is set); wolfSSL's IO callbacks are then unused.
 *
 * Invariants: a zm_tls_t holds one reference on its zm_tls_ctx_t for its
 * whole life; once failed (t->rc < 0) every call returns the same error.
 *
 * Threading: contexts are shared read-only (atomic refcount); a zm_tls_t is
 * single-threaded.
 */
#include <wolfssl/options.h>

#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls_int.h"

int zm__tls_first_uri_san(WOLFSSL_X509 *x, char *out, size_t cap)
{
    WOLFSSL_STACK *names = wolfSSL_X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    if (!names)
        return 0;
    int found = 0, n = wolfSSL_sk_GENERAL_NAME_num(names);
    for (int i = 0; i < n && !found; i++) {
        WOLFSSL_GENERAL_NAME *gn = wolfSSL_sk_GENERAL_NAME_value(names, i);
        if (!gn || gn->type != 6 /* GEN_URI, uniformResourceIdentifier */ ||
            !gn->d.uniformResourceIdentifier)
            continue;
        const unsigned char *d = wolfSSL_ASN1_STRING_data(gn->d.uniformResourceIdentifier);
        int dl = wolfSSL_ASN1_STRING_length(gn->d.uniformResourceIdentifier);
        if (!d || dl <= 0 || (size_t)dl >= cap || memchr(d, 0, (size_t)dl)) {
            found = -EINVAL;
            break;
        }
        memcpy(out, d, (size_t)dl);
        out[dl] = '\0';
        found = 1;
    }
    wolfSSL_sk_GENERAL_NAME_pop_free(names, wolfSSL_GENERAL_NAME_free);
    return found;
}

/* ---- IO callbacks ---- */

static int io_recv(WOLFSSL *ssl, char *dst, int sz, void *arg)
{
    (void)ssl;
    zm_tls_t *t = arg;
    size_t avail = t->in.tail - t->in.head;
    if (avail == 0 && t->lent_len > 0) {
        size_t n = ZM_MIN(t->lent_len, (size_t)sz);
        memcpy(dst, t->lent, n);
        t->lent += n;
        t->lent_len -= n;
        return (int)n;
    }
    if (avail == 0)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    size_t n = ZM_MIN(avail, (size_t)sz);
    memcpy(dst, t->in.p + t->in.head, n);
    t->in.head += n;
    if (t->in.head == t->in.tail)
        t->in.head = t->in.tail = 0;
    return (int)n;
}

int zm__tls_buf_reserve(zm_tls_buf_t *b, size_t n, size_t max)
{
    size_t used = b->tail - b->head;
    if (used + n > max)
        return -ENOBUFS;
    if (b->tail + n <= b->cap)
        return 0;
    if (used + n <= b->cap && b->head > 0) {
        memmove(b->p, b->p + b->head, used);
        b->head = 0;
        b->tail = used;
        return 0;
    }
    size_t cap = b->cap ? b->cap : ZM_TLS_BUF_INIT;
    while (cap < used + n)
        cap *= 2;
    uint8_t *p = malloc(cap);
    if (!p)
        return -ENOMEM;
    if (used)
        memcpy(p, b->p + b->head, used);
    free(b->p);
    b->p = p;
    b->cap = cap;
    b->head = 0;
    b->tail = used;
    return 0;
}

static int io_send(WOLFSSL *ssl, char *src, int sz, void *arg)
{
    (void)ssl;
    zm_tls_t *t = arg;
    /* Buffering a refused record here, rather than answering WANT_WRITE,
     * keeps wolfSSL_write all-or-nothing: after WANT_WRITE wolfSSL wants the
     * same plaintext again, which nghttp2's output is not guaranteed to be. */
    if (t->sink && t->out.tail == t->out.head &&
        t->sink(t->sink_ctx, (const uint8_t *)src, (size_t)sz) >= 0)
        return sz;
    if (zm__tls_buf_reserve(&t->out, (size_t)sz, ZM_TLS_OUT_MAX) < 0)
        return WOLFSSL_CBIO_ERR_GENERAL;
    memcpy(t->out.p + t->out.tail, src, (size_t)sz);
    t->out.tail += (size_t)sz;
    return sz;
}

/* ---- identity checks (verify callback) ---- */

static const char *verify_reason(int e)
{
    switch (e) {
    case ASN_AFTER_DATE_E:
        return "certificate expired";
    case ASN_BEFORE_DATE_E:
        return "certificate not yet valid";
    case ASN_NO_SIGNER_E:
    case ASN_SELF_SIGNED_E:
        return "unknown CA";
    case ASN_SIG_CONFIRM_E:
    case ASN_SIG_OID_E:
        return "bad certificate signature";
    case MAX_CHAIN_ERROR:
        return "certificate chain too long";
    default:
        return NULL;
    }
}

/* Checks a verified leaf: SPIFFE ID, trust domain, expected IDs, ALPN.
 * Fills t->peer or t->err; returns true to accept. */
static bool check_peer(zm_tls_t *t, WOLFSSL_X509 *leaf)
{
    char uri[ZM_SPIFFE_ID_MAX];
    int r = zm__tls_first_uri_san(leaf, uri, sizeof(uri));
    if (r <= 0) {
        snprintf(t->err, sizeof(t->err), "peer certificate has no URI SAN");
        return false;
    }
    if (zm_spiffe_parse(uri, &t->peer) < 0) {
        snprintf(t->err, sizeof(t->err), "peer URI SAN is not a SPIFFE ID: %.200s", uri);
        return false;
    }
    if (strcmp(t->peer.trust_domain, t->ctx->trust_domain) != 0) {
        snprintf(t->err, sizeof(t->err), "trust domain mismatch: got %s want %s",
                 t->peer.trust_domain, t->ctx->trust_domain);
        return false;
    }
    if (t->expected && t->expected[0]) {
        bool ok = false;
        for (char **e = t->expected; *e && !ok; e++)
            ok = strcmp(*e, t->peer.uri) == 0;
        if (!ok) {
            snprintf(t->err, sizeof(t->err), "unexpected peer identity %s", t->peer.uri);
            return false;
        }
    }
    t->has_peer = true;
    return true;
}

int zm__tls_verify_cb(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
    zm_tls_t *t = store->userCtx;
    if (!t)
        return preverify;
    if (!preverify) {
        /* Keep the first (deepest-cause) reason; the leaf comes last. */
        if (!t->err[0]) {
            const char *why = verify_reason(store->error);
            if (why)
                snprintf(t->err, sizeof(t->err), "%s", why);
            else
                snprintf(t->err, sizeof(t->err), "certificate verification failed (%d)",
                         store->error);
        }
        return 0;
    }
    /* An empty client certificate is wolfSSL's call (FAIL_IF_NO_PEER_CERT
     * or allow_no_client_cert), not an identity to check. */
    if (store->error_depth != 0 || !store->current_cert || store->totalCerts == 0)
        return 1;
    t->has_peer = false;
    if (!check_peer(t, store->current_cert))
        return 0;
    return 1;
}

/* ---- connections ---- */

static char **copy_ids(const char *const *ids)
{
    size_t n = 0, bytes = 0;
    for (; ids[n]; n++)
        bytes += strlen(ids[n]) + 1;
    char **v = malloc((n + 1) * sizeof(char *) + bytes);
    if (!v)
        return NULL;
    char *s = (char *)(v + n + 1);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(ids[i]) + 1;
        memcpy(s, ids[i], l);
        v[i] = s;
        s += l;
    }
    v[n] = NULL;
    return v;
}

int zm_tls_new(zm_tls_t **out, zm_tls_ctx_t *ctx, const char *const *expected_ids)
{
    *out = NULL;
    zm_tls_t *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    if (expected_ids && !(t->expected = copy_ids(expected_ids))) {
        free(t);
        return -ENOMEM;
    }
    zm_tls_ctx_ref(ctx);
    t->ctx = ctx;
    t->ssl = wolfSSL_new(ctx->ssl_ctx);
    if (!t->ssl) {
        zm_tls_free(&t);
        return -ENOMEM;
    }
    wolfSSL_SSLSetIORecv(t->ssl, io_recv);
    wolfSSL_SSLSetIOSend(t->ssl, io_send);
    wolfSSL_SetIOReadCtx(t->ssl, t);
    wolfSSL_SetIOWriteCtx(t->ssl, t);
    wolfSSL_SetCertCbCtx(t->ssl, t);
    zm__tls_catch_secrets(t);
    /* The server refuses a client offering other protocols; a client that
     * offers none is caught after the handshake. */
    if (wolfSSL_UseALPN(t->ssl, ctx->alpn, (unsigned)strlen(ctx->alpn),
                        ctx->server ? WOLFSSL_ALPN_FAILED_ON_MISMATCH
                                    : WOLFSSL_ALPN_CONTINUE_ON_MISMATCH) != WOLFSSL_SUCCESS) {
        zm_tls_free(&t);
        return -ENOMEM;
    }
    *out = t;
    return 0;
}

void zm_tls_free(zm_tls_t **tp)
{
    zm_tls_t *t = *tp;
    if (!t)
        return;
    *tp = NULL;
    zm__tls_rl_free(t);
    if (t->ssl)
        wolfSSL_free(t->ssl);
    zm_tls_ctx_unref(&t->ctx);
    explicit_bzero(t->secret_client, sizeof(t->secret_client));
    explicit_bzero(t->secret_server, sizeof(t->secret_server));
    free(t->in.p);
    free(t->out.p);
    free(t->expected);
    free(t);
}

static int in_append(zm_tls_t *t, const uint8_t *data, size_t len)
{
    if (len == 0)
        return 0;
    int r = zm__tls_buf_reserve(&t->in, len, ZM_TLS_IN_MAX);
    if (r < 0)
        return r;
    memcpy(t->in.p + t->in.tail, data, len);
    t->in.tail += len;
    return 0;
}

int zm_tls_feed_settle(zm_tls_t *t)
{
    const uint8_t *p = t->lent;
    size_t n = t->lent_len;
    t->lent = NULL;
    t->lent_len = 0;
    return in_append(t, p, n);
}

int zm_tls_feed(zm_tls_t *t, const uint8_t *data, size_t len)
{
    /* A loan still out comes first: bytes stay in arrival order. */
    int r = zm_tls_feed_settle(t);
    return r < 0 ? r : in_append(t, data, len);
}

int zm_tls_feed_borrow(zm_tls_t *t, const uint8_t *data, size_t len)
{
    int r = zm_tls_feed_settle(t);
    if (r < 0)
        return r;
    t->lent = len ? data : NULL;
    t->lent_len = len;
    return 0;
}

const char *zm__tls_alert_name(int code)
{
    switch (code) {
    case 0:
        return "close_notify";
    case 10:
        return "unexpected_message";
    case 20:
        return "bad_record_mac";
    case 40:
        return "handshake_failure";
    case 42:
        return "bad_certificate";
    case 43:
        return "unsupported_certificate";
    case 44:
        return "certificate_revoked";
    case 45:
        return "certificate_expired";
    case 46:
        return "certificate_unknown";
    case 47:
        return "illegal_parameter";
    case 48:
        return "unknown_ca";
    case 49:
        return "access_denied";
    case 50:
        return "decode_error";
    case 51:
        return "decrypt_error";
    case 70:
        return "protocol_version";
    case 80:
        return "internal_error";
    case 109:
        return "missing_extension";
    case 116:
        return "certificate_required";
    case 120:
        return "no_application_protocol";
    default:
        return "alert";
    }
}

bool zm__tls_alert_is_refusal(int code)
{
    return (code >= 42 && code <= 46) || code == 48 || code == 49 || code == 116;
}

/* Turns a wolfSSL failure into a sticky -EACCES / -EPROTO with a reason. */
static int fail(zm_tls_t *t, int ret)
{
    int e = wolfSSL_get_error(t->ssl, ret);
    if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE)
        return ZM_AGAIN;
    int rc = -EPROTO;
    WOLFSSL_ALERT_HISTORY h;
    memset(&h, 0, sizeof(h));
    wolfSSL_get_alert_history(t->ssl, &h);
    const char *why = verify_reason(e);
    if (t->err[0] && (e == VERIFY_CERT_ERROR || why || e == FATAL_ERROR)) {
        rc = -EACCES; /* our verify callback said why */
    } else if (why) {
        rc = -EACCES;
        snprintf(t->err, sizeof(t->err), "%s", why);
    } else if (e == NO_PEER_CERT) {
        rc = -EACCES;
        snprintf(t->err, sizeof(t->err), "no client certificate");
    } else if (e == FATAL_ERROR && h.last_rx.code > 0) {
        rc = zm__tls_alert_is_refusal(h.last_rx.code) ? -EACCES : -EPROTO;
        snprintf(t->err, sizeof(t->err), "peer sent alert %d (%s)%s", h.last_rx.code,
                 zm__tls_alert_name(h.last_rx.code),
                 rc == -EACCES ? ": peer refused our certificate" : "");
    } else if (e == UNKNOWN_ALPN_PROTOCOL_NAME_E) {
        snprintf(t->err, sizeof(t->err), "ALPN mismatch (want %s)", t->ctx->alpn);
    } else {
        const char *s = wolfSSL_ERR_reason_error_string((unsigned long)e);
        snprintf(t->err, sizeof(t->err), "TLS error %d: %s", e, s ? s : "?");
    }
    t->rc = rc;
    return rc;
}

/* Post-handshake checks that no callback covered. */
static int after_handshake(zm_tls_t *t)
{
    char *name = NULL;
    unsigned short nlen = 0;
    if (wolfSSL_ALPN_GetProtocol(t->ssl, &name, &nlen) == WOLFSSL_SUCCESS && name &&
        nlen < sizeof(t->alpn)) {
        memcpy(t->alpn, name, nlen);
        t->alpn[nlen] = '\0';
    }
    const char *why = NULL;
    if (strcmp(t->alpn, t->ctx->alpn) != 0)
        why = "peer did not negotiate ALPN";
    else if (!t->has_peer && !(t->ctx->server && t->ctx->allow_no_client_cert))
        why = t->ctx->server ? "no client certificate" : "server identity not checked";
    if (why) {
        snprintf(t->err, sizeof(t->err), "%s", why);
        wolfSSL_shutdown(t->ssl); /* tell the peer rather than vanish */
        t->rc = strstr(why, "ALPN") ? -EPROTO : -EACCES;
        return t->rc;
    }
    t->established = true;
    if (zm__tls_rl_start(t) < 0) {
        snprintf(t->err, sizeof(t->err), "cannot set up the record layer");
        t->rc = -EPROTO;
        return t->rc;
    }
    return ZM_OK;
}

int zm_tls_handshake(zm_tls_t *t)
{
    if (t->rc < 0)
        return t->rc;
    if (t->established)
        return ZM_OK;
    int ret = wolfSSL_negotiate(t->ssl);
    if (ret != WOLFSSL_SUCCESS)
        return fail(t, ret);
    return after_handshake(t);
}

bool zm_tls_established(const zm_tls_t *t)
{
    return t->established;
}

ssize_t zm_tls_read(zm_tls_t *t, uint8_t *buf, size_t len)
{
    if (t->rc < 0)
        return t->rc;
    if (!t->established) {
        int r = zm_tls_handshake(t);
        if (r < 0)
            return r;
    }
    if (t->closed)
        return 0;
    if (t->rl)
        return zm__tls_rl_read(t, buf, len);
    if (len > INT32_MAX)
        len = INT32_MAX;
    int n = wolfSSL_read(t->ssl, buf, (int)len);
    if (n > 0)
        return n;
    int e = wolfSSL_get_error(t->ssl, n);
    if (e == WOLFSSL_ERROR_ZERO_RETURN) {
        t->closed = true;
        return 0;
    }
    return fail(t, n);
}

ssize_t zm_tls_write(zm_tls_t *t, const uint8_t *data, size_t len)
{
    if (t->rc < 0)
        return t->rc;
    if (!t->established)
        return -ENOTCONN;
    if (t->rl)
        return zm__tls_rl_write(t, data, len);
    size_t done = 0;
    while (done < len) {
        /* wolfSSL cuts records at 16 KiB itself; the chunk only keeps the
         * int conversion safe. */
        int chunk = (int)ZM_MIN(len - done, (size_t)1 << 20);
        int n = wolfSSL_write(t->ssl, data + done, chunk);
        if (n <= 0) {
            int r = fail(t, n);
            if (r == ZM_AGAIN) {
                snprintf(t->err, sizeof(t->err), "output buffer full");
                t->rc = -ENOBUFS;
            }
            return t->rc;
        }
        done += (size_t)n;
    }
    return (ssize_t)len;
}

ssize_t zm_tls_writev(zm_tls_t *t, const struct iovec *iov, int iovcnt)
{
    if (t->rc < 0)
        return t->rc;
    if (!t->established)
        return -ENOTCONN;
    if (t->rl)
        return zm__tls_rl_writev(t, iov, iovcnt);
    ssize_t total = 0; /* wolfSSL's records: a record (at least) per piece */
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len == 0)
            continue;
        ssize_t n = zm_tls_write(t, iov[i].iov_base, iov[i].iov_len);
        if (n < 0)
            return n;
        total += n;
    }
    return total;
}

int zm_tls_shutdown(zm_tls_t *t)
{
    if (!t->ssl)
        return -EINVAL;
    if (t->rl)
        return t->rc < 0 ? t->rc : zm__tls_rl_shutdown(t);
    int r = wolfSSL_shutdown(t->ssl);
    if (r == WOLFSSL_SUCCESS || r == WOLFSSL_SHUTDOWN_NOT_DONE)
        return 0;
    int e = wolfSSL_get_error(t->ssl, r);
    return e == WOLFSSL_ERROR_WANT_READ ? 0 : -EPROTO;
}

void zm_tls_set_sink(zm_tls_t *t, zm_tls_sink_fn write, void *ctx)
{
    t->sink = write;
    t->sink_ctx = ctx;
}

void zm_tls_set_sink_space(zm_tls_t *t, zm_tls_reserve_fn reserve, zm_tls_commit_fn commit,
                           void *ctx)
{
    t->space_reserve = reserve;
    t->space_commit = commit;
    t->space_ctx = ctx;
}

bool zm_tls_own_records(const zm_tls_t *t)
{
    return t->rl != NULL;
}

size_t zm_tls_out(zm_tls_t *t, const uint8_t **data)
{
    /* Nothing allocated before the first write: NULL + 0 is undefined. */
    *data = t->out.p ? t->out.p + t->out.head : NULL;
    return t->out.tail - t->out.head;
}

void zm_tls_out_consume(zm_tls_t *t, size_t n)
{
    size_t used = t->out.tail - t->out.head;
    t->out.head += ZM_MIN(n, used);
    if (t->out.head == t->out.tail)
        t->out.head = t->out.tail = 0;
}

const zm_spiffe_id_t *zm_tls_peer_id(const zm_tls_t *t)
{
    return t->has_peer ? &t->peer : NULL;
}

const char *zm_tls_alpn(const zm_tls_t *t)
{
    return t->alpn[0] ? t->alpn : NULL;
}

const char *zm_tls_version(const zm_tls_t *t)
{
    return wolfSSL_get_version(t->ssl);
}

const char *zm_tls_error(const zm_tls_t *t)
{
    return t->err[0] ? t->err : NULL;
}
