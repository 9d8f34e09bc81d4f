/*
 * test_stage_settings: the settings every stage daemon reads through
 * pl_stage_settings(), loaded with pl_cfg_load() from the environment.
 *
 * The names, defaults and bounds are the stage's documented contract
 * (pl_stage.h, pl_stage.c): a daemon's --help and its operators rely on them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_cfg.h"
#include "pl_err.h"
#include "pl_stage.h"

#include "test_util.h"

/* The documented settings, in table order. */
static const struct {
    const char *name;
    const char *defval;
    pl_cfg_kind_t kind;
    size_t offset; /* of the target in pl_stage_cfg_t */
    int64_t want_default;
    int64_t min, max;
} documented[] = {
    {"PLAINT_STAGE_LEASE", "30s", PL_CFG_DURATION, offsetof(pl_stage_cfg_t, lease_ms), 30000,
     100, 86400000},
    {"PLAINT_STAGE_SWEEP", "2s", PL_CFG_DURATION, offsetof(pl_stage_cfg_t, sweep_ms), 2000, 10,
     3600000},
    {"PLAINT_STAGE_PATIENCE", "5s", PL_CFG_DURATION, offsetof(pl_stage_cfg_t, patience_ms), 5000,
     0, 86400000},
    {"PLAINT_STAGE_BACKOFF", "1s", PL_CFG_DURATION, offsetof(pl_stage_cfg_t, backoff_ms), 1000, 0,
     3600000},
    {"PLAINT_STAGE_MAX_ATTEMPTS", "5", PL_CFG_INT, offsetof(pl_stage_cfg_t, max_attempts), 5, 1,
     1000},
    {"PLAINT_STAGE_CONCURRENCY", "32", PL_CFG_INT, offsetof(pl_stage_cfg_t, concurrency), 32, 1,
     10000},
    {"PLAINT_STAGE_DB_CONNECTIONS", "3", PL_CFG_INT, offsetof(pl_stage_cfg_t, db_connections), 3,
     1, 16},
};

static int64_t *field(pl_stage_cfg_t *cfg, size_t offset)
{
    return (int64_t *)((char *)cfg + offset);
}

static void unset_all(void)
{
    for (size_t i = 0; i < NELEMS(documented); i++)
        assert_int_equal(unsetenv(documented[i].name), 0);
}

static void test_table(void **state)
{
    pl_stage_cfg_t cfg;
    size_t n = 0;
    const pl_cfg_setting_t *t = pl_stage_settings(&cfg, &n);
    assert_non_null(t);
    assert_int_equal(n, NELEMS(documented));
    failures = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = documented[i].name;
        CHECK(t[i].name && !strcmp(t[i].name, name), "entry %zu: name %s, want %s\n", i,
              t[i].name ? t[i].name : "(null)", name);
        CHECK(t[i].defval && !strcmp(t[i].defval, documented[i].defval),
              "%s: default %s, want %s\n", name, t[i].defval ? t[i].defval : "(none)",
              documented[i].defval);
        CHECK(t[i].kind == documented[i].kind, "%s: kind %d, want %d\n", name, (int)t[i].kind,
              (int)documented[i].kind);
        CHECK(t[i].target == field(&cfg, documented[i].offset), "%s: target is not its field\n",
              name);
        CHECK(t[i].min == documented[i].min && t[i].max == documented[i].max,
              "%s: bounds %lld..%lld, want %lld..%lld\n", name, (long long)t[i].min,
              (long long)t[i].max, (long long)documented[i].min, (long long)documented[i].max);
        CHECK(t[i].help && *t[i].help, "%s: no help line\n", name);
    }
    assert_int_equal(failures, 0);
}

static void test_defaults_load(void **state)
{
    unset_all();
    pl_stage_cfg_t cfg;
    memset(&cfg, 0xAB, sizeof cfg);
    size_t n = 0;
    const pl_cfg_setting_t *t = pl_stage_settings(&cfg, &n);
    pl_errlist_t errs = PL_ERRLIST_INIT;
    int rc = pl_cfg_load(t, n, &errs);
    assert_int_equal(rc, 0);
    assert_int_equal(errs.count, 0);
    failures = 0;
    for (size_t i = 0; i < NELEMS(documented); i++) {
        int64_t got = *field(&cfg, documented[i].offset);
        CHECK(got == documented[i].want_default, "%s: %lld, want %lld\n", documented[i].name,
              (long long)got, (long long)documented[i].want_default);
    }
    pl_errlist_reset(&errs);
    assert_int_equal(failures, 0);
}

