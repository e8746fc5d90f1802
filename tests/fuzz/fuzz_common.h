/*
 * fuzz_common.h - helpers shared by the fuzz targets in tests/fuzz/.
 *
 * Each target defines LLVMFuzzerTestOneInput(). Built with SCOMM_FUZZ=ON
 * (clang) it links libFuzzer; in every build it also links replay_main.c,
 * which runs the committed corpus under ctest (fuzz.replay.<target>).
 *
 * FUZZ_CHECK is not assert(): release builds define NDEBUG, and the
 * invariants must hold in the replay tests too.
 */
#ifndef SCOMM_FUZZ_COMMON_H
#define SCOMM_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(_cond)                                                  \
    do {                                                                   \
        if (!(_cond)) {                                                    \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,     \
                    __LINE__, #_cond);                                     \
            abort();                                                       \
        }                                                                  \
    } while (0)

/* A reason buffer is filled with this before a call, so that a function
 * which fails without writing its reason is caught. */
#define FUZZ_WHY_FILL 0x5a

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A failing decoder must leave a non-empty, NUL-terminated reason. */
static inline void fuzz_check_why(const char *why, size_t whylen)
{
    FUZZ_CHECK(strnlen(why, whylen) < whylen);
    FUZZ_CHECK(why[0] != '\0');
}

/* The string in a fixed field must end inside the field. */
static inline void fuzz_check_str(const char *s, size_t n)
{
    FUZZ_CHECK(strnlen(s, n) < n);
}

static inline uint64_t fuzz_get64(const uint8_t *p)
{
    uint64_t v = 0;
    int i;

    for (i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static inline uint32_t fuzz_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static inline uint16_t fuzz_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

/* An exact-size heap copy, so that AddressSanitizer sees a read past the
 * end of the bytes a parser was given. */
static inline uint8_t *fuzz_dup(const uint8_t *data, size_t size)
{
    uint8_t *p = malloc((size > 0) ? size : 1);

    FUZZ_CHECK(p != NULL);
    if (size > 0) {
        memcpy(p, data, size);
    } else {
        p[0] = 0;
    }
    return p;
}

#endif /* SCOMM_FUZZ_COMMON_H */
