/*
 * ofi.h - what of the ofi (libfabric) transport is visible outside its
 * ops table: the provider listing `scomm probe` prints. The transport
 * itself is reached only through scomm_tl_ofi_ops (tl.h).
 *
 * Invariants:
 *  1. Works in every build: without libfabric (SCOMM_WITH_OFI=OFF or not
 *     found) it says so and names the package instead of listing.
 */
#ifndef SCOMM_OFI_H
#define SCOMM_OFI_H

#include <stddef.h>

/* One line per libfabric provider offering what the transport needs (RDM
 * endpoints, tagged messages, RMA), "mark provider domain fabric" in
 * aligned columns, in
 * fi_getinfo's order, the one the preference order (verbs, efa, cxi,
 * opx, psm3, tcp) picks marked "*". Writes into out
 * (always NUL-terminated); returns how many providers were listed, or -1
 * when this build has no libfabric (out then says why). */
int scomm_ofi_list_providers(char *out, size_t len);

#endif /* SCOMM_OFI_H */