static void test_good_values(void **state)
{
    static const struct {
        const char *label;
        const char *name;
        const char *value;
        size_t offset;
        int64_t want;
    } cases[] = {
        {"lease in minutes", "PLAINT_STAGE_LEASE", "2m", offsetof(pl_stage_cfg_t, lease_ms),
         120000},
        {"lease at its minimum", "PLAINT_STAGE_LEASE", "100ms",
         offsetof(pl_stage_cfg_t, lease_ms), 100},
        {"sweep at its minimum", "PLAINT_STAGE_SWEEP", "10ms", offsetof(pl_stage_cfg_t, sweep_ms),
         10},
        {"patience zero", "PLAINT_STAGE_PATIENCE", "0s", offsetof(pl_stage_cfg_t, patience_ms), 0},
        {"backoff compound", "PLAINT_STAGE_BACKOFF", "1s500ms",
         offsetof(pl_stage_cfg_t, backoff_ms), 1500},
        {"one attempt", "PLAINT_STAGE_MAX_ATTEMPTS", "1", offsetof(pl_stage_cfg_t, max_attempts),
         1},
        {"attempts at the maximum", "PLAINT_STAGE_MAX_ATTEMPTS", "1000",
         offsetof(pl_stage_cfg_t, max_attempts), 1000},
        {"concurrency at the maximum", "PLAINT_STAGE_CONCURRENCY", "10000",
         offsetof(pl_stage_cfg_t, concurrency), 10000},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        unset_all();
        assert_int_equal(setenv(cases[i].name, cases[i].value, 1), 0);
        pl_stage_cfg_t cfg;
        size_t n = 0;
        const pl_cfg_setting_t *t = pl_stage_settings(&cfg, &n);
        pl_errlist_t errs = PL_ERRLIST_INIT;
        int rc = pl_cfg_load(t, n, &errs);
        CHECK(rc == 0 && errs.count == 0, "%s: rc %d, %zu errors (%s)\n", cases[i].label, rc,
              errs.count, errs.count ? errs.items[0].message : "");
        int64_t got = *field(&cfg, cases[i].offset);
        CHECK(got == cases[i].want, "%s: %lld, want %lld\n", cases[i].label, (long long)got,
              (long long)cases[i].want);
        pl_errlist_reset(&errs);
    }
    unset_all();
    assert_int_equal(failures, 0);
}

static const struct {
    const char *label;
    const char *name;
    const char *value;
    const char *want_why; /* in the message after the name and value */
} bad[] = {
    {"lease with a bad unit", "PLAINT_STAGE_LEASE", "5x", NULL},
    {"lease below the minimum", "PLAINT_STAGE_LEASE", "50ms", "below the minimum"},
    {"lease above the maximum", "PLAINT_STAGE_LEASE", "2d", "above the maximum"},
    {"sweep negative", "PLAINT_STAGE_SWEEP", "-1s", "negative"},
    {"sweep empty", "PLAINT_STAGE_SWEEP", "", "must not be empty"},
    {"patience without a unit", "PLAINT_STAGE_PATIENCE", "5", NULL},
    {"backoff above the maximum", "PLAINT_STAGE_BACKOFF", "2h", "above the maximum"},
    {"zero attempts", "PLAINT_STAGE_MAX_ATTEMPTS", "0", "out of range"},
    {"attempts not a number", "PLAINT_STAGE_MAX_ATTEMPTS", "five", "not a whole number"},
    {"attempts with a unit", "PLAINT_STAGE_MAX_ATTEMPTS", "5s", "not a whole number"},
    {"concurrency too high", "PLAINT_STAGE_CONCURRENCY", "10001", "out of range"},
    {"concurrency negative", "PLAINT_STAGE_CONCURRENCY", "-3", "out of range"},
};

static void check_reported(const char *label, const char *name, const char *value,
                           const char *want_why, const pl_errlist_t *errs, size_t *matched)
{
    const pl_err_t *e = NULL;
    for (size_t j = 0; j < errs->count; j++)
        if (!strcmp(errs->items[j].path, name))
            e = &errs->items[j];
    CHECK(e != NULL, "%s: %s is not reported\n", label, name);
    if (!e)
        return;
    (*matched)++;
    char head[160];
    snprintf(head, sizeof head, "invalid %s", name);
    CHECK(e->code == PL_ECONFIG, "%s: code %d\n", label, e->code);
    CHECK(strncmp(e->message, head, strlen(head)) == 0, "%s: message \"%s\" does not start %s\n",
          label, e->message, head);
    CHECK(!*value || strstr(e->message, value), "%s: message \"%s\" does not quote \"%s\"\n",
          label, e->message, value);
    CHECK(!want_why || strstr(e->message, want_why), "%s: message \"%s\" does not say %s\n",
          label, e->message, want_why);
    CHECK(e->hint[0] != '\0', "%s: no hint\n", label);
}

