/*
 * shmem.c - shared-memory regions of a communicator, and the public memory
 * calls built on them (scomm_mem_alloc, scomm_mem_free, scomm_mem_register,
 * scomm_mem_deregister).
 *
 * A set is created collectively by the ranks of a communicator that share
 * this host ("local ranks"); each local rank runs:
 *
 *   shmem_create_own     shm_open(O_CREAT|O_EXCL, 0600) of a random name,
 *                        posix_fallocate, mmap          -> own status
 *   round 1              send {status, errno, id, size, name} to every
 *                        other local rank, receive theirs (SCOMM_TAG_SHMEM)
 *   shmem_map_peer       if every round-1 status is OK: open, check the
 *                        size, mmap each peer's segment -> mapping status
 *   round 2              send the mapping status to every other local rank,
 *                        receive theirs
 *   shm_unlink(own)      every local rank has mapped it by now, or nobody
 *                        ever will: from here on no other process can open
 *                        it, and the memory goes with the last mapping
 *   any status not OK    unmap everything; every rank returns the same
 *                        status, naming the first rank that failed
 *
 * Invariants:
 *  1. Segments are private to the user (mode 0600, created O_EXCL under 96
 *     random bits) and unlinked before scomm_shmem_set_create returns, on
 *     every path that created one.
 *  2. Sets are created and freed collectively, in the same order on every
 *     rank, so a set's id names the same set everywhere; a collective
 *     algorithm passes ids, never addresses, between ranks.
 *  3. Memory is reserved with posix_fallocate when a segment is created: a
 *     full /dev/shm is SCOMM_ERR_NO_MEMORY at allocation, never a SIGBUS
 *     when the memory is first touched.
 *  4. Peer segments are validated before use: a name from the wire is
 *     NUL-terminated and carries our prefix, and a segment smaller than
 *     its owner announced is refused.
 *  5. A local failure (no memory, shm_open refused) is reported to every
 *     rank through the two rounds and leaves the world healthy; only a
 *     lost peer or the deadline fails the world, inside the p2p waits.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shmem.h"

#define SHMEM_PAGE        4096u
#define SHMEM_NAME_PREFIX "/scomm-m"

/* What one rank tells the other local ranks, in both rounds. */
typedef struct shmem_desc {
    int32_t  status;  /* scomm_status_t: creation (round 1), mapping (2) */
    int32_t  err;     /* errno of the failure, or 0 */
    uint64_t id;
    uint64_t len;     /* bytes the owner asked for */
    uint64_t map_len; /* bytes of the segment */
    char     name[SCOMM_SHMNAME_MAX];
} shmem_desc_t;

/* A range given to scomm_mem_register. */
typedef struct shmem_reg {
    scomm_list_t      list;
    uintptr_t         start;
    size_t            len;
    scomm_shmem_mrs_t mrs;
} shmem_reg_t;

/*
 * Register [addr, addr + len), memory whose end this file will see, with
 * every transport of the world that registers memory (tl.h, mem_reg), so
 * a transport may keep the registration cached until shmem_mrs_dereg. A
 * refusal is no error: that transport then registers per message.
 */
static void shmem_mrs_reg(scomm_world_t *w, void *addr, size_t len,
                          scomm_shmem_mrs_t *mrs)
{
    const unsigned access = SCOMM_TL_ACCESS_LOCAL |
                            SCOMM_TL_ACCESS_REMOTE_WRITE |
                            SCOMM_TL_ACCESS_REMOTE_READ;
    scomm_status_t status;
    int t;

    mrs->mask = 0;
    for (t = 0; t < w->ntl; t++) {
        if (!(w->tl_attr[t].caps & SCOMM_TL_CAP_MEM_REG)) {
            continue;
        }
        status = w->tls[t]->mem_reg(w->tl_ctx[t], addr, len, access,
                                    &mrs->mr[t]);
        if (status == SCOMM_OK) {
            mrs->mask |= 1u << t;
        } else {
            scomm_debug(SCOMM_SUB_TL, "%s: registering %p (%zu bytes): %s; "
                        "it registers per message instead", w->tls[t]->name,
                        addr, len, scomm_status_name(status));
        }
    }
}

