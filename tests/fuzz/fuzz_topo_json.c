/*
 * fuzz_topo_json.c - fuzz target for the saved-topology reader
 * (scomm_topo_host_from_json in src/topo/topo_json.c, used for
 * SCOMM_TOPO_FILE=*.json).
 *
 * Input: the JSON file's bytes.
 *
 * Invariants: a refusal is SCOMM_ERR_BAD_CONFIG with a message starting
 * "fuzz.json"; an accepted host has its counts inside its tables, strings
 * ending inside their fields, and writing it out then reading it back
 * gives the same host.
 */
#include "fuzz_common.h"

#include "scomm.h"
#include "topo/topo.h"

#define FUZZ_NAME "fuzz.json"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static scomm_topo_host_t host, again;
    char err[512];
    uint8_t *copy;
    char *text;
    int status, i;

    copy = fuzz_dup(data, size);
    memset(err, FUZZ_WHY_FILL, sizeof(err));
    status = scomm_topo_host_from_json((const char *)copy, size, FUZZ_NAME,
                                       &host, err, sizeof(err));
    free(copy);
    if (status != SCOMM_OK) {
        FUZZ_CHECK(status == SCOMM_ERR_BAD_CONFIG);
        fuzz_check_why(err, sizeof(err));
        FUZZ_CHECK(strncmp(err, FUZZ_NAME, strlen(FUZZ_NAME)) == 0);
        return 0;
    }
    FUZZ_CHECK((host.naccel >= 0) && (host.naccel <= SCOMM_TOPO_MAX_ACCEL));
    FUZZ_CHECK((host.nnic >= 0) && (host.nnic <= SCOMM_TOPO_MAX_NIC));
    FUZZ_CHECK((host.ncxl >= 0) && (host.ncxl <= SCOMM_TOPO_MAX_CXL));
    fuzz_check_str(host.hostname, sizeof(host.hostname));
    for (i = 0; i < host.naccel; i++) {
        fuzz_check_str(host.accel[i].pci_path,
                       sizeof(host.accel[i].pci_path));
        FUZZ_CHECK((host.accel[i].fabric >= 0) &&
                   (host.accel[i].fabric < SCOMM_LINK_COUNT));
    }
    text = scomm_topo_json_text(&host, NULL, 0, NULL, 0, NULL, 0);
    FUZZ_CHECK(text != NULL);
    status = scomm_topo_host_from_json(text, strlen(text), "again", &again,
                                       err, sizeof(err));
    free(text);
    if (status != SCOMM_OK) {
        fprintf(stderr, "re-read failed: %s\n", err);
    }
    FUZZ_CHECK(status == SCOMM_OK);
    FUZZ_CHECK(strcmp(host.hostname, again.hostname) == 0);
    FUZZ_CHECK(host.cores == again.cores);
    FUZZ_CHECK(host.naccel == again.naccel);
    FUZZ_CHECK(host.nnic == again.nnic);
    FUZZ_CHECK(host.ncxl == again.ncxl);
    for (i = 0; i < host.nnic; i++) {
        FUZZ_CHECK(host.nic[i].kind == again.nic[i].kind);
        FUZZ_CHECK(host.nic[i].up == again.nic[i].up);
    }
    return 0;
}
