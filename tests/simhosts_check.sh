#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#   simhosts_check.sh ROOT   exit 0 when scripts/simhosts can run here; else 77 (ctest: skipped),
# or 1 under CI=true, where the simulated-host tests must run.
if "$1/scripts/simhosts" --check; then exit 0; fi
if [[ ${CI:-} == true ]]; then
  echo "FAIL: network namespaces are not allowed here, and CI=true requires the simulated-host tests" >&2
  exit 1
fi
echo "SKIPPED: network namespaces are not allowed here (scripts/simhosts --check), so no simulated hosts"
exit 77
