/*
 * cert.c — issuing ECDSA P-256 certificates with wolfSSL's certgen
 * (zm_cert_issue() of tls.h), for tests and for the mesh CA.
 *
 * Every certificate is X.509 v3, SHA-256/ECDSA, with a subject CN, an exact
 * validity window (encoded by hand as UTCTime/GeneralizedTime because
 * wolfSSL's own daysValid cannot express a window in the past), subject and
 * authority key identifiers, and either CA extensions (basicConstraints CA,
 * keyCertSign|cRLSign) or leaf extensions (digitalSignature|keyAgreement,
 * serverAuth+clientAuth, one URI SAN holding the SPIFFE ID). The output is
 * accepted by `openssl verify -x509_strict` (checked during development).
 *
 * Also here: zm_spiffe_parse(), the strict reading of the SPIFFE IDs those
 * certificates carry.
 *
 * Threading: no shared state; each call owns its RNG and keys. The Cert
 * structure is ~20 KiB, so it lives on the heap rather than the stack.
 */
#include <wolfssl/options.h>

#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tls.h"

/* ---- SPIFFE IDs ---- */

static bool seg_ok(const char *s, size_t n, size_t max)
{
    if (n == 0 || n >= max)
        return false;
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_'))
            return false;
    }
    return true;
}

int zm_spiffe_parse(const char *uri, zm_spiffe_id_t *out)
{
    static const char scheme[] = "spiffe://";
    if (!uri || !out || strncmp(uri, scheme, sizeof(scheme) - 1) != 0)
        return -EINVAL;
    size_t len = strlen(uri);
    if (len >= sizeof(out->uri))
        return -EINVAL;
    const char *td = uri + sizeof(scheme) - 1;
    const char *slash = strchr(td, '/');
    if (!slash)
        return -EINVAL;
    size_t tdn = (size_t)(slash - td);
    if (tdn == 0 || tdn >= sizeof(out->trust_domain))
        return -EINVAL;
    for (size_t i = 0; i < tdn; i++) {
        char c = td[i]; /* lower case only, no port or userinfo */
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_'))
            return -EINVAL;
    }
    if (strncmp(slash, "/ns/", 4) != 0)
        return -EINVAL;
    const char *ns = slash + 4;
    const char *ns_end = strchr(ns, '/');
    if (!ns_end || strncmp(ns_end, "/sa/", 4) != 0)
        return -EINVAL;
    const char *sa = ns_end + 4;
    size_t nsn = (size_t)(ns_end - ns), san = strlen(sa);
    if (!seg_ok(ns, nsn, sizeof(out->ns)) || !seg_ok(sa, san, sizeof(out->sa)))
        return -EINVAL;
    memcpy(out->uri, uri, len + 1);
    memcpy(out->trust_domain, td, tdn);
    out->trust_domain[tdn] = '\0';
    memcpy(out->ns, ns, nsn);
    out->ns[nsn] = '\0';
    memcpy(out->sa, sa, san + 1);
    return 0;
}

#define DER_MAX 4096
#define PEM_MAX 8192

/* Encodes t as an ASN.1 time (tag, length, content) the way RFC 5280 wants:
 * UTCTime through 2049, GeneralizedTime after. Returns the size or -1. */
static int asn_time(int64_t t, uint8_t *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || cap < 17)
        return -1;
    int year = tm.tm_year + 1900;
    char s[32];
    int n;
    if (year >= 1950 && year < 2050) {
        n = snprintf(s, sizeof(s), "%02d%02d%02d%02d%02d%02dZ", year % 100, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        out[0] = 0x17; /* UTCTime */
    } else if (year >= 0 && year <= 9999) {
        n = snprintf(s, sizeof(s), "%04d%02d%02d%02d%02d%02dZ", year, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec);
        out[0] = 0x18; /* GeneralizedTime */
    } else {
        return -1;
    }
    out[1] = (uint8_t)n;
    memcpy(out + 2, s, (size_t)n);
    return n + 2;
}

/* GeneralNames ::= SEQUENCE { [6] IA5String uri } — DER built by hand since
 * wolfSSL's Cert only takes a pre-encoded altNames blob. */
