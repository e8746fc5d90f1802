/*
 * scomm.h - the one public API of scomm, a communication library for
 * distributed LLM inference on host memory (shared memory, TCP, RDMA) and
 * behind vendor libraries.
 *
 * Conventions (see docs/design.md):
 *  - every call returns scomm_status_t: SCOMM_OK (0), SCOMM_INPROGRESS (1) or
 *    a negative error; the numbers never change;
 *  - counts are in elements of the given dtype; in-place is sendbuf == recvbuf;
 *  - a failing call leaves its output arguments and the caller's buffers
 *    untouched, and a message naming the operation, the peer rank and the
 *    cause is readable from scomm_comm_last_error() or scomm_last_error();
 *  - no call blocks longer than the communicator's timeout (SCOMM_TIMEOUT_MS).
 *
 * Only C11 fixed-width types appear here, so ctypes bindings are mechanical.
 */
#ifndef SCOMM_H
#define SCOMM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SCOMM_API __attribute__((visibility("default")))
#else
#define SCOMM_API
#endif

/* ------------------------------------------------------------------------ */
/* Version                                                                   */
/* ------------------------------------------------------------------------ */

#define SCOMM_VERSION_MAJOR 0
#define SCOMM_VERSION_MINOR 1
#define SCOMM_VERSION_PATCH 0
#define SCOMM_VERSION_STRING "0.1.0"

/** Wire protocol version exchanged at bootstrap; ranks must agree. */
#define SCOMM_PROTOCOL_VERSION 1

/** @brief Library version as MAJOR*10000 + MINOR*100 + PATCH. */
SCOMM_API int32_t scomm_version(void);
/** @brief Library version as a string, e.g. "0.1.0". */
SCOMM_API const char *scomm_version_string(void);
/**
 * @brief The optional libraries built into this library, as words separated
 * by one space, in this order: "hwloc yaml jansson microhttpd zstd lz4 ofi"
 * (only those built in; "" when none). A call that needs a library left out
 * returns SCOMM_ERR_UNSUPPORTED with a message naming the Debian package to
 * install before rebuilding (README, "Build options"). Never NULL; the
 * string is static and never changes.
 */
SCOMM_API const char *scomm_build_features(void);

/* ------------------------------------------------------------------------ */
/* Status codes: one frozen list; numbers never change                       */
/* ------------------------------------------------------------------------ */

#define SCOMM_STATUS_MAP(X)                                                  \
    X(OK,                 0, "success")                                     \
    X(INPROGRESS,         1, "operation in progress")                       \
    X(ERR_INVALID_ARG,   -1, "invalid argument")                            \
    X(ERR_INVALID_USAGE, -2, "invalid usage")                               \
    X(ERR_UNSUPPORTED,   -3, "unsupported")                                 \
    X(ERR_NO_MEMORY,     -4, "out of memory")                               \
    X(ERR_SYSTEM,        -5, "system error")                                \
    X(ERR_TIMED_OUT,     -6, "timed out")                                   \
    X(ERR_PEER_LOST,     -7, "peer lost")                                   \
    X(ERR_ABORTED,       -8, "aborted")                                     \
    X(ERR_MISMATCH,      -9, "mismatch between ranks")                      \
    X(ERR_BAD_CONFIG,   -10, "bad configuration")                           \
    X(ERR_INTERNAL,     -11, "internal error")                              \
    X(ERR_PROTOCOL,     -12, "protocol error")                              \
    X(ERR_ACCESS_DENIED,-13, "access denied")                               \
    X(ERR_TRUNCATED,    -14, "message truncated")                           \
    X(ERR_NO_RESOURCE,  -15, "resource temporarily unavailable")            \
    X(ERR_CHECKSUM,     -16, "checksum mismatch")

typedef enum {
#define SCOMM_STATUS_ENUM_(_name, _value, _text) SCOMM_##_name = (_value),
    SCOMM_STATUS_MAP(SCOMM_STATUS_ENUM_)
#undef SCOMM_STATUS_ENUM_
} scomm_status_t;

#define SCOMM_IS_ERR(_s) ((_s) < 0)

/** @brief Short description of a status ("peer lost"); never NULL. */
SCOMM_API const char *scomm_strerror(scomm_status_t status);
/** @brief Name of a status ("SCOMM_ERR_PEER_LOST"); never NULL. */
SCOMM_API const char *scomm_status_name(scomm_status_t status);
/**
 * @brief Detailed message of the last error raised on the calling thread,
 * by any call (use it when no communicator exists, e.g. after scomm_init).
 */
SCOMM_API const char *scomm_last_error(void);

/* ------------------------------------------------------------------------ */
/* Data types and reduction operators (numbered as NCCL numbers them)        */
/* ------------------------------------------------------------------------ */

typedef enum {
    SCOMM_INT8     = 0,
    SCOMM_UINT8    = 1,
    SCOMM_INT32    = 2,
    SCOMM_UINT32   = 3,
    SCOMM_INT64    = 4,
    SCOMM_UINT64   = 5,
    SCOMM_FLOAT16  = 6,
    SCOMM_FLOAT32  = 7,
    SCOMM_FLOAT64  = 8,
    SCOMM_BFLOAT16 = 9,
    SCOMM_FP8_E4M3 = 10,
    SCOMM_FP8_E5M2 = 11,
    SCOMM_DTYPE_COUNT
} scomm_dtype_t;

typedef enum {
    SCOMM_SUM  = 0,
    SCOMM_PROD = 1,
    SCOMM_MAX  = 2,
    SCOMM_MIN  = 3,
    SCOMM_AVG  = 4,
    SCOMM_REDOP_COUNT
} scomm_redop_t;

/** @brief Size in bytes of one element, or 0 for an invalid dtype. */
SCOMM_API size_t scomm_dtype_size(scomm_dtype_t dtype);
/** @brief Name ("float32", "bfloat16", ...), or "invalid". */
SCOMM_API const char *scomm_dtype_name(scomm_dtype_t dtype);
/** @brief Name ("sum", "avg", ...), or "invalid". */
SCOMM_API const char *scomm_redop_name(scomm_redop_t op);

/* ------------------------------------------------------------------------ */
/* Communicator lifecycle                                                    */
/* ------------------------------------------------------------------------ */

typedef struct scomm_comm scomm_comm_t;  /**< opaque communicator handle */
typedef struct scomm_req  scomm_req_t;   /**< opaque request handle */

/** Fields of scomm_init_opts_t that the caller set (others: env/default). */
enum {
    SCOMM_INIT_FIELD_RANK        = 1u << 0,
    SCOMM_INIT_FIELD_WORLD_SIZE  = 1u << 1,
    SCOMM_INIT_FIELD_MASTER_ADDR = 1u << 2,
    SCOMM_INIT_FIELD_MASTER_PORT = 1u << 3,
    SCOMM_INIT_FIELD_TIMEOUT     = 1u << 4,
    SCOMM_INIT_FIELD_BACKEND     = 1u << 5,
    SCOMM_INIT_FIELD_JOB_TOKEN   = 1u << 6
};

/**
 * Options of scomm_init(). Set field_mask to the fields you filled; every
 * other field comes from the SCOMM_* environment, then the defaults.
 * Precedence: these options > environment > SCOMM_CONF_FILE > defaults.
 */
typedef struct scomm_init_opts {
    uint64_t    field_mask;
    int32_t     rank;         /**< 0 .. world_size-1 */
    int32_t     world_size;   /**< >= 1 */
    const char *master_addr;  /**< host of rank 0's rendezvous store */
    int32_t     master_port;  /**< 1 .. 65535 */
    int64_t     timeout_ms;   /**< deadline of every blocking call, > 0 */
    const char *backend;      /**< "native" (default) or "mock" */
    const char *job_token;    /**< shared secret of the job */
} scomm_init_opts_t;

/**
 * @brief Create the world communicator: rendezvous through rank 0's TCP
 * store, connect to every peer (shared memory on the same host, TCP
 * otherwise), and return when all ranks are connected.
 * @param[in]  opts    options, may be NULL (all from environment)
 * @param[out] comm_p  the communicator, set only on success
 * @return SCOMM_OK, ERR_INVALID_ARG, ERR_BAD_CONFIG, ERR_TIMED_OUT (names the
 *         missing ranks), ERR_ACCESS_DENIED (job token), ERR_PROTOCOL
 *         (version mismatch), ERR_SYSTEM, ERR_NO_MEMORY
 */
SCOMM_API scomm_status_t scomm_init(const scomm_init_opts_t *opts,
                                    scomm_comm_t **comm_p);

/**
 * @brief scomm_init() with everything read from the launcher's environment,
 * in this order: SCOMM_*, torchrun (RANK, WORLD_SIZE, LOCAL_RANK,
 * LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), Open MPI
 * (OMPI_COMM_WORLD_*), MPICH/PMI (PMI_RANK, PMI_SIZE), Slurm (SLURM_PROCID,
 * SLURM_NTASKS, SLURM_LOCALID).
 */
