"""Locate libscomm and declare its C functions for ctypes.

This module is the only place that knows how libscomm is found and what its
functions look like. Every binding is one row of ``_PROTOTYPES``: a symbol
missing from the loaded library (an older build) is skipped, and
``has(name)`` tells callers whether they may use it. Adding a binding for a
new C function is one line there.

Search order for the library (``search()``), first hit wins:

1. ``SCOMM_LIBRARY`` (a path to the shared object), if set;
2. a copy inside this package (``sagellm_comm/libscomm.so*``, as a wheel
   built with one ships it);
3. the repository's build tree (``build/libscomm.so``), only when this
   package is imported from a source checkout;
4. the dynamic loader's own search (``ctypes.util.find_library``: the
   ldconfig cache, i.e. /etc/ld.so.conf.d after ``ldconfig``, and
   LD_LIBRARY_PATH);
5. pkg-config's ``libdir`` of ``scomm`` (scomm.pc, installed by CMake);
6. this Python environment's prefix (``sys.prefix``/lib: a venv or conda
   environment that libscomm was installed into with
   ``cmake --install build --prefix $VIRTUAL_ENV``);
7. the standard directories (/usr/local/lib, the multiarch and lib64
   forms, /usr/lib), which also finds ``sudo cmake --install build``
   before anyone ran ldconfig.

When none loads, CommLibraryError lists every place looked and why each
failed. ``Library.path`` is the file actually loaded (dladdr).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess
import sys
import sysconfig
import threading
from ctypes import (POINTER, c_char_p, c_double, c_int, c_int32, c_int64,
                    c_size_t, c_uint64, c_void_p)
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .errors import CommLibraryError, raise_for_status

_HERE = Path(__file__).resolve().parent


class CollRecord(ctypes.Structure):
    """``scomm_coll_record_t``: the algorithm a collective ran, and why."""

    _fields_ = [("algo", ctypes.c_char * 32),
                ("rule_id", ctypes.c_char * 48),
                ("reason", ctypes.c_char * 160)]


class InitOpts(ctypes.Structure):
    """``scomm_init_opts_t``: options of ``scomm_init``."""

    _fields_ = [("field_mask", c_uint64),
                ("rank", c_int32),
                ("world_size", c_int32),
                ("master_addr", c_char_p),
                ("master_port", c_int32),
                ("timeout_ms", c_int64),
                ("backend", c_char_p),
                ("job_token", c_char_p)]


class OverlapStats(ctypes.Structure):
    """``scomm_overlap_stats_t``: counters of a communicator's engine."""

    _fields_ = [(name, c_uint64) for name in (
        "ops_submitted", "ops_completed", "ops_failed", "ops_fused",
        "fused_batches", "bytes_submitted", "bytes_fused", "groups",
        "blocking_routed", "worker_sleeps", "queue_max", "fusion_bytes")] + [
        ("progress_thread", c_int32), ("pad", c_int32)]


class BackendInfo(ctypes.Structure):
    """``scomm_backend_info_t``: one vendor library as scomm finds it."""

    _fields_ = [("name", ctypes.c_char * 16),
                ("library", ctypes.c_char * 256),
                ("version", ctypes.c_char * 32),
                ("found", c_int32),
                ("detail", ctypes.c_char * 320),
                ("runtime", ctypes.c_char * 320)]


class KVLayoutC(ctypes.Structure):
    """``scomm_kv_layout_t``: shape of a registered paged KV cache."""

    _fields_ = [("num_layers", c_int32), ("num_kv_heads", c_int32),
                ("head_dim", c_int32), ("block_tokens", c_int32),
                ("num_blocks", c_int32), ("dtype", c_int),
                ("order", c_int32)]


class KVOptsC(ctypes.Structure):
    """``scomm_kv_opts_t``: options of a KV endpoint (field_mask)."""

    _fields_ = [("field_mask", c_uint64), ("preset", c_char_p),
                ("preset_file", c_char_p), ("chunk_size", c_uint64),
                ("streams", c_int32), ("prefetch_depth", c_int32),
                ("zero_copy", c_int32), ("compression", c_int32),
                ("compression_level", c_int32), ("wire_dtype", c_int32),
                ("timeout_ms", c_int64), ("token", c_char_p),
                ("reconnect_ms", c_int64), ("transport", c_int32)]


