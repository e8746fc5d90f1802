/*
 * kv_ofi.c - the KV channel's data plane over libfabric RMA (transport
 * ofi): the sender writes chunks straight into the receiver's registered
 * cache, or into a registered landing slot when they cannot land in place,
 * with one-sided writes that each carry completion data; the control
 * frames (BEGIN, the offer in BEGIN_OK, RDATA, ACK/NACK) stay on the TCP
 * streams (docs/kv.md, "Over libfabric RMA").
 *
 *   sender TX thread                         receiver
 *   BEGIN (zero_copy & ZC_RMA) ----------->  kv_on_begin: offer = region
 *                                            (direct) or landing slots,
 *          <------------ BEGIN_OK + offer    keys, address, tag
 *   fi_writedata x n, data tag<<32|seq ===>  progress thread counts the
 *   wait local completion                    completion data per key
 *   RDATA(seq, crc, n writes, slot) ------>  RX thread: wait n landed,
 *                                            CRC32C, decode (landing)
 *          <------------------ ACK / NACK
 *
 * One libfabric RDM endpoint per KV endpoint, on the interface of its
 * first stream (the tcp provider binds to that address), with one CQ
 * read by a progress thread of its own.
 *
 * Design notes (invariants):
 *  1. Every libfabric call on the endpoint is made under o->lk (the domain
 *     is FI_THREAD_DOMAIN); waiters sleep on o->cond, which the progress
 *     thread broadcasts after each batch of completions.
 *  2. The receiver counts completion data per key (tag << 32 | seq) and
 *     acts on a chunk only when its RDATA came and as many writes as it
 *     names have landed: no write ordering (FI_ORDER_WAW) is assumed. A
 *     re-sent chunk writes the same bytes (kv.h, wire note 6).
 *  3. Nothing waits forever: local completions and landings are waited
 *     for at most KV_STALL_MS since the last progress (a write of the
 *     chunk completed or landed; writes are at most KV_OFI_WRITE_MAX); a
 *     sender that gives up abandons its batch (freed when its writes
 *     complete, or at close), a receiver answers NACK and the chunk is
 *     written again.
 *  4. A region is registered at scomm_kv_register and closed at
 *     scomm_kv_deregister or close; landing slots at the BEGIN that needs
 *     them and closed with the receiver's transfer record.
 *  5. Without libfabric every entry point says so, naming the package.
 *  6. A sender waiting for its writes keeps its stream alive: its TX
 *     thread sends a heartbeat every KV_HB_MS meanwhile (kv_ofi_keepalive),
 *     so a chunk slower than KV_STALL_MS is not a dead stream.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kv_int.h"

#ifdef SCOMM_HAVE_OFI

#include <netinet/in.h>
#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>

#include "core/sock.h"
#include "transport/ofi.h"

#define KV_OFI_API       FI_VERSION(1, 9)
#define KV_OFI_BATCH     16
#define KV_OFI_SLOTS     4    /* landing slots per stream */
/* Bytes per RMA write: a chunk is written in pieces of at most this, so
 * completions (the sender's progress) and landings (the receiver's) come
 * at least every piece, even for a 256 MiB chunk on a slow link. */
#define KV_OFI_WRITE_MAX (1u << 20)

/* One chunk's writes: the sender waits for pending to reach 0. */
typedef struct kv_ofi_batch {
    struct kv_ofi_batch *next;     /* o->abandoned */
    int                  pending;
    int                  abandoned;
    int                  err;      /* first completion error (-errno) */
    int                  n;
    struct fid_mr       *tmp_mr;   /* staging, FI_MR_LOCAL providers */
    struct kv_ofi_op {
        struct fi_context2    fc;  /* first: the provider's context */
        struct kv_ofi_batch  *b;
    } *ops;
} kv_ofi_batch_t;

typedef struct kv_ofi_land {
    uint64_t key;
    uint32_t n;
} kv_ofi_land_t;

typedef struct kv_ofi {
    pthread_mutex_t    lk;
    pthread_cond_t     cond;
    struct fi_info    *info;
    struct fid_fabric *fabric;
    struct fid_domain *domain;
    struct fid_cq     *cq;
    struct fid_av     *av;
    struct fid_ep     *ep;
    int                cq_fd;
    int                wake[2];   /* a pipe: work for a sleeping thread */
    int                sleeping;  /* the progress thread is in poll */
    int                mr_local, virt_addr;
    size_t             max_write;
    struct fid_mr     *mr[SCOMM_KV_MAX_REGIONS];
    fi_addr_t          peer;
    uint8_t            peer_raw[SCOMM_KV_OFFER_ADDRMAX];
    size_t             peer_len;
    uint64_t           next_tag;
    uint64_t           next_key;  /* requested keys (no FI_MR_PROV_KEY) */
    kv_ofi_land_t     *land;
    size_t             nland, land_cap;
    kv_ofi_batch_t    *abandoned;
    pthread_t          thr;
    int                thr_started;
    int                stop;
    char               prov[32];
} kv_ofi_t;

