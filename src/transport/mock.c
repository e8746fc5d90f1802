/*
 * mock.c - the mock transport: the ranks of a job are threads of one
 * process, messages are copied through in-process inboxes, and faults
 * (drop, delay, corrupt, kill a rank, fail a connect) are injected on
 * request, so every failure path is testable without a network.
 *
 * A job is the set of worlds created with the same (master address, master
 * port, job token). The first world to arrive creates the job in a
 * process-wide registry and copies the fault list into it (the faults added
 * with scomm_mock_fault_add and those of SCOMM_MOCK_FAULTS, see mock.h).
 * mock_init blocks until every rank of the job has joined, or the deadline.
 * The job holds one slot per rank: the rank's inbox and whether it is alive.
 *
 *   sender thread                         receiver thread (its world lock)
 *   mock_send: copy payload into a        mock_progress: take the whole
 *   message, append it to the             inbox, deliver each due message
 *   receiver's inbox (slot lock),         to the matching engine in order
 *   write the receiver's eventfd          (scomm_p2p_eager_begin/_end)
 *
 * Life of a rank's slot:
 *
 *   empty --mock_init--> joined --(all joined)--> running --mock_fini--> empty
 *             |                                     |
 *             +--deadline: mock_init leaves it      +--kill fault--> dead
 *
 * Notices between worlds travel as inbox messages too: a FAULT message
 * (abort, peer lost) makes the receiver's own progress call
 * scomm_world_fail, a CLOSED message makes it call scomm_world_peer_closed.
 * Signs of life are a timestamp per slot, as in shm's segment.
 *
 * Memory registration (the ops table's mem_reg slot) is faked as a real
 * fabric's would be used: each registration is a record with a fresh key,
 * released by mem_dereg; counters (scomm_mock_mr_stats) let tests see that
 * the core registers what it should and releases every registration before
 * the transport's fini.
 *
 * Faults, evaluated by the sender in mock_send (or mock_connect):
 *   drop     the message is freed; the send completes, the receiver waits;
 *   delay    the message carries a deliver_at time; progress leaves it (and
 *            what follows it from the same sender) in place until then,
 *            and poll_fds hands the wait a timerfd armed for that time;
 *   corrupt  the middle byte of the copied payload is inverted;
 *   kill     the sender posts PEER_LOST notices to every other rank, marks
 *            its slot dead (nothing more goes in or out) and fails its own
 *            world with ABORTED; the dying send never completes, so its
 *            wait ends with the kill message;
 *   fail_connect  mock_connect fails with PEER_LOST.
 *
 * Invariants:
 *  1. No thread takes another world's lock or writes another world's
 *     fields: a world hears of other ranks only through its inbox, and a
 *     sender only reads the receiver's wake_fd (scomm_world_wake).
 *  2. Locks: registry lock, then a slot lock, then nothing. A slot's world
 *     pointer is set and cleared under its slot lock, so a sender that saw
 *     it non-NULL under the lock may wake that world.
 *  3. Messages from one rank to another are delivered in send order: the
 *     inbox is a FIFO and a delayed message holds back the later messages
 *     of its sender (CLOSED included, so a clean close never overtakes
 *     data). FAULT notices are never held back.
 *  4. Fault counters live in the sender's context and count per
 *     (sender, destination) pair (kill: per sender), so the same program
 *     hits the same messages on every run when no delay is injected.
 *  5. A job's faults are fixed when it is created; the job is freed when
 *     its last world leaves (mock_fini, or mock_init giving up).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "../core/module.h"
#include "../core/scomm_int.h"
#include "mock.h"

#define MOCK_MISSING_MAX 16 /* ranks named in a join timeout message */

static const scomm_param_t mock_params[] = {
    {.name = "SCOMM_MOCK_FAULTS", .defval = "", .type = SCOMM_PARAM_STRING,
     .help = "faults the mock backend injects in each new job, ';' "
             "between them: drop, delay:ms=M, corrupt, with src=, dst=, "
             "msg=; kill:rank=R:msg=N; fail_connect:rank=R (mock.h)"},
};

/* ---- faults -------------------------------------------------------------- */

enum {
    MOCK_DROP = 1,
    MOCK_DELAY,
    MOCK_CORRUPT,
    MOCK_KILL,
    MOCK_FAIL_CONNECT
};

enum {
    MOCK_F_SRC  = 1u << 0,
    MOCK_F_DST  = 1u << 1,
    MOCK_F_MSG  = 1u << 2,
    MOCK_F_MS   = 1u << 3,
    MOCK_F_RANK = 1u << 4
};

typedef struct mock_fault {
    int      type;
    int      src;   /* sender, -1 for any */
    int      dst;   /* receiver, -1 for any */
    int      rank;  /* kill, fail_connect */
    uint64_t msg;   /* k-th message, 0 for every message */
    uint64_t ms;    /* delay */
} mock_fault_t;

static const struct {
    const char *name;
    int         type;
    unsigned    allowed;
    unsigned    required;
    const char *fields;
} mock_fault_types[] = {
    {"drop", MOCK_DROP, MOCK_F_SRC | MOCK_F_DST | MOCK_F_MSG, 0,
     "src, dst, msg"},
    {"delay", MOCK_DELAY, MOCK_F_SRC | MOCK_F_DST | MOCK_F_MSG | MOCK_F_MS,
     MOCK_F_MS, "ms, src, dst, msg"},
    {"corrupt", MOCK_CORRUPT, MOCK_F_SRC | MOCK_F_DST | MOCK_F_MSG, 0,
     "src, dst, msg"},
    {"kill", MOCK_KILL, MOCK_F_RANK | MOCK_F_MSG, MOCK_F_RANK | MOCK_F_MSG,
     "rank, msg"},
    {"fail_connect", MOCK_FAIL_CONNECT, MOCK_F_RANK, MOCK_F_RANK, "rank"},
};

