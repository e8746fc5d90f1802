/*
 * status.c - status strings and error messages.
 *
 * Every error gets a message naming the operation, the peer and the cause.
 * It is written to the communicator (scomm_comm_last_error) and to the
 * calling thread (scomm_last_error), so errors raised before a communicator
 * exists stay readable.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "scomm_int.h"

static _Thread_local char scomm_thread_error[SCOMM_ERRMSG_MAX];

const char *scomm_strerror(scomm_status_t status)
{
    switch (status) {
#define SCOMM_STATUS_TEXT_(_name, _value, _text) \
    case SCOMM_##_name:                          \
        return _text;
        SCOMM_STATUS_MAP(SCOMM_STATUS_TEXT_)
#undef SCOMM_STATUS_TEXT_
    }
    return "unknown status";
}

const char *scomm_status_name(scomm_status_t status)
{
    switch (status) {
#define SCOMM_STATUS_NAME_(_name, _value, _text) \
    case SCOMM_##_name:                          \
        return "SCOMM_" #_name;
        SCOMM_STATUS_MAP(SCOMM_STATUS_NAME_)
#undef SCOMM_STATUS_NAME_
    }
    return "SCOMM_UNKNOWN";
}

const char *scomm_last_error(void)
{
    return scomm_thread_error;
}

int32_t scomm_version(void)
{
    return SCOMM_VERSION_MAJOR * 10000 + SCOMM_VERSION_MINOR * 100 +
           SCOMM_VERSION_PATCH;
}

const char *scomm_version_string(void)
{
    return SCOMM_VERSION_STRING;
}

void scomm_set_thread_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(scomm_thread_error, sizeof(scomm_thread_error), fmt, ap);
    va_end(ap);
}

scomm_status_t scomm_set_error(scomm_comm_t *comm, scomm_status_t status,
                               const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(scomm_thread_error, sizeof(scomm_thread_error), fmt, ap);
    va_end(ap);
    if ((comm != NULL) && (comm->magic == SCOMM_COMM_MAGIC)) {
        memcpy(comm->last_error, scomm_thread_error,
               sizeof(comm->last_error));
    }
    scomm_debug(SCOMM_SUB_INIT, "-> %s: %s", scomm_status_name(status),
                scomm_thread_error);
    return status;
}

void scomm_world_notify(scomm_world_t *w)
{
    scomm_tl_abort_t info;
    int expected = 0;
    int i;

    if ((atomic_load_explicit(&w->fault.status, memory_order_acquire) == 0) ||
        !atomic_compare_exchange_strong(&w->fault.notified, &expected, 1)) {
        return;
    }
    /* A peer that failed first already knows; the abort notice of a peer
     * we received is forwarded once more, which is harmless (first fault
     * wins everywhere). */
    memset(&info, 0, sizeof(info));
    info.status      = (int32_t)atomic_load(&w->fault.status);
    info.failed_rank = w->fault.failed_rank;
    memcpy(info.msg, w->fault.msg, sizeof(info.msg) - 1);
    info.msg[sizeof(info.msg) - 1] = '\0';
    for (i = 0; i < w->ntl; i++) {
        if (w->tl_ctx[i] != NULL) {
            w->tls[i]->send_abort(w->tl_ctx[i], &info);
        }
    }
}

void scomm_world_fail(scomm_world_t *w, scomm_status_t status,
                      int failed_rank, const char *fmt, ...)
{
    const char *op;
    va_list ap;
    size_t n;

    if (atomic_load_explicit(&w->fault.status, memory_order_acquire) != 0) {
        return; /* the first fault wins */
    }
    pthread_mutex_lock(&w->fault.lock);
    if (atomic_load_explicit(&w->fault.status, memory_order_relaxed) != 0) {
        pthread_mutex_unlock(&w->fault.lock);
        return;
    }
    w->fault.failed_rank = failed_rank;
    va_start(ap, fmt);
    vsnprintf(w->fault.msg, sizeof(w->fault.msg), fmt, ap);
    va_end(ap);
    /* Name what this rank was doing, unless the message already does. */
    n  = strlen(w->fault.msg);
    op = atomic_load_explicit(&w->cur_op, memory_order_relaxed);
    if ((op != NULL) && (strstr(w->fault.msg, op) == NULL) &&
        (n + 48 < sizeof(w->fault.msg))) {
        snprintf(w->fault.msg + n, sizeof(w->fault.msg) - n,
                 " (rank %d was in %s, op #%llu)", w->rank, op,
                 (unsigned long long)atomic_load_explicit(
                     &w->cur_seq, memory_order_relaxed));
    }
    atomic_store_explicit(&w->fault.status, (int)status, memory_order_release);
    pthread_mutex_unlock(&w->fault.lock);
    scomm_warn(SCOMM_SUB_PROG, "%s", w->fault.msg);
    scomm_world_wake(w);

    /* Telling the peers touches transport state, which belongs to the
     * holder of the world lock: do it now when we can take the lock, else
     * the holder does it when its wait sees the fault. Transport code
     * calls this with the lock held: the wait loop notifies right after. */
    if (pthread_mutex_trylock(&w->lock) == 0) {
        scomm_world_notify(w);
        pthread_mutex_unlock(&w->lock);
    }
}
