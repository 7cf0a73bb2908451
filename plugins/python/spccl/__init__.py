# SPDX-License-Identifier: Apache-2.0
"""spccl for Python: ctypes over libspccl.so (no compiled extension, no framework build).

    from mpi4py import MPI            # initialises MPI
    import spccl
    comm = spccl.Comm(MPI.COMM_WORLD)
    state = spccl.State.like(comm, spccl.Config(method="randomblock", density=1/64), grad)
    state.sparse_allreduce(grad, op="avg")      # in place; residual in state.residual

Failures raise spccl.SpcclError with the spccl result code and the library's sentence;
wrong Python types raise TypeError; out-of-range integers, NaN or Inf reals and buffers
spccl cannot use as they are (non-contiguous, byte-swapped, unaligned, read-only where
written, lazy torch views) raise ValueError, before the library is called."""
from ._core import (DATATYPES, FEEDBACKS, METHODS, OPS, PATTERNS, PAYLOADS, Comm, Config, SpcclError, State,
                    StateInfo, payload_of, sparse_allreduce, version)

__all__ = ["Comm", "Config", "State", "StateInfo", "SpcclError", "sparse_allreduce", "payload_of", "version",
           "METHODS", "PATTERNS", "FEEDBACKS", "OPS", "DATATYPES", "PAYLOADS"]
