# SPDX-License-Identifier: Apache-2.0
"""perf/cost_model (docs/cost_model.md): its arithmetic on a calibration written here, its
facts read from the library (State.info on compress-only comms), its P = 1024 projection."""
import json
import os
import re
import subprocess
import sys

import pytest
import spccl

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "perf", "cost_model")
COUNT = 1 << 20  # 4 MiB of fp32
DENSITY = 1 / 64
SECONDS_PER_ELEMENT = {m: (i + 1) * 1e-9 for i, m in enumerate(spccl.METHODS)}
LINKS = {"own": {"alpha_s": 5e-6, "beta_Bps": 2e9, "shared": False},
         "nic": {"alpha_s": 20e-6, "beta_Bps": 1.25e8, "shared": True},
         "stage": {"alpha_s": 7e-6, "beta_Bps": 5e8, "shared": False, "cpu": True}}


def run(*args):
    proc = subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    path = tmp_path_factory.mktemp("cost") / "calib.json"
    calib = {"type": "float32", "density": DENSITY, "data": "normal", "dense_method": "dense",
             "compute": {m: {str(COUNT): COUNT * s} for m, s in SECONDS_PER_ELEMENT.items()},
             "pass_rates": {"memory_s": 0.0, "select_s": 0.0}, "links": LINKS}
    path.write_text(json.dumps(calib))
    return str(path)


def info(method, ranks, count):
    comm = spccl.Comm.local(ranks, 0)
    state = spccl.State(comm, spccl.Config(method=method, density=DENSITY, feedback="ef"), count)
    try:
        return state.info()
    finally:
        state.close()
        comm.close()


def compute(method, i, count):
    if i.dense_switched or (i.memory_passes == 0 and i.select_passes == 0):
        return 0.0
    return count * SECONDS_PER_ELEMENT[method]


def test_flat_one_host_is_alpha_beta_of_the_library_terms(calibration):
    rows = json.loads(run("predict", "-c", calibration, "--ranks", "4", "--intra", "nic", "--size", "4M", "--json"))
    assert [r["method"] for r in rows] == list(spccl.METHODS)
    for r in rows:
        i = info(r["method"], 4, COUNT)
        nic = LINKS["nic"]
        # shared: the one link carries all 4 ranks' bytes (scripts/slownet)
        net = i.rounds * nic["alpha_s"] + 4 * i.wire_bytes / nic["beta_Bps"]
        assert (r["wire"], r["rounds"], r["hierarchical"]) == (i.wire_bytes, i.rounds, False)
        assert r["network"] == pytest.approx(net, rel=1e-12)
        assert r["compute"] == pytest.approx(compute(r["method"], i, COUNT), rel=1e-12)
        assert r["time"] == pytest.approx(r["network"] + r["compute"], rel=1e-12)


@pytest.mark.parametrize("stage", [None, "stage"])
def test_hierarchical_follows_the_payload_kind(calibration, stage):
    """Slots and rounds: dense inside a host plus the method on a shard across hosts. Values
    (dense, random block): the method flat, its payload allreduced in the stages."""
    share = 3.0  # a cpu link (the stage one) stretches with the ranks per core, like compute
    args = ["--stage", stage] if stage else []
    rows = json.loads(run("predict", "-c", calibration, "--ranks", "8", "--layout", "2x4", "--intra", "own",
                          "--inter", "nic", "--size", "4M", "--mode", "hier", "--cpu-share", str(share), "--json",
                          *args))
    own, nic = LINKS[stage or "own"], LINKS["nic"]
    stretch = share if own.get("cpu") else 1.0
    for r in rows:
        if r["method"] == "onebit":  # keeps a server residual: the library runs it flat
            assert not r["hierarchical"]
            continue
        assert r["hierarchical"], r["method"]
        flat = info(r["method"], 8, COUNT)
        if flat.payload == info("dense", 8, COUNT).payload:  # travels as dense's: flat, payload staged
            payload = COUNT if flat.dense_switched else flat.selected
            d, x = info("dense", 4, payload), info("dense", 2, -(-payload // 4))
            computed, count = flat, COUNT
        else:
            d, x = info("dense", 4, COUNT), info(r["method"], 2, COUNT // 4)
            computed, count = x, COUNT // 4
        net = ((d.rounds * own["alpha_s"] + d.wire_bytes / own["beta_Bps"]) * stretch
               + x.rounds * nic["alpha_s"] + 4 * x.wire_bytes / nic["beta_Bps"])
        assert r["wire"] == d.wire_bytes + x.wire_bytes
        assert r["network"] == pytest.approx(net, rel=1e-12)
        assert r["compute"] == pytest.approx(share * compute(r["method"], computed, count), rel=1e-12)


def test_flat_across_hosts_pays_the_slower_link(calibration):
    rows = json.loads(run("predict", "-c", calibration, "--ranks", "8", "--layout", "2x4", "--intra", "own",
                          "--inter", "nic", "--size", "4M", "--mode", "flat", "--json"))
    for r in rows:
        i = info(r["method"], 8, COUNT)
        inter = i.wire_bytes * 2 / 8  # the ring's share across hosts, as spcclStateGetInfo reports it
        net = i.rounds * LINKS["nic"]["alpha_s"] + max((i.wire_bytes - inter) / LINKS["own"]["beta_Bps"],
                                                      4 * inter / LINKS["nic"]["beta_Bps"])
        assert not r["hierarchical"]
        assert r["network"] == pytest.approx(net, rel=1e-12)


def test_validate_reads_perf_json(calibration, tmp_path):
    rows = json.loads(run("predict", "-c", calibration, "--ranks", "4", "--intra", "nic", "--size", "4M", "--json"))
    perf = {"nranks": 4, "type": "float", "density": DENSITY,
            "results": [{"size": 4 << 20, "count": COUNT, "method": r["method"], "time_us": r["time"] * 2e6,
                         "wire": r["wire"]} for r in rows]}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(perf))
    out = run("validate", "-c", calibration, "--json", str(path), "--intra", "nic", "--runnable", "1")
    ratios = re.findall(r" (\d+\.\d\d) +1\.000$", out, re.M)
    assert ratios == ["0.50"] * len(spccl.METHODS), out


def test_project_reaches_1024_ranks_for_every_method(calibration):
    out = run("project", "-c", calibration, "--ranks", "1024", "--size", "1M", "--rates", "10gbit")
    lines = [l.split() for l in out.splitlines() if not l.startswith("#") and l.split()[:1] == ["1024"]]
    assert [l[1] for l in lines] == list(spccl.METHODS)
    for l in lines:
        for cell in l[2:]:
            assert cell == "flat" or float(cell.rstrip("*")) > 0


def test_the_tool_names_no_method_or_payload():
    """Every method fact comes from the library: no method name as a literal, no payload kind
    compared against ("rounds" is also the name of an output field)."""
    text = open(TOOL).read()
    for name in spccl.METHODS:
        assert not re.search(rf"[\"']{name}[\"']", text), name
    for name in spccl.PAYLOADS.values():
        assert not re.search(rf"(==|!=|\bin)\s*[(\[]?[\"']{name}[\"']|[\"']{name}[\"']\s*(==|!=|\bin\b)", text), name
