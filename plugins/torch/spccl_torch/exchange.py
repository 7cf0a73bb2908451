# SPDX-License-Identifier: Apache-2.0
"""spccl compression with a torch process group moving the payload.

The state compresses on the tensor's device (spcclCompress: feedback applied and the residual
updated at once); the payload crosses the group asynchronously; the returned future's
callback decompresses (spcclDecompress) the average of every rank's contribution back into
the tensor. The collective follows the method's payload kind (spccl.payload_of, from the
library's method table):

- "values" (random block): every rank packs the same positions, so the packed values are
  summed with one all_reduce and no indices travel; a payload of every value is PyTorch's own
  allreduce of the tensor;
- "slots" (Top-k, Gaussian-k): each rank sends a fixed number of (index, value) slots, so one
  all_gather of a byte buffer per rank [indices | values] carries them; unused slots hold
  SPCCL_PAD_INDEX and are skipped;
- "rounds" (gTop-k, 1-bit): rounds of their own, which stay on spccl's comm (spcclSparseAllReduce).

A state with Config(auto=True) times its first calls here, as the library times its own
collective (AutoChoice), and runs dense from then on when that is faster."""
import logging
import math
import os
import sys
import time
import weakref

import torch
import torch.distributed as dist

import spccl

from .profile import timed

PAD_INDEX = -1  # SPCCL_PAD_INDEX (0xFFFFFFFF) as an int32


def check_method(method, what):
    """Refuses a method no process group can carry, naming the way out. None (the library's
    default or SPCCL_METHOD) is checked once a state has resolved it."""
    if method is not None and spccl.payload_of(method) == "rounds":
        carried = " or ".join(repr(m) for m in spccl.METHODS if spccl.payload_of(m) == "slots")
        raise ValueError(f"{what}: {method} needs its own communication rounds and cannot go through a process "
                         f"group; pass comm=spccl.Comm(...) (launch with mpirun) or use method {carried}")


def dense_average(tensor, group):
    """A future of `tensor` averaged over the group in place (PyTorch's allreduce_hook)."""
    tensor.div_(dist.get_world_size(group))
    work = dist.all_reduce(tensor, group=group, async_op=True)
    return work.get_future().then(lambda _: tensor)


def compressed_average(state, tensor, group, out=None):
    """A future of `out` (default: `tensor`) replaced by the group's average of C(tensor +
    residual), each rank's residual updated now; `tensor` is only read. `state` lives on a
    compress-only comm of the group's size. With Config(auto=True), C may be the identity:
    dense, which sends tensor + residual and empties the residual."""
    out = tensor if out is None else out
    choice = AutoChoice.of(state)
    if choice is None:
        return _compressed_average(state, tensor, group, out)
    dense = choice.next_runs_dense()
    if choice.decided:
        run = _dense_with_feedback if dense else _compressed_average
        return run(state, tensor, group, out)
    # Timed to the end (the calibration calls do not overlap backward). A calibration dense call
    # follows a method call: only its allreduce is what dense costs once the residual is empty.
    if dense:
        _send_everything(state, tensor, out)
    start = time.perf_counter()
    fut = dense_average(out, group) if dense else _compressed_average(state, tensor, group, out)
    fut.wait()
    choice.record(state, dense, time.perf_counter() - start, group, tensor.device)
    return fut


def _compressed_average(state, tensor, group, out):
    info = state.info()
    if info.payload == "values":
        if info.selected == info.count:  # every value: nothing to compress
            return dense_average(out if out is tensor else out.copy_(tensor), group)
        return _all_reduce_values(state, tensor, group, out)
    if info.payload == "slots":
        return _all_gather_pairs(state, tensor, group, out)
    check_method(info.method, "spccl_torch")
    raise ValueError(f"spccl_torch: method {info.method!r} has no process-group exchange")


def _dense_with_feedback(state, tensor, group, out):
    """Everything sent: out = tensor + residual averaged densely, the residual emptied. Unlike
    the library's dense call, the state's step does not advance (no spccl call runs)."""
    _send_everything(state, tensor, out)
    return dense_average(out, group)


def _send_everything(state, tensor, out):
    """out = tensor + residual, the residual emptied (skipped while it reads all zero)."""
    residual = state.residual[:state.count]
    if not residual.any():
        if out is not tensor:
            out.copy_(tensor)
        return
    torch.add(tensor, residual, out=out)
    residual.zero_()


