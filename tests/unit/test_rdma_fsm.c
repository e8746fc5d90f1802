/*
 * test_rdma_fsm.c - the RDMA queue pair state machine
 * (src/transport/rdma_fsm.h) without a device: every (state, event) pair
 * against a table of the legal transitions, the happy path
 * RESET -> INIT -> RTR -> RTS, the checks of the peer's description on
 * to_rtr, the error paths (ERROR from every live state, reset and close
 * out of ERROR, nothing out of CLOSED), and that an illegal event leaves
 * the struct untouched with a reason naming the state and the event.
 */
#include <stdio.h>
#include <string.h>

#include "transport/rdma_fsm.h"
#include "st_test.h"

enum { R = SCOMM_RDMA_QP_RESET, I = SCOMM_RDMA_QP_INIT,
       T = SCOMM_RDMA_QP_RTR, S = SCOMM_RDMA_QP_RTS,
       E = SCOMM_RDMA_QP_ERROR, C = SCOMM_RDMA_QP_CLOSED, X = -1 };

/* expect[state][event]: the next state, X = illegal. Events in order:
 * to_init, to_rtr, to_rts, error, reset, close. */
static const int expect[SCOMM_RDMA_QP_NSTATES][SCOMM_RDMA_EV_NEVENTS] = {
    [R] = {I, X, X, E, X, C},
    [I] = {X, T, X, E, R, C},
    [T] = {X, X, S, E, R, C},
    [S] = {X, X, X, E, R, C},
    [E] = {X, X, X, E, R, C},
    [C] = {X, X, X, X, X, X},
};

static scomm_rdma_qpinfo_t good_remote(void)
{
    scomm_rdma_qpinfo_t q;

    memset(&q, 0, sizeof(q));
    q.qpn      = 0x1234;
    q.psn      = 0xabcde;
    q.lid      = 7;
    q.mtu      = 3;
    q.port     = 1;
    q.rq_depth = 64;
    return q;
}

static void test_table(void)
{
    scomm_rdma_qpinfo_t rem = good_remote();
    scomm_rdma_fsm_t f, before;
    char why[200];
    int s, ev, got;

    for (s = 0; s < SCOMM_RDMA_QP_NSTATES; s++) {
        for (ev = 0; ev < SCOMM_RDMA_EV_NEVENTS; ev++) {
            scomm_rdma_fsm_init(&f, 5);
            f.state = s;
            before  = f;
            why[0]  = '\0';
            got = scomm_rdma_fsm_next(&f, ev, &rem, why, sizeof(why));
            ST_ASSERT_EQ(got, expect[s][ev]);
            ST_ASSERT(memcmp(&f, &before, sizeof(f)) == 0);
            got = scomm_rdma_fsm_apply(&f, ev, &rem, "boom", why,
                                       sizeof(why));
            ST_ASSERT_EQ(got, expect[s][ev]);
            if (got < 0) {
                /* Illegal: untouched, and the reason says what and where. */
                ST_ASSERT(memcmp(&f, &before, sizeof(f)) == 0);
                ST_ASSERT(strstr(why, scomm_rdma_fsm_state_name(s)) != NULL);
                ST_ASSERT(strstr(why, scomm_rdma_fsm_event_name(ev)) != NULL);
                ST_ASSERT(strstr(why, "rank 5") != NULL);
            } else {
                ST_ASSERT_EQ(f.state, got);
            }
        }
    }
}

