# SPDX-License-Identifier: Apache-2.0
"""A Horovod Compressor that sends spccl random blocks (README, Horovod).

    import horovod.torch as hvd
    import spccl_horovod
    hvd.init()
    compression = spccl_horovod.RandomBlockCompressor(density=1/64, block_size=256)
    opt = hvd.DistributedOptimizer(opt, named_parameters=model.named_parameters(),
                                   compression=compression)

compress() packs the selected blocks of (gradient + residual) with spcclCompress into a
tensor of density * n elements, the same shape on every rank because every rank derives the
same blocks from (seed, tensor key, step); Horovod allreduces (averages) that small tensor;
decompress() unpacks it with spcclDecompress. Error feedback lives in one spccl state per
tensor name, on the gradient's device, made on a compress-only spccl comm of Horovod's size and
rank (no MPI communicator of spccl's own); its step advances once per compress, so ranks agree
as long as each compresses each name once per step, which Horovod's allreduce by name requires
anyway. state_dict() / load_state_dict() save and restore this rank's residuals and steps
(spccl.checkpoint: tagged with world size, rank and config). Only random block fits: Top-k picks different coordinates on each rank, which needs an
allgather that the Compressor interface does not have.

Horovod does not pass the tensor's name to compress(); constructing this compressor wraps
_DistributedOptimizer._allreduce_grad_async so that it records the name first. Build the
compressor before hvd.DistributedOptimizer (which copies the class), pass named_parameters,
and do not use `groups` (grouped allreduce compresses without names)."""
import functools
import zlib

import spccl
from spccl import checkpoint

__all__ = ["RandomBlockCompressor"]


class RandomBlockCompressor(checkpoint.TableOwner):
    def __init__(self, density=1 / 64, block_size=256, block_pattern=None, seed=None, feedback="ef", comm=None):
        self.config = spccl.Config(method="randomblock", density=density, block_size=block_size,
                                   block_pattern=block_pattern, feedback=feedback, seed=seed)
        self._comm = comm
        self._local_comms = {}  # device -> compress-only spccl comm (Horovod moves the payload)
        self.table = checkpoint.StateTable("RandomBlockCompressor tensor")  # tensor name -> spccl.State
        self._name = None
        _record_names_in_horovod()

    def comm_for(self, device):
        """The spccl comm of states for tensors on `device`: the one given, else a compress-only
        comm of Horovod's size and rank (compression is local; Horovod does the allreduce)."""
        if self._comm is not None:
            return self._comm
        key = str(device)
        if key not in self._local_comms:
            import horovod.torch as hvd

            self._local_comms[key] = spccl.Comm.local(hvd.size(), hvd.rank(), device)
        return self._local_comms[key]

    def set_name(self, name):
        """The name of the tensor the next compress() receives (done by the optimizer wrapper)."""
        self._name = name

    def state(self, name, tensor):
        """The state of `name`, (re)created when its size, dtype or device changed."""
        key = zlib.crc32(name.encode())  # the same on every rank (Python's hash() is not)

        def make():
            return spccl.State.like(self.comm_for(tensor.device), self.config.replace(tensor_key=key), tensor)

        return self.table.get(name, tensor.numel(), tensor.dtype, tensor.device, make)[0]

    # --- checkpoints -------------------------------------------------------------------
    def _tag(self):
        import horovod.torch as hvd

        return checkpoint.tag("spccl_horovod.RandomBlockCompressor", hvd.size(), hvd.rank(), self.config)

    def state_dict(self):
        """This rank's residual and step per tensor name, tagged with Horovod's world size and
        rank and the config. Save one per rank, beside the model's and optimizer's."""
        return dict(tag=self._tag(), tensors=self.table.entries())

    def load_state_dict(self, state_dict, reset=False):
        """Restores what state_dict() saved on this rank; each tensor's residual and step come
        back when it is next compressed. A checkpoint saved under another world size, rank or
        config raises ValueError, unless reset=True: compression then starts afresh."""
        what = "RandomBlockCompressor.load_state_dict"
        tag, tensors = checkpoint.require(state_dict, ("tag", "tensors"), what)
        if not reset:
            checkpoint.check_tag(tag, self._tag(), what)
            checkpoint.check_snapshots(tensors, what)
        self.table.load(tensors, reset)

    def __getstate__(self):
        # As PowerSGDState: no comm (nor Horovod) in the pickle, the residuals as CPU tensors.
        return dict(config=self.config, saved=self.state_dict())

    def __setstate__(self, pickled):
        self.config, self._comm = pickled["config"], None
        self._local_comms, self._name = {}, None
        self.table = checkpoint.StateTable("RandomBlockCompressor tensor")
        self.table.load(pickled["saved"]["tensors"])
        _record_names_in_horovod()

    def compress(self, tensor):
        name, self._name = self._name, None
        if name is None:
            raise RuntimeError("spccl_horovod: compress() got a tensor without a name; build the compressor before "
                               "hvd.DistributedOptimizer, pass named_parameters, and do not use groups (or call "
                               "set_name() first when compressing by hand)")
        st = self.state(name, tensor)
        values = tensor.new_empty(st.compressed_count())
        n, step = st.compress(tensor.contiguous(), values)
        return values[:n], (name, step, tensor.shape)

    def decompress(self, tensor, ctx):
        name, step, shape = ctx
        st = self.states[name]
        out = tensor.new_empty(st.count)
        st.decompress(tensor.contiguous(), step, out)  # Horovod averaged already: scale 1
        return out.view(shape)


def _record_names_in_horovod():
    from horovod.torch.optimizer import _DistributedOptimizer

    original = _DistributedOptimizer._allreduce_grad_async
    if getattr(original, "_spccl_records_names", False):
        return

    @functools.wraps(original)
    def allreduce_grad_async(self, p):
        if isinstance(self._compression, RandomBlockCompressor):
            self._compression.set_name(self._parameter_names.get(p))
        return original(self, p)

    allreduce_grad_async._spccl_records_names = True
    _DistributedOptimizer._allreduce_grad_async = allreduce_grad_async
