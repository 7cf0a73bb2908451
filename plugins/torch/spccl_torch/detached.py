# SPDX-License-Identifier: Apache-2.0
"""Detached error feedback (DEF, SPEC §3) as a torch optimizer communicating through spccl.

Per parameter group, flattened into one vector x (one spccl state, tensor key = group index):

    y = x - mu * e                 gradient evaluated at the look-ahead point
    m = beta * m + grad f(y) + wd * y
    p = e + lr * m
    x = x - mean_over_workers(C(p))
    e = p - C(p)

The residual e is spccl's error-feedback memory: spcclSparseAllReduce(lr * m) with feedback
EF forms p = lr * m + e, sends C(p), averages, and keeps p - C(p). So the adapter holds only
x and m. mu = 0 is EF-SGD with momentum; feedback "none" (e = 0) is compressed momentum SGD
without feedback; method "dense" is ordinary momentum SGD with an averaged gradient.

The gradient must be taken at y. Either pass a closure (it is called at y):

    def closure():
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        return loss
    loss = opt.step(closure)

or use the two phases:

    opt.lookahead()        # parameters <- y
    loss_fn(model(xb), yb).backward()
    opt.step()             # parameters <- the new x

Between steps the parameters hold x: evaluate (test accuracy) there."""
import torch

import spccl


class DEF(torch.optim.Optimizer):
    def __init__(self, params, lr, momentum=0.9, weight_decay=0.0, mu=0.3, config=None, comm=None):
        if lr <= 0:
            raise ValueError(f"DEF: lr is {lr}; it must be positive")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"DEF: momentum is {momentum}; it must be in [0, 1)")
        if weight_decay < 0:
            raise ValueError(f"DEF: weight_decay is {weight_decay}; it must be >= 0")
        if mu < 0:
            raise ValueError(f"DEF: mu is {mu}; it must be >= 0 (0: plain EF, 1: SAEF)")
        if config is not None and not isinstance(config, spccl.Config):
            raise TypeError(f"DEF: config must be a spccl.Config, not {type(config).__name__}")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, mu=mu))
        self.comm = comm if comm is not None else spccl.Comm()
        self.config = config if config is not None else spccl.Config(method="randomblock", feedback="ef")
        self._flat = {}        # group index -> {"state": spccl.State, "x": flat x, "m": flat momentum}
        self._at_lookahead = False

    def _group(self, index, group):
        params = group["params"]
        numel = sum(p.numel() for p in params)
        g = self._flat.get(index)
        if g is None or g["x"].numel() != numel:
            ref = params[0]
            if g is not None:
                g["state"].close()
            state = spccl.State(self.comm, self.config.replace(tensor_key=index), numel, ref.dtype, ref.device)
            g = dict(state=state, x=torch.empty(numel, dtype=ref.dtype, device=ref.device),
                     m=torch.zeros(numel, dtype=ref.dtype, device=ref.device))
            self._flat[index] = g
        return g

    @staticmethod
    def _scatter(flat, params):
        offset = 0
        for p in params:
            p.data.copy_(flat[offset:offset + p.numel()].view_as(p))
            offset += p.numel()

    @torch.no_grad()
    def lookahead(self):
        """Moves the parameters from x to y = x - mu * e, where the next gradient is taken."""
        for i, group in enumerate(self.param_groups):
            g = self._group(i, group)
            torch.cat([p.detach().reshape(-1) for p in group["params"]], out=g["x"])
            if group["mu"] != 0:
                self._scatter(g["x"] - group["mu"] * g["state"].residual, group["params"])
        self._at_lookahead = True

    def spccl_state(self, group=0):
        """The spccl.State of a parameter group (created on first use)."""
        return self._group(group, self.param_groups[group])["state"]

    def residual(self, group=0):
        """The group's residual e (a view of spccl's memory), flat in parameter order."""
        return self.spccl_state(group).residual

    def step(self, closure=None):
        """One DEF step; collective over the comm. Returns the closure's loss (or None)."""
        loss = None
        if closure is not None:
            self.lookahead()
            with torch.enable_grad():
                loss = closure()
        if not self._at_lookahead:
            if any(group["mu"] != 0 for group in self.param_groups):
                raise RuntimeError("DEF.step: the gradient must be taken at x - mu*e; call opt.lookahead() "
                                   "before the forward pass, or pass a closure to step()")
            self.lookahead()  # mu = 0: y = x, the parameters already hold it
        with torch.no_grad():
            for i, group in enumerate(self.param_groups):
                g = self._group(i, group)
                params = group["params"]
                y = torch.cat([p.reshape(-1) for p in params])
                grad = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                                  for p in params])
                m = g["m"]
                m.mul_(group["momentum"]).add_(grad)
                if group["weight_decay"] != 0:
                    m.add_(y, alpha=group["weight_decay"])
                update = m * group["lr"]
                g["state"].sparse_allreduce(update, op="avg")  # mean C(e + lr*m); e <- p - C(p)
                self._scatter(g["x"].sub_(update), params)
        self._at_lookahead = False
        return loss
