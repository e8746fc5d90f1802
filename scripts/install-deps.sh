#!/usr/bin/env bash
# Install the Debian packages scomm needs to build, test and benchmark.
# Idempotent: installs only what is missing (one `apt-get update` first),
# never upgrades. Not root: prints the command to run with sudo instead.
#
#   scripts/install-deps.sh            build + test dependencies
#   scripts/install-deps.sh --bench    also the peers measured side by side
set -euo pipefail

pkgs=(build-essential cmake pkg-config iproute2 python3
      libhwloc-dev hwloc libyaml-dev libjansson-dev libmicrohttpd-dev
      libzstd-dev liblz4-dev libfabric-dev libfabric-bin clang prometheus
      openmpi-bin python3-pip python3-venv python3-torch python3-numpy)
if [[ "${1:-}" == "--bench" ]]; then
    pkgs+=(libopenmpi-dev mpich libmpich-dev iperf3 gnuplot-nox)
fi

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install-deps: all ${#pkgs[@]} packages present"
    exit 0
fi

cmd="apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: missing: ${missing[*]}"
    echo "install-deps: run as root:  sudo sh -c '$cmd'"
    exit 1
fi
echo "install-deps: installing ${missing[*]}"
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
