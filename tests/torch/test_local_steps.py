# SPDX-License-Identifier: Apache-2.0
"""spccl_torch.LocalSGD under torchrun, the deltas moved by the default gloo process group
(no MPI): DOMO's rounds against the rules of docs/local_steps.md written out independently
(tests/python/local_steps_reference.py, averaged with torch.distributed), and a compressed
run whose ranks all end each round on one global model."""
import os
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist

import spccl
import spccl_torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
from local_steps_reference import make_model, reference_rounds, train  # noqa: E402


def mean_over_ranks(array):
    t = torch.from_numpy(np.array(array, dtype=np.float64))  # a copy: all_reduce writes into it
    dist.all_reduce(t)
    return (t / dist.get_world_size()).numpy()


def flat(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double()


@pytest.mark.parametrize("variant", ["fedavg_server_momentum", "fedavg_slm", "domo"])
def test_rounds_follow_the_documented_rules(world, variant):
    _, rank = world
    H, steps = 3, 9
    lrs = [0.1] * steps
    model = make_model(0)
    opt = spccl_torch.LocalSGD(model.parameters(), lr=0.1, local_steps=H, variant=variant, momentum=0.8,
                               server_momentum=0.7, fusion=0.6)
    train(opt, model, rank, steps)
    v = spccl_torch.local.VARIANTS[variant]
    expected = reference_rounds(rank, mean_over_ranks, steps, H, lrs, 0.8 * v.local, 0.7, 0.6 * v.fused, 0.0,
                                carried=v.carried)
    torch.testing.assert_close(flat(model), expected, rtol=1e-4, atol=1e-5)


def test_diloco_rounds_follow_the_documented_rules(world):
    """AdamW inside the round, Nesterov outer step (outer lr 0.7), over the process group."""
    _, rank = world
    H, steps = 4, 8
    adamw = lambda params: torch.optim.AdamW(params, lr=0.01, weight_decay=0.1)  # noqa: E731
    model = make_model(0)
    opt = spccl_torch.LocalSGD(model.parameters(), inner=adamw(model.parameters()), local_steps=H,
                               variant="fedavg_server_momentum", outer="nesterov", server_lr=0.7)
    train(opt, model, rank, steps)
    expected = reference_rounds(rank, mean_over_ranks, steps, H, [0.01] * steps, 0.0, 0.9, 0.0, 0.0, nesterov=True,
                                eta_s=0.7, inner=adamw)
    torch.testing.assert_close(flat(model), expected, rtol=1e-4, atol=1e-5)


def test_compressed_rounds_end_on_one_global_model(world):
    _, rank = world
    model = make_model(1)
    cfg = spccl.Config(method="randomblock", density=0.25, block_size=4, feedback="ef", seed=9)
    opt = spccl_torch.LocalSGD(model.parameters(), lr=0.05, local_steps=4, variant="domo", mu=1.0, config=cfg)
    train(opt, model, rank, 8)
    with opt.global_model():
        x = flat(model)
    assert np.array_equal(mean_over_ranks(x.numpy()), x.numpy())
    assert opt.rounds == 2 and opt.spccl_state().step == 2
    assert torch.count_nonzero(opt.spccl_state().residual) > 0
