"""A KV connector for disaggregated prefill/decode engines, over scomm.

It mirrors the roles and method names of vLLM's ``KVConnectorBase_V1``
(without importing vLLM): one object per role, ``SCHEDULER`` (in the
engine's scheduler) or ``WORKER`` (one per model worker / TP rank). The
scheduler side decides what to load and builds per-step metadata; the
worker side moves the blocks. Requests, block lists and outputs are duck
typed (see docs/python.md, "KV connector"): a request needs
``request_id``, ``prompt_token_ids`` (or ``num_prompt_tokens``) and
``kv_transfer_params`` (a dict).

Flow (pull, driven by the decode side):

1. Prefill scheduler: ``request_finished(req, block_ids)`` for a request
   whose params have ``do_remote_decode`` keeps its blocks (returns True)
   and returns the params the decode engine needs (producer address,
   remote request id and block ids, token count).
2. Decode scheduler: ``get_num_new_matched_tokens`` reports those tokens
   as loadable asynchronously, ``update_state_after_alloc`` records the
   local blocks, ``build_connector_meta`` hands the loads to the workers.
3. Decode worker: ``start_load_kv`` asks the prefill worker (a small
   control connection, JSON frames) to send request R's blocks into its
   blocks; the prefill worker submits one scomm KV plan per region; the
   decode worker waits layer by layer (``wait_for_layer_load``) or in
   the background, and reports through ``get_finished``.
4. Prefill worker: ``get_finished`` reports a request once its blocks
   were sent to every decode worker that needs them (or a send failed,
   or nobody asked within ``send_timeout_s``), so the engine can free
   them.

Prefill and decode may run at different TP degrees (``remote_tp_size``
in the transfer params vs ``tp_size``): decode rank q's load is split
into one sub-load per prefill rank that owns some of its heads
(``tp_head_slices``), each over that rank's own control connection and
KV endpoint; the "load" frame names the two head ranges, which the
prefill worker puts into its plans, and how many decode workers will
pull that prefill rank's part of the request (it keeps the blocks until
all of them ended).

Failures are never hidden: a load that fails (peer lost, timeout,
mismatch, refused) is reported by ``get_finished`` like a completed one,
its local block ids by ``get_block_ids_with_load_errors`` (all blocks of
the request: a block is valid only once every layer landed), and the
reason per request by ``get_load_failures``. Nothing is recomputed here.

Invariants:
 1. A load is complete only when every layer of every region landed,
    verified (scomm's per-layer waits), from every sub-load (prefill
    rank); else it failed, all its blocks. A layer counts as landed for
    wait_for_layer_load only once every sub-load delivered it.
 2. Each load ends exactly once, as success or failure; wait_for_layer_load
    never blocks past the load's deadline.
 3. The prefill side sends only blocks of requests it was told are
    finished (``reqs_to_send``), and reports each of them finished once,
    after the last decode worker that announced itself ("consumers" in
    the load frame) ended its sends (or on ``send_timeout_s``).
 5. A decode rank receives only its own heads: each sub-load moves
    exactly the overlap of its heads with one prefill rank's.
 4. Control frames are bounded (16 MiB) and authenticated by the shared
    token (compared in constant time) before anything else is read.
"""

from __future__ import annotations

import enum
import hmac
import json
import os
import secrets
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from . import (HeadRange, KVLayout, KVOptions, KVOrder, KVPlan, connect,
               listen)
from ..errors import (CommError, CommInvalidArgumentError, KVError,
                      KVMetadataMismatchError, KVNotImplementedError,
                      KVTransferFailedError, KVTransferTimeoutError)

__all__ = ["KVConnectorRole", "ScommConnectorConfig", "RecvSpec",
           "SendSpec", "ScommConnectorMetadata", "LoadFailure",
           "ScommKVConnector", "tp_head_slices", "rank_heads",
           "tp_consumers"]

_MAX_FRAME = 16 << 20
_HDR = struct.Struct(">I")


class KVConnectorRole(enum.Enum):
    """Where a connector object runs (vLLM's names)."""

    SCHEDULER = 0
    WORKER = 1


@dataclass
class ScommConnectorConfig:
    """Configuration shared by the scheduler and worker sides.

    ``kv_role``: "kv_producer" (prefill), "kv_consumer" (decode) or
    "kv_both". ``host``/``port``: where a producer worker accepts decode
    workers (port 0: any free port, read it from get_handshake_metadata;
    with a fixed port, TP rank r listens on port + r). ``token``: shared
    secret of the control connection (default: SCOMM_KV_TOKEN, else
    none). ``block_tokens``: the engine's block size (scheduler side, for
    prefix-cache hits). ``async_load``: loads complete between steps and
    are reported by get_finished (vLLM's async loading); False: the
    model's layers wait with wait_for_layer_load. ``num_kv_heads``: the
    model's total KV heads (default: this rank's cache heads x tp_size);
    needed only where TP exceeds it (replicated heads) and the two sides
    run at different TP degrees."""

    kv_role: str = "kv_both"
    engine_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    host: str = "127.0.0.1"
    port: int = 0
    token: Optional[str] = None
    tp_rank: int = 0
    tp_size: int = 1
    block_tokens: Optional[int] = None
    kv_order: KVOrder = KVOrder.HEAD_MAJOR
    load_timeout_s: float = 30.0
    send_timeout_s: float = 120.0
    async_load: bool = True
    priority: int = 0
    kv_options: Optional[KVOptions] = None
    num_kv_heads: Optional[int] = None

    def __post_init__(self) -> None:
        if self.kv_role not in ("kv_producer", "kv_consumer", "kv_both"):
            raise CommInvalidArgumentError(
                f"kv_role must be kv_producer, kv_consumer or kv_both (got "
                f"{self.kv_role!r})")
        if self.token is None:
            self.token = os.environ.get("SCOMM_KV_TOKEN", "")

    @property
    def is_producer(self) -> bool:
        return self.kv_role in ("kv_producer", "kv_both")

    @property
    def is_consumer(self) -> bool:
        return self.kv_role in ("kv_consumer", "kv_both")


@dataclass
class RecvSpec:
    """A load the scheduler hands to the workers."""

    request_id: str
    local_block_ids: List[int]
    remote_block_ids: List[int]
    num_tokens: int
    remote_engine_id: str
    remote_host: str
    remote_port: int
    remote_request_id: str
    remote_tp_size: int = 1
    first_token: int = 0
    remote_addrs: List[Tuple[str, int]] = field(default_factory=list)


@dataclass
class SendSpec:
    """A finished prefill request whose blocks wait for a decode worker."""

    request_id: str
    block_ids: List[int]
    num_tokens: int
    expires_at: float


