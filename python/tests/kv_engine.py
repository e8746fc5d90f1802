"""A fake prefill engine and a fake decode engine around the KV connector.

Run as ``kv_engine.py prefill|decode [options]`` by test_kv.py, which
plays the proxy: it sends "REQ <id> <tokens>" lines to the prefill
engine, forwards the prefill's "PARAMS <json>" lines to the decode
engine, and reads the decode engine's "OK <id>" / "FAILED <id> <blocks>"
lines and final "SUMMARY <json>".

Both engines keep paged caches in torch float16 tensors with random block
tables (prefill: block 16, head-major; decode: block 32, token-major), so
every load is regrouped. Every element of request r, layer l, K|V k,
head h, token t, dim d holds an integer computed by ``value()``: exact in
float16, so the decode side checks the data it received against the
formula, not against anything the prefill side sent. The prefill engine
finishes requests in a random order and poisons a request's blocks (-inf)
as soon as the connector releases them: a block read after release could
not pass the check.
"""

from __future__ import annotations

import argparse
import json
import queue
import random
import sys
import threading
import time

import torch

from sagellm_comm.kv import KVOrder
from sagellm_comm.kv.connector import (KVConnectorRole, ScommConnectorConfig,
                                       ScommKVConnector)

LAYERS, HEADS, DIM = 4, 2, 64


def value(req: int, layers: torch.Tensor, kv: torch.Tensor,
          heads: torch.Tensor, tokens: torch.Tensor,
          dims: torch.Tensor) -> torch.Tensor:
    """The reference content (integers in [-1019, 1019])."""
    x = (req * 131 + layers * 31 + kv * 17 + heads * 7 + tokens * 3 + dims)
    return (x % 2039 - 1019).to(torch.float16)


def reference(req: int, layer: int, ntok: int) -> torch.Tensor:
    """[2, heads, ntok, dim] of one request and layer."""
    kv = torch.arange(2).view(2, 1, 1, 1)
    h = torch.arange(HEADS).view(1, HEADS, 1, 1)
    t = torch.arange(ntok).view(1, 1, ntok, 1)
    d = torch.arange(DIM).view(1, 1, 1, DIM)
    return value(req, torch.tensor(layer), kv, h, t, d)


class Request:
    """What the connector reads from an engine's request."""

    def __init__(self, rid: str, ntok: int, params: dict) -> None:
        self.request_id = rid
        self.prompt_token_ids = list(range(ntok))
        self.kv_transfer_params = params


def _caches(blocks: int, block_tokens: int, order: KVOrder,
            cross: bool) -> tuple:
    if order == KVOrder.HEAD_MAJOR:
        shape = (blocks, 2, HEADS, block_tokens, DIM)
    else:
        shape = (blocks, block_tokens, 2, HEADS, DIM)
    if cross:
        whole = torch.full((LAYERS,) + shape, float("-inf"),
                           dtype=torch.float16)
        return whole, [whole[i] for i in range(LAYERS)]
    layers = [torch.full(shape, float("-inf"), dtype=torch.float16)
              for _ in range(LAYERS)]
    return None, layers


def _register(conn: ScommKVConnector, whole, layers) -> None:
    if whole is not None:
        conn.register_cross_layers_kv_cache(whole)
    else:
        conn.register_kv_caches({f"layer{i}": t
                                 for i, t in enumerate(layers)})


def _layer_names(conn: ScommKVConnector) -> list:
    return list(conn._layer_names)


def _write(cache: torch.Tensor, order: KVOrder, bt: int, table: list,
           data: torch.Tensor, ntok: int) -> None:
    """Scatter data [2, H, ntok, D] into blocks of one layer."""
    for i, b in enumerate(table):
        lo, hi = i * bt, min((i + 1) * bt, ntok)
        piece = data[:, :, lo:hi, :]
        if order == KVOrder.HEAD_MAJOR:
            cache[b, :, :, :hi - lo, :] = piece
        else:
            cache[b, :hi - lo] = piece.permute(2, 0, 1, 3)


