# SPDX-License-Identifier: Apache-2.0
"""A DistributedDataParallel communication hook that averages gradients with spccl's
compression, modelled on PyTorch's PowerSGD hook (powerSGD_hook.py).

    state = SpcclHookState(spccl.Config(method="randomblock", density=1/64))
    ddp.register_comm_hook(state, ddp_comm_hook)

By default the payloads go through DDP's process group (launch with torchrun; gloo for CPU
tensors, NCCL for CUDA tensors): each bucket is compressed on its device, sent with an
asynchronous all_reduce (random block) or all_gather (Top-k, Gaussian-k), and decompressed in
the future's callback, so buckets communicate while backward computes the next ones. With
comm=spccl.Comm(...) (ranks launched by mpirun) spccl's own collective moves them instead,
blocking; gTop-k, which needs rounds of its own, works only that way."""
import collections

import torch
import torch.distributed as dist

import spccl
from spccl import _checks as checks

from . import checkpoint
from .exchange import LocalComms, check_method, compressed_average, dense_average


class SpcclHookState:
    """Settings, switches and per-bucket state of ddp_comm_hook. Pickles (and state_dict()s)
    without its process group or comms, as PowerSGDState does; each rank keeps its own
    residuals."""

    __slots__ = [
        # Settings, fixed at construction.
        "process_group",      # moves the payloads (None: the default group); not pickled
        "comm",               # spccl.Comm over MPI, or None: the process group moves the payloads
        "config",             # spccl.Config for every bucket; tensor_key is set per bucket
        "start_sparse_iter",  # dense before this iteration
        # Internal state.
        "states",             # bucket.index() -> spccl.State, on the bucket's device
        "iter",               # optimizer iterations seen (advanced on the last bucket)
        "local_comms",        # compress-only spccl comms, one per device (process-group path)
        "pending",            # bucket.index() -> saved state, restored when the bucket is next seen
        "param_keys",         # parameter data_ptr -> (bucket, position) in DDP's first iteration here
        "layouts",            # bucket.index() -> its parameters' keys, as last seen
        "first_pass",         # DDP's first iteration in this process is still running
        "residual_layouts",   # bucket.index() -> the parameters' keys its state's residual belongs to
        "saved_first_pass",   # a loaded checkpoint's first-iteration bucket -> its parameter count
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
        self.states = {}
        self.iter = 0
        self.local_comms = LocalComms()
        self.pending = {}
        self.param_keys, self.layouts, self.first_pass = {}, {}, True
        self.residual_layouts, self.saved_first_pass = {}, None
        if comm is None:
            check_method(self.config.method, "SpcclHookState")
        elif dist.is_available() and dist.is_initialized() and self.world_size() != comm.size:
            raise ValueError(f"SpcclHookState: the process group has {self.world_size()} ranks but the spccl "
                             f"comm has {comm.size}; they must be the same processes")

    def world_size(self):
        return dist.get_world_size(self.process_group)

    def note_layout(self, bucket):
        """Names the bucket's parameters by where DDP's first iteration had them: the same in
        every run of the same model (DDP builds its first buckets from the registration order,
        then rebuilds them from the order gradients became ready)."""
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
        keys = [self.param_keys.get(p.data_ptr()) for p in params]
        self.layouts[bucket.index()] = None if None in keys else keys
        return params

    def state_for(self, index, buffer, layout):
        """The spccl state of bucket `index`, (re)created when the bucket's size, dtype or
        device changed, and restored from a loaded checkpoint on first use. `layout`: the keys
        of the parameters `buffer` holds; a residual is never applied to other parameters."""
        saved = self.pending.get(index)
        kept = saved.get("params") if saved is not None else self.residual_layouts.get(index)
        if None not in (kept, layout) and kept != layout:
            raise ValueError(f"SpcclHookState: bucket {index} now holds other parameters than its residual was "
                             "made for; DDP's buckets differ from the checkpoint's (bucket_cap_mb or the model "
                             "changed). Resume with the saved settings, or load with reset=True")
        st = self.states.get(index)
        if st is None or st.count != buffer.numel() or st.dtype != buffer.dtype or st.device != buffer.device:
            if st is not None:
                st.close()
            comm = self.comm if self.comm is not None else self.local_comms.get(self.process_group, buffer.device)
            key = ((self.config.tensor_key or 0) << 32) + index
            st = spccl.State.like(comm, self.config.replace(tensor_key=key), buffer)
            self.states[index] = st
            self.residual_layouts[index] = layout
        if saved is not None:
            checkpoint.restore(st, self.pending.pop(index), f"SpcclHookState bucket {index}")
            self.residual_layouts[index] = saved.get("params")
        return st

    # --- checkpoints -------------------------------------------------------------------
    def _tag(self):
        path = "mpi" if self.comm is not None else "process_group"
        return checkpoint.tag("SpcclHookState", self.world_size(), dist.get_rank(self.process_group), self.config,
                              start_sparse_iter=self.start_sparse_iter, path=path)

    def _saved_buckets(self):
        buckets = checkpoint.to_cpu_dict(self.states)
        for index, saved in buckets.items():
            saved["params"] = self.layouts.get(index)
        buckets.update({i: saved for i, saved in self.pending.items() if i not in buckets})
        return buckets

    def state_dict(self):
        """This rank's residuals and steps, one entry per bucket with the parameters it
        holds, the iteration count and the tag they are valid under. Save one per rank (e.g.
        f"hook.{rank}.pt")."""
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
            checkpoint.check_snapshots(buckets, what, keys=("params",))
        self.iter = checks.integer(iteration, f"{what}: iter", checks.U64)
        for st in self.states.values():
            st.reset()
        self.residual_layouts = {}  # the residuals are zero now: they belong to no parameters
        self._load_pending({} if reset else buckets)

    def _load_pending(self, buckets):
        self.pending = dict(buckets)
        keys = [key for saved in buckets.values() for key in saved.get("params") or ()]
        self.saved_first_pass = collections.Counter(bucket for bucket, _ in keys) if keys else None

    def __getstate__(self):
        return dict(config=self.config, comm=None, start_sparse_iter=self.start_sparse_iter,
                    saved=dict(iter=self.iter, buckets=self._saved_buckets()))

    def __setstate__(self, pickled):
        # As PowerSGDState: the process group is not pickled; the default group serves.
        saved = pickled.pop("saved")
        SpcclHookState.__init__(self, **pickled)
        self.iter = saved["iter"]
        self._load_pending(saved["buckets"])


def ddp_comm_hook(state: SpcclHookState, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """Averages the bucket's gradients over ranks: dense for the first start_sparse_iter
    iterations, then compressed with error feedback kept per bucket. Returns a future of the
    bucket's buffer, averaged in place."""
    buffer = bucket.buffer()
    params = state.note_layout(bucket)
    sparse = state.iter >= state.start_sparse_iter
    if bucket.is_last():
        state.iter += 1
    if state.comm is None:
        if not sparse:
            return dense_average(buffer, state.process_group)
        if state.pending and _layout_differs(state, bucket.index()):
            return _resume_in_saved_buckets(state, bucket.index(), params, buffer)
        return compressed_average(state.state_for(bucket.index(), buffer, state.layouts.get(bucket.index())), buffer,
                                  state.process_group)
    if sparse:
        state.state_for(bucket.index(), buffer, state.layouts.get(bucket.index())).sparse_allreduce(buffer, op="avg")
    else:
        state.comm.allreduce(buffer, op="avg")
    fut = torch.futures.Future()
    fut.set_result(buffer)
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
    where, offset = {}, 0
    for key, p in zip(layout, params):
        where[key] = (offset, p.numel())
        offset += p.numel()
    inside = [j for j, saved in sorted(state.pending.items()) if set(saved.get("params") or ()) <= set(where)]
    covered = sorted(key for j in inside for key in state.pending[j]["params"])
    if offset != buffer.numel() or covered != sorted(layout):
        raise ValueError(f"SpcclHookState: bucket {index} does not hold whole saved buckets; the model or DDP's "
                         "bucket settings changed since the checkpoint (load with reset=True to start afresh)")
    futures = []
    for j in inside:
        pieces = [buffer[o:o + n] for o, n in (where[key] for key in state.pending[j]["params"])]
        part = torch.cat(pieces)
        fut = compressed_average(state.state_for(j, part, state.pending[j]["params"]), part, state.process_group)
        futures.append(fut.then(lambda f, pieces=pieces: _scatter(f, pieces)))
    return torch.futures.collect_all(futures).then(lambda _: buffer)


def _scatter(fut, pieces):
    offset, part = 0, fut.value()
    for piece in pieces:
        piece.copy_(part[offset:offset + piece.numel()])
        offset += piece.numel()
    return part
