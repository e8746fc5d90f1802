"""``python -m sagellm_comm.benchmark.run_bench``: the all_reduce sweep.

Ranks come from the launcher's environment (``scomm launch``, torchrun:
RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), or a single rank.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from ..registry import get_comm_backend
from ._common import default_backend
from .all_reduce import run_all_reduce_benchmark


def main(argv: Optional[List[str]] = None) -> int:
    """Parse arguments, run, print a table on rank 0."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--message-sizes", type=int, nargs="+",
                   default=[1024, 4096, 16384, 65536, 262144],
                   help="element counts")
    p.add_argument("--backend", default="auto")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--output-dir", default=".benchmarks/collective")
    args = p.parse_args(argv)
    if args.backend != "auto":
        get_comm_backend(args.backend)  # fail early on a bad name
    backend = default_backend()
    try:
        rows = run_all_reduce_benchmark(
            backend, args.message_sizes, args.output_dir, args.warmup,
            args.iters, dtype=args.dtype)
        if backend.get_rank() == 0:
            print(f"{'bytes':>12} {'latency_ms':>12} {'algbw GB/s':>11} "
                  f"{'busbw GB/s':>11}  algo")
            for r in rows:
                print(f"{r.bytes:>12} {r.latency_ms:>12.4f} "
                      f"{r.bandwidth_gbps:>11.3f} {r.busbw_gbps:>11.3f}  "
                      f"{r.algo_id}")
    finally:
        backend.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
