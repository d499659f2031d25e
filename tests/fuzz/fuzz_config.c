/*
 * fuzz_config.c — the configuration loader (libconfig syntax, then the
 * schema: types, ranges, unknown keys, path resolution).
 *
 * Each input is loaded twice: from memory (zm_config_load_string) and from
 * a file in a private temporary directory (zm_config_load_report, which
 * also collects every problem). Both must agree on success or failure. A
 * loaded snapshot is dumped as JSON and released. Inputs with "@include"
 * are skipped: they would make the loader open arbitrary files (a FIFO or
 * /dev/stdin would hang the fuzzer), and includes are covered by the unit
 * tests.
 *
 * Threading: one thread.
 */
#include "config.h"
#include "fuzz.h"

#include <stdbool.h>
#include <string.h>
#include <unistd.h>

static char dir[64];
static char path[96];

static void cleanup(void)
{
    if (path[0])
        unlink(path);
    if (dir[0])
        rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    snprintf(dir, sizeof(dir), "/tmp/zm-fuzz-config.XXXXXX");
    if (!mkdtemp(dir)) {
        dir[0] = 0;
        return 0;
    }
    snprintf(path, sizeof(path), "%s/mesh.cfg", dir);
    atexit(cleanup);
    return 0;
}

/* RFC 3629 UTF-8 (no overlongs, surrogates or values past U+10FFFF), as
 * jansson wants it. */
static bool utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p++, n, min;
        if (c < 0x80)
            continue;
        if (c >= 0xc2 && c <= 0xdf)
            n = 1, min = 0x80, c &= 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            n = 2, min = 0x800, c &= 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 3, min = 0x10000, c &= 0x07;
        else
            return false;
        for (; n; n--, p++) {
            if ((*p & 0xc0) != 0x80)
                return false;
            c = (c << 6) | (*p & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return false;
    }
    return true;
}

static void check_loaded(const zm_config_t *cfg)
{
    FUZZ_CHECK(cfg->generation == 1);
    FUZZ_CHECK(cfg->node.name && cfg->node.trust_domain && cfg->tls.cert_dir && cfg->tls.ca_file);
    FUZZ_CHECK(cfg->log.access_log && cfg->listen.admin_address);
    /* Known limitation: jansson refuses strings that are not UTF-8, and the
     * loader accepts such names and paths ("\xff" escapes), so the dump
     * fails for them. Everything else must dump. */
    bool utf8 = utf8_ok(cfg->node.name) && utf8_ok(cfg->tls.cert_dir) &&
                utf8_ok(cfg->tls.ca_file) && utf8_ok(cfg->log.access_log) && utf8_ok(cfg->path);
    for (size_t i = 0; i < cfg->n_sources; i++)
        utf8 = utf8 && utf8_ok(cfg->sources[i]);
    char *json = zm_config_dump_string(cfg);
    FUZZ_CHECK(json || !utf8);
    free(json);
    const zm_config_t *again = zm_config_retain(cfg);
    zm_config_release(&again);
    FUZZ_CHECK(again == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (memmem(data, size, "@include", 8))
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;

    zm_err_t err;
    const zm_config_t *cfg = NULL;
    int from_string = zm_config_load_string(text, "fuzz.cfg", &cfg, &err);
    if (from_string == 0)
        check_loaded(cfg);
    else
        FUZZ_CHECK(cfg == NULL && err.msg[0]);
    zm_config_release(&cfg);

    /* libconfig's string reader stops at the first NUL; the file reader
     * does not, so only NUL-free inputs must give the same verdict. */
    FILE *f = path[0] ? fopen(path, "w") : NULL;
    if (f) {
        bool written = fwrite(data, 1, size, f) == size;
        if (fclose(f) == 0 && written) {
            char report[2048];
            int from_file = zm_config_load_report(path, &cfg, &err, report, sizeof(report));
            if (from_file == 0)
                check_loaded(cfg);
            else
                FUZZ_CHECK(cfg == NULL && err.msg[0]);
            if (!memchr(data, 0, size))
                FUZZ_CHECK((from_file == 0) == (from_string == 0));
            zm_config_release(&cfg);
        }
    }
    free(text);
    return 0;
}
