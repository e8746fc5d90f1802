/*
 * fake_engine.c - host-memory collectives for the fake vendor libraries
 * (see fake_engine.h for the invariants): a shared-memory segment per
 * communicator, one data slot per rank, a generation barrier with a
 * deadline, and reductions computed element by element in double (floats)
 * or in 64-bit integers wrapped to the dtype.
 */
#include "fake_engine.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FK_HDR     (64u << 10)
#define FK_SLOT    (8u << 20)
#define FK_MAXP2P  64
#define FK_MAXRANK 16

typedef struct {
    int32_t  dst;
    int32_t  pad;
    uint64_t off;
    uint64_t bytes;
} fk_p2p_ent_t;

typedef struct {
    _Atomic uint32_t joined;
    _Atomic uint32_t bar_count;
    _Atomic uint32_t bar_gen;
    _Atomic uint32_t aborted;
    uint32_t         nsend[FK_MAXRANK];
    fk_p2p_ent_t     ent[FK_MAXRANK][FK_MAXP2P];
} fk_shared_t;

struct fk_comm {
    fk_shared_t   *sh;
    unsigned char *base;
    size_t         map_bytes;
    int            rank;
    int            size;
    char           name[FK_NAME_MAX]; /* until unlinked */
};

/* ---- logging ---- */

void fk_log(const char *env, const char *fmt, ...)
{
    const char *path = getenv(env);
    va_list ap;
    FILE *f;

    if ((path == NULL) || (path[0] == '\0')) {
        return;
    }
    f = fopen(path, "a");
    if (f == NULL) {
        return;
    }
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fclose(f);
}

int fk_knob(const char *env, const char *call)
{
    const char *v = getenv(env);
    size_t n = strlen(call);

    if ((v != NULL) && (strncmp(v, call, n) == 0) && (v[n] == ':')) {
        return atoi(v + n + 1);
    }
    return -1;
}

/* ---- minifloats ---- */

typedef struct {
    int eb, mb, ieee; /* exponent bits, mantissa bits, inf/nan like IEEE */
} fk_fmt_t;

static fk_fmt_t fk_fmt(int dt)
{
    fk_fmt_t f = {5, 10, 1};

    if (dt == FK_BF16) {
        f.eb = 8;
        f.mb = 7;
    } else if (dt == FK_E4M3) {
        f.eb   = 4;
        f.mb   = 3;
        f.ieee = 0; /* OCP e4m3fn: no inf, NaN is all ones */
    } else if (dt == FK_E5M2) {
        f.eb = 5;
        f.mb = 2;
    }
    return f;
}

uint32_t fk_encode(int dt, double x)
{
    fk_fmt_t f    = fk_fmt(dt);
    int bias      = (1 << (f.eb - 1)) - 1;
    int emaxfield = f.ieee ? (1 << f.eb) - 2 : (1 << f.eb) - 1;
    uint32_t sign = signbit(x) ? 1u << (f.eb + f.mb) : 0u;
    uint32_t allexp = ((1u << f.eb) - 1) << f.mb;
    double a = fabs(x), q;
    int e, field;

    if (isnan(x)) {
        return sign | allexp | ((1u << f.mb) - 1);
    }
    if (a == 0.0) {
        return sign;
    }
    frexp(a, &e);
    e -= 1; /* a = 1.m * 2^e */
    if (e < 1 - bias) {
        q = nearbyint(a / ldexp(1.0, 1 - bias - f.mb));
        if (q >= (double)(1u << f.mb)) {
            return sign | (1u << f.mb);
        }
        return sign | (uint32_t)q;
    }
    q = nearbyint(a / ldexp(1.0, e - f.mb));
    if (q >= (double)(2u << f.mb)) {
        e++;
        q = (double)(1u << f.mb);
    }
    field = e + bias;
    if ((field > emaxfield) ||
        (!f.ieee && (field == emaxfield) &&
         ((uint32_t)q - (1u << f.mb) == (1u << f.mb) - 1))) {
        return f.ieee ? (sign | allexp)
                      : (sign | allexp | ((1u << f.mb) - 2)); /* saturate */
    }
    return sign | ((uint32_t)field << f.mb) | ((uint32_t)q - (1u << f.mb));
}

