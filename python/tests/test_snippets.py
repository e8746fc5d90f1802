"""The seed README's snippets run as written (snippets.py holds them).

Quick Start and the migration example run on 4 local ranks (rank 0
executes the text unchanged; ranks 1-3 differ only in the ``rank=``
literal, which the README writes for rank 0). The Python-API benchmark
examples run in one process in a scratch directory; the one that names
port 29500 gets a free port instead, so parallel test runs cannot collide.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import unittest

import mp_util
from snippets import SNIPPETS


class ReadmeSnippetsTest(unittest.TestCase):
    """README code, unchanged, on real ranks."""

    def test_quickstart_np4(self) -> None:
        res = mp_util.run_ranks(4, "workers:snippet", 90,
                                args=("quickstart",))
        self.assertTrue(all(rc == 0 for rc, _, _ in res),
                        mp_util.describe(res))

    def test_migration_np4(self) -> None:
        res = mp_util.run_ranks(4, "workers:snippet", 90,
                                args=("migration",))
        self.assertTrue(all(rc == 0 for rc, _, _ in res),
                        mp_util.describe(res))

    def _single(self, name: str, text: str) -> str:
        env = mp_util.rank_env(0, 1, mp_util.free_port())
        for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
            env.pop(var)
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run([sys.executable, "-c", text], cwd=tmp,
                                  env=env, capture_output=True, text=True,
                                  timeout=120)
            self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
            outputs = sorted(os.listdir(os.path.join(tmp, ".benchmarks",
                                                     name)))
        self.assertEqual(len(outputs), 2, outputs)
        return proc.stdout

    def test_benchmark_api(self) -> None:
        text = SNIPPETS["benchmark_api"].replace(
            "master_port=29500", f"master_port={mp_util.free_port()}")
        out = self._single("collective", text)
        self.assertIn("Completed 3 benchmark runs", out)

    def test_overlap_api(self) -> None:
        out = self._single("overlap", SNIPPETS["overlap_api"])
        self.assertEqual(out.count("Overlap ratio:"), 9, out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
