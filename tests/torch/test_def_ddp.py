# SPDX-License-Identifier: Apache-2.0
"""DEF inside DDP (spccl_torch.DEFSGD with ddp_comm_hook) on DDP's gloo process group,
registered as the README shows: parameters, residuals and momenta against DESIGN.md's DEF
computed from every rank's data (ddp_reference.train_def_and_check), in the DDP settings
users run; and the warning for the known trap (random block, plain EF, momentum)."""
import warnings

import pytest
import torch
import torch.distributed as dist
from ddp_reference import START, ParamNet, inputs, make_ddp, sizes_for, train_def_and_check
from torch import nn

import spccl
import spccl_torch


def test_def_matches_reference():
    train_def_and_check()


def test_def_with_gradient_as_bucket_view():
    train_def_and_check(gradient_as_bucket_view=True)


def test_def_with_static_graph():
    train_def_and_check(static_graph=True)


def test_def_after_bucket_rebuild():
    train_def_and_check(order=[2, 0, 1])


def test_def_under_no_sync_takes_every_micro_batch_at_the_lookahead():
    train_def_and_check(micro=3)


def test_def_mu_zero_is_ef_with_momentum_in_the_buckets():
    state = train_def_and_check(mu=0.0)
    assert not state.shifted


def one_bucket_def(**settings):
    """A one-parameter model (one bucket) under DDP with the hook and DEFSGD, as the README
    registers them: (sizes, net, ddp, hook state, optimizer)."""
    sizes = sizes_for(torch.float32, 1)
    net = ParamNet(sizes, torch.float32)
    ddp = make_ddp(net)
    state = spccl_torch.SpcclHookState(spccl.Config(method="randomblock", density=0.1, block_size=64))
    ddp.register_comm_hook(state, spccl_torch.ddp_comm_hook)
    return sizes, net, ddp, state, spccl_torch.DEFSGD(ddp, state, **settings)


def test_lr_change_keeps_the_residual_in_parameter_units():
    # The hook keeps e/lr: a new lr rescales it, so x, e and the step follow DEF with the new lr.
    train_def_and_check(steps=7, lrs=[0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.2])


def test_evaluation_sees_x_and_training_forward_sees_the_lookahead():
    sizes, net, ddp, state, opt = one_bucket_def(lr=0.1, mu=0.5)
    for step in range(START + 2):
        opt.zero_grad()
        ddp(inputs(dist.get_rank(), step, sizes, torch.float32)).backward()
        opt.step()
    x = net.w[0].detach().clone()
    e = 0.1 * state.states[0].residual  # the hook keeps e/lr
    assert torch.count_nonzero(e) > 0
    with torch.no_grad():
        ddp(inputs(0, 99, sizes, torch.float32))  # evaluation: no move
    assert torch.equal(net.w[0].detach(), x)
    ddp.eval()
    ddp(inputs(0, 99, sizes, torch.float32))
    assert torch.equal(net.w[0].detach(), x)
    ddp.train()
    out = ddp(inputs(0, 99, sizes, torch.float32))  # training forward: parameters at y until backward
    torch.testing.assert_close(net.w[0].detach(), x - 0.5 * e)
    out.backward()
    torch.testing.assert_close(net.w[0].detach(), x, rtol=1e-6, atol=1e-7)


def test_defsgd_rejects_bad_settings():
    ddp = make_ddp(ParamNet(sizes_for(torch.float32, 1), torch.float32))
    state = spccl_torch.SpcclHookState(spccl.Config(method="randomblock"))
    with pytest.raises(ValueError, match="mu is -1"):
        spccl_torch.DEFSGD(ddp, state, lr=0.1, mu=-1)
    with pytest.raises(ValueError, match="lr is 0"):
        spccl_torch.DEFSGD(ddp, state, lr=0)
    with pytest.raises(TypeError, match="SpcclHookState"):
        spccl_torch.DEFSGD(ddp, object(), lr=0.1)
    with pytest.raises(TypeError, match="DistributedDataParallel"):
        spccl_torch.DEFSGD(ddp.module, state, lr=0.1)
    opt = spccl_torch.DEFSGD(ddp, state, lr=0.1)
    with pytest.raises(ValueError, match="one parameter group"):
        opt.add_param_group(dict(params=[nn.Parameter(torch.zeros(1))]))
    with pytest.raises(ValueError, match="attached already"):
        spccl_torch.DEFSGD(ddp, state, lr=0.1)


def steps_with(optimizer_for, config):
    """Trains a few steps with a plain hook and the optimizer `optimizer_for(ddp)` makes;
    returns the RuntimeWarnings naming DEF."""
    sizes = sizes_for(torch.float32, 1)
    net = ParamNet(sizes, torch.float32)
    ddp = make_ddp(net)
    state = spccl_torch.SpcclHookState(config)
    ddp.register_comm_hook(state, spccl_torch.ddp_comm_hook)
    opt = optimizer_for(ddp, state)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(START + 2):
            opt.zero_grad()
            ddp(inputs(dist.get_rank(), step, sizes, torch.float32)).backward()
            opt.step()
    return [w for w in caught if issubclass(w.category, RuntimeWarning) and "DEFSGD" in str(w.message)]


def test_random_block_ef_under_momentum_warns_naming_def():
    low = spccl.Config(method="randomblock", density=1 / 64, block_size=64)
    sgd = lambda ddp, st, momentum=0.9: torch.optim.SGD(ddp.parameters(), lr=0.01, momentum=momentum)  # noqa: E731
    assert len(steps_with(sgd, low)) == 1, "one warning, at the first compressed step"
    adam = lambda ddp, st: torch.optim.Adam(ddp.parameters(), lr=1e-3)  # noqa: E731
    assert len(steps_with(adam, low)) == 1
    # Not the trap: no momentum; DEFSGD; a high density; Top-k; no feedback.
    assert not steps_with(lambda ddp, st: sgd(ddp, st, momentum=0.0), low)
    assert not steps_with(lambda ddp, st: spccl_torch.DEFSGD(ddp, st, lr=0.01), low)
    assert not steps_with(sgd, low.replace(density=0.5))
    assert not steps_with(sgd, spccl.Config(method="topk", density=0.01))
    assert not steps_with(sgd, low.replace(feedback="none"))
