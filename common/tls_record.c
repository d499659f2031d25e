/*
 * tls_record.c — our own TLS 1.3 record layer (RFC 8446 section 5) for
 * established connections on AES-GCM suites.
 *
 * Why: wolfSSL moves every byte through its own buffers: a copy into its
 * input buffer, decryption there, a copy out to the reader (and a memmove
 * when it shrinks the buffer); on the way out, encryption into its output
 * buffer and a copy into the socket's queue. On a bulk stream those copies
 * cost about as much as the AES-GCM itself. Here a record is decrypted
 * straight from the socket's receive buffer into the reader's buffer, and
 * sealed straight into the socket's send queue (zm_tls_set_sink_space), so
 * the only passes over the data are the cipher's (tls_gcm.c: ipsec-mb's
 * AES-GCM where available, over twice wolfSSL's speed).
 *
 * How: wolfSSL still does the whole handshake; its secret callback hands us
 * the client and server application traffic secrets as it derives them.
 * When the handshake completes, no application record has been read or
 * written under them yet: our servers send no session tickets
 * (wolfSSL_CTX_no_ticket_TLSv13), wolfSSL reads exactly one record at a
 * time (so whatever follows the Finished, a foreign server's tickets
 * included, stays in our input for us), and nothing was written. So both sequence numbers start at
 * 0 and wolfSSL is never asked to touch a record again. Keys and IVs are HKDF-Expand-Label(secret,
 * "key" / "iv"); each record's nonce is the IV xor its sequence number; the 5-byte header is the
 * additional data; the inner plaintext is content, content type, zero padding. After the handshake
 * a peer may send NewSessionTicket (ignored: we never resume) and KeyUpdate (honoured, answered
 * when asked); anything else is a protocol error.
 *
 * Suites other than AES-GCM (ChaCha20-Poly1305) keep wolfSSL's records, as
 * do builds of wolfSSL without HAVE_SECRET_CALLBACK or AES-GCM streaming.
 *
 * Threading: a connection belongs to one thread.
 */
#include "tls_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if ZM_TLS_RECORD_LAYER

#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/kdf.h>

#define REC_HDR 5
#define TAG_LEN 16
#define NONCE_LEN 12
#define MAX_PLAIN 16384u                     /* 2^14 */
#define MAX_CIPHER (MAX_PLAIN + 256u)        /* RFC 8446 5.2 */
#define REC_OVERHEAD (REC_HDR + 1 + TAG_LEN) /* header, content type, tag */
/* A sink's tail with less room than this starts a fresh chunk rather than
 * a record too small to be worth its 22 bytes of overhead. */
#define SPACE_MIN 4096u

enum { CT_ALERT = 21, CT_HANDSHAKE = 22, CT_APPLICATION_DATA = 23 };
enum { HS_NEW_SESSION_TICKET = 4, HS_KEY_UPDATE = 24 };

typedef struct rl_dir {
    zm_tls_gcm_t gcm;
    uint8_t iv[NONCE_LEN];
    uint64_t seq;
    uint8_t secret[ZM_TLS_SECRET_MAX];
} rl_dir_t;

struct zm_tls_rl {
    rl_dir_t tx, rx;
    int digest;
    unsigned hash_len, key_len;
    /* Plaintext of a record that did not fit the reader's buffer. */
    uint8_t *pt;
    size_t pt_head, pt_tail;
};

static const uint8_t LABEL_PREFIX[] = "tls13 ";

static int expand_label(const zm_tls_rl_t *rl, uint8_t *out, unsigned out_len,
                        const uint8_t *secret, const char *label)
{
    return wc_Tls13_HKDF_Expand_Label(out, out_len, secret, rl->hash_len, LABEL_PREFIX,
                                      sizeof(LABEL_PREFIX) - 1, (const uint8_t *)label,
                                      (unsigned)strlen(label), NULL, 0, rl->digest) == 0
               ? 0
               : -EPROTO;
}

/* Installs a traffic secret: key, IV, sequence 0. */
static int dir_keys(zm_tls_rl_t *rl, rl_dir_t *d, const uint8_t *secret)
{
    uint8_t key[32];
    memmove(d->secret, secret, rl->hash_len);
    int r = expand_label(rl, key, rl->key_len, d->secret, "key");
    if (r == 0)
        r = expand_label(rl, d->iv, NONCE_LEN, d->secret, "iv");
    if (r == 0) {
        zm__tls_gcm_free(&d->gcm);
        r = zm__tls_gcm_init(&d->gcm, key, rl->key_len);
    }
    explicit_bzero(key, sizeof(key));
    d->seq = 0;
    return r;
}

