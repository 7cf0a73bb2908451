# SPDX-License-Identifier: Apache-2.0
"""A DistributedDataParallel communication hook that averages gradients with spccl's
compression, modelled on PyTorch's PowerSGD hook (powerSGD_hook.py).

    state = SpcclHookState(spccl.Config(method="randomblock", density=1/64))
    ddp.register_comm_hook(state, ddp_comm_hook)
    opt = spccl_torch.DEFSGD(ddp, state, lr=0.05, momentum=0.9, mu=0.3)   # DEF inside DDP

By default the payloads go through DDP's process group (launch with torchrun; gloo for CPU
tensors, NCCL for CUDA tensors): each bucket is compressed on its device, sent with an
asynchronous all_reduce (random block) or all_gather (Top-k, Gaussian-k), and decompressed in
the future's callback, so buckets communicate while backward computes the next ones. With
comm=spccl.Comm(...) (ranks launched by mpirun) spccl's own collective moves them instead,
blocking; gTop-k, which needs rounds of its own, works only that way.

With a DEFSGD attached (detached error feedback, DESIGN.md "DEF inside DDP"), each bucket
keeps a local momentum m beside its residual, both in gradient units (the residual holds
e/lr): the gradient arrives taken at the look-ahead y = x - mu*e (DEFSGD shifts the
parameters before DDP's forward), the hook puts the bucket's parameters back at x, forms
m = beta*m + g + wd*y in one pass, and averages C(e/lr + m) = C(e + lr*m)/lr into the bucket,
which the optimizer applies as x -= lr * that, with no momentum of its own."""
import collections
import warnings

import torch
import torch.distributed as dist

try:  # torch >= 2.0: a hook on every optimizer's step, to tell which optimizer steps our parameters
    from torch.optim.optimizer import register_optimizer_step_pre_hook
except ImportError:
    register_optimizer_step_pre_hook = None

import spccl
from spccl import _checks as checks
from spccl import checkpoint

from .exchange import LocalComms, check_method, compressed_average, dense_average
from .profile import timed

# Random block with plain EF at this density or below diverges under a momentum optimizer
# (issue 23: 1/4 ends at 87 %, 1/16 and 1/64 at chance on digits where dense reaches 97 %).
TRAP_DENSITY = 0.25


