/*
 * nft_apply.c — see nft_apply.h. Output and errors are buffered in the
 * context, never printed: callers report err themselves.
 */
#include "nft_apply.h"

#include <errno.h>
#include <nftables/libnftables.h>
#include <stdio.h>
#include <string.h>

int zm_nft_apply(const char *ruleset, char *err, size_t err_len)
{
    struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);
    if (!nft) {
        snprintf(err, err_len, "nftables: nft_ctx_new failed");
        return -ENOMEM;
    }
    nft_ctx_buffer_output(nft);
    nft_ctx_buffer_error(nft);
    int rc = 0;
    if (nft_run_cmd_from_buffer(nft, ruleset) != 0) {
        const char *e = nft_ctx_get_error_buffer(nft);
        snprintf(err, err_len, "nftables: %s", e && *e ? e : "failed");
        char *nl = strchr(err, '\n');
        if (nl)
            *nl = '\0';
        rc = -EINVAL;
    }
    nft_ctx_free(nft);
    return rc;
}
