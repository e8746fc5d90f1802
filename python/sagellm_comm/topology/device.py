"""DeviceId: the seed's "node:type:index" device name."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import CommInvalidArgumentError

_DEVICE_RE = re.compile(r"^([^:\s]+):([A-Za-z][A-Za-z0-9_\-]*):(\d+)$")


@dataclass(frozen=True, order=True)
class DeviceId:
    """A device of a node: ``DeviceId("node0", 1, "cuda")`` is
    "node0:cuda:1". Frozen and hashable."""

    node_id: str
    device_index: int
    device_type: str = "cuda"

    def __post_init__(self) -> None:
        if not isinstance(self.device_index, int) or self.device_index < 0:
            raise CommInvalidArgumentError(
                f"Invalid device index: {self.device_index!r}")
        if not self.node_id or ":" in self.node_id:
            raise CommInvalidArgumentError(
                f"Invalid node id: {self.node_id!r}")

    def __str__(self) -> str:
        return f"{self.node_id}:{self.device_type}:{self.device_index}"

    @classmethod
    def parse(cls, text: str) -> "DeviceId":
        """Inverse of str(): "node1:cuda:2" -> DeviceId("node1", 2, "cuda").
        Raises ValueError("Invalid device string: ...") otherwise."""
        match = _DEVICE_RE.match(text.strip()) if isinstance(text, str) \
            else None
        if match is None:
            raise CommInvalidArgumentError(
                f"Invalid device string: {text!r} (expected "
                "'node:type:index', e.g. 'node0:cuda:1')")
        return cls(match.group(1), int(match.group(3)), match.group(2))