static const char *const kv_ofi_pref[] = {"verbs", "efa", "cxi", "opx",
                                          "psm3", "tcp"};

static void kv_ofi_batch_free(kv_ofi_batch_t *b)
{
    if (b->tmp_mr != NULL) {
        fi_close(&b->tmp_mr->fid);
    }
    free(b->ops);
    free(b);
}

/* Count one landed write of key (o->lk held). */
static void kv_ofi_land_add(kv_ofi_t *o, uint64_t key)
{
    kv_ofi_land_t *nl;
    size_t i;

    for (i = 0; i < o->nland; i++) {
        if (o->land[i].key == key) {
            o->land[i].n++;
            return;
        }
    }
    if (o->nland == o->land_cap) {
        nl = realloc(o->land, (o->land_cap ? 2 * o->land_cap : 64) *
                                  sizeof(*nl));
        if (nl == NULL) {
            return; /* the chunk times out and is asked again */
        }
        o->land = nl;
        o->land_cap = o->land_cap ? 2 * o->land_cap : 64;
    }
    o->land[o->nland].key = key;
    o->land[o->nland].n   = 1;
    o->nland++;
}

static void kv_ofi_op_done(kv_ofi_t *o, struct kv_ofi_op *op, int err)
{
    kv_ofi_batch_t *b = op->b, **pp;

    if ((err != 0) && (b->err == 0)) {
        b->err = err;
    }
    if ((--b->pending == 0) && b->abandoned) {
        for (pp = &o->abandoned; *pp != NULL; pp = &(*pp)->next) {
            if (*pp == b) {
                *pp = b->next;
                break;
            }
        }
        kv_ofi_batch_free(b);
    }
}

/* Read what the CQ holds (o->lk held); how many entries. */
static int kv_ofi_drain(kv_ofi_t *o)
{
    struct fi_cq_data_entry e[KV_OFI_BATCH];
    struct fi_cq_err_entry ee;
    ssize_t n, i;
    int got = 0;

    for (;;) {
        n = fi_cq_read(o->cq, e, KV_OFI_BATCH);
        if (n == -FI_EAVAIL) {
            memset(&ee, 0, sizeof(ee));
            if (fi_cq_readerr(o->cq, &ee, 0) == 1) {
                if (ee.op_context != NULL) {
                    kv_ofi_op_done(o, ee.op_context,
                                   -(ee.err ? (int)ee.err : EIO));
                }
                got++;
            }
            continue;
        }
        if (n <= 0) {
            return got;
        }
        for (i = 0; i < n; i++) {
            if (e[i].flags & FI_REMOTE_CQ_DATA) {
                kv_ofi_land_add(o, e[i].data);
            } else if (e[i].op_context != NULL) {
                kv_ofi_op_done(o, e[i].op_context, 0);
            }
        }
        got += (int)n;
    }
}

/* The progress thread: reads the CQ while there is work, spins a little
 * after the last completion, then sleeps in poll on the CQ's wait fd
 * (fi_trywait) and the wake pipe, which posters write (kv_ofi_kick). */
static void *kv_ofi_progress_main(void *arg)
{
    kv_ofi_t *o = arg;
    struct fid *f;
    struct pollfd pfd[2];
    char junk[64];
    int n, idle = 0;

    pthread_mutex_lock(&o->lk);
    while (!o->stop) {
        n = kv_ofi_drain(o);
        if (n > 0) {
            idle = 0;
            pthread_cond_broadcast(&o->cond);
            continue;
        }
        f = &o->cq->fid;
        if ((++idle > 64) && (o->cq_fd >= 0) &&
            (fi_trywait(o->fabric, &f, 1) == FI_SUCCESS)) {
            o->sleeping = 1;
            pthread_mutex_unlock(&o->lk);
            pfd[0].fd = o->cq_fd;
            pfd[0].events = POLLIN;
            pfd[1].fd = o->wake[0];
            pfd[1].events = POLLIN;
            pfd[0].revents = pfd[1].revents = 0;
            (void)poll(pfd, 2, KV_POLL_MS);
            if (pfd[1].revents & POLLIN) {
                while (read(o->wake[0], junk, sizeof(junk)) > 0) {
                }
            }
            pthread_mutex_lock(&o->lk);
            o->sleeping = 0;
            idle = 0;
            continue;
        }
        pthread_mutex_unlock(&o->lk);
        if ((idle > 64) || (idle % 8 == 0)) {
            struct timespec ts = {0, 20000};

            nanosleep(&ts, NULL); /* no wait fd: polled */
        } else {
            sched_yield();
        }
        pthread_mutex_lock(&o->lk);
    }
    pthread_mutex_unlock(&o->lk);
    return NULL;
}