/* Release what shmem_mrs_reg registered, before the memory goes. */
static void shmem_mrs_dereg(scomm_world_t *w, scomm_shmem_mrs_t *mrs)
{
    int t;

    for (t = 0; t < w->ntl; t++) {
        if (mrs->mask & (1u << t)) {
            w->tls[t]->mem_dereg(w->tl_ctx[t], &mrs->mr[t]);
        }
    }
    mrs->mask = 0;
}

scomm_shmem_t *scomm_shmem_get(scomm_comm_t *comm)
{
    scomm_shmem_t *s = comm->shmem;

    if (s != NULL) {
        return s;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                        "%s: out of memory for the shared-memory state",
                        comm->cur_op);
        return NULL;
    }
    scomm_list_init(&s->sets);
    scomm_list_init(&s->regs);
    comm->shmem = s;
    return s;
}

static size_t shmem_map_len(size_t bytes)
{
    return SCOMM_ALIGN_UP(SCOMM_MAX(bytes, (size_t)1), (size_t)SHMEM_PAGE);
}

static scomm_status_t shmem_errno_status(int err)
{
    return ((err == ENOSPC) || (err == ENOMEM) || (err == EFBIG)) ?
           SCOMM_ERR_NO_MEMORY : SCOMM_ERR_SYSTEM;
}

/* Create, reserve and map this rank's segment; fills d. */
static void shmem_create_own(scomm_shmem_set_t *set, int me,
                             shmem_desc_t *d)
{
    char hex[25];
    void *p;
    int fd = -1, tries, ret;

    d->map_len = shmem_map_len((size_t)d->len);
    for (tries = 0; (tries < 4) && (fd < 0); tries++) {
        scomm_random_hex(hex, 12);
        snprintf(d->name, sizeof(d->name), "%s%d-%s", SHMEM_NAME_PREFIX,
                 (int)getpid(), hex);
        fd = shm_open(d->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if ((fd < 0) && (errno != EEXIST)) {
            break;
        }
    }
    if (fd < 0) {
        d->err    = errno;
        d->status = shmem_errno_status(d->err);
        d->name[0] = '\0';
        return;
    }
    /* posix_fallocate returns the error instead of setting errno. */
    ret = posix_fallocate(fd, 0, (off_t)d->map_len);
    if (ret == 0) {
        p = mmap(NULL, (size_t)d->map_len, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_POPULATE, fd, 0);
        ret = (p == MAP_FAILED) ? errno : 0;
    } else {
        p = MAP_FAILED;
    }
    close(fd);
    if (ret != 0) {
        shm_unlink(d->name);
        d->err    = ret;
        d->status = shmem_errno_status(ret);
        d->name[0] = '\0';
        return;
    }
    set->base[me]    = p;
    set->len[me]     = (size_t)d->len;
    set->map_len[me] = (size_t)d->map_len;
    d->status        = SCOMM_OK;
}

/* Map peer q's segment as announced in d; returns a status, errno in *err. */
static scomm_status_t shmem_map_peer(scomm_shmem_set_t *set, int q,
                                     shmem_desc_t *d, int *err)
{
    struct stat st;
    void *p;
    int fd;

    d->name[sizeof(d->name) - 1] = '\0';
    if ((strncmp(d->name, SHMEM_NAME_PREFIX, strlen(SHMEM_NAME_PREFIX)) !=
         0) || (d->map_len < d->len) || (d->map_len % SHMEM_PAGE != 0) ||
        (d->map_len > (uint64_t)INT64_MAX)) {
        *err = EINVAL;
        return SCOMM_ERR_PROTOCOL;
    }
    fd = shm_open(d->name, O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        *err = errno;
        return SCOMM_ERR_SYSTEM;
    }
    if ((fstat(fd, &st) != 0) || ((uint64_t)st.st_size < d->map_len)) {
        close(fd);
        *err = EINVAL;
        return SCOMM_ERR_PROTOCOL;
    }
    p = mmap(NULL, (size_t)d->map_len, PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_POPULATE, fd, 0);
    *err = errno;
    close(fd);
    if (p == MAP_FAILED) {
        return shmem_errno_status(*err);
    }
    set->base[q]    = p;
    set->len[q]     = (size_t)d->len;
    set->map_len[q] = (size_t)d->map_len;
    *err            = 0;
    return SCOMM_OK;
}

/*
 * One round: send mine to every other local rank of comm, receive theirs
 * into all[q]. On a failure the world has failed (a p2p wait timed out or
 * lost a peer, or posting failed and we failed it here).
 */
static scomm_status_t shmem_round(scomm_comm_t *comm, const shmem_desc_t *mine,
                                  shmem_desc_t *all)
{
    scomm_world_t *w = comm->world;
    scomm_req_t **reqs;
    scomm_status_t status = SCOMM_OK;
    int q, n = 0;

    reqs = calloc(2 * (size_t)comm->size, sizeof(*reqs));
    if (reqs == NULL) {
        return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                               "%s: out of memory for requests",
                               comm->cur_op);
    }
    for (q = 0; (q < comm->size) && (status == SCOMM_OK); q++) {
        if ((q == comm->rank) || !w->peers[comm->ranks[q]].local) {
            continue;
        }
        status = scomm_p2p_irecv(comm, q, SCOMM_TAG_SHMEM, &all[q],
                                 sizeof(all[q]), &reqs[n]);
        if (status == SCOMM_OK) {
            n++;
            status = scomm_p2p_isend(comm, q, SCOMM_TAG_SHMEM, mine,
                                     sizeof(*mine), &reqs[n]);
        }
        if (status == SCOMM_OK) {
            n++;
        }
    }
    if (status != SCOMM_OK) {
        /* Posting failed: fail the world so that the peers stop waiting
         * for us, and so that the wait below releases at once. */
        scomm_world_fail(w, status, w->rank, "%s: rank %d could not post "
                         "its shared-memory exchange: %s", comm->cur_op,
                         comm->rank, scomm_strerror(status));
        (void)scomm_p2p_waitall(comm, reqs, n);
        free(reqs);
        return scomm_set_error(comm, status, "%s", w->fault.msg);
    }
    status = scomm_p2p_waitall(comm, reqs, n);
    free(reqs);
    return status;
}

