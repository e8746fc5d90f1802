"""The KV-cache transfer channel (libscomm src/kv) in Python.

A decode process listens and accepts, a prefill process connects (or two
ranks of one communicator pair up with ``connect_comm``); each side
registers its paged cache (a torch tensor, numpy array or any writable
buffer); the sender submits a ``KVPlan`` with a priority, the receiver
waits layer by layer. See docs/kv.md for the wire, the layouts and the
failure semantics, docs/python.md for this API::

    from sagellm_comm import kv
    lst = kv.listen("127.0.0.1", 0, kv.KVOptions(token="s3cret"))
    ep = lst.accept()                                   # decode side
    region = ep.register(cache)     # [layers, blocks, 2, heads, tokens, dim]
    ep.wait_layer(xfer_id, 0); ...; ep.wait_xfer(xfer_id)

    ep = kv.connect(host, port, kv.KVOptions(token="s3cret"))  # prefill
    ep.register(cache)
    xfer = ep.submit(kv.KVPlan(xfer_id, src_blocks, dst_blocks, num_tokens),
                     priority=1)
    xfer.wait()

Errors are the seed's KV taxonomy (``errors.KVError`` and subclasses:
KVTransferFailedError, KVTransferTimeoutError, KVChecksumMismatchError,
KVMetadataMismatchError, ...), each carrying libscomm's message.

Invariants:
 1. A registered object stays referenced (a buffer exporter locked) until
    its region is deregistered or the endpoint is closed: libscomm reads
    and writes it from its own threads.
 2. A transfer handle is freed exactly once: by ``free()``, or when the
    endpoint closes. Dropping the Python object does not cancel the
    transfer (the endpoint keeps it until it completes or is freed).
 3. Every blocking call has a deadline (the endpoint's timeout unless
    given) and releases the GIL while it waits.
"""

from __future__ import annotations

import ctypes
import enum
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Union

from .. import _lib
from ..errors import (CommInvalidArgumentError, CommUsageError, KVError,
                      KVNotImplementedError)
from ..tensor import BufferView, DType, is_numpy_array, is_torch_tensor

__all__ = ["KVOrder", "WireDtype", "Compression", "KVLayout", "KVOptions",
           "HeadRange", "KVPlan", "KVStats", "KVRegion", "KVTransfer",
           "KVEndpoint", "KVListener", "listen", "connect", "connect_comm",
           "KVError"]


class KVOrder(enum.IntEnum):
    """Element order inside one block (``scomm_kv_order_t``)."""

    HEAD_MAJOR = 0   # [K|V][head][token][dim]
    TOKEN_MAJOR = 1  # [token][K|V][head][dim]


class WireDtype(enum.IntEnum):
    """Encoding on the wire (lossy ones are opt-in)."""

    NATIVE = 0
    FP8_E4M3 = 1
    INT4 = 2


class Compression(enum.IntEnum):
    """Lossless compression of each chunk."""

    NONE = 0
    LZ4 = 1
    ZSTD = 2


_KV_DTYPES = (DType.FLOAT16, DType.BFLOAT16, DType.FLOAT32)


