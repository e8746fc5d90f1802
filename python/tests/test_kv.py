"""The KV channel and the KV connector across real processes.

KVChannelTest: sagellm_comm.kv between two processes (listen/accept and
connect, and the communicator form): torch, numpy and bytearray regions,
different block sizes and orders, priorities, per-layer waits, stats, the
KV error classes. ConnectorTest: a fake prefill engine and a fake decode
engine (kv_engine.py) with this test as their proxy: 50 requests finishing
out of order with exact data, and the prefill engine killed mid-request.
ConnectorTPTest: prefill and decode workers at different TP degrees
(kv_tp.py).
Skipped without torch (the engines keep their caches in torch tensors).
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import mp_util

HAVE_TORCH = importlib.util.find_spec("torch") is not None
HERE = os.path.dirname(os.path.abspath(__file__))


class _Engines:
    """The two engine processes and the proxy threads between them."""

    def __init__(self, prefill_args: list, decode_args: list) -> None:
        env = mp_util.rank_env(0, 1, 0)
        self.logs = [tempfile.TemporaryFile(mode="w+") for _ in range(2)]
        cmd = [sys.executable, os.path.join(HERE, "kv_engine.py")]
        self.prefill = subprocess.Popen(
            cmd + ["prefill"] + prefill_args, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.logs[0], text=True,
            env=env, start_new_session=True)
        self.decode = subprocess.Popen(
            cmd + ["decode"] + decode_args, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.logs[1], text=True,
            env=env, start_new_session=True)
        self.lock = threading.Lock()
        self.params: list = []
        self.released: list = []
        self.ok: list = []
        self.failed: dict = {}
        self.summary = None
        self.lines: list = []
        threading.Thread(target=self._from_prefill, daemon=True).start()
        threading.Thread(target=self._from_decode, daemon=True).start()

    def _from_prefill(self) -> None:
        for line in self.prefill.stdout:
            with self.lock:
                self.lines.append("P " + line.rstrip())
            if line.startswith("PARAMS "):
                rid = json.loads(line[7:])["remote_request_id"]
                with self.lock:
                    self.params.append(rid)
                try:
                    self.decode.stdin.write(line)
                    self.decode.stdin.flush()
                except (BrokenPipeError, ValueError):
                    pass
            elif line.startswith("RELEASED "):
                with self.lock:
                    self.released.append(line.split()[1:])

    def _from_decode(self) -> None:
        for line in self.decode.stdout:
            now = time.monotonic()
            with self.lock:
                self.lines.append("D " + line.rstrip())
                if line.startswith("OK "):
                    self.ok.append(line.split()[1])
                elif line.startswith("FAILED "):
                    self.failed[line.split()[1]] = (now, line.rstrip())
                elif line.startswith("SUMMARY "):
                    self.summary = json.loads(line[8:])

    def send_requests(self, count: int, seed: int) -> None:
        rng = random.Random(seed)
        for i in range(count):
            ntok = rng.choice([1, 15, 16, 17, 31, 32, 33]) \
                if i < 7 else rng.randint(1, 300)
            self.prefill.stdin.write(f"REQ {i} {ntok}\n")
            self.prefill.stdin.flush()
            time.sleep(rng.random() * 0.004)

    def wait_until(self, cond, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if cond():
                    return True
            time.sleep(0.01)
        return False

    def finish(self, timeout: float) -> tuple:
        rcs = []
        deadline = time.monotonic() + timeout
        for p in (self.prefill, self.decode):
            try:
                rcs.append(p.wait(max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                rcs.append(None)
        return tuple(rcs)

    def kill(self, p: subprocess.Popen) -> None:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def describe(self) -> str:
        out = []
        for name, log in zip(("prefill", "decode"), self.logs):
            log.seek(0)
            text = log.read()
            out.append(f"--- {name} stderr\n" + "\n".join(
                text.splitlines()[-40:]))
        with self.lock:
            out.append("--- lines\n" + "\n".join(self.lines[-60:]))
        return "\n".join(out)

    def close(self) -> None:
        for p in (self.prefill, self.decode):
            if p.poll() is None:
                self.kill(p)
                p.wait()
        for p in (self.prefill, self.decode):
            for f in (p.stdin, p.stdout):
                try:
                    f.close()
                except (OSError, ValueError):
                    pass
        for log in self.logs:
            log.close()


class ConnectorUnitTest(unittest.TestCase):
    """The connector's scheduler logic, head slicing, refusals; one
    process, no torch."""

    def setUp(self) -> None:
        from sagellm_comm.kv import connector
        self.c = connector

    def conn(self, role: str, **kw):
        c = self.c
        cfg = c.ScommConnectorConfig(kv_role=role, token="t", **kw)
        return (c.ScommKVConnector(cfg, c.KVConnectorRole.SCHEDULER),
                c.ScommKVConnector(cfg, c.KVConnectorRole.WORKER))

    def test_tp_head_slices(self) -> None:
        from sagellm_comm.kv import HeadRange as H
        f = self.c.tp_head_slices
        self.assertEqual(f(8, 2, 2, 1), [(1, H(0, 4), H(0, 4))])
        self.assertEqual(f(8, 4, 2, 1), [(2, H(0, 2), H(0, 2)),
                                         (3, H(0, 2), H(2, 2))])
        self.assertEqual(f(8, 2, 4, 3), [(1, H(2, 2), H(0, 2))])
        self.assertEqual(f(8, 1, 4, 2), [(0, H(4, 2), H(0, 2))])
        self.assertEqual(f(8, 4, 1, 0), [(q, H(0, 2), H(2 * q, 2))
                                         for q in range(4)])
        with self.assertRaisesRegex(ValueError, "evenly"):
            f(6, 4, 2, 0)
        # fewer KV heads than TP: replicas (vLLM: rank r holds head
        # r // (TP / heads)); decode rank q takes replica q % replicas
        self.assertEqual([f(2, 4, 2, q) for q in range(2)],
                         [[(0, H(0, 1), H(0, 1))], [(3, H(0, 1), H(0, 1))]])
        self.assertEqual(f(2, 4, 1, 0), [(0, H(0, 1), H(0, 1)),
                                         (2, H(0, 1), H(1, 1))])
        self.assertEqual([f(2, 2, 4, q) for q in range(4)],
                         [[(s, H(0, 1), H(0, 1))] for s in (0, 0, 1, 1)])
        self.assertEqual([self.c.tp_consumers(2, 4, 2, p)
                          for p in range(4)], [1, 0, 0, 1])
        with self.assertRaisesRegex(ValueError, "evenly"):
            f(2, 3, 2, 0)

    def test_scheduler_flow(self) -> None:
        class Req:
            def __init__(self, rid, n, params):
                self.request_id = rid
                self.prompt_token_ids = list(range(n))
                self.kv_transfer_params = params
        psched, _ = self.conn("kv_producer", port=40000, tp_size=2,
                              block_tokens=16)
        keep, params = psched.request_finished(
            Req("p1", 40, {"do_remote_decode": True}), [7, 3, 9])
        self.assertTrue(keep)
        self.assertEqual((params["remote_block_ids"], params["num_tokens"],
                          params["remote_addrs"]),
                         ([7, 3, 9], 40, [["127.0.0.1", 40000],
                                          ["127.0.0.1", 40001]]))
        self.assertEqual(psched.request_finished(Req("p2", 4, {}), [1]),
                         (False, None))
        meta = psched.build_connector_meta()
        self.assertEqual(list(meta.reqs_to_send), ["p1"])
        self.assertEqual(psched.build_connector_meta().reqs_to_send, {})
        dsched, _ = self.conn("kv_consumer", block_tokens=16)
        req = Req("d1", 40, dict(params))
        self.assertEqual(dsched.get_num_new_matched_tokens(req, 0),
                         (40, True))
        self.assertEqual(dsched.get_num_new_matched_tokens(req, 32),
                         (8, True))        # a whole-block local prefix
        self.assertEqual(dsched.get_num_new_matched_tokens(req, 8),
                         (0, False))       # not whole blocks: compute
        self.assertEqual(dsched.get_num_new_matched_tokens(
            Req("d2", 5, {}), 0), (0, False))
        dsched.update_state_after_alloc(req, ([4, 5, 6],), 8)
        spec = dsched.build_connector_meta().reqs_to_recv["d1"]
        self.assertEqual((spec.local_block_ids, spec.first_token,
                          spec.remote_request_id, spec.remote_tp_size),
                         ([4, 5, 6], 32, "p1", 2))
        self.assertFalse(req.kv_transfer_params["do_remote_prefill"])

    def test_tp_split_problems_are_reported_failures(self) -> None:
        """Heads that do not split over the prefill TP, and a prefill
        rank without an address: each fails exactly its request (all
        its blocks), before any connection."""
        c = self.c
        _, worker = self.conn("kv_consumer", tp_size=2, tp_rank=1)
        from sagellm_comm.kv import KVLayout
        lay = KVLayout(1, 2, 8, 16, 4, "float16")
        worker._add_region(lay, bytearray(lay.region_bytes), [])
        worker._set_layers(["l0"])
        odd = c.RecvSpec("r", [0, 1], [5, 6], 20, "e", "127.0.0.1", 1,
                         "p", remote_tp_size=3)
        noaddr = c.RecvSpec("s", [2], [7], 8, "e", "127.0.0.1", 1, "q",
                            remote_tp_size=4,
                            remote_addrs=[("127.0.0.1", 1)] * 2)
        worker.bind_connector_metadata(c.ScommConnectorMetadata(
            {"r": odd, "s": noaddr}))
        worker.start_load_kv()
        sent, done = worker.get_finished()
        self.assertEqual((sent, done), (None, {"r", "s"}))
        self.assertEqual(worker.get_block_ids_with_load_errors(), {0, 1, 2})
        fails = worker.get_load_failures()
        self.assertEqual(fails["r"].block_ids, [0, 1])
        self.assertEqual(fails["r"].kv_code, "KV_TRANSFER_FAILED")
        self.assertIn("prefill TP 3 -> decode TP 2", str(fails["r"].error))
        self.assertIn("do not split evenly", str(fails["r"].error))
        self.assertEqual(fails["s"].block_ids, [2])
        self.assertEqual(fails["s"].kv_code, "KV_METADATA_MISMATCH")
        self.assertIn("no address for prefill rank 2", str(fails["s"].error))
        self.assertEqual(worker.get_block_ids_with_load_errors(), set())
        self.assertEqual(worker._remotes, {})

    def test_control_refuses_bad_token_and_big_frames(self) -> None:
        import socket as _s
        import struct as _st
        from sagellm_comm.kv import KVLayout
        _, worker = self.conn("kv_producer")
        lay = KVLayout(1, 1, 8, 4, 2, "float32")
        worker._add_region(lay, bytearray(lay.region_bytes), [])
        worker._set_layers(["l0"])
        meta = worker.get_handshake_metadata()
        try:
            with _s.create_connection((meta["host"], meta["port"]), 5) as s:
                body = json.dumps({"type": "hello", "token": "x"}).encode()
                s.sendall(_st.pack(">I", len(body)) + body)
                n = _st.unpack(">I", s.recv(4))[0]
                self.assertIn(b"token", s.recv(n))
            with _s.create_connection((meta["host"], meta["port"]), 5) as s:
                s.sendall(_st.pack(">I", 1 << 30))
                s.settimeout(5)
                self.assertEqual(s.recv(1), b"")   # dropped, nothing read
        finally:
            worker.shutdown()


@unittest.skipUnless(HAVE_TORCH, "torch is not installed for this "
                     "interpreter (apt install python3-torch)")
class ConnectorTest(unittest.TestCase):
    """Fake prefill and decode engines through the connector."""

    def test_fifty_requests_out_of_order(self) -> None:
        """50 requests, random block tables, block 16 head-major ->
        block 32 token-major, finished out of order: every request's
        data exact on the decode side; every prefill block released."""
        eng = _Engines([], [])
        try:
            eng.send_requests(50, seed=7)
            rcs = eng.finish(180)
            self.assertEqual(rcs, (0, 0), eng.describe())
            self.assertEqual(sorted(eng.summary["ok"]),
                             sorted(f"d{i}" for i in range(50)),
                             eng.describe())
            self.assertEqual(eng.summary["failed"], [])
            self.assertNotEqual(eng.params, sorted(eng.params, key=int),
                                "requests finished in order")
            self.assertEqual(len(eng.released), 50)
            self.assertTrue(all(r[1] == "ok" for r in eng.released),
                            eng.released)
        finally:
            eng.close()

    def test_sync_layer_waits_cross_layer_cache(self) -> None:
        """Synchronous loads into one all-layers tensor: each layer is
        checked right after wait_for_layer_load returns for it."""
        eng = _Engines(["--cross", "--requests", "8"],
                       ["--cross", "--sync", "--requests", "8"])
        try:
            eng.send_requests(8, seed=3)
            rcs = eng.finish(120)
            self.assertEqual(rcs, (0, 0), eng.describe())
            self.assertEqual(len(eng.summary["ok"]), 8, eng.describe())
        finally:
            eng.close()

    def test_prefill_killed_mid_request(self) -> None:
        """The prefill engine hands its worker only the first 30 finished
        requests; the decode side asks for all 50; then the prefill is
        SIGKILLed. The decode side must report exactly the other 20 as
        failed (all their blocks, KV_TRANSFER_FAILED) well within the
        30 s load timeout, and the 30 complete with exact data."""
        eng = _Engines(["--hold-after", "30"], ["--load-timeout", "30"])
        try:
            eng.send_requests(50, seed=11)
            self.assertTrue(eng.wait_until(
                lambda: len(eng.params) == 50 and len(eng.ok) == 30, 120),
                eng.describe())
            time.sleep(0.5)   # the decode side has asked for the rest
            with eng.lock:
                held = {f"d{r}" for r in eng.params[30:]}
                early = dict(eng.failed)
            self.assertEqual(early, {}, eng.describe())
            t_kill = time.monotonic()
            eng.kill(eng.prefill)
            rcs = eng.finish(60)
            self.assertEqual(rcs[1], 0, eng.describe())
            self.assertEqual(set(eng.summary["failed"]), held,
                             eng.describe())
            self.assertEqual(set(eng.summary["ok"]),
                             {f"d{r}" for r in eng.params[:30]})
            worst = max(t for t, _ in eng.failed.values()) - t_kill
            self.assertLess(worst, 10.0, f"failures reported {worst:.1f} s "
                            "after the kill")
            for _, line in eng.failed.values():
                self.assertIn("KV_TRANSFER_FAILED", line)
            print(f"\n20 loads failed {worst:.2f} s after the kill")
        finally:
            eng.close()


@unittest.skipUnless(HAVE_TORCH, "torch is not installed for this "
                     "interpreter (apt install python3-torch)")
class ConnectorTPTest(unittest.TestCase):
    """Prefill and decode workers at different TP degrees through the
    connector (kv_tp.py): 6 processes play TP 2->4, 4->2, 1->2 over 4 KV
    heads, 4->2 and 2->4 over 2 (replicated) heads, and 4->2 with one
    request refused; exact data per decode rank, only its heads moved
    (bytes_raw per prefill/decode pair), every prefill block released."""

    def test_different_tp(self) -> None:
        res = mp_util.run_ranks(6, "kv_tp:main", 180)
        self.assertTrue(all(rc == 0 for rc, _, _ in res),
                        mp_util.describe(res))
        print("\n" + "".join(out for _, out, _ in res[:1]), end="")


@unittest.skipUnless(HAVE_TORCH, "torch is not installed for this "
                     "interpreter (apt install python3-torch)")
class KVChannelTest(unittest.TestCase):
    """sagellm_comm.kv between two processes."""

    def test_channel_np2(self) -> None:
        res = mp_util.run_ranks(2, "kv_workers:channel", 120)
        self.assertTrue(all(rc == 0 for rc, _, _ in res),
                        mp_util.describe(res))
        print("\n" + "".join(out for _, out, _ in res), end="")

    def test_tp_heads(self) -> None:
        """Prefill TP 2 -> decode TP 4 and 4 -> 2: head-range plans from
        tp_head_slices, exact, only the pair's heads on the wire."""
        for src, dst in ((2, 4), (4, 2)):
            res = mp_util.run_ranks(src + dst, "kv_workers:tp_heads", 120,
                                    args=(str(src), str(dst)))
            self.assertTrue(all(rc == 0 for rc, _, _ in res),
                            mp_util.describe(res))

    def test_connect_comm_np2(self) -> None:
        res = mp_util.run_ranks(2, "kv_workers:comm_form", 120)
        self.assertTrue(all(rc == 0 for rc, _, _ in res),
                        mp_util.describe(res))


if __name__ == "__main__":
    unittest.main(verbosity=2)
