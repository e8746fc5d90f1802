/*
 * loop_rank.c - helper for the network tests: ping-pong 8 bytes between
 * ranks 0 and 1 (others idle in a barrier) until an error or LOOP_SECONDS.
 * LOOP_TIMEOUT_MS, when set, is the communicator's timeout once scomm_init
 * returned (start-up keeps SCOMM_TIMEOUT_MS), and LOOP_READY_FILE is
 * created then, so a test injects its fault into the loop, not start-up.
 * Exit 0 when the loop ended with SCOMM_ERR_PEER_LOST or
 * SCOMM_ERR_TIMED_OUT (the failure the test injects), 1 when it ran out
 * its time without an error, 2 when init failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "scomm.h"

int main(void)
{
    double limit = atof(getenv("LOOP_SECONDS") ? getenv("LOOP_SECONDS")
                                               : "30");
    scomm_comm_t *comm = NULL;
    scomm_status_t s;
    struct timespec t0, t;
    char buf[8] = {0};
    long it = 0;
    int rank;

    s = scomm_init_from_env(&comm);
    if (s != SCOMM_OK) {
        fprintf(stderr, "loop_rank: init: %s: %s\n", scomm_status_name(s),
                scomm_last_error());
        return 2;
    }
    rank = scomm_rank(comm);
    if (getenv("LOOP_TIMEOUT_MS") != NULL) {
        scomm_comm_set_timeout(comm, atoll(getenv("LOOP_TIMEOUT_MS")));
    }
    if (getenv("LOOP_READY_FILE") != NULL) {
        FILE *f = fopen(getenv("LOOP_READY_FILE"), "w");

        if (f != NULL) {
            fclose(f);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        if (rank == 0) {
            s = scomm_send(buf, 8, SCOMM_UINT8, 1, 0, comm);
            if (s == SCOMM_OK) {
                s = scomm_recv(buf, 8, SCOMM_UINT8, 1, 0, comm);
            }
        } else {
            s = scomm_recv(buf, 8, SCOMM_UINT8, 0, 0, comm);
            if (s == SCOMM_OK) {
                s = scomm_send(buf, 8, SCOMM_UINT8, 0, 0, comm);
            }
        }
        it++;
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((s == SCOMM_OK) && ((double)(t.tv_sec - t0.tv_sec) < limit));
    fprintf(stderr, "loop_rank %d: %ld iterations, %s: %s\n", rank, it,
            scomm_status_name(s), scomm_comm_last_error(comm));
    scomm_comm_destroy(comm);
    return ((s == SCOMM_ERR_PEER_LOST) || (s == SCOMM_ERR_TIMED_OUT)) ? 0 : 1;
}