class KVPlanC(ctypes.Structure):
    """``scomm_kv_plan_t``: one transfer of a sequence's blocks."""

    _fields_ = [("xfer_id", c_uint64), ("src_region", c_int32),
                ("dst_region", c_int32), ("first_layer", c_int32),
                ("num_layers", c_int32), ("num_tokens", c_uint64),
                ("src_blocks", POINTER(c_int32)),
                ("num_src_blocks", ctypes.c_uint32),
                ("dst_blocks", POINTER(c_int32)),
                ("num_dst_blocks", ctypes.c_uint32),
                ("src_head_off", c_int32), ("src_head_cnt", c_int32),
                ("dst_head_off", c_int32), ("dst_head_cnt", c_int32)]


class KVStatsC(ctypes.Structure):
    """``scomm_kv_stats_t``: counters of a KV endpoint."""

    _fields_ = [(name, c_uint64) for name in (
        "chunks_sent", "chunks_resent", "chunks_recv", "crc_errors",
        "bytes_raw", "bytes_wire", "bytes_zero_copy", "streams_lost")] + [
        ("streams", c_int32), ("same_host", c_int32)]


KV_FIELD_PRESET = 1 << 0
KV_FIELD_CHUNK_SIZE = 1 << 1
KV_FIELD_STREAMS = 1 << 2
KV_FIELD_PREFETCH_DEPTH = 1 << 3
KV_FIELD_ZERO_COPY = 1 << 4
KV_FIELD_COMPRESSION = 1 << 5
KV_FIELD_WIRE_DTYPE = 1 << 6
KV_FIELD_TIMEOUT = 1 << 7
KV_FIELD_TOKEN = 1 << 8
KV_FIELD_COMPRESS_LEVEL = 1 << 9
KV_FIELD_RECONNECT_MS = 1 << 10
KV_FIELD_TRANSPORT = 1 << 11
KV_TRANSPORTS = {"tcp": 0, "ofi": 1}  # scomm_kv_transport_t

INIT_FIELD_RANK = 1 << 0
INIT_FIELD_WORLD_SIZE = 1 << 1
INIT_FIELD_MASTER_ADDR = 1 << 2
INIT_FIELD_MASTER_PORT = 1 << 3
INIT_FIELD_TIMEOUT = 1 << 4
INIT_FIELD_BACKEND = 1 << 5
INIT_FIELD_JOB_TOKEN = 1 << 6

_st = c_int      # scomm_status_t
_dt = c_int      # scomm_dtype_t
_op = c_int      # scomm_redop_t
_vp = c_void_p   # buffers and opaque handles
_pp = POINTER(c_void_p)

