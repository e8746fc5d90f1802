"""torch CPU tensors on 2 and 4 ranks: float32, float16 and bfloat16.

Skipped, with the reason printed, when this interpreter has no torch
(ctest runs it with /usr/bin/python3, where Debian's python3-torch lives).
"""

from __future__ import annotations

import importlib.util
import unittest

import mp_util

HAVE_TORCH = importlib.util.find_spec("torch") is not None


@unittest.skipUnless(HAVE_TORCH, "torch is not installed for this "
                     "interpreter (apt install python3-torch)")
class TorchTest(unittest.TestCase):
    """all_reduce and friends on torch tensors, checked against torch."""

    def test_torch_np2(self) -> None:
        res = mp_util.run_ranks(2, "workers:torch_tensors", 240)
        self.assertTrue(all(rc == 0 for rc, _, _ in res),
                        mp_util.describe(res))
        print("\n" + "".join(out for _, out, _ in res), end="")

    def test_torch_np4(self) -> None:
        res = mp_util.run_ranks(4, "workers:torch_tensors", 300)
        self.assertTrue(all(rc == 0 for rc, _, _ in res),
                        mp_util.describe(res))


if __name__ == "__main__":
    unittest.main(verbosity=2)
