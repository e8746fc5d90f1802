/*
 * test_config.c - the configuration registry (src/core/config.h): the
 * tables reached through scomm_modules[] (unique names, defaults that
 * parse, coll's algorithm words equal to the algorithm table), each type's
 * parser and its messages (source, variable, value, what is accepted),
 * precedence environment > SCOMM_CONF_FILE > preset > default, presets
 * applied through the registry, and the unknown-variable warning with the
 * closest known name, once per name, for prefixes that used to be exempt.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coll/coll.h"
#include "core/config.h"
#include "core/log.h"
#include "core/module.h"
#include "scomm.h"
#include "st_test.h"
#include "topo/preset.h"

static char conf_path[] = "/tmp/scomm-test-config-XXXXXX";
static char log_path[]  = "/tmp/scomm-test-config-log-XXXXXX";

/* err must contain want. */
static void has(const char *err, const char *want)
{
    if (strstr(err, want) == NULL) {
        fprintf(stderr, "expected '%s' in: %s\n", want, err);
        ST_ASSERT(strstr(err, want) != NULL);
    }
}

static void write_conf(const char *text)
{
    FILE *f = fopen(conf_path, "w");

    ST_ASSERT(f != NULL);
    fputs(text, f);
    fclose(f);
    setenv("SCOMM_CONF_FILE", conf_path, 1);
}

/* name = value from the environment must be refused with want in err. */
static void refused(const char *name, const char *value, const char *want)
{
    char err[512] = "";
    scomm_pval_t v;

    setenv(name, value, 1);
    ST_ASSERT_STATUS(scomm_param_get(name, NULL, &v, err, sizeof(err)),
                     SCOMM_ERR_BAD_CONFIG);
    has(err, want);
    ST_ASSERT(v.src == SCOMM_PARAM_SRC_DEFAULT); /* the default instead */
    unsetenv(name);
}

static scomm_pval_t get(const char *name, const scomm_param_layer_t *l)
{
    char err[512] = "";
    scomm_pval_t v;

    if (scomm_param_get(name, l, &v, err, sizeof(err)) != SCOMM_OK) {
        fprintf(stderr, "%s: %s\n", name, err);
        ST_ASSERT(0);
    }
    return v;
}

static void test_tables(void)
{
    const scomm_module_t *m, *m2;
    const scomm_param_t *p;
    size_t i, j, k, l;

    for (i = 0; i < scomm_nmodules; i++) {
        m = scomm_modules[i];
        ST_ASSERT((m->name != NULL) && (m->nparams > 0));
        for (j = 0; j < m->nparams; j++) {
            p = &m->params[j];
            ST_ASSERT((p->help != NULL) && (p->help[0] != '\0'));
            ST_ASSERT((p->type != SCOMM_PARAM_ENUM) || (p->values != NULL));
            ST_ASSERT((p->type != SCOMM_PARAM_LIST) || (p->values != NULL));
            ST_ASSERT(scomm_param_find(p->name) == p);
            /* every default parses, and nothing set means the default */
            unsetenv(p->name);
            ST_ASSERT(get(p->name, NULL).src == SCOMM_PARAM_SRC_DEFAULT);
            for (k = i; k < scomm_nmodules; k++) {
                m2 = scomm_modules[k];
                ST_ASSERT((k == i) || (strcmp(m->name, m2->name) != 0));
                for (l = (k == i) ? j + 1 : 0; l < m2->nparams; l++) {
                    ST_ASSERT(strcmp(p->name, m2->params[l].name) != 0);
                }
            }
        }
    }
    ST_ASSERT(scomm_param_find("TCP_NSOCKS") ==
              scomm_param_find("SCOMM_TCP_NSOCKS"));
    ST_ASSERT(scomm_param_find("NO_SUCH_KNOB") == NULL);
}

/* SCOMM_COLL_<OP>_ALGO's words are op's algorithms, in table order (the
 * selector maps the ENUM index with scomm_coll_algo_name). */