# name: (restype, argtypes). One row per C function; rows for functions the
# loaded library lacks are ignored (see has()).
_PROTOTYPES: Dict[str, Tuple[Any, Sequence[Any]]] = {
    # version and status
    "scomm_version": (c_int32, []),
    "scomm_version_string": (c_char_p, []),
    "scomm_strerror": (c_char_p, [_st]),
    "scomm_status_name": (c_char_p, [_st]),
    "scomm_last_error": (c_char_p, []),
    "scomm_dtype_size": (c_size_t, [_dt]),
    "scomm_dtype_name": (c_char_p, [_dt]),
    "scomm_redop_name": (c_char_p, [_op]),
    # lifecycle
    "scomm_init": (_st, [POINTER(InitOpts), _pp]),
    "scomm_init_from_env": (_st, [_pp]),
    "scomm_comm_split": (_st, [_vp, c_int32, c_int32, _pp]),
    "scomm_comm_destroy": (_st, [_vp]),
    "scomm_comm_abort": (_st, [_vp]),
    "scomm_comm_async_error": (_st, [_vp]),
    "scomm_comm_last_error": (c_char_p, [_vp]),
    "scomm_rank": (c_int32, [_vp]),
    "scomm_size": (c_int32, [_vp]),
    "scomm_local_rank": (c_int32, [_vp]),
    "scomm_local_size": (c_int32, [_vp]),
    "scomm_peer_transport": (c_char_p, [_vp, c_int32]),
    "scomm_comm_set_timeout": (_st, [_vp, c_int64]),
    # point-to-point
    "scomm_send": (_st, [_vp, c_size_t, _dt, c_int32, c_int32, _vp]),
    "scomm_recv": (_st, [_vp, c_size_t, _dt, c_int32, c_int32, _vp]),
    "scomm_isend": (_st, [_vp, c_size_t, _dt, c_int32, c_int32, _vp, _pp]),
    "scomm_irecv": (_st, [_vp, c_size_t, _dt, c_int32, c_int32, _vp, _pp]),
    # requests
    "scomm_test": (_st, [_vp, POINTER(c_int32)]),
    "scomm_wait": (_st, [_vp]),
    "scomm_wait_all": (_st, [c_size_t, _pp]),
    # blocking collectives
    "scomm_barrier": (_st, [_vp]),
    "scomm_all_reduce": (_st, [_vp, _vp, c_size_t, _dt, _op, _vp]),
    "scomm_all_gather": (_st, [_vp, _vp, c_size_t, _dt, _vp]),
    "scomm_reduce_scatter": (_st, [_vp, _vp, c_size_t, _dt, _op, _vp]),
    "scomm_broadcast": (_st, [_vp, c_size_t, _dt, c_int32, _vp]),
    "scomm_reduce": (_st, [_vp, _vp, c_size_t, _dt, _op, c_int32, _vp]),
    "scomm_all_to_all": (_st, [_vp, _vp, c_size_t, _dt, _vp]),
    "scomm_gather": (_st, [_vp, _vp, c_size_t, _dt, c_int32, _vp]),
    "scomm_scatter": (_st, [_vp, _vp, c_size_t, _dt, c_int32, _vp]),
    "scomm_last_selection": (_st, [_vp, POINTER(CollRecord)]),
    # non-blocking collectives, groups, overlap
    "scomm_iall_reduce": (_st, [_vp, _vp, c_size_t, _dt, _op, _vp, _pp]),
    "scomm_iall_gather": (_st, [_vp, _vp, c_size_t, _dt, _vp, _pp]),
    "scomm_ireduce_scatter": (_st, [_vp, _vp, c_size_t, _dt, _op, _vp, _pp]),
    "scomm_ibroadcast": (_st, [_vp, c_size_t, _dt, c_int32, _vp, _pp]),
    "scomm_ireduce": (_st, [_vp, _vp, c_size_t, _dt, _op, c_int32, _vp,
                            _pp]),
    "scomm_iall_to_all": (_st, [_vp, _vp, c_size_t, _dt, _vp, _pp]),
    "scomm_ibarrier": (_st, [_vp, _pp]),
    "scomm_group_start": (_st, []),
    "scomm_group_end": (_st, []),
    "scomm_overlap_stats": (_st, [_vp, POINTER(OverlapStats)]),
    # topology and presets
    "scomm_topology_json": (_st, [_vp, POINTER(c_void_p)]),
    "scomm_topology_free": (None, [c_void_p]),
    "scomm_preset_recommend": (_st, [_vp, ctypes.c_char_p, c_size_t]),
    # telemetry and control
    "scomm_metrics_text": (_st, [POINTER(c_void_p), POINTER(c_size_t)]),
    "scomm_metrics_free": (None, [c_void_p]),
    "scomm_metrics_port": (c_int32, []),
    "scomm_step_begin": (_st, [_vp]),
    "scomm_step_end": (_st, [_vp, POINTER(c_double)]),
    "scomm_control_set": (_st, [_vp, c_char_p, c_char_p]),
    "scomm_control_get": (_st, [_vp, c_char_p, ctypes.c_char_p, c_size_t]),
    # vendor backends
    "scomm_comm_backend": (c_char_p, [_vp]),
    "scomm_comm_set_stream": (_st, [_vp, c_void_p]),
    "scomm_backend_count": (c_int32, []),
    "scomm_backend_probe": (_st, [c_int32, POINTER(BackendInfo)]),
    # KV-cache transfer
    "scomm_kv_listen": (_st, [c_char_p, c_int32, POINTER(KVOptsC), _pp]),
    "scomm_kv_listener_port": (c_int32, [_vp]),
    "scomm_kv_accept": (_st, [_vp, c_int64, _pp]),
    "scomm_kv_listener_close": (None, [_vp]),
    "scomm_kv_connect": (_st, [c_char_p, c_int32, POINTER(KVOptsC), _pp]),
    "scomm_kv_connect_comm": (_st, [_vp, c_int32, POINTER(KVOptsC), _pp]),
    "scomm_kv_ep_close": (None, [_vp]),
    "scomm_kv_register": (_st, [_vp, POINTER(KVLayoutC), _vp, c_uint64,
                                POINTER(c_int32)]),
    "scomm_kv_register_mem": (_st, [_vp, POINTER(KVLayoutC), _vp, c_uint64,
                                    c_int32, POINTER(c_int32)]),
    "scomm_kv_deregister": (_st, [_vp, c_int32]),
    "scomm_kv_submit_stream": (_st, [_vp, POINTER(KVPlanC), c_int32, _vp,
                                     _pp]),
    "scomm_kv_wait_layer_stream": (_st, [_vp, c_uint64, c_int32, _vp,
                                         c_int64]),
    "scomm_kv_submit": (_st, [_vp, POINTER(KVPlanC), c_int32, _pp]),
    "scomm_kv_xfer_wait": (_st, [_vp, c_int64]),
    "scomm_kv_xfer_test": (_st, [_vp, POINTER(c_int32)]),
    "scomm_kv_xfer_free": (None, [_vp]),
    "scomm_kv_wait_layer": (_st, [_vp, c_uint64, c_int32, c_int64]),
    "scomm_kv_wait_xfer": (_st, [_vp, c_uint64, c_int64]),
    "scomm_kv_ep_stats": (_st, [_vp, POINTER(KVStatsC)]),
    "scomm_kv_block_bytes": (c_uint64, [POINTER(KVLayoutC)]),
}


