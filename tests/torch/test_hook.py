# SPDX-License-Identifier: Apache-2.0
"""ddp_comm_hook on DDP's own gloo process group, registered exactly as the README shows:
each bucket's result against what the bucket's compression must give, in the DDP settings
users run (no_sync, fp16/bf16, gradient_as_bucket_view, static_graph, warm-up, rebuilds).

The model makes references easy: parameter w_i (distinct sizes, each over DDP's 1 MiB first
bucket, so one parameter per bucket) gets exactly the gradient x_i from loss sum_i <w_i, x_i>.
Per bucket and step, with e the residual before and e' after: this rank's contribution is
c = x + e - e'; it must be the method's selection of x + e (values there, zero elsewhere);
and the averaged gradient must be the all_reduce of every rank's c over the world size."""
import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch import nn

import spccl
import spccl_torch

BLOCK = 64
START = 2  # dense iterations before compression (SpcclHookState's default)


def sizes_for(dtype, nparams):
    first_bucket = (1 << 20) // torch.tensor([], dtype=dtype).element_size()
    return [first_bucket + BLOCK * (3 * i + 1) for i in range(nparams)]


class ParamNet(nn.Module):
    """loss = sum_i <w_i, x_i>: the gradient of w_i is x_i. `order` is the order the forward
    uses the parameters in; any order but the reverse of registration makes DDP rebuild its
    buckets differently after the first iteration."""

    def __init__(self, sizes, dtype, order=None):
        super().__init__()
        self.w = nn.ParameterList([nn.Parameter(torch.zeros(n, dtype=dtype)) for n in sizes])
        self.order = list(order) if order is not None else list(range(len(sizes)))

    def forward(self, xs):
        return sum((self.w[i] * xs[i]).sum() for i in self.order)


def inputs(rank, step, sizes, dtype, micro=0):
    gen = torch.Generator().manual_seed(10007 * step + 101 * rank + micro)
    return [torch.randn(n, generator=gen).to(dtype) for n in sizes]


def make_ddp(net, **ddp_kwargs):
    # bucket_cap_mb below every parameter's size: one parameter per bucket after DDP's first.
    return nn.parallel.DistributedDataParallel(net, bucket_cap_mb=0.001, **ddp_kwargs)


def selection_mask(state, method, acc, c):
    """Where this rank's contribution may be non-zero at the state's last step."""
    if method == "gaussiank":  # an estimated threshold picks at most k elements: those sent
        assert 0 < torch.count_nonzero(c) <= state.compressed_count()
        return c != 0
    mask = torch.zeros(acc.numel(), dtype=torch.bool)
    if method == "randomblock":
        for b in state.block_selection(state.step - 1):
            mask[b * BLOCK:(b + 1) * BLOCK] = True
    else:
        mask[torch.topk(acc.abs(), state.compressed_count()).indices] = True
    return mask


def check_buckets(hook_state, net, xs, residuals_before, method, tol):
    """One step's checks, for every parameter (= bucket). Collective: all_reduce per bucket."""
    by_count = {st.count: st for st in hook_state.states.values()}
    assert len(by_count) == len(net.w), "expected one spccl state per parameter bucket"
    for i, w in enumerate(net.w):
        st = by_count[w.numel()]
        e_new = st.residual.clone()
        # x + e in the bucket's dtype, as spccl forms it; the rest in float64.
        acc = (xs[i] + residuals_before.get(i, torch.zeros_like(e_new))).double()
        c = acc - e_new.double()
        mask = selection_mask(st, method, acc, c)
        assert torch.all(c[~mask] == 0), f"parameter {i}: contribution outside the selection"
        torch.testing.assert_close(c[mask], acc[mask], **tol)
        expected = c.clone()
        dist.all_reduce(expected)
        expected /= dist.get_world_size()
        torch.testing.assert_close(w.grad.double(), expected, **tol)
        residuals_before[i] = e_new