@dataclass(frozen=True)
class KVLayout:
    """Shape of a paged KV region: ``num_layers x num_blocks`` blocks,
    layer-major, each ``2 x heads x block_tokens x head_dim`` elements in
    ``order``."""

    num_layers: int
    num_kv_heads: int
    head_dim: int
    block_tokens: int
    num_blocks: int
    dtype: Union[DType, str] = DType.FLOAT16
    order: KVOrder = KVOrder.HEAD_MAJOR

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", DType.parse(self.dtype))
        object.__setattr__(self, "order", KVOrder(int(self.order)))
        for name in ("num_layers", "num_kv_heads", "head_dim",
                     "block_tokens", "num_blocks"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) < 1:
                raise CommInvalidArgumentError(
                    f"KVLayout.{name} must be >= 1 (got {value!r})")
            object.__setattr__(self, name, int(value))
        if self.dtype not in _KV_DTYPES:
            raise CommInvalidArgumentError(
                f"KVLayout.dtype must be float16, bfloat16 or float32 "
                f"(got {self.dtype.name.lower()})")

    @property
    def block_shape(self) -> tuple:
        """Shape of one block in ``order``."""
        if self.order == KVOrder.HEAD_MAJOR:
            return (2, self.num_kv_heads, self.block_tokens, self.head_dim)
        return (self.block_tokens, 2, self.num_kv_heads, self.head_dim)

    @property
    def shape(self) -> tuple:
        """Shape of the whole region: (layers, blocks) + block_shape."""
        return (self.num_layers, self.num_blocks) + self.block_shape

    @property
    def block_bytes(self) -> int:
        return (2 * self.num_kv_heads * self.block_tokens * self.head_dim
                * self.dtype.itemsize)

    @property
    def region_bytes(self) -> int:
        return self.num_layers * self.num_blocks * self.block_bytes

    @classmethod
    def from_array(cls, cache: Any,
                   order: KVOrder = KVOrder.HEAD_MAJOR) -> "KVLayout":
        """The layout of a torch tensor or numpy array shaped
        ``shape`` (6-D) or one layer of it (5-D: blocks + block shape)."""
        shape = tuple(int(x) for x in cache.shape)
        if len(shape) == 5:
            shape = (1,) + shape
        if len(shape) != 6:
            raise CommInvalidArgumentError(
                f"cannot infer a KV layout from shape {shape}: expected "
                "[layers, blocks, 2, heads, tokens, dim] (head-major) or "
                "[layers, blocks, tokens, 2, heads, dim] (token-major); "
                "pass layout=KVLayout(...)")
        order = KVOrder(int(order))
        if order == KVOrder.HEAD_MAJOR:
            layers, blocks, two, heads, tokens, dim = shape
        else:
            layers, blocks, tokens, two, heads, dim = shape
        if two != 2:
            raise CommInvalidArgumentError(
                f"shape {shape} has no K|V axis of size 2 where "
                f"{order.name.lower()} order puts it")
        dtype = str(cache.dtype).replace("torch.", "")
        return cls(layers, heads, dim, tokens, blocks, dtype, order)

    def _to_c(self) -> "_lib.KVLayoutC":
        return _lib.KVLayoutC(self.num_layers, self.num_kv_heads,
                              self.head_dim, self.block_tokens,
                              self.num_blocks, int(self.dtype),
                              int(self.order))


@dataclass
class KVOptions:
    """Endpoint options; None leaves a field to the preset / environment /
    default (docs/kv.md)."""

    preset: Optional[str] = None
    preset_file: Optional[str] = None
    chunk_size: Optional[int] = None
    streams: Optional[int] = None
    prefetch_depth: Optional[int] = None
    zero_copy: Optional[bool] = None
    compression: Optional[Union[Compression, int]] = None
    compression_level: Optional[int] = None
    wire_dtype: Optional[Union[WireDtype, int]] = None
    timeout_ms: Optional[int] = None
    token: Optional[str] = None
    reconnect_ms: Optional[int] = None
    transport: Optional[str] = None  # "tcp" or "ofi" (libfabric RMA)

    _FIELDS = (("preset", _lib.KV_FIELD_PRESET),
               ("chunk_size", _lib.KV_FIELD_CHUNK_SIZE),
               ("streams", _lib.KV_FIELD_STREAMS),
               ("prefetch_depth", _lib.KV_FIELD_PREFETCH_DEPTH),
               ("zero_copy", _lib.KV_FIELD_ZERO_COPY),
               ("compression", _lib.KV_FIELD_COMPRESSION),
               ("compression_level", _lib.KV_FIELD_COMPRESS_LEVEL),
               ("wire_dtype", _lib.KV_FIELD_WIRE_DTYPE),
               ("timeout_ms", _lib.KV_FIELD_TIMEOUT),
               ("token", _lib.KV_FIELD_TOKEN),
               ("reconnect_ms", _lib.KV_FIELD_RECONNECT_MS))

    def _to_c(self) -> "_lib.KVOptsC":
        c = _lib.KVOptsC()
        mask = 0
        for name, bit in self._FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            mask |= bit
            if isinstance(value, str):
                value = value.encode()
            elif isinstance(value, bool):
                value = int(value)
            setattr(c, name, value)
        if self.preset_file is not None:
            c.preset_file = self.preset_file.encode()
        if self.transport is not None:
            if self.transport not in _lib.KV_TRANSPORTS:
                raise CommInvalidArgumentError(
                    f"transport {self.transport!r}: expected one of "
                    f"{', '.join(_lib.KV_TRANSPORTS)}")
            mask |= _lib.KV_FIELD_TRANSPORT
            c.transport = _lib.KV_TRANSPORTS[self.transport]
        c.field_mask = mask
        return c


