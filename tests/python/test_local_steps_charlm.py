# SPDX-License-Identifier: Apache-2.0
"""The second local-steps problem under mpirun with 4 ranks: plugins/torch/examples/
local_steps_charlm.py, a character language model of the Python stdlib's own sources (i.i.d.
shards, seed 0, the example's defaults: 1600 local steps of batch 32), synchronous SGD against
the README's compressed DOMO (H = 16, quantized Top-k 1/64 per chunk of 4096 at 2 bits,
look-ahead 1, residual decay 0.93). Compressed DOMO must learn (10 points above the unigram
baseline), stay within 12 points of synchronous SGD and send at least 1000x fewer bytes.
Measured: 57.17 and 47.08 % (gap 10.09; over seeds 0-4 10.25 ± 0.71), unigram 29.76 %: on
this problem the 0.5-point goal is missed (docs/local_steps.md, "A second problem")."""
import os
import sys

import pytest
from conftest import require

require("torch", reason="torch is not installed (apt-get install python3-torch)")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "plugins", "torch", "examples"))
import local_steps_charlm  # noqa: E402


@pytest.fixture(scope="module")
def results():
    """The files it writes are the common code's, tested with the digits example."""
    return local_steps_charlm.main(["--seed", "0", "--runs", "sync-sgd,domo-q"])


def final(results, name):
    return results["runs"][name]["final"]


def test_compressed_domo_learns_the_text(results):
    """The unigram baseline (always a space) is about 30 %; 10 points above it is context."""
    assert results["unigram_acc"] < 35
    assert final(results, "domo-q")["test_acc"] >= results["unigram_acc"] + 10


def test_compressed_domo_within_12_points_of_sync_sgd(results):
    """A guard against regressions, not the goal: the measured gap is 10.09."""
    assert final(results, "sync-sgd")["test_acc"] - final(results, "domo-q")["test_acc"] <= 12.0


def test_at_least_1000x_fewer_bytes(results):
    """Bytes as the library counts them (State.info), not re-derived here."""
    assert final(results, "sync-sgd")["bytes"] >= 1000 * final(results, "domo-q")["bytes"] > 0

