# SPDX-License-Identifier: Apache-2.0
"""The README's DDP example, trained: an MLP 64-512-512-10 on scikit-learn's digits under
DistributedDataParallel (gloo), registered exactly as the README shows it, against plain DDP:

    dense    plain DDP, torch.optim.SGD (momentum 0.9)
    def      README: random block 1/64 (block 64), spccl_torch.DEFSGD (mu 0.3, momentum 0.9)
    ef       random block 1/64 with plain EF under torch.optim.SGD momentum: the known trap
             (diverges at low density; the hook warns)

Every run starts from the same weights and sees the same data order (1400 training samples,
397 test, batch 32 per rank, lr 0.05); test accuracy is taken at x after the last epoch.

    torchrun --nproc-per-node=4 plugins/torch/examples/ddp_digits.py [--runs dense,def] [--seeds 1,2,3]

prints one line per run and seed and the mean and standard deviation over the seeds."""
import argparse
import gc
import statistics

import torch
import torch.distributed as dist
from torch import nn

import spccl
import spccl_torch

NTRAIN = 1400


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", default="dense,def")
    p.add_argument("--seeds", default="1", help="comma list: data split, weights and order of each repeat")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch", type=int, default=32, help="samples per rank per step")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--mu", type=float, default=0.3)
    p.add_argument("--density", type=float, default=1 / 64)
    return p.parse_args(argv)


def load_digits(seed):
    from sklearn.datasets import load_digits as sk_digits

    digits = sk_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target, dtype=torch.int64)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    train, test = perm[:NTRAIN], perm[NTRAIN:]
    return x[train], y[train], x[test], y[test]


def make_model(seed):
    with torch.random.fork_rng():  # the same weights on every rank; the global generator untouched
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))


def build(run, model, args):
    """DDP and its optimizer for `run`, set up as the README shows."""
    ddp = nn.parallel.DistributedDataParallel(model)
    if run == "dense":
        return ddp, torch.optim.SGD(ddp.parameters(), lr=args.lr, momentum=args.momentum)
    cfg = spccl.Config(method="randomblock", density=args.density, block_size=64)
    state = spccl_torch.SpcclHookState(cfg)
    ddp.register_comm_hook(state, spccl_torch.ddp_comm_hook)
    if run == "def":
        return ddp, spccl_torch.DEFSGD(ddp, state, lr=args.lr, momentum=args.momentum, mu=args.mu)
    if run == "ef":
        return ddp, torch.optim.SGD(ddp.parameters(), lr=args.lr, momentum=args.momentum)
    raise SystemExit(f"unknown run {run!r}: dense, def or ef")


def train(run, seed, args):
    """Test accuracy (%) of `run` after args.epochs epochs, the same on every rank."""
    xtr, ytr, xte, yte = load_digits(seed)
    rank, size = dist.get_rank(), dist.get_world_size()
    model = make_model(seed)
    ddp, opt = build(run, model, args)
    gen = torch.Generator().manual_seed(1000 * seed + rank)
    shard = torch.arange(rank, len(ytr), size)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(args.epochs):
        order = shard[torch.randperm(len(shard), generator=gen)]
        for s in range(len(order) // args.batch):
            idx = order[s * args.batch:(s + 1) * args.batch]
            opt.zero_grad()
            loss_fn(ddp(xtr[idx]), ytr[idx]).backward()
            opt.step()
    with torch.no_grad():
        acc = (model(xte).argmax(1) == yte).double().mean().item() * 100
    del ddp, opt  # DDP, its hook state and DEFSGD refer to each other: free them now
    gc.collect()
    return acc


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    seeds = [int(s) for s in args.seeds.split(",")]
    for run in args.runs.split(","):
        accs = [train(run, seed, args) for seed in seeds]
        if dist.get_rank() == 0:
            spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
            print(f"{run:<6} " + " ".join(f"{a:6.2f}" for a in accs) +
                  f"   mean {statistics.mean(accs):6.2f} +- {spread:.2f}", flush=True)
    # A blocking collective releases the GIL, so gloo's worker threads finish releasing the
    # comm hooks' future callbacks now, not during interpreter exit (where a thread that
    # needs the GIL is ended, and C++ calls std::terminate).
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
