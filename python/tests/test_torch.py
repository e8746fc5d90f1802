"""torch on real rank processes: the seed API on torch tensors, and
torch.distributed's own calls through backend "scomm" against gloo.

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

    def test_cuda_np2(self) -> None:
        """Backend "scomm" on CUDA tensors (torch_cuda.py): only where
        torch has a CUDA device; skipped here otherwise."""
        import torch
        if not torch.cuda.is_available():
            self.skipTest("torch has no CUDA device")
        res = mp_util.run_ranks(2, "torch_cuda:worker", 150)
        self.assertTrue(all(rc == 0 for rc, _, _ in res),
                        mp_util.describe(res))

    def test_torch_np2(self) -> None:
        res = mp_util.run_ranks(2, "workers:torch_tensors", 240)
        self.assertTrue(all(rc == 0 for rc, _, _ in res),
                        mp_util.describe(res))
        print("\n" + "".join(out for _, out, _ in res), end="")

    def test_torch_np4(self) -> None:
        res = mp_util.run_ranks(4, "workers:torch_tensors", 300)
        self.assertTrue(all(rc == 0 for rc, _, _ in res),
                        mp_util.describe(res))

    def test_dist_scomm_vs_gloo_np2_env(self) -> None:
        """init_process_group("scomm", env://) on 2 ranks: every call
        (fp32, fp16, bf16, int64; sum, max, min, avg, product) equals
        gloo; p2p, async works, named errors, a subgroup."""
        res = mp_util.run_ranks(2, "torch_workers:compare", 300,
                                args=("env",))
        self.assertTrue(all(rc == 0 for rc, _, _ in res),
                        mp_util.describe(res))
        print("\n" + "".join(out for _, out, _ in res), end="")

    def test_dist_scomm_vs_gloo_np4_tcp(self) -> None:
        """The same on 4 ranks with a tcp:// init method."""
        res = mp_util.run_ranks(4, "torch_workers:compare", 400,
                                args=("tcp",))
        self.assertTrue(all(rc == 0 for rc, _, _ in res),
                        mp_util.describe(res))
        print("\n" + "".join(out for _, out, _ in res), end="")

    def test_dist_peer_lost_np3(self) -> None:
        """A rank that dies: the survivors' async work raises
        PeerLostError naming it (from wait(), and as exception())."""
        res = mp_util.run_ranks(3, "torch_workers:peer_lost", 120)
        self.assertEqual([rc for rc, _, _ in res], [0, 0, 3],
                         mp_util.describe(res))


if __name__ == "__main__":
    unittest.main(verbosity=2)
