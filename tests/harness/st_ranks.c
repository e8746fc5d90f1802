/*
 * st_ranks.c - the multi-rank test runner: fork N ranks of one test
 * function, give each the scomm bootstrap environment, wait for them with a
 * deadline, and turn their exit statuses into one test result. Also the
 * deterministic data patterns the tests use to check payloads.
 *
 * Design notes (invariants):
 *
 *  1. All ranks share one new process group whose id is the pid of rank 0;
 *     the test program itself stays outside it. Signalling the group
 *     reaches everything the ranks started, so a rank killed on timeout
 *     leaves no grandchildren behind.
 *  2. Rank 0, the group leader, is reaped last: its exit is observed with
 *     waitid(WNOWAIT) and the zombie is collected only after the final
 *     SIGKILL to the group. A zombie leader keeps the group id reserved, so
 *     the id can never name an unrelated, newer group.
 *  3. Only the ranks' own pids are waited for, never -1, so the runner
 *     does not steal the exit status of other children of the test
 *     program (for instance orphans it adopts as a subreaper).
 *  4. The runner installs no signal handler: it blocks SIGCHLD (with its
 *     default disposition) while the ranks run and sleeps in sigtimedwait()
 *     until a rank exits or the deadline comes, then puts the caller's
 *     mask and SIGCHLD disposition back. Each rank starts with the
 *     caller's mask.
 *  5. stdio is flushed before fork() and before a rank exits, so output is
 *     neither duplicated nor lost.
 *  6. The rendezvous port stays reserved (st_reserve_port) from the pick
 *     until every rank is gone: no other program is handed it meanwhile,
 *     so rank 0's bind cannot lose it to a test running beside this one.
 */
#include "st_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>

#define ST_TOKEN_BYTES 16

typedef struct {
    pid_t pid;      /* 0 until forked */
    int   running;  /* forked and its exit not yet observed */
    int   reaped;   /* the zombie has been collected */
    int   code;     /* CLD_EXITED, CLD_KILLED or CLD_DUMPED */
    int   status;   /* exit status or signal number */
} st_rank_t;

/* One run of st_run_ranks(). */
typedef struct {
    int              nranks;
    st_rank_t       *ranks;
    pid_t            pgid;                 /* 0 until rank 0 is forked */
    char             port[16];
    char             token[2 * ST_TOKEN_BYTES + 1];
    st_rank_fn       fn;
    void            *arg;
    int              victim;               /* rank allowed to die, or -1 */
    sigset_t         old_mask;             /* the caller's, for the ranks */
    struct sigaction old_chld;             /* the caller's SIGCHLD action */
} st_job_t;

static int64_t st_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * A TCP port on 127.0.0.1 reserved for rank 0's rendezvous: a socket bound
 * to port 0 with SO_REUSEADDR and never listening, kept open (*fd) while
 * the ranks run. Rank 0's listener (SO_REUSEADDR too, scomm_sock_listen)
 * may bind the same port; nobody else's bind(0) or connect() is handed a
 * port that a socket holds, so no other test can take it between the
 * pick and rank 0's bind. -1 on error.
 */
static int st_reserve_port(int *fd)
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
static int st_make_token(char *hex)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char     raw[ST_TOKEN_BYTES];
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

static void st_setenv_int(const char *name, int v)
{
    char buf[16];

    snprintf(buf, sizeof(buf), "%d", v);
    setenv(name, buf, 1);
}

/* In the child: become rank `rank`, run the test body, exit; never returns. */
static void st_rank_main(const st_job_t *job, int rank)
{
    int ret;

    if (setpgid(0, (rank == 0) ? 0 : job->pgid) != 0) {
        fprintf(stderr, "rank %d: cannot join the process group of the "
                "ranks: %s\n", rank, strerror(errno));
        _exit(1);
    }
    sigaction(SIGCHLD, &job->old_chld, NULL);
    sigprocmask(SIG_SETMASK, &job->old_mask, NULL);
    st_setenv_int("SCOMM_RANK", rank);
    st_setenv_int("SCOMM_WORLD_SIZE", job->nranks);
    st_setenv_int("SCOMM_LOCAL_RANK", rank);
    st_setenv_int("SCOMM_LOCAL_SIZE", job->nranks);
    setenv("SCOMM_MASTER_ADDR", "127.0.0.1", 1);
    setenv("SCOMM_MASTER_PORT", job->port, 1);
    setenv("SCOMM_JOB_TOKEN", job->token, 1);

    ret = job->fn(rank, job->nranks, job->arg);
    fflush(NULL);
    _exit(((ret >= 0) && (ret <= 255)) ? ret : 1);
}

