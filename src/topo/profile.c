/*
 * profile.c - transport profiles: how to move bytes over one link class
 * (alignment, pipeline chunk, sockets or queue pairs, largest packet,
 * eager limit, zero-copy), derived from the link kind and the preset.
 *
 * The transports and the algorithm selector call scomm_topo_profile() or
 * scomm_topo_profile_pair(); nothing here touches the hardware, so the
 * numbers are the same for a live host and a fixture.
 */
#include "topo.h"

#include <string.h>

#include "core/util.h"

void scomm_topo_profile(int link, const scomm_preset_t *p,
                        scomm_topo_profile_t *out)
{
    scomm_preset_t dflt;

    if (p == NULL) {
        if (scomm_preset_get(NULL, NULL, &dflt) != 0) {
            memset(&dflt, 0, sizeof(dflt));
            dflt.chunk_size      = 4u << 20;
            dflt.overlap_streams = 4;
            dflt.tcp_nsocks      = 2;
            dflt.tcp_eager_max   = 64u << 10;
            dflt.shm_chunk       = 1u << 20;
        }
        p = &dflt;
    }
    memset(out, 0, sizeof(*out));
    out->link = link;
    switch (link) {
    case SCOMM_LINK_SELF:
    case SCOMM_LINK_SHM_SAME_NUMA:
    case SCOMM_LINK_SHM_CROSS_NUMA:
        /* copies through the cache: a cache line is the unit; across NUMA
         * nodes half-size chunks keep the remote reads in flight short */
        out->align      = SCOMM_CACHELINE;
        out->chunk      = (link == SCOMM_LINK_SHM_CROSS_NUMA)
                              ? SCOMM_MAX(p->shm_chunk / 2, (size_t)4096)
                              : p->shm_chunk;
        out->nconn      = 1;
        out->max_packet = out->chunk;
        out->eager_max  = (p->tcp_eager_max >= (256u << 10)) ? (64u << 10)
                                                              : (16u << 10);
        out->zero_copy  = p->zero_copy; /* process_vm_readv single copy */
        break;
    case SCOMM_LINK_NVLINK:
    case SCOMM_LINK_HCCS:
    case SCOMM_LINK_XGMI:
    case SCOMM_LINK_MLULINK:
    case SCOMM_LINK_XPULINK:
    case SCOMM_LINK_UB:
        /* device DMA engines: 256-byte aligned, large chunks, one stream
         * per overlap slot */
        out->align      = 256;
        out->chunk      = p->chunk_size;
        out->nconn      = p->overlap_streams;
        out->max_packet = p->chunk_size;
        out->eager_max  = 0;
        out->zero_copy  = p->zero_copy;
        break;
    case SCOMM_LINK_PCIE:
        out->align      = 4096;
        out->chunk      = SCOMM_MIN(p->chunk_size, (size_t)2u << 20);
        out->nconn      = SCOMM_MIN(p->overlap_streams, 2);
        out->max_packet = 4096;
        out->eager_max  = 0;
        out->zero_copy  = p->zero_copy;
        break;
    case SCOMM_LINK_INFINIBAND:
    case SCOMM_LINK_ROCE:
        /* registered memory is page-granular; one queue pair per stream;
         * the packet is the path MTU */
        out->align      = 4096;
        out->chunk      = p->chunk_size;
        out->nconn      = p->overlap_streams;
        out->max_packet = 4096;
        out->eager_max  = 8u << 10;
        out->zero_copy  = p->zero_copy;
        break;
    case SCOMM_LINK_TCP:
    default:
        out->link       = SCOMM_LINK_TCP;
        out->align      = SCOMM_CACHELINE;
        out->chunk      = p->chunk_size;
        out->nconn      = p->tcp_nsocks;
        out->max_packet = 64u << 10; /* one TSO segment */
        out->eager_max  = p->tcp_eager_max;
        out->zero_copy  = 0; /* MSG_ZEROCOPY does not pay below ~10 GbE */
        break;
    }
    if (out->nconn < 1) {
        out->nconn = 1;
    }
}

void scomm_topo_profile_pair(const scomm_topo_link_t *m, int n, int a,
                             int b, const scomm_preset_t *p,
                             scomm_topo_profile_t *out)
{
    int link = SCOMM_LINK_TCP;

    if ((m != NULL) && (a >= 0) && (b >= 0) && (a < n) && (b < n)) {
        link = m[(size_t)a * n + b].kind;
    }
    scomm_topo_profile(link, p, out);
}