static void test_bad_values_one_at_a_time(void **state)
{
    failures = 0;
    for (size_t i = 0; i < NELEMS(bad); i++) {
        unset_all();
        assert_int_equal(setenv(bad[i].name, bad[i].value, 1), 0);
        pl_stage_cfg_t cfg;
        memset(&cfg, 0, sizeof cfg);
        size_t n = 0;
        const pl_cfg_setting_t *t = pl_stage_settings(&cfg, &n);
        pl_errlist_t errs = PL_ERRLIST_INIT;
        int rc = pl_cfg_load(t, n, &errs);
        CHECK(rc == PL_ECONFIG, "%s: rc %d\n", bad[i].label, rc);
        CHECK(errs.count == 1, "%s: %zu errors, want 1\n", bad[i].label, errs.count);
        size_t matched = 0;
        check_reported(bad[i].label, bad[i].name, bad[i].value, bad[i].want_why, &errs,
                       &matched);
        pl_errlist_reset(&errs);
    }
    unset_all();
    assert_int_equal(failures, 0);
}

static void test_every_bad_variable_reported(void **state)
{
    /* One bad value per setting at once: each one is reported, none hides
     * another, and the good defaults are not blamed. */
    static const struct {
        const char *name, *value;
    } all_bad[] = {
        {"PLAINT_STAGE_LEASE", "5x"},       {"PLAINT_STAGE_SWEEP", "1ms"},
        {"PLAINT_STAGE_PATIENCE", "soon"},  {"PLAINT_STAGE_BACKOFF", "-2s"},
        {"PLAINT_STAGE_MAX_ATTEMPTS", "0"}, {"PLAINT_STAGE_CONCURRENCY", "0"},
        {"PLAINT_STAGE_DB_CONNECTIONS", "17"},
    };
    unset_all();
    for (size_t i = 0; i < NELEMS(all_bad); i++)
        assert_int_equal(setenv(all_bad[i].name, all_bad[i].value, 1), 0);
    pl_stage_cfg_t cfg;
    memset(&cfg, 0x5A, sizeof cfg);
    pl_stage_cfg_t before = cfg;
    size_t n = 0;
    const pl_cfg_setting_t *t = pl_stage_settings(&cfg, &n);
    pl_errlist_t errs = PL_ERRLIST_INIT;
    int rc = pl_cfg_load(t, n, &errs);
    failures = 0;
    CHECK(rc == PL_ECONFIG, "rc %d\n", rc);
    CHECK(errs.count == NELEMS(all_bad), "%zu errors, want %zu\n", errs.count, NELEMS(all_bad));
    size_t matched = 0;
    for (size_t i = 0; i < NELEMS(all_bad); i++)
        check_reported(all_bad[i].name, all_bad[i].name, all_bad[i].value, NULL, &errs,
                       &matched);
    CHECK(matched == NELEMS(all_bad), "%zu of %zu reported\n", matched, NELEMS(all_bad));
    /* A bad setting leaves its target untouched. */
    CHECK(memcmp(&cfg, &before, sizeof cfg) == 0, "a bad value was stored\n");
    pl_errlist_reset(&errs);

    /* Two bad, four unset: exactly the two are reported, the rest load. */
    unset_all();
    assert_int_equal(setenv("PLAINT_STAGE_LEASE", "5x", 1), 0);
    assert_int_equal(setenv("PLAINT_STAGE_MAX_ATTEMPTS", "0", 1), 0);
    memset(&cfg, 0, sizeof cfg);
    t = pl_stage_settings(&cfg, &n);
    rc = pl_cfg_load(t, n, &errs);
    CHECK(rc == PL_ECONFIG && errs.count == 2, "two bad: rc %d, %zu errors\n", rc, errs.count);
    matched = 0;
    check_reported("two bad", "PLAINT_STAGE_LEASE", "5x", NULL, &errs, &matched);
    check_reported("two bad", "PLAINT_STAGE_MAX_ATTEMPTS", "0", "out of range", &errs, &matched);
    CHECK(cfg.sweep_ms == 2000 && cfg.concurrency == 32, "two bad: the good ones did not load\n");
    pl_errlist_reset(&errs);
    unset_all();
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_defaults_load),
        cmocka_unit_test(test_good_values),
        cmocka_unit_test(test_bad_values_one_at_a_time),
        cmocka_unit_test(test_every_bad_variable_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
