/*
 * features.h - the optional libraries this build holds (CMake's
 * SCOMM_WITH_<NAME> options, docs/design.md "Dependencies"), and the one
 * message every code path gives when the library it needs was left out.
 *
 * Invariants:
 *  1. A feature is in exactly when CMake defined SCOMM_HAVE_<NAME> for the
 *     library's objects: scomm_build_features(), scomm_feature_have() and
 *     the #ifdef'ed code read the same macros, so what `scomm info` lists
 *     is what is compiled in.
 *  2. Using a left-out feature is SCOMM_ERR_UNSUPPORTED with
 *     scomm_feature_missing()'s text, which names the Debian package to
 *     install and says to rebuild; it is never a crash or a silent no-op.
 */
#ifndef SCOMM_FEATURES_H
#define SCOMM_FEATURES_H

#include <stddef.h>

typedef enum {
    SCOMM_FEATURE_HWLOC = 0, /* CPU topology (topo/discover.c, matrix.c) */
    SCOMM_FEATURE_YAML,      /* preset files (topo/preset.c) */
    SCOMM_FEATURE_JANSSON,   /* JSON input: topology, selector policy */
    SCOMM_FEATURE_MHD,       /* the /metrics HTTP server (telemetry) */
    SCOMM_FEATURE_ZSTD,      /* KV compression (src/kv) */
    SCOMM_FEATURE_LZ4,       /* KV compression (src/kv) */
    SCOMM_FEATURE_OFI,       /* the ofi transport (transport/ofi.c) */
    SCOMM_FEATURE_COUNT
} scomm_feature_t;

/* 1 when the feature is built in. */
int scomm_feature_have(scomm_feature_t f);

/* Debian package that brings the feature's library ("libjansson-dev"). */
const char *scomm_feature_package(scomm_feature_t f);

/*
 * Write into err "<use> needs <library>, which this build of scomm left
 * out: install <package> and rebuild scomm", where <use> is fmt's text
 * (e.g. "SCOMM_SELECTOR_CONFIG p.json: a selector policy file"). Returns
 * SCOMM_ERR_UNSUPPORTED (as int, like the parsers that return it).
 */
int scomm_feature_missing(scomm_feature_t f, char *err, size_t errlen,
                          const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif /* SCOMM_FEATURES_H */
