# SPDX-License-Identifier: Apache-2.0
"""spccl_torch under mpirun: the DDP comm hook against a manual computation, and the DEF
optimizer against a NumPy re-implementation of DESIGN.md, Error feedback."""
import os
import sys

import numpy as np
import pytest
from conftest import allsum, free_port, random_block_reference, require

torch = require("torch", reason="torch is not installed (apt-get install python3-torch)")
import torch.distributed as dist  # noqa: E402

import spccl  # noqa: E402
import spccl_torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "torch"))
from ddp_reference import (BLOCK, ParamNet, check_buckets, inputs, make_ddp, sizes_for,  # noqa: E402
                           train_def_and_check)


@pytest.fixture(scope="module")
def process_group(world):
    if not dist.is_initialized():
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port(world)}", rank=world.rank,
                                world_size=world.size)
    return dist.group.WORLD


def test_ddp_hook_on_mpi_comm(comm, process_group):
    # The mpirun path: the public hook registered as the README shows, spccl's own collective
    # moving the payloads. References as in the torchrun tests (tests/torch/ddp_reference.py).
    rank, start, steps = dist.get_rank(), 2, 5
    sizes = sizes_for(torch.float32, 3)
    net = ParamNet(sizes, torch.float32)
    ddp = make_ddp(net)
    cfg = spccl.Config(method="randomblock", density=0.1, block_size=BLOCK, seed=5)
    state = spccl_torch.SpcclHookState(cfg, comm)
    ddp.register_comm_hook(state, spccl_torch.ddp_comm_hook)
    residuals = {}
    for step in range(steps):
        net.zero_grad()
        xs = inputs(rank, step, sizes, torch.float32)
        ddp(xs).backward()
        if step >= start:
            check_buckets(state, net, xs, residuals, "randomblock", dict(rtol=1e-5, atol=1e-6))
    assert state.iter == steps and all(st.step == steps - start for st in state.states.values())


def test_ddp_hook_runs_onebit_on_mpi_comm(comm, process_group):
    # 1-bit has no process-group exchange; on spccl's comm the hook runs it by name, and each
    # bucket's gradient is what a 1-bit state of the same config makes of the same gradients
    # (both levels of error feedback included), step after step.
    rank, start, steps = dist.get_rank(), 2, 5
    sizes = sizes_for(torch.float32, 3)
    net = ParamNet(sizes, torch.float32)
    ddp = make_ddp(net)
    cfg = spccl.Config(method="onebit", feedback="ef")
    state = spccl_torch.SpcclHookState(cfg, comm)
    ddp.register_comm_hook(state, spccl_torch.ddp_comm_hook)
    references = [spccl.State(comm, cfg, n, torch.float32) for n in sizes]
    for step in range(steps):
        net.zero_grad()
        xs = inputs(rank, step, sizes, torch.float32)
        ddp(xs).backward()
        if step < start:
            continue
        for i, w in enumerate(net.w):
            want = references[i].sparse_allreduce(xs[i].clone(), op="avg")
            assert torch.equal(w.grad, want), f"parameter {i}, step {step}"
    assert all(st.config.method == "onebit" and st.step == steps - start for st in state.states.values())
    for ref in references:
        ref.close()


def test_def_inside_ddp_on_mpi_comm(comm, process_group):
    # DEFSGD with the hook on spccl's own collective: parameters and residuals against DEF
    # computed from every rank's data, as on the process group (tests/torch/test_def_ddp.py).
    train_def_and_check(comm)
    train_def_and_check(comm, micro=2, gradient_as_bucket_view=True)


def test_hook_state_rejects_bad_settings(comm):
    with pytest.raises(ValueError, match="at least 2"):
        spccl_torch.SpcclHookState(comm=comm, start_sparse_iter=1)
    for not_an_integer in (float("nan"), 2.5, True):
        with pytest.raises(TypeError, match="start_sparse_iter must be an integer"):
            spccl_torch.SpcclHookState(comm=comm, start_sparse_iter=not_an_integer)
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
        # DESIGN.md, Error feedback, with the selection every rank makes at this step.
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
    nan, inf = float("nan"), float("inf")
    for bad, message in ((dict(lr=nan), "lr is nan"), (dict(lr=inf), "lr is inf"), (dict(mu=nan), "mu is nan"),
                         (dict(weight_decay=nan), "weight_decay is nan"), (dict(momentum=nan), "momentum is nan")):
        with pytest.raises(ValueError, match=message):
            spccl_torch.DEF(model.parameters(), **(dict(lr=0.1) | bad), comm=comm)
    opt = spccl_torch.DEF(model.parameters(), lr=0.1, mu=0.3, comm=comm)
    model(torch.ones(2, 3)).sum().backward()
    with pytest.raises(RuntimeError, match="lookahead"):
        opt.step()
    bad = spccl_torch.DEF(model.parameters(), lr=0.1, config=spccl.Config(density=2.0), comm=comm)
    with pytest.raises(spccl.SpcclError, match="density 2 is outside"):
        bad.lookahead()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_onebit_checkpoint_resumes_bit_for_bit(world, comm, dtype):
    # The checkpoint holds the state's whole feedback memory (1-bit's server residual after
    # the worker residual), so a state restored from it continues exactly as the saved one.
    from spccl import checkpoint

    n, cfg = 3000, spccl.Config(method="onebit", feedback="ef")
    straight, resumed = spccl.State(comm, cfg, n, dtype), spccl.State(comm, cfg, n, dtype)
    grads = [torch.from_numpy(np.random.default_rng(100 * world.rank + s).standard_normal(n)).to(dtype)
             for s in range(8)]
    for s in range(3):
        straight.sparse_allreduce(grads[s].clone())
    saved = checkpoint.snapshot(straight)
    assert saved["residual"].numel() == straight.residual_count == n + -(-n // world.size)
    assert torch.count_nonzero(saved["residual"][n:]) > 0  # the server part is in it
    checkpoint.restore(resumed, saved, "test")
    for s in range(3, 8):
        a, b = straight.sparse_allreduce(grads[s].clone()), resumed.sparse_allreduce(grads[s].clone())
        assert torch.equal(a.view(torch.int16 if dtype != torch.float32 else torch.int32),
                           b.view(torch.int16 if dtype != torch.float32 else torch.int32)), f"step {s}"
    with pytest.raises(spccl.SpcclError):
        resumed.restore(0, saved["residual"][:n].clone())  # the worker part alone is refused
