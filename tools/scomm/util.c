/*
 * util.c - helpers shared by the CLI subcommands.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cli.h"

double scomm_cli_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void scomm_cli_fmt_size(char *out, size_t outlen, size_t bytes)
{
    if ((bytes >= (1u << 30)) && (bytes % (1u << 30) == 0)) {
        snprintf(out, outlen, "%zuG", bytes >> 30);
    } else if ((bytes >= (1u << 20)) && (bytes % (1u << 20) == 0)) {
        snprintf(out, outlen, "%zuM", bytes >> 20);
    } else if ((bytes >= 1024) && (bytes % 1024 == 0)) {
        snprintf(out, outlen, "%zuK", bytes >> 10);
    } else {
        snprintf(out, outlen, "%zu", bytes);
    }
}

int scomm_cli_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x < y) ? -1 : (x > y);
}

double scomm_cli_median_sorted(const double *v, size_t n)
{
    return (n % 2) ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static uint64_t scomm_cli_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

void scomm_cli_fill(void *buf, size_t bytes, uint64_t seed)
{
    unsigned char *p = buf;
    uint64_t w;
    size_t i;

    for (i = 0; i + 8 <= bytes; i += 8) {
        w = scomm_cli_mix(seed + i);
        __builtin_memcpy(p + i, &w, 8);
    }
    for (; i < bytes; i++) {
        p[i] = (unsigned char)scomm_cli_mix(seed + i);
    }
}

size_t scomm_cli_check(const void *buf, size_t bytes, uint64_t seed)
{
    const unsigned char *p = buf;
    uint64_t w, v;
    size_t i;

    for (i = 0; i + 8 <= bytes; i += 8) {
        w = scomm_cli_mix(seed + i);
        __builtin_memcpy(&v, p + i, 8);
        if (v != w) {
            return i;
        }
    }
    for (; i < bytes; i++) {
        if (p[i] != (unsigned char)scomm_cli_mix(seed + i)) {
            return i;
        }
    }
    return (size_t)-1;
}
