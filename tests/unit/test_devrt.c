/*
 * test_devrt.c - finding a device runtime by soname (src/backend/devrt.c):
 * with fake runtimes .so.13, .so.12 and .so.11.0 in the directories that
 * LD_LIBRARY_PATH names (ctest sets it), scomm_devrt_find() loads the
 * newest one there is, DEVRT_WANT, says it found it by soname, and next
 * time finds it already loaded.
 *
 * Invariants:
 *  1. The names are libscommfakert.so.*, not libcudart's: a host with a
 *     real CUDA runtime installed does not change the answer. The list has
 *     the shape of devrt.c's CUDA list (newest first, unversioned last).
 *  2. No vendor library is loaded, so the dependency step finds nothing
 *     and no runtime is already loaded: the soname step is what answers.
 */
#include <string.h>

#include "backend/devrt.h"
#include "st_test.h"

static const char *const sonames[] = {
    "libscommfakert.so.13", "libscommfakert.so.12", "libscommfakert.so.11.0",
    "libscommfakert.so", NULL};

int main(void)
{
    const char *want = getenv("DEVRT_WANT");
    char used[128] = "", how[96] = "";
    void *dl;

    ST_ASSERT(want != NULL);
    dl = scomm_devrt_find(sonames, NULL, used, sizeof(used), how,
                          sizeof(how));
    ST_ASSERT(dl != NULL);
    if (strcmp(used, want) != 0) {
        fprintf(stderr, "found %s, expected %s\n", used, want);
        ST_ASSERT(0);
    }
    ST_ASSERT(strcmp(how, "by soname") == 0);
    /* now loaded: found again as "already loaded" */
    dl = scomm_devrt_find(sonames, NULL, used, sizeof(used), how,
                          sizeof(how));
    ST_ASSERT((dl != NULL) && (strcmp(used, want) == 0));
    ST_ASSERT(strcmp(how, "already loaded in the process") == 0);
    return 0;
}
