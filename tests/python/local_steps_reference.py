# SPDX-License-Identifier: Apache-2.0
"""The pieces the LocalSGD tests share under mpirun (tests/python) and torchrun
(tests/torch): a tiny model, per-rank batches, the training loop, and the rules of
docs/local_steps.md written out independently of spccl_torch.LocalSGD."""
import torch


def make_model(seed):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))


def rank_batch(rank, step):
    g = torch.Generator().manual_seed(100 * rank + step)
    return torch.randn(4, 5, generator=g), torch.randn(4, 2, generator=g)


def train(opt, model, rank, steps, lrs=None, first=0):
    """`steps` optimizer steps from step `first`, on rank `rank`'s batches, lr from `lrs`."""
    for s in range(first, first + steps):
        if lrs is not None:
            for group in opt.param_groups:
                group["lr"] = lrs[s]
        x, y = rank_batch(rank, s)
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def reference_rounds(rank, mean, steps, H, lrs, beta_l, beta_s, alpha, wd, carried=False, nesterov=False,
                     eta_s=1.0, inner=None):
    """The rules of docs/local_steps.md written out on their own for rank `rank`, with the
    launcher's own dense average `mean` (a float64 NumPy array -> its mean over the ranks).
    carried: the local momentum is not reset at round start (FedAvgSLM); nesterov: the outer
    step looks ahead along u (DiLoCo); inner: a function params -> torch optimizer that takes
    the local steps instead of momentum SGD (lrs then set its lr)."""
    model = make_model(0)
    flat = lambda: torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double()  # noqa: E731
    x, u = flat(), torch.zeros_like(flat())
    opt = inner(model.parameters()) if inner is not None else None
    m = [torch.zeros_like(p) for p in model.parameters()]
    for r in range(steps // H):
        if not carried:
            m = [torch.zeros_like(p) for p in model.parameters()]
        y0, S = flat(), 0.0
        for h in range(H):
            s = r * H + h
            xb, yb = rank_batch(rank, s)
            model.zero_grad()
            torch.nn.functional.mse_loss(model(xb), yb).backward()
            if opt is not None:
                for group in opt.param_groups:
                    group["lr"] = lrs[s]
                opt.step()
            with torch.no_grad():
                offset = 0
                for p, mp in zip(model.parameters(), m):
                    if opt is None:
                        mp.mul_(beta_l).add_(p.grad + wd * p)
                        p.sub_(lrs[s] * mp)
                    push = u[offset:offset + p.numel()].view_as(p).to(p.dtype)
                    p.sub_(lrs[s] * alpha * beta_s * push)
                    offset += p.numel()
            S += lrs[s]
        delta = (y0 - flat() - alpha * beta_s * S * u).numpy()
        D = torch.from_numpy(mean(delta))
        u = beta_s * u + D / S
        x = x - eta_s * (D + S * beta_s * u) if nesterov else x - eta_s * S * u
        with torch.no_grad():
            offset = 0
            for p in model.parameters():
                p.copy_(x[offset:offset + p.numel()].view_as(p))
                offset += p.numel()
    return x
