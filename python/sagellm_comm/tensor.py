"""Turn caller tensors into (pointer, element count, dtype) without copies.

Accepted, in this order of detection:

* torch CPU tensors (when torch is imported): float32/16/64, bfloat16, the
  integer types libscomm knows, and the float8 types where torch has them;
  the data pointer comes from ``tensor.data_ptr()``;
* numpy arrays (when numpy is imported), by ``dtype`` name;
* any object with the buffer protocol (bytearray, array.array, memoryview,
  bytes for read-only uses, mmap, ...), by its struct format character.

The object must be C-contiguous, and writable when the operation writes
into it; otherwise a CommInvalidArgumentError (a ValueError) says which.
The exporter stays locked (a bytearray cannot be resized) while the C call
runs. ``dtype=`` overrides the element type (e.g. a bytearray of float32s).
"""

from __future__ import annotations

import ctypes
import enum
import sys
from typing import Any, Optional, Union

from .errors import CommInvalidArgumentError, CommUnsupportedError


class DType(enum.IntEnum):
    """libscomm's element types (``scomm_dtype_t``, numbered as NCCL)."""

    INT8 = 0
    UINT8 = 1
    INT32 = 2
    UINT32 = 3
    INT64 = 4
    UINT64 = 5
    FLOAT16 = 6
    FLOAT32 = 7
    FLOAT64 = 8
    BFLOAT16 = 9
    FP8_E4M3 = 10
    FP8_E5M2 = 11

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return _ITEMSIZE[self]

    @classmethod
    def parse(cls, value: Union["DType", str, int]) -> "DType":
        """A DType from itself, its number, or a name ("float16", "fp16",
        "bf16", "torch.bfloat16", "float8_e4m3fn", ...)."""
        if isinstance(value, DType):
            return value
        if isinstance(value, int):
            return cls(value)
        key = str(value).lower().replace("torch.", "").replace("numpy.", "")
        try:
            return _NAMES[key]
        except KeyError:
            raise CommInvalidArgumentError(
                f"Unsupported dtype: {value!r} (supported: "
                f"{', '.join(sorted(_NAMES))})") from None


_ITEMSIZE = {DType.INT8: 1, DType.UINT8: 1, DType.INT32: 4, DType.UINT32: 4,
             DType.INT64: 8, DType.UINT64: 8, DType.FLOAT16: 2,
             DType.FLOAT32: 4, DType.FLOAT64: 8, DType.BFLOAT16: 2,
             DType.FP8_E4M3: 1, DType.FP8_E5M2: 1}

_NAMES = {
    "int8": DType.INT8, "uint8": DType.UINT8, "int32": DType.INT32,
    "int": DType.INT32, "uint32": DType.UINT32, "int64": DType.INT64,
    "long": DType.INT64, "uint64": DType.UINT64, "float16": DType.FLOAT16,
    "half": DType.FLOAT16, "fp16": DType.FLOAT16, "float32": DType.FLOAT32,
    "float": DType.FLOAT32, "fp32": DType.FLOAT32, "float64": DType.FLOAT64,
    "double": DType.FLOAT64, "fp64": DType.FLOAT64,
    "bfloat16": DType.BFLOAT16, "bf16": DType.BFLOAT16,
    "fp8_e4m3": DType.FP8_E4M3, "float8_e4m3fn": DType.FP8_E4M3,
    "fp8_e5m2": DType.FP8_E5M2, "float8_e5m2": DType.FP8_E5M2,
    "bool": DType.UINT8,
}

# struct format characters of the buffer protocol, by (char, itemsize).
_FORMATS = {"b": DType.INT8, "B": DType.UINT8, "c": DType.UINT8,
            "?": DType.UINT8, "e": DType.FLOAT16, "f": DType.FLOAT32,
            "d": DType.FLOAT64}
_INT_FORMATS = {(True, 1): DType.INT8, (False, 1): DType.UINT8,
                (True, 4): DType.INT32, (False, 4): DType.UINT32,
                (True, 8): DType.INT64, (False, 8): DType.UINT64}


class _PyBuffer(ctypes.Structure):
    """CPython's ``Py_buffer`` (stable since 3.3)."""

    _fields_ = [("buf", ctypes.c_void_p), ("obj", ctypes.py_object),
                ("len", ctypes.c_ssize_t), ("itemsize", ctypes.c_ssize_t),
                ("readonly", ctypes.c_int), ("ndim", ctypes.c_int),
                ("format", ctypes.c_char_p),
                ("shape", ctypes.POINTER(ctypes.c_ssize_t)),
                ("strides", ctypes.POINTER(ctypes.c_ssize_t)),
                ("suboffsets", ctypes.POINTER(ctypes.c_ssize_t)),
                ("internal", ctypes.c_void_p)]


