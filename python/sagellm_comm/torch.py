"""torch.distributed backend "scomm": a ProcessGroup over libscomm.

``import sagellm_comm`` (or this module) registers the backend, so::

    dist.init_process_group("scomm", init_method="env://")   # or tcp://
    dist.all_reduce(t); g = dist.new_group([0, 1]); dist.send(t, 1, group=g)

``ProcessGroupScomm`` is a Python subclass of ``dist.ProcessGroup``: torch
1.13 calls its methods through the bindings' trampoline, and torch 2.x's
``_new_process_group_helper`` adopts a ProcessGroup subclass returned by a
plugin's creator as the group itself. Each group (the default one and each
``new_group``) is one libscomm world of its own: its rank 0 reserves a free
port on the address its peers reach torch's store by, publishes
"host port token" in the group's store, and every member calls
``scomm_init`` with it; the store's own port is never reused.

Every operation is issued at once with libscomm's non-blocking call (its
progress thread moves the data) and returns a ``ScommWork``; torch's
blocking forms call ``wait()`` on it, ``async_op=True`` hands it to the
caller. Copies that torch's list forms need (all_gather into a list,
reduce_scatter from a list, all_to_all with lists) happen in the work's
finish step, after the data has landed.

Invariants:
 1. Operations are issued in program order on every rank, as libscomm
    requires; nothing is deferred.
 2. Host or device memory is decided in one place,
    ``tensor.check_torch_memory`` (applied by ``_check`` here, with the
    call's name, and by the Communicator's ``BufferView`` when it takes the
    pointer): CPU and CUDA tensors pass (a CUDA tensor as its device
    pointer and torch.cuda.current_stream(), staged by libscomm:
    docs/device.md), other devices are refused there. The backend is
    registered for "cpu" and "cuda".
 5. On CUDA tensors a call is stream-ordered: libscomm's copies to host
    wait for the current stream when the call is made; ``wait()`` blocks
    the host until the data is on the wire's far side and the copies back
    are enqueued, and leaves the current stream (the one the call was made
    on, and the current one at ``wait()`` if that differs) waiting for
    them, as ProcessGroupNCCL's works leave it.
 3. A work keeps its tensors (and scratch buffers) alive until it has
    completed; its error is raised by ``wait()`` and returned by
    ``exception()``; the finish step runs once, only after success.
 4. A call this backend does not implement raises CommUnsupportedError
    naming the torch.distributed call, never torch's generic message.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import socket
import threading
import time
import weakref
from typing import Any, Callable, List, Optional, Sequence

import torch
import torch.distributed as dist

from . import _torch_hook
from .comm import Communicator, RedOp, Request
from .errors import (CommError, CommInvalidArgumentError, CommTimeoutError,
                     CommUnsupportedError)
from .tensor import check_torch_memory

BACKEND_NAME = _torch_hook.BACKEND_NAME

#: Store key under which a group's rank 0 publishes "host port token".
RENDEZVOUS_KEY = "scomm/rendezvous"

#: Tag of the point-to-point messages that carry an uneven all_to_all
#: (below libscomm's own reserved tags, SCOMM_TAG_MAX - 7 and up).
ALLTOALL_TAG = 0x3fffffff - 64

_TAG_MAX = 0x3fffffff


def register() -> bool:
    """Register backend "scomm" (idempotent; ``import sagellm_comm`` does
    it already)."""
    return _torch_hook.register(dist)


# -- reduce ops ---------------------------------------------------------------

def _redop(op: Any, call: str) -> RedOp:
    """torch's ReduceOp (object or enum) as libscomm's RedOp."""
    table = [(dist.ReduceOp.SUM, RedOp.SUM), (dist.ReduceOp.PRODUCT,
             RedOp.PROD), (dist.ReduceOp.MIN, RedOp.MIN),
             (dist.ReduceOp.MAX, RedOp.MAX)]
    if hasattr(dist.ReduceOp, "AVG"):
        table.append((dist.ReduceOp.AVG, RedOp.AVG))
    for theirs, ours in table:
        try:
            if op == theirs:
                return ours
        except TypeError:
            continue
    label = str(op)
    for name in ("BAND", "BOR", "BXOR", "PREMUL_SUM"):
        try:
            if hasattr(dist.ReduceOp, name) and \
                    op == getattr(dist.ReduceOp, name):
                label = f"ReduceOp.{name}"
        except TypeError:
            continue
    raise CommUnsupportedError(
        f"scomm: {call} with {label} is not supported (sum, product, "
        "min, max and avg are)")


# -- memory -------------------------------------------------------------------

def _check(tensor: Any, call: str, name: str) -> None:
    """Refuse what libscomm cannot take, naming the call (invariant 2: the
    host/device decision itself is tensor.check_torch_memory, which the
    Communicator's BufferView applies again when it takes the pointer)."""
    if not isinstance(tensor, torch.Tensor):
        raise CommInvalidArgumentError(
            f"scomm: {call}: {name} must be a torch.Tensor (got "
            f"{type(tensor).__name__})")
    try:
        check_torch_memory(tensor, name)
    except CommError as exc:
        raise type(exc)(f"scomm: {call}: {exc}") from None


def _unflatten(flat: Any, outs: Sequence[Any]) -> None:
    """Copy consecutive equal blocks of flat into the tensors outs."""
    step = flat.numel() // max(len(outs), 1)
    for i, out in enumerate(outs):
        out.copy_(flat[i * step:(i + 1) * step].view_as(out))


def _op(opts: Any, call: str) -> RedOp:
    """The reduce op of a torch options object (SUM without one)."""
    return _redop(opts.reduceOp if opts is not None else dist.ReduceOp.SUM,
                  call)


def _one(tensors: Sequence[Any], call: str) -> Any:
    if len(tensors) != 1:
        raise CommUnsupportedError(
            f"scomm: {call} over {len(tensors)} tensors per rank (the "
            "multi-device form) is not supported; pass one tensor")
    return tensors[0]


def _rank_list(lists: Sequence[Sequence[Any]], like: Any, size: int,
               call: str, what: str) -> List[Any]:
    """The one list of a list form (one tensor per rank), checked: size
    tensors, each of like's dtype and element count."""
    tensors = list(_one(lists, call))
    if len(tensors) != size:
        raise CommInvalidArgumentError(
            f"scomm: {call}: {what} has {len(tensors)} tensors, the group "
            f"{size} ranks")
    for i, t in enumerate(tensors):
        if t.dtype != like.dtype or t.numel() != like.numel():
            raise CommUnsupportedError(
                f"scomm: {call}: {what}[{i}] has {t.numel()} {t.dtype} "
                f"elements, the input {like.numel()} {like.dtype}; uneven "
                "sizes are not supported here")
    return tensors


# -- work ---------------------------------------------------------------------

class ScommWork(dist.Work):
    """One operation in flight: libscomm requests plus a finish step.

    ``wait()`` completes it (raising its error), ``is_completed()`` polls,
    ``exception()`` gives the error, ``result()`` the output tensors."""

    def __init__(self, call: str, requests: Sequence[Request],
                 outputs: Sequence[Any] = (),
                 finish: Optional[Callable[[], None]] = None,
                 keep: Sequence[Any] = (), source_rank: int = -1) -> None:
        super().__init__()
        self._call = call
        self._requests = list(requests)
        self._outputs = list(outputs)
        self._finish = finish
        self._keep = list(keep)
        self._error: Optional[BaseException] = None
        self._done = False
        self._lock = threading.Lock()
        self._source = source_rank
        # CUDA outputs: the stream the call was made on (invariant 5)
        self._stream = None
        cuda = [t for t in self._outputs
                if isinstance(t, torch.Tensor) and t.device.type == "cuda"]
        if cuda:
            self._stream = torch.cuda.current_stream(cuda[0].device)

    def _order_current(self) -> None:
        """The current stream waits for the call's own (invariant 5):
        libscomm's wait made the call's stream wait for the copies back."""
        if self._stream is None:
            return
        cur = torch.cuda.current_stream(self._stream.device)
        if cur != self._stream:
            cur.wait_stream(self._stream)

    def _complete(self, error: Optional[BaseException]) -> None:
        # Called with self._lock held.
        if error is None and self._finish is not None:
            try:
                self._finish()
            except BaseException as exc:  # noqa: BLE001 - kept for wait()
                error = exc
        self._error = error
        self._done = True
        self._finish = None
        self._keep = []
        self._requests = []

    def _drain(self) -> None:
        error = None
        for req in self._requests:
            try:
                req.wait()
            except BaseException as exc:  # noqa: BLE001
                if error is None:
                    error = exc
        self._complete(error)

    def wait(self, timeout: Any = None) -> bool:
        """Complete the operation; raise its error. ``timeout`` (a
        timedelta, 0 = none) bounds the wait without cancelling it."""
        seconds = 0.0
        if isinstance(timeout, datetime.timedelta):
            seconds = timeout.total_seconds()
        elif isinstance(timeout, (int, float)):
            seconds = float(timeout)
        with self._lock:
            if not self._done:
                if seconds > 0:
                    deadline = time.monotonic() + seconds
                    while not self._poll():
                        if time.monotonic() >= deadline:
                            raise CommTimeoutError(
                                f"scomm: {self._call} did not complete "
                                f"within {seconds:g} s (still running)")
                        time.sleep(0.0005)
                else:
                    self._drain()
            if self._error is not None:
                raise self._error
        self._order_current()
        return True

    def _poll(self) -> bool:
        # Called with self._lock held.
        if self._done:
            return True
        try:
            if all(req.test() for req in self._requests):
                self._complete(None)
        except BaseException as exc:  # noqa: BLE001
            self._drain_after(exc)
        return self._done

    def _drain_after(self, error: BaseException) -> None:
        for req in self._requests:
            try:
                req.wait()
            except BaseException:  # noqa: BLE001
                pass
        self._complete(error)

    def is_completed(self) -> bool:
        with self._lock:
            return self._poll()

    def is_success(self) -> bool:
        with self._lock:
            return self._poll() and self._error is None

    def exception(self) -> Optional[BaseException]:
        with self._lock:
            self._poll()
            return self._error

    def result(self) -> List[Any]:
        return list(self._outputs)

    def source_rank(self) -> int:
        return self._source

    def _source_rank(self) -> int:
        return self._source

    def synchronize(self) -> None:
        """Complete the work; on CUDA tensors the current stream then
        waits for it (invariant 5)."""
        self.wait()

    def get_future(self) -> Any:
        """A torch Future holding the outputs. It is completed before it
        is returned (the operation is waited for here)."""
        fut = torch.futures.Future()
        try:
            self.wait()
        except BaseException as exc:  # noqa: BLE001
            fut.set_exception(exc)
            return fut
        fut.set_result(self.result())
        return fut

    def __repr__(self) -> str:
        state = "done" if self._done else "running"
        return f"ScommWork({self._call}, {state})"


# -- rendezvous ---------------------------------------------------------------

def _unwrap_store(store: Any) -> Any:
    inner = store
    for _ in range(16):
        nxt = getattr(inner, "underlying_store", None)
        if nxt is None or nxt is inner:
            break
        inner = nxt
    return inner


def _address_toward(host: str, port: int) -> str:
    """The local address this host uses to reach host:port (a UDP connect
    sends nothing). Loopback stays loopback."""
    infos = socket.getaddrinfo(host, port or 9, type=socket.SOCK_DGRAM)
    family, _, _, _, addr = infos[0]
    try:
        if ipaddress.ip_address(addr[0]).is_loopback:
            return addr[0]
    except ValueError:
        pass
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.connect(addr)
        return s.getsockname()[0]


def listen_address(store: Any) -> str:
    """Where a group's rank 0 listens for the scomm rendezvous.

    ``SCOMM_TORCH_ADDR`` if set; else the local address that reaches the
    host of torch's TCPStore (the address every rank already reached);
    else the one that reaches ``MASTER_ADDR``; else 127.0.0.1."""
    override = os.environ.get("SCOMM_TORCH_ADDR")
    if override:
        return override
    inner = _unwrap_store(store)
    host = getattr(inner, "host", None)
    port = int(getattr(inner, "port", 0) or 0)
    if not host:
        host = os.environ.get("MASTER_ADDR")
        port = int(os.environ.get("MASTER_PORT", "0") or 0)
    if not host:
        return "127.0.0.1"
    return _address_toward(host, port)


def _reserve_port(host: str) -> socket.socket:
    """A socket bound (not listening) to a free port of host with
    SO_REUSEADDR: it keeps other binds off the port until libscomm's own
    listener (also SO_REUSEADDR) has bound it."""
    infos = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)
    family, _, _, _, addr = infos[0]
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(addr[:2] if family == socket.AF_INET else addr)
    except OSError:
        s.close()
        raise
    return s