/* KeyUpdate: the next generation of a direction's secret (RFC 8446 7.2). */
static int dir_update(zm_tls_rl_t *rl, rl_dir_t *d)
{
    uint8_t next[ZM_TLS_SECRET_MAX];
    int r = expand_label(rl, next, rl->hash_len, d->secret, "traffic upd");
    if (r == 0)
        r = dir_keys(rl, d, next);
    explicit_bzero(next, sizeof(next));
    return r;
}

static void nonce_of(const rl_dir_t *d, uint8_t nonce[NONCE_LEN])
{
    memcpy(nonce, d->iv, NONCE_LEN);
    for (int i = 0; i < 8; i++)
        nonce[NONCE_LEN - 1 - i] ^= (uint8_t)(d->seq >> (8 * i));
}

static int rl_fail(zm_tls_t *t, int rc, const char *why)
{
    if (t->rc == 0) {
        snprintf(t->err, sizeof(t->err), "%s", why);
        t->rc = rc;
    }
    return t->rc;
}

/* ---- sealing ---- */

/* Where sealing is in a list of plaintext pieces. */
typedef struct cursor {
    const struct iovec *iov;
    int cnt;
    size_t off; /* into iov[0] */
} cursor_t;

static size_t cursor_left(const cursor_t *cur)
{
    size_t n = 0;
    for (int i = 0; i < cur->cnt; i++)
        n += cur->iov[i].iov_len;
    return n - cur->off;
}

/* Writes one record of the next n content bytes at out (n + REC_OVERHEAD
 * bytes), encrypting each piece where it lies. */
static int seal(zm_tls_rl_t *rl, uint8_t type, cursor_t *cur, size_t n, uint8_t *out)
{
    size_t clen = n + 1 + TAG_LEN;
    out[0] = CT_APPLICATION_DATA;
    out[1] = 3;
    out[2] = 3;
    out[3] = (uint8_t)(clen >> 8);
    out[4] = (uint8_t)clen;
    uint8_t nonce[NONCE_LEN];
    nonce_of(&rl->tx, nonce);
    zm_tls_gcm_op_t op;
    int r = zm__tls_gcm_seal_begin(&rl->tx.gcm, &op, nonce, out, REC_HDR);
    uint8_t *dst = out + REC_HDR;
    while (r == 0 && n > 0) {
        while (cur->off == cur->iov->iov_len) {
            cur->iov++;
            cur->cnt--;
            cur->off = 0;
        }
        size_t k = ZM_MIN(n, cur->iov->iov_len - cur->off);
        r = zm__tls_gcm_seal_update(&rl->tx.gcm, &op, dst,
                                    (const uint8_t *)cur->iov->iov_base + cur->off, k);
        cur->off += k;
        dst += k;
        n -= k;
    }
    if (r == 0)
        r = zm__tls_gcm_seal_update(&rl->tx.gcm, &op, dst, &type, 1);
    if (r == 0)
        r = zm__tls_gcm_seal_end(&rl->tx.gcm, &op, dst + 1);
    rl->tx.seq++;
    return r == 0 ? 0 : -EPROTO;
}

/* Seals the pieces as records of at most MAX_PLAIN: into the sink's space
 * when it has some and nothing older waits in `out`; else into `out`,
 * handed to the copying sink when it was empty (the order on the wire is
 * kept either way). */
static int seal_all(zm_tls_t *t, uint8_t type, const struct iovec *iov, int cnt)
{
    zm_tls_rl_t *rl = t->rl;
    cursor_t cur = {iov, cnt, 0};
    size_t len = cursor_left(&cur);
    do {
        size_t piece = ZM_MIN(len, (size_t)MAX_PLAIN), avail = 0;
        uint8_t *dst = NULL;
        if (t->space_reserve && t->out.tail == t->out.head) {
            size_t want = piece + REC_OVERHEAD;
            dst = t->space_reserve(t->space_ctx, ZM_MIN(want, (size_t)SPACE_MIN), &avail);
            if (dst && avail < want)
                piece = avail - REC_OVERHEAD;
        }
        size_t rec = piece + REC_OVERHEAD;
        bool direct = dst != NULL, was_empty = t->out.tail == t->out.head;
        if (!direct) {
            if (zm__tls_buf_reserve(&t->out, rec, ZM_TLS_OUT_MAX) < 0)
                return rl_fail(t, -ENOBUFS, "output buffer full");
            dst = t->out.p + t->out.tail;
        }
        if (seal(rl, type, &cur, piece, dst) < 0)
            return rl_fail(t, -EPROTO, "record encryption failed");
        if (direct) {
            t->space_commit(t->space_ctx, rec);
        } else {
            t->out.tail += rec;
            if (was_empty && t->sink && t->sink(t->sink_ctx, dst, rec) >= 0)
                t->out.head = t->out.tail = 0;
        }
        len -= piece;
    } while (len > 0);
    return 0;
}

