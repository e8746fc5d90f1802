/*
 * fake_engine.h - the collective engine behind the fake vendor libraries
 * of the tests (fake_nccl.c, fake_hccl.c, fake_cncl.c, fake_bkcl.c), and
 * the half of a fake vendor library that every vendor shares (fkv_*):
 * checking buffers, queueing work on a fake stream (fake_device.h),
 * groups, asynchronous errors, abort. Each fake maps its vendor's C API
 * and enum values onto this, so a wrong mapping in an adapter shows up as
 * a wrong result or a rejected call.
 *
 * Invariants:
 *  1. Ranks of one fake communicator are real processes that meet in a
 *     POSIX shared-memory segment named in the vendor's unique id; the
 *     segment is unlinked once every rank has joined.
 *  2. A call enqueues a kernel on the caller's stream and returns; the
 *     kernel runs the collective later, on the stream's thread, on the
 *     writable alias of device memory. Buffers must be device (or pinned)
 *     memory of the fake runtime, as NCCL requires: a host pointer is an
 *     invalid argument at the call.
 *  3. Every collective is: copy the input into this rank's slot, barrier,
 *     compute the output from the slots, barrier; so every in-place form
 *     works, and the result does not depend on the order ranks arrive in.
 *     Point-to-point runs over a byte ring per ordered pair of ranks:
 *     a send that fits the ring completes without its receiver, a larger
 *     one waits for it (as NCCL's do), and within a group every send and
 *     receive progresses together.
 *  4. A group (fkv_group_start/end) is one kernel launch per communicator
 *     holding all its calls.
 *  5. A failure inside a kernel (a peer aborted, a size mismatch) becomes
 *     the communicator's asynchronous error, first one wins; abort makes
 *     every kernel of the communicator in this process stop at once. A
 *     peer's abort ends no kernel here (NCCL's kernels go on waiting for
 *     the rank that left until their own process aborts them), so a
 *     library without an error query sees a peer's failure only through
 *     its own deadline. No wait is unbounded: a barrier or ring wait gives
 *     up after FK_WAIT_MS and aborts the communicator at every rank.
 */
#ifndef FAKE_ENGINE_H
#define FAKE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#define FK_NAME_MAX 64
#define FK_WAIT_MS  20000

/* Engine dtypes and ops (not any vendor's numbering). */
enum {
    FK_I8, FK_U8, FK_I32, FK_U32, FK_I64, FK_U64, FK_F16, FK_F32, FK_F64,
    FK_BF16, FK_E4M3, FK_E5M2, FK_NDT
};
enum { FK_SUM, FK_PROD, FK_MAX, FK_MIN, FK_AVG, FK_NOP };

/* Engine results. */
enum { FK_OK = 0, FK_EINVAL = 1, FK_ETIMEOUT = 2, FK_ESIZE = 3,
       FK_ESYS = 4, FK_EABORT = 5 };

size_t fk_dtsize(int dt);
/* Write a fresh segment name into name (FK_NAME_MAX bytes). */
void fk_make_name(char *name);

/* Append a line to getenv(env) when set (tests read it). */
void fk_log(const char *env, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "call:code" in getenv(env) for this call: code, else -1. */
int fk_knob(const char *env, const char *call);

/* Minifloats: encode a double (round to nearest even) / decode. */
uint32_t fk_encode(int dt, double x);
double fk_decode(int dt, uint32_t bits);

/* ---- the vendor half (invariants 2, 4, 5) ---- */

/* The vendor's own result codes for the engine's outcomes. */
typedef struct {
    int ok;          /* success */
    int inval;       /* bad argument (a host pointer, a bad dtype) */
    int usage;       /* call on an aborted communicator */
    int remote;      /* a peer aborted, or a size mismatch */
    int internal;    /* out of memory, a system call failed */
    int inprogress;  /* non-blocking creation not finished (or -1) */
} fkv_codes_t;

enum { FKV_ALLREDUCE, FKV_BCAST, FKV_REDUCE, FKV_ALLGATHER,
       FKV_REDUCESCATTER, FKV_ALLTOALL, FKV_SEND, FKV_RECV };

/* One call: s and r as the caller gave them (device addresses), n
 * elements, dt and op engine codes (-1: the vendor has no such code). */
typedef struct {
    int         kind;
    const void *s;
    void       *r;
    size_t      n;
    int         dt;
    int         op;
    int         root;
    int         peer;
} fkv_op_t;

typedef struct fkv_comm fkv_comm_t;

/* prefix names the knobs: <prefix>_FAIL="call:code" (the call returns
 * code), <prefix>_ASYNC="call:code" (its kernel sets the asynchronous
 * error), <prefix>_HANG=call (its kernel never ends before an abort),
 * <prefix>_LOG=file (a line per init, abort, destroy). Non-blocking:
 * creation finishes later (fkv_async answers inprogress until then). */
int fkv_init(fkv_comm_t **c, const char *prefix, const fkv_codes_t *codes,
             const char *call, const char *name, int nranks, int rank,
             int nonblocking);
int fkv_submit(fkv_comm_t *c, const char *call, const fkv_op_t *op,
               void *stream);
void fkv_group_start(void);
int fkv_group_end(void);
/* The asynchronous error (codes->ok while healthy). */
int fkv_async(fkv_comm_t *c);
const char *fkv_last(fkv_comm_t *c);
void fkv_abort(fkv_comm_t *c);
void fkv_destroy(fkv_comm_t *c);
void fkv_log(fkv_comm_t *c, const char *what);
int fkv_rank(const fkv_comm_t *c);

#endif /* FAKE_ENGINE_H */
