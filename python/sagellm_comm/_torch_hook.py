"""Register backend "scomm" with torch.distributed, without importing torch.

Importing ``sagellm_comm`` calls ``install()``. If ``torch.distributed`` is
already imported, the backend is registered at once; if torch is installed
but not imported yet, a one-shot import hook registers it right after
``torch.distributed`` has executed (``import torch`` imports it); without
torch nothing happens. So ``import sagellm_comm`` costs no torch import,
and ``dist.init_process_group("scomm")`` works whichever of the two was
imported first.

Invariants:
 1. Registration only touches ``torch.distributed.Backend`` (defined before
    ``torch`` itself has finished importing); the ProcessGroup module
    (``sagellm_comm.torch``) is imported when the first group is created.
 2. Registering twice is harmless (the second time is a no-op).
 3. The hook removes itself after its one use and never changes what the
    import of ``torch.distributed`` returns.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import sys
import threading
from typing import Any, Optional, Sequence

BACKEND_NAME = "scomm"

_lock = threading.Lock()


def _create(*args: Any) -> Any:
    """The creator torch calls for each group (both calling conventions)."""
    from . import torch as scomm_torch
    return scomm_torch.create_process_group(*args)


def register(dist: Any = None) -> bool:
    """Register backend "scomm" with torch.distributed (idempotent).

    Returns True when the backend is registered after the call."""
    if dist is None:
        dist = sys.modules.get("torch.distributed")
        if dist is None:
            import torch.distributed as dist  # noqa: F811
    backend = getattr(dist, "Backend", None)
    if backend is None or not hasattr(backend, "register_backend"):
        return False
    with _lock:
        if BACKEND_NAME.upper() in getattr(backend, "_plugins", {}):
            return True
        if hasattr(backend, BACKEND_NAME.upper()):
            return True
        params = inspect.signature(backend.register_backend).parameters
        kwargs = {}
        if "extended_api" in params:
            kwargs["extended_api"] = True
        if "devices" in params:
            # CUDA tensors: libscomm stages its non-blocking calls through
            # pinned host memory, stream-ordered (docs/device.md).
            kwargs["devices"] = ["cpu", "cuda"]
        backend.register_backend(BACKEND_NAME, _create, **kwargs)
    return True


class _Loader(importlib.abc.Loader):
    """Wraps torch.distributed's loader; registers after it executed."""

    def __init__(self, inner: importlib.abc.Loader) -> None:
        self._inner = inner

    def create_module(self, spec: Any) -> Any:
        return self._inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._inner.exec_module(module)
        try:
            register(module)
        except Exception:  # pragma: no cover - never break torch's import
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds torch.distributed through the other finders, once."""

    def find_spec(self, fullname: str, path: Optional[Sequence[str]],
                  target: Any = None) -> Any:
        if fullname != "torch.distributed":
            return None
        _uninstall()
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _Loader(spec.loader)
        return spec


_finder: Optional[_Finder] = None


def _uninstall() -> None:
    global _finder
    with _lock:
        if _finder is not None and _finder in sys.meta_path:
            sys.meta_path.remove(_finder)
        _finder = None


def install() -> None:
    """Register now if torch.distributed is loaded, else arm the hook."""
    global _finder
    dist = sys.modules.get("torch.distributed")
    if dist is not None and hasattr(dist, "Backend"):
        register(dist)
        return
    if "torch" not in sys.modules:
        try:
            if importlib.util.find_spec("torch") is None:
                return
        except (ImportError, ValueError):
            return
    with _lock:
        if _finder is None:
            _finder = _Finder()
            sys.meta_path.insert(0, _finder)
