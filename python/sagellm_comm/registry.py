"""Backend registry (the seed's "vLLM v1 style" selection).

``get_comm_backend()`` returns the best available backend, and
``get_comm_backend("gloo")`` a named one, uninitialised. Built in:
"gloo" and "native" (libscomm's host backend), "mock" (libscomm's
in-process mock); "nccl", "hccl" and "rccl" are registered but report
unavailable until libscomm has vendor adapters. Third-party backends
register with ``register_comm_backend`` or the ``sagellm.comm_backends``
entry-point group, as in the seed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Union

from . import _lib
from .backend import CommBackend, CommBackendType
from .errors import CommInvalidArgumentError, CommUnsupportedError

Factory = Callable[..., CommBackend]


@dataclass
class _Entry:
    factory: Factory
    available: Callable[[], bool]
    priority: int


_lock = threading.Lock()
_registry: Dict[str, _Entry] = {}
_entry_points_loaded = False


def _never() -> bool:
    return False


def register_comm_backend(name: str, factory: Factory, *,
                          available: Optional[Callable[[], bool]] = None,
                          priority: int = 0, override: bool = False) -> None:
    """Register a backend factory under ``name``.

    ``available`` (default: always) says whether it can run here;
    ``priority`` orders auto-selection (highest first). Registering a taken
    name raises ValueError unless ``override``."""
    if not name or not isinstance(name, str):
        raise CommInvalidArgumentError(f"Invalid backend name: {name!r}")
    if not callable(factory):
        raise CommInvalidArgumentError(
            f"factory for backend {name!r} is not callable")
    key = name.lower()
    with _lock:
        if key in _registry and not override:
            raise CommInvalidArgumentError(
                f"comm backend {key!r} is already registered")
        _registry[key] = _Entry(factory, available or (lambda: True),
                                priority)


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    try:
        from importlib.metadata import entry_points
        eps = entry_points(group="sagellm.comm_backends")
    except Exception:  # pragma: no cover - broken metadata
        return
    for ep in eps:
        if ep.name.lower() in _registry:
            continue

        def factory(_ep: Any = ep, **kwargs: Any) -> CommBackend:
            return _ep.load()(**kwargs)
        _registry[ep.name.lower()] = _Entry(factory, lambda: True, -10)


def is_registered(name: str) -> bool:
    """Whether ``name`` is a registered backend (available or not)."""
    _load_entry_points()
    return name.lower() in _registry


def list_comm_backends(available_only: bool = False) -> List[str]:
    """Registered backend names (only those that can run here, if asked),
    best first."""
    _load_entry_points()
    with _lock:
        items = sorted(_registry.items(),
                       key=lambda kv: (-kv[1].priority, kv[0]))
    return [name for name, entry in items
            if not available_only or _safe(entry.available)]


def _safe(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:
        return False


def is_comm_backend_available(name: Union[str, CommBackendType]) -> bool:
    """Whether the named backend is registered and can run here."""
    key = name.value if isinstance(name, CommBackendType) else str(name)
    _load_entry_points()
    entry = _registry.get(key.lower())
    return entry is not None and _safe(entry.available)


def get_comm_backend(name: Union[str, CommBackendType, None] = None,
                     **kwargs: Any) -> CommBackend:
    """A new, uninitialised backend: ``name`` or, when None, the available
    backend with the highest priority (vendor backends before gloo).

    Raises ValueError for an unknown name and CommUnsupportedError (a
    NotImplementedError) for a registered one that cannot run here."""
    _load_entry_points()
    if name is None:
        for cand in list_comm_backends(available_only=True):
            if cand != "mock":
                return _registry[cand].factory(**kwargs)
        raise CommUnsupportedError(
            "no comm backend is available: " + _why_unavailable())
    key = name.value if isinstance(name, CommBackendType) else str(name)
    entry = _registry.get(key.lower())
    if entry is None:
        raise CommInvalidArgumentError(
            f"Unknown comm backend: {key!r} (registered: "
            f"{', '.join(list_comm_backends())})")
    if not _safe(entry.available):
        raise CommUnsupportedError(
            f"comm backend {key!r} is not available on this machine "
            f"(available: {', '.join(list_comm_backends(True)) or 'none'})"
            + ("" if _lib.available() else "; " + _why_unavailable()))
    return entry.factory(**kwargs)


def _why_unavailable() -> str:
    try:
        _lib.load()
    except Exception as exc:  # CommLibraryError
        return str(exc)
    return "libscomm loaded"


def _register_builtins() -> None:
    from . import gloo_backend as gb
    register_comm_backend("gloo", gb.create_gloo_backend,
                          available=_lib.available, priority=10)
    register_comm_backend("native", gb.create_native_backend,
                          available=_lib.available, priority=5)
    register_comm_backend("mock", gb.create_mock_backend,
                          available=_lib.available, priority=0)
    # Vendor adapters: registered so that names resolve, unavailable until
    # libscomm exposes them (see docs/python.md).
    for vendor in ("nccl", "hccl", "rccl"):
        def factory(_v: str = vendor, **kwargs: Any) -> CommBackend:
            raise CommUnsupportedError(f"comm backend {_v!r} is not "
                                       "available in this build")
        register_comm_backend(vendor, factory, available=_never,
                              priority=100)


_register_builtins()
