/*
 * launch.c - `scomm launch`: start this host's ranks of one program and
 * supervise them.
 *
 * On one host (--nnodes 1, the default) the launcher picks a rendezvous
 * port on 127.0.0.1 (or takes --master-port) and a fresh 128-bit job
 * token. With --nnodes N there is one launcher per host: they take the
 * token from SCOMM_JOB_TOKEN, join each other first (launch_ctl.h) and
 * then each starts its --nproc-per-node M ranks as global ranks
 * R*M .. R*M+M-1, R its --node-rank. Each rank is a forked child that
 * execs the program with the environment of its rank (SCOMM_RANK,
 * SCOMM_WORLD_SIZE, SCOMM_LOCAL_RANK, SCOMM_LOCAL_SIZE, SCOMM_MASTER_ADDR,
 * SCOMM_MASTER_PORT, SCOMM_JOB_TOKEN and the torchrun names RANK,
 * WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK, GROUP_WORLD_SIZE,
 * MASTER_ADDR, MASTER_PORT), pinned to its share of the CPUs
 * (launch_bind.h), and the launcher waits in poll() until every rank has
 * exited. With --tag-output it also copies each rank's stdout and stderr,
 * line by line, prefixed with "[rank R] " (the global rank).
 *
 * Design notes (invariants):
 *
 *  1. All ranks live in one new process group whose id is the pid of
 *     rank 0. The launcher is outside that group, so signalling the group
 *     never hits the launcher, and it does reach processes the ranks
 *     started themselves.
 *  2. Rank 0, the group leader, is reaped last: its exit is observed with
 *     waitid(WNOWAIT) and the zombie is only collected after the last
 *     signal to the group has been sent. A zombie leader keeps the group id
 *     reserved, so the id can never name an unrelated, newer group.
 *  3. The launcher is single-threaded and blocks only in poll() (and in
 *     write() when its own stdout is slower than the ranks). Signal
 *     handlers only count signals and write one byte to a non-blocking
 *     self-pipe, which wakes poll() for SIGCHLD and for the signals to
 *     forward; all real work happens in the loop.
 *  4. The first failure (a rank that exits non-zero or is killed by a
 *     signal) decides the exit code and starts the teardown exactly once:
 *     SIGTERM to the group, SIGKILL three seconds later to whatever is
 *     still there. Ranks that die during the teardown are not reported
 *     again; they are dying because the launcher told them to.
 *  5. With --tag-output every output line starts with "[rank R] " and is
 *     written with a single write() together with its prefix, so lines of
 *     different ranks never interleave. A partial line is held back until
 *     its newline arrives, up to LAUNCH_PART_MAX bytes; a longer line is
 *     split into several tagged lines so memory stays bounded. Partial last
 *     lines are written, with a newline added, when the ranks are gone.
 *  6. Signal dispositions and the signal mask are put back in each child
 *     before exec, and in the launcher before returning, so the program
 *     and the caller of scomm_cli_launch() see what they had before.
 *  7. Across hosts, a failure here (note 4) is also sent to the other
 *     launchers, and a failure they report, or one of them vanishing,
 *     starts the same teardown here; the first failure's exit code is
 *     every launcher's. A launcher whose ranks all exited 0 waits until
 *     node 0 says the whole job is done.
 *
 * Lifecycle of one rank:
 *
 *     (none) --launch_start_rank--> running --launch_reap--> exited
 *                                                              |
 *         ranks 1..N-1: collected by launch_reap itself        |
 *         rank 0: a zombie until launch_finish (note 2)        v
 *                                                           reaped
 *
 *     While running, a rank may get a forwarded signal
 *     (launch_forward_signals), SIGTERM (launch_begin_teardown) and, 3 s
 *     later, SIGKILL (launch_check_deadlines).
 */
#include "launch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/scomm_int.h"
#include "launch_bind.h"
#include "launch_ctl.h"
#include "opts.h"

#define LAUNCH_MAX_RANKS      1024
#define LAUNCH_MAX_NODES      4096
#define LAUNCH_JOIN_TIMEOUT_S 300.0
#define LAUNCH_TOKEN_MIN      16
#define LAUNCH_KILL_GRACE_MS  3000
#define LAUNCH_PART_MAX       65536
#define LAUNCH_READ_CHUNK     65536
#define LAUNCH_MAX_TIMEOUT_S  1e9
#define LAUNCH_TOKEN_BYTES    16
#define LAUNCH_KILL_AFTER_SIG 3
#define LAUNCH_DRAIN_READS    64

/* The signals the launcher forwards to the ranks. */
static const int launch_fwd_sigs[] = {SIGINT, SIGTERM, SIGHUP};
#define LAUNCH_NFWD \
    ((int)(sizeof(launch_fwd_sigs) / sizeof(launch_fwd_sigs[0])))

/* Written by the signal handlers only; see design note 3. */
static volatile sig_atomic_t launch_wake_fd = -1;
static volatile sig_atomic_t launch_sig_count;
static volatile sig_atomic_t launch_sig_last;

typedef struct {
    int    fd;        /* read end of the rank's pipe, -1 once at end of file */
    char  *part;      /* bytes of the current line held back */
    size_t len;
    size_t cap;
} launch_stream_t;

typedef struct {
    pid_t           pid;       /* 0 until forked */
    int             running;   /* forked and its exit not yet observed */
    int             reaped;    /* the zombie has been collected */
    launch_stream_t stream[2]; /* [0]: stdout, [1]: stderr */
} launch_rank_t;

typedef struct {
    int         nranks;       /* on this host (-n, --nproc-per-node) */
    int         nnodes;
    int         node_rank;    /* -1 until given */
    const char *master_addr;  /* NULL: 127.0.0.1 */
    int         tag_output;
    double      timeout_sec;  /* 0: no timeout */
    double      join_timeout;
    int         master_port;  /* 0: pick a free one */
    int         bind;         /* LAUNCH_BIND_* */
    char      **prog_argv;
} launch_opts_t;

