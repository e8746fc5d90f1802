"""Communicator: a thin object wrapper over one ``scomm_comm_t``.

This is the low-level layer under the seed-compatible ``CommBackend``: each
method is one libscomm call on tensors (see ``sagellm_comm.tensor``), with
explicit output buffers, tags and roots, raising the ``sagellm_comm.errors``
exception of any failing status with the library's message. Non-blocking
forms return a ``Request`` that keeps the tensors alive until it completes.
"""

from __future__ import annotations

import ctypes
import enum
import json
import threading
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Union

from . import _lib
from .errors import CommInvalidArgumentError, CommUsageError
from .tensor import BufferView


class RedOp(enum.IntEnum):
    """libscomm's reduction operators (``scomm_redop_t``)."""

    SUM = 0
    PROD = 1
    MAX = 2
    MIN = 3
    AVG = 4


@dataclass(frozen=True)
class Selection:
    """Which algorithm the last collective ran (``scomm_last_selection``)."""

    algo: str
    rule_id: str
    reason: str


class Request:
    """A non-blocking operation in flight; complete it with wait()/test().

    The tensors stay referenced (and buffer exporters locked) until the
    request completes, as libscomm requires."""

    def __init__(self, lib: "_lib.Library", handle: ctypes.c_void_p,
                 comm: "Communicator", views: Sequence[BufferView],
                 result: Any = None) -> None:
        self._lib = lib
        self._handle = handle
        self._comm = comm
        self._views = list(views)
        self._done = False
        self.result = result

    def _finish(self) -> None:
        self._done = True
        self._handle = ctypes.c_void_p()
        for view in self._views:
            view.release()
        self._views = []

    def wait(self) -> Any:
        """Wait under the communicator's deadline; returns the result
        tensor of operations that make one (None otherwise)."""
        if self._done:
            return self.result
        status = self._lib.scomm_wait(self._handle)
        self._finish()
        self._lib.check(status, self._comm.handle_or_none())
        return self.result

    def test(self) -> bool:
        """Make progress; True once complete (errors raise)."""
        if self._done:
            return True
        done = ctypes.c_int32(0)
        status = self._lib.scomm_test(self._handle, ctypes.byref(done))
        if status < 0 or done.value:
            self._finish()
        self._lib.check(status, self._comm.handle_or_none())
        return self._done

    def is_completed(self) -> bool:
        """torch-style alias of test()."""
        return self.test()

    def __del__(self) -> None:
        if not self._done and self._handle:
            try:
                self._lib.scomm_wait(self._handle)
            except Exception:  # pragma: no cover - interpreter teardown
                pass


def _encode(text: Optional[str]) -> Optional[bytes]:
    return None if text is None else str(text).encode()


