/*
 * pl_metrics: a registry of counters, gauges and histograms, rendered in the
 * Prometheus text exposition format 0.0.4 for GET /metrics.
 *
 * A metric family (one name, one HELP, one TYPE) holds series, one per set
 * of label values. Each registration call names the family and gives one
 * series' labels as name/value pairs ended by NULL, and returns that series:
 *
 *     pl_metric_t *accepted = pl_metrics_counter(reg, "plaint_intake_submissions_total",
 *         "complaint.submit messages answered, by result", "result", "accepted", NULL);
 *     pl_metric_inc(accepted);
 *
 * Registering every label value a daemon will use up front makes each
 * series show from the first scrape, at 0, which rate() needs. Registering
 * the same name and labels again returns the same series.
 *
 * Single-threaded: a registry and its series are used on one thread (the
 * daemon's loop); nothing here locks. Series are owned by the registry and
 * live until pl_metrics_destroy(). Every pl_metric_* call is NULL-safe, so a
 * module built without a registry (unit tests, tools) needs no checks.
 *
 * Registering a bad name, a label set that differs from the family's, or a
 * name already used with another type is a programmer error: it is logged
 * and asserted, and (with NDEBUG) the call returns NULL.
 */
#ifndef PL_METRICS_H
#define PL_METRICS_H

#include <stddef.h>

typedef struct pl_metrics pl_metrics_t;
typedef struct pl_metric pl_metric_t; /* one series */

#define PL_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
/* Label pairs per series at most. */
#define PL_METRICS_LABELS_MAX 4

/* Latency buckets in seconds, 0.5 ms to 10 s (upper bounds; +Inf is implied). */
extern const double pl_metrics_latency_buckets[];
#define PL_METRICS_LATENCY_BUCKETS_N 14

pl_metrics_t *pl_metrics_new(void);
/* Frees the registry and every series. NULL-safe; nulls *m_p. */
void pl_metrics_destroy(pl_metrics_t **m_p);

/* Each returns the series (borrowed, valid until pl_metrics_destroy), or NULL
 * when m is NULL or the registration is a bug (above). name must match
 * [a-zA-Z_:][a-zA-Z0-9_:]*; help is copied; the variable arguments are label
 * name/value strings (copied), ended by NULL. */
pl_metric_t *pl_metrics_counter(pl_metrics_t *m, const char *name, const char *help, ...)
    __attribute__((sentinel));
pl_metric_t *pl_metrics_gauge(pl_metrics_t *m, const char *name, const char *help, ...)
    __attribute__((sentinel));
/* bounds[0..nbounds) are the buckets' upper bounds, ascending (copied); the
 * family keeps the bounds of its first series. */
pl_metric_t *pl_metrics_histogram(pl_metrics_t *m, const char *name, const char *help,
                                  const double *bounds, size_t nbounds, ...)
    __attribute__((sentinel));

/* Runs fn(arg) at the start of every render, in the order added, so gauges
 * that mirror state (queue lengths, connection states) are read when scraped
 * instead of updated at every change. arg must stay valid for the registry's
 * life, or fn must tolerate the objects it reads being gone. */
void pl_metrics_on_collect(pl_metrics_t *m, void (*fn)(void *arg), void *arg);

/* Counters only go up: a negative v is ignored. */
void pl_metric_inc(pl_metric_t *s);           /* counter or gauge: +1 */
void pl_metric_add(pl_metric_t *s, double v); /* counter: v >= 0; gauge: any v */
void pl_metric_set(pl_metric_t *s, double v); /* gauge */
void pl_metric_observe(pl_metric_t *s, double v); /* histogram */
/* A counter's or gauge's value; a histogram's count of observations. 0 for NULL. */
double pl_metric_value(const pl_metric_t *s);

/* Runs the collect functions, then writes every family in registration order
 * (series in registration order) as Prometheus text 0.0.4. Returns a new
 * string the caller frees; *len (if not NULL) gets its length. */
char *pl_metrics_render(pl_metrics_t *m, size_t *len);

#endif