SCOMM_API scomm_status_t scomm_init_from_env(scomm_comm_t **comm_p);

/**
 * @brief Split into sub-communicators: ranks giving the same color form one,
 * ordered by (key, parent rank). Collective over comm. A negative color
 * (SCOMM_SPLIT_NOCOLOR) gives *sub_p = NULL.
 */
#define SCOMM_SPLIT_NOCOLOR (-1)
SCOMM_API scomm_status_t scomm_comm_split(scomm_comm_t *comm, int32_t color,
                                          int32_t key, scomm_comm_t **sub_p);

/**
 * @brief Release a communicator. Safe after any error and after abort; a
 * world communicator is released when its last sub-communicator is.
 */
SCOMM_API scomm_status_t scomm_comm_destroy(scomm_comm_t *comm);

/**
 * @brief Abort: every blocked or later call on this communicator (and the
 * others sharing its connections) returns SCOMM_ERR_ABORTED, and peers are
 * told. Safe to call from another thread and from a signal-free context.
 */
SCOMM_API scomm_status_t scomm_comm_abort(scomm_comm_t *comm);

/** @brief Asynchronous error of the communicator (SCOMM_OK if none). */
SCOMM_API scomm_status_t scomm_comm_async_error(scomm_comm_t *comm);

/** @brief Detail of the last error on this communicator; never NULL. */
SCOMM_API const char *scomm_comm_last_error(scomm_comm_t *comm);

SCOMM_API int32_t scomm_rank(const scomm_comm_t *comm);        /**< -1 if NULL */
SCOMM_API int32_t scomm_size(const scomm_comm_t *comm);        /**< -1 if NULL */
SCOMM_API int32_t scomm_local_rank(const scomm_comm_t *comm);  /**< on this host */
SCOMM_API int32_t scomm_local_size(const scomm_comm_t *comm);  /**< on this host */

/** @brief Name of the transport used to reach peer ("self", "shm", "tcp"). */
SCOMM_API const char *scomm_peer_transport(const scomm_comm_t *comm,
                                           int32_t peer);

/** @brief Set this communicator's timeout (ms, > 0) for later calls. */
SCOMM_API scomm_status_t scomm_comm_set_timeout(scomm_comm_t *comm,
                                                int64_t timeout_ms);

/* ------------------------------------------------------------------------ */
/* Point-to-point                                                            */
/* ------------------------------------------------------------------------ */

/** Largest user tag; tags are 0 .. SCOMM_TAG_MAX. */
#define SCOMM_TAG_MAX 0x3fffffff

/**
 * @brief Send count elements to peer with tag. Messages between two ranks
 * with the same tag arrive in the order they were sent. Blocks until the
 * buffer may be reused.
 */
SCOMM_API scomm_status_t scomm_send(const void *buf, size_t count,
                                    scomm_dtype_t dtype, int32_t peer,
                                    int32_t tag, scomm_comm_t *comm);

/**
 * @brief Receive up to count elements from peer with tag. A longer message
 * is an error (SCOMM_ERR_TRUNCATED) and leaves buf untouched.
 */
SCOMM_API scomm_status_t scomm_recv(void *buf, size_t count,
                                    scomm_dtype_t dtype, int32_t peer,
                                    int32_t tag, scomm_comm_t *comm);

/**
 * @brief Non-blocking send; complete it with scomm_test/scomm_wait. Do not
 * write buf (on any stream, for device memory) before the request
 * completes: a receiver on this host may copy CUDA memory straight out of
 * it until then (docs/device.md, "Send and receive over CUDA IPC").
 */
SCOMM_API scomm_status_t scomm_isend(const void *buf, size_t count,
                                     scomm_dtype_t dtype, int32_t peer,
                                     int32_t tag, scomm_comm_t *comm,
                                     scomm_req_t **req_p);

/** @brief Non-blocking receive; complete it with scomm_test/scomm_wait. */
SCOMM_API scomm_status_t scomm_irecv(void *buf, size_t count,
                                     scomm_dtype_t dtype, int32_t peer,
                                     int32_t tag, scomm_comm_t *comm,
                                     scomm_req_t **req_p);

/* ------------------------------------------------------------------------ */
/* Requests                                                                  */
/* ------------------------------------------------------------------------ */

/**
 * @brief Make progress and report whether req is complete. When *done is
 * set to 1, or an error is returned, the request is released and must not
 * be used again; its status is the return value.
 */
SCOMM_API scomm_status_t scomm_test(scomm_req_t *req, int32_t *done);

/**
 * @brief Wait for req under the communicator's deadline and release it.
 * @return the operation's status; SCOMM_ERR_TIMED_OUT at the deadline.
 */
SCOMM_API scomm_status_t scomm_wait(scomm_req_t *req);

/**
 * @brief Wait for all n requests (NULL entries are skipped) and release
 * them; returns the first error met, after every request has finished.
 */
SCOMM_API scomm_status_t scomm_wait_all(size_t n, scomm_req_t **reqs);

/* ------------------------------------------------------------------------ */
/* Collectives (blocking)                                                    */
/* ------------------------------------------------------------------------ */

/*
 * Rules shared by the collectives below (NCCL/MPI semantics):
 *  - every rank of comm calls the same collectives in the same order, with
 *    the same count, dtype, op and root;
 *  - counts are in elements of dtype; a count of 0 is a valid no-op;
 *  - in-place is the form documented on each call; other overlaps between
 *    the send and receive buffers are SCOMM_ERR_INVALID_ARG;
 *  - an argument error is detected before any data moves and leaves the
 *    caller's buffers untouched; an error once the algorithm runs (peer
 *    lost, timeout, out of memory, a message longer than expected because
 *    counts differ between ranks) fails the communicator's world, so every
 *    rank returns an error instead of waiting for its deadline;
 *  - with SCOMM_CHECK=1 the ranks first compare their arguments (the
 *    collective, count, dtype, op, root; for all_to_allv each pair's
 *    counts) and all return SCOMM_ERR_MISMATCH, naming a rank that
 *    differs, before any data moves; the communicator stays usable;
 *  - the algorithm is chosen per call by op, size in bytes, rank count,
 *    whether it is a power of two and whether every rank shares this host
 *    over shared memory (then "direct": ranks read each other's data in
 *    shared memory, see "Memory" below); SCOMM_COLL_<OP>_ALGO (OP:
 *    ALLREDUCE, ALLGATHER, REDUCESCATTER, BROADCAST, REDUCE, ALLTOALL,
 *    ALLTOALLV, GATHER, SCATTER) or SCOMM_ALGO forces one by name (an
 *    unknown name is SCOMM_ERR_INVALID_ARG listing the valid ones);
 *    scomm_last_selection() tells which one ran and why.
 *
 * Reductions (sum, prod, max, min, avg on every dtype):
 *  - integers wrap modulo 2^bits; avg is the wrapped sum divided by the
 *    number of ranks with truncation toward zero (C division);
 *  - floats: avg is the sum divided once, at the end, by the number of
 *    ranks; float16, bfloat16 and fp8 are combined in float32 and rounded
 *    to the dtype after each step of the algorithm; max/min propagate NaN
 *    and order -0 below +0;
 *  - all_reduce results are bit-identical on every rank. Different
 *    algorithms may round differently (the order of combination differs),
 *    so results of inexact float sums depend on the algorithm chosen.
 */

/** @brief Wait until every rank of comm has called it. */
SCOMM_API scomm_status_t scomm_barrier(scomm_comm_t *comm);

/**
 * @brief recvbuf[i] = sendbuf_0[i] op sendbuf_1[i] op ... on every rank.
 * @param[in]  sendbuf  count elements (== recvbuf for in-place)
 * @param[out] recvbuf  count elements
 * @return SCOMM_OK, ERR_INVALID_ARG (NULL buffer with count > 0, count
 *         overflow, bad dtype or op, partial overlap), ERR_MISMATCH,
 *         ERR_NO_MEMORY, ERR_TIMED_OUT, ERR_PEER_LOST, ERR_ABORTED
 */
SCOMM_API scomm_status_t scomm_all_reduce(const void *sendbuf, void *recvbuf,
                                          size_t count, scomm_dtype_t dtype,
                                          scomm_redop_t op,
                                          scomm_comm_t *comm);

/**
 * @brief Concatenate every rank's sendcount elements, in rank order, into
 * recvbuf (size * sendcount elements) on every rank.
 * In-place: sendbuf == recvbuf + rank * sendcount * dtype size.
 * @return as scomm_all_reduce()
 */
SCOMM_API scomm_status_t scomm_all_gather(const void *sendbuf, void *recvbuf,
                                          size_t sendcount,
                                          scomm_dtype_t dtype,
                                          scomm_comm_t *comm);

/**
 * @brief Reduce size * recvcount elements across ranks; rank r receives
 * block r (elements r*recvcount .. (r+1)*recvcount-1) of the result.
 * In-place: recvbuf == sendbuf + rank * recvcount * dtype size.
 * @return as scomm_all_reduce()
 */
