/*
 * ca.c — the mesh CA on disk (see ca.h and config/CA.md).
 *
 * Invariants: a file is never visible half-written (CA files are written to
 * a temporary name, fsync'd, then renamed; identity files are written into a
 * fresh generation directory that becomes visible only when `current` is
 * swapped); a private key is created with mode 0600 before any byte is
 * written and wiped from memory after use; an issued certificate is checked
 * to chain to the root certificate before it is published, so a CA
 * directory whose key and certificate do not match is reported, not spread.
 *
 * All work on a directory happens relative to an fd of it holding flock(),
 * so concurrent issuers (the sandbox issuing many workloads, a rotation
 * timer, a user) never interleave generations.
 */
#include <wolfssl/options.h>

#include <wolfssl/ssl.h>

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ca.h"
#include "tls.h"

#define PEM_FILE_MAX (64 * 1024)

static int sys_err(zm_err_t *err, const char *path, int e, const char *what)
{
    zm_err_set(err, path, 0, "%s: %s", what, strerror(e));
    return -e;
}

/* Reads a whole (small) file into a NUL-terminated malloc'd string. */
static int read_text(const char *path, char **out, zm_err_t *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sys_err(err, path, errno, "cannot open");
    char *buf = malloc(PEM_FILE_MAX + 1);
    size_t n = 0;
    int rc = 0;
    if (!buf) {
        rc = sys_err(err, path, ENOMEM, "cannot read");
        goto out;
    }
    for (;;) {
        ssize_t r = read(fd, buf + n, PEM_FILE_MAX - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = sys_err(err, path, errno, "cannot read");
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n == PEM_FILE_MAX) {
            zm_err_set(err, path, 0, "file larger than %d bytes", PEM_FILE_MAX);
            rc = -EFBIG;
            goto out;
        }
    }
    buf[n] = '\0';
    *out = buf;
    buf = NULL;
out:
    if (buf) {
        explicit_bzero(buf, n);
        free(buf);
    }
    close(fd);
    return rc;
}

static void free_secret(char **s)
{
    if (*s) {
        explicit_bzero(*s, strlen(*s));
        free(*s);
        *s = NULL;
    }
}

/* mkdir -p: parents 0755, the last component `mode`. Existing directories
 * are left as they are. */
static int make_dirs(const char *path, mode_t mode, zm_err_t *err)
{
    char p[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(p)) {
        zm_err_set(err, path, 0, "bad directory name");
        return -ENAMETOOLONG;
    }
    memcpy(p, path, n + 1);
    while (n > 1 && p[n - 1] == '/')
        p[--n] = '\0';
    for (char *s = p + 1;; s++) {
        bool last = *s == '\0';
        if (*s != '/' && !last)
            continue;
        *s = '\0';
        if (mkdir(p, last ? mode : 0755) != 0) {
            struct stat st;
            if (errno != EEXIST)
                return sys_err(err, p, errno, "cannot create directory");
            if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
                return sys_err(err, p, ENOTDIR, "cannot create directory");
        } else if (last && chmod(p, mode) != 0) { /* umask may have narrowed it */
            return sys_err(err, p, errno, "chmod");
        }
        if (last)
            return 0;
        *s = '/';
    }
}

/* Opens a directory and takes its exclusive lock. */
static int open_locked(const char *path, zm_err_t *err)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return sys_err(err, path, errno, "cannot open directory");
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            int e = errno;
            close(fd);
            return sys_err(err, path, e, "cannot lock");
        }
    }
    return fd;
}

/* Creates dir/name (which must not exist) with exactly `mode`, writes data
 * and fsyncs it. */
static int write_new(int dfd, const char *dir, const char *name, const char *data, mode_t mode,
                     zm_err_t *err)
{
    int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return sys_err(err, dir, errno, name);
    int rc = 0;
    if (fchmod(fd, mode) != 0)
        rc = -errno;
    size_t len = strlen(data), off = 0;
    while (rc == 0 && off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno != EINTR)
            rc = -errno;
        else if (w > 0)
            off += (size_t)w;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    close(fd);
    if (rc < 0) {
        unlinkat(dfd, name, 0);
        return sys_err(err, dir, -rc, name);
    }
    return 0;
}

