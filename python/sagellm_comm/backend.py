"""The seed's interface types: CommOp, CommBackendType, CommGroup,
TopologyNode and the abstract CommBackend.

``CommBackend`` is the contract every backend follows (the seed's
``sagellm_comm.backend``); ``sagellm_comm.gloo_backend`` implements it over
libscomm. ``CommBackend.create(name)`` and ``init_process_group`` are the
README's spellings and work on every backend.
"""

from __future__ import annotations

import abc
import enum
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Union

from .comm import RedOp
from .errors import (CommInvalidArgumentError, CommNotInitializedError,
                     MissingEnvironmentError)


class CommOp(str, enum.Enum):
    """Reduction operators (the seed's CommOp; README's ReduceOp)."""

    SUM = "sum"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"
    AVG = "avg"
    PROD = "product"  # alias of PRODUCT

    def to_redop(self) -> RedOp:
        """The libscomm operator."""
        return _TO_REDOP[self.value]

    @classmethod
    def parse(cls, op: Any) -> "CommOp":
        """A CommOp from itself, a name ("sum", "prod", "max"...), a RedOp,
        or anything with a ``name`` attribute (torch's ReduceOp)."""
        if isinstance(op, CommOp):
            return op
        if isinstance(op, RedOp):
            return {RedOp.SUM: cls.SUM, RedOp.PROD: cls.PRODUCT,
                    RedOp.MAX: cls.MAX, RedOp.MIN: cls.MIN,
                    RedOp.AVG: cls.AVG}[op]
        key = str(getattr(op, "name", op)).lower()
        key = key.split(".")[-1]
        key = {"prod": "product", "mean": "avg", "average": "avg"}.get(key,
                                                                       key)
        try:
            return cls(key)
        except ValueError:
            raise CommInvalidArgumentError(
                f"Unsupported operation: {op!r} (sum, product, min, max, "
                "avg)") from None


_TO_REDOP = {"sum": RedOp.SUM, "product": RedOp.PROD, "min": RedOp.MIN,
             "max": RedOp.MAX, "avg": RedOp.AVG}

#: The README's name for CommOp.
ReduceOp = CommOp


class CommBackendType(str, enum.Enum):
    """Backend kinds. GLOO and NATIVE are libscomm's host backend."""

    GLOO = "gloo"
    NATIVE = "native"
    MOCK = "mock"
    NCCL = "nccl"
    HCCL = "hccl"
    RCCL = "rccl"
    CNCL = "cncl"


@dataclass
class TopologyNode:
    """One rank's place: its device and host (the seed's record)."""

    node_id: str
    rank: int
    device_type: str = "cpu"
    device_index: int = 0
    hostname: str = "localhost"

    def to_dict(self) -> Dict[str, Any]:
        """Plain dict of the fields."""
        return {"node_id": self.node_id, "rank": self.rank,
                "device_type": self.device_type,
                "device_index": self.device_index,
                "hostname": self.hostname}


@dataclass
class CommGroup:
    """A set of ranks that communicate together.

    Built by ``CommBackend.create_group(ranks)`` (collective over the
    world, like torch's new_group) or ``CommGroup.create(world_size, rank)``
    (the world group, README), or directly as a plain record. ``rank`` is
    this process's rank inside the group (-1 if not a member). The
    collective methods use group-local ranks for roots and peers.
    """

    group_id: str
    ranks: List[int]
    world_size: int
    backend_type: CommBackendType = CommBackendType.GLOO
    rank: int = -1
    _backend: Optional["CommBackend"] = field(default=None, repr=False,
                                              compare=False)
    _comm: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def create(cls, world_size: Optional[int] = None,
               rank: Optional[int] = None,
               master_addr: Optional[str] = None,
               master_port: Optional[int] = None,
               backend: Union[str, CommBackendType, None] = None,
               **kwargs: Any) -> "CommGroup":
        """Initialise a backend (default: auto) for world_size/rank (or the
        launcher's environment) and return its world group."""
        comm = CommBackend.create(backend)
        comm.init_process_group(world_size=world_size, rank=rank,
                                master_addr=master_addr,
                                master_port=master_port, **kwargs)
        return comm.world_group()

    @property
    def backend(self) -> "CommBackend":
        """The backend this group runs on."""
        if self._backend is None:
            raise CommNotInitializedError(
                f"group {self.group_id!r} is not initialized (make groups "
                "with CommBackend.create_group or CommGroup.create)")
        return self._backend

    def is_member(self) -> bool:
        """Whether this process belongs to the group."""
        return self.rank >= 0

    def contains(self, global_rank: int) -> bool:
        """Whether a world rank belongs to the group."""
        return global_rank in self.ranks

    def get_group_rank(self, global_rank: int) -> int:
        """The group rank of a world rank."""
        try:
            return self.ranks.index(global_rank)
        except ValueError:
            raise CommInvalidArgumentError(
                f"Invalid rank: {global_rank} is not in group "
                f"{self.group_id} {self.ranks}") from None

    def get_rank(self) -> int:
        """This process's rank in the group."""
        return self.rank

    def get_world_size(self) -> int:
        """Number of ranks in the group."""
        return self.world_size

    def all_reduce(self, tensor: Any, op: Any = CommOp.SUM) -> Any:
        """All-reduce over the group, in place."""
        return self.backend.all_reduce(tensor, op, group=self)

    def all_gather(self, tensor: Any, output: Any = None) -> Any:
        """All-gather over the group (see CommBackend.all_gather)."""
        return self.backend.all_gather(tensor, group=self, output=output)

    def reduce_scatter(self, tensor: Any, op: Any = CommOp.SUM,
                       output: Any = None) -> Any:
        """Reduce-scatter over the group."""
        return self.backend.reduce_scatter(tensor, op, group=self,
                                           output=output)

    def broadcast(self, tensor: Any, src_rank: int = 0) -> Any:
        """Broadcast from group rank src_rank."""
        return self.backend.broadcast(tensor, self.ranks[src_rank]
                                      if 0 <= src_rank < len(self.ranks)
                                      else -1, group=self)

    def barrier(self) -> None:
        """Barrier over the group."""
        self.backend.barrier(group=self)

    def destroy(self) -> None:
        """Release the group's communicator (not the world's)."""
        if self._backend is not None:
            self._backend.destroy_group(self)


