/*
 * modules.c - the one list of scomm's modules (core/module.h). It sits at
 * the top of the library, so it may name every module; core reads it
 * through scomm_modules[] and never includes a module above it.
 */
#include "../core/module.h"
#include "../core/util.h"

/* Each module's descriptor moves next to its code as the modules are
 * registered; core's knobs are still the table in core/config.c. */
static const scomm_module_t scomm_module_core = {
    .name = "core",
};

const scomm_module_t *const scomm_modules[] = {
    &scomm_module_core,
};

const size_t scomm_nmodules = SCOMM_ARRAY_SIZE(scomm_modules);