SCOMM_API scomm_status_t scomm_reduce_scatter(const void *sendbuf,
                                              void *recvbuf, size_t recvcount,
                                              scomm_dtype_t dtype,
                                              scomm_redop_t op,
                                              scomm_comm_t *comm);

/**
 * @brief Copy root's count elements of buf into buf on every rank.
 * @return as scomm_all_reduce(), and ERR_INVALID_ARG for a root out of range
 */
SCOMM_API scomm_status_t scomm_broadcast(void *buf, size_t count,
                                         scomm_dtype_t dtype, int32_t root,
                                         scomm_comm_t *comm);

/**
 * @brief Like scomm_all_reduce(), but only root receives the result.
 * recvbuf is used on root only and may be NULL elsewhere. In-place (on
 * root): sendbuf == recvbuf.
 * @return as scomm_broadcast()
 */
SCOMM_API scomm_status_t scomm_reduce(const void *sendbuf, void *recvbuf,
                                      size_t count, scomm_dtype_t dtype,
                                      scomm_redop_t op, int32_t root,
                                      scomm_comm_t *comm);

/**
 * @brief Rank r sends elements p*count_per_peer .. (p+1)*count_per_peer-1
 * of sendbuf to rank p, which stores them at r*count_per_peer in recvbuf.
 * In-place: sendbuf == recvbuf.
 * @return as scomm_all_reduce()
 */
SCOMM_API scomm_status_t scomm_all_to_all(const void *sendbuf, void *recvbuf,
                                          size_t count_per_peer,
                                          scomm_dtype_t dtype,
                                          scomm_comm_t *comm);

/**
 * @brief All-to-all with per-peer counts and displacements (in elements):
 * sendcounts[p] elements at sendbuf + sdispls[p] go to rank p, which
 * receives recvcounts[r] elements at recvbuf + rdispls[r]. sendcounts[p]
 * on rank r must equal recvcounts[r] on rank p. Receive blocks must not
 * overlap. In-place: sendbuf == recvbuf, with sendcounts == recvcounts and
 * sdispls == rdispls.
 * @return as scomm_all_reduce()
 */
SCOMM_API scomm_status_t scomm_all_to_allv(const void *sendbuf,
                                           const size_t *sendcounts,
                                           const size_t *sdispls,
                                           void *recvbuf,
                                           const size_t *recvcounts,
                                           const size_t *rdispls,
                                           scomm_dtype_t dtype,
                                           scomm_comm_t *comm);

/**
 * @brief Root receives every rank's sendcount elements, in rank order, in
 * recvbuf (size * sendcount elements). recvbuf is used on root only and
 * may be NULL elsewhere. In-place (on root): sendbuf == recvbuf + root *
 * sendcount * dtype size.
 * @return as scomm_broadcast()
 */
SCOMM_API scomm_status_t scomm_gather(const void *sendbuf, void *recvbuf,
                                      size_t sendcount, scomm_dtype_t dtype,
                                      int32_t root, scomm_comm_t *comm);

/**
 * @brief Root sends block r (recvcount elements at r * recvcount) of
 * sendbuf to rank r. sendbuf is used on root only and may be NULL
 * elsewhere. In-place (on root): recvbuf == sendbuf + root * recvcount *
 * dtype size.
 * @return as scomm_broadcast()
 */
SCOMM_API scomm_status_t scomm_scatter(const void *sendbuf, void *recvbuf,
                                       size_t recvcount, scomm_dtype_t dtype,
                                       int32_t root, scomm_comm_t *comm);

/** Which algorithm a collective ran, and why (scomm_last_selection()). */
typedef struct scomm_coll_record {
    char algo[32];     /**< "ring", "recursive_doubling", ... or "none" */
    char rule_id[48];  /**< the selector's rule, e.g. "allreduce.small" */
    char reason[160];  /**< the inputs that decided, in words */
} scomm_coll_record_t;

/**
 * @brief The algorithm chosen by comm's last collective (of the calls
 * above), the selector's rule id and the reason. Before any collective:
 * algo and rule_id are "none".
 * @param[out] out  filled on success
 * @return SCOMM_OK, ERR_INVALID_ARG (NULL out or comm), ERR_INVALID_USAGE
 *         (destroyed comm)
 */
SCOMM_API scomm_status_t scomm_last_selection(const scomm_comm_t *comm,
                                              scomm_coll_record_t *out);

/* ------------------------------------------------------------------------ */
/* Memory                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * Buffers the ranks of one host share. A collective whose buffers come
 * from scomm_mem_alloc() lets the shared-memory algorithms ("direct", used
 * when every rank of the communicator is on this host) read and write them
 * where they are instead of staging them through the library's own shared
 * memory: all_reduce then copies each byte once less.
 */

/**
 * @brief Allocate bytes of memory that the other ranks of comm on this host
 * can read and write. Collective over comm: every rank calls it, in the
 * same order relative to the other collectives, each with its own size
 * (0 is allowed and gives a valid, unique pointer). The memory is
 * page-aligned and zero-filled, reserved at once (a full /dev/shm is
 * SCOMM_ERR_NO_MEMORY here, never a fault later), and private to the user
 * (0600, unlinked before the call returns). It stays valid until
 * scomm_mem_free() or until comm is destroyed.
 * @param[in]  comm   communicator
 * @param[in]  bytes  size on this rank
 * @param[out] ptr_p  the memory, set only on success
 * @return SCOMM_OK, ERR_INVALID_ARG (NULL ptr_p, bytes too large),
 *         ERR_NO_MEMORY or ERR_SYSTEM (on any rank: every rank returns it,
 *         naming the rank, and comm stays usable), ERR_TIMED_OUT,
 *         ERR_PEER_LOST, ERR_ABORTED
 */
SCOMM_API scomm_status_t scomm_mem_alloc(scomm_comm_t *comm, size_t bytes,
                                         void **ptr_p);

/**
 * @brief Release memory from scomm_mem_alloc(). Collective over comm like
 * the allocation: every rank frees the memory it got from the same
 * scomm_mem_alloc() call, in the same order; the ranks check that they
 * agree. After a failure of comm (peer lost, timeout, abort) it releases
 * this rank's mappings without communicating. NULL does nothing.
 * @return SCOMM_OK, ERR_INVALID_ARG (ptr not from scomm_mem_alloc on
 *         comm, or freed already), ERR_MISMATCH (a rank frees another
 *         allocation: nothing is freed), ERR_INVALID_USAGE (destroyed comm)
 */
SCOMM_API scomm_status_t scomm_mem_free(scomm_comm_t *comm, void *ptr);

/**
 * @brief Record that [ptr, ptr + bytes) of ordinary memory will be used as
 * collective buffers on comm. Local (not collective). In this version
 * registration only records the range and changes no algorithm: ordinary
 * memory cannot be mapped by the other processes, and the shared-memory
 * all_reduce already reads it where it is, with process_vm_readv, from
 * 128 KiB to 8 MiB (below it stages through small buffers that stay in the
 * caches, above it stages so that recvbuf is written once, without being
 * read first). Use scomm_mem_alloc() for buffers the other ranks map.
 * @return SCOMM_OK, ERR_INVALID_ARG (NULL ptr, bytes 0 or past the end of
 *         the address space, ptr registered already), ERR_NO_MEMORY
 */
SCOMM_API scomm_status_t scomm_mem_register(scomm_comm_t *comm, void *ptr,
                                            size_t bytes);

/**
 * @brief Forget a range given to scomm_mem_register() (by its start).
 * @return SCOMM_OK, ERR_INVALID_ARG (ptr not registered on comm),
 *         ERR_INVALID_USAGE (destroyed comm)
 */
SCOMM_API scomm_status_t scomm_mem_deregister(scomm_comm_t *comm, void *ptr);

/* ------------------------------------------------------------------------ */
/* Non-blocking collectives, groups, fusion, overlap (src/overlap)          */
/* ------------------------------------------------------------------------ */

/*
 * Non-blocking collectives (docs/overlap.md). Each scomm_iX() checks its
 * arguments exactly as scomm_X() does (same errors, nothing queued on an
 * error) and returns a request completed by scomm_test(), scomm_wait() or
 * scomm_wait_all(). Buffers must stay valid and untouched until then.
 * Operations of one communicator run in issue order, blocking and
 * non-blocking alike, so every rank must issue them in the same order (as
 * in NCCL and MPI); several may be in flight, interleaved with send/recv.
 *
 * Progress: SCOMM_PROGRESS=thread (default) runs the queued operations on
 * one background thread per communicator, made at the first non-blocking
 * call; it spins SCOMM_PROGRESS_SPIN_US (default 50) after each operation
 * and then sleeps on a condition variable, so an idle communicator costs
 * no CPU. SCOMM_PROGRESS=inline has no thread: queued operations run in
 * the caller's thread inside scomm_test/scomm_wait (scomm_test then
 * blocks while it runs them).
 *
 * Errors after queueing (peer lost, timeout, abort) complete every queued
 * request with that error and a message naming the rank.
 */

