"""Exceptions of sagellm_comm: one class per libscomm status code.

Every error raised by the C library becomes an instance of a ``CommError``
subclass chosen by its status, carrying the library's message (which names
the operation and the failing rank), the numeric ``status``, its name
(``SCOMM_ERR_PEER_LOST``), and the seed protocol's taxonomy: ``code`` is one
of the protocol's ``ErrorCode`` strings (``invalid_argument``,
``resource_exhausted``, ``unavailable``, ``deadline_exceeded``,
``not_implemented``, plus ``internal`` and ``aborted`` for what the protocol
has no word for) and ``kv_code`` the ``KV_*`` code of the KV-transfer
taxonomy where one applies. Each class also derives from the built-in
exception a Python caller would expect (ValueError for bad arguments,
TimeoutError for deadlines, ConnectionError for a lost peer, ...), so code
written against the seed's ``ValueError``/``RuntimeError`` keeps working.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Type


class CommError(Exception):
    """Base of every error raised by sagellm_comm."""

    status: int = -11
    status_name: str = "SCOMM_ERR_INTERNAL"
    code: str = "internal"
    kv_code: Optional[str] = None
    retryable: bool = False

    def __init__(self, message: str = "", *, status: Optional[int] = None,
                 name: Optional[str] = None,
                 context: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if name:
            self.status_name = name
        self.context: Dict[str, Any] = dict(context or {})

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> Dict[str, Any]:
        """The seed protocol's error record: error_type, code, message,
        context, retryable."""
        return {"error_type": type(self).__name__, "code": self.code,
                "message": self.message, "context": dict(self.context),
                "retryable": self.retryable}


class CommInvalidArgumentError(CommError, ValueError):
    """SCOMM_ERR_INVALID_ARG, and the seed's fail-fast argument checks."""

    status, status_name, code = -1, "SCOMM_ERR_INVALID_ARG", "invalid_argument"


class CommUsageError(CommError, RuntimeError):
    """SCOMM_ERR_INVALID_USAGE: wrong call order or state."""

    status, status_name, code = -2, "SCOMM_ERR_INVALID_USAGE", "invalid_argument"


class CommNotInitializedError(CommUsageError):
    """A backend used before ``init()`` (the seed's "not initialized")."""


class CommUnsupportedError(CommError, NotImplementedError):
    """SCOMM_ERR_UNSUPPORTED, or a backend/feature this build lacks."""

    status, status_name, code = -3, "SCOMM_ERR_UNSUPPORTED", "not_implemented"


class CommMemoryError(CommError, MemoryError):
    """SCOMM_ERR_NO_MEMORY."""

    status, status_name, code = -4, "SCOMM_ERR_NO_MEMORY", "resource_exhausted"
    kv_code = "KV_MEMORY_EXHAUSTED"


class CommSystemError(CommError, OSError):
    """SCOMM_ERR_SYSTEM: a system call failed (the message has strerror)."""

    status, status_name, code = -5, "SCOMM_ERR_SYSTEM", "unavailable"
    retryable = True


class CommTimeoutError(CommError, TimeoutError):
    """SCOMM_ERR_TIMED_OUT: a deadline passed (the message names ranks)."""

    status, status_name, code = -6, "SCOMM_ERR_TIMED_OUT", "deadline_exceeded"
    kv_code = "KV_TRANSFER_TIMEOUT"
    retryable = True


class PeerLostError(CommError, ConnectionError):
    """SCOMM_ERR_PEER_LOST: a remote rank failed or closed its end."""

    status, status_name, code = -7, "SCOMM_ERR_PEER_LOST", "unavailable"
    kv_code = "KV_TRANSFER_FAILED"


class CommAbortedError(CommError, RuntimeError):
    """SCOMM_ERR_ABORTED: the communicator was aborted."""

    status, status_name, code = -8, "SCOMM_ERR_ABORTED", "aborted"


class CommMismatchError(CommError, ValueError):
    """SCOMM_ERR_MISMATCH: ranks disagree (counts, dtypes, layouts)."""

    status, status_name, code = -9, "SCOMM_ERR_MISMATCH", "invalid_argument"
    kv_code = "KV_METADATA_MISMATCH"


class CommConfigError(CommError, ValueError):
    """SCOMM_ERR_BAD_CONFIG: bad environment, config or preset file."""

    status, status_name, code = -10, "SCOMM_ERR_BAD_CONFIG", "invalid_argument"
    kv_code = "KV_CONFIG_INVALID"


class MissingEnvironmentError(CommConfigError, RuntimeError):
    """A launcher variable (RANK, WORLD_SIZE, ...) is not set."""

    kv_code = "KV_CONFIG_MISSING"


class CommInternalError(CommError, RuntimeError):
    """SCOMM_ERR_INTERNAL: a bug in libscomm."""

    status, status_name, code = -11, "SCOMM_ERR_INTERNAL", "internal"


class CommProtocolError(CommError, RuntimeError):
    """SCOMM_ERR_PROTOCOL: wire protocol version or framing mismatch."""

    status, status_name, code = -12, "SCOMM_ERR_PROTOCOL", "invalid_argument"


