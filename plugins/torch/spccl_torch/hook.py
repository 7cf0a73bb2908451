# SPDX-License-Identifier: Apache-2.0
"""A DistributedDataParallel communication hook that averages gradients with spccl's
compressed allreduce, modelled on PyTorch's PowerSGD hook (powerSGD_hook.py).

    state = SpcclHookState(spccl.Config(method="randomblock", density=1/64))
    model.register_comm_hook(state, ddp_comm_hook)

spccl communicates over MPI (its comm comes from mpi4py), independently of DDP's process
group, whose ranks must be the same processes (e.g. gloo ranks launched by mpirun)."""
import torch
import torch.distributed as dist

import spccl


class SpcclHookState:
    """Settings, switches and per-bucket state of ddp_comm_hook."""

    __slots__ = [
        # Settings, fixed at construction.
        "comm",               # spccl.Comm over MPI
        "config",             # spccl.Config for every bucket; tensor_key is set per bucket
        "start_sparse_iter",  # dense (spcclAllReduce) before this iteration
        # Internal state.
        "states",             # bucket.index() -> spccl.State, on the bucket's device
        "iter",               # optimizer iterations seen (advanced on the last bucket)
    ]

    def __init__(self, config=None, comm=None, start_sparse_iter=2):
        # DDP rebuilds its buckets after the first iteration: states made before that would be
        # made for buckets that then change, and their residuals would be thrown away.
        if start_sparse_iter < 2:
            raise ValueError(f"SpcclHookState: start_sparse_iter is {start_sparse_iter}; it must be at least 2 "
                             "because DDP rebuilds its buckets after the first iteration")
        if config is not None and not isinstance(config, spccl.Config):
            raise TypeError(f"SpcclHookState: config must be a spccl.Config, not {type(config).__name__}")
        self.comm = comm if comm is not None else spccl.Comm()
        self.config = config if config is not None else spccl.Config()
        self.start_sparse_iter = start_sparse_iter
        self.states = {}
        self.iter = 0
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() != self.comm.size:
            raise ValueError(f"SpcclHookState: the process group has {dist.get_world_size()} ranks but the spccl "
                             f"comm has {self.comm.size}; they must be the same processes")

    def state_for(self, index, buffer):
        """The spccl state of bucket `index`, (re)created when the bucket's size, dtype or
        device changed."""
        st = self.states.get(index)
        if st is None or st.count != buffer.numel() or st.dtype != buffer.dtype or st.device != buffer.device:
            if st is not None:
                st.close()
            key = ((self.config.tensor_key or 0) << 32) + index
            st = spccl.State.like(self.comm, self.config.replace(tensor_key=key), buffer)
            self.states[index] = st
        return st


def ddp_comm_hook(state: SpcclHookState, bucket) -> torch.futures.Future:
    """Averages the bucket's gradients over ranks: dense for the first start_sparse_iter
    iterations, then spcclSparseAllReduce with error feedback kept per bucket. Blocking on
    the host path; returns a completed Future holding the bucket's (in-place) buffer."""
    buffer = bucket.buffer()
    if state.iter < state.start_sparse_iter:
        state.comm.allreduce(buffer, op="avg")
    else:
        state.state_for(bucket.index(), buffer).sparse_allreduce(buffer, op="avg")
    if bucket.is_last():
        state.iter += 1
    fut = torch.futures.Future()
    fut.set_result(buffer)
    return fut
