#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#   rank_exit.sh NRANKS BINARY MPIRUN...   passes when every surviving rank printed "survived"
set -uo pipefail
nranks=$1 binary=$2
shift 2
# A non-zero exit must not make mpirun kill the survivors before they can report.
output=$(timeout --kill-after=10 60 "$@" -np "$nranks" --mca orte_abort_on_non_zero_status 0 \
  -x SPCCL_TIMEOUT_MS=1000 "$binary" 2>&1)
echo "$output"
survivors=$(grep -c "^survived:" <<<"$output")
echo "survivors that returned spcclTimeout: $survivors of $((nranks - 1))"
[[ $survivors -eq $((nranks - 1)) ]]