static void test_happy_path(void)
{
    scomm_rdma_qpinfo_t rem = good_remote();
    scomm_rdma_fsm_t f;
    char why[160];

    scomm_rdma_fsm_init(&f, 1);
    ST_ASSERT(!scomm_rdma_fsm_can_send(&f));
    ST_ASSERT(!scomm_rdma_fsm_can_post_recv(&f));
    ST_ASSERT_EQ(scomm_rdma_fsm_apply(&f, SCOMM_RDMA_EV_TO_INIT, NULL, NULL,
                                      why, sizeof(why)), I);
    ST_ASSERT(scomm_rdma_fsm_can_post_recv(&f));
    ST_ASSERT(!scomm_rdma_fsm_can_send(&f));
    ST_ASSERT_EQ(scomm_rdma_fsm_apply(&f, SCOMM_RDMA_EV_TO_RTR, &rem, NULL,
                                      why, sizeof(why)), T);
    ST_ASSERT(f.have_remote);
    ST_ASSERT_EQ(f.remote.qpn, 0x1234);
    ST_ASSERT(!scomm_rdma_fsm_can_send(&f));
    ST_ASSERT_EQ(scomm_rdma_fsm_apply(&f, SCOMM_RDMA_EV_TO_RTS, NULL, NULL,
                                      why, sizeof(why)), S);
    ST_ASSERT(scomm_rdma_fsm_can_send(&f));
    ST_ASSERT(scomm_rdma_fsm_can_post_recv(&f));
    ST_ASSERT_EQ(scomm_rdma_fsm_apply(&f, SCOMM_RDMA_EV_CLOSE, NULL, NULL,
                                      why, sizeof(why)), C);
    ST_ASSERT(!scomm_rdma_fsm_can_send(&f));
    ST_ASSERT(!scomm_rdma_fsm_can_post_recv(&f));
}

/* to_rtr refuses a missing or out-of-range description of the peer. */
static void test_bad_remote(void)
{
    scomm_rdma_qpinfo_t rem;
    scomm_rdma_fsm_t f;
    char why[160];
    int i;

    for (i = 0; i < 9; i++) {
        rem = good_remote();
        switch (i) {
        case 0: rem.qpn = 0; break;
        case 1: rem.qpn = 0x1000000; break;
        case 2: rem.psn = 0x1000000; break;
        case 3: rem.mtu = 0; break;
        case 4: rem.mtu = 6; break;
        case 5: rem.port = 0; break;
        case 6: rem.rq_depth = 1; break;
        case 7: rem.rq_depth = SCOMM_RDMA_RQ_MAX + 1; break;
        default: break;
        }
        scomm_rdma_fsm_init(&f, 3);
        ST_ASSERT_EQ(scomm_rdma_fsm_apply(&f, SCOMM_RDMA_EV_TO_INIT, NULL,
                                          NULL, why, sizeof(why)), I);
        why[0] = '\0';
        if (i == 8) {
            ST_ASSERT_EQ(scomm_rdma_fsm_apply(&f, SCOMM_RDMA_EV_TO_RTR, NULL,
                                              NULL, why, sizeof(why)), -1);
        } else {
            ST_ASSERT_EQ(scomm_rdma_fsm_apply(&f, SCOMM_RDMA_EV_TO_RTR, &rem,
                                              NULL, why, sizeof(why)), -1);
        }
        ST_ASSERT_EQ(f.state, I);
        ST_ASSERT(!f.have_remote);
        ST_ASSERT(strstr(why, "rank 3") != NULL);
    }
    /* The limits themselves are accepted. */
    rem          = good_remote();
    rem.qpn      = SCOMM_RDMA_QPN_MAX;
    rem.psn      = SCOMM_RDMA_PSN_MAX;
    rem.mtu      = 5;
    rem.rq_depth = SCOMM_RDMA_RQ_MAX;
    scomm_rdma_fsm_init(&f, 3);
    (void)scomm_rdma_fsm_apply(&f, SCOMM_RDMA_EV_TO_INIT, NULL, NULL, why,
                               sizeof(why));
    ST_ASSERT_EQ(scomm_rdma_fsm_apply(&f, SCOMM_RDMA_EV_TO_RTR, &rem, NULL,
                                      why, sizeof(why)), T);
}

