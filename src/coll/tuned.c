/*
 * tuned.c - the per-machine tuned selector policy: where `scomm tune`
 * writes it and how scomm_init loads it, the same on every rank.
 *
 * `scomm tune` (tools/scomm/tune.c) measures every applicable algorithm
 * per operation and size band and writes a policy file (policy.c's JSON,
 * with a "machine" block) into
 *
 *   ${XDG_CACHE_HOME:-$HOME/.cache}/scomm/
 *       policy-<cpu model>-w<world size>-l<local size>-<transports>-v<ver>.json
 *
 * (the CPU model lower-cased, runs of other characters as '-'; the
 * transports that reach rank 0's peers, "shm", "shm+tcp"). SCOMM_TUNE_CACHE
 * names another file, or "off".
 *
 * At scomm_init (the coll module's world_up hook, transports up) rank 0
 * alone looks for the file of its run, unless SCOMM_SELECTOR_CONFIG is set
 * (that policy is read by every rank and wins) or SCOMM_TUNE_CACHE=off.
 * It parses it and compares the machine block with the run; a file that
 * cannot be read, does not parse or was measured elsewhere is ignored with
 * one warning (rank 0's) naming the file and what was wrong. Then rank 0
 * sends every rank a header (length, path) and the file's bytes on tag
 * SCOMM_TAG_TUNE, and each parses those same bytes: every rank holds the
 * same rules or none, whatever the others' caches hold. The selector
 * (select.c) consults them after SCOMM_SELECTOR_CONFIG and before the
 * default rules; the record's rule is "policy:<id>" and its reason names
 * the file.
 *
 * Invariants:
 *  1. Only rank 0's file, environment and verdict count; the others read
 *     no cache file.
 *  2. A bad or foreign file never fails scomm_init and never changes a
 *     choice; it costs one warning.
 *  3. The policy lives on the world (w->coll_tuned) and goes with it.
 *  4. scomm_init sends one message from rank 0 to every other rank (two
 *     with a policy). The exchange fails no world by itself: a rank that
 *     cannot be reached, or cannot hear rank 0, is lost anyway, and the
 *     world comes up and reports that at its next call, as before.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/util.h"
#include "coll.h"

#define TUNE_MAX_BYTES (1u << 20)

/* What rank 0 sends before the file's bytes. */
typedef struct tune_hdr {
    uint32_t len;   /* 0: no tuned policy */
    uint32_t pad;
    char     path[256];
} tune_hdr_t;

/* ---- the key ------------------------------------------------------------- */

