/*
 * kv_codec.c - the lossless compressions of KV chunks, lz4 and zstd, each
 * compiled in only when the build found its library (SCOMM_HAVE_LZ4,
 * SCOMM_HAVE_ZSTD; the Debian packages liblz4-dev and libzstd-dev). The
 * sender compresses a packed chunk here (scomm_kv_compress) and the
 * receiver restores it (scomm_kv_decompress); nothing else in src/kv
 * names either library.
 *
 * Design notes (invariants):
 *  1. A codec that is not built in is refused before any byte moves: at
 *     scomm_kv_submit on the sender, and at the BEGIN on the receiver,
 *     which answers BEGIN_ERR with SCOMM_KV_BEGIN_ERR_UNSUPPORTED so both
 *     sides' transfer fails with SCOMM_ERR_UNSUPPORTED, the message naming
 *     the codec and the package to install (scomm_kv_codec_missing). The
 *     endpoint and its other transfers go on.
 *  2. Compression contexts are per stream (st->zc on the TX thread, st->zd
 *     on the RX thread), made on first use and freed with the endpoint
 *     (scomm_kv_codec_free), so no two threads share one.
 *  3. A decompression succeeds only when it yields exactly the chunk's raw
 *     length; anything else is a bad chunk, never a short store.
 */
#include <stdio.h>

#include "kv_int.h"

#ifdef SCOMM_HAVE_LZ4
#include <lz4.h>
#endif
#ifdef SCOMM_HAVE_ZSTD
#include <zstd.h>
#endif

static const char *kv_codec_name(int compression)
{
    switch (compression) {
    case SCOMM_KV_COMPRESS_NONE:
        return "none";
    case SCOMM_KV_COMPRESS_LZ4:
        return "lz4";
    case SCOMM_KV_COMPRESS_ZSTD:
        return "zstd";
    }
    return "?";
}

int scomm_kv_codec_built(int compression)
{
    switch (compression) {
    case SCOMM_KV_COMPRESS_NONE:
        return 1;
#ifdef SCOMM_HAVE_LZ4
    case SCOMM_KV_COMPRESS_LZ4:
        return 1;
#endif
#ifdef SCOMM_HAVE_ZSTD
    case SCOMM_KV_COMPRESS_ZSTD:
        return 1;
#endif
    }
    return 0;
}

int scomm_kv_codec_missing(const scomm_kv_ep_t *ep, int compression,
                           char *msg, size_t msglen)
{
    int pretend = (ep != NULL) &&
                  __atomic_load_n(&ep->no_codecs, __ATOMIC_RELAXED);

    if (scomm_kv_codec_built(compression) &&
        (!pretend || (compression == SCOMM_KV_COMPRESS_NONE))) {
        return 0;
    }
    snprintf(msg, msglen, "compression %s is not built into this scomm: "
             "install %s and rebuild", kv_codec_name(compression),
             (compression == SCOMM_KV_COMPRESS_LZ4) ? "liblz4-dev"
                                                    : "libzstd-dev");
    return 1;
}

size_t scomm_kv_compress_bound(int compression, size_t rawlen)
{
    switch (compression) {
#ifdef SCOMM_HAVE_LZ4
    case SCOMM_KV_COMPRESS_LZ4:
        return (size_t)LZ4_compressBound((int)rawlen);
#endif
#ifdef SCOMM_HAVE_ZSTD
    case SCOMM_KV_COMPRESS_ZSTD:
        return ZSTD_compressBound(rawlen);
#endif
    }
    (void)rawlen;
    return 0;
}

size_t scomm_kv_compress(kv_stream_t *st, int compression, int level,
                         const uint8_t *raw, size_t rawlen, uint8_t *out,
                         size_t cap)
{
    size_t n = 0;

    switch (compression) {
#ifdef SCOMM_HAVE_LZ4
    case SCOMM_KV_COMPRESS_LZ4:
        n = (size_t)LZ4_compress_fast((const char *)raw, (char *)out,
                                      (int)rawlen, (int)cap,
                                      (level > 0) ? level : 1);
        break;
#endif
#ifdef SCOMM_HAVE_ZSTD
    case SCOMM_KV_COMPRESS_ZSTD:
        if ((st->zc == NULL) && ((st->zc = ZSTD_createCCtx()) == NULL)) {
            snprintf(st->why_tx, sizeof(st->why_tx), "no memory for "
                     "staging");
            return 0;
        }
        n = ZSTD_compressCCtx(st->zc, out, cap, raw, rawlen,
                              (level != 0) ? level : 1);
        if (ZSTD_isError(n)) {
            n = 0;
        }
        break;
#endif
    default:
        (void)level;
        (void)raw;
        (void)rawlen;
        (void)out;
        (void)cap;
        break;
    }
    if (n == 0) {
        snprintf(st->why_tx, sizeof(st->why_tx), "compression failed");
    }
    return n;
}

int scomm_kv_decompress(kv_stream_t *st, int compression, const uint8_t *in,
                        size_t len, uint8_t *raw, size_t rawlen)
{
    size_t n = 0;

    switch (compression) {
#ifdef SCOMM_HAVE_LZ4
    case SCOMM_KV_COMPRESS_LZ4: {
        int k = LZ4_decompress_safe((const char *)in, (char *)raw, (int)len,
                                    (int)rawlen);

        n = (k < 0) ? 0 : (size_t)k;
        break;
    }
#endif
#ifdef SCOMM_HAVE_ZSTD
    case SCOMM_KV_COMPRESS_ZSTD:
        if ((st->zd == NULL) && ((st->zd = ZSTD_createDCtx()) == NULL)) {
            return -2;
        }
        n = ZSTD_decompressDCtx(st->zd, raw, rawlen, in, len);
        if (ZSTD_isError(n)) {
            n = 0;
        }
        break;
#endif
    default:
        (void)st;
        (void)in;
        (void)len;
        (void)raw;
        break;
    }
    return (n == rawlen) ? 0 : -1;
}

void scomm_kv_codec_free(kv_stream_t *st)
{
#ifdef SCOMM_HAVE_ZSTD
    ZSTD_freeCCtx(st->zc);
    ZSTD_freeDCtx(st->zd);
#endif
    st->zc = NULL;
    st->zd = NULL;
}
