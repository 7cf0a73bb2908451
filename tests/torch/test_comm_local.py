# SPDX-License-Identifier: Apache-2.0
"""The compress-only comm and state restoring from Python, as the adapters use them: no MPI,
collectives refused with the library's sentence, bad restores rejected with nothing changed."""
import pytest
import torch

import spccl


def make_state(feedback="ef"):
    comm = spccl.Comm.local(4, 1)
    cfg = spccl.Config(method="randomblock", density=0.25, block_size=4, feedback=feedback)
    return comm, spccl.State(comm, cfg, 64, torch.float32)


def test_local_comm_refuses_collectives():
    comm, state = make_state()
    assert (comm.rank, comm.size, comm.mpi_comm) == (1, 4, None)
    x = torch.ones(64)
    with pytest.raises(spccl.SpcclError, match="compress-only") as err:
        state.sparse_allreduce(x)
    assert err.value.name == "spcclInvalidUsage"
    with pytest.raises(spccl.SpcclError, match="compress-only"):
        comm.allreduce(x)
    assert state.step == 0 and torch.all(state.residual == 0) and torch.all(x == 1)
    with pytest.raises(spccl.SpcclError, match="rank 4 is outside 0..3"):
        spccl.Comm.local(4, 4)


def test_restore_rejects_bad_input_and_changes_nothing():
    _, state = make_state()
    values = torch.empty(state.compressed_count())
    state.compress(torch.arange(64, dtype=torch.float32), values)
    before, step = state.residual.clone(), state.step
    with pytest.raises(spccl.SpcclError, match="count 63 differs"):
        state.restore(5, torch.zeros(63))
    with pytest.raises(spccl.SpcclError, match="datatype double differs"):
        state.restore(5, torch.zeros(64, dtype=torch.float64))
    assert torch.equal(state.residual, before) and state.step == step
    state.restore(7, torch.full((64,), 2.0))
    assert state.step == 7 and torch.all(state.residual == 2.0)
    _, none = make_state(feedback="none")
    with pytest.raises(spccl.SpcclError, match="keeps no residual"):
        none.restore(1, torch.zeros(64))
    none.restore(3)  # the step alone is fine
    assert none.step == 3
