/*
 * kv.h - internals of the KV-cache transfer channel (src/kv): the wire
 * format, CRC32C, the layout/dtype/quantisation conversions and the test
 * hooks. The public API is in include/scomm.h; the protocol is described in
 * docs/kv.md.
 *
 * Wire design notes (every frame, both directions):
 *  1. A frame is a 48-byte header, little endian, then `len` payload bytes:
 *       0 magic u32 "SKV1"  4 version u16  6 type u16
 *       8 xfer_id u64      16 seq u32     20 flags u32
 *      24 len u64          32 raw_len u64 40 crc u32   44 aux u32
 *  2. The receiver checks magic, version and type, and bounds len by type
 *     (scomm_kv_hdr_check) before it reads or allocates anything.
 *  3. The first frame on each stream is HELLO (connector to listener),
 *     answered by HELLO_OK or HELLO_NO; nothing else precedes it.
 *  4. A transfer starts with BEGIN (sender) and BEGIN_OK or BEGIN_ERR
 *     (receiver, with a reason); no DATA/DESC of it is sent before
 *     BEGIN_OK, so the receiver always knows a transfer before its chunks.
 *  5. Each DATA/DESC chunk is answered by one ACK or NACK on the same
 *     stream, in order; a sender keeps at most prefetch_depth chunks
 *     unanswered per stream and never a copy of them: a NACKed chunk, or one
 *     unanswered on a stream that broke, is packed again from the source.
 *  6. Chunks are idempotent: a chunk stored twice writes the same bytes, and
 *     the receiver counts each (transfer, seq) once.
 *  7. RDATA (the RMA data plane, docs/kv.md "Over libfabric RMA") is a
 *     header only: the chunk's `len` bytes were written into the
 *     receiver's memory with libfabric RMA writes, `aux` of them, each
 *     with the completion data (tag << 32 | seq) the receiver counts;
 *     `flags` names the landing slot (bounce) or is KV_RDATA_DIRECT. It
 *     is answered by ACK or NACK like DATA. BEGIN_OK answers a BEGIN that
 *     asked for RMA (zero_copy & SCOMM_KV_BEGIN_ZC_RMA) with the offer
 *     (scomm_kv_offer_t) as its payload.
 *  8. A lost stream is re-dialled by the side that dialled it, to the port
 *     the other side named in its HELLO_OK, with a HELLO that carries the
 *     RESUME flag, the session and stream index and an epoch larger than
 *     any before for that stream; anything else on that port is refused.
 *  9. Same-host CUDA IPC (device regions on both sides, docs/kv.md "CUDA
 *     IPC"): a BEGIN may ask (zero_copy & SCOMM_KV_BEGIN_ZC_IPC); a
 *     BEGIN_OK that grants it has aux & SCOMM_KV_BEGIN_OK_IPC and the
 *     receiver's offer (scomm_kv_ipc_offer_t) as its payload. A chunk the
 *     sender copied device to device into the receiver's region is then a
 *     DESC header with flags SCOMM_KV_DESC_IPC (no payload, crc 0),
 *     answered by ACK; any chunk of such a transfer may still come as
 *     DATA (the sender staged it).
 */
#ifndef SCOMM_KV_H
#define SCOMM_KV_H

#include <stddef.h>
#include <stdint.h>

#include "scomm.h"

#define SCOMM_KV_MAGIC       0x31564b53u /* "SKV1" little endian */
#define SCOMM_KV_VERSION     1
#define SCOMM_KV_HDR_SIZE    48
#define SCOMM_KV_TOKEN_MAX   64
#define SCOMM_KV_MAX_STREAMS 16
#define SCOMM_KV_MAX_REGIONS 64
#define SCOMM_KV_CHUNK_MAX   (256ull << 20) /* payload bound, any chunk */
#define SCOMM_KV_PLAN_MAX    (1u << 24)     /* blocks per table */
#define SCOMM_KV_ERRTEXT_MAX 256

