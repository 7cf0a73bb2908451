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
# The Python adapters and their tests (Debian's PyTorch; see FRAMEWORKS.md), and what
# building Horovod from source needs.
spccl_python_packages=(
  python3 python3-dev python3-venv python3-numpy python3-pytest python3-mpi4py
  python3-torch libtorch-dev python3-sklearn python3-matplotlib
  pybind11-dev python3-packaging python3-cloudpickle python3-psutil python3-yaml python3-cffi python3-wheel
)
SPCCL_VENV=${SPCCL_VENV:-$SPCCL_ROOT/.venv}
SPCCL_HOROVOD_VERSION=${SPCCL_HOROVOD_VERSION:-0.28.1}

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

# A venv over Debian's Python (/usr/bin/python3, not a pyenv one: only it sees python3-torch)
# with Horovod built from source against Debian's torch and Open MPI. Cached: a second run
# only checks the import. --no-build-isolation: an isolated build cannot import `packaging`
# nor find torch. HOROVOD_WITHOUT_GLOO=1 and MAKEFLAGS keep the build to a few minutes.
# A failed build is reported and the Horovod tests skip with the reason (under CI=true they
# fail: tests/python/conftest.py require()); nothing else stops.
spccl_setup_python() {
  spccl_install_packages "${spccl_python_packages[@]}"
  if [[ ! -x $SPCCL_VENV/bin/python ]]; then
    /usr/bin/python3 -m venv --system-site-packages "$SPCCL_VENV"
  fi
  if "$SPCCL_VENV/bin/python" -c "import horovod.torch" 2>/dev/null; then
    return 0
  fi
  echo "spccl setup: building horovod==$SPCCL_HOROVOD_VERSION into $SPCCL_VENV (a few minutes)"
  local log="$SPCCL_VENV/horovod-build.log"
  if ! HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_MPI=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1 \
      HOROVOD_WITHOUT_GLOO=1 MAKEFLAGS=-j"${SPCCL_JOBS:-$(nproc)}" \
      "$SPCCL_VENV/bin/pip" install --no-build-isolation --no-cache-dir \
      "horovod==$SPCCL_HOROVOD_VERSION" >"$log" 2>&1; then
    echo "spccl setup: horovod build FAILED (Horovod tests will skip); last lines of $log:" >&2
    tail -n 20 "$log" >&2
  fi
}

# PyTorch as users run it (PyPI's current torch; Debian's 1.13 cannot run torchrun on Python
# 3.11) in a venv of its own, for the torchrun tests of the PyTorch adapters. About 2 minutes
# and 5 GB. Debian's pytest and NumPy serve through --system-site-packages; --ignore-installed
# keeps Debian's torch out. Horovod stays in SPCCL_VENV on Debian's torch.
SPCCL_TORCH_VENV=${SPCCL_TORCH_VENV:-$SPCCL_ROOT/.venv-torch}
export SPCCL_TORCH_VENV
spccl_setup_torch() {
  spccl_install_packages python3 python3-venv python3-pytest python3-numpy
  if "$SPCCL_TORCH_VENV/bin/python" -c "import torch, pytest; assert int(torch.__version__.split('.')[0]) >= 2" \
      2>/dev/null; then
    return 0
  fi
  [[ -x $SPCCL_TORCH_VENV/bin/python ]] || /usr/bin/python3 -m venv --system-site-packages "$SPCCL_TORCH_VENV"
  echo "spccl setup: pip install torch into $SPCCL_TORCH_VENV (about 2 minutes, 5 GB)"
  local log="$SPCCL_TORCH_VENV/torch-install.log"
  if ! "$SPCCL_TORCH_VENV/bin/pip" install --ignore-installed torch >"$log" 2>&1; then
    echo "spccl setup: pip install torch FAILED (the torchrun tests fail under CI); last lines of $log:" >&2
    tail -n 20 "$log" >&2
  fi
}

# Open MPI refuses root without these; the tests and the demo run as whoever runs them.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  spccl_install_packages "${spccl_apt_packages[@]}"
  spccl_setup_python
  spccl_setup_torch
  spccl_build
fi
