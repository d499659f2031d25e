/*
 * certs.c — ztunnel's certificate provider: one reloadable TLS slot per
 * (identity, role), read from cert_dir/<ns>/<sa>/{cert,key,ca}.pem — the
 * layout `meshctl ca issue` writes (config/CA.md). Identities are loaded
 * when first needed (the first connection from or to a pod), and
 * zt_certs_reload, run periodically by the control thread, swaps in rotated
 * files; connections keep the context they started with.
 *
 * Look-ups take a mutex: they happen once per new HBONE connection (pooled)
 * or per inbound handshake, never per byte.
 */
#include "zt.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    struct entry *next;
    char ns[64], sa[64];
    bool server;
    zm_tls_slot_t *slot;
} entry_t;

struct zt_certs {
    pthread_mutex_t mu;
    char dir[4096];
    char trust_domain[256];
    entry_t *head;
};

int zt_certs_new(zt_certs_t **out, const char *cert_dir, const char *trust_domain)
{
    zt_certs_t *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    pthread_mutex_init(&c->mu, NULL);
    snprintf(c->dir, sizeof(c->dir), "%s", cert_dir);
    snprintf(c->trust_domain, sizeof(c->trust_domain), "%s", trust_domain);
    *out = c;
    return 0;
}

void zt_certs_free(zt_certs_t **pc)
{
    zt_certs_t *c = *pc;
    if (!c)
        return;
    while (c->head) {
        entry_t *e = c->head;
        c->head = e->next;
        zm_tls_slot_free(&e->slot);
        free(e);
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
    *pc = NULL;
}

zm_tls_ctx_t *zt_certs_get(zt_certs_t *c, const char *ns, const char *sa, bool server,
                           zm_err_t *err)
{
    pthread_mutex_lock(&c->mu);
    entry_t *e = c->head;
    while (e && !(e->server == server && !strcmp(e->ns, ns) && !strcmp(e->sa, sa)))
        e = e->next;
    if (!e) {
        char cert[4200], key[4200], ca[4200];
        snprintf(cert, sizeof(cert), "%s/%s/%s/cert.pem", c->dir, ns, sa);
        snprintf(key, sizeof(key), "%s/%s/%s/key.pem", c->dir, ns, sa);
        snprintf(ca, sizeof(ca), "%s/%s/%s/ca.pem", c->dir, ns, sa);
        zm_tls_ctx_config_t cfg = {.server = server,
                                   .cert_file = cert,
                                   .key_file = key,
                                   .ca_file = ca,
                                   .trust_domain = c->trust_domain};
        e = calloc(1, sizeof(*e));
        if (!e || zm_tls_slot_new(&e->slot, &cfg, err) < 0) {
            free(e);
            pthread_mutex_unlock(&c->mu);
            return NULL;
        }
        snprintf(e->ns, sizeof(e->ns), "%s", ns);
        snprintf(e->sa, sizeof(e->sa), "%s", sa);
        e->server = server;
        e->next = c->head;
        c->head = e;
    }
    zm_tls_ctx_t *ctx = zm_tls_slot_get(e->slot);
    pthread_mutex_unlock(&c->mu);
    return ctx;
}

int zt_certs_reload(zt_certs_t *c)
{
    int swapped = 0;
    pthread_mutex_lock(&c->mu);
    for (entry_t *e = c->head; e; e = e->next) {
        zm_err_t err = {0};
        if (zm_tls_slot_reload(e->slot, &err) == 1)
            swapped++;
    }
    pthread_mutex_unlock(&c->mu);
    return swapped;
}

char *zt_certs_dump(zt_certs_t *c)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&c->mu);
    for (entry_t *e = c->head; e; e = e->next) {
        zm_tls_ctx_t *ctx = zm_tls_slot_get(e->slot);
        if (!ctx)
            continue;
        json_array_append_new(arr,
                              json_pack("{s:s,s:s,s:I}", "identity", zm_tls_ctx_identity(ctx)->uri,
                                        "role", e->server ? "server" : "client", "not_after",
                                        (json_int_t)zm_tls_ctx_not_after(ctx)));
        zm_tls_ctx_unref(&ctx);
    }
    pthread_mutex_unlock(&c->mu);
    char *s = json_dumps(arr, JSON_INDENT(2));
    json_decref(arr);
    return s;
}
