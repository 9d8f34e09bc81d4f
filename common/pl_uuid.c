/*
 * pl_uuid: UUID v7 and v4 after RFC 9562 (see pl_uuid.h).
 *
 * Trusts the kernel's getrandom(2) for randomness and the wall clock for v7
 * timestamps, but not the clock's direction: v7 ids from one process never go
 * backwards, even when the clock does. Owns the last v7 timestamp and counter
 * (behind a mutex, since any thread may ask for an id).
 */
#include "pl_uuid.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "pl_log.h"
#include "pl_time.h"

#define COUNTER_MAX 0xFFFu /* rand_a is 12 bits */

static pthread_mutex_t v7_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t v7_last_ms;
static unsigned v7_counter;

/* Fills buf from the kernel's CSPRNG. An id must never repeat, so running on
 * without randomness is worse than stopping. */
static void random_bytes(void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            pl_log_error("getrandom failed, cannot make ids", "error", strerror(errno), NULL);
            abort();
        }
        p += n;
        len -= (size_t)n;
    }
}

static char *format_uuid(const unsigned char b[16], char *out)
{
    static const char HEX[] = "0123456789abcdef";
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = HEX[b[i] >> 4];
        *o++ = HEX[b[i] & 0xF];
    }
    *o = '\0';
    return out;
}

/* Picks the timestamp and the 12-bit counter of the next v7 id. Within one
 * millisecond the counter counts up (RFC 9562 section 6.2, method 1); when it
 * runs out, or the clock went back, the id borrows the next millisecond. A new
 * millisecond starts the counter at a random value below 2048 so that ids stay
 * hard to guess yet leave room to count. */
static void next_v7(uint64_t *ms, unsigned *counter, unsigned seed)
{
    int64_t now = pl_time_now_ms();
    uint64_t now_ms = now > 0 ? (uint64_t)now & 0xFFFFFFFFFFFFull : 0;
    /* pthread_mutex_lock on a default mutex fails only on a programming error. */
    (void)pthread_mutex_lock(&v7_lock);
    if (now_ms > v7_last_ms) {
        v7_last_ms = now_ms;
        v7_counter = seed & 0x7FFu;
    } else if (v7_counter < COUNTER_MAX) {
        v7_counter++;
    } else {
        v7_last_ms++;
        v7_counter = 0;
    }
    *ms = v7_last_ms;
    *counter = v7_counter;
    (void)pthread_mutex_unlock(&v7_lock);
}

char *pl_uuid_v7(char *out)
{
    unsigned char b[16];
    random_bytes(b, sizeof b);
    uint64_t ms;
    unsigned counter;
    next_v7(&ms, &counter, (unsigned)b[6] << 8 | b[7]);
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)(0x70 | (counter >> 8));
    b[7] = (unsigned char)(counter & 0xFF);
    b[8] = (unsigned char)(0x80 | (b[8] & 0x3F)); /* variant 10 */
    return format_uuid(b, out);
}

char *pl_uuid_v4(char *out)
{
    unsigned char b[16];
    random_bytes(b, sizeof b);
    b[6] = (unsigned char)(0x40 | (b[6] & 0x0F));
    b[8] = (unsigned char)(0x80 | (b[8] & 0x3F));
    return format_uuid(b, out);
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool pl_uuid_valid(const char *text)
{
    if (!text)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? text[i] != '-' : !is_hex(text[i]))
            return false; /* also stops at a NUL before 36 */
    }
    return text[36] == '\0';
}