class Communicator:
    """One libscomm communicator (the world, or a split of it)."""

    def __init__(self, handle: ctypes.c_void_p, lib: "_lib.Library",
                 parent: Optional["Communicator"] = None) -> None:
        self._handle = handle
        self._lib = lib
        self._parent = parent
        self._lock = threading.Lock()

    # -- creation and lifetime ---------------------------------------------

    @classmethod
    def init(cls, rank: Optional[int] = None,
             world_size: Optional[int] = None,
             master_addr: Optional[str] = None,
             master_port: Optional[int] = None, *,
             timeout_ms: Optional[int] = None,
             backend: Optional[str] = None,
             job_token: Optional[str] = None) -> "Communicator":
        """``scomm_init`` with the given fields; the rest come from the
        environment (SCOMM_*, then torchrun/MPI/Slurm variables)."""
        lib = _lib.load()
        opts = _lib.InitOpts()
        mask = 0
        if rank is not None:
            opts.rank, mask = int(rank), mask | _lib.INIT_FIELD_RANK
        if world_size is not None:
            opts.world_size = int(world_size)
            mask |= _lib.INIT_FIELD_WORLD_SIZE
        if master_addr is not None:
            opts.master_addr = _encode(master_addr)
            mask |= _lib.INIT_FIELD_MASTER_ADDR
        if master_port is not None:
            opts.master_port = int(master_port)
            mask |= _lib.INIT_FIELD_MASTER_PORT
        if timeout_ms is not None:
            opts.timeout_ms = int(timeout_ms)
            mask |= _lib.INIT_FIELD_TIMEOUT
        if backend is not None:
            opts.backend = _encode(backend)
            mask |= _lib.INIT_FIELD_BACKEND
        if job_token is not None:
            opts.job_token = _encode(job_token)
            mask |= _lib.INIT_FIELD_JOB_TOKEN
        opts.field_mask = mask
        handle = ctypes.c_void_p()
        status = lib.scomm_init(ctypes.byref(opts), ctypes.byref(handle))
        lib.check(status, None, "scomm_init")
        return cls(handle, lib)

    @classmethod
    def init_from_env(cls) -> "Communicator":
        """``scomm_init_from_env``: everything from the launcher."""
        lib = _lib.load()
        handle = ctypes.c_void_p()
        lib.check(lib.scomm_init_from_env(ctypes.byref(handle)), None,
                  "scomm_init_from_env")
        return cls(handle, lib)

    @property
    def handle(self) -> ctypes.c_void_p:
        """The ``scomm_comm_t *``; CommUsageError once destroyed."""
        if not self._handle:
            raise CommUsageError("communicator was destroyed")
        return self._handle

    def handle_or_none(self) -> Optional[ctypes.c_void_p]:
        """The handle, or None once destroyed (for error messages)."""
        return self._handle or None

    @property
    def lib(self) -> "_lib.Library":
        """The loaded libscomm."""
        return self._lib

    @property
    def alive(self) -> bool:
        """Whether destroy() has not been called."""
        return bool(self._handle)

    def split(self, color: int, key: int = 0) -> Optional["Communicator"]:
        """``scomm_comm_split`` (collective); None for a negative color."""
        sub = ctypes.c_void_p()
        self._check(self._lib.scomm_comm_split(self.handle, int(color),
                                               int(key), ctypes.byref(sub)))
        return Communicator(sub, self._lib, self) if sub else None

    def destroy(self) -> None:
        """Release the communicator (idempotent)."""
        with self._lock:
            if not self._handle:
                return
            handle, self._handle = self._handle, ctypes.c_void_p()
        self._lib.check(self._lib.scomm_comm_destroy(handle), None,
                        "scomm_comm_destroy")

    def abort(self) -> None:
        """Make every blocked and later call fail with CommAbortedError."""
        if self._handle:
            self._check(self._lib.scomm_comm_abort(self._handle))

    def __enter__(self) -> "Communicator":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.destroy()

    # -- queries -------------------------------------------------------------

    @property
    def rank(self) -> int:
        return int(self._lib.scomm_rank(self.handle))

    @property
    def size(self) -> int:
        return int(self._lib.scomm_size(self.handle))

    @property
    def local_rank(self) -> int:
        return int(self._lib.scomm_local_rank(self.handle))

    @property
    def local_size(self) -> int:
        return int(self._lib.scomm_local_size(self.handle))

    @property
    def backend(self) -> str:
        """"native", "mock" or the vendor's name (scomm_comm_backend)."""
        return (self._lib.scomm_comm_backend(self.handle) or b"").decode()

    def peer_transport(self, peer: int) -> str:
        """"self", "shm" or "tcp": how this rank reaches peer."""
        name = self._lib.scomm_peer_transport(self.handle, int(peer))
        return (name or b"").decode()

    def set_timeout(self, timeout_ms: int) -> None:
        """Deadline (ms) of every later blocking call."""
        self._check(self._lib.scomm_comm_set_timeout(self.handle,
                                                     int(timeout_ms)))

    def async_error(self) -> int:
        """The communicator's asynchronous status (0 if none)."""
        return int(self._lib.scomm_comm_async_error(self.handle))

    def last_error(self) -> str:
        """Detail of the last error on this communicator."""
        return (self._lib.scomm_comm_last_error(self.handle) or b"").decode()

    def last_selection(self) -> Selection:
        """Algorithm, rule id and reason of the last collective."""
        rec = _lib.CollRecord()
        self._check(self._lib.scomm_last_selection(self.handle,
                                                   ctypes.byref(rec)))
        return Selection(rec.algo.decode(), rec.rule_id.decode(),
                         rec.reason.decode())

    def topology(self) -> Dict[str, Any]:
        """``scomm_topology_json`` over this communicator (collective)."""
        return topology_json(self)

    def preset(self) -> str:
        """Recommended transport preset for these ranks (collective)."""
        buf = ctypes.create_string_buffer(64)
        self._check(self._lib.scomm_preset_recommend(self.handle, buf, 64))
        return buf.value.decode()

    def overlap_stats(self) -> Dict[str, int]:
        """Counters of the non-blocking engine."""
        st = _lib.OverlapStats()
        self._check(self._lib.scomm_overlap_stats(self.handle,
                                                  ctypes.byref(st)))
        return {name: int(getattr(st, name))
                for name, _ in _lib.OverlapStats._fields_ if name != "pad"}

    # -- helpers ---------------------------------------------------------------

    def _check(self, status: int, what: str = "") -> None:
        self._lib.check(status, self.handle_or_none(), what)

    @staticmethod
    def _views(send: Any, recv: Any, dtype: Any) -> List[BufferView]:
        if recv is None or recv is send:
            return [BufferView(send, writable=True, name="tensor",
                               dtype=dtype)]
        return [BufferView(send, writable=False, name="input", dtype=dtype),
                BufferView(recv, writable=True, name="output", dtype=dtype)]

    @staticmethod
    def _same_dtype(a: BufferView, b: BufferView) -> None:
        if a.dtype != b.dtype:
            raise CommInvalidArgumentError(
                f"input and output dtypes differ ({a.dtype.name.lower()} "
                f"vs {b.dtype.name.lower()})")

    def _device(self, views: List[BufferView]) -> None:
        """CPU and CUDA buffers in one call are an error; CUDA buffers
        make the call stream-ordered after their stream (docs/device.md)."""
        kinds = {v.device or "cpu" for v in views if v.nbytes}
        if len(kinds) > 1:
            for view in views:
                view.release()
            raise CommInvalidArgumentError(
                "CPU and CUDA tensors mixed in one call (" +
                ", ".join(f"{v.device or 'cpu'}" for v in views) +
                "): move them to one device")
        if "cuda" in kinds:
            stream = next((v.stream for v in views if v.stream is not None),
                          None)
            self._check(self._lib.scomm_comm_set_stream(
                self.handle, ctypes.c_void_p(stream)))

    def _run(self, name: str, args: Sequence[Any], views: List[BufferView],
             nonblocking: bool, result: Any) -> Any:
        self._device(views)
        if not nonblocking:
            try:
                self._check(self._lib.fn(name)(*args))
            finally:
                for view in views:
                    view.release()
            return result
        req = ctypes.c_void_p()
        try:
            self._check(self._lib.fn("scomm_i" + name[len("scomm_"):])(
                *args, ctypes.byref(req)))
        except BaseException:
            for view in views:
                view.release()
            raise
        return Request(self._lib, req, self, views, result)

    # -- point-to-point --------------------------------------------------------

    def send(self, tensor: Any, peer: int, tag: int = 0, *,
             dtype: Any = None, nonblocking: bool = False) -> Any:
        """Send the whole tensor to peer."""
        view = BufferView(tensor, writable=False, dtype=dtype)
        return self._run("scomm_send", (view.ptr, view.count, view.dtype,
                                        int(peer), int(tag), self.handle),
                         [view], nonblocking, None)

    def recv(self, tensor: Any, peer: int, tag: int = 0, *,
             dtype: Any = None, nonblocking: bool = False) -> Any:
        """Receive into the caller's tensor (at most its size) from peer."""
        view = BufferView(tensor, writable=True, dtype=dtype)
        return self._run("scomm_recv", (view.ptr, view.count, view.dtype,
                                        int(peer), int(tag), self.handle),
                         [view], nonblocking, tensor)

    # -- collectives -------------------------------------------------------------

    def barrier(self, *, nonblocking: bool = False) -> Any:
        """Wait until every rank has called it."""
        if nonblocking:
            req = ctypes.c_void_p()
            self._check(self._lib.scomm_ibarrier(self.handle,
                                                 ctypes.byref(req)))
            return Request(self._lib, req, self, [])
        self._check(self._lib.scomm_barrier(self.handle))
        return None

    def all_reduce(self, tensor: Any, op: Union[RedOp, int] = RedOp.SUM,
                   output: Any = None, *, dtype: Any = None,
                   nonblocking: bool = False) -> Any:
        """Reduce tensor over all ranks into output (in place if None)."""
        views = self._views(tensor, output, dtype)
        src, dst = views[0], views[-1]
        if len(views) == 2:
            self._same_dtype(src, dst)
            if dst.count != src.count:
                raise CommInvalidArgumentError(
                    f"output has {dst.count} elements, input {src.count}")
        return self._run("scomm_all_reduce",
                         (src.ptr, dst.ptr, src.count, src.dtype, int(op),
                          self.handle), views, nonblocking,
                         tensor if output is None else output)

    def all_gather(self, tensor: Any, output: Any, *, dtype: Any = None,
                   nonblocking: bool = False) -> Any:
        """Concatenate every rank's tensor, in rank order, into output."""
        src = BufferView(tensor, writable=False, name="input", dtype=dtype)
        dst = BufferView(output, writable=True, name="output", dtype=dtype)
        self._same_dtype(src, dst)
        if dst.count != src.count * self.size:
            views = [src, dst]
            for v in views:
                v.release()
            raise CommInvalidArgumentError(
                f"output must hold world_size * {src.count} = "
                f"{src.count * self.size} elements (has {dst.count})")
        return self._run("scomm_all_gather",
                         (src.ptr, dst.ptr, src.count, src.dtype,
                          self.handle), [src, dst], nonblocking, output)

    def reduce_scatter(self, tensor: Any, output: Any,
                       op: Union[RedOp, int] = RedOp.SUM, *,
                       dtype: Any = None, nonblocking: bool = False) -> Any:
        """Reduce tensor (world_size blocks); this rank gets its block."""
        src = BufferView(tensor, writable=False, name="input", dtype=dtype)
        dst = BufferView(output, writable=True, name="output", dtype=dtype)
        self._same_dtype(src, dst)
        if src.count != dst.count * self.size:
            for v in (src, dst):
                v.release()
            raise CommInvalidArgumentError(
                f"input must hold world_size * {dst.count} = "
                f"{dst.count * self.size} elements (has {src.count})")
        return self._run("scomm_reduce_scatter",
                         (src.ptr, dst.ptr, dst.count, src.dtype, int(op),
                          self.handle), [src, dst], nonblocking, output)

    def broadcast(self, tensor: Any, root: int, *, dtype: Any = None,
                  nonblocking: bool = False) -> Any:
        """Copy root's tensor into tensor on every rank."""
        view = BufferView(tensor, writable=True, dtype=dtype)
        return self._run("scomm_broadcast",
                         (view.ptr, view.count, view.dtype, int(root),
                          self.handle), [view], nonblocking, tensor)

    def reduce(self, tensor: Any, root: int,
               op: Union[RedOp, int] = RedOp.SUM, output: Any = None, *,
               dtype: Any = None, nonblocking: bool = False) -> Any:
        """Reduce to root only (in place on root if output is None)."""
        views = self._views(tensor, output, dtype)
        src, dst = views[0], views[-1]
        return self._run("scomm_reduce",
                         (src.ptr, dst.ptr, src.count, src.dtype, int(op),
                          int(root), self.handle), views, nonblocking,
                         tensor if output is None else output)

    def all_to_all(self, tensor: Any, output: Any, *, dtype: Any = None,
                   nonblocking: bool = False) -> Any:
        """Block p of tensor goes to rank p; block r of output from r."""
        src = BufferView(tensor, writable=False, name="input", dtype=dtype)
        dst = BufferView(output, writable=True, name="output", dtype=dtype)
        size = self.size
        if src.count != dst.count or src.count % size:
            for v in (src, dst):
                v.release()
            raise CommInvalidArgumentError(
                "input and output must hold the same number of elements, "
                f"a multiple of world_size {size}")
        return self._run("scomm_all_to_all",
                         (src.ptr, dst.ptr, src.count // size, src.dtype,
                          self.handle), [src, dst], nonblocking, output)

    def gather(self, tensor: Any, output: Any, root: int, *,
               dtype: Any = None) -> Any:
        """Root receives every rank's tensor in rank order (output may be
        None on the other ranks)."""
        src = BufferView(tensor, writable=False, name="input", dtype=dtype)
        views = [src]
        ptr = None
        if output is not None:
            dst = BufferView(output, writable=True, name="output",
                             dtype=dtype)
            views.append(dst)
            ptr = dst.ptr
        return self._run("scomm_gather", (src.ptr, ptr, src.count,
                                          src.dtype, int(root), self.handle),
                         views, False, output)

    def scatter(self, tensor: Optional[Any], output: Any, root: int, *,
                dtype: Any = None) -> Any:
        """Rank r receives block r of root's tensor into output."""
        dst = BufferView(output, writable=True, name="output", dtype=dtype)
        views = [dst]
        ptr = None
        if tensor is not None:
            src = BufferView(tensor, writable=False, name="input",
                             dtype=dtype)
            views.append(src)
            ptr = src.ptr
        return self._run("scomm_scatter", (ptr, dst.ptr, dst.count,
                                           dst.dtype, int(root), self.handle),
                         views, False, output)