typedef struct {
    launch_opts_t    opts;
    launch_rank_t   *ranks;
    int              base;          /* global rank of local rank 0 */
    launch_ctl_t    *ctl;           /* the other launchers, or NULL */
    const char      *token_env;     /* SCOMM_JOB_TOKEN with --nnodes > 1 */
    launch_cpu_t    *cpus;          /* the CPUs to share (launch_bind.h) */
    int              ncpu;
    int              local_done;    /* told ctl every rank exited 0 */
    pid_t            pgid;          /* process group of the ranks, 0 before */
    int              nrunning;
    char             port_str[16];
    int              port_fd;       /* holds a picked port, or -1 */
    char             token[SCOMM_TOKEN_MAX]; /* made, or SCOMM_JOB_TOKEN */
    int              wake_pipe[2];
    struct rlimit    orig_nofile;   /* given back to the children */
    int              raised_nofile;

    /* Output assembly for --tag-output (design note 5). */
    char            *chunk;         /* LAUNCH_READ_CHUNK bytes */
    char            *out;
    size_t           out_len;
    size_t           out_cap;
    int              out_broken[2]; /* writing to fd 1 / fd 2 failed */

    /* Teardown state (design note 4). */
    int              tearing_down;
    int64_t          kill_at_ms;    /* when to send SIGKILL, if tearing_down */
    int              sent_kill;
    int              timed_out;
    int              exit_code;     /* -1 until the first failure */
    int              sig_told;      /* ctl told of a signal (note 7) */
    int              sigs_seen;     /* launcher signals already forwarded */
    int              got_signal;    /* last signal the launcher received */

    /* Dispositions and mask to restore (design note 6). */
    struct sigaction old_fwd[LAUNCH_NFWD];
    int              installed_fwd[LAUNCH_NFWD];
    struct sigaction old_chld;
    struct sigaction old_pipe;
    sigset_t         old_mask;
} launch_t;

static const char launch_usage_text[] =
    "usage: scomm launch -n N [--tag-output] [--timeout SEC]\n"
    "                    [--master-port P] [--bind-to core|numa|none]\n"
    "                    [--] prog [args...]\n"
    "       scomm launch --nnodes N --node-rank R --master-addr A\n"
    "                    --master-port P --nproc-per-node M [...] [--]\n"
    "                    prog [args...]\n"
    "\n"
    "Start N ranks (1..1024) of prog on this host, in one new process group,\n"
    "each with SCOMM_RANK, SCOMM_WORLD_SIZE, SCOMM_LOCAL_RANK,\n"
    "SCOMM_LOCAL_SIZE, SCOMM_MASTER_ADDR (127.0.0.1), SCOMM_MASTER_PORT,\n"
    "SCOMM_JOB_TOKEN and torchrun's RANK, WORLD_SIZE, LOCAL_RANK,\n"
    "LOCAL_WORLD_SIZE, GROUP_RANK, GROUP_WORLD_SIZE, MASTER_ADDR, MASTER_PORT\n"
    "set. Other SCOMM_* variables are passed through unchanged.\n"
    "\n"
    "Across hosts, run one launcher per host with the same --nnodes,\n"
    "--master-addr, --master-port, --nproc-per-node and SCOMM_JOB_TOKEN (a\n"
    "secret of 16..255 characters in every launcher's environment; there is\n"
    "no default), and --node-rank 0..N-1. Host R runs global ranks\n"
    "R*M..R*M+M-1. The launcher of node 0 listens on the master address at\n"
    "port P+1 for the others (the ranks meet on port P). A rank failing on\n"
    "any host, or a launcher vanishing, ends the job on every host.\n"
    "\n"
    "  -n N, --nproc-per-node N\n"
    "                    ranks on this host (required)\n"
    "  --nnodes N        hosts (launchers) in the job, 1..4096 (default 1)\n"
    "  --node-rank R     this host's place, 0..N-1 (required with --nnodes)\n"
    "  --master-addr A   address of node 0's host (default 127.0.0.1;\n"
    "                    required with --nnodes)\n"
    "  --master-port P   rendezvous port (default: a free port; required\n"
    "                    with --nnodes)\n"
    "  --join-timeout SEC\n"
    "                    wait this long for the other launchers (default 300)\n"
    "  --tag-output      prefix every output line with \"[rank R] \"\n"
    "  --timeout SEC     stop all ranks after SEC seconds (exit 124)\n"
    "  --bind-to core|numa|none\n"
    "                    core: one core per rank; numa: a NUMA node per rank;\n"
    "                    none: no pinning. Default: each rank an equal share\n"
    "                    of the allowed cores, inside one NUMA node where\n"
    "                    there are several (one rank keeps them all; more\n"
    "                    ranks than CPUs: no pinning)\n"
    "  -h, --help        print this text\n"
    "(torchrun's spellings --nproc_per_node, --node_rank, --master_addr and\n"
    "--master_port are accepted too.)\n"
    "\n"
    "SIGINT, SIGTERM and SIGHUP sent to the launcher are forwarded to the\n"
    "ranks; a third such signal kills them with SIGKILL. When a rank exits\n"
    "non-zero or is killed, the others get SIGTERM, then SIGKILL after 3 s.\n"
    "Rank 0 reads the launcher's stdin unless it is a terminal; the other\n"
    "ranks read /dev/null.\n"
    "\n"
    "Exit status: 0 when every rank exited 0; 1 when the first failing rank\n"
    "exited non-zero or the launcher failed; 128+S when the first failing\n"
    "rank was killed by signal S (or, with no failing rank, when the\n"
    "launcher received signal S); 124 on --timeout; 2 on a usage error.\n"
    "Across hosts every launcher exits with the code of the job's first\n"
    "failure (1 when a launcher vanished). A rank whose program cannot be\n"
    "executed exits 127.\n";

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