class CommAccessDeniedError(CommError, PermissionError):
    """SCOMM_ERR_ACCESS_DENIED: the job token was refused."""

    status, status_name, code = -13, "SCOMM_ERR_ACCESS_DENIED", "unavailable"


class CommTruncatedError(CommError, ValueError):
    """SCOMM_ERR_TRUNCATED: a message longer than the receive buffer."""

    status, status_name, code = -14, "SCOMM_ERR_TRUNCATED", "invalid_argument"


class CommResourceError(CommError, RuntimeError):
    """SCOMM_ERR_NO_RESOURCE: resource temporarily unavailable; retry."""

    status, status_name, code = -15, "SCOMM_ERR_NO_RESOURCE", "resource_exhausted"
    retryable = True


class ChecksumMismatchError(CommError, RuntimeError):
    """SCOMM_ERR_CHECKSUM: data failed its integrity check too often."""

    status, status_name, code = -16, "SCOMM_ERR_CHECKSUM", "unavailable"
    kv_code = "KV_CHECKSUM_MISMATCH"
    retryable = True


class CommLibraryError(CommError, ImportError):
    """libscomm could not be found or loaded."""

    code = "unavailable"


# -- the KV channel's errors (sagellm_comm.kv) ----------------------------
#
# The seed's KV taxonomy (sagellm_protocol.kv.KVErrorCode): a KV call
# raises one of these, each also the general class of its status, so
# ``except KVError`` catches every KV failure and ``except PeerLostError``
# still catches a lost peer. ``kv_code`` is the seed's string.


class KVError(CommError):
    """Base of the errors raised by the KV-cache transfer channel."""


class KVTransferFailedError(KVError, PeerLostError):
    """KV_TRANSFER_FAILED: the peer was lost (SCOMM_ERR_PEER_LOST)."""

    kv_code = "KV_TRANSFER_FAILED"


class KVTransferAbortedError(KVError, CommAbortedError):
    """KV_TRANSFER_FAILED: cancelled (endpoint closed, request freed)."""

    kv_code = "KV_TRANSFER_FAILED"


class KVTransferTimeoutError(KVError, CommTimeoutError):
    """KV_TRANSFER_TIMEOUT: a deadline passed; the transfer goes on."""

    kv_code = "KV_TRANSFER_TIMEOUT"
    retryable = True


class KVChecksumMismatchError(KVError, ChecksumMismatchError):
    """KV_CHECKSUM_MISMATCH: a chunk failed CRC32C too often."""

    kv_code = "KV_CHECKSUM_MISMATCH"


class KVMetadataMismatchError(KVError, CommMismatchError):
    """KV_METADATA_MISMATCH: the receiver refused the plan (layouts or
    regions differ)."""

    kv_code = "KV_METADATA_MISMATCH"


class KVConfigInvalidError(KVError, CommConfigError):
    """KV_CONFIG_INVALID: bad options or preset."""

    kv_code = "KV_CONFIG_INVALID"


class KVMemoryExhaustedError(KVError, CommMemoryError):
    """KV_MEMORY_EXHAUSTED: out of memory."""

    kv_code = "KV_MEMORY_EXHAUSTED"


class KVNotImplementedError(KVError, CommUnsupportedError):
    """KV_NOT_IMPLEMENTED: a plan feature this libscomm lacks."""

    kv_code = "KV_NOT_IMPLEMENTED"


# Aliases for the names a seed user may look for.
CommTimeout = CommTimeoutError

_BY_STATUS: Dict[int, Type[CommError]] = {
    cls.status: cls for cls in (
        CommInvalidArgumentError, CommUsageError, CommUnsupportedError,
        CommMemoryError, CommSystemError, CommTimeoutError, PeerLostError,
        CommAbortedError, CommMismatchError, CommConfigError,
        CommInternalError, CommProtocolError, CommAccessDeniedError,
        CommTruncatedError, CommResourceError, ChecksumMismatchError)
}


_KV_BY_STATUS: Dict[int, Type[CommError]] = {
    cls.status: cls for cls in (
        KVTransferFailedError, KVTransferAbortedError,
        KVTransferTimeoutError, KVChecksumMismatchError,
        KVMetadataMismatchError, KVConfigInvalidError,
        KVMemoryExhaustedError)
}


def error_class(status: int, kv: bool = False) -> Type[CommError]:
    """The exception class for a libscomm status (CommError if unknown);
    with kv=True the KV channel's class where the KV taxonomy has one."""
    if kv and status in _KV_BY_STATUS:
        return _KV_BY_STATUS[status]
    return _BY_STATUS.get(status, CommError)


def raise_for_status(status: int, message: str, *,
                     name: Optional[str] = None, kv: bool = False) -> None:
    """Raise the exception of a negative status; do nothing otherwise."""
    if status >= 0:
        return
    cls = error_class(status, kv)
    raise cls(message, status=status, name=name or None)
