/*
 * watchdog.c - the vendor backends' deadline, off the call path: one
 * thread per world that has vendor communicators. Each tick it retires the
 * completion events that are done, reads each vendor's asynchronous error,
 * and checks the oldest pending event against its deadline; between ticks
 * it progresses the world's native connections and answers the peers'
 * questions about how far this rank got.
 *
 *   tick (2 ms while work is pending, 10 ms idle)
 *     for each vendor communicator: poll events | async error | deadline
 *     native progress + answer queries        (world lock: try only)
 *   deadline passed on op #N:
 *     ask every rank of the communicator "how many calls did you enqueue,
 *     how many completed?" over the native connections (500 ms at most),
 *     fail the world with SCOMM_ERR_TIMED_OUT naming the operation, #N and
 *     the ranks that never reached it, abort the vendor communicator.
 *   the world failed (here or at a peer): abort the vendor communicators,
 *   so kernels stuck waiting for a peer end.
 *
 * Invariants:
 *  1. The thread never blocks on the world lock (trylock only), so a
 *     blocking native call of the application never stalls it; the price
 *     is that a rank whose application holds the world lock in a long
 *     native wait cannot answer, and is reported as "no answer".
 *  2. Every rank of the world keeps one posted receive per peer for
 *     questions, on a context no communicator uses (SCOMM_WD_CTX); answers
 *     carry the communicator's context and the sequence asked about, so a
 *     late answer to an old question is never taken for a new one.
 *  3. The thread runs its event queries with the runtime's capture mode
 *     relaxed: polling never invalidates a graph another thread captures.
 *  4. The first fault wins: a deadline or an asynchronous error fails the
 *     world once; once the world has failed the watchdog only aborts.
 */
#include "backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Context of the watchdog's messages: bit 1 clear, which no split or
 * hierarchical context has (they are hashes | 2), and not 0 or 1. */
#define SCOMM_WD_CTX      0x57440005u
#define SCOMM_WD_TAG_ASK  1
#define SCOMM_WD_TAG_TELL 2
#define SCOMM_WD_MAGIC    0x53574447u
#define SCOMM_WD_BUSY_NS  2000000L
#define SCOMM_WD_IDLE_NS  10000000L
#define SCOMM_WD_ASK_MS   500
#define SCOMM_WD_LOCK_MS  200

typedef struct {
    uint32_t magic;
    uint32_t ctx;   /* the communicator asked about */
    uint32_t found; /* answer: the rank has a vendor communicator on ctx */
    uint32_t pad;
    uint64_t seq;   /* the call asked about */
    uint64_t enq;   /* answer: calls enqueued */
    uint64_t done;  /* answer: calls known complete */
} scomm_wd_msg_t;

struct scomm_vendor_wd {
    scomm_world_t   *w;
    pthread_t        thread;
    pthread_mutex_t  lock;   /* list, stop */
    pthread_cond_t   cv;
    int              stop;
    scomm_vendor_t  *list;
    scomm_comm_t    *pcomm;  /* the world's ranks on SCOMM_WD_CTX */
    int              relaxed[SCOMM_RT_KINDS];
    /* per world rank: questions in, answers out, answers in, questions
     * out (all on pcomm; the buffers live as long as this struct) */
    scomm_req_t    **qin;
    scomm_wd_msg_t  *qin_buf;
    scomm_req_t    **aout;
    scomm_wd_msg_t  *aout_buf;
    scomm_req_t    **ain;
    scomm_wd_msg_t  *ain_buf;
    scomm_req_t    **qout;
    scomm_wd_msg_t   ask;
};

/* What one rank said about the call asked about. */
enum { WD_NO_ANSWER = 0, WD_NEVER, WD_IN, WD_PAST };

/* ---- the native exchange (invariant 2) ----------------------------------- */

static int scomm_wd_done(scomm_req_t *r)
{
    return (r != NULL) &&
           atomic_load_explicit(&r->done, memory_order_acquire);
}