static const struct {
    const char *name;
    unsigned    bit;
    uint64_t    min;
    uint64_t    max;
} mock_fault_fields[] = {
    {"src", MOCK_F_SRC, 0, SCOMM_WORLD_MAX - 1},
    {"dst", MOCK_F_DST, 0, SCOMM_WORLD_MAX - 1},
    {"rank", MOCK_F_RANK, 0, SCOMM_WORLD_MAX - 1},
    {"msg", MOCK_F_MSG, 1, UINT32_MAX},
    {"ms", MOCK_F_MS, 0, 3600000},
};

/* The process-wide list, copied into each job when it is created. */
static pthread_mutex_t mock_fault_lock = PTHREAD_MUTEX_INITIALIZER;
static mock_fault_t *mock_faults;
static size_t mock_nfaults;

/* Parse one "type:field=value:..." entry (modified in place). */
static int mock_fault_parse_one(char *entry, mock_fault_t *f, char *err,
                                size_t errlen)
{
    char text[128];
    char *field, *next, *eq, *end;
    unsigned seen = 0;
    uint64_t v;
    size_t t, i;

    snprintf(text, sizeof(text), "%s", entry);
    memset(f, 0, sizeof(*f));
    f->src  = -1;
    f->dst  = -1;
    f->rank = -1;
    next    = strchr(entry, ':');
    if (next != NULL) {
        *next++ = '\0';
    }
    for (t = 0; t < SCOMM_ARRAY_SIZE(mock_fault_types); t++) {
        if (strcmp(entry, mock_fault_types[t].name) == 0) {
            break;
        }
    }
    if (t == SCOMM_ARRAY_SIZE(mock_fault_types)) {
        snprintf(err, errlen, "fault '%s': unknown fault type '%s' (known: "
                 "drop, delay, corrupt, kill, fail_connect)", text, entry);
        return -1;
    }
    f->type = mock_fault_types[t].type;
    while (next != NULL) {
        field = next;
        next  = strchr(field, ':');
        if (next != NULL) {
            *next++ = '\0';
        }
        eq = strchr(field, '=');
        if (eq == NULL) {
            snprintf(err, errlen, "fault '%s': field '%s' has no '=value'",
                     text, field);
            return -1;
        }
        *eq++ = '\0';
        for (i = 0; i < SCOMM_ARRAY_SIZE(mock_fault_fields); i++) {
            if (strcmp(field, mock_fault_fields[i].name) == 0) {
                break;
            }
        }
        if ((i == SCOMM_ARRAY_SIZE(mock_fault_fields)) ||
            !(mock_fault_types[t].allowed & mock_fault_fields[i].bit)) {
            snprintf(err, errlen, "fault '%s': unknown field '%s' for %s "
                     "(fields: %s)", text, field, mock_fault_types[t].name,
                     mock_fault_types[t].fields);
            return -1;
        }
        if (seen & mock_fault_fields[i].bit) {
            snprintf(err, errlen, "fault '%s': field '%s' given twice", text,
                     field);
            return -1;
        }
        seen |= mock_fault_fields[i].bit;
        errno = 0;
        v     = strtoull(eq, &end, 10);
        if ((eq[0] < '0') || (eq[0] > '9') || (*end != '\0') ||
            (errno != 0) || (v < mock_fault_fields[i].min) ||
            (v > mock_fault_fields[i].max)) {
            snprintf(err, errlen, "fault '%s': field '%s' has a bad value "
                     "'%s' (want an integer %llu..%llu)", text, field, eq,
                     (unsigned long long)mock_fault_fields[i].min,
                     (unsigned long long)mock_fault_fields[i].max);
            return -1;
        }
        switch (mock_fault_fields[i].bit) {
        case MOCK_F_SRC:
            f->src = (int)v;
            break;
        case MOCK_F_DST:
            f->dst = (int)v;
            break;
        case MOCK_F_RANK:
            f->rank = (int)v;
            break;
        case MOCK_F_MSG:
            f->msg = v;
            break;
        default:
            f->ms = v;
            break;
        }
    }
    for (i = 0; i < SCOMM_ARRAY_SIZE(mock_fault_fields); i++) {
        if ((mock_fault_types[t].required & mock_fault_fields[i].bit) &&
            !(seen & mock_fault_fields[i].bit)) {
            snprintf(err, errlen, "fault '%s': %s needs field '%s'", text,
                     mock_fault_types[t].name, mock_fault_fields[i].name);
            return -1;
        }
    }
    return 0;
}