static int seal_one(zm_tls_t *t, uint8_t type, const void *data, size_t len)
{
    struct iovec iov = {(void *)data, len};
    return seal_all(t, type, &iov, 1);
}

ssize_t zm__tls_rl_write(zm_tls_t *t, const uint8_t *data, size_t len)
{
    if (len == 0)
        return 0;
    int r = seal_one(t, CT_APPLICATION_DATA, data, len);
    return r < 0 ? r : (ssize_t)len;
}

ssize_t zm__tls_rl_writev(zm_tls_t *t, const struct iovec *iov, int cnt)
{
    cursor_t cur = {iov, cnt, 0};
    size_t len = cnt > 0 ? cursor_left(&cur) : 0;
    if (len == 0)
        return 0;
    int r = seal_all(t, CT_APPLICATION_DATA, iov, cnt);
    return r < 0 ? r : (ssize_t)len;
}

int zm__tls_rl_shutdown(zm_tls_t *t)
{
    static const uint8_t alert[2] = {1 /* warning */, 0 /* close_notify */};
    return seal_one(t, CT_ALERT, alert, sizeof(alert));
}

int zm__tls_rl_send_record(zm_tls_t *t, uint8_t type, const uint8_t *data, size_t len)
{
    if (!t->rl || len > MAX_PLAIN)
        return -EINVAL;
    return seal_one(t, type, data, len);
}

/* ---- opening ---- */

/* Moves up to n bytes of the loan into `in`: a record begun there is
 * completed there. */
static int top_up(zm_tls_t *t, size_t n)
{
    n = ZM_MIN(n, t->lent_len);
    if (n == 0)
        return 0;
    if (zm__tls_buf_reserve(&t->in, n, ZM_TLS_IN_MAX) < 0)
        return -ENOBUFS;
    memcpy(t->in.p + t->in.tail, t->lent, n);
    t->in.tail += n;
    t->lent += n;
    t->lent_len -= n;
    return 0;
}

static size_t record_len(const uint8_t *h)
{
    return REC_HDR + ((size_t)h[3] << 8 | h[4]);
}

static bool header_ok(const uint8_t *h)
{
    size_t clen = record_len(h) - REC_HDR;
    return h[0] == CT_APPLICATION_DATA && h[1] == 3 && h[2] == 3 && clen > TAG_LEN &&
           clen <= MAX_CIPHER;
}

/* The next whole record: *rec points at it (header first), in `in` when
 * one was begun there, else in the loan. Returns its length, 0 while
 * incomplete (settle keeps the partial), < 0 on error. */
static ssize_t next_record(zm_tls_t *t, const uint8_t **rec)
{
    size_t have = t->in.tail - t->in.head;
    if (have == 0) {
        if (t->lent_len < REC_HDR)
            return 0;
        if (!header_ok(t->lent))
            return rl_fail(t, -EPROTO, "malformed TLS record header");
        size_t total = record_len(t->lent);
        if (t->lent_len < total)
            return 0;
        *rec = t->lent;
        return (ssize_t)total;
    }
    if (have < REC_HDR) {
        if (top_up(t, REC_HDR - have) < 0)
            return rl_fail(t, -ENOBUFS, "TLS input overflow");
        if ((have = t->in.tail - t->in.head) < REC_HDR)
            return 0;
    }
    const uint8_t *h = t->in.p + t->in.head;
    if (!header_ok(h))
        return rl_fail(t, -EPROTO, "malformed TLS record header");
    size_t total = record_len(h);
    if (have < total) {
        if (top_up(t, total - have) < 0)
            return rl_fail(t, -ENOBUFS, "TLS input overflow");
        if (t->in.tail - t->in.head < total)
            return 0;
    }
    *rec = t->in.p + t->in.head;
    return (ssize_t)total;
}

