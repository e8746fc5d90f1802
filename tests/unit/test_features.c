/*
 * test_features.c - scomm_build_features() and the optional libraries
 * (docs/design.md, "Dependencies"). For each library the call that needs
 * it either works (built in) or returns SCOMM_ERR_UNSUPPORTED with a
 * message that names what was asked for and the Debian package to
 * install (left out). The same program runs in the normal build
 * (unit.test_features) and in the minimal one (build.minimal), which
 * says which features it must find. Libraries: hwloc (an hwloc XML
 * topology; the machine from sysfs without it), libyaml (a preset file;
 * the built-in presets without it), jansson (reading a saved topology, a
 * selector policy file, also through SCOMM_SELECTOR_CONFIG on 2 ranks;
 * writing a topology without it), libmicrohttpd (SCOMM_METRICS_PORT at
 * scomm_init; the text format without it), zstd and lz4 (a KV endpoint
 * compressing with them, where the refusal comes at set-up).
 *
 * Usage: test_features SOURCE_DIR [FEATURES]
 *   FEATURES: the exact scomm_build_features() the build must report
 *   ("" for none); without it, any well-formed list is accepted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll/coll.h"
#include "scomm.h"
#include "st_test.h"
#include "topo/topo.h"
#include "transport/ofi.h"

static const char *const words[] = {"hwloc", "yaml", "jansson",
                                    "microhttpd", "zstd", "lz4", "ofi"};
static const char *src;

/* Is word one of scomm_build_features()'s words? */
static int have(const char *word)
{
    const char *f = scomm_build_features(), *p;
    size_t n = strlen(word);

    for (p = strstr(f, word); p != NULL; p = strstr(p + 1, word)) {
        if (((p == f) || (p[-1] == ' ')) &&
            ((p[n] == ' ') || (p[n] == '\0'))) {
            return 1;
        }
    }
    return 0;
}

/* status must be UNSUPPORTED and msg name every one of the strings. */
static void expect_missing(const char *what, int status, const char *msg,
                           const char *pkg, const char *names)
{
    if ((status != SCOMM_ERR_UNSUPPORTED) || (strstr(msg, pkg) == NULL) ||
        (strstr(msg, names) == NULL) || (strstr(msg, "rebuild") == NULL)) {
        fprintf(stderr, "%s: status %d (%s), message '%s'; wanted "
                "SCOMM_ERR_UNSUPPORTED naming '%s' and '%s'\n", what, status,
                scomm_status_name((scomm_status_t)status), msg, pkg, names);
        ST_ASSERT(0);
    }
    printf("%-10s left out: %s\n", what, msg);
}

/* The words are known ones, in the documented order, each once. */
static void test_string(const char *want)
{
    const char *f = scomm_build_features();
    char rebuilt[128] = "";
    size_t i;

    ST_ASSERT(f != NULL);
    ST_ASSERT(f == scomm_build_features()); /* static, the same each time */
    for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (have(words[i])) {
            if (rebuilt[0] != '\0') {
                strcat(rebuilt, " ");
            }
            strcat(rebuilt, words[i]);
        }
    }
    if (strcmp(rebuilt, f) != 0) {
        fprintf(stderr, "features '%s' are not known words in order\n", f);
        ST_ASSERT(0);
    }
    if ((want != NULL) && (strcmp(want, f) != 0)) {
        fprintf(stderr, "features '%s', this build should have '%s'\n", f,
                want);
        ST_ASSERT(0);
    }
    printf("features: '%s'\n", f);
}

static void test_hwloc(void)
{
    static scomm_topo_host_t h;
    char xml[512], root[512], err[512] = "";
    int st;

    /* the machine: hwloc, or the sysfs fallback */
    ST_ASSERT_OK(scomm_topo_discover(&h, NULL, "/", err, sizeof(err)));
    ST_ASSERT(strcmp(h.source, have("hwloc") ? "hwloc" : "sysfs") == 0);
    ST_ASSERT((h.pus > 0) && (h.cores > 0) && (h.numa_nodes > 0));
    snprintf(xml, sizeof(xml), "%s/tests/topo/fixtures/dgx/topo.xml", src);
    snprintf(root, sizeof(root), "%s/tests/topo/fixtures/dgx/root", src);
    st = scomm_topo_discover(&h, xml, root, err, sizeof(err));
    if (have("hwloc")) {
        ST_ASSERT_OK(st);
        ST_ASSERT(h.cores == 16);
        printf("%-10s built in\n", "hwloc");
    } else {
        expect_missing("hwloc", st, err, "libhwloc-dev", xml);
    }
}