/* Parse a whole spec and append its faults to *list (all or nothing). */
static int mock_fault_parse(const char *spec, mock_fault_t **list,
                            size_t *n, char *err, size_t errlen)
{
    mock_fault_t *grown, f;
    char *buf, *entry, *save = NULL, *end;
    size_t count = *n;
    int ret      = 0;

    if (spec == NULL) {
        snprintf(err, errlen, "fault spec is NULL");
        return -1;
    }
    buf = strdup(spec);
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (entry = strtok_r(buf, ";", &save); entry != NULL;
         entry = strtok_r(NULL, ";", &save)) {
        while ((*entry == ' ') || (*entry == '\t')) {
            entry++;
        }
        end = entry + strlen(entry);
        while ((end > entry) && ((end[-1] == ' ') || (end[-1] == '\t'))) {
            *--end = '\0';
        }
        if (*entry == '\0') {
            continue;
        }
        if (mock_fault_parse_one(entry, &f, err, errlen) != 0) {
            ret = -1;
            break;
        }
        grown = realloc(*list, (count + 1) * sizeof(*grown));
        if (grown == NULL) {
            snprintf(err, errlen, "out of memory");
            ret = -1;
            break;
        }
        *list          = grown;
        (*list)[count] = f;
        count++;
    }
    free(buf);
    if (ret == 0) {
        *n = count;
    }
    return ret;
}

int scomm_mock_fault_add(const char *spec, char *err, size_t errlen)
{
    int ret;

    pthread_mutex_lock(&mock_fault_lock);
    ret = mock_fault_parse(spec, &mock_faults, &mock_nfaults, err, errlen);
    pthread_mutex_unlock(&mock_fault_lock);
    return ret;
}

void scomm_mock_fault_clear(void)
{
    pthread_mutex_lock(&mock_fault_lock);
    free(mock_faults);
    mock_faults  = NULL;
    mock_nfaults = 0;
    pthread_mutex_unlock(&mock_fault_lock);
}

/* Does f select the n-th message from src to dst? */
static int mock_fault_hits(const mock_fault_t *f, int src, int dst,
                           uint64_t n)
{
    return ((f->src < 0) || (f->src == src)) &&
           ((f->dst < 0) || (f->dst == dst)) &&
           ((f->msg == 0) || (f->msg == n));
}

/* ---- jobs and slots ------------------------------------------------------ */

enum {
    MOCK_MSG_DATA   = 1,
    MOCK_MSG_CLOSED = 2, /* the sender closed its world cleanly */
    MOCK_MSG_FAULT  = 3  /* fail the receiver's world; data is the text */
};

typedef struct mock_msg {
    scomm_list_t  list;
    int           kind;
    int           src;          /* world rank of the sender */
    uint32_t      ctx;
    int32_t       tag;
    int32_t       status;       /* MOCK_MSG_FAULT */
    int32_t       failed_rank;  /* MOCK_MSG_FAULT */
    uint64_t      deliver_at;   /* monotonic ns; 0: at once */
    size_t        len;
    unsigned char data[];
} mock_msg_t;

typedef struct mock_slot {
    pthread_mutex_t  lock;      /* guards world, inbox */
    scomm_world_t   *world;     /* while the rank is attached, else NULL */
    scomm_list_t     inbox;     /* mock_msg_t, in arrival order */
    _Atomic int      nonempty;  /* hint: inbox may hold messages */
    _Atomic uint64_t dead;      /* killed at its message dead; 0: alive */
    _Atomic uint64_t heartbeat; /* owner's last sign of life (monotonic) */
    int              joined;    /* guarded by the registry lock */
} mock_slot_t;

typedef struct mock_job {
    scomm_list_t   list;      /* in mock_jobs */
    char           addr[SCOMM_ADDR_MAX + 16];
    int            port;
    char           token[SCOMM_TOKEN_MAX];
    int            size;
    int            njoined;
    int            refs;      /* worlds attached */
    pthread_cond_t joined_cv; /* signalled when a rank joins */
    mock_fault_t  *faults;    /* fixed at creation */
    size_t         nfaults;
    mock_slot_t   *slots;     /* size entries */
} mock_job_t;

typedef struct mock_ctx {
    scomm_world_t *w;
    mock_job_t    *job;
    mock_slot_t   *self;
    int            rank;
    uint64_t      *sent;    /* messages sent per destination */
    uint64_t       nsent;   /* messages sent in all */
    scomm_list_t   held;    /* arrived, not yet delivered */
    unsigned char *blocked; /* per source: scratch of mock_progress */
    uint64_t       next_due; /* earliest delayed message, 0 if none */
    int            timer_fd; /* wakes a sleeping wait at next_due */
    int            armed;    /* timer_fd is set */
    uint64_t       mr_live;  /* registrations not yet released */
} mock_ctx_t;

/* A fake memory registration (mock_mem_reg). */
#define MOCK_MR_MAGIC 0x4d4f434bu /* "MOCK" */

typedef struct mock_mr {
    uint32_t  magic;
    void     *addr;
    size_t    len;
    unsigned  access;
} mock_mr_t;

static _Atomic uint64_t mock_mr_live_all;
static _Atomic uint64_t mock_mr_total;
static _Atomic uint64_t mock_mr_leaked;
static _Atomic uint64_t mock_mr_key;

static pthread_mutex_t mock_registry_lock = PTHREAD_MUTEX_INITIALIZER;
static scomm_list_t mock_jobs = {&mock_jobs, &mock_jobs};

static void mock_free_msgs(scomm_list_t *head)
{
    scomm_list_t *e;

    while ((e = scomm_list_pop_front(head)) != NULL) {
        free(scomm_container_of(e, mock_msg_t, list));
    }
}

