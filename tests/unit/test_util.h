/*
 * test_util: what the cmocka unit tests share. Include it after <cmocka.h>.
 *
 * CHECK counts a failure and goes on, so one run reports every bad row of a
 * table (the test then asserts failures == 0); scaled_ms stretches a time
 * limit by PLAINT_TEST_TIMEOUT_MULTIPLIER for slow (sanitizer) builds, as
 * libuv's test runner does.
 */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <stdint.h>
#include <stdlib.h>

static int failures;
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            print_error(__VA_ARGS__);                                                              \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))

static inline int64_t scaled_ms(int64_t ms)
{
    const char *m = getenv("PLAINT_TEST_TIMEOUT_MULTIPLIER");
    double f = m ? atof(m) : 1.0;
    return (int64_t)(ms * (f >= 1.0 ? f : 1.0));
}

#endif