class SpcclHookState(checkpoint.TableOwner):
    """Settings, switches and per-bucket state of ddp_comm_hook. Pickles (and state_dict()s)
    without its process group, comms or optimizer, as PowerSGDState does; each rank keeps its
    own residuals (and, under DEFSGD, momenta)."""

    __slots__ = [
        # Settings, fixed at construction.
        "process_group",      # moves the payloads (None: the default group); not pickled
        "comm",               # spccl.Comm over MPI, or None: the process group moves the payloads
        "config",             # spccl.Config for every bucket; tensor_key is set per bucket
        "start_sparse_iter",  # dense before this iteration
        # Internal state.
        "table",              # bucket.index() -> spccl.State on the bucket's device, and loaded entries
        "iter",               # optimizer iterations seen (advanced on the last bucket)
        "local_comms",        # compress-only spccl comms, one per device (process-group path)
        "param_keys",         # parameter data_ptr -> its key: (bucket, position) in DDP's first
                              # iteration here, or its index in DEFSGD's parameters
        "layouts",            # bucket.index() -> its parameters' keys, as last seen
        "first_pass",         # DDP's first iteration in this process is still running
        "residual_layouts",   # bucket.index() -> the parameters' keys its state's residual belongs to
        "state_params",       # bucket.index() -> those parameters, in order (DEFSGD moves them)
        "saved_first_pass",   # a loaded checkpoint's first-iteration bucket -> its parameter count
        # Detached error feedback (DEFSGD); none of it pickled but the momenta.
        "detached",           # the DEFSGD whose hyper-parameters the buckets use, or None
        "momenta",            # bucket.index() -> [m, the lr its residual e/lr is scaled by]
        "shifted",            # id(param) -> (param, its residual slice, mu*lr): parameters at x - mu*e
        "trap_check",         # the optimizer hook that warns of random block + EF under momentum
                              # (None: not yet registered, False: done)
    ]

    def __init__(self, config=None, comm=None, start_sparse_iter=2, process_group=None):
        # DDP rebuilds its buckets after the first iteration: states made before that would be
        # made for buckets that then change, and their residuals would be thrown away.
        if checks.integer(start_sparse_iter, "SpcclHookState: start_sparse_iter", checks.U64) < 2:
            raise ValueError(f"SpcclHookState: start_sparse_iter is {start_sparse_iter}; it must be at least 2 "
                             "because DDP rebuilds its buckets after the first iteration")
        if config is not None and not isinstance(config, spccl.Config):
            raise TypeError(f"SpcclHookState: config must be a spccl.Config, not {type(config).__name__}")
        if comm is not None and not isinstance(comm, spccl.Comm):
            raise TypeError(f"SpcclHookState: comm must be a spccl.Comm or None, not {type(comm).__name__}")
        self.process_group = process_group
        self.comm = comm
        self.config = config if config is not None else spccl.Config()
        self.start_sparse_iter = start_sparse_iter
        self.table = checkpoint.StateTable("SpcclHookState bucket")
        self.iter = 0
        self.local_comms = LocalComms()
        self.param_keys, self.layouts, self.first_pass, self.state_params = {}, {}, True, {}
        self.residual_layouts, self.saved_first_pass = {}, None
        self.detached, self.momenta, self.shifted, self.trap_check = None, {}, {}, None
        if comm is None:
            check_method(self.config.method, "SpcclHookState")
        elif dist.is_available() and dist.is_initialized() and self.world_size() != comm.size:
            raise ValueError(f"SpcclHookState: the process group has {self.world_size()} ranks but the spccl "
                             f"comm has {comm.size}; they must be the same processes")

    def world_size(self):
        return dist.get_world_size(self.process_group)

    def note_layout(self, bucket):
        """Names the bucket's parameters: by their index in DEFSGD's parameters, else by where
        DDP's first iteration had them (the same in every run of the same model: DDP builds its
        first buckets from the registration order, then rebuilds them from the order gradients
        became ready)."""
        params = bucket.parameters()
        if self.first_pass:
            for pos, p in enumerate(params):
                self.param_keys.setdefault(p.data_ptr(), (bucket.index(), pos))
            self.first_pass = not bucket.is_last()
            # The keys name the same parameters as the checkpoint's only if DDP's first buckets
            # are the same: another bucket_cap_mb (or model) would pair residuals with the
            # wrong parameters.
            saved = self.saved_first_pass
            if saved is not None and saved.get(bucket.index(), 0) != len(params):
                raise ValueError(f"SpcclHookState: DDP's bucket {bucket.index()} holds {len(params)} parameters in "
                                 f"its first iteration, the checkpoint's held {saved.get(bucket.index(), 0)}; "
                                 "bucket_cap_mb or the model changed since the checkpoint, so its residuals do "
                                 "not fit (resume with the saved settings, or load with reset=True)")
        self.layouts[bucket.index()] = self.keys_of(params)
        return params

    def keys_of(self, params):
        """The parameters' keys, or None when one has none (seen first after the first pass)."""
        keys = [self.param_keys.get(p.data_ptr()) for p in params]
        return None if None in keys else keys

    def state_for(self, index, buffer, layout):
        """The spccl state of bucket `index` (and its momentum under DEFSGD), (re)created when
        the bucket's size, dtype or device changed, and restored from a loaded checkpoint on
        first use. `layout`: the keys of the parameters `buffer` holds; a residual is never
        applied to other parameters than it was made for."""
        saved = self.pending.get(index)
        kept = saved.get("params") if saved is not None else self.residual_layouts.get(index)
        if None not in (kept, layout) and kept != layout:
            raise ValueError(f"SpcclHookState: bucket {index} now holds other parameters than its residual was "
                             "made for; DDP's buckets differ from the checkpoint's (bucket_cap_mb or the model "
                             "changed). Resume with the saved settings, or load with reset=True")
        st, fresh, saved = self.table.get(index, buffer.numel(), buffer.dtype, buffer.device,
                                          lambda: self._new_state(index, buffer))
        if fresh:  # (parameters still moved by a replaced state's residual hold views that keep it)
            self.residual_layouts[index] = layout
            self.momenta.pop(index, None)
        if self.detached is not None and index not in self.momenta:
            self.momenta[index] = [torch.zeros_like(buffer), None]
        if saved is not None:
            self.residual_layouts[index] = saved.get("params")
            if self.detached is not None:
                _restore_momentum(self.momenta[index], saved, index)
        return st

    def _new_state(self, index, buffer):
        comm = self.comm if self.comm is not None else self.local_comms.get(self.process_group, buffer.device)
        key = ((self.config.tensor_key or 0) << 32) + index
        return spccl.State.like(comm, self.config.replace(tensor_key=key), buffer)

    # --- detached error feedback -------------------------------------------------------
    def attach(self, optimizer):
        """Done by DEFSGD: the buckets take their hyper-parameters from `optimizer` and keep
        its momentum; parameters are named by their index in it (checkpoints then hold the
        same names in every process, before DDP's first iteration too)."""
        if self.detached is not None and self.detached is not optimizer:
            raise ValueError("SpcclHookState: a DEFSGD is attached already; one hook state serves one optimizer")
        self.detached = optimizer
        self.param_keys = {p.data_ptr(): i for i, p in enumerate(optimizer.param_groups[0]["params"])}
        self.first_pass = False
        self._stop_trap_check()

    @torch.no_grad()
    def lookahead(self):
        """Moves every bucket's parameters from x to y = x - mu*e (those not moved already):
        DEFSGD calls this before DDP's forward; each bucket's hook moves them back."""
        mu = self.detached.param_groups[0]["mu"]
        if mu == 0:
            return
        moving = []
        for params_of, residual, lr in self._residuals():
            for p, e in zip(params_of, _split(residual, params_of)):
                if id(p) not in self.shifted:
                    self.shifted[id(p)] = (p, e, mu * lr)  # e is kept as e/lr
                    moving.append(self.shifted[id(p)])
        if moving:
            with timed("spccl.lookahead"):
                _move(moving, -1)

    def _residuals(self):
        """(parameters, residual, its lr) of every bucket with a residual: a loaded checkpoint's
        where one waits (its parameters named by their DEFSGD index), else the live state's."""
        params = self.detached.param_groups[0]["params"]
        for index, saved in self.pending.items():
            if None not in (saved.get("residual"), saved.get("params"), saved.get("momentum_lr")):
                on = [params[k] for k in saved["params"]]
                yield on, saved["residual"].to(on[0].device), saved["momentum_lr"]
        for index, st in self.states.items():
            lr = self.momenta.get(index, (None, None))[1]
            if index not in self.pending and index in self.state_params and lr is not None \
                    and st.config.feedback == "ef":
                yield self.state_params[index], st.residual, lr

    @torch.no_grad()
    def unshift(self, params):
        """Puts those of `params` that lookahead() moved back at x."""
        moved = [self.shifted.pop(id(p)) for p in params if id(p) in self.shifted]
        if moved:
            with timed("spccl.lookahead"):
                _move(moved, 1)

    def unshift_all(self):
        self.unshift([entry[0] for entry in list(self.shifted.values())])

    def _watch_for_trap(self):
        """Random block with plain EF at low density under an optimizer with momentum is the
        known divergence (the seed's finding): warn, naming DEF, when such an optimizer steps
        these parameters (torch.optim's global step hook; older torch cannot tell)."""
        register = register_optimizer_step_pre_hook
        if self.detached is not None or self.trap_check is not None or register is None or not self.states:
            return
        cfg = next(iter(self.states.values())).config  # resolved: SPCCL_* variables and defaults applied
        if cfg.method == "randomblock" and cfg.feedback == "ef" and cfg.density <= TRAP_DENSITY:
            self.trap_check = register(lambda opt, args, kwargs: self._check_optimizer(opt))

    def _check_optimizer(self, optimizer):
        ours = {id(p) for params in self.state_params.values() for p in params}
        groups = [g for g in optimizer.param_groups if any(id(p) in ours for p in g["params"])]
        if not groups:
            return
        self._stop_trap_check()
        if any(g.get("momentum", 0) > 0 or "betas" in g for g in groups):
            density = next(iter(self.states.values())).config.density
            warnings.warn(f"spccl_torch: random block at density {density:g} with plain error "
                          f"feedback under {type(optimizer).__name__} with momentum diverges (momentum amplifies "
                          "each delayed release of the residual); use detached error feedback inside DDP: "
                          "spccl_torch.DEFSGD(ddp, state, lr, momentum, mu=0.3) in place of the optimizer "
                          "(README, DDP)", RuntimeWarning, stacklevel=4)  # at the caller of opt.step()

    def _stop_trap_check(self):
        if self.trap_check:
            self.trap_check.remove()
        self.trap_check = False  # checked: never again for this state

    # --- checkpoints -------------------------------------------------------------------
    def _tag(self):
        path = "mpi" if self.comm is not None else "process_group"
        return checkpoint.tag("SpcclHookState", self.world_size(), dist.get_rank(self.process_group), self.config,
                              start_sparse_iter=self.start_sparse_iter, path=path,
                              detached=self.detached is not None)

    def _saved_buckets(self):
        return self.table.entries(extra=self._bucket_extra)

    def _bucket_extra(self, index):
        """Beside a bucket's snapshot: the keys of the parameters its residual belongs to, and
        DEFSGD's momentum."""
        extra = dict(params=self.residual_layouts.get(index))
        if index in self.momenta:
            m, lr = self.momenta[index]
            extra.update(momentum=m.detach().to("cpu", copy=True), momentum_lr=lr)
        return extra

    def state_dict(self):
        """This rank's residuals and steps (and DEFSGD's momenta), one entry per bucket with
        the parameters it holds, the iteration count and the tag they are valid under. Save one
        per rank (e.g. f"hook.{rank}.pt")."""
        return dict(tag=self._tag(), iter=self.iter, buckets=self._saved_buckets())

    def load_state_dict(self, state_dict, reset=False):
        """Restores what state_dict() saved on this rank: each bucket's residual and step come
        back when DDP next hands the hook that bucket. A checkpoint saved under another world
        size, rank, config or start iteration raises ValueError, unless reset=True: then only
        the iteration count is kept and compression starts afresh."""
        what = "SpcclHookState.load_state_dict"
        tag, iteration, buckets = checkpoint.require(state_dict, ("tag", "iter", "buckets"), what)
        if not reset:
            checkpoint.check_tag(tag, self._tag(), what)
            momenta = ("momentum", "momentum_lr") if self.detached is not None else ()
            checkpoint.check_snapshots(buckets, what, keys=("params",) + momenta)
        self.unshift_all()
        self.iter = checks.integer(iteration, f"{what}: iter", checks.U64)
        self.momenta = {}
        self.residual_layouts, self.state_params = {}, {}  # the residuals are zero: they belong to none
        self.table.load(buckets, reset)
        self._note_first_pass(self.pending)

    def _note_first_pass(self, buckets):
        # DDP's first buckets name the parameters (keys (bucket, position)) unless DEFSGD does.
        keys = [key for saved in buckets.values() for key in saved.get("params") or () if isinstance(key, tuple)]
        self.saved_first_pass = collections.Counter(bucket for bucket, _ in keys) if keys else None

    def __getstate__(self):
        return dict(config=self.config, comm=None, start_sparse_iter=self.start_sparse_iter,
                    saved=dict(iter=self.iter, buckets=self._saved_buckets()))

    def __setstate__(self, pickled):
        # As PowerSGDState: the process group is not pickled; the default group serves.
        saved = pickled.pop("saved")
        SpcclHookState.__init__(self, **pickled)
        self.iter = saved["iter"]
        self.table.load(saved["buckets"])
        self._note_first_pass(self.pending)


