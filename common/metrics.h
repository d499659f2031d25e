/*
 * metrics.h — counters, gauges and histograms with labels, rendered in the
 * Prometheus text exposition format 0.0.4.
 *
 * A registry (zm_metrics_t) owns metric families; a family (name, help,
 * type, label names, and for histograms its bucket bounds) owns its series,
 * one per distinct tuple of label values. Nothing is ever removed before
 * zm_metrics_free(), so a series handle stays valid for the registry's life.
 *
 * Two paths, two costs:
 *  - control path: registering a family and looking a series up by label
 *    values (hashed) take a mutex and may allocate. Do it rarely (at start,
 *    or once per connection) and cache the zm_metric_series_t *.
 *  - data path: zm_counter_add / zm_gauge_* / zm_histogram_observe are
 *    lock-free relaxed atomics on the series (each series sits on its own
 *    cache lines), never allocate and accept a NULL series (a no-op).
 *
 * Cardinality is bounded: each family creates at most `series limit` series
 * (default ZM_METRICS_DEFAULT_SERIES_LIMIT). Past that, or when allocating a
 * series fails, a lookup returns the family's shared overflow series, whose
 * label values are all "__overflow__", and the registry counts the lookup in
 * zmesh_metrics_series_overflow_total{family="..."} (rendered only once some
 * family has overflowed).
 *
 * Histogram sums are doubles added with a compare-and-swap loop on their bit
 * pattern: exact as a double sum, lock-free, no unit conversion for the
 * caller. _count is rendered as the sum of the bucket counts read in the same
 * pass, so _count always equals the +Inf bucket; under concurrent updates
 * _sum may lead or lag _count by the observations in flight.
 *
 * Output order is deterministic: families in registration order, series in
 * creation order (the overflow series last), labels in the family's
 * declaration order (histograms append "le").
 *
 * Threading: every function may be called from any thread.
 */
#ifndef ZM_METRICS_H
#define ZM_METRICS_H

#include "strbuf.h"
#include "zm.h"

#include <stdatomic.h>
#include <stdbool.h>

#define ZM_METRICS_DEFAULT_SERIES_LIMIT 10000
#define ZM_METRICS_MAX_LABELS 32 /* Istio's TCP traffic label set alone has 23 */
#define ZM_METRICS_MAX_BUCKETS 64
#define ZM_METRICS_OVERFLOW_VALUE "__overflow__"

typedef struct zm_metrics zm_metrics_t;
typedef struct zm_metric_family zm_metric_family_t;

typedef enum zm_metric_type {
    ZM_METRIC_COUNTER,
    ZM_METRIC_GAUGE,
    ZM_METRIC_HISTOGRAM,
} zm_metric_type_t;

/* One series. Callers only use the pointer; the layout is public so the
 * update functions below can be inlined. */
typedef struct zm_metric_series {
    _Alignas(64) _Atomic uint64_t _value; /* counter: count; gauge: int64 bits */
    _Atomic uint64_t _sum_bits;           /* histogram: double sum, bit pattern */
    zm_metric_family_t *_family;
    const double *_bounds; /* histogram: family's bounds, ascending */
    size_t _n_bounds;
    struct zm_metric_series *_next;  /* creation order */
    struct zm_metric_series *_hnext; /* hash chain */
    uint64_t _hash;
    const char **_values;        /* label values, family's label count */
    _Atomic uint64_t _buckets[]; /* histogram: n_bounds + 1 (+Inf) */
} zm_metric_series_t;

/* Build label-value (or label-name) lists in place: ZM_LABELS("GET", "200"). */
#define ZM_LABELS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* New empty registry. 0 or -ENOMEM. */
int zm_metrics_new(zm_metrics_t **out);

/* Free the registry, its families and series; *m becomes NULL. Every handle
 * into it becomes invalid: stop the workers first. */
void zm_metrics_free(zm_metrics_t **m);

/* Series limit for families registered afterwards (0 is taken as 1). */
void zm_metrics_set_series_limit(zm_metrics_t *m, size_t limit);

