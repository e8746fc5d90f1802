/*
 * consumer.c - a program outside scomm's tree that uses only the installed
 * <scomm.h> and library (tests/install/test_install.sh builds it with
 * pkg-config and with find_package, shared and static).
 *
 * Every rank all_reduces (rank + 1) and checks the sum against
 * n(n+1)/2 computed here, then checks the library's version against
 * argv[1]. Exit 0 only when both hold.
 */
#include <stdio.h>
#include <string.h>

#include <scomm.h>

int main(int argc, char **argv)
{
    scomm_comm_t *comm;
    double v, want;
    int rank, size, rc = 0;

    if (scomm_init_from_env(&comm) != SCOMM_OK) {
        fprintf(stderr, "consumer: %s\n", scomm_last_error());
        return 1;
    }
    rank = scomm_rank(comm);
    size = scomm_size(comm);
    v    = rank + 1;
    want = size * (size + 1) / 2.0;
    if (scomm_all_reduce(&v, &v, 1, SCOMM_FLOAT64, SCOMM_SUM, comm) !=
        SCOMM_OK) {
        fprintf(stderr, "consumer: rank %d: %s\n", rank,
                scomm_comm_last_error(comm));
        rc = 1;
    } else if (v != want) {
        fprintf(stderr, "consumer: rank %d: all_reduce gave %g, want %g\n",
                rank, v, want);
        rc = 1;
    }
    if ((argc > 1) && (strcmp(argv[1], scomm_version_string()) != 0)) {
        fprintf(stderr, "consumer: library version %s, headers of %s\n",
                scomm_version_string(), argv[1]);
        rc = 1;
    }
    if (rc == 0) {
        printf("consumer: rank %d of %d: sum %g ok, scomm %s\n", rank, size,
               v, scomm_version_string());
    }
    scomm_comm_destroy(comm);
    return rc;
}