static int64_t launch_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Name of a signal as "SIGKILL"; NULL when this table does not know it. */
static const char *launch_signame(int sig)
{
    switch (sig) {
    case SIGHUP:    return "SIGHUP";
    case SIGINT:    return "SIGINT";
    case SIGQUIT:   return "SIGQUIT";
    case SIGILL:    return "SIGILL";
    case SIGTRAP:   return "SIGTRAP";
    case SIGABRT:   return "SIGABRT";
    case SIGBUS:    return "SIGBUS";
    case SIGFPE:    return "SIGFPE";
    case SIGKILL:   return "SIGKILL";
    case SIGUSR1:   return "SIGUSR1";
    case SIGSEGV:   return "SIGSEGV";
    case SIGUSR2:   return "SIGUSR2";
    case SIGPIPE:   return "SIGPIPE";
    case SIGALRM:   return "SIGALRM";
    case SIGTERM:   return "SIGTERM";
    case SIGCHLD:   return "SIGCHLD";
    case SIGCONT:   return "SIGCONT";
    case SIGSTOP:   return "SIGSTOP";
    case SIGTSTP:   return "SIGTSTP";
    case SIGTTIN:   return "SIGTTIN";
    case SIGTTOU:   return "SIGTTOU";
    case SIGURG:    return "SIGURG";
    case SIGXCPU:   return "SIGXCPU";
    case SIGXFSZ:   return "SIGXFSZ";
    case SIGVTALRM: return "SIGVTALRM";
    case SIGPROF:   return "SIGPROF";
    case SIGSYS:    return "SIGSYS";
#ifdef SIGWINCH
    case SIGWINCH:  return "SIGWINCH";
#endif
#ifdef SIGIO
    case SIGIO:     return "SIGIO";
#endif
#ifdef SIGPWR
    case SIGPWR:    return "SIGPWR";
#endif
#ifdef SIGSTKFLT
    case SIGSTKFLT: return "SIGSTKFLT";
#endif
    default:        return NULL;
    }
}

/* Write all of buf to fd; EINTR is retried and EAGAIN waits for room. */
static int launch_write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);

        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        } else if ((n < 0) && (errno == EINTR)) {
            continue;
        } else if ((n < 0) && ((errno == EAGAIN) || (errno == EWOULDBLOCK))) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};

            (void)poll(&pfd, 1, 100);
        } else {
            return -1;
        }
    }
    return 0;
}

static void launch_usage(FILE *f)
{
    fputs(launch_usage_text, f);
}

/*
 * Returns -1 to go on, or the exit code: 0 after --help, 2 on a usage
 * error. Options stop at the first argument that is not one (or at "--"):
 * what follows is the program and its own arguments.
 */
static int launch_parse(int argc, char **argv, launch_opts_t *o)
{
    static const char *const binds[]    = {"core", "numa", "none", NULL};
    static const int         bind_val[] = {LAUNCH_BIND_CORE, LAUNCH_BIND_NUMA,
                                           LAUNCH_BIND_NONE};
    const scomm_cli_opt_t opts[] = {
        CLI_INT(NULL, 'n', &o->nranks, 1, LAUNCH_MAX_RANKS),
        CLI_INT("nproc-per-node", 0, &o->nranks, 1, LAUNCH_MAX_RANKS),
        CLI_INT("nproc_per_node", 0, &o->nranks, 1, LAUNCH_MAX_RANKS),
        CLI_INT("nnodes", 0, &o->nnodes, 1, LAUNCH_MAX_NODES),
        CLI_INT("node-rank", 0, &o->node_rank, 0, LAUNCH_MAX_NODES - 1),
        CLI_INT("node_rank", 0, &o->node_rank, 0, LAUNCH_MAX_NODES - 1),
        CLI_STR("master-addr", 0, &o->master_addr),
        CLI_STR("master_addr", 0, &o->master_addr),
        CLI_INT("master-port", 0, &o->master_port, 1, 65535),
        CLI_INT("master_port", 0, &o->master_port, 1, 65535),
        CLI_DOUBLE_GT("join-timeout", 0, &o->join_timeout, 0,
                      LAUNCH_MAX_TIMEOUT_S),
        CLI_FLAG("tag-output", 0, &o->tag_output),
        CLI_DOUBLE_GT("timeout", 0, &o->timeout_sec, 0,
                      LAUNCH_MAX_TIMEOUT_S),
        CLI_ENUMV("bind-to", 0, &o->bind, binds, bind_val),
    };
    const scomm_cli_cmd_t cmd = {"launch", launch_usage, opts,
                                 CLI_NOPTS(opts), SCOMM_CLI_IN_ORDER, -1};
    char val[16];
    int rc, first;

    memset(o, 0, sizeof(*o));
    o->nnodes       = 1;
    o->node_rank    = -1;
    o->join_timeout = LAUNCH_JOIN_TIMEOUT_S;
    o->bind         = LAUNCH_BIND_SHARE;
    rc = scomm_cli_parse(&cmd, argc, argv, &first);
    if (rc >= 0) {
        return rc;
    }
    if (o->nranks == 0) {
        return scomm_cli_usage_error("launch", "-n N (the number of ranks) "
                                     "is required");
    }
    if ((o->master_addr != NULL) && (o->master_addr[0] == '\0')) {
        return scomm_cli_bad_value("launch", "--master-addr", "",
                                   "expected a host name or address");
    }
    if (o->node_rank >= o->nnodes) {
        snprintf(val, sizeof(val), "%d", o->node_rank);
        return scomm_cli_bad_value("launch", "--node-rank", val,
                                   "expected 0..%d (--nnodes %d)",
                                   o->nnodes - 1, o->nnodes);
    }
    if (o->nnodes > 1) {
        const char *missing = (o->node_rank < 0) ? "--node-rank R"
                              : (o->master_addr == NULL) ? "--master-addr A"
                              : (o->master_port == 0) ? "--master-port P"
                                                      : NULL;

        if (missing != NULL) {
            return scomm_cli_usage_error("launch", "%s is required with "
                                         "--nnodes %d (the same on every "
                                         "host but --node-rank)", missing,
                                         o->nnodes);
        }
        if (o->master_port == 65535) {
            return scomm_cli_bad_value("launch", "--master-port", "65535",
                                       "expected 1..65534 with --nnodes "
                                       "(the launchers use port P+1)");
        }
    }
    if (first >= argc) {
        return scomm_cli_usage_error("launch", "no program to launch");
    }
    if (o->node_rank < 0) {
        o->node_rank = 0;
    }
    o->prog_argv = &argv[first];
    return -1;
}

/* With --nnodes > 1 the job token comes from the environment (usage text):
 * the same secret on every host, never a default. 0, or the exit code. */
