/*
 * dtype.c - the tables of dtypes (size, name), reduce ops and collective
 * operations (names) that every layer reads (dtype.h, scomm.h).
 *
 * Invariant: a value out of range gives size 0 or the name "invalid",
 * never a read past a table (callers validate with it).
 */
#include "dtype.h"

static const struct {
    const char *name;
    size_t      size;
} scomm_dtypes[SCOMM_DTYPE_COUNT] = {
    [SCOMM_INT8]     = {"int8", 1},     [SCOMM_UINT8]    = {"uint8", 1},
    [SCOMM_INT32]    = {"int32", 4},    [SCOMM_UINT32]   = {"uint32", 4},
    [SCOMM_INT64]    = {"int64", 8},    [SCOMM_UINT64]   = {"uint64", 8},
    [SCOMM_FLOAT16]  = {"float16", 2},  [SCOMM_FLOAT32]  = {"float32", 4},
    [SCOMM_FLOAT64]  = {"float64", 8},  [SCOMM_BFLOAT16] = {"bfloat16", 2},
    [SCOMM_FP8_E4M3] = {"fp8_e4m3", 1}, [SCOMM_FP8_E5M2] = {"fp8_e5m2", 1},
};

static const char *const scomm_redops[SCOMM_REDOP_COUNT] = {
    "sum", "prod", "max", "min", "avg"
};

static const char *const scomm_coll_ops[SCOMM_COLL_OP_COUNT] = {
    [SCOMM_COLL_ALLREDUCE]     = "all_reduce",
    [SCOMM_COLL_ALLGATHER]     = "all_gather",
    [SCOMM_COLL_REDUCESCATTER] = "reduce_scatter",
    [SCOMM_COLL_BROADCAST]     = "broadcast",
    [SCOMM_COLL_REDUCE]        = "reduce",
    [SCOMM_COLL_ALLTOALL]      = "all_to_all",
    [SCOMM_COLL_ALLTOALLV]     = "all_to_allv",
    [SCOMM_COLL_GATHER]        = "gather",
    [SCOMM_COLL_SCATTER]       = "scatter",
};

size_t scomm_dtype_size(scomm_dtype_t dtype)
{
    if (((int)dtype < 0) || (dtype >= SCOMM_DTYPE_COUNT)) {
        return 0;
    }
    return scomm_dtypes[dtype].size;
}

const char *scomm_dtype_name(scomm_dtype_t dtype)
{
    if (((int)dtype < 0) || (dtype >= SCOMM_DTYPE_COUNT)) {
        return "invalid";
    }
    return scomm_dtypes[dtype].name;
}

const char *scomm_redop_name(scomm_redop_t op)
{
    if (((int)op < 0) || (op >= SCOMM_REDOP_COUNT)) {
        return "invalid";
    }
    return scomm_redops[op];
}

const char *scomm_coll_op_name(scomm_coll_op_t op)
{
    if (((int)op < 0) || (op >= SCOMM_COLL_OP_COUNT)) {
        return "invalid";
    }
    return scomm_coll_ops[op];
}
