/*
 * replay_main.c — a libFuzzer stand-in for the normal (gcc) build.
 *
 * Runs LLVMFuzzerTestOneInput on every file of the directories (or files)
 * given, then on deterministic pseudo-random mutations of them (bit flips,
 * interesting integers, truncations, insertions, erasures, duplications and
 * splices) until -runs inputs in total or -max_total_time seconds, whichever
 * comes first. The same seed gives the same sequence of inputs, so a failure
 * found by ctest is reproduced by running the same command again; the
 * failing input is also written to crash-<seed>-<run> in the working
 * directory (through the sanitizer's death callback, or a signal handler
 * when there is no sanitizer).
 *
 * Options mirror libFuzzer's spelling so one command line fits both:
 * -runs=N (default 20000), -max_total_time=S (default 5), -seed=N
 * (default 1), -max_len=N (default 65536). Every input is handed over in a
 * buffer of exactly its size, so a sanitizer sees any overread.
 *
 * Threading: one thread.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));
void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

typedef struct input {
    uint8_t *data;
    size_t len;
    char *name;
} input_t;

static input_t *corpus;
static size_t n_corpus, cap_corpus;

/* The input being run, for the crash dump. */
static const uint8_t *cur_data;
static size_t cur_len;
static unsigned long long cur_run, opt_seed = 1;

static uint64_t rng_state;

#define MIN_SZ(a, b) ((a) < (b) ? (a) : (b))

static uint64_t rnd(void)
{
    /* splitmix64: tiny, and the same on every platform */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static size_t rnd_below(size_t n)
{
    return n ? (size_t)(rnd() % n) : 0;
}

static void dump_crash(void)
{
    if (!cur_data) {
        static const char msg[] = "replay: failure outside any input (a leak found at exit?)\n";
        if (write(2, msg, sizeof(msg) - 1) < 0)
            return;
        return;
    }
    char name[64];
    int n = snprintf(name, sizeof(name), "crash-%llu-%llu", opt_seed, cur_run);
    int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        size_t off = 0;
        while (off < cur_len) {
            ssize_t w = write(fd, cur_data + off, cur_len - off);
            if (w <= 0)
                break;
            off += (size_t)w;
        }
        close(fd);
    }
    /* write(2) only: this may run in a signal handler. */
    static const char msg[] = "replay: failing input written to ";
    if (write(2, msg, sizeof(msg) - 1) < 0 || write(2, name, (size_t)n) < 0 || write(2, "\n", 1))
        return;
}

static void on_signal(int sig)
{
    dump_crash();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_crash_dump(void)
{
    /* The sanitizers handle SEGV, BUS and FPE and call the death callback;
     * abort() (FUZZ_CHECK) and traps they leave alone. */
    if (__sanitizer_set_death_callback) {
        __sanitizer_set_death_callback(dump_crash);
    } else {
        signal(SIGSEGV, on_signal);
        signal(SIGBUS, on_signal);
        signal(SIGFPE, on_signal);
    }
    signal(SIGABRT, on_signal);
    signal(SIGILL, on_signal);
}

static int add_input(const char *path, size_t max_len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    uint8_t *buf = malloc(max_len ? max_len : 1);
    size_t len = buf ? fread(buf, 1, max_len, f) : 0;
    fclose(f);
    if (!buf)
        return -ENOMEM;
    if (n_corpus == cap_corpus) {
        size_t cap = cap_corpus ? cap_corpus * 2 : 32;
        input_t *c = realloc(corpus, cap * sizeof(*c));
        if (!c) {
            free(buf);
            return -ENOMEM;
        }
        corpus = c;
        cap_corpus = cap;
    }
    corpus[n_corpus++] = (input_t){.data = buf, .len = len, .name = strdup(path)};
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const input_t *)a)->name, ((const input_t *)b)->name);
}

static int add_path(const char *path, size_t max_len)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return add_input(path, max_len);
    DIR *d = opendir(path);
    if (!d)
        return -errno;
    size_t first = n_corpus;
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char full[4096];
        snprintf(full, sizeof(full), "%s/%s", path, e->d_name);
        if (stat(full, &st) == 0 && S_ISREG(st.st_mode))
            rc = add_input(full, max_len);
    }
    closedir(d);
    /* readdir order is the file system's: sort for a fixed sequence. */
    qsort(corpus + first, n_corpus - first, sizeof(*corpus), by_name);
    return rc;
}

static void run_one(const uint8_t *data, size_t len)
{
    /* An exact-size copy, so reading one byte past the end is caught. */
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        abort();
    if (len)
        memcpy(copy, data, len);
    cur_data = copy;
    cur_len = len;
    LLVMFuzzerTestOneInput(copy, len);
    cur_data = NULL;
    cur_len = 0;
    free(copy);
    cur_run++;
}

static const uint32_t interesting[] = {0,        1,          0x7f,       0x80,      0xff,   0x100,
                                       0x3fff,   0x4000,     0x7fff,     0x8000,    0xffff, 0x10000,
                                       0xffffff, 0x7fffffff, 0x80000000, 0xffffffff};