static int launch_shared_token(launch_t *l)
{
    scomm_pval_t pv;
    char         err[256];
    size_t       n;

    if (scomm_param_get("SCOMM_JOB_TOKEN", NULL, &pv, err, sizeof(err)) !=
        SCOMM_OK) {
        return scomm_cli_usage_error("launch", "%s", err);
    }
    n = strlen(pv.text);
    if ((n < LAUNCH_TOKEN_MIN) || (n >= SCOMM_TOKEN_MAX)) {
        return scomm_cli_usage_error("launch", "--nnodes %d needs the same "
                                     "SCOMM_JOB_TOKEN of %d..%d characters "
                                     "in every launcher's environment (%s), "
                                     "e.g. from 'od -An -N16 -tx1 "
                                     "/dev/urandom | tr -d \" \\n\"'",
                                     l->opts.nnodes, LAUNCH_TOKEN_MIN,
                                     SCOMM_TOKEN_MAX - 1,
                                     (n == 0) ? "it is not set"
                                     : (n < LAUNCH_TOKEN_MIN) ? "it is too "
                                                                "short"
                                                              : "it is too "
                                                                "long");
    }
    l->token_env = pv.text;
    return 0;
}

/* A TCP port on 127.0.0.1 reserved for the ranks' rendezvous: a socket
 * bound to port 0 with SO_REUSEADDR and never listening, kept open (*fd)
 * until the launcher ends. Rank 0's listener (SO_REUSEADDR too) may bind
 * the same port; no other program's bind(0) or connect() is handed a port
 * a socket holds, so nothing beside us takes it before rank 0 binds (the
 * ranks do not inherit it: close-on-exec). -1 on error. */
