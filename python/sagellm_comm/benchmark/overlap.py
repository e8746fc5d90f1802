"""Compute/communication overlap benchmark with the seed's output fields.

For each (comm_bytes, compute_duration_ms) pair, each iteration:

1. starts a non-blocking all_reduce of comm_bytes (``scomm_iall_reduce``,
   run by libscomm's progress thread; comm_submit_ms is the time to start
   it);
2. "computes" for compute_duration_ms on the calling thread (a busy loop,
   so the CPU is really taken; compute_ms is what it took);
3. waits for the all_reduce (comm_wait_ms); total_ms covers 1-3.

Reference times are measured in the same run: the blocking all_reduce
alone (comm_only_ms) and the compute alone. theoretical_sequential_ms =
comm_only + compute, theoretical_overlap_ms = max(comm_only, compute).
overlap_ratio is the share of the communication hidden behind compute,
(theoretical_sequential - total) / comm_only, and overlap_efficiency is
theoretical_overlap / total; both are clamped to [0, 1]. Values are the
slowest rank's means. When the loaded libscomm has no non-blocking
all_reduce, a Python thread runs the blocking one instead (``mode`` says
which).
"""

from __future__ import annotations

import array
import threading
import time
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence

from ..backend import CommBackend, CommOp
from ._common import default_backend, timestamp, write_results


@dataclass
class OverlapResult:
    """One row of the overlap benchmark (the seed's fields, plus ours)."""

    comm_bytes: int
    compute_duration_ms: float
    comm_submit_ms: float
    comm_wait_ms: float
    compute_ms: float
    total_ms: float
    overlap_ratio: float
    overlap_efficiency: float
    theoretical_sequential_ms: float
    theoretical_overlap_ms: float
    comm_only_ms: float
    world_size: int
    backend_kind: str
    mode: str
    warmup_iters: int
    benchmark_iters: int
    timestamp: str


def _compute(duration_ms: float) -> float:
    """Busy arithmetic for duration_ms; returns the ms it took."""
    t0 = time.perf_counter()
    end = t0 + duration_ms / 1e3
    x = 1.0
    while time.perf_counter() < end:
        for _ in range(200):
            x = x * 1.0000001 + 1e-9
    return (time.perf_counter() - t0) * 1e3


class _ThreadRequest:
    """Blocking all_reduce on a helper thread (fallback mode)."""

    def __init__(self, comm: Any, buf: Any) -> None:
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, args=(comm, buf),
                                        daemon=True)
        self._thread.start()

    def _run(self, comm: Any, buf: Any) -> None:
        try:
            comm.all_reduce(buf)
        except BaseException as exc:  # re-raised in wait()
            self._error = exc

    def wait(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


def _clamp(x: float) -> float:
    return max(0.0, min(1.0, x))


def run_overlap_benchmark(comm_bytes: Sequence[int] = (1024, 4096, 16384),
                          compute_durations_ms: Sequence[float] = (10, 50,
                                                                   100),
                          output_dir: Optional[str] = ".benchmarks/overlap",
                          warmup_iters: int = 5, benchmark_iters: int = 10,
                          backend: Optional[CommBackend] = None,
                          use_thread: Optional[bool] = None
                          ) -> List[OverlapResult]:
    """Measure how much of an all_reduce hides behind computation.

    Every rank calls it with the same arguments; without a backend one is
    made from the environment (a single rank when RANK is unset). Rank 0
    writes ``overlap_ws<N>_<time>.json`` and ``.csv`` under output_dir."""
    own = backend is None
    if backend is None:
        backend = default_backend()
    comm = backend.communicator  # type: ignore[attr-defined]
    if use_thread is None:
        use_thread = not comm.lib.has("scomm_iall_reduce")
    mode = "python-thread" if use_thread else "iall_reduce"
    world = backend.get_world_size()
    rows: List[OverlapResult] = []

    def slowest(values: Sequence[float]) -> List[float]:
        buf = array.array("d", values)
        comm.all_reduce(buf, CommOp.MAX.to_redop())
        return list(buf)

    try:
        for nbytes in comm_bytes:
            buf = array.array("f", bytes(max(int(nbytes) // 4, 1) * 4))
            for _ in range(warmup_iters):
                comm.all_reduce(buf)
            comm.barrier()
            t0 = time.perf_counter()
            for _ in range(benchmark_iters):
                comm.all_reduce(buf)
            comm_only = (time.perf_counter() - t0) * 1e3 / benchmark_iters
            for duration in compute_durations_ms:
                sums = [0.0] * 5
                for it in range(warmup_iters + benchmark_iters):
                    comm.barrier()
                    t0 = time.perf_counter()
                    if use_thread:
                        req: Any = _ThreadRequest(comm, buf)
                    else:
                        req = comm.all_reduce(buf, nonblocking=True)
                    t1 = time.perf_counter()
                    compute = _compute(float(duration))
                    t2 = time.perf_counter()
                    req.wait()
                    t3 = time.perf_counter()
                    if it >= warmup_iters:
                        for i, v in enumerate(((t1 - t0) * 1e3, compute,
                                               (t3 - t2) * 1e3,
                                               (t3 - t0) * 1e3)):
                            sums[i] += v
                n = float(benchmark_iters)
                submit, compute, wait, total, c_only = slowest(
                    [sums[0] / n, sums[1] / n, sums[2] / n, sums[3] / n,
                     comm_only])
                seq = c_only + compute
                ovl = max(c_only, compute)
                rows.append(OverlapResult(
                    comm_bytes=int(nbytes),
                    compute_duration_ms=float(duration),
                    comm_submit_ms=submit, comm_wait_ms=wait,
                    compute_ms=compute, total_ms=total,
                    overlap_ratio=_clamp((seq - total) / c_only)
                    if c_only > 0 else 1.0,
                    overlap_efficiency=_clamp(ovl / total) if total > 0
                    else 1.0,
                    theoretical_sequential_ms=seq,
                    theoretical_overlap_ms=ovl, comm_only_ms=c_only,
                    world_size=world,
                    backend_kind=backend.backend_type.value, mode=mode,
                    warmup_iters=warmup_iters,
                    benchmark_iters=benchmark_iters,
                    timestamp=timestamp()))
        if output_dir is not None and backend.get_rank() == 0:
            write_results(rows, output_dir, f"overlap_ws{world}")
    finally:
        if own:
            backend.destroy()
    return rows
