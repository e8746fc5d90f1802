/*
 * fake_device.c - the fake accelerator behind the fake runtimes and vendor
 * libraries of the tests (see fake_device.h for the invariants): a worker
 * thread per stream with a queue of items (kernel, event record, event
 * wait, spin, graph replay), events as pairs of generation counters, graphs
 * as lists of captured items, and device memory as a memfd mapped twice.
 */
#include "fake_device.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define FKD_SYNC_MS  60000 /* bound of a synchronisation (test safety) */
#define FKD_STREAM_MAGIC 0x5354524du
#define FKD_EVENT_MAGIC  0x45564e54u
#define FKD_GRAPH_MAGIC  0x47525048u

enum { IT_KERNEL, IT_EVENT, IT_CEVENT, IT_WAIT, IT_SPIN, IT_GRAPH };

typedef struct fkd_graph fkd_graph_t;

typedef struct fkd_event {
    _Atomic uint32_t magic;
    _Atomic int      refs;     /* the handle's, and one per queued item */
    _Atomic uint64_t rec;      /* records so far */
    _Atomic uint64_t done;     /* highest record the stream passed */
    _Atomic int      captured; /* last recorded inside a capture */
} fkd_event_t;

typedef struct fkd_item {
    struct fkd_item *next;
    int              kind;
    fkd_run_t        run;
    fkd_fini_t       fini;
    void            *arg;
    fkd_event_t     *ev;
    uint64_t         gen;
    int              ms;
    fkd_graph_t     *graph;
} fkd_item_t;

struct fkd_graph {
    uint32_t    magic;
    _Atomic int refs;
    fkd_item_t *head;
    fkd_item_t *tail;
};

typedef struct fkd_stream {
    uint32_t           magic;
    pthread_mutex_t    lock;
    pthread_cond_t     work_cv;
    pthread_cond_t     idle_cv;
    fkd_item_t        *head;
    fkd_item_t        *tail;
    int                busy;       /* an item is running */
    int                destroyed;
    int                delay_ms;
    fkd_graph_t       *capture;    /* the graph being captured, or NULL */
    int                capture_mode;
    int                capture_invalid;
    pthread_t          capture_thread;
    struct fkd_stream *next_all;
} fkd_stream_t;

typedef struct {
    uintptr_t      dev;  /* the address handed out */
    unsigned char *w;    /* the writable alias */
    size_t         n;    /* bytes asked for */
    size_t         len;  /* bytes mapped */
    int            kind;
    int            fd;   /* own device memory: its memfd (IPC), else -1 */
    uint64_t       tag;  /* device memory: random, in the memfd's name */
    int            ipc;  /* opened from another process's handle */
    int            refs; /* ipc: opens of the same handle */
} fkd_alloc_t;

static pthread_mutex_t fkd_lock = PTHREAD_MUTEX_INITIALIZER;
static fkd_stream_t *fkd_streams;
static fkd_stream_t *fkd_default;
static _Atomic int fkd_global_captures;
static _Thread_local int fkd_thread_mode = FKD_CAPTURE_GLOBAL;
static _Thread_local int fkd_thread_captures;

static pthread_rwlock_t fkd_mem_lock = PTHREAD_RWLOCK_INITIALIZER;
static fkd_alloc_t *fkd_allocs;
static size_t fkd_nallocs, fkd_cap;

static struct {
    _Atomic int64_t launches;
    _Atomic int64_t event_records;
    _Atomic int64_t event_queries;
    _Atomic int64_t captured;
    _Atomic int64_t graph_launches;
    _Atomic int64_t capture_violations;
    _Atomic int64_t ipc_opens;
} fkd_stats;

/* ---- helpers ---- */

static void fkd_nap_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};

    while ((nanosleep(&ts, &ts) != 0) && (errno == EINTR)) {
    }
}

static uint64_t fkd_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void fkd_timed_wait(pthread_cond_t *cv, pthread_mutex_t *m, int ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    (void)pthread_cond_timedwait(cv, m, &ts);
}

/* ---- events' lifetime: destroying a handle leaves the event to the
 * items still queued with it (cudaEventDestroy may return first) ---- */

static void fkd_ev_ref(fkd_event_t *ev)
{
    atomic_fetch_add(&ev->refs, 1);
}

static void fkd_ev_unref(fkd_event_t *ev)
{
    if (atomic_fetch_sub(&ev->refs, 1) == 1) {
        free(ev);
    }
}

/* ---- graphs ---- */

static void fkd_item_free(fkd_item_t *it);

static void fkd_graph_unref(fkd_graph_t *g)
{
    fkd_item_t *it, *next;

    if (atomic_fetch_sub(&g->refs, 1) != 1) {
        return;
    }
    for (it = g->head; it != NULL; it = next) {
        next = it->next;
        fkd_item_free(it);
    }
    g->magic = 0;
    free(g);
}

static void fkd_item_free(fkd_item_t *it)
{
    if ((it->kind == IT_KERNEL) && (it->fini != NULL)) {
        it->fini(it->arg);
    }
    if (it->kind == IT_GRAPH) {
        fkd_graph_unref(it->graph);
    }
    if (it->ev != NULL) {
        fkd_ev_unref(it->ev);
    }
    free(it);
}

/* ---- streams ---- */

static void fkd_exec(fkd_stream_t *st, fkd_item_t *it);

static void fkd_exec_graph(fkd_stream_t *st, fkd_graph_t *g)
{
    fkd_item_t *it;

    for (it = g->head; it != NULL; it = it->next) {
        fkd_exec(st, it);
    }
}

