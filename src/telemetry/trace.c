/*
 * trace.c - Chrome trace-event files (open in Perfetto or chrome://tracing):
 * one file per process, one complete ("X") event per operation with its
 * algorithm, bytes, peers and status, and one per step (scomm_step_end).
 *
 * File name: SCOMM_TRACE (or control key trace_path) with %r replaced by
 * the world rank, %p by the pid, %% by %; a path with neither gets
 * ".rank<N>.json" (after dropping a ".json" suffix).
 *
 *   hook -> scomm_trace_add()   fixed-size record into the buffer
 *   buffer full, comm destroy, last world down, trace off
 *        -> scomm_trace_flush() format records as JSON, append, rewrite
 *                                the closing "]}" so the file is valid
 *                                JSON after every flush
 *
 * Invariants:
 *  1. scomm_trace_lock guards the buffer, the file and the path. The
 *     hook takes it only while tracing is on.
 *  2. A record points at its communicator's scomm_tm_comm_t; every comm
 *     flushes the buffer before its tm is freed (tm.c), so the pointer is
 *     valid when the record is formatted.
 *  3. Timestamps are CLOCK_MONOTONIC microseconds, so the files of ranks
 *     on one host line up when loaded together.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tm.h"

#define SCOMM_TRACE_RECS   16384
#define SCOMM_TRACE_PATH   1024
#define SCOMM_TRACE_FOOTER "\n]}\n"

typedef struct scomm_trace_rec {
    const scomm_tm_comm_t *tm;
    const char            *algo;
    uint64_t               t0;
    uint64_t               t1;
    uint64_t               bytes;
    int32_t                op;     /* -1: a step */
    int32_t                peer;   /* world rank, or -1 */
    int32_t                status;
    int32_t                pad;
} scomm_trace_rec_t;

static pthread_mutex_t scomm_trace_lock = PTHREAD_MUTEX_INITIALIZER;
static scomm_trace_rec_t *scomm_trace_buf;
static size_t scomm_trace_n;
static char scomm_trace_tmpl[SCOMM_TRACE_PATH];  /* as configured */
static char scomm_trace_file[SCOMM_TRACE_PATH];  /* expanded, when open */
static FILE *scomm_trace_fp;
static long scomm_trace_end;   /* offset of the footer */
static int scomm_trace_events; /* events written to the file */
static int scomm_trace_rank = -1;