/** @brief Non-blocking scomm_all_reduce().
 * @param[out] req_p  the request, set only on success
 * @return as scomm_all_reduce() for argument errors; ERR_INVALID_ARG for a
 *         NULL req_p; ERR_NO_MEMORY; ERR_SYSTEM (thread creation) */
SCOMM_API scomm_status_t scomm_iall_reduce(const void *sendbuf, void *recvbuf,
                                           size_t count, scomm_dtype_t dtype,
                                           scomm_redop_t op,
                                           scomm_comm_t *comm,
                                           scomm_req_t **req_p);

/** @brief Non-blocking scomm_all_gather(); errors as scomm_iall_reduce(). */
SCOMM_API scomm_status_t scomm_iall_gather(const void *sendbuf,
                                           void *recvbuf, size_t sendcount,
                                           scomm_dtype_t dtype,
                                           scomm_comm_t *comm,
                                           scomm_req_t **req_p);

/** @brief Non-blocking scomm_reduce_scatter(); errors as
 * scomm_iall_reduce(). */
SCOMM_API scomm_status_t scomm_ireduce_scatter(const void *sendbuf,
                                               void *recvbuf,
                                               size_t recvcount,
                                               scomm_dtype_t dtype,
                                               scomm_redop_t op,
                                               scomm_comm_t *comm,
                                               scomm_req_t **req_p);

/** @brief Non-blocking scomm_broadcast(); errors as scomm_iall_reduce(). */
SCOMM_API scomm_status_t scomm_ibroadcast(void *buf, size_t count,
                                          scomm_dtype_t dtype, int32_t root,
                                          scomm_comm_t *comm,
                                          scomm_req_t **req_p);

/** @brief Non-blocking scomm_reduce(); errors as scomm_iall_reduce(). */
SCOMM_API scomm_status_t scomm_ireduce(const void *sendbuf, void *recvbuf,
                                       size_t count, scomm_dtype_t dtype,
                                       scomm_redop_t op, int32_t root,
                                       scomm_comm_t *comm,
                                       scomm_req_t **req_p);

/** @brief Non-blocking scomm_all_to_all(); errors as scomm_iall_reduce(). */
SCOMM_API scomm_status_t scomm_iall_to_all(const void *sendbuf,
                                           void *recvbuf,
                                           size_t count_per_peer,
                                           scomm_dtype_t dtype,
                                           scomm_comm_t *comm,
                                           scomm_req_t **req_p);

/** @brief Non-blocking scomm_all_to_allv(). The four arrays are copied:
 * they may be freed once the call returns (the buffers may not).
 * Errors as scomm_iall_reduce(). */
SCOMM_API scomm_status_t scomm_iall_to_allv(const void *sendbuf,
                                            const size_t *sendcounts,
                                            const size_t *sdispls,
                                            void *recvbuf,
                                            const size_t *recvcounts,
                                            const size_t *rdispls,
                                            scomm_dtype_t dtype,
                                            scomm_comm_t *comm,
                                            scomm_req_t **req_p);

/** @brief Non-blocking scomm_gather(); errors as scomm_iall_reduce(). */
SCOMM_API scomm_status_t scomm_igather(const void *sendbuf, void *recvbuf,
                                       size_t sendcount, scomm_dtype_t dtype,
                                       int32_t root, scomm_comm_t *comm,
                                       scomm_req_t **req_p);

/** @brief Non-blocking scomm_scatter(); errors as scomm_iall_reduce(). */
SCOMM_API scomm_status_t scomm_iscatter(const void *sendbuf, void *recvbuf,
                                        size_t recvcount,
                                        scomm_dtype_t dtype, int32_t root,
                                        scomm_comm_t *comm,
                                        scomm_req_t **req_p);

/** @brief Non-blocking scomm_barrier(). */
SCOMM_API scomm_status_t scomm_ibarrier(scomm_comm_t *comm,
                                        scomm_req_t **req_p);

/**
 * @brief Open a group on the calling thread (groups nest; only the
 * outermost end acts). Collectives issued by this thread until the
 * matching scomm_group_end() are queued, not started: non-blocking ones
 * return their request at once, blocking ones return SCOMM_OK at once and
 * complete inside scomm_group_end() (NCCL semantics). Point-to-point calls
 * of native communicators are not deferred. The calls (collectives and
 * point-to-point) of a vendor communicator go into the vendor's own group
 * (ncclGroupStart, ...), launched once at scomm_group_end(). Do not wait
 * on a request of a group before its end.
 * @return SCOMM_OK, ERR_INVALID_USAGE (more than 1024 nested groups)
 */
SCOMM_API scomm_status_t scomm_group_start(void);

/**
 * @brief Close the group: all_reduces of one communicator with the same
 * dtype and op, each at most SCOMM_FUSION_BYTES / 2, that follow each
 * other in issue order (other collectives of that communicator close a
 * batch) are packed into one all_reduce of at most SCOMM_FUSION_BYTES
 * (default 64 KiB, measured in docs/overlap.md; 0 turns fusion off;
 * every rank must use the same value)
 * and unpacked when it completes. Then every operation is started in
 * issue order, and the deferred blocking ones are waited for. The vendors'
 * groups are launched (their calls stay stream-ordered: nothing waits for
 * the device).
 * @return SCOMM_OK, ERR_INVALID_USAGE (no open group), or the first error
 *         of a deferred blocking collective or of a vendor's group
 */
SCOMM_API scomm_status_t scomm_group_end(void);

/** Counters of a communicator's engine (scomm_overlap_stats()). */
typedef struct scomm_overlap_stats {
    uint64_t ops_submitted;  /**< collectives queued (i-forms, deferred and
                                  routed blocking calls) */
    uint64_t ops_completed;  /**< of those, completed (any status) */
    uint64_t ops_failed;     /**< completed with an error */
    uint64_t ops_fused;      /**< all_reduces packed into fused batches */
    uint64_t fused_batches;  /**< fused all_reduces run (>= 2 ops each) */
    uint64_t bytes_submitted;/**< bytes of the queued collectives */
    uint64_t bytes_fused;    /**< bytes that went through fused batches */
    uint64_t groups;         /**< scomm_group_end() calls that queued ops */
    uint64_t blocking_routed;/**< blocking calls that went through the queue */
    uint64_t worker_sleeps;  /**< times the progress thread went to sleep */
    uint64_t queue_max;      /**< largest queue length seen */
    uint64_t fusion_bytes;   /**< SCOMM_FUSION_BYTES in force */
    int32_t  progress_thread;/**< 1: thread mode with a running thread */
    int32_t  pad;
} scomm_overlap_stats_t;

/**
 * @brief Read comm's engine counters (all zero before any non-blocking
 * call or group on comm).
 * @return SCOMM_OK, ERR_INVALID_ARG (NULL comm or out), ERR_INVALID_USAGE
 *         (destroyed comm)
 */
SCOMM_API scomm_status_t scomm_overlap_stats(scomm_comm_t *comm,
                                             scomm_overlap_stats_t *out);

/**
 * Callback of scomm_all_reduce_chunked(): chunk index, its first element
 * and its element count, and the caller's pointer.
 */
typedef void (*scomm_chunk_cb_t)(void *user, size_t chunk, size_t offset,
                                 size_t count);

/**
 * @brief The overlap window: all_reduce count elements in chunks of
 * chunk_count elements (the last may be shorter), each a non-blocking
 * all_reduce, with callbacks on the caller's thread. produce(i), if not
 * NULL, is called before chunk i is started and must write chunk i of
 * sendbuf (e.g. compute that slice of a GEMM): chunk i-1 is reduced in the
 * background meanwhile. consume(i), if not NULL, is called once chunk i
 * of recvbuf holds its result, while later chunks are still on the wire.
 * Every rank must pass the same count and chunk_count. Needs
 * SCOMM_PROGRESS=thread to overlap (inline mode runs chunks in order).
 * @return as scomm_all_reduce(); ERR_INVALID_ARG for chunk_count 0
 */
SCOMM_API scomm_status_t scomm_all_reduce_chunked(const void *sendbuf,
                                                  void *recvbuf, size_t count,
                                                  scomm_dtype_t dtype,
                                                  scomm_redop_t op,
                                                  size_t chunk_count,
                                                  scomm_chunk_cb_t produce,
                                                  scomm_chunk_cb_t consume,
                                                  void *user,
                                                  scomm_comm_t *comm);


/* (end of Non-blocking collectives, groups, fusion, overlap (src/overlap)) */

/* ------------------------------------------------------------------------ */
/* Telemetry and control (src/telemetry)                                    */
/* ------------------------------------------------------------------------ */

/*
 * Every collective, barrier and point-to-point call is counted per
 * communicator, operation and algorithm: operations, bytes, a latency
 * histogram, errors by status (docs/telemetry.md lists every metric).
 * On by default (a few ns per call); SCOMM_METRICS=0 turns it off.
 * SCOMM_METRICS_PORT=P serves the Prometheus text at
 * http://SCOMM_METRICS_ADDR:(P + local rank)/metrics (address default
 * 127.0.0.1; P = 0: a free port, logged, see scomm_metrics_port()); no
 * variable, no server. SCOMM_TRACE=path writes a Chrome trace-event JSON
 * file per rank (%r: rank, %p: pid; else path.rank<N>.json).
 */

