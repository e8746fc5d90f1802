"""Rank bodies for the torch.distributed backend tests (test_torch.py).

Each rank initialises the default group with backend "scomm" and makes a
gloo group over the same ranks; every collective runs on both with the
same inputs and the results are compared: exactly for inputs whose
reductions are exact in any order (small integers, powers of two), and
within the dtype's rounding for random inputs (the two backends may add
in different orders). gloo has no AVG: scomm's avg is compared with
gloo's sum divided by the group size. torch 1.13's gloo has no bfloat16
("Invalid scalar type"): there the reference reduces the same values as
float32 in gloo and rounds the result to bfloat16 (exact on the exact
inputs), and data movement runs gloo on the same bytes seen as float16.
"""

from __future__ import annotations

import datetime
import os
import sys
import time

import torch
import torch.distributed as dist

import sagellm_comm  # noqa: F401  (registers backend "scomm")
from sagellm_comm.errors import CommError

# A hang fails within this (gloo's default is 30 minutes).
TIMEOUT = datetime.timedelta(seconds=60)
DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.int64)
# Rounding allowed on random inputs (relative, per element).
RTOL = {torch.float32: 1e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}


def _expect(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)


def _same(a: torch.Tensor, b: torch.Tensor, what: str,
          exact: bool = True) -> None:
    _expect(a.dtype == b.dtype and a.shape == b.shape,
            f"{what}: {a.dtype}{tuple(a.shape)} vs {b.dtype}"
            f"{tuple(b.shape)}")
    if exact or not a.is_floating_point():
        ok = torch.equal(a, b)
    else:
        tol = RTOL[a.dtype]
        ok = torch.allclose(a.float(), b.float(), rtol=tol,
                            atol=tol * float(b.float().abs().max()) + 1e-6)
    if not ok:
        diff = (a.float() - b.float()).abs()
        raise AssertionError(f"{what}: scomm and gloo differ (max |diff| "
                             f"{float(diff.max())} at "
                             f"{int(diff.argmax())}): {a[:8]} vs {b[:8]}")


def _init(method: str) -> tuple:
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if method == "tcp":
        url = (f"tcp://{os.environ['MASTER_ADDR']}:"
               f"{os.environ['MASTER_PORT']}")
        dist.init_process_group("scomm", init_method=url, rank=rank,
                                world_size=world, timeout=TIMEOUT)
    else:
        dist.init_process_group("scomm", init_method="env://",
                                timeout=TIMEOUT)
    _expect(dist.get_backend() == "scomm", f"backend {dist.get_backend()}")
    _expect(dist.get_rank() == rank and dist.get_world_size() == world,
            "rank / world size")
    gloo = dist.new_group(backend="gloo", timeout=TIMEOUT)
    return rank, world, gloo


def _gloo_reduce(x: torch.Tensor, op, gloo) -> torch.Tensor:
    """all_reduce of x in gloo (bfloat16 through float32, see above)."""
    if x.dtype == torch.bfloat16:
        y = x.float()
        dist.all_reduce(y, op=op, group=gloo)
        return y.to(torch.bfloat16)
    y = x.clone()
    dist.all_reduce(y, op=op, group=gloo)
    return y


def _bits(t):
    """The tensor gloo moves in place of t (bfloat16 as float16 bytes)."""
    return t.view(torch.float16) if t.dtype == torch.bfloat16 else t


def _inputs(dt: torch.dtype, r: int, count: int, exact: bool,
            seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1000 + r)
    if exact or dt == torch.int64:
        # Small integers: every sum, max, min and avg over <= 4 ranks is
        # exact in every dtype, whatever the order.
        return torch.randint(-8, 9, (count,), generator=g).to(dt)
    return torch.randn(count, generator=g).to(dt)


def _ops(dt: torch.dtype) -> list:
    ops = [("sum", dist.ReduceOp.SUM), ("max", dist.ReduceOp.MAX),
           ("min", dist.ReduceOp.MIN)]
    if dt.is_floating_point and hasattr(dist.ReduceOp, "AVG"):
        ops.append(("avg", dist.ReduceOp.AVG))
    if dt in (torch.int64, torch.float32):
        ops.append(("product", dist.ReduceOp.PRODUCT))
    return ops


