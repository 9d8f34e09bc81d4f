/*
 * test_uuid: v7 and v4 layout (RFC 9562), v7 ordering across threads, and
 * the canonical-form check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "pl_alloc.h"
#include "pl_time.h"
#include "pl_uuid.h"

#include "test_util.h"

static bool lower_hex_form(const char *u)
{
    if (!pl_uuid_valid(u))
        return false;
    for (const char *c = u; *c; c++)
        if (*c >= 'A' && *c <= 'F')
            return false;
    return true;
}

/* The 48-bit millisecond timestamp at the front of a v7 id. */
static int64_t v7_ms(const char *u)
{
    char hex[13];
    memcpy(hex, u, 8);
    memcpy(hex + 8, u + 9, 4);
    hex[12] = '\0';
    return (int64_t)strtoll(hex, NULL, 16);
}

static void test_v7_layout(void **state)
{
    char u[PL_UUID_STR];
    int64_t before = pl_time_now_ms();
    assert_ptr_equal(pl_uuid_v7(u), u);
    int64_t after = pl_time_now_ms();
    assert_int_equal(strlen(u), 36);
    assert_true(lower_hex_form(u));
    assert_int_equal(u[14], '7');           /* version */
    assert_non_null(strchr("89ab", u[19])); /* variant 10 */
    /* The clock may only be borrowed forward by a few ms under load. */
    assert_true(v7_ms(u) >= before && v7_ms(u) <= after + 5);
}

static void test_v4_layout(void **state)
{
    failures = 0;
    for (int i = 0; i < 200; i++) {
        char u[PL_UUID_STR];
        assert_ptr_equal(pl_uuid_v4(u), u);
        CHECK(lower_hex_form(u), "not canonical: %s\n", u);
        CHECK(u[14] == '4', "version: %s\n", u);
        CHECK(strchr("89ab", u[19]) != NULL, "variant: %s\n", u);
    }
    assert_int_equal(failures, 0);
}

static void test_v7_increases_in_one_thread(void **state)
{
    /* Enough ids that many share a millisecond, and likely run the 12-bit
     * counter out at least once. */
    enum { N = 20000 };
    char prev[PL_UUID_STR], u[PL_UUID_STR];
    pl_uuid_v7(prev);
    failures = 0;
    for (int i = 0; i < N && failures < 5; i++) {
        pl_uuid_v7(u);
        CHECK(strcmp(prev, u) < 0, "not increasing: %s then %s\n", prev, u);
        CHECK(u[14] == '7' && strchr("89ab", u[19]) != NULL, "layout: %s\n", u);
        memcpy(prev, u, sizeof u);
    }
    assert_int_equal(failures, 0);
}

#define THREADS 4
#define PER_THREAD 5000

typedef struct batch {
    char (*ids)[PL_UUID_STR];
    int bad_order;
} batch_t;

static void *make_ids(void *arg)
{
    batch_t *b = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        pl_uuid_v7(b->ids[i]);
        if (i > 0 && strcmp(b->ids[i - 1], b->ids[i]) >= 0)
            b->bad_order++;
    }
    return NULL;
}

static int compare_ids(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_v7_unique_across_threads(void **state)
{
    char(*all)[PL_UUID_STR] = pl_calloc(THREADS * PER_THREAD, PL_UUID_STR);
    pthread_t th[THREADS];
    batch_t batches[THREADS];
    for (int t = 0; t < THREADS; t++) {
        batches[t].ids = all + t * PER_THREAD;
        batches[t].bad_order = 0;
        assert_int_equal(pthread_create(&th[t], NULL, make_ids, &batches[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        assert_int_equal(pthread_join(th[t], NULL), 0);
        assert_int_equal(batches[t].bad_order, 0);
    }
    qsort(all, THREADS * PER_THREAD, PL_UUID_STR, compare_ids);
    int dups = 0;
    for (int i = 1; i < THREADS * PER_THREAD; i++)
        dups += strcmp(all[i - 1], all[i]) == 0;
    pl_free(all);
    assert_int_equal(dups, 0);
}

static void test_v4_unique(void **state)
{
    enum { N = 5000 };
    char(*ids)[PL_UUID_STR] = pl_calloc(N, PL_UUID_STR);
    for (int i = 0; i < N; i++)
        pl_uuid_v4(ids[i]);
    qsort(ids, N, PL_UUID_STR, compare_ids);
    int dups = 0;
    for (int i = 1; i < N; i++)
        dups += strcmp(ids[i - 1], ids[i]) == 0;
    pl_free(ids);
    assert_int_equal(dups, 0);
}

static void test_valid(void **state)
{
    static const struct {
        const char *label;
        const char *in;
        bool want;
    } cases[] = {
        {"v7", "0190f0e4-7c3a-7000-8000-000000000001", true},
        {"v4", "f47ac10b-58cc-4372-a567-0e02b2c3d479", true},
        {"upper case", "F47AC10B-58CC-4372-A567-0E02B2C3D479", true},
        {"mixed case", "f47ac10b-58CC-4372-a567-0E02b2c3d479", true},
        {"nil", "00000000-0000-0000-0000-000000000000", true},
        {"max", "ffffffff-ffff-ffff-ffff-ffffffffffff", true},
        {"35 characters", "f47ac10b-58cc-4372-a567-0e02b2c3d47", false},
        {"37 characters", "f47ac10b-58cc-4372-a567-0e02b2c3d4790", false},
        {"trailing newline", "f47ac10b-58cc-4372-a567-0e02b2c3d479\n", false},
        {"no dashes", "f47ac10b58cc4372a5670e02b2c3d479", false},
        {"dash moved", "f47ac10-b58cc-4372-a567-0e02b2c3d479", false},
        {"dash replaced", "f47ac10b_58cc-4372-a567-0e02b2c3d479", false},
        {"non-hex g", "g47ac10b-58cc-4372-a567-0e02b2c3d479", false},
        {"space", " 47ac10b-58cc-4372-a567-0e02b2c3d479", false},
        {"braces", "{f47ac10b-58cc-4372-a567-0e02b2c3d479}", false},
        {"urn", "urn:uuid:f47ac10b-58cc-4372-a567-0e02b2c3d479", false},
        {"empty", "", false},
        {"NULL", NULL, false},
    };
    failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool got = pl_uuid_valid(cases[i].in);
        CHECK(got == cases[i].want, "%s: got %d, want %d\n", cases[i].label, got, cases[i].want);
    }
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v7_layout),
        cmocka_unit_test(test_v4_layout),
        cmocka_unit_test(test_v7_increases_in_one_thread),
        cmocka_unit_test(test_v7_unique_across_threads),
        cmocka_unit_test(test_v4_unique),
        cmocka_unit_test(test_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
