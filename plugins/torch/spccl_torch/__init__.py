# SPDX-License-Identifier: Apache-2.0
"""PyTorch adapters for spccl: a DDP communication hook and the DEF optimizer."""
from .detached import DEF
from .hook import SpcclHookState, ddp_comm_hook

__all__ = ["DEF", "SpcclHookState", "ddp_comm_hook"]