/* Send sig to the group and to every rank whose exit is not yet seen. */
static void st_signal_ranks(const st_job_t *job, int sig)
{
    int r;

    if (job->pgid > 0) {
        (void)killpg(job->pgid, sig);
    }
    for (r = 0; r < job->nranks; r++) {
        if (job->ranks[r].running) {
            (void)kill(job->ranks[r].pid, sig);
        }
    }
}

/* Observe the ranks that have exited (rank 0 stays a zombie, note 2). */
static int st_reap(st_job_t *job, int block)
{
    int nrunning = 0;
    int r;

    for (r = 0; r < job->nranks; r++) {
        st_rank_t *rk    = &job->ranks[r];
        int        flags = WEXITED | (block ? 0 : WNOHANG);
        siginfo_t  si;
        int        rc;

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
        if (rc != 0) {
            /* ECHILD: someone else reaped it; its status is lost. */
            rk->running = 0;
            rk->reaped  = 1;
            rk->code    = CLD_EXITED;
            rk->status  = 1;
            fprintf(stderr, "rank %d: exit status lost (%s)\n", r,
                    strerror(errno));
            continue;
        }
        if (si.si_pid != rk->pid) {
            nrunning++;
            continue;
        }
        rk->running = 0;
        rk->reaped  = (r != 0);
        rk->code    = si.si_code;
        rk->status  = si.si_status;
    }
    return nrunning;
}

/* Every rank but the victim has exited. */
static int st_only_victim_left(const st_job_t *job)
{
    int r;

    for (r = 0; r < job->nranks; r++) {
        if ((r != job->victim) && job->ranks[r].running) {
            return 0;
        }
    }
    return 1;
}

/* Wait for every rank until the deadline (0: none); 1 if it timed out. */
static int st_wait_ranks(st_job_t *job, int timeout_sec)
{
    int64_t  deadline = 0;
    sigset_t chld;

    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    if (timeout_sec > 0) {
        deadline = st_now_ms() + (int64_t)timeout_sec * 1000;
    }
    for (;;) {
        struct timespec ts;
        int64_t         wait_ms = 100;
        int             r;

        if (st_reap(job, 0) == 0) {
            return 0;
        }
        if ((job->victim >= 0) && st_only_victim_left(job)) {
            return 0; /* the caller kills the stopped victim */
        }
        if (deadline > 0) {
            int64_t now = st_now_ms();

            if (now >= deadline) {
                fprintf(stderr, "st_run_ranks: timeout after %d s; ranks "
                        "still running:", timeout_sec);
                for (r = 0; r < job->nranks; r++) {
                    if (job->ranks[r].running) {
                        fprintf(stderr, " %d", r);
                    }
                }
                fputc('\n', stderr);
                st_signal_ranks(job, SIGKILL);
                (void)st_reap(job, 1);
                return 1;
            }
            if (deadline - now < wait_ms) {
                wait_ms = deadline - now;
            }
        }
        /* A SIGCHLD pending from an earlier exit only makes this return
         * early; the polling interval bounds the wait either way. */
        ts.tv_sec  = (time_t)(wait_ms / 1000);
        ts.tv_nsec = (long)(wait_ms % 1000) * 1000000L;
        (void)sigtimedwait(&chld, NULL, &ts);
    }
}

/* Fork the ranks; 0 on success, -1 (ranks already started are killed). */
static int st_start_ranks(st_job_t *job)
{
    int r;

    for (r = 0; r < job->nranks; r++) {
        pid_t pid = fork();

        if (pid < 0) {
            fprintf(stderr, "st_run_ranks: cannot fork rank %d: %s\n", r,
                    strerror(errno));
            st_signal_ranks(job, SIGKILL);
            return -1;
        }
        if (pid == 0) {
            st_rank_main(job, r);
        }
        /* Both sides call setpgid so the group exists before it is
         * signalled; the parent's call fails harmlessly if the child has
         * already exited. */
        if (r == 0) {
            job->pgid = pid;
        }
        (void)setpgid(pid, job->pgid);
        job->ranks[r].pid     = pid;
        job->ranks[r].running = 1;
    }
    return 0;
}

/* Print one line per failed rank; the run's result (0, 77 or 1). */
static int st_summarize(const st_job_t *job, int failed)
{
    int skipped = 0;
    int r;

    for (r = 0; r < job->nranks; r++) {
        const st_rank_t *rk = &job->ranks[r];

        if ((rk->pid == 0) || (r == job->victim)) {
            continue;
        }
        if (rk->code == CLD_EXITED) {
            if (rk->status == ST_EXIT_SKIP) {
                skipped = 1;
            } else if (rk->status != 0) {
                fprintf(stderr, "rank %d: exit %d\n", r, rk->status);
                failed = 1;
            }
        } else {
            fprintf(stderr, "rank %d: killed by signal %d%s\n", r,
                    rk->status,
                    (rk->code == CLD_DUMPED) ? " (core dumped)" : "");
            failed = 1;
        }
    }
    fflush(stderr);
    if (failed) {
        return 1;
    }
    return skipped ? ST_EXIT_SKIP : 0;
}