double fk_decode(int dt, uint32_t bits)
{
    fk_fmt_t f = fk_fmt(dt);
    int bias   = (1 << (f.eb - 1)) - 1;
    uint32_t mant  = bits & ((1u << f.mb) - 1);
    uint32_t field = (bits >> f.mb) & ((1u << f.eb) - 1);
    double s = ((bits >> (f.eb + f.mb)) & 1u) ? -1.0 : 1.0;

    if (field == 0) {
        return s * ldexp((double)mant, 1 - bias - f.mb);
    }
    if (f.ieee && (field == (1u << f.eb) - 1)) {
        return (mant == 0) ? s * INFINITY : NAN;
    }
    if (!f.ieee && (field == (1u << f.eb) - 1) &&
        (mant == (1u << f.mb) - 1)) {
        return NAN;
    }
    return s * ldexp(1.0 + (double)mant / (double)(1u << f.mb),
                     (int)field - bias);
}

/* ---- element access ---- */

size_t fk_dtsize(int dt)
{
    static const size_t sz[FK_NDT] = {1, 1, 4, 4, 8, 8, 2, 4, 8, 2, 1, 1};

    return ((dt >= 0) && (dt < FK_NDT)) ? sz[dt] : 0;
}

static int fk_is_float(int dt)
{
    return (dt >= FK_F16);
}

static double fk_getf(int dt, const unsigned char *p)
{
    float f;
    double d;
    uint16_t h;

    switch (dt) {
    case FK_F32: memcpy(&f, p, 4); return f;
    case FK_F64: memcpy(&d, p, 8); return d;
    case FK_F16:
    case FK_BF16: memcpy(&h, p, 2); return fk_decode(dt, h);
    default: return fk_decode(dt, p[0]);
    }
}

static void fk_setf(int dt, unsigned char *p, double v)
{
    float f;
    uint16_t h;

    switch (dt) {
    case FK_F32: f = (float)v; memcpy(p, &f, 4); break;
    case FK_F64: memcpy(p, &v, 8); break;
    case FK_F16:
    case FK_BF16: h = (uint16_t)fk_encode(dt, v); memcpy(p, &h, 2); break;
    default: p[0] = (unsigned char)fk_encode(dt, v); break;
    }
}

static int64_t fk_geti(int dt, const unsigned char *p)
{
    int8_t i8; int32_t i32; int64_t i64; uint32_t u32; uint64_t u64;

    switch (dt) {
    case FK_I8: memcpy(&i8, p, 1); return i8;
    case FK_U8: return p[0];
    case FK_I32: memcpy(&i32, p, 4); return i32;
    case FK_U32: memcpy(&u32, p, 4); return u32;
    case FK_I64: memcpy(&i64, p, 8); return i64;
    default: memcpy(&u64, p, 8); return (int64_t)u64;
    }
}

static void fk_seti(int dt, unsigned char *p, int64_t v)
{
    memcpy(p, &v, fk_dtsize(dt)); /* little-endian truncation wraps */
}

static int fk_unsigned(int dt)
{
    return (dt == FK_U8) || (dt == FK_U32) || (dt == FK_U64);
}

/* Wrap v to dt's width, as a signed or unsigned value. */
static int64_t fk_wrap(int dt, int64_t v)
{
    unsigned char b[8] = {0};

    fk_seti(dt, b, v);
    return fk_geti(dt, b);
}