void scomm_coll_tune_cpu(char *out, size_t len)
{
    static const char *const keys[] = {"model name", "Hardware",
                                       "CPU part"};
    char line[512], *v;
    struct utsname u;
    size_t i, n;
    FILE *f;

    out[0] = '\0';
    f = fopen("/proc/cpuinfo", "r");
    for (i = 0; (f != NULL) && (i < SCOMM_ARRAY_SIZE(keys)) &&
                (out[0] == '\0'); i++) {
        rewind(f);
        while (fgets(line, sizeof(line), f) != NULL) {
            if ((strncmp(line, keys[i], strlen(keys[i])) != 0) ||
                ((v = strchr(line, ':')) == NULL)) {
                continue;
            }
            for (v++; isspace((unsigned char)*v); v++) {
            }
            n = strcspn(v, "\r\n");
            snprintf(out, len, "%.*s", (int)n, v);
            break;
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    if ((out[0] == '\0') && (uname(&u) == 0)) {
        snprintf(out, len, "%s", u.machine);
    }
    if (out[0] == '\0') {
        snprintf(out, len, "unknown");
    }
}

void scomm_coll_tune_key_of(const scomm_comm_t *comm,
                            scomm_coll_tune_key_t *k)
{
    const scomm_world_t *w = comm->world;
    size_t o = 0;
    int t, q, used;

    memset(k, 0, sizeof(*k));
    scomm_coll_tune_cpu(k->cpu, sizeof(k->cpu));
    k->world_size = comm->size;
    k->local_size = comm->local_size;
    snprintf(k->version, sizeof(k->version), "%s", SCOMM_VERSION_STRING);
    /* The transports reaching this rank's peers, in the world's order. */
    for (t = 0; t < w->ntl; t++) {
        for (q = 0, used = 0; (q < comm->size) && !used; q++) {
            const scomm_peer_t *pr = &w->peers[comm->ranks[q]];

            used = (q != comm->rank) && (pr->tl == w->tls[t]);
        }
        if (used && (o < sizeof(k->transports))) {
            o += (size_t)snprintf(k->transports + o,
                                  sizeof(k->transports) - o, "%s%s",
                                  (o == 0) ? "" : "+", w->tls[t]->name);
        }
    }
    if (k->transports[0] == '\0') {
        snprintf(k->transports, sizeof(k->transports), "self");
    }
}

/* s lower-cased, runs of anything but [a-z0-9.] as one '-', at most
 * len - 1 characters, no '-' at either end. */
static void tune_slug(const char *s, char *out, size_t len)
{
    size_t o = 0;
    int dash = 0;

    for (; (*s != '\0') && (o + 1 < len); s++) {
        unsigned char ch = (unsigned char)tolower((unsigned char)*s);

        if (isalnum(ch) || (ch == '.')) {
            if (dash && (o > 0) && (o + 2 < len)) {
                out[o++] = '-';
            }
            out[o++] = (char)ch;
            dash     = 0;
        } else {
            dash = 1;
        }
    }
    out[o] = '\0';
}

int scomm_coll_tune_dir(char *out, size_t len)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n;

    if ((xdg != NULL) && (xdg[0] == '/')) {
        n = snprintf(out, len, "%s/scomm", xdg);
    } else if ((home != NULL) && (home[0] != '\0')) {
        n = snprintf(out, len, "%s/.cache/scomm", home);
    } else {
        snprintf(out, len, "(neither XDG_CACHE_HOME nor HOME is set)");
        return -1;
    }
    return ((n > 0) && ((size_t)n < len)) ? 0 : -1;
}

int scomm_coll_tune_file_name(const scomm_coll_tune_key_t *k, char *out,
                              size_t len)
{
    char cpu[64], tls[64], ver[32];
    int n;

    tune_slug(k->cpu, cpu, sizeof(cpu));
    tune_slug(k->transports, tls, sizeof(tls));
    tune_slug(k->version, ver, sizeof(ver));
    n = snprintf(out, len, "policy-%s-w%d-l%d-%s-v%s.json", cpu,
                 k->world_size, k->local_size, tls, ver);
    return ((n > 0) && ((size_t)n < len)) ? 0 : -1;
}

int scomm_coll_tune_path(const scomm_coll_tune_key_t *k, char *path,
                         size_t len, char *why, size_t wlen)
{
    scomm_pval_t v;
    char dir[200], name[200];

    if (scomm_param_get("SCOMM_TUNE_CACHE", NULL, &v, why, wlen) !=
        SCOMM_OK) {
        return -1;
    }
    if (strcasecmp(v.text, "off") == 0) {
        snprintf(why, wlen, "SCOMM_TUNE_CACHE=off");
        return 1;
    }
    if (v.text[0] != '\0') {
        if (strlen(v.text) >= len) {
            snprintf(why, wlen, "SCOMM_TUNE_CACHE: a path of at most %zu "
                     "characters", len - 1);
            return -1;
        }
        snprintf(path, len, "%s", v.text);
        return 0;
    }
    if (scomm_coll_tune_dir(dir, sizeof(dir)) != 0) {
        snprintf(why, wlen, "no cache directory: %s", dir);
        return -1;
    }
    if ((scomm_coll_tune_file_name(k, name, sizeof(name)) != 0) ||
        (snprintf(path, len, "%s/%s", dir, name) >= (int)len)) {
        snprintf(why, wlen, "the cache file's path is too long");
        return -1;
    }
    return 0;
}

/* s as a JSON string body (quotes and backslashes escaped, controls
 * dropped). */
static size_t tune_json_str(char *out, size_t len, const char *s)
{
    size_t o = 0;

    for (; (*s != '\0') && (o + 3 < len); s++) {
        if ((*s == '"') || (*s == '\\')) {
            out[o++] = '\\';
        }
        if ((unsigned char)*s >= 0x20) {
            out[o++] = *s;
        }
    }
    out[o] = '\0';
    return o;
}

int scomm_coll_tune_machine_json(const scomm_coll_tune_key_t *k, char *out,
                                 size_t len)
{
    char cpu[256], tls[128], ver[64];
    int n;

    tune_json_str(cpu, sizeof(cpu), k->cpu);
    tune_json_str(tls, sizeof(tls), k->transports);
    tune_json_str(ver, sizeof(ver), k->version);
    n = snprintf(out, len, "{\"cpu\": \"%s\", \"world_size\": %d, "
                 "\"local_size\": %d, \"transports\": \"%s\", "
                 "\"scomm_version\": \"%s\"}", cpu, k->world_size,
                 k->local_size, tls, ver);
    return ((n > 0) && ((size_t)n < len)) ? 0 : -1;
}

/* ---- loading at scomm_init ----------------------------------------------- */

/*
 * Rank 0: the run's tuned file, checked. Returns its bytes (*len > 0) in
 * a malloc'd buffer and the parsed policy in pol, or NULL (no policy:
 * none there, turned off, or ignored with a warning).
 */
static char *tune_read(scomm_comm_t *comm, tune_hdr_t *hdr, size_t *len,
                       scomm_coll_policy_t *pol)
{
    scomm_coll_tune_key_t k;
    scomm_pval_t sel;
    char why[320], diff[300], *text;
    long n;
    FILE *f;
    int rc;

    *len = 0;
    if ((scomm_param_get("SCOMM_SELECTOR_CONFIG", NULL, &sel, why,
                         sizeof(why)) != SCOMM_OK) || (sel.text[0] != '\0')) {
        scomm_debug(SCOMM_SUB_COLL, "SCOMM_SELECTOR_CONFIG is set: no tuned "
                    "policy read");
        return NULL;
    }
    scomm_coll_tune_key_of(comm, &k);
    rc = scomm_coll_tune_path(&k, hdr->path, sizeof(hdr->path), why,
                              sizeof(why));
    if (rc != 0) {
        if (rc < 0) {
            scomm_warn(SCOMM_SUB_COLL, "tuned selector policy not read: %s",
                       why);
        } else {
            scomm_debug(SCOMM_SUB_COLL, "tuned selector policy: %s", why);
        }
        return NULL;
    }
    f = fopen(hdr->path, "rb");
    if (f == NULL) {
        if (errno == ENOENT) {
            scomm_debug(SCOMM_SUB_COLL, "no tuned selector policy %s: "
                        "default rules", hdr->path);
        } else {
            scomm_warn(SCOMM_SUB_COLL, "tuned selector policy %s ignored: "
                       "cannot open: %s", hdr->path, strerror(errno));
        }
        return NULL;
    }
    text = NULL;
    if ((fseek(f, 0, SEEK_END) != 0) || ((n = ftell(f)) <= 0) ||
        (n > (long)TUNE_MAX_BYTES) || (fseek(f, 0, SEEK_SET) != 0) ||
        ((text = malloc((size_t)n)) == NULL) ||
        (fread(text, 1, (size_t)n, f) != (size_t)n)) {
        scomm_warn(SCOMM_SUB_COLL, "tuned selector policy %s ignored: not a "
                   "readable file of 1 byte to 1 MiB", hdr->path);
        fclose(f);
        free(text);
        return NULL;
    }
    fclose(f);
    if (scomm_coll_policy_parse(text, (size_t)n, hdr->path, pol, why,
                                sizeof(why)) != 0) {
        scomm_warn(SCOMM_SUB_COLL, "tuned selector policy ignored: %s", why);
        free(text);
        return NULL;
    }
    diff[0] = '\0';
    if (!pol->has_machine) {
        snprintf(diff, sizeof(diff), "it has no \"machine\" block (files "
                 "of scomm tune have)");
    } else {
        scomm_coll_tune_key_diff(&pol->machine, &k, diff, sizeof(diff));
    }
    if (diff[0] != '\0') {
        scomm_warn(SCOMM_SUB_COLL, "tuned selector policy %s ignored: it "
                   "was measured for %s", hdr->path, diff);
        scomm_coll_policy_free(pol);
        free(text);
        return NULL;
    }
    scomm_info(SCOMM_SUB_COLL, "selector: tuned policy %s (%d rules)",
               hdr->path, pol->n);
    *len = (size_t)n;
    return text;
}

/*
 * Rank 0 sends hdr (and text) to every rank; the others receive them.
 * World lock held. Rank 0 skips a peer it cannot reach (that peer's loss
 * fails the world on its own, as it would without this exchange) and
 * returns SCOMM_OK; a receiver returns the error of a failed receive.
 */
static scomm_status_t tune_exchange(scomm_comm_t *comm, tune_hdr_t *hdr,
                                    char **text)
{
    scomm_req_t **reqs;
    scomm_status_t status = SCOMM_OK;
    int q, n = 0;

    reqs = calloc(2 * (size_t)comm->size, sizeof(*reqs));
    if (reqs == NULL) {
        return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY, "scomm_init: out "
                               "of memory for the tuned policy's exchange");
    }
    if (comm->rank == 0) {
        for (q = 1; q < comm->size; q++) {
            if ((scomm_p2p_isend(comm, q, SCOMM_TAG_TUNE, hdr, sizeof(*hdr),
                                 &reqs[n]) == SCOMM_OK) && (++n > 0) &&
                (hdr->len > 0) &&
                (scomm_p2p_isend(comm, q, SCOMM_TAG_TUNE, *text, hdr->len,
                                 &reqs[n]) == SCOMM_OK)) {
                n++;
            }
        }
        if ((n > 0) && (scomm_p2p_waitall(comm, reqs, n) != SCOMM_OK)) {
            scomm_debug(SCOMM_SUB_COLL, "tuned selector policy: not every "
                        "rank got it: %s", comm->last_error);
        }
        free(reqs);
        return SCOMM_OK;
    }
    status = scomm_p2p_irecv(comm, 0, SCOMM_TAG_TUNE, hdr, sizeof(*hdr),
                             &reqs[0]);
    if (status == SCOMM_OK) {
        status = scomm_p2p_waitall(comm, reqs, 1);
    }
    if ((status == SCOMM_OK) &&
        ((hdr->len > TUNE_MAX_BYTES) ||
         (memchr(hdr->path, '\0', sizeof(hdr->path)) == NULL))) {
        status = scomm_set_error(comm, SCOMM_ERR_PROTOCOL, "scomm_init: rank "
                                 "0 sent a bad tuned-policy header (length "
                                 "%u)", hdr->len);
    }
    if ((status == SCOMM_OK) && (hdr->len > 0)) {
        *text  = malloc(hdr->len);
        status = (*text == NULL) ?
                 scomm_set_error(comm, SCOMM_ERR_NO_MEMORY, "scomm_init: out "
                                 "of memory for %u bytes of tuned policy",
                                 hdr->len) :
                 scomm_p2p_irecv(comm, 0, SCOMM_TAG_TUNE, *text, hdr->len,
                                 &reqs[0]);
        if (status == SCOMM_OK) {
            status = scomm_p2p_waitall(comm, reqs, 1);
        }
    }
    free(reqs);
    return status;
}

