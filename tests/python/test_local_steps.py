# SPDX-License-Identifier: Apache-2.0
"""spccl_torch.LocalSGD under mpirun: each variant's rounds against the rules of
docs/local_steps.md written out independently (torch for the local steps, mpi4py for the
average), the compressed delta stream, and refused settings."""
import io
import os
import sys

import pytest
from conftest import allsum, require

torch = require("torch", reason="torch is not installed (apt-get install python3-torch)")
import spccl  # noqa: E402
import spccl_torch  # noqa: E402

from local_steps_reference import make_model, reference_rounds, train  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "torch"))
from checkpoint_cases import damaged  # noqa: E402


def flat(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double()


@pytest.mark.parametrize("outer", ["momentum", "nesterov"])
@pytest.mark.parametrize("variant", ["fedavg", "fedavg_local_momentum", "fedavg_server_momentum", "fedavg_slm",
                                     "domo"])
def test_rounds_follow_the_documented_rules(world, comm, variant, outer):
    H, steps, wd = 3, 12, 0.01
    lrs = [0.1 * (1 - s / 20) for s in range(steps)]  # a schedule: lr changes inside rounds
    v = spccl_torch.local.VARIANTS[variant]
    fusion = 0.6 if outer == "momentum" else 0.0  # Nesterov refuses fusion (test_bad_settings_are_refused)
    model = make_model(0)
    opt = spccl_torch.LocalSGD(model.parameters(), lr=0.1, local_steps=H, variant=variant, momentum=0.8,
                               server_momentum=0.7, fusion=fusion, server_lr=0.9, weight_decay=wd,
                               config=spccl.Config(method="dense"), comm=comm, outer=outer)
    train(opt, model, world.rank, steps, lrs)
    mean = lambda a: allsum(world, a) / world.size  # noqa: E731
    expected = reference_rounds(world.rank, mean, steps, H, lrs, 0.8 * v.local, 0.7 * v.server, fusion * v.fused, wd,
                                carried=v.carried, nesterov=outer == "nesterov", eta_s=0.9)
    got = flat(model)
    assert opt.rounds == steps // H
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5), (got - expected).abs().max()


def adamw(params):
    return torch.optim.AdamW(params, lr=0.01, weight_decay=0.1)


def test_diloco_inner_adamw_nesterov_outer_follows_the_rules(world, comm):
    """DiLoCo: AdamW inside the round (its state carried across rounds, its lr scheduled),
    the Nesterov outer step with an outer learning rate on the averaged delta."""
    H, steps = 4, 12
    lrs = [0.01 * (1 - s / 20) for s in range(steps)]
    model = make_model(0)
    inner = adamw(model.parameters())
    opt = spccl_torch.LocalSGD(model.parameters(), inner=inner, local_steps=H, variant="fedavg_server_momentum",
                               outer="nesterov", server_lr=0.7, server_momentum=0.9, comm=comm)
    for s in range(steps):  # the inner optimizer's lr is what a scheduler would set
        inner.param_groups[0]["lr"] = lrs[s]
        train(opt, model, world.rank, 1, first=s)
    mean = lambda a: allsum(world, a) / world.size  # noqa: E731
    expected = reference_rounds(world.rank, mean, steps, H, lrs, 0.0, 0.9, 0.0, 0.0, nesterov=True, eta_s=0.7,
                                inner=adamw)
    assert opt.rounds == steps // H
    assert torch.allclose(flat(model), expected, rtol=1e-4, atol=1e-5), (flat(model) - expected).abs().max()


def test_every_rank_ends_a_round_on_the_same_model(world, comm):
    model = make_model(1)
    opt = spccl_torch.LocalSGD(model.parameters(), lr=0.05, local_steps=4, variant="domo", mu=1.0,
                               config=spccl.Config(method="randomblock", density=0.25, block_size=4, feedback="ef"),
                               comm=comm)
    train(opt, model, world.rank, 8)
    with opt.global_model():
        x = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double().numpy()
    residual = opt.spccl_state().residual.double().numpy()
    assert (allsum(world, x) / world.size == x).all()  # the global model is the same everywhere
    assert (residual != 0).any()  # the unsent part of the deltas is kept


def compressed_opt(model, comm, config=None, **settings):
    config = config or spccl.Config(method="randomblock", density=0.25, block_size=4, feedback="ef", seed=7)
    settings = dict(lr=0.05, variant="domo") | settings
    return spccl_torch.LocalSGD(model.parameters(), local_steps=4, mu=1.0, config=config, comm=comm, **settings)


def diloco_opt(model, comm, config=None):
    return compressed_opt(model, comm, config, lr=None, inner=adamw(model.parameters()),
                          variant="fedavg_server_momentum", outer="nesterov", server_lr=0.7, residual_decay=0.9)


QTOPK = spccl.Config(method="qtopk", density=0.25, block_size=8, value_bits=3, feedback="ef")


def diloco_qtopk_opt(model, comm):
    return diloco_opt(model, comm, QTOPK)


def test_quantized_topk_rounds_end_on_one_global_model_and_count_its_wire(world, comm):
    """DiLoCo with quantized Top-k outer gradients: every rank ends each round on the same x,
    the residual keeps what was not sent, and each round's bytes are the state's own wire
    (spcclStateGetInfo), below what Top-k's (index, value) slots would send."""
    model = make_model(1)
    opt = diloco_qtopk_opt(model, comm)
    train(opt, model, world.rank, 8)
    with opt.global_model():
        x = flat(model).numpy()
    assert (allsum(world, x) / world.size == x).all()
    state = opt.spccl_state()
    assert state.residual.any()
    wire = state.info().wire_bytes
    assert opt.bytes_sent == 2 * wire
    topk = spccl.State(comm, QTOPK.replace(method="topk"), state.count)
    assert 0 < wire < topk.info().wire_bytes
    topk.close()


