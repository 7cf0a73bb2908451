# SPDX-License-Identifier: Apache-2.0
"""What the local-steps examples share (local_steps_digits.py, local_steps_charlm.py): the runs
of spccl_torch.LocalSGD they compare, the training loop, the bytes and the reports. A problem
(a Problem) brings its data, its model, how the training set is split among the ranks, and the
defaults of its settings; everything else is the same for every problem:

    sync-sgd        one step per round, server momentum (synchronous momentum SGD, dense)
    fedavg          H local steps, plain SGD, delta averaged
    fedavg-server   + server momentum (applied after the round)
    fedavg-local    + local momentum (reset every round)
    fedavg-slm      both momenta, the local one carried across rounds (FedAvgSLM)
    domo            both momenta, coordinated by momentum fusion
    diloco          AdamW inside the round (--inner-lr), Nesterov outer step (--outer-lr,
                    --server-momentum), dense
    domo-q          domo, the deltas sent as quantized Top-k (qtopk: --q-density per chunk of
                    --q-chunk elements, --value-bits per value) with EF, look-ahead --mu and
                    --residual-decay, every --q-local-steps
    diloco-q        diloco with domo-q's compression
    domo-rb         domo, the deltas sent as random blocks (density 1/64) with EF, DEF's
                    look-ahead (each round starts at x - mu * e) and the residual shrunk by
                    --residual-decay every round
    domo-rb16       domo-rb at density 1/16
    domo-rb-ef      domo-rb with plain EF (mu = 0, no decay)
    domo-rb-nodecay domo-rb without the decay

Every run takes the same number of local gradient steps with the same seeds and follows one
cosine learning-rate schedule over the steps (LambdaLR, stepped after every local step; on the
inner optimizer for diloco); all communication goes through spccl. Accuracy is measured at the
global model about --evals times per run. Bytes are what one rank sends, as the library counts
each round's payload (LocalSGD.bytes_sent, from State.info); "to target" is the bytes sent when
the run first reached sync-sgd's final accuracy minus --target-gap points (in the same seed),
"-" when it never did."""
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
from convergence_digits import fmt, write_json_open_figure


class Problem:
    """A problem of the local-steps examples. load_data returns (xtr, ytr, xte, yte), where
    model(xtr[idx]) are the logits for ytr[idx] (classes on the last axis); shards returns, per
    rank, the indices of xtr it trains on (the same on every rank)."""
    name = "?"
    description = ""
    defaults = {}                # argparse defaults of this problem
    acc_range = (0, 100)         # y axis of curves.png

    def add_arguments(self, parser):
        """The problem's own settings (--split among them)."""

    def load_data(self, args):
        raise NotImplementedError

    def make_model(self, args):
        """The same initial weights on every rank (seeded by args.seed)."""
        raise NotImplementedError

    def shards(self, args, data, nranks):
        raise NotImplementedError

    def describe(self, args, data, shards):
        """Facts about the data and the split, stored in the results of every seed."""
        return {}

    def split_name(self, args):
        return args.split

    def report_data(self, results):
        """Prints the facts of describe()."""


RUNS = {  # name -> LocalSGD variant, local steps (None: --local-steps), spccl method, look-ahead mu (None: --mu),
    # density (None: --density), residual decay (None: --residual-decay; absent: 1),
    # outer step (absent: momentum; nesterov also uses --outer-lr), inner optimizer (absent: built-in)
    "sync-sgd": dict(variant="fedavg_server_momentum", local_steps=1, method="dense", mu=0.0),
    "fedavg": dict(variant="fedavg", local_steps=None, method="dense", mu=0.0),
    "fedavg-server": dict(variant="fedavg_server_momentum", local_steps=None, method="dense", mu=0.0),
    "fedavg-local": dict(variant="fedavg_local_momentum", local_steps=None, method="dense", mu=0.0),
    "fedavg-slm": dict(variant="fedavg_slm", local_steps=None, method="dense", mu=0.0),
    "domo": dict(variant="domo", local_steps=None, method="dense", mu=0.0),
    "diloco": dict(variant="fedavg_server_momentum", local_steps=None, method="dense", mu=0.0, outer="nesterov",
                   inner="adamw"),
    "domo-q": dict(variant="domo", local_steps="q", method="qtopk", mu=None, decay=None),
    "diloco-q": dict(variant="fedavg_server_momentum", local_steps="q", method="qtopk", mu=None, decay=None,
                     outer="nesterov", inner="adamw"),
    "domo-rb": dict(variant="domo", local_steps=None, method="randomblock", mu=None, decay=None),
    "domo-rb16": dict(variant="domo", local_steps=None, method="randomblock", mu=None, density=1 / 16, decay=None),
    "domo-rb-ef": dict(variant="domo", local_steps=None, method="randomblock", mu=0.0),
    "domo-rb-nodecay": dict(variant="domo", local_steps=None, method="randomblock", mu=None),
}
DEFAULT_RUNS = "sync-sgd,fedavg,fedavg-server,fedavg-local,domo,domo-rb,domo-rb16"


