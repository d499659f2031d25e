/*
 * tls_slot.c — reloadable TLS identities (zm_tls_slot_* of tls.h).
 *
 * A slot owns a copy of its configuration and the stat() stamp (device,
 * inode, size, mtime) of each file taken *before* the files were last read.
 * zm_tls_slot_reload() compares stamps, builds a complete new context when
 * any changed, and swaps the current pointer under a mutex; connections keep
 * the reference they took, so the old context lives until its last
 * connection is freed. A failed build keeps the old context and the old
 * stamps, so it is retried and reported until the files are fixed.
 *
 * Threading: zm_tls_slot_get() may be called from any thread; reload is
 * meant for one control thread at a time (the swap itself is locked).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tls.h"

typedef struct file_stamp {
    bool present;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} file_stamp_t;

struct zm_tls_slot {
    pthread_mutex_t lock; /* guards cur */
    zm_tls_ctx_t *cur;
    zm_tls_ctx_config_t cfg; /* strings below are owned copies */
    char *strs[7];
    file_stamp_t stamps[3];
};

static void stamp_file(const char *path, file_stamp_t *s)
{
    struct stat st;
    memset(s, 0, sizeof(*s));
    if (!path || stat(path, &st) != 0)
        return;
    s->present = true;
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    s->size = st.st_size;
    s->mtime = st.st_mtim;
}

static bool stamp_eq(const file_stamp_t *a, const file_stamp_t *b)
{
    return a->present == b->present && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static void slot_stamps(const zm_tls_slot_t *s, file_stamp_t out[3])
{
    stamp_file(s->cfg.cert_pem ? NULL : s->cfg.cert_file, &out[0]);
    stamp_file(s->cfg.key_pem ? NULL : s->cfg.key_file, &out[1]);
    stamp_file(s->cfg.ca_pem ? NULL : s->cfg.ca_file, &out[2]);
}

int zm_tls_slot_new(zm_tls_slot_t **out, const zm_tls_ctx_config_t *cfg, zm_err_t *err)
{
    *out = NULL;
    zm_tls_slot_t *s = calloc(1, sizeof(*s));
    if (!s)
        return zm_err_set(err, NULL, 0, "out of memory");
    pthread_mutex_init(&s->lock, NULL);
    s->cfg = *cfg;
    const char **fields[] = {&s->cfg.cert_file,   &s->cfg.key_file, &s->cfg.ca_file,
                             &s->cfg.cert_pem,    &s->cfg.key_pem,  &s->cfg.ca_pem,
                             &s->cfg.trust_domain};
    for (size_t i = 0; i < ZM_ARRAY_LEN(fields); i++) {
        if (*fields[i] && !(s->strs[i] = strdup(*fields[i]))) {
            zm_tls_slot_free(&s);
            return zm_err_set(err, NULL, 0, "out of memory");
        }
        *fields[i] = s->strs[i];
    }
    if (cfg->alpn) /* ALPN names are program constants, not copied */
        s->cfg.alpn = cfg->alpn;
    slot_stamps(s, s->stamps);
    int r = zm_tls_ctx_new(&s->cur, &s->cfg, err);
    if (r < 0) {
        zm_tls_slot_free(&s);
        return r;
    }
    *out = s;
    return 0;
}

int zm_tls_slot_reload(zm_tls_slot_t *slot, zm_err_t *err)
{
    file_stamp_t now[3];
    slot_stamps(slot, now);
    bool same = true;
    for (int i = 0; i < 3; i++)
        same = same && stamp_eq(&now[i], &slot->stamps[i]);
    if (same)
        return 0;
    /* Stamps taken before reading: a write racing with us shows up as a
     * further change on the next reload. A failed build keeps the old
     * stamps, so it is retried (and reported) until the files are fixed. */
    zm_tls_ctx_t *c = NULL;
    int r = zm_tls_ctx_new(&c, &slot->cfg, err);
    if (r < 0)
        return r;
    memcpy(slot->stamps, now, sizeof(now));
    pthread_mutex_lock(&slot->lock);
    zm_tls_ctx_t *old = slot->cur;
    slot->cur = c;
    pthread_mutex_unlock(&slot->lock);
    zm_tls_ctx_unref(&old);
    return 1;
}

zm_tls_ctx_t *zm_tls_slot_get(zm_tls_slot_t *slot)
{
    pthread_mutex_lock(&slot->lock);
    zm_tls_ctx_t *c = slot->cur;
    if (c)
        zm_tls_ctx_ref(c);
    pthread_mutex_unlock(&slot->lock);
    return c;
}

void zm_tls_slot_free(zm_tls_slot_t **sp)
{
    zm_tls_slot_t *s = *sp;
    if (!s)
        return;
    *sp = NULL;
    zm_tls_ctx_unref(&s->cur);
    for (size_t i = 0; i < ZM_ARRAY_LEN(s->strs); i++)
        free(s->strs[i]);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