/* Wake the progress thread if it sleeps (o->lk held). */
static void kv_ofi_kick(kv_ofi_t *o)
{
    char one = 1;

    if (o->sleeping) {
        (void)!write(o->wake[1], &one, 1);
    }
}

/* "tcp" for "tcp;ofi_rxm". */
static int kv_ofi_is(const struct fi_info *i, const char *name)
{
    size_t n = strcspn(i->fabric_attr->prov_name, ";");

    return (strlen(name) == n) &&
           (strncmp(i->fabric_attr->prov_name, name, n) == 0);
}

static struct fi_info *kv_ofi_pick(struct fi_info *list, const char *prov)
{
    struct fi_info *i;
    size_t k;

    for (k = 0; k < SCOMM_ARRAY_SIZE(kv_ofi_pref); k++) {
        for (i = list; i != NULL; i = i->next) {
            if ((i->domain_attr->cq_data_size >= 8) &&
                (((prov != NULL) && (prov[0] != '\0'))
                     ? (kv_ofi_is(i, prov) ||
                        (strcmp(i->fabric_attr->prov_name, prov) == 0))
                     : kv_ofi_is(i, kv_ofi_pref[k]))) {
                return i;
            }
        }
    }
    return NULL;
}

void scomm_kv_ofi_close(scomm_kv_ep_t *ep)
{
    kv_ofi_t *o = ep->ofi;
    kv_ofi_batch_t *b;
    int i;

    if (o == NULL) {
        return;
    }
    if (o->thr_started) {
        pthread_mutex_lock(&o->lk);
        o->stop = 1;
        pthread_mutex_unlock(&o->lk);
        pthread_join(o->thr, NULL);
    }
    /* The endpoint first: no completion comes after it. */
    if (o->ep != NULL) {
        fi_close(&o->ep->fid);
    }
    for (i = 0; i < SCOMM_KV_MAX_REGIONS; i++) {
        if (o->mr[i] != NULL) {
            fi_close(&o->mr[i]->fid);
        }
    }
    while ((b = o->abandoned) != NULL) {
        o->abandoned = b->next;
        kv_ofi_batch_free(b);
    }
    if (o->av != NULL) {
        fi_close(&o->av->fid);
    }
    if (o->cq != NULL) {
        fi_close(&o->cq->fid);
    }
    if (o->domain != NULL) {
        fi_close(&o->domain->fid);
    }
    if (o->fabric != NULL) {
        fi_close(&o->fabric->fid);
    }
    if (o->info != NULL) {
        fi_freeinfo(o->info);
    }
    free(o->land);
    if (o->wake[0] >= 0) {
        close(o->wake[0]);
        close(o->wake[1]);
    }
    pthread_mutex_destroy(&o->lk);
    pthread_cond_destroy(&o->cond);
    free(o);
    ep->ofi = NULL;
}

