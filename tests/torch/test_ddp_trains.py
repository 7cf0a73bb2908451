# SPDX-License-Identifier: Apache-2.0
"""The README's first DDP example trains: random block 1/64 with DEFSGD, registered exactly as
the README shows (plugins/torch/examples/ddp_digits.py builds it), ends within 1 point of plain
DDP on scikit-learn's digits (MLP 64-512-512-10, 4 ranks, gloo, SGD momentum 0.9, 30 epochs).
Run under torchrun with 4 ranks (tests/torch/CMakeLists.txt)."""
import os
import sys

import pytest

try:
    import sklearn  # noqa: F401  (the digits data set ships with it)
except ImportError as err:
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"CI: scikit-learn must be installed for the digits test ({err})") from err
    pytest.skip(f"scikit-learn is not installed ({err})", allow_module_level=True)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "plugins", "torch", "examples"))
import ddp_digits  # noqa: E402

SEED = 1  # the hyper-parameters are the issue's; no seed was tuned


def test_readme_example_within_one_point_of_plain_ddp():
    args = ddp_digits.parse_args([])
    dense = ddp_digits.train("dense", SEED, args)
    readme = ddp_digits.train("def", SEED, args)
    print(f"digits, seed {SEED}: plain DDP {dense:.2f} %, README (random block 1/64, DEFSGD) {readme:.2f} %")
    assert dense > 90, f"plain DDP reached only {dense:.2f} %: the harness is broken"
    assert readme >= dense - 1.0, f"the README's DDP example ends at {readme:.2f} %, plain DDP at {dense:.2f} %"