/* Writes dir/name atomically: a temporary file renamed over it. */
static int replace_file(int dfd, const char *dir, const char *name, const char *data, mode_t mode,
                        zm_err_t *err)
{
    char tmp[64];
    snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
    unlinkat(dfd, tmp, 0); /* left over by a crash; we hold the lock */
    int r = write_new(dfd, dir, tmp, data, mode, err);
    if (r < 0)
        return r;
    if (renameat(dfd, tmp, dfd, name) != 0) {
        int e = errno;
        unlinkat(dfd, tmp, 0);
        return sys_err(err, dir, e, name);
    }
    return 0;
}

/* Points dir/name at target, atomically replacing whatever name was. */
static int replace_symlink(int dfd, const char *dir, const char *name, const char *target,
                           zm_err_t *err)
{
    char cur[PATH_MAX];
    ssize_t n = readlinkat(dfd, name, cur, sizeof(cur) - 1);
    if (n >= 0) {
        cur[n] = '\0';
        if (strcmp(cur, target) == 0)
            return 0;
    }
    char tmp[64];
    snprintf(tmp, sizeof(tmp), ".%s.lnk", name);
    unlinkat(dfd, tmp, 0);
    if (symlinkat(target, dfd, tmp) != 0)
        return sys_err(err, dir, errno, tmp);
    if (renameat(dfd, tmp, dfd, name) != 0) {
        int e = errno;
        unlinkat(dfd, tmp, 0);
        return sys_err(err, dir, e, name);
    }
    return 0;
}

static int64_t cert_not_after(const char *pem)
{
    zm_tls_global_init();
    WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_buffer((const unsigned char *)pem,
                                                           (int)strlen(pem), WOLFSSL_FILETYPE_PEM);
    if (!x)
        return -1;
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const WOLFSSL_ASN1_TIME *at = wolfSSL_X509_get_notAfter(x);
    int64_t t =
        at && wolfSSL_ASN1_TIME_to_tm(at, &tm) == WOLFSSL_SUCCESS ? (int64_t)timegm(&tm) : -1;
    wolfSSL_X509_free(x);
    return t;
}

/* 0 when cert_pem chains to root_pem. */
static int chains_to(const char *root_pem, const char *cert_pem)
{
    zm_tls_global_init();
    WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
    if (!cm)
        return -ENOMEM;
    int r = wolfSSL_CertManagerLoadCABuffer(cm, (const unsigned char *)root_pem,
                                            (long)strlen(root_pem), WOLFSSL_FILETYPE_PEM);
    if (r == WOLFSSL_SUCCESS)
        r = wolfSSL_CertManagerVerifyBuffer(cm, (const unsigned char *)cert_pem,
                                            (long)strlen(cert_pem), WOLFSSL_FILETYPE_PEM);
    wolfSSL_CertManagerFree(cm);
    return r == WOLFSSL_SUCCESS ? 0 : -EPROTO;
}

int mc_ca_init(const char *dir, bool force, zm_err_t *err)
{
    int r = make_dirs(dir, 0700, err);
    if (r < 0)
        return r;
    int dfd = open_locked(dir, err);
    if (dfd < 0)
        return dfd;
    char *cert = NULL, *key = NULL;
    struct stat st;
    if (fchmod(dfd, 0700) != 0) { /* it will hold the root key */
        r = sys_err(err, dir, errno, "chmod");
        goto out;
    }
    if (!force && (fstatat(dfd, MC_CA_ROOT_KEY, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
                   fstatat(dfd, MC_CA_ROOT_CERT, &st, AT_SYMLINK_NOFOLLOW) == 0)) {
        zm_err_set(err, dir, 0, "already holds a CA; use --force to replace it");
        r = -EEXIST;
        goto out;
    }
    int64_t now = (int64_t)time(NULL);
    zm_cert_req_t req = {.common_name = "zmesh root CA",
                         .is_ca = true,
                         .not_before = now - 60,
                         .not_after = now + MC_CA_ROOT_VALIDITY_S};
    if ((r = zm_cert_issue(&req, NULL, NULL, &cert, &key, err)) < 0)
        goto out;
    /* Key first: a crash in between leaves a key without a certificate,
     * which issuing reports, never a certificate whose key is lost. */
    if ((r = replace_file(dfd, dir, MC_CA_ROOT_KEY, key, 0600, err)) < 0 ||
        (r = replace_file(dfd, dir, MC_CA_ROOT_CERT, cert, 0644, err)) < 0 ||
        (r = replace_file(dfd, dir, MC_CA_BUNDLE, cert, 0644, err)) < 0)
        goto out;
    if (fsync(dfd) != 0)
        r = sys_err(err, dir, errno, "fsync");
out:
    free(cert);
    free_secret(&key);
    close(dfd); /* releases the lock */
    return r;
}

/* "gen-N" → N, or 0 when name is not a generation. */
static unsigned long gen_number(const char *name)
{
    if (strncmp(name, "gen-", 4) != 0 || name[4] < '1' || name[4] > '9')
        return 0;
    char *end;
    unsigned long n = strtoul(name + 4, &end, 10);
    return *end ? 0 : n;
}

/* A directory stream of its own (not a dup(), whose read offset would be
 * shared with dfd). */
static DIR *open_dir_at(int dfd, const char *name)
{
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d && fd >= 0)
        close(fd);
    return d;
}

