"""CollectiveOps: the README's functional spelling of the collectives.

``CollectiveOps.all_reduce(tensor, group=group)`` runs on the group's
backend (a group from ``CommGroup.create`` or ``create_group``), or on the
default backend set by ``CommGroup.create`` / ``init_process_group`` when
no group is given.
"""

from __future__ import annotations

from typing import Any, Optional

from .backend import CommGroup, CommOp
from .errors import CommNotInitializedError


class CollectiveOps:
    """Static collectives over a CommGroup."""

    @staticmethod
    def _group(group: Optional[CommGroup]) -> CommGroup:
        if group is None:
            raise CommNotInitializedError(
                "CollectiveOps: not initialized (pass group=, made by "
                "CommGroup.create or CommBackend.create_group)")
        return group

    @staticmethod
    def all_reduce(tensor: Any, op: Any = CommOp.SUM, *,
                   group: Optional[CommGroup] = None) -> Any:
        """All-reduce in place over the group; returns tensor."""
        return CollectiveOps._group(group).all_reduce(tensor, op)

    @staticmethod
    def all_gather(tensor: Any, *, group: Optional[CommGroup] = None,
                   output: Any = None) -> Any:
        """Every rank's tensor, concatenated in rank order (a new tensor
        with a leading world_size dimension for numpy/torch)."""
        return CollectiveOps._group(group).all_gather(tensor, output)

    @staticmethod
    def reduce_scatter(tensor: Any, op: Any = CommOp.SUM, *,
                       group: Optional[CommGroup] = None,
                       output: Any = None) -> Any:
        """This rank's block of the reduction."""
        return CollectiveOps._group(group).reduce_scatter(tensor, op, output)

    @staticmethod
    def broadcast(tensor: Any, src_rank: int = 0, *,
                  group: Optional[CommGroup] = None) -> Any:
        """Broadcast from group rank src_rank, in place."""
        return CollectiveOps._group(group).broadcast(tensor, src_rank)

    @staticmethod
    def barrier(*, group: Optional[CommGroup] = None) -> None:
        """Barrier over the group."""
        CollectiveOps._group(group).barrier()