static void fkd_exec(fkd_stream_t *st, fkd_item_t *it)
{
    uint64_t prev;

    switch (it->kind) {
    case IT_KERNEL:
        if (st->delay_ms > 0) {
            fkd_nap_us((long)st->delay_ms * 1000L);
        }
        it->run(it->arg);
        break;
    case IT_EVENT:
        /* done is the highest generation passed (records on two streams
         * may finish out of order) */
        prev = atomic_load(&it->ev->done);
        while ((prev < it->gen) &&
               !atomic_compare_exchange_weak(&it->ev->done, &prev,
                                             it->gen)) {
        }
        break;
    case IT_WAIT:
        while (atomic_load(&it->ev->done) < it->gen) {
            fkd_nap_us(50);
        }
        break;
    case IT_SPIN:
        fkd_nap_us((long)it->ms * 1000L);
        break;
    case IT_GRAPH:
        fkd_exec_graph(st, it->graph);
        break;
    default: /* IT_CEVENT: a record captured into a graph does nothing */
        break;
    }
}

static void *fkd_worker(void *arg)
{
    fkd_stream_t *st = arg, **pp;
    fkd_item_t *it;

    pthread_mutex_lock(&st->lock);
    for (;;) {
        while ((st->head == NULL) && !st->destroyed) {
            pthread_cond_wait(&st->work_cv, &st->lock);
        }
        if (st->head == NULL) {
            break; /* destroyed and drained */
        }
        it       = st->head;
        st->head = it->next;
        if (st->head == NULL) {
            st->tail = NULL;
        }
        st->busy = 1;
        pthread_mutex_unlock(&st->lock);
        fkd_exec(st, it);
        fkd_item_free(it);
        pthread_mutex_lock(&st->lock);
        st->busy = 0;
        if (st->head == NULL) {
            pthread_cond_broadcast(&st->idle_cv);
        }
    }
    pthread_mutex_unlock(&st->lock);
    pthread_mutex_lock(&fkd_lock);
    for (pp = &fkd_streams; *pp != NULL; pp = &(*pp)->next_all) {
        if (*pp == st) {
            *pp = st->next_all;
            break;
        }
    }
    pthread_mutex_unlock(&fkd_lock);
    if (st->capture != NULL) {
        fkd_graph_unref(st->capture);
    }
    pthread_cond_destroy(&st->idle_cv);
    pthread_cond_destroy(&st->work_cv);
    pthread_mutex_destroy(&st->lock);
    st->magic = 0;
    free(st);
    return NULL;
}

/* A new stream with its thread, in the list; fkd_lock held. */
static fkd_stream_t *fkd_stream_new(void)
{
    const char *d = getenv("FAKE_STREAM_DELAY_MS");
    fkd_stream_t *st = calloc(1, sizeof(*st));
    pthread_attr_t attr;
    pthread_t tid;

    if (st == NULL) {
        return NULL;
    }
    st->magic    = FKD_STREAM_MAGIC;
    st->delay_ms = ((d != NULL) && (d[0] != '\0')) ? atoi(d) : 0;
    pthread_mutex_init(&st->lock, NULL);
    pthread_cond_init(&st->work_cv, NULL);
    pthread_cond_init(&st->idle_cv, NULL);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&tid, &attr, fkd_worker, st) != 0) {
        pthread_attr_destroy(&attr);
        pthread_cond_destroy(&st->idle_cv);
        pthread_cond_destroy(&st->work_cv);
        pthread_mutex_destroy(&st->lock);
        free(st);
        return NULL;
    }
    pthread_attr_destroy(&attr);
    st->next_all = fkd_streams;
    fkd_streams  = st;
    return st;
}

static int fkd_is_default(const void *s)
{
    return (s == NULL) || (s == (void *)1) || (s == (void *)2);
}

/* The live stream s names, or NULL. */
static fkd_stream_t *fkd_resolve(void *s)
{
    fkd_stream_t *st;

    pthread_mutex_lock(&fkd_lock);
    if (fkd_is_default(s)) {
        if (fkd_default == NULL) {
            fkd_default = fkd_stream_new();
        }
        st = fkd_default;
    } else {
        for (st = fkd_streams; st != NULL; st = st->next_all) {
            if (((void *)st == s) && !st->destroyed) {
                break;
            }
        }
    }
    pthread_mutex_unlock(&fkd_lock);
    return st;
}

/* Queue it on st, or add it to the graph st captures (invariant 3). */
static int fkd_enqueue(fkd_stream_t *st, fkd_item_t *it)
{
    it->next = NULL;
    pthread_mutex_lock(&st->lock);
    if (st->capture != NULL) {
        if (it->kind == IT_GRAPH) {
            pthread_mutex_unlock(&st->lock);
            return FKD_EILLEGAL; /* no graph launch inside a capture */
        }
        if (st->capture->tail == NULL) {
            st->capture->head = it;
        } else {
            st->capture->tail->next = it;
        }
        st->capture->tail = it;
        atomic_fetch_add(&fkd_stats.captured, 1);
        pthread_mutex_unlock(&st->lock);
        return FKD_OK;
    }
    if (st->tail == NULL) {
        st->head = it;
    } else {
        st->tail->next = it;
    }
    st->tail = it;
    pthread_cond_signal(&st->work_cv);
    pthread_mutex_unlock(&st->lock);
    return FKD_OK;
}

static int fkd_capturing(fkd_stream_t *st)
{
    int c;

    pthread_mutex_lock(&st->lock);
    c = (st->capture != NULL);
    pthread_mutex_unlock(&st->lock);
    return c;
}

/* Invariant 3: a call that is not allowed while a capture is under way.
 * Returns 1 (and invalidates the captures it would break) when so. */
