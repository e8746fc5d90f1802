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
# The rendezvous port stays reserved while mpirun runs: a socket bound to
# it with SO_REUSEADDR, never listening (rank 0's listener may bind it, no
# other program's bind(0) or connect() gets it; st_ranks.c note 6).
# --oversubscribe: 4 ranks on fewer cores; --bind-to none: let them float.
python3 - "$mpirun" "$bin" <<'PY'
import os, socket, subprocess, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
port = str(s.getsockname()[1])
sys.exit(subprocess.call(
    ["timeout", "500", sys.argv[1], "-n", "4", "--oversubscribe",
     "--bind-to", "none", "-x", "MASTER_ADDR=127.0.0.1",
     "-x", "MASTER_PORT=" + port,
     "-x", "TEST_COLL_SCOPE=" + os.environ.get("TEST_COLL_SCOPE", "full"),
     sys.argv[2], "--from-env"]))
PY
rc=$?
[[ $rc -eq 0 ]] && echo "1 passed, 0 failed" || echo "FAIL: mpirun exit $rc"
exit $rc
