# SPDX-License-Identifier: Apache-2.0
"""The convergence reproduction (plugins/torch/examples/convergence_digits.py) under mpirun
with 4 ranks: the claim of DESIGN.md, Error feedback, at small scale. The issue's protocol (30 epochs), without the
runs that have no assertion; at 15 epochs DEF is still catching up with dense on some seeds,
so the run is not shortened further. 1-bit with EF on both levels (DESIGN.md, 1-bit) is held
to the same 2 points as the Top-k family."""
import json
import os
import sys

import pytest
from conftest import require, skip_unless_ci

torch = require("torch", reason="torch is not installed (apt-get install python3-torch)")
require("sklearn", reason="scikit-learn is not installed (apt-get install python3-sklearn)")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "plugins", "torch", "examples"))
import convergence_digits  # noqa: E402

EPOCHS = 30
RUNS = "dense,rb-none,rb-ef,rb-def,topk-ef,gaussk-ef,onebit-ef"


@pytest.fixture(scope="module")
def results(world, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("convergence")) if world.rank == 0 else None
    res = convergence_digits.main(["--epochs", str(EPOCHS), "--seed", "0", "--runs", RUNS] + (["--out", out] if out else []))
    res["out"] = out
    return res


def acc(results, name):
    run = results["runs"][name]
    if "skipped" in run:
        skip_unless_ci(f"{name}: {run['skipped']}")
    return run["final"]["test_acc"]


def test_a_skipped_run_fails_under_ci(monkeypatch):
    """A run the reproduction skipped (a missing dependency) is a skip here, and a failure
    under CI=true like every other missing dependency."""
    skipped = {"runs": {"onebit-ef": {"skipped": "no MPI"}}}
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="onebit-ef: no MPI"):
        acc(skipped, "onebit-ef")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="onebit-ef: no MPI"):
        acc(skipped, "onebit-ef")


def test_def_within_2_points_of_dense(results):
    assert acc(results, "dense") - acc(results, "rb-def") <= 2.0


def test_random_block_without_feedback_5_points_behind_def(results):
    assert acc(results, "rb-def") - acc(results, "rb-none") >= 5.0


def test_dense_learns(results):
    assert acc(results, "dense") >= 90.0


@pytest.mark.parametrize("name", ["topk-ef", "gaussk-ef"])
def test_topk_family_with_ef_within_2_points_of_dense(results, name):
    assert acc(results, "dense") - acc(results, name) <= 2.0


def test_onebit_with_ef_within_2_points_of_dense(results):
    assert acc(results, "dense") - acc(results, "onebit-ef") <= 2.0


def test_outputs_written(world, results):
    if world.rank != 0:
        return
    with open(os.path.join(results["out"], "results.json")) as f:
        saved = json.load(f)
    assert saved["runs"]["dense"]["final"]["test_acc"] == results["runs"]["dense"]["final"]["test_acc"]
    assert len(saved["runs"]["dense"]["curve"]) == EPOCHS
    assert os.path.getsize(os.path.join(results["out"], "curves.png")) > 1000