static int fkd_unsafe(void)
{
    fkd_stream_t *st;
    pthread_t self = pthread_self();
    int hit = 0;

    if (fkd_thread_mode == FKD_CAPTURE_RELAXED) {
        return 0;
    }
    if (!(((fkd_thread_mode == FKD_CAPTURE_GLOBAL) &&
           (atomic_load(&fkd_global_captures) > 0)) ||
          (fkd_thread_captures > 0))) {
        return 0;
    }
    pthread_mutex_lock(&fkd_lock);
    for (st = fkd_streams; st != NULL; st = st->next_all) {
        pthread_mutex_lock(&st->lock);
        if ((st->capture != NULL) &&
            ((st->capture_mode == FKD_CAPTURE_GLOBAL) ||
             pthread_equal(st->capture_thread, self))) {
            st->capture_invalid = 1;
            hit = 1;
        }
        pthread_mutex_unlock(&st->lock);
    }
    pthread_mutex_unlock(&fkd_lock);
    if (hit) {
        atomic_fetch_add(&fkd_stats.capture_violations, 1);
    }
    return hit;
}

static fkd_item_t *fkd_item_new(int kind)
{
    fkd_item_t *it = calloc(1, sizeof(*it));

    if (it != NULL) {
        it->kind = kind;
    }
    return it;
}

FKD_API int fkd_stream_create(void **s)
{
    fkd_stream_t *st;

    if (s == NULL) {
        return FKD_EINVAL;
    }
    pthread_mutex_lock(&fkd_lock);
    st = fkd_stream_new();
    pthread_mutex_unlock(&fkd_lock);
    *s = st;
    return (st != NULL) ? FKD_OK : FKD_ENOMEM;
}

FKD_API int fkd_stream_destroy(void *s)
{
    fkd_stream_t *st;

    if (fkd_is_default(s) || ((st = fkd_resolve(s)) == NULL)) {
        return FKD_EINVAL;
    }
    pthread_mutex_lock(&st->lock);
    st->destroyed = 1; /* the worker drains, then frees it */
    pthread_cond_signal(&st->work_cv);
    pthread_mutex_unlock(&st->lock);
    return FKD_OK;
}

/* Wait until st is idle, up to ms; FKD_OK or FKD_NOT_READY. */
static int fkd_wait_idle(fkd_stream_t *st, int ms)
{
    uint64_t end = fkd_now_ms() + (uint64_t)ms;
    int rc = FKD_OK;

    pthread_mutex_lock(&st->lock);
    while ((st->head != NULL) || st->busy) {
        if (fkd_now_ms() >= end) {
            rc = FKD_NOT_READY;
            break;
        }
        fkd_timed_wait(&st->idle_cv, &st->lock, 100);
    }
    pthread_mutex_unlock(&st->lock);
    return rc;
}

FKD_API int fkd_stream_sync(void *s)
{
    fkd_stream_t *st;

    if (fkd_unsafe()) {
        return FKD_ECAPTURE;
    }
    if ((st = fkd_resolve(s)) == NULL) {
        return FKD_EINVAL;
    }
    if (fkd_wait_idle(st, FKD_SYNC_MS) != FKD_OK) {
        fprintf(stderr, "fake device: stream %p still busy after %d ms\n",
                s, FKD_SYNC_MS);
        return FKD_EILLEGAL;
    }
    return FKD_OK;
}

FKD_API int fkd_stream_query(void *s)
{
    fkd_stream_t *st;
    int busy;

    if (fkd_unsafe()) {
        return FKD_ECAPTURE;
    }
    if ((st = fkd_resolve(s)) == NULL) {
        return FKD_EINVAL;
    }
    pthread_mutex_lock(&st->lock);
    busy = (st->head != NULL) || st->busy;
    pthread_mutex_unlock(&st->lock);
    return busy ? FKD_NOT_READY : FKD_OK;
}

FKD_API int fkd_device_sync(void)
{
    fkd_stream_t *st;
    uint64_t end = fkd_now_ms() + FKD_SYNC_MS;
    int rc = FKD_OK;

    if (fkd_unsafe()) {
        return FKD_ECAPTURE;
    }
    pthread_mutex_lock(&fkd_lock);
    for (st = fkd_streams; (st != NULL) && (rc == FKD_OK);
         st = st->next_all) {
        uint64_t now = fkd_now_ms();

        rc = fkd_wait_idle(st, (now < end) ? (int)(end - now) : 0);
    }
    pthread_mutex_unlock(&fkd_lock);
    if (rc != FKD_OK) {
        fprintf(stderr, "fake device: a stream is still busy after %d ms\n",
                FKD_SYNC_MS);
        return FKD_EILLEGAL;
    }
    return FKD_OK;
}

FKD_API int fkd_launch(void *s, fkd_run_t run, fkd_fini_t fini, void *arg)
{
    fkd_stream_t *st = fkd_resolve(s);
    fkd_item_t *it;
    int rc;

    if ((st == NULL) || (run == NULL)) {
        return FKD_EINVAL;
    }
    if ((it = fkd_item_new(IT_KERNEL)) == NULL) {
        return FKD_ENOMEM;
    }
    it->run  = run;
    it->fini = fini;
    it->arg  = arg;
    if (!fkd_capturing(st)) {
        atomic_fetch_add(&fkd_stats.launches, 1);
    }
    rc = fkd_enqueue(st, it);
    if (rc != FKD_OK) {
        free(it);
    }
    return rc;
}

FKD_API int fkd_spin(void *s, int ms)
{
    fkd_stream_t *st = fkd_resolve(s);
    fkd_item_t *it;

    if ((st == NULL) || (ms < 0)) {
        return FKD_EINVAL;
    }
    if ((it = fkd_item_new(IT_SPIN)) == NULL) {
        return FKD_ENOMEM;
    }
    it->ms = ms;
    return fkd_enqueue(st, it);
}

/* ---- events ---- */

static fkd_event_t *fkd_ev(void *e)
{
    fkd_event_t *ev = e;

    return ((ev != NULL) && (atomic_load(&ev->magic) == FKD_EVENT_MAGIC))
               ? ev
               : NULL;
}