_LIB_GLOBS = ("libscomm.so", "libscomm.so.[0-9]*")


def _in_dir(d: Path) -> Optional[Path]:
    """libscomm.so, else its highest versioned name, in directory d."""
    for pattern in _LIB_GLOBS:
        hits = sorted(d.glob(pattern))
        if hits:
            return hits[-1] if pattern != "libscomm.so" else hits[0]
    return None


def _source_tree_build() -> Optional[Path]:
    repo = _HERE.parent.parent
    if _HERE.parent.name == "python" and \
            (repo / "include" / "scomm.h").is_file():
        return repo / "build" / "libscomm.so"
    return None


def _pkg_config_libdir() -> Tuple[Optional[Path], str]:
    exe = shutil.which("pkg-config")
    if exe is None:
        return None, "pkg-config is not installed"
    try:
        out = subprocess.run([exe, "--variable=libdir", "scomm"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, str(exc)
    if out.returncode != 0 or not out.stdout.strip():
        return None, "no scomm.pc on pkg-config's path"
    return Path(out.stdout.strip()), ""


def _standard_dirs() -> List[Path]:
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    dirs = [Path(sys.prefix) / "lib", Path(sys.prefix) / "lib64"]
    for base in ("/usr/local/lib", "/usr/lib"):
        if multiarch:
            dirs.append(Path(base) / multiarch)
        dirs += [Path(base + "64"), Path(base)]
    out: List[Path] = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


def search() -> List[Tuple[str, Optional[str], str]]:
    """Every place looked for libscomm, in order: (where, path found or
    None, why not). Stops at the first hit."""
    steps: List[Tuple[str, Optional[str], str]] = []

    def hit(where: str, path: Optional[Path], why: str = "not found"
            ) -> bool:
        if path is not None and path.is_file():
            steps.append((where, str(path), ""))
            return True
        steps.append((where, None, why))
        return False

    env = os.environ.get("SCOMM_LIBRARY")
    if env:
        if hit("SCOMM_LIBRARY", Path(env), f"{env} does not exist"):
            return steps
    else:
        steps.append(("SCOMM_LIBRARY", None, "not set"))
    if hit(f"inside the package ({_HERE}/libscomm.so*)", _in_dir(_HERE)):
        return steps
    tree = _source_tree_build()
    if tree is not None and hit(f"source tree build ({tree})", tree):
        return steps
    found = ctypes.util.find_library("scomm")
    if found:
        steps.append(("dynamic loader (ctypes.util.find_library, ldconfig "
                      "cache / LD_LIBRARY_PATH)", found, ""))
        return steps
    steps.append(("dynamic loader (ctypes.util.find_library, ldconfig "
                  "cache / LD_LIBRARY_PATH)", None, "not found"))
    libdir, why = _pkg_config_libdir()
    if libdir is not None:
        if hit(f"pkg-config scomm libdir ({libdir})", _in_dir(libdir)):
            return steps
    else:
        steps.append(("pkg-config scomm", None, why))
    for d in _standard_dirs():
        if hit(f"{d}", _in_dir(d)):
            return steps
    return steps


def candidate_paths() -> List[Path]:
    """The file search() would load (empty when none)."""
    return [Path(p) for _, p, _ in search() if p is not None]


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", c_char_p), ("dli_fbase", c_void_p),
                ("dli_sname", c_char_p), ("dli_saddr", c_void_p)]


def _loaded_file(fn: Any, fallback: str) -> str:
    """The shared object that defines fn (dladdr), else fallback."""
    for libname in (None, "libdl.so.2"):
        try:
            dladdr = ctypes.CDLL(libname).dladdr
        except (OSError, AttributeError):
            continue
        dladdr.argtypes = [c_void_p, POINTER(_DlInfo)]
        dladdr.restype = c_int
        info = _DlInfo()
        addr = ctypes.cast(fn, c_void_p)
        if dladdr(addr, ctypes.byref(info)) and info.dli_fname:
            return os.path.realpath(info.dli_fname.decode())
    return fallback


class Library:
    """The loaded libscomm with its prototypes applied."""

    def __init__(self, path: str) -> None:
        self._dll = ctypes.CDLL(path)
        self._available: Dict[str, Any] = {}
        for name, (restype, argtypes) in _PROTOTYPES.items():
            fn = getattr(self._dll, name, None)
            if fn is None:
                continue
            fn.restype = restype
            fn.argtypes = list(argtypes)
            self._available[name] = fn
        probe = self._available.get("scomm_version")
        self.path = _loaded_file(probe, path) if probe is not None else path

    def has(self, name: str) -> bool:
        """Whether the loaded library exports ``name`` (e.g. a newer call)."""
        return name in self._available

    def fn(self, name: str) -> Any:
        """The ctypes function ``name``; CommUnsupportedError if absent."""
        try:
            return self._available[name]
        except KeyError:
            from .errors import CommUnsupportedError
            raise CommUnsupportedError(
                f"{name} is not exported by {self.path} (an older libscomm?)"
            ) from None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("scomm_"):
            return self.fn(name)
        raise AttributeError(name)

    def check(self, status: int, comm: Optional[int] = None,
              what: str = "", kv: bool = False) -> None:
        """Raise the exception for a negative status, with the library's
        message (the communicator's when there is one); kv=True raises the
        KV channel's classes (errors.KVError)."""
        if status >= 0:
            return
        detail = b""
        if comm:
            detail = self.scomm_comm_last_error(comm) or b""
        if not detail:
            detail = self.scomm_last_error() or b""
        name = (self.scomm_status_name(status) or b"").decode()
        text = (self.scomm_strerror(status) or b"").decode()
        message = detail.decode(errors="replace") or text
        if what and what not in message:
            message = f"{what}: {message}"
        raise_for_status(status, message, name=name, kv=kv)


_lock = threading.Lock()
_loaded: Optional[Library] = None


def load(path: Optional[str] = None) -> Library:
    """Load libscomm once (or from ``path``) and return it.

    Raises CommLibraryError listing every place searched when none loads.
    """
    global _loaded
    with _lock:
        if _loaded is not None and path is None:
            return _loaded
        if path is not None:
            try:
                return Library(path)
            except OSError as exc:
                raise CommLibraryError(f"cannot load {path}: {exc}") \
                    from None
        steps = search()
        where, found, _ = steps[-1]
        if found is not None:
            try:
                _loaded = Library(found)
                return _loaded
            except OSError as exc:
                steps[-1] = (where, None, f"{found}: {exc}")
        tried = "; ".join(f"{w}: {why}" for w, _, why in steps)
        raise CommLibraryError(
            "libscomm not found. Looked in: " + tried + ". Install it "
            "(cmake --install build, then ldconfig for a system prefix; "
            "or --prefix into this Python environment) or set "
            "SCOMM_LIBRARY to its path")


def available() -> bool:
    """Whether libscomm can be loaded."""
    try:
        load()
    except CommLibraryError:
        return False
    return True
