"""Rank bodies for the multi-process tests (run by mp_util.run_ranks).

Each function runs in one rank process (RANK, WORLD_SIZE, MASTER_ADDR,
MASTER_PORT set), checks results against values computed here from the
rank numbers alone, and raises AssertionError on any difference.
"""

from __future__ import annotations

import array
import os
import struct
import sys
import time

import sagellm_comm as sc


def _env() -> tuple:
    return (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]),
            os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]))


def _init() -> "sc.GlooBackend":
    rank, world, addr, port = _env()
    backend = sc.get_comm_backend("gloo")
    backend.init(rank=rank, world_size=world, master_addr=addr,
                 master_port=port)
    return backend


def _expect(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)


def _raises(exc: type, text: str, fn, *args, **kwargs) -> None:
    try:
        fn(*args, **kwargs)
    except exc as e:
        _expect(text in str(e), f"message {str(e)!r} lacks {text!r}")
        return
    raise AssertionError(f"{fn} did not raise {exc.__name__} ({text})")


def collectives() -> None:
    """Every collective and P2P call on buffer-protocol objects."""
    b = _init()
    r, n = b.get_rank(), b.get_world_size()
    _expect(r == int(os.environ["RANK"]) and n == int(os.environ[
        "WORLD_SIZE"]), "rank/world_size")
    ranks = range(n)

    # all_reduce, every op, float64
    vals = [float(r + 1), 2.0 * (r + 1), 0.5, -float(r)]
    cases = {
        sc.CommOp.SUM: [sum(q + 1.0 for q in ranks),
                        sum(2.0 * (q + 1) for q in ranks), 0.5 * n,
                        -float(sum(ranks))],
        sc.CommOp.MAX: [float(n), 2.0 * n, 0.5, 0.0],
        sc.CommOp.MIN: [1.0, 2.0, 0.5, -float(n - 1)],
        sc.CommOp.PRODUCT: [float(_prod(q + 1 for q in ranks)),
                            float(_prod(2 * (q + 1) for q in ranks)),
                            0.5 ** n, float(_prod(-q for q in ranks))],
        sc.CommOp.AVG: [sum(q + 1.0 for q in ranks) / n,
                        sum(2.0 * (q + 1) for q in ranks) / n, 0.5,
                        -float(sum(ranks)) / n],
    }
    for op, want in cases.items():
        buf = array.array("d", vals)
        out = b.all_reduce(buf, op=op)
        _expect(out is buf, "all_reduce returns its tensor")
        _expect(list(buf) == want, f"all_reduce {op}: {list(buf)} != "
                f"{want}")
    # op given as a string, README's ReduceOp
    buf = array.array("d", vals)
    b.all_reduce(buf, op="max")
    _expect(list(buf) == cases[sc.CommOp.MAX], "op='max'")
    buf = array.array("d", vals)
    b.all_reduce(buf, op=sc.ReduceOp.SUM)
    _expect(list(buf) == cases[sc.CommOp.SUM], "ReduceOp.SUM")

    # integer types wrap; int32 and int64 via array.array
    ibuf = array.array("i", [r - 5, 2 ** 31 - 1 if r == 0 else 1])
    b.all_reduce(ibuf)
    wrap = (2 ** 31 - 1 + (n - 1) + 2 ** 31) % 2 ** 32 - 2 ** 31
    _expect(list(ibuf) == [sum(q - 5 for q in ranks), wrap],
            f"int32 sum {list(ibuf)}")
    qbuf = array.array("q", [10 ** 12 * (r + 1)])
    b.all_reduce(qbuf)
    _expect(qbuf[0] == 10 ** 12 * sum(q + 1 for q in ranks), "int64 sum")

    # float16 packed with struct ('e'), typed with dtype= (memoryview
    # cannot cast to 'e')
    hraw = bytearray(struct.pack("<4e", *[r + 0.5 * i for i in range(4)]))
    b.communicator.all_reduce(hraw, dtype="float16")
    got16 = list(struct.unpack("<4e", bytes(hraw)))
    _expect(got16 == [sum(q + 0.5 * i for q in ranks) for i in range(4)],
            f"float16 {got16}")

    # bfloat16 as raw bytes with dtype= on the low-level communicator
    def bf16(x: float) -> bytes:
        return struct.pack("<f", x)[2:]
    raw = bytearray(b"".join(bf16(float(r + i)) for i in range(3)))
    b.communicator.all_reduce(raw, dtype="bfloat16")
    got = [struct.unpack("<f", b"\0\0" + bytes(raw[2 * i:2 * i + 2]))[0]
           for i in range(3)]
    _expect(got == [float(sum(q + i for q in ranks)) for i in range(3)],
            f"bfloat16 {got}")

    # all_gather: concatenated in rank order
    g = b.all_gather(array.array("i", [r, 10 * r]))
    _expect(list(g) == [v for q in ranks for v in (q, 10 * q)],
            f"all_gather {list(g)}")
    out = array.array("i", [0] * (2 * n))
    b.all_gather(array.array("i", [r, -r]), output=out)
    _expect(list(out) == [v for q in ranks for v in (q, -q)],
            "all_gather output=")

    # reduce_scatter: rank r gets block r of the sum
    src = array.array("d", [float(q * 0 + i + r) for q in range(1)
                            for i in range(2 * n)])
    blk = b.reduce_scatter(src)
    want = [float(n * i + sum(ranks)) for i in (2 * r, 2 * r + 1)]
    _expect(list(blk) == want, f"reduce_scatter {list(blk)} != {want}")

    # broadcast from the last rank
    bb = array.array("d", [float(r)] * 5)
    b.broadcast(bb, src_rank=n - 1)
    _expect(list(bb) == [float(n - 1)] * 5, "broadcast")

    # send/recv around a ring (recv fills the caller's buffer)
    nxt, prv = (r + 1) % n, (r - 1) % n
    mine = array.array("d", [100.0 * r + i for i in range(16)])
    got_ring = array.array("d", [0.0] * 16)
    if r % 2 == 0:
        b.send(mine, dst_rank=nxt)
        b.recv(got_ring, src_rank=prv)
    else:
        b.recv(got_ring, src_rank=prv)
        b.send(mine, dst_rank=nxt)
    _expect(list(got_ring) == [100.0 * prv + i for i in range(16)],
            "ring send/recv")
    # positional form, as sagellm-kv-cache calls it
    if n >= 2 and r in (0, 1):
        if r == 0:
            b.send(array.array("i", [7, 8, 9]), 1)
        else:
            into = array.array("i", [0, 0, 0])
            b.recv(into, 0)
            _expect(list(into) == [7, 8, 9], "positional recv")
    b.barrier()

    # non-blocking all_reduce
    abuf = array.array("f", [float(r)] * 1000)
    req = b.all_reduce(abuf, async_op=True)
    _expect(req.wait() is abuf, "Request.wait returns the tensor")
    _expect(set(abuf) == {float(sum(ranks))}, "async all_reduce")

    # groups: even ranks, then a reversed-order group of everyone
    evens = list(range(0, n, 2))
    grp = b.create_group(evens)
    if r in evens:
        _expect(grp.rank == evens.index(r) and grp.world_size == len(evens),
                "group rank")
        gb = array.array("d", [float(r)])
        sc.CollectiveOps.all_reduce(gb, group=grp)
        _expect(gb[0] == float(sum(evens)), "group all_reduce")
        gbc = array.array("d", [float(r)])
        grp.broadcast(gbc, src_rank=len(evens) - 1)
        _expect(gbc[0] == float(evens[-1]), "group broadcast")
    else:
        _expect(grp.rank == -1, "non-member rank")
        _raises(ValueError, "not a member", b.all_reduce,
                array.array("d", [1.0]), group=grp)
    rev = b.create_group(list(reversed(range(n))))
    _expect(rev.rank == n - 1 - r, "reversed group rank")
    gathered = rev.all_gather(array.array("i", [r]))
    _expect(list(gathered) == list(reversed(range(n))), "group order")
    b.destroy_group(grp)
    b.destroy_group(rev)

    # the seed's fail-fast messages
    _raises(ValueError, "Invalid dst_rank", b.send, mine, n)
    _raises(ValueError, "Invalid src_rank", b.recv, got_ring, -1)
    _raises(ValueError, "Invalid src_rank", b.broadcast, bb, n)
    _raises(ValueError, "ranks cannot be empty", b.create_group, [])
    _raises(ValueError, "Invalid ranks", b.create_group, [0, n])
    _raises(ValueError, "Unsupported operation", b.all_reduce, bb, "xor")
    _raises(ValueError, "writable", b.all_reduce, b"\0" * 8)
    _raises(ValueError, "contiguous", b.all_reduce,
            memoryview(bytearray(16))[::2])
    _raises(ValueError, "buffer protocol", b.all_reduce, [1.0, 2.0])

    # an error from libscomm itself: a message longer than the buffer
    if n >= 2 and r in (0, 1):
        if r == 0:
            b.send(array.array("d", [1.0] * 4), 1, tag=5)
        else:
            small = array.array("d", [0.0] * 2)
            try:
                b.recv(small, 0, tag=5)
            except sc.CommError as e:
                _expect(e.status < 0 and str(e) != "", "status/message")
                _expect(list(small) == [0.0, 0.0], "buffer untouched")
            else:
                raise AssertionError("truncated recv did not raise")
    b.destroy()
    _raises(RuntimeError, "not initialized", b.get_rank)
    print(f"rank {r}: OK")