scomm_status_t scomm_kv_ofi_open(scomm_kv_ep_t *ep, int fd)
{
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    struct fi_info *hints, *list = NULL, *pick;
    scomm_pval_t pv;
    char host[SCOMM_ADDR_MAX], err[200];
    const char *prov = "", *step = "fi_getinfo";
    kv_ofi_t *o;
    int rc;

    if (scomm_param_get("SCOMM_OFI_PROVIDER", NULL, &pv, err,
                        sizeof(err)) == SCOMM_OK) {
        prov = pv.text;
    }
    o = calloc(1, sizeof(*o));
    if (o == NULL) {
        return scomm_kv_fail(SCOMM_ERR_NO_MEMORY, "kv ofi: out of memory");
    }
    pthread_mutex_init(&o->lk, NULL);
    pthread_cond_init(&o->cond, NULL);
    o->cq_fd = -1;
    o->peer  = FI_ADDR_UNSPEC;
    ep->ofi  = o;
    if (pipe2(o->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        o->wake[0] = o->wake[1] = -1;
        scomm_kv_ofi_close(ep);
        return scomm_kv_fail(SCOMM_ERR_SYSTEM, "kv ofi: pipe: %s",
                             strerror(errno));
    }
    hints = scomm_ofi_hints(prov, FI_RMA | FI_WRITE | FI_REMOTE_WRITE,
                            FI_CONTEXT | FI_CONTEXT2);
    if (hints == NULL) {
        scomm_kv_ofi_close(ep);
        return scomm_kv_fail(SCOMM_ERR_NO_MEMORY, "kv ofi: out of memory");
    }
    /* On the interface of the stream: the address it has locally. */
    host[0] = '\0';
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0) {
        scomm_sock_addr_str(&ss, host, sizeof(host), NULL);
    }
    rc = fi_getinfo(KV_OFI_API, host[0] ? host : NULL, NULL,
                    host[0] ? FI_SOURCE : 0, hints, &list);
    if ((rc != 0) || (kv_ofi_pick(list, prov) == NULL)) {
        if (list != NULL) {
            fi_freeinfo(list);
            list = NULL;
        }
        rc = fi_getinfo(KV_OFI_API, NULL, NULL, 0, hints, &list);
    }
    fi_freeinfo(hints);
    pick = (rc == 0) ? kv_ofi_pick(list, prov) : NULL;
    if (pick == NULL) {
        if (list != NULL) {
            fi_freeinfo(list);
        }
        scomm_kv_ofi_close(ep);
        return scomm_kv_fail(SCOMM_ERR_UNSUPPORTED, "kv transport ofi: no "
                             "libfabric provider%s%s offers RDM endpoints "
                             "with RMA and 8 bytes of completion data "
                             "(`scomm probe` lists those found)%s%s",
                             prov[0] ? " " : "", prov,
                             (rc != 0) ? ": " : "",
                             (rc != 0) ? fi_strerror(-rc) : "");
    }
    o->info = fi_dupinfo(pick);
    fi_freeinfo(list);
    if (o->info == NULL) {
        scomm_kv_ofi_close(ep);
        return scomm_kv_fail(SCOMM_ERR_NO_MEMORY, "kv ofi: out of memory");
    }
    snprintf(o->prov, sizeof(o->prov), "%s", o->info->fabric_attr->prov_name);
    o->mr_local  = (o->info->domain_attr->mr_mode & FI_MR_LOCAL) != 0;
    o->virt_addr = (o->info->domain_attr->mr_mode & FI_MR_VIRT_ADDR) != 0;
    o->max_write = (size_t)SCOMM_MIN(o->info->ep_attr->max_msg_size,
                                     (uint64_t)KV_OFI_WRITE_MAX);
    rc = scomm_ofi_rdm_open(o->info, 4096, 4,
                            &(scomm_ofi_rdm_t){&o->fabric, &o->domain,
                                               &o->cq, &o->cq_fd, &o->av,
                                               &o->ep}, &step);
    if (rc == 0) {
        step = "progress thread";
        rc = (pthread_create(&o->thr, NULL, kv_ofi_progress_main, o) == 0)
                 ? 0 : -FI_ENOMEM;
        o->thr_started = (rc == 0);
    }
    if (rc != 0) {
        char prov_name[sizeof(o->prov)];

        snprintf(prov_name, sizeof(prov_name), "%s", o->prov);
        scomm_kv_ofi_close(ep);
        return scomm_kv_fail(SCOMM_ERR_SYSTEM, "kv transport ofi: %s on "
                             "provider %s: %s", step, prov_name,
                             fi_strerror(-rc));
    }
    scomm_info(SCOMM_SUB_KV, "kv transport ofi: provider %s, domain %s%s%s",
               o->prov, o->info->domain_attr->name, host[0] ? ", on " : "",
               host);
    return SCOMM_OK;
}

scomm_status_t scomm_kv_ofi_reg(scomm_kv_ep_t *ep, int id)
{
    kv_ofi_t *o = ep->ofi;
    kv_region_t *r = &ep->regions[id];
    int rc;

    if (o == NULL) {
        return SCOMM_OK;
    }
    if (r->dev) {
        /* The provider would read and write it from the host (FI_HMEM
         * registration, iface CUDA, is not built): its transfers go over
         * the TCP streams, staged (kv_dev.c), not by RMA. */
        o->mr[id] = NULL;
        return SCOMM_OK;
    }
    pthread_mutex_lock(&o->lk);
    rc = fi_mr_reg(o->domain, r->base, (size_t)r->bytes,
                   FI_WRITE | FI_REMOTE_WRITE, 0, ++o->next_key, 0,
                   &o->mr[id], NULL);
    pthread_mutex_unlock(&o->lk);
    if (rc != 0) {
        o->mr[id] = NULL;
        return scomm_kv_fail(SCOMM_ERR_SYSTEM, "kv_register: fi_mr_reg of "
                             "%llu bytes on %s: %s",
                             (unsigned long long)r->bytes, o->prov,
                             fi_strerror(-rc));
    }
    return SCOMM_OK;
}

void scomm_kv_ofi_dereg(scomm_kv_ep_t *ep, int id)
{
    kv_ofi_t *o = ep->ofi;

    if ((o == NULL) || (o->mr[id] == NULL)) {
        return;
    }
    pthread_mutex_lock(&o->lk);
    fi_close(&o->mr[id]->fid);
    o->mr[id] = NULL;
    pthread_mutex_unlock(&o->lk);
}

