"""Prefill and decode workers at different TP degrees, through the KV
connector (test_kv.py, ConnectorTPTest).

Six real processes play several scenarios in turn (torch starts once per
process): in scenario (P, Q, H), global ranks 0..P-1 are the TP ranks of
a prefill engine and P..P+Q-1 those of a decode engine, over a model with
H KV heads; the rest wait at the barriers. A seed backend (gloo) carries
the prefill workers' addresses and the prefill scheduler's transfer
params (what an engine's proxy would). Caches are paged torch float16
tensors: prefill block 16 head-major, decode block 32 token-major, one
tensor per layer, random block tables shared by a side's ranks (one
scheduler per engine), several requests loaded over two steps; every
other scenario allows the same-host copy.

Checks, against references computed here and not by the connector: every
decode rank's blocks hold exactly its heads (vLLM's split: H/TP
consecutive heads per rank, or, with H < TP, head r // (TP/H)); blocks
and tokens outside the loads untouched; no load failed; every prefill
rank released every request, none with a send error, well within
send_timeout_s (a prefill rank holding an unused replica included); each
prefill rank's endpoint to decode rank q moved exactly the heads they
share (bytes_raw), and each decode rank loaded from exactly the prefill
ranks that own its heads.
"""

from __future__ import annotations

import json
import os
import random
import time

import numpy as np
import torch

import sagellm_comm as sc
from sagellm_comm.kv import KVOptions, KVOrder
from sagellm_comm.kv.connector import (KVConnectorRole, ScommConnectorConfig,
                                       ScommKVConnector)

# (prefill TP, decode TP, KV heads, one request refused)
SCENARIOS = ((2, 4, 4, False), (4, 2, 4, False), (1, 2, 4, False),
             (4, 2, 2, False), (2, 4, 2, False), (4, 2, 4, True))
WORLD = 6
LAYERS, DIM = 2, 16
P_BT, D_BT = 16, 32
P_BLOCKS, D_BLOCKS = 48, 24
REQUESTS = 6
PARAMS_BYTES = 1 << 16


class Request:
    def __init__(self, rid: str, ntok: int, params: dict) -> None:
        self.request_id = rid
        self.prompt_token_ids = list(range(ntok))
        self.kv_transfer_params = params


