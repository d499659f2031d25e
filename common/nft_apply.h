/*
 * nft_apply.h — one nftables ruleset text applied through libnftables in
 * the calling thread's network namespace: the sandbox's per-namespace
 * rules (config/sandbox_link.c) and ztunnel's capture (ztunnel/capture.c).
 */
#ifndef ZM_NFT_APPLY_H
#define ZM_NFT_APPLY_H

#include <stddef.h>

/* 0, or -ENOMEM / -EINVAL with nftables' first error line in err. */
int zm_nft_apply(const char *ruleset, char *err, size_t err_len);

#endif
