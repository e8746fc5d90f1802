"""Shared helpers of the benchmarks: output files, default backend."""

from __future__ import annotations

import csv
import dataclasses
import datetime
import json
import os
import socket
from pathlib import Path
from typing import Any, List, Optional, Sequence

from ..backend import CommBackend


def timestamp() -> str:
    """ISO 8601 local time with seconds."""
    return datetime.datetime.now().isoformat(timespec="seconds")


def write_results(rows: Sequence[Any], output_dir: str, stem: str,
                  meta: Optional[dict] = None) -> List[Path]:
    """Write dataclass rows as ``<stem>_<YYYYmmdd_HHMMSS>.json`` (a list of
    objects, or {"meta":..., "results": [...]} with meta) and ``.csv``;
    returns the two paths."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d_%H%M%S")
    base = out / f"{stem}_{stamp}"
    records = [dataclasses.asdict(r) for r in rows]
    json_path = base.with_suffix(".json")
    csv_path = base.with_suffix(".csv")
    doc: Any = records if meta is None else {"meta": meta,
                                             "results": records}
    json_path.write_text(json.dumps(doc, indent=2) + "\n")
    fields = [f.name for f in dataclasses.fields(rows[0])] if rows else []
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for rec in records:
            writer.writerow(rec)
    return [json_path, csv_path]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def default_backend() -> CommBackend:
    """The auto-selected backend, initialised from RANK / WORLD_SIZE /
    MASTER_ADDR / MASTER_PORT, or as a single rank when RANK is unset."""
    from ..registry import get_comm_backend
    backend = get_comm_backend()
    if os.environ.get("RANK") is None:
        backend.init(rank=0, world_size=1, master_addr="127.0.0.1",
                     master_port=_free_port())
    else:
        backend.init_process_group()
    return backend
