"""Multi-process tests: 2-4 real rank processes over libscomm.

Each test starts the ranks with mp_util.run_ranks (deadline, kills its
children) and fails with every rank's output when one rank fails.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import tempfile
import unittest
from pathlib import Path

import mp_util


class MultiProcessTest(unittest.TestCase):
    """Collectives, P2P, groups, failures and benchmarks across ranks."""

    def run_ok(self, n: int, target: str, timeout: float = 90.0,
               args: tuple = ()) -> list:
        res = mp_util.run_ranks(n, target, timeout, args=args)
        self.assertTrue(all(rc == 0 for rc, _, _ in res),
                        mp_util.describe(res))
        return res

    def test_collectives_np2(self) -> None:
        self.run_ok(2, "workers:collectives")

    def test_collectives_np3(self) -> None:
        self.run_ok(3, "workers:collectives")

    def test_collectives_np4(self) -> None:
        self.run_ok(4, "workers:collectives")

    @unittest.skipUnless(os.environ.get("SCOMM_TEST_FAKE_CUDART"),
                         "SCOMM_TEST_FAKE_CUDART (the fake runtime) not set")
    def test_device_buffers_np3(self) -> None:
        res = mp_util.run_ranks(3, "workers:device_buffers", 90, extra_env={
            "SCOMM_CUDART_LIBRARY": os.environ["SCOMM_TEST_FAKE_CUDART"]})
        self.assertTrue(all(rc == 0 for rc, _, _ in res),
                        mp_util.describe(res))

    def test_peer_lost_np3(self) -> None:
        res = mp_util.run_ranks(3, "workers:peer_lost", 60,
                                extra_env={"SCOMM_TIMEOUT_MS": "10000"})
        rcs = [rc for rc, _, _ in res]
        self.assertEqual(rcs, [0, 0, 3], mp_util.describe(res))

    @unittest.skipUnless(importlib.util.find_spec("numpy"),
                         "numpy is not installed for this python3")
    def test_numpy_np2(self) -> None:
        self.run_ok(2, "workers:numpy_arrays")

    def test_benchmarks_np2(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            self.run_ok(2, "workers:benchmarks", args=(tmp,))
            for sub, stem, fields in (
                    ("coll", "all_reduce_ws2_",
                     ["bytes", "latency_ms", "bandwidth_gbps", "busbw_gbps",
                      "algo_id", "backend_kind", "topology_source",
                      "world_size", "op_type", "data_type", "warmup_iters",
                      "benchmark_iters", "selection_rule_id",
                      "selection_reason", "timestamp"]),
                    ("ovl", "overlap_ws2_",
                     ["comm_bytes", "compute_duration_ms", "comm_submit_ms",
                      "comm_wait_ms", "compute_ms", "total_ms",
                      "overlap_ratio", "overlap_efficiency",
                      "theoretical_sequential_ms",
                      "theoretical_overlap_ms"])):
                files = sorted(Path(tmp, sub).iterdir())
                self.assertEqual([f.suffix for f in files],
                                 [".csv", ".json"], files)
                self.assertTrue(files[0].name.startswith(stem))
                rows = json.loads(files[1].read_text())
                with open(files[0]) as fh:
                    header = next(csv.reader(fh))
                for field in fields:
                    self.assertIn(field, rows[0])
                    self.assertIn(field, header)
                self.assertEqual(rows[0].get("world_size", 2), 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