/* Called with the registry lock held, once no world is attached. */
static void mock_job_free(mock_job_t *job)
{
    int i;

    scomm_list_del(&job->list);
    for (i = 0; i < job->size; i++) {
        mock_free_msgs(&job->slots[i].inbox);
        pthread_mutex_destroy(&job->slots[i].lock);
    }
    pthread_cond_destroy(&job->joined_cv);
    free(job->slots);
    free(job->faults);
    free(job);
}

static mock_job_t *mock_job_find(const scomm_world_t *w)
{
    scomm_list_t *e, *t;
    mock_job_t *job;

    scomm_list_for_each_safe(e, t, &mock_jobs) {
        job = scomm_container_of(e, mock_job_t, list);
        if ((job->port == w->master_port) &&
            (strcmp(job->addr, w->master_addr) == 0) &&
            (strcmp(job->token, w->token) == 0)) {
            return job;
        }
    }
    return NULL;
}

/* Create w's job with the registry lock held; NULL with a reason in err. */
static mock_job_t *mock_job_new(scomm_world_t *w, scomm_status_t *status_p,
                                char *err, size_t errlen)
{
    pthread_condattr_t attr;
    scomm_status_t status;
    scomm_pval_t env;
    mock_job_t *job;
    char perr[256];
    int i, nomem = 0;

    status = scomm_param_get("SCOMM_MOCK_FAULTS", NULL, &env, err, errlen);
    if (status != SCOMM_OK) {
        *status_p = status;
        return NULL;
    }
    job = calloc(1, sizeof(*job));
    if (job != NULL) {
        job->slots = calloc((size_t)w->size, sizeof(*job->slots));
    }
    if ((job == NULL) || (job->slots == NULL)) {
        free(job);
        *status_p = SCOMM_ERR_NO_MEMORY;
        snprintf(err, errlen, "out of memory for a %d-rank job", w->size);
        return NULL;
    }
    pthread_mutex_lock(&mock_fault_lock);
    if (mock_nfaults > 0) {
        job->faults = malloc(mock_nfaults * sizeof(*job->faults));
        if (job->faults != NULL) {
            memcpy(job->faults, mock_faults,
                   mock_nfaults * sizeof(*job->faults));
            job->nfaults = mock_nfaults;
        } else {
            nomem = 1;
        }
    }
    pthread_mutex_unlock(&mock_fault_lock);
    if (nomem) {
        free(job->slots);
        free(job);
        *status_p = SCOMM_ERR_NO_MEMORY;
        snprintf(err, errlen, "out of memory copying the fault list");
        return NULL;
    }
    if ((env.text[0] != '\0') &&
        (mock_fault_parse(env.text, &job->faults, &job->nfaults, perr,
                          sizeof(perr)) != 0)) {
        free(job->faults);
        free(job->slots);
        free(job);
        *status_p = SCOMM_ERR_BAD_CONFIG;
        snprintf(err, errlen, "SCOMM_MOCK_FAULTS: %s", perr);
        return NULL;
    }
    snprintf(job->addr, sizeof(job->addr), "%s", w->master_addr);
    snprintf(job->token, sizeof(job->token), "%s", w->token);
    job->port = w->master_port;
    job->size = w->size;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&job->joined_cv, &attr);
    pthread_condattr_destroy(&attr);
    for (i = 0; i < job->size; i++) {
        pthread_mutex_init(&job->slots[i].lock, NULL);
        scomm_list_init(&job->slots[i].inbox);
    }
    scomm_list_push_back(&mock_jobs, &job->list);
    return job;
}

/* Append m to rank dst's inbox and wake its world; a message to a rank
 * that left or died is discarded, as bytes sent to a dead process are. */
static void mock_post(mock_job_t *job, int dst, mock_msg_t *m)
{
    mock_slot_t *s = &job->slots[dst];
    int posted     = 0;

    pthread_mutex_lock(&s->lock);
    if ((s->world != NULL) && !atomic_load(&s->dead)) {
        scomm_list_push_back(&s->inbox, &m->list);
        atomic_store(&s->nonempty, 1);
        scomm_world_wake(s->world);
        posted = 1;
    }
    pthread_mutex_unlock(&s->lock);
    if (!posted) {
        free(m);
    }
}

/* Post a notice (CLOSED or FAULT) to every other rank except skip. */
static void mock_notify_all(mock_ctx_t *c, int kind, int32_t status,
                            int32_t failed_rank, const char *text, int skip)
{
    size_t len = (text != NULL) ? strlen(text) + 1 : 0;
    mock_msg_t *m;
    int p;

    for (p = 0; p < c->job->size; p++) {
        if ((p == c->rank) || (p == skip)) {
            continue;
        }
        m = calloc(1, sizeof(*m) + len);
        if (m == NULL) {
            continue; /* best effort, like a notice over a network */
        }
        m->kind        = kind;
        m->src         = c->rank;
        m->status      = status;
        m->failed_rank = failed_rank;
        m->len         = len;
        if (len > 0) {
            memcpy(m->data, text, len);
        }
        mock_post(c->job, p, m);
    }
}

/* ---- ops ----------------------------------------------------------------- */

static void mock_ctx_free(mock_ctx_t *c)
{
    mock_free_msgs(&c->held);
    if (c->timer_fd >= 0) {
        close(c->timer_fd);
    }
    free(c->sent);
    free(c->blocked);
    free(c);
}

