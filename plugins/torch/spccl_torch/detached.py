# SPDX-License-Identifier: Apache-2.0
"""Detached error feedback (DEF, DESIGN.md, Error feedback) as a torch optimizer communicating through spccl.

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

Between steps the parameters hold x: evaluate (test accuracy) there.

The payload goes through the default torch process group (or `process_group`; launch with
torchrun) unless comm=spccl.Comm(...) is given (mpirun), then spccl's own collective moves it.

Inside DDP, DEFSGD is the same algorithm without the flat copy: the hook's per-bucket
residuals and momenta are the state, DDP's buckets the communication (see DEFSGD)."""
import torch

import spccl
from spccl import _checks as checks

from spccl import checkpoint

from .exchange import LocalComms, average, check_method, world
from .hook import SpcclHookState
from .profile import timed


def _check_hyper_parameters(what, lr, momentum, weight_decay, mu):
    checks.real(lr, f"{what}: lr", 0, lo_open=True)
    checks.real(momentum, f"{what}: momentum", 0, 1, hi_open=True)
    checks.real(weight_decay, f"{what}: weight_decay", 0)
    checks.real(mu, f"{what}: mu", 0, hint=" (0: plain EF, 1: SAEF)")


class DEF(torch.optim.Optimizer):
    def __init__(self, params, lr, momentum=0.9, weight_decay=0.0, mu=0.3, config=None, comm=None,
                 process_group=None):
        _check_hyper_parameters("DEF", lr, momentum, weight_decay, mu)
        if config is not None and not isinstance(config, spccl.Config):
            raise TypeError(f"DEF: config must be a spccl.Config, not {type(config).__name__}")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, mu=mu))
        if comm is not None and not isinstance(comm, spccl.Comm):
            raise TypeError(f"DEF: comm must be a spccl.Comm or None, not {type(comm).__name__}")
        self.comm = comm
        self.process_group = process_group
        self.config = config if config is not None else spccl.Config(method="randomblock", feedback="ef")
        if comm is None:
            check_method(self.config.method, "DEF")
        self._local_comms = LocalComms()
        self._table = checkpoint.StateTable("DEF parameter group", snapshot_key="spccl")  # group index -> state
        self._buffers = {}     # group index -> {"x": flat x, "m": flat momentum}, made with its state
        self._at_lookahead = False

    def _group(self, index, group):
        params = group["params"]
        ref, numel = params[0], sum(p.numel() for p in params)

        def make():
            comm = self.comm if self.comm is not None else self._local_comms.get(self.process_group, ref.device)
            return spccl.State(comm, self.config.replace(tensor_key=index), numel, ref.dtype, ref.device)

        state, fresh, saved = self._table.get(index, numel, ref.dtype, ref.device, make)
        if fresh:
            self._buffers[index] = dict(x=torch.empty(numel, dtype=ref.dtype, device=ref.device),
                                        m=torch.zeros(numel, dtype=ref.dtype, device=ref.device))
        buffers = self._buffers[index]
        if saved is not None:
            buffers["m"].copy_(saved["m"])
        return dict(buffers, state=state)

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
                self._scatter(g["x"] - group["mu"] * g["state"].residual[:g["state"].count], group["params"])
        self._at_lookahead = True

    def spccl_state(self, group=0):
        """The spccl.State of a parameter group (created on first use)."""
        return self._group(group, self.param_groups[group])["state"]

    def residual(self, group=0):
        """The group's residual e (a view of spccl's memory), flat in parameter order."""
        state = self.spccl_state(group)
        return state.residual[:state.count]

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
                average(g["state"], update, self.comm, self.process_group)  # mean C(e + lr*m); e <- p - C(p)
                self._scatter(g["x"].sub_(update), params)
        self._at_lookahead = False
        return loss

    # --- checkpoints -------------------------------------------------------------------
    def _tag(self):
        size, rank = world(self.comm, self.process_group)
        return checkpoint.tag("DEF", size, rank, self.config, path="mpi" if self.comm is not None else "process_group")

    def state_dict(self):
        """torch.optim's state_dict plus, under "spccl", this rank's residual, step and
        momentum per parameter group, tagged as SpcclHookState's are. Save one per rank."""
        groups = self._table.entries(extra=lambda i: dict(m=self._buffers[i]["m"].detach().to("cpu", copy=True)))
        out = super().state_dict()
        out["spccl"] = dict(tag=self._tag(), groups=groups)
        return out

    def load_state_dict(self, state_dict, reset=False):
        """Restores what state_dict() saved on this rank. Another world size, rank or config
        raises ValueError unless reset=True (residuals zero, steps 0, momentum kept)."""
        what = "DEF.load_state_dict"
        state_dict = dict(state_dict)
        saved = checkpoint.require(state_dict, ("spccl",), what)[0]
        state_dict.pop("spccl")
        tag, groups = checkpoint.require(saved, ("tag", "groups"), what)
        if not reset:
            checkpoint.check_tag(tag, self._tag(), what)
        checkpoint.check_snapshots(groups, what, snapshot_key="spccl", keys=("m",))
        super().load_state_dict(state_dict)
        self._table.close()
        self._buffers = {}
        self._table.load(groups, reset)  # reset: the momenta are kept

    def __getstate__(self):
        # As PowerSGDState: neither the process group nor spccl's comms go into the pickle.
        return dict(defaults=self.defaults, state={}, param_groups=self.param_groups, config=self.config,
                    spccl_saved=self.state_dict()["spccl"])

    def __setstate__(self, state):
        saved = state.pop("spccl_saved", None)  # None: torch.optim's load_state_dict calls this too
        super().__setstate__(state)
        if saved is not None:
            self.comm, self.process_group = None, None
            self._local_comms = LocalComms()
            self._at_lookahead = False
            self._table = checkpoint.StateTable("DEF parameter group", snapshot_key="spccl")
            self._table.load(saved["groups"])
            self._buffers = {}