def _opts(options: Optional[KVOptions]) -> Any:
    if options is None:
        return None
    if not isinstance(options, KVOptions):
        raise CommInvalidArgumentError(
            f"options must be a KVOptions (got {type(options).__name__})")
    return ctypes.byref(options._to_c())


@dataclass(frozen=True)
class HeadRange:
    """A contiguous range of KV heads: ``offset`` .. ``offset+count-1``,
    indices into one side's cache. Plans between different
    tensor-parallel degrees move such ranges (``KVPlan.src_heads`` /
    ``dst_heads``; ``connector.tp_head_slices`` computes them)."""

    offset: int
    count: int

    def __post_init__(self) -> None:
        if int(self.offset) < 0 or int(self.count) < 1:
            raise CommInvalidArgumentError(
                f"HeadRange needs offset >= 0 and count >= 1 (got "
                f"{self.offset}, {self.count})")


@dataclass
class KVPlan:
    """One transfer: tokens [0, num_tokens) of one sequence, from the
    sender's block table (``src_blocks``, in its block size) to the
    receiver's (``dst_blocks``), for layers [first_layer, first_layer +
    num_layers) (None: the rest of the source region's layers).

    ``src_heads``: only these heads of the sender's cache move (None: all
    of them); ``dst_heads``: where they land in the receiver's cache (None:
    from head 0 to its last, which must be as many). The receiver's other
    heads are not written; counts must be equal. A range that does not fit
    is KVMetadataMismatchError on both sides (or CommInvalidArgumentError
    at submit when it does not fit the source)."""

    xfer_id: int
    src_blocks: Sequence[int]
    dst_blocks: Sequence[int]
    num_tokens: int
    src_region: int = 0
    dst_region: int = 0
    first_layer: int = 0
    num_layers: Optional[int] = None
    src_heads: Optional[HeadRange] = None
    dst_heads: Optional[HeadRange] = None

    def _to_c(self, layers_in_region: int) -> tuple:
        src_h = self.src_heads or HeadRange(0, 1)
        dst_h = self.dst_heads or HeadRange(0, 1)
        if (self.src_heads is not None and self.dst_heads is not None
                and self.src_heads.count != self.dst_heads.count):
            raise CommInvalidArgumentError(
                f"KVPlan moves {self.src_heads.count} source heads into "
                f"{self.dst_heads.count} destination heads: the counts "
                "must be equal")
        if not 0 <= int(self.xfer_id) < (1 << 64):
            raise CommInvalidArgumentError(
                f"KVPlan.xfer_id must fit in 64 bits (got {self.xfer_id})")
        num_layers = self.num_layers
        if num_layers is None:
            num_layers = layers_in_region - int(self.first_layer)
        src = (ctypes.c_int32 * len(self.src_blocks))(
            *[int(b) for b in self.src_blocks])
        dst = (ctypes.c_int32 * len(self.dst_blocks))(
            *[int(b) for b in self.dst_blocks])
        plan = _lib.KVPlanC(int(self.xfer_id), int(self.src_region),
                            int(self.dst_region), int(self.first_layer),
                            int(num_layers), int(self.num_tokens),
                            src, len(self.src_blocks), dst,
                            len(self.dst_blocks),
                            int(src_h.offset),
                            int(src_h.count) if self.src_heads else 0,
                            int(dst_h.offset),
                            int(dst_h.count) if self.dst_heads else 0)
        return plan, (src, dst)


@dataclass(frozen=True)
class KVStats:
    """Counters of an endpoint (``scomm_kv_stats_t``)."""

    chunks_sent: int
    chunks_resent: int
    chunks_recv: int
    crc_errors: int
    bytes_raw: int
    bytes_wire: int
    bytes_zero_copy: int
    streams_lost: int
    streams: int
    same_host: bool


@dataclass
class KVRegion:
    """A registered cache: its id on the endpoint and its layout."""

    id: int
    layout: KVLayout
    obj: Any = field(repr=False)
    _view: Optional[BufferView] = field(default=None, repr=False)