FKD_API int fkd_event_create(void **e)
{
    fkd_event_t *ev;

    if (e == NULL) {
        return FKD_EINVAL;
    }
    if ((ev = calloc(1, sizeof(*ev))) == NULL) {
        return FKD_ENOMEM;
    }
    atomic_store(&ev->magic, FKD_EVENT_MAGIC);
    atomic_store(&ev->refs, 1);
    *e = ev;
    return FKD_OK;
}

FKD_API int fkd_event_destroy(void *e)
{
    fkd_event_t *ev = fkd_ev(e);

    if (ev == NULL) {
        return FKD_EINVAL;
    }
    atomic_store(&ev->magic, 0u); /* the handle is gone at once */
    fkd_ev_unref(ev);             /* the event, once no item holds it */
    return FKD_OK;
}

FKD_API int fkd_event_record(void *e, void *s)
{
    fkd_event_t *ev  = fkd_ev(e);
    fkd_stream_t *st = fkd_resolve(s);
    fkd_item_t *it;

    if ((ev == NULL) || (st == NULL)) {
        return FKD_EINVAL;
    }
    atomic_fetch_add(&fkd_stats.event_records, 1);
    if ((it = fkd_item_new(IT_EVENT)) == NULL) {
        return FKD_ENOMEM;
    }
    fkd_ev_ref(ev);
    it->ev = ev;
    pthread_mutex_lock(&st->lock);
    if (st->capture != NULL) {
        it->kind = IT_CEVENT;
        atomic_store(&ev->captured, 1);
    } else {
        it->gen = atomic_fetch_add(&ev->rec, 1) + 1;
        atomic_store(&ev->captured, 0);
    }
    pthread_mutex_unlock(&st->lock);
    return fkd_enqueue(st, it);
}

FKD_API int fkd_event_query(void *e)
{
    fkd_event_t *ev = fkd_ev(e);
    uint64_t rec;

    atomic_fetch_add(&fkd_stats.event_queries, 1);
    if (ev == NULL) {
        return FKD_EINVAL;
    }
    if (fkd_unsafe() || atomic_load(&ev->captured)) {
        return FKD_ECAPTURE;
    }
    rec = atomic_load(&ev->rec);
    return (atomic_load(&ev->done) >= rec) ? FKD_OK : FKD_NOT_READY;
}

FKD_API int fkd_event_sync(void *e)
{
    uint64_t end = fkd_now_ms() + FKD_SYNC_MS;
    int rc;

    while ((rc = fkd_event_query(e)) == FKD_NOT_READY) {
        if (fkd_now_ms() > end) {
            return FKD_EILLEGAL;
        }
        fkd_nap_us(100);
    }
    return rc;
}

FKD_API int fkd_stream_wait_event(void *s, void *e)
{
    fkd_event_t *ev  = fkd_ev(e);
    fkd_stream_t *st = fkd_resolve(s);
    fkd_item_t *it;

    if ((ev == NULL) || (st == NULL)) {
        return FKD_EINVAL;
    }
    if ((it = fkd_item_new(IT_WAIT)) == NULL) {
        return FKD_ENOMEM;
    }
    fkd_ev_ref(ev);
    it->ev  = ev;
    it->gen = atomic_load(&ev->rec);
    return fkd_enqueue(st, it);
}

/* ---- capture and graphs ---- */

static fkd_graph_t *fkd_gr(void *g)
{
    fkd_graph_t *gr = g;

    return ((gr != NULL) && (gr->magic == FKD_GRAPH_MAGIC)) ? gr : NULL;
}

FKD_API int fkd_capture_begin(void *s, int mode)
{
    fkd_stream_t *st;
    fkd_graph_t *g;

    if ((mode < FKD_CAPTURE_GLOBAL) || (mode > FKD_CAPTURE_RELAXED)) {
        return FKD_EINVAL;
    }
    if (fkd_is_default(s)) {
        return FKD_EILLEGAL; /* the legacy stream cannot capture */
    }
    if ((st = fkd_resolve(s)) == NULL) {
        return FKD_EINVAL;
    }
    if ((g = calloc(1, sizeof(*g))) == NULL) {
        return FKD_ENOMEM;
    }
    g->magic = FKD_GRAPH_MAGIC;
    atomic_store(&g->refs, 1);
    pthread_mutex_lock(&st->lock);
    if (st->capture != NULL) {
        pthread_mutex_unlock(&st->lock);
        free(g);
        return FKD_EILLEGAL;
    }
    st->capture         = g;
    st->capture_mode    = mode;
    st->capture_invalid = 0;
    st->capture_thread  = pthread_self();
    pthread_mutex_unlock(&st->lock);
    if (mode == FKD_CAPTURE_GLOBAL) {
        atomic_fetch_add(&fkd_global_captures, 1);
    }
    if (mode != FKD_CAPTURE_RELAXED) {
        fkd_thread_captures++;
    }
    return FKD_OK;
}

FKD_API int fkd_capture_end(void *s, void **graph)
{
    fkd_stream_t *st = fkd_is_default(s) ? NULL : fkd_resolve(s);
    fkd_graph_t *g;
    int invalid, mode;

    if ((st == NULL) || (graph == NULL)) {
        return FKD_EINVAL;
    }
    pthread_mutex_lock(&st->lock);
    g           = st->capture;
    invalid     = st->capture_invalid;
    mode        = st->capture_mode;
    st->capture = NULL;
    pthread_mutex_unlock(&st->lock);
    if (g == NULL) {
        return FKD_EILLEGAL;
    }
    if (mode == FKD_CAPTURE_GLOBAL) {
        atomic_fetch_sub(&fkd_global_captures, 1);
    }
    if ((mode != FKD_CAPTURE_RELAXED) && (fkd_thread_captures > 0)) {
        fkd_thread_captures--;
    }
    if (invalid) {
        fkd_graph_unref(g);
        *graph = NULL;
        return FKD_EINVALIDATED;
    }
    *graph = g;
    return FKD_OK;
}