size_t scomm_kv_ofi_offer(scomm_kv_ep_t *ep, kv_rx_t *rx, uint8_t *out,
                          char *why, size_t whylen)
{
    kv_ofi_t *o = ep->ofi;
    const kv_region_t *r = &ep->regions[rx->region];
    scomm_kv_offer_t of;
    struct fid_mr *mr = NULL;
    size_t alen = SCOMM_KV_OFFER_ADDRMAX, raw, bound;
    int rc;

    if (o == NULL) {
        snprintf(why, whylen, "the sender writes by RMA (transport ofi), "
                 "this receiver's transport is tcp");
        return 0;
    }
    memset(&of, 0, sizeof(of));
    pthread_mutex_lock(&o->lk);
    rc = fi_getname(&o->ep->fid, of.addr, &alen);
    rx->tag = ++o->next_tag;
    pthread_mutex_unlock(&o->lk);
    if ((rc != 0) || (alen > SCOMM_KV_OFFER_ADDRMAX)) {
        snprintf(why, whylen, "fi_getname on %s: %s", o->prov,
                 (rc != 0) ? fi_strerror(-rc) : "address too long");
        return 0;
    }
    of.addrlen = (uint32_t)alen;
    of.tag     = rx->tag;
    if (rx->direct) {
        if (o->mr[rx->region] == NULL) {
            snprintf(why, whylen, "region %d is not registered with %s",
                     rx->region, o->prov);
            return 0;
        }
        of.flags            = SCOMM_KV_OFFER_DIRECT;
        of.base             = o->virt_addr ? (uint64_t)(uintptr_t)r->base : 0;
        of.key              = fi_mr_key(o->mr[rx->region]);
        of.block_bytes      = r->bb;
        of.blocks_per_layer = (uint64_t)r->l.num_blocks;
    } else {
        /* Landing slots: a chunk's wire bytes, compressed at worst. */
        raw = (size_t)rx->b.blocks_per_chunk *
              scomm_kv_wire_block_bytes(&rx->sl, rx->b.wire_dtype);
        bound = (rx->b.compression != 0)
                    ? scomm_kv_compress_bound(rx->b.compression, raw) : raw;
        if ((bound == 0) || (bound > SCOMM_KV_CHUNK_MAX)) {
            snprintf(why, whylen, "chunks of %zu bytes cannot have landing "
                     "slots", raw);
            return 0;
        }
        rx->slot_bytes = (bound + 63) & ~(size_t)63;
        rx->nslots = (uint32_t)SCOMM_MIN((uint64_t)KV_OFI_SLOTS *
                                             (uint64_t)ep->nstreams,
                                         rx->b.nchunks);
        rx->bounce = aligned_alloc(4096, ((size_t)rx->nslots *
                                          rx->slot_bytes + 4095) &
                                             ~(size_t)4095);
        if (rx->bounce == NULL) {
            snprintf(why, whylen, "receiver out of memory for %u landing "
                     "slots of %llu bytes", rx->nslots,
                     (unsigned long long)rx->slot_bytes);
            return 0;
        }
        pthread_mutex_lock(&o->lk);
        rc = fi_mr_reg(o->domain, rx->bounce,
                       (size_t)rx->nslots * rx->slot_bytes,
                       FI_REMOTE_WRITE, 0, ++o->next_key, 0, &mr, NULL);
        pthread_mutex_unlock(&o->lk);
        if (rc != 0) {
            free(rx->bounce);
            rx->bounce = NULL;
            snprintf(why, whylen, "fi_mr_reg of landing slots on %s: %s",
                     o->prov, fi_strerror(-rc));
            return 0;
        }
        rx->bounce_mr  = mr;
        rx->bounce_ofi = o;
        of.base       = o->virt_addr ? (uint64_t)(uintptr_t)rx->bounce : 0;
        of.key        = fi_mr_key(mr);
        of.slot_bytes = rx->slot_bytes;
        of.nslots     = rx->nslots;
    }
    rx->rma = 1;
    return scomm_kv_offer_encode(&of, out);
}

void scomm_kv_ofi_rx_free(kv_rx_t *rx)
{
    kv_ofi_t *o = rx->bounce_ofi;

    if (rx->bounce_mr != NULL) {
        pthread_mutex_lock(&o->lk); /* a call into the domain (note 1) */
        fi_close(&((struct fid_mr *)rx->bounce_mr)->fid);
        pthread_mutex_unlock(&o->lk);
        rx->bounce_mr = NULL;
    }
    free(rx->bounce);
    rx->bounce = NULL;
}

