/*
 * fake_engine.h - the host-memory collective engine behind the fake
 * vendor libraries of the tests (fake_nccl.c, fake_hccl.c, fake_cncl.c,
 * fake_bkcl.c). Each fake maps its vendor's C API and enum values onto
 * this engine, so a wrong mapping in an adapter shows up as a wrong
 * result or a rejected call.
 *
 * Invariants:
 *  1. Ranks of one fake communicator are real processes that meet in a
 *     POSIX shared-memory segment named in the vendor's unique id; the
 *     segment is unlinked once every rank has joined.
 *  2. Every collective is: copy the input into this rank's slot, barrier,
 *     compute the output from the slots, barrier; so every in-place form
 *     works, and the result does not depend on the order ranks arrive in.
 *  3. No wait is unbounded: a barrier gives up after FK_WAIT_MS or when
 *     the communicator is aborted, and the call then fails.
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

/* Results. */
enum { FK_OK = 0, FK_EINVAL = 1, FK_ETIMEOUT = 2, FK_ESIZE = 3,
       FK_ESYS = 4 };

typedef struct fk_comm fk_comm_t;

size_t fk_dtsize(int dt);
/* Write a fresh segment name into name (FK_NAME_MAX bytes). */
void fk_make_name(char *name);
int fk_init(fk_comm_t **c, const char *name, int nranks, int rank);
/* Non-blocking form: join, then poll fk_init_ready() (1: every rank is
 * there, 0: not yet). */
int fk_init_start(fk_comm_t **c, const char *name, int nranks, int rank);
int fk_init_ready(fk_comm_t *c);
int fk_allreduce(fk_comm_t *c, const void *s, void *r, size_t n, int dt,
                 int op);
int fk_allgather(fk_comm_t *c, const void *s, void *r, size_t n, int dt);
int fk_reducescatter(fk_comm_t *c, const void *s, void *r, size_t n,
                     int dt, int op);
int fk_bcast(fk_comm_t *c, const void *s, void *r, size_t n, int dt,
             int root);
int fk_reduce(fk_comm_t *c, const void *s, void *r, size_t n, int dt,
              int op, int root);
int fk_alltoall(fk_comm_t *c, const void *s, void *r, size_t n, int dt);
/* Grouped point-to-point: queue, then exchange at the end (every rank of
 * the communicator takes part in the exchange). */
void fk_group_start(void);
int fk_group_add(fk_comm_t *c, int is_send, const void *buf, size_t bytes,
                 int peer);
int fk_group_end(void);
int fk_group_depth(void);
void fk_abort(fk_comm_t *c);
void fk_destroy(fk_comm_t *c);
int fk_rank(const fk_comm_t *c);

/* Append a line to $<prefix>_LOG when set (tests read it). */
void fk_log(const char *env, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* "call:code" in getenv(env) for this call: code, else -1. */
int fk_knob(const char *env, const char *call);

/* Minifloats: encode a double (round to nearest even) / decode. */
uint32_t fk_encode(int dt, double x);
double fk_decode(int dt, uint32_t bits);

#endif /* FAKE_ENGINE_H */