def _prod(it) -> int:
    p = 1
    for v in it:
        p *= v
    return p


def peer_lost() -> None:
    """The last rank dies; the others must get an error, quickly."""
    b = _init()
    r, n = b.get_rank(), b.get_world_size()
    if r == n - 1:
        b.barrier()
        os._exit(3)
    t0 = time.monotonic()
    try:
        # The barrier may already see the death (the dying rank leaves it
        # as soon as its own part is done), or a later all_reduce does.
        b.barrier()
        for _ in range(100):
            b.all_reduce(array.array("d", [1.0] * 1024))
            time.sleep(0.05)
    except (sc.PeerLostError, sc.CommTimeoutError, sc.CommAbortedError) \
            as e:
        took = time.monotonic() - t0
        _expect(took < 15.0, f"error after {took:.1f} s")
        _expect(isinstance(e, sc.CommError) and str(e), "message")
        print(f"rank {r}: {type(e).__name__} after {took:.2f} s: {e}")
    else:
        raise AssertionError("no error although a rank died")
    b.destroy()


def numpy_arrays() -> None:
    """numpy arrays of several dtypes, without copies."""
    import numpy as np
    b = _init()
    r, n = b.get_rank(), b.get_world_size()
    for dt in (np.float32, np.float64, np.float16, np.int32, np.int64,
               np.uint8, np.int8):
        a = (np.arange(12, dtype=dt).reshape(3, 4) + r).astype(dt)
        addr = a.__array_interface__["data"][0]
        b.all_reduce(a)
        want = (np.arange(12).reshape(3, 4) * n + sum(range(n))).astype(dt)
        _expect(np.array_equal(a, want), f"numpy {dt.__name__}: {a}")
        _expect(a.__array_interface__["data"][0] == addr, "in place")
    g = b.all_gather(np.full(3, r, dtype=np.float32))
    _expect(g.shape == (n, 3) and all((g[q] == q).all() for q in range(n)),
            f"numpy all_gather {g}")
    rs = b.reduce_scatter(np.ones((2 * n, 2), dtype=np.float64) * (r + 1))
    _expect(rs.shape == (2, 2) and (rs == sum(q + 1 for q in range(n)))
            .all(), f"numpy reduce_scatter {rs}")
    _raises(ValueError, "contiguous", b.all_reduce,
            np.zeros((4, 4), dtype=np.float32)[:, 1])
    ro = np.zeros(4, dtype=np.float32)
    ro.setflags(write=False)
    _raises(ValueError, "writable", b.all_reduce, ro)
    b.destroy()
    print(f"rank {r}: numpy OK")


