/*
 * fuzz_httpd_request.c — the admin/metrics server's request-line parser.
 *
 * httpd hands zm_httpd_parse_head a NUL-terminated head without interior
 * NULs (it answers 400 to those before parsing), so the driver skips such
 * inputs. An accepted request must point into the buffer, with a GET or
 * POST method, a path starting with '/' and no '?' left in it.
 */
#include "fuzz.h"
#include "httpd.h"

#include <stdbool.h>
#include <string.h>

static bool inside(const char *p, const char *buf, size_t size)
{
    return p >= buf && p <= buf + size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > ZM_HTTPD_MAX_HEAD || memchr(data, 0, size))
        return 0;
    char *head = malloc(size + 1);
    if (!head)
        return 0;
    memcpy(head, data, size);
    head[size] = 0;
    zm_httpd_request_t req = {0};
    int rc = zm_httpd_parse_head(head, &req);
    FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -EOPNOTSUPP);
    if (rc == 0) {
        FUZZ_CHECK(inside(req.method, head, size) && inside(req.path, head, size));
        FUZZ_CHECK(req.query && (req.query[0] == 0 || inside(req.query, head, size)));
        FUZZ_CHECK(!strcmp(req.method, "GET") || !strcmp(req.method, "POST"));
        FUZZ_CHECK(req.path[0] == '/' && !strchr(req.path, '?'));
        FUZZ_CHECK(strlen(req.path) < size && strlen(req.query) < size);
    }
    free(head);
    return 0;
}
