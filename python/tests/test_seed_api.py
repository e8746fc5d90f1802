"""Single-process tests of the seed's names, messages and records, the
error mapping, the tensor adapter, the version and the packaging."""

from __future__ import annotations

import array
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import mp_util
import sagellm_comm as sc
from sagellm_comm import _lib
from sagellm_comm.tensor import BufferView, DType


class ExportsTest(unittest.TestCase):
    """The seed's __all__ and the README's names exist."""

    def test_seed_exports(self) -> None:
        for name in ("__version__", "get_comm_backend",
                     "register_comm_backend", "list_comm_backends",
                     "is_comm_backend_available", "CommBackend",
                     "CommBackendType", "CommGroup", "CommOp",
                     "TopologyNode", "GlooBackend", "DeviceId", "Link",
                     "LinkKind", "ReduceOp", "Topology", "CollectiveOps",
                     "TopologyDetector"):
            self.assertTrue(hasattr(sc, name), name)
            self.assertIn(name, sc.__all__)
        from sagellm_comm.backend import CommBackend  # noqa: F401
        from sagellm_comm.gloo_backend import GlooBackend  # noqa: F401
        from sagellm_comm.topology import DeviceId, Link  # noqa: F401

    def test_ops_and_types(self) -> None:
        self.assertIs(sc.ReduceOp, sc.CommOp)
        self.assertIs(sc.CommOp.PROD, sc.CommOp.PRODUCT)
        self.assertEqual(sc.CommOp.parse("prod"), sc.CommOp.PRODUCT)
        self.assertEqual(int(sc.CommOp.AVG.to_redop()), 4)
        self.assertEqual(sc.CommBackendType.GLOO.value, "gloo")
        with self.assertRaisesRegex(ValueError, "Unsupported operation"):
            sc.CommOp.parse("xor")


class RegistryTest(unittest.TestCase):
    """get/register/list/is_available."""

    def test_gloo_and_auto(self) -> None:
        self.assertIn("gloo", sc.list_comm_backends())
        self.assertTrue(sc.is_comm_backend_available("gloo"))
        self.assertIsInstance(sc.get_comm_backend("gloo"), sc.GlooBackend)
        self.assertIsInstance(sc.get_comm_backend(), sc.GlooBackend)
        self.assertFalse(sc.is_comm_backend_available("nccl"))
        with self.assertRaises(NotImplementedError):
            sc.get_comm_backend("nccl")
        with self.assertRaisesRegex(ValueError, "Unknown comm backend"):
            sc.get_comm_backend("nope")

    def test_create_falls_back_with_warning(self) -> None:
        with self.assertWarnsRegex(RuntimeWarning, "nccl"):
            b = sc.CommBackend.create("nccl")
        self.assertIsInstance(b, sc.GlooBackend)
        with self.assertRaises(sc.CommUnsupportedError):
            sc.CommBackend.create("nccl", fallback=False)

    def test_register(self) -> None:
        sc.register_comm_backend("test_custom", sc.GlooBackend,
                                 priority=-5)
        self.assertIn("test_custom", sc.list_comm_backends())
        self.assertIsInstance(sc.get_comm_backend("test_custom"),
                              sc.GlooBackend)
        with self.assertRaisesRegex(ValueError, "already registered"):
            sc.register_comm_backend("test_custom", sc.GlooBackend)


