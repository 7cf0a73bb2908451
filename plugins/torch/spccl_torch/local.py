# SPDX-License-Identifier: Apache-2.0
"""Local steps as a torch optimizer: FedAvg, its momentum variants, DOMO (double momentum;
Xu & Huang, AAAI 2021) and DiLoCo (any inner optimizer, Nesterov outer step).

Every rank takes H local steps, then the ranks average the round's model delta through spccl
(dense, or compressed with error feedback: the residual e belongs to the delta stream).
docs/local_steps.md derives the rules; per parameter group, flat, with x the global model:

    round start (m reset to 0 unless carried):  y_0 = x - mu * e   DEF's look-ahead (mu = 0: plain EF)
    local step h (an `inner` optimizer replaces the first two lines by its own step):
        m     = beta_l * m + grad f_k(y_h) + wd * y_h
        y_h+1 = y_h - lr_h * m
        y_h+1 = y_h+1 - lr_h * alpha * beta_s * u         momentum fusion: u's share, early
    end of round (S = sum of the round's lr_h):
        D_k = y_0 - y_H - S * alpha * beta_s * u          the model delta, fused share out
        D   = mean_over_ranks(C(D_k + e_k)),  e_k <- gamma * (D_k + e_k - C(D_k + e_k))
        u   = beta_s * u + D / S                          server momentum (gradient units)
        x   = x - server_lr * S * u                       outer="momentum"
        x   = x - server_lr * (D + S * beta_s * u)        outer="nesterov" (DiLoCo's outer step)

Variants switch the buffers on and off (the settings of a switched-off buffer are ignored):

    fedavg                  beta_l = 0, beta_s = 0
    fedavg_local_momentum   beta_s = 0            (local momentum, reset every round)
    fedavg_server_momentum  beta_l = 0, alpha = 0 (server momentum, applied after the round)
    fedavg_slm              alpha = 0             (both, local momentum carried across rounds)
    domo                    both, fused by alpha  (alpha = 0: both, not fused)

DiLoCo is fedavg_server_momentum with outer="nesterov", server_lr its outer learning rate,
and inner=torch.optim.AdamW(...) over the same parameters (its state is carried across
rounds; lr_h is read from its groups, so a scheduler attached to it drives S):

    inner = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    opt = spccl_torch.LocalSGD(model.parameters(), inner=inner, local_steps=32,
                               variant="fedavg_server_momentum", outer="nesterov",
                               server_lr=0.7, server_momentum=0.9)

gamma (`residual_decay`, 1: plain EF) shrinks what was not sent every round: with mu = 1 it
pulls each rank's model back towards the global one (docs/local_steps.md, "Density 1/64").

local_steps = 1 with fedavg_server_momentum is synchronous momentum SGD on the averaged
gradient. Usage: the ordinary torch loop; every step() is a local step, and the H-th one is
collective over the comm (every rank calls step() equally often):

    opt = spccl_torch.LocalSGD(model.parameters(), lr=0.05, local_steps=8, variant="domo", mu=1.0,
                               config=spccl.Config(method="randomblock", density=1/64))
    loss_fn(model(xb), yb).backward(); opt.step(); opt.zero_grad()

The deltas go through the default torch process group (or `process_group`; launch with
torchrun), or, given comm=spccl.Comm(...) (mpirun), through spccl's own collective.
state_dict() / load_state_dict() save and restore this rank's buffers with its residual.

The parameters hold the rank's local model y; between rounds with mu = 0 that is the global
x. To evaluate x at any time: `with opt.global_model(): ...`."""
import collections
import contextlib

import torch

import spccl
from spccl import _checks as checks

from spccl import checkpoint

from .exchange import LocalComms, average, check_method, world

Variant = collections.namedtuple("Variant", "local server fused carried")
VARIANTS = {  # which buffers a variant keeps; carried: the local momentum is not reset at round start
    "fedavg": Variant(False, False, False, False),
    "fedavg_local_momentum": Variant(True, False, False, False),
    "fedavg_server_momentum": Variant(False, True, False, False),
    "fedavg_slm": Variant(True, True, False, True),
    "domo": Variant(True, True, True, False),
}
OUTER_STEPS = ("momentum", "nesterov")