int scomm_kv_ofi_take_offer(scomm_kv_ep_t *ep, kv_sx_t *sx,
                            const uint8_t *pl, size_t len, char *why,
                            size_t whylen)
{
    kv_ofi_t *o = ep->ofi;
    scomm_kv_offer_t of;
    kv_rma_t *m;
    int rc = 0;

    if (o == NULL) {
        snprintf(why, whylen, "an RMA offer to an endpoint without ofi");
        return -1;
    }
    if (scomm_kv_offer_decode(pl, len, &of, why, whylen) != 0) {
        return -1;
    }
    m = calloc(1, sizeof(*m));
    if ((m == NULL) || ((of.nslots > 0) &&
                        ((m->busy = calloc(of.nslots, 1)) == NULL))) {
        free(m);
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    pthread_mutex_lock(&o->lk);
    if ((o->peer == FI_ADDR_UNSPEC) || (o->peer_len != of.addrlen) ||
        (memcmp(o->peer_raw, of.addr, of.addrlen) != 0)) {
        fi_addr_t a = FI_ADDR_UNSPEC;

        rc = fi_av_insert(o->av, of.addr, 1, &a, 0, NULL);
        if (rc == 1) {
            o->peer = a;
            o->peer_len = of.addrlen;
            memcpy(o->peer_raw, of.addr, of.addrlen);
            rc = 0;
        } else {
            snprintf(why, whylen, "fi_av_insert of the receiver's address "
                     "on %s: %s", o->prov,
                     (rc < 0) ? fi_strerror(-rc) : "not inserted");
            rc = -1;
        }
    }
    pthread_mutex_unlock(&o->lk);
    if (rc != 0) {
        free(m->busy);
        free(m);
        return -1;
    }
    m->direct           = (of.flags & SCOMM_KV_OFFER_DIRECT) != 0;
    m->tag              = of.tag;
    m->base             = of.base;
    m->key              = of.key;
    m->block_bytes      = of.block_bytes;
    m->blocks_per_layer = of.blocks_per_layer;
    m->slot_bytes       = of.slot_bytes;
    m->nslots           = of.nslots;
    if (sx->rma != NULL) {
        free(sx->rma->busy);
        free(sx->rma);
    }
    sx->rma = m;
    return 0;
}

/* The local descriptor of p (FI_MR_LOCAL providers): the source region's,
 * else the batch's registration of the staging span (kv_ofi_stage). */
static void *kv_ofi_desc(kv_ofi_t *o, scomm_kv_ep_t *ep, kv_sx_t *sx,
                         kv_ofi_batch_t *b, const kv_piece_t *p)
{
    const kv_region_t *r = &ep->regions[sx->plan.src_region];
    const uint8_t *s = p->src;

    if (!o->mr_local) {
        return NULL;
    }
    if ((o->mr[sx->plan.src_region] != NULL) && (s >= r->base) &&
        (s + p->len <= r->base + r->bytes)) {
        return fi_mr_desc(o->mr[sx->plan.src_region]);
    }
    return (b->tmp_mr != NULL) ? fi_mr_desc(b->tmp_mr) : NULL;
}

/* FI_MR_LOCAL providers: register the span of the pieces that are not in
 * the source region (the stream's staging) for this chunk. 0 or -1. */
static int kv_ofi_stage(kv_ofi_t *o, scomm_kv_ep_t *ep, kv_sx_t *sx,
                        kv_ofi_batch_t *b, const kv_piece_t *pc, int n)
{
    const kv_region_t *r = &ep->regions[sx->plan.src_region];
    const uint8_t *lo = NULL, *hi = NULL, *s;
    int i;

    if (!o->mr_local) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        s = pc[i].src;
        if ((s >= r->base) && (s + pc[i].len <= r->base + r->bytes)) {
            continue;
        }
        lo = ((lo == NULL) || (s < lo)) ? s : lo;
        hi = ((hi == NULL) || (s + pc[i].len > hi)) ? s + pc[i].len : hi;
    }
    if ((lo != NULL) &&
        (fi_mr_reg(o->domain, lo, (size_t)(hi - lo), FI_WRITE, 0,
                   ++o->next_key, 0, &b->tmp_mr, NULL) != 0)) {
        b->tmp_mr = NULL;
        return -1;
    }
    return 0;
}

/* o->lk held, dropped inside. The TX thread waiting for a chunk's writes
 * writes no frame: after KV_HB_MS it sends a heartbeat, between frames
 * (the chunk's RDATA comes after), so the receiver's RX thread does not
 * take a chunk that moves for longer than KV_STALL_MS for a dead stream.
 * 0, or -1 when the stream broke (st->why_tx says why). */
