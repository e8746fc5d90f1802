/*
 * outside.c - the variables read outside libscomm's C code: by the Python
 * package (python/sagellm_comm) and by the test suite. They are registered
 * like every other so that `scomm info -c` documents them and setting one
 * draws no unknown-variable warning (core/config.c).
 *
 * Invariants:
 *  1. The test suite's own knobs are SCOMM_TEST_* (and SCOMM_CLI, which
 *     hands the built CLI to the Python tests); each is a row here.
 */
#include "../core/module.h"
#include "../core/util.h"

static const scomm_param_t scomm_python_params[] = {
    {.name = "SCOMM_LIBRARY", .defval = "", .type = SCOMM_PARAM_STRING,
     .flags = SCOMM_PARAM_F_ENV_ONLY,
     .help = "path of libscomm.so for the Python package; default: a "
             "copy in the package, a source checkout's build, the "
             "loader's cache, pkg-config, the Python prefix, /usr/local/"
             "lib and /usr/lib (docs/python.md)"},
    {.name = "SCOMM_TORCH_ADDR", .defval = "", .type = SCOMM_PARAM_STRING,
     .flags = SCOMM_PARAM_F_ENV_ONLY,
     .help = "torch backend \"scomm\": the address a group's rank 0 "
             "listens on for libscomm's rendezvous; default: the local "
             "address that reaches torch's store (docs/python.md)"},
};

const scomm_module_t scomm_module_python = {
    .name    = "python",
    .params  = scomm_python_params,
    .nparams = SCOMM_ARRAY_SIZE(scomm_python_params),
};

static const scomm_param_t scomm_test_params[] = {
    {.name = "SCOMM_TEST_PROTOCOL_VERSION", .defval = "",
     .type = SCOMM_PARAM_INT, .min = 0, .max = UINT32_MAX,
     .flags = SCOMM_PARAM_F_ENV_ONLY,
     .help = "tests only: the wire protocol version this rank announces "
             "at bootstrap (mp.bootstrap_failures)"},
    {.name = "SCOMM_TEST_HUGE", .defval = "", .type = SCOMM_PARAM_BOOL,
     .flags = SCOMM_PARAM_F_ENV_ONLY,
     .help = "tests only: run mp.p2p_huge's message above 4 GiB"},
    {.name = "SCOMM_TEST_ASYNC_MS", .defval = "", .type = SCOMM_PARAM_STRING,
     .flags = SCOMM_PARAM_F_ENV_ONLY,
     .help = "tests only: bench/vendor_check's bound on an all_reduce "
             "issued behind a busy stream, in ms (default 1)"},
    {.name = "SCOMM_TEST_LIBCUDA", .defval = "", .type = SCOMM_PARAM_STRING,
     .flags = SCOMM_PARAM_F_ENV_ONLY,
     .help = "tests only: the CUDA driver library bench/vendor_check "
             "launches its spin kernel with (default libcuda.so.1)"},
    {.name = "SCOMM_CLI", .defval = "", .type = SCOMM_PARAM_STRING,
     .flags = SCOMM_PARAM_F_ENV_ONLY,
     .help = "tests only: the scomm CLI the Python tests run"},
};

const scomm_module_t scomm_module_test = {
    .name    = "test",
    .params  = scomm_test_params,
    .nparams = SCOMM_ARRAY_SIZE(scomm_test_params),
};