/* Expand the template for this process into out. */
static void scomm_trace_expand(const char *tmpl, char *out, size_t len)
{
    size_t o = 0, n;
    int subst = 0;
    const char *p;
    char num[32];

    for (p = tmpl; (*p != '\0') && (o + 1 < len); p++) {
        if ((p[0] == '%') && ((p[1] == 'r') || (p[1] == 'p'))) {
            snprintf(num, sizeof(num), "%d",
                     (p[1] == 'r') ? scomm_trace_rank : (int)getpid());
            n = strlen(num);
            n = SCOMM_MIN(n, len - 1 - o);
            memcpy(out + o, num, n);
            o += n;
            p++;
            subst = 1;
        } else if ((p[0] == '%') && (p[1] == '%')) {
            out[o++] = '%';
            p++;
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
    if (!subst) {
        n = strlen(out);
        if ((n > 5) && (strcmp(out + n - 5, ".json") == 0)) {
            out[n - 5] = '\0';
        }
        n = strlen(out);
        snprintf(out + n, len - n, ".rank%d.json", scomm_trace_rank);
    }
}

void scomm_trace_init_env(int rank)
{
    scomm_pval_t pv;
    const char *v;

    scomm_param_get_or_warn("SCOMM_TRACE", &pv);
    v = pv.text;
    pthread_mutex_lock(&scomm_trace_lock);
    scomm_trace_rank = rank;
    pthread_mutex_unlock(&scomm_trace_lock);
    if ((v[0] != '\0') && (strcmp(v, "0") != 0)) {
        if (scomm_trace_enable(1, v) != SCOMM_OK) {
            scomm_warn(SCOMM_SUB_TELEM, "SCOMM_TRACE=%s: %s", v,
                       scomm_last_error());
        }
    }
}

int scomm_trace_is_on(void)
{
    return (atomic_load(&scomm_tm_flags) & SCOMM_TM_F_TRACE) != 0;
}

const char *scomm_trace_path(void)
{
    /* Read by scomm_control_get; the template changes only under the
     * control call, which the caller serialises. */
    return (scomm_trace_tmpl[0] != '\0') ? scomm_trace_tmpl
                                          : "scomm_trace.json";
}

/* Lock held. Open the file and write the header, if not open yet. */
static int scomm_trace_open(void)
{
    if (scomm_trace_fp != NULL) {
        return 0;
    }
    scomm_trace_expand(scomm_trace_path(), scomm_trace_file,
                       sizeof(scomm_trace_file));
    scomm_trace_fp = fopen(scomm_trace_file, "w");
    if (scomm_trace_fp == NULL) {
        scomm_warn(SCOMM_SUB_TELEM, "trace file %s: %s", scomm_trace_file,
                   strerror(errno));
        return -1;
    }
    fprintf(scomm_trace_fp,
            "{\"displayTimeUnit\":\"ns\",\"otherData\":{\"library\":"
            "\"scomm\",\"clock\":\"CLOCK_MONOTONIC\"},\"traceEvents\":[\n"
            "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,"
            "\"args\":{\"name\":\"scomm rank %d (pid %d)\"}}",
            scomm_trace_rank, scomm_trace_rank, (int)getpid());
    scomm_trace_events = 1;
    scomm_trace_end    = ftell(scomm_trace_fp);
    scomm_info(SCOMM_SUB_TELEM, "trace file %s", scomm_trace_file);
    return 0;
}

static void scomm_trace_write_rec(FILE *f, const scomm_trace_rec_t *r)
{
    const scomm_tm_comm_t *tm = r->tm;
    uint64_t ts = scomm_tm_ticks_to_mono(r->t0);
    uint64_t du = scomm_tm_ticks_to_ns(r->t1 - r->t0);
    int i;

    if (r->op < 0) {
        fprintf(f, ",\n{\"name\":\"step\",\"cat\":\"step\",\"ph\":\"X\","
                "\"pid\":%d,\"tid\":%u,\"ts\":%llu.%03u,\"dur\":%llu.%03u,"
                "\"args\":{\"comm\":%u,\"comm_ns\":%llu}}",
                tm->wrank, tm->ctx, (unsigned long long)(ts / 1000),
                (unsigned)(ts % 1000), (unsigned long long)(du / 1000),
                (unsigned)(du % 1000), tm->ctx,
                (unsigned long long)r->bytes);
        return;
    }
    fprintf(f, ",\n{\"name\":\"%s\",\"cat\":\"%s\",\"ph\":\"X\",\"pid\":%d,"
            "\"tid\":%u,\"ts\":%llu.%03u,\"dur\":%llu.%03u,\"args\":{"
            "\"algo\":\"%s\",\"bytes\":%llu,\"comm\":%u,\"comm_size\":%d,"
            "\"transport\":\"%s\",\"status\":\"%s\",\"peers\":[",
            scomm_tm_op_name(r->op),
            (r->op >= SCOMM_TM_OP_SEND) ? "p2p" : "coll", tm->wrank,
            tm->ctx, (unsigned long long)(ts / 1000), (unsigned)(ts % 1000),
            (unsigned long long)(du / 1000), (unsigned)(du % 1000), r->algo,
            (unsigned long long)r->bytes, tm->ctx, tm->size, tm->transport,
            scomm_status_name((scomm_status_t)r->status));
    if (r->peer >= 0) {
        fprintf(f, "%d", r->peer);
    } else {
        for (i = 0; i < tm->npeers; i++) {
            fprintf(f, "%s%d", (i > 0) ? "," : "", tm->peers[i]);
        }
    }
    fprintf(f, "]}}");
}

/* Lock held. */
static void scomm_trace_flush_locked(void)
{
    size_t i;

    if ((scomm_trace_n == 0) && (scomm_trace_fp != NULL)) {
        return;
    }
    if ((scomm_trace_n == 0) && !scomm_trace_is_on()) {
        return;
    }
    if (scomm_trace_open() != 0) {
        scomm_trace_n = 0;
        return;
    }
    fseek(scomm_trace_fp, scomm_trace_end, SEEK_SET);
    for (i = 0; i < scomm_trace_n; i++) {
        scomm_trace_write_rec(scomm_trace_fp, &scomm_trace_buf[i]);
    }
    scomm_trace_events += (int)scomm_trace_n;
    scomm_trace_n   = 0;
    scomm_trace_end = ftell(scomm_trace_fp);
    fputs(SCOMM_TRACE_FOOTER, scomm_trace_fp);
    fflush(scomm_trace_fp);
}

void scomm_trace_flush(void)
{
    pthread_mutex_lock(&scomm_trace_lock);
    scomm_trace_flush_locked();
    pthread_mutex_unlock(&scomm_trace_lock);
}

void scomm_trace_add(const scomm_tm_comm_t *tm, int op, const char *algo,
                     uint64_t bytes, int peer, scomm_status_t status,
                     uint64_t t0, uint64_t t1)
{
    scomm_trace_rec_t *r;

    pthread_mutex_lock(&scomm_trace_lock);
    if (scomm_trace_buf != NULL) {
        if (scomm_trace_n == SCOMM_TRACE_RECS) {
            scomm_trace_flush_locked();
        }
        r         = &scomm_trace_buf[scomm_trace_n++];
        r->tm     = tm;
        r->algo   = algo;
        r->t0     = t0;
        r->t1     = t1;
        r->bytes  = bytes;
        r->op     = op;
        r->peer   = peer;
        r->status = (int32_t)status;
    }
    pthread_mutex_unlock(&scomm_trace_lock);
}

scomm_status_t scomm_trace_enable(int on, const char *path)
{
    scomm_status_t status = SCOMM_OK;

    pthread_mutex_lock(&scomm_trace_lock);
    if ((path != NULL) && (strcmp(path, scomm_trace_tmpl) != 0)) {
        if (strlen(path) >= sizeof(scomm_trace_tmpl)) {
            pthread_mutex_unlock(&scomm_trace_lock);
            return scomm_set_error(NULL, SCOMM_ERR_INVALID_ARG,
                                   "trace path is longer than %d bytes",
                                   SCOMM_TRACE_PATH - 1);
        }
        /* A new file: finish the old one. */
        scomm_trace_flush_locked();
        if (scomm_trace_fp != NULL) {
            fclose(scomm_trace_fp);
            scomm_trace_fp = NULL;
        }
        snprintf(scomm_trace_tmpl, sizeof(scomm_trace_tmpl), "%s", path);
    }
    if (on && (scomm_trace_buf == NULL)) {
        scomm_trace_buf = calloc(SCOMM_TRACE_RECS, sizeof(*scomm_trace_buf));
        if (scomm_trace_buf == NULL) {
            status = scomm_set_error(NULL, SCOMM_ERR_NO_MEMORY,
                                     "trace buffer: out of memory");
            on = 0;
        }
    }
    if (on) {
        atomic_fetch_or(&scomm_tm_flags, SCOMM_TM_F_TRACE);
    } else {
        atomic_fetch_and(&scomm_tm_flags, ~SCOMM_TM_F_TRACE);
        scomm_trace_flush_locked();
    }
    pthread_mutex_unlock(&scomm_trace_lock);
    return status;
}

/* A process that exits without destroying its communicators still gets
 * what it recorded (not after _exit or a crash: then the file holds what
 * the last flush wrote, still valid JSON). */
__attribute__((destructor)) static void scomm_trace_at_exit(void)
{
    scomm_trace_flush();
}