/* Leave the job (registry lock held): detach the world from its slot and
 * free the job once no world is attached. */
static void mock_leave(mock_ctx_t *c)
{
    mock_job_t *job = c->job;

    pthread_mutex_lock(&c->self->lock);
    c->self->world = NULL;
    mock_free_msgs(&c->self->inbox);
    atomic_store(&c->self->nonempty, 0);
    pthread_mutex_unlock(&c->self->lock);
    if (--job->refs == 0) {
        mock_job_free(job);
    }
}

static scomm_status_t mock_join_timeout(mock_ctx_t *c)
{
    scomm_world_t *w = c->w;
    mock_job_t *job  = c->job;
    char missing[128];
    size_t o = 0;
    int p, first = -1, named = 0;

    missing[0] = '\0';
    for (p = 0; p < job->size; p++) {
        if (job->slots[p].joined) {
            continue;
        }
        if (first < 0) {
            first = p;
        }
        if (named++ == MOCK_MISSING_MAX) {
            snprintf(missing + o, sizeof(missing) - o, ",...");
            break;
        }
        o += (size_t)snprintf(missing + o, sizeof(missing) - o, "%s%d",
                              (o == 0) ? "" : ",", p);
    }
    c->self->joined = 0;
    job->njoined--;
    mock_leave(c);
    pthread_mutex_unlock(&mock_registry_lock);
    scomm_world_fail(w, SCOMM_ERR_TIMED_OUT, first,
                     "mock: timed out after %lld ms waiting for rank %s to "
                     "join job %s:%d",
                     (long long)w->cfg.timeout_ms, missing, w->master_addr,
                     w->master_port);
    mock_ctx_free(c);
    return SCOMM_ERR_TIMED_OUT;
}

static scomm_status_t mock_init(scomm_world_t *w, void **ctx_p)
{
    uint64_t deadline = scomm_deadline_ms(w->cfg.timeout_ms);
    scomm_status_t status = SCOMM_OK;
    scomm_rankinfo_t me;
    struct timespec ts;
    char err[384];
    mock_job_t *job;
    mock_ctx_t *c;
    int p;

    c = calloc(1, sizeof(*c));
    if (c != NULL) {
        c->sent    = calloc((size_t)w->size, sizeof(*c->sent));
        c->blocked = calloc((size_t)w->size, sizeof(*c->blocked));
        scomm_list_init(&c->held);
        /* Without a timer a delayed message waits for the wait loop's
         * next 100 ms turn: later, never earlier. */
        c->timer_fd = timerfd_create(CLOCK_MONOTONIC,
                                     TFD_NONBLOCK | TFD_CLOEXEC);
    }
    if ((c == NULL) || (c->sent == NULL) || (c->blocked == NULL)) {
        if (c != NULL) {
            mock_ctx_free(c);
        }
        scomm_world_fail(w, SCOMM_ERR_NO_MEMORY, -1, "mock: out of memory");
        return SCOMM_ERR_NO_MEMORY;
    }
    c->w    = w;
    c->rank = w->rank;

    pthread_mutex_lock(&mock_registry_lock);
    job = mock_job_find(w);
    if (job == NULL) {
        job = mock_job_new(w, &status, err, sizeof(err));
        if (job == NULL) {
            pthread_mutex_unlock(&mock_registry_lock);
            mock_ctx_free(c);
            scomm_world_fail(w, status, -1, "mock: %s", err);
            return status;
        }
    }
    if (job->size != w->size) {
        p = job->size; /* the job may go once the lock is dropped */
        pthread_mutex_unlock(&mock_registry_lock);
        mock_ctx_free(c);
        scomm_world_fail(w, SCOMM_ERR_MISMATCH, -1,
                         "mock: rank %d gives world size %d but job %s:%d "
                         "has %d ranks", w->rank, w->size, w->master_addr,
                         w->master_port, p);
        return SCOMM_ERR_MISMATCH;
    }
    if (job->slots[w->rank].joined) {
        pthread_mutex_unlock(&mock_registry_lock);
        mock_ctx_free(c);
        scomm_world_fail(w, SCOMM_ERR_MISMATCH, w->rank,
                         "mock: rank %d joined job %s:%d twice", w->rank,
                         w->master_addr, w->master_port);
        return SCOMM_ERR_MISMATCH;
    }
    c->job  = job;
    c->self = &job->slots[w->rank];
    c->self->joined = 1;
    atomic_store(&c->self->heartbeat, scomm_now_ns());
    pthread_mutex_lock(&c->self->lock);
    c->self->world = w;
    pthread_mutex_unlock(&c->self->lock);
    job->njoined++;
    job->refs++;
    pthread_cond_broadcast(&job->joined_cv);
    while (job->njoined < job->size) {
        if (scomm_now_ns() >= deadline) {
            return mock_join_timeout(c); /* unlocks the registry */
        }
        if (deadline == UINT64_MAX) {
            pthread_cond_wait(&job->joined_cv, &mock_registry_lock);
        } else {
            ts.tv_sec  = (time_t)(deadline / 1000000000ull);
            ts.tv_nsec = (long)(deadline % 1000000000ull);
            pthread_cond_timedwait(&job->joined_cv, &mock_registry_lock, &ts);
        }
    }
    pthread_mutex_unlock(&mock_registry_lock);

    /* Every rank is a thread of this process: all are local. */
    me = w->info[w->rank];
    for (p = 0; p < w->size; p++) {
        w->info[p]             = me;
        w->info[p].rank        = p;
        w->info[p].tcp_addr[0] = '\0';
        w->info[p].tcp_port    = 0;
        w->info[p].shm_name[0] = '\0';
        w->info[p].shm_size    = 0;
    }
    scomm_debug(SCOMM_SUB_TL, "mock: rank %d joined job %s:%d (%d ranks, "
                "%zu faults)", w->rank, w->master_addr, w->master_port,
                w->size, job->nfaults);
    *ctx_p = c;
    return SCOMM_OK;
}

