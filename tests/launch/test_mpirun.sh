#!/usr/bin/env bash
# Ranks started by Open MPI's mpirun, with no flags beyond the master
# address: the collectives suite (test_coll --from-env) on 4 ranks. scomm
# reads OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK; mpirun only forwards
# MASTER_ADDR/MASTER_PORT (-x). Skips (77) without Open MPI.
#   test_mpirun.sh PATH_TO_test_coll
set -u
bin=${1:?usage: test_mpirun.sh test_coll}
mpirun=$(command -v mpirun.openmpi || true)
if [[ -z $mpirun ]]; then
    echo "SKIP: Open MPI's mpirun not installed (apt-get install openmpi-bin)"
    exit 77
fi
# Open MPI refuses root unless told; harmless otherwise.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# --oversubscribe: 4 ranks on fewer cores; --bind-to none: let them float.
timeout 500 "$mpirun" -n 4 --oversubscribe --bind-to none \
    -x MASTER_ADDR=127.0.0.1 -x MASTER_PORT="$port" "$bin" --from-env
rc=$?
[[ $rc -eq 0 ]] && echo "1 passed, 0 failed" || echo "FAIL: mpirun exit $rc"
exit $rc
