#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Installs what is missing, builds, and runs every test (unit, multi-rank under mpirun).
#   scripts/test.sh            all tests
#   scripts/test.sh -L mpi     extra arguments go to ctest
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

spccl_install_packages "${spccl_apt_packages[@]}"
spccl_build
cd "$SPCCL_BUILD_DIR"
ctest --output-on-failure --timeout 600 "$@"