/**
 * @brief This process's metrics in the Prometheus text format (version
 * 0.0.4), the body that /metrics serves.
 * @param[out] text_p  NUL-terminated text, free with scomm_metrics_free()
 * @param[out] len_p   its length without the NUL (may be NULL)
 * @return SCOMM_OK, ERR_INVALID_ARG (text_p NULL), ERR_NO_MEMORY
 */
SCOMM_API scomm_status_t scomm_metrics_text(char **text_p, size_t *len_p);

/** @brief Free a text from scomm_metrics_text(); NULL is ignored. */
SCOMM_API void scomm_metrics_free(char *text);

/**
 * @brief The TCP port the /metrics server listens on, or -1 when none
 * runs (SCOMM_METRICS_PORT unset or invalid, port in use, no communicator
 * alive).
 */
SCOMM_API int32_t scomm_metrics_port(void);

/**
 * @brief Mark the start of a model step on this rank. scomm_step_end()
 * then measures the step's wall time and the part of it spent inside
 * operations of comm's world (all its communicators).
 * @return SCOMM_OK, ERR_INVALID_ARG / ERR_INVALID_USAGE (bad comm),
 *         ERR_NO_MEMORY
 */
SCOMM_API scomm_status_t scomm_step_begin(scomm_comm_t *comm);

/**
 * @brief Mark the end of the step begun on comm; adds to the metrics
 * scomm_steps_total, scomm_step_seconds_total,
 * scomm_step_comm_seconds_total and sets scomm_step_comm_share.
 * @param[out] share_p  communication share of this step, 0..1 (may be
 *                      NULL)
 * @return SCOMM_OK, ERR_INVALID_USAGE (no scomm_step_begin before it, or
 *         destroyed comm), ERR_INVALID_ARG (NULL comm)
 */
SCOMM_API scomm_status_t scomm_step_end(scomm_comm_t *comm, double *share_p);

/**
 * @brief Change a run-time knob of this process. Keys and values:
 *   "metrics"     "on" | "off"   count operations (SCOMM_METRICS)
 *   "trace"       "on" | "off"   record trace events (SCOMM_TRACE)
 *   "trace_path"  file template  where the trace goes (%r, %p)
 *   "chunk_size"  size, 4k..1g   pipelining chunk, for the modules that
 *                                read it (k/m/g suffixes)
 *   "channels"    1..64          parallel channels of the overlap engine
 *   "fusion"      "on" | "off"   fusion of small operations
 * The last three are stored for the modules that own them to read at
 * their next operation (docs/telemetry.md says which honour them).
 * @param[in] comm  receives the error message; may be NULL (the knobs are
 *                  process-wide)
 * @return SCOMM_OK, ERR_INVALID_ARG (unknown key, bad value: the message
 *         lists what is accepted), ERR_NO_MEMORY (trace buffer)
 */
SCOMM_API scomm_status_t scomm_control_set(scomm_comm_t *comm,
                                           const char *key,
                                           const char *value);

/**
 * @brief Current value of a knob of scomm_control_set(), as text ("on",
 * "off", a number, a path, or "default" for a knob never set).
 * @param[out] value  NUL-terminated, at most len bytes with the NUL
 * @return SCOMM_OK, ERR_INVALID_ARG (unknown key, NULL value, len too
 *         small)
 */
SCOMM_API scomm_status_t scomm_control_get(scomm_comm_t *comm,
                                           const char *key, char *value,
                                           size_t len);

/* (end of Telemetry and control (src/telemetry)) */

/* ------------------------------------------------------------------------ */
/* Vendor backends (src/backend)                                            */
/* ------------------------------------------------------------------------ */

/*
 * Vendor backends (docs/backends.md): scomm_init() with opts.backend (or
 * SCOMM_BACKEND) = "nccl", "rccl" (AMD, and Hygon DCU), "hccl" (Huawei
 * Ascend), "cncl" (Cambricon) or "bkcl" (Kunlunxin) creates, after the
 * native world is up, a vendor communicator under the world communicator:
 * rank 0 asks the vendor for its unique id and broadcasts it over scomm's
 * own connections. The library is loaded with dlopen at run time from
 * SCOMM_<VENDOR>_LIBRARY (a path) or its usual name (libnccl.so.2,
 * librccl.so.1, libhccl.so, libcncl.so, libbkcl.so) on the loader's path;
 * a missing library is SCOMM_ERR_UNSUPPORTED on every rank, naming the
 * library and how to install it.
 *
 * Calls on such a communicator are stream-ordered, as the vendor's own
 * are: every collective and point-to-point call (blocking, non-blocking
 * and grouped) maps its arguments, enqueues the vendor's call on the
 * communicator's stream (scomm_comm_set_stream(); NULL, the default, is
 * the vendor's default stream) on the caller's device buffers, and
 * returns without waiting for the device. The result is there once the
 * stream passed the call: after scomm_comm_synchronize(), scomm_wait() on
 * the request of a non-blocking call, or any stream-ordered use on the
 * device. Sends and receives pair in issue order per peer (vendors have no
 * tags: tag is checked, then ignored); as with NCCL, a send and its
 * receive must not queue behind each other on one stream (put them in one
 * group). Inside scomm_group_start/end the calls of a vendor communicator
 * become one vendor group (one launch) at scomm_group_end(). A call on a
 * stream that is capturing (a CUDA graph) is captured and replayed with
 * the graph; scomm waits for and watches nothing of it.
 *
 * Deadline: a watchdog thread per world polls a completion event recorded
 * after each call and the vendor's asynchronous error. A call not complete
 * within the communicator's timeout fails the world with
 * SCOMM_ERR_TIMED_OUT naming the operation, its number on the
 * communicator and the ranks that never reached it (the ranks compare
 * their progress over scomm's native connections), and the vendor
 * communicator is aborted; every rank's next call or wait returns that
 * error. A dtype or op the vendor lacks (e.g. fp8 before NCCL 2.24, avg on
 * HCCL) is SCOMM_ERR_UNSUPPORTED naming both. scomm_barrier and
 * scomm_comm_split's own exchange use the native connections; a split of a
 * vendor communicator gets a vendor communicator of its own.
 * scomm_comm_abort() calls the vendor's abort; scomm_comm_destroy() the
 * vendor's destroy.
 */

/**
 * @brief Stream (cudaStream_t, hipStream_t, aclrtStream, cnrtQueue_t,
 * XPUStream) on which comm's later vendor calls are enqueued; NULL is the
 * vendor's default stream. A split inherits it. Each call reads it once,
 * when it enqueues: switching streams between calls costs a store, so
 * this is also the per-call stream (there is no per-call argument and no
 * thread-local current stream: see docs/backends.md). On a native
 * communicator it is the CUDA/HIP stream that calls on device buffers are
 * ordered after and signal back to (docs/device.md).
 * @return SCOMM_OK, ERR_INVALID_ARG (comm), ERR_INVALID_USAGE (comm was
 *         destroyed)
 */
SCOMM_API scomm_status_t scomm_comm_set_stream(scomm_comm_t *comm,
                                               void *stream);

/*
 * Device memory on native communicators (docs/device.md): a collective
 * (blocking, non-blocking or in a group) or a send/recv (blocking or not)
 * whose buffers are CUDA (or HIP) device memory is staged through
 * page-locked host buffers with asynchronous copies on an internal stream
 * that waits for the communicator's stream (scomm_comm_set_stream) first
 * and that stream waits for the copies back: the call is stream-ordered.
 * A non-blocking call's result is on the stream it was made on once
 * scomm_wait (or a scomm_test saying done) returns. scomm finds each buffer's kind through the
 * runtime (cudaPointerGetAttributes, loaded with dlopen; only when a
 * runtime is already in the process or SCOMM_CUDART_LIBRARY /
 * SCOMM_HIPRT_LIBRARY names one), cached per device range; a caller that
 * knows can say so with scomm_mem_kind_hint() and skip the query.
 * scomm_last_selection()'s reason starts with "path staged" (or
 * "path cuda_ipc") when a call ran so.
 */

/** Kinds of memory a buffer can be in. */
typedef enum scomm_mem_kind {
    SCOMM_MEM_AUTO         = 0, /**< find out (the default) */
    SCOMM_MEM_HOST         = 1, /**< host memory: no query, no staging */
    SCOMM_MEM_CUDA         = 2, /**< CUDA device memory: staged */
    SCOMM_MEM_CUDA_PINNED  = 3, /**< page-locked host memory: as host */
    SCOMM_MEM_CUDA_MANAGED = 4, /**< managed (host-accessible): as host */
    SCOMM_MEM_ROCM         = 5, /**< HIP device memory: staged */
    SCOMM_MEM_ASCEND       = 6, /**< not handled: SCOMM_ERR_UNSUPPORTED */
    SCOMM_MEM_MLU          = 7, /**< not handled: SCOMM_ERR_UNSUPPORTED */
    SCOMM_MEM_XPU          = 8, /**< not handled: SCOMM_ERR_UNSUPPORTED */
    SCOMM_MEM_KIND_COUNT
} scomm_mem_kind_t;

