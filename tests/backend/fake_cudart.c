/*
 * fake_cudart.c - a stand-in stream runtime for the NCCL/RCCL adapters'
 * device-completion path (libcudart's cudaStreamQuery, libamdhip64's
 * hipStreamQuery): the stream is "done" (0) unless FAKE_RT_NOTREADY is set,
 * then "not ready" (600, cudaErrorNotReady / hipErrorNotReady) forever.
 *
 * Invariants:
 *  1. The answer depends only on the environment, read at each call, so a
 *     test can switch it between calls.
 *  2. Each query is counted in FAKE_RT_LOG (one line per call) when set.
 */
#include <stdlib.h>

#include "fake_engine.h"

#define API __attribute__((visibility("default")))

static int fake_query(void *stream)
{
    const char *v = getenv("FAKE_RT_NOTREADY");

    fk_log("FAKE_RT_LOG", "query %p", stream);
    return ((v != NULL) && (v[0] == '1')) ? 600 : 0;
}

API int cudaStreamQuery(void *stream)
{
    return fake_query(stream);
}

API int hipStreamQuery(void *stream)
{
    return fake_query(stream);
}