def train_and_check(method, dtype=torch.float32, nparams=3, steps=START + 3, order=None, density=0.1, **ddp_kwargs):
    size, rank = dist.get_world_size(), dist.get_rank()
    sizes = sizes_for(dtype, nparams)
    net = ParamNet(sizes, dtype, order)
    ddp = make_ddp(net, **ddp_kwargs)
    state = spccl_torch.SpcclHookState(spccl.Config(method=method, density=density, block_size=BLOCK, seed=5))
    ddp.register_comm_hook(state, spccl_torch.ddp_comm_hook)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=2e-2, atol=5e-2)
    residuals = {}
    for step in range(steps):
        net.zero_grad()
        xs = inputs(rank, step, sizes, dtype)
        ddp(xs).backward()
        if step < START:  # dense warm-up: the exact mean of every rank's gradient
            for i, w in enumerate(net.w):
                mean = sum(inputs(r, step, sizes, dtype)[i].double() for r in range(size)) / size
                torch.testing.assert_close(w.grad.double(), mean, **tol)
            assert not state.states, "no compression state before start_sparse_iter"
        else:
            check_buckets(state, net, xs, residuals, method, tol)
    assert state.iter == steps
    assert all(st.step == steps - START for st in state.states.values())
    for st in state.states.values():
        assert st.residual.dtype == dtype and st.residual.device.type == "cpu"
    return state


@pytest.mark.parametrize("method", ["randomblock", "topk", "gaussiank"])
def test_hook_on_process_group(method):
    train_and_check(method)


def test_eight_buckets_all_in_flight_together():
    # Eight or more buckets: each bucket's future is the process group's, so DDP keeps
    # computing later buckets while earlier ones are on the wire (the benchmark measures it).
    state = train_and_check("randomblock", nparams=8, steps=START + 1)
    assert len(state.states) == 8


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_buckets(dtype):
    train_and_check("randomblock", dtype=dtype, nparams=2)


def test_gradient_as_bucket_view():
    train_and_check("randomblock", gradient_as_bucket_view=True)


def test_static_graph():
    train_and_check("topk", static_graph=True)


def test_bucket_rebuild_after_first_iteration():
    # The forward uses the parameters in registration order, so gradients become ready in the
    # reverse of DDP's initial guess and the buckets are rebuilt after iteration 0.
    train_and_check("randomblock", order=[2, 0, 1], nparams=3)


def test_no_sync_accumulation_then_compressed_step():
    size, rank = dist.get_world_size(), dist.get_rank()
    sizes = sizes_for(torch.float32, 2)
    net = ParamNet(sizes, torch.float32)
    ddp = make_ddp(net)
    state = spccl_torch.SpcclHookState(spccl.Config(method="randomblock", density=0.1, block_size=BLOCK))
    ddp.register_comm_hook(state, spccl_torch.ddp_comm_hook)
    residuals = {}
    for step in range(START + 2):
        net.zero_grad()
        with ddp.no_sync():
            ddp(inputs(rank, step, sizes, torch.float32, micro=1)).backward()
        xs = inputs(rank, step, sizes, torch.float32)
        ddp(xs).backward()
        local = [a + b for a, b in zip(inputs(rank, step, sizes, torch.float32, micro=1), xs)]
        if step >= START:
            check_buckets(state, net, local, residuals, "randomblock", dict(rtol=1e-5, atol=1e-6))
    assert state.iter == START + 2  # the hook ran once per synchronised step, never under no_sync


def test_gtopk_is_refused_without_an_mpi_comm():
    with pytest.raises(ValueError, match="gtopk needs its own communication rounds"):
        spccl_torch.SpcclHookState(spccl.Config(method="gtopk"))


def test_def_on_process_group_matches_hook_free_reference():
    # DEF with the default process group: x moves by the group mean of C(e + lr*m).
    size, rank = dist.get_world_size(), dist.get_rank()
    torch.manual_seed(0)
    model = nn.Linear(64, 8, bias=False).double()
    cfg = spccl.Config(method="randomblock", density=0.25, block_size=16, seed=3)
    opt = spccl_torch.DEF(model.parameters(), lr=0.1, momentum=0.0, mu=0.0, config=cfg)
    x_before = model.weight.detach().clone().reshape(-1)
    e_before = torch.zeros_like(x_before)
    gen = torch.Generator().manual_seed(rank)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(4, 64, generator=gen, dtype=torch.float64)).pow(2).sum().backward()
        p = e_before + 0.1 * model.weight.grad.reshape(-1)
        opt.step()
        e_after = opt.residual().clone()
        c = p - e_after
        blocks = opt.spccl_state().block_selection(opt.spccl_state().step - 1)
        mask = torch.zeros_like(c, dtype=torch.bool)
        for b in blocks:
            mask[b * 16:(b + 1) * 16] = True
        assert torch.all(c[~mask] == 0)
        torch.testing.assert_close(c[mask], p[mask])
        dist.all_reduce(c)
        torch.testing.assert_close(model.weight.detach().reshape(-1), x_before - c / size)
        x_before, e_before = model.weight.detach().clone().reshape(-1), e_after
    assert torch.count_nonzero(e_before) > 0
