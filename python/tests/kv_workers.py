"""Rank bodies for the KV channel tests (test_kv.py): rank 0 receives
(decode side), rank 1 sends (prefill side). Every received block is
compared with a reference computed here from the layout alone."""

from __future__ import annotations

import array
import os
import random

import numpy as np

import sagellm_comm as sc
from sagellm_comm import kv
from sagellm_comm.errors import (CommAccessDeniedError,
                                 CommInvalidArgumentError, KVError,
                                 KVMetadataMismatchError,
                                 KVTransferFailedError,
                                 KVTransferTimeoutError)


def _expect(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)


def _raises(exc: type, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except exc as e:
        return e
    raise AssertionError(f"{fn.__name__} did not raise {exc.__name__}")


def _backend() -> "sc.GlooBackend":
    b = sc.get_comm_backend("gloo")
    b.init(rank=int(os.environ["RANK"]), world_size=2,
           master_addr=os.environ["MASTER_ADDR"],
           master_port=int(os.environ["MASTER_PORT"]))
    return b


def _tokens(layout: kv.KVLayout, cache: np.ndarray, table: list,
            ntok: int, layer: int) -> np.ndarray:
    """[2, heads, ntok, dim] of one layer, read through a block table."""
    parts = []
    bt = layout.block_tokens
    for i, b in enumerate(table):
        n = min(bt, ntok - i * bt)
        blk = cache[layer, b]
        if layout.order == kv.KVOrder.HEAD_MAJOR:
            parts.append(blk[:, :, :n, :])
        else:
            parts.append(blk[:n].transpose(1, 2, 0, 3))
    return np.concatenate(parts, axis=2)


def channel() -> None:
    import torch  # here, not at the top: tp_heads's 6 ranks need none

    b = _backend()
    r = b.get_rank()
    opts = kv.KVOptions(token="t0ken", timeout_ms=20000, streams=2)
    port = array.array("i", [0])
    if r == 0:
        lst = kv.listen("127.0.0.1", 0, opts)
        port[0] = lst.port
    b.broadcast(port, src_rank=0)
    # a wrong token is refused, and the listener keeps waiting
    if r == 1:
        _raises(CommAccessDeniedError, kv.connect, "127.0.0.1", port[0],
                kv.KVOptions(token="wrong", timeout_ms=2000))
        ep = kv.connect("127.0.0.1", port[0], opts)
    else:
        ep = lst.accept()
        lst.close()

    # region 0: torch fp16, head-major, 4 layers, block 16 (both sides)
    t_lay = kv.KVLayout(4, 2, 32, 16, 12, "float16")
    g = torch.Generator().manual_seed(5)
    src_t = torch.randn(t_lay.shape, generator=g).half()
    dst_t = torch.full(t_lay.shape, -7.0, dtype=torch.float16)
    # region 1: numpy fp32, sender block 8 head-major -> receiver block 16
    # token-major (tokens regrouped)
    n_src = kv.KVLayout(2, 3, 16, 8, 20, "float32")
    n_dst = kv.KVLayout(2, 3, 16, 16, 10, "float32", kv.KVOrder.TOKEN_MAJOR)
    src_n = np.random.default_rng(9).standard_normal(
        n_src.shape).astype(np.float32)
    dst_n = np.full(n_dst.shape, -7.0, dtype=np.float32)
    # region 2: a bytearray holding bfloat16 (explicit layout)
    b_lay = kv.KVLayout(1, 1, 8, 4, 6, "bfloat16")
    src_b = bytearray(random.Random(3).randbytes(b_lay.region_bytes))
    dst_b = bytearray(b_lay.region_bytes)
    # region 3: mismatching heads (for the metadata error)
    m_src = kv.KVLayout(1, 2, 8, 4, 4, "float16")
    m_dst = kv.KVLayout(1, 4, 8, 4, 4, "float16")

    if r == 1:
        regs = [ep.register(src_t), ep.register(src_n, n_src),
                ep.register(src_b, b_lay, writable=False),
                ep.register(bytearray(m_src.region_bytes), m_src)]
        _expect([x.id for x in regs] == [0, 1, 2, 3], "region ids")
        _expect(regs[0].layout == t_lay, f"inferred {regs[0].layout}")
        _raises(CommInvalidArgumentError, ep.register,
                torch.zeros(10, dtype=torch.float16), t_lay)
        _raises(CommInvalidArgumentError, ep.register,
                torch.zeros(t_lay.shape), t_lay)   # float32 vs float16
        _raises(CommInvalidArgumentError, ep.submit,
                kv.KVPlan(99, [12], [0], 16))      # block outside
        x1 = ep.submit(kv.KVPlan(1, [3, 1, 7], [10, 0, 4], 40,
                                 first_layer=1, num_layers=2), priority=1)
        x2 = ep.submit(kv.KVPlan(2, [5, 2, 19, 0, 11], [8, 3, 1], 37,
                                 src_region=1, dst_region=1), priority=5)
        x3 = ep.submit(kv.KVPlan(3, [5, 0], [1, 2], 8, src_region=2,
                                 dst_region=2))
        for x in (x2, x1, x3):
            x.wait()
            _expect(x.test(), "test() after wait")
            x.free()
        bad = ep.submit(kv.KVPlan(4, [0], [0], 4, src_region=3,
                                  dst_region=3))
        e = _raises(KVMetadataMismatchError, bad.wait)
        _expect(e.kv_code == "KV_METADATA_MISMATCH" and
                "mismatch" in str(e), str(e))
        bad.free()
        st = ep.stats()
        _expect(st.chunks_sent >= 3 and st.bytes_raw > 0 and
                st.streams == 2, f"sender stats {st}")
        b.barrier()              # the receiver checked everything
        ep.close()
    else:
        regs = [ep.register(dst_t), ep.register(dst_n, n_dst),
                ep.register(dst_b, b_lay),
                ep.register(bytearray(m_dst.region_bytes), m_dst)]
        for layer in (1, 2):     # layer by layer, in order
            ep.wait_layer(1, layer)
        e = _raises(CommInvalidArgumentError, ep.wait_layer, 1, 0)
        _expect("not in transfer" in str(e), str(e))
        ep.wait_xfer(1)
        for s, d in ((3, 10), (1, 0), (7, 4)):
            _expect(torch.equal(dst_t[1:3, d], src_t[1:3, s]),
                    f"torch block {s}->{d}")
            _expect(bool((dst_t[0, d] == -7).all() and
                         (dst_t[3, d] == -7).all()), "layers 0, 3 untouched")
        ep.wait_xfer(2)
        for layer in range(2):
            got = _tokens(n_dst, dst_n, [8, 3, 1], 37, layer)
            want = _tokens(n_src, src_n, [5, 2, 19, 0, 11], 37, layer)
            _expect(np.array_equal(got, want), f"numpy regroup l{layer}")
        _expect(bool((dst_n[:, 1, 5:] == -7).all()),
                "tokens past the end not written (last block 1)")
        ep.wait_xfer(3)
        bb = b_lay.block_bytes
        _expect(dst_b[bb:3 * bb] == src_b[5 * bb:6 * bb] + src_b[:bb],
                "bytearray blocks")
        e = _raises(KVTransferTimeoutError, ep.wait_layer, 77, 0, 50)
        _expect(e.kv_code == "KV_TRANSFER_TIMEOUT" and e.retryable and
                isinstance(e, TimeoutError), repr(e))
        st = ep.stats()
        _expect(st.chunks_recv >= 3, f"receiver stats {st}")
        b.barrier()
        # the sender closes its endpoint: a wait now fails as a lost peer
        e = _raises(KVTransferFailedError, ep.wait_layer, 5, 0, 10000)
        _expect(isinstance(e, KVError) and
                isinstance(e, ConnectionError) and
                e.kv_code == "KV_TRANSFER_FAILED", repr(e))
        ep.close()
    b.destroy()
    print(f"rank {r}: kv channel OK")


def comm_form() -> None:
    """connect_comm over the seed backend, then over a torch process
    group of backend "scomm"."""
    import torch
    import torch.distributed as dist

    b = _backend()
    r = b.get_rank()
    lay = kv.KVLayout(2, 1, 16, 8, 4, "float32")
    for form in ("seed", "torch"):
        if form == "torch":
            dist.init_process_group("scomm")
            ep = kv.connect_comm(dist.group.WORLD, 1 - r)
        else:
            ep = kv.connect_comm(b, 1 - r)
        src = torch.arange(float(lay.region_bytes // 4)).view(lay.shape)
        dst = torch.zeros(lay.shape)
        if r == 1:
            ep.register(src)
            with ep.submit(kv.KVPlan(11, [3, 0], [1, 2], 16)) as x:
                x.wait()
        else:
            ep.register(dst)
            ep.wait_xfer(11)
            _expect(torch.equal(dst[:, 1], src[:, 3]) and
                    torch.equal(dst[:, 2], src[:, 0]), f"{form} data")
        b.barrier()
        ep.close()
    dist.destroy_process_group()
    b.destroy()
    print(f"rank {r}: connect_comm OK")


def _head_ref(layers: int, ntok: int, heads: range, dim: int) -> np.ndarray:
    """[layers, 2, len(heads), ntok, dim]: the value of every (layer, K|V,
    global head, token, d), exact in float16."""
    lay, kv_, h, t, d = np.meshgrid(np.arange(layers), np.arange(2),
                                    np.array(list(heads)), np.arange(ntok),
                                    np.arange(dim), indexing="ij")
    k = (lay * 131 + kv_ * 7 + h * 37 + t * 17 + d * 3) % 251
    return ((k - 125) / 8.0).astype(np.float32)


def tp_heads(src_tp: str, dst_tp: str) -> None:
    """Prefill TP src_tp -> decode TP dst_tp: ranks 0..dst_tp-1 decode,
    the others prefill; plans from connector.tp_head_slices; each decode
    rank checks its heads against _head_ref and that nothing else was
    written; each prefill rank checks it sent only the pair's heads."""
    from sagellm_comm.kv.connector import tp_head_slices
    P, Q = int(src_tp), int(dst_tp)
    b = sc.get_comm_backend("gloo")
    b.init(rank=int(os.environ["RANK"]), world_size=P + Q,
           master_addr=os.environ["MASTER_ADDR"],
           master_port=int(os.environ["MASTER_PORT"]))
    r = b.get_rank()
    H, D, L, ntok = 8, 16, 2, 45
    d_lay = kv.KVLayout(L, H // Q, D, 8, 9, "float16",
                        kv.KVOrder.TOKEN_MAJOR)
    d_table = [[(2 * i + 5 * q) % 9 for i in range(6)] for q in range(Q)]
    s_table = [[(4 + p + i) % 6 for i in range(3)] for p in range(P)]
    # who talks to whom: slices[q] = [(p, src range, dst range)]
    slices = [tp_head_slices(H, P, Q, q) for q in range(Q)]
    ports = np.zeros(P * Q, dtype=np.int32)
    opts = kv.KVOptions(token="heads", timeout_ms=20000, streams=2,
                        zero_copy=False)
    lsts = {}
    if r < Q:
        for p, _, _ in slices[r]:
            lsts[p] = kv.listen("127.0.0.1", 0, opts)
            ports[p * Q + r] = lsts[p].port
    b.all_reduce(ports)
    if r < Q:
        q = r
        eps = {p: lst.accept() for p, lst in sorted(lsts.items())}
        for lst in lsts.values():
            lst.close()
        cache = np.full(d_lay.shape, -99.0, dtype=np.float16)
        for ep in eps.values():
            ep.register(cache, d_lay)
        for p, ep in eps.items():
            ep.wait_xfer(100 + p)
        got = np.stack([_tokens(d_lay, cache, d_table[q], ntok, layer)
                        for layer in range(L)])
        want = _head_ref(L, ntok, range(q * H // Q, (q + 1) * H // Q), D)
        _expect(np.array_equal(got.astype(np.float32), want),
                f"decode rank {q}: heads differ")
        # tokens past ntok and blocks outside the table: untouched
        used = set(d_table[q])
        for blk in range(d_lay.num_blocks):
            if blk not in used:
                _expect(bool((cache[:, blk] == -99.0).all()),
                        f"block {blk} written")
        last = d_table[q][(ntok - 1) // 8]
        _expect(bool((cache[:, last, ntok % 8:] == -99.0).all()),
                "tail written")
        b.barrier()
        for ep in eps.values():
            ep.close()
        print(f"decode rank {q}: heads {q * H // Q}..{(q + 1) * H // Q - 1}"
              f" from prefill ranks {sorted(eps)}: exact")
    else:
        p = r - Q
        lay = kv.KVLayout(L, H // P, D, 16, 6, "float16")
        ref = _head_ref(L, 48, range(p * H // P, (p + 1) * H // P), D)
        cache = np.zeros(lay.shape, dtype=np.float16)
        for i, blk in enumerate(s_table[p]):    # [L, 2, h, 16, D] per block
            cache[:, blk] = ref[:, :, :, 16 * i:16 * (i + 1)]
        eps = []                      # kept open until the barrier
        for q in range(Q):
            mine = [(sr, dr) for s, sr, dr in slices[q] if s == p]
            if not mine:
                continue
            sr, dr = mine[0]
            ep = kv.connect("127.0.0.1", int(ports[p * Q + q]), opts)
            eps.append(ep)
            ep.register(cache, lay)
            x = ep.submit(kv.KVPlan(100 + p, s_table[p], d_table[q][:6],
                                    ntok, src_heads=sr, dst_heads=dr))
            x.wait()
            x.free()
            st = ep.stats()
            want = L * 3 * 2 * sr.count * 16 * D * 2
            _expect(st.bytes_wire == want and st.bytes_raw == want,
                    f"prefill rank {p} -> decode {q}: {st.bytes_wire} "
                    f"bytes on the wire, the pair's heads are {want}")
        b.barrier()
        for ep in eps:
            ep.close()
