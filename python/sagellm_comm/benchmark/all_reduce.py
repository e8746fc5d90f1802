"""all_reduce micro-benchmark with the seed's output fields.

Per message size: warm-up, then ``benchmark_iters`` timed calls between two
barriers; the latency reported is the slowest rank's mean (an all_reduce
MAX of the per-rank means), so every rank reports the same numbers.
bandwidth_gbps is the algorithm bandwidth (bytes / latency, GB/s = 10^9
B/s) and busbw_gbps the bus bandwidth as nccl-tests defines it for
all_reduce (algbw * 2 (n - 1) / n). algo_id, selection_rule_id and
selection_reason are libscomm's selector record of the last call.
"""

from __future__ import annotations

import array
import time
from dataclasses import dataclass
from typing import List, Optional, Sequence

from ..backend import CommBackend, CommOp
from ..tensor import DType
from ._common import default_backend, timestamp, write_results

_TYPECODES = {DType.FLOAT32: "f", DType.FLOAT64: "d", DType.INT32: "i",
              DType.INT64: "q", DType.INT8: "b", DType.UINT8: "B"}


@dataclass
class AllReduceResult:
    """One row of the all_reduce benchmark (the seed's fields)."""

    bytes: int
    latency_ms: float
    bandwidth_gbps: float
    busbw_gbps: float
    algo_id: str
    backend_kind: str
    topology_source: str
    world_size: int
    op_type: str
    data_type: str
    warmup_iters: int
    benchmark_iters: int
    selection_rule_id: str
    selection_reason: str
    timestamp: str


def _buffer(count: int, dtype: DType) -> object:
    if dtype in _TYPECODES:
        return array.array(_TYPECODES[dtype], bytes(count * dtype.itemsize))
    # float16 / bfloat16 / fp8: raw bytes typed with dtype= below.
    return bytearray(count * dtype.itemsize)


def _topology_source() -> str:
    try:
        from ..comm import topology_json
        return str(topology_json(None)["host"].get("source", "scomm"))
    except Exception:
        return "env"


def run_all_reduce_benchmark(backend: Optional[CommBackend] = None,
                             message_sizes: Sequence[int] = (1024, 4096,
                                                             16384),
                             output_dir: Optional[str] =
                             ".benchmarks/collective",
                             warmup_iters: int = 10,
                             benchmark_iters: int = 100,
                             dtype: str = "float32",
                             op: object = CommOp.SUM) -> List[AllReduceResult]:
    """Time all_reduce for each message size (in elements of dtype).

    Every rank must call it with the same arguments. Rank 0 writes
    ``all_reduce_ws<N>_<time>.json`` and ``.csv`` under output_dir (None:
    no files). Returns the rows (the same on every rank)."""
    own = backend is None
    if backend is None:
        backend = default_backend()
    comm = backend.communicator  # type: ignore[attr-defined]
    dt = DType.parse(dtype)
    redop = CommOp.parse(op).to_redop()
    world = backend.get_world_size()
    source = _topology_source()
    rows: List[AllReduceResult] = []
    try:
        for count in message_sizes:
            buf = _buffer(int(count), dt)
            for _ in range(warmup_iters):
                comm.all_reduce(buf, redop, dtype=dt)
            comm.barrier()
            t0 = time.perf_counter()
            for _ in range(benchmark_iters):
                comm.all_reduce(buf, redop, dtype=dt)
            mean = (time.perf_counter() - t0) / max(benchmark_iters, 1)
            sel = comm.last_selection()
            slowest = array.array("d", [mean])
            comm.all_reduce(slowest, CommOp.MAX.to_redop())
            mean = slowest[0]
            nbytes = int(count) * dt.itemsize
            algbw = nbytes / mean / 1e9 if mean > 0 else 0.0
            busbw = algbw * 2 * (world - 1) / world if world > 1 else 0.0
            rows.append(AllReduceResult(
                bytes=nbytes, latency_ms=mean * 1e3, bandwidth_gbps=algbw,
                busbw_gbps=busbw, algo_id=sel.algo,
                backend_kind=backend.backend_type.value,
                topology_source=source, world_size=world,
                op_type="all_reduce", data_type=dt.name.lower(),
                warmup_iters=warmup_iters, benchmark_iters=benchmark_iters,
                selection_rule_id=sel.rule_id,
                selection_reason=sel.reason, timestamp=timestamp()))
        if output_dir is not None and backend.get_rank() == 0:
            write_results(rows, output_dir, f"all_reduce_ws{world}")
    finally:
        if own:
            backend.destroy()
    return rows