/*
 * Register a family, or return the existing one when a family of that name
 * was registered with the same type, label names (and bounds). label_names is
 * NULL-terminated (NULL for none); names are copied. Returns NULL when a name
 * is invalid (metric [a-zA-Z_:][a-zA-Z0-9_:]*, label [a-zA-Z_][a-zA-Z0-9_]*
 * not starting with "__", no duplicate labels, "le" reserved in
 * histograms), the name is taken by a different definition, or on ENOMEM.
 * help may be NULL (rendered empty).
 */
zm_metric_family_t *zm_metrics_counter(zm_metrics_t *m, const char *name, const char *help,
                                       const char *const *label_names);
zm_metric_family_t *zm_metrics_gauge(zm_metrics_t *m, const char *name, const char *help,
                                     const char *const *label_names);
/* bounds: strictly increasing finite upper bounds (the +Inf bucket is
 * implicit), 1..ZM_METRICS_MAX_BUCKETS of them; copied. */
zm_metric_family_t *zm_metrics_histogram(zm_metrics_t *m, const char *name, const char *help,
                                         const char *const *label_names, const double *bounds,
                                         size_t n_bounds);

/* Override this family's series limit (0 is taken as 1). */
void zm_metric_family_set_series_limit(zm_metric_family_t *f, size_t limit);

/* Series created so far (the overflow series not included). */
size_t zm_metric_family_series_count(zm_metric_family_t *f);

/* Lookups that fell into the overflow series so far. */
uint64_t zm_metric_family_overflows(zm_metric_family_t *f);

/*
 * Find or create the series for these label values (NULL-terminated, as many
 * as the family has labels; NULL or empty for a family without labels).
 * Values are copied. Control path: takes the family's mutex. Returns the
 * overflow series when the family is full or memory runs out, and NULL only
 * on misuse (NULL family, wrong number of values).
 */
zm_metric_series_t *zm_metric_series(zm_metric_family_t *f, const char *const *label_values);

/*
 * Append the whole registry to out in text format 0.0.4 (content type
 * "text/plain; version=0.0.4; charset=utf-8"). 0, or the strbuf's error
 * (-ENOMEM / -ENOBUFS) with out holding a partial rendering.
 */
int zm_metrics_render(zm_metrics_t *m, zm_strbuf_t *out);

#define ZM_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* ---- data path ---- */

static inline void zm_counter_add(zm_metric_series_t *s, uint64_t n)
{
    if (s)
        atomic_fetch_add_explicit(&s->_value, n, memory_order_relaxed);
}

static inline void zm_counter_inc(zm_metric_series_t *s)
{
    zm_counter_add(s, 1);
}

static inline uint64_t zm_counter_get(const zm_metric_series_t *s)
{
    return s ? atomic_load_explicit(&((zm_metric_series_t *)s)->_value, memory_order_relaxed) : 0;
}

/* Gauges keep an int64 in the same unsigned word: two's complement wraps
 * identically, so add works for negative deltas too. */
static inline void zm_gauge_add(zm_metric_series_t *s, int64_t delta)
{
    if (s)
        atomic_fetch_add_explicit(&s->_value, (uint64_t)delta, memory_order_relaxed);
}

static inline void zm_gauge_set(zm_metric_series_t *s, int64_t v)
{
    if (s)
        atomic_store_explicit(&s->_value, (uint64_t)v, memory_order_relaxed);
}

static inline int64_t zm_gauge_get(const zm_metric_series_t *s)
{
    return s ? (int64_t)atomic_load_explicit(&((zm_metric_series_t *)s)->_value,
                                             memory_order_relaxed)
             : 0;
}

/* Record one observation (NaN is ignored: it would poison the sum). */
void zm_histogram_observe(zm_metric_series_t *s, double v);

/* Observations so far and their sum (for tests and admin pages). */
uint64_t zm_histogram_count(const zm_metric_series_t *s);
double zm_histogram_sum(const zm_metric_series_t *s);

#endif
