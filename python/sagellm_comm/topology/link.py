"""Link and LinkKind: a connection between two devices (seed records)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .device import DeviceId


class LinkKind(str, enum.Enum):
    """Interconnect kinds. The first six are the seed's; the others are
    the kinds libscomm's topology adds (its JSON "seed_kind" values)."""

    NVLINK = "nvlink"
    PCIE = "pcie"
    IB = "infiniband"
    ROCE = "roce"
    HCCS = "hccs"
    NETWORK = "network"
    XGMI = "xgmi"
    MLU_LINK = "mlu_link"
    XPU_LINK = "xpu_link"
    UB = "ub"
    LOCAL = "local"

    @classmethod
    def parse(cls, value: str) -> "LinkKind":
        """A kind from its value or libscomm's link name ("tcp",
        "shm-same-numa", "mlu-link", ...); unknown names are NETWORK."""
        key = str(value).lower()
        aliases = {"tcp": "network", "ethernet": "network", "ib":
                   "infiniband", "mlu-link": "mlu_link", "xpu-link":
                   "xpu_link", "self": "local", "shm-same-numa": "local",
                   "shm-cross-numa": "local", "shm": "local"}
        key = aliases.get(key, key)
        try:
            return cls(key)
        except ValueError:
            return cls.NETWORK


@dataclass(frozen=True)
class Link:
    """A link from src to dst; bandwidth in GB/s (10^9 bytes/s, one
    direction). ``str()`` reads "node0:cuda:0 <-> node0:cuda:1 (nvlink,
    300.0 GB/s)", with "->" when not bidirectional."""

    src: DeviceId
    dst: DeviceId
    kind: LinkKind
    bandwidth_gbps: float = 0.0
    bidirectional: bool = True
    latency_us: float = 0.0

    def __str__(self) -> str:
        arrow = "<->" if self.bidirectional else "->"
        kind = self.kind.value if isinstance(self.kind, LinkKind) \
            else str(self.kind)
        return (f"{self.src} {arrow} {self.dst} ({kind}, "
                f"{float(self.bandwidth_gbps)} GB/s)")

    def connects(self, a: DeviceId, b: DeviceId) -> bool:
        """Whether the link carries traffic from a to b."""
        if self.src == a and self.dst == b:
            return True
        return self.bidirectional and self.src == b and self.dst == a