def test_residual_decay_scales_what_was_not_sent(world, comm):
    """One round from the same start: the decayed residual is gamma times plain EF's (0.5:
    exact in floating point), and the global models agree (the decay only touches e)."""
    runs = []
    for decay in (1.0, 0.5):
        model = make_model(4)
        opt = compressed_opt(model, comm, residual_decay=decay)
        train(opt, model, world.rank, 4)
        with opt.global_model():
            x = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()
        runs.append((opt.spccl_state().residual.clone(), x))
    (plain, x_plain), (decayed, x_decayed) = runs
    assert plain.any()
    assert torch.equal(decayed, 0.5 * plain)
    assert torch.equal(x_decayed, x_plain)


@pytest.mark.parametrize("make_opt", [compressed_opt, diloco_opt, diloco_qtopk_opt],
                         ids=["domo", "diloco", "diloco-qtopk"])
def test_resume_mid_round_equals_the_straight_run(world, comm, make_opt):
    """10 steps (2.5 rounds of 4), save model and optimizer, load both into fresh ones (new
    spccl states, a new inner optimizer), 10 more: bit for bit the 20 straight steps,
    residual included."""
    straight = make_model(2)
    straight_opt = make_opt(straight, comm)
    train(straight_opt, straight, world.rank, 20)
    model = make_model(2)
    opt = make_opt(model, comm)
    train(opt, model, world.rank, 10)
    buffer = io.BytesIO()
    torch.save(dict(model=model.state_dict(), opt=opt.state_dict()), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    resumed = make_model(3)  # other weights: everything must come from the checkpoint
    opt2 = make_opt(resumed, comm)
    resumed.load_state_dict(saved["model"])
    opt2.load_state_dict(saved["opt"])
    train(opt2, resumed, world.rank, 10, first=10)
    for a, b in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    assert torch.equal(straight_opt.spccl_state().residual, opt2.spccl_state().residual)
    assert (opt2.rounds, opt2.local_step, opt2.spccl_state().step) == (5, 0, 5)


def test_resume_under_another_config_is_refused_unless_reset(world, comm):
    model = make_model(2)
    opt = compressed_opt(model, comm)
    train(opt, model, world.rank, 4)
    saved = opt.state_dict()
    other = compressed_opt(make_model(2), comm, spccl.Config(method="randomblock", density=0.5, block_size=4))
    with pytest.raises(ValueError, match="density"):
        other.load_state_dict(saved)
    other.load_state_dict(saved, reset=True)
    assert other.spccl_state().step == 0 and not other.spccl_state().residual.any()


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("kwargs, message", [
    (dict(variant="scaffold"), "variant"),
    (dict(local_steps=0), "local_steps"),
    (dict(momentum=1.0), "momentum"),
    (dict(fusion=1.5), "fusion"),
    (dict(mu=-1.0), "mu"),
    (dict(residual_decay=1.5), "residual_decay"),
    (dict(residual_decay=-0.1), "residual_decay"),
    (dict(lr=0.0), "lr"),
    (dict(lr=None), "lr is required"),
    (dict(outer="adam"), "outer"),
    (dict(variant="domo", outer="nesterov"), "fusion"),
    (dict(lr=None, inner="adamw"), "inner must be"),
    # NaN fails every `x <= 0` test and Inf passes most: both are refused by name.
    (dict(lr=NAN), "lr is nan"),
    (dict(lr=INF), "lr is inf"),
    (dict(server_lr=NAN), "server_lr is nan"),
    (dict(mu=NAN), "mu is nan"),
    (dict(weight_decay=NAN), "weight_decay is nan"),
    (dict(momentum=NAN), "momentum is nan"),
    (dict(fusion=NAN), "fusion is nan"),
    (dict(residual_decay=NAN), "residual_decay is nan"),
])
def test_bad_settings_are_refused(comm, kwargs, message):
    settings = dict(lr=0.1) | kwargs
    with pytest.raises((ValueError, TypeError), match=message):
        spccl_torch.LocalSGD(make_model(0).parameters(), comm=comm, **settings)


def test_inner_optimizer_over_other_parameters_is_refused(comm):
    model = make_model(0)
    inner = adamw(list(model.parameters())[:2])
    with pytest.raises(ValueError, match="same parameters"):
        spccl_torch.LocalSGD(model.parameters(), inner=inner, comm=comm)
    with pytest.raises(ValueError, match="lr is the built-in"):
        spccl_torch.LocalSGD(model.parameters(), lr=0.1, inner=adamw(model.parameters()), comm=comm)


@pytest.mark.parametrize("local_steps", [True, 2.0, "8"])
def test_local_steps_must_be_an_integer(comm, local_steps):
    with pytest.raises(TypeError, match="local_steps must be an integer"):
        spccl_torch.LocalSGD(make_model(0).parameters(), lr=0.1, local_steps=local_steps, comm=comm)


def test_damaged_checkpoint_is_refused_and_changes_nothing(world, comm):
    model = make_model(2)
    opt = compressed_opt(model, comm)
    train(opt, model, world.rank, 4)
    saved = opt.state_dict()
    fresh = compressed_opt(make_model(2), comm)
    for message, bad in damaged(saved, ("spccl",), ("spccl", "groups", 0, "spccl"), optional=("inner",)):
        with pytest.raises(ValueError, match=message):
            fresh.load_state_dict(bad)
    assert (fresh.rounds, fresh.local_step, fresh.spccl_state().step) == (0, 0, 0)
    assert not fresh.spccl_state().residual.any()
