/*
 * launch_ctl.h - how the launchers of one multi-host job (`scomm launch
 * --nnodes N`, one per host) talk to each other.
 *
 * The launcher of node 0 listens on --master-addr at --master-port + 1
 * (the ranks' own rendezvous is on --master-port); every other launcher
 * connects to it and says HELLO with the job token (SCOMM_JOB_TOKEN,
 * compared in constant time), its node rank, --nnodes and
 * --nproc-per-node. Once all N-1 have joined, node 0 answers GO and every
 * launcher starts its ranks. Then:
 *
 *   node k > 0                        node 0
 *   a rank failed -> FAIL ----------> print it, ABORT to the others
 *   ranks all exited 0 -> DONE -----> when every node and node 0 are
 *                                     done: END to all
 *   <---------------------------------ABORT (a rank failed anywhere)
 *   a closed or silent connection     a closed or silent connection
 *   = node 0's launcher is gone       = that node's launcher is gone
 *
 * Invariants:
 *  1. Every message is LAUNCH_CTL_MSG bytes with a magic and a version;
 *     strings are cut to their field and printed with control characters
 *     escaped. A message that is malformed, of the wrong type for its
 *     direction, or that comes before the HELLO was accepted, ends that
 *     connection (and, after GO, counts as that launcher being gone).
 *  2. Nothing waits forever: the join has --join-timeout, writes have a
 *     deadline, and TCP keepalive with TCP_USER_TIMEOUT turns a host that
 *     went silent into a closed connection within about 15 s.
 *  3. A job fails at most once: the first failure decides the exit code of
 *     every launcher and is sent on once; later ones are only printed.
 */
#ifndef SCOMM_TOOLS_LAUNCH_CTL_H
#define SCOMM_TOOLS_LAUNCH_CTL_H

#include <poll.h>

typedef struct launch_ctl launch_ctl_t;

typedef struct {
    int         nnodes;
    int         node_rank;
    int         nproc;        /* ranks per node */
    const char *master_addr;
    int         port;         /* the launchers' port: master port + 1 */
    const char *token;
    double      join_timeout; /* seconds */
} launch_ctl_cfg_t;

/* What the other launchers said, for launch.c to act on. */
typedef enum {
    LAUNCH_CTL_NOTHING = 0,
    LAUNCH_CTL_FAILED,  /* the job failed elsewhere: end the ranks here */
    LAUNCH_CTL_ALSO,    /* one more failure after the first: print it */
    LAUNCH_CTL_ENDED    /* node 0 says every node is done (code 0) */
} launch_ctl_what_t;

typedef struct {
    launch_ctl_what_t what;
    int               code;     /* the job's exit code */
    char              msg[512]; /* "node 1 (host1): rank 3 (pid 9) ..." */
} launch_ctl_event_t;

/*
 * Join the other launchers (blocking, until every one has joined or
 * cfg->join_timeout passes). Returns 0 with *ctl_p set, or 1 after a
 * message on stderr.
 */
int launch_ctl_join(const launch_ctl_cfg_t *cfg, launch_ctl_t **ctl_p);

/* The fds to poll for input, at most max; returns how many. */
int launch_ctl_fds(const launch_ctl_t *c, struct pollfd *pfds, int max);

/*
 * Read what came on the fds of launch_ctl_fds (their revents in pfds[0..n)
 * as poll left them). Returns 1 with *ev filled for each thing to act on
 * (call again until it returns 0).
 */
int launch_ctl_input(launch_ctl_t *c, struct pollfd *pfds, int n,
                     launch_ctl_event_t *ev);

/*
 * This launcher's job failed here (a rank failed, a timeout, a fork
 * failure): tell the others, once. what is printable text naming the
 * rank, e.g. "rank 3 (pid 9) exited with status 1".
 */
void launch_ctl_failed(launch_ctl_t *c, int code, const char *what);

/* Every rank of this node exited 0. */
void launch_ctl_done(launch_ctl_t *c);

/*
 * Whether this launcher may exit once its ranks are gone: the job failed,
 * or (node 0) every node is done, or (node k) node 0 said END or is gone.
 */
int launch_ctl_over(const launch_ctl_t *c);

/* "node K (HOST)" of this launcher, for its own messages. */
const char *launch_ctl_self(const launch_ctl_t *c);

void launch_ctl_free(launch_ctl_t *c);

#endif /* SCOMM_TOOLS_LAUNCH_CTL_H */
