#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Fails unless the shared library exports the C API (spccl*) and nothing else: no C++
# symbol of the internals (src/libspccl.map), and at least the calls the README shows.
# usage: check_exports.sh path/to/libspccl.so
set -euo pipefail
lib=$1
exported=$(nm -D --defined-only "$lib" | awk '{print $NF}')
others=$(grep -v '^spccl' <<<"$exported" || true)
if [[ -n $others ]]; then
  echo "$lib exports symbols outside the spccl* C API:" >&2
  c++filt <<<"$others" >&2
  exit 1
fi
for call in spcclStateCreate spcclSparseAllReduce spcclStateGetInfo spcclGetLastError; do
  grep -qx "$call" <<<"$exported" || { echo "$lib does not export $call" >&2; exit 1; }
done
echo "$lib: $(wc -l <<<"$exported") symbols, all spccl*"
