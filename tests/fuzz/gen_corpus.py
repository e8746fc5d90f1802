#!/usr/bin/env python3
"""gen_corpus.py - write the hand-made seed inputs of the fuzz targets.

    python3 tests/fuzz/gen_corpus.py      (from anywhere)

Writes tests/fuzz/corpus/<target>/seed-<name>: a few valid and invalid
inputs per decoder, in the input format each target's header comment
describes. Inputs that libFuzzer found later (minimised with -merge=1) sit
beside them with their hash names; this script leaves those alone.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# Constants of the wire formats (src/core/bootstrap.h, scomm_int.h,
# src/transport/wire.h, src/kv/kv.h).
PROTO = 1
BOOT_MAGIC = 0x424D4353
BOOT_HELLO, BOOT_TABLE, BOOT_REJECT = 1, 2, 3
TOKEN_MAX = 256
WORLD_MAX = 65536
INFO_SIZE = 224 + 4 + 64  # + transport blob length and bytes
BODY_MAX = 16 + TOKEN_MAX + WORLD_MAX * INFO_SIZE
TCP_MAGIC = 0x53435450
TCP_HELLO_SIZE = 276
T_EAGER, T_RTS, T_CTS, T_DATA, T_ABORT, T_BYE, T_HEARTBEAT = range(1, 8)
S_EAGER, S_RTS, S_FIN, S_CTS, S_FRAG, S_SKIP = range(1, 7)
KV_MAGIC = 0x31564B53
(KV_HELLO, KV_HELLO_OK, KV_HELLO_NO, KV_BEGIN, KV_BEGIN_OK, KV_BEGIN_ERR,
 KV_DATA, KV_DESC, KV_ACK, KV_NACK, KV_HEARTBEAT, KV_BYE) = range(1, 13)
KV_HELLO_RESUME = 1
KV_REDIAL_MAX_MS = 600000


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def fixed(s, n):
    b = s.encode() if isinstance(s, str) else s
    return b[:n].ljust(n, b"\0")


def info(rank, pid=4242, port=40000, flags=0, shm_size=1 << 20,
         host="node1", boot="0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
         addr="10.0.0.1", shm="/scomm-4242-00112233445566778899aabbccddeeff",
         blob=b"tcp\0" + bytes(12) + bytes(16), blob_len=None):
    return (struct.pack("<iiIIQ", rank, pid, port, flags, shm_size) +
            fixed(host, 64) + fixed(boot, 40) + fixed(addr, 48) +
            fixed(shm, 48) +
            struct.pack("<I", len(blob) if blob_len is None else blob_len) +
            fixed(blob, 64))


def boot_hdr(typ, length, magic=BOOT_MAGIC, version=PROTO):
    return struct.pack("<IIII", magic, version, typ, length)


def hello(rank, world, token, rec=None, tlen=None):
    tok = token.encode() if isinstance(token, str) else token
    if rec is None:
        rec = info(rank)
    return (struct.pack("<iiI", rank, world,
                        len(tok) if tlen is None else tlen) + tok + rec)


def table(n, infos=None):
    if infos is None:
        infos = [info(i) for i in range(n)]
    return struct.pack("<i", n) + b"".join(infos)


def gen_bootstrap():
    t = "fuzz_bootstrap"
    # 0: header
    write(t, "hdr-hello", b"\0" + boot_hdr(BOOT_HELLO, 300))
    write(t, "hdr-table", b"\0" + boot_hdr(BOOT_TABLE, 4 + 2 * INFO_SIZE))
    write(t, "hdr-reject", b"\0" + boot_hdr(BOOT_REJECT, 40))
    write(t, "hdr-max-len", b"\0" + boot_hdr(BOOT_TABLE, BODY_MAX))
    write(t, "hdr-too-long", b"\0" + boot_hdr(BOOT_TABLE, BODY_MAX + 1))
    write(t, "hdr-bad-magic", b"\0" + boot_hdr(BOOT_HELLO, 8, magic=0x50545448))
    write(t, "hdr-type0", b"\0" + boot_hdr(0, 8))
    write(t, "hdr-failed", b"\0" + boot_hdr(4, 8))
    write(t, "hdr-type5", b"\0" + boot_hdr(5, 8))
    write(t, "hdr-version9", b"\0" + boot_hdr(BOOT_HELLO, 8, version=9))
    write(t, "hdr-short", b"\0" + boot_hdr(BOOT_HELLO, 8)[:10])
    # 1: hello
    write(t, "hello-ok", b"\1" + hello(1, 4, "job-secret-token"))
    write(t, "hello-empty-token", b"\1" + hello(3, 4, ""))
    write(t, "hello-max-token", b"\1" + hello(2, 8, "t" * (TOKEN_MAX - 1)))
    write(t, "hello-token-too-long", b"\1" + hello(2, 8, "t" * TOKEN_MAX))
    write(t, "hello-token-nul", b"\1" + hello(1, 2, b"ab\0cd"))
    write(t, "hello-tlen-lies", b"\1" + hello(1, 4, "abc", tlen=200))
    write(t, "hello-tlen-huge", b"\1" + hello(1, 4, "abc", tlen=0xFFFFFFF0))
    write(t, "hello-short", b"\1" + hello(1, 4, "abc")[:11])
    write(t, "hello-truncated", b"\1" + hello(1, 4, "abc")[:-1])
    write(t, "hello-trailing", b"\1" + hello(1, 4, "abc") + b"x")
    write(t, "hello-rank-oob", b"\1" + hello(4, 4, "abc"))
    write(t, "hello-rank-neg", b"\1" + hello(-1, 4, "abc", rec=info(-1)))
    write(t, "hello-world0", b"\1" + hello(0, 0, "abc"))
    write(t, "hello-world-max", b"\1" + hello(WORLD_MAX - 1, WORLD_MAX, "a"))
    write(t, "hello-world-over", b"\1" + hello(1, WORLD_MAX + 1, "a"))
    write(t, "hello-info-rank", b"\1" + hello(1, 4, "abc", rec=info(2)))
    write(t, "hello-bad-port", b"\1" + hello(1, 4, "abc", rec=info(1, port=70000)))
    full = (struct.pack("<iiIIQ", 1, 7, 65535, 0xFFFFFFFF, 2**64 - 1) +
            b"H" * 64 + b"B" * 40 + b"A" * 48 + b"S" * 48 +
            struct.pack("<I", 64) + b"O" * 64)
    write(t, "hello-unterminated", b"\1" + hello(1, 4, "abc", rec=full))
    write(t, "hello-blob-too-long",
          b"\1" + hello(1, 4, "abc", rec=info(1, blob_len=65)))
    write(t, "hello-blob-len-huge",
          b"\1" + hello(1, 4, "abc", rec=info(1, blob_len=0xFFFFFFFF)))
    # 2: table (byte 1 = expected world size, signed)
    write(t, "table-1", b"\2\1" + table(1))
    write(t, "table-3", b"\2\3" + table(3))
    write(t, "table-0", b"\2\0" + table(0))
    write(t, "table-neg", b"\2\xff" + struct.pack("<i", -1))
    write(t, "table-count-mismatch", b"\2\3" + table(2))
    write(t, "table-len-mismatch", b"\2\2" + table(2)[:-1])
    write(t, "table-entry-rank", b"\2\2" + table(2, [info(0), info(0)]))
    write(t, "table-entry-port", b"\2\2" + table(2, [info(0), info(1, port=1 << 20)]))
    write(t, "table-short", b"\2\1" + b"\1\0")
    # 3: rank record
    write(t, "info-ok", b"\3" + info(5))
    write(t, "info-full-fields", b"\3" + full)
    write(t, "info-short", b"\3" + info(5)[:-1])
    write(t, "info-port-max", b"\3" + info(0, port=65535))
    write(t, "info-port-over", b"\3" + info(0, port=65536))
    # 4: whole messages
    h = hello(2, 3, "job")
    write(t, "msg-hello", b"\4" + boot_hdr(BOOT_HELLO, len(h)) + h)
    tb = table(2)
    write(t, "msg-table", b"\4" + boot_hdr(BOOT_TABLE, len(tb)) + tb)
    rj = struct.pack("<i", -7) + b"world size mismatch\0"
    write(t, "msg-reject", b"\4" + boot_hdr(BOOT_REJECT, len(rj)) + rj)
    write(t, "msg-truncated", b"\4" + boot_hdr(BOOT_HELLO, len(h)) + h[:50])
    write(t, "msg-empty-table", b"\4" + boot_hdr(BOOT_TABLE, 0))


def tcp_hdr(typ, length=0, ctx=0, tag=0, aux32=0, ident=0, aux=0):
    return struct.pack("<B3xIiIQQQ", typ, ctx, tag, aux32, length, ident, aux)


def hdr_in(sock, eager_max, hdr, payload=b""):
    return b"\0" + bytes([sock + 1]) + struct.pack("<Q", eager_max) + hdr + payload


def tcp_hello(rank, idx, token, magic=TCP_MAGIC, version=PROTO, tlen=None):
    tok = token.encode() if isinstance(token, str) else token
    b = struct.pack("<IIIII", magic, version, rank, idx,
                    len(tok) if tlen is None else tlen) + tok
    return b[:TCP_HELLO_SIZE].ljust(TCP_HELLO_SIZE, b"\0")


def gen_tcp():
    t = "fuzz_tcp_wire"
    em = 64 << 10
    write(t, "eager-ok", hdr_in(0, em, tcp_hdr(T_EAGER, 100, 1, 5, ident=9)))
    write(t, "eager-max", hdr_in(0, em, tcp_hdr(T_EAGER, em)))
    write(t, "eager-too-long", hdr_in(0, em, tcp_hdr(T_EAGER, em + 1)))
    write(t, "eager-huge", hdr_in(0, em, tcp_hdr(T_EAGER, 2**64 - 1)))
    write(t, "eager-sock1", hdr_in(1, em, tcp_hdr(T_EAGER, 10)))
    write(t, "eager-zero", hdr_in(0, 0, tcp_hdr(T_EAGER, 0)))
    write(t, "rts-ok", hdr_in(0, em, tcp_hdr(T_RTS, 1 << 30, ident=3)))
    write(t, "rts-sock2", hdr_in(2, em, tcp_hdr(T_RTS, 1 << 30)))
    write(t, "cts", hdr_in(0, em, tcp_hdr(T_CTS, ident=3, aux=7)))
    write(t, "data-sock1", hdr_in(1, em, tcp_hdr(T_DATA, 4096, ident=7, aux=8192)))
    write(t, "abort-ok", hdr_in(0, em, tcp_hdr(T_ABORT, 11, tag=-12, aux32=2),
                               b"rank 2 died"))
    write(t, "abort-512", hdr_in(0, em, tcp_hdr(T_ABORT, 512), b"x" * 512))
    write(t, "abort-513", hdr_in(0, em, tcp_hdr(T_ABORT, 513)))
    write(t, "abort-short-payload", hdr_in(0, em, tcp_hdr(T_ABORT, 100), b"abc"))
    write(t, "bye", hdr_in(0, em, tcp_hdr(T_BYE)))
    write(t, "heartbeat", hdr_in(3, em, tcp_hdr(T_HEARTBEAT)))
    write(t, "type0", hdr_in(0, em, tcp_hdr(0)))
    write(t, "type8", hdr_in(0, em, tcp_hdr(8)))
    write(t, "type255", hdr_in(0, em, tcp_hdr(255)))
    write(t, "sock-neg", hdr_in(-1, em, tcp_hdr(T_EAGER, 1)))
    write(t, "hdr-short", hdr_in(0, em, tcp_hdr(T_EAGER, 1))[:40])
    write(t, "hello-ok", b"\1" + tcp_hello(0, 1, "job-secret-token"))
    write(t, "hello-empty-token", b"\1" + tcp_hello(2, 0, ""))
    write(t, "hello-max-token", b"\1" + tcp_hello(1, 0, "k" * (TOKEN_MAX - 1)))
    write(t, "hello-tlen-256", b"\1" + tcp_hello(1, 0, "k" * TOKEN_MAX))
    write(t, "hello-tlen-huge", b"\1" + tcp_hello(1, 0, "k", tlen=0xFFFFFFFF))
    write(t, "hello-token-nul", b"\1" + tcp_hello(1, 0, b"ab\0cd"))
    write(t, "hello-bad-magic", b"\1" + tcp_hello(1, 0, "k", magic=0x424D4353))
    write(t, "hello-bad-version", b"\1" + tcp_hello(1, 0, "k", version=2))
    write(t, "hello-neg-rank", b"\1" + tcp_hello(0xFFFFFFFF, 0xFFFFFFFF, "k"))
    write(t, "hello-short", b"\1" + tcp_hello(1, 0, "k")[:-1])
    write(t, "hello-long", b"\1" + tcp_hello(1, 0, "k") + b"\0")
    write(t, "hello-tokbuf0", b"\2\0" + tcp_hello(1, 0, ""))
    write(t, "hello-tokbuf10-ok", b"\2\x0a" + tcp_hello(1, 0, "123456789"))
    write(t, "hello-tokbuf10-over", b"\2\x0a" + tcp_hello(1, 0, "1234567890"))


def shm_msg(typ, length, ctx=0, tag=0, flag=1):
    return struct.pack("<IBBHIiQ", flag, typ, 0, 0, ctx, tag, length)


def raw_in(idx, ring, eager, msg):
    return b"\0" + struct.pack("<QQQ", idx, ring, eager) + msg


def ring_in(ncells, idx, eager, msg):
    return b"\1" + struct.pack("<HHI", ncells - 1, idx, eager) + msg


def gen_shm():
    t = "fuzz_shm_wire"
    rb = 256 << 10
    write(t, "raw-eager-ok", raw_in(0, rb, 16 << 10, shm_msg(S_EAGER, 1000)))
    write(t, "raw-eager-ring-end", raw_in(rb // 64 - 1, rb, 64, shm_msg(S_EAGER, 40)))
    write(t, "raw-eager-past-end", raw_in(rb // 64 - 1, rb, 64, shm_msg(S_EAGER, 41)))
    write(t, "raw-ring-tiny", raw_in(0, 16, 64, shm_msg(S_SKIP, 0)))
    write(t, "raw-idx-huge", raw_in(2**63, rb, 64, shm_msg(S_EAGER, 1)))
    write(t, "raw-idx-wraps", raw_in(2**58 + 1, 2**64 - 64, 2**64 - 1,
                                     shm_msg(S_EAGER, 1)))
    write(t, "raw-len-huge", raw_in(3, rb, 2**64 - 1, shm_msg(S_EAGER, 2**64 - 1)))
    write(t, "raw-skip-huge", raw_in(3, rb, 0, shm_msg(S_SKIP, 2**64 - 1)))
    write(t, "raw-type0", raw_in(0, rb, 64, shm_msg(0, 0)))
    write(t, "raw-short", raw_in(0, rb, 64, shm_msg(S_EAGER, 1))[:30])
    w16 = struct.pack("<QQ", 42, 0)
    w24 = struct.pack("<QQQ", 42, 0x7F0000001000, 1 << 20)
    write(t, "ring-eager-ok", ring_in(64, 5, 1024, shm_msg(S_EAGER, 100, 3, 7) + bytes(range(100))))
    write(t, "ring-eager-end", ring_in(4, 3, 1024, shm_msg(S_EAGER, 40) + b"e" * 40))
    write(t, "ring-eager-over-end", ring_in(4, 3, 1024, shm_msg(S_EAGER, 41) + b"e" * 40))
    write(t, "ring-eager-over-limit", ring_in(64, 0, 100, shm_msg(S_EAGER, 101) + b"e" * 101))
    write(t, "ring-rts-ok", ring_in(16, 2, 1024, shm_msg(S_RTS, 24, 1, 2) + w24))
    write(t, "ring-rts-bad", ring_in(16, 2, 1024, shm_msg(S_RTS, 16) + w16))
    write(t, "ring-fin-ok", ring_in(16, 0, 1024, shm_msg(S_FIN, 16) + w16))
    write(t, "ring-cts-ok", ring_in(16, 15, 1024, shm_msg(S_CTS, 16) + w16))
    write(t, "ring-cts-bad", ring_in(16, 15, 1024, shm_msg(S_CTS, 24) + w24))
    write(t, "ring-frag-ok", ring_in(32, 1, 1024, shm_msg(S_FRAG, 16 + 200) + w16 + b"f" * 200))
    write(t, "ring-frag-short", ring_in(32, 1, 1024, shm_msg(S_FRAG, 15) + w16))
    write(t, "ring-frag-over-end", ring_in(8, 6, 1024, shm_msg(S_FRAG, 105) + w16 + b"f" * 89))
    write(t, "ring-skip", ring_in(8, 6, 0, shm_msg(S_SKIP, 2 * 64 - 24)))
    write(t, "ring-type7", ring_in(8, 0, 0, shm_msg(7, 0)))
    write(t, "ring-one-cell", ring_in(1, 0, 64, shm_msg(S_EAGER, 40) + b"z" * 40))


def gen_config():
    t = "fuzz_config"
    write(t, "all-knobs", b"""# every knob
