"""In-tree PEP 517 build backend for isagellm-comm, standard library only.

Why not setuptools: pip builds in an isolated environment and would fetch
setuptools from the index, which fails offline. This backend needs nothing
but the standard library, so ``pip install ./python`` works without a
network. It packs ``sagellm_comm/`` (Python files, and a ``libscomm.so*``
copied next to it, if any: the wheel is then tagged for this platform) with
the metadata read from ``pyproject.toml``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import sysconfig
import tarfile
import tomllib  # Python >= 3.11
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "sagellm_comm"


def _project() -> Dict:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)


def _files() -> List[Path]:
    out = []
    for path in sorted((ROOT / PACKAGE).rglob("*")):
        if "__pycache__" in path.parts or not path.is_file():
            continue
        if path.suffix == ".py" or path.name.startswith("libscomm.so"):
            out.append(path)
    return out


def _metadata(proj: Dict) -> str:
    p = proj["project"]
    lines = ["Metadata-Version: 2.1", f"Name: {p['name']}",
             f"Version: {p['version']}", f"Summary: {p['description']}",
             f"Requires-Python: {p['requires-python']}"]
    for extra, deps in p.get("optional-dependencies", {}).items():
        lines.append(f"Provides-Extra: {extra}")
        for dep in deps:
            lines.append(f'Requires-Dist: {dep}; extra == "{extra}"')
    readme = ROOT / p.get("readme", "README.md")
    body = readme.read_text() if readme.is_file() else ""
    return "\n".join(lines) + "\nDescription-Content-Type: text/markdown\n\n" \
        + body


def _entry_points(proj: Dict) -> str:
    out = []
    for group, eps in proj["project"].get("entry-points", {}).items():
        out.append(f"[{group}]")
        out.extend(f"{k} = {v}" for k, v in eps.items())
        out.append("")
    return "\n".join(out)


def _dist_name(proj: Dict) -> Tuple[str, str]:
    p = proj["project"]
    return p["name"].replace("-", "_"), p["version"]


def _tag(files: List[Path]) -> str:
    if any(f.name.startswith("libscomm.so") for f in files):
        plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
        return f"py3-none-{plat}"
    return "py3-none-any"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest())
    return f"{name},sha256={digest.rstrip(b'=').decode()},{len(data)}"


def _wheel(wheel_directory: str, editable: bool) -> str:
    proj = _project()
    name, version = _dist_name(proj)
    files = _files()
    tag = _tag(files)
    dist_info = f"{name}-{version}.dist-info"
    wheel_name = f"{name}-{version}-{tag}.whl"
    entries: List[Tuple[str, bytes]] = []
    if editable:
        entries.append((f"__editable__.{name}.pth",
                        (str(ROOT) + "\n").encode()))
    else:
        for path in files:
            rel = path.relative_to(ROOT).as_posix()
            entries.append((rel, path.read_bytes()))
    entries.append((f"{dist_info}/METADATA", _metadata(proj).encode()))
    entries.append((f"{dist_info}/WHEEL", (
        "Wheel-Version: 1.0\nGenerator: scomm_build\n"
        f"Root-Is-Purelib: {'true' if tag.endswith('any') else 'false'}\n"
        f"Tag: {tag}\n").encode()))
    entries.append((f"{dist_info}/entry_points.txt",
                    _entry_points(proj).encode()))
    entries.append((f"{dist_info}/top_level.txt", f"{PACKAGE}\n".encode()))
    record = [_record_line(n, d) for n, d in entries]
    record.append(f"{dist_info}/RECORD,,")
    entries.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n")
                    .encode()))
    out = Path(wheel_directory) / wheel_name
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, data in entries:
            info = zipfile.ZipInfo(arcname, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if arcname.endswith(".so") or ".so."
                                  in arcname else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return wheel_name


# -- PEP 517 / 660 hooks ------------------------------------------------------


def get_requires_for_build_wheel(config_settings: Optional[Dict] = None
                                 ) -> List[str]:
    return []


def get_requires_for_build_sdist(config_settings: Optional[Dict] = None
                                 ) -> List[str]:
    return []


def get_requires_for_build_editable(config_settings: Optional[Dict] = None
                                    ) -> List[str]:
    return []


def build_wheel(wheel_directory: str, config_settings: Optional[Dict] = None,
                metadata_directory: Optional[str] = None) -> str:
    return _wheel(wheel_directory, editable=False)


def build_editable(wheel_directory: str,
                   config_settings: Optional[Dict] = None,
                   metadata_directory: Optional[str] = None) -> str:
    return _wheel(wheel_directory, editable=True)


def build_sdist(sdist_directory: str,
                config_settings: Optional[Dict] = None) -> str:
    proj = _project()
    name, version = _dist_name(proj)
    base = f"{name}-{version}"
    out = Path(sdist_directory) / f"{base}.tar.gz"
    paths = [ROOT / "pyproject.toml", ROOT / "README.md",
             Path(__file__).resolve()] + [
        f for f in _files() if f.suffix == ".py"]
    with tarfile.open(out, "w:gz") as tf:
        for path in paths:
            if path.is_file():
                tf.add(path, arcname=f"{base}/{path.relative_to(ROOT)}")
        pkg_info = _metadata(proj).encode()
        info = tarfile.TarInfo(f"{base}/PKG-INFO")
        info.size = len(pkg_info)
        tf.addfile(info, io.BytesIO(pkg_info))
    return out.name


del os