static int mock_can_reach(void *vctx, int peer)
{
    (void)vctx;
    (void)peer;
    return 1;
}

static scomm_status_t mock_connect(void *vctx, const int *peers, int npeers,
                                   uint64_t deadline)
{
    mock_ctx_t *c = vctx;
    size_t i;
    int peer      = (npeers > 0) ? peers[0] : -1;

    (void)deadline;
    for (i = 0; i < c->job->nfaults; i++) {
        if ((c->job->faults[i].type == MOCK_FAIL_CONNECT) &&
            (c->job->faults[i].rank == c->rank)) {
            scomm_world_fail(c->w, SCOMM_ERR_PEER_LOST, peer,
                             "mock: rank %d cannot connect to rank %d "
                             "(fault injection fail_connect:rank=%d)",
                             c->rank, peer, c->rank);
            return SCOMM_ERR_PEER_LOST;
        }
    }
    return SCOMM_OK;
}

/* The kill fault: this rank dies while sending its k-th message. */
static void mock_die(mock_ctx_t *c, uint64_t k)
{
    char text[160];

    snprintf(text, sizeof(text), "rank %d (mock) died: killed by fault "
             "injection at its message %llu", c->rank,
             (unsigned long long)k);
    scomm_info(SCOMM_SUB_TL, "mock: killing rank %d at its message %llu "
               "(fault injection)", c->rank, (unsigned long long)k);
    /* Tell the others first, then mark this rank dead: from then on it
     * neither sends nor receives anything, notices included. */
    mock_notify_all(c, MOCK_MSG_FAULT, SCOMM_ERR_PEER_LOST, c->rank, text,
                    -1);
    atomic_store(&c->self->dead, k);
    scomm_world_fail(c->w, SCOMM_ERR_ABORTED, c->rank,
                     "rank %d killed by fault injection at message %llu",
                     c->rank, (unsigned long long)k);
}

static scomm_status_t mock_send(void *vctx, scomm_req_t *req)
{
    mock_ctx_t *c        = vctx;
    mock_job_t *job      = c->job;
    int dst              = req->peer;
    uint64_t n_pair      = ++c->sent[dst];
    uint64_t n_all       = ++c->nsent;
    uint64_t delay_ms    = 0;
    int drop = 0, corrupt = 0;
    const mock_fault_t *f;
    mock_msg_t *m;
    size_t i;

    if (atomic_load(&c->self->dead)) {
        return SCOMM_OK; /* a dead rank's send never completes */
    }
    for (i = 0; i < job->nfaults; i++) {
        f = &job->faults[i];
        switch (f->type) {
        case MOCK_KILL:
            if ((f->rank == c->rank) && (f->msg == n_all)) {
                /* The request stays pending: the world's fault ends the
                 * wait with the kill message. */
                mock_die(c, n_all);
                return SCOMM_OK;
            }
            break;
        case MOCK_DROP:
            drop |= mock_fault_hits(f, c->rank, dst, n_pair);
            break;
        case MOCK_DELAY:
            if (mock_fault_hits(f, c->rank, dst, n_pair)) {
                delay_ms = SCOMM_MAX(delay_ms, f->ms);
            }
            break;
        case MOCK_CORRUPT:
            corrupt |= mock_fault_hits(f, c->rank, dst, n_pair);
            break;
        default:
            break;
        }
    }
    if (drop) {
        scomm_info(SCOMM_SUB_TL, "mock: dropping message %llu from rank %d "
                   "to rank %d (%zu bytes, tag %d; fault injection)",
                   (unsigned long long)n_pair, c->rank, dst, req->len,
                   (int)req->tag);
        req->xfer = req->len;
        scomm_req_complete(req, SCOMM_OK);
        return SCOMM_OK;
    }
    m = malloc(sizeof(*m) + req->len);
    if (m == NULL) {
        return SCOMM_ERR_NO_MEMORY;
    }
    memset(m, 0, sizeof(*m));
    m->kind = MOCK_MSG_DATA;
    m->src  = c->rank;
    m->ctx  = req->ctx;
    m->tag  = req->tag;
    m->len  = req->len;
    if (req->len > 0) {
        memcpy(m->data, req->buf, req->len);
    }
    if (corrupt && (m->len > 0)) {
        m->data[m->len / 2] ^= 0xff;
        scomm_info(SCOMM_SUB_TL, "mock: corrupting byte %zu of message %llu "
                   "from rank %d to rank %d (fault injection)", m->len / 2,
                   (unsigned long long)n_pair, c->rank, dst);
    }
    if (delay_ms > 0) {
        m->deliver_at = scomm_now_ns() + delay_ms * 1000000ull;
    }
    mock_post(job, dst, m);
    req->xfer = req->len;
    scomm_req_complete(req, SCOMM_OK);
    return SCOMM_OK;
}