/* One mutation of buf (len bytes, room for cap). Returns the new length. */
static size_t mutate_once(uint8_t *buf, size_t len, size_t cap)
{
    switch (rnd_below(9)) {
    case 0: /* flip a bit */
        if (len)
            buf[rnd_below(len)] ^= (uint8_t)(1u << rnd_below(8));
        return len;
    case 1: /* random byte */
        if (len)
            buf[rnd_below(len)] = (uint8_t)rnd();
        return len;
    case 2: { /* an interesting integer, big-endian (HTTP/2, TLS) or little */
        size_t w = (size_t)1 << rnd_below(3); /* 1, 2 or 4 bytes */
        if (len < w)
            return len;
        size_t pos = rnd_below(len - w + 1);
        uint32_t v = interesting[rnd_below(sizeof(interesting) / sizeof(interesting[0]))];
        if (rnd() & 1)
            v += (uint32_t)rnd_below(3) - 1;
        bool be = rnd() & 1;
        for (size_t i = 0; i < w; i++)
            buf[pos + i] = (uint8_t)(v >> (8 * (be ? w - 1 - i : i)));
        return len;
    }
    case 3: /* truncate */
        return rnd_below(len + 1);
    case 4: { /* insert random bytes */
        size_t n = 1 + rnd_below(16), pos = rnd_below(len + 1);
        if (len + n > cap)
            return len;
        memmove(buf + pos + n, buf + pos, len - pos);
        for (size_t i = 0; i < n; i++)
            buf[pos + i] = (uint8_t)rnd();
        return len + n;
    }
    case 5: { /* erase a range */
        if (!len)
            return len;
        size_t pos = rnd_below(len), n = 1 + rnd_below(MIN_SZ(len - pos, 64));
        memmove(buf + pos, buf + pos + n, len - pos - n);
        return len - n;
    }
    case 6: { /* duplicate a range somewhere else */
        if (!len)
            return len;
        size_t from = rnd_below(len), n = 1 + rnd_below(MIN_SZ(len - from, 256));
        size_t to = rnd_below(len + 1);
        if (len + n > cap)
            return len;
        uint8_t tmp[256];
        memcpy(tmp, buf + from, n);
        memmove(buf + to + n, buf + to, len - to);
        memcpy(buf + to, tmp, n);
        return len + n;
    }
    case 7: { /* splice in a range of another corpus input */
        const input_t *o = &corpus[rnd_below(n_corpus)];
        if (!o->len)
            return len;
        size_t from = rnd_below(o->len), n = 1 + rnd_below(o->len - from);
        size_t to = rnd_below(len + 1);
        if (to + n > cap)
            n = cap - to;
        memcpy(buf + to, o->data + from, n);
        return to + n > len ? to + n : len;
    }
    default: { /* cross-over: our head, their tail */
        const input_t *o = &corpus[rnd_below(n_corpus)];
        size_t keep = rnd_below(len + 1), from = rnd_below(o->len + 1);
        size_t n = o->len - from;
        if (keep + n > cap)
            n = cap - keep;
        memcpy(buf + keep, o->data + from, n);
        return keep + n;
    }
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool opt(const char *arg, const char *name, unsigned long long *val)
{
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0 || arg[n] != '=')
        return false;
    *val = strtoull(arg + n + 1, NULL, 10);
    return true;
}

int main(int argc, char **argv)
{
    unsigned long long runs = 20000, max_time = 5, max_len = 65536;
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (opt(a, "-runs", &runs) || opt(a, "-max_total_time", &max_time) ||
            opt(a, "-seed", &opt_seed) || opt(a, "-max_len", &max_len))
            continue;
        if (a[0] == '-')
            continue; /* another libFuzzer option: nothing to do here */
        int rc = add_path(a, (size_t)max_len);
        if (rc < 0) {
            fprintf(stderr, "replay: %s: %s\n", a, strerror(-rc));
            return 2;
        }
    }
    if (max_len == 0)
        max_len = 1;
    install_crash_dump();
    rng_state = opt_seed;
    double start = now_s();
    for (size_t i = 0; i < n_corpus; i++)
        run_one(corpus[i].data, corpus[i].len);
    size_t seeds = n_corpus;
    if (n_corpus == 0)
        add_input("/dev/null", 1); /* mutate from the empty input */
    uint8_t *buf = malloc((size_t)max_len);
    if (!buf)
        return 2;
    bool timed_out = false;
    while (cur_run < runs) {
        if ((cur_run & 63) == 0 && now_s() - start >= (double)max_time) {
            timed_out = true;
            break;
        }
        const input_t *base = &corpus[rnd_below(n_corpus)];
        size_t len = base->len < max_len ? base->len : (size_t)max_len;
        memcpy(buf, base->data, len);
        for (size_t k = 1 + rnd_below(4); k > 0; k--)
            len = mutate_once(buf, len, (size_t)max_len);
        run_one(buf, len);
    }
    fprintf(stderr, "replay: %s: %llu inputs (%zu seeds, seed %llu) in %.1f s%s\n", argv[0],
            cur_run, seeds, opt_seed, now_s() - start, timed_out ? " (time limit)" : "");
    free(buf);
    for (size_t i = 0; i < n_corpus; i++) {
        free(corpus[i].data);
        free(corpus[i].name);
    }
    free(corpus);
    return 0;
}