scomm_status_t scomm_coll_tune_world_up(scomm_comm_t *comm)
{
    scomm_coll_policy_t pol, *keep;
    tune_hdr_t hdr;
    scomm_status_t status;
    char err[320], *text = NULL;
    size_t len = 0;

    if (comm->size < 2) {
        return SCOMM_OK;
    }
    memset(&hdr, 0, sizeof(hdr));
    memset(&pol, 0, sizeof(pol));
    if (comm->rank == 0) {
        text    = tune_read(comm, &hdr, &len, &pol);
        hdr.len = (uint32_t)len;
    }
    /* The core's point-to-point calls and waits run under the world
     * lock. */
    pthread_mutex_lock(&comm->world->lock);
    status = tune_exchange(comm, &hdr, &text);
    pthread_mutex_unlock(&comm->world->lock);
    if ((status == SCOMM_OK) && (hdr.len > 0) && (comm->rank != 0) &&
        (scomm_coll_policy_parse(text, hdr.len, hdr.path, &pol, err,
                                 sizeof(err)) != 0)) {
        /* Rank 0 parsed these bytes: only a lack of memory gets here, and
         * going on without them would make this rank choose differently. */
        scomm_coll_policy_free(&pol);
        free(text);
        return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY, "scomm_init: the "
                               "tuned selector policy from rank 0: %s", err);
    }
    free(text);
    if (status != SCOMM_OK) {
        /* Rank 0 or the link to it failed: so does the world, at this
         * rank's next call, as it would without the exchange;
         * scomm_init still returns the communicator. */
        scomm_debug(SCOMM_SUB_COLL, "tuned selector policy not exchanged: "
                    "%s", comm->last_error);
        scomm_coll_policy_free(&pol);
        return SCOMM_OK;
    }
    if (hdr.len == 0) {
        scomm_coll_policy_free(&pol);
        return SCOMM_OK;
    }
    keep = malloc(sizeof(*keep));
    if (keep == NULL) {
        scomm_coll_policy_free(&pol);
        return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY, "scomm_init: out "
                               "of memory for the tuned selector policy");
    }
    *keep                   = pol;
    comm->world->coll_tuned = keep;
    return SCOMM_OK;
}