/* Try the world lock for up to ms (invariant 1); 1 when held. */
static int scomm_wd_trylock(scomm_world_t *w, int ms)
{
    struct timespec ts = {0, 1000000};
    int i;

    for (i = 0; i <= ms; i++) {
        if (pthread_mutex_trylock(&w->lock) == 0) {
            return 1;
        }
        nanosleep(&ts, NULL);
    }
    return 0;
}

static scomm_vendor_t *scomm_wd_find(scomm_vendor_wd_t *wd, uint32_t ctx)
{
    scomm_vendor_t *v;

    for (v = wd->list; v != NULL; v = v->wd_next) {
        if (v->comm->ctx == ctx) {
            return v;
        }
    }
    return NULL;
}

/* Answer the questions that arrived, and keep one receive posted per
 * peer (invariant 2); world lock and wd->lock held. */
static void scomm_wd_answer(scomm_vendor_wd_t *wd)
{
    scomm_world_t *w = wd->w;
    scomm_wd_msg_t q, *a;
    scomm_vendor_t *v;
    int p;

    for (p = 0; p < w->size; p++) {
        if (p == w->rank) {
            continue;
        }
        if (scomm_wd_done(wd->qin[p])) {
            q = wd->qin_buf[p];
            scomm_req_release(wd->qin[p]);
            wd->qin[p] = NULL;
            if (scomm_wd_done(wd->aout[p])) {
                scomm_req_release(wd->aout[p]);
                wd->aout[p] = NULL;
            }
            /* one answer in flight per peer: a question while one is on
             * its way goes unanswered (the asker counts it as silence) */
            if ((q.magic == SCOMM_WD_MAGIC) && (wd->aout[p] == NULL)) {
                a        = &wd->aout_buf[p];
                v        = scomm_wd_find(wd, q.ctx);
                *a       = q;
                a->found = (v != NULL);
                a->enq   = (v != NULL) ? atomic_load(&v->enq) : 0;
                a->done  = (v != NULL) ? atomic_load(&v->done) : 0;
                if (scomm_p2p_isend(wd->pcomm, p, SCOMM_WD_TAG_TELL, a,
                                    sizeof(*a), &wd->aout[p]) != SCOMM_OK) {
                    wd->aout[p] = NULL;
                }
            }
        }
        if ((wd->qin[p] == NULL) &&
            (scomm_p2p_irecv(wd->pcomm, p, SCOMM_WD_TAG_ASK, &wd->qin_buf[p],
                             sizeof(wd->qin_buf[p]), &wd->qin[p]) !=
             SCOMM_OK)) {
            wd->qin[p] = NULL;
        }
    }
}

/* Progress the native connections and answer; wd->lock held. */
static void scomm_wd_serve(scomm_vendor_wd_t *wd)
{
    scomm_world_t *w = wd->w;

    if ((w->ntl == 0) || (pthread_mutex_trylock(&w->lock) != 0)) {
        return;
    }
    scomm_world_progress(w);
    scomm_wd_answer(wd);
    pthread_mutex_unlock(&w->lock);
}

/* Ask every rank of v's communicator about call seq; st[q] per comm rank
 * (WD_*), ans[q] the answers. */