def torch_tensors() -> None:
    """torch CPU tensors: float32, float16 and bfloat16 all_reduce."""
    import torch
    b = _init()
    r, n = b.get_rank(), b.get_world_size()
    base = torch.arange(64, dtype=torch.float32).reshape(4, 16)
    for dt in (torch.float32, torch.float16, torch.bfloat16):
        t = (base * (r + 1)).to(dt)
        ptr = t.data_ptr()
        b.all_reduce(t)
        want = (base * sum(q + 1 for q in range(n))).to(dt)
        _expect(t.dtype == dt and t.data_ptr() == ptr, "in place")
        _expect(torch.equal(t, want), f"torch {dt}: {t} != {want}")
        m = (base - r).to(dt)
        b.all_reduce(m, op=sc.CommOp.MAX)
        _expect(torch.equal(m, base.to(dt)), f"torch max {dt}")
    avg = torch.full((8,), float(r), dtype=torch.float32)
    b.all_reduce(avg, op=sc.CommOp.AVG)
    _expect(torch.allclose(avg, torch.full((8,), (n - 1) / 2.0)), "avg")
    g = b.all_gather(torch.full((2, 3), r, dtype=torch.bfloat16))
    _expect(tuple(g.shape) == (n, 2, 3) and g.dtype == torch.bfloat16 and
            all(bool((g[q] == q).all()) for q in range(n)), "all_gather")
    bc = torch.full((5,), float(r), dtype=torch.float16)
    b.broadcast(bc, src_rank=n - 1)
    _expect(bool((bc == n - 1).all()), "broadcast f16")
    if r == 0:
        b.send(torch.arange(10, dtype=torch.bfloat16), 1)
    elif r == 1:
        into = torch.zeros(10, dtype=torch.bfloat16)
        b.recv(into, 0)
        _expect(torch.equal(into, torch.arange(10, dtype=torch.bfloat16)),
                "recv bf16")
    _raises(ValueError, "contiguous", b.all_reduce, base.t())
    b.destroy()
    print(f"rank {r}: torch {torch.__version__} OK")


