/*
 * chunked.c - the overlap window: a large all_reduce cut into chunks, each
 * a non-blocking all_reduce, with the caller's callbacks between them, so
 * the caller computes on one chunk while another is on the wire (the
 * tensor-parallel GEMM + all_reduce pattern).
 *
 *   for i in chunks:  produce(i) -> scomm_iall_reduce(chunk i)
 *                     consume every finished chunk, oldest first
 *   then:             wait and consume the rest, in order
 *
 * Design notes:
 *  1. Everything runs on the caller's thread; the communication of the
 *     submitted chunks runs on the communicator's progress thread (thread
 *     mode), so produce(i+1) and consume(i) overlap chunk i+1's transfer.
 *  2. Chunks are consumed in order, each exactly once, only after its
 *     request completed with SCOMM_OK.
 *  3. On an error every submitted request is still waited for (none is
 *     left behind) and the first error is returned; no callback runs after
 *     the first error.
 */
#include <stdlib.h>

#include "../core/scomm_int.h"

scomm_status_t scomm_all_reduce_chunked(const void *sendbuf, void *recvbuf,
                                        size_t count, scomm_dtype_t dtype,
                                        scomm_redop_t op, size_t chunk_count,
                                        scomm_chunk_cb_t produce,
                                        scomm_chunk_cb_t consume, void *user,
                                        scomm_comm_t *comm)
{
    static const char name[] = "scomm_all_reduce_chunked";
    scomm_status_t status = scomm_comm_check(comm, name), s;
    scomm_req_t **reqs;
    size_t n, i, next = 0, es = scomm_dtype_size(dtype), off, cnt;
    int32_t done;

    if (status != SCOMM_OK) {
        return status;
    }
    if (chunk_count == 0) {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                               "%s: chunk_count is 0", name);
    }
    if (es == 0) {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                               "%s: dtype %d is not a scomm_dtype_t", name,
                               (int)dtype);
    }
    /* Each chunk is checked by scomm_iall_reduce() as it is issued; a
     * count of 0 issues one empty all_reduce, so argument errors show. */
    n = (count + chunk_count - 1) / chunk_count;
    if (n == 0) {
        n = 1;
    }
    reqs = calloc(n, sizeof(*reqs));
    if (reqs == NULL) {
        return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                               "%s: out of memory for %zu requests", name, n);
    }
    for (i = 0; i < n; i++) {
        off = i * chunk_count;
        cnt = (count > off) ? SCOMM_MIN(chunk_count, count - off) : 0;
        if (produce != NULL && cnt > 0) {
            produce(user, i, off, cnt);
        }
        status = scomm_iall_reduce((sendbuf != NULL)
                                       ? (const char *)sendbuf + off * es
                                       : NULL,
                                   (recvbuf != NULL)
                                       ? (char *)recvbuf + off * es
                                       : NULL,
                                   cnt, dtype, op, comm, &reqs[i]);
        if (status != SCOMM_OK) {
            break;
        }
        /* Consume what finished already, oldest first (note 2). */
        while ((consume != NULL) && (next < i)) {
            s = scomm_test(reqs[next], &done);
            if (s != SCOMM_OK) {
                reqs[next] = NULL;
                status     = s;
                break;
            }
            if (!done) {
                break;
            }
            reqs[next] = NULL;
            off        = next * chunk_count;
            consume(user, next, off, SCOMM_MIN(chunk_count, count - off));
            next++;
        }
        if (status != SCOMM_OK) {
            break;
        }
    }
    for (; next < n; next++) {
        if (reqs[next] == NULL) {
            continue;
        }
        s = scomm_wait(reqs[next]);
        reqs[next] = NULL;
        if ((s != SCOMM_OK) && (status == SCOMM_OK)) {
            status = s;
        }
        off = next * chunk_count;
        if ((status == SCOMM_OK) && (consume != NULL) && (off < count)) {
            consume(user, next, off, SCOMM_MIN(chunk_count, count - off));
        }
    }
    free(reqs);
    return status;
}
