/*
 * fake_engine.c - the collectives of the fake vendor libraries (see
 * fake_engine.h for the invariants): a shared-memory segment per
 * communicator with one data slot per rank, a generation barrier with a
 * deadline, reductions computed element by element in double (floats) or
 * in 64-bit integers wrapped to the dtype, a byte ring per ordered pair of
 * ranks for point-to-point; and the vendor half that checks a call,
 * queues it on a fake stream as a kernel and runs it there.
 */
#include "fake_engine.h"
#include "fake_device.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
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
#define FK_RING    (256u << 10) /* bytes of one pair's ring */
#define FK_PAIR    (FK_RING + 128u)
#define FK_MAXRANK 16
#define FK_GROUP   512          /* calls in one group */

typedef struct {
    _Atomic uint32_t joined;
    _Atomic uint32_t bar_count;
    _Atomic uint32_t bar_gen;
    _Atomic uint32_t aborted;
} fk_shared_t;

/* The ring from rank a to rank b: a writes head, b writes tail. */
typedef struct {
    _Atomic uint64_t head;
    char             pad0[56];
    _Atomic uint64_t tail;
    char             pad1[56];
} fk_ring_t;

typedef struct fk_comm {
    fk_shared_t   *sh;
    unsigned char *base;
    size_t         map_bytes;
    int            rank;
    int            size;
    char           name[FK_NAME_MAX]; /* until unlinked */
    _Atomic uint32_t aborted_here;    /* fkv_abort in this process */
} fk_comm_t;

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
    struct timespec ts = {0, 20000};

    nanosleep(&ts, NULL);
}

/* The shared flag is a wait given up (FK_WAIT_MS) or an init that failed:
 * every rank stops. An abort stops only this process's kernels: a peer's
 * kernel waiting on this rank goes on waiting, as NCCL's do, until its own
 * process aborts (invariant 5). */
static int fk_aborted(const fk_comm_t *c)
{
    return (atomic_load(&c->sh->aborted) != 0) ||
           (atomic_load(&c->aborted_here) != 0);
}

static int fk_barrier(fk_comm_t *c)
{
    fk_shared_t *sh = c->sh;
    uint32_t gen    = atomic_load(&sh->bar_gen);
    uint64_t end    = fk_now_ms() + FK_WAIT_MS;

    if (fk_aborted(c)) {
        return FK_EABORT;
    }
    if (atomic_fetch_add(&sh->bar_count, 1u) == (uint32_t)c->size - 1) {
        atomic_store(&sh->bar_count, 0u);
        atomic_fetch_add(&sh->bar_gen, 1u);
        return FK_OK;
    }
    while (atomic_load(&sh->bar_gen) == gen) {
        if (fk_aborted(c)) {
            return FK_EABORT;
        }
        if (fk_now_ms() > end) {
            atomic_store(&sh->aborted, 1u);
            return FK_ETIMEOUT;
        }
        fk_pause();
    }
    return FK_OK;
}