def benchmarks(outdir: str) -> None:
    """Both benchmarks on a live world; files written by rank 0."""
    from sagellm_comm.benchmark import (run_all_reduce_benchmark,
                                        run_overlap_benchmark)
    b = _init()
    rows = run_all_reduce_benchmark(
        backend=b, message_sizes=[16, 4096], output_dir=outdir + "/coll",
        warmup_iters=2, benchmark_iters=5)
    _expect(len(rows) == 2 and rows[1].bytes == 4096 * 4, "rows")
    _expect(all(x.latency_ms > 0 and x.world_size == b.get_world_size()
                and x.algo_id not in ("", "none") for x in rows), "fields")
    ov = run_overlap_benchmark(comm_bytes=[4096], compute_durations_ms=[2],
                               output_dir=outdir + "/ovl", warmup_iters=1,
                               benchmark_iters=3, backend=b)
    _expect(len(ov) == 1 and 0.0 <= ov[0].overlap_ratio <= 1.0 and
            ov[0].compute_ms >= 2.0, "overlap row")
    b.destroy()


def snippet(which: str) -> None:
    """Run a README snippet as written (rank 0; other ranks change only
    the rank literal), with `tensor` defined beforehand."""
    import warnings
    from snippets import SNIPPETS
    r, n = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    text = SNIPPETS[which]
    if r != 0:
        text = text.replace("rank=0", f"rank={r}")
    tensor = array.array("f", [float(r + 1)] * 8)
    ns = {"tensor": tensor}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile(text, f"<README {which}>", "exec"), ns)
    want = float(sum(q + 1 for q in range(n)))
    _expect(list(tensor) == [want] * 8, f"{which}: {list(tensor)}")
    comm = ns.get("comm") or ns["group"].backend
    if which == "migration":
        _expect(any("nccl" in str(w.message) for w in caught),
                "fallback warning")
    comm.destroy()
    print(f"rank {r}: {which} OK")


if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])


class _FakeCuda:
    """Device memory of the strict fake runtime (tests/backend: PROT_NONE to
    the host, so a host access by libscomm kills the rank) exposed through
    __cuda_array_interface__, as a CUDA tensor of numba or CuPy would."""

    _rt = None

    def __init__(self, values, typestr: str = "<f4", fmt: str = "f"):
        import ctypes
        if _FakeCuda._rt is None:
            _FakeCuda._rt = ctypes.CDLL(os.environ["SCOMM_CUDART_LIBRARY"],
                                        mode=ctypes.RTLD_GLOBAL)
        self.fmt, self.n = fmt, len(values)
        self.nbytes = struct.calcsize(fmt) * self.n
        self.ptr = ctypes.c_void_p()
        _expect(self._rt.cudaMalloc(ctypes.byref(self.ptr),
                                    ctypes.c_size_t(self.nbytes)) == 0,
                "cudaMalloc")
        host = struct.pack(f"{self.n}{fmt}", *values)
        _expect(self._rt.cudaMemcpy(self.ptr, host,
                                    ctypes.c_size_t(self.nbytes), 1) == 0,
                "cudaMemcpy to device")
        self.__cuda_array_interface__ = {
            "shape": (self.n,), "typestr": typestr,
            "data": (self.ptr.value, False), "version": 3, "strides": None,
            "stream": 1}

    def get(self) -> list:
        import ctypes
        host = ctypes.create_string_buffer(self.nbytes)
        _expect(self._rt.cudaMemcpy(host, self.ptr,
                                    ctypes.c_size_t(self.nbytes), 2) == 0,
                "cudaMemcpy to host")
        return list(struct.unpack(f"{self.n}{self.fmt}", host.raw))


