"""CommBackend over libscomm: the seed's GlooBackend and its relatives.

``ScommBackend`` implements the whole seed interface with libscomm's native
host backend (shared memory between ranks of one host, TCP between hosts).
``GlooBackend`` is the same backend under the seed's name ("gloo" selects
it: the seed's Gloo CPU fallback is what libscomm's native backend
replaces), and ``MockBackend`` runs libscomm's in-process mock (ranks are
threads of one process). The fail-fast checks and their messages are the
seed's: "Invalid rank", "Invalid world_size", "not initialized",
"ranks cannot be empty", "Invalid ranks", "Invalid dst_rank",
"Invalid src_rank".
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Dict, List, Optional, Sequence

from .backend import CommBackend, CommBackendType, CommGroup, CommOp
from .comm import Communicator, Selection
from .errors import CommInvalidArgumentError, CommNotInitializedError
from .tensor import BufferView, new_like


def _int_arg(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            if isinstance(value, bool):
                raise TypeError
            return int(value)
        except (TypeError, ValueError):
            raise CommInvalidArgumentError(
                f"Invalid {what}: {value!r} (an integer is required)"
            ) from None
    return value


class ScommBackend(CommBackend):
    """The seed's CommBackend over libscomm (native host backend)."""

    backend_type = CommBackendType.NATIVE
    _scomm_backend = "native"

    def __init__(self) -> None:
        self._initialized = False
        self._rank = -1
        self._world_size = -1
        self._torch_dist = None  # the seed kept torch.distributed here
        self._comm: Optional[Communicator] = None
        self._groups: List[CommGroup] = []
        self._group_seq = 0
        self._world_group: Optional[CommGroup] = None
        self._stats: Dict[str, float] = {}
        self._stats_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------

    def init(self, rank: int, world_size: int,
             master_addr: Optional[str] = None,
             master_port: Optional[int] = None, *,
             timeout_ms: Optional[int] = None,
             job_token: Optional[str] = None, **kwargs: Any) -> None:
        """Rendezvous through rank 0 at master_addr:master_port (defaults:
        MASTER_ADDR / MASTER_PORT, else 127.0.0.1:29500) and connect to
        every peer. Raises ValueError for a bad rank or world_size."""
        if kwargs:
            raise TypeError(f"unexpected arguments: {sorted(kwargs)}")
        world_size = _int_arg(world_size, "world_size")
        rank = _int_arg(rank, "rank")
        if world_size <= 0:
            raise CommInvalidArgumentError(
                f"Invalid world_size: {world_size} (must be > 0)")
        if rank < 0 or rank >= world_size:
            raise CommInvalidArgumentError(
                f"Invalid rank: {rank} (must be in [0, {world_size}))")
        if self._initialized:
            from .errors import CommUsageError
            raise CommUsageError(
                f"{type(self).__name__} is already initialized "
                f"(rank {self._rank} of {self._world_size})")
        if master_addr is None:
            master_addr = os.environ.get("MASTER_ADDR", "127.0.0.1")
        if master_port is None:
            master_port = int(os.environ.get("MASTER_PORT", "29500"))
        self._comm = Communicator.init(
            rank, world_size, master_addr, _int_arg(master_port,
                                                    "master_port"),
            timeout_ms=timeout_ms, backend=self._scomm_backend,
            job_token=job_token)
        self._rank, self._world_size = rank, world_size
        self._initialized = True

    def _require(self) -> Communicator:
        if not self._initialized or self._comm is None:
            raise CommNotInitializedError(
                f"{type(self).__name__} not initialized: call init() first")
        return self._comm

    def is_initialized(self) -> bool:
        """Whether init() succeeded and destroy() was not called."""
        return self._initialized

    def get_rank(self) -> int:
        self._require()
        return self._rank

    def get_world_size(self) -> int:
        self._require()
        return self._world_size

    def get_local_rank(self) -> int:
        """Rank among the ranks of this host."""
        return self._require().local_rank

    def get_local_world_size(self) -> int:
        """Number of ranks on this host."""
        return self._require().local_size

    @property
    def communicator(self) -> Communicator:
        """The low-level world Communicator."""
        return self._require()

    def destroy(self) -> None:
        """Destroy every group, then the world communicator (idempotent)."""
        if not self._initialized:
            return
        for group in list(self._groups):
            self.destroy_group(group)
        comm, self._comm = self._comm, None
        self._initialized = False
        if comm is not None:
            comm.destroy()

    def abort(self) -> None:
        """Fail every blocked and later call (CommAbortedError), on every
        rank; destroy() afterwards."""
        if self._comm is not None:
            self._comm.abort()

    def __enter__(self) -> "ScommBackend":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.destroy()

    # -- groups ------------------------------------------------------------------

    def _target(self, group: Optional[CommGroup]) -> Communicator:
        comm = self._require()
        if group is None or group is self._world_group:
            return comm
        if group._backend is not self or group._comm is None:
            if group._backend is self and not group.is_member():
                raise CommInvalidArgumentError(
                    f"rank {self._rank} is not a member of group "
                    f"{group.group_id} {group.ranks}")
            raise CommInvalidArgumentError(
                f"group {group.group_id!r} was not made by this backend "
                "(or was destroyed)")
        return group._comm

    def _peer(self, peer: int, group: Optional[CommGroup], what: str) -> int:
        size = self._world_size
        ranks = None if group is None else group.ranks
        peer_i = _int_arg(peer, what)
        if ranks is not None and group is not self._world_group:
            if peer_i not in ranks:
                raise CommInvalidArgumentError(
                    f"Invalid {what}: {peer} (not in group {ranks})")
            return ranks.index(peer_i)
        if peer_i < 0 or peer_i >= size:
            raise CommInvalidArgumentError(
                f"Invalid {what}: {peer} (must be in [0, {size}))")
        return peer_i

    def world_group(self) -> CommGroup:
        """The group of every rank (made once)."""
        self._require()
        if self._world_group is None:
            self._world_group = CommGroup(
                group_id="world", ranks=list(range(self._world_size)),
                world_size=self._world_size,
                backend_type=self.backend_type, rank=self._rank,
                _backend=self, _comm=self._comm)
        return self._world_group

    def create_group(self, ranks: Sequence[int]) -> CommGroup:
        """A group of ``ranks`` (group rank i = ranks[i]). Collective:
        every rank of the world calls it with the same list, members or
        not (non-members get a group with rank -1)."""
        comm = self._require()
        if ranks is None or len(ranks) == 0:
            raise CommInvalidArgumentError("ranks cannot be empty")
        try:
            ranks_list = [_int_arg(r, "ranks") for r in ranks]
        except CommInvalidArgumentError:
            raise CommInvalidArgumentError(
                f"Invalid ranks: {list(ranks)!r}") from None
        bad = [r for r in ranks_list if r < 0 or r >= self._world_size]
        if bad or len(set(ranks_list)) != len(ranks_list):
            raise CommInvalidArgumentError(
                f"Invalid ranks: {ranks_list} (each in [0, "
                f"{self._world_size}), no duplicates)")
        member = self._rank in ranks_list
        color = 0 if member else -1
        key = ranks_list.index(self._rank) if member else 0
        sub = comm.split(color, key)
        self._group_seq += 1
        group = CommGroup(
            group_id=f"group_{self._group_seq}", ranks=ranks_list,
            world_size=len(ranks_list), backend_type=self.backend_type,
            rank=ranks_list.index(self._rank) if member else -1,
            _backend=self, _comm=sub)
        self._groups.append(group)
        return group

    def destroy_group(self, group: CommGroup) -> None:
        """Release a group from create_group (idempotent)."""
        if group in self._groups:
            self._groups.remove(group)
        sub, group._comm = group._comm, None
        if sub is not None and sub is not self._comm:
            sub.destroy()

    # -- statistics -------------------------------------------------------------

    def _count(self, op: str, nbytes: int, seconds: float) -> None:
        with self._stats_lock:
            s = self._stats
            s[f"{op}_count"] = s.get(f"{op}_count", 0) + 1
            s["total_bytes"] = s.get("total_bytes", 0) + nbytes
            s["total_ops"] = s.get("total_ops", 0) + 1
            s["total_ms"] = s.get("total_ms", 0.0) + seconds * 1e3

    def get_stats(self) -> Dict[str, float]:
        """Counters of the blocking calls made through this backend:
        ``<op>_count``, ``total_bytes``, ``total_ops``, ``avg_latency_ms``."""
        with self._stats_lock:
            out = dict(self._stats)
        ops = out.get("total_ops", 0)
        out["avg_latency_ms"] = out.get("total_ms", 0.0) / ops if ops else 0.0
        return out

    def last_selection(self, group: Optional[CommGroup] = None) -> Selection:
        """The algorithm libscomm chose for the last collective."""
        return self._target(group).last_selection()

    @staticmethod
    def _nbytes(tensor: Any) -> int:
        with BufferView(tensor, writable=False) as view:
            return view.nbytes

    def _timed(self, name: str, tensor: Any, fn: Any, async_op: bool) -> Any:
        if async_op:
            return fn(True)
        t0 = time.perf_counter()
        out = fn(False)
        self._count(name, self._nbytes(tensor), time.perf_counter() - t0)
        return out

    # -- collectives -------------------------------------------------------------

    def all_reduce(self, tensor: Any, op: Any = CommOp.SUM, *,
                   group: Optional[CommGroup] = None,
                   async_op: bool = False) -> Any:
        """Reduce tensor across ranks, in place; returns tensor (a Request
        with ``async_op=True``; wait() returns the tensor)."""
        comm = self._target(group)
        redop = CommOp.parse(op).to_redop()
        return self._timed("all_reduce", tensor, lambda nb: comm.all_reduce(
            tensor, redop, nonblocking=nb), async_op)

    def all_gather(self, tensor: Any, *, group: Optional[CommGroup] = None,
                   output: Any = None, async_op: bool = False) -> Any:
        """Every rank's tensor, concatenated in rank order, in ``output``
        (a new tensor of the same kind when None: numpy/torch get shape
        (world_size, *tensor.shape), flat buffers world_size times the
        elements). Returns the output."""
        comm = self._target(group)
        if output is None:
            with BufferView(tensor, writable=False) as view:
                count = view.count
            output = new_like(tensor, count * comm.size)
        return self._timed("all_gather", tensor, lambda nb: comm.all_gather(
            tensor, output, nonblocking=nb), async_op)

    def reduce_scatter(self, tensor: Any, op: Any = CommOp.SUM, *,
                       group: Optional[CommGroup] = None, output: Any = None,
                       async_op: bool = False) -> Any:
        """Reduce tensor (world_size equal blocks) and return this rank's
        block, in ``output`` or a new tensor of the same kind."""
        comm = self._target(group)
        redop = CommOp.parse(op).to_redop()
        if output is None:
            with BufferView(tensor, writable=False) as view:
                count, size = view.count, comm.size
            if count % size:
                raise CommInvalidArgumentError(
                    f"Invalid tensor size: {count} elements is not a "
                    f"multiple of world_size {size}")
            output = new_like(tensor, count // size)
            if hasattr(output, "reshape") and hasattr(tensor, "shape") and \
                    len(tensor.shape) > 0 and tensor.shape[0] % size == 0:
                output = output.reshape((tensor.shape[0] // size,)
                                        + tuple(tensor.shape[1:]))
        return self._timed("reduce_scatter", tensor,
                           lambda nb: comm.reduce_scatter(
                               tensor, output, redop, nonblocking=nb),
                           async_op)

    def broadcast(self, tensor: Any, src_rank: int = 0, *,
                  group: Optional[CommGroup] = None,
                  async_op: bool = False) -> Any:
        """Copy src_rank's tensor (a world rank) into tensor everywhere."""
        comm = self._target(group)
        root = self._peer(src_rank, group, "src_rank")
        return self._timed("broadcast", tensor, lambda nb: comm.broadcast(
            tensor, root, nonblocking=nb), async_op)

    def reduce(self, tensor: Any, dst_rank: int = 0, op: Any = CommOp.SUM,
               *, group: Optional[CommGroup] = None) -> Any:
        """Reduce into tensor on dst_rank only."""
        comm = self._target(group)
        root = self._peer(dst_rank, group, "dst_rank")
        return comm.reduce(tensor, root, CommOp.parse(op).to_redop())

    def all_to_all(self, tensor: Any, output: Any = None, *,
                   group: Optional[CommGroup] = None) -> Any:
        """Block p of tensor goes to rank p; returns the received blocks."""
        comm = self._target(group)
        if output is None:
            with BufferView(tensor, writable=False) as view:
                count = view.count
            output = new_like(tensor, count)
            if hasattr(output, "reshape") and hasattr(tensor, "shape"):
                output = output.reshape(tuple(tensor.shape))
        return comm.all_to_all(tensor, output)

    def barrier(self, *, group: Optional[CommGroup] = None,
                async_op: bool = False) -> Any:
        """Wait for every rank of the group."""
        return self._target(group).barrier(nonblocking=async_op)

    # -- point-to-point ---------------------------------------------------------

    def send(self, tensor: Any, dst_rank: int, *, tag: int = 0,
             group: Optional[CommGroup] = None,
             async_op: bool = False) -> Any:
        """Send tensor to dst_rank (a world rank)."""
        comm = self._target(group)
        peer = self._peer(dst_rank, group, "dst_rank")
        return self._timed("send", tensor, lambda nb: comm.send(
            tensor, peer, tag, nonblocking=nb), async_op)

    def recv(self, tensor: Any, src_rank: int, *, tag: int = 0,
             group: Optional[CommGroup] = None,
             async_op: bool = False) -> Any:
        """Receive from src_rank into the caller's tensor; returns it."""
        comm = self._target(group)
        peer = self._peer(src_rank, group, "src_rank")
        return self._timed("recv", tensor, lambda nb: comm.recv(
            tensor, peer, tag, nonblocking=nb), async_op)


class GlooBackend(ScommBackend):
    """The seed's GlooBackend: libscomm's native host backend."""

    backend_type = CommBackendType.GLOO
    _scomm_backend = "gloo"


class MockBackend(ScommBackend):
    """libscomm's deterministic in-process mock (ranks are threads of one
    process; SCOMM_MOCK_FAULTS injects faults)."""

    backend_type = CommBackendType.MOCK
    _scomm_backend = "mock"


def create_gloo_backend(**kwargs: Any) -> GlooBackend:
    """Entry point of the "gloo" backend (seed: sagellm.comm_backends)."""
    return GlooBackend(**kwargs)


def create_native_backend(**kwargs: Any) -> ScommBackend:
    """Entry point of the "native" backend."""
    return ScommBackend(**kwargs)


def create_mock_backend(**kwargs: Any) -> MockBackend:
    """Entry point of the "mock" backend."""
    return MockBackend(**kwargs)