FKD_API int fkd_capture_status(void *s, int *status)
{
    fkd_stream_t *st = fkd_resolve(s);

    if ((st == NULL) || (status == NULL)) {
        return FKD_EINVAL;
    }
    pthread_mutex_lock(&st->lock);
    *status = (st->capture == NULL) ? FKD_CAPTURE_NONE
              : st->capture_invalid ? FKD_CAPTURE_INVALID
                                    : FKD_CAPTURE_ACTIVE;
    pthread_mutex_unlock(&st->lock);
    return FKD_OK;
}

FKD_API int fkd_thread_capture_mode(int *mode)
{
    int old = fkd_thread_mode;

    if ((mode == NULL) || (*mode < FKD_CAPTURE_GLOBAL) ||
        (*mode > FKD_CAPTURE_RELAXED)) {
        return FKD_EINVAL;
    }
    fkd_thread_mode = *mode;
    *mode           = old;
    return FKD_OK;
}

FKD_API int fkd_graph_instantiate(void **exec, void *graph)
{
    fkd_graph_t *g = fkd_gr(graph);

    if ((g == NULL) || (exec == NULL)) {
        return FKD_EINVAL;
    }
    atomic_fetch_add(&g->refs, 1); /* the executable shares the nodes */
    *exec = g;
    return FKD_OK;
}

FKD_API int fkd_graph_launch(void *exec, void *s)
{
    fkd_graph_t *g   = fkd_gr(exec);
    fkd_stream_t *st = fkd_resolve(s);
    fkd_item_t *it;
    int rc;

    if ((g == NULL) || (st == NULL)) {
        return FKD_EINVAL;
    }
    if ((it = fkd_item_new(IT_GRAPH)) == NULL) {
        return FKD_ENOMEM;
    }
    atomic_fetch_add(&g->refs, 1);
    it->graph = g;
    rc        = fkd_enqueue(st, it);
    if (rc != FKD_OK) {
        fkd_item_free(it);
        return rc;
    }
    atomic_fetch_add(&fkd_stats.graph_launches, 1);
    return FKD_OK;
}

FKD_API int fkd_graph_destroy(void *graph)
{
    fkd_graph_t *g = fkd_gr(graph);

    if (g == NULL) {
        return FKD_EINVAL;
    }
    fkd_graph_unref(g);
    return FKD_OK;
}

/* ---- memory (invariant 4) ---- */

static int fkd_alloc_add(const fkd_alloc_t *a)
{
    fkd_alloc_t *n;

    pthread_rwlock_wrlock(&fkd_mem_lock);
    if (fkd_nallocs == fkd_cap) {
        size_t cap = (fkd_cap == 0) ? 64 : 2 * fkd_cap;

        n = realloc(fkd_allocs, cap * sizeof(*n));
        if (n == NULL) {
            pthread_rwlock_unlock(&fkd_mem_lock);
            return FKD_ENOMEM;
        }
        fkd_allocs = n;
        fkd_cap    = cap;
    }
    fkd_allocs[fkd_nallocs++] = *a;
    pthread_rwlock_unlock(&fkd_mem_lock);
    return FKD_OK;
}

/*
 * Device address space stays device address space (as under CUDA's unified
 * addressing): a freed device range is kept reserved (PROT_NONE, no
 * memory behind it) and only a later device allocation maps over it, so a
 * host allocation never lands where device memory was (scomm's memory-kind
 * cache relies on that: docs/device.md).
 */
typedef struct {
    uintptr_t addr;
    size_t    len;
} fkd_hole_t;

static pthread_mutex_t fkd_hole_lock = PTHREAD_MUTEX_INITIALIZER;
static fkd_hole_t *fkd_holes;
static size_t fkd_nholes, fkd_capholes;

/* A reserved range of at least len bytes (taken from the list), or 0. */
static uintptr_t fkd_hole_take(size_t len)
{
    uintptr_t addr = 0;
    size_t i;

    pthread_mutex_lock(&fkd_hole_lock);
    for (i = 0; i < fkd_nholes; i++) {
        if (fkd_holes[i].len >= len) {
            addr = fkd_holes[i].addr;
            fkd_holes[i].addr += len;
            fkd_holes[i].len -= len;
            if (fkd_holes[i].len == 0) {
                fkd_holes[i] = fkd_holes[--fkd_nholes];
            }
            break;
        }
    }
    pthread_mutex_unlock(&fkd_hole_lock);
    return addr;
}

/* Keep [addr, addr + len) reserved; unmapped only if the list cannot grow
 * (or the reservation fails). */
static void fkd_hole_put(uintptr_t addr, size_t len)
{
    fkd_hole_t *t;
    void *r = mmap((void *)addr, len, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
                   -1, 0);

    if (r == MAP_FAILED) {
        munmap((void *)addr, len);
        return;
    }
    pthread_mutex_lock(&fkd_hole_lock);
    if (fkd_nholes == fkd_capholes) {
        t = realloc(fkd_holes, (fkd_capholes * 2 + 64) * sizeof(*t));
        if (t == NULL) {
            pthread_mutex_unlock(&fkd_hole_lock);
            munmap((void *)addr, len);
            return;
        }
        fkd_holes    = t;
        fkd_capholes = fkd_capholes * 2 + 64;
    }
    fkd_holes[fkd_nholes].addr = addr;
    fkd_holes[fkd_nholes].len  = len;
    fkd_nholes++;
    pthread_mutex_unlock(&fkd_hole_lock);
}