static void test_coll_words(void)
{
    char name[64], words[512];
    const scomm_param_t *p;
    const char *opname;
    size_t o;
    int op, i;

    for (op = 0; op < SCOMM_COLL_OP_COUNT; op++) {
        opname = scomm_coll_op_name((scomm_coll_op_t)op);
        o      = (size_t)snprintf(name, sizeof(name), "SCOMM_COLL_");
        for (; *opname != '\0'; opname++) {
            if (*opname != '_') {
                name[o++] = (char)(*opname - 'a' + 'A');
            }
        }
        snprintf(name + o, sizeof(name) - o, "_ALGO");
        p = scomm_param_find(name);
        ST_ASSERT((p != NULL) && (p->type == SCOMM_PARAM_ENUM));
        words[0] = '\0';
        for (i = 0; i < scomm_coll_algo_count((scomm_coll_op_t)op); i++) {
            snprintf(words + strlen(words), sizeof(words) - strlen(words),
                     "%s%s", (i > 0) ? "," : "",
                     scomm_coll_algo_name((scomm_coll_op_t)op, i));
        }
        if (strcmp(words, p->values) != 0) {
            fprintf(stderr, "%s: table %s, row %s\n", name, words, p->values);
            ST_ASSERT(0);
        }
    }
}

static void test_types(void)
{
    char err[512];
    scomm_pval_t v;

    refused("SCOMM_TCP_NSOCKS", "99",
            "environment: SCOMM_TCP_NSOCKS='99' is not an integer in 1..16");
    refused("SCOMM_TIMEOUT_MS", "soon", "an integer >= 1");
    refused("SCOMM_SHM_RING_SIZE", "1", "a size in 16k..1g");
    refused("SCOMM_SHM_RING_SIZE", "12x", "SCOMM_SHM_RING_SIZE='12x'");
    refused("SCOMM_CHECK", "perhaps", "is not a boolean");
    refused("SCOMM_PROGRESS", "eventually", "is not one of thread, inline");
    refused("SCOMM_TRANSPORTS", "tcp,ib", "'ib' is unknown");
    refused("SCOMM_METRICS_ADDR", "0123456789012345678901234567890123456789"
            "012345678901234567890123456789", "longer than 63 bytes");
    refused("SCOMM_RANK", "-1", "SCOMM_RANK='-1'");

    setenv("SCOMM_KV_CHUNK_SIZE", "4MiB", 1);
    ST_ASSERT_EQ(get("SCOMM_KV_CHUNK_SIZE", NULL).u, 4 << 20);
    setenv("SCOMM_KV_CHUNK_SIZE", "64k", 1);
    ST_ASSERT_EQ(get("SCOMM_KV_CHUNK_SIZE", NULL).u, 64 << 10);
    unsetenv("SCOMM_KV_CHUNK_SIZE");
    setenv("SCOMM_LOG_LEVEL", "WARNING", 1); /* any case; a second spelling */
    ST_ASSERT_EQ(get("SCOMM_LOG_LEVEL", NULL).i, SCOMM_LOG_WARN);
    setenv("SCOMM_LOG_LEVEL", "debug", 1);
    ST_ASSERT_EQ(get("SCOMM_LOG_LEVEL", NULL).i, SCOMM_LOG_DEBUG);
    unsetenv("SCOMM_LOG_LEVEL");
    setenv("SCOMM_KV_TARGET_DTYPE", "bf16", 1);
    ST_ASSERT_EQ(get("SCOMM_KV_TARGET_DTYPE", NULL).i,
                 SCOMM_PRESET_DTYPE_NATIVE);
    setenv("SCOMM_KV_TARGET_DTYPE", "int4", 1);
    ST_ASSERT_EQ(get("SCOMM_KV_TARGET_DTYPE", NULL).i,
                 SCOMM_PRESET_DTYPE_INT4);
    unsetenv("SCOMM_KV_TARGET_DTYPE");
    setenv("SCOMM_LOG_SUBSYS", "^prog,tcp", 1);
    ST_ASSERT(strcmp(get("SCOMM_LOG_SUBSYS", NULL).text, "^prog,tcp") == 0);
    unsetenv("SCOMM_LOG_SUBSYS");
    refused("SCOMM_TRANSPORTS", "^tcp", "'^tcp' is unknown");
    setenv("SCOMM_CHECK", "on", 1);
    ST_ASSERT_EQ(get("SCOMM_CHECK", NULL).i, 1);
    /* an empty value is no value */
    setenv("SCOMM_CHECK", "", 1);
    v = get("SCOMM_CHECK", NULL);
    ST_ASSERT((v.i == 0) && (v.src == SCOMM_PARAM_SRC_DEFAULT));
    unsetenv("SCOMM_CHECK");
    /* a name in no table is the caller's bug, not the user's */
    ST_ASSERT_STATUS(scomm_param_get("SCOMM_NO_SUCH", NULL, &v, err,
                                     sizeof(err)), SCOMM_ERR_INTERNAL);
    has(err, "SCOMM_NO_SUCH");
}

