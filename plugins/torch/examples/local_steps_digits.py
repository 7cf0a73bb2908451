# SPDX-License-Identifier: Apache-2.0
"""Local steps (spccl_torch.LocalSGD) on non-i.i.d. (or i.i.d.) shards of digits.

P MPI ranks train the MLP of convergence_digits.py; rank k sees only its Dirichlet(alpha)
share of every class (alpha = 0.1: mostly 2-3 classes per rank), or with --split iid an
equal random share. Every run takes the same number of local gradient steps with the same
seeds; all communication goes through spccl. The runs (sync-sgd, fedavg, fedavg-server,
fedavg-local, fedavg-slm, domo, diloco, domo-q, diloco-q, domo-rb, domo-rb16, domo-rb-ef,
domo-rb-nodecay), the loop, the bytes and the reports are local_steps_common.py's, which
says what each run is. Every run follows one cosine learning-rate schedule over the steps.

Accuracy is measured at the global model about 100 times per run. Bytes are what one rank
sends, as the library counts each round's payload (State.info); "to target" is the bytes sent
when the run first reached sync-sgd's final accuracy minus --target-gap points (in the same
seed), "-" when it never did. Run with:

    mpirun -np 4 python3 local_steps_digits.py --out results/
    mpirun -np 4 python3 local_steps_digits.py --seeds 0,1,2,3,4 --runs sync-sgd,domo --out results/

Prints a table (with several seeds: mean and sample standard deviation over them), writes
results.json and, for one seed, curves.png (accuracy against bytes sent) into --out."""
import torch

from mpi4py import MPI  # noqa: F401  (initialises MPI before spccl makes its comm)
import local_steps_common as common
from convergence_digits import load_data, make_model

RUNS, DEFAULT_RUNS = common.RUNS, common.DEFAULT_RUNS


class Digits(common.Problem):
    name = "digits"
    description = __doc__.split("\n")[0]

    def add_arguments(self, p):
        p.add_argument("--alpha", type=float, default=0.1, help="Dirichlet concentration of the split")
        p.add_argument("--split", choices=("dirichlet", "iid"), default="dirichlet")

    def load_data(self, args):
        return load_data(args.seed)

    def make_model(self, args):
        return make_model(args.seed)

    def shards(self, args, data, nranks):
        if args.split == "iid":
            return common.iid_shards(len(data[1]), nranks, args.seed)
        return common.dirichlet_shards(data[1], nranks, args.alpha, args.seed)

    def describe(self, args, data, shards):
        return dict(classes_per_rank=[class_counts(data[1][s]) for s in shards])

    def split_name(self, args):
        return f"Dirichlet alpha {args.alpha}" if args.split == "dirichlet" else "i.i.d. split"

    def report_data(self, results):
        print("main classes per rank:", results["classes_per_rank"])


def class_counts(labels):
    """{class: samples} of one rank's shard, the classes with at least 10% of it."""
    counts = torch.bincount(labels, minlength=10)
    return {int(c): int(n) for c, n in enumerate(counts) if n >= 0.1 * len(labels)}


DIGITS = Digits()


def main(argv=None):
    return common.main(DIGITS, argv)


if __name__ == "__main__":
    main()
