#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# check_torch.sh PYTHON COMMAND...: runs COMMAND when PYTHON imports torch 2.x; otherwise
# exits 77 (ctest: Skipped) with the reason, or 1 under CI=true.
set -uo pipefail
python=$1
shift
if ! "$python" -c "import torch, pytest; assert int(torch.__version__.split('.')[0]) >= 2" 2>/dev/null; then
  echo "torch 2.x is not importable by $python (scripts/setup.sh installs it into SPCCL_TORCH_VENV)"
  [[ ${CI:-} == true ]] && exit 1
  exit 77
fi
exec "$@"
