# SPDX-License-Identifier: Apache-2.0
"""One training job for the resume test, run by torchrun (gloo, CPU):

    resume_job.py STEPS OUT [--save CKPT] [--load CKPT] [--bucket-cap-mb MB] [--def]

trains a small MLP with the spccl DDP hook (random block, EF) and an SGD optimizer (--def:
spccl_torch.DEFSGD, detached error feedback with the momenta in the hook state) for STEPS
steps, or with --load continues from a checkpoint; --save writes one checkpoint per rank; OUT
receives this rank's parameters, hook residuals and steps. Every step's data depends only on
(rank, global step), so 10 + 10 steps must equal 20 straight, bit for bit."""
import argparse
import os

import torch
import torch.distributed as dist
from torch import nn

import spccl
import spccl_torch


def batch(rank, step):
    gen = torch.Generator().manual_seed(7919 * step + rank)
    return torch.randn(16, 32, generator=gen), torch.randn(16, 4, generator=gen)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("steps", type=int)
    parser.add_argument("out")
    parser.add_argument("--save")
    parser.add_argument("--load")
    parser.add_argument("--bucket-cap-mb", type=float, default=0.05)
    parser.add_argument("--def", dest="detached", action="store_true")
    args = parser.parse_args()
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 256), nn.Tanh(), nn.Linear(256, 256), nn.Tanh(), nn.Linear(256, 4))
    ddp = nn.parallel.DistributedDataParallel(model, bucket_cap_mb=args.bucket_cap_mb)
    state = spccl_torch.SpcclHookState(spccl.Config(method="randomblock", density=1 / 8, block_size=32))
    ddp.register_comm_hook(state, spccl_torch.ddp_comm_hook)
    if args.detached:
        opt = spccl_torch.DEFSGD(ddp, state, lr=0.05, momentum=0.9, weight_decay=1e-4, mu=0.3)
    else:
        opt = torch.optim.SGD(ddp.parameters(), lr=0.05, momentum=0.9)
    first = 0
    if args.load:
        ckpt = torch.load(f"{args.load}.{rank}.pt", weights_only=False)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
        state.load_state_dict(ckpt["hook"])
        first = ckpt["step"]
    for step in range(first, first + args.steps):
        x, y = batch(rank, step)
        opt.zero_grad()
        nn.functional.mse_loss(ddp(x), y).backward()
        opt.step()
    if args.save:
        torch.save(dict(model=model.state_dict(), opt=opt.state_dict(), hook=state.state_dict(),
                        step=first + args.steps), f"{args.save}.{rank}.pt")
    hook = state.state_dict()
    torch.save(dict(params=[p.detach().clone() for p in model.parameters()],
                    residuals={i: b["residual"] for i, b in hook["buckets"].items()},
                    steps={i: b["step"] for i, b in hook["buckets"].items()},
                    momenta={i: b.get("momentum") for i, b in hook["buckets"].items()}),
               os.path.join(args.out, f"rank{rank}.pt"))
    # A blocking collective releases the GIL, so gloo's worker threads finish releasing the
    # comm hooks' future callbacks now, not during interpreter exit (where a thread that
    # needs the GIL is ended, and C++ calls std::terminate).
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
