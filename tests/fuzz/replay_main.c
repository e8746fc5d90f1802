/*
 * replay_main.c - runs fuzz inputs through a target without libFuzzer.
 *
 *   replay_<target> DIR|FILE ...
 *
 * Every regular file of each directory (sorted by name, dot files skipped)
 * and every file named goes through LLVMFuzzerTestOneInput once, each in a
 * child process so that a crash names its input and the others still run.
 * Prints "N passed, M failed" and exits 1 when an input failed or when
 * there was no input at all (a missing corpus is a broken test, not a pass).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuzz_common.h"

static int replay_read(const char *path, uint8_t **data_p, size_t *size_p)
{
    struct stat st;
    uint8_t *data;
    size_t got = 0;
    FILE *f;

    f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if ((fstat(fileno(f), &st) != 0) || (st.st_size < 0)) {
        fprintf(stderr, "replay: %s: cannot stat\n", path);
        fclose(f);
        return -1;
    }
    /* Exactly the file's size: a read past the end is a finding. */
    data = malloc((st.st_size > 0) ? (size_t)st.st_size : 1);
    if (data == NULL) {
        fclose(f);
        return -1;
    }
    if (st.st_size > 0) {
        got = fread(data, 1, (size_t)st.st_size, f);
    }
    fclose(f);
    if (got != (size_t)st.st_size) {
        fprintf(stderr, "replay: %s: short read\n", path);
        free(data);
        return -1;
    }
    *data_p = data;
    *size_p = got;
    return 0;
}

/* Returns 0 when the input ran clean. */
static int replay_one(const char *path)
{
    uint8_t *data;
    size_t size;
    pid_t pid;
    int st;

    if (replay_read(path, &data, &size) != 0) {
        return -1;
    }
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "replay: fork: %s\n", strerror(errno));
        free(data);
        return -1;
    }
    if (pid == 0) {
        (void)LLVMFuzzerTestOneInput(data, size);
        free(data);
        _exit(0);
    }
    free(data);
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR) {
            return -1;
        }
    }
    if (WIFSIGNALED(st)) {
        fprintf(stderr, "FAIL %s: killed by signal %d\n", path,
                WTERMSIG(st));
        return -1;
    }
    if (WEXITSTATUS(st) != 0) {
        fprintf(stderr, "FAIL %s: exit status %d\n", path, WEXITSTATUS(st));
        return -1;
    }
    return 0;
}

static int replay_select(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

int main(int argc, char **argv)
{
    struct dirent **names;
    struct stat st;
    char path[4096];
    int passed = 0, failed = 0, i, j, n;

    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR|FILE ...\n", argv[0]);
        return 2;
    }
    for (i = 1; i < argc; i++) {
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            failed++;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (replay_one(argv[i]) == 0) {
                passed++;
            } else {
                failed++;
            }
            continue;
        }
        n = scandir(argv[i], &names, replay_select, alphasort);
        if (n < 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            failed++;
            continue;
        }
        for (j = 0; j < n; j++) {
            snprintf(path, sizeof(path), "%s/%s", argv[i], names[j]->d_name);
            free(names[j]);
            if ((stat(path, &st) != 0) || !S_ISREG(st.st_mode)) {
                continue;
            }
            if (replay_one(path) == 0) {
                passed++;
            } else {
                failed++;
            }
        }
        free(names);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return ((failed == 0) && (passed > 0)) ? 0 : 1;
}