FKD_API int fkd_malloc(void **p, size_t n)
{
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t hole;
    char name[64];
    fkd_alloc_t a;
    void *dev, *w;
    int fd;

    if (p == NULL) {
        return FKD_EINVAL;
    }
    *p = NULL;
    if (n == 0) {
        return FKD_OK;
    }
    if (fkd_unsafe()) {
        return FKD_ECAPTURE;
    }
    memset(&a, 0, sizeof(a));
    a.n   = n;
    a.len = (n + (size_t)page - 1) / (size_t)page * (size_t)page;
    if (getrandom(&a.tag, sizeof(a.tag), 0) != (ssize_t)sizeof(a.tag)) {
        a.tag = (uint64_t)fkd_now_ms() * 2654435761u ^ (uint64_t)getpid();
    }
    snprintf(name, sizeof(name), "scomm-fake-device:%016llx",
             (unsigned long long)a.tag);
    fd = memfd_create(name, MFD_CLOEXEC);
    if ((fd < 0) || (ftruncate(fd, (off_t)a.len) != 0)) {
        if (fd >= 0) {
            close(fd);
        }
        return FKD_ENOMEM;
    }
    hole = fkd_hole_take(a.len);
    dev  = mmap((void *)hole, a.len, PROT_NONE,
                MAP_SHARED | ((hole != 0) ? MAP_FIXED : 0), fd, 0);
    w    = mmap(NULL, a.len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if ((dev == MAP_FAILED) || (w == MAP_FAILED)) {
        if (dev != MAP_FAILED) {
            munmap(dev, a.len);
        }
        if (w != MAP_FAILED) {
            munmap(w, a.len);
        }
        close(fd);
        return FKD_ENOMEM;
    }
    a.dev  = (uintptr_t)dev;
    a.w    = w;
    a.kind = FKD_MEM_DEVICE;
    a.fd   = fd; /* kept for IPC handles (invariant 6) */
    if (fkd_alloc_add(&a) != FKD_OK) {
        munmap(dev, a.len);
        munmap(w, a.len);
        close(fd);
        return FKD_ENOMEM;
    }
    *p = dev;
    return FKD_OK;
}

FKD_API int fkd_malloc_host(void **p, size_t n)
{
    long page = sysconf(_SC_PAGESIZE);
    fkd_alloc_t a;
    void *h;

    if (p == NULL) {
        return FKD_EINVAL;
    }
    *p = NULL;
    if (n == 0) {
        return FKD_OK;
    }
    memset(&a, 0, sizeof(a));
    a.n   = n;
    a.len = (n + (size_t)page - 1) / (size_t)page * (size_t)page;
    h     = mmap(NULL, a.len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (h == MAP_FAILED) {
        return FKD_ENOMEM;
    }
    a.dev  = (uintptr_t)h;
    a.w    = h;
    a.kind = FKD_MEM_PINNED;
    a.fd   = -1;
    if (fkd_alloc_add(&a) != FKD_OK) {
        munmap(h, a.len);
        return FKD_ENOMEM;
    }
    *p = h;
    return FKD_OK;
}

FKD_API int fkd_free(void *p)
{
    fkd_alloc_t a;
    size_t i;
    int found = 0;

    if (p == NULL) {
        return FKD_OK;
    }
    if (fkd_device_sync() != FKD_OK) {
        return FKD_ECAPTURE; /* or a stream that never drains: keep it */
    }
    pthread_rwlock_wrlock(&fkd_mem_lock);
    for (i = 0; i < fkd_nallocs; i++) {
        if ((fkd_allocs[i].dev == (uintptr_t)p) && !fkd_allocs[i].ipc) {
            a             = fkd_allocs[i];
            fkd_allocs[i] = fkd_allocs[--fkd_nallocs];
            found         = 1;
            break;
        }
    }
    pthread_rwlock_unlock(&fkd_mem_lock);
    if (!found) {
        return FKD_EINVAL;
    }
    if (a.kind == FKD_MEM_DEVICE) {
        fkd_hole_put(a.dev, a.len); /* stays device address space */
    }
    munmap(a.w, a.len);
    if (a.fd >= 0) {
        close(a.fd);
    }
    return FKD_OK;
}

/* ---- IPC (invariant 6) ---- */

#define FKD_IPC_MAGIC 0x50494b46u /* "FKIP" */

typedef struct {
    uint32_t magic;
    int32_t  pid;
    int32_t  fd;
    uint32_t pad;
    uint64_t len; /* bytes mapped */
    uint64_t n;   /* bytes asked for */
    uint64_t tag;
} fkd_ipc_wire_t;

FKD_API int fkd_ipc_get(fkd_ipc_handle_t *h, void *p)
{
    fkd_ipc_wire_t wire;
    size_t i;
    int rc = FKD_EINVAL;

    if ((h == NULL) || (p == NULL)) {
        return FKD_EINVAL;
    }
    memset(&wire, 0, sizeof(wire));
    pthread_rwlock_rdlock(&fkd_mem_lock);
    for (i = 0; i < fkd_nallocs; i++) {
        const fkd_alloc_t *a = &fkd_allocs[i];

        /* the base of an allocation of this process's own (cudaMalloc) */
        if ((a->dev == (uintptr_t)p) && (a->kind == FKD_MEM_DEVICE) &&
            !a->ipc && (a->fd >= 0)) {
            wire.magic = FKD_IPC_MAGIC;
            wire.pid   = (int32_t)getpid();
            wire.fd    = a->fd;
            wire.len   = a->len;
            wire.n     = a->n;
            wire.tag   = a->tag;
            rc         = FKD_OK;
            break;
        }
    }
    pthread_rwlock_unlock(&fkd_mem_lock);
    memset(h, 0, sizeof(*h));
    memcpy(h->reserved, &wire, sizeof(wire));
    return rc;
}

/* The owner's fd in this process: pidfd_getfd, else /proc/PID/fd/N. */
static int fkd_ipc_fd(const fkd_ipc_wire_t *wire)
{
    char path[64];
    int fd = -1;
#if defined(SYS_pidfd_open) && defined(SYS_pidfd_getfd)
    int pfd = (int)syscall(SYS_pidfd_open, (pid_t)wire->pid, 0);

    if (pfd >= 0) {
        fd = (int)syscall(SYS_pidfd_getfd, pfd, wire->fd, 0);
        close(pfd);
    }
#endif
    if (fd < 0) {
        snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)wire->pid,
                 (int)wire->fd);
        fd = open(path, O_RDWR | O_CLOEXEC);
    }
    return fd;
}