class KVTransfer:
    """The sender's handle of a submitted plan."""

    def __init__(self, ep: "KVEndpoint", handle: ctypes.c_void_p,
                 plan: KVPlan, keep: Any) -> None:
        self._ep = ep
        self._handle = handle
        self._keep = keep
        self.plan = plan
        self.xfer_id = int(plan.xfer_id)
        self._lock = threading.Lock()
        self.done = False

    def wait(self, timeout_ms: int = 0) -> None:
        """Until the receiver acknowledged every chunk (<= 0: the
        endpoint's timeout). KVTransferTimeoutError leaves it running."""
        handle = self._live()
        status = self._ep._lib.scomm_kv_xfer_wait(handle, int(timeout_ms))
        if status >= 0 or status != -6:
            self.done = True
        self._ep._lib.check(status, None, f"kv transfer {self.xfer_id}",
                            kv=True)

    def test(self) -> bool:
        """Whether it finished (raises its error if it failed)."""
        handle = self._live()
        done = ctypes.c_int32(0)
        status = self._ep._lib.scomm_kv_xfer_test(handle, ctypes.byref(done))
        self._ep._lib.check(status, None, f"kv transfer {self.xfer_id}",
                            kv=True)
        self.done = bool(done.value)
        return self.done

    def _live(self) -> ctypes.c_void_p:
        with self._lock:
            if not self._handle:
                raise CommUsageError(
                    f"kv transfer {self.xfer_id} was already freed")
            return self._handle

    def free(self) -> None:
        """Release the handle; a running transfer is cancelled."""
        with self._lock:
            handle, self._handle = self._handle, ctypes.c_void_p()
        if handle:
            self._ep._forget(self)
            self._ep._lib.scomm_kv_xfer_free(handle)
        self._keep = None

    def __enter__(self) -> "KVTransfer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.free()

    def __repr__(self) -> str:
        return f"KVTransfer(xfer_id={self.xfer_id}, done={self.done})"


def _region_object(cache: Any, writable: bool, name: str) -> BufferView:
    try:
        return BufferView(cache, writable=writable, name=name)
    except CommInvalidArgumentError as exc:
        raise CommInvalidArgumentError(f"kv register: {exc}") from None


def _stream_handle(stream: Any) -> Optional[int]:
    """A cudaStream_t from a torch.cuda.Stream, an int or None."""
    if stream is None:
        return None
    handle = getattr(stream, "cuda_stream", stream)
    return int(handle) or None


def _region_stream(region: "KVRegion") -> Any:
    """The stream a CUDA cache's reads follow by default: torch's current
    stream for a torch tensor, else its __cuda_array_interface__'s."""
    obj = region.obj
    if is_torch_tensor(obj):
        torch = sys.modules["torch"]
        return int(torch.cuda.current_stream(obj.device).cuda_stream)
    return region._view.stream if region._view is not None else None


class _Closable:
    """close() on ``with`` exit and on garbage collection."""

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter teardown
            pass