static void remove_gen(int dfd, const char *name)
{
    DIR *d = open_dir_at(dfd, name);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
    unlinkat(dfd, name, AT_REMOVEDIR);
}

/* Highest gen-N in the directory (0 if none). */
static unsigned long max_gen(int dfd)
{
    DIR *d = open_dir_at(dfd, ".");
    if (!d)
        return 0;
    unsigned long max = 0, n;
    struct dirent *e;
    while ((e = readdir(d)))
        if ((n = gen_number(e->d_name)) > max)
            max = n;
    closedir(d);
    return max;
}

/* Removes every generation but `keep_a` and `keep_b`. Failures are left for
 * the next issue to retry: stale generations are harmless. */
static void prune(int dfd, unsigned long keep_a, unsigned long keep_b)
{
    DIR *d = open_dir_at(dfd, ".");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        unsigned long n = gen_number(e->d_name);
        if (n && n != keep_a && n != keep_b)
            remove_gen(dfd, e->d_name);
    }
    closedir(d);
}

/* Writes a new generation of out_dir and publishes it. */
static int publish(const char *out_dir, const char *cert, const char *key, const char *bundle,
                   zm_err_t *err)
{
    int r = make_dirs(out_dir, 0700, err);
    if (r < 0)
        return r;
    int dfd = open_locked(out_dir, err);
    if (dfd < 0)
        return dfd;
    char prev_name[64] = "", gen[32];
    ssize_t pn = readlinkat(dfd, MC_CA_CURRENT, prev_name, sizeof(prev_name) - 1);
    prev_name[pn > 0 ? pn : 0] = '\0';
    unsigned long prev = gen_number(prev_name), next = max_gen(dfd) + 1;
    snprintf(gen, sizeof(gen), "gen-%lu", next);
    if (mkdirat(dfd, gen, 0700) != 0) {
        r = sys_err(err, out_dir, errno, gen);
        goto out;
    }
    int gfd = openat(dfd, gen, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (gfd < 0) {
        r = sys_err(err, out_dir, errno, gen);
        goto out;
    }
    char gpath[PATH_MAX];
    snprintf(gpath, sizeof(gpath), "%s/%s", out_dir, gen);
    if ((r = write_new(gfd, gpath, MC_CA_KEY, key, 0600, err)) == 0 &&
        (r = write_new(gfd, gpath, MC_CA_CERT, cert, 0644, err)) == 0 &&
        (r = write_new(gfd, gpath, MC_CA_BUNDLE, bundle, 0644, err)) == 0 && fsync(gfd) != 0)
        r = sys_err(err, gpath, errno, "fsync");
    close(gfd);
    if (r < 0) {
        remove_gen(dfd, gen);
        goto out;
    }
    /* The switch: one rename makes the whole generation current. */
    if ((r = replace_symlink(dfd, out_dir, MC_CA_CURRENT, gen, err)) < 0) {
        remove_gen(dfd, gen);
        goto out;
    }
    static const char *const names[] = {MC_CA_CERT, MC_CA_KEY, MC_CA_BUNDLE};
    for (size_t i = 0; i < ZM_ARRAY_LEN(names) && r == 0; i++) {
        char target[64];
        snprintf(target, sizeof(target), MC_CA_CURRENT "/%s", names[i]);
        r = replace_symlink(dfd, out_dir, names[i], target, err);
    }
    if (r == 0 && fsync(dfd) != 0)
        r = sys_err(err, out_dir, errno, "fsync");
    prune(dfd, next, prev);
out:
    close(dfd);
    return r;
}

int mc_ca_issue(const char *ca_dir, const char *spiffe_id, int64_t ttl_s, const char *out_dir,
                int64_t *not_after, zm_err_t *err)
{
    zm_spiffe_id_t id;
    if (zm_spiffe_parse(spiffe_id, &id) < 0)
        return zm_err_set(err, NULL, 0,
                          "'%s' is not a SPIFFE ID of the form "
                          "spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/SERVICE-ACCOUNT",
                          spiffe_id ? spiffe_id : "(null)");
    if (ttl_s <= 0)
        return zm_err_set(err, NULL, 0, "the validity must be positive");
    char path[PATH_MAX];
    char *root = NULL, *root_key = NULL, *bundle = NULL, *cert = NULL, *key = NULL;
    int r;
    snprintf(path, sizeof(path), "%s/%s", ca_dir, MC_CA_ROOT_CERT);
    if ((r = read_text(path, &root, err)) < 0)
        goto out;
    snprintf(path, sizeof(path), "%s/%s", ca_dir, MC_CA_ROOT_KEY);
    if ((r = read_text(path, &root_key, err)) < 0)
        goto out;
    snprintf(path, sizeof(path), "%s/%s", ca_dir, MC_CA_BUNDLE);
    if ((r = read_text(path, &bundle, err)) < 0)
        goto out;

    int64_t now = (int64_t)time(NULL), ca_end = cert_not_after(root);
    snprintf(path, sizeof(path), "%s/%s", ca_dir, MC_CA_ROOT_CERT);
    if (ca_end < 0) {
        r = zm_err_set(err, path, 0, "not a PEM certificate");
        goto out;
    }
    if (ttl_s > ca_end - now) {
        zm_err_set(err, path, 0,
                   ca_end <= now ? "the CA certificate has expired"
                                 : "the requested validity goes past the CA certificate's expiry");
        r = -ERANGE;
        goto out;
    }
    char cn[sizeof(id.sa) + sizeof(id.ns)]; /* cert.c cuts it to CTC_NAME_SIZE */
    snprintf(cn, sizeof(cn), "%s.%s", id.sa, id.ns);
    zm_cert_req_t req = {
        .spiffe_id = id.uri, .common_name = cn, .not_before = now - 60, .not_after = now + ttl_s};
    zm_err_t ierr = {0};
    if ((r = zm_cert_issue(&req, root, root_key, &cert, &key, &ierr)) < 0) {
        zm_err_set(err, ca_dir, 0, "%s", ierr.msg);
        goto out;
    }
    if (chains_to(root, cert) < 0) {
        r = zm_err_set(err, ca_dir, 0, "%s does not match %s", MC_CA_ROOT_KEY, MC_CA_ROOT_CERT);
        goto out;
    }
    if ((r = publish(out_dir, cert, key, bundle, err)) < 0)
        goto out;
    if (not_after)
        *not_after = now + ttl_s;
out:
    free(root);
    free(bundle);
    free(cert);
    free_secret(&root_key);
    free_secret(&key);
    return r;
}

int mc_ca_issue_into(const char *ca_dir, const char *spiffe_id, int64_t ttl_s, const char *out_dir,
                     zm_err_t *err)
{
    return mc_ca_issue(ca_dir, spiffe_id, ttl_s, out_dir, NULL, err);
}

int mc_ca_identity_dir(const char *state_dir, const char *spiffe_id, char *buf, size_t len)
{
    zm_spiffe_id_t id;
    if (zm_spiffe_parse(spiffe_id, &id) < 0)
        return -EINVAL;
    int n = snprintf(buf, len, "%s/certs/%s/%s", state_dir, id.ns, id.sa);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}
