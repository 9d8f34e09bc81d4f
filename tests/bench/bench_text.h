/*
 * bench_text: realistic complaint bodies for the benchmark, 1-2 KB, Chinese
 * and English, assembled from sentences the team wrote (no customer data).
 */
#ifndef BENCH_TEXT_H
#define BENCH_TEXT_H

#include <stddef.h>

/* Writes a body of about target_bytes into buf (size >= target_bytes + 512);
 * seed picks the language and sentences. Returns the length. */
size_t bench_text_body(char *buf, size_t size, size_t target_bytes, unsigned seed);

#endif
