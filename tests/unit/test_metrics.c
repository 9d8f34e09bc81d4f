/*
 * test_metrics: pl_metrics against the exact Prometheus text 0.0.4 it must
 * render: HELP and TYPE lines, labels and their escaping, value formats,
 * cumulative histogram buckets, collect hooks, and NULL-safety.
 *
 * Table cases carry a label so that a failure says which case broke; every
 * case runs and every mismatch is printed before the test fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "pl_alloc.h"
#include "pl_metrics.h"

#include "test_util.h"

/* Renders m and compares with want, printing both on a mismatch. */
static void check_render(const char *label, pl_metrics_t *m, const char *want)
{
    size_t len = 0;
    char *got = pl_metrics_render(m, &len);
    CHECK(strcmp(got, want) == 0, "%s:\n--- got ---\n%s--- want ---\n%s", label, got, want);
    CHECK(len == strlen(got), "%s: len %zu, strlen %zu\n", label, len, strlen(got));
    pl_free(got);
}

static void test_empty_registry(void **state)
{
    pl_metrics_t *m = pl_metrics_new();
    check_render("empty", m, "");
    pl_metrics_destroy(&m);
    assert_null(m);
    pl_metrics_destroy(&m); /* NULL-safe */
    assert_int_equal(failures, 0);
}

static void test_counter_and_gauge(void **state)
{
    pl_metrics_t *m = pl_metrics_new();
    pl_metric_t *c = pl_metrics_counter(m, "plaint_events_published_total",
                                        "events sent on the event stream", NULL);
    pl_metric_t *g = pl_metrics_gauge(m, "plaint_intake_queue", "complaints waiting", NULL);
    pl_metric_inc(c);
    pl_metric_add(c, 2);
    pl_metric_add(c, -5); /* counters never go down */
    pl_metric_set(g, 7);
    pl_metric_add(g, -3);
    pl_metric_inc(g);
    check_render("counter and gauge", m,
                 "# HELP plaint_events_published_total events sent on the event stream\n"
                 "# TYPE plaint_events_published_total counter\n"
                 "plaint_events_published_total 3\n"
                 "# HELP plaint_intake_queue complaints waiting\n"
                 "# TYPE plaint_intake_queue gauge\n"
                 "plaint_intake_queue 5\n");
    assert_true(pl_metric_value(c) == 3);
    assert_true(pl_metric_value(g) == 5);
    pl_metrics_destroy(&m);
    assert_int_equal(failures, 0);
}

static void test_labels_and_registration_order(void **state)
{
    static const char *const results[] = {"accepted", "duplicate", "invalid"};
    pl_metrics_t *m = pl_metrics_new();
    pl_metric_t *s[3];
    for (int i = 0; i < 3; i++)
        s[i] = pl_metrics_counter(m, "plaint_intake_submissions_total", "answers, by result",
                                  "result", results[i], NULL);
    /* The same name and labels again: the same series. */
    assert_ptr_equal(pl_metrics_counter(m, "plaint_intake_submissions_total", "ignored", "result",
                                        "invalid", NULL),
                     s[2]);
    pl_metric_set(pl_metrics_gauge(m, "plaint_build_info", "version", "version", "0.1.0", "svc",
                                   "intake", NULL),
                  1);
    pl_metric_inc(s[0]);
    pl_metric_inc(s[0]);
    pl_metric_inc(s[2]);
    check_render("labels", m,
                 "# HELP plaint_intake_submissions_total answers, by result\n"
                 "# TYPE plaint_intake_submissions_total counter\n"
                 "plaint_intake_submissions_total{result=\"accepted\"} 2\n"
                 "plaint_intake_submissions_total{result=\"duplicate\"} 0\n"
                 "plaint_intake_submissions_total{result=\"invalid\"} 1\n"
                 "# HELP plaint_build_info version\n"
                 "# TYPE plaint_build_info gauge\n"
                 "plaint_build_info{version=\"0.1.0\",svc=\"intake\"} 1\n");
    pl_metrics_destroy(&m);
    assert_int_equal(failures, 0);
}

