/* Placeholder until the mock transport lands: keeps the build linking. */
#include "../core/scomm_int.h"

static scomm_status_t mock_init(scomm_world_t *w, void **ctx_p)
{
    (void)ctx_p;
    scomm_world_fail(w, SCOMM_ERR_UNSUPPORTED, -1, "mock backend not built");
    return SCOMM_ERR_UNSUPPORTED;
}

const scomm_tl_ops_t scomm_tl_mock_ops = {.name = "mock", .init = mock_init};