static scomm_status_t mock_rndv_start(void *vctx, int peer,
                                      scomm_req_t *rreq,
                                      const scomm_tl_cookie_t *cookie,
                                      scomm_status_t reject_status)
{
    mock_ctx_t *c = vctx;

    (void)rreq;
    (void)cookie;
    (void)reject_status;
    /* The mock sends everything eagerly: no RTS exists to answer. */
    scomm_error(SCOMM_SUB_TL, "mock: rndv_start for rank %d on rank %d: the "
                "mock transport has no rendezvous", peer, c->rank);
    return SCOMM_ERR_INTERNAL;
}

/* Hand one data message to the matching engine. */
static void mock_deliver(mock_ctx_t *c, mock_msg_t *m)
{
    scomm_world_t *w = c->w;
    scomm_rx_t rx;
    void *dst;

    dst = scomm_p2p_eager_begin(w, m->src, m->ctx, m->tag, m->len, &rx);
    if ((dst == NULL) && (m->len > 0)) {
        scomm_world_fail(w, SCOMM_ERR_NO_MEMORY, m->src,
                         "mock: out of memory buffering a %zu-byte message "
                         "from rank %d", m->len, m->src);
        return;
    }
    if ((dst != NULL) && (m->len > 0)) {
        memcpy(dst, m->data, m->len);
    }
    if (rx.req != NULL) {
        rx.req->xfer = m->len;
    }
    scomm_p2p_eager_end(w, m->src, &rx);
}

static int mock_progress(void *vctx)
{
    mock_ctx_t *c = vctx;
    scomm_world_t *w = c->w;
    scomm_list_t *e, *t;
    uint64_t now = 0;
    mock_msg_t *m;
    int n = 0, nblocked = 0;

    c->next_due = 0;
    if (atomic_load(&c->self->nonempty)) {
        pthread_mutex_lock(&c->self->lock);
        while ((e = scomm_list_pop_front(&c->self->inbox)) != NULL) {
            scomm_list_push_back(&c->held, e);
        }
        atomic_store(&c->self->nonempty, 0);
        pthread_mutex_unlock(&c->self->lock);
    }
    scomm_list_for_each_safe(e, t, &c->held) {
        m = scomm_container_of(e, mock_msg_t, list);
        if (m->kind == MOCK_MSG_FAULT) {
            scomm_list_del(e);
            if (atomic_load(&w->fault.status) == 0) {
                scomm_world_fail(w, (scomm_status_t)m->status,
                                 m->failed_rank, "%s", (char *)m->data);
            }
            free(m);
            n++;
            continue;
        }
        if (c->blocked[m->src]) {
            continue; /* behind a delayed message of the same sender */
        }
        if (m->deliver_at != 0) {
            if (now == 0) {
                now = scomm_now_ns();
            }
            if (m->deliver_at > now) {
                c->blocked[m->src] = 1;
                nblocked++;
                if ((c->next_due == 0) || (m->deliver_at < c->next_due)) {
                    c->next_due = m->deliver_at;
                }
                continue;
            }
        }
        scomm_list_del(e);
        if (m->kind == MOCK_MSG_CLOSED) {
            scomm_world_peer_closed(w, m->src);
        } else {
            mock_deliver(c, m);
        }
        free(m);
        n++;
    }
    if (nblocked > 0) {
        memset(c->blocked, 0, (size_t)c->job->size);
    }
    return n;
}

/* Senders write the world's own eventfd, which the core polls; the only
 * fd of our own is the timer of the earliest delayed message. */
static int mock_poll_fds(void *vctx, struct pollfd *fds, int max)
{
    mock_ctx_t *c = vctx;
    struct itimerspec its;

    if (c->timer_fd < 0) {
        return 0;
    }
    memset(&its, 0, sizeof(its));
    if ((c->next_due == 0) || (max < 1)) {
        if (c->armed) {
            timerfd_settime(c->timer_fd, 0, &its, NULL); /* disarm */
            c->armed = 0;
        }
        return 0;
    }
    /* Setting the timer also clears an expiry nobody read. */
    its.it_value.tv_sec  = (time_t)(c->next_due / 1000000000ull);
    its.it_value.tv_nsec = (long)(c->next_due % 1000000000ull);
    if (timerfd_settime(c->timer_fd, TFD_TIMER_ABSTIME, &its, NULL) != 0) {
        return 0;
    }
    c->armed       = 1;
    fds[0].fd      = c->timer_fd;
    fds[0].events  = POLLIN;
    fds[0].revents = 0;
    return 1;
}

static void mock_query(void *vctx, scomm_tl_attr_t *attr)
{
    (void)vctx;
    attr->caps      = scomm_tl_mock_ops.caps;
    attr->eager_max = SIZE_MAX; /* every message is copied at once */
}

static scomm_status_t mock_mem_reg(void *vctx, void *addr, size_t len,
                                   unsigned access, scomm_tl_mr_t *mr)
{
    mock_ctx_t *c = vctx;
    mock_mr_t *m;

    if ((addr == NULL) || (len == 0) || (access == 0)) {
        /* The core never asks this: count it where tests look. */
        scomm_error(SCOMM_SUB_TL, "mock: mem_reg of %p, %zu bytes, access "
                    "%#x", addr, len, access);
        atomic_fetch_add(&mock_mr_leaked, 1);
        return SCOMM_ERR_INTERNAL;
    }
    m = malloc(sizeof(*m));
    if (m == NULL) {
        return SCOMM_ERR_NO_MEMORY;
    }
    m->magic   = MOCK_MR_MAGIC;
    m->addr    = addr;
    m->len     = len;
    m->access  = access;
    mr->handle = m;
    mr->desc   = m;
    mr->key    = atomic_fetch_add(&mock_mr_key, 1) + 1;
    mr->raddr  = (uint64_t)(uintptr_t)addr;
    c->mr_live++;
    atomic_fetch_add(&mock_mr_live_all, 1);
    atomic_fetch_add(&mock_mr_total, 1);
    return SCOMM_OK;
}