def _read(cache: torch.Tensor, order: KVOrder, bt: int, table: list,
          ntok: int) -> torch.Tensor:
    parts = []
    for i, b in enumerate(table):
        n = min(bt, ntok - i * bt)
        if order == KVOrder.HEAD_MAJOR:
            parts.append(cache[b, :, :, :n, :])
        else:
            parts.append(cache[b, :n].permute(1, 2, 0, 3))
    return torch.cat(parts, dim=2)


def prefill(args: argparse.Namespace) -> int:
    order, bt = KVOrder.HEAD_MAJOR, 16
    cfg = ScommConnectorConfig(kv_role="kv_producer", token="fake-engine",
                               engine_id="prefill0", block_tokens=bt,
                               kv_order=order, send_timeout_s=60)
    sched = ScommKVConnector(cfg, KVConnectorRole.SCHEDULER)
    worker = ScommKVConnector(cfg, KVConnectorRole.WORKER)
    nblocks = 1024
    whole, layers = _caches(nblocks, bt, order, args.cross)
    _register(worker, whole, layers)
    sched.set_xfer_handshake_metadata({0: worker.get_handshake_metadata()})
    free = list(range(nblocks))
    rng = random.Random(args.seed)
    inbox: "queue.Queue[str]" = queue.Queue()
    threading.Thread(target=lambda: [inbox.put(l) for l in sys.stdin],
                     daemon=True).start()
    running: dict = {}          # rid -> (ntok, blocks)
    held: dict = {}             # rid -> blocks kept for the decode side
    expected = args.requests
    finished = 0
    released = 0
    hold_back = set()
    while released < expected:
        try:
            line = inbox.get(timeout=0.005)
        except queue.Empty:
            line = None
        if line:
            _, rid, ntok = line.split()
            ntok = int(ntok)
            table = rng.sample(free, -(-ntok // bt))
            for b in table:
                free.remove(b)
            for layer in range(LAYERS):
                _write(layers[layer], order, bt, table,
                       reference(int(rid), layer, ntok), ntok)
            running[rid] = (ntok, table)
        # finish a random running request now and then (out of order)
        if running and (len(running) >= 4 or rng.random() < 0.3):
            rid = rng.choice(sorted(running))
            ntok, table = running.pop(rid)
            finished += 1
            req = Request(rid, ntok, {"do_remote_decode": True})
            keep, params = sched.request_finished(req, table)
            assert keep and params["remote_block_ids"] == table
            held[rid] = table
            if finished > args.hold_after:
                hold_back.add(rid)      # the worker never learns of it
            print("PARAMS " + json.dumps(params), flush=True)
        meta = sched.build_connector_meta()
        for rid in hold_back & set(meta.reqs_to_send):
            del meta.reqs_to_send[rid]
        worker.bind_connector_metadata(meta)
        worker.start_load_kv()
        for name in _layer_names(worker):
            worker.save_kv_layer(name)
        worker.wait_for_save()
        sent, _ = worker.get_finished(set())
        for rid in sent or ():
            table = held.pop(rid)
            for layer in range(LAYERS):
                for b in table:
                    layers[layer][b].fill_(float("-inf"))
            free.extend(table)
            released += 1
            err = worker.get_send_errors().get(rid)
            print(f"RELEASED {rid} {'ok' if err is None else err}",
                  flush=True)
        worker.clear_connector_metadata()
    worker.shutdown()
    return 0


def decode(args: argparse.Namespace) -> int:
    order, bt = KVOrder.TOKEN_MAJOR, 32
    cfg = ScommConnectorConfig(kv_role="kv_consumer", token="fake-engine",
                               engine_id="decode0", block_tokens=bt,
                               kv_order=order, async_load=not args.sync,
                               load_timeout_s=args.load_timeout)
    sched = ScommKVConnector(cfg, KVConnectorRole.SCHEDULER)
    worker = ScommKVConnector(cfg, KVConnectorRole.WORKER)
    nblocks = 512
    whole, layers = _caches(nblocks, bt, order, args.cross)
    _register(worker, whole, layers)
    names = _layer_names(worker)
    free = list(range(nblocks))
    rng = random.Random(args.seed + 1)
    inbox: "queue.Queue[str]" = queue.Queue()
    threading.Thread(target=lambda: [inbox.put(l) for l in sys.stdin],
                     daemon=True).start()
    tables: dict = {}
    ntoks: dict = {}
    ok, failed = [], {}
    all_invalid: set = set()
    t_fail: dict = {}
    while len(ok) + len(failed) < args.requests:
        step_new = []
        while True:
            try:
                line = inbox.get(timeout=0.002 if step_new else 0.01)
            except queue.Empty:
                break
            params = json.loads(line.split(" ", 1)[1])
            rid = "d" + params["remote_request_id"]
            ntok = params["num_tokens"]
            req = Request(rid, ntok, params)
            n, is_async = sched.get_num_new_matched_tokens(req, 0)
            assert n == ntok and is_async == (not args.sync), (n, is_async)
            table = rng.sample(free, -(-ntok // bt))
            for b in table:
                free.remove(b)
            tables[rid], ntoks[rid] = table, ntok
            sched.update_state_after_alloc(req, table, n)
            step_new.append(rid)
        meta = sched.build_connector_meta()
        assert set(meta.reqs_to_recv) == set(step_new)
        worker.bind_connector_metadata(meta)
        worker.start_load_kv()
        if args.sync:
            # the model's layers, in order: each checks its layer at once
            for li, name in enumerate(names):
                worker.wait_for_layer_load(name)
                fails = worker.get_load_failures()
                for rid in step_new:
                    if rid in fails:
                        continue
                    got = _read(layers[li], order, bt, tables[rid],
                                ntoks[rid])
                    want = reference(int(rid[1:]), li, ntoks[rid])
                    assert torch.equal(got, want), \
                        f"{rid} layer {li} after wait_for_layer_load"
        _, done = worker.get_finished(set())
        invalid = worker.get_block_ids_with_load_errors()
        all_invalid |= invalid
        fails = worker.get_load_failures()
        for rid in sorted(done or ()):
            if rid in fails:
                f = fails[rid]
                assert sorted(f.block_ids) == sorted(tables[rid]), rid
                failed[rid] = f
                t_fail[rid] = time.time()
                print(f"FAILED {rid} {','.join(map(str, f.block_ids))} "
                      f"{f.kv_code} {f.error}", flush=True)
                continue
            for li in range(LAYERS):
                got = _read(layers[li], order, bt, tables[rid], ntoks[rid])
                want = reference(int(rid[1:]), li, ntoks[rid])
                if not torch.equal(got, want):
                    bad = (got != want).nonzero()[0].tolist()
                    raise AssertionError(f"{rid} layer {li}: wrong data at "
                                         f"[kv, head, token, dim] {bad}")
            ok.append(rid)
            print(f"OK {rid}", flush=True)
        worker.clear_connector_metadata()
    want_invalid = set()
    for rid in failed:
        want_invalid |= set(tables[rid])
    assert all_invalid == want_invalid, (sorted(all_invalid),
                                         sorted(want_invalid))
    print("SUMMARY " + json.dumps({
        "ok": ok, "failed": sorted(failed),
        "fail_times": t_fail, "invalid_blocks": len(all_invalid)}),
        flush=True)
    worker.shutdown()
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=("prefill", "decode"))
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--hold-after", type=int, default=1 << 30,
                    help="prefill: finished requests after this many are "
                    "never handed to the worker (their loads wait)")
    ap.add_argument("--sync", action="store_true",
                    help="decode: synchronous loads, per-layer waits")
    ap.add_argument("--cross", action="store_true",
                    help="one cache tensor for all layers")
    ap.add_argument("--load-timeout", type=float, default=30.0)
    args = ap.parse_args()
    return prefill(args) if args.role == "prefill" else decode(args)


if __name__ == "__main__":
    sys.exit(main())