static int kv_ofi_keepalive(kv_stream_t *st, kv_ofi_t *o)
{
    scomm_kv_hdr_t h;
    int rc;

    if (scomm_now_ns() - st->last_tx <= (uint64_t)KV_HB_MS * 1000000ull) {
        return 0;
    }
    pthread_mutex_unlock(&o->lk);
    memset(&h, 0, sizeof(h));
    h.type = SCOMM_KV_T_HEARTBEAT;
    rc = scomm_kv_send_hdr(st, &h, NULL, 0);
    pthread_mutex_lock(&o->lk);
    return rc;
}

int scomm_kv_ofi_put(kv_stream_t *st, kv_sx_t *sx, uint32_t seq,
                     kv_piece_t *pc, int n, uint32_t *nwrites)
{
    scomm_kv_ep_t *ep = st->ep;
    kv_ofi_t *o = ep->ofi;
    kv_rma_t *m = sx->rma;
    kv_ofi_batch_t *b;
    struct timespec ts;
    uint64_t data = (m->tag << 32) | seq, last, raddr;
    size_t off, len;
    void *desc;
    int i, k, w, rc = 0, pending;

    /* Merge pieces contiguous on both sides. */
    for (i = 1, k = 0; i < n; i++) {
        if (((const uint8_t *)pc[k].src + pc[k].len == pc[i].src) &&
            (pc[k].off + pc[k].len == pc[i].off)) {
            pc[k].len += pc[i].len;
        } else {
            pc[++k] = pc[i];
        }
    }
    n = (n > 0) ? k + 1 : 0;
    for (i = 0, w = 0; i < n; i++) {
        w += (int)((pc[i].len + o->max_write - 1) / o->max_write);
    }
    b = calloc(1, sizeof(*b));
    if ((b == NULL) || ((b->ops = calloc((size_t)w, sizeof(*b->ops))) ==
                        NULL)) {
        free(b);
        snprintf(st->why_tx, sizeof(st->why_tx), "out of memory for RMA "
                 "writes");
        return -1;
    }
    b->n = w;
    pthread_mutex_lock(&o->lk);
    last = scomm_now_ns();
    if (kv_ofi_stage(o, ep, sx, b, pc, n) != 0) {
        snprintf(st->why_tx, sizeof(st->why_tx), "fi_mr_reg of staging on "
                 "%s failed", o->prov);
        rc = -1;
    }
    for (i = 0, w = 0; (rc == 0) && (i < n); i++) {
        desc = kv_ofi_desc(o, ep, sx, b, &pc[i]);
        for (off = 0; off < pc[i].len; off += len, w++) {
            len   = SCOMM_MIN(pc[i].len - off, o->max_write);
            raddr = m->base + pc[i].off + off;
            b->ops[w].b = b;
            for (;;) {
                ssize_t r = fi_writedata(o->ep,
                                         (const uint8_t *)pc[i].src + off,
                                         len, desc, data, o->peer, raddr,
                                         m->key, &b->ops[w].fc);

                if (r == 0) {
                    b->pending++;
                    kv_ofi_kick(o);
                    break;
                }
                if ((r != -FI_EAGAIN) || __atomic_load_n(&ep->closing,
                                                         __ATOMIC_ACQUIRE) ||
                    (scomm_now_ns() - last >
                     (uint64_t)KV_STALL_MS * 1000000ull)) {
                    snprintf(st->why_tx, sizeof(st->why_tx), "RMA write of "
                             "chunk %u to the peer on %s: %s", seq, o->prov,
                             (r == -FI_EAGAIN) ? "no progress"
                                               : fi_strerror((int)-r));
                    rc = -1;
                    break;
                }
                /* Full queue: let the progress thread run. */
                kv_ofi_drain(o);
                pthread_mutex_unlock(&o->lk);
                sched_yield();
                pthread_mutex_lock(&o->lk);
                if (kv_ofi_keepalive(st, o) != 0) {
                    rc = -1;
                    break;
                }
            }
            if (rc != 0) {
                break;
            }
        }
    }
    /* Wait for the local completions (the buffers are ours again). */
    pending = b->pending;
    while ((b->pending > 0) && (rc == 0)) {
        if (b->pending < pending) {
            pending = b->pending;
            last = scomm_now_ns();
        }
        if (__atomic_load_n(&ep->closing, __ATOMIC_ACQUIRE) ||
            (scomm_now_ns() - last > (uint64_t)KV_STALL_MS * 1000000ull)) {
            snprintf(st->why_tx, sizeof(st->why_tx), "RMA writes of chunk "
                     "%u on %s: no completion in %d ms", seq, o->prov,
                     KV_STALL_MS);
            rc = -1;
            break;
        }
        if (kv_ofi_keepalive(st, o) != 0) {
            rc = -1;
            break;
        }
        scomm_kv_abs_deadline(&ts, scomm_now_ns() + 50000000ull);
        pthread_cond_timedwait(&o->cond, &o->lk, &ts);
    }
    if ((rc == 0) && (b->err != 0)) {
        snprintf(st->why_tx, sizeof(st->why_tx), "RMA write of chunk %u on "
                 "%s failed: %s", seq, o->prov, fi_strerror(-b->err));
        rc = -1;
    }
    if (b->pending > 0) {
        b->abandoned = 1; /* freed by its last completion, or at close */
        b->next = o->abandoned;
        o->abandoned = b;
    } else {
        kv_ofi_batch_free(b);
    }
    pthread_mutex_unlock(&o->lk);
    *nwrites = (uint32_t)w;
    return rc;
}