typedef enum {
    SCOMM_KV_T_HELLO = 1,
    SCOMM_KV_T_HELLO_OK,
    SCOMM_KV_T_HELLO_NO,
    SCOMM_KV_T_BEGIN,
    SCOMM_KV_T_BEGIN_OK,
    SCOMM_KV_T_BEGIN_ERR,
    SCOMM_KV_T_DATA,
    SCOMM_KV_T_DESC,
    SCOMM_KV_T_ACK,
    SCOMM_KV_T_NACK,
    SCOMM_KV_T_HEARTBEAT,
    SCOMM_KV_T_BYE,
    SCOMM_KV_T_RDATA,
    SCOMM_KV_T_MAX
} scomm_kv_type_t;

typedef struct scomm_kv_hdr {
    uint32_t magic;
    uint16_t version;
    uint16_t type;
    uint64_t xfer_id;
    uint32_t seq;
    uint32_t flags;
    uint64_t len;
    uint64_t raw_len;
    uint32_t crc;
    uint32_t aux;
} scomm_kv_hdr_t;

/* HELLO payload (connector -> listener; fixed size). The fields from
 * flags on were zero in the first version of the format (a pad and unused
 * bytes), so a peer without reconnection sends "never re-dials" / "takes no
 * re-dials" and is understood. */
#define SCOMM_KV_HELLO_SIZE     128
#define SCOMM_KV_HELLO_RESUME   0x1u     /* re-dial of a lost stream */
#define SCOMM_KV_REDIAL_MAX_MS  600000u  /* bound of redial_ms */
typedef struct scomm_kv_hello {
    char     token[SCOMM_KV_TOKEN_MAX]; /* NUL-terminated */
    uint64_t session;     /* random, same on every stream of one endpoint */
    uint32_t stream;      /* this stream's index */
    uint32_t nstreams;
    int32_t  pid;
    uint16_t flags;       /* SCOMM_KV_HELLO_RESUME or 0 */
    uint16_t port;        /* HELLO_OK: port that takes re-dials, 0: none */
    uint64_t probe_addr;  /* address of probe_val in the sender */
    uint64_t probe_val;   /* random: the peer reads it to test CMA */
    uint8_t  boot_id[16]; /* start of /proc/sys/kernel/random/boot_id */
    uint32_t epoch;       /* RESUME: the stream's connection number, > 0 */
    uint32_t redial_ms;   /* HELLO: how long the connector re-dials a lost
                             stream (0: never), <= SCOMM_KV_REDIAL_MAX_MS */
} scomm_kv_hello_t;

/* BEGIN_ERR aux: why the receiver refused (0 for peers that predate it). */
#define SCOMM_KV_BEGIN_ERR_MISMATCH    0u /* plan or layout disagree */
#define SCOMM_KV_BEGIN_ERR_UNSUPPORTED 1u /* compression not built in */

/* BEGIN zero_copy bits: the receiver may copy from our region (CMA), and
 * we ask for the RMA data plane (we write, it answers with an offer). */
#define SCOMM_KV_BEGIN_ZC_CMA 0x1u
#define SCOMM_KV_BEGIN_ZC_RMA 0x2u
/* ... and the sender can write into a device region of the receiver over
 * CUDA IPC (its own region is device memory, the encoding native). */
#define SCOMM_KV_BEGIN_ZC_IPC 0x4u

/* BEGIN_OK aux: the receiver copies from our region (CMA), or it offers
 * its device region over CUDA IPC (the payload is the IPC offer). */
#define SCOMM_KV_BEGIN_OK_CMA 0x1u
#define SCOMM_KV_BEGIN_OK_IPC 0x2u
/* DESC flags: 0 the receiver reads the chunk (CMA); IPC: the sender
 * already wrote it into the receiver's device region. */
#define SCOMM_KV_DESC_IPC 0x1u

