/*
 * ca.h — the mesh CA: a root key and certificate on disk, and workload
 * certificates issued from it into per-identity directories that proxies
 * read and that rotation rewrites atomically.
 *
 * CA directory (mc_ca_init): DIR (0700) holds root-key.pem (0600),
 * root-cert.pem and ca.pem (the trust bundle, today the root certificate
 * alone). Identity directory (mc_ca_issue_into), read by the ztunnel
 * certificate provider and documented in config/CA.md:
 *
 *     OUT/gen-N/{cert.pem,key.pem,ca.pem}   one generation per issue
 *     OUT/current -> gen-N                  swapped with rename(2)
 *     OUT/{cert,key,ca}.pem -> current/...  for readers that take paths
 *
 * A reader that resolves `current` once sees a matching key and certificate;
 * the previous generation is kept so a reader that resolved it just before a
 * swap can finish. Issuers of one directory serialise on flock(OUT).
 *
 * Threading: the functions are reentrant; concurrent issuers into the same
 * directory (threads or processes) are serialised by the lock.
 */
#ifndef MC_CA_H
#define MC_CA_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "zm.h"

#define MC_CA_ROOT_CERT "root-cert.pem"
#define MC_CA_ROOT_KEY "root-key.pem"
#define MC_CA_BUNDLE "ca.pem"
#define MC_CA_CERT "cert.pem"
#define MC_CA_KEY "key.pem"
#define MC_CA_CURRENT "current"
/* Root validity: 10 years. */
#define MC_CA_ROOT_VALIDITY_S (3652LL * 86400)

/* Creates a CA in dir (made 0700 with missing parents). -EEXIST (err says
 * so) when dir already holds a root key or certificate and !force. */
int mc_ca_init(const char *dir, bool force, zm_err_t *err);

/* Issues spiffe_id, valid from now - 60 s to now + ttl_s, from the CA in
 * ca_dir into out_dir (made 0700 with missing parents), as a new generation
 * (see above). -EINVAL bad id or ttl, -ERANGE ttl past the CA's own expiry,
 * -ENOENT no CA there, other -errno from the file system; err says which
 * file and why. On success *not_after (may be NULL) gets the expiry. */
int mc_ca_issue(const char *ca_dir, const char *spiffe_id, int64_t ttl_s, const char *out_dir,
                int64_t *not_after, zm_err_t *err);

/* mc_ca_issue() without the expiry, for the sandbox's per-workload loop. */
int mc_ca_issue_into(const char *ca_dir, const char *spiffe_id, int64_t ttl_s, const char *out_dir,
                     zm_err_t *err);

/* The sandbox's place for an identity: STATE/certs/<ns>/<sa>. -EINVAL bad
 * id, -ENAMETOOLONG buf too small. */
int mc_ca_identity_dir(const char *state_dir, const char *spiffe_id, char *buf, size_t len);

#endif
