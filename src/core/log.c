/*
 * log.c - the log sink.
 *
 * SCOMM_LOG_LEVEL (none|error|warn|info|debug|trace, default warn),
 * SCOMM_LOG_SUBSYS (comma list, "^" prefix excludes: "coll,tcp", "^prog"),
 * SCOMM_LOG_FILE (path; %h expands to the host name, %p to the pid): rows
 * of the registry (core/config.h), read once, on the first scomm_init() or
 * explicit scomm_log_init().
 * Lines are written with one write(2) each so ranks' lines never interleave
 * mid-line.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "module.h"
#include "util.h"

int scomm_log_level_g = SCOMM_LOG_WARN;
uint32_t scomm_log_mask_g = SCOMM_SUB_ALL;

static int scomm_log_fd = 2;
static _Thread_local int scomm_log_rank = -1;
static char scomm_log_host[64] = "?";
static pthread_once_t scomm_log_once = PTHREAD_ONCE_INIT;

static const struct {
    const char *name;
    uint32_t bit;
} scomm_log_subsys_names[] = {
    {"init", SCOMM_SUB_INIT}, {"boot", SCOMM_SUB_BOOT},
    {"tl", SCOMM_SUB_TL},     {"shm", SCOMM_SUB_SHM},
    {"tcp", SCOMM_SUB_TCP},   {"rdma", SCOMM_SUB_RDMA},
    {"coll", SCOMM_SUB_COLL}, {"topo", SCOMM_SUB_TOPO},
    {"kv", SCOMM_SUB_KV},     {"prog", SCOMM_SUB_PROG},
    {"env", SCOMM_SUB_ENV},   {"telem", SCOMM_SUB_TELEM},
    {"p2p", SCOMM_SUB_P2P},   {"all", SCOMM_SUB_ALL},
};

static const scomm_param_t scomm_log_params[] = {
    /* The words in the order of scomm_log_level_t. */
    {.name = "SCOMM_LOG_LEVEL", .defval = "warn", .type = SCOMM_PARAM_ENUM,
     .values = "none,error,warn|warning,info,debug,trace",
     .help = "least severe level logged (trace needs a build with "
             "-DSCOMM_ENABLE_TRACE=ON)"},
    {.name = "SCOMM_LOG_SUBSYS", .defval = "all", .type = SCOMM_PARAM_LIST,
     .values = "init,boot,tl,shm,tcp,rdma,coll,topo,kv,prog,env,telem,p2p,"
               "all",
     .max = 255, .flags = SCOMM_PARAM_F_CARET,
     .help = "subsystems logged: \"coll,tcp\", or \"^prog\" for all but "
             "prog"},
    {.name = "SCOMM_LOG_FILE", .defval = "", .type = SCOMM_PARAM_STRING,
     .max = 400,
     .help = "log to this file (%h: host name, %p: pid) instead of "
             "stderr"},
};

const scomm_module_t scomm_module_log = {
    .name    = "log",
    .params  = scomm_log_params,
    .nparams = SCOMM_ARRAY_SIZE(scomm_log_params),
};

static const char *scomm_log_level_names[] = {
    "NONE", "ERROR", "WARN", "INFO", "DEBUG", "TRACE"
};

int scomm_log_parse_level(const char *text)
{
    int i;

    for (i = 0; i <= SCOMM_LOG_TRACE; i++) {
        if (strcasecmp(text, scomm_log_level_names[i]) == 0) {
            return i;
        }
    }
    if (strcasecmp(text, "warning") == 0) {
        return SCOMM_LOG_WARN;
    }
    return -1;
}

static uint32_t scomm_log_parse_mask(const char *text)
{
    uint32_t mask = 0;
    int negate    = 0;
    char buf[256];
    char *tok, *save = NULL;
    size_t i;

    if (text[0] == '^') {
        negate = 1;
        text++;
    }
    snprintf(buf, sizeof(buf), "%s", text);
    for (tok = strtok_r(buf, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        for (i = 0; i < sizeof(scomm_log_subsys_names) /
                            sizeof(scomm_log_subsys_names[0]); i++) {
            if (strcasecmp(tok, scomm_log_subsys_names[i].name) == 0) {
                mask |= scomm_log_subsys_names[i].bit;
            }
        }
    }
    return negate ? ~mask : mask;
}

static const char *scomm_log_subsys_name(uint32_t bit)
{
    size_t i;

    for (i = 0; i < sizeof(scomm_log_subsys_names) /
                        sizeof(scomm_log_subsys_names[0]); i++) {
        if (scomm_log_subsys_names[i].bit == bit) {
            return scomm_log_subsys_names[i].name;
        }
    }
    return "?";
}

static void scomm_log_open_file(const char *pattern)
{
    char path[512];
    size_t o = 0;
    const char *p;
    int fd;

    for (p = pattern; (*p != '\0') && (o + 32 < sizeof(path)); p++) {
        if ((p[0] == '%') && (p[1] == 'h')) {
            o += (size_t)snprintf(path + o, sizeof(path) - o, "%s",
                                  scomm_log_host);
            p++;
        } else if ((p[0] == '%') && (p[1] == 'p')) {
            o += (size_t)snprintf(path + o, sizeof(path) - o, "%d",
                                  (int)getpid());
            p++;
        } else {
            path[o++] = *p;
        }
    }
    path[o] = '\0';
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) {
        scomm_log_fd = fd;
    }
}

static void scomm_log_do_init(void)
{
    scomm_pval_t v;

    if (gethostname(scomm_log_host, sizeof(scomm_log_host)) != 0) {
        snprintf(scomm_log_host, sizeof(scomm_log_host), "?");
    }
    scomm_log_host[sizeof(scomm_log_host) - 1] = '\0';
    scomm_param_get_or_warn("SCOMM_LOG_LEVEL", &v);
    scomm_log_level_g = (int)v.i;
    scomm_param_get_or_warn("SCOMM_LOG_SUBSYS", &v);
    scomm_log_mask_g = scomm_log_parse_mask(v.text);
    scomm_param_get_or_warn("SCOMM_LOG_FILE", &v);
    if (v.text[0] != '\0') {
        scomm_log_open_file(v.text);
    }
}

void scomm_log_init(void)
{
    pthread_once(&scomm_log_once, scomm_log_do_init);
}

void scomm_log_set_rank(int rank)
{
    scomm_log_rank = rank;
}

void scomm_log_emit(scomm_log_level_t level, scomm_log_subsys_t sub,
                    const char *file, int line, const char *fmt, ...)
{
    char buf[1024];
    const char *base = strrchr(file, '/');
    int n, m;
    va_list ap;

    base = (base != NULL) ? base + 1 : file;
    n = snprintf(buf, sizeof(buf), "%s:%d:%d [%s] %s %s:%d ", scomm_log_host,
                 (int)getpid(), scomm_log_rank, scomm_log_subsys_name(sub),
                 scomm_log_level_names[level], base, line);
    if ((n < 0) || ((size_t)n >= sizeof(buf))) {
        return;
    }
    va_start(ap, fmt);
    m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0) {
        return;
    }
    n += m;
    if ((size_t)n > sizeof(buf) - 2) {
        n = (int)sizeof(buf) - 2;
    }
    buf[n++] = '\n';
    if (write(scomm_log_fd, buf, (size_t)n) < 0) {
        /* Nothing sensible to do when the log sink itself fails. */
    }
}