/* out[i] = op over ranks of slot_r[i] (rank order). */
static void fk_reduce_into(fk_comm_t *c, unsigned char *out, size_t off,
                           size_t n, int dt, int op)
{
    size_t es = fk_dtsize(dt), i;
    int r;

    for (i = 0; i < n; i++) {
        if (fk_is_float(dt)) {
            double acc = 0.0, v;

            for (r = 0; r < c->size; r++) {
                v = fk_getf(dt, c->base + FK_HDR + (size_t)r * FK_SLOT +
                                    off + i * es);
                if (r == 0) {
                    acc = v;
                } else if ((op == FK_SUM) || (op == FK_AVG)) {
                    acc += v;
                } else if (op == FK_PROD) {
                    acc *= v;
                } else if (op == FK_MAX) {
                    acc = (v > acc) ? v : acc;
                } else {
                    acc = (v < acc) ? v : acc;
                }
            }
            if (op == FK_AVG) {
                acc /= c->size;
            }
            fk_setf(dt, out + i * es, acc);
        } else {
            int64_t acc = 0, v;
            uint64_t ua, uv;

            for (r = 0; r < c->size; r++) {
                v = fk_geti(dt, c->base + FK_HDR + (size_t)r * FK_SLOT +
                                    off + i * es);
                ua = (uint64_t)acc;
                uv = (uint64_t)v;
                if (r == 0) {
                    acc = v;
                } else if ((op == FK_SUM) || (op == FK_AVG)) {
                    acc = fk_wrap(dt, (int64_t)(ua + uv));
                } else if (op == FK_PROD) {
                    acc = fk_wrap(dt, (int64_t)(ua * uv));
                } else if (fk_unsigned(dt)) {
                    acc = (int64_t)(((op == FK_MAX) == (uv > ua)) ? uv : ua);
                } else {
                    acc = ((op == FK_MAX) == (v > acc)) ? v : acc;
                }
            }
            if (op == FK_AVG) {
                acc = fk_unsigned(dt)
                          ? (int64_t)((uint64_t)acc / (uint64_t)c->size)
                          : acc / c->size;
            }
            fk_seti(dt, out + i * es, acc);
        }
    }
}

/* ---- segment and barrier ---- */

void fk_make_name(char *name)
{
    static _Atomic unsigned counter;
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(name, FK_NAME_MAX, "/scomm_fake_%d_%u_%lx", (int)getpid(),
             atomic_fetch_add(&counter, 1u),
             (unsigned long)(ts.tv_nsec ^ ts.tv_sec));
}

static uint64_t fk_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void fk_pause(void)
{
    struct timespec ts = {0, 50000};

    nanosleep(&ts, NULL);
}

static int fk_barrier(fk_comm_t *c)
{
    fk_shared_t *sh = c->sh;
    uint32_t gen    = atomic_load(&sh->bar_gen);
    uint64_t end    = fk_now_ms() + FK_WAIT_MS;

    if (atomic_fetch_add(&sh->bar_count, 1u) == (uint32_t)c->size - 1) {
        atomic_store(&sh->bar_count, 0u);
        atomic_fetch_add(&sh->bar_gen, 1u);
        return FK_OK;
    }
    while (atomic_load(&sh->bar_gen) == gen) {
        if (atomic_load(&sh->aborted) || (fk_now_ms() > end)) {
            atomic_store(&sh->aborted, 1u);
            return FK_ETIMEOUT;
        }
        fk_pause();
    }
    return FK_OK;
}

int fk_init_start(fk_comm_t **out, const char *name, int nranks, int rank)
{
    fk_comm_t *c;
    size_t bytes;
    int fd;
    void *p;

    if ((nranks < 1) || (nranks > FK_MAXRANK) || (rank < 0) ||
        (rank >= nranks) || (strncmp(name, "/scomm_fake_", 12) != 0)) {
        return FK_EINVAL;
    }
    bytes = FK_HDR + (size_t)nranks * FK_SLOT;
    fd    = shm_open(name, O_CREAT | O_RDWR, 0600);
    if ((fd < 0) || (ftruncate(fd, (off_t)bytes) != 0)) {
        if (fd >= 0) {
            close(fd);
        }
        return FK_ESYS;
    }
    p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    c = calloc(1, sizeof(*c));
    if ((p == MAP_FAILED) || (c == NULL)) {
        free(c);
        return FK_ESYS;
    }
    c->sh        = p;
    c->base      = p;
    c->map_bytes = bytes;
    c->rank      = rank;
    c->size      = nranks;
    snprintf(c->name, sizeof(c->name), "%s", name);
    atomic_fetch_add(&c->sh->joined, 1u);
    *out = c;
    return FK_OK;
}

int fk_init_ready(fk_comm_t *c)
{
    if (atomic_load(&c->sh->joined) < (uint32_t)c->size) {
        return 0;
    }
    if ((c->rank == 0) && (c->name[0] != '\0')) {
        shm_unlink(c->name); /* every rank has it mapped (invariant 1) */
        c->name[0] = '\0';
    }
    return 1;
}