@dataclass
class ScommConnectorMetadata:
    """Per-step metadata, scheduler -> workers (plain, picklable)."""

    reqs_to_recv: Dict[str, RecvSpec] = field(default_factory=dict)
    reqs_to_send: Dict[str, SendSpec] = field(default_factory=dict)


@dataclass
class LoadFailure:
    """Why a load failed, and the local blocks it leaves invalid."""

    request_id: str
    block_ids: List[int]
    error: BaseException

    @property
    def kv_code(self) -> str:
        return getattr(self.error, "kv_code", None) or "KV_TRANSFER_FAILED"


def _split_check(num_kv_heads: int, tp: int) -> None:
    if tp < 1 or num_kv_heads < 1 or (
            num_kv_heads % tp if num_kv_heads >= tp else tp % num_kv_heads):
        raise CommInvalidArgumentError(
            f"{num_kv_heads} KV heads do not split evenly over TP {tp}")


def rank_heads(num_kv_heads: int, tp: int, rank: int) -> Tuple[int, int]:
    """(first, count) of the model's KV heads that TP rank ``rank`` holds,
    as vLLM splits them: ``num_kv_heads / tp`` consecutive heads each, or,
    where tp exceeds num_kv_heads, one head replicated on ``tp /
    num_kv_heads`` consecutive ranks (rank r holds head r // replicas)."""
    _split_check(num_kv_heads, tp)
    if not 0 <= rank < tp:
        raise CommInvalidArgumentError(f"TP rank {rank} outside 0..{tp - 1}")
    if num_kv_heads >= tp:
        per = num_kv_heads // tp
        return rank * per, per
    return rank // (tp // num_kv_heads), 1


def tp_head_slices(num_kv_heads: int, src_tp: int, dst_tp: int,
                   dst_rank: int) -> List[Tuple[int, HeadRange, HeadRange]]:
    """Which prefill ranks hold decode rank ``dst_rank``'s KV heads.

    ``num_kv_heads`` is the model's total, split over each side's ranks
    as ``rank_heads`` says. Returns (source rank, head range in the source
    rank's cache, head range in this rank's cache) per source, by source
    rank. With equal degrees this is the one source of the same rank,
    whole caches.

    Replicated heads (num_kv_heads < src_tp): each head is held by
    ``src_tp / num_kv_heads`` prefill ranks; decode rank q takes head h
    from exactly one of them, replica ``q % replicas`` (rank ``h *
    replicas + q % replicas``), so the decode ranks' pulls spread over
    the replicas. On the decode side each replica rank receives its one
    head itself."""
    _split_check(num_kv_heads, src_tp)
    lo, n = rank_heads(num_kv_heads, dst_tp, dst_rank)
    out = []
    if num_kv_heads < src_tp:
        reps = src_tp // num_kv_heads
        for h in range(lo, lo + n):
            out.append((h * reps + dst_rank % reps, HeadRange(0, 1),
                        HeadRange(h - lo, 1)))
        return out
    per_src = num_kv_heads // src_tp
    for s in range(src_tp):
        s_lo, s_hi = s * per_src, (s + 1) * per_src
        a, b = max(lo, s_lo), min(lo + n, s_hi)
        if a < b:
            out.append((s, HeadRange(a - s_lo, b - a),
                        HeadRange(a - lo, b - a)))
    return out


def tp_consumers(num_kv_heads: int, src_tp: int, dst_tp: int,
                 src_rank: int) -> int:
    """How many decode ranks pull from prefill rank ``src_rank``."""
    return sum(1 for q in range(dst_tp) if any(
        s == src_rank for s, _, _ in
        tp_head_slices(num_kv_heads, src_tp, dst_tp, q)))


# -- control frames -----------------------------------------------------------

def _send_frame(sock: socket.socket, lock: threading.Lock,
                msg: Dict[str, Any]) -> None:
    data = json.dumps(msg, separators=(",", ":")).encode()
    with lock:
        sock.sendall(_HDR.pack(len(data)) + data)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("control connection closed by peer")
        buf += chunk
    return bytes(buf)


def _recv_frame(sock: socket.socket) -> Dict[str, Any]:
    (n,) = _HDR.unpack(_recv_exact(sock, _HDR.size))
    if n > _MAX_FRAME:
        raise ConnectionError(f"control frame of {n} bytes (limit "
                              f"{_MAX_FRAME})")
    msg = json.loads(_recv_exact(sock, n))
    if not isinstance(msg, dict) or "type" not in msg:
        raise ConnectionError("control frame without a type")
    return msg


def _region_desc(layout: KVLayout) -> Dict[str, Any]:
    return {"layers": layout.num_layers, "heads": layout.num_kv_heads,
            "head_dim": layout.head_dim, "block_tokens": layout.block_tokens,
            "dtype": int(layout.dtype), "order": int(layout.order)}


def _regions_compatible(mine: List[Dict[str, Any]],
                        theirs: List[Dict[str, Any]],
                        heads: Optional[Tuple[int, int]] = None
                        ) -> Optional[str]:
    """None if a plan per region can move between the two caches.
    ``heads``: (heads per region here, there) at different TP degrees;
    None: the same on both sides."""
    if len(mine) != len(theirs):
        return (f"{len(theirs)} cache regions there, {len(mine)} here")
    for i, (a, b) in enumerate(zip(mine, theirs)):
        for key in ("layers", "heads", "head_dim"):
            if key == "heads" and heads is not None:
                if (a[key], b[key]) != heads:
                    return (f"region {i}: {b[key]} KV heads there and "
                            f"{a[key]} here; the TP split needs "
                            f"{heads[1]} and {heads[0]}")
            elif a[key] != b[key]:
                return f"region {i}: {key} {b[key]} there, {a[key]} here"
    return None


# -- worker-side state --------------------------------------------------------

class _Load:
    """One request's load on a decode worker: one sub-load per prefill
    rank that holds some of this rank's heads (one with equal TP)."""

    def __init__(self, spec: RecvSpec, nlayers: int,
                 deadline: float) -> None:
        self.spec = spec
        self.deadline = deadline
        self.layer_done = [threading.Event() for _ in range(nlayers)]
        self.layer_left: List[int] = []
        self.subs: List["_Sub"] = []
        self.subs_left = 0
        self.block_ids: List[int] = []
        self.error: Optional[BaseException] = None
        self.ended = threading.Event()
        self.lock = threading.Lock()

    def set_subs(self, subs: List["_Sub"]) -> None:
        self.subs = subs
        self.subs_left = sum(1 for s in subs if not s.notice)
        self.layer_left = [self.subs_left] * len(self.layer_done)

    def layer_landed(self, layer: int) -> None:
        """One sub-load delivered this layer; set when all did."""
        with self.lock:
            self.layer_left[layer] -= 1
            if self.layer_left[layer] > 0:
                return
        self.layer_done[layer].set()

    def sub_done(self) -> bool:
        """One sub-load completed; True when it was the last."""
        with self.lock:
            self.subs_left -= 1
            return self.subs_left == 0

    def left_ms(self) -> int:
        return max(1, int((self.deadline - time.monotonic()) * 1000))


