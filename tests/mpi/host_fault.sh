#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#   host_fault.sh ROOT linkdown|kill BINARY
# Runs BINARY on 2 simulated hosts x 2 ranks (scripts/simhosts) with SPCCL_TIMEOUT_MS=1000
# and passes when every surviving rank (4 for linkdown, the 2 on h1 for kill) reported
# spcclTimeout in time with its state unchanged.
set -uo pipefail
root=$1 mode=$2 binary=$3
"$root/tests/simhosts_check.sh" "$root" || exit $?
ctl=$(mktemp -d /tmp/host_fault.XXXXXX)
trap 'rm -rf "$ctl"' EXIT
SIMHOSTS_CTL=$ctl timeout --kill-after=10 120 "$root/scripts/simhosts" 2x2 -- \
  --mca orte_abort_on_non_zero_status 0 -x SPCCL_TIMEOUT_MS=1000 "$binary" "$mode"
echo "mpirun exit status: $? (non-zero is expected: ranks exit without MPI_Finalize)"
expected=4
[[ $mode == kill ]] && expected=2
survivors=$(ls "$ctl" | grep -c '^survived\.')
cat "$ctl"/survived.* 2>/dev/null
echo "survivors that returned spcclTimeout in time with their state unchanged: $survivors of $expected"
[[ $survivors -eq $expected ]]