/* BEGIN_OK payload granting CUDA IPC, fixed SCOMM_KV_IPC_OFFER_SIZE bytes:
 *   0 magic u32 "SKVI"   4 pid i32          8 off u64      16 bytes u64
 *  24 num_layers i32    28 num_kv_heads i32 32 head_dim i32
 *  36 block_tokens i32  40 num_blocks i32   44 dtype i32   48 order i32
 *  52 pad u32           56 host[40], NUL-padded            96 handle[64]
 * The destination region's layout, its offset `off` in the allocation the
 * handle (cudaIpcMemHandle_t) names and its size; the receiver's pid and
 * host identity (boot id, or "id:" SCOMM_HOST_ID). */
#define SCOMM_KV_IPC_MAGIC      0x49564b53u /* "SKVI" little endian */
#define SCOMM_KV_IPC_OFFER_SIZE 160
#define SCOMM_KV_IPC_HOST_MAX   40
typedef struct scomm_kv_ipc_offer {
    int32_t           pid;
    uint64_t          off, bytes;
    scomm_kv_layout_t l;
    char              host[SCOMM_KV_IPC_HOST_MAX]; /* NUL-terminated */
    uint8_t           handle[64];
} scomm_kv_ipc_offer_t;

/* BEGIN_OK payload of an RMA transfer (the receiver's offer), fixed 64
 * bytes then the receiver's libfabric endpoint address (addrlen bytes):
 *   0 flags u32 (1: direct, chunks land in place)  4 addrlen u32
 *   8 tag u64    16 base u64   24 key u64   32 block_bytes u64
 *  40 blocks_per_layer u64      48 slot_bytes u64  56 nslots u32, pad u32
 * Direct: base/key are the destination region's; else its landing
 * (bounce) area's, nslots slots of slot_bytes each. base is 0 when the
 * provider addresses registrations by offset (no FI_MR_VIRT_ADDR). */
#define SCOMM_KV_OFFER_FIXED   64
#define SCOMM_KV_OFFER_ADDRMAX 128
#define SCOMM_KV_OFFER_DIRECT  0x1u
typedef struct scomm_kv_offer {
    uint32_t flags, addrlen;
    uint64_t tag, base, key, block_bytes, blocks_per_layer, slot_bytes;
    uint32_t nslots;
    uint8_t  addr[SCOMM_KV_OFFER_ADDRMAX];
} scomm_kv_offer_t;

/* BEGIN payload: the plan, the source layout and the encoding; after the
 * block tables, only when the plan names a head range, 4 i32 (src_head_off,
 * src_head_cnt, dst_head_off, dst_head_cnt). A BEGIN without them moves
 * all heads to a receiver with as many (its meaning before head ranges);
 * a peer from before head ranges refuses one with them (its length). */
#define SCOMM_KV_BEGIN_FIXED 96
#define SCOMM_KV_BEGIN_HEADS 16
typedef struct scomm_kv_begin {
    int32_t  src_layers, heads, head_dim, src_block_tokens;
    int32_t  src_num_blocks, src_dtype, src_order, wire_dtype;
    int32_t  compression, first_layer, num_layers, dst_region;
    uint32_t blocks_per_chunk, num_src_blocks, num_dst_blocks, zero_copy;
    uint64_t num_tokens, src_base, src_bytes, nchunks;
    int32_t *src_blocks; /* num_src_blocks, then */
    int32_t *dst_blocks; /* num_dst_blocks, after the fixed part */
    /* Head range. Decoded: src_head_cnt >= 1 and inside heads (without
     * the extension: 0 and heads), dst_head_cnt 0 or src_head_cnt (0: up
     * to the receiver's last head); wire blocks hold src_head_cnt heads. */
    uint32_t has_heads;  /* the extension is present */
    int32_t  src_head_off, src_head_cnt, dst_head_off, dst_head_cnt;
} scomm_kv_begin_t;