def _timeout_ms(timeout: Any) -> int:
    if isinstance(timeout, datetime.timedelta):
        ms = int(timeout.total_seconds() * 1000)
    else:
        ms = int(timeout or 0)
    return ms if ms > 0 else 30 * 60 * 1000


def rendezvous(store: Any, rank: int, size: int,
               timeout: Any) -> Communicator:
    """One libscomm world for this group, found through torch's store."""
    timeout_ms = _timeout_ms(timeout)
    if rank == 0:
        host = listen_address(store)
        reserve = _reserve_port(host)
        try:
            port = reserve.getsockname()[1]
            token = secrets.token_hex(16)
            store.set(RENDEZVOUS_KEY, f"{host} {port} {token}")
            return Communicator.init(rank=0, world_size=size,
                                     master_addr=host, master_port=port,
                                     timeout_ms=timeout_ms, job_token=token)
        finally:
            reserve.close()
    value = store.get(RENDEZVOUS_KEY)
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode()
    try:
        host, port_text, token = value.split()
        port = int(port_text)
    except ValueError:
        raise CommInvalidArgumentError(
            f"scomm: bad rendezvous record {value!r} under store key "
            f"{RENDEZVOUS_KEY!r}") from None
    return Communicator.init(rank=rank, world_size=size, master_addr=host,
                             master_port=port, timeout_ms=timeout_ms,
                             job_token=token)


