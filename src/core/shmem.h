/*
 * shmem.h - shared-memory regions of a communicator (internal): one POSIX
 * shared-memory segment per rank of the communicator on this host, mapped
 * by every other local rank of the communicator.
 *
 * A "set" is what one collective creation made: rank q's segment of the
 * set is mapped here at base[q] (NULL where q is on another host). Sets
 * back scomm_mem_alloc() (user memory the local ranks read each other's
 * buffers from) and the staging arenas of the shared-memory collective
 * algorithms (coll/direct.c).
 *
 * Every function here runs under the world lock, like the rest of the
 * communicator's calls.
 */
#ifndef SCOMM_SHMEM_H
#define SCOMM_SHMEM_H

#include <stddef.h>
#include <stdint.h>

#include "scomm_int.h"

/* Internal tag of the name/ack exchanges (user tags end at SCOMM_TAG_MAX;
 * the collectives use SCOMM_TAG_COLL). */
#define SCOMM_TAG_SHMEM 0x40000010

typedef enum {
    SCOMM_SHMEM_USER     = 0, /* scomm_mem_alloc */
    SCOMM_SHMEM_INTERNAL = 1  /* a collective algorithm's staging arena */
} scomm_shmem_kind_t;

/* A range's registrations with the world's transports (tl.h, mem_reg):
 * bit t of mask says transport t holds mr[t]. */
typedef struct scomm_shmem_mrs {
    uint32_t      mask;
    scomm_tl_mr_t mr[SCOMM_MAX_TL];
} scomm_shmem_mrs_t;

typedef struct scomm_shmem_set {
    scomm_list_t list;
    uint64_t     id;      /* the comm's n-th set: equal on every rank */
    int          kind;    /* scomm_shmem_kind_t */
    int          nranks;  /* comm size */
    void       **base;    /* comm rank -> its segment mapped here, or NULL */
    size_t      *len;     /* comm rank -> bytes its owner asked for */
    size_t      *map_len; /* comm rank -> bytes mapped here */
    scomm_shmem_mrs_t mrs; /* user sets: this rank's segment, registered */
} scomm_shmem_set_t;

/* Per-communicator state (comm->shmem), created on first use. */
typedef struct scomm_shmem {
    scomm_list_t sets;     /* scomm_shmem_set_t, oldest first */
    scomm_list_t regs;     /* scomm_mem_register ranges */
    uint64_t     next_id;
    /* State of the collectives layer on this comm (coll/direct.c), freed
     * with the comm through coll_free. */
    void        *coll;
    void       (*coll_free)(void *coll);
} scomm_shmem_t;

/* comm->shmem, created on first use; NULL (error recorded) without
 * memory. */
scomm_shmem_t *scomm_shmem_get(scomm_comm_t *comm);

/*
 * Collective over the local ranks of comm: each creates a segment of bytes
 * (its own size; 0 maps one page), sends its name to the others with
 * SCOMM_TAG_SHMEM, maps theirs, and unlinks its own once every local rank
 * has mapped it. Every rank gets the same status: on a local failure
 * anywhere (no memory, shm_open refused) every rank returns that status,
 * naming the rank, and the world stays healthy; a lost peer or the
 * deadline fails the world as any wait does.
 */
scomm_status_t scomm_shmem_set_create(scomm_comm_t *comm, size_t bytes,
                                      scomm_shmem_kind_t kind,
                                      scomm_shmem_set_t **set_p);

/* Unmap every segment of set here and forget it (no communication). */
void scomm_shmem_set_destroy(scomm_comm_t *comm, scomm_shmem_set_t *set);

/*
 * The user set whose segment owned by this rank holds [ptr, ptr + len),
 * and ptr's offset in it; NULL if none (or comm has no state yet).
 */
scomm_shmem_set_t *scomm_shmem_find(const scomm_comm_t *comm,
                                    const void *ptr, size_t len,
                                    size_t *off_p);

/* The set with this id, or NULL. */
scomm_shmem_set_t *scomm_shmem_by_id(const scomm_comm_t *comm, uint64_t id);

/* 1 if [ptr, ptr + len) lies inside a range given to scomm_mem_register. */
int scomm_shmem_registered(const scomm_comm_t *comm, const void *ptr,
                           size_t len);

/* Release everything of comm's (scomm_comm_destroy). */
void scomm_shmem_comm_release(scomm_comm_t *comm);

#endif /* SCOMM_SHMEM_H */