void scomm_shmem_set_destroy(scomm_comm_t *comm, scomm_shmem_set_t *set)
{
    int q;

    if (set == NULL) {
        return;
    }
    shmem_mrs_dereg(comm->world, &set->mrs);
    for (q = 0; q < set->nranks; q++) {
        if (set->base[q] != NULL) {
            munmap(set->base[q], set->map_len[q]);
        }
    }
    if ((set->list.next != NULL) && (set->list.next != &set->list)) {
        scomm_list_del(&set->list);
    }
    free(set->base);
    free(set->len);
    free(set->map_len);
    free(set);
}

scomm_status_t scomm_shmem_set_create(scomm_comm_t *comm, size_t bytes,
                                      scomm_shmem_kind_t kind,
                                      scomm_shmem_set_t **set_p)
{
    scomm_world_t *w = comm->world;
    scomm_shmem_t *s = scomm_shmem_get(comm);
    scomm_shmem_set_t *set;
    shmem_desc_t mine, *all;
    scomm_status_t status;
    int q, me = comm->rank, bad = -1, err = 0;
    const char *what = "create its shared-memory segment";

    if (s == NULL) {
        return SCOMM_ERR_NO_MEMORY;
    }
    set = calloc(1, sizeof(*set));
    all = calloc((size_t)comm->size, sizeof(*all));
    if (set != NULL) {
        set->base    = calloc((size_t)comm->size, sizeof(*set->base));
        set->len     = calloc((size_t)comm->size, sizeof(*set->len));
        set->map_len = calloc((size_t)comm->size, sizeof(*set->map_len));
    }
    if ((set == NULL) || (all == NULL) || (set->base == NULL) ||
        (set->len == NULL) || (set->map_len == NULL)) {
        /* Allocation of a few words: tell nobody, fail like any wait. */
        free(all);
        scomm_shmem_set_destroy(comm, set);
        return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                               "%s: out of memory for a shared-memory set",
                               comm->cur_op);
    }
    scomm_list_init(&set->list);
    set->id     = s->next_id++;
    set->kind   = (int)kind;
    set->nranks = comm->size;

    memset(&mine, 0, sizeof(mine));
    mine.id  = set->id;
    mine.len = bytes;
    shmem_create_own(set, me, &mine);
    all[me] = mine;

    /* Round 1: names (or why there is none). */
    status = shmem_round(comm, &mine, all);
    if (status != SCOMM_OK) {
        goto out_fail_world;
    }
    for (q = 0; (q < comm->size) && (bad < 0); q++) {
        if (w->peers[comm->ranks[q]].local &&
            (all[q].status != SCOMM_OK)) {
            bad = q;
            err = all[q].err;
        }
    }
    for (q = 0; (q < comm->size) && (bad < 0); q++) {
        if ((q == me) || !w->peers[comm->ranks[q]].local) {
            continue;
        }
        if (all[q].id != set->id) {
            mine.status = SCOMM_ERR_MISMATCH;
            mine.err    = 0;
        } else {
            mine.status = shmem_map_peer(set, q, &all[q], &mine.err);
        }
        if (mine.status != SCOMM_OK) {
            break;
        }
    }
    if (bad < 0) {
        /* Round 2: did everyone map everything? */
        all[me] = mine;
        status  = shmem_round(comm, &mine, all);
        if (status != SCOMM_OK) {
            goto out_fail_world;
        }
        what = "map its peers' shared-memory segments";
        for (q = 0; (q < comm->size) && (bad < 0); q++) {
            if (w->peers[comm->ranks[q]].local &&
                (all[q].status != SCOMM_OK)) {
                bad = q;
                err = all[q].err;
            }
        }
    }
    if (all[me].name[0] != '\0') {
        shm_unlink(all[me].name);
    }
    if (bad >= 0) {
        status = (scomm_status_t)all[bad].status;
        free(all);
        scomm_shmem_set_destroy(comm, set);
        return scomm_set_error(comm, status,
                               "%s: rank %d could not %s (%zu bytes "
                               "asked here): %s", comm->cur_op, bad, what,
                               bytes,
                               (status == SCOMM_ERR_MISMATCH) ?
                                   "the ranks disagree on the order of "
                                   "scomm_mem_alloc calls" :
                               (err != 0) ? strerror(err) :
                                            scomm_strerror(status));
    }
    free(all);
    scomm_list_push_back(&s->sets, &set->list);
    *set_p = set;
    return SCOMM_OK;