class KVEndpoint(_Closable):
    """A set of TCP streams to one peer (``scomm_kv_ep_t``)."""

    def __init__(self, handle: ctypes.c_void_p,
                 lib: "_lib.Library") -> None:
        self._handle = handle
        self._lib = lib
        self._lock = threading.Lock()
        self._regions: Dict[int, KVRegion] = {}
        self._xfers: Dict[int, KVTransfer] = {}

    @property
    def closed(self) -> bool:
        return not self._handle

    def _h(self) -> ctypes.c_void_p:
        if not self._handle:
            raise CommUsageError("kv endpoint is closed")
        return self._handle

    def _check(self, status: int, what: str) -> None:
        self._lib.check(status, None, what, kv=True)

    # -- regions --------------------------------------------------------------

    def register(self, cache: Any, layout: Optional[KVLayout] = None, *,
                 order: KVOrder = KVOrder.HEAD_MAJOR,
                 writable: bool = True) -> KVRegion:
        """Register a paged cache: a torch tensor (CPU or CUDA), an object
        with ``__cuda_array_interface__``, a numpy array or a writable
        buffer (bytearray, mmap, ...). ``layout`` defaults to the one of a
        6-D (or 5-D, one layer) tensor/array in ``order``. A CUDA cache is
        registered as device memory (scomm_kv_register_mem): its chunks
        are staged through pinned host memory (docs/device.md).
        ``writable=False`` allows read-only memory on a side that only
        sends. Ids count from 0 in registration order on each side."""
        if layout is None:
            if not (is_torch_tensor(cache) or is_numpy_array(cache)):
                raise CommInvalidArgumentError(
                    "kv register: pass layout=KVLayout(...) for a "
                    f"{type(cache).__name__}")
            layout = KVLayout.from_array(cache, order)
        view = _region_object(cache, writable, "cache")
        try:
            if view.dtype not in (DType.UINT8, DType.INT8) and \
                    view.dtype != layout.dtype:
                raise CommInvalidArgumentError(
                    f"kv register: cache holds {view.dtype.name.lower()}, "
                    f"the layout says {layout.dtype.name.lower()}")
            if view.nbytes < layout.region_bytes:
                raise CommInvalidArgumentError(
                    f"kv register: cache has {view.nbytes} bytes, the "
                    f"layout needs {layout.region_bytes} ({layout.shape} "
                    f"{layout.dtype.name.lower()})")
            rid = ctypes.c_int32(-1)
            clayout = layout._to_c()
            # SCOMM_MEM_CUDA for a CUDA cache, else SCOMM_MEM_AUTO
            kind = 2 if view.device == "cuda" else 0
            self._check(self._lib.scomm_kv_register_mem(
                self._h(), ctypes.byref(clayout), view.ptr, view.nbytes,
                kind, ctypes.byref(rid)), "kv register")
        except BaseException:
            view.release()
            raise
        region = KVRegion(int(rid.value), layout, cache, view)
        with self._lock:
            self._regions[region.id] = region
        return region

    def deregister(self, region: Union[KVRegion, int]) -> None:
        """Forget a region; no transfer may use it any more."""
        rid = region.id if isinstance(region, KVRegion) else int(region)
        self._check(self._lib.scomm_kv_deregister(self._h(), rid),
                    "kv deregister")
        with self._lock:
            reg = self._regions.pop(rid, None)
        if reg is not None and reg._view is not None:
            reg._view.release()

    @property
    def regions(self) -> List[KVRegion]:
        with self._lock:
            return list(self._regions.values())

    # -- sender ---------------------------------------------------------------

    def submit(self, plan: KVPlan, priority: int = 0,
               stream: Any = None) -> KVTransfer:
        """Submit a transfer (sender side); higher priority goes first.
        A CUDA source cache is read after the work enqueued so far on
        ``stream`` (a torch.cuda.Stream, a cudaStream_t as int; default:
        torch's current stream for a torch cache, else the stream its
        ``__cuda_array_interface__`` named)."""
        with self._lock:
            region = self._regions.get(int(plan.src_region))
        layers = region.layout.num_layers if region is not None else 0
        cplan, keep = plan._to_c(layers)
        xfer = ctypes.c_void_p()
        if stream is None and region is not None and \
                region._view is not None and region._view.device == "cuda":
            stream = _region_stream(region)
        self._check(self._lib.scomm_kv_submit_stream(
            self._h(), ctypes.byref(cplan), int(priority),
            _stream_handle(stream), ctypes.byref(xfer)),
            f"kv submit {plan.xfer_id}")
        handle = KVTransfer(self, xfer, plan, keep)
        with self._lock:
            self._xfers[id(handle)] = handle
        return handle

    def _forget(self, xfer: KVTransfer) -> None:
        with self._lock:
            self._xfers.pop(id(xfer), None)

    # -- receiver -------------------------------------------------------------

    def wait_layer(self, xfer_id: int, layer: int,
                   timeout_ms: int = 0, stream: Any = None) -> None:
        """Until ``layer`` (absolute index) of transfer xfer_id landed,
        verified (<= 0: the endpoint's timeout). With ``stream`` (a CUDA
        cache: a torch.cuda.Stream or a cudaStream_t as int) the host does
        not wait: the stream waits for the layer
        (scomm_kv_wait_layer_stream); call it without ``stream`` to learn
        the outcome."""
        if stream is not None:
            self._check(self._lib.scomm_kv_wait_layer_stream(
                self._h(), int(xfer_id), int(layer), _stream_handle(stream),
                int(timeout_ms)), f"kv wait_layer {xfer_id}/{layer}")
            return
        self._check(self._lib.scomm_kv_wait_layer(
            self._h(), int(xfer_id), int(layer), int(timeout_ms)),
            f"kv wait_layer {xfer_id}/{layer}")

    def wait_xfer(self, xfer_id: int, timeout_ms: int = 0) -> None:
        """Until every layer of xfer_id landed; then forget it."""
        self._check(self._lib.scomm_kv_wait_xfer(
            self._h(), int(xfer_id), int(timeout_ms)),
            f"kv wait_xfer {xfer_id}")

    # -- both -----------------------------------------------------------------

    def stats(self) -> KVStats:
        st = _lib.KVStatsC()
        self._check(self._lib.scomm_kv_ep_stats(self._h(),
                                                ctypes.byref(st)),
                    "kv stats")
        return KVStats(*(int(getattr(st, n)) for n, _ in st._fields_[:-1]),
                       same_host=bool(st.same_host))

    def close(self) -> None:
        """Tell the peer, stop the streams; running transfers fail with
        KVTransferAbortedError; every handle and region is released."""
        with self._lock:
            handle, self._handle = self._handle, ctypes.c_void_p()
            xfers = list(self._xfers.values())
            regions = list(self._regions.values())
            self._xfers.clear()
            self._regions.clear()
        if not handle:
            return
        self._lib.scomm_kv_ep_close(handle)
        for x in xfers:
            x.free()
        for reg in regions:
            if reg._view is not None:
                reg._view.release()


