#!/bin/bash
# test_probe.sh - `scomm probe` against lstopo on this machine (packages,
# NUMA nodes, cores, PUs, caches, NICs, no accelerator), 4 ranks under
# `scomm launch` (one host, 4 local ranks, a shared-memory matrix), and
# `scomm presets` (list, show, validate with file:line:column; without
# libyaml, validate's SCOMM_ERR_UNSUPPORTED message).
#
# Usage: test_probe.sh PATH/TO/scomm SOURCE_DIR [host]
#   host: only part 1 (tests/minimal/test_minimal.sh: the sysfs fallback)
set -u
SCOMM=$1
SRC=$2
ONLY=${3:-}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
unset SCOMM_TOPO_FILE SCOMM_SYSFS_ROOT SCOMM_TOPO_DUMP_FILE SCOMM_PRESET_FILE

command -v lstopo >/dev/null || { echo "SKIP: no lstopo"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: no python3"; exit 77; }

# ---- 1. this host against lstopo ----
"$SCOMM" probe --json > "$TMP/probe.json" || fail "scomm probe --json"
lstopo --of xml -f "$TMP/lstopo.xml" || fail "lstopo --of xml"
lstopo --of console > "$TMP/lstopo.txt" || fail "lstopo --of console"
python3 - "$TMP/probe.json" "$TMP/lstopo.xml" "$TMP/lstopo.txt" <<'PY' || fail "probe disagrees with lstopo"
import json, re, sys
import xml.etree.ElementTree as ET
probe = json.load(open(sys.argv[1]))
host = probe["host"]
cpu = host["cpu"]
objs = list(ET.parse(sys.argv[2]).getroot().iter("object"))
def count(t):
    return sum(1 for o in objs if o.get("type") == t)
def size(t):
    for o in objs:
        if o.get("type") == t:
            return int(o.get("cache_size"))
    return 0
want = {
    "packages": count("Package"), "numa_nodes": count("NUMANode"),
    "cores": count("Core"), "pus": count("PU"),
}
bad = 0
for k, v in want.items():
    print("%-10s probe %-4d lstopo %d" % (k, cpu[k], v))
    if cpu[k] != v:
        bad = 1
for name, t in (("l1d", "L1Cache"), ("l1i", "L1iCache"), ("l2", "L2Cache"),
                ("l3", "L3Cache")):
    c = cpu["caches"][name]
    print("%-10s probe %d x %d, lstopo %d x %d" %
          (name, c["size"], c["count"], size(t), count(t)))
    if c["count"] != count(t) or c["size"] != size(t):
        bad = 1
# NICs: lstopo's Net / OpenFabrics OS devices
txt = open(sys.argv[3]).read()
ls_nets = sorted(set(re.findall(r'Net "([^"]+)"', txt)))
ls_ofed = sorted(set(re.findall(r'OpenFabrics "([^"]+)"', txt)))
pr_nets = sorted(n["netdev"] for n in host["nics"] if n["netdev"])
pr_ofed = sorted(n["name"] for n in host["nics"] if n["kind"] != "tcp")
print("nets       probe %s lstopo %s" % (pr_nets, ls_nets))
print("rdma       probe %s lstopo %s" % (pr_ofed, ls_ofed))
if pr_nets != ls_nets or pr_ofed != ls_ofed:
    bad = 1
# accelerators: lstopo shows GPU / CoProc OS devices for them
ls_acc = len(re.findall(r'(GPU|CoProc) [A-Z]*"', txt))
print("accels     probe %d lstopo %d" % (len(host["accelerators"]), ls_acc))
if len(host["accelerators"]) != ls_acc:
    bad = 1
if probe["recommendation"]["preset"] not in ("high-bw", "low-latency",
                                            "low-cost"):
    bad = 1
sys.exit(bad)
PY
"$SCOMM" probe > "$TMP/probe.txt" || fail "scomm probe (table)"
grep -q "^recommended preset: " "$TMP/probe.txt" || fail "no recommendation"
if [[ "$ONLY" == host ]]; then
    echo "test_probe: host ok"
    exit 0
fi

# ---- 2. four ranks under scomm launch ----
timeout 60 "$SCOMM" launch -n 4 -- "$SCOMM" probe --world --json \
    > "$TMP/world.json" || fail "scomm launch -n 4 -- scomm probe --world"
python3 - "$TMP/world.json" <<'PY' || fail "world view of 4 local ranks"
import json, sys
w = json.load(open(sys.argv[1]))["world"]
assert w["size"] == 4, w["size"]
assert len(w["hosts"]) == 1, w["hosts"]
assert w["hosts"][0]["local_ranks"] == 4
assert sorted(w["hosts"][0]["ranks"]) == [0, 1, 2, 3]
assert [r["local_rank"] for r in w["ranks"]] == [0, 1, 2, 3]
k = w["matrix"]["kind"]
for i in range(4):
    for j in range(4):
        want = "self" if i == j else ("shm-same-numa", "shm-cross-numa")
        assert (k[i][j] == want) if i == j else (k[i][j] in want), (i, j, k)
        assert w["matrix"]["hops"][i][j] == (0 if i == j else
                                             w["matrix"]["hops"][i][j])
assert len(w["links"]) == 6
assert w["links"][0]["src"] == "node0:cpu:0"
print("world ok:", k[0])
PY
timeout 60 "$SCOMM" launch -n 4 -- "$SCOMM" probe --world > "$TMP/world.txt" \
    || fail "probe --world table"
grep -q "4 ranks on 1 host" "$TMP/world.txt" || fail "world table header"
grep -q "^recommended preset: low-latency" "$TMP/world.txt" \
    || fail "4 local ranks should get low-latency"

# ---- 3. presets CLI ----
"$SCOMM" presets list | grep -q "^low-cost " || fail "presets list"
"$SCOMM" presets show high-bw | grep -q "chunk_size: 4194304" \
    || fail "presets show"
if "$SCOMM" info | grep "^features:" | grep -qw yaml; then
    "$SCOMM" presets validate "$SRC/config/kv_transport_presets.yaml" \
        || fail "the shipped presets file does not validate"
    printf 'version: 1\npresets:\n  low-cost:\n    compresion: lz4\n' \
        > "$TMP/bad.yaml"
    out=$("$SCOMM" presets validate "$TMP/bad.yaml" 2>&1) \
        && fail "bad file accepted"
    echo "$out" | grep -q "bad.yaml:4:5: unknown key 'compresion'" \
        || fail "no file:line:column in: $out"
    printf 'presets:\n  low-cost: {backend: tcp\n' > "$TMP/broken.yaml"
    out=$("$SCOMM" presets validate "$TMP/broken.yaml" 2>&1) \
        && fail "broken YAML accepted"
    echo "$out" | grep -Eq "broken.yaml:[0-9]+:[0-9]+: malformed YAML" \
        || fail "malformed YAML message: $out"
else
    out=$("$SCOMM" presets validate "$SRC/config/kv_transport_presets.yaml" \
          2>&1) && fail "a preset file accepted without libyaml"
    echo "$out" | grep -q "presets.yaml: a preset file.*install libyaml-dev" \
        || fail "no libyaml message in: $out"
fi

# ---- 4. SCOMM_PRESET drives the transport knobs at init ----
out=$(SCOMM_PRESET=low-cost SCOMM_LOG_LEVEL=info SCOMM_TRANSPORTS=tcp \
      timeout 60 "$SCOMM" launch -n 2 -- "$SCOMM" bench all_reduce -b 8 -e 8 \
      -n 10 --out "$TMP/bench" 2>&1) || fail "bench under SCOMM_PRESET: $out"
echo "$out" | grep -q "preset low-cost: tcp_nsocks 4" \
    || fail "SCOMM_PRESET=low-cost did not set tcp_nsocks 4: $out"
out=$(SCOMM_PRESET=low-cost SCOMM_TCP_NSOCKS=3 SCOMM_LOG_LEVEL=info \
      SCOMM_TRANSPORTS=tcp timeout 60 "$SCOMM" launch -n 2 -- "$SCOMM" bench \
      all_reduce -b 8 -e 8 -n 10 --out "$TMP/bench" 2>&1) \
    || fail "bench under SCOMM_PRESET + SCOMM_TCP_NSOCKS: $out"
echo "$out" | grep -q "tcp_nsocks 3" \
    || fail "the environment must beat the preset: $out"
out=$(SCOMM_PRESET=nosuch timeout 60 "$SCOMM" launch -n 2 -- "$SCOMM" bench \
      all_reduce -b 8 -e 8 -n 10 --out "$TMP/bench" 2>&1) \
    && fail "an unknown SCOMM_PRESET was accepted"
echo "$out" | grep -q "SCOMM_ERR_BAD_CONFIG: scomm_init: SCOMM_PRESET=nosuch" \
    || fail "unknown preset message: $out"
echo "test_probe: ok"
