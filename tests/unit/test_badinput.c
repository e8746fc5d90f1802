/*
 * test_badinput.c - a table of bad inputs at the API boundary. Each case
 * must return the expected status with a message naming the bad argument,
 * must not crash, and must leave the caller's buffers byte-identical.
 * Runs in one process: a world of one rank needs no network.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scomm.h"
#include "st_test.h"

#define BUF 256

static unsigned char g_buf[BUF], g_copy[BUF];
static int g_passed, g_failed;

static void snap(void)
{
    for (int i = 0; i < BUF; i++) {
        g_buf[i] = (unsigned char)(i * 7 + 3);
    }
    memcpy(g_copy, g_buf, BUF);
}

static void check(const char *name, scomm_status_t got, scomm_status_t want,
                  const char *needle)
{
    const char *msg = scomm_last_error();
    int ok = (got == want) && (memcmp(g_buf, g_copy, BUF) == 0) &&
             ((needle == NULL) || (strstr(msg, needle) != NULL));

    if (ok) {
        g_passed++;
    } else {
        g_failed++;
        fprintf(stderr, "FAIL %-34s got %s want %s buffer %s msg '%s' "
                "(wanted '%s')\n", name, scomm_status_name(got),
                scomm_status_name(want),
                memcmp(g_buf, g_copy, BUF) ? "CHANGED" : "same", msg,
                needle ? needle : "");
    }
}

static scomm_comm_t *one_rank(void)
{
    scomm_init_opts_t o;
    scomm_comm_t *c = NULL;

    memset(&o, 0, sizeof(o));
    o.field_mask = SCOMM_INIT_FIELD_RANK | SCOMM_INIT_FIELD_WORLD_SIZE;
    o.rank       = 0;
    o.world_size = 1;
    ST_ASSERT_OK(scomm_init(&o, &c));
    return c;
}

int main(void)
{
    scomm_init_opts_t o;
    scomm_comm_t *c, *dead, *none = NULL, *sub = (scomm_comm_t *)0x1;
    scomm_req_t *req = NULL, *reqs[2];
    char fake[512], big[100], small[10];
    int32_t done = 0;

    unsetenv("SCOMM_RANK");
    unsetenv("RANK");
    snap();

    /* ---- scomm_init ---- */
    memset(&o, 0, sizeof(o));
    check("init: comm_p NULL", scomm_init(NULL, NULL), SCOMM_ERR_INVALID_ARG,
          "comm_p");
    o.field_mask = SCOMM_INIT_FIELD_RANK | SCOMM_INIT_FIELD_WORLD_SIZE;
    o.rank = 4, o.world_size = 4;
    check("init: rank >= world_size", scomm_init(&o, &none),
          SCOMM_ERR_INVALID_ARG, "rank 4");
    o.rank = -1, o.world_size = 4;
    check("init: negative rank", scomm_init(&o, &none), SCOMM_ERR_INVALID_ARG,
          "rank -1");
    o.rank = 0, o.world_size = 0;
    check("init: world_size 0", scomm_init(&o, &none), SCOMM_ERR_INVALID_ARG,
          "world_size 0");
    o.world_size = 1 << 20;
    check("init: world_size too large", scomm_init(&o, &none),
          SCOMM_ERR_INVALID_ARG, "world_size");
    o.world_size  = 1;
    o.field_mask |= SCOMM_INIT_FIELD_TIMEOUT;
    o.timeout_ms  = 0;
    check("init: timeout 0", scomm_init(&o, &none), SCOMM_ERR_INVALID_ARG,
          "timeout_ms");
    o.field_mask = SCOMM_INIT_FIELD_RANK | SCOMM_INIT_FIELD_WORLD_SIZE |
                   SCOMM_INIT_FIELD_BACKEND;
    o.backend = "quantum";
    check("init: unknown backend", scomm_init(&o, &none),
          SCOMM_ERR_UNSUPPORTED, "quantum");
    o.field_mask = SCOMM_INIT_FIELD_RANK | SCOMM_INIT_FIELD_WORLD_SIZE |
                   SCOMM_INIT_FIELD_MASTER_PORT;
    o.master_port = 0;
    check("init: master_port 0", scomm_init(&o, &none), SCOMM_ERR_INVALID_ARG,
          "master_port 0");
    o.master_port = 70000;
    check("init: master_port 70000", scomm_init(&o, &none),
          SCOMM_ERR_INVALID_ARG, "70000");
    o.field_mask = SCOMM_INIT_FIELD_RANK | SCOMM_INIT_FIELD_WORLD_SIZE |
                   SCOMM_INIT_FIELD_MASTER_ADDR;
    o.master_addr = NULL;
    check("init: master_addr NULL", scomm_init(&o, &none),
          SCOMM_ERR_INVALID_ARG, "master_addr");
    o.field_mask = SCOMM_INIT_FIELD_RANK | SCOMM_INIT_FIELD_WORLD_SIZE |
                   SCOMM_INIT_FIELD_JOB_TOKEN;
    memset(fake, 'a', sizeof(fake) - 1);
    fake[sizeof(fake) - 1] = '\0';
    o.job_token = fake;
    check("init: token too long", scomm_init(&o, &none),
          SCOMM_ERR_INVALID_ARG, "token");
    o.field_mask = SCOMM_INIT_FIELD_RANK | SCOMM_INIT_FIELD_WORLD_SIZE;
    setenv("SCOMM_TIMEOUT_MS", "abc", 1);
    check("init: SCOMM_TIMEOUT_MS=abc", scomm_init(&o, &none),
          SCOMM_ERR_BAD_CONFIG, "SCOMM_TIMEOUT_MS");
    unsetenv("SCOMM_TIMEOUT_MS");
    setenv("SCOMM_TCP_NSOCKS", "99", 1);
    check("init: SCOMM_TCP_NSOCKS=99", scomm_init(&o, &none),
          SCOMM_ERR_BAD_CONFIG, "SCOMM_TCP_NSOCKS");
    unsetenv("SCOMM_TCP_NSOCKS");
    setenv("SCOMM_SHM_RING_SIZE", "1", 1);
    check("init: SCOMM_SHM_RING_SIZE=1", scomm_init(&o, &none),
          SCOMM_ERR_BAD_CONFIG, "SCOMM_SHM_RING_SIZE");
    unsetenv("SCOMM_SHM_RING_SIZE");
    setenv("SCOMM_RANK", "two", 1);
    check("init_from_env: SCOMM_RANK=two", scomm_init_from_env(&none),
          SCOMM_ERR_BAD_CONFIG, "SCOMM_RANK");
    unsetenv("SCOMM_RANK");
    ST_ASSERT(none == NULL);

    /* ---- point-to-point ---- */
    c = one_rank();
    check("send: buf NULL", scomm_send(NULL, 5, SCOMM_FLOAT32, 0, 0, c),
          SCOMM_ERR_INVALID_ARG, "buf is NULL");
    check("send: dtype 99", scomm_send(g_buf, 1, (scomm_dtype_t)99, 0, 0, c),
          SCOMM_ERR_INVALID_ARG, "dtype 99");
    check("send: dtype -1", scomm_send(g_buf, 1, (scomm_dtype_t)-1, 0, 0, c),
          SCOMM_ERR_INVALID_ARG, "dtype -1");
    check("send: peer -1", scomm_send(g_buf, 1, SCOMM_UINT8, -1, 0, c),
          SCOMM_ERR_INVALID_ARG, "peer -1");
    check("send: peer == size", scomm_send(g_buf, 1, SCOMM_UINT8, 1, 0, c),
          SCOMM_ERR_INVALID_ARG, "peer 1");
    check("send: tag -1", scomm_send(g_buf, 1, SCOMM_UINT8, 0, -1, c),
          SCOMM_ERR_INVALID_ARG, "tag -1");
    check("send: tag > TAG_MAX",
          scomm_send(g_buf, 1, SCOMM_UINT8, 0, SCOMM_TAG_MAX + 1, c),
          SCOMM_ERR_INVALID_ARG, "tag");
    check("send: count x size overflows",
          scomm_send(g_buf, SIZE_MAX / 2, SCOMM_FLOAT32, 0, 0, c),
          SCOMM_ERR_INVALID_ARG, "overflows");
    check("send: comm NULL", scomm_send(g_buf, 1, SCOMM_UINT8, 0, 0, NULL),
          SCOMM_ERR_INVALID_ARG, "comm is NULL");
    memset(fake, 0, sizeof(fake));
    check("send: comm is garbage",
          scomm_send(g_buf, 1, SCOMM_UINT8, 0, 0, (scomm_comm_t *)fake),
          SCOMM_ERR_INVALID_ARG, "does not point at a communicator");
    check("recv: buf NULL", scomm_recv(NULL, 3, SCOMM_INT32, 0, 0, c),
          SCOMM_ERR_INVALID_ARG, "buf is NULL");
    check("recv: peer 7", scomm_recv(g_buf, 3, SCOMM_INT32, 7, 0, c),
          SCOMM_ERR_INVALID_ARG, "peer 7");
    check("recv: tag -5", scomm_recv(g_buf, 3, SCOMM_INT32, 0, -5, c),
          SCOMM_ERR_INVALID_ARG, "tag -5");
    check("recv: dtype 12", scomm_recv(g_buf, 3, (scomm_dtype_t)12, 0, 0, c),
          SCOMM_ERR_INVALID_ARG, "dtype 12");
    check("isend: req_p NULL", scomm_isend(g_buf, 1, SCOMM_UINT8, 0, 0, c,
                                           NULL),
          SCOMM_ERR_INVALID_ARG, "req_p");
    check("irecv: req_p NULL", scomm_irecv(g_buf, 1, SCOMM_UINT8, 0, 0, c,
                                           NULL),
          SCOMM_ERR_INVALID_ARG, "req_p");
    check("irecv: count overflow",
          scomm_irecv(g_buf, SIZE_MAX, SCOMM_INT64, 0, 0, c, &req),
          SCOMM_ERR_INVALID_ARG, "overflows");

    /* Truncation: a 100-byte message into a 10-byte buffer. */
    memset(big, 1, sizeof(big));
    memset(small, 9, sizeof(small));
    ST_ASSERT_OK(scomm_send(big, sizeof(big), SCOMM_UINT8, 0, 3, c));
    check("recv: message longer than buffer",
          scomm_recv(small, sizeof(small), SCOMM_UINT8, 0, 3, c),
          SCOMM_ERR_TRUNCATED, "longer");
    for (int i = 0; i < (int)sizeof(small); i++) {
        ST_ASSERT_EQ(small[i], 9);
    }

    /* ---- requests ---- */
    check("test: req NULL", scomm_test(NULL, &done), SCOMM_ERR_INVALID_ARG,
          "req is NULL");
    ST_ASSERT_OK(scomm_isend(big, 4, SCOMM_UINT8, 0, 4, c, &reqs[0]));
    check("test: done NULL", scomm_test(reqs[0], NULL),
          SCOMM_ERR_INVALID_ARG, "done is NULL");
    ST_ASSERT_OK(scomm_irecv(small, 4, SCOMM_UINT8, 0, 4, c, &reqs[1]));
    ST_ASSERT_OK(scomm_wait_all(2, reqs));
    check("wait: req NULL", scomm_wait(NULL), SCOMM_ERR_INVALID_ARG,
          "req is NULL");
    check("wait_all: reqs NULL", scomm_wait_all(2, NULL),
          SCOMM_ERR_INVALID_ARG, "reqs is NULL");

    /* ---- communicator calls ---- */
    check("split: comm NULL", scomm_comm_split(NULL, 0, 0, &sub),
          SCOMM_ERR_INVALID_ARG, "comm is NULL");
    check("split: sub_p NULL", scomm_comm_split(c, 0, 0, NULL),
          SCOMM_ERR_INVALID_ARG, "sub_p");
    check("split: color -5", scomm_comm_split(c, -5, 0, &sub),
          SCOMM_ERR_INVALID_ARG, "color -5");
    ST_ASSERT(sub == (scomm_comm_t *)0x1);
    check("set_timeout: 0", scomm_comm_set_timeout(c, 0),
          SCOMM_ERR_INVALID_ARG, "timeout_ms");
    check("set_timeout: comm NULL", scomm_comm_set_timeout(NULL, 5),
          SCOMM_ERR_INVALID_ARG, "comm is NULL");
    check("abort: comm NULL", scomm_comm_abort(NULL), SCOMM_ERR_INVALID_ARG,
          "NULL");
    check("destroy: comm NULL", scomm_comm_destroy(NULL),
          SCOMM_ERR_INVALID_ARG, "comm is NULL");
    check("barrier: comm NULL", scomm_barrier(NULL), SCOMM_ERR_INVALID_ARG,
          "comm is NULL");
    ST_ASSERT_EQ(scomm_rank(NULL), -1);
    ST_ASSERT_EQ(scomm_size((scomm_comm_t *)fake), -1);
    ST_ASSERT(strcmp(scomm_peer_transport(c, 5), "invalid") == 0);
    ST_ASSERT(strcmp(scomm_strerror((scomm_status_t)-999), "unknown status")
              == 0);
    ST_ASSERT(strcmp(scomm_status_name((scomm_status_t)4242),
                     "SCOMM_UNKNOWN") == 0);
    ST_ASSERT_EQ(scomm_dtype_size((scomm_dtype_t)99), 0);
    ST_ASSERT(strcmp(scomm_dtype_name((scomm_dtype_t)-3), "invalid") == 0);
    ST_ASSERT(strcmp(scomm_redop_name((scomm_redop_t)17), "invalid") == 0);
    g_passed += 8;

    /* ---- lifecycle: abort, then destroy ---- */
    ST_ASSERT_OK(scomm_comm_abort(c));
    check("send after abort", scomm_send(g_buf, 1, SCOMM_UINT8, 0, 0, c),
          SCOMM_ERR_ABORTED, "aborted");
    check("barrier after abort", scomm_barrier(c), SCOMM_ERR_ABORTED,
          "aborted");
    dead = c;
    ST_ASSERT_OK(scomm_comm_destroy(c));
    check("send after destroy", scomm_send(g_buf, 1, SCOMM_UINT8, 0, 0, dead),
          SCOMM_ERR_INVALID_USAGE, "destroyed");
    check("split after destroy", scomm_comm_split(dead, 0, 0, &sub),
          SCOMM_ERR_INVALID_USAGE, "destroyed");
    check("destroy twice", scomm_comm_destroy(dead), SCOMM_ERR_INVALID_USAGE,
          "destroyed");
    check("abort after destroy", scomm_comm_abort(dead),
          SCOMM_ERR_INVALID_ARG, "not a live communicator");
    ST_ASSERT_EQ(scomm_rank(dead), -1);

    printf("%d passed, %d failed\n", g_passed, g_failed);
    return (g_failed == 0) ? 0 : 1;
}
