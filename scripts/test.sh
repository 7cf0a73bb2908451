#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Installs what is missing, builds, and runs every test (unit, multi-rank under mpirun,
# install, perf check pass, fuzz replays, the Python adapters under mpirun with the venv
# that has Horovod).
#   scripts/test.sh               all tests
#   scripts/test.sh --sanitize    the same, built with AddressSanitizer + UBSan (build-sanitize/)
#   scripts/test.sh -- -L mpi     arguments after -- go to ctest
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

sanitize=0 ctest_args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --sanitize) sanitize=1; shift ;;
    --) shift; ctest_args=("$@"); break ;;
    *) ctest_args+=("$1"); shift ;;
  esac
done

spccl_install_packages "${spccl_apt_packages[@]}"
if [[ $sanitize -eq 1 ]]; then
  SPCCL_BUILD_DIR=$SPCCL_ROOT/build-sanitize
  SPCCL_CMAKE_ARGS="-DSPCCL_SANITIZE=ON -DSPCCL_WITH_CUDA=OFF ${SPCCL_CMAKE_ARGS:-}"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  spccl_build
  cd "$SPCCL_BUILD_DIR"
  # Leak checking where the process is ours alone: the unit tests and the fuzz replays.
  ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:allocator_may_return_null=1" ctest --output-on-failure --timeout 600 -L "unit|fuzz"
  # Under mpirun, Open MPI's dlopen'ed components keep allocations past their unloading,
  # which LeakSanitizer cannot attribute: there ASan checks memory errors, not leaks.
  # Python loads libspccl into an uninstrumented interpreter: adapter tests run in the plain build.
  ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1" ctest --output-on-failure --timeout 600 -LE "unit|fuzz|python" \
    "${ctest_args[@]}"
  exit 0
fi
spccl_setup_python  # before the build: CMake picks the venvs' Pythons for the adapter tests
spccl_setup_torch
spccl_build
cd "$SPCCL_BUILD_DIR"
ctest --output-on-failure --timeout 600 "${ctest_args[@]}"
