# SPDX-License-Identifier: Apache-2.0
"""Convergence of compressed data-parallel SGD on scikit-learn's digits (the claim of DESIGN.md, Error feedback).

A 64-128-128-10 MLP (one flat parameter vector per optimizer group) is trained by P MPI
ranks, each on its own shard, with spccl_torch.DEF; all communication goes through spccl:

    dense        method dense                               (momentum SGD, averaged gradient)
    rb-none      random block, density 1/64, no feedback
    rb-ef        random block, density 1/64, EF   (mu = 0)
    rb-def       random block, density 1/64, DEF  (mu = 0.3)
    topk-none / topk-ef / gaussk-none / gaussk-ef   at density 1%   (when the library has them)
    onebit-none / onebit-ef   1-bit: signs and one scale per chunk, worker and server EF (about 1/16 of dense fp32)

Seeds are fixed (data split, initial weights, per-rank shuffles), so a run is repeatable.
Accuracy is measured at x (the parameters between steps). Run with:

    mpirun -np 4 python3 convergence_digits.py --out results/

Prints a table, writes results.json and curves.png (matplotlib, Agg) into --out."""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

from mpi4py import MPI  # noqa: F401  (initialises MPI before spccl makes its comm)
import spccl
import spccl_torch

RUNS = {
    "dense": dict(method="dense", feedback="none", mu=0.0),
    "rb-none": dict(method="randomblock", feedback="none", mu=0.0),
    "rb-ef": dict(method="randomblock", feedback="ef", mu=0.0),
    "rb-def": dict(method="randomblock", feedback="ef", mu=0.3),
    "topk-none": dict(method="topk", feedback="none", mu=0.0),
    "topk-ef": dict(method="topk", feedback="ef", mu=0.0),
    "gaussk-none": dict(method="gaussiank", feedback="none", mu=0.0),
    "gaussk-ef": dict(method="gaussiank", feedback="ef", mu=0.0),
    "onebit-none": dict(method="onebit", feedback="none", mu=0.0),
    "onebit-ef": dict(method="onebit", feedback="ef", mu=0.0),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", default=",".join(RUNS), help="comma list of " + ",".join(RUNS))
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch", type=int, default=8, help="samples per rank per step")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--mu", type=float, default=None, help="override mu of the DEF run")
    p.add_argument("--rb-density", type=float, default=1 / 64)
    p.add_argument("--block-size", type=int, default=64)
    p.add_argument("--block-pattern", default="scattered", choices=["contiguous", "scattered"])
    p.add_argument("--topk-density", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="directory for results.json and curves.png (rank 0)")
    return p.parse_args(argv)


def load_data(seed):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target, dtype=torch.int64)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    ntest = len(y) // 4
    return x[perm[ntest:]], y[perm[ntest:]], x[perm[:ntest]], y[perm[:ntest]]


def make_model(seed):
    """The same initial weights on every rank, without disturbing the global generator."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 128),
                                   torch.nn.ReLU(), torch.nn.Linear(128, 10))


def available(comm, method):
    """Whether the library runs `method` (Top-k methods land later than random block)."""
    try:
        spccl.State(comm, spccl.Config(method=method, density=0.5), 16).close()
        return True, ""
    except spccl.SpcclError as err:
        return False, err.message


def train(name, spec, args, comm, data):
    xtr, ytr, xte, yte = data
    rank, size = comm.rank, comm.size
    model = make_model(args.seed)
    density = args.rb_density if spec["method"] == "randomblock" else args.topk_density
    config = spccl.Config(method=spec["method"], feedback=spec["feedback"], density=density,
                          block_size=args.block_size, block_pattern=args.block_pattern, seed=1000 + args.seed,
                          dense_switch=False)
    mu = args.mu if (args.mu is not None and name == "rb-def") else spec["mu"]
    opt = spccl_torch.DEF(model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
                          mu=mu, config=config, comm=comm)
    shard = torch.arange(rank, len(ytr), size)
    gen = torch.Generator().manual_seed(args.seed * 1000 + rank)
    steps = len(shard) // args.batch
    loss_fn = torch.nn.CrossEntropyLoss()
    curve = []
    for epoch in range(args.epochs):
        order = shard[torch.randperm(len(shard), generator=gen)]
        total = torch.zeros(1, dtype=torch.float64)
        for s in range(steps):
            idx = order[s * args.batch:(s + 1) * args.batch]

            def closure():
                opt.zero_grad()
                loss = loss_fn(model(xtr[idx]), ytr[idx])
                loss.backward()
                return loss

            total += opt.step(closure).item()
        comm.allreduce(total, op="avg")  # mean training loss over ranks
        with torch.no_grad():
            logits = model(xte)
            acc = (logits.argmax(1) == yte).double().mean().item() * 100
            test_loss = loss_fn(logits, yte).item()
        train_loss = total.item() / steps
        curve.append(dict(epoch=epoch + 1, train_loss=train_loss, test_loss=test_loss, test_acc=acc))
    return curve


def fmt(v, spec=".2f"):
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)
    comm = spccl.Comm()
    data = load_data(args.seed)
    results = dict(settings=vars(args), nranks=comm.size, runs={})
    for name in [r for r in args.runs.split(",") if r]:
        if name not in RUNS:
            raise SystemExit(f"unknown run {name!r}; known: {', '.join(RUNS)}")
        spec = RUNS[name]
        ok, why = available(comm, spec["method"])
        if not ok:
            results["runs"][name] = dict(skipped=why)
            continue
        start = time.time()
        curve = train(name, spec, args, comm, data)
        results["runs"][name] = dict(curve=curve, final=curve[-1], seconds=time.time() - start, **spec)
    if comm.rank == 0:
        report(results, args)
    return results


def write_json_open_figure(out, results):
    """Writes out/results.json; returns a Matplotlib (Agg) figure with two axes side by side."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, 2, figsize=(11, 4))


def report(results, args):
    print(f"\nconvergence on digits: {results['nranks']} ranks, {args.epochs} epochs, batch {args.batch}/rank, "
          f"lr {args.lr}, momentum {args.momentum}, wd {args.weight_decay}, seed {args.seed}")
    print(f"{'run':<12} {'method':<12} {'feedback':<8} {'mu':>4} {'test acc %':>10} {'test loss':>10} "
          f"{'train loss':>10} {'time s':>7}")
    for name, r in results["runs"].items():
        if "skipped" in r:
            print(f"{name:<12} skipped: {r['skipped']}")
            continue
        f = r["final"]
        print(f"{name:<12} {r['method']:<12} {r['feedback']:<8} {r['mu']:>4} {fmt(f['test_acc']):>10} "
              f"{fmt(f['test_loss'], '.4f'):>10} {fmt(f['train_loss'], '.4f'):>10} {r['seconds']:>7.1f}")
    sys.stdout.flush()
    if not args.out:
        return
    fig, (ax1, ax2) = write_json_open_figure(args.out, results)
    for name, r in results["runs"].items():
        if "curve" in r:
            epochs = [c["epoch"] for c in r["curve"]]
            ax1.plot(epochs, [c["test_acc"] for c in r["curve"]], label=name)
            ax2.plot(epochs, [c["train_loss"] for c in r["curve"]], label=name)
    ax1.set(xlabel="epoch", ylabel="test accuracy (%)", ylim=(0, 100))
    ax2.set(xlabel="epoch", ylabel="training loss", yscale="log")
    ax1.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "curves.png"), dpi=100)


if __name__ == "__main__":
    main()