void scomm_coll_tune_comm_gone(scomm_comm_t *comm, int last)
{
    scomm_world_t *w = comm->world;

    if (last && (w->coll_tuned != NULL)) {
        scomm_coll_policy_free(w->coll_tuned);
        free(w->coll_tuned);
        w->coll_tuned = NULL;
    }
}

/* ---- scomm info ---------------------------------------------------------- */

void scomm_coll_tune_describe(char *out, size_t len)
{
    scomm_coll_tune_key_t k;
    scomm_pval_t v;
    char dir[200], cpu[64], prefix[96], why[160], list[400];
    size_t o = 0, pl;
    struct dirent *e;
    DIR *d;
    int n = 0;

    if ((scomm_param_get("SCOMM_SELECTOR_CONFIG", NULL, &v, why,
                         sizeof(why)) == SCOMM_OK) && (v.text[0] != '\0')) {
        snprintf(out, len, "SCOMM_SELECTOR_CONFIG=%s (every rank reads it; "
                 "no tuned file is read)", v.text);
        return;
    }
    memset(&k, 0, sizeof(k));
    if (scomm_coll_tune_path(&k, dir, sizeof(dir), why, sizeof(why)) == 1) {
        snprintf(out, len, "default rules (%s)", why);
        return;
    }
    if ((scomm_param_get("SCOMM_TUNE_CACHE", NULL, &v, why,
                         sizeof(why)) == SCOMM_OK) && (v.text[0] != '\0')) {
        snprintf(out, len, "tuned file SCOMM_TUNE_CACHE=%s (%s), else "
                 "default rules", v.text,
                 (access(v.text, R_OK) == 0) ? "present" : "absent");
        return;
    }
    if (scomm_coll_tune_dir(dir, sizeof(dir)) != 0) {
        snprintf(out, len, "default rules (%s)", dir);
        return;
    }
    scomm_coll_tune_cpu(k.cpu, sizeof(k.cpu));
    tune_slug(k.cpu, cpu, sizeof(cpu));
    pl = (size_t)snprintf(prefix, sizeof(prefix), "policy-%s-w", cpu);
    list[0] = '\0';
    d = opendir(dir);
    while ((d != NULL) && ((e = readdir(d)) != NULL)) {
        if ((strncmp(e->d_name, prefix, pl) != 0) ||
            (strstr(e->d_name, "-v" SCOMM_VERSION_STRING ".json") == NULL)) {
            continue;
        }
        n++;
        if (o < sizeof(list)) {
            o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s",
                                  (o == 0) ? "" : ", ", e->d_name);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    snprintf(out, len, "tuned files in %s: %d for this CPU and version%s%s "
             "(a run loads the one of its rank layout); else default rules",
             dir, n, (n > 0) ? ": " : "", list);
}