static void test_precedence(void)
{
    scomm_param_layer_t l;
    scomm_config_t cfg;
    scomm_preset_t p;
    scomm_pval_t v;
    char err[512];

    memset(&l, 0, sizeof(l));
    snprintf(l.name, sizeof(l.name), "preset lab");
    l.v[0].param = "SCOMM_KV_CHUNK_SIZE";
    snprintf(l.v[0].value, sizeof(l.v[0].value), "3m");
    l.n = 1;

    v = get("SCOMM_KV_CHUNK_SIZE", &l);
    ST_ASSERT((v.u == 3 << 20) && (v.src == SCOMM_PARAM_SRC_PRESET));
    write_conf("# file\nKV_CHUNK_SIZE=2m\n");
    v = get("SCOMM_KV_CHUNK_SIZE", &l);
    ST_ASSERT((v.u == 2 << 20) && (v.src == SCOMM_PARAM_SRC_FILE));
    setenv("SCOMM_KV_CHUNK_SIZE", "5m", 1);
    v = get("SCOMM_KV_CHUNK_SIZE", &l);
    ST_ASSERT((v.u == 5 << 20) && (v.src == SCOMM_PARAM_SRC_ENV));
    unsetenv("SCOMM_KV_CHUNK_SIZE");
    /* a preset's own value is checked like any other, naming the preset */
    snprintf(l.v[0].value, sizeof(l.v[0].value), "1");
    unsetenv("SCOMM_CONF_FILE");
    ST_ASSERT_STATUS(scomm_param_get("SCOMM_KV_CHUNK_SIZE", &l, &v, err,
                                     sizeof(err)), SCOMM_ERR_BAD_CONFIG);
    has(err, "preset lab: SCOMM_KV_CHUNK_SIZE='1'");

    /* presets through the registry: the file beats the preset, the
     * environment beats the file */
    write_conf("SCOMM_KV_CHUNK_SIZE=2m\nSCOMM_TCP_NSOCKS=5\n");
    ST_ASSERT_OK(scomm_preset_get("high-bw", NULL, &p));
    ST_ASSERT_EQ(p.chunk_size, 2 << 20);
    ST_ASSERT_EQ(p.tcp_nsocks, 5);
    ST_ASSERT_EQ(p.overlap_streams, 4); /* the preset's */
    setenv("SCOMM_TCP_NSOCKS", "6", 1);
    ST_ASSERT_OK(scomm_preset_get("high-bw", NULL, &p));
    ST_ASSERT_EQ(p.tcp_nsocks, 6);
    unsetenv("SCOMM_TCP_NSOCKS");
    /* a conversion asked for turns zero-copy off, unless asked for too */
    setenv("SCOMM_KV_TARGET_DTYPE", "fp8_e4m3", 1);
    ST_ASSERT_OK(scomm_preset_get("high-bw", NULL, &p));
    ST_ASSERT_EQ(p.zero_copy, 0);
    unsetenv("SCOMM_KV_TARGET_DTYPE");
    /* another codec: its default level */
    setenv("SCOMM_KV_COMPRESSION", "zstd", 1);
    ST_ASSERT_OK(scomm_preset_get("high-bw", NULL, &p));
    ST_ASSERT_EQ(p.compression_level, 3);
    unsetenv("SCOMM_KV_COMPRESSION");

    /* the world's knobs */
    write_conf("SCOMM_TCP_NSOCKS=3\nSCOMM_SPIN_US=7\nSCOMM_SHM_RING_SIZE=16k\n"
               "SCOMM_SHM_EAGER_MAX=1m\n");
    setenv("SCOMM_SPIN_US", "9", 1);
    ST_ASSERT_OK(scomm_config_load(&cfg, err, sizeof(err)));
    ST_ASSERT_EQ(cfg.tcp_nsocks, 3);
    ST_ASSERT_EQ(cfg.spin_us, 9);
    ST_ASSERT_EQ(cfg.shm_eager_max, 4096); /* a quarter of the ring */
    ST_ASSERT_EQ(cfg.timeout_ms, 300000);
    ST_ASSERT(strcmp(cfg.transports, "shm,tcp") == 0);
    unsetenv("SCOMM_SPIN_US");
    ST_ASSERT_STATUS(scomm_config_set(&cfg, "TCP_NSOCKS", "0", err,
                                      sizeof(err)), SCOMM_ERR_BAD_CONFIG);
    has(err, "api: SCOMM_TCP_NSOCKS='0'");
    ST_ASSERT_STATUS(scomm_config_set(&cfg, "SCOMM_KV_TOKEN", "x", err,
                                      sizeof(err)), SCOMM_ERR_INVALID_ARG);
    ST_ASSERT_OK(scomm_config_set(&cfg, "SCOMM_TCP_NSOCKS", "16", err,
                                  sizeof(err)));
    ST_ASSERT_EQ(cfg.tcp_nsocks, 16);
}