def _check_settings(lr, local_steps, variant, momentum, server_momentum, fusion, server_lr, weight_decay, mu,
                    residual_decay, config, outer, inner):
    if variant not in VARIANTS:
        raise ValueError(f"LocalSGD: variant {variant!r} is not one of {', '.join(VARIANTS)}")
    if outer not in OUTER_STEPS:
        raise ValueError(f"LocalSGD: outer is {outer!r}; it must be one of {', '.join(OUTER_STEPS)}")
    if outer == "nesterov" and VARIANTS[variant].fused and fusion != 0:
        raise ValueError(f"LocalSGD: outer='nesterov' with momentum fusion {fusion}: the fused share is taken out "
                         "assuming the momentum outer step; pass fusion=0 or outer='momentum'")
    if inner is None and lr is None:
        raise ValueError("LocalSGD: lr is required without an inner optimizer")
    if inner is not None and lr is not None:
        raise ValueError("LocalSGD: lr is the built-in local step's; with an inner optimizer set lr on it instead")
    if lr is not None:
        checks.real(lr, "LocalSGD: lr", 0, lo_open=True)
    checks.real(server_lr, "LocalSGD: server_lr", 0, lo_open=True)
    if checks.integer(local_steps, "LocalSGD: local_steps", checks.U64) < 1:
        raise ValueError(f"LocalSGD: local_steps is {local_steps}; it must be at least 1")
    checks.real(momentum, "LocalSGD: momentum", 0, 1, hi_open=True)
    checks.real(server_momentum, "LocalSGD: server_momentum", 0, 1, hi_open=True)
    checks.real(fusion, "LocalSGD: fusion", 0, 1, hint=" (0: server momentum after the round, 1: all of it during "
                "the local steps)")
    checks.real(weight_decay, "LocalSGD: weight_decay", 0)
    checks.real(mu, "LocalSGD: mu", 0, hint=" (0: plain EF on the deltas)")
    checks.real(residual_decay, "LocalSGD: residual_decay", 0, 1, hint=" (1: plain EF, 0: what is not sent is "
                "dropped)")
    if config is not None and not isinstance(config, spccl.Config):
        raise TypeError(f"LocalSGD: config must be a spccl.Config, not {type(config).__name__}")