def _reductions(r: int, n: int, gloo, group=None, tag: str = "") -> None:
    """all_reduce, reduce_scatter (both forms) and reduce vs gloo."""
    seed = 0
    for dt in DTYPES:
        for count, exact in ((1, True), (1000, True), (1000, False),
                             (3 << 16, True)):
            for name, op in _ops(dt):
                seed += 1
                if name == "product":
                    if count > 1000 or not exact:
                        continue
                    x = torch.randint(1, 3, (count,),
                                      generator=torch.Generator()
                                      .manual_seed(seed + r)).to(dt)
                else:
                    x = _inputs(dt, r, count, exact, seed)
                what = f"{tag}all_reduce {name} {dt} x{count}"
                ours = x.clone()
                dist.all_reduce(ours, op=op, group=group)
                if name == "avg":
                    ref = _gloo_reduce(x, dist.ReduceOp.SUM, gloo)
                    ref = (ref.float() / n).to(dt) if exact else \
                        ref / n
                else:
                    ref = _gloo_reduce(x, op, gloo)
                _same(ours, ref, what, exact)
                if count % n == 0 and name in ("sum", "max"):
                    out = torch.empty(count // n, dtype=dt)
                    dist.reduce_scatter_tensor(out, x, op=op, group=group)
                    _same(out, ref.reshape(n, -1)[r], f"{tag}"
                          f"reduce_scatter_tensor {name} {dt}", exact)
                    out2 = torch.empty(count // n, dtype=dt)
                    dist.reduce_scatter(out2, list(x.chunk(n)), op=op,
                                        group=group)
                    _same(out2, ref.reshape(n, -1)[r], f"{tag}"
                          f"reduce_scatter list {name} {dt}", exact)
            # reduce to a root that is not rank 0; only the root compares
            root = 1 % n
            x = _inputs(dt, r, count, True, seed + 7)
            ours = x.clone()
            dist.reduce(ours, dst=_global(root, group), group=group)
            ref = _gloo_reduce(x, dist.ReduceOp.SUM, gloo)
            if r == root:
                _same(ours, ref, f"{tag}reduce {dt} x{count}")


def _global(group_rank: int, group) -> int:
    if group is None:
        return group_rank
    return dist.get_global_rank(group, group_rank)


def _movement(r: int, n: int, gloo, group=None, tag: str = "") -> None:
    """all_gather (list, into tensor), broadcast, all_to_all (single:
    even and uneven splits; lists), gather, scatter vs gloo."""
    for dt in DTYPES:
        for count in (1, 777, 1 << 16):
            x = _inputs(dt, r, count, False, count + r)
            ours = [torch.empty(count, dtype=dt) for _ in range(n)]
            refs = [torch.empty(count, dtype=dt) for _ in range(n)]
            dist.all_gather(ours, x, group=group)
            dist.all_gather([_bits(t) for t in refs], _bits(x), group=gloo)
            for q in range(n):
                _same(ours[q], refs[q], f"{tag}all_gather list {dt} [{q}]")
            flat = torch.empty(n * count, dtype=dt)
            dist.all_gather_into_tensor(flat, x, group=group)
            _same(flat, torch.cat(refs), f"{tag}all_gather_into_tensor {dt}")
            b = x.clone()
            b2 = x.clone()
            dist.broadcast(b, src=_global(n - 1, group), group=group)
            dist.broadcast(_bits(b2), src=_global(n - 1, group),
                           group=gloo)
            _same(b, b2, f"{tag}broadcast {dt} x{count}")
        # all_to_all_single, even
        per = 5
        x = _inputs(dt, r, n * per, False, 99 + r)
        ours, ref = torch.empty_like(x), torch.empty_like(x)
        dist.all_to_all_single(ours, x, group=group)
        dist.all_to_all_single(_bits(ref), _bits(x), group=gloo)
        _same(ours, ref, f"{tag}all_to_all_single {dt}")
        # uneven: rank r sends (r + q + 1) rows of 3 to rank q
        ins = [r + q + 1 for q in range(n)]
        outs = [q + r + 1 for q in range(n)]
        x = _inputs(dt, r, sum(ins) * 3, False, 7 + r).reshape(-1, 3)
        ours = torch.empty(sum(outs), 3, dtype=dt)
        ref = torch.empty_like(ours)
        dist.all_to_all_single(ours, x, outs, ins, group=group)
        dist.all_to_all_single(_bits(ref), _bits(x), outs, ins,
                               group=gloo)
        _same(ours, ref, f"{tag}all_to_all_single uneven {dt}")
        # lists (gloo has no list form: block q of rank r is computed
        # here as rank q made it)
        xs = [_inputs(dt, r, 4, False, 50 + q) + r for q in range(n)]
        ours = [torch.empty(4, dtype=dt) for _ in range(n)]
        dist.all_to_all(ours, xs, group=group)
        for q in range(n):
            _same(ours[q], _inputs(dt, q, 4, False, 50 + r) + q,
                  f"{tag}all_to_all list {dt} [{q}]")
        # lists of different sizes: rank r sends q + 1 elements to q
        xs = [torch.full((r + 1,), float(10 * r + q)).to(dt)
              for q in range(n)]
        ours = [torch.empty(q + 1, dtype=dt) for q in range(n)]
        dist.all_to_all(ours, xs, group=group)
        for q in range(n):
            _same(ours[q], torch.full((q + 1,), float(10 * q + r)).to(dt),
                  f"{tag}all_to_all uneven list {dt} [{q}]")
        # gather / scatter to and from the last rank
        root = n - 1
        x = _inputs(dt, r, 6, False, 3 + r)
        ours = [torch.empty(6, dtype=dt) for _ in range(n)] \
            if r == root else None
        ref = [torch.empty(6, dtype=dt) for _ in range(n)] \
            if r == root else None
        dist.gather(x, ours, dst=_global(root, group), group=group)
        dist.gather(_bits(x), [_bits(t) for t in ref] if ref else None,
                    dst=_global(root, group), group=gloo)
        if r == root:
            for q in range(n):
                _same(ours[q], ref[q], f"{tag}gather {dt} [{q}]")
        parts = [_inputs(dt, q, 6, False, 11) for q in range(n)] \
            if r == root else None
        got, got2 = torch.empty(6, dtype=dt), torch.empty(6, dtype=dt)
        dist.scatter(got, parts, src=_global(root, group), group=group)
        dist.scatter(_bits(got2), [_bits(t) for t in parts] if parts
                     else None, src=_global(root, group), group=gloo)
        _same(got, got2, f"{tag}scatter {dt}")


def _p2p(r: int, n: int) -> None:
    """send/recv and isend/irecv around a ring, tags, async works."""
    for dt in DTYPES:
        nxt, prv = (r + 1) % n, (r - 1) % n
        x = torch.arange(100, dtype=torch.float32).to(dt) + r
        got = torch.empty_like(x)
        if r % 2 == 0:
            dist.send(x, nxt, tag=3)
            dist.recv(got, prv, tag=3)
        else:
            dist.recv(got, prv, tag=3)
            dist.send(x, nxt, tag=3)
        _same(got, torch.arange(100, dtype=torch.float32).to(dt) + prv,
              f"send/recv {dt}")
        got = torch.empty_like(x)
        reqs = [dist.irecv(got, prv, tag=9), dist.isend(x, nxt, tag=9)]
        for q in reqs:
            q.wait()
            _expect(q.is_completed() and q.is_success() and
                    q.exception() is None, "isend/irecv work state")
        _same(got, torch.arange(100, dtype=torch.float32).to(dt) + prv,
              f"isend/irecv {dt}")
        got = torch.empty_like(x)
        ops = [dist.P2POp(dist.irecv, got, prv, tag=4),
               dist.P2POp(dist.isend, x, nxt, tag=4)]
        for q in dist.batch_isend_irecv(ops):
            q.wait()
        _same(got, torch.arange(100, dtype=torch.float32).to(dt) + prv,
              f"batch_isend_irecv {dt}")


def _async(r: int, n: int) -> None:
    """async_op=True: several in flight, completed out of order."""
    xs = [torch.full((1 << 15,), float(r + k)) for k in range(6)]
    works = [dist.all_reduce(x, async_op=True) for x in xs]
    works.append(dist.barrier(async_op=True))
    flat = torch.empty(n * 4)
    works.append(dist.all_gather_into_tensor(flat, torch.full((4,), r * 1.),
                                             async_op=True))
    for w in reversed(works):
        _expect(w.wait() is True, "wait returns True")
    for w in works:
        _expect(w.is_completed() and w.exception() is None, "completed")
    for k, x in enumerate(xs):
        want = float(sum(q + k for q in range(n)))
        _expect(bool((x == want).all()), f"async all_reduce {k}: {x[:3]}")
    _expect(torch.equal(flat, torch.arange(n).float().repeat_interleave(4)),
            f"async all_gather {flat}")
    if hasattr(dist, "all_reduce_coalesced"):
        parts = [torch.full((k + 1,), float(r)) for k in range(3)]
        dist.all_reduce_coalesced(parts)
        _expect(all(bool((p == sum(range(n))).all()) for p in parts),
                f"all_reduce_coalesced {parts}")
    fut = dist.all_reduce(torch.ones(3), async_op=True).get_future()
    _expect(torch.equal(fut.wait()[0], torch.full((3,), float(n))),
            "get_future")
    polled = dist.all_reduce(torch.ones(1 << 16), async_op=True)
    deadline = time.monotonic() + 30
    while not polled.is_completed():
        _expect(time.monotonic() < deadline, "is_completed never true")
        time.sleep(0.001)


def _errors(r: int, n: int) -> None:
    """Unsupported calls and bad tensors raise errors naming the call."""
    def raises(fn, *words):
        try:
            fn()
        except (CommError, RuntimeError, ValueError) as exc:
            for w in words:
                _expect(w in str(exc), f"{str(exc)!r} lacks {w!r}")
            return
        raise AssertionError(f"no error for {words}")
    raises(lambda: dist.recv(torch.empty(1)), "recv", "src")
    raises(lambda: dist.all_reduce(torch.ones(2),
                                   op=dist.ReduceOp.BAND),
           "all_reduce", "not supported")
    raises(lambda: dist.all_reduce(torch.ones(4, 4).t()), "all_reduce",
           "contiguous")
    raises(lambda: dist.all_reduce(torch.empty(2, device="meta")),
           "all_reduce", "meta", "host")
    raises(lambda: dist.all_gather([torch.empty(2)] * n,
                                   torch.ones(3)), "all_gather")
    if hasattr(dist, "all_gather_coalesced"):
        raises(lambda: dist.all_gather_coalesced([[torch.empty(1)] * n],
                                                 [torch.ones(1)]),
               "all_gather_coalesced")
    dist.barrier()


def compare(method: str = "env") -> None:
    """Every supported call against gloo, then p2p, async, errors, a
    subgroup of the even ranks (scomm and gloo)."""
    t0 = time.monotonic()
    r, n, gloo = _init(method)
    _reductions(r, n, gloo)
    _movement(r, n, gloo)
    _p2p(r, n)
    _async(r, n)
    _errors(r, n)
    evens = list(range(0, n, 2))
    sub = dist.new_group(evens, timeout=TIMEOUT)
    sub_gloo = dist.new_group(evens, backend="gloo", timeout=TIMEOUT)
    if r in evens:
        if len(evens) > 1:
            _reductions(evens.index(r), len(evens), sub_gloo, sub, "sub ")
        x = torch.full((4,), float(r))
        dist.all_reduce(x, group=sub)
        _expect(bool((x == sum(evens)).all()), f"subgroup sum {x}")
        _expect(sub.size() == len(evens) and
                sub.rank() == evens.index(r), "subgroup rank/size")
    dist.barrier()
    dist.destroy_process_group()
    print(f"rank {r}/{n}: scomm == gloo ({method}://, torch "
          f"{torch.__version__}) in {time.monotonic() - t0:.1f} s")


def peer_lost() -> None:
    """The last rank dies during a collective; the others' works raise a
    PeerLostError (naming the rank) from wait()."""
    from sagellm_comm.errors import PeerLostError
    r, n, _ = _init("env")
    x = torch.ones(1 << 12)
    dist.all_reduce(x)
    if r == n - 1:
        os._exit(3)
    t0 = time.monotonic()
    work = dist.all_reduce(x, async_op=True)
    try:
        work.wait()
    except PeerLostError as exc:
        _expect(str(n - 1) in str(exc), f"message {exc}")
        _expect(isinstance(work.exception(), PeerLostError) and
                work.is_completed() and not work.is_success(),
                "work state after failure")
        print(f"rank {r}: PeerLostError after "
              f"{time.monotonic() - t0:.2f} s: {exc}")
        os._exit(0)
    raise AssertionError("all_reduce with a dead rank did not fail")


if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