int scomm_kv_ofi_landed(kv_stream_t *st, kv_rx_t *rx, uint32_t seq,
                        uint32_t nwrites)
{
    scomm_kv_ep_t *ep = st->ep;
    kv_ofi_t *o = ep->ofi;
    uint64_t key = (rx->tag << 32) | seq;
    uint64_t deadline = scomm_now_ns() + (uint64_t)KV_STALL_MS * 1000000ull;
    struct timespec ts;
    uint32_t seen = 0;
    size_t i;
    int rc = -1;

    if (o == NULL) {
        return -1;
    }
    pthread_mutex_lock(&o->lk);
    for (;;) {
        for (i = 0; i < o->nland; i++) {
            if (o->land[i].key == key) {
                break;
            }
        }
        if ((i < o->nland) && (o->land[i].n >= nwrites)) {
            o->land[i].n -= nwrites;
            if (o->land[i].n == 0) {
                o->land[i] = o->land[--o->nland];
            }
            rc = 0;
            break;
        }
        if ((i < o->nland) && (o->land[i].n > seen)) {
            /* Writes still landing: the chunk moves, however slowly. */
            seen     = o->land[i].n;
            deadline = scomm_now_ns() + (uint64_t)KV_STALL_MS * 1000000ull;
        }
        if (__atomic_load_n(&ep->closing, __ATOMIC_ACQUIRE) ||
            (scomm_now_ns() > deadline)) {
            break;
        }
        scomm_kv_abs_deadline(&ts, SCOMM_MIN(deadline, scomm_now_ns() +
                                                           50000000ull));
        pthread_cond_timedwait(&o->cond, &o->lk, &ts);
    }
    pthread_mutex_unlock(&o->lk);
    return rc;
}

#else /* !SCOMM_HAVE_OFI */

scomm_status_t scomm_kv_ofi_open(scomm_kv_ep_t *ep, int fd)
{
    (void)ep;
    (void)fd;
    return scomm_kv_fail(SCOMM_ERR_UNSUPPORTED, "kv transport ofi: this "
                         "library was built without libfabric (install "
                         "libfabric-dev and rebuild with SCOMM_WITH_OFI)");
}

void scomm_kv_ofi_close(scomm_kv_ep_t *ep)
{
    (void)ep;
}

scomm_status_t scomm_kv_ofi_reg(scomm_kv_ep_t *ep, int id)
{
    (void)ep;
    (void)id;
    return SCOMM_OK;
}

void scomm_kv_ofi_dereg(scomm_kv_ep_t *ep, int id)
{
    (void)ep;
    (void)id;
}

size_t scomm_kv_ofi_offer(scomm_kv_ep_t *ep, kv_rx_t *rx, uint8_t *out,
                          char *why, size_t whylen)
{
    (void)ep;
    (void)rx;
    (void)out;
    snprintf(why, whylen, "the sender writes by RMA (transport ofi), this "
             "library was built without libfabric (libfabric-dev)");
    return 0;
}

void scomm_kv_ofi_rx_free(kv_rx_t *rx)
{
    (void)rx;
}

int scomm_kv_ofi_take_offer(scomm_kv_ep_t *ep, kv_sx_t *sx,
                            const uint8_t *pl, size_t len, char *why,
                            size_t whylen)
{
    (void)ep;
    (void)sx;
    (void)pl;
    (void)len;
    snprintf(why, whylen, "built without libfabric (libfabric-dev)");
    return -1;
}

int scomm_kv_ofi_put(kv_stream_t *st, kv_sx_t *sx, uint32_t seq,
                     kv_piece_t *pc, int n, uint32_t *nwrites)
{
    (void)sx;
    (void)seq;
    (void)pc;
    (void)n;
    *nwrites = 0;
    snprintf(st->why_tx, sizeof(st->why_tx), "built without libfabric");
    return -1;
}

int scomm_kv_ofi_landed(kv_stream_t *st, kv_rx_t *rx, uint32_t seq,
                        uint32_t nwrites)
{
    (void)st;
    (void)rx;
    (void)seq;
    (void)nwrites;
    return -1;
}

#endif /* SCOMM_HAVE_OFI */
