# SPDX-License-Identifier: Apache-2.0
"""Shared fixtures for the adapter tests. Every rank started by mpirun runs the same tests in
the same order; assertions come after the collectives of a test so a failing rank does not
leave its peers waiting (the ctest timeout catches what slips through)."""
import importlib
import os
import socket

import numpy as np
import pytest


def under_ci():
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_unless_ci(reason):
    """pytest.skip, except under CI (CI=true): there scripts/setup.sh was meant to install
    every dependency, so what would be skipped fails instead."""
    if under_ci():
        pytest.fail(f"{reason} [CI=true: a missing dependency is a failure, not a skip]", pytrace=False)
    pytest.skip(reason, allow_module_level=True)  # require() runs at import: the module skips


def require(module, reason):
    """The module, imported; when it is missing, skip_unless_ci."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        skip_unless_ci(f"{reason} ({e})")


MPI = require("mpi4py.MPI", reason="mpi4py is not installed (apt-get install python3-mpi4py)")
import spccl  # noqa: E402


@pytest.fixture(scope="session")
def world():
    return MPI.COMM_WORLD


@pytest.fixture(scope="session")
def comm():
    c = spccl.Comm(MPI.COMM_WORLD)
    yield c


def allsum(world, array):
    """MPI sum of a float64 copy of `array` (the test's independent reference)."""
    a = np.ascontiguousarray(array, dtype=np.float64)
    out = np.empty_like(a)
    world.Allreduce(a, out, op=MPI.SUM)
    return out


def free_port(world):
    """A TCP port free on rank 0, agreed by all ranks (gloo rendezvous on 127.0.0.1)."""
    port = None
    if world.rank == 0:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    return world.bcast(port, root=0)


def random_block_reference(acc, blocks, block_size):
    """C(acc) for random block: acc on the given blocks, 0 elsewhere (DESIGN.md, Random block)."""
    c = np.zeros_like(acc)
    for b in blocks:
        c[b * block_size:(b + 1) * block_size] = acc[b * block_size:(b + 1) * block_size]
    return c
