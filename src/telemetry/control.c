/*
 * control.c - scomm_control_set() / scomm_control_get(): run-time knobs,
 * process-wide. Telemetry keys act at once (metrics on/off, trace on/off,
 * trace_path); the others (chunk_size, channels, fusion) are stored in a
 * table of atomics that the modules owning them read (control.h).
 *
 * Invariants: see control.h. In addition:
 *  3. A rejected value changes nothing and names the key, the value and
 *     what is accepted.
 *  4. A key that sets a knob the environment also sets (metrics:
 *     SCOMM_METRICS, chunk_size: SCOMM_COLL_SHM_CHUNK) is parsed by that
 *     knob's registry row (core/config.h), its one declaration; the key is
 *     the API layer above the variable.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "tm.h"

#define SCOMM_CONTROL_CHANNELS_MAX 64

static _Atomic int64_t scomm_control_chunk;
static _Atomic int32_t scomm_control_chan;
static _Atomic int32_t scomm_control_fuse = -1;
static _Atomic uint64_t scomm_control_generation;

static const char scomm_control_keys[] =
    "metrics, latency_sample, trace, trace_path, chunk_size, channels, "
    "fusion";

int64_t scomm_control_chunk_size(void)
{
    return atomic_load_explicit(&scomm_control_chunk, memory_order_relaxed);
}

int32_t scomm_control_channels(void)
{
    return atomic_load_explicit(&scomm_control_chan, memory_order_relaxed);
}

int32_t scomm_control_fusion(void)
{
    return atomic_load_explicit(&scomm_control_fuse, memory_order_relaxed);
}

uint64_t scomm_control_gen(void)
{
    return atomic_load_explicit(&scomm_control_generation,
                                memory_order_acquire);
}

void scomm_control_init_env(void)
{
    char err[512];
    scomm_pval_t v;

    /* The chunk size's variable is a row of coll's table (select.c), which
     * coll/direct.c reads itself; mirror a value that was set so that
     * scomm_control_get reports what is in force. */
    if ((scomm_param_get("SCOMM_COLL_SHM_CHUNK", NULL, &v, err,
                         sizeof(err)) == SCOMM_OK) &&
        (v.src != SCOMM_PARAM_SRC_DEFAULT)) {
        atomic_store(&scomm_control_chunk, (int64_t)v.u);
    }
}

static scomm_status_t scomm_control_bad(scomm_comm_t *comm, const char *key,
                                        const char *value, const char *what)
{
    return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                           "scomm_control_set: %s '%s' is not %s", key,
                           value, what);
}

static scomm_comm_t *scomm_control_errcomm(scomm_comm_t *comm)
{
    return ((comm != NULL) && (comm->magic == SCOMM_COMM_MAGIC)) ? comm
                                                                 : NULL;
}

scomm_status_t scomm_control_set(scomm_comm_t *comm, const char *key,
                                 const char *value)
{
    scomm_comm_t *ec = scomm_control_errcomm(comm);
    scomm_status_t status = SCOMM_OK;
    char why[SCOMM_ERRMSG_MAX];
    scomm_pval_t pv;
    char *end = NULL;
    long l;
    int b;

    if ((comm != NULL) &&
        ((status = scomm_comm_check(comm, "scomm_control_set")) !=
         SCOMM_OK)) {
        return status;
    }
    if ((key == NULL) || (value == NULL)) {
        return scomm_set_error(ec, SCOMM_ERR_INVALID_ARG,
                               "scomm_control_set: %s is NULL",
                               (key == NULL) ? "key" : "value");
    }
    if (strcmp(key, "metrics") == 0) {
        if (scomm_param_check("SCOMM_METRICS", value, "scomm_control_set "
                              "metrics", &pv, why, sizeof(why)) != SCOMM_OK) {
            return scomm_set_error(ec, SCOMM_ERR_INVALID_ARG, "%s", why);
        }
        if (pv.i != 0) {
            atomic_fetch_or(&scomm_tm_flags, SCOMM_TM_F_METRICS);
        } else {
            atomic_fetch_and(&scomm_tm_flags, ~SCOMM_TM_F_METRICS);
        }
    } else if (strcmp(key, "latency_sample") == 0) {
        l = strtol(value, &end, 10);
        if ((end == value) || (*end != '\0') || (l < 1) || (l > 65536)) {
            return scomm_control_bad(ec, key, value,
                                     "an integer from 1 to 65536");
        }
        atomic_store(&scomm_tm_sample, (uint32_t)l);
    } else if (strcmp(key, "trace") == 0) {
        if ((b = scomm_parse_bool(value)) < 0) {
            return scomm_control_bad(ec, key, value, "on or off");
        }
        status = scomm_trace_enable(b, NULL);
    } else if (strcmp(key, "trace_path") == 0) {
        if (value[0] == '\0') {
            return scomm_control_bad(ec, key, value, "a file path");
        }
        status = scomm_trace_enable(scomm_trace_is_on(), value);
    } else if (strcmp(key, "chunk_size") == 0) {
        if (scomm_param_check("SCOMM_COLL_SHM_CHUNK", value,
                              "scomm_control_set chunk_size", &pv, why,
                              sizeof(why)) != SCOMM_OK) {
            return scomm_set_error(ec, SCOMM_ERR_INVALID_ARG, "%s", why);
        }
        atomic_store(&scomm_control_chunk, (int64_t)pv.u);
    } else if (strcmp(key, "channels") == 0) {
        l = strtol(value, &end, 10);
        if ((end == value) || (*end != '\0') || (l < 1) ||
            (l > SCOMM_CONTROL_CHANNELS_MAX)) {
            return scomm_control_bad(ec, key, value,
                                     "an integer from 1 to 64");
        }
        atomic_store(&scomm_control_chan, (int32_t)l);
    } else if (strcmp(key, "fusion") == 0) {
        if ((b = scomm_parse_bool(value)) < 0) {
            return scomm_control_bad(ec, key, value, "on or off");
        }
        atomic_store(&scomm_control_fuse, b);
    } else {
        return scomm_set_error(ec, SCOMM_ERR_INVALID_ARG,
                               "scomm_control_set: unknown key '%s' (keys: "
                               "%s)", key, scomm_control_keys);
    }
    if (status == SCOMM_OK) {
        atomic_fetch_add_explicit(&scomm_control_generation, 1,
                                  memory_order_release);
        scomm_info(SCOMM_SUB_TELEM, "control: %s = %s", key, value);
    }
    return status;
}

