# SPDX-License-Identifier: Apache-2.0
"""spccl_torch.LocalSGD under mpirun: each variant's rounds against the rules of
docs/local_steps.md written out independently (torch for the local steps, mpi4py for the
average), the compressed delta stream, and refused settings."""
import io

import pytest
from conftest import allsum, require

torch = require("torch", reason="torch is not installed (apt-get install python3-torch)")
import spccl  # noqa: E402
import spccl_torch  # noqa: E402

from local_steps_reference import make_model, reference_rounds, train  # noqa: E402


@pytest.mark.parametrize("variant", ["fedavg", "fedavg_local_momentum", "fedavg_server_momentum", "domo"])
def test_rounds_follow_the_documented_rules(world, comm, variant):
    H, steps, wd = 3, 12, 0.01
    lrs = [0.1 * (1 - s / 20) for s in range(steps)]  # a schedule: lr changes inside rounds
    model = make_model(0)
    opt = spccl_torch.LocalSGD(model.parameters(), lr=0.1, local_steps=H, variant=variant, momentum=0.8,
                               server_momentum=0.7, fusion=0.6, weight_decay=wd, config=spccl.Config(method="dense"),
                               comm=comm)
    train(opt, model, world.rank, steps, lrs)
    local, server, fused = spccl_torch.local.VARIANTS[variant]
    mean = lambda a: allsum(world, a) / world.size  # noqa: E731
    expected = reference_rounds(world.rank, mean, steps, H, lrs, 0.8 * local, 0.7 * server, 0.6 * fused, wd)
    got = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double()
    assert opt.rounds == steps // H
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5), (got - expected).abs().max()


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
    return spccl_torch.LocalSGD(model.parameters(), lr=0.05, local_steps=4, variant="domo", mu=1.0, config=config,
                                comm=comm, **settings)


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


def test_resume_mid_round_equals_the_straight_run(world, comm):
    """10 steps (2.5 rounds of 4), save model and optimizer, load both into fresh ones (new
    spccl states), 10 more: bit for bit the 20 straight steps, residual included."""
    straight = make_model(2)
    straight_opt = compressed_opt(straight, comm)
    train(straight_opt, straight, world.rank, 20)
    model = make_model(2)
    opt = compressed_opt(model, comm)
    train(opt, model, world.rank, 10)
    buffer = io.BytesIO()
    torch.save(dict(model=model.state_dict(), opt=opt.state_dict()), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    resumed = make_model(3)  # other weights: everything must come from the checkpoint
    opt2 = compressed_opt(resumed, comm)
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


@pytest.mark.parametrize("kwargs, message", [
    (dict(variant="scaffold"), "variant"),
    (dict(local_steps=0), "local_steps"),
    (dict(momentum=1.0), "momentum"),
    (dict(fusion=1.5), "fusion"),
    (dict(mu=-1.0), "mu"),
    (dict(residual_decay=1.5), "residual_decay"),
    (dict(residual_decay=-0.1), "residual_decay"),
    (dict(lr=0.0), "lr"),
])
def test_bad_settings_are_refused(comm, kwargs, message):
    settings = dict(lr=0.1) | kwargs
    with pytest.raises(ValueError, match=message):
        spccl_torch.LocalSGD(make_model(0).parameters(), comm=comm, **settings)