/**
 * @brief What comm's later calls' buffers are: SCOMM_MEM_AUTO (default:
 * ask the runtime per buffer), or one kind for every buffer of every call
 * (SCOMM_MEM_HOST: zero cost, no query). Read once per call, like the
 * stream. A split inherits it.
 * @return SCOMM_OK, ERR_INVALID_ARG (comm, kind out of range),
 *         ERR_UNSUPPORTED (a device kind and no runtime that can copy it:
 *         the message names the kind and what was looked for),
 *         ERR_INVALID_USAGE (destroyed comm)
 */
SCOMM_API scomm_status_t scomm_mem_kind_hint(scomm_comm_t *comm,
                                             scomm_mem_kind_t kind);

/**
 * @brief The kind of memory p points to, as scomm sees it (through the
 * cache): SCOMM_MEM_HOST when no runtime is loaded.
 * @return SCOMM_OK, ERR_INVALID_ARG (NULL kind), ERR_SYSTEM (the runtime
 *         failed; scomm_last_error() says which call)
 */
SCOMM_API scomm_status_t scomm_mem_kind(const void *p,
                                        scomm_mem_kind_t *kind);

/** @brief "host", "cuda", "cuda_pinned", ...; "invalid" out of range. */
SCOMM_API const char *scomm_mem_kind_name(scomm_mem_kind_t kind);

/**
 * @brief Wait until everything enqueued on comm's stream so far, and every
 * vendor call of comm, has completed on the device. Bounded by the
 * watchdog: past the communicator's timeout it returns the watchdog's
 * SCOMM_ERR_TIMED_OUT (naming the operation and the ranks that never
 * reached it), or any earlier failure of the world. On a native
 * communicator every call has completed already: SCOMM_OK at once.
 * @return SCOMM_OK, ERR_TIMED_OUT, the world's fault, ERR_INVALID_USAGE
 *         (the stream is capturing, or comm was destroyed)
 */
SCOMM_API scomm_status_t scomm_comm_synchronize(scomm_comm_t *comm);

/**
 * @brief Backend of comm: "native", "mock", or the vendor's name ("nccl",
 * ...); "invalid" for NULL or a destroyed communicator.
 */
SCOMM_API const char *scomm_comm_backend(const scomm_comm_t *comm);

/** One vendor library as scomm finds it on this host. */
typedef struct scomm_backend_info {
    char    name[16];      /**< backend name: "nccl", "rccl", ... */
    char    library[256];  /**< the library loaded, or the one looked for */
    char    version[32];   /**< "2.21.5"; "unknown" without a version call */
    int32_t found;         /**< 1: loaded, with every entry point needed */
    char    detail[320];   /**< why it is unusable and how to install it */
    char    runtime[320];  /**< its device runtime: "libcudart.so.13 (CUDA
                                runtime 13.0; a dependency of libnccl.so.2):
                                /path", or "none: why" */
} scomm_backend_info_t;

/** @brief Number of vendor backends scomm knows (for scomm_backend_probe). */
SCOMM_API int32_t scomm_backend_count(void);

/**
 * @brief Try to load vendor backend index (0 .. scomm_backend_count()-1)
 * and describe it. A library that is missing is not an error: found is 0
 * and detail says why.
 * @return SCOMM_OK, ERR_INVALID_ARG (index out of range, out NULL)
 */
SCOMM_API scomm_status_t scomm_backend_probe(int32_t index,
                                             scomm_backend_info_t *out);

/* (end of Vendor backends (src/backend)) */

/* ------------------------------------------------------------------------ */
/* Topology and presets (src/topo)                                          */
/* ------------------------------------------------------------------------ */

/**
 * @brief Topology of this host, or of every rank of comm, as JSON (schema
 * "scomm.topology/1", docs/topology.md): CPUs, NUMA nodes, caches,
 * accelerators, NICs, RDMA ports, CXL devices; with comm, the hosts, each
 * rank's NUMA node, device and nearest NIC, the world_size x world_size
 * link matrix (kind, bandwidth_gbps, latency_us, hops) and the seed's Link
 * list; and the recommended preset with its reasons.
 *
 * With comm != NULL this is collective: every rank of comm must call it
 * (it all_gathers one summary per rank). Discovery honours
 * SCOMM_TOPO_FILE (hwloc XML or our JSON), SCOMM_SYSFS_ROOT and
 * SCOMM_TOPO_DUMP_FILE.
 * @param[in]  comm    communicator, or NULL for this host alone
 * @param[out] json_p  NUL-terminated text; free it with
 *                     scomm_topology_free()
 * @return SCOMM_OK, ERR_INVALID_ARG (json_p NULL), ERR_BAD_CONFIG (a
 *         topology file that cannot be read, on any rank), ERR_NO_MEMORY,
 *         ERR_SYSTEM (hwloc failed), or the all_gather's error
 */
SCOMM_API scomm_status_t scomm_topology_json(scomm_comm_t *comm,
                                             char **json_p);

/** @brief Free text returned by scomm_topology_json() (NULL is fine). */
SCOMM_API void scomm_topology_free(char *json);

/**
 * @brief Name of the preset recommended for comm's ranks (collective when
 * comm != NULL, as scomm_topology_json), or for this host when comm is
 * NULL: "high-bw", "low-latency" or "low-cost".
 * @param[out] name  buffer of len bytes (32 is enough)
 * @return SCOMM_OK, ERR_INVALID_ARG (name NULL or len too small), or as
 *         scomm_topology_json()
 */
SCOMM_API scomm_status_t scomm_preset_recommend(scomm_comm_t *comm,
                                                char *name, size_t len);

/* (end of Topology and presets (src/topo)) */

/* ------------------------------------------------------------------------ */
/* KV-cache transfer (src/kv)                                               */
/* ------------------------------------------------------------------------ */

/*
 * A KV channel moves paged KV-cache blocks from a prefill process to a
 * decode process (docs/kv.md). An endpoint (scomm_kv_ep_t) is a set of TCP
 * streams to one peer, made with scomm_kv_listen/scomm_kv_accept on one side
 * and scomm_kv_connect on the other (independent jobs, a shared token), or
 * with scomm_kv_connect_comm between two ranks of a communicator. Each side
 * registers its paged cache once (scomm_kv_register); the sender submits a
 * plan (scomm_kv_submit) with a priority; the receiver waits layer by layer
 * (scomm_kv_wait_layer) so decode can start before the last layer lands.
 * Data moves in chunks, each checked with CRC32C and re-sent when damaged;
 * on the same host the receiver copies straight out of the sender's region
 * (process_vm_readv). No call blocks past its deadline; failures are
 * SCOMM_ERR_TIMED_OUT, SCOMM_ERR_CHECKSUM, SCOMM_ERR_PEER_LOST or
 * SCOMM_ERR_MISMATCH (the seed's KV_TRANSFER_TIMEOUT, _CHECKSUM_MISMATCH,
 * _FAILED and _METADATA_MISMATCH), with a message in scomm_last_error().
 */

typedef struct scomm_kv_ep       scomm_kv_ep_t;       /**< endpoint */
typedef struct scomm_kv_listener scomm_kv_listener_t; /**< listening socket */
typedef struct scomm_kv_xfer     scomm_kv_xfer_t;     /**< sender's request */

/** Order of the elements inside one block of a paged KV cache. */
typedef enum {
    /** [K|V][head][token][dim] (vLLM/FlashAttention head-major pages) */
    SCOMM_KV_ORDER_HEAD_MAJOR  = 0,
    /** [token][K|V][head][dim] */
    SCOMM_KV_ORDER_TOKEN_MAJOR = 1
} scomm_kv_order_t;

/** Encoding of the values on the wire (lossy ones are opt-in). */
typedef enum {
    SCOMM_KV_WIRE_NATIVE   = 0, /**< the sender's dtype, bit-exact */
    SCOMM_KV_WIRE_FP8_E4M3 = 1, /**< fp8 e4m3, one fp32 scale per block/head */
    SCOMM_KV_WIRE_INT4     = 2  /**< int4 (-7..7), one scale per block/head */
} scomm_kv_wire_dtype_t;

/** Lossless compression of each chunk. Each is optional at build time
 * (liblz4-dev, libzstd-dev); one not built in is SCOMM_ERR_UNSUPPORTED at
 * scomm_kv_submit, or from the receiver for the transfer that asks. */
typedef enum {
    SCOMM_KV_COMPRESS_NONE = 0,
    SCOMM_KV_COMPRESS_LZ4  = 1,
    SCOMM_KV_COMPRESS_ZSTD = 2
} scomm_kv_compress_t;

/**
 * Shape of a registered paged KV cache. The region holds num_layers x
 * num_blocks blocks, layer-major: block b of layer l starts at byte
 * (l * num_blocks + b) * block_bytes, with block_bytes = 2 * num_kv_heads *
 * block_tokens * head_dim * dtype size, the block's elements in `order`.
 */
