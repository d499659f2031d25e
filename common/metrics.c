/*
 * metrics.c — metric registry and Prometheus text exposition (see metrics.h).
 *
 * Locks: the registry mutex guards the family array; each family's mutex
 * guards its hash table and creation-order list. Lock order is registry then
 * family (only render holds both). Values are never guarded: they are relaxed
 * atomics updated by workers and read by render. A series is one 64-byte
 * aligned block holding the values, the histogram buckets, the label-value
 * pointers and the strings themselves, so a lookup is one allocation and two
 * series never share a cache line.
 */
#include "metrics.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OVERFLOW_METRIC "zmesh_metrics_series_overflow_total"

struct zm_metric_family {
    zm_metric_type_t type;
    char *name;
    char *help;
    char **labels;
    size_t n_labels;
    double *bounds;
    char **bound_strs; /* bounds formatted once, for le="..." */
    size_t n_bounds;

    pthread_mutex_t mu;
    zm_metric_series_t *head, *tail; /* creation order */
    zm_metric_series_t **table;      /* hash chains */
    size_t table_size;               /* power of two */
    size_t n_series;
    size_t limit;
    zm_metric_series_t *overflow; /* NULL for families without labels */
    _Atomic bool overflow_used;
    _Atomic uint64_t overflows;
};

struct zm_metrics {
    pthread_mutex_t mu;
    zm_metric_family_t **fams;
    size_t n_fams, cap_fams;
    size_t default_limit;
};

/* ---- names, hashing, formatting ---- */

static bool valid_name(const char *s, bool colon)
{
    if (!s || !*s)
        return false;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (colon && c == ':') || (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

static size_t count_list(const char *const *l)
{
    size_t n = 0;
    while (l && l[n])
        n++;
    return n;
}

static uint64_t hash_values(const char *const *v, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)v[i]; *p; p++)
            h = (h ^ *p) * 1099511628211ull;
        h = (h ^ 0xff) * 1099511628211ull; /* separator: ("ab","") != ("a","b") */
    }
    return h;
}

/* Shortest %g that reads back as the same double; Prometheus spellings for
 * the special values. */
static const char *fmt_double(char buf[40], double v)
{
    if (isnan(v))
        return "NaN";
    if (isinf(v))
        return v > 0 ? "+Inf" : "-Inf";
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, 40, "%.*g", prec, v);
        if (prec == 17 || strtod(buf, NULL) == v)
            break;
    }
    return buf;
}

static void append_escaped(zm_strbuf_t *out, const char *s, bool quote)
{
    const char *run = s;
    for (; *s; s++) {
        const char *rep = NULL;
        if (*s == '\\')
            rep = "\\\\";
        else if (*s == '\n')
            rep = "\\n";
        else if (quote && *s == '"')
            rep = "\\\"";
        if (!rep)
            continue;
        zm_strbuf_append(out, run, (size_t)(s - run));
        zm_strbuf_appends(out, rep);
        run = s + 1;
    }
    zm_strbuf_append(out, run, (size_t)(s - run));
}

/* ---- series ---- */

static zm_metric_series_t *series_alloc(zm_metric_family_t *f, const char *const *values,
                                        uint64_t hash)
{
    size_t nb = f->type == ZM_METRIC_HISTOGRAM ? f->n_bounds + 1 : 0;
    size_t size =
        sizeof(zm_metric_series_t) + nb * sizeof(_Atomic uint64_t) + f->n_labels * sizeof(char *);
    for (size_t i = 0; i < f->n_labels; i++)
        size += strlen(values[i]) + 1;
    size = (size + 63) & ~(size_t)63;
    zm_metric_series_t *s = aligned_alloc(64, size);
    if (!s)
        return NULL;
    memset(s, 0, size);
    s->_family = f;
    s->_bounds = f->bounds;
    s->_n_bounds = f->n_bounds;
    s->_hash = hash;
    s->_values = (const char **)(void *)&s->_buckets[nb];
    char *str = (char *)(s->_values + f->n_labels);
    for (size_t i = 0; i < f->n_labels; i++) {
        size_t n = strlen(values[i]) + 1;
        memcpy(str, values[i], n);
        s->_values[i] = str;
        str += n;
    }
    return s;
}

