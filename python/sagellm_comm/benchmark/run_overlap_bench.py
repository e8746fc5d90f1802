"""``python -m sagellm_comm.benchmark.run_overlap_bench``: overlap sweep."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from ._common import default_backend
from .overlap import run_overlap_benchmark


def main(argv: Optional[List[str]] = None) -> int:
    """Parse arguments, run, print a table on rank 0."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--comm-bytes", type=int, nargs="+",
                   default=[1024, 4096, 16384])
    p.add_argument("--compute-ms", type=float, nargs="+",
                   default=[10, 50, 100])
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--output-dir", default=".benchmarks/overlap")
    p.add_argument("--thread", action="store_true",
                   help="use a Python thread instead of iall_reduce")
    args = p.parse_args(argv)
    backend = default_backend()
    try:
        rows = run_overlap_benchmark(args.comm_bytes, args.compute_ms,
                                     args.output_dir, args.warmup,
                                     args.iters, backend=backend,
                                     use_thread=args.thread or None)
        if backend.get_rank() == 0:
            for r in rows:
                print(f"{r.comm_bytes:>10} B  compute {r.compute_ms:8.2f} "
                      f"ms  total {r.total_ms:8.2f} ms  overlap "
                      f"{r.overlap_ratio:6.1%}  efficiency "
                      f"{r.overlap_efficiency:6.1%}  ({r.mode})")
    finally:
        backend.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
