# SPDX-License-Identifier: Apache-2.0
"""PyTorch adapters for spccl: a DDP communication hook (with DEFSGD, detached error feedback
inside DDP), the DEF optimizer, local-step training with double momentum (LocalSGD: FedAvg,
its momentum variants and DOMO), and counters of the time they add to a step."""
from .detached import DEF, DEFSGD
from .hook import SpcclHookState, ddp_comm_hook
from .local import LocalSGD
from .profile import counters, reset_counters

__all__ = ["DEF", "DEFSGD", "LocalSGD", "SpcclHookState", "counters", "ddp_comm_hook", "reset_counters"]
