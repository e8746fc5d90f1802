/*
 * kv_wire.c - encoding and checking of the KV channel's frames (see the
 * wire design notes in kv.h and docs/kv.md). Everything read from a socket
 * goes through a check here before any other code acts on it, and these
 * functions are what tests/fuzz/fuzz_kv_wire.c exercises.
 *
 * Design notes:
 *  1. All integers are little endian, written byte by byte, so the format
 *     does not depend on the host.
 *  2. A check never trusts a length before bounding it: HELLO is fixed
 *     size, BEGIN's tables are bounded by SCOMM_KV_PLAN_MAX and must fill
 *     the payload exactly, DATA is bounded by the receiver's chunk limit.
 *  3. A failing check writes a non-empty reason.
 */
#include "kv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void kv_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void kv_put32(uint8_t *p, uint32_t v)
{
    int i;

    for (i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void kv_put64(uint8_t *p, uint64_t v)
{
    int i;

    for (i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint16_t kv_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t kv_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static uint64_t kv_get64(const uint8_t *p)
{
    return (uint64_t)kv_get32(p) | ((uint64_t)kv_get32(p + 4) << 32);
}

void scomm_kv_hdr_encode(const scomm_kv_hdr_t *h, uint8_t *out)
{
    kv_put32(out + 0, h->magic);
    kv_put16(out + 4, h->version);
    kv_put16(out + 6, h->type);
    kv_put64(out + 8, h->xfer_id);
    kv_put32(out + 16, h->seq);
    kv_put32(out + 20, h->flags);
    kv_put64(out + 24, h->len);
    kv_put64(out + 32, h->raw_len);
    kv_put32(out + 40, h->crc);
    kv_put32(out + 44, h->aux);
}

void scomm_kv_hdr_decode(const uint8_t *in, scomm_kv_hdr_t *h)
{
    h->magic   = kv_get32(in + 0);
    h->version = kv_get16(in + 4);
    h->type    = kv_get16(in + 6);
    h->xfer_id = kv_get64(in + 8);
    h->seq     = kv_get32(in + 16);
    h->flags   = kv_get32(in + 20);
    h->len     = kv_get64(in + 24);
    h->raw_len = kv_get64(in + 32);
    h->crc     = kv_get32(in + 40);
    h->aux     = kv_get32(in + 44);
}

int scomm_kv_hdr_check(const scomm_kv_hdr_t *h, uint64_t chunk_max,
                       char *why, size_t whylen)
{
    uint64_t max;

    if (h->magic != SCOMM_KV_MAGIC) {
        snprintf(why, whylen, "bad magic 0x%08x", h->magic);
        return -1;
    }
    if (h->version != SCOMM_KV_VERSION) {
        snprintf(why, whylen, "protocol version %u, expected %u",
                 (unsigned)h->version, (unsigned)SCOMM_KV_VERSION);
        return -1;
    }
    switch (h->type) {
    case SCOMM_KV_T_HELLO:
    case SCOMM_KV_T_HELLO_OK:
        max = SCOMM_KV_HELLO_SIZE;
        if (h->len != max) {
            snprintf(why, whylen, "hello of %llu bytes, expected %llu",
                     (unsigned long long)h->len, (unsigned long long)max);
            return -1;
        }
        return 0;
    case SCOMM_KV_T_BEGIN:
        max = SCOMM_KV_BEGIN_FIXED + 8ull * SCOMM_KV_PLAN_MAX +
              SCOMM_KV_BEGIN_HEADS;
        break;
    case SCOMM_KV_T_BEGIN_ERR:
    case SCOMM_KV_T_HELLO_NO:
        max = SCOMM_KV_ERRTEXT_MAX;
        break;
    case SCOMM_KV_T_DATA:
        max = (chunk_max < SCOMM_KV_CHUNK_MAX) ? chunk_max
                                               : SCOMM_KV_CHUNK_MAX;
        if (h->raw_len > SCOMM_KV_CHUNK_MAX) {
            snprintf(why, whylen, "chunk of %llu raw bytes, limit %llu",
                     (unsigned long long)h->raw_len,
                     (unsigned long long)SCOMM_KV_CHUNK_MAX);
            return -1;
        }
        break;
    case SCOMM_KV_T_BEGIN_OK: /* the RMA offer, if any */
        max = SCOMM_KV_OFFER_FIXED + SCOMM_KV_OFFER_ADDRMAX;
        break;
    case SCOMM_KV_T_RDATA:
        /* len counts bytes written by RMA: none follow on the socket. */
        if ((h->len > SCOMM_KV_CHUNK_MAX) ||
            (h->raw_len > SCOMM_KV_CHUNK_MAX)) {
            snprintf(why, whylen, "rma chunk of %llu bytes (%llu raw), "
                     "limit %llu", (unsigned long long)h->len,
                     (unsigned long long)h->raw_len,
                     (unsigned long long)SCOMM_KV_CHUNK_MAX);
            return -1;
        }
        return 0;
    case SCOMM_KV_T_DESC:
    case SCOMM_KV_T_ACK:
    case SCOMM_KV_T_NACK:
    case SCOMM_KV_T_HEARTBEAT:
    case SCOMM_KV_T_BYE:
        max = 0;
        break;
    default:
        snprintf(why, whylen, "unknown frame type %u", (unsigned)h->type);
        return -1;
    }
    if (h->len > max) {
        snprintf(why, whylen, "frame type %u of %llu bytes, limit %llu",
                 (unsigned)h->type, (unsigned long long)h->len,
                 (unsigned long long)max);
        return -1;
    }
    return 0;
}

void scomm_kv_hello_encode(const scomm_kv_hello_t *h, uint8_t *out)
{
    memset(out, 0, SCOMM_KV_HELLO_SIZE);
    memcpy(out, h->token, SCOMM_KV_TOKEN_MAX);
    out[SCOMM_KV_TOKEN_MAX - 1] = 0;
    kv_put64(out + 64, h->session);
    kv_put32(out + 72, h->stream);
    kv_put32(out + 76, h->nstreams);
    kv_put32(out + 80, (uint32_t)h->pid);
    kv_put16(out + 84, h->flags);
    kv_put16(out + 86, h->port);
    kv_put64(out + 88, h->probe_addr);
    kv_put64(out + 96, h->probe_val);
    memcpy(out + 104, h->boot_id, sizeof(h->boot_id));
    kv_put32(out + 120, h->epoch);
    kv_put32(out + 124, h->redial_ms);
}

int scomm_kv_hello_decode(const uint8_t *in, size_t len,
                          scomm_kv_hello_t *h, char *why, size_t whylen)
{
    if (len != SCOMM_KV_HELLO_SIZE) {
        snprintf(why, whylen, "hello of %zu bytes", len);
        return -1;
    }
    memset(h, 0, sizeof(*h));
    if (memchr(in, 0, SCOMM_KV_TOKEN_MAX) == NULL) {
        snprintf(why, whylen, "hello token not terminated");
        return -1;
    }
    memcpy(h->token, in, SCOMM_KV_TOKEN_MAX);
    h->session  = kv_get64(in + 64);
    h->stream   = kv_get32(in + 72);
    h->nstreams = kv_get32(in + 76);
    h->pid      = (int32_t)kv_get32(in + 80);
    h->flags    = kv_get16(in + 84);
    h->port     = kv_get16(in + 86);
    h->probe_addr = kv_get64(in + 88);
    h->probe_val  = kv_get64(in + 96);
    memcpy(h->boot_id, in + 104, sizeof(h->boot_id));
    h->epoch     = kv_get32(in + 120);
    h->redial_ms = kv_get32(in + 124);
    if ((h->nstreams < 1) || (h->nstreams > SCOMM_KV_MAX_STREAMS) ||
        (h->stream >= h->nstreams)) {
        snprintf(why, whylen, "hello stream %u of %u (limit %d)",
                 h->stream, h->nstreams, SCOMM_KV_MAX_STREAMS);
        return -1;
    }
    if ((h->flags & ~SCOMM_KV_HELLO_RESUME) != 0) {
        snprintf(why, whylen, "hello flags 0x%x unknown", (unsigned)h->flags);
        return -1;
    }
    /* A re-dial names which connection of the stream it is; a first
     * connection has none. */
    if (((h->flags & SCOMM_KV_HELLO_RESUME) != 0) != (h->epoch != 0)) {
        snprintf(why, whylen, "hello %s with epoch %u",
                 (h->flags & SCOMM_KV_HELLO_RESUME) ? "re-dial" : "first "
                 "connection", h->epoch);
        return -1;
    }
    if (h->redial_ms > SCOMM_KV_REDIAL_MAX_MS) {
        snprintf(why, whylen, "hello re-dial window %u ms, limit %u",
                 h->redial_ms, SCOMM_KV_REDIAL_MAX_MS);
        return -1;
    }
    return 0;
}

size_t scomm_kv_begin_size(const scomm_kv_begin_t *b)
{
    if ((b->num_src_blocks > SCOMM_KV_PLAN_MAX) ||
        (b->num_dst_blocks > SCOMM_KV_PLAN_MAX)) {
        return 0;
    }
    return SCOMM_KV_BEGIN_FIXED +
           4 * ((size_t)b->num_src_blocks + b->num_dst_blocks) +
           (b->has_heads ? SCOMM_KV_BEGIN_HEADS : 0);
}

void scomm_kv_begin_encode(const scomm_kv_begin_t *b, uint8_t *out)
{
    const int32_t f[16] = {
        b->src_layers, b->heads, b->head_dim, b->src_block_tokens,
        b->src_num_blocks, b->src_dtype, b->src_order, b->wire_dtype,
        b->compression, b->first_layer, b->num_layers, b->dst_region,
        (int32_t)b->blocks_per_chunk, (int32_t)b->num_src_blocks,
        (int32_t)b->num_dst_blocks, (int32_t)b->zero_copy
    };
    uint8_t *p;
    uint32_t i;

    for (i = 0; i < 16; i++) {
        kv_put32(out + 4 * i, (uint32_t)f[i]);
    }
    kv_put64(out + 64, b->num_tokens);
    kv_put64(out + 72, b->src_base);
    kv_put64(out + 80, b->src_bytes);
    kv_put64(out + 88, b->nchunks);
    p = out + SCOMM_KV_BEGIN_FIXED;
    for (i = 0; i < b->num_src_blocks; i++, p += 4) {
        kv_put32(p, (uint32_t)b->src_blocks[i]);
    }
    for (i = 0; i < b->num_dst_blocks; i++, p += 4) {
        kv_put32(p, (uint32_t)b->dst_blocks[i]);
    }
    if (b->has_heads) {
        kv_put32(p, (uint32_t)b->src_head_off);
        kv_put32(p + 4, (uint32_t)b->src_head_cnt);
        kv_put32(p + 8, (uint32_t)b->dst_head_off);
        kv_put32(p + 12, (uint32_t)b->dst_head_cnt);
    }
}

/* The head range of a decoded BEGIN (after the layout checks): inside the
 * source's heads, the counts equal, and no same-host copy of whole source
 * blocks when only some of their heads move. */
static int kv_begin_heads(scomm_kv_begin_t *b, const uint8_t *ext, char *why,
                          size_t whylen)
{
    if (ext == NULL) {
        b->src_head_off = 0;
        b->src_head_cnt = b->heads;
        b->dst_head_off = 0;
        b->dst_head_cnt = 0;
        return 0;
    }
    b->has_heads    = 1;
    b->src_head_off = (int32_t)kv_get32(ext);
    b->src_head_cnt = (int32_t)kv_get32(ext + 4);
    b->dst_head_off = (int32_t)kv_get32(ext + 8);
    b->dst_head_cnt = (int32_t)kv_get32(ext + 12);
    if ((b->src_head_off < 0) || (b->src_head_cnt < 1) ||
        (b->src_head_off > b->heads - b->src_head_cnt) ||
        (b->dst_head_off < 0) || (b->dst_head_off > 4096) ||
        ((b->dst_head_cnt != 0) && (b->dst_head_cnt != b->src_head_cnt))) {
        snprintf(why, whylen, "head range: source heads %d+%d of %d to "
                 "destination heads %d+%d", b->src_head_off,
                 b->src_head_cnt, b->heads, b->dst_head_off,
                 b->dst_head_cnt);
        return -1;
    }
    if ((b->zero_copy & SCOMM_KV_BEGIN_ZC_CMA) &&
        (b->src_head_cnt != b->heads)) {
        snprintf(why, whylen, "same-host copy asked for %d of %d heads",
                 b->src_head_cnt, b->heads);
        return -1;
    }
    return 0;
}

int scomm_kv_begin_decode(const uint8_t *in, size_t len,
                          scomm_kv_begin_t *b, char *why, size_t whylen)
{
    int32_t f[16];
    uint64_t need, cpl;
    uint32_t i;

    memset(b, 0, sizeof(*b));
    if (len < SCOMM_KV_BEGIN_FIXED) {
        snprintf(why, whylen, "begin of %zu bytes, below %d", len,
                 SCOMM_KV_BEGIN_FIXED);
        return -1;
    }
    for (i = 0; i < 16; i++) {
        f[i] = (int32_t)kv_get32(in + 4 * i);
    }
    b->src_layers = f[0];
    b->heads = f[1];
    b->head_dim = f[2];
    b->src_block_tokens = f[3];
    b->src_num_blocks = f[4];
    b->src_dtype = f[5];
    b->src_order = f[6];
    b->wire_dtype = f[7];
    b->compression = f[8];
    b->first_layer = f[9];
    b->num_layers = f[10];
    b->dst_region = f[11];
    b->blocks_per_chunk = (uint32_t)f[12];
    b->num_src_blocks = (uint32_t)f[13];
    b->num_dst_blocks = (uint32_t)f[14];
    b->zero_copy = (uint32_t)f[15];
    b->num_tokens = kv_get64(in + 64);
    b->src_base   = kv_get64(in + 72);
    b->src_bytes  = kv_get64(in + 80);
    b->nchunks    = kv_get64(in + 88);
    if ((b->num_src_blocks > SCOMM_KV_PLAN_MAX) ||
        (b->num_dst_blocks > SCOMM_KV_PLAN_MAX)) {
        snprintf(why, whylen, "block tables of %u and %u entries, limit %u",
                 b->num_src_blocks, b->num_dst_blocks, SCOMM_KV_PLAN_MAX);
        return -1;
    }
    need = SCOMM_KV_BEGIN_FIXED +
           4ull * ((uint64_t)b->num_src_blocks + b->num_dst_blocks);
    if ((need != len) && (need + SCOMM_KV_BEGIN_HEADS != len)) {
        snprintf(why, whylen, "begin of %zu bytes, tables need %llu (or %d "
                 "more with a head range)", len, (unsigned long long)need,
                 SCOMM_KV_BEGIN_HEADS);
        return -1;
    }
    if ((b->src_layers < 1) || (b->heads < 1) || (b->head_dim < 1) ||
        (b->src_block_tokens < 1) || (b->src_num_blocks < 1) ||
        (b->heads > 4096) || (b->head_dim > 65536) ||
        (b->src_block_tokens > 65536)) {
        snprintf(why, whylen, "bad source layout (%d layers, %d heads, "
                 "dim %d, block %d, %d blocks)", b->src_layers, b->heads,
                 b->head_dim, b->src_block_tokens, b->src_num_blocks);
        return -1;
    }
    if ((b->src_order < 0) || (b->src_order > 1) || (b->wire_dtype < 0) ||
        (b->wire_dtype > 2) || (b->compression < 0) ||
        (b->compression > 2)) {
        snprintf(why, whylen, "bad order %d, wire dtype %d or compression "
                 "%d", b->src_order, b->wire_dtype, b->compression);
        return -1;
    }
    if ((b->src_dtype != SCOMM_FLOAT16) && (b->src_dtype != SCOMM_BFLOAT16) &&
        (b->src_dtype != SCOMM_FLOAT32)) {
        snprintf(why, whylen, "source dtype %d is not a KV dtype",
                 b->src_dtype);
        return -1;
    }
    if ((b->num_layers < 1) || (b->first_layer < 0) ||
        (b->first_layer > b->src_layers - b->num_layers)) {
        snprintf(why, whylen, "layers %d+%d outside %d", b->first_layer,
                 b->num_layers, b->src_layers);
        return -1;
    }
    if ((b->num_tokens < 1) ||
        (b->num_src_blocks != (b->num_tokens + (uint64_t)b->src_block_tokens
                               - 1) / (uint64_t)b->src_block_tokens)) {
        snprintf(why, whylen, "%u source blocks for %llu tokens of %d",
                 b->num_src_blocks, (unsigned long long)b->num_tokens,
                 b->src_block_tokens);
        return -1;
    }
    if ((b->blocks_per_chunk < 1) ||
        (b->blocks_per_chunk > b->num_src_blocks)) {
        snprintf(why, whylen, "%u blocks per chunk for %u blocks",
                 b->blocks_per_chunk, b->num_src_blocks);
        return -1;
    }
    cpl = (b->num_src_blocks + b->blocks_per_chunk - 1) / b->blocks_per_chunk;
    if (b->nchunks != cpl * (uint64_t)b->num_layers) {
        snprintf(why, whylen, "%llu chunks, plan needs %llu",
                 (unsigned long long)b->nchunks,
                 (unsigned long long)(cpl * (uint64_t)b->num_layers));
        return -1;
    }
    if (kv_begin_heads(b, (len > need) ? in + need : NULL, why,
                       whylen) != 0) {
        return -1;
    }
    b->src_blocks = malloc(4 * ((size_t)b->num_src_blocks +
                                b->num_dst_blocks + 1));
    if (b->src_blocks == NULL) {
        snprintf(why, whylen, "out of memory for the block tables");
        return -1;
    }
    b->dst_blocks = b->src_blocks + b->num_src_blocks;
    for (i = 0; i < b->num_src_blocks; i++) {
        b->src_blocks[i] = (int32_t)kv_get32(in + SCOMM_KV_BEGIN_FIXED + 4 * i);
        if ((b->src_blocks[i] < 0) ||
            (b->src_blocks[i] >= b->src_num_blocks)) {
            snprintf(why, whylen, "source block %d outside %d",
                     b->src_blocks[i], b->src_num_blocks);
            scomm_kv_begin_free(b);
            return -1;
        }
    }
    for (i = 0; i < b->num_dst_blocks; i++) {
        b->dst_blocks[i] = (int32_t)kv_get32(in + SCOMM_KV_BEGIN_FIXED +
                                             4 * ((size_t)b->num_src_blocks +
                                                  i));
    }
    return 0;
}

void scomm_kv_begin_free(scomm_kv_begin_t *b)
{
    free(b->src_blocks);
    b->src_blocks = NULL;
    b->dst_blocks = NULL;
}

size_t scomm_kv_offer_encode(const scomm_kv_offer_t *o, uint8_t *out)
{
    memset(out, 0, SCOMM_KV_OFFER_FIXED);
    kv_put32(out + 0, o->flags);
    kv_put32(out + 4, o->addrlen);
    kv_put64(out + 8, o->tag);
    kv_put64(out + 16, o->base);
    kv_put64(out + 24, o->key);
    kv_put64(out + 32, o->block_bytes);
    kv_put64(out + 40, o->blocks_per_layer);
    kv_put64(out + 48, o->slot_bytes);
    kv_put32(out + 56, o->nslots);
    memcpy(out + SCOMM_KV_OFFER_FIXED, o->addr, o->addrlen);
    return SCOMM_KV_OFFER_FIXED + o->addrlen;
}

int scomm_kv_offer_decode(const uint8_t *in, size_t len, scomm_kv_offer_t *o,
                          char *why, size_t whylen)
{
    memset(o, 0, sizeof(*o));
    if (len < SCOMM_KV_OFFER_FIXED) {
        snprintf(why, whylen, "rma offer of %zu bytes, below %d", len,
                 SCOMM_KV_OFFER_FIXED);
        return -1;
    }
    o->flags            = kv_get32(in + 0);
    o->addrlen          = kv_get32(in + 4);
    o->tag              = kv_get64(in + 8);
    o->base             = kv_get64(in + 16);
    o->key              = kv_get64(in + 24);
    o->block_bytes      = kv_get64(in + 32);
    o->blocks_per_layer = kv_get64(in + 40);
    o->slot_bytes       = kv_get64(in + 48);
    o->nslots           = kv_get32(in + 56);
    if ((o->addrlen == 0) || (o->addrlen > SCOMM_KV_OFFER_ADDRMAX) ||
        (len != SCOMM_KV_OFFER_FIXED + (size_t)o->addrlen) ||
        ((o->flags & ~SCOMM_KV_OFFER_DIRECT) != 0) ||
        ((o->flags & SCOMM_KV_OFFER_DIRECT)
             ? ((o->block_bytes == 0) || (o->blocks_per_layer == 0))
             : ((o->nslots == 0) || (o->nslots > 4096) ||
                (o->slot_bytes == 0) ||
                (o->slot_bytes > SCOMM_KV_CHUNK_MAX)))) {
        snprintf(why, whylen, "bad rma offer: %zu bytes, address of %u, "
                 "flags 0x%x, %u slots of %llu bytes", len, o->addrlen,
                 o->flags, o->nslots, (unsigned long long)o->slot_bytes);
        return -1;
    }
    memcpy(o->addr, in + SCOMM_KV_OFFER_FIXED, o->addrlen);
    return 0;
}

void scomm_kv_ipc_offer_encode(const scomm_kv_ipc_offer_t *o, uint8_t *out)
{
    memset(out, 0, SCOMM_KV_IPC_OFFER_SIZE);
    kv_put32(out + 0, SCOMM_KV_IPC_MAGIC);
    kv_put32(out + 4, (uint32_t)o->pid);
    kv_put64(out + 8, o->off);
    kv_put64(out + 16, o->bytes);
    kv_put32(out + 24, (uint32_t)o->l.num_layers);
    kv_put32(out + 28, (uint32_t)o->l.num_kv_heads);
    kv_put32(out + 32, (uint32_t)o->l.head_dim);
    kv_put32(out + 36, (uint32_t)o->l.block_tokens);
    kv_put32(out + 40, (uint32_t)o->l.num_blocks);
    kv_put32(out + 44, (uint32_t)o->l.dtype);
    kv_put32(out + 48, (uint32_t)o->l.order);
    memcpy(out + 56, o->host, strnlen(o->host, SCOMM_KV_IPC_HOST_MAX - 1));
    memcpy(out + 96, o->handle, sizeof(o->handle));
}

int scomm_kv_ipc_offer_decode(const uint8_t *in, size_t len,
                              scomm_kv_ipc_offer_t *o, char *why,
                              size_t whylen)
{
    char lwhy[160];
    uint64_t need;

    memset(o, 0, sizeof(*o));
    if ((len != SCOMM_KV_IPC_OFFER_SIZE) ||
        (kv_get32(in) != SCOMM_KV_IPC_MAGIC)) {
        snprintf(why, whylen, "ipc offer of %zu bytes (expected %d) or bad "
                 "magic", len, SCOMM_KV_IPC_OFFER_SIZE);
        return -1;
    }
    o->pid            = (int32_t)kv_get32(in + 4);
    o->off            = kv_get64(in + 8);
    o->bytes          = kv_get64(in + 16);
    o->l.num_layers   = (int32_t)kv_get32(in + 24);
    o->l.num_kv_heads = (int32_t)kv_get32(in + 28);
    o->l.head_dim     = (int32_t)kv_get32(in + 32);
    o->l.block_tokens = (int32_t)kv_get32(in + 36);
    o->l.num_blocks   = (int32_t)kv_get32(in + 40);
    o->l.dtype        = (scomm_dtype_t)kv_get32(in + 44);
    o->l.order        = (int32_t)kv_get32(in + 48);
    memcpy(o->host, in + 56, SCOMM_KV_IPC_HOST_MAX - 1);
    memcpy(o->handle, in + 96, sizeof(o->handle));
    if (o->pid <= 0) {
        snprintf(why, whylen, "ipc offer: pid %d (a process id is above 0)",
                 (int)o->pid);
        return -1;
    }
    if (scomm_kv_layout_check(&o->l, lwhy, sizeof(lwhy)) != 0) {
        snprintf(why, whylen, "ipc offer: %s", lwhy);
        return -1;
    }
    if (__builtin_mul_overflow((uint64_t)o->l.num_layers,
                               (uint64_t)o->l.num_blocks, &need) ||
        __builtin_mul_overflow(need, scomm_kv_block_bytes(&o->l), &need) ||
        (o->bytes < need) || (o->off + o->bytes < o->off)) {
        snprintf(why, whylen, "ipc offer: region of %llu bytes at offset "
                 "%llu, its layout needs %llu",
                 (unsigned long long)o->bytes, (unsigned long long)o->off,
                 (unsigned long long)need);
        return -1;
    }
    return 0;
}