out_fail_world:
    /* The world failed in a wait; our segment must not outlive us. */
    if (mine.name[0] != '\0') {
        shm_unlink(mine.name);
    }
    free(all);
    scomm_shmem_set_destroy(comm, set);
    return status;
}

scomm_shmem_set_t *scomm_shmem_find(const scomm_comm_t *comm,
                                    const void *ptr, size_t len,
                                    size_t *off_p)
{
    const scomm_shmem_t *s = comm->shmem;
    const scomm_list_t *e;
    uintptr_t p = (uintptr_t)ptr, b;

    if ((s == NULL) || (ptr == NULL)) {
        return NULL;
    }
    for (e = s->sets.next; e != &s->sets; e = e->next) {
        scomm_shmem_set_t *set = scomm_container_of(e, scomm_shmem_set_t,
                                                    list);

        if ((set->kind != SCOMM_SHMEM_USER) ||
            (set->base[comm->rank] == NULL)) {
            continue;
        }
        b = (uintptr_t)set->base[comm->rank];
        if ((p >= b) && (p - b <= set->len[comm->rank]) &&
            (len <= set->len[comm->rank] - (p - b))) {
            *off_p = (size_t)(p - b);
            return set;
        }
    }
    return NULL;
}

scomm_shmem_set_t *scomm_shmem_by_id(const scomm_comm_t *comm, uint64_t id)
{
    const scomm_shmem_t *s = comm->shmem;
    const scomm_list_t *e;

    if (s == NULL) {
        return NULL;
    }
    for (e = s->sets.next; e != &s->sets; e = e->next) {
        scomm_shmem_set_t *set = scomm_container_of(e, scomm_shmem_set_t,
                                                    list);

        if (set->id == id) {
            return set;
        }
    }
    return NULL;
}