class KVListener(_Closable):
    """A listening socket for one KV peer at a time."""

    def __init__(self, handle: ctypes.c_void_p,
                 lib: "_lib.Library") -> None:
        self._handle = handle
        self._lib = lib

    @property
    def port(self) -> int:
        return int(self._lib.scomm_kv_listener_port(self._h()))

    def _h(self) -> ctypes.c_void_p:
        if not self._handle:
            raise CommUsageError("kv listener is closed")
        return self._handle

    def accept(self, timeout_ms: int = 0) -> KVEndpoint:
        """Wait for one peer (its token checked); <= 0: the listener's
        timeout."""
        ep = ctypes.c_void_p()
        self._lib.check(self._lib.scomm_kv_accept(
            self._h(), int(timeout_ms), ctypes.byref(ep)), None,
            "kv accept", kv=True)
        return KVEndpoint(ep, self._lib)

    def close(self) -> None:
        handle, self._handle = self._handle, ctypes.c_void_p()
        if handle:
            self._lib.scomm_kv_listener_close(handle)


def _open(fn: str, what: str, host: str, port: int,
          options: Optional[KVOptions], cls: Any) -> Any:
    lib = _lib.load()
    handle = ctypes.c_void_p()
    lib.check(lib.fn(fn)(str(host).encode(), int(port), _opts(options),
                         ctypes.byref(handle)),
              None, f"kv {what} {host}:{port}", kv=True)
    return cls(handle, lib)


def listen(host: str = "127.0.0.1", port: int = 0,
           options: Optional[KVOptions] = None) -> KVListener:
    """Listen for a KV peer on host:port (0: any free port)."""
    return _open("scomm_kv_listen", "listen", host, port, options,
                 KVListener)


def connect(host: str, port: int,
            options: Optional[KVOptions] = None) -> KVEndpoint:
    """Connect to a listening peer, retrying until the options' timeout."""
    return _open("scomm_kv_connect", "connect", host, port, options,
                 KVEndpoint)


def _communicator(comm: Any) -> Any:
    from ..comm import Communicator
    if isinstance(comm, Communicator):
        return comm
    sub = getattr(comm, "_comm", None)       # a CommGroup with its split
    if isinstance(sub, Communicator):
        return sub
    for attr in ("communicator",):           # seed backend, torch group
        value = getattr(comm, attr, None)
        if isinstance(value, Communicator):
            return value
    backend = getattr(comm, "_backend", None)
    if backend is not None:
        return _communicator(backend)
    raise CommInvalidArgumentError(
        "connect_comm needs a Communicator, a sagellm_comm backend or "
        "group, or a torch process group of backend 'scomm' (got "
        f"{type(comm).__name__})")


def connect_comm(comm: Any, peer: int,
                 options: Optional[KVOptions] = None) -> KVEndpoint:
    """Endpoint to rank ``peer`` of a communicator (both ranks call it):
    a ``Communicator``, a seed backend or ``CommGroup``, or a torch
    process group of backend "scomm" (group ranks)."""
    c = _communicator(comm)
    ep = ctypes.c_void_p()
    c.lib.check(c.lib.scomm_kv_connect_comm(c.handle, int(peer),
                                            _opts(options),
                                            ctypes.byref(ep)),
                c.handle_or_none(), f"kv connect_comm to rank {peer}",
                kv=True)
    return KVEndpoint(ep, c.lib)
