# SPDX-License-Identifier: Apache-2.0
"""A Horovod Compressor that sends spccl random blocks (SPEC §8).

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
tensor name, on the gradient's device; its step advances once per compress, so ranks agree as
long as each compresses each name once per step, which Horovod's allreduce by name requires
anyway. Only random block fits: Top-k picks different coordinates on each rank, which needs an
allgather that the Compressor interface does not have.

Horovod does not pass the tensor's name to compress(); constructing this compressor wraps
_DistributedOptimizer._allreduce_grad_async so that it records the name first. Build the
compressor before hvd.DistributedOptimizer (which copies the class), pass named_parameters,
and do not use `groups` (grouped allreduce compresses without names)."""
import functools
import zlib

import spccl

__all__ = ["RandomBlockCompressor"]


class RandomBlockCompressor:
    def __init__(self, density=1 / 64, block_size=256, block_pattern=None, seed=None, feedback="ef", comm=None):
        self.config = spccl.Config(method="randomblock", density=density, block_size=block_size,
                                   block_pattern=block_pattern, feedback=feedback, seed=seed)
        self._comm = comm
        self.states = {}  # tensor name -> spccl.State
        self._name = None
        _record_names_in_horovod()

    @property
    def comm(self):
        if self._comm is None:  # spccl needs a comm to make states; compression itself is local
            self._comm = spccl.Comm()
        return self._comm

    def set_name(self, name):
        """The name of the tensor the next compress() receives (done by the optimizer wrapper)."""
        self._name = name

    def state(self, name, tensor):
        """The state of `name`, (re)created when its size, dtype or device changed."""
        st = self.states.get(name)
        if st is None or st.count != tensor.numel() or st.dtype != tensor.dtype or st.device != tensor.device:
            if st is not None:
                st.close()
            key = zlib.crc32(name.encode())  # the same on every rank (Python's hash() is not)
            st = spccl.State.like(self.comm, self.config.replace(tensor_key=key), tensor)
            self.states[name] = st
        return st

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
