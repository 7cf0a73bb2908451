# SPDX-License-Identifier: Apache-2.0
"""PyTorch's own DDP comm-hook tests that fit gloo on CPU, ported to spccl's hook. Each test
names the upstream test it follows (pytorch/pytorch, test/distributed/test_c10d_gloo.py and
torch/testing/_internal/distributed/distributed_test.py)."""
import copy
import io

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import spccl
import spccl_torch
from checkpoint_cases import damaged


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(), nn.Linear(40, 5))


def data(global_batch):
    gen = torch.Generator().manual_seed(1)
    return torch.randn(global_batch, 12, generator=gen), torch.randn(global_batch, 5, generator=gen)


def local_part(tensor):
    size, rank = dist.get_world_size(), dist.get_rank()
    n = tensor.shape[0] // size
    return tensor[rank * n:(rank + 1) * n]


def test_dense_hook_gradients_equal_no_hook():
    # Follows distributed_test.py test_ddp_hook_parity_allreduce: a hook that averages densely
    # leaves DDP's gradients as they are without a hook.
    x, y = data(4 * dist.get_world_size())
    plain = DistributedDataParallel(mlp(), bucket_cap_mb=0.001)
    hooked = DistributedDataParallel(mlp(), bucket_cap_mb=0.001)
    hooked.register_comm_hook(spccl_torch.SpcclHookState(spccl.Config(method="dense")), spccl_torch.ddp_comm_hook)
    opts = [torch.optim.SGD(m.parameters(), lr=0.1) for m in (plain, hooked)]
    for step in range(5):  # through the warm-up and past it
        for model, opt in zip((plain, hooked), opts):
            opt.zero_grad()
            F.mse_loss(model(local_part(x)), local_part(y)).backward()
        for p, q in zip(plain.parameters(), hooked.parameters()):
            # rtol 1e-5; atol for entries near zero, where a different summation order shows.
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-7)
        for opt in opts:
            opt.step()


def test_registering_twice_raises():
    # Follows test_c10d_gloo.py CommTest.test_ddp_comm_hook_register_just_once.
    model = DistributedDataParallel(mlp())
    model.register_comm_hook(spccl_torch.SpcclHookState(), spccl_torch.ddp_comm_hook)
    with pytest.raises(RuntimeError, match="register_comm_hook or register_builtin_comm_hook can only be called once"):
        model.register_comm_hook(spccl_torch.SpcclHookState(), spccl_torch.ddp_comm_hook)


@pytest.mark.parametrize("gradient_as_bucket_view", [False, True])
def test_no_sync_accumulation(gradient_as_bucket_view):
    # Follows distributed_test.py _test_accumulate_gradients_no_sync (test_accumulate_gradients_no_sync
    # and its _grad_is_view variant): grads accumulated under no_sync() stay local; the next
    # synchronised step equals a single process on the whole batch.
    size = dist.get_world_size()
    x, y = data(size)
    model = mlp()
    ddp = DistributedDataParallel(copy.deepcopy(model), gradient_as_bucket_view=gradient_as_bucket_view)
    ddp.register_comm_hook(spccl_torch.SpcclHookState(spccl.Config(method="dense")), spccl_torch.ddp_comm_hook)

    def step(m, inp, target):
        F.mse_loss(m(inp), target).backward()

    with torch.no_grad(), ddp.no_sync():  # no grads under no_grad
        ddp(local_part(x))
    for iteration in range(4):
        step(model, x, y)
        if iteration % 2 == 0:
            with ddp.no_sync():
                step(ddp, local_part(x), local_part(y))
        else:
            step(ddp, local_part(x), local_part(y))
        for p, q in zip(model.parameters(), ddp.parameters()):
            if iteration % 2 == 0 and size > 1:
                assert not torch.allclose(p.grad, q.grad)
            elif iteration % 2 == 1:
                torch.testing.assert_close(q.grad, p.grad)
        torch.manual_seed(1337 + iteration)
        x, y = x[torch.randperm(size)], y[torch.randperm(size)]