static void test_conf_file(void)
{
    char err[512], want[128];
    scomm_config_t cfg;
    scomm_pval_t v;

    /* every error names file:line */
    write_conf("SCOMM_SPIN_US=1\nSCOMM_TCP_NSOCK=3\n");
    ST_ASSERT_STATUS(scomm_param_get("SCOMM_SPIN_US", NULL, &v, err,
                                     sizeof(err)), SCOMM_ERR_BAD_CONFIG);
    snprintf(want, sizeof(want), "%s:2:1: unknown variable SCOMM_TCP_NSOCK "
             "(did you mean SCOMM_TCP_NSOCKS?)", conf_path);
    has(err, want);
    write_conf("SCOMM_RANK=3\n");
    ST_ASSERT_STATUS(scomm_config_load(&cfg, err, sizeof(err)),
                     SCOMM_ERR_BAD_CONFIG);
    has(err, ":1:1: SCOMM_RANK is read from the environment only");
    write_conf("\n\nSCOMM_KV_ZERO_COPY=perhaps\n");
    ST_ASSERT_STATUS(scomm_param_get("SCOMM_TIMEOUT_MS", NULL, &v, err,
                                     sizeof(err)), SCOMM_ERR_BAD_CONFIG);
    snprintf(want, sizeof(want), "%s:3: SCOMM_KV_ZERO_COPY='perhaps' is not "
             "a boolean", conf_path);
    has(err, want);
    /* rewritten in place: read again */
    write_conf("SCOMM_KV_TOKEN=from-the-file\nSCOMM_KV_TOKEN=\n"
               "SCOMM_ALGO=ring\n");
    ST_ASSERT(get("SCOMM_KV_TOKEN", NULL).src == SCOMM_PARAM_SRC_DEFAULT);
    v = get("SCOMM_ALGO", NULL);
    ST_ASSERT((strcmp(v.text, "ring") == 0) &&
              (v.src == SCOMM_PARAM_SRC_FILE));
    unlink(conf_path);
    ST_ASSERT_STATUS(scomm_param_get("SCOMM_ALGO", NULL, &v, err,
                                     sizeof(err)), SCOMM_ERR_BAD_CONFIG);
    has(err, "cannot open");
    unsetenv("SCOMM_CONF_FILE");
}

