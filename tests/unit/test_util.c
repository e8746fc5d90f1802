/*
 * test_util.c - the shared parsers and compares of core/util.c, against
 * tables written out here: every boolean spelling and a few that are not,
 * sizes with each suffix form, overflow and junk refused, the constant-time
 * compares on equal and on differing bytes at every position, and the
 * pidfd shim taking a descriptor out of this process (skipped on kernels
 * without pidfd_getfd).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "st_test.h"

static void check_bool(void)
{
    static const char *const yes[] = {"1", "y", "Y", "yes", "YES", "true",
                                      "True", "on", "ON"};
    static const char *const no[]  = {"0", "n", "N", "no", "No", "false",
                                      "FALSE", "off", "Off"};
    static const char *const bad[] = {"", " 1", "2", "yess", "tru", "onn",
                                      "-1", "enable", "0x1"};
    size_t i;

    for (i = 0; i < SCOMM_ARRAY_SIZE(yes); i++) {
        ST_ASSERT_EQ(scomm_parse_bool(yes[i]), 1);
    }
    for (i = 0; i < SCOMM_ARRAY_SIZE(no); i++) {
        ST_ASSERT_EQ(scomm_parse_bool(no[i]), 0);
    }
    for (i = 0; i < SCOMM_ARRAY_SIZE(bad); i++) {
        ST_ASSERT_EQ(scomm_parse_bool(bad[i]), -1);
    }
    ST_ASSERT_EQ(scomm_parse_bool(NULL), -1);
}

static void check_size(void)
{
    static const struct {
        const char *text;
        uint64_t    v;
    } ok[] = {
        {"0", 0}, {"4096", 4096}, {"64k", 65536}, {"64K", 65536},
        {"64kb", 65536}, {"64KiB", 65536}, {"4m", 4194304},
        {"4MB", 4194304}, {"4mib", 4194304}, {"1g", 1073741824},
        {"1GiB", 1073741824}, {"16777216g", 18014398509481984ull},
        {"18446744073709551615", 18446744073709551615ull},
    };
    static const char *const bad[] = {
        "", "k", "-1", "+1", " 1", "1 ", "1b", "1ib", "1ki", "1kbb", "1t",
        "1.5m", "0x10", "18446744073709551616", "17179869184g",
    };
    uint64_t v;
    size_t i;

    for (i = 0; i < SCOMM_ARRAY_SIZE(ok); i++) {
        v = 1;
        if (scomm_parse_size(ok[i].text, &v) != 0) {
            fprintf(stderr, "'%s' refused\n", ok[i].text);
            ST_ASSERT(0);
        }
        ST_ASSERT_EQ(v, ok[i].v);
    }
    for (i = 0; i < SCOMM_ARRAY_SIZE(bad); i++) {
        v = 7;
        if (scomm_parse_size(bad[i], &v) == 0) {
            fprintf(stderr, "'%s' taken as %llu\n", bad[i],
                    (unsigned long long)v);
            ST_ASSERT(0);
        }
        ST_ASSERT_EQ(v, 7); /* untouched on failure */
    }
    ST_ASSERT(scomm_parse_size(NULL, &v) != 0);
}

static void check_equal(void)
{
    uint8_t a[40], b[40];
    size_t i;

    for (i = 0; i < sizeof(a); i++) {
        a[i] = b[i] = (uint8_t)(i * 37 + 1);
    }
    ST_ASSERT_EQ(scomm_ct_equal(a, b, sizeof(a)), 1);
    ST_ASSERT_EQ(scomm_ct_equal(a, b, 0), 1);
    for (i = 0; i < sizeof(a); i++) {
        b[i] ^= 0x80;
        ST_ASSERT_EQ(scomm_ct_equal(a, b, sizeof(a)), 0);
        ST_ASSERT_EQ(scomm_ct_equal(a, b, i), 1); /* before the change */
        b[i] ^= 0x80;
    }
    ST_ASSERT_EQ(scomm_secret_equal("token", "token"), 1);
    ST_ASSERT_EQ(scomm_secret_equal("token", "tokeN"), 0);
    ST_ASSERT_EQ(scomm_secret_equal("token", "token2"), 0);
    ST_ASSERT_EQ(scomm_secret_equal("token2", "token"), 0);
    ST_ASSERT_EQ(scomm_secret_equal("", ""), 1);
}

/* 1 when checked, 0 when the kernel has no pidfd_getfd. */
static int check_pidfd(void)
{
    int p[2], pidfd, fd;
    char c = 0;

    ST_ASSERT_EQ(pipe(p), 0);
    pidfd = scomm_pidfd_open(getpid());
    if (pidfd < 0) {
        ST_ASSERT_EQ(errno, ENOSYS);
        close(p[0]);
        close(p[1]);
        return 0;
    }
    fd = scomm_pidfd_getfd(pidfd, p[1]);
    if ((fd < 0) && ((errno == ENOSYS) || (errno == EPERM))) {
        close(pidfd);
        close(p[0]);
        close(p[1]);
        return 0;
    }
    ST_ASSERT(fd >= 0);
    ST_ASSERT(fd != p[1]);
    close(p[1]);  /* only the copy is left to write with */
    ST_ASSERT_EQ(write(fd, "x", 1), 1);
    ST_ASSERT_EQ(read(p[0], &c, 1), 1);
    ST_ASSERT_EQ(c, 'x');
    ST_ASSERT(scomm_pidfd_getfd(pidfd, 100000) < 0); /* not open */
    close(fd);
    close(pidfd);
    close(p[0]);
    ST_ASSERT(scomm_pidfd_open(-1) < 0);
    return 1;
}

int main(void)
{
    int pidfd;

    check_bool();
    check_size();
    check_equal();
    pidfd = check_pidfd();
    printf("util: booleans, sizes, constant-time compares%s\n",
           pidfd ? ", pidfd shim" : " (no pidfd_getfd here: shim not run)");
    return 0;
}
