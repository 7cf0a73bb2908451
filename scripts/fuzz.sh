#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Builds the libFuzzer targets with clang (ASan + UBSan + coverage) into build-fuzz/ and runs
# each for a bounded time, keeping its corpus in build-fuzz/corpus/<target>.
#   scripts/fuzz.sh [SECONDS_PER_TARGET]      (default 60)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
seconds=${1:-60}

spccl_install_packages "${spccl_apt_packages[@]}" clang libclang-rt-14-dev
SPCCL_BUILD_DIR=$SPCCL_ROOT/build-fuzz
CC=clang CXX=clang++ cmake -S "$SPCCL_ROOT" -B "$SPCCL_BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSPCCL_FUZZ=ON -DSPCCL_WITH_CUDA=OFF -DSPCCL_BUILD_PERF=OFF >/dev/null
cmake --build "$SPCCL_BUILD_DIR" -j"$(nproc)" --target fuzz_decompress fuzz_config fuzz_selection fuzz_env fuzz_topk fuzz_restore

export ASAN_OPTIONS="allocator_may_return_null=1:detect_leaks=1"
status=0
for target in fuzz_decompress fuzz_config fuzz_selection fuzz_env fuzz_topk fuzz_restore; do
  corpus=$SPCCL_BUILD_DIR/corpus/$target
  mkdir -p "$corpus"
  echo "== $target: ${seconds}s =="
  if ! "$SPCCL_BUILD_DIR/tests/$target" -max_total_time="$seconds" -print_final_stats=1 "$corpus" \
      2> "$SPCCL_BUILD_DIR/$target.log"; then
    status=1
    tail -40 "$SPCCL_BUILD_DIR/$target.log"
  fi
  grep -E "stat::number_of_executed_units|stat::new_units_added" "$SPCCL_BUILD_DIR/$target.log" || true
done
exit $status