static void test_unknown(void)
{
    char text[8192];
    size_t n;
    FILE *f;

    ST_ASSERT(strcmp(scomm_param_closest("SCOMM_TCP_NSOCK"),
                     "SCOMM_TCP_NSOCKS") == 0);
    ST_ASSERT(strcmp(scomm_param_closest("SCOMM_LOG_LEVLE"),
                     "SCOMM_LOG_LEVEL") == 0);
    ST_ASSERT(scomm_param_closest("SCOMM_QQQQQQQQQQQQQQ") == NULL);

    /* names under prefixes that used to be exempt (KV_, TOPO, COLL_,
     * METRICS, TEST) are warned about too; each name once */
    setenv("SCOMM_KV_BAKEND", "tcp", 1);
    setenv("SCOMM_TOPO_FIEL", "x.json", 1);
    setenv("SCOMM_COLL_ALLREDUCE_ALGORITHM", "ring", 1);
    setenv("SCOMM_QQQQQQQQQQQQQQ", "1", 1);
    setenv("SCOMM_TEST_HUGE", "1", 1); /* registered: no warning */
    scomm_config_check_env();
    scomm_config_check_env();
    f = fopen(log_path, "r");
    ST_ASSERT(f != NULL);
    n       = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    has(text, "unknown variable SCOMM_KV_BAKEND ignored; did you mean "
        "SCOMM_KV_BACKEND?");
    has(text, "unknown variable SCOMM_TOPO_FIEL ignored; did you mean "
        "SCOMM_TOPO_FILE?");
    has(text, "unknown variable SCOMM_COLL_ALLREDUCE_ALGORITHM ignored; "
        "did you mean SCOMM_COLL_ALLREDUCE_ALGO?");
    has(text, "unknown variable SCOMM_QQQQQQQQQQQQQQ ignored (`scomm info "
        "-c`");
    ST_ASSERT(strstr(text, "SCOMM_TEST_HUGE") == NULL);
    ST_ASSERT(strstr(strstr(text, "SCOMM_KV_BAKEND") + 1,
                     "SCOMM_KV_BAKEND") == NULL);
    unsetenv("SCOMM_KV_BAKEND");
    unsetenv("SCOMM_TOPO_FIEL");
    unsetenv("SCOMM_COLL_ALLREDUCE_ALGORITHM");
    unsetenv("SCOMM_QQQQQQQQQQQQQQ");
    unsetenv("SCOMM_TEST_HUGE");
}

int main(void)
{
    extern char **environ;
    char name[128];
    size_t n;
    int fd;

    /* Nothing of the caller's: no SCOMM_* variable survives. */
    while (1) {
        char **e;

        for (e = environ; (*e != NULL) && (strncmp(*e, "SCOMM_", 6) != 0);
             e++) {
        }
        if (*e == NULL) {
            break;
        }
        n = strcspn(*e, "=");
        snprintf(name, sizeof(name), "%.*s", (int)n, *e);
        unsetenv(name);
    }
    fd = mkstemp(conf_path);
    ST_ASSERT(fd >= 0);
    close(fd);
    fd = mkstemp(log_path);
    ST_ASSERT(fd >= 0);
    close(fd);
    setenv("SCOMM_LOG_FILE", log_path, 1);
    scomm_log_init();
    unsetenv("SCOMM_LOG_FILE");

    test_unknown(); /* first: scomm_config_load checks once per process */
    test_tables();
    test_coll_words();
    test_types();
    test_precedence();
    test_conf_file();
    unlink(conf_path);
    unlink(log_path);
    printf("6 passed, 0 failed\n");
    return 0;
}