static void test_yaml(void)
{
    char path[512];
    scomm_preset_t p;
    int st;

    /* the built-in presets need no file */
    ST_ASSERT_OK(scomm_preset_get("low-cost", NULL, &p));
    ST_ASSERT(p.compression == SCOMM_PRESET_COMPRESS_LZ4);
    snprintf(path, sizeof(path), "%s/config/kv_transport_presets.yaml", src);
    st = scomm_preset_get("high-bw", path, &p);
    if (have("yaml")) {
        ST_ASSERT_OK(st);
        printf("%-10s built in\n", "yaml");
    } else {
        expect_missing("yaml", st, scomm_last_error(), "libyaml-dev", path);
    }
}

static void test_jansson(void)
{
    static const char pol_text[] =
        "{\"version\": 1, \"rules\": [{\"op\": \"all_reduce\", "
        "\"algo\": \"ring\"}]}";
    static const char head[] = "{\"schema\": \"scomm.topology/1\", "
                               "\"host\": {\"hostname\": ";
    static scomm_topo_host_t h, back;
    scomm_coll_policy_t pol;
    char err[512] = "", *text;
    int st;

    /* writing a topology needs no library */
    ST_ASSERT_OK(scomm_topo_discover(&h, NULL, "/", err, sizeof(err)));
    text = scomm_topo_json_text(&h, NULL, 0, NULL, 0, NULL, 0);
    ST_ASSERT(text != NULL);
    ST_ASSERT(strncmp(text, head, strlen(head)) == 0);
    st = scomm_topo_host_from_json(text, strlen(text), "saved.json", &back,
                                   err, sizeof(err));
    free(text);
    if (have("jansson")) {
        ST_ASSERT_OK(st);
        ST_ASSERT(strcmp(back.hostname, h.hostname) == 0);
    } else {
        expect_missing("jansson", st, err, "libjansson-dev", "saved.json");
    }
    st = scomm_coll_policy_parse(pol_text, strlen(pol_text), "policy.json",
                                 &pol, err, sizeof(err));
    if (have("jansson")) {
        ST_ASSERT_OK(st);
        ST_ASSERT_EQ(pol.n, 1);
        scomm_coll_policy_free(&pol);
        printf("%-10s built in\n", "jansson");
    } else {
        ST_ASSERT((pol.n == 0) && (pol.rules == NULL));
        expect_missing("jansson", st, err, "libjansson-dev", "policy.json");
    }
}

/* The ofi transport: built in, the provider listing works and a world of
 * one rank starts over it; left out, both say which package is missing. */
static int ofi_rank(int rank, int size, void *arg)
{
    scomm_comm_t *comm = NULL;
    char text[4096];
    int n, st;

    (void)rank;
    (void)size;
    (void)arg;
    n = scomm_ofi_list_providers(text, sizeof(text));
    setenv("SCOMM_TRANSPORTS", "ofi", 1);
    st = scomm_init_from_env(&comm);
    unsetenv("SCOMM_TRANSPORTS");
    if (have("ofi")) {
        ST_ASSERT(n >= 0);
        ST_ASSERT_OK(st);
        ST_ASSERT_OK(scomm_comm_destroy(comm));
        printf("%-10s built in (%d providers)\n", "ofi", n);
    } else {
        ST_ASSERT(n == -1);
        ST_ASSERT(strstr(text, "libfabric-dev") != NULL);
        ST_ASSERT(comm == NULL);
        expect_missing("ofi", st, scomm_last_error(), "libfabric-dev",
                       "SCOMM_TRANSPORTS=ofi");
    }
    return 0;
}

/* A KV endpoint compressing with codec: with the codec built in it
 * listens; without it the refusal comes at set-up (UNSUPPORTED, checked
 * here) or at the first transfer (test_kv nocodec, run by build.minimal). */
static void test_kv_codec(const char *word, int codec, const char *pkg)
{
    scomm_kv_listener_t *lst = NULL;
    scomm_kv_opts_t o;
    int st;

    memset(&o, 0, sizeof(o));
    o.field_mask  = SCOMM_KV_FIELD_COMPRESSION;
    o.compression = codec;
    st = scomm_kv_listen("127.0.0.1", 0, &o, &lst);
    if (have(word) || (st == SCOMM_OK)) {
        ST_ASSERT_OK(st);
        scomm_kv_listener_close(lst);
        printf("%-10s %s\n", word, have(word) ? "built in"
               : "left out: refused at the first transfer");
    } else {
        ST_ASSERT(lst == NULL);
        expect_missing(word, st, scomm_last_error(), pkg, word);
    }
}

/* SCOMM_METRICS_PORT at scomm_init (a world of one rank): a server, or
 * UNSUPPORTED. */