static void scomm_wd_ask(scomm_vendor_wd_t *wd, scomm_vendor_t *v,
                         uint64_t seq, int *st, scomm_wd_msg_t *ans)
{
    scomm_world_t *w   = wd->w;
    scomm_comm_t *comm = v->comm;
    uint64_t end = scomm_now_ns() + SCOMM_WD_ASK_MS * 1000000ull;
    struct timespec ts = {0, 1000000};
    scomm_wd_msg_t *a;
    int q, wq, left = 0;

    if ((comm->size == 1) || (w->ntl == 0) ||
        !scomm_wd_trylock(w, SCOMM_WD_LOCK_MS)) {
        return;
    }
    wd->ask.magic = SCOMM_WD_MAGIC;
    wd->ask.ctx   = comm->ctx;
    wd->ask.seq   = seq;
    for (q = 0; q < comm->size; q++) {
        wq = comm->ranks[q];
        if (q == comm->rank) {
            continue;
        }
        if ((wd->ain[wq] == NULL) &&
            (scomm_p2p_irecv(wd->pcomm, wq, SCOMM_WD_TAG_TELL,
                             &wd->ain_buf[wq], sizeof(wd->ain_buf[wq]),
                             &wd->ain[wq]) != SCOMM_OK)) {
            wd->ain[wq] = NULL;
            continue;
        }
        if (scomm_wd_done(wd->qout[wq])) {
            scomm_req_release(wd->qout[wq]);
            wd->qout[wq] = NULL;
        }
        if ((wd->qout[wq] == NULL) &&
            (scomm_p2p_isend(wd->pcomm, wq, SCOMM_WD_TAG_ASK, &wd->ask,
                             sizeof(wd->ask), &wd->qout[wq]) != SCOMM_OK)) {
            wd->qout[wq] = NULL;
            continue;
        }
        left++;
    }
    pthread_mutex_unlock(&w->lock);
    while ((left > 0) && (scomm_now_ns() < end)) {
        nanosleep(&ts, NULL);
        if (pthread_mutex_trylock(&w->lock) != 0) {
            continue;
        }
        scomm_world_progress(w);
        scomm_wd_answer(wd); /* a peer may be asking us at the same time */
        for (q = 0; q < comm->size; q++) {
            wq = comm->ranks[q];
            if ((q == comm->rank) || (st[q] != WD_NO_ANSWER) ||
                !scomm_wd_done(wd->ain[wq])) {
                continue;
            }
            a = &wd->ain_buf[wq];
            if ((a->magic == SCOMM_WD_MAGIC) && (a->ctx == comm->ctx) &&
                (a->seq == seq) && a->found) {
                ans[q] = *a;
                st[q]  = (a->enq < seq)    ? WD_NEVER
                         : (a->done < seq) ? WD_IN
                                           : WD_PAST;
                left--;
            }
            scomm_req_release(wd->ain[wq]);
            wd->ain[wq] = NULL;
            if (st[q] == WD_NO_ANSWER) { /* an old answer: ask again */
                if (scomm_p2p_irecv(wd->pcomm, wq, SCOMM_WD_TAG_TELL,
                                    &wd->ain_buf[wq], sizeof(*a),
                                    &wd->ain[wq]) != SCOMM_OK) {
                    wd->ain[wq] = NULL;
                }
            }
        }
        pthread_mutex_unlock(&w->lock);
    }
}

/* "1,3" of the comm ranks in class c; n gets how many. */
static void scomm_wd_ranks(const int *st, int size, int c, char *buf,
                           size_t len, int *n)
{
    size_t o = 0;
    int q;

    buf[0] = '\0';
    *n     = 0;
    for (q = 0; q < size; q++) {
        if (st[q] != c) {
            continue;
        }
        if (o + 16 < len) {
            o += (size_t)snprintf(buf + o, len - o, "%s%d",
                                  (*n == 0) ? "" : ",", q);
        } else if (o + 4 < len) {
            o += (size_t)snprintf(buf + o, len - o, ",...");
        }
        (*n)++;
    }
}

/* ---- firing (invariant 4) ------------------------------------------------ */

typedef struct {
    uint64_t    seq;
    int64_t     timeout_ms; /* the deadline the call was given */
    const char *what;
    const char *call;
} scomm_wd_late_t;

