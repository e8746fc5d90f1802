"""Topology: which ranks share a host and how devices are linked.

``DeviceId``, ``Link`` and ``LinkKind`` are the seed's records;
``Topology.discover()`` (README) and ``TopologyDetector.detect()`` (seed
tests) build a ``Topology`` from the launcher's environment (RANK,
WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE) and libscomm's host discovery
(``scomm_topology_json``); with an initialised backend or group they use the
world view (every rank's host, device and the link matrix; collective).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ..backend import TopologyNode, env_int
from .device import DeviceId
from .link import Link, LinkKind

__all__ = ["DeviceId", "Link", "LinkKind", "Topology", "TopologyDetector",
           "TopologyNode"]


def _device_type(host: Dict[str, Any]) -> str:
    accels = host.get("accelerators") or []
    return str(accels[0].get("type", "cpu")) if accels else "cpu"


@dataclass
class Topology:
    """The ranks of a job and the links between their devices."""

    nodes: List[TopologyNode]
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    hostname: str = "localhost"
    links: List[Link] = field(default_factory=list)
    source: str = "env"
    recommended_preset: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> Dict[str, Any]:
        """Plain dict: rank, world_size, local ranks, hostname, nodes,
        links (as strings' parts), source and preset."""
        return {"rank": self.rank, "world_size": self.world_size,
                "local_rank": self.local_rank,
                "local_world_size": self.local_world_size,
                "hostname": self.hostname,
                "nodes": [n.to_dict() for n in self.nodes],
                "links": [{"src": str(l.src), "dst": str(l.dst),
                           "kind": l.kind.value,
                           "bandwidth_gbps": l.bandwidth_gbps,
                           "latency_us": l.latency_us,
                           "bidirectional": l.bidirectional}
                          for l in self.links],
                "source": self.source,
                "recommended_preset": self.recommended_preset}

    def get_node(self, rank: int) -> TopologyNode:
        """The node of a rank."""
        for node in self.nodes:
            if node.rank == rank:
                return node
        raise KeyError(f"rank {rank} not in topology")

    def same_host(self, a: int, b: int) -> bool:
        """Whether two ranks share a host."""
        return self.get_node(a).hostname == self.get_node(b).hostname

    def link_between(self, a: int, b: int) -> Optional[Link]:
        """The link between the devices of ranks a and b, if known."""
        da, db = self._device(a), self._device(b)
        for link in self.links:
            if link.connects(da, db):
                return link
        return None

    def _device(self, rank: int) -> DeviceId:
        n = self.get_node(rank)
        return DeviceId(n.node_id, n.device_index, n.device_type)

    @classmethod
    def discover(cls, backend: Any = None, *,
                 strict: bool = False) -> "Topology":
        """Discover the topology.

        With an initialised backend (or a CommGroup, or a Communicator)
        this is collective and exact: every rank's host, device and the
        link matrix come from libscomm. Without one, ranks come from RANK /
        WORLD_SIZE / LOCAL_RANK / LOCAL_WORLD_SIZE (a single rank when
        unset, unless ``strict``) and this host's devices from libscomm
        (or nothing, source "env", when libscomm cannot be loaded)."""
        comm = _communicator_of(backend)
        if comm is not None:
            return cls._from_world(comm.topology(), comm.rank)
        if strict:
            rank, world = env_int("RANK"), env_int("WORLD_SIZE")
        else:
            rank, world = env_int("RANK", 0), env_int("WORLD_SIZE", 1)
        local_world = env_int("LOCAL_WORLD_SIZE", world)
        local_rank = env_int("LOCAL_RANK", rank % max(local_world, 1))
        host: Dict[str, Any] = {}
        raw: Dict[str, Any] = {}
        source = "env"
        try:
            from ..comm import topology_json
            raw = topology_json(None)
            host = raw.get("host", {})
            source = str(host.get("source", "scomm"))
        except Exception:  # libscomm missing: environment only
            pass
        hostname = str(host.get("hostname") or socket.gethostname())
        dtype = _device_type(host)
        ndev = max(len(host.get("accelerators") or []), 1)
        nodes = []
        for r in range(world):
            # Ranks are assumed packed per host, local_world at a time.
            node = r // max(local_world, 1)
            lr = r % max(local_world, 1)
            nodes.append(TopologyNode(
                node_id=f"node_{r}", rank=r, device_type=dtype,
                device_index=lr % ndev if dtype != "cpu" else lr,
                hostname=hostname if node == rank // max(local_world, 1)
                else "unknown"))
        preset = (raw.get("recommendation") or {}).get("preset")
        return cls(nodes=nodes, rank=rank, world_size=world,
                   local_rank=local_rank, local_world_size=local_world,
                   hostname=hostname, links=[], source=source,
                   recommended_preset=preset, raw=raw)

    @classmethod
    def _from_world(cls, doc: Dict[str, Any], rank: int) -> "Topology":
        world = doc.get("world") or {}
        hosts = {h["id"]: h for h in world.get("hosts", [])}
        host = doc.get("host", {})
        nodes = []
        for r in world.get("ranks", []):
            dev = DeviceId.parse(r["device"])
            nodes.append(TopologyNode(
                node_id=f"node_{r['rank']}", rank=r["rank"],
                device_type=dev.device_type, device_index=dev.device_index,
                hostname=hosts.get(r["host"], {}).get("hostname",
                                                      "localhost")))
        links = [Link(DeviceId.parse(l["src"]), DeviceId.parse(l["dst"]),
                      LinkKind.parse(l.get("seed_kind", l.get("kind"))),
                      float(l.get("bandwidth_gbps", 0.0)),
                      bool(l.get("bidirectional", True)),
                      float(l.get("latency_us", 0.0)))
                 for l in world.get("links", [])]
        me = next((r for r in world.get("ranks", []) if r["rank"] == rank),
                  {})
        return cls(nodes=nodes, rank=rank, world_size=int(world.get("size",
                                                                   1)),
                   local_rank=int(me.get("local_rank", 0)),
                   local_world_size=int(me.get("local_size", 1)),
                   hostname=str(host.get("hostname", "localhost")),
                   links=links, source=str(host.get("source", "scomm")),
                   recommended_preset=(doc.get("recommendation") or {})
                   .get("preset"), raw=doc)


def _communicator_of(obj: Any) -> Any:
    if obj is None:
        return None
    from ..comm import Communicator
    if isinstance(obj, Communicator):
        return obj
    comm = getattr(obj, "_comm", None)          # CommGroup
    if isinstance(comm, Communicator):
        return comm
    inner = getattr(obj, "communicator", None)  # ScommBackend
    if isinstance(inner, Communicator):
        return inner
    return None


class TopologyDetector:
    """The seed's detector: reads RANK / WORLD_SIZE (required) and
    LOCAL_RANK / LOCAL_WORLD_SIZE from the environment."""

    def __init__(self, backend: Any = None) -> None:
        self._backend = backend

    def detect(self) -> Topology:
        """Raises RuntimeError/ValueError "RANK environment variable is not
        set" (or WORLD_SIZE) when the launcher did not set them."""
        env_int("RANK")
        env_int("WORLD_SIZE")
        if self._backend is not None:
            return Topology.discover(self._backend)
        return Topology.discover(strict=True)


del os
