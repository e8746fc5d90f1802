"""Run a worker function on N real processes (ranks) with a deadline.

``run_ranks(n, "module:function")`` starts n interpreters (the current
``sys.executable``), each with RANK, WORLD_SIZE, LOCAL_RANK,
LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1 and a free MASTER_PORT picked here,
in its own process group, and calls ``function()`` from ``module`` (a file
in this directory). A rank fails by raising (non-zero exit, traceback on
stderr). On the deadline every rank's group is killed; no process
outlives the call.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
PKG_ROOT = HERE.parent          # python/, which holds sagellm_comm

# Test the package of this tree (not an installed copy).
if str(PKG_ROOT) not in sys.path:
    sys.path.insert(0, str(PKG_ROOT))


# Sockets that hold the ports free_port() handed out (see there).
_HELD: List[socket.socket] = []


def free_port() -> int:
    """A TCP port on 127.0.0.1 reserved for this test process: a socket
    bound to it with SO_REUSEADDR, never listening, stays open until the
    process ends. Rank 0's listener (SO_REUSEADDR too) may bind it; no
    other program's bind(0) or connect() is handed it meanwhile, so a test
    running beside this one cannot take it before rank 0 binds."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    _HELD.append(s)
    return int(s.getsockname()[1])


def rank_env(rank: int, world: int, port: int,
             extra: Optional[Dict[str, str]] = None,
             pythonpath: Optional[Sequence[str]] = None,
             drop: Sequence[str] = ()) -> Dict[str, str]:
    """The environment of one rank. ``pythonpath`` replaces the default
    (this tree's package, then the tests); ``drop`` removes variables."""
    env = {k: v for k, v in os.environ.items() if k not in drop}
    if pythonpath is None:
        pythonpath = [str(PKG_ROOT), str(HERE)] + (
            [env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env.update({"RANK": str(rank), "WORLD_SIZE": str(world),
                "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(world),
                "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                "SCOMM_TIMEOUT_MS": env.get("SCOMM_TIMEOUT_MS", "20000"),
                "PYTHONPATH": os.pathsep.join(pythonpath)})
    env.update(extra or {})
    return env


def run_ranks(n: int, target: str, timeout: float = 90.0,
              extra_env: Optional[Dict[str, str]] = None,
              args: Tuple[str, ...] = (), python: str = sys.executable,
              pythonpath: Optional[Sequence[str]] = None,
              drop_env: Sequence[str] = ()) -> List[Tuple[int, str, str]]:
    """Run ``module:function`` on n ranks (interpreter ``python``);
    returns (rc, stdout, stderr) per rank. rc -9 marks a rank killed at
    the deadline."""
    module, func = target.split(":")
    code = (f"import sys, {module}; sys.exit({module}.{func}(*sys.argv[1:])"
            " or 0)")
    port = free_port()
    procs = []
    try:
        for r in range(n):
            procs.append(subprocess.Popen(
                [python, "-c", code, *args],
                env=rank_env(r, n, port, extra_env, pythonpath, drop_env),
                cwd=str(HERE),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                start_new_session=True))
        deadline = time.monotonic() + timeout
        results = []
        for p in procs:
            left = max(deadline - time.monotonic(), 0.1)
            try:
                out, err = p.communicate(timeout=left)
                results.append((p.returncode, out, err))
            except subprocess.TimeoutExpired:
                _kill(p)
                out, err = p.communicate()
                results.append((-9, out, err + "\n[killed at deadline]"))
        return results
    finally:
        for p in procs:
            if p.poll() is None:
                _kill(p)
                p.wait()


def _kill(p: "subprocess.Popen[str]") -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def describe(results: List[Tuple[int, str, str]]) -> str:
    """Every rank's exit code and output, for a failure message."""
    parts = []
    for r, (rc, out, err) in enumerate(results):
        err_lines = [l for l in err.splitlines() if " WARN " not in l]
        parts.append(f"--- rank {r} rc={rc}\n{out}\n" + "\n".join(
            err_lines[-40:]))
    return "\n".join(parts)
