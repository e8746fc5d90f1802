#!/usr/bin/python3
"""torch_dist_bench.py - all_reduce through torch.distributed: backend
"scomm" (sagellm_comm's ProcessGroup over libscomm) against gloo, in the
same processes, interleaved.

Every rank makes the default group with one backend and a second group
over all ranks with the other, so both run on the same processes, memory
and cores. Per round, each message size is timed on A then B (the order
flips every round: A B, B A, ...), --iters back-to-back all_reduce calls
(float32 SUM, in place, on a tensor of zeros so values never overflow)
after --warmup untimed ones, the slowest rank's time kept. The table
gives, per size, the median over the rounds of each backend's time per
call, min-max across rounds, bus bandwidth (nccl-tests: bytes x 2(n-1)/n
/ time, 10^9 B/s) and gloo / scomm (> 1: scomm faster). Raw rows go to
--out as JSON lines.

    python3 bench/torch_dist_bench.py --np 2                 # 8 B .. 256 MiB
    python3 bench/torch_dist_bench.py --np 4 --rounds 7
    python3 bench/torch_dist_bench.py --np 2 --max-bytes 4096 --rounds 2

It starts the ranks itself (127.0.0.1, a free port); under torchrun or
`scomm launch` (RANK/WORLD_SIZE set) it runs as the given rank instead.
Needs torch (Debian's python3-torch) and the package of this tree (or an
installed isagellm-comm) with libscomm (SCOMM_LIBRARY or installed).
Timings mean something only on a quiet machine.
"""
import argparse
import datetime
import json
import os
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def sizes(lo, hi, step):
    out, s = [], lo
    while s <= hi:
        out.append(s)
        s *= step
    return out


def iters_for(nbytes, a):
    if a.iters:
        return a.iters
    # about the same amount of data per timing: many calls when small
    return max(3, min(1000, (64 << 20) // max(nbytes, 1)))


def rank_main(a):
    import torch
    import torch.distributed as dist
    sys.path.insert(0, os.path.join(HERE, "..", "python"))
    import sagellm_comm  # noqa: F401  (registers "scomm")

    torch.set_num_threads(1)
    timeout = datetime.timedelta(seconds=a.timeout)
    dist.init_process_group(a.default, init_method="env://",
                            timeout=timeout)
    other = "gloo" if a.default == "scomm" else "scomm"
    groups = {a.default: None,
              other: dist.new_group(backend=other, timeout=timeout)}
    ctl = groups["gloo"]            # for the timing reduction
    rank, n = dist.get_rank(), dist.get_world_size()
    order = ["scomm", "gloo"]
    rows = []
    for rnd in range(a.rounds):
        seq = order if rnd % 2 == 0 else order[::-1]
        for nbytes in sizes(a.min_bytes, a.max_bytes, a.step):
            count = max(1, nbytes // 4)
            t = torch.zeros(count, dtype=torch.float32)
            iters = iters_for(count * 4, a)
            for name in seq:
                g = groups[name]
                for _ in range(a.warmup):
                    dist.all_reduce(t, group=g)
                dist.barrier(group=g)
                t0 = time.perf_counter()
                for _ in range(iters):
                    dist.all_reduce(t, group=g)
                el = torch.tensor([time.perf_counter() - t0],
                                  dtype=torch.float64)
                dist.all_reduce(el, op=dist.ReduceOp.MAX, group=ctl)
                rows.append({"round": rnd, "backend": name,
                             "bytes": count * 4, "iters": iters,
                             "world_size": n,
                             "s_per_call": el.item() / iters})
            del t
    dist.barrier(group=ctl)
    dist.destroy_process_group()
    if rank == 0:
        report(rows, n, a)


def report(rows, n, a):
    os.makedirs(a.out, exist_ok=True)
    stamp = time.strftime("%Y%m%d_%H%M%S")
    path = os.path.join(a.out, f"torch_allreduce_np{n}_{stamp}.jsonl")
    with open(path, "w") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    print(f"all_reduce float32 sum, {n} ranks, {a.rounds} rounds "
          f"(A B / B A), median [min-max] per call; raw: {path}")
    print(f"{'bytes':>10} | {'scomm us':>22} | {'gloo us':>22} | "
          f"{'scomm busbw':>11} | {'gloo busbw':>10} | gloo/scomm")
    for nbytes in sorted({r["bytes"] for r in rows}):
        med, rng = {}, {}
        for name in ("scomm", "gloo"):
            v = [r["s_per_call"] for r in rows
                 if r["bytes"] == nbytes and r["backend"] == name]
            med[name] = statistics.median(v)
            rng[name] = (min(v), max(v))
        bus = {k: nbytes * 2 * (n - 1) / n / med[k] / 1e9 for k in med}
        cell = {k: f"{med[k] * 1e6:9.1f} [{rng[k][0] * 1e6:.0f}-"
                   f"{rng[k][1] * 1e6:.0f}]" for k in med}
        print(f"{nbytes:>10} | {cell['scomm']:>22} | {cell['gloo']:>22} | "
              f"{bus['scomm']:>8.2f} GB/s | {bus['gloo']:>7.2f} GB/s | "
              f"{med['gloo'] / med['scomm']:.2f}")


def launch(a):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for r in range(a.np):
        env = dict(os.environ, RANK=str(r), WORLD_SIZE=str(a.np),
                   LOCAL_RANK=str(r), LOCAL_WORLD_SIZE=str(a.np),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        procs.append(subprocess.Popen([sys.executable] + sys.argv, env=env))
    rc = 0
    for p in procs:
        rc = rc or p.wait()
    return rc


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--np", type=int, default=2, help="ranks to start")
    ap.add_argument("--min-bytes", type=int, default=8)
    ap.add_argument("--max-bytes", type=int, default=256 << 20)
    ap.add_argument("--step", type=int, default=4,
                    help="size multiplier between rows")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=0,
                    help="calls per timing (0: by size, 3..1000)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--default", choices=("scomm", "gloo"),
                    default="scomm", help="backend of the default group")
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--out", default=".benchmarks/torch_dist")
    a = ap.parse_args()
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        rank_main(a)
        return 0
    return launch(a)


if __name__ == "__main__":
    sys.exit(main())