def _restore_momentum(slot, saved, index):
    momentum, lr = checkpoint.require(saved, ("momentum", "momentum_lr"), f"SpcclHookState bucket {index}")
    slot[0].copy_(momentum)
    slot[1] = lr


def _split(flat, params):
    """`flat` cut into views shaped as `params` (a bucket's layout: its parameters back to back)."""
    return [v.view_as(p) for v, p in zip(flat.split([p.numel() for p in params]), params)]


def _move(moves, sign):
    """param += sign * mu*lr * (e/lr) for each (param, e/lr, mu*lr) of `moves`: the look-ahead's
    shift (sign -1) and its undoing (+1), the same operation in every run (a resumed run
    shifts by the checkpoint's residual, bit for bit). One foreach call per distinct mu*lr."""
    by_alpha = {}
    for p, e, alpha in moves:
        params, slices = by_alpha.setdefault(alpha, ([], []))
        params.append(p)
        slices.append(e)
    for alpha, (params, slices) in by_alpha.items():
        torch._foreach_add_(params, slices, alpha=sign * alpha)


def ddp_comm_hook(state: SpcclHookState, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """Averages the bucket's gradients over ranks: dense for the first start_sparse_iter
    iterations, then compressed with error feedback kept per bucket. Returns a future of the
    bucket's buffer, averaged in place (under DEFSGD: the average of C(e + lr*m)/lr)."""
    buffer = bucket.buffer()
    params = state.note_layout(bucket)
    sparse = state.iter >= state.start_sparse_iter
    if bucket.is_last():
        state.iter += 1
    if sparse and state.pending and _layout_differs(state, bucket.index()):
        return _resume_in_saved_buckets(state, bucket.index(), params, buffer)
    fut = _exchange(state, bucket.index(), buffer, params, sparse)
    if sparse and state.trap_check is None:
        state._watch_for_trap()
    return fut


def _exchange(state, index, grad, params, sparse):
    """A future of `grad` (bucket `index`'s gradient, laid out as `params`) averaged over the
    ranks: dense, or compressed with the bucket's feedback; under DEFSGD, the step."""
    state.state_params[index] = params
    if state.detached is not None:
        return _detached_exchange(state, index, grad, params, sparse)
    if not sparse:
        return _average_dense(state, grad)
    return _average(state, state.state_for(index, grad, state.keys_of(params)), grad, grad)


@torch.no_grad()
def _detached_exchange(state, index, grad, params, sparse):
    group = state.detached.param_groups[0]
    lr, beta, wd = group["lr"], group["momentum"], group["weight_decay"]
    if wd != 0:  # wd * y, at the look-ahead as the gradient
        torch._foreach_add_(_split(grad, params), params, alpha=wd)
    state.unshift(params)
    if not sparse:  # DDP's first iterations: plain averaged SGD (no state, no momentum yet)
        return _average_dense(state, grad)
    st = state.state_for(index, grad, state.keys_of(params))
    slot = state.momenta[index]
    with timed("spccl.momentum"):
        if slot[1] is not None and slot[1] != lr:  # the residual holds e/lr: a new lr rescales it
            st.residual.mul_(slot[1] / lr)
        slot[1] = lr
        torch.add(grad, slot[0], alpha=beta, out=slot[0])  # m = beta*m + g, one pass
    return _average(state, st, slot[0], grad)


def _average_dense(state, tensor):
    if state.comm is None:
        return dense_average(tensor, state.process_group)
    state.comm.allreduce(tensor, op="avg")
    return _done(tensor)


def _average(state, st, send, out):
    """A future of `out` = the ranks' average of C(send + residual)."""
    if state.comm is None:
        return compressed_average(st, send, state.process_group, out)
    with timed("spccl.sparse_allreduce"):
        st.sparse_allreduce(send, out, op="avg")
    return _done(out)


def _done(tensor):
    fut = torch.futures.Future()
    fut.set_result(tensor)
    return fut


def _layout_differs(state, index):
    saved = state.pending.get(index)
    layout = state.layouts.get(index)
    return layout is not None and (saved is None or (saved.get("params") is not None and saved["params"] != layout))


def _resume_in_saved_buckets(state, index, params, buffer):
    """The first iteration after loading a checkpoint into a fresh DDP, whose buckets are not
    yet rebuilt: the bucket is cut into the saved buckets it holds, each compressed with its
    own restored state exactly as the saved run would, and put back, so a resumed run
    continues the saved one bit for bit."""
    layout = state.layouts[index]
    where, param_of, offset = {}, {}, 0
    for key, p in zip(layout, params):
        where[key], param_of[key] = (offset, p.numel()), p
        offset += p.numel()
    inside = [j for j, saved in sorted(state.pending.items()) if set(saved.get("params") or ()) <= set(where)]
    covered = sorted(key for j in inside for key in state.pending[j]["params"])
    if offset != buffer.numel() or covered != sorted(layout):
        raise ValueError(f"SpcclHookState: bucket {index} does not hold whole saved buckets; the model or DDP's "
                         "bucket settings changed since the checkpoint (load with reset=True to start afresh)")
    futures = []
    for j in inside:
        keys = state.pending[j]["params"]
        pieces = [buffer[o:o + n] for o, n in (where[key] for key in keys)]
        part = torch.cat(pieces)
        fut = _exchange(state, j, part, [param_of[key] for key in keys], True)
        futures.append(fut.then(lambda f, pieces=pieces: _scatter(f, pieces)))
    return torch.futures.collect_all(futures).then(lambda _: buffer)


def _scatter(fut, pieces):
    offset, part = 0, fut.value()
    for piece in pieces:
        piece.copy_(part[offset:offset + piece.numel()])
        offset += piece.numel()
    return part