def create_process_group(*args: Any) -> "ProcessGroupScomm":
    """torch's creator: (store, rank, size, timeout), or with the extended
    API (_DistributedBackendOptions, pg_options)."""
    ranks: Optional[List[int]] = None
    name = ""
    if len(args) == 2:
        opts = args[0]
        store, rank, size = opts.store, opts.group_rank, opts.group_size
        timeout = opts.timeout
        ranks = list(getattr(opts, "global_ranks_in_group", []) or [])
        name = str(getattr(opts, "group_id", "") or "")
    elif len(args) == 4:
        store, rank, size, timeout = args
    else:
        raise CommInvalidArgumentError(
            f"scomm: unexpected process group creator arguments {args!r}")
    comm = rendezvous(store, int(rank), int(size), timeout)
    return ProcessGroupScomm(comm, int(rank), int(size), ranks or None,
                             name)


# -- the process group --------------------------------------------------------

class ProcessGroupScomm(dist.ProcessGroup):
    """A torch ProcessGroup whose collectives run in libscomm."""

    def __init__(self, comm: Communicator, rank: int, size: int,
                 global_ranks: Optional[List[int]] = None,
                 name: str = "") -> None:
        super().__init__(rank, size)
        self._comm = comm
        self._global_ranks = global_ranks
        self._name = name
        self._finalizer = weakref.finalize(self, _destroy, comm)

    # -- identity -------------------------------------------------------------

    @property
    def communicator(self) -> Communicator:
        """The libscomm communicator of this group (for the KV channel's
        communicator form, topology, stats)."""
        return self._comm

    def getBackendName(self) -> str:  # noqa: N802 - torch's name
        return BACKEND_NAME

    def _get_backend_name(self) -> str:
        return BACKEND_NAME

    def name(self) -> str:
        return BACKEND_NAME

    def __repr__(self) -> str:
        return (f"ProcessGroupScomm(rank={self.rank()}, size={self.size()}"
                f", name={self._name!r})")

    def shutdown(self) -> None:
        """Release the libscomm world (torch 2.x calls it on destroy)."""
        self._finalizer()

    def abort(self) -> None:
        """Fail every blocked and later operation of this group."""
        if self._comm.alive:
            self._comm.abort()

    # -- helpers --------------------------------------------------------------

    def _work(self, call: str, requests: Sequence[Request],
              outputs: Sequence[Any], finish: Optional[Callable] = None,
              keep: Sequence[Any] = (), source: int = -1) -> ScommWork:
        return ScommWork(call, requests, outputs, finish, keep, source)

    def _issue(self, call: str, fn: Callable[..., Request],
               *args: Any, **kwargs: Any) -> Request:
        try:
            return fn(*args, nonblocking=True, **kwargs)
        except CommError as exc:
            if call not in str(exc):
                exc.message = f"scomm: {call}: {exc.message}"
                exc.args = (exc.message,)
            raise

    def _peer(self, rank: int, call: str, what: str) -> int:
        if not 0 <= int(rank) < self.size():
            raise CommInvalidArgumentError(
                f"scomm: {call}: {what} {rank} is not a rank of this group "
                f"(size {self.size()})")
        return int(rank)

    def _rooted(self, tensors: Sequence[Any], opts: Any, call: str,
                what: str) -> tuple:
        """The one tensor of a rooted call, checked, and its root."""
        t = _one(tensors, call)
        root = self._peer(opts.rootRank if opts is not None else 0, call,
                          what)
        _check(t, call, "tensor")
        return t, root

    @staticmethod
    def _tag(tag: int, call: str) -> int:
        if not 0 <= int(tag) <= _TAG_MAX:
            raise CommInvalidArgumentError(
                f"scomm: {call}: tag {tag} is outside 0..{_TAG_MAX}")
        return int(tag)

    # -- collectives ----------------------------------------------------------

    def allreduce(self, tensors: Sequence[Any], opts: Any = None) -> ScommWork:
        call = "all_reduce"
        t = _one(tensors, call)
        op = _op(opts, call)
        _check(t, call, "tensor")
        req = self._issue(call, self._comm.all_reduce, t, op)
        return self._work(call, [req], [t])

    def allreduce_coalesced(self, tensors: Sequence[Any],
                            opts: Any = None) -> ScommWork:
        call = "all_reduce_coalesced"
        op = _op(opts, call)
        reqs = []
        for t in tensors:
            _check(t, call, "tensor")
            reqs.append(self._issue(call, self._comm.all_reduce, t, op))
        return self._work(call, reqs, list(tensors))

    def broadcast(self, tensors: Sequence[Any], opts: Any = None) -> ScommWork:
        call = "broadcast"
        t, root = self._rooted(tensors, opts, call, "src")
        req = self._issue(call, self._comm.broadcast, t, root)
        return self._work(call, [req], [t])

    def reduce(self, tensors: Sequence[Any], opts: Any = None) -> ScommWork:
        call = "reduce"
        t, root = self._rooted(tensors, opts, call, "dst")
        op = _op(opts, call)
        req = self._issue(call, self._comm.reduce, t, root, op)
        return self._work(call, [req], [t])

    def _scaled(self, call: str, part: Any, whole: Any, part_name: str,
                whole_name: str) -> None:
        """Check the tensor forms: whole holds group size x part."""
        _check(part, call, part_name)
        _check(whole, call, whole_name)
        if whole.dtype != part.dtype or \
                whole.numel() != part.numel() * self.size():
            raise CommInvalidArgumentError(
                f"scomm: {call}: {whole_name} must hold world_size x "
                f"{part.numel()} {part.dtype} elements (has "
                f"{whole.numel()} {whole.dtype})")

    def _allgather_base(self, output: Any, input: Any,
                        opts: Any = None) -> ScommWork:
        call = "all_gather_into_tensor"
        self._scaled(call, input, output, "input", "output")
        req = self._issue(call, self._comm.all_gather, input, output)
        return self._work(call, [req], [output])

    def allgather(self, output_tensors: Sequence[Sequence[Any]],
                  input_tensors: Sequence[Any],
                  opts: Any = None) -> ScommWork:
        call = "all_gather"
        t = _one(input_tensors, call)
        outs = _rank_list(output_tensors, t, self.size(), call,
                          "tensor_list")
        _check(t, call, "tensor")
        flat = torch.empty(self.size() * t.numel(), dtype=t.dtype,
                               device=t.device)
        req = self._issue(call, self._comm.all_gather, t.contiguous(), flat)

        return self._work(call, [req], outs, lambda: _unflatten(flat, outs),
                          [flat, t])

    def _reduce_scatter_base(self, output: Any, input: Any,
                             opts: Any = None) -> ScommWork:
        call = "reduce_scatter_tensor"
        op = _op(opts, call)
        self._scaled(call, output, input, "output", "input")
        req = self._issue(call, self._comm.reduce_scatter, input, output, op)
        return self._work(call, [req], [output])

    def reduce_scatter(self, output_tensors: Sequence[Any],
                       input_tensors: Sequence[Sequence[Any]],
                       opts: Any = None) -> ScommWork:
        call = "reduce_scatter"
        out = _one(output_tensors, call)
        ins = _rank_list(input_tensors, out, self.size(), call,
                         "input_list")
        op = _op(opts, call)
        _check(out, call, "output")
        flat = torch.cat([x.reshape(-1) for x in ins])
        req = self._issue(call, self._comm.reduce_scatter, flat, out, op)
        return self._work(call, [req], [out], None, [flat])

    def alltoall_base(self, output: Any, input: Any,
                      output_split_sizes: Sequence[int],
                      input_split_sizes: Sequence[int],
                      opts: Any = None) -> ScommWork:
        call = "all_to_all_single"
        n = self.size()
        _check(input, call, "input")
        _check(output, call, "output")
        if output.dtype != input.dtype:
            raise CommInvalidArgumentError(
                f"scomm: {call}: input is {input.dtype}, output "
                f"{output.dtype}")
        if not output_split_sizes and not input_split_sizes:
            if input.numel() != output.numel() or input.numel() % n:
                raise CommInvalidArgumentError(
                    f"scomm: {call}: input and output must hold the same "
                    f"number of elements, a multiple of {n} (have "
                    f"{input.numel()} and {output.numel()})")
            req = self._issue(call, self._comm.all_to_all, input, output)
            return self._work(call, [req], [output])
        in_rows = self._splits(input, input_split_sizes, n, call, "input")
        out_rows = self._splits(output, output_split_sizes, n, call,
                                "output")
        ins = list(torch.split(input.reshape(input.shape[0], -1)
                               if input.dim() else input, in_rows))
        outs = list(torch.split(output.reshape(output.shape[0], -1)
                                if output.dim() else output, out_rows))
        return self._exchange(call, outs, ins, [output])

    @staticmethod
    def _splits(t: Any, sizes: Sequence[int], n: int, call: str,
                what: str) -> List[int]:
        rows = t.shape[0] if t.dim() else 1
        if not sizes:
            if rows % n:
                raise CommInvalidArgumentError(
                    f"scomm: {call}: {what} has {rows} rows, not a multiple "
                    f"of the group size {n}; give {what}_split_sizes")
            return [rows // n] * n
        sizes = [int(s) for s in sizes]
        if sum(sizes) != rows or any(s < 0 for s in sizes):
            raise CommInvalidArgumentError(
                f"scomm: {call}: {what}_split_sizes {sizes} do not add up "
                f"to the {rows} rows of {what}")
        return sizes

    def _exchange(self, call: str, outs: List[Any], ins: List[Any],
                  results: List[Any]) -> ScommWork:
        """Uneven all_to_all: one send and one receive per peer (tag
        ALLTOALL_TAG), the own block copied locally."""
        n, me = self.size(), self.rank()
        if len(outs) != n or len(ins) != n:
            raise CommInvalidArgumentError(
                f"scomm: {call}: {len(ins)} input and {len(outs)} output "
                f"blocks for a group of {n}")
        scratch = [o if o.is_contiguous() else torch.empty_like(o)
                   for o in outs]
        sends = [i.contiguous() for i in ins]
        if sends[me].numel() != scratch[me].numel():
            raise CommInvalidArgumentError(
                f"scomm: {call}: rank {me} sends itself "
                f"{sends[me].numel()} elements but expects "
                f"{scratch[me].numel()} from itself")
        reqs: List[Request] = []
        try:
            for k in range(1, n):
                src = (me - k) % n
                dst = (me + k) % n
                if scratch[src].numel():
                    reqs.append(self._issue(call, self._comm.recv,
                                            scratch[src], src, ALLTOALL_TAG))
                if sends[dst].numel():
                    reqs.append(self._issue(call, self._comm.send,
                                            sends[dst], dst, ALLTOALL_TAG))
        except BaseException:
            for r in reqs:
                try:
                    r.wait()
                except BaseException:  # noqa: BLE001
                    pass
            raise
        scratch[me].copy_(sends[me].view_as(scratch[me]))

        def finish() -> None:
            for o, s in zip(outs, scratch):
                if o is not s:
                    o.copy_(s)
        return self._work(call, reqs, results, finish, [scratch, sends])

    def alltoall(self, output_tensors: Sequence[Any],
                 input_tensors: Sequence[Any],
                 opts: Any = None) -> ScommWork:
        call = "all_to_all"
        n = self.size()
        outs, ins = list(output_tensors), list(input_tensors)
        if len(outs) != n or len(ins) != n:
            raise CommInvalidArgumentError(
                f"scomm: {call}: {len(ins)} input and {len(outs)} output "
                f"tensors for a group of {n}")
        for i, t in enumerate(ins):
            _check(t.contiguous(), call, f"input_tensor_list[{i}]")
            if t.dtype != ins[0].dtype or outs[i].dtype != ins[0].dtype:
                raise CommInvalidArgumentError(
                    f"scomm: {call}: tensors of different dtypes")
        for i, t in enumerate(outs):
            _check(t.contiguous(), call, f"output_tensor_list[{i}]")
        counts = {t.numel() for t in ins} | {t.numel() for t in outs}
        if len(counts) == 1:
            per = counts.pop()
            flat_in = torch.cat([t.reshape(-1) for t in ins])
            flat_out = torch.empty(n * per, dtype=ins[0].dtype,
                                   device=ins[0].device)
            req = self._issue(call, self._comm.all_to_all, flat_in,
                              flat_out)

            return self._work(call, [req], outs,
                              lambda: _unflatten(flat_out, outs),
                              [flat_in, flat_out])
        return self._exchange(call, outs, ins, outs)

    def gather(self, output_tensors: Sequence[Sequence[Any]],
               input_tensors: Sequence[Any], opts: Any = None) -> ScommWork:
        """Blocking in libscomm (no non-blocking gather): the returned
        work is complete."""
        call = "gather"
        t, root = self._rooted(input_tensors, opts, call, "dst")
        outs: List[Any] = []
        flat = None
        if self.rank() == root:
            outs = _rank_list(output_tensors, t, self.size(), call,
                              "gather_list")
            flat = torch.empty(self.size() * t.numel(), dtype=t.dtype,
                               device=t.device)
        self._blocking(call, self._comm.gather, t.contiguous(), flat, root)
        if flat is not None:
            _unflatten(flat, outs)
        return self._work(call, [], outs)

    def scatter(self, output_tensors: Sequence[Any],
                input_tensors: Sequence[Sequence[Any]],
                opts: Any = None) -> ScommWork:
        """Blocking in libscomm (no non-blocking scatter): the returned
        work is complete."""
        call = "scatter"
        out, root = self._rooted(output_tensors, opts, call, "src")
        flat = None
        if self.rank() == root:
            ins = _rank_list(input_tensors, out, self.size(), call,
                             "scatter_list")
            flat = torch.cat([x.reshape(-1) for x in ins])
        self._blocking(call, self._comm.scatter, flat, out, root)
        return self._work(call, [], [out])

    def _blocking(self, call: str, fn: Callable, *args: Any) -> None:
        try:
            fn(*args)
        except CommError as exc:
            if call not in str(exc):
                exc.message = f"scomm: {call}: {exc.message}"
                exc.args = (exc.message,)
            raise

    def barrier(self, opts: Any = None) -> ScommWork:
        call = "barrier"
        req = self._issue(call, self._comm.barrier)
        return self._work(call, [req], [])

    # -- point-to-point -------------------------------------------------------

    def _p2p(self, call: str, tensors: Sequence[Any], peer: int,
             tag: int, what: str, fn: Callable) -> ScommWork:
        t = _one(tensors, call)
        peer = self._peer(peer, call, what)
        _check(t, call, "tensor")
        req = self._issue(call, fn, t, peer, self._tag(tag, call))
        return self._work(call, [req], [t],
                          source=peer if call == "recv" else -1)

    def send(self, tensors: Sequence[Any], dstRank: int,  # noqa: N803
             tag: int = 0) -> ScommWork:
        return self._p2p("send", tensors, dstRank, tag, "dst",
                         self._comm.send)

    def recv(self, tensors: Sequence[Any], srcRank: int,  # noqa: N803
             tag: int = 0) -> ScommWork:
        return self._p2p("recv", tensors, srcRank, tag, "src",
                         self._comm.recv)

    # -- not supported: named errors (invariant 4) ----------------------------

    def _unsupported(self, call: str, why: str = "") -> None:
        raise CommUnsupportedError(
            f"scomm: {call} is not supported by backend 'scomm'"
            + (f" ({why})" if why else ""))

    def recv_anysource(self, tensors: Sequence[Any], tag: int = 0) -> Any:
        self._unsupported("recv from any source (recv/irecv without src)",
                          "pass src=")

    def allgather_coalesced(self, *args: Any, **kwargs: Any) -> Any:
        self._unsupported("all_gather_coalesced",
                          "call all_gather per tensor")

    def allgather_into_tensor_coalesced(self, *args: Any,
                                        **kwargs: Any) -> Any:
        self._unsupported("all_gather_into_tensor (coalesced)")

    def reduce_scatter_tensor_coalesced(self, *args: Any,
                                        **kwargs: Any) -> Any:
        self._unsupported("reduce_scatter_tensor (coalesced)")

    def monitored_barrier(self, *args: Any, **kwargs: Any) -> Any:
        self._unsupported("monitored_barrier", "use barrier(); a missing "
                          "rank is named in its timeout error")


def _destroy(comm: Communicator) -> None:
    try:
        comm.destroy()
    except Exception:  # pragma: no cover - best effort at teardown
        pass


__all__ = ["BACKEND_NAME", "ProcessGroupScomm", "ScommWork", "register",
           "create_process_group", "listen_address", "rendezvous",
           "RENDEZVOUS_KEY", "ALLTOALL_TAG"]

register()
