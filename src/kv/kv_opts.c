/*
 * kv_opts.c - a KV endpoint's options and its error reporting. Options are
 * resolved in layers: the defaults (chunk 1 MiB, 2 streams, depth 4, zero
 * copy on, timeout 30 s), then the configuration registry (SCOMM_TIMEOUT_MS
 * and the rows of kv_params.c: SCOMM_KV_RECONNECT_MS, SCOMM_KV_TOKEN),
 * then a preset named in the options (scomm_preset_get: chunk size,
 * streams, depth, zero copy, compression, target dtype, backend rdma as
 * transport ofi), then SCOMM_KV_TRANSPORT when set, then each field
 * the caller set in scomm_kv_opts_t; the result is range-checked once.
 *
 * Design notes (invariants):
 *  1. Only the fields whose bit is set in field_mask are read from the
 *     caller's struct: a caller built before a field was appended has a
 *     shorter struct.
 *  2. Every value is checked here, with its range in the message; the
 *     other files trust a kv_cfg_t.
 *  3. scomm_kv_fail is the one way a KV function reports an error: the
 *     reason goes to the thread's last error (scomm_last_error) and a DEBUG
 *     line, the status is returned; the caller decides what to log.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kv_int.h"
#include "topo/preset.h"

scomm_status_t scomm_kv_fail(scomm_status_t status, const char *fmt, ...)
{
    char msg[SCOMM_ERRMSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    scomm_set_thread_error("%s", msg);
    scomm_debug(SCOMM_SUB_KV, "-> %s: %s", scomm_status_name(status), msg);
    return status;
}

scomm_status_t scomm_kv_cfg_resolve(const scomm_kv_opts_t *o, kv_cfg_t *c)
{
    scomm_pval_t to, rd, tok, tr;
    scomm_preset_t p;
    char err[SCOMM_ERRMSG_MAX];
    uint64_t m = (o != NULL) ? o->field_mask : 0;
    int rc;

    /* KV endpoints need no communicator: read SCOMM_LOG_* here too. */
    scomm_log_init();
    scomm_config_check_env();
    memset(c, 0, sizeof(*c));
    if ((scomm_param_get("SCOMM_TIMEOUT_MS", NULL, &to, err,
                         sizeof(err)) != SCOMM_OK) ||
        (scomm_param_get("SCOMM_KV_RECONNECT_MS", NULL, &rd, err,
                         sizeof(err)) != SCOMM_OK) ||
        (scomm_param_get("SCOMM_KV_TOKEN", NULL, &tok, err,
                         sizeof(err)) != SCOMM_OK) ||
        (scomm_param_get("SCOMM_KV_TRANSPORT", NULL, &tr, err,
                         sizeof(err)) != SCOMM_OK)) {
        return scomm_kv_fail(SCOMM_ERR_BAD_CONFIG, "kv: %s", err);
    }
    c->chunk_size  = 1u << 20;
    c->streams     = 2;
    c->depth       = 4;
    c->zero_copy   = 1;
    /* KV's own default deadline, unless SCOMM_TIMEOUT_MS is set */
    c->timeout_ms  = (to.src != SCOMM_PARAM_SRC_DEFAULT) ? to.i : 30000;
    c->reconnect_ms = rd.i;
    snprintf(c->token, sizeof(c->token), "%s", tok.text);
    if ((m & SCOMM_KV_FIELD_PRESET) && (o->preset != NULL)) {
        rc = scomm_preset_get(o->preset, o->preset_file, &p);
        if (rc != SCOMM_OK) {
            return (scomm_status_t)rc;
        }
        c->chunk_size  = p.chunk_size;
        c->streams     = p.overlap_streams;
        c->depth       = p.prefetch_depth;
        c->zero_copy   = p.zero_copy;
        c->compression = (int)p.compression;
        c->level       = p.compression_level;
        c->wire_dtype  = (p.target_dtype == SCOMM_PRESET_DTYPE_FP8_E4M3)
                             ? SCOMM_KV_WIRE_FP8_E4M3
                             : ((p.target_dtype == SCOMM_PRESET_DTYPE_INT4)
                                    ? SCOMM_KV_WIRE_INT4
                                    : SCOMM_KV_WIRE_NATIVE);
        c->transport   = (p.backend == SCOMM_PRESET_BACKEND_RDMA)
                             ? SCOMM_KV_TRANSPORT_OFI
                             : SCOMM_KV_TRANSPORT_TCP;
        if (p.target_dtype == SCOMM_PRESET_DTYPE_FP8_E5M2) {
            scomm_warn(SCOMM_SUB_KV, "preset %s: fp8 e5m2 KV is not "
                       "supported, sending native values", o->preset);
        }
    }
    /* The environment's transport over the preset's backend. */
    if ((tr.src != SCOMM_PARAM_SRC_DEFAULT) && (tr.text[0] != '\0')) {
        c->transport = (int)tr.i;
    }
    if (m & SCOMM_KV_FIELD_TRANSPORT) {
        c->transport = o->transport;
    }
    if (m & SCOMM_KV_FIELD_CHUNK_SIZE) {
        c->chunk_size = o->chunk_size;
    }
    if (m & SCOMM_KV_FIELD_STREAMS) {
        c->streams = o->streams;
    }
    if (m & SCOMM_KV_FIELD_PREFETCH_DEPTH) {
        c->depth = o->prefetch_depth;
    }
    if (m & SCOMM_KV_FIELD_ZERO_COPY) {
        c->zero_copy = (o->zero_copy != 0);
    }
    if (m & SCOMM_KV_FIELD_COMPRESSION) {
        c->compression = o->compression;
    }
    if (m & SCOMM_KV_FIELD_COMPRESS_LEVEL) {
        c->level = o->compression_level;
    }
    if (m & SCOMM_KV_FIELD_WIRE_DTYPE) {
        c->wire_dtype = o->wire_dtype;
    }
    if (m & SCOMM_KV_FIELD_TIMEOUT) {
        c->timeout_ms = o->timeout_ms;
    }
    if (m & SCOMM_KV_FIELD_RECONNECT_MS) {
        c->reconnect_ms = o->reconnect_ms;
    }
    if ((m & SCOMM_KV_FIELD_TOKEN) && (o->token != NULL)) {
        if (strlen(o->token) >= SCOMM_KV_TOKEN_MAX) {
            return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv: token longer than "
                                 "%d bytes", SCOMM_KV_TOKEN_MAX - 1);
        }
        snprintf(c->token, sizeof(c->token), "%s", o->token);
    }
    if ((c->chunk_size < 4096) || (c->chunk_size > SCOMM_KV_CHUNK_MAX) ||
        (c->streams < 1) || (c->streams > SCOMM_KV_MAX_STREAMS) ||
        (c->depth < 1) || (c->depth > 1024) || (c->timeout_ms <= 0) ||
        (c->compression < 0) || (c->compression > 2) ||
        (c->wire_dtype < 0) || (c->wire_dtype > 2) ||
        (c->reconnect_ms < 0) || (c->transport < 0) ||
        (c->transport > SCOMM_KV_TRANSPORT_OFI) ||
        (c->reconnect_ms > (int64_t)SCOMM_KV_REDIAL_MAX_MS)) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv: options out of range: "
                             "chunk_size %zu (4 KiB..256 MiB), streams %d "
                             "(1..%d), prefetch_depth %d (1..1024), timeout "
                             "%lld ms, compression %d, wire dtype %d, "
                             "reconnect %lld ms (0..%u), transport %d "
                             "(0 tcp, 1 ofi)", c->chunk_size,
                             c->streams, SCOMM_KV_MAX_STREAMS, c->depth,
                             (long long)c->timeout_ms, c->compression,
                             c->wire_dtype, (long long)c->reconnect_ms,
                             SCOMM_KV_REDIAL_MAX_MS, c->transport);
    }
#ifndef SCOMM_HAVE_OFI
    if (c->transport == SCOMM_KV_TRANSPORT_OFI) {
        return scomm_kv_fail(SCOMM_ERR_UNSUPPORTED, "kv transport ofi: this "
                             "library was built without libfabric (install "
                             "libfabric-dev and rebuild with "
                             "SCOMM_WITH_OFI)");
    }
#endif
    return SCOMM_OK;
}