static int fk_init_start(fk_comm_t **out, const char *name, int nranks,
                         int rank)
{
    fk_comm_t *c;
    size_t bytes;
    int fd;
    void *p;

    if ((nranks < 1) || (nranks > FK_MAXRANK) || (rank < 0) ||
        (rank >= nranks) || (strncmp(name, "/scomm_fake_", 12) != 0)) {
        return FK_EINVAL;
    }
    bytes = FK_HDR + (size_t)nranks * FK_SLOT +
            (size_t)nranks * (size_t)nranks * FK_PAIR;
    fd = shm_open(name, O_CREAT | O_RDWR, 0600);
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
        if (p != MAP_FAILED) {
            munmap(p, bytes);
        }
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

static int fk_init_ready(fk_comm_t *c)
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

static void fk_release(fk_comm_t *c)
{
    if (c != NULL) {
        if (c->name[0] != '\0') {
            shm_unlink(c->name);
        }
        munmap(c->base, c->map_bytes);
        free(c);
    }
}

static unsigned char *fk_slot(fk_comm_t *c, int r)
{
    return c->base + FK_HDR + (size_t)r * FK_SLOT;
}

/* Copy in, barrier, compute, barrier (invariant 3). */
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

static int fk_allreduce(fk_comm_t *c, const void *s, void *r, size_t n,
                        int dt, int op)
{
    int rc = fk_put(c, s, n * fk_dtsize(dt));

    if (rc != FK_OK) {
        return rc;
    }
    fk_reduce_into(c, r, 0, n, dt, op);
    return fk_barrier(c);
}

static int fk_reduce(fk_comm_t *c, const void *s, void *r, size_t n, int dt,
                     int op, int root)
{
    int rc = fk_put(c, s, n * fk_dtsize(dt));

    if (rc != FK_OK) {
        return rc;
    }
    if (c->rank == root) {
        fk_reduce_into(c, r, 0, n, dt, op);
    }
    return fk_barrier(c);
}

static int fk_reducescatter(fk_comm_t *c, const void *s, void *r, size_t n,
                            int dt, int op)
{
    size_t es = fk_dtsize(dt);
    int rc    = fk_put(c, s, n * es * (size_t)c->size);

    if (rc != FK_OK) {
        return rc;
    }
    fk_reduce_into(c, r, (size_t)c->rank * n * es, n, dt, op);
    return fk_barrier(c);
}

static int fk_allgather(fk_comm_t *c, const void *s, void *r, size_t n,
                        int dt)
{
    size_t bytes = n * fk_dtsize(dt);
    int rc = fk_put(c, s, bytes), q;

    if (rc != FK_OK) {
        return rc;
    }
    for (q = 0; (q < c->size) && (bytes > 0); q++) {
        memcpy((unsigned char *)r + (size_t)q * bytes, fk_slot(c, q), bytes);
    }
    return fk_barrier(c);
}

static int fk_bcast(fk_comm_t *c, const void *s, void *r, size_t n, int dt,
                    int root)
{
    size_t bytes = n * fk_dtsize(dt);
    int rc = fk_put(c, s, (c->rank == root) ? bytes : 0);

    if (rc != FK_OK) {
        return rc;
    }
    if (bytes > 0) {
        memmove(r, fk_slot(c, root), bytes);
    }
    return fk_barrier(c);
}

static int fk_alltoall(fk_comm_t *c, const void *s, void *r, size_t n,
                       int dt)
{
    size_t bytes = n * fk_dtsize(dt);
    int rc = fk_put(c, s, bytes * (size_t)c->size), q;

    if (rc != FK_OK) {
        return rc;
    }
    for (q = 0; (q < c->size) && (bytes > 0); q++) {
        memcpy((unsigned char *)r + (size_t)q * bytes,
               fk_slot(c, q) + (size_t)c->rank * bytes, bytes);
    }
    return fk_barrier(c);
}

/* ---- point-to-point rings (invariant 3) ---- */

static fk_ring_t *fk_ring(fk_comm_t *c, int from, int to)
{
    return (fk_ring_t *)(c->base + FK_HDR + (size_t)c->size * FK_SLOT +
                         ((size_t)from * (size_t)c->size + (size_t)to) *
                             FK_PAIR);
}

/* Copy up to n bytes into the ring; returns the bytes written. */
static size_t fk_ring_write(fk_ring_t *g, const unsigned char *src, size_t n)
{
    unsigned char *data = (unsigned char *)(g + 1);
    uint64_t head = atomic_load_explicit(&g->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&g->tail, memory_order_acquire);
    size_t room = FK_RING - (size_t)(head - tail), k, off, first;

    k = (n < room) ? n : room;
    if (k == 0) {
        return 0;
    }
    off   = (size_t)(head % FK_RING);
    first = (k < FK_RING - off) ? k : FK_RING - off;
    memcpy(data + off, src, first);
    memcpy(data, src + first, k - first);
    atomic_store_explicit(&g->head, head + k, memory_order_release);
    return k;
}

/* Copy up to n bytes out of the ring; returns the bytes read. */
static size_t fk_ring_read(fk_ring_t *g, unsigned char *dst, size_t n)
{
    unsigned char *data = (unsigned char *)(g + 1);
    uint64_t tail = atomic_load_explicit(&g->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&g->head, memory_order_acquire);
    size_t avail = (size_t)(head - tail), k, off, first;

    k = (n < avail) ? n : avail;
    if (k == 0) {
        return 0;
    }
    off   = (size_t)(tail % FK_RING);
    first = (k < FK_RING - off) ? k : FK_RING - off;
    memcpy(dst, data + off, first);
    memcpy(dst + first, data, k - first);
    atomic_store_explicit(&g->tail, tail + k, memory_order_release);
    return k;
}

typedef struct {
    int            is_send;
    int            peer;
    unsigned char *buf;   /* writable alias */
    size_t         bytes;
    size_t         off;   /* payload moved so far */
    int            hdr;   /* the 8-byte length went through */
    int            done;
} fk_p2p_t;

/* One step of o; returns bytes moved, or -1 (a size mismatch). */
static long fk_p2p_step(fk_comm_t *c, fk_p2p_t *o)
{
    uint64_t len = o->bytes;
    size_t k, moved = 0;

    if (o->is_send) {
        fk_ring_t *g = fk_ring(c, c->rank, o->peer);

        if (!o->hdr) {
            if (FK_RING - (size_t)(atomic_load(&g->head) -
                                   atomic_load(&g->tail)) < sizeof(len)) {
                return 0;
            }
            fk_ring_write(g, (const unsigned char *)&len, sizeof(len));
            o->hdr = 1;
            moved  = sizeof(len);
        }
        k = fk_ring_write(g, o->buf + o->off, o->bytes - o->off);
        o->off += k;
        moved += k;
    } else {
        fk_ring_t *g = fk_ring(c, o->peer, c->rank);

        if (!o->hdr) {
            if ((size_t)(atomic_load(&g->head) - atomic_load(&g->tail)) <
                sizeof(len)) {
                return 0;
            }
            fk_ring_read(g, (unsigned char *)&len, sizeof(len));
            if (len != o->bytes) {
                return -1;
            }
            o->hdr = 1;
            moved  = sizeof(len);
        }
        k = fk_ring_read(g, o->buf + o->off, o->bytes - o->off);
        o->off += k;
        moved += k;
    }
    o->done = o->hdr && (o->off == o->bytes);
    return (long)moved;
}

/* Every send and receive of a group, together, in order per peer and
 * direction. */
static int fk_p2p_run(fk_comm_t *c, fk_p2p_t *ops, int n)
{
    uint64_t end = fk_now_ms() + FK_WAIT_MS;
    int left = n, i, j, blocked;
    long moved, any;

    while (left > 0) {
        any = 0;
        for (i = 0; i < n; i++) {
            if (ops[i].done) {
                continue;
            }
            for (j = 0, blocked = 0; (j < i) && !blocked; j++) {
                blocked = !ops[j].done && (ops[j].peer == ops[i].peer) &&
                          (ops[j].is_send == ops[i].is_send);
            }
            if (blocked) {
                continue;
            }
            moved = fk_p2p_step(c, &ops[i]);
            if (moved < 0) {
                return FK_ESIZE;
            }
            any += moved;
            left -= ops[i].done;
        }
        if (any == 0) {
            if (fk_aborted(c)) {
                return FK_EABORT;
            }
            if (fk_now_ms() > end) {
                atomic_store(&c->sh->aborted, 1u);
                return FK_ETIMEOUT;
            }
            fk_pause();
        }
    }
    return FK_OK;
}

/* ---- the vendor half ---- */

struct fkv_comm {
    fk_comm_t      *fk;
    fkv_codes_t     codes;
    char            prefix[24];
    _Atomic int     refs;     /* the API's, and one per queued kernel */
    _Atomic int     async;    /* the asynchronous error */
    _Atomic int     pending;  /* non-blocking creation not finished */
    pthread_mutex_t exec;     /* one kernel of this communicator at once */
    pthread_mutex_t lock;     /* last */
    char            last[192];
};

typedef struct {
    int            kind;
    unsigned char *ws;
    unsigned char *wr;
    size_t         n;
    int            dt, op, root, peer;
} fkv_xop_t;

typedef struct {
    fkv_comm_t *c;
    int         hang;
    int         async_code; /* <prefix>_ASYNC for the call, or -1 */
    char        call[48];
    int         nops;
    fkv_xop_t   ops[];
} fkv_launch_t;

static void fkv_knob_name(const fkv_comm_t *c, const char *what, char *buf,
                          size_t len)
{
    snprintf(buf, len, "%s_%s", c->prefix, what);
}

static void fkv_set_last(fkv_comm_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void fkv_set_last(fkv_comm_t *c, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&c->lock);
    va_start(ap, fmt);
    vsnprintf(c->last, sizeof(c->last), fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&c->lock);
}

/* The first asynchronous error wins (invariant 5). */
static void fkv_fail(fkv_comm_t *c, int code, const char *call,
                     const char *why)
{
    int ok = c->codes.ok;

    if (atomic_compare_exchange_strong(&c->async, &ok, code)) {
        fkv_set_last(c, "fake: %s failed on the device: %s", call, why);
    }
}

static void fkv_unref(fkv_comm_t *c)
{
    if (atomic_fetch_sub(&c->refs, 1) == 1) {
        fk_release(c->fk);
        pthread_mutex_destroy(&c->exec);
        pthread_mutex_destroy(&c->lock);
        free(c);
    }
}

void fkv_log(fkv_comm_t *c, const char *what)
{
    char env[48];

    fkv_knob_name(c, "LOG", env, sizeof(env));
    fk_log(env, "%s rank %d", what, c->fk->rank);
}

int fkv_init(fkv_comm_t **out, const char *prefix, const fkv_codes_t *codes,
             const char *call, const char *name, int nranks, int rank,
             int nonblocking)
{
    uint64_t end = fk_now_ms() + FK_WAIT_MS;
    fkv_comm_t *c;
    char env[48];
    int code, rc;

    snprintf(env, sizeof(env), "%s_FAIL", prefix);
    if ((code = fk_knob(env, call)) >= 0) {
        return code;
    }
    if ((c = calloc(1, sizeof(*c))) == NULL) {
        return codes->internal;
    }
    c->codes = *codes;
    snprintf(c->prefix, sizeof(c->prefix), "%s", prefix);
    atomic_store(&c->refs, 1);
    atomic_store(&c->async, codes->ok);
    pthread_mutex_init(&c->exec, NULL);
    pthread_mutex_init(&c->lock, NULL);
    rc = fk_init_start(&c->fk, name, nranks, rank);
    if (rc != FK_OK) {
        pthread_mutex_destroy(&c->exec);
        pthread_mutex_destroy(&c->lock);
        free(c);
        return (rc == FK_EINVAL) ? codes->inval : codes->internal;
    }
    if (nonblocking) {
        atomic_store(&c->pending, 1); /* fkv_async polls */
    } else {
        while (!fk_init_ready(c->fk)) {
            if (fk_now_ms() > end) {
                atomic_store(&c->fk->sh->aborted, 1u);
                fkv_unref(c);
                return codes->remote;
            }
            fk_pause();
        }
    }
    snprintf(env, sizeof(env), "%s_LOG", prefix);
    fk_log(env, "init rank %d of %d nonblocking=%d", rank, nranks,
           nonblocking);
    *out = c;
    return nonblocking ? codes->inprogress : codes->ok;
}

int fkv_async(fkv_comm_t *c)
{
    if (atomic_load(&c->pending)) {
        pthread_mutex_lock(&c->lock); /* the watchdog polls too */
        if (atomic_load(&c->pending) && fk_init_ready(c->fk)) {
            atomic_store(&c->pending, 0);
        }
        pthread_mutex_unlock(&c->lock);
        return c->codes.inprogress; /* at least one in-progress answer */
    }
    return atomic_load(&c->async);
}

const char *fkv_last(fkv_comm_t *c)
{
    static _Thread_local char copy[192];

    pthread_mutex_lock(&c->lock);
    snprintf(copy, sizeof(copy), "%s", c->last);
    pthread_mutex_unlock(&c->lock);
    return copy;
}

int fkv_rank(const fkv_comm_t *c)
{
    return c->fk->rank;
}

void fkv_abort(fkv_comm_t *c)
{
    fkv_log(c, "abort");
    atomic_store(&c->fk->aborted_here, 1u); /* here only: invariant 5 */
    fkv_unref(c);
}

void fkv_destroy(fkv_comm_t *c)
{
    fkv_log(c, "destroy");
    fkv_unref(c);
}

/* The kernel: run the calls of one launch (invariants 3, 5). */
static void fkv_run(void *arg)
{
    fkv_launch_t *L = arg;
    fkv_comm_t *c   = L->c;
    fk_comm_t *fk   = c->fk;
    fk_p2p_t p2p[FK_GROUP];
    int i, np = 0, rc = FK_OK;

    pthread_mutex_lock(&c->exec);
    if (L->hang) {
        while (!fk_aborted(fk)) {
            fk_pause(); /* a kernel that never ends: only abort ends it */
        }
    }
    for (i = 0; (i < L->nops) && (rc == FK_OK); i++) {
        fkv_xop_t *o = &L->ops[i];

        switch (o->kind) {
        case FKV_ALLREDUCE:
            rc = fk_allreduce(fk, o->ws, o->wr, o->n, o->dt, o->op);
            break;
        case FKV_BCAST:
            rc = fk_bcast(fk, o->ws, o->wr, o->n, o->dt, o->root);
            break;
        case FKV_REDUCE:
            rc = fk_reduce(fk, o->ws, o->wr, o->n, o->dt, o->op, o->root);
            break;
        case FKV_ALLGATHER:
            rc = fk_allgather(fk, o->ws, o->wr, o->n, o->dt);
            break;
        case FKV_REDUCESCATTER:
            rc = fk_reducescatter(fk, o->ws, o->wr, o->n, o->dt, o->op);
            break;
        case FKV_ALLTOALL:
            rc = fk_alltoall(fk, o->ws, o->wr, o->n, o->dt);
            break;
        default: /* FKV_SEND, FKV_RECV: below, together */
            memset(&p2p[np], 0, sizeof(p2p[np]));
            p2p[np].is_send = (o->kind == FKV_SEND);
            p2p[np].peer    = o->peer;
            p2p[np].buf     = p2p[np].is_send ? o->ws : o->wr;
            p2p[np].bytes   = o->n * fk_dtsize(o->dt);
            np++;
            break;
        }
    }
    if ((rc == FK_OK) && (np > 0)) {
        rc = fk_p2p_run(fk, p2p, np);
    }
    switch (rc) {
    case FK_OK:
        if (L->async_code >= 0) {
            fkv_fail(c, L->async_code, L->call, "injected asynchronous "
                     "error");
        }
        break;
    case FK_ESIZE:
        fkv_fail(c, c->codes.remote, L->call, "the peer's size differs, "
                 "or more than the fake's 8 MiB per rank");
        break;
    case FK_EABORT:
        fkv_fail(c, c->codes.remote, L->call, "the communicator was "
                 "aborted");
        break;
    default:
        fkv_fail(c, c->codes.remote, L->call, "a peer did not come");
        break;
    }
    pthread_mutex_unlock(&c->exec);
}

static void fkv_fini(void *arg)
{
    fkv_launch_t *L = arg;

    fkv_unref(L->c);
    free(L);
}

/* Sizes of o's send and receive buffers in bytes. */
static void fkv_sizes(const fkv_comm_t *c, const fkv_op_t *o, size_t *sb,
                      size_t *rb)
{
    size_t e = o->n * fk_dtsize(o->dt), p = (size_t)c->fk->size;

    *sb = *rb = e;
    switch (o->kind) {
    case FKV_ALLGATHER:     *rb = e * p; break;
    case FKV_REDUCESCATTER: *sb = e * p; break;
    case FKV_ALLTOALL:      *sb = *rb = e * p; break;
    case FKV_SEND:          *rb = 0; break;
    case FKV_RECV:          *sb = 0; break;
    case FKV_REDUCE:
        if (c->fk->rank != o->root) {
            *rb = 0;
        }
        break;
    case FKV_BCAST:
        if (c->fk->rank != o->root) {
            *sb = 0;
        }
        break;
    default:
        break;
    }
}

/* Device memory or nothing (invariant 2). */
static int fkv_buffer(fkv_comm_t *c, const char *call, const char *what,
                      const void *p, size_t bytes, unsigned char **w)
{
    void *wp = NULL;
    int kind, rc;

    *w = NULL;
    if (bytes == 0) {
        return 0;
    }
    rc = fkd_translate(p, bytes, &wp, &kind);
    if ((rc != FKD_OK) || (kind == FKD_MEM_HOST)) {
        fkv_set_last(c, "fake: %s: %s %p (%zu bytes) is not %s", call, what,
                     p, bytes, (rc != FKD_OK) ? "inside one allocation"
                                              : "device memory");
        return -1;
    }
    *w = wp;
    return 0;
}

/* The thread's open group (invariant 4). */
static _Thread_local int fkv_depth;
static _Thread_local int fkv_ngroup;
static _Thread_local struct {
    fkv_comm_t *c;
    void       *stream;
    fkv_xop_t   x;
    char        call[48];
} fkv_group[FK_GROUP];

void fkv_group_start(void)
{
    if (fkv_depth++ == 0) {
        fkv_ngroup = 0;
    }
}

static int fkv_launch(fkv_comm_t *c, void *stream, const char *call,
                      const fkv_xop_t *ops, int nops)
{
    fkv_launch_t *L;
    char env[48];
    const char *hang;

    L = calloc(1, sizeof(*L) + (size_t)nops * sizeof(fkv_xop_t));
    if (L == NULL) {
        return c->codes.internal;
    }
    L->c    = c;
    L->nops = nops;
    memcpy(L->ops, ops, (size_t)nops * sizeof(fkv_xop_t));
    snprintf(L->call, sizeof(L->call), "%s", call);
    fkv_knob_name(c, "HANG", env, sizeof(env));
    hang          = getenv(env);
    L->hang       = (hang != NULL) && (strcmp(hang, call) == 0);
    fkv_knob_name(c, "ASYNC", env, sizeof(env));
    L->async_code = fk_knob(env, call);
    atomic_fetch_add(&c->refs, 1);
    if (fkd_launch(stream, fkv_run, fkv_fini, L) != FKD_OK) {
        fkv_set_last(c, "fake: %s: the stream %p is not a stream", call,
                     stream);
        atomic_fetch_sub(&c->refs, 1);
        free(L);
        return c->codes.inval;
    }
    return c->codes.ok;
}

int fkv_group_end(void)
{
    fkv_xop_t ops[FK_GROUP];
    int i, j, n, done[FK_GROUP] = {0}, rc, first = 0;

    if (fkv_depth == 0) {
        return -1;
    }
    if (--fkv_depth > 0) {
        return 0;
    }
    /* One launch per communicator, on its first call's stream. */
    for (i = 0; i < fkv_ngroup; i++) {
        if (done[i]) {
            continue;
        }
        for (j = i, n = 0; j < fkv_ngroup; j++) {
            if (!done[j] && (fkv_group[j].c == fkv_group[i].c)) {
                ops[n++] = fkv_group[j].x;
                done[j]  = 1;
            }
        }
        rc = fkv_launch(fkv_group[i].c, fkv_group[i].stream,
                        fkv_group[i].call, ops, n);
        if ((rc != fkv_group[i].c->codes.ok) && (first == 0)) {
            first = rc;
        }
    }
    fkv_ngroup = 0;
    return first;
}

int fkv_submit(fkv_comm_t *c, const char *call, const fkv_op_t *op,
               void *stream)
{
    fkv_xop_t x;
    size_t sb, rb;
    char env[48];
    int code;

    if (c == NULL) {
        return -1;
    }
    fkv_knob_name(c, "FAIL", env, sizeof(env));
    if ((code = fk_knob(env, call)) >= 0) {
        fkv_set_last(c, "fake failure of %s", call);
        return code;
    }
    if ((op->dt < 0) || (op->dt >= FK_NDT) || (op->op < 0) ||
        (op->op >= FK_NOP) ||
        (((op->kind == FKV_BCAST) || (op->kind == FKV_REDUCE)) &&
         ((op->root < 0) || (op->root >= c->fk->size))) ||
        (((op->kind == FKV_SEND) || (op->kind == FKV_RECV)) &&
         ((op->peer < 0) || (op->peer >= c->fk->size)))) {
        fkv_set_last(c, "fake: %s: bad dtype, op, root or peer", call);
        return c->codes.inval;
    }
    fkv_sizes(c, op, &sb, &rb);
    memset(&x, 0, sizeof(x));
    if ((fkv_buffer(c, call, "sendbuff", op->s, sb, &x.ws) != 0) ||
        (fkv_buffer(c, call, "recvbuff", op->r, rb, &x.wr) != 0)) {
        return c->codes.inval;
    }
    x.kind = op->kind;
    x.n    = op->n;
    x.dt   = op->dt;
    x.op   = op->op;
    x.root = op->root;
    x.peer = op->peer;
    if (fkv_depth > 0) {
        if (fkv_ngroup >= FK_GROUP) {
            fkv_set_last(c, "fake: more than %d calls in one group",
                         FK_GROUP);
            return c->codes.inval;
        }
        fkv_group[fkv_ngroup].c      = c;
        fkv_group[fkv_ngroup].stream = stream;
        fkv_group[fkv_ngroup].x      = x;
        snprintf(fkv_group[fkv_ngroup].call,
                 sizeof(fkv_group[fkv_ngroup].call), "%s", call);
        fkv_ngroup++;
        return c->codes.ok;
    }
    return fkv_launch(c, stream, call, &x, 1);
}
