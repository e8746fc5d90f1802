"""`cmake --install`, then `pip install ./python` into a fresh venv, then
the seed README's quick start, with no library variables.

The children run with SCOMM_LIBRARY, LD_LIBRARY_PATH, PKG_CONFIG_PATH and
PYTHONPATH removed, from the venv's interpreter, importing the installed
package (not this tree's). Only the quick start's own rendezvous
variables (MASTER_ADDR, MASTER_PORT) are set.

1. Before libscomm is installed, the installed package fails with
   CommLibraryError naming every place it looked.
2. libscomm installed into the venv's prefix (``cmake --install build
   --prefix $VIRTUAL_ENV``, no root): found under sys.prefix/lib; the
   quick start runs on 4 ranks.
3. As root: libscomm installed into a separate temporary prefix made
   known to the dynamic loader the standard way (a file in
   /etc/ld.so.conf.d, then ldconfig; removed afterwards): found through
   the loader's cache (ctypes.util.find_library).
"""

from __future__ import annotations

import ctypes.util
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import mp_util

DROP = ("SCOMM_LIBRARY", "SCOMM_CLI", "LD_LIBRARY_PATH", "PKG_CONFIG_PATH",
        "PYTHONPATH", "VIRTUAL_ENV")


def _build_dir() -> Path:
    lib = os.environ.get("SCOMM_LIBRARY")
    if lib:
        return Path(lib).resolve().parent
    return mp_util.PKG_ROOT.parent / "build"


def _clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in DROP}


class InstallTest(unittest.TestCase):
    """The installed package finds an installed libscomm by itself."""

    def setUp(self) -> None:
        self.build = _build_dir()
        if not (self.build / "cmake_install.cmake").is_file():
            self.skipTest(f"no CMake build at {self.build}")
        if shutil.which("cmake") is None:
            self.skipTest("cmake is not on PATH")
        probe = subprocess.run([sys.executable, "-m", "pip", "--version"],
                               capture_output=True)
        if probe.returncode != 0:
            self.skipTest("pip is not installed for this interpreter")
        self.tmp = Path(tempfile.mkdtemp(prefix="scomm-install-"))
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def run_py(self, python: Path, code: str,
               ok: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(python), "-c", code], env=_clean_env(),
                              cwd=str(self.tmp), capture_output=True,
                              text=True, timeout=120)
        if ok:
            self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        return proc

    def cmake_install(self, prefix: Path) -> None:
        proc = subprocess.run(["cmake", "--install", str(self.build),
                               "--prefix", str(prefix)],
                              capture_output=True, text=True, timeout=300)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)

    def where(self, python: Path) -> tuple:
        out = self.run_py(python, (
            "import sagellm_comm as s, sagellm_comm._lib as l; "
            "print(l.load().path); print(s.__file__); "
            "print(s.library_version())")).stdout.split("\n")
        return Path(out[0]).resolve(), Path(out[1]).resolve(), out[2]

    def test_venv_install_and_quickstart(self) -> None:
        venv = self.tmp / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip",
                        str(venv)], check=True, timeout=120)
        py = venv / "bin" / "python"
        src = self.tmp / "src"
        shutil.copytree(mp_util.PKG_ROOT, src, ignore=shutil.
                        ignore_patterns("__pycache__", "tests", "*.so*"))
        env = dict(_clean_env(), PIP_NO_INDEX="1",
                   PIP_DISABLE_PIP_VERSION_CHECK="1")
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(py), "install",
             "--no-deps", "--no-index", str(src)], capture_output=True,
            text=True, env=env, timeout=300)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)

        # 1. nothing installed yet: the error names every place looked
        system_copy = ctypes.util.find_library("scomm") or any(
            Path(d, "libscomm.so").exists() for d in
            ("/usr/local/lib", "/usr/lib", "/usr/lib64"))
        if not system_copy:
            proc = self.run_py(py, "import sagellm_comm as s; "
                               "s.library_version()", ok=False)
            self.assertNotEqual(proc.returncode, 0)
            for place in ("CommLibraryError", "SCOMM_LIBRARY: not set",
                          "inside the package", "ctypes.util.find_library",
                          "pkg-config", str(venv / "lib"),
                          "/usr/local/lib"):
                self.assertIn(place, proc.stderr)

        # 2. into the venv's own prefix: found there, quick start on 4
        self.cmake_install(venv)
        lib, pkg, version = self.where(py)
        self.assertTrue(str(lib).startswith(str(venv.resolve() / "lib")),
                        lib)
        self.assertTrue(str(pkg).startswith(str(venv.resolve())), pkg)
        res = mp_util.run_ranks(4, "workers:snippet", 120,
                                args=("quickstart",), python=str(py),
                                pythonpath=[str(mp_util.HERE)],
                                drop_env=DROP)
        self.assertTrue(all(rc == 0 for rc, _, _ in res),
                        mp_util.describe(res))
        print(f"\nvenv: {lib} (libscomm {version}), quick start on 4 ranks")

        # 3. a system prefix registered with the loader (root only)
        if os.geteuid() != 0 or shutil.which("ldconfig") is None:
            print("skipped the ld.so.conf.d case: needs root")
            return
        for f in (venv / "lib").glob("libscomm*"):
            f.unlink()
        (venv / "lib" / "pkgconfig" / "scomm.pc").unlink()
        prefix = self.tmp / "prefix"
        self.cmake_install(prefix)
        conf = Path("/etc/ld.so.conf.d",
                    f"zz-scomm-install-test-{os.getpid()}.conf")
        try:
            conf.write_text(f"{prefix / 'lib'}\n")
            subprocess.run(["ldconfig"], check=True, timeout=120)
            lib, _, _ = self.where(py)
            self.assertTrue(str(lib).startswith(
                str(prefix.resolve() / "lib")), lib)
            print(f"ld.so.conf.d: {lib}")
        finally:
            conf.unlink(missing_ok=True)
            subprocess.run(["ldconfig"], timeout=120)


if __name__ == "__main__":
    unittest.main(verbosity=2)