static void scomm_wd_timeout(scomm_vendor_wd_t *wd, scomm_vendor_t *v,
                             const scomm_wd_late_t *late)
{
    scomm_world_t *w   = wd->w;
    scomm_comm_t *comm = v->comm;
    scomm_wd_msg_t *ans = calloc((size_t)comm->size, sizeof(*ans));
    int *st = calloc((size_t)comm->size, sizeof(*st));
    char never[96], in[96], mute[96], msg[SCOMM_ERRMSG_MAX], atop[48] = "";
    uint64_t enq = atomic_load(&v->enq), done = atomic_load(&v->done);
    int nnever = 0, nin = 0, nmute = 0, q;
    size_t o;

    if ((ans != NULL) && (st != NULL) && (late->seq > done)) {
        st[comm->rank] = (enq < late->seq)    ? WD_NEVER
                         : (done < late->seq) ? WD_IN
                                              : WD_PAST;
        scomm_wd_ask(wd, v, late->seq, st, ans);
        scomm_wd_ranks(st, comm->size, WD_NEVER, never, sizeof(never),
                       &nnever);
        scomm_wd_ranks(st, comm->size, WD_IN, in, sizeof(in), &nin);
        scomm_wd_ranks(st, comm->size, WD_NO_ANSWER, mute, sizeof(mute),
                       &nmute);
        for (q = 0; (q < comm->size) && (nnever == 1); q++) {
            if (st[q] == WD_NEVER) {
                snprintf(atop, sizeof(atop), " (at #%llu)",
                         (unsigned long long)((q == comm->rank) ? enq
                                                                : ans[q].enq));
            }
        }
    }
    if (late->seq <= done) {
        /* A fence (scomm_comm_synchronize) is all that is pending: every
         * numbered call completed, the stream has other work. */
        o = (size_t)snprintf(msg, sizeof(msg), "%s: work on the %s "
                             "communicator's stream that scomm did not "
                             "enqueue (a replayed graph, a kernel) did not "
                             "complete within %lld ms; every call scomm "
                             "enqueued completed (op #%llu)", late->what,
                             v->ops->name, (long long)late->timeout_ms,
                             (unsigned long long)done);
        nmute = 0;
        nin   = 0;
    } else {
        o = (size_t)snprintf(msg, sizeof(msg), "%s (%s op #%llu, %s) not "
                             "done after %lld ms", late->what,
                             v->ops->name, (unsigned long long)late->seq,
                             late->call, (long long)late->timeout_ms);
    }
    if (late->seq <= done) {
        /* said above */
    } else if ((nnever > 0) && (o < sizeof(msg))) {
        o += (size_t)snprintf(msg + o, sizeof(msg) - o, ": rank%s %s never "
                              "reached it%s", (nnever > 1) ? "s" : "", never,
                              atop);
    } else if ((st != NULL) && (nmute == 0) && (nin > 0) &&
               (o < sizeof(msg))) {
        o += (size_t)snprintf(msg + o, sizeof(msg) - o, ": every rank "
                              "reached it (a hang inside %s or on the "
                              "device)", v->ops->name);
    }
    if ((nin > 0) && (nnever > 0) && (o < sizeof(msg))) {
        o += (size_t)snprintf(msg + o, sizeof(msg) - o, "; rank%s %s %s in "
                              "it", (nin > 1) ? "s" : "", in,
                              (nin > 1) ? "are" : "is");
    }
    if ((nmute > 0) && (o < sizeof(msg))) {
        o += (size_t)snprintf(msg + o, sizeof(msg) - o, "; no answer from "
                              "rank%s %s", (nmute > 1) ? "s" : "", mute);
    }
    if (o < sizeof(msg)) {
        /* short: a peer's notice carries about 200 characters */
        snprintf(msg + o, sizeof(msg) - o, "; %s comm aborted",
                 v->ops->name);
    }
    free(ans);
    free(st);
    scomm_world_fail(w, SCOMM_ERR_TIMED_OUT, w->rank, "%s", msg);
    scomm_vendor_kill(v);
}