static bool values_equal(const zm_metric_series_t *s, const char *const *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s->_values[i], v[i]) != 0)
            return false;
    return true;
}

/* Caller holds f->mu. On ENOMEM the table keeps its old size: chains get
 * longer, nothing breaks. */
static void table_insert(zm_metric_family_t *f, zm_metric_series_t *s)
{
    if (f->n_series + 1 > f->table_size) {
        size_t nsize = f->table_size ? f->table_size * 2 : 16;
        zm_metric_series_t **nt = calloc(nsize, sizeof(*nt));
        if (nt) {
            for (size_t i = 0; i < f->table_size; i++) {
                zm_metric_series_t *e = f->table[i], *next;
                for (; e; e = next) {
                    next = e->_hnext;
                    e->_hnext = nt[e->_hash & (nsize - 1)];
                    nt[e->_hash & (nsize - 1)] = e;
                }
            }
            free(f->table);
            f->table = nt;
            f->table_size = nsize;
        }
    }
    size_t b = s->_hash & (f->table_size - 1);
    s->_hnext = f->table[b];
    f->table[b] = s;
}

static zm_metric_series_t *overflow_series(zm_metric_family_t *f)
{
    atomic_store_explicit(&f->overflow_used, true, memory_order_relaxed);
    atomic_fetch_add_explicit(&f->overflows, 1, memory_order_relaxed);
    return f->overflow;
}

zm_metric_series_t *zm_metric_series(zm_metric_family_t *f, const char *const *label_values)
{
    if (!f || count_list(label_values) != f->n_labels)
        return NULL;
    if (f->n_labels == 0)
        return f->head; /* created with the family */
    uint64_t h = hash_values(label_values, f->n_labels);
    pthread_mutex_lock(&f->mu);
    zm_metric_series_t *s = f->table[h & (f->table_size - 1)];
    for (; s; s = s->_hnext)
        if (s->_hash == h && values_equal(s, label_values, f->n_labels))
            break;
    if (s == f->overflow && s) {
        atomic_store_explicit(&f->overflow_used, true, memory_order_relaxed);
    } else if (!s) {
        s = f->n_series < f->limit ? series_alloc(f, label_values, h) : NULL;
        if (s) {
            table_insert(f, s);
            if (f->tail)
                f->tail->_next = s;
            else
                f->head = s;
            f->tail = s;
            f->n_series++;
        } else {
            s = overflow_series(f);
        }
    }
    pthread_mutex_unlock(&f->mu);
    return s;
}

void zm_histogram_observe(zm_metric_series_t *s, double v)
{
    if (!s || isnan(v))
        return;
    size_t lo = 0, hi = s->_n_bounds; /* first bound >= v, or n_bounds (+Inf) */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v <= s->_bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    atomic_fetch_add_explicit(&s->_buckets[lo], 1, memory_order_relaxed);
    uint64_t old = atomic_load_explicit(&s->_sum_bits, memory_order_relaxed), nw;
    do {
        double d;
        memcpy(&d, &old, sizeof(d));
        d += v;
        memcpy(&nw, &d, sizeof(nw));
    } while (!atomic_compare_exchange_weak_explicit(&s->_sum_bits, &old, nw, memory_order_relaxed,
                                                    memory_order_relaxed));
}

uint64_t zm_histogram_count(const zm_metric_series_t *s)
{
    uint64_t n = 0;
    if (!s || s->_family->type != ZM_METRIC_HISTOGRAM)
        return 0;
    for (size_t i = 0; i <= s->_n_bounds; i++)
        n += atomic_load_explicit(&((zm_metric_series_t *)s)->_buckets[i], memory_order_relaxed);
    return n;
}

