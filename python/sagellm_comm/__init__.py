"""sagellm_comm: the seed's communication API over libscomm (ctypes).

"vLLM v1 style" backend selection: ``get_comm_backend()`` picks the best
available backend, ``get_comm_backend("gloo")`` the host (CPU) backend,
which here is libscomm's native backend (shared memory within a host, TCP
across hosts). The README's names (``CommBackend.create``,
``init_process_group``, ``ReduceOp``, ``Topology.discover``,
``CommGroup.create``, ``CollectiveOps``) are provided as well. Importing
the package does not need libscomm; the first call that does loads it
(``SCOMM_LIBRARY``, next to the package, or the repository's build tree).
"""

from __future__ import annotations

from .backend import (CommBackend, CommBackendType, CommGroup, CommOp,
                      ReduceOp, TopologyNode)
from .collective import CollectiveOps
from .comm import (Communicator, RedOp, Request, Selection, library_version,
                   metrics_text, topology_json, vendor_backends)
from .errors import (ChecksumMismatchError, CommAbortedError,
                     CommAccessDeniedError, CommConfigError, CommError,
                     CommInternalError, CommInvalidArgumentError,
                     CommLibraryError, CommMemoryError, CommMismatchError,
                     CommNotInitializedError, CommProtocolError,
                     CommResourceError, CommSystemError, CommTimeoutError,
                     CommTruncatedError, CommUnsupportedError,
                     CommUsageError, MissingEnvironmentError, PeerLostError)
from .gloo_backend import GlooBackend, MockBackend, ScommBackend
from .registry import (get_comm_backend, is_comm_backend_available,
                       list_comm_backends, register_comm_backend)
from .tensor import DType
from .topology import DeviceId, Link, LinkKind, Topology, TopologyDetector
from . import _torch_hook

# torch.distributed backend "scomm": registered now if torch is loaded,
# else as soon as torch.distributed is imported (never imports torch).
_torch_hook.install()

#: Version of the distribution isagellm-comm: the seed's 0.5 line, which
#: its dependents pin (>=0.5.x,<0.6), above its last release (0.5.4.15).
#: libscomm's own version is library_version().
__version__ = "0.5.5.0"

__all__ = [
    "__version__",
    # registry
    "get_comm_backend", "register_comm_backend", "list_comm_backends",
    "is_comm_backend_available",
    # interfaces
    "CommBackend", "CommBackendType", "CommGroup", "CommOp", "TopologyNode",
    # implementations
    "GlooBackend", "ScommBackend", "MockBackend",
    # topology
    "DeviceId", "Link", "LinkKind", "Topology", "TopologyDetector",
    # README names
    "ReduceOp", "CollectiveOps", "init_process_group",
    # low level
    "Communicator", "Request", "RedOp", "DType", "Selection",
    "library_version", "topology_json", "metrics_text", "vendor_backends",
    # errors
    "CommError", "CommInvalidArgumentError", "CommUsageError",
    "CommNotInitializedError", "CommUnsupportedError", "CommMemoryError",
    "CommSystemError", "CommTimeoutError", "PeerLostError",
    "CommAbortedError", "CommMismatchError", "CommConfigError",
    "MissingEnvironmentError", "CommInternalError", "CommProtocolError",
    "CommAccessDeniedError", "CommTruncatedError", "CommResourceError",
    "ChecksumMismatchError", "CommLibraryError",
]


def init_process_group(backend: str = "gloo", world_size: int = None,
                       rank: int = None, master_addr: str = None,
                       master_port: int = None, **kwargs) -> CommBackend:
    """torch-style module function: create the named backend, initialise
    it (missing values from RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT)
    and return it."""
    comm = CommBackend.create(backend)
    comm.init_process_group(world_size=world_size, rank=rank,
                            master_addr=master_addr,
                            master_port=master_port, **kwargs)
    return comm
