/*
 * tls_gcm.c — AES-GCM for our record layer: Intel's multi-buffer crypto
 * library (Debian's libipsec-mb) where the build found it and the CPU has
 * AES-NI, else wolfCrypt.
 *
 * Why two: the record layer spends most of its user time in AES-GCM, and on
 * CPUs with VAES / AVX-512 ipsec-mb runs it at well over twice wolfSSL
 * 5.5.4's AVX2 speed (measured on the bench machine, 16 KiB records: 12.4
 * against 5.3 GB/s); wolfSSL stays for the handshake and is the fallback.
 * Both implement the same standard, so which one sealed a record does not
 * matter to the peer (tests pair our records with wolfSSL's own).
 *
 * ipsec-mb's direct GCM functions take no manager argument: their pointers
 * are copied out of a manager once (init_mb_mgr_auto picks the code for
 * this CPU) and the manager is freed, so threads share nothing mutable.
 */
#include "tls_int.h"

#if ZM_TLS_RECORD_LAYER

#include <pthread.h>
#include <string.h>

#if ZM_HAVE_IPSEC_MB
typedef struct mb_fns {
    aes_gcm_pre_t pre;
    aes_gcm_init_var_iv_t init;
    aes_gcm_enc_dec_update_t enc_update;
    aes_gcm_enc_dec_finalize_t enc_final;
    aes_gcm_enc_dec_t dec;
} mb_fns_t;

static mb_fns_t mb_fns[2]; /* AES-128, AES-256 */
static bool mb_ok;
static pthread_once_t mb_once = PTHREAD_ONCE_INIT;

static void mb_setup(void)
{
    IMB_MGR *m = alloc_mb_mgr(0);
    if (!m)
        return;
    IMB_ARCH arch = IMB_ARCH_NONE;
    init_mb_mgr_auto(m, &arch);
    if (arch >= IMB_ARCH_SSE) { /* AES-NI; without it wolfCrypt is no slower */
        mb_fns[0] = (mb_fns_t){m->gcm128_pre, m->gcm128_init_var_iv, m->gcm128_enc_update,
                               m->gcm128_enc_finalize, m->gcm128_dec};
        mb_fns[1] = (mb_fns_t){m->gcm256_pre, m->gcm256_init_var_iv, m->gcm256_enc_update,
                               m->gcm256_enc_finalize, m->gcm256_dec};
        mb_ok = mb_fns[0].pre && mb_fns[1].pre && mb_fns[0].dec && mb_fns[1].dec;
    }
    free_mb_mgr(m);
}
#endif

static bool force_wolfcrypt;

void zm__tls_gcm_use_wolfcrypt(bool on)
{
    force_wolfcrypt = on;
}

static bool use_mb(void)
{
#if ZM_HAVE_IPSEC_MB
    pthread_once(&mb_once, mb_setup);
    return mb_ok && !force_wolfcrypt;
#else
    return false;
#endif
}

const char *zm__tls_gcm_engine(void)
{
    return use_mb() ? "ipsec-mb" : "wolfcrypt";
}

int zm__tls_gcm_init(zm_tls_gcm_t *g, const uint8_t *key, unsigned key_len)
{
    memset(g, 0, sizeof(*g));
    if (key_len != 16 && key_len != 32)
        return -EINVAL;
#if ZM_HAVE_IPSEC_MB
    if (use_mb()) {
        g->mb = &mb_fns[key_len == 32];
        g->mb->pre(key, &g->mb_key);
        return 0;
    }
#endif
    if (wc_AesInit(&g->aes, NULL, INVALID_DEVID) != 0)
        return -EPROTO;
    g->aes_live = true;
    return wc_AesGcmInit(&g->aes, key, key_len, NULL, 0) == 0 ? 0 : -EPROTO;
}

void zm__tls_gcm_free(zm_tls_gcm_t *g)
{
    if (g->aes_live)
        wc_AesFree(&g->aes);
    explicit_bzero(g, sizeof(*g));
}

int zm__tls_gcm_seal_begin(zm_tls_gcm_t *g, zm_tls_gcm_op_t *op, const uint8_t nonce[12],
                           const uint8_t *aad, size_t aad_len)
{
#if ZM_HAVE_IPSEC_MB
    if (g->mb) {
        g->mb->init(&g->mb_key, &op->mb_ctx, nonce, 12, aad, aad_len);
        return 0;
    }
#endif
    (void)op;
    int r = wc_AesGcmEncryptInit(&g->aes, NULL, 0, nonce, 12);
    if (r == 0)
        r = wc_AesGcmEncryptUpdate(&g->aes, NULL, NULL, 0, aad, (word32)aad_len);
    return r == 0 ? 0 : -EPROTO;
}

int zm__tls_gcm_seal_update(zm_tls_gcm_t *g, zm_tls_gcm_op_t *op, uint8_t *out, const uint8_t *in,
                            size_t n)
{
#if ZM_HAVE_IPSEC_MB
    if (g->mb) {
        g->mb->enc_update(&g->mb_key, &op->mb_ctx, out, in, n);
        return 0;
    }
#endif
    (void)op;
    return wc_AesGcmEncryptUpdate(&g->aes, out, in, (word32)n, NULL, 0) == 0 ? 0 : -EPROTO;
}

int zm__tls_gcm_seal_end(zm_tls_gcm_t *g, zm_tls_gcm_op_t *op, uint8_t tag[16])
{
#if ZM_HAVE_IPSEC_MB
    if (g->mb) {
        g->mb->enc_final(&g->mb_key, &op->mb_ctx, tag, 16);
        return 0;
    }
#endif
    (void)op;
    return wc_AesGcmEncryptFinal(&g->aes, tag, 16) == 0 ? 0 : -EPROTO;
}

int zm__tls_gcm_open(zm_tls_gcm_t *g, const uint8_t nonce[12], const uint8_t *aad, size_t aad_len,
                     uint8_t *out, const uint8_t *in, size_t n, const uint8_t tag[16])
{
#if ZM_HAVE_IPSEC_MB
    if (g->mb) {
        struct gcm_context_data ctx;
        uint8_t want[16];
        g->mb->dec(&g->mb_key, &ctx, out, in, n, nonce, aad, aad_len, want, sizeof(want));
        uint8_t diff = 0; /* constant time: no early exit on the first difference */
        for (int i = 0; i < 16; i++)
            diff |= (uint8_t)(want[i] ^ tag[i]);
        return diff ? -EBADMSG : 0;
    }
#endif
    return wc_AesGcmDecrypt(&g->aes, out, in, (word32)n, nonce, 12, tag, 16, aad,
                            (word32)aad_len) == 0
               ? 0
               : -EBADMSG;
}

#endif
