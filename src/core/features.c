/*
 * features.c - which optional libraries are compiled in
 * (scomm_build_features, `scomm info`'s "features:" line) and the message
 * for one that is not (features.h).
 *
 * Invariants:
 *  1. scomm_features[] is the one table: feature word, library, Debian
 *     package, and whether SCOMM_HAVE_<NAME> was defined for this object.
 *     The CMake summary prints the same package names (CMakeLists.txt,
 *     scomm_optional_dep); a test checks each message names its package.
 *  2. The features string is built once from the table, in table order,
 *     and never changes afterwards (static storage, safe from any thread).
 */
#include "features.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "scomm_int.h"

#ifdef SCOMM_HAVE_HWLOC
#define SCOMM_IN_HWLOC 1
#else
#define SCOMM_IN_HWLOC 0
#endif
#ifdef SCOMM_HAVE_YAML
#define SCOMM_IN_YAML 1
#else
#define SCOMM_IN_YAML 0
#endif
#ifdef SCOMM_HAVE_JANSSON
#define SCOMM_IN_JANSSON 1
#else
#define SCOMM_IN_JANSSON 0
#endif
#ifdef SCOMM_HAVE_MHD
#define SCOMM_IN_MHD 1
#else
#define SCOMM_IN_MHD 0
#endif
#ifdef SCOMM_HAVE_ZSTD
#define SCOMM_IN_ZSTD 1
#else
#define SCOMM_IN_ZSTD 0
#endif
#ifdef SCOMM_HAVE_LZ4
#define SCOMM_IN_LZ4 1
#else
#define SCOMM_IN_LZ4 0
#endif
#ifdef SCOMM_HAVE_OFI
#define SCOMM_IN_OFI 1
#else
#define SCOMM_IN_OFI 0
#endif

static const struct {
    const char *word;    /* in scomm_build_features() */
    const char *library; /* in messages */
    const char *package; /* Debian */
    int         in;
} scomm_features[SCOMM_FEATURE_COUNT] = {
    [SCOMM_FEATURE_HWLOC]   = {"hwloc", "hwloc", "libhwloc-dev",
                               SCOMM_IN_HWLOC},
    [SCOMM_FEATURE_YAML]    = {"yaml", "libyaml", "libyaml-dev",
                               SCOMM_IN_YAML},
    [SCOMM_FEATURE_JANSSON] = {"jansson", "jansson", "libjansson-dev",
                               SCOMM_IN_JANSSON},
    [SCOMM_FEATURE_MHD]     = {"microhttpd", "libmicrohttpd",
                               "libmicrohttpd-dev", SCOMM_IN_MHD},
    [SCOMM_FEATURE_ZSTD]    = {"zstd", "zstd", "libzstd-dev",
                               SCOMM_IN_ZSTD},
    [SCOMM_FEATURE_LZ4]     = {"lz4", "lz4", "liblz4-dev", SCOMM_IN_LZ4},
    [SCOMM_FEATURE_OFI]     = {"ofi", "libfabric", "libfabric-dev",
                               SCOMM_IN_OFI},
};

static pthread_once_t scomm_features_once = PTHREAD_ONCE_INIT;
static char scomm_features_text[80];

static void scomm_features_build(void)
{
    size_t off = 0;
    int f;

    for (f = 0; f < SCOMM_FEATURE_COUNT; f++) {
        if (scomm_features[f].in) {
            off += (size_t)snprintf(scomm_features_text + off,
                                    sizeof(scomm_features_text) - off,
                                    "%s%s", (off > 0) ? " " : "",
                                    scomm_features[f].word);
        }
    }
}

const char *scomm_build_features(void)
{
    pthread_once(&scomm_features_once, scomm_features_build);
    return scomm_features_text;
}

int scomm_feature_have(scomm_feature_t f)
{
    return ((unsigned)f < SCOMM_FEATURE_COUNT) && scomm_features[f].in;
}

const char *scomm_feature_package(scomm_feature_t f)
{
    return ((unsigned)f < SCOMM_FEATURE_COUNT) ? scomm_features[f].package
                                               : "?";
}

int scomm_feature_missing(scomm_feature_t f, char *err, size_t errlen,
                          const char *fmt, ...)
{
    char use[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(use, sizeof(use), fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "%s needs %s, which this build of scomm left out: "
             "install %s and rebuild scomm", use,
             ((unsigned)f < SCOMM_FEATURE_COUNT) ? scomm_features[f].library
                                                 : "?",
             scomm_feature_package(f));
    return SCOMM_ERR_UNSUPPORTED;
}
