# SPDX-License-Identifier: Apache-2.0
"""spccl_horovod with real Horovod (built by scripts/setup.sh into .venv) under mpirun."""
import copy
import io
import os
import pickle
import sys

import numpy as np
import pytest
from conftest import allsum, random_block_reference, require

torch = require("torch", reason="torch is not installed (apt-get install python3-torch)")
hvd = require("horovod.torch", reason="Horovod is not installed: scripts/setup.sh builds it into .venv "
                                                  "(see .venv/horovod-build.log when that failed)")
import spccl_horovod  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "torch"))
from checkpoint_cases import damaged  # noqa: E402

BLOCK = 4


@pytest.fixture(scope="module", autouse=True)
def horovod(world):
    hvd.init()
    assert hvd.size() == world.size and hvd.rank() == world.rank
    if hvd.size() < 2:
        pytest.skip("Horovod calls compress only with 2 or more ranks")


def test_compressor_round_trip_through_horovod_allreduce(world):
    comp = spccl_horovod.RandomBlockCompressor(density=0.25, block_size=BLOCK, block_pattern="scattered", seed=11)
    e = np.zeros(6 * 7)
    for step in range(3):
        g = torch.tensor(np.random.default_rng(10 * step + world.rank).normal(size=(6, 7)), dtype=torch.float32)
        comp.set_name("w")
        values, ctx = comp.compress(g)
        st = comp.states["w"]
        assert values.numel() == st.compressed_count() < g.numel() and ctx[1] == step
        out = comp.decompress(hvd.allreduce(values, op=hvd.Average, name=f"rt{step}"), ctx)
        acc = g.numpy().ravel().astype(np.float64) + e
        c = random_block_reference(acc, st.block_selection(step), BLOCK)
        e = acc - c
        assert out.shape == g.shape and out.dtype == g.dtype
        np.testing.assert_allclose(out.numpy().ravel(), allsum(world, c) / world.size, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(st.residual.numpy(), e, rtol=1e-6, atol=1e-7)
    with pytest.raises(RuntimeError, match="without a name"):
        comp.compress(torch.zeros(3))


def test_distributed_optimizer_matches_manual_computation(world):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(20, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    comp = spccl_horovod.RandomBlockCompressor(density=0.3, block_size=BLOCK, block_pattern="scattered", seed=12)
    opt = hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1),
                                   named_parameters=model.named_parameters(), compression=comp)
    names = {p: n for n, p in model.named_parameters()}
    gen = torch.Generator().manual_seed(50 + world.rank)
    shadow = {}
    for step in range(4):
        x, y = torch.randn(16, 20, generator=gen), torch.randn(16, 2, generator=gen)
        loss_fn = lambda m: (m(x) - y).pow(2).mean()  # noqa: E731
        ref = copy.deepcopy(model)  # local gradients, without Horovod's hooks
        loss_fn(ref).backward()
        local = {n: p.grad.numpy().ravel().astype(np.float64) for n, p in ref.named_parameters()}
        opt.zero_grad()
        loss_fn(model).backward()
        opt.synchronize()
        for p, name in names.items():
            st = comp.states[name]
            acc = local[name] + shadow.get(name, 0.0)
            c = random_block_reference(acc, st.block_selection(step), BLOCK)
            shadow[name] = acc - c
            np.testing.assert_allclose(p.grad.numpy().ravel(), allsum(world, c) / world.size, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(st.residual.numpy(), shadow[name], rtol=1e-5, atol=1e-6)
            assert st.residual.device == p.grad.device and st.step == step + 1
        with opt.skip_synchronize():
            opt.step()
    assert set(comp.states) == set(names.values())
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy().astype(np.float64)
    np.testing.assert_array_equal(allsum(world, flat) / world.size, flat)  # replicas stay identical


def make_job(density=0.3):
    """A model (the same initial weights on every rank), its compressor and Horovod optimizer,
    all new: nothing carries over from an earlier job in this process."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(20, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    comp = spccl_horovod.RandomBlockCompressor(density=density, block_size=BLOCK, block_pattern="scattered", seed=21)
    opt = hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                                   named_parameters=model.named_parameters(), compression=comp)
    return model, opt, comp


def train(world, model, opt, steps):
    for step in steps:  # each rank its own data, the same at a given step in every job
        gen = torch.Generator().manual_seed(1000 * step + world.rank)
        x, y = torch.randn(16, 20, generator=gen), torch.randn(16, 2, generator=gen)
        opt.zero_grad()
        (model(x) - y).pow(2).mean().backward()
        opt.step()


def test_resume_from_checkpoint_equals_straight_run(world):
    """10 steps, save (model, optimizer, compressor through torch.save), a new job loads it and
    runs 10 more: the parameters equal 20 straight steps bit for bit, and each rank restored its
    own residuals (not rank 0's)."""
    model, opt, _ = make_job()
    train(world, model, opt, range(20))
    straight = [p.detach().clone() for p in model.parameters()]

    model, opt, comp = make_job()
    train(world, model, opt, range(10))
    blob = io.BytesIO()
    torch.save(dict(model=model.state_dict(), opt=opt.state_dict(), comp=comp.state_dict()), blob)
    saved = comp.state_dict()["tensors"]
    residual = {n: s["residual"].numpy().astype(np.float64) for n, s in saved.items()}
    rank0 = {n: world.bcast(r, root=0) for n, r in residual.items()}

    model, opt, comp = make_job()
    blob.seek(0)
    checkpoint = torch.load(blob)
    model.load_state_dict(checkpoint["model"])
    opt.load_state_dict(checkpoint["opt"])
    comp.load_state_dict(checkpoint["comp"])
    train(world, model, opt, range(10, 20))

    assert {n: s["step"] for n, s in saved.items()} == {n: 10 for n in saved}
    assert all(comp.states[n].step == 20 for n in saved)
    if world.rank != 0:
        assert any(not np.array_equal(residual[n], rank0[n]) for n in saved)
    for resumed, expected in zip(model.parameters(), straight):
        assert torch.equal(resumed.detach(), expected)


def compress_once(comp, g):
    comp.set_name("w")
    values, ctx = comp.compress(g)
    return comp.decompress(hvd.allreduce(values, op=hvd.Average, name=f"ck{ctx[1]}"), ctx)


def test_checkpoint_under_another_config_or_world_is_refused_unless_reset(world):
    g = torch.tensor(np.random.default_rng(70 + world.rank).normal(size=40), dtype=torch.float32)
    comp = spccl_horovod.RandomBlockCompressor(density=0.3, block_size=BLOCK, block_pattern="scattered", seed=22)
    compress_once(comp, g)
    saved = comp.state_dict()
    other = spccl_horovod.RandomBlockCompressor(density=0.25, block_size=BLOCK, block_pattern="scattered", seed=22)
    with pytest.raises(ValueError, match="config"):
        other.load_state_dict(saved)
    with pytest.raises(ValueError, match="world_size"):
        comp.load_state_dict(dict(saved, tag=dict(saved["tag"], world_size=world.size + 1)))
    assert comp.states["w"].step == 1  # a refused load changed nothing

    other.load_state_dict(saved, reset=True)  # starts afresh: step 0, residual g - C(g)
    compress_once(other, g)
    st = other.states["w"]
    acc = g.numpy().astype(np.float64)
    expected = acc - random_block_reference(acc, st.block_selection(0), BLOCK)
    assert st.step == 1
    np.testing.assert_allclose(st.residual.numpy(), expected, rtol=1e-6, atol=1e-7)

    clone = pickle.loads(pickle.dumps(comp))  # PowerSGDState-style: no comm in the pickle
    compress_once(clone, g)
    compress_once(comp, g)
    assert clone.states["w"].step == comp.states["w"].step == 2
    assert torch.equal(clone.states["w"].residual, comp.states["w"].residual)


def test_damaged_checkpoint_is_refused_and_changes_nothing(world):
    g = torch.tensor(np.random.default_rng(90 + world.rank).normal(size=40), dtype=torch.float32)
    comp = spccl_horovod.RandomBlockCompressor(density=0.3, block_size=BLOCK, block_pattern="scattered", seed=23)
    compress_once(comp, g)
    saved, residual = comp.state_dict(), comp.states["w"].residual.clone()
    for message, bad in damaged(saved, (), ("tensors", "w")):
        with pytest.raises(ValueError, match=message):
            comp.load_state_dict(bad)
    assert comp.states["w"].step == 1 and torch.equal(comp.states["w"].residual, residual)
