# SPDX-License-Identifier: Apache-2.0
"""Smoke test of perf/train_e2e --quick, run as the README shows it: the JSON, table and plot
are written and the numbers in them are consistent (not fast: tests never assert timings)."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
RUNS = ["compute", "dense", "spccl_rb", "spccl_def", "spccl_topk"]
NRANKS = 4


@pytest.fixture(scope="session", autouse=True)
def process_group():
    """Not under torchrun: train_e2e launches torchrun itself (this replaces conftest's)."""
    if os.geteuid() != 0:
        pytest.skip("train_e2e runs each job in a network namespace (scripts/slownet), which needs root")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("train_e2e")
    cmd = [os.path.join(ROOT, "perf", "train_e2e"), "--quick", "--networks", "loopback", "--runs", ",".join(RUNS),
           "--python", sys.executable, "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out / "train_e2e.json") as f:
        return out, json.load(f)


def by_run(results):
    return {r["run"]: r for r in results[1]["runs"]}


def test_every_run_wrote_its_files_and_record(results):
    out, data = results
    assert [r["run"] for r in data["runs"]] == RUNS
    assert all("error" not in r for r in data["runs"]), [r.get("error") for r in data["runs"]]
    table = (out / "train_e2e.md").read_text()
    assert all(f"| loopback | {run} |" in table for run in RUNS)
    assert (out / "train_e2e.png").stat().st_size > 0


def test_records_are_consistent(results):
    settings = results[1]["settings"]
    widths = [64] + [settings["hidden"]] * settings["layers"] + [10]
    params = sum(a * b + b for a, b in zip(widths, widths[1:]))
    for r in results[1]["runs"]:
        assert r["params"] == params and r["nranks"] == NRANKS
        assert r["global_batch"] == NRANKS * settings["batch"]
        assert r["steps"] == (1797 - 1797 // 4) // r["global_batch"] * settings["epochs"]
        assert r["step_ms"] > 0
        assert r["samples_per_s"] == pytest.approx(r["global_batch"] * 1e3 / r["step_ms"], rel=1e-9)
        seconds = [p["seconds"] for p in r["curve"]]
        assert seconds == sorted(seconds) and r["curve"][-1]["step"] == r["steps"]
        assert 0.0 <= r["final_acc"] <= 1.0 and r["final_acc"] == r["curve"][-1]["test_acc"]


def test_wire_bytes_are_what_each_method_sends(results):
    runs = by_run(results)
    model_bytes = 4 * runs["dense"]["params"]
    ring = 2 * (NRANKS - 1) / NRANKS * model_bytes  # what a ring allreduce sends per rank
    assert ring <= runs["dense"]["wire_bytes_per_step"] <= 1.5 * ring
    assert runs["compute"]["wire_bytes_per_step"] < 0.01 * ring  # only the evaluation barriers
    for run in ("spccl_rb", "spccl_def", "spccl_topk"):
        assert runs[run]["wire_bytes_per_step"] < runs["dense"]["wire_bytes_per_step"] / 5, run


def test_dense_learns_and_defines_the_target(results):
    dense = by_run(results)["dense"]
    assert dense["final_acc"] > 0.5  # ten classes: chance is 0.1
    assert dense["target_acc"] == pytest.approx(dense["final_acc"] - 0.01)
    assert dense["time_to_target_s"] is not None and dense["time_to_target_s"] <= dense["train_seconds"]