def parse_args(problem, argv=None):
    p = argparse.ArgumentParser(description=problem.description)
    p.add_argument("--runs", default=DEFAULT_RUNS, help="comma list of " + ",".join(RUNS))
    p.add_argument("--local-steps", type=int, default=8, help="H, local steps per round")
    p.add_argument("--steps", type=int, default=2400, help="local gradient steps per rank in every run")
    p.add_argument("--batch", type=int, default=16, help="samples per rank per step")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9, help="local momentum")
    p.add_argument("--server-momentum", type=float, default=0.9)
    p.add_argument("--fusion", type=float, default=1.0, help="DOMO's momentum fusion coefficient")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--mu", type=float, default=1.0, help="look-ahead of domo-rb (DEF on the delta stream)")
    p.add_argument("--residual-decay", type=float, default=0.93,
                   help="residual decay of domo-rb and domo-rb16 (1: plain EF)")
    p.add_argument("--inner-lr", type=float, default=2e-3, help="AdamW's learning rate (diloco runs)")
    p.add_argument("--outer-lr", type=float, default=0.7, help="outer learning rate of the Nesterov runs")
    p.add_argument("--q-density", type=float, default=1 / 128, help="qtopk runs: density inside each chunk")
    p.add_argument("--q-chunk", type=int, default=4096, help="qtopk runs: chunk (block) size")
    p.add_argument("--value-bits", type=int, default=2, help="qtopk runs: bits per sent value")
    p.add_argument("--q-local-steps", type=int, default=None, help="qtopk runs: H (default --local-steps)")
    p.add_argument("--slm-server-momentum", type=float, default=None,
                   help="fedavg-slm's server momentum (default --server-momentum)")
    p.add_argument("--target-gap", type=float, default=0.0,
                   help="points below sync-sgd's final accuracy that count as reaching it")
    p.add_argument("--density", type=float, default=1 / 64)
    p.add_argument("--block-size", type=int, default=16)
    p.add_argument("--evals", type=int, default=100, help="evaluations of the global model per run (about)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", default=None, help="comma list of seeds, each a full table (overrides --seed)")
    p.add_argument("--out", default=None, help="directory for results.json and curves.png (rank 0)")
    problem.add_arguments(p)
    p.set_defaults(**problem.defaults)
    return p.parse_args(argv)