static void consume_record(zm_tls_t *t, size_t total)
{
    if (t->in.tail > t->in.head) {
        t->in.head += total;
        if (t->in.head == t->in.tail)
            t->in.head = t->in.tail = 0;
    } else {
        t->lent += total;
        t->lent_len -= total;
    }
}

static int post_handshake(zm_tls_t *t, const uint8_t *p, size_t n)
{
    zm_tls_rl_t *rl = t->rl;
    while (n > 0) {
        if (n < 4)
            return rl_fail(t, -EPROTO, "fragmented post-handshake message");
        size_t len = (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
        if (len > n - 4)
            return rl_fail(t, -EPROTO, "fragmented post-handshake message");
        switch (p[0]) {
        case HS_NEW_SESSION_TICKET:
            break; /* we never resume sessions */
        case HS_KEY_UPDATE:
            if (len != 1 || p[4] > 1)
                return rl_fail(t, -EPROTO, "malformed KeyUpdate");
            if (dir_update(rl, &rl->rx) < 0)
                return rl_fail(t, -EPROTO, "KeyUpdate failed");
            if (p[4] == 1) { /* update_requested: answer, then switch */
                static const uint8_t not_requested[5] = {HS_KEY_UPDATE, 0, 0, 1, 0};
                if (seal_one(t, CT_HANDSHAKE, not_requested, sizeof(not_requested)) < 0)
                    return t->rc;
                if (dir_update(rl, &rl->tx) < 0)
                    return rl_fail(t, -EPROTO, "KeyUpdate failed");
            }
            break;
        default:
            return rl_fail(t, -EPROTO, "unexpected post-handshake message");
        }
        p += 4 + len;
        n -= 4 + len;
    }
    return 0;
}

static size_t take_plain(zm_tls_rl_t *rl, uint8_t *buf, size_t len)
{
    size_t n = ZM_MIN(len, rl->pt_tail - rl->pt_head);
    memcpy(buf, rl->pt + rl->pt_head, n);
    rl->pt_head += n;
    if (rl->pt_head == rl->pt_tail)
        rl->pt_head = rl->pt_tail = 0;
    return n;
}

ssize_t zm__tls_rl_read(zm_tls_t *t, uint8_t *buf, size_t len)
{
    zm_tls_rl_t *rl = t->rl;
    if (rl->pt_tail > rl->pt_head)
        return (ssize_t)take_plain(rl, buf, len);
    for (;;) {
        const uint8_t *rec = NULL;
        ssize_t total = next_record(t, &rec);
        if (total <= 0)
            return total < 0 ? total : ZM_AGAIN;
        size_t plen = (size_t)total - REC_HDR - TAG_LEN;
        uint8_t *dst = buf;
        if (plen > len) { /* a reader with a small buffer: stage the record */
            if (!rl->pt && !(rl->pt = malloc(MAX_CIPHER)))
                return rl_fail(t, -ENOMEM, "out of memory");
            dst = rl->pt;
        }
        uint8_t nonce[NONCE_LEN];
        nonce_of(&rl->rx, nonce);
        int r = zm__tls_gcm_open(&rl->rx.gcm, nonce, rec, REC_HDR, dst, rec + REC_HDR, plen,
                                 rec + REC_HDR + plen);
        if (r != 0)
            return rl_fail(t, -EPROTO, "TLS record authentication failed (bad_record_mac)");
        rl->rx.seq++;
        consume_record(t, (size_t)total);
        size_t n = plen;
        while (n > 0 && dst[n - 1] == 0)
            n--;
        if (n == 0)
            return rl_fail(t, -EPROTO, "TLS record without a content type");
        uint8_t type = dst[--n];
        if (type == CT_APPLICATION_DATA) {
            if (n == 0)
                continue;
            if (dst == buf)
                return (ssize_t)n;
            rl->pt_head = 0;
            rl->pt_tail = n;
            return (ssize_t)take_plain(rl, buf, len);
        }
        if (type == CT_ALERT) {
            if (n != 2)
                return rl_fail(t, -EPROTO, "malformed TLS alert");
            if (dst[1] == 0) { /* close_notify */
                t->closed = true;
                return 0;
            }
            char why[128];
            bool refusal = zm__tls_alert_is_refusal(dst[1]);
            snprintf(why, sizeof(why), "peer sent alert %d (%s)%s", dst[1],
                     zm__tls_alert_name(dst[1]), refusal ? ": peer refused our certificate" : "");
            return rl_fail(t, refusal ? -EACCES : -EPROTO, why);
        }
        if (type != CT_HANDSHAKE)
            return rl_fail(t, -EPROTO, "unexpected TLS record type");
        if (post_handshake(t, dst, n) < 0)
            return t->rc;
    }
}

/* ---- take-over ---- */

static int on_secret(WOLFSSL *ssl, int id, const unsigned char *secret, int len, void *arg)
{
    (void)ssl;
    zm_tls_t *t = arg;
    if (len <= 0 || len > ZM_TLS_SECRET_MAX)
        return 0; /* not ours to judge: wolfSSL keeps the records then */
    if (id == CLIENT_TRAFFIC_SECRET)
        memcpy(t->secret_client, secret, (size_t)len);
    else if (id == SERVER_TRAFFIC_SECRET)
        memcpy(t->secret_server, secret, (size_t)len);
    else
        return 0;
    t->secret_len = (uint8_t)len;
    return 0;
}

void zm__tls_catch_secrets(zm_tls_t *t)
{
    if (!t->ctx->wolfssl_records)
        wolfSSL_set_tls13_secret_cb(t->ssl, on_secret, t);
}

int zm__tls_rl_start(zm_tls_t *t)
{
    int rc = 0;
    unsigned key_len = 0, hash_len = 32;
    int digest = WC_SHA256;
    switch (wolfSSL_get_current_cipher_suite(t->ssl)) {
    case 0x1301: /* TLS_AES_128_GCM_SHA256 */
        key_len = 16;
        break;
    case 0x1302: /* TLS_AES_256_GCM_SHA384 */
        key_len = 32;
        hash_len = 48;
        digest = WC_SHA384;
        break;
    default:
        break; /* ChaCha20-Poly1305: wolfSSL keeps the records */
    }
    if (key_len && t->secret_len == hash_len && wolfSSL_pending(t->ssl) == 0) {
        /* aligned: ipsec-mb's key schedules want 64 bytes */
        size_t size = (sizeof(zm_tls_rl_t) + 63) / 64 * 64;
        zm_tls_rl_t *rl = aligned_alloc(64, size);
        if (rl)
            memset(rl, 0, size);
        if (!rl) {
            rc = -ENOMEM;
        } else {
            rl->key_len = key_len;
            rl->hash_len = hash_len;
            rl->digest = digest;
            bool server = wolfSSL_is_server(t->ssl);
            t->rl = rl;
            if (dir_keys(rl, &rl->tx, server ? t->secret_server : t->secret_client) < 0 ||
                dir_keys(rl, &rl->rx, server ? t->secret_client : t->secret_server) < 0) {
                zm__tls_rl_free(t);
                rc = -EPROTO;
            }
        }
    }
    explicit_bzero(t->secret_client, sizeof(t->secret_client));
    explicit_bzero(t->secret_server, sizeof(t->secret_server));
    t->secret_len = 0;
    return rc;
}

void zm__tls_rl_free(zm_tls_t *t)
{
    zm_tls_rl_t *rl = t->rl;
    if (!rl)
        return;
    t->rl = NULL;
    zm__tls_gcm_free(&rl->tx.gcm);
    zm__tls_gcm_free(&rl->rx.gcm);
    free(rl->pt);
    explicit_bzero(rl, sizeof(*rl));
    free(rl);
}

#else /* !ZM_TLS_RECORD_LAYER: wolfSSL keeps every record */

void zm__tls_catch_secrets(zm_tls_t *t)
{
    (void)t;
}

int zm__tls_rl_start(zm_tls_t *t)
{
    (void)t;
    return 0;
}

void zm__tls_rl_free(zm_tls_t *t)
{
    (void)t;
}

ssize_t zm__tls_rl_read(zm_tls_t *t, uint8_t *buf, size_t len)
{
    (void)t, (void)buf, (void)len;
    return -ENOTSUP;
}

ssize_t zm__tls_rl_write(zm_tls_t *t, const uint8_t *data, size_t len)
{
    (void)t, (void)data, (void)len;
    return -ENOTSUP;
}

ssize_t zm__tls_rl_writev(zm_tls_t *t, const struct iovec *iov, int cnt)
{
    (void)t, (void)iov, (void)cnt;
    return -ENOTSUP;
}

int zm__tls_rl_shutdown(zm_tls_t *t)
{
    (void)t;
    return -ENOTSUP;
}

int zm__tls_rl_send_record(zm_tls_t *t, uint8_t type, const uint8_t *data, size_t len)
{
    (void)t, (void)type, (void)data, (void)len;
    return -ENOTSUP;
}

#endif