class SeedMessagesTest(unittest.TestCase):
    """The seed's fail-fast messages, matched as its tests match them."""

    def test_init_checks(self) -> None:
        b = sc.GlooBackend()
        with self.assertRaisesRegex(ValueError, "Invalid rank"):
            b.init(rank=-1, world_size=2, master_addr="127.0.0.1",
                   master_port=29500)
        with self.assertRaisesRegex(ValueError, "Invalid rank"):
            b.init(rank=2, world_size=2)
        with self.assertRaisesRegex(ValueError, "Invalid world_size"):
            b.init(rank=0, world_size=0)
        self.assertFalse(b._initialized)

    def test_not_initialized(self) -> None:
        b = sc.GlooBackend()
        for call in (b.get_rank, b.get_world_size, b.barrier,
                     lambda: b.all_reduce(array.array("f", [1.0])),
                     lambda: b.send(array.array("f", [1.0]), 0),
                     lambda: b.create_group([0])):
            with self.assertRaisesRegex(RuntimeError, "not initialized"):
                call()

    def test_single_rank_world(self) -> None:
        b = sc.GlooBackend()
        b.init(rank=0, world_size=1, master_addr="127.0.0.1",
               master_port=mp_util.free_port())
        try:
            self.assertEqual((b.get_rank(), b.get_world_size()), (0, 1))
            self.assertEqual((b._rank, b._world_size), (0, 1))
            with self.assertRaisesRegex(ValueError, "ranks cannot be empty"):
                b.create_group([])
            with self.assertRaisesRegex(ValueError, "Invalid ranks"):
                b.create_group([1])
            with self.assertRaisesRegex(ValueError, "Invalid dst_rank"):
                b.send(array.array("f", [1.0]), dst_rank=1)
            with self.assertRaisesRegex(ValueError, "Invalid src_rank"):
                b.recv(array.array("f", [1.0]), src_rank=5)
            t = array.array("f", [3.0, 4.0])
            b.all_reduce(t, op=sc.CommOp.AVG)
            self.assertEqual(list(t), [3.0, 4.0])
            self.assertNotEqual(b.last_selection().algo, "")
            topo = sc.Topology.discover(b)
            self.assertEqual(topo.world_size, 1)
            self.assertEqual(topo.to_dict()["nodes"][0]["node_id"], "node_0")
        finally:
            b.destroy()

    def test_mock_backend_threads(self) -> None:
        import threading
        port, out = mp_util.free_port(), {}

        def rank_body(r: int) -> None:
            m = sc.get_comm_backend("mock")
            m.init(r, 3, "127.0.0.1", port)
            a = array.array("d", [float(r), 1.0])
            m.all_reduce(a)
            out[r] = list(a)
            m.destroy()
        threads = [threading.Thread(target=rank_body, args=(r,),
                                    daemon=True) for r in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(out, {r: [3.0, 3.0] for r in range(3)})

    def test_detector_env(self) -> None:
        saved = {k: os.environ.pop(k, None) for k in ("RANK", "WORLD_SIZE")}
        try:
            with self.assertRaisesRegex(RuntimeError,
                                        "RANK environment variable is not "
                                        "set"):
                sc.TopologyDetector().detect()
            os.environ["RANK"] = "1"
            with self.assertRaisesRegex(ValueError,
                                        "WORLD_SIZE environment variable is "
                                        "not set"):
                sc.TopologyDetector().detect()
            os.environ["WORLD_SIZE"] = "3"
            topo = sc.TopologyDetector().detect()
            self.assertEqual(len(topo.nodes), 3)
            self.assertEqual((topo.rank, topo.world_size), (1, 3))
            self.assertIn(topo.nodes[0].device_type, ["cuda", "cpu"])
            d = topo.to_dict()
            self.assertEqual({"rank", "world_size", "nodes"} - set(d),
                             set())
            self.assertTrue(all("node_id" in n for n in d["nodes"]))
        finally:
            for k, v in saved.items():
                os.environ.pop(k, None)
                if v is not None:
                    os.environ[k] = v


class TopologyRecordsTest(unittest.TestCase):
    """DeviceId, Link, LinkKind, CommGroup, TopologyNode as the seed."""

    def test_device_id(self) -> None:
        d = sc.DeviceId(node_id="node0", device_index=1, device_type="cuda")
        self.assertEqual(str(d), "node0:cuda:1")
        self.assertEqual(sc.DeviceId.parse("node1:cuda:2"),
                         sc.DeviceId("node1", 2, "cuda"))
        self.assertEqual(len({d, sc.DeviceId("node0", 1)}), 1)
        with self.assertRaises(Exception):
            d.node_id = "x"  # frozen
        for bad in ("", "node0", "node0:cuda", "node0:cuda:x", "a:b:c:1"):
            with self.assertRaisesRegex(ValueError, "Invalid device string"):
                sc.DeviceId.parse(bad)

    def test_link(self) -> None:
        a, b = sc.DeviceId("node0", 0), sc.DeviceId("node0", 1)
        uni = sc.Link(a, b, sc.LinkKind.PCIE, 32.0, False)
        s = str(uni)
        for part in ("node0:cuda:0", "node0:cuda:1", "pcie", "32.0", "->"):
            self.assertIn(part, s)
        self.assertNotIn("<->", s)
        self.assertIn("<->", str(sc.Link(a, b, sc.LinkKind.NVLINK, 300.0,
                                         True)))
        self.assertEqual([k.value for k in list(sc.LinkKind)[:6]],
                         ["nvlink", "pcie", "infiniband", "roce", "hccs",
                          "network"])
        self.assertEqual(sc.LinkKind.IB.value, "infiniband")
        self.assertEqual(sc.LinkKind.parse("tcp"), sc.LinkKind.NETWORK)

    def test_group_and_node_records(self) -> None:
        g = sc.CommGroup(group_id="test_group", ranks=[0, 1, 2],
                         world_size=3,
                         backend_type=sc.CommBackendType.GLOO)
        self.assertEqual((g.group_id, g.ranks, g.world_size),
                         ("test_group", [0, 1, 2], 3))
        self.assertEqual(g.get_group_rank(2), 2)
        with self.assertRaisesRegex(RuntimeError, "not initialized"):
            g.all_reduce(array.array("f", [1.0]))
        n = sc.TopologyNode(node_id="node_0", rank=0, device_type="cpu",
                            device_index=0, hostname="localhost")
        self.assertEqual(n.to_dict()["node_id"], "node_0")


class ErrorsTest(unittest.TestCase):
    """Every libscomm status maps to its class, with the C message."""

    def test_status_classes_match_library(self) -> None:
        lib = _lib.load()
        for status in range(-1, -17, -1):
            cls = sc.errors.error_class(status)
            self.assertIsNot(cls, sc.CommError, status)
            name = lib.scomm_status_name(status).decode()
            self.assertEqual(cls.status_name, name)
        self.assertTrue(issubclass(sc.CommTimeoutError, TimeoutError))
        self.assertTrue(issubclass(sc.PeerLostError, ConnectionError))
        self.assertTrue(issubclass(sc.CommInvalidArgumentError, ValueError))
        self.assertEqual(sc.CommTimeoutError("x").code, "deadline_exceeded")
        self.assertEqual(sc.PeerLostError("x").kv_code, "KV_TRANSFER_FAILED")
        self.assertEqual(set(sc.CommError("m").to_dict()),
                         {"error_type", "code", "message", "context",
                          "retryable"})

    def test_library_message_is_raised(self) -> None:
        with self.assertRaises(sc.CommInvalidArgumentError) as cm:
            sc.Communicator.init(rank=0, world_size=1,
                                 master_addr="127.0.0.1", master_port=70000)
        self.assertIn("master_port", str(cm.exception))
        self.assertEqual(cm.exception.status, -1)
        with self.assertRaises(sc.CommUnsupportedError) as cm:
            sc.Communicator.init(rank=0, world_size=1,
                                 master_addr="127.0.0.1",
                                 master_port=mp_util.free_port(),
                                 backend="no-such-backend")
        self.assertIn("not available", str(cm.exception))
        self.assertIn("no-such-backend", str(cm.exception))

    def test_vendor_probe(self) -> None:
        infos = sc.vendor_backends()
        if not _lib.load().has("scomm_backend_count"):
            self.skipTest("libscomm without vendor backends")
        self.assertIn("nccl", [i["name"] for i in infos])
        for info in infos:
            self.assertTrue(info["found"] or info["detail"], info)


class TensorTest(unittest.TestCase):
    """Buffer-protocol objects become (pointer, count, dtype), no copy."""

    def test_formats(self) -> None:
        for obj, dtype, count in (
                (array.array("f", [1, 2, 3]), DType.FLOAT32, 3),
                (array.array("d", [1]), DType.FLOAT64, 1),
                (array.array("i", [1, 2]), DType.INT32, 2),
                (array.array("q", [1]), DType.INT64, 1),
                (array.array("B", [1]), DType.UINT8, 1),
                (bytearray(5), DType.UINT8, 5),
                (memoryview(bytearray(16)).cast("f"), DType.FLOAT32, 4)):
            with BufferView(obj, writable=True) as v:
                self.assertEqual((v.dtype, v.count), (dtype, count))
        with BufferView(bytearray(8), writable=True, dtype="bf16") as v:
            self.assertEqual((v.dtype, v.count), (DType.BFLOAT16, 4))

    def test_zero_copy_and_lock(self) -> None:
        buf = bytearray(16)
        view = BufferView(buf, writable=True)
        import ctypes
        ctypes.memset(view.ptr, 7, 16)
        self.assertEqual(buf, bytearray([7] * 16))
        with self.assertRaises(BufferError):
            buf.extend(b"x")
        view.release()
        buf.extend(b"x")

    def test_rejections(self) -> None:
        with self.assertRaisesRegex(ValueError, "writable"):
            BufferView(b"abcd", writable=True)
        with self.assertRaisesRegex(ValueError, "contiguous"):
            BufferView(memoryview(bytearray(8))[::2], writable=False)
        with self.assertRaisesRegex(ValueError, "buffer protocol"):
            BufferView([1.0], writable=False)
        with self.assertRaisesRegex(ValueError, "2-byte integers"):
            BufferView(array.array("h", [1]), writable=False)
        with self.assertRaisesRegex(ValueError, "whole number"):
            BufferView(bytearray(3), writable=False, dtype="float32")


def _find_cli() -> str:
    cli = os.environ.get("SCOMM_CLI")
    if cli:
        return cli
    lib = Path(_lib.load().path).resolve()
    cand = lib.parent / "scomm"
    return str(cand) if cand.is_file() else ""


class VersionTest(unittest.TestCase):
    """The package carries the seed's distribution version (isagellm-comm
    0.5.x); the CLI and the library agree on libscomm's."""

    def test_versions(self) -> None:
        self.assertRegex(sc.__version__, r"^0\.5\.\d+(\.\d+)?$")
        text = sc.library_version()
        lib = _lib.load()
        major, minor, patch = (int(x) for x in text.split("."))
        self.assertEqual(lib.scomm_version(),
                         major * 10000 + minor * 100 + patch)
        cli = _find_cli()
        if not cli:
            self.skipTest("scomm CLI not found (set SCOMM_CLI)")
        out = subprocess.run([cli, "version"], capture_output=True,
                             text=True, timeout=30).stdout
        m = re.match(r"scomm (\S+)", out)
        self.assertIsNotNone(m, out)
        self.assertEqual(m.group(1), text)

    def test_pyproject_version(self) -> None:
        text = (mp_util.PKG_ROOT / "pyproject.toml").read_text()
        self.assertIn('name = "isagellm-comm"', text)
        self.assertIn(f'version = "{sc.__version__}"', text)


class PackagingTest(unittest.TestCase):
    """`pip install ./python` works offline and the result imports."""

    def test_pip_install_offline(self) -> None:
        probe = subprocess.run([sys.executable, "-m", "pip", "--version"],
                               capture_output=True)
        if probe.returncode != 0:
            self.skipTest("pip is not installed for this interpreter")
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp, "src")
            shutil.copytree(mp_util.PKG_ROOT, src, ignore=shutil.
                            ignore_patterns("__pycache__", "tests", "*.so*"))
            env = dict(os.environ, PIP_NO_INDEX="1",
                       PIP_DISABLE_PIP_VERSION_CHECK="1")
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "install", "--no-deps",
                 "--no-index", "--target", str(Path(tmp, "site")),
                 str(src)], capture_output=True, text=True, env=env,
                timeout=300)
            self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
            code = ("import sagellm_comm as s, sys; "
                    "assert s.__file__.startswith(sys.argv[1]), s.__file__;"
                    " print(s.__version__, s.library_version())")
            run_env = dict(os.environ, PYTHONPATH=str(Path(tmp, "site")),
                           SCOMM_LIBRARY=str(Path(_lib.load().path)
                                             .resolve()))
            proc = subprocess.run([sys.executable, "-c", code,
                                   str(Path(tmp, "site"))],
                                  capture_output=True, text=True,
                                  env=run_env, cwd=tmp, timeout=60)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertEqual(proc.stdout.split(),
                             [sc.__version__, sc.library_version()])
            self.assertTrue(list(Path(tmp, "site").glob(
                f"isagellm_comm-{sc.__version__}.dist-info")))
            eps = list(Path(tmp, "site").glob("*.dist-info/entry_points.txt"))
            self.assertIn("sagellm.comm_backends", eps[0].read_text())


if __name__ == "__main__":
    unittest.main(verbosity=2)
