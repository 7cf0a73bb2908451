# SPDX-License-Identifier: Apache-2.0
"""The PyTorch adapters under torchrun: every rank runs pytest on the same tests in the same
order over the gloo process group torchrun's environment describes; no MPI, no mpi4py.
Under CI=true a missing torch fails instead of skipping."""
import gc
import os

import pytest

try:
    import torch  # noqa: F401  (the import is the check)
    import torch.distributed as dist
except ImportError as err:
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"CI: torch must be installed for the torchrun tests ({err})") from err
    pytest.skip(f"torch is not installed ({err}); scripts/setup.sh makes the PyPI-torch venv",
                allow_module_level=True)


@pytest.fixture(scope="session", autouse=True)
def process_group():
    if "RANK" not in os.environ:
        pytest.fail("run these tests under torchrun (ctest does: tests/torch/CMakeLists.txt)")
    dist.init_process_group("gloo")
    yield dist.group.WORLD
    # DDP modules, hook states and optimizers of finished tests form reference cycles that
    # hold the process group: free them while it is alive, not at interpreter exit. The
    # barrier releases the GIL, so gloo's worker threads finish releasing the comm hooks'
    # future callbacks now (a thread that needs the GIL during exit is ended, and C++ calls
    # std::terminate: seen as a rank aborting after its tests passed).
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()


@pytest.fixture
def world():
    return dist.get_world_size(), dist.get_rank()