double zm_histogram_sum(const zm_metric_series_t *s)
{
    if (!s)
        return 0;
    uint64_t bits =
        atomic_load_explicit(&((zm_metric_series_t *)s)->_sum_bits, memory_order_relaxed);
    double d;
    memcpy(&d, &bits, sizeof(d));
    return d;
}

/* ---- families ---- */

static void family_free(zm_metric_family_t *f)
{
    if (!f)
        return;
    zm_metric_series_t *s = f->head, *next;
    for (; s; s = next) {
        next = s->_next;
        free(s);
    }
    free(f->overflow);
    free(f->table);
    for (size_t i = 0; i < f->n_labels; i++)
        free(f->labels[i]);
    free(f->labels);
    for (size_t i = 0; f->bound_strs && i < f->n_bounds; i++)
        free(f->bound_strs[i]);
    free(f->bound_strs);
    free(f->bounds);
    free(f->name);
    free(f->help);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

static bool same_definition(const zm_metric_family_t *f, zm_metric_type_t type,
                            const char *const *labels, size_t n_labels, const double *bounds,
                            size_t n_bounds)
{
    if (f->type != type || f->n_labels != n_labels || f->n_bounds != n_bounds)
        return false;
    for (size_t i = 0; i < n_labels; i++)
        if (strcmp(f->labels[i], labels[i]) != 0)
            return false;
    for (size_t i = 0; i < n_bounds; i++)
        if (f->bounds[i] != bounds[i])
            return false;
    return true;
}

static bool valid_definition(zm_metric_type_t type, const char *name, const char *const *labels,
                             size_t n_labels, const double *bounds, size_t n_bounds)
{
    if (!valid_name(name, true) || n_labels > ZM_METRICS_MAX_LABELS)
        return false;
    for (size_t i = 0; i < n_labels; i++) {
        if (!valid_name(labels[i], false) || strncmp(labels[i], "__", 2) == 0)
            return false;
        if (type == ZM_METRIC_HISTOGRAM && strcmp(labels[i], "le") == 0)
            return false;
        for (size_t j = 0; j < i; j++)
            if (strcmp(labels[i], labels[j]) == 0)
                return false;
    }
    if (type != ZM_METRIC_HISTOGRAM)
        return true;
    if (!bounds || n_bounds == 0 || n_bounds > ZM_METRICS_MAX_BUCKETS)
        return false;
    for (size_t i = 0; i < n_bounds; i++)
        if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
            return false;
    return true;
}

static zm_metric_family_t *family_new(zm_metric_type_t type, const char *name, const char *help,
                                      const char *const *labels, size_t n_labels,
                                      const double *bounds, size_t n_bounds, size_t limit)
{
    zm_metric_family_t *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    pthread_mutex_init(&f->mu, NULL);
    f->type = type;
    f->limit = limit;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    f->labels = calloc(n_labels + 1, sizeof(char *));
    if (!f->name || !f->help || !f->labels)
        goto fail;
    for (; f->n_labels < n_labels; f->n_labels++)
        if (!(f->labels[f->n_labels] = strdup(labels[f->n_labels])))
            goto fail;
    if (type == ZM_METRIC_HISTOGRAM) {
        f->bounds = calloc(n_bounds, sizeof(double));
        f->bound_strs = calloc(n_bounds, sizeof(char *));
        if (!f->bounds || !f->bound_strs)
            goto fail;
        f->n_bounds = n_bounds;
        for (size_t i = 0; i < n_bounds; i++) {
            char buf[40];
            f->bounds[i] = bounds[i];
            if (!(f->bound_strs[i] = strdup(fmt_double(buf, bounds[i]))))
                goto fail;
        }
    }
    if (n_labels == 0) {
        /* One series, made now: unlabelled metrics render 0 from the start. */
        if (!(f->head = f->tail = series_alloc(f, NULL, 0)))
            goto fail;
        f->n_series = 1;
        return f;
    }
    const char *ov[ZM_METRICS_MAX_LABELS];
    for (size_t i = 0; i < n_labels; i++)
        ov[i] = ZM_METRICS_OVERFLOW_VALUE;
    uint64_t h = hash_values(ov, n_labels);
    f->table = calloc(16, sizeof(*f->table));
    f->overflow = series_alloc(f, ov, h);
    if (!f->table || !f->overflow)
        goto fail;
    f->table_size = 16;
    /* In the table so that a lookup spelling the overflow values finds it
     * instead of creating a duplicate; not in the list, not counted. */
    f->table[h & 15] = f->overflow;
    return f;
fail:
    family_free(f);
    return NULL;
}

static zm_metric_family_t *family_register(zm_metrics_t *m, zm_metric_type_t type, const char *name,
                                           const char *help, const char *const *labels,
                                           const double *bounds, size_t n_bounds)
{
    size_t n_labels = count_list(labels);
    if (!m || !valid_definition(type, name, labels, n_labels, bounds, n_bounds))
        return NULL;
    if (strcmp(name, OVERFLOW_METRIC) == 0)
        return NULL;
    zm_metric_family_t *f = NULL;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n_fams; i++) {
        if (strcmp(m->fams[i]->name, name) == 0) {
            f = m->fams[i];
            if (!same_definition(f, type, labels, n_labels, bounds, n_bounds))
                f = NULL;
            goto out;
        }
    }
    if (m->n_fams == m->cap_fams) {
        size_t ncap = m->cap_fams ? m->cap_fams * 2 : 16;
        zm_metric_family_t **nf = realloc(m->fams, ncap * sizeof(*nf));
        if (!nf)
            goto out;
        m->fams = nf;
        m->cap_fams = ncap;
    }
    f = family_new(type, name, help, labels, n_labels, bounds, n_bounds, m->default_limit);
    if (f)
        m->fams[m->n_fams++] = f;
out:
    pthread_mutex_unlock(&m->mu);
    return f;
}