static int uri_san_der(const char *uri, uint8_t *out, size_t cap)
{
    size_t ulen = strlen(uri);
    if (ulen > 1000)
        return -1;
    uint8_t hdr[4];
    size_t hl = 0;
    hdr[hl++] = 0x86; /* context [6], primitive: uniformResourceIdentifier */
    if (ulen < 128) {
        hdr[hl++] = (uint8_t)ulen;
    } else if (ulen < 256) {
        hdr[hl++] = 0x81;
        hdr[hl++] = (uint8_t)ulen;
    } else {
        hdr[hl++] = 0x82;
        hdr[hl++] = (uint8_t)(ulen >> 8);
        hdr[hl++] = (uint8_t)ulen;
    }
    size_t inner = hl + ulen, o = 0;
    if (cap < inner + 4)
        return -1;
    out[o++] = 0x30;
    if (inner < 128) {
        out[o++] = (uint8_t)inner;
    } else if (inner < 256) {
        out[o++] = 0x81;
        out[o++] = (uint8_t)inner;
    } else {
        out[o++] = 0x82;
        out[o++] = (uint8_t)(inner >> 8);
        out[o++] = (uint8_t)inner;
    }
    memcpy(out + o, hdr, hl);
    memcpy(out + o + hl, uri, ulen);
    return (int)(o + inner);
}

static char *der_to_pem(const uint8_t *der, int der_len, int type)
{
    char *pem = malloc(PEM_MAX);
    if (!pem)
        return NULL;
    int n = wc_DerToPem(der, (word32)der_len, (byte *)pem, PEM_MAX - 1, type);
    if (n <= 0) {
        free(pem);
        return NULL;
    }
    pem[n] = '\0';
    return pem;
}

/* Loads the issuing CA: its certificate as DER (for issuer name and AKID)
 * and its private key. */
static int load_ca(const char *cert_pem, const char *key_pem, uint8_t *ca_der, int *ca_der_len,
                   ecc_key *ca_key, zm_err_t *err)
{
    int n = wc_CertPemToDer((const unsigned char *)cert_pem, (int)strlen(cert_pem), ca_der, DER_MAX,
                            CERT_TYPE);
    if (n <= 0)
        return zm_err_set(err, NULL, 0, "CA certificate: not a PEM certificate (%d)", n);
    *ca_der_len = n;
    uint8_t kder[512];
    n = wc_KeyPemToDer((const unsigned char *)key_pem, (int)strlen(key_pem), kder, sizeof(kder),
                       NULL);
    if (n <= 0)
        return zm_err_set(err, NULL, 0, "CA key: not a PEM private key (%d)", n);
    word32 idx = 0;
    int r = wc_EccPrivateKeyDecode(kder, &idx, ca_key, (word32)n);
    explicit_bzero(kder, sizeof(kder));
    if (r != 0)
        return zm_err_set(err, NULL, 0, "CA key: not an EC private key (%d)", r);
    return 0;
}

/* DER header at p (tag, length): returns header size and sets *len, or -1. */
static int der_hdr(const uint8_t *p, size_t avail, size_t *len)
{
    if (avail < 2)
        return -1;
    if (p[1] < 0x80) {
        *len = p[1];
        return 2;
    }
    int nb = p[1] & 0x7f;
    if (nb < 1 || nb > 3 || avail < (size_t)(2 + nb))
        return -1;
    size_t l = 0;
    for (int i = 0; i < nb; i++)
        l = (l << 8) | p[2 + i];
    *len = l;
    return 2 + nb;
}

static size_t der_put_hdr(uint8_t *out, uint8_t tag, size_t len)
{
    size_t o = 0;
    out[o++] = tag;
    if (len < 0x80) {
        out[o++] = (uint8_t)len;
    } else if (len < 0x100) {
        out[o++] = 0x81;
        out[o++] = (uint8_t)len;
    } else {
        out[o++] = 0x82;
        out[o++] = (uint8_t)(len >> 8);
        out[o++] = (uint8_t)len;
    }
    return o;
}

static size_t der_hdr_size(size_t len)
{
    return len < 0x80 ? 2 : len < 0x100 ? 3 : 4;
}

/* wolfSSL 5.5.4 (non-template ASN) always writes basicConstraints as
 * non-critical, but RFC 5280 4.2.1.9 requires CAs to mark it critical and
 * `openssl verify -x509_strict` refuses otherwise. Rewrite the unsigned TBS
 * in place: insert `critical TRUE` into that extension and re-encode the
 * four enclosing lengths. Returns the new TBS size or -1. */