int st_run_ranks(int nranks, st_rank_fn fn, void *arg, int timeout_sec)
{
    return st_run_ranks_victim(nranks, fn, arg, timeout_sec, -1);
}

int st_run_ranks_victim(int nranks, st_rank_fn fn, void *arg,
                        int timeout_sec, int victim)
{
    st_job_t         job;
    struct sigaction dfl;
    struct timespec  zero = {0, 0};
    sigset_t         chld;
    int              port;
    int              port_fd = -1;
    int              failed;
    int              result;
    int              r;

    if ((nranks < 1) || (nranks > ST_MAX_RANKS) || (fn == NULL)) {
        fprintf(stderr, "st_run_ranks: need 1..%d ranks and a rank function "
                "(got %d ranks)\n", ST_MAX_RANKS, nranks);
        return 1;
    }
    memset(&job, 0, sizeof(job));
    job.nranks = nranks;
    job.victim = victim;
    job.fn     = fn;
    job.arg    = arg;
    if (st_make_token(job.token) != 0) {
        fprintf(stderr, "st_run_ranks: getrandom failed: %s\n",
                strerror(errno));
        return 1;
    }
    job.ranks = calloc((size_t)nranks, sizeof(*job.ranks));
    if (job.ranks == NULL) {
        fprintf(stderr, "st_run_ranks: out of memory\n");
        return 1;
    }
    port = st_reserve_port(&port_fd);
    if (port <= 0) {
        fprintf(stderr, "st_run_ranks: cannot reserve a port on 127.0.0.1: "
                "%s\n", strerror(errno));
        free(job.ranks);
        return 1;
    }
    snprintf(job.port, sizeof(job.port), "%d", port);

    /* A caller that ignores SIGCHLD would have the ranks reaped by the
     * kernel and their statuses lost; use the default for the run. */
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGCHLD, &dfl, &job.old_chld);
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &job.old_mask);
    fflush(NULL);

    failed = (st_start_ranks(&job) != 0);
    if (st_wait_ranks(&job, timeout_sec) != 0) {
        failed = 1;
    }

    /* Nothing the ranks started may outlive the test (note 1); then the
     * group leader can go (note 2). */
    if (job.pgid > 0) {
        (void)killpg(job.pgid, SIGKILL);
    }
    for (r = 0; r < nranks; r++) {
        st_rank_t *rk = &job.ranks[r];

        if ((rk->pid > 0) && !rk->reaped) {
            while ((waitpid(rk->pid, NULL, 0) < 0) && (errno == EINTR)) {
            }
            rk->reaped = 1;
        }
    }
    while (sigtimedwait(&chld, NULL, &zero) == SIGCHLD) {
    }
    sigprocmask(SIG_SETMASK, &job.old_mask, NULL);
    sigaction(SIGCHLD, &job.old_chld, NULL);

    close(port_fd); /* the rendezvous port is free again (note 6) */
    result = st_summarize(&job, failed);
    free(job.ranks);
    return result;
}