zm_metric_family_t *zm_metrics_counter(zm_metrics_t *m, const char *name, const char *help,
                                       const char *const *label_names)
{
    return family_register(m, ZM_METRIC_COUNTER, name, help, label_names, NULL, 0);
}

zm_metric_family_t *zm_metrics_gauge(zm_metrics_t *m, const char *name, const char *help,
                                     const char *const *label_names)
{
    return family_register(m, ZM_METRIC_GAUGE, name, help, label_names, NULL, 0);
}

zm_metric_family_t *zm_metrics_histogram(zm_metrics_t *m, const char *name, const char *help,
                                         const char *const *label_names, const double *bounds,
                                         size_t n_bounds)
{
    return family_register(m, ZM_METRIC_HISTOGRAM, name, help, label_names, bounds, n_bounds);
}

void zm_metric_family_set_series_limit(zm_metric_family_t *f, size_t limit)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    f->limit = limit ? limit : 1;
    pthread_mutex_unlock(&f->mu);
}

size_t zm_metric_family_series_count(zm_metric_family_t *f)
{
    pthread_mutex_lock(&f->mu);
    size_t n = f->n_series;
    pthread_mutex_unlock(&f->mu);
    return n;
}

uint64_t zm_metric_family_overflows(zm_metric_family_t *f)
{
    return atomic_load_explicit(&f->overflows, memory_order_relaxed);
}

/* ---- registry ---- */

int zm_metrics_new(zm_metrics_t **out)
{
    zm_metrics_t *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    pthread_mutex_init(&m->mu, NULL);
    m->default_limit = ZM_METRICS_DEFAULT_SERIES_LIMIT;
    *out = m;
    return 0;
}

void zm_metrics_free(zm_metrics_t **mp)
{
    zm_metrics_t *m = mp ? *mp : NULL;
    if (!m)
        return;
    for (size_t i = 0; i < m->n_fams; i++)
        family_free(m->fams[i]);
    free(m->fams);
    pthread_mutex_destroy(&m->mu);
    free(m);
    *mp = NULL;
}

void zm_metrics_set_series_limit(zm_metrics_t *m, size_t limit)
{
    pthread_mutex_lock(&m->mu);
    m->default_limit = limit ? limit : 1;
    pthread_mutex_unlock(&m->mu);
}

