#!/usr/bin/python3
# gen_kv_corpus.py - seeds of tests/fuzz/corpus/fuzz_kv_wire (see fuzz_kv_wire.c).
# Run from anywhere; rewrites the seed-* files.
import struct, os
d=os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fuzz', 'corpus', 'fuzz_kv_wire')
os.makedirs(d, exist_ok=True)
def hdr(t, ln, raw=0, magic=0x31564b53, ver=1):
    return struct.pack('<IHHQIIQQII', magic, ver, t, 42, 3, 0, ln, raw, 0xdeadbeef, 0)
def w(name, b): open(os.path.join(d,name),'wb').write(b)
lim=struct.pack('<Q', 1<<20)
w('seed-hdr-data-ok', b'\x00'+lim+hdr(7, 4096, 4096))
w('seed-hdr-data-too-long', b'\x00'+lim+hdr(7, (1<<20)+1, 4096))
w('seed-hdr-bad-magic', b'\x00'+lim+hdr(7, 1, magic=0))
w('seed-hdr-bad-version', b'\x00'+lim+hdr(7, 1, ver=9))
w('seed-hdr-hello', b'\x00'+lim+hdr(1, 128))
w('seed-hdr-ack', b'\x00'+lim+hdr(9, 0))
w('seed-hdr-begin-err', b'\x00'+lim+hdr(6, 300))
w('seed-hdr-unknown', b'\x00'+lim+hdr(77, 0))
tok=b'secret'.ljust(64, b'\0')
hello=tok+struct.pack('<QIIiIQQ', 99, 1, 2, 1234, 0, 0x1000, 7)+b'\0'*24
assert len(hello)==128
w('seed-hello-ok', b'\x01'+hello)
w('seed-hello-bad-stream', b'\x01'+tok+struct.pack('<QIIiIQQ', 99, 5, 2, 1, 0, 0, 0)+b'\0'*24)
w('seed-hello-unterminated', b'\x01'+b'A'*64+hello[64:])
w('seed-hello-short', b'\x01'+hello[:100])
def begin(nsrc=5, ndst=3, nchunks=9, ntok=70, blk=16, sb=None):
    f=[4,2,8,blk,5,6,0,0,0,1,3,0,2,nsrc,ndst,0]
    b=struct.pack('<16i', *f)+struct.pack('<QQQQ', ntok, 0x7f0000000000, 1<<20, nchunks)
    sb = sb if sb is not None else list(range(nsrc))
    b+=struct.pack('<%di'%nsrc, *sb)+struct.pack('<%di'%ndst, *range(ndst))
    return b
w('seed-begin-ok', b'\x02'+begin())
w('seed-begin-bad-chunks', b'\x02'+begin(nchunks=8))
w('seed-begin-block-outside', b'\x02'+begin(sb=[0,1,2,3,5]))
w('seed-begin-truncated', b'\x02'+begin()[:-4])
w('seed-begin-huge-table', b'\x02'+begin()[:52]+struct.pack('<i', 0x7fffffff)+begin()[56:])