static int metrics_rank(int rank, int size, void *arg)
{
    scomm_comm_t *comm = NULL;
    char *text, want[128];
    int st;

    (void)rank;
    (void)size;
    (void)arg;
    setenv("SCOMM_METRICS_PORT", "0", 1);
    st = scomm_init_from_env(&comm);
    unsetenv("SCOMM_METRICS_PORT");
    if (have("microhttpd")) {
        ST_ASSERT_OK(st);
        ST_ASSERT(scomm_metrics_port() > 0);
        printf("%-10s built in (port %d)\n", "microhttpd",
               (int)scomm_metrics_port());
    } else {
        ST_ASSERT(comm == NULL);
        expect_missing("microhttpd", st, scomm_last_error(),
                       "libmicrohttpd-dev", "SCOMM_METRICS_PORT=0");
        ST_ASSERT_OK(scomm_init_from_env(&comm));
    }
    /* the text format needs no library; its build-info series names the
     * features */
    ST_ASSERT_OK(scomm_metrics_text(&text, NULL));
    ST_ASSERT(strstr(text, "scomm_metrics_enabled") != NULL);
    snprintf(want, sizeof(want), "features=\"%s\"} 1\n",
             scomm_build_features());
    ST_ASSERT(strstr(text, want) != NULL);
    scomm_metrics_free(text);
    ST_ASSERT_OK(scomm_comm_destroy(comm));
    ST_ASSERT_EQ(scomm_metrics_port(), -1);
    return 0;
}

/* SCOMM_SELECTOR_CONFIG (set by main) reaches a collective of 2 ranks
 * (one rank never selects): ring, or UNSUPPORTED on both, data untouched. */
static int policy_rank(int rank, int size, void *arg)
{
    const char *path = arg;
    scomm_comm_t *comm;
    float a[4] = {1, 2, 3, 4}, b[4] = {0, 0, 0, 0};
    scomm_coll_record_t rec;
    int st;

    ST_ASSERT_OK(scomm_init_from_env(&comm));
    st = scomm_all_reduce(a, b, 4, SCOMM_FLOAT32, SCOMM_SUM, comm);
    if (have("jansson")) {
        ST_ASSERT_OK(st);
        ST_ASSERT(b[3] == 4.0f * (float)size);
        ST_ASSERT_OK(scomm_last_selection(comm, &rec));
        ST_ASSERT(strcmp(rec.rule_id, "policy:rule0") == 0);
    } else {
        if (rank == 0) {
            expect_missing("jansson", st, scomm_comm_last_error(comm),
                           "libjansson-dev", path);
        }
        ST_ASSERT_STATUS(st, SCOMM_ERR_UNSUPPORTED);
        ST_ASSERT(b[3] == 0.0f); /* untouched */
    }
    ST_ASSERT_OK(scomm_comm_destroy(comm));
    return 0;
}

static void test_policy_env(const char *dir)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/policy.json", dir);
    f = fopen(path, "w");
    ST_ASSERT(f != NULL);
    fputs("{\"version\": 1, \"rules\": [{\"op\": \"all_reduce\", "
          "\"algo\": \"ring\"}]}\n", f);
    ST_ASSERT(fclose(f) == 0);
    setenv("SCOMM_SELECTOR_CONFIG", path, 1);
    ST_ASSERT_EQ(st_run_ranks(2, policy_rank, path, 60), 0);
    unsetenv("SCOMM_SELECTOR_CONFIG");
    unlink(path);
}

int main(int argc, char **argv)
{
    char dir[] = "/tmp/test_features.XXXXXX";

    if (argc < 2) {
        fprintf(stderr, "usage: %s SOURCE_DIR [FEATURES]\n", argv[0]);
        return 2;
    }
    src = argv[1];
    ST_ASSERT(mkdtemp(dir) != NULL);
    unsetenv("SCOMM_TOPO_FILE");
    unsetenv("SCOMM_SYSFS_ROOT");
    unsetenv("SCOMM_TOPO_DUMP_FILE");
    unsetenv("SCOMM_PRESET");
    unsetenv("SCOMM_PRESET_FILE");
    unsetenv("SCOMM_SELECTOR_CONFIG");
    unsetenv("SCOMM_METRICS_PORT");
    test_string((argc > 2) ? argv[2] : NULL);
    test_hwloc();
    test_yaml();
    test_jansson();
    ST_ASSERT_EQ(st_run_ranks(1, metrics_rank, NULL, 60), 0);
    test_kv_codec("zstd", SCOMM_KV_COMPRESS_ZSTD, "libzstd-dev");
    test_kv_codec("lz4", SCOMM_KV_COMPRESS_LZ4, "liblz4-dev");
    ST_ASSERT_EQ(st_run_ranks(1, ofi_rank, NULL, 60), 0);
    test_policy_env(dir);
    rmdir(dir);
    printf("test_features: ok\n");
    return 0;
}