int scomm_shmem_registered(const scomm_comm_t *comm, const void *ptr,
                           size_t len)
{
    const scomm_shmem_t *s = comm->shmem;
    const scomm_list_t *e;
    uintptr_t p = (uintptr_t)ptr;

    if ((s == NULL) || (ptr == NULL)) {
        return 0;
    }
    for (e = s->regs.next; e != &s->regs; e = e->next) {
        const shmem_reg_t *r = scomm_container_of(e, shmem_reg_t, list);

        if ((p >= r->start) && (p - r->start <= r->len) &&
            (len <= r->len - (p - r->start))) {
            return 1;
        }
    }
    return 0;
}

void scomm_shmem_comm_release(scomm_comm_t *comm)
{
    scomm_shmem_t *s = comm->shmem;
    scomm_list_t *e;

    if (s == NULL) {
        return;
    }
    if ((s->coll != NULL) && (s->coll_free != NULL)) {
        s->coll_free(s->coll);
    }
    while ((e = scomm_list_pop_front(&s->sets)) != NULL) {
        scomm_shmem_set_destroy(comm,
                                scomm_container_of(e, scomm_shmem_set_t,
                                                   list));
    }
    while ((e = scomm_list_pop_front(&s->regs)) != NULL) {
        shmem_reg_t *r = scomm_container_of(e, shmem_reg_t, list);

        shmem_mrs_dereg(comm->world, &r->mrs);
        free(r);
    }
    free(s);
    comm->shmem = NULL;
}

/* ---- public API ---------------------------------------------------------- */

/* Like scomm_comm_check, but a failed world is no error: releasing memory
 * must work after any failure. */
static scomm_status_t shmem_check_live(scomm_comm_t *comm, const char *op)
{
    if ((comm == NULL) || (comm->magic != SCOMM_COMM_MAGIC)) {
        return scomm_comm_check(comm, op);
    }
    return SCOMM_OK;
}

scomm_status_t scomm_mem_alloc(scomm_comm_t *comm, size_t bytes,
                               void **ptr_p)
{
    static const char name[] = "scomm_mem_alloc";
    scomm_shmem_set_t *set = NULL;
    scomm_status_t status;
    scomm_world_t *w;

    status = scomm_comm_check(comm, name);
    if (status != SCOMM_OK) {
        return status;
    }
    if (ptr_p == NULL) {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                               "%s: ptr_p is NULL", name);
    }
    if (bytes > (size_t)INT64_MAX - SHMEM_PAGE) {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                               "%s: bytes %zu is too large", name, bytes);
    }
    w = comm->world;
    pthread_mutex_lock(&w->lock);
    comm->cur_op = name;
    status       = scomm_shmem_set_create(comm, bytes, SCOMM_SHMEM_USER,
                                          &set);
    if (status == SCOMM_OK) {
        *ptr_p = set->base[comm->rank];
        shmem_mrs_reg(w, set->base[comm->rank], set->map_len[comm->rank],
                      &set->mrs);
    }
    comm->cur_op = "scomm";
    pthread_mutex_unlock(&w->lock);
    return status;
}

