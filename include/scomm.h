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

/** @brief Non-blocking send; complete it with scomm_test/scomm_wait. */
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

/** @brief Wait until every rank of comm has called it. */
SCOMM_API scomm_status_t scomm_barrier(scomm_comm_t *comm);

#ifdef __cplusplus
}
#endif

#endif /* SCOMM_H */