scomm_status_t scomm_control_get(scomm_comm_t *comm, const char *key,
                                 char *value, size_t len)
{
    scomm_comm_t *ec = scomm_control_errcomm(comm);
    scomm_status_t status;
    char tmp[1024];
    unsigned flags = atomic_load(&scomm_tm_flags);
    int32_t v;

    if ((comm != NULL) &&
        ((status = scomm_comm_check(comm, "scomm_control_get")) !=
         SCOMM_OK)) {
        return status;
    }
    if ((key == NULL) || (value == NULL) || (len == 0)) {
        return scomm_set_error(ec, SCOMM_ERR_INVALID_ARG,
                               "scomm_control_get: %s",
                               (key == NULL)   ? "key is NULL" :
                               (value == NULL) ? "value is NULL" :
                                                 "len is 0");
    }
    if (strcmp(key, "metrics") == 0) {
        snprintf(tmp, sizeof(tmp), "%s",
                 (flags & SCOMM_TM_F_METRICS) ? "on" : "off");
    } else if (strcmp(key, "latency_sample") == 0) {
        snprintf(tmp, sizeof(tmp), "%u",
                 (unsigned)atomic_load(&scomm_tm_sample));
    } else if (strcmp(key, "trace") == 0) {
        snprintf(tmp, sizeof(tmp), "%s", scomm_trace_is_on() ? "on" : "off");
    } else if (strcmp(key, "trace_path") == 0) {
        snprintf(tmp, sizeof(tmp), "%s", scomm_trace_path());
    } else if (strcmp(key, "chunk_size") == 0) {
        if (scomm_control_chunk_size() > 0) {
            snprintf(tmp, sizeof(tmp), "%lld",
                     (long long)scomm_control_chunk_size());
        } else {
            snprintf(tmp, sizeof(tmp), "default");
        }
    } else if (strcmp(key, "channels") == 0) {
        v = scomm_control_channels();
        if (v > 0) {
            snprintf(tmp, sizeof(tmp), "%d", (int)v);
        } else {
            snprintf(tmp, sizeof(tmp), "default");
        }
    } else if (strcmp(key, "fusion") == 0) {
        v = scomm_control_fusion();
        snprintf(tmp, sizeof(tmp), "%s",
                 (v < 0) ? "default" : (v ? "on" : "off"));
    } else {
        return scomm_set_error(ec, SCOMM_ERR_INVALID_ARG,
                               "scomm_control_get: unknown key '%s' (keys: "
                               "%s)", key, scomm_control_keys);
    }
    if (strlen(tmp) >= len) {
        return scomm_set_error(ec, SCOMM_ERR_INVALID_ARG,
                               "scomm_control_get: %s needs %zu bytes, len "
                               "is %zu", key, strlen(tmp) + 1, len);
    }
    memcpy(value, tmp, strlen(tmp) + 1);
    return SCOMM_OK;
}