/* ---- wire (kv_wire.c) ---- */
void scomm_kv_hdr_encode(const scomm_kv_hdr_t *h, uint8_t *out);
void scomm_kv_hdr_decode(const uint8_t *in, scomm_kv_hdr_t *h);
/* 0 if the header may be acted on: magic, version, type and the payload
 * length bounded by type (chunk_max for DATA); else -1 and a reason. */
int scomm_kv_hdr_check(const scomm_kv_hdr_t *h, uint64_t chunk_max,
                       char *why, size_t whylen);
void scomm_kv_hello_encode(const scomm_kv_hello_t *h, uint8_t *out);
int scomm_kv_hello_decode(const uint8_t *in, size_t len,
                          scomm_kv_hello_t *h, char *why, size_t whylen);
/* Encoded size of a BEGIN, or 0 if the tables are too large. */
size_t scomm_kv_begin_size(const scomm_kv_begin_t *b);
void scomm_kv_begin_encode(const scomm_kv_begin_t *b, uint8_t *out);
/* Decode and check self-consistency (not against a region); on success
 * the tables point into a malloc'd array the caller frees with
 * scomm_kv_begin_free. */
int scomm_kv_begin_decode(const uint8_t *in, size_t len,
                          scomm_kv_begin_t *b, char *why, size_t whylen);
void scomm_kv_begin_free(scomm_kv_begin_t *b);
/* Encoded size of an offer (SCOMM_KV_OFFER_FIXED + addrlen). */
size_t scomm_kv_offer_encode(const scomm_kv_offer_t *o, uint8_t *out);
int scomm_kv_offer_decode(const uint8_t *in, size_t len, scomm_kv_offer_t *o,
                          char *why, size_t whylen);
void scomm_kv_ipc_offer_encode(const scomm_kv_ipc_offer_t *o, uint8_t *out);
/* Decode and check (size, magic, a valid layout, the region's bytes
 * covering it); 0 or -1 with a reason. */
int scomm_kv_ipc_offer_decode(const uint8_t *in, size_t len,
                              scomm_kv_ipc_offer_t *o, char *why,
                              size_t whylen);

/* ---- CRC32C (kv_crc.c) ---- */
uint32_t scomm_kv_crc32c(uint32_t crc, const void *buf, size_t len);
uint32_t scomm_kv_crc32c_sw(uint32_t crc, const void *buf, size_t len);
/* 1 if the hardware instruction is used. */
int scomm_kv_crc32c_hw(void);

/* ---- conversions (kv_conv.c) ---- */
int scomm_kv_layout_check(const scomm_kv_layout_t *l, char *why,
                          size_t whylen);
/* Offset in elements of row (kv, head, token) inside a block. */
size_t scomm_kv_row_off(const scomm_kv_layout_t *l, int kv, int head,
                        int token);
/* Wire bytes of one block in encoding wire_dtype (scales included). */
size_t scomm_kv_wire_block_bytes(const scomm_kv_layout_t *l, int wire_dtype);
/* Quantise one source block into out (scomm_kv_wire_block_bytes bytes):
 * per (kv, head) an fp32 scale then block_tokens * head_dim codes, tokens
 * in order. */
void scomm_kv_quant_block(const scomm_kv_layout_t *l, const void *blk,
                          int wire_dtype, uint8_t *out, float *tmp);
/* Dequantise one encoded block into float rows: dst[(kv*H + h)*Bt*D + t*D
 * + d]. */
void scomm_kv_dequant_block(const scomm_kv_layout_t *l, const uint8_t *in,
                            int wire_dtype, float *dst);
/* Copy token rows [t0, t1) of a source block (in the source layout or, if
 * srcf != NULL, as float rows from dequant) to the destination: token g of
 * the sequence (g = gbase + t) goes to dst block dst_tbl[g / Bd], source
 * head h to destination head dho + h (dho + sl heads <= dl heads). */
