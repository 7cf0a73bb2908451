#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#   simhosts_run.sh ROOT HOSTS PROGRAM [ARG...]   PROGRAM across simulated hosts (scripts/simhosts)
set -uo pipefail
root=$1 hosts=$2
shift 2
"$root/tests/simhosts_check.sh" "$root" || exit $?
exec timeout --kill-after=10 280 "$root/scripts/simhosts" "$hosts" -- "$@"
