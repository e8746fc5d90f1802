/*
 * dtype.h - the vocabulary every layer shares: the collective operations
 * (scomm_coll_op_t) and their names. The dtype and reduce-op tables behind
 * scomm_dtype_size, scomm_dtype_name and scomm_redop_name (scomm.h) are in
 * dtype.c too.
 *
 * Invariant: scomm_coll_op_t numbers are stable; telemetry series and the
 * vendor adapters' capability bits are indexed by them.
 */
#ifndef SCOMM_DTYPE_H
#define SCOMM_DTYPE_H

#include "scomm.h"

typedef enum {
    SCOMM_COLL_ALLREDUCE = 0,
    SCOMM_COLL_ALLGATHER,
    SCOMM_COLL_REDUCESCATTER,
    SCOMM_COLL_BROADCAST,
    SCOMM_COLL_REDUCE,
    SCOMM_COLL_ALLTOALL,
    SCOMM_COLL_ALLTOALLV,
    SCOMM_COLL_GATHER,
    SCOMM_COLL_SCATTER,
    SCOMM_COLL_OP_COUNT
} scomm_coll_op_t;

/* Name of an operation ("all_reduce"); "invalid" out of range. */
const char *scomm_coll_op_name(scomm_coll_op_t op);

#endif /* SCOMM_DTYPE_H */