def device_buffers() -> None:
    """Objects with __cuda_array_interface__ on the strict fake device:
    all_reduce, all_gather, broadcast, send/recv, blocking and not; CPU and
    device buffers in one call are refused."""
    b = _init()
    r, n = b.get_rank(), b.get_world_size()
    x = _FakeCuda([float(r + 1), 2.0, -float(r)])
    b.all_reduce(x)
    _expect(x.get() == [float(sum(range(1, n + 1))), 2.0 * n,
                        -float(sum(range(n)))], f"all_reduce {x.get()}")
    g = _FakeCuda([0.0] * (2 * n))
    b.all_gather(_FakeCuda([float(r), float(10 * r)]), output=g)
    _expect(g.get() == [float(v) for q in range(n) for v in (q, 10 * q)],
            f"all_gather {g.get()}")
    c = _FakeCuda([r] * 5, "<i4", "i")
    b.broadcast(c, 0)
    _expect(c.get() == [0] * 5, f"broadcast {c.get()}")
    if n >= 2 and r < 2:
        m = _FakeCuda([7.0, 8.0] if r == 0 else [0.0, 0.0])
        if r == 0:
            b.send(m, 1)
        else:
            b.recv(m, 0)
            _expect(m.get() == [7.0, 8.0], f"recv {m.get()}")
    _raises(ValueError, "mixed", b.all_gather,
            _FakeCuda([1.0]), output=array.array("f", [0.0] * n))
    _device_nonblocking(b.communicator, r, n)
    if r < 2 and n >= 2:
        _kv_device(b, r)
    b.barrier()
    b.destroy()
    print(f"rank {r}: device buffers OK")


def _bf16(x: float) -> int:
    """The bfloat16 bits of x (exact for small integers)."""
    return struct.unpack("<I", struct.pack("<f", x))[0] >> 16


def _device_nonblocking(comm, r: int, n: int) -> None:
    """Non-blocking calls on the fake device, all in flight before one
    wait each (what the torch backend's works do on CUDA tensors): an odd
    count all_reduce, a bfloat16 one (dtype=), an all_gather, and a ring of
    isend/irecv; the buffers live until their requests are waited for."""
    x = _FakeCuda([float(r + k) for k in range(7)])
    h = _FakeCuda([_bf16(float(r + 1))] * 3, "<u2", "H")
    mine = _FakeCuda([float(r)] * 3)
    g = _FakeCuda([0.0] * (3 * n))
    out = _FakeCuda([float(100 + r)] * 5)
    into = _FakeCuda([-1.0] * 5)
    reqs = [comm.all_reduce(x, nonblocking=True),
            comm.all_reduce(h, dtype="bfloat16", nonblocking=True),
            comm.all_gather(mine, g, nonblocking=True),
            comm.recv(into, (r - 1) % n, 9, nonblocking=True),
            comm.send(out, (r + 1) % n, 9, nonblocking=True)]
    for req in reversed(reqs):
        req.wait()
    tot = sum(range(n))
    _expect(x.get() == [float(tot + n * k) for k in range(7)],
            f"iall_reduce {x.get()}")
    _expect(h.get() == [_bf16(float(sum(range(1, n + 1))))] * 3,
            f"iall_reduce bfloat16 {h.get()}")
    _expect(g.get() == [float(q) for q in range(n) for _ in range(3)],
            f"iall_gather {g.get()}")
    _expect(into.get() == [float(100 + (r - 1) % n)] * 5,
            f"irecv {into.get()}")


def _kv_device(b, r: int) -> None:
    """The KV channel between two device caches (rank 1 sends blocks 3, 0
    to rank 0's blocks 1, 2); rank 0's stream waits for layer 1 without
    blocking the host."""
    from sagellm_comm import kv
    lay = kv.KVLayout(2, 1, 16, 8, 4, "float32")
    bf = lay.region_bytes // 4 // 8  # floats per block (2 layers x 4)
    ep = kv.connect_comm(b, 1 - r)
    if r == 1:
        ep.register(_FakeCuda([float(i) for i in range(8 * bf)]), lay)
        with ep.submit(kv.KVPlan(11, [3, 0], [1, 2], 16)) as x:
            x.wait()
    else:
        dst = _FakeCuda([-1.0] * (8 * bf))
        ep.register(dst, lay)
        ep.wait_layer(11, 1, stream=1)  # enqueued: the host goes on
        ep.wait_xfer(11)
        got = dst.get()
        for layer in range(2):
            for s_blk, d_blk in ((3, 1), (0, 2)):
                d0, s0 = (layer * 4 + d_blk) * bf, (layer * 4 + s_blk) * bf
                _expect(got[d0:d0 + bf] == [float(i) for i in
                                            range(s0, s0 + bf)],
                        f"kv device block {s_blk} -> {d_blk} layer {layer}")
        _expect(got[:bf] == [-1.0] * bf, "kv device: block 0 untouched")
    ep.close()