typedef struct scomm_kv_layout {
    int32_t       num_layers;   /**< >= 1 */
    int32_t       num_kv_heads; /**< >= 1 */
    int32_t       head_dim;     /**< >= 1 */
    int32_t       block_tokens; /**< tokens per block, >= 1 */
    int32_t       num_blocks;   /**< blocks per layer in the region, >= 1 */
    scomm_dtype_t dtype;        /**< FLOAT16, BFLOAT16 or FLOAT32 */
    int32_t       order;        /**< scomm_kv_order_t */
} scomm_kv_layout_t;

/** Fields of scomm_kv_opts_t that the caller set. */
enum {
    SCOMM_KV_FIELD_PRESET         = 1u << 0,
    SCOMM_KV_FIELD_CHUNK_SIZE     = 1u << 1,
    SCOMM_KV_FIELD_STREAMS        = 1u << 2,
    SCOMM_KV_FIELD_PREFETCH_DEPTH = 1u << 3,
    SCOMM_KV_FIELD_ZERO_COPY      = 1u << 4,
    SCOMM_KV_FIELD_COMPRESSION    = 1u << 5,
    SCOMM_KV_FIELD_WIRE_DTYPE     = 1u << 6,
    SCOMM_KV_FIELD_TIMEOUT        = 1u << 7,
    SCOMM_KV_FIELD_TOKEN          = 1u << 8,
    SCOMM_KV_FIELD_COMPRESS_LEVEL = 1u << 9,
    SCOMM_KV_FIELD_RECONNECT_MS   = 1u << 10,
    SCOMM_KV_FIELD_TRANSPORT      = 1u << 11
};

/** How a KV endpoint moves chunk bytes (docs/kv.md). Control frames always
 * go on the endpoint's TCP streams. */
typedef enum {
    SCOMM_KV_TRANSPORT_TCP = 0, /**< chunks on the TCP streams (and CMA) */
    SCOMM_KV_TRANSPORT_OFI = 1  /**< chunks by libfabric RMA writes into
                                     the receiver's registered memory */
} scomm_kv_transport_t;

/**
 * Options of an endpoint. Precedence: fields set in field_mask > the named
 * preset (src/topo, config/kv_transport_presets.yaml; with SCOMM_KV_CHUNK_SIZE
 * and friends applied by the preset loader) > built-in defaults (chunk 1 MiB,
 * 2 streams, prefetch depth 4, zero copy on, native, no compression,
 * SCOMM_TIMEOUT_MS or 30 s, token SCOMM_KV_TOKEN or "", reconnect window
 * SCOMM_KV_RECONNECT_MS or 2000 ms, transport SCOMM_KV_TRANSPORT or tcp).
 * A NULL opts means all defaults. A sender with transport ofi writes its
 * chunks by RMA and needs a receiver with transport ofi too (else its
 * transfers fail ERR_UNSUPPORTED); a build without libfabric refuses
 * transport ofi at listen/connect with ERR_UNSUPPORTED.
 * Sender-side choices (chunk, encoding) travel with each transfer, so the
 * two sides need not agree on them; the connecting side's stream count and
 * reconnect window are used (0 on either side: no reconnection).
 */
typedef struct scomm_kv_opts {
    uint64_t    field_mask;
    const char *preset;            /**< "high-bw", "low-latency", "low-cost" */
    const char *preset_file;       /**< NULL: SCOMM_PRESET_FILE or built-in */
    uint64_t    chunk_size;        /**< bytes per chunk (whole blocks) */
    int32_t     streams;           /**< TCP streams per peer, 1..16 */
    int32_t     prefetch_depth;    /**< unacknowledged chunks per stream */
    int32_t     zero_copy;         /**< same host: copy from peer's region */
    int32_t     compression;       /**< scomm_kv_compress_t */
    int32_t     compression_level; /**< zstd level / lz4 acceleration */
    int32_t     wire_dtype;        /**< scomm_kv_wire_dtype_t */
    int64_t     timeout_ms;        /**< connect/accept/wait default, > 0 */
    const char *token;             /**< shared secret, <= 63 bytes */
    int64_t     reconnect_ms;      /**< how long a lost stream is re-dialled
                                        (docs/kv.md), 0..600000, 0: never */
    int32_t     transport;         /**< scomm_kv_transport_t; default
                                        SCOMM_KV_TRANSPORT, else the
                                        preset's backend (rdma: ofi), else
                                        tcp */
} scomm_kv_opts_t;

/**
 * @brief Listen for one KV peer on host:port (port 0: any free port).
 * @param[in]  host  numeric address or name to bind ("127.0.0.1", "0.0.0.0")
 * @param[in]  port  0..65535
 * @param[in]  opts  may be NULL
 * @param[out] lst_p the listener, set only on success
 * @return SCOMM_OK, ERR_INVALID_ARG, ERR_BAD_CONFIG (preset), ERR_SYSTEM
 */
SCOMM_API scomm_status_t scomm_kv_listen(const char *host, int32_t port,
                                         const scomm_kv_opts_t *opts,
                                         scomm_kv_listener_t **lst_p);

/** @brief The port a listener is bound to, or -1 for NULL. */
SCOMM_API int32_t scomm_kv_listener_port(const scomm_kv_listener_t *lst);

/**
 * @brief Accept one peer: wait for all of its streams, check its token in
 * constant time, and return the endpoint. Connections with a wrong token
 * or a bad handshake are closed and waiting goes on.
 * @param[in]  timeout_ms  <= 0: the listener's timeout
 * @return SCOMM_OK, ERR_INVALID_ARG, ERR_TIMED_OUT, ERR_NO_MEMORY,
 *         ERR_SYSTEM
 */
SCOMM_API scomm_status_t scomm_kv_accept(scomm_kv_listener_t *lst,
                                         int64_t timeout_ms,
                                         scomm_kv_ep_t **ep_p);

/** @brief Close a listener (endpoints it accepted stay open). */
SCOMM_API void scomm_kv_listener_close(scomm_kv_listener_t *lst);

/**
 * @brief Connect to a listening peer, retrying until opts' timeout.
 * @return SCOMM_OK, ERR_INVALID_ARG, ERR_BAD_CONFIG, ERR_TIMED_OUT,
 *         ERR_ACCESS_DENIED (token refused), ERR_PROTOCOL (version),
 *         ERR_SYSTEM, ERR_NO_MEMORY
 */
SCOMM_API scomm_status_t scomm_kv_connect(const char *host, int32_t port,
                                          const scomm_kv_opts_t *opts,
                                          scomm_kv_ep_t **ep_p);

/**
 * @brief Endpoint to rank peer of comm: the lower rank listens on its
 * bootstrap address with a fresh random token and sends port and token to
 * the other with scomm_send on tag SCOMM_KV_COMM_TAG. Both ranks call it.
 * @return as scomm_kv_connect(), and scomm_send/scomm_recv's errors
 */
#define SCOMM_KV_COMM_TAG (SCOMM_TAG_MAX - 7)
SCOMM_API scomm_status_t scomm_kv_connect_comm(scomm_comm_t *comm,
                                               int32_t peer,
                                               const scomm_kv_opts_t *opts,
                                               scomm_kv_ep_t **ep_p);

/**
 * @brief Close an endpoint: tell the peer, stop its threads, free it.
 * Transfers still running on it fail with SCOMM_ERR_ABORTED; their handles
 * must still be freed with scomm_kv_xfer_free(). NULL does nothing.
 */
SCOMM_API void scomm_kv_ep_close(scomm_kv_ep_t *ep);

/**
 * @brief Register a paged cache region (once; both sides). Ids count from
 * 0 in registration order on each endpoint, so two sides that register
 * their caches in the same order use the same ids.
 * @param[in]  base   start of the region (kept by the caller until
 *                    scomm_kv_deregister or scomm_kv_ep_close)
 * @param[in]  bytes  at least num_layers * num_blocks * block_bytes
 * @param[out] id_p   the region id
 * @return SCOMM_OK, ERR_INVALID_ARG (bad layout, region too small),
 *         ERR_NO_RESOURCE (too many regions)
 */
SCOMM_API scomm_status_t scomm_kv_register(scomm_kv_ep_t *ep,
                                           const scomm_kv_layout_t *layout,
                                           void *base, uint64_t bytes,
                                           int32_t *id_p);

/**
 * @brief scomm_kv_register with the memory kind of the region said (or
 * found): SCOMM_MEM_AUTO asks the device runtime (scomm_mem_kind; what
 * scomm_kv_register does), SCOMM_MEM_HOST / _CUDA_PINNED / _CUDA_MANAGED
 * are host-accessible, SCOMM_MEM_CUDA / SCOMM_MEM_ROCM a device region
 * (docs/device.md, "The KV channel"): the sender stages each chunk device
 * -> pinned host memory on an internal stream (the next chunk's copy runs
 * while this one is on the wire), the receiver checks CRC32C on the host
 * bytes and copies host -> device; fp8/int4 and compression run on the
 * host staging copy; no same-host zero copy (process_vm_readv) for it.
 * @return as scomm_kv_register(), ERR_UNSUPPORTED (Ascend, MLU, XPU
 *         memory, or a device kind with no runtime in the process),
 *         ERR_SYSTEM (the runtime failed to tell the kind)
 */