class _Sub:
    """The part of a load that one prefill rank sends: its head range
    (None: all heads, equal TP), where the heads land here, and how many
    decode ranks pull from that prefill rank (it keeps the blocks until
    all of them ended). A notice moves nothing: it tells a prefill rank
    that no decode rank needs its replica of the heads, so it can release
    the request at once (it never fails the load)."""

    def __init__(self, load: _Load, src_rank: int,
                 src_heads: Optional[HeadRange],
                 dst_heads: Optional[HeadRange], consumers: int,
                 notice: bool = False) -> None:
        self.load = load
        self.notice = notice
        self.src_rank = src_rank
        self.src_heads, self.dst_heads = src_heads, dst_heads
        self.consumers = consumers
        self.remote: Optional["_Remote"] = None
        self.xfer_ids: List[int] = []
        self.started = False

    def where(self) -> str:
        return (f"request {self.load.spec.request_id} (prefill rank "
                f"{self.src_rank})")


class _Remote:
    """A decode worker's connection to one prefill worker: control
    socket, KV endpoint, a sender thread and a reader thread."""

    def __init__(self, conn: "ScommKVConnector", host: str, port: int,
                 src_rank: int, heads: Optional[Tuple[int, int]]) -> None:
        self.conn = conn
        self.host, self.port = host, port
        self.src_rank = src_rank
        self.heads = heads
        self.queue: List[_Sub] = []
        self.cond = threading.Condition()
        self.sock: Optional[socket.socket] = None
        self.wlock = threading.Lock()
        self.ep = None
        self.dead: Optional[BaseException] = None
        self.by_rid: Dict[str, _Sub] = {}
        self.next_xfer = 1
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name=f"scomm-kv-remote-{port}")
        self.thread.start()

    def submit(self, sub: _Sub) -> None:
        with self.cond:
            if self.dead is not None:
                err = self.dead
            else:
                self.queue.append(sub)
                self.cond.notify()
                return
        if not sub.notice:
            self.conn._fail(sub.load, err)

    def _handshake(self) -> None:
        cfg = self.conn.config
        timeout = cfg.load_timeout_s
        sock = socket.create_connection((self.host, self.port),
                                        timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        _send_frame(sock, self.wlock, {
            "type": "hello", "token": cfg.token, "engine_id": cfg.engine_id,
            "tp_rank": cfg.tp_rank, "tp_size": cfg.tp_size,
            "num_kv_heads": self.conn._total_heads(),
            "regions": [_region_desc(r) for r in self.conn._layouts]})
        reply = _recv_frame(sock)
        if reply["type"] != "hello_ok":
            raise KVTransferFailedError(
                f"prefill worker {self.host}:{self.port} refused: "
                f"{reply.get('reason', reply)}")
        why = _regions_compatible([_region_desc(r)
                                   for r in self.conn._layouts],
                                  reply.get("regions", []), self.heads)
        if why:
            raise KVMetadataMismatchError(
                f"prefill worker {self.host}:{self.port} (rank "
                f"{self.src_rank}): caches differ: {why}")
        sock.settimeout(None)
        opts = KVOptions(**{**(cfg.kv_options.__dict__
                               if cfg.kv_options else {}),
                            "token": reply["kv_token"],
                            "timeout_ms": int(timeout * 1000)})
        self.ep = connect(self.host, int(reply["kv_port"]), opts)
        for region in self.conn._region_objects():
            self.ep.register(region[0], region[1])

    def _run(self) -> None:
        try:
            self._handshake()
        except BaseException as exc:  # noqa: BLE001
            self._die(_as_kv_error(exc, f"connecting to prefill worker "
                                   f"{self.host}:{self.port}"))
            return
        threading.Thread(target=self._reader, daemon=True,
                         name=f"scomm-kv-ctl-{self.port}").start()
        while True:
            with self.cond:
                while not self.queue and self.dead is None:
                    self.cond.wait()
                if self.dead is not None:
                    return
                sub = self.queue.pop(0)
            self._start(sub)

    def _start(self, sub: _Sub) -> None:
        load, spec = sub.load, sub.load.spec
        if sub.notice:
            try:
                _send_frame(self.sock, self.wlock, {
                    "type": "release",
                    "request_id": spec.remote_request_id})
            except OSError:
                pass        # that rank reports its own send timeout
            return
        if load.ended.is_set():
            # another sub-load failed meanwhile: the prefill rank counts
            # this decode worker as done with the request
            try:
                _send_frame(self.sock, self.wlock, {
                    "type": "cancel", "request_id": spec.remote_request_id,
                    "never_loaded": True, "consumers": sub.consumers})
            except OSError:
                pass
            return
        n = len(self.conn._layouts)
        with self.cond:
            base = self.next_xfer
            self.next_xfer += n
            sub.xfer_ids = list(range(base, base + n))
            self.by_rid[spec.remote_request_id] = sub
            sub.started = True
        msg = {"type": "load", "request_id": spec.remote_request_id,
               "xfer_ids": sub.xfer_ids, "dst_blocks": load.block_ids,
               "num_tokens": spec.num_tokens,
               "first_token": spec.first_token,
               "consumers": sub.consumers}
        if sub.src_heads is not None:
            msg["src_heads"] = [sub.src_heads.offset, sub.src_heads.count]
            msg["dst_heads"] = [sub.dst_heads.offset, sub.dst_heads.count]
        try:
            _send_frame(self.sock, self.wlock, msg)
        except OSError as exc:
            self.conn._fail(load, KVTransferFailedError(
                f"{sub.where()}: control connection to "
                f"{self.host}:{self.port} lost: {exc}"))
            return
        threading.Thread(target=self.conn._watch, args=(self, sub),
                         daemon=True).start()

    def _reader(self) -> None:
        try:
            while True:
                msg = _recv_frame(self.sock)
                if msg["type"] == "load_err":
                    with self.cond:
                        sub = self.by_rid.get(str(msg.get("request_id")))
                    if sub is not None:
                        self.conn._fail(sub.load, _error_from(
                            msg, f"prefill rank {self.src_rank}"))
        except BaseException as exc:  # noqa: BLE001
            self._die(KVTransferFailedError(
                f"control connection to prefill worker {self.host}:"
                f"{self.port} lost: {exc}"))

    def _die(self, err: BaseException) -> None:
        with self.cond:
            if self.dead is None:
                self.dead = err
            queued, self.queue = self.queue, []
            self.cond.notify_all()
        # Queued loads never reached the prefill side; loads already
        # asked for end through their own scomm waits (data may have
        # landed before the peer went away).
        for sub in queued:
            if not sub.notice:
                self.conn._fail(sub.load, err)

    def forget(self, sub: _Sub) -> None:
        with self.cond:
            if self.by_rid.get(sub.load.spec.remote_request_id) is sub:
                del self.by_rid[sub.load.spec.remote_request_id]

    def cancel(self, sub: _Sub) -> None:
        try:
            _send_frame(self.sock, self.wlock, {
                "type": "cancel",
                "request_id": sub.load.spec.remote_request_id})
        except (OSError, AttributeError):
            pass

    def close(self) -> None:
        self._die(KVTransferFailedError("connector shut down"))
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()
        if self.ep is not None:
            self.ep.close()


def _as_kv_error(exc: BaseException, where: str) -> BaseException:
    if isinstance(exc, KVError):
        return exc
    if isinstance(exc, socket.timeout):
        return KVTransferTimeoutError(f"{where}: {exc}")
    if isinstance(exc, CommError):
        return exc
    return KVTransferFailedError(f"{where}: {exc}")


_ERRORS = {"KV_METADATA_MISMATCH": KVMetadataMismatchError,
           "KV_TRANSFER_TIMEOUT": KVTransferTimeoutError,
           "KV_NOT_IMPLEMENTED": KVNotImplementedError}


def _error_from(msg: Dict[str, Any],
                where: str = "prefill side") -> BaseException:
    cls = _ERRORS.get(str(msg.get("kv_code")), KVTransferFailedError)
    return cls(f"{where}: {msg.get('reason', 'refused')}")


class _Peer:
    """A prefill worker's view of one decode worker."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.wlock = threading.Lock()
        self.ep = None
        self.xfers: Dict[str, List[Any]] = {}
        self.engine_id = ""
        self.tp_rank = -1


# -- the connector ------------------------------------------------------------

class ScommKVConnector:
    """vLLM-style KV connector over scomm's KV channel (one role)."""

    def __init__(self, config: ScommConnectorConfig,
                 role: KVConnectorRole) -> None:
        self.config = config
        self.role = KVConnectorRole(role)
        self._lock = threading.Lock()
        self._meta: Optional[ScommConnectorMetadata] = None
        # scheduler side
        self._pending_recv: Dict[str, RecvSpec] = {}
        self._pending_send: Dict[str, SendSpec] = {}
        self._handshake: Dict[int, Dict[str, Any]] = {}
        # worker side
        self._layer_names: List[str] = []
        self._layer_index: Dict[str, int] = {}
        self._layouts: List[KVLayout] = []
        self._region_layers: List[Tuple[int, int]] = []   # (first, count)
        self._region_mem: List[Tuple[Any, KVLayout]] = []
        self._keep: List[Any] = []
        self._loads: Dict[str, _Load] = {}
        self._step_loads: List[_Load] = []
        self._remotes: Dict[Tuple[str, int], _Remote] = {}
        self._done_recv: Set[str] = set()
        self._failed: Dict[str, LoadFailure] = {}
        self._invalid_blocks: Set[int] = set()
        self._sends: Dict[str, SendSpec] = {}
        self._send_waiting: Dict[str, List[Tuple[_Peer, Dict]]] = {}
        self._send_left: Dict[str, int] = {}    # handles running
        # rid -> [consumers announced, consumers ended, first error]
        self._send_cons: Dict[str, List[Any]] = {}
        self._send_released: Set[str] = set()
        self._done_send: Set[str] = set()
        self._send_errors: Dict[str, BaseException] = {}
        self._server: Optional[socket.socket] = None
        self._peers: List[_Peer] = []
        self._saved_layers: Set[str] = set()
        self._closed = False

    # ===================== scheduler side =====================

    @staticmethod
    def _rid(request: Any) -> str:
        return str(getattr(request, "request_id", None) or
                   request["request_id"])

    @staticmethod
    def _params(request: Any) -> Dict[str, Any]:
        params = getattr(request, "kv_transfer_params", None)
        if params is None and isinstance(request, dict):
            params = request.get("kv_transfer_params")
        return params or {}

    @staticmethod
    def _prompt_len(request: Any) -> int:
        ids = getattr(request, "prompt_token_ids", None)
        if ids is not None:
            return len(ids)
        for attr in ("num_prompt_tokens", "num_tokens"):
            if getattr(request, attr, None) is not None:
                return int(getattr(request, attr))
        raise CommInvalidArgumentError(
            "request has neither prompt_token_ids nor num_prompt_tokens")

    @staticmethod
    def _block_list(blocks: Any) -> List[int]:
        if hasattr(blocks, "get_block_ids"):
            blocks = blocks.get_block_ids()
        if blocks and isinstance(blocks, (list, tuple)) and \
                isinstance(blocks[0], (list, tuple)):
            blocks = blocks[0]
        return [int(b) for b in (blocks or [])]

    def get_num_new_matched_tokens(self, request: Any,
                                   num_computed_tokens: int
                                   ) -> Tuple[int, bool]:
        """Tokens this request can load from its prefill engine beyond
        num_computed_tokens, and whether the load is asynchronous.
        Side-effect free. A local prefix hit is skipped in whole blocks
        when both sides use the same block size; otherwise nothing is
        loaded (the engine computes)."""
        params = self._params(request)
        if not (self.config.is_consumer and params.get("do_remote_prefill")):
            return 0, False
        total = int(params.get("num_tokens", 0))
        if num_computed_tokens >= total:
            return 0, False
        if num_computed_tokens and not self._skippable(
                num_computed_tokens, params):
            return 0, False
        return total - num_computed_tokens, self.config.async_load

    def _skippable(self, computed: int, params: Dict[str, Any]) -> bool:
        mine = self.config.block_tokens
        theirs = params.get("remote_block_tokens")
        return bool(mine) and mine == theirs and computed % mine == 0

    def update_state_after_alloc(self, request: Any, blocks: Any,
                                 num_external_tokens: int) -> None:
        """Record the local blocks a load will fill (num_external_tokens
        > 0); the load goes to the workers with the next metadata."""
        params = self._params(request)
        if num_external_tokens <= 0 or not params.get("do_remote_prefill"):
            return
        total = int(params["num_tokens"])
        spec = RecvSpec(
            request_id=self._rid(request),
            local_block_ids=self._block_list(blocks),
            remote_block_ids=[int(b) for b in params["remote_block_ids"]],
            num_tokens=total,
            remote_engine_id=str(params.get("remote_engine_id", "")),
            remote_host=str(params["remote_host"]),
            remote_port=int(params["remote_port"]),
            remote_request_id=str(params["remote_request_id"]),
            remote_tp_size=int(params.get("remote_tp_size", 1)),
            first_token=total - int(num_external_tokens),
            remote_addrs=[(str(h), int(p)) for h, p in
                          params.get("remote_addrs", [])])
        params["do_remote_prefill"] = False   # load once
        with self._lock:
            self._pending_recv[spec.request_id] = spec

    def build_connector_meta(self, scheduler_output: Any = None
                             ) -> ScommConnectorMetadata:
        """This step's loads and releases; resets the pending lists."""
        with self._lock:
            meta = ScommConnectorMetadata(self._pending_recv,
                                          self._pending_send)
            self._pending_recv, self._pending_send = {}, {}
        return meta

    def request_finished(self, request: Any, block_ids: Sequence[int]
                         ) -> Tuple[bool, Optional[Dict[str, Any]]]:
        """A prefill request whose params ask for remote decode keeps its
        blocks (True) until get_finished reports it sent, and returns the
        params the decode engine needs."""
        params = self._params(request)
        if not (self.config.is_producer and params.get("do_remote_decode")):
            return False, None
        rid = self._rid(request)
        blocks = [int(b) for b in block_ids]
        n = int(params.get("num_tokens") or self._prompt_len(request))
        addrs = self._producer_addresses()
        host, port = addrs[0]
        with self._lock:
            self._pending_send[rid] = SendSpec(
                rid, blocks, n, time.monotonic() + self.config.send_timeout_s)
        return True, {
            "do_remote_prefill": True, "do_remote_decode": False,
            "remote_engine_id": self.config.engine_id,
            "remote_host": host, "remote_port": port,
            "remote_addrs": [list(a) for a in addrs],
            "remote_request_id": rid, "remote_block_ids": blocks,
            "num_tokens": n, "remote_block_tokens": self.config.block_tokens,
            "remote_tp_size": self.config.tp_size}

    def _producer_addresses(self) -> List[Tuple[str, int]]:
        """Where each TP rank's worker accepts decode workers."""
        if self._handshake:
            return [(str(m["host"]), int(m["port"])) for _, m in
                    sorted(self._handshake.items())]
        if not self.config.port:
            raise CommInvalidArgumentError(
                "producer address unknown: configure port, or pass the "
                "workers' get_handshake_metadata() to "
                "set_xfer_handshake_metadata()")
        return [(self.config.host, int(self.config.port) + r)
                for r in range(self.config.tp_size)]

    def set_xfer_handshake_metadata(self, metadata: Dict[int, Any]) -> None:
        """Scheduler side: the workers' addresses (tp_rank -> metadata)."""
        self._handshake = {int(k): dict(v) for k, v in metadata.items()}

    def update_connector_output(self, connector_output: Any) -> None:
        """Scheduler side: nothing to keep (the engine frees and retries
        from the workers' reports)."""
        return None

    # ===================== worker side: registration =====================

    def bind_connector_metadata(self, connector_metadata:
                                ScommConnectorMetadata) -> None:
        self._meta = connector_metadata
        if self.config.is_producer and connector_metadata.reqs_to_send:
            for spec in connector_metadata.reqs_to_send.values():
                self._send_ready(spec)

    def clear_connector_metadata(self) -> None:
        self._meta = None

    def has_connector_metadata(self) -> bool:
        return self._meta is not None

    def register_kv_caches(self, kv_caches: Dict[str, Any]) -> None:
        """Per-layer caches, in model order: each [blocks, 2, heads,
        tokens, dim] (head-major) or [blocks, tokens, 2, heads, dim]
        (token-major, config.kv_order). Each layer is one scomm region
        (one transfer per layer and request); an engine with one tensor
        for all layers should call register_cross_layers_kv_cache. Both
        sides must register the same way."""
        for name, t in kv_caches.items():
            layout = KVLayout.from_array(t, self.config.kv_order)
            self._add_region(layout, t, [t])
        self._set_layers([str(n) for n in kv_caches])

    def register_cross_layers_kv_cache(self, kv_cache: Any,
                                       attn_backend: Any = None) -> None:
        """One tensor for all layers: [layers, blocks, ...block shape]."""
        layout = KVLayout.from_array(kv_cache, self.config.kv_order)
        self._add_region(layout, kv_cache, [kv_cache])
        self._set_layers([str(i) for i in range(layout.num_layers)])

    def _add_region(self, layout: KVLayout, mem: Any, keep: List) -> None:
        first = sum(n for _, n in self._region_layers)
        self._region_layers.append((first, layout.num_layers))
        self._layouts.append(layout)
        self._region_mem.append((mem, layout))
        self._keep.extend(keep)

    def _set_layers(self, names: List[str]) -> None:
        self._layer_names.extend(names)
        self._layer_index = {n: i for i, n in enumerate(self._layer_names)}
        if self.config.is_producer and self._server is None:
            self._serve()

    def _region_objects(self) -> List[Tuple[Any, KVLayout]]:
        return list(self._region_mem)

    def get_handshake_metadata(self) -> Optional[Dict[str, Any]]:
        """Producer worker: where decode workers reach it."""
        if self._server is None:
            return None
        host, port = self._server.getsockname()[:2]
        return {"engine_id": self.config.engine_id, "host": host,
                "port": port, "tp_rank": self.config.tp_rank}

    # ===================== worker side: decode (loads) =====================

    def start_load_kv(self, forward_context: Any = None,
                      **kwargs: Any) -> None:
        """Start this step's loads (each in the background): one sub-load
        per prefill rank that holds some of this rank's heads."""
        meta = self._meta
        self._step_loads = []
        if meta is None or not meta.reqs_to_recv:
            return
        if not self._layouts:
            raise CommInvalidArgumentError(
                "start_load_kv before register_kv_caches")
        for spec in meta.reqs_to_recv.values():
            load = _Load(spec, len(self._layer_names),
                         time.monotonic() + self.config.load_timeout_s)
            with self._lock:
                self._loads[spec.request_id] = load
            self._step_loads.append(load)
            bt = self._layouts[0].block_tokens
            need = -(-spec.num_tokens // bt)
            load.block_ids = list(spec.local_block_ids[:need])
            try:
                self._load_problem(spec, need)
                subs = self._sub_loads(load)
            except CommError as exc:
                self._fail(load, exc)
                continue
            load.block_ids = load.block_ids[spec.first_token // bt:]
            load.set_subs(subs)
            for sub in subs:
                sub.remote.submit(sub)

    def _total_heads(self) -> int:
        """The model's KV heads (config, else this rank's x tp_size)."""
        if self.config.num_kv_heads:
            return int(self.config.num_kv_heads)
        return self._layouts[0].num_kv_heads * self.config.tp_size

    def _load_problem(self, spec: RecvSpec, need: int) -> None:
        if len(spec.local_block_ids) < need:
            raise CommInvalidArgumentError(
                f"request {spec.request_id}: {len(spec.local_block_ids)} "
                f"local blocks for {spec.num_tokens} tokens (need {need})")
        bt = self._layouts[0].block_tokens
        if spec.first_token % bt:
            raise CommInvalidArgumentError(
                f"request {spec.request_id}: local prefix of "
                f"{spec.first_token} tokens is not whole blocks of {bt}")

    def _sub_loads(self, load: _Load) -> List[_Sub]:
        """The sub-loads of a load and their remotes (raises CommError:
        heads that do not split, an address missing)."""
        spec, cfg = load.spec, self.config
        if spec.remote_tp_size == cfg.tp_size:
            # same split on both sides: rank r's whole caches from rank r
            sub = _Sub(load, cfg.tp_rank, None, None, 1)
            sub.remote = self._remote(spec, cfg.tp_rank, None)
            return [sub]
        total, src_tp = self._total_heads(), spec.remote_tp_size
        where = (f"request {spec.request_id}: prefill TP {src_tp} -> "
                 f"decode TP {cfg.tp_size}")
        try:
            slices = tp_head_slices(total, src_tp, cfg.tp_size, cfg.tp_rank)
            mine = rank_heads(total, cfg.tp_size, cfg.tp_rank)[1]
            theirs = rank_heads(total, src_tp, 0)[1]
        except CommInvalidArgumentError as exc:
            raise CommInvalidArgumentError(f"{where}: {exc}") from None
        for i, lay in enumerate(self._layouts):
            if lay.num_kv_heads != mine:
                raise KVMetadataMismatchError(
                    f"{where}: region {i} has {lay.num_kv_heads} KV heads, "
                    f"this rank's share of {total} is {mine} (set "
                    "num_kv_heads in the config)")
        subs = []
        for s, src, dst in slices:
            sub = _Sub(load, s, src, dst,
                       tp_consumers(total, src_tp, cfg.tp_size, s))
            sub.remote = self._remote(spec, s, (mine, theirs))
            subs.append(sub)
        # replicated heads: prefill ranks nobody pulls from hear it from
        # decode rank (their rank mod decode TP)
        for s in range(cfg.tp_rank, src_tp, cfg.tp_size):
            if tp_consumers(total, src_tp, cfg.tp_size, s) == 0:
                sub = _Sub(load, s, None, None, 0, notice=True)
                sub.remote = self._remote(spec, s, (mine, theirs))
                subs.append(sub)
        return subs

    def _remote(self, spec: RecvSpec, src_rank: int,
                heads: Optional[Tuple[int, int]]) -> _Remote:
        """The connection to prefill rank src_rank of spec's engine
        (address from remote_addrs; remote_host/port for a single
        prefill rank, or when the params list no addresses)."""
        if len(spec.remote_addrs) > src_rank:
            host, port = spec.remote_addrs[src_rank]
        elif spec.remote_tp_size == 1 or (
                src_rank == self.config.tp_rank and
                spec.remote_tp_size == self.config.tp_size):
            host, port = spec.remote_host, spec.remote_port
        else:
            raise KVMetadataMismatchError(
                f"request {spec.request_id}: no address for prefill rank "
                f"{src_rank} (remote_addrs lists "
                f"{len(spec.remote_addrs)})")
        key = (host, port)
        with self._lock:
            remote = self._remotes.get(key)
            if remote is None or remote.dead is not None:
                remote = _Remote(self, host, port, src_rank, heads)
                self._remotes[key] = remote
            return remote

    @staticmethod
    def _wait(load: _Load, fn: Any, *args: Any) -> bool:
        """fn(*args, ms) in slices of at most 200 ms until it returns
        (True), the load ended elsewhere (False) or its deadline passed
        (KVTransferTimeoutError)."""
        while True:
            if load.ended.is_set():
                return False
            left = load.left_ms()
            try:
                fn(*args, min(left, 200))
                return True
            except KVTransferTimeoutError:
                if left <= 200 or time.monotonic() >= load.deadline:
                    raise

    def _watch(self, remote: _Remote, sub: _Sub) -> None:
        """Wait for every layer of every region of one sub-load, in
        order (background)."""
        load = sub.load
        try:
            for r, xfer in enumerate(sub.xfer_ids):
                first, count = self._region_layers[r]
                for local in range(count):
                    if not self._wait(load, remote.ep.wait_layer, xfer,
                                      local):
                        remote.forget(sub)
                        return
                    load.layer_landed(first + local)
            for xfer in sub.xfer_ids:
                if not self._wait(load, remote.ep.wait_xfer, xfer):
                    remote.forget(sub)
                    return
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, KVTransferTimeoutError):
                remote.cancel(sub)
            self._fail(load, _as_kv_error(exc, sub.where()))
            remote.forget(sub)
            return
        remote.forget(sub)
        if load.sub_done():
            self._succeed(load)

    def _succeed(self, load: _Load) -> None:
        with load.lock:
            if load.ended.is_set():
                return
            load.ended.set()
        with self._lock:
            self._done_recv.add(load.spec.request_id)

    def _fail(self, load: _Load, err: BaseException) -> None:
        """End a load as failed (once): all its blocks are invalid; the
        other prefill ranks still sending into them are told to stop."""
        with load.lock:
            if load.ended.is_set():
                return
            load.error = err
            load.ended.set()
        for ev in load.layer_done:
            ev.set()
        for sub in load.subs:
            if sub.started and not sub.notice and sub.remote is not None:
                sub.remote.cancel(sub)
        blocks = list(load.block_ids) or \
            list(load.spec.local_block_ids)
        with self._lock:
            self._failed[load.spec.request_id] = LoadFailure(
                load.spec.request_id, blocks, err)
            self._invalid_blocks.update(blocks)
            self._done_recv.add(load.spec.request_id)

    def wait_for_layer_load(self, layer_name: str) -> None:
        """Synchronous loads (async_load=False): block until this layer of
        every load of the step landed or the load failed (a failure is
        reported, not raised). Asynchronous loads: returns at once."""
        if self.config.async_load or not self._step_loads:
            return
        idx = self._layer_index.get(layer_name)
        if idx is None:
            raise CommInvalidArgumentError(
                f"wait_for_layer_load: unknown layer {layer_name!r}")
        for load in self._step_loads:
            if not load.layer_done[idx].wait(load.left_ms() / 1000.0):
                self._fail(load, KVTransferTimeoutError(
                    f"request {load.spec.request_id}: layer {layer_name} "
                    f"did not land within {self.config.load_timeout_s} s"))

    def get_block_ids_with_load_errors(self) -> Set[int]:
        """Local block ids of failed loads not reported yet (no later
        than get_finished reports their requests)."""
        with self._lock:
            out, self._invalid_blocks = self._invalid_blocks, set()
        return out

    def get_load_failures(self) -> Dict[str, LoadFailure]:
        """Every failed load so far: request id -> blocks and error."""
        with self._lock:
            return dict(self._failed)

    # ===================== worker side: prefill (sends) =====================

    def save_kv_layer(self, layer_name: str, kv_layer: Any = None,
                      attn_metadata: Any = None, **kwargs: Any) -> None:
        """Nothing is copied during the forward pass: decode workers pull
        a finished request's blocks, which the engine keeps until
        get_finished reports them sent. Checks the layer is registered."""
        if layer_name not in self._layer_index:
            raise CommInvalidArgumentError(
                f"save_kv_layer: unknown layer {layer_name!r}")
        self._saved_layers.add(layer_name)

    def wait_for_save(self) -> None:
        """Nothing to wait for (see save_kv_layer)."""
        self._saved_layers.clear()

    def _serve(self) -> None:
        cfg = self.config
        port = cfg.port + cfg.tp_rank if cfg.port else 0
        srv = socket.create_server((cfg.host, port), backlog=64)
        self._server = srv
        threading.Thread(target=self._accept_loop, daemon=True,
                         name="scomm-kv-server").start()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                sock, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve_peer, args=(sock,),
                             daemon=True).start()

    def _serve_peer(self, sock: socket.socket) -> None:
        peer = _Peer(sock)
        cfg = self.config
        try:
            sock.settimeout(cfg.load_timeout_s)
            hello = _recv_frame(sock)
            if hello.get("type") != "hello" or not hmac.compare_digest(
                    str(hello.get("token", "")).encode(),
                    str(cfg.token or "").encode()):
                _send_frame(sock, peer.wlock, {
                    "type": "error", "reason": "bad hello or token"})
                sock.close()
                return
            peer.engine_id = str(hello.get("engine_id", ""))
            peer.tp_rank = int(hello.get("tp_rank", -1))
            mine = [_region_desc(r) for r in self._layouts]
            their_tp = int(hello.get("tp_size", cfg.tp_size))
            heads, why = None, None
            if their_tp != cfg.tp_size:
                total = int(hello.get("num_kv_heads", 0))
                try:
                    heads = (rank_heads(total, cfg.tp_size, 0)[1],
                             rank_heads(total, their_tp, 0)[1])
                except CommInvalidArgumentError as exc:
                    why = f"prefill TP {cfg.tp_size}: {exc}"
            why = why or _regions_compatible(mine, hello.get("regions", []),
                                             heads)
            token = secrets.token_hex(16)
            opts = KVOptions(**{**(cfg.kv_options.__dict__
                                   if cfg.kv_options else {}),
                                "token": token,
                                "timeout_ms": int(cfg.load_timeout_s * 1000)})
            lst = listen(cfg.host, 0, opts)
            try:
                _send_frame(sock, peer.wlock, {
                    "type": "hello_ok", "kv_port": lst.port,
                    "kv_token": token, "regions": mine})
                if why:
                    raise KVMetadataMismatchError(why)
                peer.ep = lst.accept(int(cfg.load_timeout_s * 1000))
            finally:
                lst.close()
            for mem, layout in self._region_objects():
                peer.ep.register(mem, layout, writable=False)
            sock.settimeout(None)
            with self._lock:
                self._peers.append(peer)
            while True:
                msg = _recv_frame(sock)
                if msg["type"] == "load":
                    self._on_load(peer, msg)
                elif msg["type"] == "cancel":
                    self._on_cancel(peer, msg)
                elif msg["type"] == "release":
                    # no decode rank needs this rank's replica of the
                    # request's heads
                    self._consumer_end(str(msg.get("request_id")), 1, None)
        except BaseException:  # noqa: BLE001 - the decode side sees EOF
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def _on_load(self, peer: _Peer, msg: Dict[str, Any]) -> None:
        rid = str(msg.get("request_id"))
        with self._lock:
            spec = self._sends.get(rid)
            if spec is None:
                if rid in self._send_released:
                    reason = f"request {rid} was already released"
                else:
                    self._send_waiting.setdefault(rid, []).append(
                        (peer, msg))
                    return
            else:
                reason = None
        if reason is not None:
            self._refuse(peer, rid, reason)
            return
        self._submit(peer, spec, msg)

    def _refuse(self, peer: _Peer, rid: str, reason: str,
                kv_code: str = "KV_TRANSFER_FAILED") -> None:
        try:
            _send_frame(peer.sock, peer.wlock, {
                "type": "load_err", "request_id": rid, "reason": reason,
                "kv_code": kv_code})
        except OSError:
            pass

    @staticmethod
    def _heads(msg: Dict[str, Any], key: str) -> Optional[HeadRange]:
        val = msg.get(key)
        if val is None:
            return None
        if not (isinstance(val, list) and len(val) == 2):
            raise KVMetadataMismatchError(
                f"{key} {val!r} is not [offset, count]")
        return HeadRange(int(val[0]), int(val[1]))

    @staticmethod
    def _consumers(msg: Dict[str, Any]) -> int:
        n = int(msg.get("consumers", 1))
        if not 1 <= n <= 65536:
            raise KVMetadataMismatchError(f"{n} consumers")
        return n

    def _submit(self, peer: _Peer, spec: SendSpec,
                msg: Dict[str, Any]) -> None:
        rid = spec.request_id
        handles = []
        consumers = 1
        try:
            xfer_ids = [int(x) for x in msg.get("xfer_ids", [])]
            first = int(msg.get("first_token", 0))
            n = int(msg.get("num_tokens", spec.num_tokens))
            dst = [int(b) for b in msg.get("dst_blocks", [])]
            consumers = self._consumers(msg)
            src_heads = self._heads(msg, "src_heads")
            dst_heads = self._heads(msg, "dst_heads")
            if len(xfer_ids) != len(self._layouts):
                raise KVMetadataMismatchError(
                    f"{len(xfer_ids)} transfer ids for "
                    f"{len(self._layouts)} regions")
            if n > spec.num_tokens:
                raise KVMetadataMismatchError(
                    f"asked for {n} tokens, request {rid} has "
                    f"{spec.num_tokens}")
            bt = self._layouts[0].block_tokens
            if first % bt:
                raise KVMetadataMismatchError(
                    f"first token {first} is not on a block boundary "
                    f"({bt}) here")
            src = spec.block_ids[first // bt:-(-n // bt)]
            for r, xfer in enumerate(xfer_ids):
                plan = KVPlan(xfer, src, dst, n - first, src_region=r,
                              dst_region=r, src_heads=src_heads,
                              dst_heads=dst_heads)
                handles.append(peer.ep.submit(plan, self.config.priority))
        except BaseException as exc:  # noqa: BLE001
            for h in handles:
                h.free()
            self._refuse(peer, rid, str(exc),
                         getattr(exc, "kv_code", None) or
                         "KV_TRANSFER_FAILED")
            self._consumer_end(rid, consumers, exc)
            return
        with self._lock:
            peer.xfers[rid] = list(handles)     # the watchers edit it
            self._send_left[rid] = self._send_left.get(rid, 0) + \
                len(handles)
            cons = self._send_cons.setdefault(rid, [1, 0, None])
            cons[0] = max(cons[0], consumers)
        for h in handles:
            threading.Thread(target=self._watch_send,
                             args=(peer, rid, h), daemon=True).start()

    def _watch_send(self, peer: _Peer, rid: str, handle: Any) -> None:
        err = None
        try:
            handle.wait(int(self.config.send_timeout_s * 1000))
        except BaseException as exc:  # noqa: BLE001
            err = exc
        with self._lock:
            hs = peer.xfers.get(rid)
            if hs is None or not any(h is handle for h in hs):
                return                  # cancelled: counted there
            hs[:] = [h for h in hs if h is not handle]
            self._send_left[rid] = self._send_left.get(rid, 1) - 1
            cons = self._send_cons.setdefault(rid, [1, 0, None])
            if err is not None and cons[2] is None:
                cons[2] = err
            if hs:
                last = False            # this consumer has more regions
            else:
                del peer.xfers[rid]
                last = True
        handle.free()
        if last:
            self._consumer_end(rid, None, None)

    def _consumer_end(self, rid: str, consumers: Optional[int],
                      err: Optional[BaseException]) -> None:
        """One decode worker is done with request rid (its sends ended,
        failed, were refused or cancelled); the blocks are released after
        the last of the announced consumers."""
        with self._lock:
            if rid in self._send_released:
                return
            cons = self._send_cons.setdefault(rid, [1, 0, None])
            if consumers:
                cons[0] = max(cons[0], consumers)
            cons[1] += 1
            if err is not None and cons[2] is None:
                cons[2] = err
            done = (cons[1] >= cons[0] and rid in self._sends and
                    not self._send_left.get(rid, 0))
        if done:
            self._send_end(rid, cons[2])

    def _on_cancel(self, peer: _Peer, msg: Dict[str, Any]) -> None:
        rid = str(msg.get("request_id"))
        why = KVTransferFailedError(
            f"request {rid}: decode worker {peer.engine_id} rank "
            f"{peer.tp_rank} cancelled its load")
        with self._lock:
            handles = peer.xfers.pop(rid, [])
            if handles:
                self._send_left[rid] = self._send_left.get(rid, 0) - \
                    len(handles)
            waiting = self._send_waiting.get(rid, [])
            gone = [m for p, m in waiting if p is peer]
            waiting[:] = [(p, m) for p, m in waiting if p is not peer]
        for h in handles:
            h.free()
        if msg.get("never_loaded"):
            gone.append(msg)
        if handles:
            self._consumer_end(rid, None, why)
        for m in gone:
            try:
                n = self._consumers(m)
            except KVMetadataMismatchError:
                n = 1
            self._consumer_end(rid, n, why)

    def _send_ready(self, spec: SendSpec) -> None:
        with self._lock:
            self._sends[spec.request_id] = spec
            waiting = self._send_waiting.pop(spec.request_id, [])
        for peer, msg in waiting:
            self._submit(peer, spec, msg)
        with self._lock:
            cons = self._send_cons.get(spec.request_id)
            done = (cons is not None and cons[1] >= cons[0] and
                    spec.request_id in self._sends and
                    not self._send_left.get(spec.request_id, 0))
        if done:
            self._send_end(spec.request_id, cons[2])

    def _send_end(self, rid: str, err: Optional[BaseException]) -> None:
        with self._lock:
            if self._sends.pop(rid, None) is None:
                return
            self._send_released.add(rid)
            self._send_left.pop(rid, None)
            self._send_cons.pop(rid, None)
            if err is not None:
                self._send_errors[rid] = err
            self._done_send.add(rid)

    def _expire_sends(self) -> None:
        now = time.monotonic()
        with self._lock:
            old = [rid for rid, s in self._sends.items()
                   if s.expires_at <= now and
                   not self._send_left.get(rid, 0)]
        for rid in old:
            self._send_end(rid, KVTransferTimeoutError(
                f"request {rid}: not every decode worker asked for its "
                f"blocks within {self.config.send_timeout_s} s"))

    def get_send_errors(self) -> Dict[str, BaseException]:
        """Producer: requests whose blocks were released without a
        successful send, with the reason."""
        with self._lock:
            return dict(self._send_errors)

    # ===================== worker side: both =====================

    def get_finished(self, finished_req_ids: Iterable[str] = ()
                     ) -> Tuple[Optional[Set[str]], Optional[Set[str]]]:
        """(requests whose blocks were sent or released, requests whose
        load ended): each reported once. A failed load is in the second
        set too; its blocks come from get_block_ids_with_load_errors."""
        self._expire_sends()
        with self._lock:
            sent, self._done_send = self._done_send, set()
            recv, self._done_recv = self._done_recv, set()
            for rid in recv:
                self._loads.pop(rid, None)
        return (sent or None), (recv or None)

    def get_transfer_stats(self) -> List[Dict[str, Any]]:
        """The counters of this worker's KV endpoints, one dict each:
        ``direction`` "send" (a decode worker this prefill worker serves:
        ``peer_engine``, ``peer_tp_rank``) or "recv" (a prefill worker
        this decode worker loads from: ``peer`` "host:port",
        ``peer_tp_rank``), and ``stats`` (KVStats). A sender's
        ``bytes_raw`` counts exactly the heads it moved."""
        out = []
        with self._lock:
            peers = list(self._peers)
            remotes = list(self._remotes.values())
        for peer in peers:
            if peer.ep is not None and not peer.ep.closed:
                out.append({"direction": "send", "peer_engine":
                            peer.engine_id, "peer_tp_rank": peer.tp_rank,
                            "stats": peer.ep.stats()})
        for rem in remotes:
            if rem.ep is not None and not rem.ep.closed:
                out.append({"direction": "recv",
                            "peer": f"{rem.host}:{rem.port}",
                            "peer_tp_rank": rem.src_rank,
                            "stats": rem.ep.stats()})
        return out

    def shutdown(self) -> None:
        """Close the server, peers, remotes and endpoints."""
        self._closed = True
        if self._server is not None:
            try:
                self._server.close()
            except OSError:
                pass
        with self._lock:
            remotes = list(self._remotes.values())
            peers = list(self._peers)
            self._remotes.clear()
            self._peers.clear()
        for remote in remotes:
            remote.close()
        for peer in peers:
            try:
                peer.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            if peer.ep is not None:
                peer.ep.close()
