/*
 * topo_world.h - one call's view of the topology: this host, every rank's
 * summary, the link matrix and the recommendation (topo.c here: it
 * all-gathers with the public scomm_all_gather, so it sits in the API
 * layer above topo and coll). Used by the public calls and by
 * `scomm probe`.
 */
#ifndef SCOMM_TOPO_WORLD_H
#define SCOMM_TOPO_WORLD_H

#include "scomm.h"
#include "../topo/topo.h"

typedef struct scomm_topo_world {
    scomm_topo_host_t  host;
    int                n;       /* 0 without a communicator */
    int                nhosts;
    scomm_topo_rank_t *ranks;   /* n entries */
    scomm_topo_link_t *matrix;  /* n x n, row-major */
    scomm_topo_reco_t  reco;
} scomm_topo_world_t;

/* Discover, gather (collective when comm != NULL), build. */
scomm_status_t scomm_topo_world(scomm_comm_t *comm, scomm_topo_world_t **w_p);
void scomm_topo_world_free(scomm_topo_world_t *w);

#endif /* SCOMM_TOPO_WORLD_H */
