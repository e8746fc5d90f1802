/*
 * kv_params.c - the KV endpoints' knobs as a table of the configuration
 * registry (core/config.h). kv_cfg_resolve reads them at each endpoint's
 * creation; the KV knobs a preset gives (SCOMM_KV_CHUNK_SIZE, ...) are rows
 * of topo/preset.c, applied through scomm_preset_get.
 */
#include "kv.h"

#include "core/module.h"
#include "core/util.h"

static const scomm_param_t scomm_kv_params[] = {
    {.name = "SCOMM_KV_TOKEN", .defval = "", .type = SCOMM_PARAM_STRING,
     .max = SCOMM_KV_TOKEN_MAX - 1,
     .help = "shared secret both ends of a KV transfer must present "
             "(scomm_kv_opts_t token wins)"},
    {.name = "SCOMM_KV_RECONNECT_MS", .defval = "2000",
     .type = SCOMM_PARAM_INT, .min = 0, .max = SCOMM_KV_REDIAL_MAX_MS,
     .help = "how long a KV stream that broke is re-dialled before the "
             "transfer fails (0: never)"},
    {.name = "SCOMM_KV_TRANSPORT", .defval = "", .type = SCOMM_PARAM_ENUM,
     .values = "tcp,ofi",
     .help = "how KV chunks move: tcp (the endpoint's TCP streams) or ofi "
             "(libfabric RMA writes into the receiver's registered cache, "
             "SCOMM_OFI_PROVIDER's provider); default: the preset's "
             "backend (rdma: ofi), else tcp (scomm_kv_opts_t transport "
             "wins)"},
    {.name = "SCOMM_KV_IPC", .defval = "auto", .type = SCOMM_PARAM_ENUM,
     .values = "auto,0,1",
     .help = "same-host CUDA IPC for KV transfers between device regions "
             "(the sender copies device to device into the receiver's "
             "cache, no host staging, no CRC32C); auto: where both sides "
             "can, else staged; 0: always staged; 1: as auto, with a "
             "warning naming why when a transfer falls back "
             "(docs/kv.md)"},
};

const scomm_module_t scomm_module_kv = {
    .name    = "kv",
    .params  = scomm_kv_params,
    .nparams = SCOMM_ARRAY_SIZE(scomm_kv_params),
};
