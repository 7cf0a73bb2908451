# SPDX-License-Identifier: Apache-2.0
"""What each DDP bucket's compression must give, for the hook tests (torchrun here, mpirun in
tests/python/test_torch.py).

The model makes references easy: parameter w_i (distinct sizes, each over DDP's 1 MiB first
bucket, so one parameter per bucket) gets exactly the gradient x_i from loss sum_i <w_i, x_i>.
Per bucket and step, with e the residual before and e' after: this rank's contribution is
c = x + e - e'; it must be the method's selection of x + e (values there, zero elsewhere);
and the averaged gradient must be the all_reduce of every rank's c over the world size."""
import torch
import torch.distributed as dist
from torch import nn

BLOCK = 64
START = 2  # dense iterations before compression (SpcclHookState's default start_sparse_iter)


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


# --- DEF inside DDP (spccl_torch.DEFSGD) ------------------------------------------------

class PullNet(ParamNet):
    """loss = sum_i |w_i - t_i|^2 / 2: the gradient of w_i is w_i - t_i, so it depends on
    where the parameters are when the gradient is taken (the look-ahead is visible)."""

    def forward(self, ts):
        return sum(0.5 * (self.w[i] - ts[i]).pow(2).sum() for i in self.order)


def train_def_and_check(comm=None, steps=5, micro=1, lr=0.1, beta=0.9, wd=0.01, mu=0.3, density=0.1, seed=5,
                        lrs=None, **ddp_kwargs):
    """Trains PullNet (one parameter per bucket) with DEFSGD as the README registers it and,
    each step, compares every parameter and residual with DESIGN.md's DEF computed here in
    float64 from every rank's targets:

        dense iterations: x -= lr * mean(g + wd*y)            (y = x, no state yet)
        then:  y = x - mu*e;  m = beta*m + g(y) + wd*y;  p = e + lr*m
               c = p on the step's blocks;  e = p - c;  x -= mean over ranks of c

    e in parameter units (the hook keeps e/lr: the residual is compared times lr). `micro` > 1
    accumulates micro-batches under no_sync, all at y; `lrs`: the lr of each step (set
    between steps, as a scheduler does). Returns the hook state."""
    import spccl
    import spccl_torch

    size, rank = dist.get_world_size(), dist.get_rank()
    sizes = sizes_for(torch.float32, 3)
    net = PullNet(sizes, torch.float32, order=ddp_kwargs.pop("order", None))
    ddp = make_ddp(net, **ddp_kwargs)
    state = spccl_torch.SpcclHookState(spccl.Config(method="randomblock", density=density, block_size=BLOCK,
                                                    seed=seed), comm)
    ddp.register_comm_hook(state, spccl_torch.ddp_comm_hook)
    opt = spccl_torch.DEFSGD(ddp, state, lr=lr, momentum=beta, weight_decay=wd, mu=mu)
    x = [torch.zeros(n, dtype=torch.float64) for n in sizes]
    e = [torch.zeros(n, dtype=torch.float64) for n in sizes]
    m = [torch.zeros(n, dtype=torch.float64) for n in sizes]
    for step in range(steps):
        lr = lrs[step] if lrs is not None else lr
        opt.param_groups[0]["lr"] = lr
        opt.zero_grad()
        batches = [[t.float() for t in inputs(rank, step, sizes, torch.float64, k)] for k in range(micro)]
        for ts in batches[:-1]:
            with ddp.no_sync():
                ddp(ts).backward()
        ddp(batches[-1]).backward()
        opt.step()
        sparse = step >= START
        by_count = {st.count: st for st in state.states.values()}
        for i, w in enumerate(net.w):
            y = x[i] - mu * e[i] if sparse else x[i]
            g = sum(y - ts[i].double() for ts in batches) + wd * y
            if not sparse:
                mean = g.clone()
                dist.all_reduce(mean)
                x[i] = x[i] - lr * mean / size
                continue
            m[i] = beta * m[i] + g
            acc = e[i] + lr * m[i]
            mask = selection_mask(by_count[w.numel()], "randomblock", acc, None)
            c = torch.where(mask, acc, torch.zeros_like(acc))
            e[i] = acc - c
            dist.all_reduce(c)
            x[i] = x[i] - c / size
            torch.testing.assert_close(lr * by_count[w.numel()].residual.double(), e[i], rtol=1e-5, atol=1e-6)
            assert torch.count_nonzero(e[i]) > 0
        for i, w in enumerate(net.w):
            torch.testing.assert_close(w.detach().double(), x[i], rtol=1e-5, atol=1e-6,
                                       msg=f"parameter {i} after step {step}")
    assert not state.shifted, "every parameter is back at x after the step"
    return state

