# SPDX-License-Identifier: Apache-2.0
"""PyTorch adapters for spccl: a DDP communication hook, the DEF optimizer, and local-step
training with double momentum (LocalSGD: FedAvg, its momentum variants and DOMO)."""
from .detached import DEF
from .hook import SpcclHookState, ddp_comm_hook
from .local import LocalSGD

__all__ = ["DEF", "LocalSGD", "SpcclHookState", "ddp_comm_hook"]