def env_int(name: str, default: Optional[int] = None) -> int:
    """An integer launcher variable; MissingEnvironmentError with the
    seed's message when unset and no default."""
    value = os.environ.get(name)
    if value is None or value == "":
        if default is not None:
            return default
        raise MissingEnvironmentError(
            f"{name} environment variable is not set")
    try:
        return int(value)
    except ValueError:
        raise CommInvalidArgumentError(
            f"Invalid {name} environment variable: {value!r}") from None


class CommBackend(abc.ABC):
    """The communication backend contract (seed: sagellm_comm.backend).

    Lifecycle: ``init(rank, world_size, master_addr, master_port)`` (or
    ``init_process_group``), then collectives and P2P on tensors, then
    ``destroy()``. Every call before init raises RuntimeError
    "... not initialized".
    """

    backend_type: CommBackendType = CommBackendType.GLOO

    # -- factory (README) ------------------------------------------------------

    @classmethod
    def create(cls, name: Union[str, CommBackendType, None] = None, *,
               fallback: bool = True, **kwargs: Any) -> "CommBackend":
        """A new, uninitialised backend by name ("gloo", "nccl", ...; None:
        the best available). A registered vendor backend that this machine
        lacks falls back, with a RuntimeWarning, to the native host backend
        when ``fallback`` is true (the tensors it moves are host memory);
        with ``fallback=False`` it raises CommUnsupportedError."""
        from . import registry
        key = name.value if isinstance(name, CommBackendType) else name
        if (key is not None and fallback
                and registry.is_registered(key)
                and not registry.is_comm_backend_available(key)):
            warnings.warn(
                f"comm backend {key!r} is not available here; using the "
                "native host backend (gloo) instead", RuntimeWarning,
                stacklevel=2)
            key = "gloo"
        return registry.get_comm_backend(key, **kwargs)

    def init_process_group(self, world_size: Optional[int] = None,
                           rank: Optional[int] = None,
                           master_addr: Optional[str] = None,
                           master_port: Optional[int] = None,
                           backend: Optional[str] = None,
                           **kwargs: Any) -> None:
        """README/torch spelling of init(); missing values come from
        WORLD_SIZE, RANK, MASTER_ADDR, MASTER_PORT (torch's env://)."""
        del backend  # chosen by create(); accepted for torch compatibility
        if rank is None:
            rank = env_int("RANK")
        if world_size is None:
            world_size = env_int("WORLD_SIZE")
        self.init(rank=rank, world_size=world_size,
                  master_addr=master_addr, master_port=master_port,
                  **kwargs)

    # -- the seed's abstract interface -------------------------------------------

    @abc.abstractmethod
    def init(self, rank: int, world_size: int,
             master_addr: Optional[str] = None,
             master_port: Optional[int] = None, **kwargs: Any) -> None:
        """Join the group of world_size ranks as rank."""

    @abc.abstractmethod
    def get_rank(self) -> int:
        """This process's rank."""

    @abc.abstractmethod
    def get_world_size(self) -> int:
        """Number of ranks."""

    @abc.abstractmethod
    def destroy(self) -> None:
        """Leave the group and free everything."""

    @abc.abstractmethod
    def all_reduce(self, tensor: Any, op: Any = CommOp.SUM, *,
                   group: Optional[CommGroup] = None,
                   async_op: bool = False) -> Any:
        """Reduce tensor across ranks, in place; returns tensor."""

    @abc.abstractmethod
    def all_gather(self, tensor: Any, *, group: Optional[CommGroup] = None,
                   output: Any = None, async_op: bool = False) -> Any:
        """Every rank's tensor, in rank order, concatenated."""

    @abc.abstractmethod
    def reduce_scatter(self, tensor: Any, op: Any = CommOp.SUM, *,
                       group: Optional[CommGroup] = None, output: Any = None,
                       async_op: bool = False) -> Any:
        """This rank's block of the reduction of tensor."""

    @abc.abstractmethod
    def broadcast(self, tensor: Any, src_rank: int = 0, *,
                  group: Optional[CommGroup] = None,
                  async_op: bool = False) -> Any:
        """Copy src_rank's tensor into tensor on every rank."""

    @abc.abstractmethod
    def send(self, tensor: Any, dst_rank: int, *, tag: int = 0,
             group: Optional[CommGroup] = None,
             async_op: bool = False) -> Any:
        """Send tensor to dst_rank."""

    @abc.abstractmethod
    def recv(self, tensor: Any, src_rank: int, *, tag: int = 0,
             group: Optional[CommGroup] = None,
             async_op: bool = False) -> Any:
        """Receive from src_rank into the caller's tensor."""

    @abc.abstractmethod
    def barrier(self, *, group: Optional[CommGroup] = None) -> None:
        """Wait for every rank."""

    @abc.abstractmethod
    def create_group(self, ranks: Sequence[int]) -> CommGroup:
        """A group of some ranks (collective: every rank calls it)."""

    def world_group(self) -> CommGroup:
        """The group of every rank."""
        raise NotImplementedError

    def destroy_group(self, group: CommGroup) -> None:
        """Release a group made by create_group."""
        raise NotImplementedError