_PyBUF_WRITABLE = 0x0001
_PyBUF_FORMAT = 0x0004
_PyBUF_STRIDES = 0x0008 | 0x0010   # includes ND
_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer),
                        ctypes.c_int]
_get_buffer.restype = ctypes.c_int
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = [ctypes.POINTER(_PyBuffer)]
_release_buffer.restype = None
_is_contiguous = ctypes.pythonapi.PyBuffer_IsContiguous
_is_contiguous.argtypes = [ctypes.POINTER(_PyBuffer), ctypes.c_char]
_is_contiguous.restype = ctypes.c_int


def _torch_dtype(tensor: Any) -> DType:
    name = str(tensor.dtype).replace("torch.", "")
    try:
        return _NAMES[name]
    except KeyError:
        raise CommInvalidArgumentError(
            f"Unsupported tensor dtype: {tensor.dtype}") from None


def is_torch_tensor(obj: Any) -> bool:
    """Whether obj is a torch.Tensor (without importing torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def is_numpy_array(obj: Any) -> bool:
    """Whether obj is a numpy.ndarray (without importing numpy)."""
    np = sys.modules.get("numpy")
    return np is not None and isinstance(obj, np.ndarray)


def check_torch_memory(t: Any, name: str) -> None:
    """Refuse a torch tensor libscomm cannot take as it is: not contiguous,
    or on a device other than the CPU and CUDA (CUDA tensors go to libscomm
    as device pointers: docs/device.md)."""
    if t.device.type not in ("cpu", "cuda"):
        raise CommUnsupportedError(
            f"{name} is on {t.device}: libscomm moves host (CPU) and CUDA "
            "tensors only")
    if not t.is_contiguous():
        raise CommInvalidArgumentError(
            f"{name} must be contiguous (call .contiguous() first)")


# __cuda_array_interface__ type strings (numba's / CuPy's spelling).
_CAI_TYPES = {"f2": "float16", "f4": "float32", "f8": "float64",
              "i1": "int8", "u1": "uint8", "i4": "int32", "u4": "uint32",
              "i8": "int64", "u8": "uint64"}


def has_cuda_array_interface(obj: Any) -> bool:
    """Whether obj exports device memory through __cuda_array_interface__
    (a torch CUDA tensor, CuPy, numba, or a test's fake)."""
    return hasattr(obj, "__cuda_array_interface__") and not (
        is_torch_tensor(obj) and obj.device.type == "cpu")


class BufferView:
    """A caller's tensor seen as raw memory: ``ptr``, ``count`` elements of
    ``dtype``, ``nbytes``; ``device`` (None: host memory) and ``stream``
    (None: none) are where a device pointer's context will go. Use as a
    context manager (or call release()) so that a buffer-protocol exporter
    is unlocked after the C call."""

    device: Optional[str] = None
    stream: Optional[int] = None

    def __init__(self, obj: Any, *, writable: bool, name: str = "tensor",
                 dtype: Optional[Union[DType, str]] = None) -> None:
        self.obj = obj
        self._pybuf: Optional[_PyBuffer] = None
        if is_torch_tensor(obj):
            self._from_torch(obj, name)
        elif has_cuda_array_interface(obj):
            self._from_cai(obj, name, dtype)
        elif is_numpy_array(obj):
            self._from_numpy(obj, writable, name)
        else:
            self._from_buffer(obj, writable, name)
        if dtype is not None:
            forced = DType.parse(dtype)
            if self.nbytes % forced.itemsize != 0:
                self.release()
                raise CommInvalidArgumentError(
                    f"{name}: {self.nbytes} bytes is not a whole number of "
                    f"{forced.name.lower()} elements")
            self.dtype = forced
        self.count = self.nbytes // self.dtype.itemsize

    def _from_torch(self, t: Any, name: str) -> None:
        check_torch_memory(t, name)
        self.dtype = _torch_dtype(t)
        self.nbytes = t.numel() * t.element_size()
        self.ptr = t.data_ptr() if self.nbytes else None
        if t.device.type == "cuda":
            torch = sys.modules["torch"]
            self.device = "cuda"
            self.stream = int(torch.cuda.current_stream(t.device).cuda_stream)

    def _from_cai(self, obj: Any, name: str, dtype: Any) -> None:
        cai = obj.__cuda_array_interface__
        shape = tuple(int(n) for n in cai.get("shape", ()))
        count = 1
        for n in shape:
            count *= n
        typestr = str(cai.get("typestr", ""))
        kind = _CAI_TYPES.get(typestr[1:])
        if kind is None and dtype is None:
            raise CommInvalidArgumentError(
                f"{name}: __cuda_array_interface__ type {typestr!r} is not "
                "one libscomm knows; pass dtype= (e.g. bfloat16)")
        self.dtype = DType.parse(kind if kind is not None else dtype)
        itemsize = int(typestr[2:]) if typestr[2:].isdigit() else \
            self.dtype.itemsize
        strides = cai.get("strides")
        if strides is not None:
            want, expect = tuple(int(x) for x in strides), []
            step = itemsize
            for n in reversed(shape):
                expect.insert(0, step)
                step *= n
            if count > 1 and want != tuple(expect):
                raise CommInvalidArgumentError(
                    f"{name} must be C-contiguous (strides {want})")
        self.nbytes = count * itemsize
        ptr = int(cai["data"][0]) if cai.get("data") else 0
        self.ptr = ptr if self.nbytes else None
        self.device = "cuda"
        stream = cai.get("stream")
        self.stream = int(stream) if stream is not None else None

    def _from_numpy(self, a: Any, writable: bool, name: str) -> None:
        if not a.flags["C_CONTIGUOUS"]:
            raise CommInvalidArgumentError(
                f"{name} must be C-contiguous "
                "(use numpy.ascontiguousarray)")
        if writable and not a.flags["WRITEABLE"]:
            raise CommInvalidArgumentError(f"{name} must be writable")
        self.dtype = DType.parse(a.dtype.name)
        self.nbytes = int(a.nbytes)
        self.ptr = a.__array_interface__["data"][0] if self.nbytes else None

    def _from_buffer(self, obj: Any, writable: bool, name: str) -> None:
        view = _PyBuffer()
        flags = _PyBUF_FORMAT | _PyBUF_STRIDES
        if writable:
            flags |= _PyBUF_WRITABLE
        try:
            _get_buffer(obj, ctypes.byref(view), flags)
        except TypeError:
            raise CommInvalidArgumentError(
                f"{name} must be a torch CPU tensor, a numpy array or an "
                f"object with the buffer protocol (got "
                f"{type(obj).__name__})") from None
        except BufferError as exc:
            if writable:
                raise CommInvalidArgumentError(
                    f"{name} must be writable (got a read-only "
                    f"{type(obj).__name__})") from exc
            raise CommInvalidArgumentError(f"{name}: {exc}") from exc
        self._pybuf = view
        if not _is_contiguous(ctypes.byref(view), b"C"):
            self.release()
            raise CommInvalidArgumentError(f"{name} must be C-contiguous")
        fmt = (view.format or b"B").decode().lstrip("@=<>!")
        self.nbytes = int(view.len)
        self.ptr = view.buf if self.nbytes else None
        if fmt in _FORMATS:
            self.dtype = _FORMATS[fmt]
        elif fmt in ("h", "H", "i", "I", "l", "L", "q", "Q", "n", "N"):
            key = (fmt.islower(), int(view.itemsize))
            if key not in _INT_FORMATS:
                self.release()
                raise CommInvalidArgumentError(
                    f"{name}: {view.itemsize}-byte integers are not "
                    "supported (int8/32/64 and their unsigned forms are)")
            self.dtype = _INT_FORMATS[key]
        else:
            self.release()
            raise CommInvalidArgumentError(
                f"{name}: unsupported buffer format {fmt!r}")

    def release(self) -> None:
        """Unlock the exporter (idempotent)."""
        if self._pybuf is not None:
            _release_buffer(ctypes.byref(self._pybuf))
            self._pybuf = None

    def __enter__(self) -> "BufferView":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:  # pragma: no cover - interpreter teardown
            pass


def new_like(obj: Any, count: int) -> Any:
    """A new zero-filled tensor of the same kind and dtype as obj with
    ``count`` elements (flat; numpy/torch keep obj's trailing shape when
    count is a multiple of obj's element count)."""
    if is_torch_tensor(obj):
        torch = sys.modules["torch"]
        n = obj.numel()
        if n and count % n == 0 and obj.dim() > 0:
            return torch.zeros((count // n,) + tuple(obj.shape),
                               dtype=obj.dtype, device=obj.device)
        return torch.zeros(count, dtype=obj.dtype, device=obj.device)
    if is_numpy_array(obj):
        np = sys.modules["numpy"]
        n = obj.size
        if n and count % n == 0 and obj.ndim > 0:
            return np.zeros((count // n,) + obj.shape, dtype=obj.dtype)
        return np.zeros(count, dtype=obj.dtype)
    import array
    if isinstance(obj, array.array):
        return array.array(obj.typecode, bytes(count * obj.itemsize))
    with BufferView(obj, writable=False) as view:
        itemsize = view.dtype.itemsize
        fmt = None
        if isinstance(obj, memoryview):
            fmt = obj.format
    out = bytearray(count * itemsize)
    if fmt is not None and fmt not in ("B", "c"):
        return memoryview(out).cast(fmt)
    return out