/* One vendor communicator's tick; 1 when it has work pending. */
static int scomm_wd_check(scomm_vendor_wd_t *wd, scomm_vendor_t *v)
{
    scomm_vendor_slot_t *oldest = NULL;
    scomm_status_t st = SCOMM_OK, ast = SCOMM_OK;
    scomm_wd_late_t late;
    char err[SCOMM_VENDOR_ERR_MAX], why[SCOMM_VENDOR_ERR_MAX];
    const char *last;
    int pending;

    if (atomic_load(&v->state) == SCOMM_VENDOR_DEAD) {
        return 0;
    }
    if (atomic_load(&wd->w->fault.status) != 0) {
        scomm_vendor_kill(v); /* kernels waiting for a peer end */
        return 0;
    }
    if ((v->rt != NULL) && !wd->relaxed[v->ops->rt_kind]) {
        scomm_devrt_relax_thread(v->rt); /* invariant 3 */
        wd->relaxed[v->ops->rt_kind] = 1;
    }
    memset(&late, 0, sizeof(late));
    pthread_mutex_lock(&v->poll_lock);
    if (v->rt != NULL) {
        st = scomm_vendor_poll(v, &oldest);
        snprintf(why, sizeof(why), "%s", v->poll_err);
    }
    if ((oldest != NULL) && (scomm_now_ns() > oldest->deadline)) {
        late.seq        = oldest->seq_lo;
        late.timeout_ms = (int64_t)((oldest->deadline - oldest->t_ns) /
                                    1000000ull);
        late.what       = oldest->what;
        late.call       = oldest->call;
    }
    pending = (oldest != NULL);
    if ((st == SCOMM_OK) && (atomic_load(&v->state) != SCOMM_VENDOR_DEAD)) {
        last = atomic_load(&v->last_what);
        ast  = v->ops->async(v, (last != NULL) ? last : "its calls", err,
                             sizeof(err));
    }
    pthread_mutex_unlock(&v->poll_lock);
    if (st != SCOMM_OK) {
        (void)scomm_vendor_async_failed(v->comm, v, st, "%s", why);
        return 0;
    }
    if ((ast != SCOMM_OK) && (ast != SCOMM_INPROGRESS)) {
        (void)scomm_vendor_async_failed(v->comm, v, ast, "%s", err);
        return 0;
    }
    if (late.what != NULL) {
        scomm_wd_timeout(wd, v, &late);
        return 0;
    }
    return pending;
}

static void *scomm_wd_main(void *arg)
{
    scomm_vendor_wd_t *wd = arg;
    scomm_vendor_t *v;
    struct timespec ts;
    long wait_ns;
    int busy;

    pthread_mutex_lock(&wd->lock);
    while (!wd->stop) {
        busy = 0;
        scomm_wd_serve(wd); /* peers' notices before our own findings */
        for (v = wd->list; v != NULL; v = v->wd_next) {
            busy |= scomm_wd_check(wd, v);
        }
        wait_ns = busy ? SCOMM_WD_BUSY_NS : SCOMM_WD_IDLE_NS;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += wait_ns;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        if (!wd->stop) {
            (void)pthread_cond_timedwait(&wd->cv, &wd->lock, &ts);
        }
    }
    pthread_mutex_unlock(&wd->lock);
    return NULL;
}

/* ---- lifetime ------------------------------------------------------------ */

/* Give back the requests and free; world lock held, thread joined. A send
 * still in a transport keeps its buffer: then the struct is left alive. */
static void scomm_wd_free(scomm_vendor_wd_t *wd)
{
    scomm_world_t *w = wd->w;
    scomm_req_t **recvs[2] = {wd->qin, wd->ain};
    scomm_req_t **sends[2] = {wd->aout, wd->qout};
    int p, k, keep = 0;

    for (k = 0; k < 2; k++) {
        for (p = 0; (p < w->size) && (recvs[k] != NULL); p++) {
            if (recvs[k][p] == NULL) {
                continue;
            }
            if (!scomm_wd_done(recvs[k][p])) {
                scomm_list_del(&recvs[k][p]->list); /* still posted */
            }
            scomm_req_release(recvs[k][p]);
        }
        for (p = 0; (p < w->size) && (sends[k] != NULL); p++) {
            if (sends[k][p] == NULL) {
                continue;
            }
            if (scomm_wd_done(sends[k][p])) {
                scomm_req_release(sends[k][p]);
            } else {
                keep = 1; /* the world frees the request itself */
            }
        }
    }
    if (wd->pcomm != NULL) {
        free(wd->pcomm->ranks);
        free(wd->pcomm);
    }
    if (keep) {
        return; /* the buffers of sends in flight stay valid */
    }
    free(wd->qin);
    free(wd->qin_buf);
    free(wd->aout);
    free(wd->aout_buf);
    free(wd->ain);
    free(wd->ain_buf);
    free(wd->qout);
    pthread_cond_destroy(&wd->cv);
    pthread_mutex_destroy(&wd->lock);
    free(wd);
}