int fk_init(fk_comm_t **out, const char *name, int nranks, int rank)
{
    uint64_t end = fk_now_ms() + FK_WAIT_MS;
    fk_comm_t *c = NULL;
    int rc = fk_init_start(&c, name, nranks, rank);

    if (rc != FK_OK) {
        return rc;
    }
    while (!fk_init_ready(c)) {
        if (fk_now_ms() > end) {
            fk_abort(c);
            return FK_ETIMEOUT;
        }
        fk_pause();
    }
    *out = c;
    return FK_OK;
}

static unsigned char *fk_slot(fk_comm_t *c, int r)
{
    return c->base + FK_HDR + (size_t)r * FK_SLOT;
}

/* Copy in, barrier, compute (fn), barrier (invariant 2). */
static int fk_put(fk_comm_t *c, const void *s, size_t bytes)
{
    if (bytes > FK_SLOT) {
        return FK_ESIZE;
    }
    if (bytes > 0) {
        memcpy(fk_slot(c, c->rank), s, bytes);
    }
    return fk_barrier(c);
}

static int fk_check(int dt, int op)
{
    return ((dt < 0) || (dt >= FK_NDT) || (op < 0) || (op >= FK_NOP))
               ? FK_EINVAL : FK_OK;
}

int fk_allreduce(fk_comm_t *c, const void *s, void *r, size_t n, int dt,
                 int op)
{
    int rc = fk_check(dt, op);

    if ((rc != FK_OK) || ((rc = fk_put(c, s, n * fk_dtsize(dt))) != FK_OK)) {
        return rc;
    }
    fk_reduce_into(c, r, 0, n, dt, op);
    return fk_barrier(c);
}

int fk_reduce(fk_comm_t *c, const void *s, void *r, size_t n, int dt,
              int op, int root)
{
    int rc = fk_check(dt, op);

    if ((root < 0) || (root >= c->size)) {
        return FK_EINVAL;
    }
    if ((rc != FK_OK) || ((rc = fk_put(c, s, n * fk_dtsize(dt))) != FK_OK)) {
        return rc;
    }
    if (c->rank == root) {
        fk_reduce_into(c, r, 0, n, dt, op);
    }
    return fk_barrier(c);
}

int fk_reducescatter(fk_comm_t *c, const void *s, void *r, size_t n,
                     int dt, int op)
{
    size_t es = fk_dtsize(dt);
    int rc    = fk_check(dt, op);

    if ((rc != FK_OK) ||
        ((rc = fk_put(c, s, n * es * (size_t)c->size)) != FK_OK)) {
        return rc;
    }
    fk_reduce_into(c, r, (size_t)c->rank * n * es, n, dt, op);
    return fk_barrier(c);
}

int fk_allgather(fk_comm_t *c, const void *s, void *r, size_t n, int dt)
{
    size_t bytes = n * fk_dtsize(dt);
    int rc = fk_check(dt, FK_SUM), q;

    if ((rc != FK_OK) || ((rc = fk_put(c, s, bytes)) != FK_OK)) {
        return rc;
    }
    for (q = 0; (q < c->size) && (bytes > 0); q++) {
        memcpy((unsigned char *)r + (size_t)q * bytes, fk_slot(c, q), bytes);
    }
    return fk_barrier(c);
}

int fk_bcast(fk_comm_t *c, const void *s, void *r, size_t n, int dt,
             int root)
{
    size_t bytes = n * fk_dtsize(dt);
    int rc = fk_check(dt, FK_SUM);

    if ((root < 0) || (root >= c->size)) {
        return FK_EINVAL;
    }
    if ((rc != FK_OK) ||
        ((rc = fk_put(c, s, (c->rank == root) ? bytes : 0)) != FK_OK)) {
        return rc;
    }
    if (bytes > 0) {
        memmove(r, fk_slot(c, root), bytes);
    }
    return fk_barrier(c);
}

int fk_alltoall(fk_comm_t *c, const void *s, void *r, size_t n, int dt)
{
    size_t bytes = n * fk_dtsize(dt);
    int rc = fk_check(dt, FK_SUM), q;

    if ((rc != FK_OK) ||
        ((rc = fk_put(c, s, bytes * (size_t)c->size)) != FK_OK)) {
        return rc;
    }
    for (q = 0; (q < c->size) && (bytes > 0); q++) {
        memcpy((unsigned char *)r + (size_t)q * bytes,
               fk_slot(c, q) + (size_t)c->rank * bytes, bytes);
    }
    return fk_barrier(c);
}

