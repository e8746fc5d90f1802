"""Benchmarks of the seed: all_reduce sweep and compute/comm overlap.

``run_all_reduce_benchmark`` and ``run_overlap_benchmark`` write their
results as JSON and CSV (``.benchmarks/collective/`` and
``.benchmarks/overlap/`` by default) with the seed's field names, and
return them as dataclasses. Command lines: ``python -m
sagellm_comm.benchmark.run_bench`` and ``python -m
sagellm_comm.benchmark.run_overlap_bench``.
"""

from .all_reduce import AllReduceResult, run_all_reduce_benchmark
from .overlap import OverlapResult, run_overlap_benchmark

__all__ = ["AllReduceResult", "run_all_reduce_benchmark", "OverlapResult",
           "run_overlap_benchmark"]