class LocalSGD(torch.optim.Optimizer):
    def __init__(self, params, lr=None, local_steps=8, variant="domo", momentum=0.9, server_momentum=0.9, fusion=1.0,
                 server_lr=1.0, weight_decay=0.0, mu=0.0, residual_decay=1.0, config=None, comm=None,
                 process_group=None, outer="momentum", inner=None):
        _check_settings(lr, local_steps, variant, momentum, server_momentum, fusion, server_lr, weight_decay, mu,
                        residual_decay, config, outer, inner)
        if comm is not None and not isinstance(comm, spccl.Comm):
            raise TypeError(f"LocalSGD: comm must be a spccl.Comm or None, not {type(comm).__name__}")
        v = VARIANTS[variant]
        builtin = inner is None  # an inner optimizer brings its own momentum and weight decay
        defaults = dict(lr=lr, momentum=momentum if v.local and builtin else 0.0,
                        server_momentum=server_momentum if v.server else 0.0, fusion=fusion if v.fused else 0.0,
                        server_lr=server_lr, weight_decay=weight_decay if builtin else 0.0, mu=mu,
                        residual_decay=residual_decay, outer=outer)
        super().__init__(params, defaults)
        self.inner = inner
        if inner is not None:
            _check_inner(inner, self.param_groups)
        self.variant, self.local_steps, self.carried = variant, local_steps, v.carried
        self.comm, self.process_group = comm, process_group
        self.config = config if config is not None else spccl.Config(method="dense")
        if comm is None:
            check_method(self.config.method, "LocalSGD")
        self._local_comms = LocalComms()
        self.local_step = 0      # local steps taken in the current round
        self.rounds = 0          # rounds completed (synchronisations)
        self.bytes_sent = 0      # bytes this rank sent, counted as a ring allreduce of the payload
        self._table = checkpoint.StateTable("LocalSGD parameter group", snapshot_key="spccl")  # index -> state
        self._flat = {}          # group index -> _Group, made with its state

    def _group(self, index):
        params = self.param_groups[index]["params"]
        ref, numel = params[0], sum(p.numel() for p in params)

        def make():
            comm = self.comm if self.comm is not None else self._local_comms.get(self.process_group, ref.device)
            return spccl.State(comm, self.config.replace(tensor_key=index), numel, ref.dtype, ref.device)

        state, fresh, saved = self._table.get(index, numel, ref.dtype, ref.device, make)
        if fresh:
            self._flat[index] = _Group(state, params)
        g = self._flat[index]
        if saved is not None:
            g.restore(saved)
        return g

    def spccl_state(self, group=0):
        """The spccl.State of a parameter group's delta stream (created on first use)."""
        return self._group(group).state

    @torch.no_grad()
    def step(self, closure=None):
        """One local step; the H-th of a round also synchronises (collective over the comm
        or the process group). Returns the closure's loss (or None)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        groups = [self._group(i) for i in range(len(self.param_groups))]
        if self.local_step == 0:
            for g in groups:
                g.start_round(reset_momentum=not self.carried)
        if self.inner is not None:
            self.inner.step()
        for g, group, lr in zip(groups, self.param_groups, self._local_lrs()):
            g.local_step(group, lr, builtin=self.inner is None)
        self.local_step += 1
        if self.local_step == self.local_steps:
            for i, group in enumerate(self.param_groups):
                self.bytes_sent += self._group(i).synchronise(group, self.comm, self.process_group)
            self.local_step = 0
            self.rounds += 1
        return loss

    def _local_lrs(self):
        """Each group's lr_h: the inner optimizer's (a scheduler may drive it) or LocalSGD's own."""
        return [group["lr"] for group in (self.inner or self).param_groups]

    @contextlib.contextmanager
    def global_model(self):
        """Inside the block the parameters hold the global x (the last round's result); the
        local model comes back afterwards."""
        with torch.no_grad():
            groups = [self._group(i) for i in range(len(self.param_groups))]
            local = [g.flat_params() for g in groups]
            for g in groups:
                g.load(g.x)
        try:
            yield
        finally:
            with torch.no_grad():
                for g, y in zip(groups, local):
                    g.load(y)

    # --- checkpoints -------------------------------------------------------------------
    def _tag(self):
        size, rank = world(self.comm, self.process_group)
        return checkpoint.tag("LocalSGD", size, rank, self.config, variant=self.variant, local_steps=self.local_steps,
                              path="mpi" if self.comm is not None else "process_group",
                              inner=type(self.inner).__name__ if self.inner is not None else None)

    def state_dict(self):
        """torch.optim's state_dict plus, under "spccl", this rank's buffers (global model,
        round start, both momenta, spccl residual and step), the inner optimizer's state_dict
        and the round position, tagged with world size, rank, method and config. Save one per
        rank, with the model's parameters."""
        groups = self._table.entries(extra=lambda i: self._flat[i].snapshot())
        out = super().state_dict()
        out["spccl"] = dict(tag=self._tag(), groups=groups, local_step=self.local_step, rounds=self.rounds,
                            bytes_sent=self.bytes_sent,
                            inner=self.inner.state_dict() if self.inner is not None else None)
        return out

    def load_state_dict(self, state_dict, reset=False):
        """Restores what state_dict() saved on this rank. Another world size, rank, method,
        config, variant or H raises ValueError unless reset=True (residuals zero, steps 0,
        the other buffers kept)."""
        what = "LocalSGD.load_state_dict"
        state_dict = dict(state_dict)
        saved = checkpoint.require(state_dict, ("spccl",), what)[0]
        state_dict.pop("spccl")
        tag, groups, local_step, rounds, bytes_sent = checkpoint.require(
            saved, ("tag", "groups", "local_step", "rounds", "bytes_sent"), what)
        if not reset:
            checkpoint.check_tag(tag, self._tag(), what)
        checkpoint.check_snapshots(groups, what, snapshot_key="spccl", keys=("x", "y0", "m", "u", "lr_sum"))
        super().load_state_dict(state_dict)
        if self.inner is not None and saved.get("inner") is not None:
            self.inner.load_state_dict(saved["inner"])
        self._table.close()
        self._flat = {}
        self._table.load(groups, reset)  # reset: the other buffers are kept
        self.local_step, self.rounds, self.bytes_sent = local_step, rounds, bytes_sent


