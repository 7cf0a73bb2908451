# SPDX-License-Identifier: Apache-2.0
"""spccl_torch under mpirun: the DDP comm hook against a manual computation, and the DEF
optimizer against a NumPy re-implementation of SPEC §3."""
import numpy as np
import pytest
from conftest import allsum, free_port, random_block_reference, require

torch = require("torch", reason="torch is not installed (apt-get install python3-torch)")
import torch.distributed as dist  # noqa: E402

import spccl  # noqa: E402
import spccl_torch  # noqa: E402

BLOCK = 64
HOOK_CFG = dict(method="randomblock", density=0.25, block_size=BLOCK, block_pattern="scattered", feedback="ef",
                seed=5)


@pytest.fixture(scope="module")
def process_group(world):
    if not dist.is_initialized():
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port(world)}", rank=world.rank,
                                world_size=world.size)
    return dist.group.WORLD


def test_ddp_hook_equals_manual_computation(world, comm, process_group):
    torch.manual_seed(0)
    # Over 1 MiB of parameters and small buckets: several bucket indices (DDP's first bucket
    # holds 1 MiB whatever bucket_cap_mb says).
    model = torch.nn.Sequential(torch.nn.Linear(600, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512),
                                torch.nn.ReLU(), torch.nn.Linear(512, 4))
    ddp = torch.nn.parallel.DistributedDataParallel(model, bucket_cap_mb=0.1)
    state = spccl_torch.SpcclHookState(spccl.Config(**HOOK_CFG), comm=comm)
    records = []

    def recording_hook(hook_state, bucket):
        it, grads = hook_state.iter, bucket.buffer().clone()
        out = spccl_torch.ddp_comm_hook(hook_state, bucket).value()
        st = hook_state.states.get(bucket.index())
        sparse = it >= hook_state.start_sparse_iter
        records.append(dict(index=bucket.index(), grads=grads.numpy().astype(np.float64), out=out.numpy().copy(),
                            sparse=sparse, step=st.step - 1 if sparse else None,
                            blocks=st.block_selection(st.step - 1) if sparse else None,
                            residual=st.residual.clone().numpy() if sparse else None,
                            residual_device=st.residual.device if sparse else None, device=out.device))
        return _done(out)

    ddp.register_comm_hook(state, recording_hook)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(100 + world.rank)
    nsteps = 5
    for _ in range(nsteps):
        opt.zero_grad()
        ddp(torch.randn(16, 600, generator=gen)).pow(2).mean().backward()
        opt.step()

    # The reference, in float64 with its own residuals per bucket index; collectives in the
    # same order on every rank (DDP's bucket order is the same everywhere).
    shadow = {}
    for r in records:
        if not r["sparse"]:
            np.testing.assert_allclose(r["out"], allsum(world, r["grads"]) / world.size, rtol=1e-5, atol=1e-7)
            continue
        acc = r["grads"] + shadow.get(r["index"], 0.0)
        c = random_block_reference(acc, r["blocks"], BLOCK)
        shadow[r["index"]] = acc - c
        np.testing.assert_allclose(r["out"], allsum(world, c) / world.size, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(r["residual"], shadow[r["index"]], rtol=1e-5, atol=1e-7)
        assert r["residual_device"] == r["device"]
    assert state.iter == nsteps
    assert sum(not r["sparse"] for r in records) >= 2 and sum(r["sparse"] for r in records) >= 3
    assert len(state.states) >= 2, "expected several buckets"
    steps = {}
    for r in records:
        if r["sparse"]:
            assert r["step"] == steps.get(r["index"], 0)  # one spccl step per bucket per iteration
            steps[r["index"]] = r["step"] + 1
    # Identical averaged gradients keep the replicas identical.
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy().astype(np.float64)
    np.testing.assert_array_equal(allsum(world, flat) / world.size, flat)


def _done(value):
    fut = torch.futures.Future()
    fut.set_result(value)
    return fut


class FakeBucket:
    def __init__(self, buffer):
        self._buffer = buffer

    def buffer(self):
        return self._buffer

    def index(self):
        return 0

    def is_last(self):
        return True


def test_hook_recreates_state_when_bucket_changes(world, comm):
    state = spccl_torch.SpcclHookState(spccl.Config(**HOOK_CFG), comm=comm)
    for size, dtype in [(100, torch.float32), (100, torch.float32), (300, torch.float32), (300, torch.float64)]:
        out = spccl_torch.ddp_comm_hook(state, FakeBucket(torch.full((size,), 1.0 + world.rank, dtype=dtype)))
        out = out.value()
        if state.iter <= state.start_sparse_iter:  # dense: the exact mean
            assert torch.all(out == 1.0 + (world.size - 1) / 2)
        else:
            st = state.states[0]
            assert (st.count, st.dtype, st.step) == (size, dtype, 1) and st.residual.dtype == dtype


def test_hook_state_rejects_bad_settings(comm):
    with pytest.raises(ValueError, match="at least 2"):
        spccl_torch.SpcclHookState(comm=comm, start_sparse_iter=1)
    with pytest.raises(TypeError, match="spccl.Config"):
        spccl_torch.SpcclHookState(config={"density": 0.1}, comm=comm)


# ------------------------------------------------------------------------------ DEF

def tiny_problem(rank):
    rng = np.random.default_rng(rank)
    return rng.normal(size=(5, 6)), rng.normal(size=(5, 3))


def numpy_grad(flat, X, T):
    """Gradient of mean((X W^T + b - T)^2) at flat = [W (3x6, row-major), b (3)]."""
    W, b = flat[:18].reshape(3, 6), flat[18:]
    R = X @ W.T + b - T
    scale = 2.0 / R.size
    return np.concatenate([(scale * R.T @ X).ravel(), scale * R.sum(0)])


@pytest.mark.parametrize("mu,feedback,two_phase", [(0.3, "ef", False), (0.3, "ef", True), (0.0, "ef", False),
                                                   (0.5, "none", True)])
def test_def_equals_numpy_reference(world, comm, mu, feedback, two_phase):
    lr, beta, wd, block = 0.1, 0.9, 0.01, 4
    X, T = tiny_problem(comm.rank)
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 3).double()
    cfg = spccl.Config(method="randomblock", density=0.34, block_size=block, block_pattern="scattered",
                       feedback=feedback, seed=9)
    opt = spccl_torch.DEF(model.parameters(), lr=lr, momentum=beta, weight_decay=wd, mu=mu, config=cfg, comm=comm)
    Xt, Tt = torch.tensor(X), torch.tensor(T)

    def closure():
        opt.zero_grad()
        loss = (model(Xt) - Tt).pow(2).mean()
        loss.backward()
        return loss

    x = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy().copy()
    e, m = np.zeros_like(x), np.zeros_like(x)
    for step in range(6):
        if two_phase:
            opt.lookahead()
            closure()
            opt.step()
        else:
            opt.step(closure)
        # SPEC §3, with the selection every rank makes at this step.
        y = x - mu * e
        m = beta * m + numpy_grad(y, X, T) + wd * y
        p = e + lr * m
        cp = random_block_reference(p, opt.spccl_state().block_selection(step), block)
        x = x - allsum(world, cp) / world.size
        e = p - cp if feedback == "ef" else np.zeros_like(p)
        got = torch.cat([q.detach().reshape(-1) for q in model.parameters()]).numpy()
        np.testing.assert_allclose(got, x, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(opt.residual().numpy(), e, rtol=1e-12, atol=1e-14)
    assert np.any(e != 0) == (feedback == "ef")
    residual = opt.residual()
    assert residual.device == model.weight.device and residual.dtype == model.weight.dtype


def test_def_rejects_bad_use(comm):
    model = torch.nn.Linear(3, 1)
    with pytest.raises(ValueError, match="lr is -1"):
        spccl_torch.DEF(model.parameters(), lr=-1, comm=comm)
    with pytest.raises(ValueError, match="mu is -0.1"):
        spccl_torch.DEF(model.parameters(), lr=0.1, mu=-0.1, comm=comm)
    opt = spccl_torch.DEF(model.parameters(), lr=0.1, mu=0.3, comm=comm)
    model(torch.ones(2, 3)).sum().backward()
    with pytest.raises(RuntimeError, match="lookahead"):
        opt.step()
    bad = spccl_torch.DEF(model.parameters(), lr=0.1, config=spccl.Config(density=2.0), comm=comm)
    with pytest.raises(spccl.SpcclError, match="density 2 is outside"):
        bad.lookahead()
