/*
 * fuzz_spiffe.c — zm_spiffe_parse on arbitrary strings.
 *
 * The input (NUL bytes and all) becomes a C string; what follows the first
 * NUL is invisible to the parser, as it would be in a certificate's URI
 * SAN. An accepted ID must round-trip: its parts are NUL-terminated within
 * their arrays and spiffe://<td>/ns/<ns>/sa/<sa> rebuilds the URI exactly.
 */
#include "fuzz.h"
#include "tls.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = 0;
    zm_spiffe_id_t id;
    memset(&id, 0xa5, sizeof(id)); /* no stale terminator to hide behind */
    if (zm_spiffe_parse(s, &id) == 0) {
        FUZZ_CHECK(memchr(id.uri, 0, sizeof(id.uri)));
        FUZZ_CHECK(memchr(id.trust_domain, 0, sizeof(id.trust_domain)));
        FUZZ_CHECK(memchr(id.ns, 0, sizeof(id.ns)));
        FUZZ_CHECK(memchr(id.sa, 0, sizeof(id.sa)));
        FUZZ_CHECK(strcmp(id.uri, s) == 0);
        FUZZ_CHECK(id.trust_domain[0] && id.ns[0] && id.sa[0]);
        char again[sizeof(id.uri) + 32];
        snprintf(again, sizeof(again), "spiffe://%s/ns/%s/sa/%s", id.trust_domain, id.ns, id.sa);
        FUZZ_CHECK(strcmp(again, id.uri) == 0);
        zm_spiffe_id_t id2;
        FUZZ_CHECK(zm_spiffe_parse(again, &id2) == 0);
        FUZZ_CHECK(memcmp(&id2.uri, &id.uri, strlen(id.uri) + 1) == 0);
    }
    FUZZ_CHECK(zm_spiffe_parse(NULL, &id) < 0);
    free(s);
    return 0;
}