/* 1 if fd is the memfd of that tag (its name carries it) and big enough. */
static int fkd_ipc_check(int fd, const fkd_ipc_wire_t *wire)
{
    char path[64], name[256], want[64];
    struct stat sb;
    ssize_t k;

    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    k = readlink(path, name, sizeof(name) - 1);
    if (k <= 0) {
        return 0;
    }
    name[k] = '\0';
    snprintf(want, sizeof(want), "scomm-fake-device:%016llx",
             (unsigned long long)wire->tag);
    return (strstr(name, want) != NULL) && (fstat(fd, &sb) == 0) &&
           ((uint64_t)sb.st_size >= wire->len);
}

FKD_API int fkd_ipc_open(void **p, const fkd_ipc_handle_t *h)
{
    const char *fail = getenv("FAKE_IPC_OPEN_FAIL");
    fkd_ipc_wire_t wire;
    fkd_alloc_t a;
    void *dev, *w;
    size_t i;
    int fd;

    if ((p == NULL) || (h == NULL)) {
        return FKD_EINVAL;
    }
    *p = NULL;
    memcpy(&wire, h->reserved, sizeof(wire));
    if ((wire.magic != FKD_IPC_MAGIC) || (wire.len == 0) ||
        (wire.n > wire.len)) {
        return FKD_EHANDLE;
    }
    if (wire.pid == (int32_t)getpid()) {
        return FKD_ECONTEXT; /* one's own memory is not opened */
    }
    if ((fail != NULL) && (fail[0] != '\0') && (strcmp(fail, "0") != 0)) {
        return FKD_EMAP;
    }
    /* opened before: the same pointer, one more reference */
    pthread_rwlock_wrlock(&fkd_mem_lock);
    for (i = 0; i < fkd_nallocs; i++) {
        if (fkd_allocs[i].ipc && (fkd_allocs[i].tag == wire.tag)) {
            fkd_allocs[i].refs++;
            *p = (void *)fkd_allocs[i].dev;
            pthread_rwlock_unlock(&fkd_mem_lock);
            return FKD_OK;
        }
    }
    pthread_rwlock_unlock(&fkd_mem_lock);
    if ((fd = fkd_ipc_fd(&wire)) < 0) {
        return FKD_EMAP;
    }
    if (!fkd_ipc_check(fd, &wire)) {
        close(fd);
        return FKD_EHANDLE; /* that fd is no longer this allocation */
    }
    dev = mmap(NULL, wire.len, PROT_NONE, MAP_SHARED, fd, 0);
    w   = mmap(NULL, wire.len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if ((dev == MAP_FAILED) || (w == MAP_FAILED)) {
        if (dev != MAP_FAILED) {
            munmap(dev, wire.len);
        }
        if (w != MAP_FAILED) {
            munmap(w, wire.len);
        }
        return FKD_EMAP;
    }
    memset(&a, 0, sizeof(a));
    a.dev  = (uintptr_t)dev;
    a.w    = w;
    a.n    = wire.n;
    a.len  = wire.len;
    a.kind = FKD_MEM_DEVICE;
    a.fd   = -1;
    a.tag  = wire.tag;
    a.ipc  = 1;
    a.refs = 1;
    if (fkd_alloc_add(&a) != FKD_OK) {
        munmap(dev, wire.len);
        munmap(w, wire.len);
        return FKD_ENOMEM;
    }
    atomic_fetch_add(&fkd_stats.ipc_opens, 1);
    *p = dev;
    return FKD_OK;
}

FKD_API int fkd_ipc_close(void *p)
{
    fkd_alloc_t a;
    size_t i;
    int found = 0, last = 0;

    if (p == NULL) {
        return FKD_EINVAL;
    }
    pthread_rwlock_wrlock(&fkd_mem_lock);
    for (i = 0; i < fkd_nallocs; i++) {
        if (fkd_allocs[i].ipc && (fkd_allocs[i].dev == (uintptr_t)p)) {
            found = 1;
            last  = (--fkd_allocs[i].refs == 0);
            break;
        }
    }
    pthread_rwlock_unlock(&fkd_mem_lock);
    if (!found) {
        return FKD_EINVAL;
    }
    if (!last) {
        return FKD_OK;
    }
    /* copies still queued may use the mapping: let them finish first */
    if (fkd_device_sync() != FKD_OK) {
        return FKD_EILLEGAL;
    }
    found = 0;
    pthread_rwlock_wrlock(&fkd_mem_lock);
    for (i = 0; i < fkd_nallocs; i++) {
        if (fkd_allocs[i].ipc && (fkd_allocs[i].dev == (uintptr_t)p) &&
            (fkd_allocs[i].refs == 0)) {
            a             = fkd_allocs[i];
            fkd_allocs[i] = fkd_allocs[--fkd_nallocs];
            found         = 1;
            break;
        }
    }
    pthread_rwlock_unlock(&fkd_mem_lock);
    if (found) {
        fkd_hole_put(a.dev, a.len); /* stays device address space */
        munmap(a.w, a.len);
    }
    return FKD_OK;
}

FKD_API int fkd_range(const void *p, void **base, size_t *n)
{
    uintptr_t u = (uintptr_t)p;
    size_t i;
    int rc = FKD_EINVAL;

    if ((base == NULL) || (n == NULL)) {
        return FKD_EINVAL;
    }
    pthread_rwlock_rdlock(&fkd_mem_lock);
    for (i = 0; i < fkd_nallocs; i++) {
        const fkd_alloc_t *a = &fkd_allocs[i];

        if ((a->kind == FKD_MEM_DEVICE) && (u >= a->dev) &&
            (u < a->dev + a->n)) {
            *base = (void *)a->dev;
            *n    = a->n;
            rc    = FKD_OK;
            break;
        }
    }
    pthread_rwlock_unlock(&fkd_mem_lock);
    return rc;
}

FKD_API int fkd_translate(const void *p, size_t n, void **w, int *kind)
{
    uintptr_t u = (uintptr_t)p;
    size_t i;
    int rc = FKD_OK;

    *w    = (void *)p;
    *kind = FKD_MEM_HOST;
    if (p == NULL) {
        return FKD_OK;
    }
    pthread_rwlock_rdlock(&fkd_mem_lock);
    for (i = 0; i < fkd_nallocs; i++) {
        const fkd_alloc_t *a = &fkd_allocs[i];

        if ((u >= a->dev) && (u < a->dev + a->len)) {
            *kind = a->kind;
            *w    = a->w + (u - a->dev);
            if ((u - a->dev > a->n) || (n > a->n - (u - a->dev))) {
                rc = FKD_EINVAL; /* runs past the allocation */
            }
            break;
        }
    }
    pthread_rwlock_unlock(&fkd_mem_lock);
    return rc;
}

typedef struct {
    void       *dst;
    const void *src;
    size_t      n;
    int         set; /* memset with value v */
    int         v;
} fkd_copy_t;

static void fkd_copy_run(void *arg)
{
    fkd_copy_t *c = arg;

    if (c->set) {
        memset(c->dst, c->v, c->n);
    } else {
        memmove(c->dst, c->src, c->n);
    }
}

static int fkd_side(const void *p, size_t n, int want, void **w)
{
    int kind, rc = fkd_translate(p, n, w, &kind);

    if (rc != FKD_OK) {
        return rc;
    }
    if ((want == 1) && (kind == FKD_MEM_HOST)) {
        return FKD_EINVAL;
    }
    if ((want == 0) && (kind == FKD_MEM_DEVICE)) {
        return FKD_EINVAL;
    }
    return FKD_OK;
}

static int fkd_copy(fkd_copy_t *c, void *s, int async)
{
    fkd_copy_t *a;
    int rc;

    if (!async) {
        if ((rc = fkd_device_sync()) != FKD_OK) {
            return rc;
        }
        fkd_copy_run(c);
        return FKD_OK;
    }
    if ((a = malloc(sizeof(*a))) == NULL) {
        return FKD_ENOMEM;
    }
    *a = *c;
    rc = fkd_launch(s, fkd_copy_run, free, a);
    if (rc != FKD_OK) {
        free(a);
    }
    return rc;
}

FKD_API int fkd_memcpy(void *dst, const void *src, size_t n, int dst_dev,
                       int src_dev, void *s, int async)
{
    fkd_copy_t c;
    void *wd, *ws;
    int rc;

    if (n == 0) {
        return FKD_OK;
    }
    if ((dst == NULL) || (src == NULL)) {
        return FKD_EINVAL;
    }
    if (((rc = fkd_side(dst, n, dst_dev, &wd)) != FKD_OK) ||
        ((rc = fkd_side(src, n, src_dev, &ws)) != FKD_OK)) {
        return rc;
    }
    memset(&c, 0, sizeof(c));
    c.dst = wd;
    c.src = ws;
    c.n   = n;
    return fkd_copy(&c, s, async);
}

FKD_API int fkd_memset(void *dst, int v, size_t n, void *s, int async)
{
    fkd_copy_t c;
    void *wd;
    int rc;

    if (n == 0) {
        return FKD_OK;
    }
    if ((rc = fkd_side(dst, n, -1, &wd)) != FKD_OK) {
        return rc;
    }
    memset(&c, 0, sizeof(c));
    c.dst = wd;
    c.n   = n;
    c.set = 1;
    c.v   = v;
    return fkd_copy(&c, s, async);
}

/* ---- counters ---- */

FKD_API int64_t fkd_stat(const char *name)
{
    if (strcmp(name, "launches") == 0) {
        return atomic_load(&fkd_stats.launches);
    }
    if (strcmp(name, "event_records") == 0) {
        return atomic_load(&fkd_stats.event_records);
    }
    if (strcmp(name, "event_queries") == 0) {
        return atomic_load(&fkd_stats.event_queries);
    }
    if (strcmp(name, "captured") == 0) {
        return atomic_load(&fkd_stats.captured);
    }
    if (strcmp(name, "graph_launches") == 0) {
        return atomic_load(&fkd_stats.graph_launches);
    }
    if (strcmp(name, "capture_violations") == 0) {
        return atomic_load(&fkd_stats.capture_violations);
    }
    if (strcmp(name, "ipc_opens") == 0) {
        return atomic_load(&fkd_stats.ipc_opens);
    }
    return -1;
}

FKD_API void fkd_stat_reset(void)
{
    atomic_store(&fkd_stats.launches, 0);
    atomic_store(&fkd_stats.event_records, 0);
    atomic_store(&fkd_stats.event_queries, 0);
    atomic_store(&fkd_stats.captured, 0);
    atomic_store(&fkd_stats.graph_launches, 0);
    atomic_store(&fkd_stats.capture_violations, 0);
    atomic_store(&fkd_stats.ipc_opens, 0);
}
