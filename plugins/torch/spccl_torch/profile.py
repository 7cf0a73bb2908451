# SPDX-License-Identifier: Apache-2.0
"""Where the adapters' time goes: every piece of work they add to a step runs inside
`timed(name)`, which is a torch.profiler.record_function range of that name (it shows in a
profiler trace, on the thread that ran it) and adds its wall time to a process-wide counter:

    spccl.compress          spcclCompress of a bucket (feedback, selection, packing)
    spccl.decompress        spcclDecompress of the averaged payload (in the future's callback)
    spccl.sparse_allreduce  spccl's own blocking collective (mpirun path: all of the above and the wire)
    spccl.lookahead         DEF: moving parameters to x - mu*e and back
    spccl.momentum          DEF: the bucket's local momentum, lr*m
    spccl.step              DEFSGD.step: x -= the averaged update

    spccl_torch.reset_counters()
    ... train ...
    for name, (seconds, calls) in spccl_torch.counters().items(): print(name, seconds / steps)

What is left of a step beyond compute and these is the wait for the wire."""
import contextlib
import threading
import time

import torch

_lock = threading.Lock()
_totals = {}  # name -> [seconds, calls]


@contextlib.contextmanager
def timed(name):
    start = time.perf_counter()
    with torch.profiler.record_function(name):
        yield
    elapsed = time.perf_counter() - start
    with _lock:  # decompression runs on the process group's threads
        total = _totals.setdefault(name, [0.0, 0])
        total[0] += elapsed
        total[1] += 1


def counters():
    """{name: (seconds, calls)} since the last reset_counters(), for every range that ran."""
    with _lock:
        return {name: (s, n) for name, (s, n) in _totals.items()}


def reset_counters():
    with _lock:
        _totals.clear()