static int launch_pick_port(int *fd)
{
    struct sockaddr_in addr;
    socklen_t          alen = sizeof(addr);
    int                one  = 1;
    int                port = -1;

    *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*fd < 0) {
        return -1;
    }
    memset(&addr, 0, sizeof(addr));
    addr.sin_family      = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port        = 0;
    if ((setsockopt(*fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0) &&
        (bind(*fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) &&
        (getsockname(*fd, (struct sockaddr *)&addr, &alen) == 0)) {
        port = ntohs(addr.sin_port);
    }
    if (port <= 0) {
        close(*fd);
        *fd = -1;
    }
    return port;
}

/* A fresh random job token as lowercase hex; -1 on error. */
static int launch_make_token(char *hex)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char     raw[LAUNCH_TOKEN_BYTES];
    size_t            got = 0;
    size_t            k;

    while (got < sizeof(raw)) {
        ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        got += (size_t)n;
    }
    for (k = 0; k < sizeof(raw); k++) {
        hex[2 * k]     = digits[raw[k] >> 4];
        hex[2 * k + 1] = digits[raw[k] & 0xf];
    }
    hex[2 * sizeof(raw)] = '\0';
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Signals                                                                   */
/* ------------------------------------------------------------------------ */

static void launch_on_signal(int sig)
{
    int saved_errno = errno;
    int fd          = launch_wake_fd;

    if (sig != SIGCHLD) {
        launch_sig_last  = sig;
        launch_sig_count = launch_sig_count + 1;
    }
    if (fd >= 0) {
        ssize_t rc = write(fd, "x", 1);

        (void)rc;
    }
    errno = saved_errno;
}

/*
 * Install the handlers. A forwarded signal that the launcher's own caller
 * ignores (nohup, a background job of a non-interactive shell) stays
 * ignored, and the ranks inherit that.
 */
static void launch_install_signals(launch_t *l)
{
    struct sigaction sa;
    int              k;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = launch_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;

    launch_wake_fd   = l->wake_pipe[1];
    launch_sig_count = 0;
    launch_sig_last  = 0;
    for (k = 0; k < LAUNCH_NFWD; k++) {
        sigaction(launch_fwd_sigs[k], NULL, &l->old_fwd[k]);
        if (l->old_fwd[k].sa_handler != SIG_IGN) {
            sigaction(launch_fwd_sigs[k], &sa, NULL);
            l->installed_fwd[k] = 1;
        }
    }
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, &l->old_chld);

    /* A closed stdout must not kill the launcher and orphan the ranks. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, &l->old_pipe);
}

/* Put back what launch_install_signals changed; also used in children. */
static void launch_restore_signals(launch_t *l)
{
    int k;

    for (k = 0; k < LAUNCH_NFWD; k++) {
        if (l->installed_fwd[k]) {
            sigaction(launch_fwd_sigs[k], &l->old_fwd[k], NULL);
        }
    }
    sigaction(SIGCHLD, &l->old_chld, NULL);
    sigaction(SIGPIPE, &l->old_pipe, NULL);
}

/* Send sig to the group and to every rank whose exit is not yet seen. */
static void launch_signal_ranks(launch_t *l, int sig)
{
    int r;

    if (l->pgid > 0) {
        (void)killpg(l->pgid, sig);
    }
    for (r = 0; r < l->opts.nranks; r++) {
        if (l->ranks[r].running) {
            (void)kill(l->ranks[r].pid, sig);
        }
    }
}

/* Forward the signals the launcher received since the last call. */
static void launch_forward_signals(launch_t *l)
{
    int count = launch_sig_count;

    while (l->sigs_seen < count) {
        int sig = launch_sig_last;

        l->sigs_seen++;
        l->got_signal = sig;
        if (l->sigs_seen >= LAUNCH_KILL_AFTER_SIG) {
            if (!l->sent_kill) {
                const char *name = launch_signame(sig);

                fprintf(stderr, "scomm launch: %d signals received (last %s); "
                        "killing the ranks with SIGKILL\n", l->sigs_seen,
                        name != NULL ? name : "?");
            }
            launch_signal_ranks(l, SIGKILL);
            l->sent_kill = 1;
        } else {
            launch_signal_ranks(l, sig);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Tagged output (design note 5)                                             */
/* ------------------------------------------------------------------------ */

static void launch_out_flush(launch_t *l, int which)
{
    if ((l->out_len > 0) && !l->out_broken[which]) {
        if (launch_write_all(which + 1, l->out, l->out_len) != 0) {
            l->out_broken[which] = 1;
        }
    }
    l->out_len = 0;
}

static void launch_out_append(launch_t *l, int which, const char *p,
                              size_t n)
{
    if (n == 0) {
        return;
    }
    if (l->out_len + n > l->out_cap) {
        size_t need = l->out_len + n;
        size_t cap  = (l->out_cap == 0) ? 4096 : l->out_cap;
        char  *grown;

        while (cap < need) {
            cap *= 2;
        }
        grown = realloc(l->out, cap);
        if (grown == NULL) {
            /* Out of memory: give up atomicity, not output. */
            launch_out_flush(l, which);
            if (!l->out_broken[which] &&
                (launch_write_all(which + 1, p, n) != 0)) {
                l->out_broken[which] = 1;
            }
            return;
        }
        l->out     = grown;
        l->out_cap = cap;
    }
    memcpy(l->out + l->out_len, p, n);
    l->out_len += n;
}

static void launch_out_prefix(launch_t *l, int which, int rank)
{
    char tag[32];
    int  n = snprintf(tag, sizeof(tag), "[rank %d] ", l->base + rank);

    launch_out_append(l, which, tag, (size_t)n);
}

/* Hold back n more bytes of the current line; -1 when it would not fit. */
static int launch_part_append(launch_stream_t *s, const char *p, size_t n)
{
    if (s->len + n > LAUNCH_PART_MAX) {
        return -1;
    }
    if (s->len + n > s->cap) {
        size_t cap   = (s->cap == 0) ? 256 : s->cap;
        char  *grown;

        while (cap < s->len + n) {
            cap *= 2;
        }
        grown = realloc(s->part, cap);
        if (grown == NULL) {
            return -1;
        }
        s->part = grown;
        s->cap  = cap;
    }
    memcpy(s->part + s->len, p, n);
    s->len += n;
    return 0;
}

/* Turn n bytes read from a rank's stream into prefixed output lines. */
static void launch_feed(launch_t *l, int rank, int which, const char *p,
                        size_t n)
{
    launch_stream_t *s = &l->ranks[rank].stream[which];

    while (n > 0) {
        const char *nl   = memchr(p, '\n', n);
        size_t      take = (nl != NULL) ? (size_t)(nl - p) + 1 : n;

        if ((nl != NULL) || (launch_part_append(s, p, take) != 0)) {
            launch_out_prefix(l, which, rank);
            launch_out_append(l, which, s->part, s->len);
            launch_out_append(l, which, p, take);
            if (nl == NULL) {
                /* Too long to hold back: split it, keeping it tagged. */
                launch_out_append(l, which, "\n", 1);
            }
            s->len = 0;
        }
        p += take;
        n -= take;
    }
    launch_out_flush(l, which);
}

/* Read once from a stream; returns 1 if data came, 0 otherwise. */
static int launch_read_stream(launch_t *l, int rank, int which)
{
    launch_stream_t *s = &l->ranks[rank].stream[which];
    ssize_t          n;

    if (s->fd < 0) {
        return 0;
    }
    n = read(s->fd, l->chunk, LAUNCH_READ_CHUNK);
    if (n > 0) {
        launch_feed(l, rank, which, l->chunk, (size_t)n);
        return 1;
    }
    if ((n < 0) && ((errno == EINTR) || (errno == EAGAIN) ||
                    (errno == EWOULDBLOCK))) {
        return 0;
    }
    close(s->fd);
    s->fd = -1;
    return 0;
}

/* Read what is left in every pipe and write out the partial lines. */
static void launch_drain_output(launch_t *l)
{
    int r;
    int which;

    if (!l->opts.tag_output) {
        return;
    }
    for (r = 0; r < l->opts.nranks; r++) {
        for (which = 0; which < 2; which++) {
            launch_stream_t *s = &l->ranks[r].stream[which];
            int              reads;

            /* Bounded: a process the rank left behind may keep writing. */
            for (reads = 0; reads < LAUNCH_DRAIN_READS; reads++) {
                if (!launch_read_stream(l, r, which)) {
                    break;
                }
            }
            if (s->len > 0) {
                launch_out_prefix(l, which, r);
                launch_out_append(l, which, s->part, s->len);
                launch_out_append(l, which, "\n", 1);
                launch_out_flush(l, which);
                s->len = 0;
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Starting ranks                                                            */
/* ------------------------------------------------------------------------ */

static void launch_setenv_int(const char *name, int v)
{
    char buf[16];

    snprintf(buf, sizeof(buf), "%d", v);
    setenv(name, buf, 1);
}

/* Pin local rank to its share of the launcher's CPUs (launch_bind.h). Two
 * busy ranks left to the scheduler sometimes share one CPU, and a polling
 * wait then costs a time slice instead of a cache-line transfer. */
static void launch_bind(launch_t *l, int rank)
{
    cpu_set_t set;

    if ((l->ncpu > 0) &&
        launch_bind_plan(l->cpus, l->ncpu, l->opts.bind, rank,
                         l->opts.nranks, &set)) {
        (void)sched_setaffinity(0, sizeof(set), &set);
    }
}

/* The launcher's allowed CPUs, with their nodes and cores, once. */
static void launch_bind_prepare(launch_t *l)
{
    cpu_set_t allowed;

    if ((l->opts.bind == LAUNCH_BIND_NONE) ||
        (sched_getaffinity(0, sizeof(allowed), &allowed) != 0)) {
        return;
    }
    l->cpus = calloc(CPU_SETSIZE, sizeof(*l->cpus));
    if (l->cpus != NULL) {
        l->ncpu = launch_bind_cpus("/sys", &allowed, l->cpus, CPU_SETSIZE);
    }
}

/* In the child: set up and exec the program; never returns. */
static void launch_child(launch_t *l, int rank, int out_w, int err_w)
{
    const char *prog  = l->opts.prog_argv[0];
    const char *addr  = (l->opts.master_addr != NULL) ? l->opts.master_addr
                                                      : "127.0.0.1";
    int         grank = l->base + rank;
    int         size  = l->opts.nnodes * l->opts.nranks;
    int         local = l->opts.nranks;

    if (setpgid(0, (rank == 0) ? 0 : l->pgid) != 0) {
        fprintf(stderr, "scomm launch: rank %d: cannot join the process "
                "group of the ranks: %s\n", grank, strerror(errno));
        _exit(127);
    }
    launch_restore_signals(l);
    sigprocmask(SIG_SETMASK, &l->old_mask, NULL);
    if (l->raised_nofile) {
        (void)setrlimit(RLIMIT_NOFILE, &l->orig_nofile);
    }

    /* The ranks are not the terminal's foreground group (design note 1),
     * so a read from the terminal would stop them with SIGTTIN. */
    if ((rank != 0) || isatty(STDIN_FILENO)) {
        int fd = open("/dev/null", O_RDONLY);

        if (fd >= 0) {
            dup2(fd, STDIN_FILENO);
            if (fd != STDIN_FILENO) {
                close(fd);
            }
        }
    }
    if (l->opts.tag_output) {
        dup2(out_w, STDOUT_FILENO);
        dup2(err_w, STDERR_FILENO);
    }

    launch_bind(l, rank);
    launch_setenv_int("SCOMM_RANK", grank);
    launch_setenv_int("SCOMM_WORLD_SIZE", size);
    launch_setenv_int("SCOMM_LOCAL_RANK", rank);
    launch_setenv_int("SCOMM_LOCAL_SIZE", local);
    setenv("SCOMM_MASTER_ADDR", addr, 1);
    setenv("SCOMM_MASTER_PORT", l->port_str, 1);
    setenv("SCOMM_JOB_TOKEN", l->token, 1);
    launch_setenv_int("RANK", grank);
    launch_setenv_int("WORLD_SIZE", size);
    launch_setenv_int("LOCAL_RANK", rank);
    launch_setenv_int("LOCAL_WORLD_SIZE", local);
    launch_setenv_int("GROUP_RANK", l->opts.node_rank);
    launch_setenv_int("GROUP_WORLD_SIZE", l->opts.nnodes);
    setenv("MASTER_ADDR", addr, 1);
    setenv("MASTER_PORT", l->port_str, 1);

    execvp(prog, l->opts.prog_argv);
    fprintf(stderr, "scomm launch: rank %d: cannot execute '%s': %s\n",
            grank, prog, strerror(errno));
    _exit(127);
}

static int launch_start_rank(launch_t *l, int rank)
{
    launch_rank_t *rk      = &l->ranks[rank];
    int            out[2]  = {-1, -1};
    int            err[2]  = {-1, -1};
    pid_t          pid;

    if (l->opts.tag_output) {
        if ((pipe2(out, O_CLOEXEC) != 0) || (pipe2(err, O_CLOEXEC) != 0)) {
            fprintf(stderr, "scomm launch: cannot create the output pipes of "
                    "rank %d: %s\n", l->base + rank, strerror(errno));
            if (out[0] >= 0) {
                close(out[0]);
                close(out[1]);
            }
            return -1;
        }
    }
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "scomm launch: cannot fork rank %d: %s\n",
                l->base + rank, strerror(errno));
        if (l->opts.tag_output) {
            close(out[0]);
            close(out[1]);
            close(err[0]);
            close(err[1]);
        }
        return -1;
    }
    if (pid == 0) {
        launch_child(l, rank, out[1], err[1]);
    }

    /* Both sides call setpgid so the group exists before anyone signals it;
     * the parent's call fails harmlessly once the child has exec'd. */
    if (rank == 0) {
        l->pgid = pid;
    }
    (void)setpgid(pid, l->pgid);
    rk->pid     = pid;
    rk->running = 1;
    l->nrunning++;
    if (l->opts.tag_output) {
        close(out[1]);
        close(err[1]);
        rk->stream[0].fd = out[0];
        rk->stream[1].fd = err[0];
        (void)fcntl(out[0], F_SETFL, O_NONBLOCK);
        (void)fcntl(err[0], F_SETFL, O_NONBLOCK);
    }
    return 0;
}

/* With --tag-output every rank holds two pipes open; make room for them. */
static void launch_raise_nofile(launch_t *l)
{
    struct rlimit rl;
    rlim_t        need = (rlim_t)l->opts.nranks * 2 + 64;

    if (!l->opts.tag_output || (getrlimit(RLIMIT_NOFILE, &rl) != 0)) {
        return;
    }
    l->orig_nofile = rl;
    if ((rl.rlim_cur != RLIM_INFINITY) && (rl.rlim_cur < need)) {
        rl.rlim_cur = ((rl.rlim_max == RLIM_INFINITY) || (rl.rlim_max > need))
                          ? need : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0) {
            l->raised_nofile = 1;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Supervision                                                               */
/* ------------------------------------------------------------------------ */

static void launch_begin_teardown(launch_t *l)
{
    if (l->tearing_down) {
        return;
    }
    l->tearing_down = 1;
    l->kill_at_ms   = launch_now_ms() + LAUNCH_KILL_GRACE_MS;
    launch_signal_ranks(l, SIGTERM);
}

/* A failure here: report it (to the other launchers too, note 7), let the
 * first one decide the exit code, and start the teardown. */
static void launch_fail(launch_t *l, int code, const char *what)
{
    fprintf(stderr, "scomm launch: %s%s%s\n",
            (l->ctl != NULL) ? launch_ctl_self(l->ctl) : "",
            (l->ctl != NULL) ? ": " : "", what);
    if (l->exit_code < 0) {
        l->exit_code = code;
    }
    if (l->ctl != NULL) {
        launch_ctl_failed(l->ctl, code, what);
    }
    launch_begin_teardown(l);
}

/* Record that a rank's exit was seen; report and act on a failure. */
static void launch_rank_exited(launch_t *l, int rank, const siginfo_t *si)
{
    launch_rank_t *rk = &l->ranks[rank];
    char           what[160];
    int            failed;

    rk->running = 0;
    l->nrunning--;
    failed = (si->si_code != CLD_EXITED) || (si->si_status != 0);
    if (!failed || l->tearing_down) {
        return;
    }
    if (si->si_code == CLD_EXITED) {
        snprintf(what, sizeof(what), "rank %d (pid %ld) exited with status "
                 "%d", l->base + rank, (long)rk->pid, si->si_status);
        launch_fail(l, 1, what);
    } else {
        const char *name = launch_signame(si->si_status);

        snprintf(what, sizeof(what), "rank %d (pid %ld) was killed by "
                 "signal %s (%d)%s", l->base + rank, (long)rk->pid,
                 name != NULL ? name : "?", si->si_status,
                 (si->si_code == CLD_DUMPED) ? " (core dumped)" : "");
        launch_fail(l, 128 + si->si_status, what);
    }
}

/* Observe every rank that has exited; rank 0 stays a zombie (note 2). */
static void launch_reap(launch_t *l)
{
    int r;

    for (r = 0; r < l->opts.nranks; r++) {
        launch_rank_t *rk = &l->ranks[r];
        siginfo_t      si;
        int            flags = WEXITED | WNOHANG;
        int            rc;

        if (!rk->running) {
            continue;
        }
        if (r == 0) {
            flags |= WNOWAIT;
        }
        memset(&si, 0, sizeof(si));
        do {
            rc = waitid(P_PID, (id_t)rk->pid, &si, flags);
        } while ((rc != 0) && (errno == EINTR));
        if ((rc != 0) && (errno == ECHILD)) {
            /* Someone else reaped it; count it as gone, status unknown. */
            si.si_code   = CLD_EXITED;
            si.si_status = 0;
            si.si_pid    = rk->pid;
            rk->reaped   = 1;
        }
        if (si.si_pid == rk->pid) {
            if (r != 0) {
                rk->reaped = 1;
            }
            launch_rank_exited(l, r, &si);
        }
    }
}

/* List the ranks still running into a message on stderr. */
static void launch_print_running(launch_t *l, const char *what)
{
    int r;

    fprintf(stderr, "scomm launch: %s%s%s; ranks still running:",
            (l->ctl != NULL) ? launch_ctl_self(l->ctl) : "",
            (l->ctl != NULL) ? ": " : "", what);
    for (r = 0; r < l->opts.nranks; r++) {
        if (l->ranks[r].running) {
            fprintf(stderr, " %d", l->base + r);
        }
    }
    fputc('\n', stderr);
}

static void launch_check_deadlines(launch_t *l, int64_t now, int64_t deadline)
{
    if ((deadline > 0) && !l->tearing_down && (now >= deadline)) {
        char what[64];

        snprintf(what, sizeof(what), "timed out after %g s",
                 l->opts.timeout_sec);
        launch_print_running(l, what);
        l->timed_out = 1;
        if (l->ctl != NULL) {
            launch_ctl_failed(l->ctl, 124, what);
        }
        launch_begin_teardown(l);
    }
    if (l->tearing_down && !l->sent_kill && (now >= l->kill_at_ms)) {
        launch_print_running(l, "sending SIGKILL 3 s after SIGTERM");
        launch_signal_ranks(l, SIGKILL);
        l->sent_kill = 1;
    }
}

static int launch_poll_timeout(launch_t *l, int64_t now, int64_t deadline)
{
    int64_t t = 1000;

    if ((deadline > 0) && !l->tearing_down && (deadline - now < t)) {
        t = deadline - now;
    }
    if (l->tearing_down && !l->sent_kill && (l->kill_at_ms - now < t)) {
        t = l->kill_at_ms - now;
    }
    return (t < 0) ? 0 : (int)t;
}

/* What the other launchers said (note 7). */
static void launch_remote(launch_t *l, struct pollfd *pfds, int n)
{
    launch_ctl_event_t ev;

    while (launch_ctl_input(l->ctl, pfds, n, &ev)) {
        if (ev.what == LAUNCH_CTL_FAILED) {
            fprintf(stderr, "scomm launch: %s; ending the job\n", ev.msg);
            if (l->exit_code < 0) {
                l->exit_code = ev.code;
            }
            launch_begin_teardown(l);
        } else if (ev.what == LAUNCH_CTL_ALSO) {
            fprintf(stderr, "scomm launch: also %s\n", ev.msg);
        }
    }
}

/* Whether the loop is over: every rank here is gone and, across hosts,
 * the job is over for this launcher too (note 7). */
static int launch_over(launch_t *l)
{
    char what[64];

    if (l->nrunning > 0) {
        return 0;
    }
    if (l->ctl == NULL) {
        return 1;
    }
    if (!l->local_done && !l->tearing_down && (l->exit_code < 0) &&
        (l->got_signal == 0)) {
        l->local_done = 1;
        launch_ctl_done(l->ctl);
    }
    if (!launch_ctl_over(l->ctl) && (l->got_signal != 0) && !l->sig_told) {
        /* Interrupted while the other hosts run: that ends the job. */
        const char *name = launch_signame(l->got_signal);

        l->sig_told = 1;
        snprintf(what, sizeof(what), "the launcher got signal %s (%d)",
                 (name != NULL) ? name : "?", l->got_signal);
        launch_fail(l, 128 + l->got_signal, what);
    }
    return launch_ctl_over(l->ctl);
}

static void launch_loop(launch_t *l, struct pollfd *pfds)
{
    int64_t deadline = 0;

    if (l->opts.timeout_sec > 0.0) {
        deadline = launch_now_ms() +
                   (int64_t)(l->opts.timeout_sec * 1000.0 + 0.5);
    }
    for (;;) {
        int64_t now;
        nfds_t  n = 0, ctl_at;
        int     r;
        int     which;
        int     nctl = 0;

        launch_forward_signals(l);
        launch_reap(l);
        if (launch_over(l)) {
            break;
        }
        now = launch_now_ms();
        launch_check_deadlines(l, now, deadline);

        pfds[n].fd     = l->wake_pipe[0];
        pfds[n].events = POLLIN;
        n++;
        for (r = 0; r < l->opts.nranks; r++) {
            for (which = 0; which < 2; which++) {
                if (l->ranks[r].stream[which].fd >= 0) {
                    pfds[n].fd     = l->ranks[r].stream[which].fd;
                    pfds[n].events = POLLIN;
                    n++;
                }
            }
        }
        ctl_at = n;
        if (l->ctl != NULL) {
            nctl = launch_ctl_fds(l->ctl, pfds + n, l->opts.nnodes);
            n += (nfds_t)nctl;
        }
        if (poll(pfds, n, launch_poll_timeout(l, now, deadline)) <= 0) {
            continue;
        }
        if (nctl > 0) {
            launch_remote(l, pfds + ctl_at, nctl);
        }
        if (pfds[0].revents != 0) {
            char buf[64];

            while (read(l->wake_pipe[0], buf, sizeof(buf)) > 0) {
            }
        }

        /* Walk the streams in the same order they were added to pfds. */
        n = 1;
        for (r = 0; r < l->opts.nranks; r++) {
            for (which = 0; which < 2; which++) {
                if (l->ranks[r].stream[which].fd >= 0) {
                    if (pfds[n].revents != 0) {
                        (void)launch_read_stream(l, r, which);
                    }
                    n++;
                }
            }
        }
    }
}

/* Final signal to the group (after a teardown), then reap rank 0. */
static void launch_finish(launch_t *l)
{
    int r;

    if (l->tearing_down && (l->pgid > 0)) {
        /* Clean up what the ranks started and left behind. */
        (void)killpg(l->pgid, SIGKILL);
    }
    for (r = 0; r < l->opts.nranks; r++) {
        launch_rank_t *rk = &l->ranks[r];

        if ((rk->pid > 0) && !rk->reaped) {
            while ((waitpid(rk->pid, NULL, 0) < 0) && (errno == EINTR)) {
            }
            rk->reaped = 1;
        }
    }
}

static void launch_free(launch_t *l)
{
    int r;
    int which;

    if (l->ranks != NULL) {
        for (r = 0; r < l->opts.nranks; r++) {
            for (which = 0; which < 2; which++) {
                launch_stream_t *s = &l->ranks[r].stream[which];

                if (s->fd >= 0) {
                    close(s->fd);
                }
                free(s->part);
            }
        }
    }
    free(l->ranks);
    free(l->cpus);
    launch_ctl_free(l->ctl);
    free(l->chunk);
    free(l->out);
    if (l->wake_pipe[0] >= 0) {
        close(l->wake_pipe[0]);
        close(l->wake_pipe[1]);
    }
    if (l->raised_nofile) {
        (void)setrlimit(RLIMIT_NOFILE, &l->orig_nofile);
    }
    if (l->port_fd >= 0) {
        close(l->port_fd);
    }
}

int scomm_cli_launch(int argc, char **argv)
{
    launch_t       l;
    struct pollfd *pfds = NULL;
    sigset_t       block;
    int            rc;
    int            r;
    int            k;

    memset(&l, 0, sizeof(l));
    l.wake_pipe[0] = -1;
    l.wake_pipe[1] = -1;
    l.port_fd      = -1;
    l.exit_code    = -1;
    rc = launch_parse(argc, argv, &l.opts);
    if (rc >= 0) {
        return rc;
    }

    l.base = l.opts.node_rank * l.opts.nranks;
    if (l.opts.nnodes > 1) {
        rc = launch_shared_token(&l);
        if (rc != 0) {
            return rc;
        }
    }
    if (l.opts.master_port == 0) {
        l.opts.master_port = launch_pick_port(&l.port_fd);
        if (l.opts.master_port <= 0) {
            fprintf(stderr, "scomm launch: cannot find a free port on "
                    "127.0.0.1: %s\n", strerror(errno));
            return 1;
        }
    }
    snprintf(l.port_str, sizeof(l.port_str), "%d", l.opts.master_port);
    if (l.token_env != NULL) {
        snprintf(l.token, sizeof(l.token), "%s", l.token_env);
    } else if (launch_make_token(l.token) != 0) {
        fprintf(stderr, "scomm launch: getrandom failed: %s\n",
                strerror(errno));
        launch_free(&l);
        return 1;
    }

    l.ranks = calloc((size_t)l.opts.nranks, sizeof(*l.ranks));
    pfds    = calloc((size_t)l.opts.nranks * 2 + 1 + (size_t)l.opts.nnodes,
                     sizeof(*pfds));
    l.chunk = l.opts.tag_output ? malloc(LAUNCH_READ_CHUNK) : NULL;
    if ((l.ranks == NULL) || (pfds == NULL) ||
        (l.opts.tag_output && (l.chunk == NULL))) {
        fprintf(stderr, "scomm launch: out of memory\n");
        free(pfds);
        launch_free(&l);
        return 1;
    }
    for (r = 0; r < l.opts.nranks; r++) {
        l.ranks[r].stream[0].fd = -1;
        l.ranks[r].stream[1].fd = -1;
    }
    if (pipe2(l.wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        fprintf(stderr, "scomm launch: pipe: %s\n", strerror(errno));
        l.wake_pipe[0] = -1;
        free(pfds);
        launch_free(&l);
        return 1;
    }
    launch_raise_nofile(&l);
    launch_bind_prepare(&l);
    if (l.opts.nnodes > 1) {
        /* Before any handler is installed: an interrupt during the join
         * ends the launcher, and the others see it gone. */
        launch_ctl_cfg_t cc = {
            .nnodes = l.opts.nnodes, .node_rank = l.opts.node_rank,
            .nproc = l.opts.nranks, .master_addr = l.opts.master_addr,
            .port = l.opts.master_port + 1, .token = l.token,
            .join_timeout = l.opts.join_timeout};

        if (launch_ctl_join(&cc, &l.ctl) != 0) {
            free(pfds);
            launch_free(&l);
            return 1;
        }
    }

    /* Keep the handlers from running between fork and exec (note 6). */
    sigemptyset(&block);
    sigaddset(&block, SIGCHLD);
    for (k = 0; k < LAUNCH_NFWD; k++) {
        sigaddset(&block, launch_fwd_sigs[k]);
    }
    sigprocmask(SIG_BLOCK, &block, &l.old_mask);
    launch_install_signals(&l);
    fflush(NULL);

    for (r = 0; r < l.opts.nranks; r++) {
        if (launch_start_rank(&l, r) != 0) {
            char what[64];

            snprintf(what, sizeof(what), "rank %d could not be started",
                     l.base + r);
            launch_fail(&l, 1, what);
            break;
        }
    }
    sigprocmask(SIG_SETMASK, &l.old_mask, NULL);

    launch_loop(&l, pfds);
    launch_drain_output(&l);
    launch_finish(&l);

    launch_restore_signals(&l);
    launch_wake_fd = -1;
    free(pfds);
    launch_free(&l);

    if (l.timed_out) {
        return 124;
    }
    if (l.exit_code >= 0) {
        return l.exit_code;
    }
    if (l.got_signal != 0) {
        return 128 + l.got_signal;
    }
    return 0;
}