def dirichlet_shards(labels, nranks, alpha, seed):
    """Per rank, the indices it trains on: each class split among the ranks in Dirichlet(alpha)
    proportions, the same on every rank (seeded). Every rank gets at least one sample."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    shards = [[] for _ in range(nranks)]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        cuts = (np.cumsum(rng.dirichlet([alpha] * nranks))[:-1] * len(idx)).astype(int)
        for rank, part in enumerate(np.split(idx, cuts)):
            shards[rank].extend(part.tolist())
    for rank, shard in enumerate(shards):
        if not shard:  # a rank with nothing to train on would have no gradient at all
            shard.append(int(rng.integers(len(labels))))
    return [torch.tensor(sorted(s), dtype=torch.int64) for s in shards]


def iid_shards(nlabels, nranks, seed):
    """Per rank, an equal random share of the training set (the same on every rank)."""
    perm = torch.randperm(nlabels, generator=torch.Generator().manual_seed(seed))
    return [perm[rank::nranks].sort().values for rank in range(nranks)]


def batches(shard, batch, seed):
    """Endless shuffled passes over the shard, `batch` indices at a time."""
    gen = torch.Generator().manual_seed(seed)
    order, pos = shard[torch.randperm(len(shard), generator=gen)], 0
    while True:
        if pos + batch > len(order):
            order, pos = torch.cat([order[pos:], shard[torch.randperm(len(shard), generator=gen)]]), 0
        yield order[pos:pos + batch]
        pos += batch


def run_density(spec, args):
    if spec["method"] == "qtopk":
        return args.q_density
    return spec.get("density") or args.density


def run_local_steps(spec, args):
    if spec["local_steps"] == "q":
        return args.q_local_steps or args.local_steps
    return spec["local_steps"] or args.local_steps


def train(problem, spec, args, comm, data, shard):
    xtr, ytr, xte, yte = data
    model = problem.make_model(args)
    quantized = spec["method"] == "qtopk"
    config = spccl.Config(method=spec["method"], feedback="ef", density=run_density(spec, args),
                          block_size=args.q_chunk if quantized else args.block_size, seed=1000 + args.seed,
                          dense_switch=False, value_bits=args.value_bits if quantized else None)
    local_steps = run_local_steps(spec, args)
    mu = args.mu if spec["mu"] is None else spec["mu"]
    decay = spec.get("decay", 1.0)
    if decay is None:
        decay = args.residual_decay
    outer = spec.get("outer", "momentum")
    inner = None
    if spec.get("inner") == "adamw":
        inner = torch.optim.AdamW(model.parameters(), lr=args.inner_lr, weight_decay=args.weight_decay)
    opt = spccl_torch.LocalSGD(model.parameters(), lr=args.lr if inner is None else None, inner=inner,
                               local_steps=local_steps, variant=spec["variant"], momentum=args.momentum,
                               server_momentum=args.slm_server_momentum if spec["variant"] == "fedavg_slm"
                               and args.slm_server_momentum is not None else args.server_momentum, fusion=args.fusion,
                               server_lr=args.outer_lr if outer == "nesterov" else 1.0, outer=outer,
                               weight_decay=args.weight_decay, mu=mu, residual_decay=decay, config=config,
                               comm=comm)
    cosine = torch.optim.lr_scheduler.LambdaLR(inner or opt,
                                               lambda step: 0.5 * (1 + math.cos(math.pi * step / args.steps)))
    loss_fn = torch.nn.CrossEntropyLoss()
    draw = batches(shard, args.batch, args.seed * 1000 + comm.rank)
    curve = []
    eval_every = max(1, (args.steps // args.evals) // local_steps) * local_steps  # about --evals points per curve
    for step in range(1, args.steps + 1):
        idx = next(draw)
        opt.zero_grad()
        loss_fn(model(xtr[idx]), ytr[idx]).backward()
        opt.step()
        cosine.step()
        if step % eval_every == 0 or step == args.steps:
            with opt.global_model():
                curve.append(dict(step=step, rounds=opt.rounds, bytes=opt.bytes_sent,
                                  **evaluate(model, loss_fn, xte, yte)))
    return curve, local_steps, mu, decay


def evaluate(model, loss_fn, x, y):
    with torch.no_grad():
        logits = model(x)
        return dict(test_acc=(logits.argmax(1) == y).double().mean().item() * 100, test_loss=loss_fn(logits, y).item())


def main(problem, argv=None):
    """Runs the table of every seed on `problem` (see Problem); returns the results of the one
    seed, or with several seeds all of them and their summary."""
    args = parse_args(problem, argv)
    torch.set_num_threads(1)
    comm = spccl.Comm()
    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else [args.seed]
    names = [r for r in args.runs.split(",") if r]
    for name in names:
        if name not in RUNS:
            raise SystemExit(f"unknown run {name!r}; known: {', '.join(RUNS)}")
    per_seed = {}
    for seed in seeds:
        args.seed = seed
        per_seed[seed] = run_seed(problem, args, comm, names)
        if comm.rank == 0:
            report(problem, per_seed[seed], args, figure=len(seeds) == 1)
    if len(seeds) == 1:
        return per_seed[seeds[0]]
    results = dict(settings=vars(args), nranks=comm.size, seeds=per_seed, summary=summarise(per_seed, names))
    if comm.rank == 0:
        report_summary(problem, results, args)
    return results


def run_seed(problem, args, comm, names):
    data = problem.load_data(args)
    shards = problem.shards(args, data, comm.size)
    shard = shards[comm.rank]
    results = dict(settings=dict(vars(args)), nranks=comm.size, runs={}, test_samples=len(data[3]),
                   **problem.describe(args, data, shards))
    for name in names:
        spec = RUNS[name]
        start = time.time()
        curve, local_steps, mu, decay = train(problem, spec, args, comm, data, shard)
        results["runs"][name] = dict(curve=curve, final=curve[-1], seconds=time.time() - start, variant=spec["variant"],
                                     method=spec["method"], density=run_density(spec, args),
                                     local_steps=local_steps, mu=mu, residual_decay=decay,
                                     outer=spec.get("outer", "momentum"), inner=spec.get("inner"),
                                     mean_acc=sum(c["test_acc"] for c in curve) / len(curve))
    add_bytes_to_target(results, args.target_gap)
    return results


def add_bytes_to_target(results, gap):
    """Each run's bytes when it first reached sync-sgd's final accuracy minus gap (None: never);
    nothing without a sync-sgd run."""
    sync = results["runs"].get("sync-sgd")
    if sync is None:
        return
    target = sync["final"]["test_acc"] - gap
    results["target_acc"] = target
    for r in results["runs"].values():
        r["bytes_to_target"] = next((c["bytes"] for c in r["curve"] if c["test_acc"] >= target), None)


def mean_std(values):
    """Mean and sample standard deviation (0 for one value); None when any value is None."""
    if any(v is None for v in values):
        return None, None
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def summarise(per_seed, names):
    """Per run, over the seeds: final accuracy, its gap to sync-sgd, bytes, bytes to target."""
    out = {}
    for name in names:
        runs = [per_seed[s]["runs"][name] for s in per_seed]
        entry = dict(final_acc=mean_std([r["final"]["test_acc"] for r in runs]),
                     bytes=mean_std([r["final"]["bytes"] for r in runs]),
                     bytes_to_target=mean_std([r.get("bytes_to_target") for r in runs]),
                     reached=sum(r.get("bytes_to_target") is not None for r in runs), seeds=len(runs))
        if all("sync-sgd" in per_seed[s]["runs"] for s in per_seed):
            entry["gap_to_sync"] = mean_std([per_seed[s]["runs"]["sync-sgd"]["final"]["test_acc"]
                                             - per_seed[s]["runs"][name]["final"]["test_acc"] for s in per_seed])
            entry["fewer_bytes_than_sync"] = (per_seed[next(iter(per_seed))]["runs"]["sync-sgd"]["final"]["bytes"]
                                              / runs[0]["final"]["bytes"])
        out[name] = entry
    return out


def pm(pair, scale=1.0, spec=".2f"):
    mean, std = pair
    return "-" if mean is None else f"{format(mean * scale, spec)} ± {format(std * scale, spec)}"


def report_summary(problem, results, args):
    seeds = ",".join(str(s) for s in results["seeds"])
    print(f"\n{problem.name}, over seeds {seeds} ({args.split} split): mean ± sample std")
    print(f"{'run':<15} {'final acc %':>14} {'gap to sync':>14} {'MB sent/rank':>12} {'x fewer':>8} "
          f"{'MB to target':>16} {'reached':>7}")
    for name, e in results["summary"].items():
        fewer = e.get("fewer_bytes_than_sync")
        print(f"{name:<15} {pm(e['final_acc']):>14} {pm(e.get('gap_to_sync', (None, None))):>14} "
              f"{e['bytes'][0] / 1e6:>12.3f} {fmt(fewer, '.0f'):>8} {pm(e['bytes_to_target'], 1e-6, '.3f'):>16} "
              f"{e['reached']}/{e['seeds']:<5}")
    sys.stdout.flush()
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "summary.json"), "w") as f:
            json.dump(results, f, indent=1)


def report(problem, results, args, figure=True):
    print(f"\nlocal steps on {problem.name}: {results['nranks']} ranks, {problem.split_name(args)}, "
          f"{args.steps} steps of batch {args.batch}/rank, H {args.local_steps}, lr {args.lr}, momenta "
          f"{args.momentum}/{args.server_momentum}, fusion {args.fusion}, seed {args.seed}")
    problem.report_data(results)
    print(f"{'run':<15} {'variant':<24} {'method':<12} {'H':>2} {'mu':>3} {'decay':>5} {'rounds':>6} {'test acc %':>10} "
          f"{'mean acc %':>10} {'MB sent/rank':>12} {'MB to target':>12} {'time s':>7}")
    for name, r in results["runs"].items():
        f = r["final"]
        to_target = r.get("bytes_to_target")
        print(f"{name:<15} {r['variant']:<24} {r['method']:<12} {r['local_steps']:>2} {r['mu']:>3} "
              f"{r['residual_decay']:>5} {f['rounds']:>6} "
              f"{fmt(f['test_acc']):>10} {fmt(r['mean_acc']):>10} {f['bytes'] / 1e6:>12.3f} "
              f"{'-' if to_target is None else format(to_target / 1e6, '.3f'):>12} {r['seconds']:>7.1f}")
    sys.stdout.flush()
    if not args.out or not figure:
        return
    fig, (ax1, ax2) = write_json_open_figure(args.out, results)
    for name, r in results["runs"].items():
        ax1.plot([c["step"] for c in r["curve"]], [c["test_acc"] for c in r["curve"]], label=name)
        ax2.plot([max(c["bytes"], 1) / 1e6 for c in r["curve"]], [c["test_acc"] for c in r["curve"]], label=name)
    ax1.set(xlabel="local step", ylabel="test accuracy (%)", ylim=problem.acc_range)
    ax2.set(xlabel="MB sent per rank", ylabel="test accuracy (%)", ylim=problem.acc_range, xscale="log")
    ax1.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "curves.png"), dpi=100)
