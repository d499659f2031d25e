/*
 * aesgcm.c — zm-bench-aesgcm: bulk AEAD throughput of the wolfSSL that zmesh
 * links, the ceiling for any TLS record throughput figure.
 *
 * Each cipher encrypts one 16 KiB buffer (a full TLS record) over and over
 * for a fixed wall time with a fresh nonce per call, as a TLS record layer
 * does; the key is set once. It reports decimal GB/s (1e9 bytes/s) of
 * plaintext. It also says which wolfSSL AES-GCM code path is taken on this
 * CPU: wolfSSL dispatches at run time on cpuid_get_flags() (AVX2, then AVX1,
 * then plain AES-NI, then portable C), so a build with WOLFSSL_AESNI can
 * still fall back to C on a CPU without AES/PCLMUL, and Debian's binary
 * package has no assembly at all (~30x slower).
 *
 * Single-threaded; not a test (no assertion on timings), run by
 * tests/bench/run.sh. Usage: zm-bench-aesgcm [--seconds S] [--json]
 */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/aes.h>
#if defined(HAVE_CHACHA) && defined(HAVE_POLY1305)
#include <wolfssl/wolfcrypt/chacha20_poly1305.h>
#define HAVE_CHACHAPOLY 1
#endif
#include <wolfssl/wolfcrypt/cpuid.h>
#include <wolfssl/version.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tls_int.h"

#define BUF_LEN (16 * 1024)
#define TAG_LEN 16
#define NONCE_LEN 12

typedef struct result {
    const char *name;
    double gbps;
    uint64_t bytes;
    double seconds;
    int rc; /* 0 or the wolfSSL error code that stopped the run */
} result_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A TLS 1.3 style nonce: fixed IV xor a 64-bit record sequence number. */
static void next_nonce(uint8_t nonce[NONCE_LEN], uint64_t seq)
{
    for (int i = 0; i < 8; i++)
        nonce[NONCE_LEN - 1 - i] = (uint8_t)(0x5a ^ (seq >> (8 * i)));
}

/* Where each benchmark decrypts its last record to check it. */
static uint8_t back[BUF_LEN];

/* The clock is read once per 64 records so it costs nothing measurable. */
#define RECORDS_PER_CLOCK 64

static result_t run_aesgcm(const char *name, int key_len, double seconds, uint8_t *in, uint8_t *out)
{
    result_t r = {.name = name};
    uint8_t key[32], nonce[NONCE_LEN] = {0}, tag[TAG_LEN], aad[13] = {0x17, 0x03, 0x03};
    Aes aes;

    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)(i * 7 + 1);
    r.rc = wc_AesInit(&aes, NULL, INVALID_DEVID);
    if (r.rc != 0)
        return r;
    r.rc = wc_AesGcmSetKey(&aes, key, (word32)key_len);
    if (r.rc != 0)
        goto out;

    uint64_t seq = 0;
    double start = now_s(), end = start + seconds, t = start;
    while (t < end) {
        for (int i = 0; i < RECORDS_PER_CLOCK; i++) {
            next_nonce(nonce, seq++);
            r.rc = wc_AesGcmEncrypt(&aes, out, in, BUF_LEN, nonce, NONCE_LEN, tag, TAG_LEN, aad,
                                    sizeof(aad));
            if (r.rc != 0)
                goto out;
        }
        t = now_s();
    }
    r.bytes = seq * BUF_LEN;
    r.seconds = t - start;
    r.gbps = (double)r.bytes / r.seconds / 1e9;
    /* A fast wrong answer is no answer: the last record must decrypt back. */
    r.rc = wc_AesGcmDecrypt(&aes, back, out, BUF_LEN, nonce, NONCE_LEN, tag, TAG_LEN, aad,
                            sizeof(aad));
    if (r.rc == 0 && memcmp(back, in, BUF_LEN) != 0)
        r.rc = -1;
out:
    wc_AesFree(&aes);
    return r;
}

#ifdef HAVE_CHACHAPOLY
static result_t run_chacha(double seconds, uint8_t *in, uint8_t *out)
{
    result_t r = {.name = "chacha20-poly1305"};
    uint8_t key[CHACHA20_POLY1305_AEAD_KEYSIZE], nonce[NONCE_LEN] = {0}, tag[TAG_LEN];
    uint8_t aad[13] = {0x17, 0x03, 0x03};

    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (uint8_t)(i * 5 + 3);

    uint64_t seq = 0;
    double start = now_s(), end = start + seconds, t = start;
    while (t < end) {
        for (int i = 0; i < RECORDS_PER_CLOCK; i++) {
            next_nonce(nonce, seq++);
            r.rc = wc_ChaCha20Poly1305_Encrypt(key, nonce, aad, sizeof(aad), in, BUF_LEN, out, tag);
            if (r.rc != 0)
                return r;
        }
        t = now_s();
    }
    r.bytes = seq * BUF_LEN;
    r.seconds = t - start;
    r.gbps = (double)r.bytes / r.seconds / 1e9;
    r.rc = wc_ChaCha20Poly1305_Decrypt(key, nonce, aad, sizeof(aad), out, BUF_LEN, tag, back);
    if (r.rc == 0 && memcmp(back, in, BUF_LEN) != 0)
        r.rc = -1;
    return r;
}
#endif

/* The record layer's own AES-GCM (tls_gcm.c: ipsec-mb where built in),
 * sealing a 16 KiB record the way tls_record.c does: header as additional
 * data, content, content type, tag. */