static int tbs_bc_critical(uint8_t *tbs, size_t tbs_len, size_t cap)
{
    static const uint8_t bc_oid[] = {0x06, 0x03, 0x55, 0x1d, 0x13};
    static const uint8_t crit[] = {0x01, 0x01, 0xff};
    size_t l0, l1, l2;
    int h0 = der_hdr(tbs, tbs_len, &l0);
    if (h0 < 0 || tbs[0] != 0x30 || h0 + l0 != tbs_len)
        return -1;
    size_t off = (size_t)h0, a3 = 0; /* find [3] extensions */
    while (off < tbs_len) {
        size_t l;
        int h = der_hdr(tbs + off, tbs_len - off, &l);
        if (h < 0)
            return -1;
        if (tbs[off] == 0xa3) {
            a3 = off;
            break;
        }
        off += (size_t)h + l;
    }
    if (!a3)
        return -1;
    int h1 = der_hdr(tbs + a3, tbs_len - a3, &l1);
    size_t seq = a3 + (size_t)h1;
    int h2 = h1 < 0 ? -1 : der_hdr(tbs + seq, tbs_len - seq, &l2);
    if (h2 < 0 || tbs[seq] != 0x30)
        return -1;
    size_t e = seq + (size_t)h2, end = e + l2, bc = 0, bcl = 0;
    int bch = 0;
    while (e < end) {
        size_t l;
        int h = der_hdr(tbs + e, end - e, &l);
        if (h < 0)
            return -1;
        if (l > sizeof(bc_oid) && !memcmp(tbs + e + h, bc_oid, sizeof(bc_oid))) {
            bc = e, bcl = l, bch = h;
            break;
        }
        e += (size_t)h + l;
    }
    if (!bc || tbs[bc + (size_t)bch + sizeof(bc_oid)] == 0x01)
        return bc ? (int)tbs_len : -1; /* already has a critical flag */
    size_t nbcl = bcl + sizeof(crit);
    size_t nl2 = l2 - (size_t)bch - bcl + der_hdr_size(nbcl) + nbcl;
    size_t nl1 = der_hdr_size(nl2) + nl2;
    size_t nl0 = (a3 - (size_t)h0) + der_hdr_size(nl1) + nl1;
    size_t total = der_hdr_size(nl0) + nl0;
    if (a3 + (size_t)h1 + l1 != tbs_len || total > cap || total > 8192)
        return -1;
    uint8_t *tmp = malloc(total);
    if (!tmp)
        return -1;
    size_t o = der_put_hdr(tmp, 0x30, nl0);
    memcpy(tmp + o, tbs + h0, a3 - (size_t)h0), o += a3 - (size_t)h0;
    o += der_put_hdr(tmp + o, 0xa3, nl1);
    o += der_put_hdr(tmp + o, 0x30, nl2);
    size_t before = bc - (seq + (size_t)h2);
    memcpy(tmp + o, tbs + seq + h2, before), o += before;
    o += der_put_hdr(tmp + o, 0x30, nbcl);
    memcpy(tmp + o, bc_oid, sizeof(bc_oid)), o += sizeof(bc_oid);
    memcpy(tmp + o, crit, sizeof(crit)), o += sizeof(crit);
    size_t rest = bcl - sizeof(bc_oid);
    memcpy(tmp + o, tbs + bc + bch + sizeof(bc_oid), rest), o += rest;
    size_t after = end - (bc + (size_t)bch + bcl);
    memcpy(tmp + o, tbs + bc + bch + bcl, after), o += after;
    if (o != total) {
        free(tmp);
        return -1;
    }
    memcpy(tbs, tmp, total);
    free(tmp);
    return (int)total;
}

