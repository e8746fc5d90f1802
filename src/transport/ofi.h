/*
 * ofi.h - what of the ofi (libfabric) transport is visible outside its
 * ops table: the provider listing `scomm probe` prints. The transport
 * itself is reached only through scomm_tl_ofi_ops (tl.h).
 *
 * Also the opening of an RDM endpoint (scomm_ofi_rdm_open), shared with
 * the KV channel's RMA data plane.
 *
 * Invariants:
 *  1. Works in every build: without libfabric (SCOMM_WITH_OFI=OFF or not
 *     found) it says so and names the package instead of listing.
 */
#ifndef SCOMM_OFI_H
#define SCOMM_OFI_H

#include <stddef.h>
#include <stdint.h>

/* One line per libfabric provider offering what the transport needs (RDM
 * endpoints, tagged messages, RMA), "mark provider domain fabric" in
 * aligned columns, in
 * fi_getinfo's order, the one the preference order (verbs, efa, cxi,
 * opx, psm3, tcp) picks marked "*". Writes into out
 * (always NUL-terminated); returns how many providers were listed, or -1
 * when this build has no libfabric (out then says why). */
int scomm_ofi_list_providers(char *out, size_t len);

#ifdef SCOMM_HAVE_OFI
#include <rdma/fabric.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>

/* Hints for RDM endpoints with caps, accepting mode bits mode, provider
 * prov (NULL or "": any), the memory-registration modes scomm handles
 * (FI_MR_LOCAL, VIRT_ADDR, ALLOCATED, PROV_KEY), FI_THREAD_DOMAIN and
 * FI_ORDER_SAS; fi_freeinfo it. NULL: out of memory. */
struct fi_info *scomm_ofi_hints(const char *prov, uint64_t caps,
                                uint64_t mode);

/* Where scomm_ofi_rdm_open puts what it opens. */
typedef struct scomm_ofi_rdm {
    struct fid_fabric **fabric;
    struct fid_domain **domain;
    struct fid_cq     **cq;
    int                *cq_fd;  /* its wait fd, or -1: polled */
    struct fid_av     **av;
    struct fid_ep     **ep;
} scomm_ofi_rdm_t;

/* Open info's fabric and domain, a completion queue of cq_size entries
 * (FI_CQ_FORMAT_DATA, with a wait fd when the provider has one), an
 * address vector table of av_count, and the RDM endpoint bound to both and
 * enabled (the ofi transport's and the KV channel's, src/kv/kv_ofi.c).
 * An endpoint whose enabling finds its address in use (-FI_EADDRINUSE:
 * the tcp provider's listening socket lost its kernel-chosen port to a
 * socket bound to it explicitly) is closed and opened again, a few times.
 * 0, or a negative fi_errno with *step naming the call that failed; what
 * was opened is left in *r for the caller to close. */
int scomm_ofi_rdm_open(struct fi_info *info, size_t cq_size,
                       size_t av_count, const scomm_ofi_rdm_t *r,
                       const char **step);
#endif

#endif /* SCOMM_OFI_H */