def test_pickling_round_trip_after_ten_steps():
    # Follows distributed_test.py test_ddp_hook_pickling_powerSGD (_test_hook_pickling): after
    # 10 steps, torch.save of the hook and its state; the loaded state has every slot but the
    # process group, keeps this rank's residuals, and a model that registers it continues
    # exactly as the original does.
    x, y = data(4 * dist.get_world_size())
    net = mlp()
    ddp = DistributedDataParallel(copy.deepcopy(net), bucket_cap_mb=0.001)
    state = spccl_torch.SpcclHookState(spccl.Config(method="randomblock", density=0.25, block_size=8))
    ddp.register_comm_hook(state, spccl_torch.ddp_comm_hook)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.01)
    for _ in range(10):
        opt.zero_grad()
        F.mse_loss(ddp(local_part(x)), local_part(y)).backward()
        opt.step()
    buffer = io.BytesIO()
    torch.save(dict(state_dict=ddp.state_dict(), comm_hook=spccl_torch.ddp_comm_hook, comm_hook_state=state), buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    hook, hook_state = loaded["comm_hook"], loaded["comm_hook_state"]
    assert hook.__qualname__ == spccl_torch.ddp_comm_hook.__qualname__
    assert hook_state.__slots__ == state.__slots__
    assert hook_state.process_group is None and hook_state.comm is None
    assert (hook_state.iter, hook_state.start_sparse_iter) == (state.iter, state.start_sparse_iter)
    assert repr(hook_state.config) == repr(state.config)
    assert set(hook_state.pending) == set(state.states)
    for index, st in state.states.items():
        assert hook_state.pending[index]["step"] == st.step == 8
        assert torch.equal(hook_state.pending[index]["residual"], st.residual)

    twin = DistributedDataParallel(copy.deepcopy(net), bucket_cap_mb=0.001)
    twin.load_state_dict(loaded["state_dict"])
    twin.register_comm_hook(hook_state, hook)
    twin_opt = torch.optim.SGD(twin.parameters(), lr=0.01)
    twin_opt.load_state_dict(opt.state_dict())
    for model, o in ((ddp, opt), (twin, twin_opt)):
        o.zero_grad()
        F.mse_loss(model(local_part(x)), local_part(y)).backward()
    for p, q in zip(ddp.parameters(), twin.parameters()):
        assert torch.equal(p.grad, q.grad)
    for index, st in state.states.items():
        assert torch.equal(hook_state.states[index].residual, st.residual)


def test_load_under_other_settings_is_an_error_unless_reset():
    state = spccl_torch.SpcclHookState(spccl.Config(method="randomblock", density=0.25))
    saved = state.state_dict()
    other = spccl_torch.SpcclHookState(spccl.Config(method="randomblock", density=0.5))
    with pytest.raises(ValueError, match="saved with config"):
        other.load_state_dict(saved)
    wrong_size = dict(saved, tag=dict(saved["tag"], world_size=saved["tag"]["world_size"] + 1))
    with pytest.raises(ValueError, match="world_size"):
        state.load_state_dict(wrong_size)
    other.load_state_dict(saved, reset=True)
    assert other.iter == saved["iter"] and not other.pending


def test_def_state_dict_round_trip():
    model = nn.Linear(8, 3).double()
    cfg = spccl.Config(method="topk", density=0.2)
    opt = spccl_torch.DEF(model.parameters(), lr=0.1, config=cfg)
    gen = torch.Generator().manual_seed(dist.get_rank())
    inputs = [torch.randn(4, 8, generator=gen, dtype=torch.float64) for _ in range(4)]

    def run(o, m, xs):
        for inp in xs:
            o.step(lambda: (o.zero_grad(), m(inp).pow(2).sum().backward()))

    run(opt, model, inputs[:2])
    saved = opt.state_dict()
    twin_model = copy.deepcopy(model)
    twin = spccl_torch.DEF(twin_model.parameters(), lr=0.1, config=cfg)
    twin.load_state_dict(saved)
    run(opt, model, inputs[2:])
    run(twin, twin_model, inputs[2:])
    assert torch.equal(model.weight, twin_model.weight)
    assert torch.equal(opt.residual(), twin.residual())
    pickled = torch.load(io.BytesIO(_saved(opt)), weights_only=False)
    assert pickled.comm is None and pickled.process_group is None
    with pytest.raises(ValueError, match="saved with config"):
        spccl_torch.DEF(nn.Linear(8, 3).double().parameters(), lr=0.1,
                        config=spccl.Config(method="topk", density=0.3)).load_state_dict(saved)


def _saved(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def test_damaged_checkpoints_are_refused_and_change_nothing():
    # A truncated dict, a step outside [0, 2**64) or of the wrong type, a NaN residual: each a
    # ValueError saying what is wrong (checkpoint_cases.py), raised before anything changes.
    x, y = data(4 * dist.get_world_size())
    ddp = DistributedDataParallel(mlp(), bucket_cap_mb=0.001)
    state = spccl_torch.SpcclHookState(spccl.Config(method="randomblock", density=0.25, block_size=8))
    ddp.register_comm_hook(state, spccl_torch.ddp_comm_hook)
    opt = spccl_torch.DEF(mlp().parameters(), lr=0.1, config=spccl.Config(method="topk", density=0.2))
    for _ in range(4):
        ddp.zero_grad()
        F.mse_loss(ddp(local_part(x)), local_part(y)).backward()
        opt.step(lambda: (opt.zero_grad(), opt.param_groups[0]["params"][0].sum().backward()))
    hook_saved, def_saved = state.state_dict(), opt.state_dict()
    before = {i: (st.step, st.residual.clone()) for i, st in state.states.items()}
    def_before = (opt.spccl_state().step, opt.residual().clone())
    bucket = next(iter(hook_saved["buckets"]))
    cases = [(state, c) for c in damaged(hook_saved, (), ("buckets", bucket))]
    cases += [(opt, c) for c in damaged(def_saved, ("spccl",), ("spccl", "groups", 0, "spccl"))]
    for owner, (message, bad) in cases:
        with pytest.raises(ValueError, match=message):
            owner.load_state_dict(bad)
    assert len(cases) > 15 and not state.pending and state.iter == 4
    for i, st in state.states.items():
        assert st.step == before[i][0] and torch.equal(st.residual, before[i][1])
    assert opt.spccl_state().step == def_before[0] and torch.equal(opt.residual(), def_before[1])


def test_a_saved_residual_is_never_restored_into_other_parameters():
    # The hook's spccl-comm path hands a bucket straight to its state: a saved residual whose
    # parameters (the checkpoint's layout) differ from the bucket's is refused, not restored.
    state = spccl_torch.SpcclHookState(spccl.Config(method="randomblock", density=0.25, block_size=8))
    buffer = torch.zeros(16)
    st = state.state_for(0, buffer, [(0, 0), (0, 1)])
    st.restore(3, torch.arange(16.0))
    saved = dict(spccl.checkpoint.snapshot(st), params=[(0, 1), (0, 0)])
    state.load_state_dict(dict(state.state_dict(), buckets={0: saved}))
    with pytest.raises(ValueError, match="bucket 0 now holds other parameters than its residual was made for"):
        state.state_for(0, buffer, [(0, 0), (0, 1)])
    assert st.step == 0 and not st.residual.any() and 0 in state.pending  # nothing restored
    assert state.state_for(0, buffer, [(0, 1), (0, 0)]).step == 3  # the saved layout: restored
    with pytest.raises(ValueError, match="other parameters"):  # and bound to it from then on
        state.state_for(0, buffer, [(0, 0), (0, 1)])
