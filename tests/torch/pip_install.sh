#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# pip_install.sh TORCH_PYTHON: `pip install .` of this repository into a fresh venv, then the
# torchrun hook tests run from that venv with no SPCCL_LIBRARY and no PYTHONPATH: spccl,
# spccl_torch and spccl_horovod must come from the install, the library from inside it.
# torch (5 GB) is not installed twice: a .pth file lets the fresh venv see the torch venv's
# site-packages after its own. CUDA is off in this build only to keep nvcc out of the test.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
torch_python=$1
unset SPCCL_LIBRARY PYTHONPATH SPCCL_BUILD_DIR
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

/usr/bin/python3 -m venv "$tmp/venv"
py=$tmp/venv/bin/python
"$py" -m pip install -q "$root" --config-settings=cmake.define.SPCCL_WITH_CUDA=OFF pytest
torch_site=$("$torch_python" -c "import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))")
"$py" -c "import site; print(site.getsitepackages()[0])" | xargs -I{} sh -c "echo '$torch_site' > {}/zz_torch.pth"

cd "$tmp"  # nothing of the source tree on sys.path
"$py" - "$tmp/venv" <<'PY'
import os, sys
import spccl, spccl_torch, spccl_horovod
venv = os.path.realpath(sys.argv[1])
for m in (spccl, spccl_torch, spccl_horovod):
    assert os.path.realpath(m.__file__).startswith(venv), f"{m.__name__} imported from {m.__file__}, not the install"
lib = os.path.realpath(spccl._core._L.path)
assert lib == os.path.realpath(os.path.join(os.path.dirname(spccl.__file__), "libspccl.so")), lib
print(f"pip install: spccl {spccl.version()} from {os.path.dirname(spccl.__file__)}, library {lib}")
PY
cp "$root"/tests/torch/{conftest.py,ddp_reference.py,test_hook.py} "$tmp/"
OMP_NUM_THREADS=1 "$py" -m torch.distributed.run --standalone --nproc-per-node=2 \
  -m pytest -q -p no:cacheprovider --color=no test_hook.py -k "process_group or eight_buckets or def_on"