static scomm_vendor_wd_t *scomm_wd_new(scomm_world_t *w, char *err,
                                       size_t len)
{
    scomm_vendor_wd_t *wd = calloc(1, sizeof(*wd));
    size_t n = (size_t)w->size;
    int p, rc;

    if (wd == NULL) {
        snprintf(err, len, "out of memory for the watchdog");
        return NULL;
    }
    wd->w        = w;
    wd->qin      = calloc(n, sizeof(*wd->qin));
    wd->qin_buf  = calloc(n, sizeof(*wd->qin_buf));
    wd->aout     = calloc(n, sizeof(*wd->aout));
    wd->aout_buf = calloc(n, sizeof(*wd->aout_buf));
    wd->ain      = calloc(n, sizeof(*wd->ain));
    wd->ain_buf  = calloc(n, sizeof(*wd->ain_buf));
    wd->qout     = calloc(n, sizeof(*wd->qout));
    wd->pcomm    = scomm_comm_new(w, w->rank, w->size, SCOMM_WD_CTX);
    pthread_mutex_init(&wd->lock, NULL);
    pthread_cond_init(&wd->cv, NULL);
    if ((wd->qin == NULL) || (wd->qin_buf == NULL) || (wd->aout == NULL) ||
        (wd->aout_buf == NULL) || (wd->ain == NULL) ||
        (wd->ain_buf == NULL) || (wd->qout == NULL) || (wd->pcomm == NULL)) {
        snprintf(err, len, "out of memory for the watchdog");
        scomm_wd_free(wd);
        return NULL;
    }
    for (p = 0; p < w->size; p++) {
        wd->pcomm->ranks[p] = p;
    }
    wd->pcomm->cur_op = "the vendor watchdog";
    rc = pthread_create(&wd->thread, NULL, scomm_wd_main, wd);
    if (rc != 0) {
        snprintf(err, len, "cannot start the watchdog thread: %s",
                 strerror(rc));
        scomm_wd_free(wd);
        return NULL;
    }
    return wd;
}

scomm_status_t scomm_vendor_wd_add(scomm_vendor_t *v, char *err, size_t len)
{
    scomm_world_t *w = v->comm->world;
    scomm_vendor_wd_t *wd = w->vendor_wd;

    if (wd == NULL) {
        wd = scomm_wd_new(w, err, len);
        if (wd == NULL) {
            return SCOMM_ERR_NO_RESOURCE;
        }
        w->vendor_wd = wd;
    }
    pthread_mutex_lock(&wd->lock);
    v->wd_next = wd->list;
    wd->list   = v;
    pthread_cond_signal(&wd->cv);
    pthread_mutex_unlock(&wd->lock);
    return SCOMM_OK;
}

void scomm_vendor_wd_remove(scomm_vendor_t *v)
{
    scomm_world_t *w = v->comm->world;
    scomm_vendor_wd_t *wd;
    scomm_vendor_t **pp;
    int last;

    pthread_mutex_lock(&w->lock);
    wd = w->vendor_wd;
    if (wd == NULL) {
        pthread_mutex_unlock(&w->lock);
        return;
    }
    pthread_mutex_lock(&wd->lock);
    for (pp = &wd->list; *pp != NULL; pp = &(*pp)->wd_next) {
        if (*pp == v) {
            *pp = v->wd_next;
            break;
        }
    }
    last = (wd->list == NULL);
    if (last) {
        wd->stop     = 1;
        w->vendor_wd = NULL;
        pthread_cond_signal(&wd->cv);
    }
    pthread_mutex_unlock(&wd->lock);
    pthread_mutex_unlock(&w->lock);
    if (last) {
        pthread_join(wd->thread, NULL);
        pthread_mutex_lock(&w->lock);
        scomm_wd_free(wd);
        pthread_mutex_unlock(&w->lock);
    }
}