def topology_json(comm: Optional[Communicator] = None) -> Dict[str, Any]:
    """``scomm_topology_json``: this host's topology, or the whole world's
    when comm is given (then collective)."""
    lib = comm.lib if comm is not None else _lib.load()
    out = ctypes.c_void_p()
    handle = comm.handle if comm is not None else None
    lib.check(lib.scomm_topology_json(handle, ctypes.byref(out)), handle,
              "scomm_topology_json")
    try:
        text = ctypes.string_at(out.value).decode()
    finally:
        lib.scomm_topology_free(out)
    return json.loads(text)


def metrics_text() -> str:
    """This process's metrics in the Prometheus text format."""
    lib = _lib.load()
    out = ctypes.c_void_p()
    size = ctypes.c_size_t()
    lib.check(lib.scomm_metrics_text(ctypes.byref(out), ctypes.byref(size)))
    try:
        return ctypes.string_at(out.value, size.value).decode()
    finally:
        lib.scomm_metrics_free(out)


def vendor_backends() -> List[Dict[str, Any]]:
    """Vendor libraries libscomm knows (``scomm_backend_probe``): name,
    library, version, found, detail, runtime (the device runtime scomm
    records completion events with). Empty with an older libscomm."""
    lib = _lib.load()
    if not lib.has("scomm_backend_count"):
        return []
    out = []
    for i in range(int(lib.scomm_backend_count())):
        info = _lib.BackendInfo()
        lib.check(lib.scomm_backend_probe(i, ctypes.byref(info)))
        out.append({"name": info.name.decode(),
                    "library": info.library.decode(),
                    "version": info.version.decode(),
                    "found": bool(info.found),
                    "detail": info.detail.decode(),
                    "runtime": info.runtime.decode()})
    return out


def library_version() -> str:
    """libscomm's version string (``scomm_version_string``)."""
    return _lib.load().scomm_version_string().decode()
