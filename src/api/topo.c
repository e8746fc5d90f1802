/*
 * topo.c - the public topology calls: scomm_topology_json,
 * scomm_topology_free, scomm_preset_recommend; and the world view they
 * share (scomm_topo_world), which discovers this host, all_gathers one
 * summary per rank and builds the matrix.
 *
 * Invariant: a rank whose discovery fails still takes part in the
 * all_gather (with a summary marked failed), so no rank waits for it;
 * every rank then returns the error.
 */
#include "topo_world.h"

#include <stdlib.h>
#include <string.h>

#include "../core/scomm_int.h"

void scomm_topo_world_free(scomm_topo_world_t *w)
{
    if (w != NULL) {
        free(w->ranks);
        free(w->matrix);
        free(w);
    }
}

static scomm_status_t scomm_topo_fail(scomm_comm_t *comm,
                                      scomm_status_t status,
                                      const char *what)
{
    if (comm != NULL) {
        return scomm_set_error(comm, status, "topology: %s", what);
    }
    scomm_set_thread_error("topology: %s", what);
    return status;
}

scomm_status_t scomm_topo_world(scomm_comm_t *comm, scomm_topo_world_t **w_p)
{
    scomm_topo_world_t *w;
    scomm_topo_rank_t me;
    char err[512] = "";
    int status, n, i;

    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return scomm_topo_fail(comm, SCOMM_ERR_NO_MEMORY, "out of memory");
    }
    status = scomm_topo_discover(&w->host, NULL, NULL, err, sizeof(err));
    if ((status != SCOMM_OK) && (comm == NULL)) {
        scomm_topo_world_free(w);
        return scomm_topo_fail(NULL, (scomm_status_t)status, err);
    }
    if (comm == NULL) {
        scomm_topo_recommend(&w->host, NULL, 0, NULL, 1, &w->reco);
        *w_p = w;
        return SCOMM_OK;
    }
    n = scomm_size(comm);
    scomm_topo_rank_fill(&w->host, scomm_rank(comm), scomm_local_rank(comm),
                         scomm_local_size(comm), scomm_topo_cpubind_numa(),
                         &me);
    if (status != SCOMM_OK) {
        me.local_size = -1; /* tells the others this rank failed */
    }
    w->n      = n;
    w->ranks  = calloc((size_t)n, sizeof(*w->ranks));
    w->matrix = calloc((size_t)n * (size_t)n, sizeof(*w->matrix));
    if ((w->ranks == NULL) || (w->matrix == NULL)) {
        /* still join the gather so that nobody waits for us */
        scomm_topo_rank_t *tmp = calloc((size_t)n, sizeof(*tmp));

        if (tmp != NULL) {
            me.local_size = -1;
            scomm_all_gather(&me, tmp, sizeof(me), SCOMM_UINT8, comm);
            free(tmp);
        }
        scomm_topo_world_free(w);
        return scomm_topo_fail(comm, SCOMM_ERR_NO_MEMORY, "out of memory");
    }
    i = scomm_all_gather(&me, w->ranks, sizeof(me), SCOMM_UINT8, comm);
    if (i != SCOMM_OK) {
        scomm_topo_world_free(w);
        return (scomm_status_t)i;
    }
    if (status != SCOMM_OK) {
        scomm_topo_world_free(w);
        return scomm_topo_fail(comm, (scomm_status_t)status, err);
    }
    for (i = 0; i < n; i++) {
        /* the wire gave us bytes: terminate strings, check the marks */
        scomm_topo_rank_t *r = &w->ranks[i];

        r->hostname[sizeof(r->hostname) - 1] = '\0';
        r->boot_id[sizeof(r->boot_id) - 1]   = '\0';
        r->accel_id[sizeof(r->accel_id) - 1] = '\0';
        r->accel_pci[sizeof(r->accel_pci) - 1] = '\0';
        r->nic_name[sizeof(r->nic_name) - 1] = '\0';
        if (r->local_size < 0) {
            scomm_topo_world_free(w);
            snprintf(err, sizeof(err), "discovery failed on rank %d", i);
            return scomm_topo_fail(comm, SCOMM_ERR_BAD_CONFIG, err);
        }
        if ((r->fabric < -1) || (r->fabric >= SCOMM_LINK_COUNT)) {
            r->fabric = -1;
        }
        if ((r->nic_kind < -1) || (r->nic_kind >= SCOMM_LINK_COUNT)) {
            r->nic_kind = -1;
        }
        r->rank = i;
    }
    w->nhosts = scomm_topo_matrix(w->ranks, n, w->matrix);
    scomm_topo_recommend(&w->host, w->ranks, n, w->matrix, w->nhosts,
                         &w->reco);
    *w_p = w;
    return SCOMM_OK;
}

scomm_status_t scomm_topology_json(scomm_comm_t *comm, char **json_p)
{
    scomm_topo_world_t *w;
    scomm_status_t status;
    char *text;

    if (json_p == NULL) {
        return scomm_topo_fail(comm, SCOMM_ERR_INVALID_ARG,
                               "scomm_topology_json: json_p is NULL");
    }
    *json_p = NULL;
    status  = scomm_topo_world(comm, &w);
    if (status != SCOMM_OK) {
        return status;
    }
    text = scomm_topo_json_text(&w->host, w->ranks, w->n, w->matrix,
                                w->nhosts, &w->reco, 2);
    scomm_topo_world_free(w);
    if (text == NULL) {
        return scomm_topo_fail(comm, SCOMM_ERR_NO_MEMORY,
                               "out of memory for the JSON text");
    }
    *json_p = text;
    return SCOMM_OK;
}

void scomm_topology_free(char *json)
{
    free(json);
}

scomm_status_t scomm_preset_recommend(scomm_comm_t *comm, char *name,
                                      size_t len)
{
    scomm_topo_world_t *w;
    scomm_status_t status;

    if ((name == NULL) || (len < SCOMM_PRESET_NAME_MAX)) {
        return scomm_topo_fail(comm, SCOMM_ERR_INVALID_ARG,
                               "scomm_preset_recommend: name is NULL or "
                               "shorter than 32 bytes");
    }
    status = scomm_topo_world(comm, &w);
    if (status != SCOMM_OK) {
        return status;
    }
    snprintf(name, len, "%s", w->reco.preset);
    scomm_topo_world_free(w);
    return SCOMM_OK;
}