class DEFSGD(torch.optim.Optimizer):
    """Detached error feedback inside DistributedDataParallel (DESIGN.md, "DEF inside DDP"):
    DEF's algorithm with DDP's buckets as the flat vectors, so no copy of the model.

        state = spccl_torch.SpcclHookState(spccl.Config(method="randomblock", density=1/64))
        ddp.register_comm_hook(state, spccl_torch.ddp_comm_hook)
        opt = spccl_torch.DEFSGD(ddp, state, lr=0.05, momentum=0.9, mu=0.3)
        opt.zero_grad(); loss_fn(ddp(xb), yb).backward(); opt.step()   # the ordinary loop

- Before each DDP forward in training mode (with grad enabled) the parameters move to the
  look-ahead y = x - mu*e, e being the hook's per-bucket residuals; once a bucket's gradients
  are ready, the hook moves that bucket's parameters back to x. Under no_sync they stay at y
  for every micro-batch; between steps, and for evaluation, they hold x.
- The local momentum lives with each bucket's residual (DGC's momentum correction):
  m = beta*m + g + wd*y, and the bucket sends C(e + lr*m), both kept in gradient units (the
  residual holds e/lr, so m is formed in one pass and sent as it is). So the momentum never
  amplifies a delayed release of the residual, which is what makes random block with plain
  EF under an optimizer's momentum diverge.
- After backward each parameter's .grad holds its share of the ranks' average of
  C(e + lr*m)/lr; step() applies x -= lr * .grad and has no momentum of its own. lr may change
  between steps (a scheduler): the kept residual e/lr is rescaled, e itself is unchanged.
- DDP's first start_sparse_iter iterations are dense and without momentum (buckets are
  rebuilt after the first one).
- Checkpoints: the momenta are saved with the residuals by the hook state's state_dict();
  this optimizer's own state_dict() holds only the hyper-parameters.
Moving a parameter to y and back rounds once each way, so x drifts by rounding (the same
in every run, so a resumed run still continues bit for bit)."""

    def __init__(self, ddp, hook_state, lr, momentum=0.9, weight_decay=0.0, mu=0.3):
        _check_hyper_parameters("DEFSGD", lr, momentum, weight_decay, mu)
        if not isinstance(ddp, torch.nn.parallel.DistributedDataParallel):
            raise TypeError(f"DEFSGD: ddp must be the DistributedDataParallel model, not {type(ddp).__name__}")
        if not isinstance(hook_state, SpcclHookState):
            raise TypeError(f"DEFSGD: hook_state must be the SpcclHookState registered with ddp_comm_hook, not "
                            f"{type(hook_state).__name__}")
        params = [p for p in ddp.parameters() if p.requires_grad]
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, mu=mu))
        self.hook_state = hook_state
        hook_state.attach(self)
        self._lookahead_handle = ddp.register_forward_pre_hook(self._lookahead)

    def add_param_group(self, param_group):
        if self.param_groups:  # the hook applies one set of hyper-parameters to every bucket
            raise ValueError("DEFSGD: one parameter group only (DDP's parameters); the buckets share its settings")
        super().add_param_group(param_group)

    def _lookahead(self, module, inputs):
        if module.training and torch.is_grad_enabled():
            self.hook_state.lookahead()

    @torch.no_grad()
    def step(self, closure=None):
        """x -= lr * .grad (the ranks' average of C(e + lr*m)/lr, left by the hook). Returns the
        closure's loss (or None); a closure runs DDP's forward and backward as usual."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with timed("spccl.step"):
            self.hook_state.unshift_all()  # parameters of a bucket the hook did not see this step
            params = [p for p in self.param_groups[0]["params"] if p.grad is not None]
            if params:
                torch._foreach_add_(params, [p.grad for p in params], alpha=-self.param_groups[0]["lr"])
        return loss
