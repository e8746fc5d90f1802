/*
 * fake_cu_api.c - the few CUDA driver API calls scomm makes (the fake
 * libcuda.so.1 of the tests): cuMemGetAddressRange_v2, which the runtime
 * API has no public twin of and scomm needs for the base of an allocation
 * before cudaIpcGetMemHandle, and cuGetErrorString. It links the fake
 * CUDA runtime (fake_rt_api.c), whose fake device holds the allocations,
 * so both see the same memory; the real driver sits below the runtime,
 * the fake above it, which no caller can tell apart.
 *
 * Declarations follow the CUDA Driver API documentation: CUresult as int
 * (CUDA_SUCCESS 0, CUDA_ERROR_INVALID_VALUE 1, CUDA_ERROR_NOT_FOUND 500),
 * CUdeviceptr as unsigned long long;
 * cuMemGetAddressRange_v2(CUdeviceptr *pbase, size_t *psize, CUdeviceptr
 * dptr): base and size of the allocation holding dptr;
 * cuGetErrorString(CUresult, const char **).
 *
 * Invariants:
 *  1. A pointer outside every device allocation (own or opened through
 *     IPC) is CUDA_ERROR_NOT_FOUND, and *pbase / *psize are left alone.
 */
#include <stddef.h>

#include "fake_device.h"

FKD_API int cuMemGetAddressRange_v2(unsigned long long *pbase,
                                    size_t *psize, unsigned long long dptr)
{
    void *base = NULL;
    size_t n   = 0;

    if (fkd_range((const void *)(uintptr_t)dptr, &base, &n) != FKD_OK) {
        return 500;
    }
    if (pbase != NULL) {
        *pbase = (unsigned long long)(uintptr_t)base;
    }
    if (psize != NULL) {
        *psize = n;
    }
    return 0;
}

FKD_API int cuGetErrorString(int rc, const char **s)
{
    if (s == NULL) {
        return 1;
    }
    *s = (rc == 0)     ? "no error"
         : (rc == 500) ? "named symbol not found"
                       : "invalid argument";
    return 0;
}