SCOMM_API scomm_status_t scomm_kv_register_mem(scomm_kv_ep_t *ep,
                                               const scomm_kv_layout_t *layout,
                                               void *base, uint64_t bytes,
                                               scomm_mem_kind_t kind,
                                               int32_t *id_p);

/** @brief Forget a region; no transfer may use it any more. */
SCOMM_API scomm_status_t scomm_kv_deregister(scomm_kv_ep_t *ep, int32_t id);

/**
 * A transfer: tokens [0, num_tokens) of one sequence, for layers
 * [first_layer, first_layer + num_layers), from the sender's block table
 * (src_blocks, in the sender's block size) to the receiver's (dst_blocks,
 * in its block size). With equal block sizes this is the list of moves
 * (layer, src_blocks[i] -> dst_blocks[i]) and whole blocks move (a last
 * block's tail past num_tokens included); with different block sizes or
 * orders, tokens are regrouped and only tokens < num_tokens are written.
 *
 * Head ranges (prefill and decode at different tensor-parallel degrees,
 * docs/kv.md): only source heads [src_head_off, src_head_off +
 * src_head_cnt) move, into the receiver's heads [dst_head_off,
 * dst_head_off + dst_head_cnt); the receiver's other heads are not
 * written. src_head_cnt 0: up to the source's last head; dst_head_cnt 0:
 * up to the receiver's last head, which must then be the same count. All
 * four 0 (a plan from before head ranges) moves all heads to a receiver
 * with as many. The layer range serves pipeline parallelism.
 */
typedef struct scomm_kv_plan {
    uint64_t       xfer_id;        /**< names it on both sides; unique */
    int32_t        src_region;     /**< sender's region id */
    int32_t        dst_region;     /**< receiver's region id */
    int32_t        first_layer;
    int32_t        num_layers;
    uint64_t       num_tokens;     /**< >= 1 */
    const int32_t *src_blocks;     /**< ceil(num_tokens / src block) ids */
    uint32_t       num_src_blocks;
    const int32_t *dst_blocks;     /**< ceil(num_tokens / dst block) ids */
    uint32_t       num_dst_blocks;
    int32_t        src_head_off;   /**< first source head moved (0) */
    int32_t        src_head_cnt;   /**< heads moved; 0: to the last */
    int32_t        dst_head_off;   /**< receiver's head of src_head_off */
    int32_t        dst_head_cnt;   /**< src_head_cnt, or 0: to the last */
} scomm_kv_plan_t;

/**
 * @brief Submit a transfer (sender side). Higher priority transfers'
 * chunks go first; equal priorities go in submission order. Layers go in
 * order, so the receiver sees layer notifications in order.
 * @param[out] xfer_p  request to wait on and free
 * @return SCOMM_OK, ERR_INVALID_ARG (plan or head range outside the
 *         source region, head counts that differ),
 *         ERR_UNSUPPORTED (the endpoint's compression is not built into
 *         this library), ERR_PEER_LOST, ERR_NO_MEMORY
 */
SCOMM_API scomm_status_t scomm_kv_submit(scomm_kv_ep_t *ep,
                                         const scomm_kv_plan_t *plan,
                                         int32_t priority,
                                         scomm_kv_xfer_t **xfer_p);

/**
 * @brief scomm_kv_submit, its reads of a device source region ordered
 * after the work enqueued so far on stream (cudaStream_t / hipStream_t;
 * NULL: the default stream): an event recorded on it now, which the
 * internal staging stream waits for. For a host source the stream is not
 * used.
 * @return as scomm_kv_submit(), ERR_SYSTEM (the runtime's event calls)
 */
SCOMM_API scomm_status_t scomm_kv_submit_stream(scomm_kv_ep_t *ep,
                                                const scomm_kv_plan_t *plan,
                                                int32_t priority,
                                                void *stream,
                                                scomm_kv_xfer_t **xfer_p);

/**
 * @brief Wait until the receiver acknowledged every chunk.
 * @param[in] timeout_ms  <= 0: the endpoint's timeout
 * @return SCOMM_OK, ERR_TIMED_OUT (the transfer goes on), ERR_MISMATCH
 *         (the receiver refused the plan: layouts or regions differ),
 *         ERR_UNSUPPORTED (the receiver's library lacks the compression),
 *         ERR_PEER_LOST, ERR_CHECKSUM (a chunk failed its check too often),
 *         ERR_ABORTED
 */
SCOMM_API scomm_status_t scomm_kv_xfer_wait(scomm_kv_xfer_t *xfer,
                                            int64_t timeout_ms);

/** @brief Non-blocking scomm_kv_xfer_wait: *done = 1 when finished. */
SCOMM_API scomm_status_t scomm_kv_xfer_test(scomm_kv_xfer_t *xfer,
                                            int32_t *done);

/** @brief Free a request; a running transfer is cancelled. */
SCOMM_API void scomm_kv_xfer_free(scomm_kv_xfer_t *xfer);

/**
 * @brief Receiver: wait until layer (absolute index) of transfer xfer_id
 * has landed in the destination region, verified. Waits for the transfer
 * to begin if it has not yet.
 * @return SCOMM_OK, ERR_INVALID_ARG (layer not in the transfer),
 *         ERR_TIMED_OUT, ERR_PEER_LOST, ERR_MISMATCH, ERR_UNSUPPORTED (the
 *         transfer's compression is not built into this library),
 *         ERR_ABORTED
 */
SCOMM_API scomm_status_t scomm_kv_wait_layer(scomm_kv_ep_t *ep,
                                             uint64_t xfer_id, int32_t layer,
                                             int64_t timeout_ms);

/**
 * @brief Receiver, device region: make stream (cudaStream_t; NULL: the
 * default stream) wait until layer of xfer_id has landed, without blocking
 * the host: returns at once, having enqueued on stream a host function
 * (cudaLaunchHostFunc) that holds it until the layer is in device memory,
 * the transfer failed, or timeout_ms (<= 0: the endpoint's) passed. A
 * layer already landed enqueues nothing. The stream goes on in every case
 * (a host function cannot fail a stream): scomm_kv_wait_layer() reports
 * the transfer's outcome. The layer's data is in device memory before it
 * counts as landed, so no event is needed for the copies.
 * @return SCOMM_OK (enqueued, or landed), ERR_UNSUPPORTED (no runtime, or
 *         one without LaunchHostFunc), ERR_NO_MEMORY, the endpoint's fault
 */
SCOMM_API scomm_status_t scomm_kv_wait_layer_stream(scomm_kv_ep_t *ep,
                                                    uint64_t xfer_id,
                                                    int32_t layer,
                                                    void *stream,
                                                    int64_t timeout_ms);

/**
 * @brief Receiver: wait for every layer of xfer_id, then forget the
 * transfer (later duplicate chunks are dropped).
 * @return as scomm_kv_wait_layer()
 */
SCOMM_API scomm_status_t scomm_kv_wait_xfer(scomm_kv_ep_t *ep,
                                            uint64_t xfer_id,
                                            int64_t timeout_ms);

/** Counters of an endpoint (both directions). */
typedef struct scomm_kv_stats {
    uint64_t chunks_sent;     /**< data chunks written, re-sends included */
    uint64_t chunks_resent;   /**< re-sent after a NACK or a lost stream */
    uint64_t chunks_recv;     /**< chunks verified and stored */
    uint64_t crc_errors;      /**< chunks that failed CRC32C here */
    uint64_t bytes_raw;       /**< bytes of KV moved (sender's dtype) */
    uint64_t bytes_wire;      /**< payload bytes sent on the sockets */
    uint64_t bytes_zero_copy; /**< bytes the receiver copied from the
                                   sender's region directly, or (device
                                   regions) the sender wrote into the
                                   receiver's over CUDA IPC */
    uint64_t streams_lost;    /**< streams that broke before the peer
                                   closed the endpoint (re-established
                                   ones too: the metric
                                   scomm_kv_streams_reconnected_total
                                   counts those) */
    int32_t  streams;         /**< streams alive */
    int32_t  same_host;       /**< 1 if process_vm_readv works both ways */
} scomm_kv_stats_t;

/** @brief Read an endpoint's counters. */
SCOMM_API scomm_status_t scomm_kv_ep_stats(scomm_kv_ep_t *ep,
                                           scomm_kv_stats_t *out);

/**
 * @brief Bytes of one block of layout, or 0 if layout is invalid.
 */
SCOMM_API uint64_t scomm_kv_block_bytes(const scomm_kv_layout_t *layout);

/* (end of KV-cache transfer (src/kv)) */

#ifdef __cplusplus
}
#endif

#endif /* SCOMM_H */