/* Parse a whole decimal number in [min, max]; -1 when s is not one. */
static int st_parse_int(const char *s, long min, long max, int *out)
{
    char *end = NULL;
    long  v;

    if ((s == NULL) || (*s == '\0')) {
        return -1;
    }
    errno = 0;
    v = strtol(s, &end, 10);
    if ((errno != 0) || (*end != '\0') || (v < min) || (v > max)) {
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* The first of the named variables that is set, as an int; -1 if none. */
static int st_env_int(const char *const *names)
{
    const char *v;
    int out;

    for (; *names != NULL; names++) {
        v = getenv(*names);
        if ((v != NULL) && (v[0] != '\0') &&
            (st_parse_int(v, 0, ST_MAX_RANKS, &out) == 0)) {
            return out;
        }
    }
    return -1;
}

/*
 * --from-env: this process is one rank started by somebody else (mpirun,
 * srun, torchrun, the namespace cluster); rank and size come from the
 * launcher's variables, as scomm_init_from_env reads them.
 */
static int st_main_from_env(const char *prog, st_rank_fn fn, void *arg)
{
    static const char *const rank_vars[] = {
        "SCOMM_RANK", "RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK",
        "SLURM_PROCID", NULL
    };
    static const char *const size_vars[] = {
        "SCOMM_WORLD_SIZE", "WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE",
        "SLURM_NTASKS", NULL
    };
    int rank = st_env_int(rank_vars), size = st_env_int(size_vars);

    if ((rank < 0) || (size < 1) || (rank >= size)) {
        fprintf(stderr, "%s --from-env: no launcher rank/size in the "
                "environment (SCOMM_RANK/RANK/OMPI_COMM_WORLD_RANK/PMI_RANK/"
                "SLURM_PROCID and the matching size)\n", prog);
        return 2;
    }
    if (getenv("SCOMM_RANK") == NULL) {
        char buf[16];

        snprintf(buf, sizeof(buf), "%d", rank); /* for st__fail's prefix */
        setenv("SCOMM_RANK", buf, 0);
    }
    return fn(rank, size, arg);
}

int st_main_ranks(int argc, char **argv, st_rank_fn fn, void *arg)
{
    const char *prog    = ((argc > 0) && (argv[0] != NULL)) ? argv[0] : "test";
    int         nranks  = 2;
    int         timeout = 60;
    int         i;

    if ((argc == 2) && (strcmp(argv[1], "--from-env") == 0)) {
        return st_main_from_env(prog, fn, arg);
    }
    for (i = 1; i < argc; i++) {
        const char *a   = argv[i];
        const char *val = NULL;
        int         bad = 0;

        if ((strcmp(a, "-n") == 0) || (strcmp(a, "-t") == 0)) {
            val = (i + 1 < argc) ? argv[++i] : NULL;
        } else if (((strncmp(a, "-n", 2) == 0) || (strncmp(a, "-t", 2) == 0)) &&
                   (a[2] != '\0')) {
            val = a + 2;
        } else {
            bad = 1;
        }
        if (!bad && (a[1] == 'n')) {
            bad = (st_parse_int(val, 1, ST_MAX_RANKS, &nranks) != 0);
        } else if (!bad) {
            bad = (st_parse_int(val, 0, 86400, &timeout) != 0);
        }
        if (bad) {
            fprintf(stderr, "%s: bad argument '%s'\n"
                    "usage: %s [-n RANKS (1..%d, default 2)] "
                    "[-t TIMEOUT_SEC (0 = none, default 60)] | --from-env\n",
                    prog, a, prog, ST_MAX_RANKS);
            return 2;
        }
    }
    return st_run_ranks(nranks, fn, arg, timeout);
}

const char *st_getenv_default(const char *name, const char *def)
{
    const char *v = (name != NULL) ? getenv(name) : NULL;

    return ((v != NULL) && (v[0] != '\0')) ? v : def;
}

/* ------------------------------------------------------------------------ */
/* Data patterns                                                             */
/* ------------------------------------------------------------------------ */

/*
 * Word w of the pattern: the splitmix64 output for state
 * seed + (w + 1) * golden gamma. Each word is independent of the others,
 * so any part of a buffer can be generated or checked on its own.
 */
static inline uint64_t st_pattern_word(uint64_t seed, uint64_t w)
{
    uint64_t z = seed + (w + 1) * UINT64_C(0x9e3779b97f4a7c15);

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

void st_fill_pattern(void *buf, size_t bytes, uint64_t seed)
{
    unsigned char *p     = buf;
    size_t         words = bytes / 8;
    size_t         w;
    size_t         k;

    for (w = 0; w < words; w++) {
        uint64_t v = st_pattern_word(seed, w);

        for (k = 0; k < 8; k++) {
            p[8 * w + k] = (unsigned char)(v >> (8 * k));
        }
    }
    if (bytes % 8 != 0) {
        uint64_t v = st_pattern_word(seed, words);

        for (k = 0; k < bytes % 8; k++) {
            p[8 * words + k] = (unsigned char)(v >> (8 * k));
        }
    }
}

size_t st_check_pattern(const void *buf, size_t bytes, uint64_t seed)
{
    const unsigned char *p     = buf;
    size_t               words = (bytes + 7) / 8;
    size_t               w;
    size_t               k;

    for (w = 0; w < words; w++) {
        uint64_t v    = st_pattern_word(seed, w);
        size_t   base = 8 * w;
        size_t   n    = (bytes - base < 8) ? bytes - base : 8;
        uint64_t got  = 0;
        uint64_t want = v;

        /* Compare the whole word first; locate the byte only on mismatch. */
        for (k = 0; k < n; k++) {
            got |= (uint64_t)p[base + k] << (8 * k);
        }
        if (n < 8) {
            want &= (UINT64_C(1) << (8 * n)) - 1;
        }
        if (got != want) {
            for (k = 0; k < n; k++) {
                if (p[base + k] != (unsigned char)(v >> (8 * k))) {
                    return base + k;
                }
            }
        }
    }
    return SIZE_MAX;
}