static void test_escaping(void **state)
{
    static const struct {
        const char *label;
        const char *value; /* label value */
        const char *want;  /* as rendered between the quotes */
    } cases[] = {
        {"plain", "invalid", "invalid"},
        {"backslash", "a\\b", "a\\\\b"},
        {"quote", "say \"hi\"", "say \\\"hi\\\""},
        {"newline", "two\nlines", "two\\nlines"},
        {"all three", "\\\"\n", "\\\\\\\"\\n"},
        {"utf-8 kept", "投诉", "投诉"},
        {"empty", "", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pl_metrics_t *m = pl_metrics_new();
        pl_metric_inc(pl_metrics_counter(m, "x_total", "h", "code", cases[i].value, NULL));
        char want[256];
        snprintf(want, sizeof want, "# HELP x_total h\n# TYPE x_total counter\n"
                                    "x_total{code=\"%s\"} 1\n", cases[i].want);
        check_render(cases[i].label, m, want);
        pl_metrics_destroy(&m);
    }
    /* HELP escapes backslash and newline, not quotes. */
    pl_metrics_t *m = pl_metrics_new();
    (void)pl_metrics_gauge(m, "y", "a \"b\" c\\d\ne", NULL);
    check_render("help", m, "# HELP y a \"b\" c\\\\d\\ne\n# TYPE y gauge\ny 0\n");
    pl_metrics_destroy(&m);
    assert_int_equal(failures, 0);
}

static void test_value_formats(void **state)
{
    static const struct {
        const char *label;
        double value;
        const char *want;
    } cases[] = {
        {"zero", 0, "0"},
        {"negative zero", -0.0, "0"},
        {"integer", 42, "42"},
        {"negative", -3, "-3"},
        {"big integer", 1234567890123.0, "1234567890123"},
        {"fraction", 0.5, "0.5"},
        {"shortest round trip", 0.1, "0.1"},
        {"epoch seconds", 1764043920.123, "1764043920.123"},
        {"small", 0.0005, "0.0005"},
        {"huge", 1e300, "1e+300"},
        {"+Inf", INFINITY, "+Inf"},
        {"-Inf", -INFINITY, "-Inf"},
        {"NaN", NAN, "NaN"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pl_metrics_t *m = pl_metrics_new();
        pl_metric_set(pl_metrics_gauge(m, "g", "h", NULL), cases[i].value);
        char want[256];
        snprintf(want, sizeof want, "# HELP g h\n# TYPE g gauge\ng %s\n", cases[i].want);
        check_render(cases[i].label, m, want);
        pl_metrics_destroy(&m);
    }
    assert_int_equal(failures, 0);
}

static void test_histogram(void **state)
{
    static const double bounds[] = {0.001, 0.01, 0.1, 1};
    pl_metrics_t *m = pl_metrics_new();
    pl_metric_t *h = pl_metrics_histogram(m, "plaint_intake_ack_seconds", "ack latency", bounds,
                                          4, "path", "zmq", NULL);
    pl_metric_t *h2 = pl_metrics_histogram(m, "plaint_intake_ack_seconds", "ack latency", bounds,
                                           4, "path", "http", NULL);
    pl_metric_observe(h, 0.0005); /* first bucket */
    pl_metric_observe(h, 0.001);  /* a bound belongs to its own bucket (le) */
    pl_metric_observe(h, 0.05);
    pl_metric_observe(h, 2);      /* only +Inf */
    pl_metric_observe(h, NAN);    /* ignored */
    pl_metric_inc(h);             /* not a histogram operation: ignored */
    pl_metric_observe(h2, 0.25);
    check_render("histogram", m,
                 "# HELP plaint_intake_ack_seconds ack latency\n"
                 "# TYPE plaint_intake_ack_seconds histogram\n"
                 "plaint_intake_ack_seconds_bucket{path=\"zmq\",le=\"0.001\"} 2\n"
                 "plaint_intake_ack_seconds_bucket{path=\"zmq\",le=\"0.01\"} 2\n"
                 "plaint_intake_ack_seconds_bucket{path=\"zmq\",le=\"0.1\"} 3\n"
                 "plaint_intake_ack_seconds_bucket{path=\"zmq\",le=\"1\"} 3\n"
                 "plaint_intake_ack_seconds_bucket{path=\"zmq\",le=\"+Inf\"} 4\n"
                 "plaint_intake_ack_seconds_sum{path=\"zmq\"} 2.0515\n"
                 "plaint_intake_ack_seconds_count{path=\"zmq\"} 4\n"
                 "plaint_intake_ack_seconds_bucket{path=\"http\",le=\"0.001\"} 0\n"
                 "plaint_intake_ack_seconds_bucket{path=\"http\",le=\"0.01\"} 0\n"
                 "plaint_intake_ack_seconds_bucket{path=\"http\",le=\"0.1\"} 0\n"
                 "plaint_intake_ack_seconds_bucket{path=\"http\",le=\"1\"} 1\n"
                 "plaint_intake_ack_seconds_bucket{path=\"http\",le=\"+Inf\"} 1\n"
                 "plaint_intake_ack_seconds_sum{path=\"http\"} 0.25\n"
                 "plaint_intake_ack_seconds_count{path=\"http\"} 1\n");
    assert_true(pl_metric_value(h) == 4);
    pl_metrics_destroy(&m);
    assert_int_equal(failures, 0);
}

static void test_histogram_without_labels_and_latency_buckets(void **state)
{
    pl_metrics_t *m = pl_metrics_new();
    pl_metric_t *h = pl_metrics_histogram(m, "b_seconds", "h", pl_metrics_latency_buckets,
                                          PL_METRICS_LATENCY_BUCKETS_N, NULL);
    pl_metric_observe(h, 0.003);
    check_render("latency buckets", m,
                 "# HELP b_seconds h\n# TYPE b_seconds histogram\n"
                 "b_seconds_bucket{le=\"0.0005\"} 0\n"
                 "b_seconds_bucket{le=\"0.001\"} 0\n"
                 "b_seconds_bucket{le=\"0.0025\"} 0\n"
                 "b_seconds_bucket{le=\"0.005\"} 1\n"
                 "b_seconds_bucket{le=\"0.01\"} 1\n"
                 "b_seconds_bucket{le=\"0.025\"} 1\n"
                 "b_seconds_bucket{le=\"0.05\"} 1\n"
                 "b_seconds_bucket{le=\"0.1\"} 1\n"
                 "b_seconds_bucket{le=\"0.25\"} 1\n"
                 "b_seconds_bucket{le=\"0.5\"} 1\n"
                 "b_seconds_bucket{le=\"1\"} 1\n"
                 "b_seconds_bucket{le=\"2.5\"} 1\n"
                 "b_seconds_bucket{le=\"5\"} 1\n"
                 "b_seconds_bucket{le=\"10\"} 1\n"
                 "b_seconds_bucket{le=\"+Inf\"} 1\n"
                 "b_seconds_sum 0.003\n"
                 "b_seconds_count 1\n");
    pl_metrics_destroy(&m);
    assert_int_equal(failures, 0);
}

typedef struct probe {
    pl_metric_t *gauge;
    int calls;
} probe_t;

static void on_collect(void *arg)
{
    probe_t *p = arg;
    p->calls++;
    pl_metric_set(p->gauge, p->calls * 10);
}

static void test_collect_runs_before_each_render(void **state)
{
    pl_metrics_t *m = pl_metrics_new();
    probe_t p = {pl_metrics_gauge(m, "q", "h", NULL), 0};
    pl_metrics_on_collect(m, on_collect, &p);
    check_render("first", m, "# HELP q h\n# TYPE q gauge\nq 10\n");
    check_render("second", m, "# HELP q h\n# TYPE q gauge\nq 20\n");
    assert_int_equal(p.calls, 2);
    pl_metrics_destroy(&m);
    assert_int_equal(failures, 0);
}

static void test_null_safety(void **state)
{
    /* Modules built without a registry get NULL series and update them freely. */
    pl_metric_t *s = pl_metrics_counter(NULL, "x_total", "h", NULL);
    assert_null(s);
    assert_null(pl_metrics_histogram(NULL, "h", "h", pl_metrics_latency_buckets, 1, NULL));
    pl_metric_inc(s);
    pl_metric_add(s, 1);
    pl_metric_set(s, 1);
    pl_metric_observe(s, 1);
    assert_true(pl_metric_value(s) == 0);
    pl_metrics_on_collect(NULL, on_collect, NULL);
    size_t len = 99;
    char *text = pl_metrics_render(NULL, &len);
    assert_string_equal(text, "");
    assert_int_equal(len, 0);
    pl_free(text);
}

/* A bad registration is a bug: asserted in debug builds; with NDEBUG the
 * call returns NULL and the rest of the registry is unharmed. */
static void test_bad_registration(void **state)
{
#ifdef NDEBUG
    static const struct {
        const char *label;
        const char *name, *label_name, *label_value;
    } cases[] = {
        {"name starts with a digit", "1x", NULL, NULL},
        {"name with a dash", "a-b", NULL, NULL},
        {"empty name", "", NULL, NULL},
        {"label with a colon", "ok", "a:b", "v"},
        {"reserved label", "ok", "__name", "v"},
    };
    pl_metrics_t *m = pl_metrics_new();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK(pl_metrics_counter(m, cases[i].name, "h", cases[i].label_name,
                                 cases[i].label_value, NULL) == NULL,
              "%s: registered\n", cases[i].label);
    (void)pl_metrics_gauge(m, "g", "h", "k", "v", NULL);
    CHECK(pl_metrics_counter(m, "g", "h", "k", "v", NULL) == NULL, "type change: registered\n");
    CHECK(pl_metrics_gauge(m, "g", "h", "other", "v", NULL) == NULL, "label change: registered\n");
    CHECK(pl_metrics_histogram(m, "h", "h", (const double[]){2, 1}, 2, NULL) == NULL,
          "descending bounds: registered\n");
    CHECK(pl_metrics_histogram(m, "h2", "h", pl_metrics_latency_buckets, 1, "le", "x", NULL) ==
              NULL,
          "le label: registered\n");
    check_render("after bad registrations", m, "# HELP g h\n# TYPE g gauge\ng{k=\"v\"} 0\n");
    pl_metrics_destroy(&m);
    assert_int_equal(failures, 0);
#else
    skip();
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_registry),
        cmocka_unit_test(test_counter_and_gauge),
        cmocka_unit_test(test_labels_and_registration_order),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_value_formats),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_histogram_without_labels_and_latency_buckets),
        cmocka_unit_test(test_collect_runs_before_each_render),
        cmocka_unit_test(test_null_safety),
        cmocka_unit_test(test_bad_registration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
