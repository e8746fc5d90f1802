#!/usr/bin/env bash
# test_launch_kill.sh - on the namespace cluster (cluster.sh -L), 2 hosts x
# 2 ranks started by one `scomm launch --nnodes 2` per host; rank 3 (on
# host1) kills itself with SIGKILL. The launcher on host0 must end the job
# within seconds with a message naming host1's rank 3 (ctest
# cluster.launch.kill). Root only; exit 77 (skip) otherwise.
#
#   test_launch_kill.sh CLUSTER_SH SCOMM
set -u
CLUSTER=${1:?usage: test_launch_kill.sh CLUSTER_SH SCOMM}
SCOMM=${2:?usage: test_launch_kill.sh CLUSTER_SH SCOMM}
out=$(mktemp "${TMPDIR:-/tmp}/scomm-cluster-kill.XXXXXX")
trap 'rm -f "$out"' EXIT

start=$SECONDS
bash "$CLUSTER" -H 2 -r 2 -t 60 -L "$SCOMM" -- sh -c \
    'if [ "$RANK" = 3 ]; then sleep 1; kill -9 $$; fi; exec sleep 50' \
    > "$out" 2>&1
rc=$?
took=$((SECONDS - start))
cat "$out"
[ $rc -eq 77 ] && exit 77
fails=0
if [ $rc -eq 0 ]; then
    echo "FAIL - the job succeeded although rank 3 was killed"
    fails=1
fi
if grep -q '^\[h0\] scomm launch: node 1 (host1): rank 3 (pid [0-9]*) was killed by signal SIGKILL (9); ending the job' "$out"; then
    echo "ok   - host0's launcher names host1's rank 3"
else
    echo "FAIL - host0's launcher does not name host1's rank 3"
    fails=1
fi
if [ $took -lt 30 ]; then
    echo "ok   - the job ended everywhere in $took s"
else
    echo "FAIL - the job took $took s to end (the ranks sleep 50 s)"
    fails=1
fi
exit $fails