/* ---- grouped point-to-point ---- */

typedef struct {
    int         is_send;
    const void *buf;
    size_t      bytes;
    int         peer;
} fk_gop_t;

static _Thread_local int        fk_depth;
static _Thread_local fk_comm_t *fk_gcomm;
static _Thread_local fk_gop_t   fk_gops[2 * FK_MAXP2P];
static _Thread_local int        fk_ngops;
static _Thread_local int        fk_gerr;

void fk_group_start(void)
{
    if (fk_depth++ == 0) {
        fk_gcomm = NULL;
        fk_ngops = 0;
        fk_gerr  = FK_OK;
    }
}

int fk_group_depth(void)
{
    return fk_depth;
}

int fk_group_add(fk_comm_t *c, int is_send, const void *buf, size_t bytes,
                 int peer)
{
    if ((fk_depth == 0) || (peer < 0) || (peer >= c->size) ||
        ((fk_gcomm != NULL) && (fk_gcomm != c)) ||
        (fk_ngops >= 2 * FK_MAXP2P)) {
        fk_gerr = FK_EINVAL;
        return FK_EINVAL;
    }
    fk_gcomm = c;
    fk_gops[fk_ngops].is_send = is_send;
    fk_gops[fk_ngops].buf     = buf;
    fk_gops[fk_ngops].bytes   = bytes;
    fk_gops[fk_ngops].peer    = peer;
    fk_ngops++;
    return FK_OK;
}

int fk_group_end(void)
{
    fk_comm_t *c = fk_gcomm;
    fk_shared_t *sh;
    uint32_t seen[FK_MAXRANK] = {0}, k;
    uint64_t off = 0;
    int i, rc, nsend = 0;

    if ((fk_depth == 0) || (--fk_depth > 0)) {
        return (fk_depth < 0) ? FK_EINVAL : FK_OK;
    }
    if ((fk_gerr != FK_OK) || (c == NULL)) {
        return fk_gerr;
    }
    sh = c->sh;
    for (i = 0; i < fk_ngops; i++) {
        if (!fk_gops[i].is_send) {
            continue;
        }
        if (off + fk_gops[i].bytes > FK_SLOT) {
            return FK_ESIZE;
        }
        memcpy(fk_slot(c, c->rank) + off, fk_gops[i].buf, fk_gops[i].bytes);
        sh->ent[c->rank][nsend].dst   = fk_gops[i].peer;
        sh->ent[c->rank][nsend].off   = off;
        sh->ent[c->rank][nsend].bytes = fk_gops[i].bytes;
        off += fk_gops[i].bytes;
        nsend++;
    }
    sh->nsend[c->rank] = (uint32_t)nsend;
    rc = fk_barrier(c);
    /* The k-th receive from src matches src's k-th send to this rank. */
    for (i = 0; (i < fk_ngops) && (rc == FK_OK); i++) {
        int src = fk_gops[i].peer, found = 0;
        uint32_t nth = 0;

        if (fk_gops[i].is_send) {
            continue;
        }
        for (k = 0; k < sh->nsend[src]; k++) {
            if (sh->ent[src][k].dst != c->rank) {
                continue;
            }
            if (nth++ == seen[src]) {
                if (sh->ent[src][k].bytes != fk_gops[i].bytes) {
                    rc = FK_EINVAL;
                    break;
                }
                memcpy((void *)fk_gops[i].buf,
                       fk_slot(c, src) + sh->ent[src][k].off,
                       fk_gops[i].bytes);
                seen[src]++;
                found = 1;
                break;
            }
        }
        if ((rc == FK_OK) && !found) {
            rc = FK_EINVAL;
        }
    }
    if (fk_barrier(c) != FK_OK) {
        rc = FK_ETIMEOUT;
    }
    return rc;
}

/* ---- lifetime ---- */

void fk_abort(fk_comm_t *c)
{
    if (c != NULL) {
        atomic_store(&c->sh->aborted, 1u);
        munmap(c->base, c->map_bytes);
        free(c);
    }
}

void fk_destroy(fk_comm_t *c)
{
    if (c != NULL) {
        munmap(c->base, c->map_bytes);
        free(c);
    }
}

int fk_rank(const fk_comm_t *c)
{
    return c->rank;
}