class AutoChoice:
    """Config(auto=True) for a state whose payload a process group moves: the library's
    schedule for its own collective (spccl.h, config.autoSelect): call 0 runs the method
    untimed, calls 1 .. CALIBRATION_CALLS-1 run dense (odd calls) and the method in turn; the
    last of them sums every rank's fastest times over the group, so every rank takes the same
    decision, and logs it at INFO (logger "spccl", and stderr under SPCCL_DEBUG=INFO as the
    library does)."""

    CALIBRATION_CALLS = 7
    _by_state = weakref.WeakKeyDictionary()

    def __init__(self):
        self.calls = 0
        self.seconds = {False: math.inf, True: math.inf}  # dense? -> fastest timed call
        self.decided = False
        self.dense = False

    @classmethod
    def of(cls, state):
        """The state's choice, or None when its config does not ask for one."""
        choice = cls._by_state.get(state)
        if choice is None:  # False remembers "no": the config is read once per state
            choice = cls._by_state[state] = cls() if state.config.auto else False
        return choice or None

    def next_runs_dense(self):
        return self.dense if self.decided else self.calls % 2 == 1

    def record(self, state, dense, seconds, group, device):
        if dense or self.calls > 0:
            self.seconds[dense] = min(self.seconds[dense], seconds)
        self.calls += 1
        if self.calls < self.CALIBRATION_CALLS:
            return
        size = dist.get_world_size(group)
        total = torch.tensor([self.seconds[False], self.seconds[True]], dtype=torch.float64, device=device)
        dist.all_reduce(total, group=group)
        method_s, dense_s = (t / size for t in total.tolist())
        self.decided, self.dense = True, dense_s < method_s
        _log_info(f"spccl_torch: auto (count {state.count}): {state.info().method} {method_s * 1e3:.3f} ms per "
                  f"call, dense {dense_s * 1e3:.3f} ms (the group's mean of each rank's fastest call): "
                  f"{'running dense' if self.dense else 'keeping the method'}")


_logger = logging.getLogger("spccl")


def _log_info(message):
    _logger.info(message)
    if os.environ.get("SPCCL_DEBUG", "").upper() in ("INFO", "TRACE"):
        print(f"SPCCL INFO {message}", file=sys.stderr, flush=True)


def world(comm, group):
    """(size, rank) of the ranks that average: the spccl comm's, else the process group's."""
    if comm is not None:
        return comm.size, comm.rank
    return dist.get_world_size(group), dist.get_rank(group)


def average(state, tensor, comm, group):
    """Blocking, in place: `tensor` becomes the average of C(tensor + residual) over the ranks,
    each rank's residual updated. Through spccl's collective when `comm` is a spccl.Comm over
    MPI (mpirun), else through the process group `group` (torchrun)."""
    if comm is not None:
        state.sparse_allreduce(tensor, op="avg")
    else:
        compressed_average(state, tensor, group).wait()
    return tensor


def _all_reduce_values(state, tensor, group, out):
    values = torch.empty(state.compressed_count(), dtype=tensor.dtype, device=tensor.device)
    with timed("spccl.compress"):
        n, step = state.compress(tensor, values)
    packed = values[:n]
    work = dist.all_reduce(packed, group=group, async_op=True)
    scale = 1.0 / dist.get_world_size(group)

    def decompress(_):
        with timed("spccl.decompress"):
            state.decompress(packed, step, out, scale=scale)
        return out

    return work.get_future().then(decompress)


def _all_gather_pairs(state, tensor, group, out):
    slots = state.compressed_count()
    index_bytes = -(-slots * 4 // 8) * 8  # values start 8-byte aligned, whatever their type
    value_bytes = slots * tensor.element_size()
    payload = torch.empty(index_bytes + value_bytes, dtype=torch.uint8, device=tensor.device)
    indices = payload[:slots * 4].view(torch.int32)
    values = payload[index_bytes:].view(tensor.dtype)
    with timed("spccl.compress"):
        indices.fill_(PAD_INDEX)
        _, step = state.compress(tensor, values, indices)
    size = dist.get_world_size(group)
    gathered = [torch.empty_like(payload) for _ in range(size)]
    work = dist.all_gather(gathered, payload, group=group, async_op=True)

    def decompress(_):
        with timed("spccl.decompress"):
            every = torch.stack(gathered)
            all_indices = every[:, :slots * 4].contiguous().view(torch.int32).reshape(-1)
            all_values = every[:, index_bytes:].contiguous().view(tensor.dtype).reshape(-1)
            state.decompress(all_values, step, out, indices=all_indices, nvalues=size * slots, scale=1.0 / size)
        return out

    return work.get_future().then(decompress)


class LocalComms:
    """One compress-only spccl comm per device, for states whose payloads a process group
    moves. Holds no process group, so it pickles as nothing and is remade on use."""

    def __init__(self):
        self._by_device = {}

    def get(self, group, device):
        key = (dist.get_world_size(group), dist.get_rank(group), str(device))
        comm = self._by_device.get(key)
        if comm is None:
            comm = spccl.Comm.local(key[0], key[1], device)
            self._by_device[key] = comm
        return comm