/* ---- exposition ---- */

/* {a="x",b="y"} plus le="..." for buckets; nothing when both are absent. */
static void append_labels(zm_strbuf_t *out, const zm_metric_family_t *f,
                          const zm_metric_series_t *s, const char *le)
{
    if (f->n_labels == 0 && !le)
        return;
    zm_strbuf_appendc(out, '{');
    for (size_t i = 0; i < f->n_labels; i++) {
        zm_strbuf_appendf(out, "%s%s=\"", i ? "," : "", f->labels[i]);
        append_escaped(out, s->_values[i], true);
        zm_strbuf_appendc(out, '"');
    }
    if (le)
        zm_strbuf_appendf(out, "%sle=\"%s\"", f->n_labels ? "," : "", le);
    zm_strbuf_appendc(out, '}');
}

static void render_series(zm_strbuf_t *out, const zm_metric_family_t *f, zm_metric_series_t *s)
{
    if (f->type != ZM_METRIC_HISTOGRAM) {
        uint64_t v = atomic_load_explicit(&s->_value, memory_order_relaxed);
        zm_strbuf_appends(out, f->name);
        append_labels(out, f, s, NULL);
        if (f->type == ZM_METRIC_COUNTER)
            zm_strbuf_appendf(out, " %" PRIu64 "\n", v);
        else
            zm_strbuf_appendf(out, " %" PRId64 "\n", (int64_t)v);
        return;
    }
    uint64_t cum = 0;
    for (size_t i = 0; i <= f->n_bounds; i++) {
        cum += atomic_load_explicit(&s->_buckets[i], memory_order_relaxed);
        zm_strbuf_appendf(out, "%s_bucket", f->name);
        append_labels(out, f, s, i < f->n_bounds ? f->bound_strs[i] : "+Inf");
        zm_strbuf_appendf(out, " %" PRIu64 "\n", cum);
    }
    char buf[40];
    zm_strbuf_appendf(out, "%s_sum", f->name);
    append_labels(out, f, s, NULL);
    zm_strbuf_appendf(out, " %s\n", fmt_double(buf, zm_histogram_sum(s)));
    zm_strbuf_appendf(out, "%s_count", f->name);
    append_labels(out, f, s, NULL);
    zm_strbuf_appendf(out, " %" PRIu64 "\n", cum);
}

static void render_family(zm_strbuf_t *out, zm_metric_family_t *f)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    zm_strbuf_appendf(out, "# HELP %s ", f->name);
    append_escaped(out, f->help, false);
    zm_strbuf_appendf(out, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
    pthread_mutex_lock(&f->mu);
    for (zm_metric_series_t *s = f->head; s; s = s->_next)
        render_series(out, f, s);
    if (f->overflow && atomic_load_explicit(&f->overflow_used, memory_order_relaxed))
        render_series(out, f, f->overflow);
    pthread_mutex_unlock(&f->mu);
}

int zm_metrics_render(zm_metrics_t *m, zm_strbuf_t *out)
{
    pthread_mutex_lock(&m->mu);
    bool any_overflow = false;
    for (size_t i = 0; i < m->n_fams; i++) {
        render_family(out, m->fams[i]);
        any_overflow |= zm_metric_family_overflows(m->fams[i]) > 0;
    }
    if (any_overflow) {
        zm_strbuf_appends(out, "# HELP " OVERFLOW_METRIC
                               " Series lookups that hit a family's series limit.\n"
                               "# TYPE " OVERFLOW_METRIC " counter\n");
        for (size_t i = 0; i < m->n_fams; i++) {
            uint64_t n = zm_metric_family_overflows(m->fams[i]);
            if (n)
                zm_strbuf_appendf(out, OVERFLOW_METRIC "{family=\"%s\"} %" PRIu64 "\n",
                                  m->fams[i]->name, n);
        }
    }
    pthread_mutex_unlock(&m->mu);
    return zm_strbuf_error(out);
}