void scomm_kv_scatter_rows(const scomm_kv_layout_t *sl, const void *sblk,
                           const float *srcf, uint64_t gbase, int t0, int t1,
                           const scomm_kv_layout_t *dl, int dho,
                           uint8_t *dst_layer, const int32_t *dst_tbl,
                           float *tmp);
/* Copy heads [h0, h0 + n) of block blk (layout l) into out: a block of l's
 * order, size and dtype with n heads. */
void scomm_kv_pack_heads(const scomm_kv_layout_t *l, const void *blk, int h0,
                         int n, uint8_t *out);

/* ---- inner loops of the lossy encodings (kv_simd.c): AVX2 when the CPU
 * has it, else scalar; both give the same bits ---- */
/* max |x[i]| of n values of dtype dt (float16, bfloat16, float32). */
float scomm_kv_absmax(const void *src, scomm_dtype_t dt, size_t n);
/* codes: (n + 1) / 2 bytes, round(x[i] * inv) clamped to [-7, 7]. */
void scomm_kv_int4_encode(uint8_t *codes, const float *x, size_t n,
                          float inv);
void scomm_kv_int4_decode(float *dst, const uint8_t *codes, size_t n,
                          float scale);
/* Decode a whole encoded block straight into a destination block of the
 * same block size when both keep a (K|V, head) group in one run; 0 when
 * done, -1 when the layouts need the general path (dequant + scatter). */
int scomm_kv_decode_block_into(const scomm_kv_layout_t *sl, const uint8_t *in,
                               int wire_dtype, const scomm_kv_layout_t *dl,
                               uint8_t *dblk);
/* Test hook: 0 pins the scalar forms, -1 returns to the automatic choice. */
void scomm_kv_simd_force(int level);
/* 1 if the AVX2 forms are in use. */
int scomm_kv_simd_active(void);

/* ---- compression (kv_codec.c) ---- */
/* 1 if compression (scomm_kv_compress_t) is built into this library. */
int scomm_kv_codec_built(int compression);

/* ---- test hooks (kv_xfer.c) ---- */
/* Flip one byte in each of the next n chunks this endpoint receives,
 * before their CRC is checked (emulates damage on the wire). */
void scomm_kv_debug_corrupt(scomm_kv_ep_t *ep, int n);
/* Shut down stream idx (emulates one broken connection). */
void scomm_kv_debug_break_stream(scomm_kv_ep_t *ep, int idx);
/* Cut the stream of each of the next n device-source chunks this endpoint
 * sends, after the chunk is staged and before the next one is staged
 * ahead, once the loss is handled (the race of kv_send.c invariant 6). */
void scomm_kv_debug_cut_before_prefetch(scomm_kv_ep_t *ep, int n);
/* Force the socket path even on one host (1) or allow CMA again (0). */
void scomm_kv_debug_no_cma(scomm_kv_ep_t *ep, int on);
/* Hold (1) or release (0) reconnection: while held, a lost stream is
 * neither re-dialled nor accepted back (its window still runs). */
void scomm_kv_debug_hold_reconnect(scomm_kv_ep_t *ep, int on);
/* Behave (1) as if this library had no lz4 and no zstd, or not (0): a
 * submit or a peer's BEGIN that asks for one is refused as unsupported. */
void scomm_kv_debug_no_codecs(scomm_kv_ep_t *ep, int on);
/* Chunks this endpoint stored after they came by RMA (RDATA). */
uint64_t scomm_kv_debug_rma_chunks(scomm_kv_ep_t *ep);
/* Chunks this endpoint wrote (sender) or stored (receiver) over CUDA IPC
 * (DESC with SCOMM_KV_DESC_IPC). */
uint64_t scomm_kv_debug_ipc_chunks(scomm_kv_ep_t *ep);
/* The port that re-dials of this endpoint go to (the accepting side's own
 * port, or the peer's on the connecting side; 0: none) and the session. */
int scomm_kv_debug_redial_port(scomm_kv_ep_t *ep, uint64_t *session);

#endif /* SCOMM_KV_H */