class _Group:
    """One parameter group, flat: the global x, the round's start y0, the local momentum m,
    the server momentum u, and the spccl state whose residual e belongs to the delta stream."""

    def __init__(self, state, params):
        self.params, self.numel = params, sum(p.numel() for p in params)
        self.state = state
        self.x = torch.cat([p.detach().reshape(-1) for p in params])
        self.y0, self.m, self.u = torch.zeros_like(self.x), torch.zeros_like(self.x), torch.zeros_like(self.x)
        self.lr_sum = 0.0  # sum of the round's local learning rates
        self._m_views, self._u_views = self._views(self.m), self._views(self.u)

    def _views(self, flat):
        return [v.view_as(p) for v, p in zip(flat.split([p.numel() for p in self.params]), self.params)]

    def flat_params(self, out=None):
        return torch.cat([p.reshape(-1) for p in self.params], out=out)

    def load(self, flat):
        for p, v in zip(self.params, self._views(flat)):
            p.copy_(v)

    def start_round(self, reset_momentum):
        """The parameters hold y0; the local momentum starts afresh unless the variant carries it."""
        self.flat_params(out=self.y0)
        if reset_momentum:
            self.m.zero_()
        self.lr_sum = 0.0

    def local_step(self, group, lr, builtin):
        """One local step at learning rate lr: the built-in momentum step (unless an inner
        optimizer already took its own), then the fused share of the server momentum."""
        beta_l, wd = group["momentum"], group["weight_decay"]
        fused = group["fusion"] * group["server_momentum"]
        for p, m, u in zip(self.params, self._m_views, self._u_views):
            if builtin:
                if p.grad is not None:
                    m.mul_(beta_l).add_(p.grad)
                else:
                    m.mul_(beta_l)
                if wd != 0:
                    m.add_(p, alpha=wd)
                p.sub_(m, alpha=lr)
            if fused != 0:
                p.sub_(u, alpha=lr * fused)
        self.lr_sum += lr

    def synchronise(self, group, comm, process_group):
        """Averages the round's delta D_k (fused share out) through spccl, takes the server
        step, and leaves the parameters at the next round's y0 = x - mu * e. Returns the
        bytes this rank sent."""
        delta = self.y0 - self.flat_params()
        fused = group["fusion"] * group["server_momentum"]
        if fused != 0:
            delta.sub_(self.u, alpha=self.lr_sum * fused)
        average(self.state, delta, comm, process_group)  # mean C(D_k + e_k); e_k keeps the rest
        decay = group.get("residual_decay", 1.0)  # absent from checkpoints older than the setting
        if decay != 1.0:
            self.state.residual[:self.state.count].mul_(decay)
        beta_s, eta_s = group["server_momentum"], group["server_lr"]
        self.u.mul_(beta_s).add_(delta, alpha=1.0 / self.lr_sum)
        if group.get("outer", "momentum") == "nesterov":  # absent from checkpoints older than the setting
            self.x.sub_(delta, alpha=eta_s).sub_(self.u, alpha=eta_s * self.lr_sum * beta_s)
        else:
            self.x.sub_(self.u, alpha=eta_s * self.lr_sum)
        if group["mu"] != 0:
            self.load(self.x - group["mu"] * self.state.residual[:self.state.count])
        else:
            self.load(self.x)
        return _bytes_sent(self.state, comm)

    def snapshot(self):
        cpu = lambda t: t.detach().to("cpu", copy=True)  # noqa: E731
        return dict(x=cpu(self.x), y0=cpu(self.y0), m=cpu(self.m), u=cpu(self.u), lr_sum=self.lr_sum)

    def restore(self, saved):
        """The buffers of a loaded entry (its spccl snapshot is restored by the table)."""
        for name in ("x", "y0", "m", "u"):
            getattr(self, name).copy_(saved[name])
        self.lr_sum = saved["lr_sum"]


def _check_inner(inner, groups):
    """The inner optimizer steps the same parameters, in the same groups, as LocalSGD."""
    if not isinstance(inner, torch.optim.Optimizer):
        raise TypeError(f"LocalSGD: inner must be a torch.optim.Optimizer, not {type(inner).__name__}")
    ours = [[id(p) for p in g["params"]] for g in groups]
    theirs = [[id(p) for p in g["params"]] for g in inner.param_groups]
    if ours != theirs:
        raise ValueError("LocalSGD: the inner optimizer must hold the same parameters in the same groups as "
                         f"LocalSGD ({[len(g) for g in theirs]} against {[len(g) for g in ours]} per group)")


def _bytes_sent(state, comm):
    """Bytes one rank sent in the round's average, as the library's method table counts them
    (perf/sparse_all_reduce_perf's wire column): spccl's collective on `comm`, else the
    process group's exchange of the method's payload."""
    info = state.info()
    return info.wire_bytes if comm is not None else info.method_wire_bytes