scomm_status_t scomm_mem_free(scomm_comm_t *comm, void *ptr)
{
    static const char name[] = "scomm_mem_free";
    scomm_shmem_set_t *set;
    scomm_world_t *w;
    shmem_desc_t mine, *all;
    scomm_status_t status = SCOMM_OK;
    size_t off;
    int q;

    status = shmem_check_live(comm, name);
    if ((status != SCOMM_OK) || (ptr == NULL)) {
        return status;
    }
    w = comm->world;
    pthread_mutex_lock(&w->lock);
    set = scomm_shmem_find(comm, ptr, 0, &off);
    if ((set == NULL) || (off != 0)) {
        pthread_mutex_unlock(&w->lock);
        return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                               "%s: ptr %p was not returned by "
                               "scomm_mem_alloc on this communicator (or "
                               "was freed already)", name, ptr);
    }
    comm->cur_op = name;
    if ((atomic_load(&w->fault.status) == 0) && (comm->local_size > 1)) {
        /* Check that every local rank frees the same allocation: freeing
         * is collective, and a set unmapped on one rank only would let the
         * collectives read memory that rank no longer has. */
        all = calloc((size_t)comm->size, sizeof(*all));
        if (all == NULL) {
            status = scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                                     "%s: out of memory", name);
        } else {
            memset(&mine, 0, sizeof(mine));
            mine.id = set->id;
            status  = shmem_round(comm, &mine, all);
            for (q = 0; (q < comm->size) && (status == SCOMM_OK); q++) {
                if ((q != comm->rank) && w->peers[comm->ranks[q]].local &&
                    (all[q].id != set->id)) {
                    status = scomm_set_error(
                        comm, SCOMM_ERR_MISMATCH,
                        "%s: rank %d frees another allocation (its #%llu, "
                        "this rank's #%llu): ranks must free in the same "
                        "order; nothing was freed", name, q,
                        (unsigned long long)all[q].id,
                        (unsigned long long)set->id);
                }
            }
            free(all);
        }
        if (atomic_load(&w->fault.status) != 0) {
            /* The exchange failed the world: release anyway. */
            status = SCOMM_OK;
        }
    }
    if (status == SCOMM_OK) {
        scomm_shmem_set_destroy(comm, set);
    }
    comm->cur_op = "scomm";
    pthread_mutex_unlock(&w->lock);
    return status;
}

scomm_status_t scomm_mem_register(scomm_comm_t *comm, void *ptr, size_t bytes)
{
    static const char name[] = "scomm_mem_register";
    scomm_shmem_t *s;
    scomm_list_t *e;
    shmem_reg_t *r;
    scomm_status_t status;

    status = scomm_comm_check(comm, name);
    if (status != SCOMM_OK) {
        return status;
    }
    if (ptr == NULL) {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                               "%s: ptr is NULL", name);
    }
    if ((bytes == 0) || (bytes > (size_t)INT64_MAX) ||
        ((uintptr_t)ptr > UINTPTR_MAX - bytes)) {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                               "%s: bytes %zu is %s", name, bytes,
                               (bytes == 0) ? "0" : "out of range for ptr");
    }
    pthread_mutex_lock(&comm->world->lock);
    s = scomm_shmem_get(comm);
    if (s == NULL) {
        pthread_mutex_unlock(&comm->world->lock);
        return SCOMM_ERR_NO_MEMORY;
    }
    for (e = s->regs.next; e != &s->regs; e = e->next) {
        r = scomm_container_of(e, shmem_reg_t, list);
        if (r->start == (uintptr_t)ptr) {
            pthread_mutex_unlock(&comm->world->lock);
            return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                                   "%s: ptr %p is registered already", name,
                                   ptr);
        }
    }
    r = malloc(sizeof(*r));
    if (r == NULL) {
        pthread_mutex_unlock(&comm->world->lock);
        return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                               "%s: out of memory", name);
    }
    r->start = (uintptr_t)ptr;
    r->len   = bytes;
    shmem_mrs_reg(comm->world, ptr, bytes, &r->mrs);
    scomm_list_push_back(&s->regs, &r->list);
    pthread_mutex_unlock(&comm->world->lock);
    return SCOMM_OK;
}

scomm_status_t scomm_mem_deregister(scomm_comm_t *comm, void *ptr)
{
    static const char name[] = "scomm_mem_deregister";
    scomm_list_t *e;
    scomm_status_t status;

    status = shmem_check_live(comm, name);
    if (status != SCOMM_OK) {
        return status;
    }
    pthread_mutex_lock(&comm->world->lock);
    if (comm->shmem != NULL) {
        for (e = comm->shmem->regs.next; e != &comm->shmem->regs;
             e = e->next) {
            shmem_reg_t *r = scomm_container_of(e, shmem_reg_t, list);

            if (r->start == (uintptr_t)ptr) {
                shmem_mrs_dereg(comm->world, &r->mrs);
                scomm_list_del(e);
                free(r);
                pthread_mutex_unlock(&comm->world->lock);
                return SCOMM_OK;
            }
        }
    }
    pthread_mutex_unlock(&comm->world->lock);
    return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                           "%s: ptr %p is not registered on this "
                           "communicator", name, ptr);
}