/* Errors: the first reason is kept, repeats are counted, reset clears. */
static void test_error_paths(void)
{
    scomm_rdma_qpinfo_t rem = good_remote();
    scomm_rdma_fsm_t f;
    char why[160];

    scomm_rdma_fsm_init(&f, 2);
    (void)scomm_rdma_fsm_apply(&f, SCOMM_RDMA_EV_TO_INIT, NULL, NULL, why,
                               sizeof(why));
    (void)scomm_rdma_fsm_apply(&f, SCOMM_RDMA_EV_TO_RTR, &rem, NULL, why,
                               sizeof(why));
    (void)scomm_rdma_fsm_apply(&f, SCOMM_RDMA_EV_TO_RTS, NULL, NULL, why,
                               sizeof(why));
    ST_ASSERT_EQ(scomm_rdma_fsm_apply(&f, SCOMM_RDMA_EV_ERROR, NULL,
                                      "retry exceeded", why, sizeof(why)), E);
    ST_ASSERT(!scomm_rdma_fsm_can_send(&f));
    ST_ASSERT(!scomm_rdma_fsm_can_post_recv(&f));
    ST_ASSERT_EQ(scomm_rdma_fsm_apply(&f, SCOMM_RDMA_EV_ERROR, NULL,
                                      "flushed", why, sizeof(why)), E);
    ST_ASSERT_EQ(f.nerrors, 2);
    ST_ASSERT(strcmp(f.err, "retry exceeded") == 0);
    /* No way back to RTS but through reset and the whole ladder. */
    ST_ASSERT_EQ(scomm_rdma_fsm_apply(&f, SCOMM_RDMA_EV_TO_RTS, NULL, NULL,
                                      why, sizeof(why)), -1);
    ST_ASSERT_EQ(scomm_rdma_fsm_apply(&f, SCOMM_RDMA_EV_TO_INIT, NULL, NULL,
                                      why, sizeof(why)), -1);
    ST_ASSERT_EQ(scomm_rdma_fsm_apply(&f, SCOMM_RDMA_EV_RESET, NULL, NULL,
                                      why, sizeof(why)), R);
    ST_ASSERT(!f.have_remote);
    ST_ASSERT_EQ(f.err[0], '\0');
    ST_ASSERT_EQ(scomm_rdma_fsm_apply(&f, SCOMM_RDMA_EV_TO_INIT, NULL, NULL,
                                      why, sizeof(why)), I);
    /* A NULL detail still leaves a reason. */
    ST_ASSERT_EQ(scomm_rdma_fsm_apply(&f, SCOMM_RDMA_EV_ERROR, NULL, NULL,
                                      why, sizeof(why)), E);
    ST_ASSERT(f.err[0] != '\0');
    ST_ASSERT_EQ(scomm_rdma_fsm_apply(&f, SCOMM_RDMA_EV_CLOSE, NULL, NULL,
                                      why, sizeof(why)), C);
    ST_ASSERT_EQ(scomm_rdma_fsm_apply(&f, SCOMM_RDMA_EV_ERROR, NULL, NULL,
                                      why, sizeof(why)), -1);
    ST_ASSERT_EQ(scomm_rdma_fsm_apply(&f, SCOMM_RDMA_EV_CLOSE, NULL, NULL,
                                      why, sizeof(why)), -1);
}

/* Out-of-range events and corrupted states are refused, never indexed. */
static void test_out_of_range(void)
{
    scomm_rdma_fsm_t f;
    char why[160];

    scomm_rdma_fsm_init(&f, 0);
    ST_ASSERT_EQ(scomm_rdma_fsm_next(&f, -1, NULL, why, sizeof(why)), -1);
    ST_ASSERT_EQ(scomm_rdma_fsm_next(&f, SCOMM_RDMA_EV_NEVENTS, NULL, why,
                                     sizeof(why)), -1);
    ST_ASSERT(strstr(why, "?") != NULL);
    f.state = 99;
    ST_ASSERT_EQ(scomm_rdma_fsm_next(&f, SCOMM_RDMA_EV_CLOSE, NULL, why,
                                     sizeof(why)), -1);
    ST_ASSERT_EQ(scomm_rdma_fsm_next(&f, SCOMM_RDMA_EV_CLOSE, NULL, NULL, 0),
                 -1);
    ST_ASSERT(strcmp(scomm_rdma_fsm_state_name(-3), "?") == 0);
    ST_ASSERT(strcmp(scomm_rdma_fsm_state_name(S), "RTS") == 0);
}

int main(void)
{
    test_table();
    test_happy_path();
    test_bad_remote();
    test_error_paths();
    test_out_of_range();
    printf("test_rdma_fsm: all passed\n");
    return 0;
}
