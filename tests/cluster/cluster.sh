#!/usr/bin/env bash
# A test cluster on one machine: HOSTS network namespaces as hosts, each
# with its own hostname (a UTS namespace per rank, all named hostN) and an
# eth0 veth into one bridge that lives in a namespace of its own (the
# machine's own network is never touched), RANKS ranks per host, the
# master on host 0. Ranks of one host share a hostname, so scomm treats
# them as local (shared memory); ranks of different hosts talk tcp over
# the bridge. Optional shaping of every host's egress with tc tbf (this
# kernel has no netem: bandwidth only, no delay).
#
#   cluster.sh [-H HOSTS] [-r RANKS_PER_HOST] [--rate 10gbit] [-t SEC]
#              [-L SCOMM] -- PROG ARGS...
#
# Every rank runs PROG ARGS with SCOMM_RANK, SCOMM_WORLD_SIZE,
# SCOMM_MASTER_ADDR/PORT and SCOMM_JOB_TOKEN set (plus CLUSTER_HOST). With
# -L SCOMM the ranks are started as a user would across hosts: one
# `SCOMM launch --nnodes HOSTS --node-rank h ...` per host, each with the
# job's SCOMM_JOB_TOKEN in its environment, and --bind-to none: these
# hosts share one machine's CPUs, so each launcher's share of them would
# stack ranks of different hosts on the same CPUs. The
# exit code is 0 when every rank (or launcher) exits 0; 77 (skip) when not
# root or namespaces are unavailable; 1 otherwise. A rank that outlives -t
# SEC (default 300) is killed and counts as a failure. Namespaces are
# removed on every exit path. Output lines are prefixed with the rank
# ([rN]), or with -L the host ([hN]).
set -u
hosts=2 per=2 rate="" tmo=300 launcher=""
while [[ $# -gt 0 ]]; do
    case $1 in
        -H) hosts=$2; shift 2 ;;
        -r) per=$2; shift 2 ;;
        --rate) rate=$2; shift 2 ;;
        -t) tmo=$2; shift 2 ;;
        -L) launcher=$2; shift 2 ;;
        --) shift; break ;;
        *) echo "cluster.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ $# -gt 0 ]] || { echo "usage: cluster.sh [-H N] [-r N] [--rate R] [-t SEC] [-L SCOMM] -- PROG ARGS..." >&2; exit 2; }
if [[ $(id -u) -ne 0 ]]; then echo "SKIP: needs root for ip netns"; exit 77; fi
for tool in ip unshare tc; do
    command -v $tool > /dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done

tag=$$
net=$((tag % 200 + 20))            # 10.88.<net>.0/24, per run
sw=scsw$tag
ns=()
cleanup() {
    local p
    for p in "${pids[@]:-}"; do [[ -n $p ]] && kill -9 "$p" 2> /dev/null; done
    for n in "${ns[@]:-}"; do [[ -n $n ]] && ip netns del "$n" 2> /dev/null; done
    ip netns del "$sw" 2> /dev/null
}
pids=()
trap cleanup EXIT
trap 'exit 1' INT TERM

if ! ip netns add "$sw" 2> /dev/null; then
    echo "SKIP: cannot create network namespaces here"; exit 77
fi
ip -n "$sw" link add br0 type bridge || { echo "SKIP: no bridge support"; exit 77; }
ip -n "$sw" link set br0 up
for ((h = 0; h < hosts; h++)); do
    n=schost${h}_$tag
    ip netns add "$n" || exit 1
    ns+=("$n")
    ip link add "sc${tag}h$h" type veth peer name "sc${tag}s$h" || { echo "SKIP: no veth"; exit 77; }
    ip link set "sc${tag}h$h" netns "$n"
    ip link set "sc${tag}s$h" netns "$sw"
    ip -n "$n" link set "sc${tag}h$h" name eth0
    ip -n "$n" addr add "10.88.$net.$((h + 1))/24" dev eth0
    ip -n "$n" link set eth0 up
    ip -n "$n" link set lo up
    ip -n "$sw" link set "sc${tag}s$h" master br0
    ip -n "$sw" link set "sc${tag}s$h" up
    if [[ -n $rate ]]; then
        tc -n "$n" qdisc add dev eth0 root tbf rate "$rate" burst 1mb latency 10ms \
            || { echo "cluster.sh: tc tbf $rate failed" >&2; exit 1; }
    fi
done

world=$((hosts * per))
port=$((20000 + tag % 20000))
token=cluster$tag$RANDOM$RANDOM$RANDOM
if [[ -n $launcher ]]; then
    for ((h = 0; h < hosts; h++)); do
        ip netns exec "${ns[$h]}" unshare --uts sh -c 'hostname "$0" && exec "$@"' \
            "host$h" env SCOMM_JOB_TOKEN=$token CLUSTER_HOST=$h \
            "$launcher" launch --nnodes "$hosts" --node-rank "$h" \
            --master-addr "10.88.$net.1" --master-port "$port" \
            --nproc-per-node "$per" --bind-to none -- "$@" \
            > >(sed -u "s/^/[h$h] /") 2>&1 &
        pids+=($!)
    done
    world=0 # the loop below starts no rank itself
fi
for ((r = 0; r < world; r++)); do
    h=$((r / per))
    ip netns exec "${ns[$h]}" unshare --uts sh -c 'hostname "$0" && exec "$@"' \
        "host$h" env SCOMM_RANK=$r SCOMM_WORLD_SIZE=$world \
        SCOMM_MASTER_ADDR=10.88.$net.1 SCOMM_MASTER_PORT=$port \
        SCOMM_JOB_TOKEN=$token CLUSTER_HOST=$h "$@" \
        > >(sed -u "s/^/[r$r] /") 2>&1 &
    pids+=($!)
done

rc=0
what=rank
[[ -n $launcher ]] && what=launcher
deadline=$((SECONDS + tmo))
for i in "${!pids[@]}"; do
    p=${pids[$i]}
    while kill -0 "$p" 2> /dev/null && [[ $SECONDS -lt $deadline ]]; do sleep 0.2; done
    if kill -0 "$p" 2> /dev/null; then
        echo "cluster.sh: $what $i still running after ${tmo} s: killed" >&2
        kill -9 "$p" 2> /dev/null
        rc=1
    fi
    wait "$p"; r=$?
    if [[ $r -ne 0 ]]; then
        echo "cluster.sh: $what $i exited with $r" >&2
        rc=1
    fi
    pids[$i]=""
done
exit $rc
