#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Installs what spccl needs on a fresh Debian 12 machine and builds it into build/.
# Sourced by test.sh and demo.sh; safe to run again (installs only what is missing).
#   SPCCL_BUILD_DIR   build directory (default: build)
#   SPCCL_CMAKE_ARGS  extra CMake arguments
set -euo pipefail

SPCCL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SPCCL_BUILD_DIR=${SPCCL_BUILD_DIR:-$SPCCL_ROOT/build}
export DEBIAN_FRONTEND=noninteractive

spccl_apt_packages=(
  build-essential cmake pkg-config git
  libgtest-dev libgmock-dev libbenchmark-dev
  libopenmpi-dev openmpi-bin libucx-dev ucx-utils
  iproute2 valgrind python3-matplotlib
)

spccl_install_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  echo "spccl setup: installing ${missing[*]}"
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo=sudo
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

spccl_build() {
  cmake -S "$SPCCL_ROOT" -B "$SPCCL_BUILD_DIR" -DCMAKE_BUILD_TYPE=Release ${SPCCL_CMAKE_ARGS:-} >/dev/null
  cmake --build "$SPCCL_BUILD_DIR" -j"$(nproc)"
}

# Open MPI refuses root without these; the tests and the demo run as whoever runs them.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  spccl_install_packages "${spccl_apt_packages[@]}"
  spccl_build
fi