def heads_of(h: int, tp: int, rank: int) -> list:
    """Global KV heads of a TP rank, as vLLM splits them."""
    if h >= tp:
        return list(range(rank * h // tp, (rank + 1) * h // tp))
    return [rank // (tp // h)]


def source_of(h: int, p_tp: int, q_tp: int, q: int, head: int) -> int:
    """The prefill rank decode rank q takes global head ``head`` from
    (with replicas, replica q % replicas, as the connector documents)."""
    if h >= p_tp:
        return head // (h // p_tp)
    reps = p_tp // h
    return head * reps + q % reps


def idle_prefill(h: int, p_tp: int, q_tp: int) -> set:
    """Prefill ranks no decode rank takes a head from (replicas)."""
    used = {source_of(h, p_tp, q_tp, q, x) for q in range(q_tp)
            for x in heads_of(h, q_tp, q)}
    return set(range(p_tp)) - used


def reference(req: int, layer: int, heads: list, ntok: int) -> torch.Tensor:
    """[2, len(heads), ntok, DIM]: exact integers in float16."""
    kv = torch.arange(2).view(2, 1, 1, 1)
    hh = torch.tensor(heads).view(1, -1, 1, 1)
    t = torch.arange(ntok).view(1, 1, ntok, 1)
    d = torch.arange(DIM).view(1, 1, 1, DIM)
    x = req * 131 + layer * 31 + kv * 17 + hh * 7 + t * 3 + d
    return (x % 2039 - 1019).to(torch.float16)


def _bad(ntoks: list, fail: bool) -> int:
    """The request whose load the prefill side refuses (-1: none): the
    decode side asks for more tokens than it has (up to its last local
    block), so every prefill rank it asks refuses."""
    return next(r for r, n in enumerate(ntoks) if n % D_BT) if fail else -1


def _requests(scen: int) -> tuple:
    """Token counts and both sides' block tables (shared by a side)."""
    rng = random.Random(1000 + scen)
    ntoks = [rng.choice([1, 16, 31, 32, 33]) if i < 2 else
             rng.randint(1, 150) for i in range(REQUESTS)]
    p_free, d_free = list(range(P_BLOCKS)), list(range(D_BLOCKS))
    p_tab, d_tab = [], []
    for n in ntoks:
        p_tab.append(rng.sample(p_free, -(-n // P_BT)))
        d_tab.append(rng.sample(d_free, -(-n // D_BT)))
        p_free = [b for b in p_free if b not in p_tab[-1]]
        d_free = [b for b in d_free if b not in d_tab[-1]]
    return ntoks, p_tab, d_tab


def _expect(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)


def _side(role: str, scen: int, rank: int, tp: int, h: int, fail: bool,
          **kw) -> tuple:
    """A worker's config, requests, refused request, heads, connector and
    per-layer caches (all -inf)."""
    ntoks, p_tab, d_tab = _requests(scen)
    mine = heads_of(h, tp, rank)
    prefill = role == "kv_producer"
    cfg = ScommConnectorConfig(
        kv_role=role, token="tp", engine_id=f"{role}{scen}", tp_rank=rank,
        tp_size=tp, block_tokens=P_BT if prefill else D_BT,
        num_kv_heads=h,
        kv_options=KVOptions(zero_copy=bool(scen % 2)),   # TCP or same-host
        kv_order=KVOrder.HEAD_MAJOR if prefill else KVOrder.TOKEN_MAJOR,
        **kw)
    shape = ((P_BLOCKS, 2, len(mine), P_BT, DIM) if prefill else
             (D_BLOCKS, D_BT, 2, len(mine), DIM))
    caches = [torch.full(shape, float("-inf"), dtype=torch.float16)
              for _ in range(LAYERS)]
    return (cfg, ntoks, p_tab if prefill else d_tab, _bad(ntoks, fail), mine,
            ScommKVConnector(cfg, KVConnectorRole.WORKER), caches)


def _prefill(b, scen: int, p_tp: int, q_tp: int, h: int, fail: bool,
             p: int) -> str:
    cfg, ntoks, p_tab, bad, mine, worker, caches = _side(
        "kv_producer", scen, p, p_tp, h, fail, send_timeout_s=60)
    for r, (n, tab) in enumerate(zip(ntoks, p_tab)):
        for layer in range(LAYERS):
            ref = reference(r, layer, mine, n)
            for i, blk in enumerate(tab):
                piece = ref[:, :, i * P_BT:(i + 1) * P_BT]
                caches[layer][blk, :, :, :piece.shape[2]] = piece
    worker.register_kv_caches({f"l{i}": c for i, c in enumerate(caches)})
    ports = np.zeros(8, dtype=np.int64)
    ports[p] = worker.get_handshake_metadata()["port"]
    b.all_reduce(ports)
    sched = ScommKVConnector(cfg, KVConnectorRole.SCHEDULER)
    sched.set_xfer_handshake_metadata(
        {q: {"host": "127.0.0.1", "port": int(ports[q])}
         for q in range(p_tp)})
    params = []
    for r, (n, tab) in enumerate(zip(ntoks, p_tab)):
        keep, prm = sched.request_finished(
            Request(str(r), n, {"do_remote_decode": True}), tab)
        _expect(keep, "request_finished did not keep the blocks")
        params.append(prm)
    buf = np.zeros(PARAMS_BYTES, dtype=np.uint8)
    data = json.dumps(params).encode()
    buf[:len(data)] = np.frombuffer(data, dtype=np.uint8)
    b.broadcast(buf, 0)
    worker.bind_connector_metadata(sched.build_connector_meta())
    worker.start_load_kv()
    worker.clear_connector_metadata()
    released, t0 = set(), time.monotonic()
    while len(released) < REQUESTS:
        _expect(time.monotonic() - t0 < 30, f"prefill rank {p}: released "
                f"only {sorted(released)} after 30 s: {worker._send_cons} "
                f"{worker._send_left} {[p.xfers for p in worker._peers]} "
                f"{worker._send_waiting}")
        sent, _ = worker.get_finished(set())
        released |= sent or set()
        time.sleep(0.005)
    errs = worker.get_send_errors()
    _expect(set(errs) == ({str(bad)} if fail else set()),
            f"prefill rank {p}: send errors {errs}")
    b.barrier()                      # decode ranks checked their data
    # exactly the shared heads went to each decode rank, whole blocks
    nblk = sum(len(t) for r, t in enumerate(p_tab) if r != bad)
    got = {}
    for st in worker.get_transfer_stats():
        _expect(st["direction"] == "send", str(st))
        got[st["peer_tp_rank"]] = st["stats"].bytes_raw
    want = {}
    for q in range(q_tp):
        shared = [x for x in heads_of(h, q_tp, q)
                  if source_of(h, p_tp, q_tp, q, x) == p]
        if shared or (p in idle_prefill(h, p_tp, q_tp) and
                      p % q_tp == q):          # data, or a notice
            want[q] = LAYERS * nblk * 2 * len(shared) * P_BT * DIM * 2
    _expect(got == want, f"prefill rank {p}: bytes_raw per decode rank "
            f"{got}, its shared heads are {want}")
    worker.shutdown()
    return (f"prefill {p}/{p_tp} heads {mine}: bytes to decode ranks "
            f"{got}")


def _decode(b, scen: int, p_tp: int, q_tp: int, h: int, fail: bool,
            q: int) -> str:
    cfg, ntoks, d_tab, bad, mine, worker, caches = _side(
        "kv_consumer", scen, q, q_tp, h, fail, load_timeout_s=20)
    worker.register_kv_caches({f"l{i}": c for i, c in enumerate(caches)})
    b.all_reduce(np.zeros(8, dtype=np.int64))
    buf = np.zeros(PARAMS_BYTES, dtype=np.uint8)
    b.broadcast(buf, 0)
    params = json.loads(bytes(buf[buf != 0]).decode())
    if fail:
        params[bad]["num_tokens"] = len(d_tab[bad]) * D_BT
    sched = ScommKVConnector(cfg, KVConnectorRole.SCHEDULER)
    done, t0 = set(), time.monotonic()
    for step in (range(0, REQUESTS, 2), range(1, REQUESTS, 2)):
        for r in step:
            req = Request(f"d{r}", ntoks[r], dict(params[r]))
            n, _ = sched.get_num_new_matched_tokens(req, 0)
            sched.update_state_after_alloc(req, d_tab[r], n)
        worker.bind_connector_metadata(sched.build_connector_meta())
        worker.start_load_kv()
        worker.clear_connector_metadata()
    while len(done) < REQUESTS:
        _expect(time.monotonic() - t0 < 30, f"decode rank {q}: loads "
                f"{sorted(done)} ended after 30 s")
        _, recv = worker.get_finished(set())
        done |= recv or set()
        time.sleep(0.005)
    fails = worker.get_load_failures()
    what = f"decode rank {q}: {[(k, str(f.error)) for k, f in fails.items()]}"
    invalid = worker.get_block_ids_with_load_errors()
    if fail:
        _expect(set(fails) == {f"d{bad}"}, what)
        f = fails[f"d{bad}"]
        _expect(sorted(f.block_ids) == sorted(d_tab[bad]) and
                invalid == set(d_tab[bad]) and
                f.kv_code == "KV_METADATA_MISMATCH" and
                "tokens" in str(f.error), what + f" {f.kv_code} {invalid}")
    else:
        _expect(not fails and not invalid, what)
    for r, n in enumerate(ntoks):
        if r == bad:
            continue
        for layer in range(LAYERS):
            parts = [caches[layer][blk, :min(D_BT, n - i * D_BT)]
                     for i, blk in enumerate(d_tab[r])]
            got = torch.cat(parts).permute(1, 2, 0, 3)
            want = reference(r, layer, mine, n)
            if not torch.equal(got, want):
                bad = (got != want).nonzero()[0].tolist()
                raise AssertionError(
                    f"decode rank {q} request {r} layer {layer}: wrong "
                    f"data at [kv, head, token, dim] {bad}")
    used = {blk for t in d_tab for blk in t}
    for layer in range(LAYERS):
        c = caches[layer]
        for blk in range(D_BLOCKS):
            if blk not in used:
                _expect(bool(torch.isinf(c[blk]).all()),
                        f"decode rank {q}: block {blk} written")
        for r, n in enumerate(ntoks):
            if n % D_BT and r != bad:
                tail = c[d_tab[r][-1], n % D_BT:]
                _expect(bool(torch.isinf(tail).all()),
                        f"decode rank {q}: request {r} tail written")
    srcs = sorted(st["peer_tp_rank"] for st in worker.get_transfer_stats())
    want_srcs = sorted({source_of(h, p_tp, q_tp, q, x) for x in mine} |
                       {s for s in idle_prefill(h, p_tp, q_tp)
                        if s % q_tp == q})
    _expect(srcs == want_srcs, f"decode rank {q}: endpoints to prefill "
            f"ranks {srcs}, expected {want_srcs}")
    b.barrier()
    worker.shutdown()
    return f"decode {q}/{q_tp} heads {mine}: exact from prefill {srcs}"


def main() -> None:
    b = sc.get_comm_backend("gloo")
    b.init(rank=int(os.environ["RANK"]), world_size=WORLD,
           master_addr=os.environ["MASTER_ADDR"],
           master_port=int(os.environ["MASTER_PORT"]))
    r = b.get_rank()
    for scen, (p_tp, q_tp, h, fail) in enumerate(SCENARIOS):
        b.barrier()
        if r < p_tp:
            line = _prefill(b, scen, p_tp, q_tp, h, fail, r)
        elif r < p_tp + q_tp:
            line = _decode(b, scen, p_tp, q_tp, h, fail, r - p_tp)
        else:
            b.all_reduce(np.zeros(8, dtype=np.int64))
            b.broadcast(np.zeros(PARAMS_BYTES, dtype=np.uint8), 0)
            b.barrier()
            line = "idle"
        print(f"TP {p_tp}->{q_tp} H {h}{' (1 refused)' if fail else ''}: "
              f"{line}", flush=True)
    b.barrier()
    b.destroy()
