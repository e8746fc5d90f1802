/*
 * tl.c - the shared stubs of the transport ops table (tl.h, rule 5): the
 * slots a transport does without point here instead of being NULL, so the
 * core calls every slot unconditionally and a capability flag says what
 * the stub stands for.
 *
 * Invariants:
 *  1. A stub touches none of its arguments: a caller's struct (the mr of
 *     mem_reg) is left as it was.
 *  2. mem_reg's stub fails with SCOMM_ERR_UNSUPPORTED, which the core
 *     takes as "registers per message" and never reports as an error.
 */
#include "tl.h"

void scomm_tl_noop(void *ctx)
{
    (void)ctx;
}

scomm_status_t scomm_tl_mem_reg_unsupported(void *ctx, void *addr,
                                            size_t len, unsigned access,
                                            scomm_tl_mr_t *mr)
{
    (void)ctx;
    (void)addr;
    (void)len;
    (void)access;
    (void)mr;
    return SCOMM_ERR_UNSUPPORTED;
}

void scomm_tl_mem_dereg_none(void *ctx, scomm_tl_mr_t *mr)
{
    (void)ctx;
    (void)mr;
}