SCOMM_TIMEOUT_MS=60000
SCOMM_TRANSPORTS=tcp,shm
SCOMM_TCP_IFNAME=eth0
SCOMM_TCP_NSOCKS=4
SCOMM_TCP_EAGER_MAX=32k
SCOMM_TCP_SOCKBUF=8m
SCOMM_SHM_RING_SIZE=1m
SCOMM_SHM_EAGER_MAX=4096
SCOMM_SHM_CMA=no
SCOMM_SPIN_US=50
SCOMM_CHECK=yes
SCOMM_HEARTBEAT_MS=500
SCOMM_ALGO=ring
""")
    write(t, "comments-blank", b"\n   \n# c\n\t# indented comment\n  SCOMM_SPIN_US=10  \n\n")
    write(t, "no-prefix", b"TIMEOUT_MS=5\nTCP_EAGER_MAX=1g\nCHECK=ON\n")
    write(t, "size-units", b"SCOMM_TCP_SOCKBUF=4MB\nSCOMM_SHM_RING_SIZE=256kb\nSCOMM_TCP_EAGER_MAX=0\n")
    write(t, "crlf", b"SCOMM_ALGO=tree\r\nSCOMM_CHECK=1\r\n")
    write(t, "no-final-newline", b"SCOMM_SPIN_US=7")
    write(t, "empty-values", b"SCOMM_ALGO=\nSCOMM_TCP_IFNAME=\n")
    write(t, "value-with-eq", b"SCOMM_ALGO=a=b\n")
    write(t, "value-leading-space", b"SCOMM_ALGO=  ring\nSCOMM_SPIN_US= 12\n")
    write(t, "bad-int", b"SCOMM_TIMEOUT_MS=12abc\n")
    write(t, "int-overflow", b"SCOMM_TIMEOUT_MS=99999999999999999999\n")
    write(t, "int-min", b"SCOMM_SPIN_US=-9223372036854775808\n")
    write(t, "bad-size", b"SCOMM_TCP_EAGER_MAX=12x\n")
    write(t, "size-neg", b"SCOMM_TCP_EAGER_MAX=-1\n")
    write(t, "size-overflow", b"SCOMM_TCP_EAGER_MAX=18446744073709551616\n")
    write(t, "size-mult-overflow", b"SCOMM_TCP_EAGER_MAX=17179869184g\n")
    write(t, "size-max", b"SCOMM_TCP_EAGER_MAX=18446744073709551615\n")
    write(t, "bad-bool", b"SCOMM_CHECK=maybe\n")
    write(t, "string-63", b"SCOMM_TRANSPORTS=" + b"s" * 63 + b"\n")
    write(t, "string-64", b"SCOMM_TRANSPORTS=" + b"s" * 64 + b"\n")
    write(t, "unknown-key", b"SCOMM_NOPE=1\n")
    write(t, "space-before-eq", b"SCOMM_ALGO = ring\n")
    write(t, "no-eq", b"SCOMM_ALGO\n")
    write(t, "second-line-bad", b"SCOMM_CHECK=1\nSCOMM_CHECK=2\n")
    write(t, "long-line", b"SCOMM_ALGO=" + b"x" * 600 + b"\n")
    write(t, "long-comment", b"#" + b"c" * 1000 + b"\nSCOMM_CHECK=1\n")
    write(t, "embedded-nul", b"SCOMM_ALGO=ri\0ng\nSCOMM_CHECK=1\n")
    write(t, "only-prefix", b"SCOMM_=1\n")
    write(t, "empty", b"")


def kv_hdr(typ, length=0, raw_len=0, magic=KV_MAGIC, version=PROTO):
    return struct.pack("<IHHQIIQQII", magic, version, typ, 42, 3, 0, length,
                       raw_len, 0xDEADBEEF, 0)


def kv_hello(token="secret", session=0x63, stream=1, nstreams=2, pid=1234,
             flags=0, port=0, probe=(0x1000, 7), epoch=0, redial_ms=0):
    tok = token.encode() if isinstance(token, str) else token
    return (tok.ljust(64, b"\0") +
            struct.pack("<QIIiHHQQ", session, stream, nstreams, pid, flags,
                        port, probe[0], probe[1]) +
            b"\0" * 16 + struct.pack("<II", epoch, redial_ms))


def kv_begin(nchunks=9, src=(0, 1, 2, 3, 4), dst=(0, 1, 2), nsrc=None,
             heads=None, zero_copy=0):
    f = [4, 2, 8, 16, 5, 6, 0, 0, 0, 1, 3, 0, 2,
         len(src) if nsrc is None else nsrc, len(dst), zero_copy]
    # heads: (src_head_off, src_head_cnt, dst_head_off, dst_head_cnt),
    # after the tables (a plan with a head range).
    ext = b"" if heads is None else struct.pack("<4i", *heads)
    return (struct.pack("<16i4Q", *f, 70, 0x7F0000000000, 1 << 20, nchunks) +
            struct.pack("<%di" % (len(src) + len(dst)), *src, *dst) + ext)


def gen_kv():
    t = "fuzz_kv_wire"
    # 0: header, after a chunk limit of 1 MiB
    lim = b"\0" + struct.pack("<Q", 1 << 20)
    write(t, "hdr-hello", lim + kv_hdr(KV_HELLO, 128))
    write(t, "hdr-data-ok", lim + kv_hdr(KV_DATA, 4096, 4096))
    write(t, "hdr-data-too-long", lim + kv_hdr(KV_DATA, (1 << 20) + 1,
                                               4096))
    write(t, "hdr-begin-err", lim + kv_hdr(KV_BEGIN_ERR, 300))
    write(t, "hdr-ack", lim + kv_hdr(KV_ACK))
    write(t, "hdr-bad-magic", lim + kv_hdr(KV_DATA, 1, magic=0))
    write(t, "hdr-bad-version", lim + kv_hdr(KV_DATA, 1, version=9))
    write(t, "hdr-unknown", lim + kv_hdr(77))
    write(t, "hdr-hello-no", lim + kv_hdr(KV_HELLO_NO, 14))
    # 1: HELLO
    write(t, "hello-ok", b"\x01" + kv_hello())
    write(t, "hello-bad-stream", b"\x01" + kv_hello(stream=5, pid=1,
                                                    probe=(0, 0)))
    write(t, "hello-short", b"\x01" + kv_hello()[:100])
    write(t, "hello-unterminated", b"\x01" + kv_hello("A" * 64))
    # Reconnection fields: a first HELLO naming its re-dial window, the
    # answer naming the re-dial port, a re-dial; and the refused mixes.
    write(t, "hello-redial-window", b"\x01" + kv_hello(redial_ms=2000))
    write(t, "hello-ok-port", b"\x01" + kv_hello(port=40001))
    write(t, "hello-resume", b"\x01" + kv_hello(flags=KV_HELLO_RESUME,
                                                epoch=3, redial_ms=2000))
    write(t, "hello-resume-epoch0", b"\x01" +
          kv_hello(flags=KV_HELLO_RESUME))
    write(t, "hello-epoch-not-resume", b"\x01" + kv_hello(epoch=2))
    write(t, "hello-unknown-flags", b"\x01" + kv_hello(flags=0x8))
    write(t, "hello-window-too-long", b"\x01" +
          kv_hello(redial_ms=KV_REDIAL_MAX_MS + 1))
    # 2: BEGIN
    write(t, "begin-ok", b"\x02" + kv_begin())
    write(t, "begin-bad-chunks", b"\x02" + kv_begin(nchunks=8))
    write(t, "begin-block-outside", b"\x02" + kv_begin(src=(0, 1, 2, 3, 5)))
    write(t, "begin-huge-table", b"\x02" + kv_begin(nsrc=0x7FFFFFFF))
    write(t, "begin-truncated", b"\x02" + kv_begin()[:-4])
    # Head ranges: one head of two into head 3; the whole-count form; a
    # range past the source's heads; counts that differ; a same-host copy
    # asked for part of the heads.
    write(t, "begin-heads", b"\x02" + kv_begin(heads=(1, 1, 3, 1)))
    write(t, "begin-heads-to-last", b"\x02" + kv_begin(heads=(0, 2, 0, 0)))
    write(t, "begin-heads-outside", b"\x02" + kv_begin(heads=(1, 2, 0, 0)))
    write(t, "begin-heads-counts", b"\x02" + kv_begin(heads=(0, 1, 0, 2)))
    write(t, "begin-heads-zero-copy", b"\x02" +
          kv_begin(heads=(1, 1, 0, 0), zero_copy=1))


KV_IPC_MAGIC = 0x49564B53
KV_IPC_OFFER_SIZE = 160


def kv_ipc_offer(pid=4242, off=4096, nbytes=None,
                 layout=(2, 2, 64, 16, 8, 6, 0),
                 host="0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
                 magic=KV_IPC_MAGIC, handle=bytes(range(64))):
    """layout: layers, kv heads, head_dim, block tokens, blocks, dtype (6:
    SCOMM_FLOAT16, 9: SCOMM_BFLOAT16), order; nbytes defaults to what it needs."""
    layers, heads, dim, bt, blocks, dtype, order = layout
    need = layers * blocks * 2 * heads * bt * dim * 2
    return (struct.pack("<IiQQ7iI", magic, pid, off,
                        need if nbytes is None else nbytes, layers, heads,
                        dim, bt, blocks, dtype, order, 0) +
            fixed(host, 40) + handle)


def gen_kv_ipc_offer():
    t = "fuzz_kv_ipc_offer"
    write(t, "ok", kv_ipc_offer())
    write(t, "ok-token-major-host-id", kv_ipc_offer(layout=(32, 8, 128, 16,
                                                            4, 9, 1),
                                                    host="id:node7"))
    write(t, "short", kv_ipc_offer()[:KV_IPC_OFFER_SIZE - 1])
    write(t, "long", kv_ipc_offer() + b"\0")
    write(t, "bad-magic", kv_ipc_offer(magic=0x49564B54))
    write(t, "pid-zero", kv_ipc_offer(pid=0))
    write(t, "region-too-small", kv_ipc_offer(nbytes=100))
    write(t, "end-wraps", kv_ipc_offer(off=(1 << 64) - 16))
    write(t, "layout-zero-heads", kv_ipc_offer(layout=(2, 0, 64, 16, 8, 6,
                                                       0)))
    write(t, "layout-bad-dtype", kv_ipc_offer(layout=(2, 2, 64, 16, 8, 99,
                                                      0)))
    write(t, "host-unterminated", kv_ipc_offer(host="H" * 40))


if __name__ == "__main__":
    gen_bootstrap()
    gen_tcp()
    gen_shm()
    gen_config()
    gen_kv()
    gen_kv_ipc_offer()
