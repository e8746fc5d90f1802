"""torch.distributed backend "scomm" on CUDA tensors (docs/device.md): the
rank body, and a runner for scripts/gpu-check.sh.

Every rank uses GPU LOCAL_RANK % device_count (on one GPU both ranks share
it: libscomm stages through pinned host memory either way). Each call's
result is checked against a reference computed on the CPU from the same
inputs: all_reduce (float32 odd count, bfloat16, sum and max), async_op
works on a side stream (the current stream must wait for them), all_gather
into a tensor and into a list, reduce_scatter, broadcast, all_to_all,
send/recv, float8_e4m3fn/e5m2 all_gather where torch has them, and CPU and
CUDA tensors mixed in one call refused.

    python3 torch_cuda.py [NP]    runs NP ranks (default 2); exit 0 when
                                  every rank passed, 77 without CUDA
Only ever run on a GPU: this repository's CI has no CUDA torch (the same
calls run on the strict fake through __cuda_array_interface__ objects,
workers.device_buffers).
"""

from __future__ import annotations

import datetime
import os
import sys

import torch
import torch.distributed as dist

TIMEOUT = datetime.timedelta(seconds=60)


def _expect(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)


def _eq(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    _expect(torch.equal(got.cpu(), want.cpu()),
            f"{what}: got {got.cpu()[:8]}, want {want.cpu()[:8]}")


def worker() -> None:
    import sagellm_comm  # noqa: F401  (registers backend "scomm")

    r, n = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", r)) %
                       torch.cuda.device_count())
    torch.cuda.set_device(dev)
    dist.init_process_group("scomm", init_method="env://", timeout=TIMEOUT)

    # all_reduce: odd count float32 (sum), bfloat16 (sum, max): exact ints
    for dt in (torch.float32, torch.bfloat16):
        for op, fold in ((dist.ReduceOp.SUM, sum), (dist.ReduceOp.MAX, max)):
            base = torch.arange(1021, dtype=torch.float32) % 7
            x = (base + r).to(dt).to(dev)
            dist.all_reduce(x, op=op)
            want = fold([(base + q) for q in range(n)]) if fold is sum \
                else base + (n - 1)
            _eq(x, want.to(dt), f"all_reduce {dt} {op}")

    # async works on a side stream, waited for on the default one
    side = torch.cuda.Stream(dev)
    with torch.cuda.stream(side):
        ys = [torch.full((1 << 16,) if k else (13,), float(r + k),
                         device=dev) for k in range(4)]
        works = [dist.all_reduce(y, async_op=True) for y in ys]
    for w in reversed(works):
        _expect(w.wait() is True, "wait")
    torch.cuda.current_stream(dev).wait_stream(side)
    for k, y in enumerate(ys):
        _eq(y, torch.full_like(y, float(sum(q + k for q in range(n)))),
            f"async all_reduce {k}")

    # data movement
    mine = torch.arange(5, dtype=torch.float32, device=dev) + 10 * r
    flat = torch.empty(5 * n, device=dev)
    dist.all_gather_into_tensor(flat, mine)
    _eq(flat, torch.cat([torch.arange(5.) + 10 * q for q in range(n)]),
        "all_gather_into_tensor")
    outs = [torch.empty(5, device=dev) for _ in range(n)]
    dist.all_gather(outs, mine)
    for q in range(n):
        _eq(outs[q], torch.arange(5.) + 10 * q, f"all_gather[{q}]")
    big = torch.arange(3 * n, dtype=torch.float32, device=dev) + r
    part = torch.empty(3, device=dev)
    dist.reduce_scatter_tensor(part, big)
    _eq(part, sum(torch.arange(3 * n, dtype=torch.float32) + q
                  for q in range(n))[3 * r:3 * r + 3], "reduce_scatter")
    b = torch.full((7,), float(r), device=dev)
    dist.broadcast(b, src=n - 1)
    _eq(b, torch.full((7,), float(n - 1)), "broadcast")
    a_in = torch.arange(2 * n, dtype=torch.float32, device=dev) + 100 * r
    a_out = torch.empty(2 * n, device=dev)
    dist.all_to_all_single(a_out, a_in)
    _eq(a_out, torch.cat([torch.arange(2 * r, 2 * r + 2,
                                       dtype=torch.float32) + 100 * q
                          for q in range(n)]), "all_to_all_single")

    # point-to-point around the ring
    s = torch.full((33,), float(r), device=dev)
    got = torch.empty(33, device=dev)
    reqs = [dist.irecv(got, (r - 1) % n), dist.isend(s, (r + 1) % n)]
    for q in reqs:
        q.wait()
    _eq(got, torch.full((33,), float((r - 1) % n)), "isend/irecv")

    # float8 where torch has it: data movement of the bits
    for name in ("float8_e4m3fn", "float8_e5m2"):
        if hasattr(torch, name):
            f8 = getattr(torch, name)
            v = torch.full((9,), float(r + 1)).to(f8).to(dev)
            g8 = torch.empty(9 * n, dtype=f8, device=dev)
            dist.all_gather_into_tensor(g8, v)
            _eq(g8.view(torch.uint8), torch.cat(
                [torch.full((9,), float(q + 1)).to(f8) for q in range(n)]
            ).view(torch.uint8), f"all_gather {name}")

    # CPU and CUDA in one call: a clear error
    try:
        dist.all_gather_into_tensor(torch.empty(5 * n), mine)
    except Exception as exc:  # noqa: BLE001 - torch may refuse it first
        print(f"rank {r}: CPU and CUDA mixed refused: {exc}")
    else:
        raise AssertionError("CPU output with a CUDA input was accepted")
    dist.barrier()
    dist.destroy_process_group()
    print(f"rank {r}: torch CUDA tensors OK on {dev}")


def main(argv: list) -> int:
    if not torch.cuda.is_available():
        print("SKIP: torch has no CUDA device here")
        return 77
    import mp_util
    n = int(argv[1]) if len(argv) > 1 else 2
    res = mp_util.run_ranks(n, "torch_cuda:worker", 150)
    ok = all(rc == 0 for rc, _, _ in res)
    print(mp_util.describe(res) if not ok else
          "".join(out for _, out, _ in res), end="")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
