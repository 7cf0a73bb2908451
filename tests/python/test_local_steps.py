# SPDX-License-Identifier: Apache-2.0
"""spccl_torch.LocalSGD under mpirun: each variant's rounds against the rules of
docs/local_steps.md written out independently (torch for the local steps, mpi4py for the
average), the compressed delta stream, and refused settings."""
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (apt-get install python3-torch)")
import spccl  # noqa: E402
import spccl_torch  # noqa: E402

from conftest import allsum  # noqa: E402


def make_model(seed):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))


def rank_batch(rank, step):
    g = torch.Generator().manual_seed(100 * rank + step)
    return torch.randn(4, 5, generator=g), torch.randn(4, 2, generator=g)


def train(opt, model, rank, steps, lrs=None):
    for s in range(steps):
        if lrs is not None:
            for group in opt.param_groups:
                group["lr"] = lrs[s]
        x, y = rank_batch(rank, s)
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def reference_rounds(world, steps, H, lrs, beta_l, beta_s, alpha, wd):
    """The rules of docs/local_steps.md written out with torch.optim.SGD for the local steps
    of rank `world.rank` and mpi4py for the average (dense)."""
    model = make_model(0)
    flat = lambda: torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double()  # noqa: E731
    x, u = flat(), torch.zeros_like(flat())
    for r in range(steps // H):
        m = [torch.zeros_like(p) for p in model.parameters()]
        y0, S = flat(), 0.0
        for h in range(H):
            s = r * H + h
            xb, yb = rank_batch(world.rank, s)
            model.zero_grad()
            torch.nn.functional.mse_loss(model(xb), yb).backward()
            with torch.no_grad():
                offset = 0
                for p, mp in zip(model.parameters(), m):
                    mp.mul_(beta_l).add_(p.grad + wd * p)
                    push = u[offset:offset + p.numel()].view_as(p).to(p.dtype)
                    p.sub_(lrs[s] * (mp + alpha * beta_s * push))
                    offset += p.numel()
            S += lrs[s]
        delta = (y0 - flat() - alpha * beta_s * S * u).numpy()
        D = torch.from_numpy(allsum(world, delta) / world.size)
        u = beta_s * u + D / S
        x = x - S * u
        with torch.no_grad():
            offset = 0
            for p in model.parameters():
                p.copy_(x[offset:offset + p.numel()].view_as(p))
                offset += p.numel()
    return x


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
    expected = reference_rounds(world, steps, H, lrs, 0.8 * local, 0.7 * server, 0.6 * fused, wd)
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


@pytest.mark.parametrize("kwargs, message", [
    (dict(variant="scaffold"), "variant"),
    (dict(local_steps=0), "local_steps"),
    (dict(momentum=1.0), "momentum"),
    (dict(fusion=1.5), "fusion"),
    (dict(mu=-1.0), "mu"),
    (dict(lr=0.0), "lr"),
])
def test_bad_settings_are_refused(comm, kwargs, message):
    settings = dict(lr=0.1) | kwargs
    with pytest.raises(ValueError, match=message):
        spccl_torch.LocalSGD(make_model(0).parameters(), comm=comm, **settings)