static void mock_mem_dereg(void *vctx, scomm_tl_mr_t *mr)
{
    mock_ctx_t *c = vctx;
    mock_mr_t *m  = mr->handle;

    if ((m == NULL) || (m->magic != MOCK_MR_MAGIC) || (c->mr_live == 0)) {
        /* A double or foreign release, as a fabric would refuse it. */
        scomm_error(SCOMM_SUB_TL, "mock: mem_dereg of a registration it "
                    "does not hold (%p)", (void *)m);
        atomic_fetch_add(&mock_mr_leaked, 1);
        return;
    }
    m->magic   = 0;
    free(m);
    mr->handle = NULL;
    c->mr_live--;
    atomic_fetch_sub(&mock_mr_live_all, 1);
}

void scomm_mock_mr_stats(uint64_t *live, uint64_t *total, uint64_t *leaked)
{
    *live   = atomic_load(&mock_mr_live_all);
    *total  = atomic_load(&mock_mr_total);
    *leaked = atomic_load(&mock_mr_leaked);
}

static void mock_check_peers(void *vctx)
{
    mock_ctx_t *c = vctx;
    uint64_t k;
    int p;

    for (p = 0; p < c->job->size; p++) {
        k = (p != c->rank) ? atomic_load(&c->job->slots[p].dead) : 0;
        if (k != 0) {
            scomm_world_fail(c->w, SCOMM_ERR_PEER_LOST, p,
                             "rank %d (mock) died: killed by fault "
                             "injection at its message %llu", p,
                             (unsigned long long)k);
            return;
        }
    }
}

static void mock_heartbeat(void *vctx, uint64_t now)
{
    mock_ctx_t *c = vctx;

    if (!atomic_load(&c->self->dead)) {
        atomic_store_explicit(&c->self->heartbeat, now,
                              memory_order_relaxed);
    }
}

/* The last time rank peer's owner thread waited inside scomm: a killed
 * rank, or a thread stopped (or busy) outside the library, goes stale, as
 * shm's segment timestamp does. */
static uint64_t mock_last_heard(void *vctx, int peer)
{
    mock_ctx_t *c = vctx;

    return atomic_load_explicit(&c->job->slots[peer].heartbeat,
                                memory_order_relaxed);
}

static void mock_send_abort(void *vctx, const scomm_tl_abort_t *info)
{
    mock_ctx_t *c = vctx;

    if (atomic_load(&c->self->dead)) {
        return; /* a dead rank says nothing more */
    }
    /* As shm and tcp do, the rank blamed for the fault is not told. */
    mock_notify_all(c, MOCK_MSG_FAULT, info->status, info->failed_rank,
                    info->msg, info->failed_rank);
}

static void mock_fini(void *vctx)
{
    mock_ctx_t *c = vctx;

    if (c == NULL) {
        return;
    }
    if (c->mr_live != 0) {
        /* The core releases every registration before fini. */
        scomm_error(SCOMM_SUB_TL, "mock: %llu memory registrations still "
                    "held at fini", (unsigned long long)c->mr_live);
        atomic_fetch_add(&mock_mr_leaked, c->mr_live);
    }
    /* A clean close, as shm's ctrl->closed: peers still waiting for this
     * rank learn it left; what it sent before stays ahead of the notice. */
    if (!atomic_load(&c->self->dead)) {
        mock_notify_all(c, MOCK_MSG_CLOSED, 0, -1, NULL, -1);
    }
    pthread_mutex_lock(&mock_registry_lock);
    mock_leave(c);
    pthread_mutex_unlock(&mock_registry_lock);
    mock_ctx_free(c);
}

const scomm_tl_ops_t scomm_tl_mock_ops = {
    .name        = "mock",
    .caps        = SCOMM_TL_CAP_OWN_BOOTSTRAP | SCOMM_TL_CAP_MEM_REG,
    .init        = mock_init,
    .query       = mock_query,
    .can_reach   = mock_can_reach,
    .connect     = mock_connect,
    .send        = mock_send,
    .rndv_start  = mock_rndv_start,
    .progress    = mock_progress,
    .poll_fds    = mock_poll_fds,
    .sleep_begin = scomm_tl_noop,
    .sleep_end   = scomm_tl_noop,
    .check_peers = mock_check_peers,
    .heartbeat   = mock_heartbeat,
    .last_heard  = mock_last_heard,
    .send_abort  = mock_send_abort,
    .mem_reg     = mock_mem_reg,
    .mem_dereg   = mock_mem_dereg,
    .fini        = mock_fini,
};

const scomm_module_t scomm_module_mock = {
    .name    = "mock",
    .params  = mock_params,
    .nparams = SCOMM_ARRAY_SIZE(mock_params),
    .tl      = &scomm_tl_mock_ops,
};
