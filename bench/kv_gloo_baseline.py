#!/usr/bin/python3
"""kv_gloo_baseline.py - the baseline a CPU vLLM-style KV connector uses:
per-layer torch.distributed (gloo) send/recv of the paged KV tensors.

Same shapes as `scomm kv-bench`: per layer one tensor
[num_blocks, 2, kv_heads, block, head_dim] float16; rank 0 sends each layer
with dist.send, rank 1 receives into preallocated tensors. Reports the
median seconds of --iters full transfers (after one warm-up) and GB/s
(10^9 bytes), as one JSON line.

Memory is treated exactly as `scomm kv-bench` treats its regions: one
anonymous mapping per side, with --thp on (default) advised for transparent
huge pages (madvise MADV_HUGEPAGE), and written before the first transfer
(the sender fills it, the receiver zeroes it), so no page is first touched
inside a timed transfer.

Run both ranks locally (default) or one rank per invocation with --rank
(e.g. one in each network namespace): --addr/--port name rank 0's store.
"""
import argparse
import json
import mmap
import os
import statistics
import sys
import time


def run(rank, a):
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="tcp://%s:%d" % (a.addr, a.port),
                            rank=rank, world_size=2)
    nblocks = (a.tokens + a.block - 1) // a.block
    shape = (nblocks, 2, a.heads, a.block, a.dim)
    per_layer = nblocks * 2 * a.heads * a.block * a.dim
    region = mmap.mmap(-1, per_layer * 2 * a.layers)
    if a.thp == "on":
        region.madvise(mmap.MADV_HUGEPAGE)
    flat = torch.frombuffer(region, dtype=torch.float16)
    layers = [flat[i * per_layer:(i + 1) * per_layer].view(shape)
              for i in range(a.layers)]
    if rank == 0:
        for t in layers:
            t.normal_()
    else:
        for t in layers:
            t.zero_()
    times = []
    for it in range(a.iters + 1):
        dist.barrier()
        t0 = time.perf_counter()
        if rank == 0:
            for t in layers:
                dist.send(t, dst=1)
            # completion = the receiver has everything (like kv-bench's ack)
            ack = torch.zeros(1)
            dist.recv(ack, src=1)
        else:
            for t in layers:
                dist.recv(t, src=0)
            dist.send(torch.ones(1), dst=0)
        times.append(time.perf_counter() - t0)
    nbytes = sum(t.numel() * t.element_size() for t in layers)
    if rank == 0:
        med = statistics.median(times[1:])
        print(json.dumps({"bench": "kv_gloo", "shape": a.shape, "tokens": a.tokens,
                          "bytes": nbytes, "thp": int(a.thp == "on"),
                          "seconds": round(med, 6),
                          "gbps": round(nbytes / med / 1e9, 4),
                          "iters_s": [round(t, 6) for t in times[1:]]}))
        sys.stdout.flush()
    dist.destroy_process_group()
    del layers, flat


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shape", default="8b", choices=["8b", "1b"])
    p.add_argument("--tokens", type=int, default=4096)
    p.add_argument("--block", type=int, default=16)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--addr", default="127.0.0.1")
    p.add_argument("--port", type=int, default=29581)
    p.add_argument("--rank", type=int, default=-1)
    p.add_argument("--thp", default="on", choices=["on", "off"])
    a = p.parse_args()
    a.layers, a.heads, a.dim = (32, 8, 128) if a.shape == "8b" else (16, 8, 64)
    if a.rank >= 0:
        run(a.rank, a)
        return
    pid = os.fork()
    if pid == 0:
        try:
            run(1, a)
        finally:
            os._exit(0)
    run(0, a)
    os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