int zm_cert_issue(const zm_cert_req_t *req, const char *ca_cert_pem, const char *ca_key_pem,
                  char **cert_pem, char **key_pem, zm_err_t *err)
{
    if (!req || !cert_pem || !key_pem || (!ca_cert_pem != !ca_key_pem))
        return zm_err_set(err, NULL, 0, "zm_cert_issue: bad arguments");
    *cert_pem = *key_pem = NULL;

    int rc = -EINVAL, r;
    WC_RNG rng;
    ecc_key key, ca_key;
    bool rng_ok = false, key_ok = false, ca_key_ok = false;
    Cert *cert = calloc(1, sizeof(*cert));
    uint8_t *der = malloc(DER_MAX), *ca_der = malloc(DER_MAX);
    if (!cert || !der || !ca_der) {
        rc = -ENOMEM;
        zm_err_set(err, NULL, 0, "out of memory");
        goto out;
    }
    if ((r = wc_InitRng(&rng)) != 0) {
        zm_err_set(err, NULL, 0, "RNG: %d", r);
        goto out;
    }
    rng_ok = true;
    if ((r = wc_ecc_init(&key)) != 0) {
        zm_err_set(err, NULL, 0, "ecc init: %d", r);
        goto out;
    }
    key_ok = true;
    if ((r = wc_ecc_make_key_ex(&rng, 32, &key, ECC_SECP256R1)) != 0) {
        zm_err_set(err, NULL, 0, "P-256 key generation: %d", r);
        goto out;
    }

    if ((r = wc_InitCert(cert)) != 0) {
        zm_err_set(err, NULL, 0, "wc_InitCert: %d", r);
        goto out;
    }
    cert->version = 2; /* v3 */
    cert->sigType = CTC_SHA256wECDSA;
    snprintf(cert->subject.commonName, CTC_NAME_SIZE, "%s",
             req->common_name ? req->common_name : (req->is_ca ? "zmesh CA" : "zmesh"));
    cert->subject.commonNameEnc = CTC_UTF8;

    int64_t nb = req->not_before ? req->not_before : (int64_t)time(NULL) - 60;
    int64_t na = req->not_after ? req->not_after : nb + 24 * 3600;
    int bl = asn_time(nb, cert->beforeDate, sizeof(cert->beforeDate));
    int al = asn_time(na, cert->afterDate, sizeof(cert->afterDate));
    if (bl < 0 || al < 0 || na <= nb) {
        zm_err_set(err, NULL, 0, "bad validity window");
        goto out;
    }
    cert->beforeDateSz = bl;
    cert->afterDateSz = al;

    if (req->is_ca) {
        cert->isCA = 1;
        cert->keyUsage = KEYUSE_KEY_CERT_SIGN | KEYUSE_CRL_SIGN | KEYUSE_DIGITAL_SIG;
    } else {
        cert->isCA = 0;
        cert->keyUsage = KEYUSE_DIGITAL_SIG | KEYUSE_KEY_AGREE;
        cert->extKeyUsage = EXTKEYUSE_SERVER_AUTH | EXTKEYUSE_CLIENT_AUTH;
    }
    if (req->spiffe_id) {
        int n = uri_san_der(req->spiffe_id, cert->altNames, sizeof(cert->altNames));
        if (n < 0) {
            zm_err_set(err, NULL, 0, "SPIFFE ID too long");
            goto out;
        }
        cert->altNamesSz = n;
    }
    if ((r = wc_SetSubjectKeyIdFromPublicKey_ex(cert, ECC_TYPE, &key)) != 0) {
        zm_err_set(err, NULL, 0, "subject key id: %d", r);
        goto out;
    }

    ecc_key *signer = &key;
    if (ca_cert_pem) {
        if ((r = wc_ecc_init(&ca_key)) != 0) {
            zm_err_set(err, NULL, 0, "ecc init: %d", r);
            goto out;
        }
        ca_key_ok = true;
        int ca_len = 0;
        if (load_ca(ca_cert_pem, ca_key_pem, ca_der, &ca_len, &ca_key, err) < 0)
            goto out;
        if ((r = wc_SetIssuerBuffer(cert, ca_der, ca_len)) != 0 ||
            (r = wc_SetAuthKeyIdFromCert(cert, ca_der, ca_len)) != 0) {
            zm_err_set(err, NULL, 0, "CA certificate unusable as issuer: %d", r);
            goto out;
        }
        signer = &ca_key;
    } else {
        cert->selfSigned = 1;
        if ((r = wc_SetAuthKeyIdFromPublicKey_ex(cert, ECC_TYPE, &key)) != 0) {
            zm_err_set(err, NULL, 0, "authority key id: %d", r);
            goto out;
        }
    }

    r = wc_MakeCert(cert, der, DER_MAX, NULL, &key, &rng);
    if (r < 0) {
        zm_err_set(err, NULL, 0, "wc_MakeCert: %d", r);
        goto out;
    }
    if (req->is_ca) {
        int n = tbs_bc_critical(der, (size_t)cert->bodySz, DER_MAX);
        if (n < 0) {
            zm_err_set(err, NULL, 0, "cannot mark basicConstraints critical");
            goto out;
        }
        cert->bodySz = n;
    }
    int der_len = wc_SignCert(cert->bodySz, cert->sigType, der, DER_MAX, NULL, signer, &rng);
    if (der_len < 0) {
        zm_err_set(err, NULL, 0, "wc_SignCert: %d", der_len);
        goto out;
    }
    *cert_pem = der_to_pem(der, der_len, CERT_TYPE);

    int kl = wc_EccKeyToDer(&key, der, DER_MAX);
    if (kl > 0)
        *key_pem = der_to_pem(der, kl, ECC_PRIVATEKEY_TYPE);
    explicit_bzero(der, DER_MAX);
    if (!*cert_pem || !*key_pem) {
        zm_err_set(err, NULL, 0, "PEM encoding failed");
        free(*cert_pem);
        free(*key_pem);
        *cert_pem = *key_pem = NULL;
        goto out;
    }
    rc = 0;
out:
    if (ca_key_ok)
        wc_ecc_free(&ca_key);
    if (key_ok)
        wc_ecc_free(&key);
    if (rng_ok)
        wc_FreeRng(&rng);
    free(cert);
    free(der);
    free(ca_der);
    return rc;
}