static result_t run_record_layer(double seconds, uint8_t *in, uint8_t *out)
{
    result_t r = {.name = "record-aes-128-gcm"};
    uint8_t key[16], nonce[NONCE_LEN] = {0}, tag[TAG_LEN], hdr[5] = {0x17, 0x03, 0x03, 0x40, 0x11};
    uint8_t type = 0x17;
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)(i * 7 + 1);
    zm_tls_gcm_t *g = aligned_alloc(64, (sizeof(*g) + 63) / 64 * 64);
    if (!g || (r.rc = zm__tls_gcm_init(g, key, 16)) != 0) {
        free(g);
        r.rc = r.rc ? r.rc : -ENOMEM;
        return r;
    }
    uint64_t seq = 0;
    double start = now_s(), end = start + seconds, t = start;
    while (t < end) {
        for (int i = 0; i < RECORDS_PER_CLOCK; i++) {
            zm_tls_gcm_op_t op;
            next_nonce(nonce, seq++);
            r.rc = zm__tls_gcm_seal_begin(g, &op, nonce, hdr, sizeof(hdr));
            if (!r.rc)
                r.rc = zm__tls_gcm_seal_update(g, &op, out, in, BUF_LEN - 1);
            if (!r.rc)
                r.rc = zm__tls_gcm_seal_update(g, &op, out + BUF_LEN - 1, &type, 1);
            if (!r.rc)
                r.rc = zm__tls_gcm_seal_end(g, &op, tag);
            if (r.rc)
                goto out;
        }
        t = now_s();
    }
    r.bytes = seq * BUF_LEN;
    r.seconds = t - start;
    r.gbps = (double)r.bytes / r.seconds / 1e9;
    r.rc = zm__tls_gcm_open(g, nonce, hdr, sizeof(hdr), back, out, BUF_LEN, tag);
    if (r.rc == 0 && (memcmp(back, in, BUF_LEN - 1) != 0 || back[BUF_LEN - 1] != type))
        r.rc = -1;
out:
    zm__tls_gcm_free(g);
    free(g);
    return r;
}

/* Mirrors the dispatch at the top of wc_AesGcmEncrypt() in wolfcrypt/src/aes.c. */
static const char *aesgcm_path(void)
{
#ifdef WOLFSSL_AESNI
    word32 flags = cpuid_get_flags();
    int aesni = __builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul");
    if (!aesni)
        return "C (CPU lacks AES-NI/PCLMUL)";
    if (IS_INTEL_AVX2(flags))
        return "AES-NI+AVX2 asm";
    if (IS_INTEL_AVX1(flags))
        return "AES-NI+AVX1 asm";
    return "AES-NI asm";
#else
    return "C (wolfSSL built without WOLFSSL_AESNI)";
#endif
}

static int aesni_built(void)
{
#ifdef WOLFSSL_AESNI
    return 1;
#else
    return 0;
#endif
}

static void usage(void)
{
    fprintf(stderr, "usage: zm-bench-aesgcm [--seconds S] [--json]\n");
}

int main(int argc, char **argv)
{
    double seconds = 1.0;
    int json = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = strtod(argv[++i], NULL);
            if (!(seconds > 0 && seconds <= 60)) {
                usage();
                return 2;
            }
        } else {
            usage();
            return 2;
        }
    }

    uint8_t *in = calloc(1, BUF_LEN), *out = calloc(1, BUF_LEN + TAG_LEN);
    if (in == NULL || out == NULL) {
        free(in);
        free(out);
        fprintf(stderr, "zm-bench-aesgcm: out of memory\n");
        return 1;
    }
    for (int i = 0; i < BUF_LEN; i++)
        in[i] = (uint8_t)i;

    result_t res[4];
    size_t nres = 2;
    res[0] = run_aesgcm("aes-128-gcm", 16, seconds, in, out);
    res[1] = run_aesgcm("aes-256-gcm", 32, seconds, in, out);
#ifdef HAVE_CHACHAPOLY
    res[nres++] = run_chacha(seconds, in, out);
#endif
    res[nres++] = run_record_layer(seconds, in, out);
    free(in);
    free(out);

    int failed = 0;
    for (size_t i = 0; i < nres; i++) {
        if (res[i].rc != 0) {
            fprintf(stderr, "zm-bench-aesgcm: %s failed: error %d (-1: round trip mismatch)\n",
                    res[i].name, res[i].rc);
            failed = 1;
        }
    }

    if (json) {
        printf("{\"wolfssl_version\":\"%s\",\"wolfssl_aesni\":%s,\"aesgcm_path\":\"%s\","
               "\"record_bytes\":%d,\"record_engine\":\"%s\"",
               LIBWOLFSSL_VERSION_STRING, aesni_built() ? "true" : "false", aesgcm_path(), BUF_LEN,
               zm__tls_gcm_engine());
        for (size_t i = 0; i < nres; i++)
            printf(",\"%s_gbps\":%.3f", res[i].name, res[i].rc == 0 ? res[i].gbps : 0.0);
        printf("}\n");
    } else {
        printf("wolfSSL %s, WOLFSSL_AESNI %s, AES-GCM path: %s; record layer: %s\n",
               LIBWOLFSSL_VERSION_STRING, aesni_built() ? "on" : "off", aesgcm_path(),
               zm__tls_gcm_engine());
        for (size_t i = 0; i < nres; i++)
            printf("%-20s %7.3f GB/s  (%llu bytes in %.2f s, 16 KiB records)\n", res[i].name,
                   res[i].gbps, (unsigned long long)res[i].bytes, res[i].seconds);
    }
    return failed;
}
