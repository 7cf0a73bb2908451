# SPDX-License-Identifier: Apache-2.0
"""Local steps (spccl_torch.LocalSGD) on a character language model of Python's own sources.

A second problem beside local_steps_digits.py, offline: the text is the interpreter's standard
library, the top-level *.py files of sysconfig's "stdlib" directory in sorted order,
concatenated, its first --chars characters (printable ASCII and newline are 96 symbols, every
other character one more). The model predicts the next character from the --context before
it: an embedding, a hidden ReLU layer and the logits (an MLP over the window). The text is cut
into pieces of 1000 characters; a seeded 1/8 of them are held out, and --test-positions of
their positions, drawn once per seed, are the test set. The training positions are split
among P MPI ranks i.i.d. (--split iid, an equal random share each), or by file (--split
files: each rank a contiguous quarter of the text, so its own modules).

The runs, the loop, the bytes and the reports are local_steps_common.py's (it says what each
run is); every run takes the same number of local steps with the same seeds, follows one
cosine learning-rate schedule, and talks only through spccl. Accuracy is next-character
accuracy of the global model on the test positions, about --evals times per run; the
results also give the unigram baseline (always the training text's most common character).
Run with:

    mpirun -np 4 python3 local_steps_charlm.py --runs sync-sgd,fedavg,domo,domo-q --out results/
    mpirun -np 4 python3 local_steps_charlm.py --seeds 0,1,2,3,4 --runs sync-sgd,domo-q

Prints a table (with several seeds: mean and sample standard deviation over them), writes
results.json and, for one seed, curves.png (accuracy against bytes sent) into --out."""
import glob
import os
import sys
import sysconfig

import torch

from mpi4py import MPI  # noqa: F401  (initialises MPI before spccl makes its comm)
import local_steps_common as common

VOCAB = 97     # 0: any other character, 1-95: ' ' to '~', 96: newline
PIECE = 1000   # characters per piece of the held-out split


def stdlib_text(chars):
    """The first `chars` characters of the stdlib's top-level *.py files (sorted), and the
    files that gave them."""
    text, files = [], []
    for path in sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py"))):
        with open(path, encoding="utf-8", errors="replace") as f:
            text.append(f.read())
        files.append(os.path.basename(path))
        if sum(map(len, text)) >= chars:
            break
    text = "".join(text)
    if len(text) < chars:
        raise SystemExit(f"the stdlib has {len(text)} characters of top-level *.py, fewer than --chars {chars}")
    return text[:chars], files


def encode(text):
    codes = torch.frombuffer(bytearray(text.encode("utf-32-le")), dtype=torch.int32).to(torch.int64)
    out = torch.zeros_like(codes)
    printable = (codes >= 32) & (codes < 127)
    out[printable] = codes[printable] - 31
    out[codes == 10] = 96
    return out


class CharLM(common.Problem):
    name = "charlm"
    description = __doc__.split("\n")[0]
    defaults = dict(steps=1600, batch=32, lr=0.1, evals=25, local_steps=8, q_local_steps=16, q_density=1 / 64)
    acc_range = (20, 70)

    def add_arguments(self, p):
        p.add_argument("--split", choices=("iid", "files"), default="iid")
        p.add_argument("--chars", type=int, default=300_000, help="characters of stdlib text")
        p.add_argument("--context", type=int, default=16, help="characters the model sees")
        p.add_argument("--embed", type=int, default=12, help="embedding width per character")
        p.add_argument("--hidden", type=int, default=96, help="hidden units")
        p.add_argument("--test-positions", type=int, default=8192, help="held-out positions evaluated")

    def load_data(self, args):
        """xtr: every window of --context characters (a view), ytr: the character after it;
        the training positions are kept for shards()."""
        text, self.files = stdlib_text(args.chars)
        codes = encode(text)
        windows, targets = codes.unfold(0, args.context, 1)[:-1], codes[args.context:]
        gen = torch.Generator().manual_seed(args.seed)
        pieces = (len(targets) + PIECE - 1) // PIECE
        held_out = torch.zeros(pieces, dtype=torch.bool)
        held_out[torch.randperm(pieces, generator=gen)[:pieces // 8]] = True
        test = held_out[torch.arange(len(targets)) // PIECE]
        self.train_positions = torch.nonzero(~test).flatten()
        test_positions = torch.nonzero(test).flatten()
        test_positions = test_positions[torch.randperm(len(test_positions), generator=gen)[:args.test_positions]]
        test_positions = test_positions.sort().values
        return windows, targets, windows[test_positions], targets[test_positions]

    def make_model(self, args):
        with torch.random.fork_rng():
            torch.manual_seed(args.seed)
            return torch.nn.Sequential(torch.nn.Embedding(VOCAB, args.embed), torch.nn.Flatten(),
                                       torch.nn.Linear(args.context * args.embed, args.hidden), torch.nn.ReLU(),
                                       torch.nn.Linear(args.hidden, VOCAB))

    def shards(self, args, data, nranks):
        train = self.train_positions
        if args.split == "files":
            return list(train.tensor_split(nranks))
        return [train[s] for s in common.iid_shards(len(train), nranks, args.seed)]

    def describe(self, args, data, shards):
        ytr, yte = data[1], data[3]
        common_char = torch.bincount(ytr[self.train_positions], minlength=VOCAB).argmax()
        return dict(unigram_acc=(yte == common_char).double().mean().item() * 100, files=self.files,
                    python=sys.version.split()[0], train_positions=len(self.train_positions),
                    params=sum(p.numel() for p in self.make_model(args).parameters()))

    def split_name(self, args):
        return "i.i.d. split" if args.split == "iid" else "split by file"

    def report_data(self, results):
        print(f"{len(results['files'])} stdlib files of Python {results['python']} ({results['files'][0]} to "
              f"{results['files'][-1]}), {results['train_positions']} training positions, "
              f"{results['test_samples']} test, {results['params']} parameters; "
              f"unigram baseline {results['unigram_acc']:.2f} %")


CHARLM = CharLM()


def main(argv=None):
    return common.main(CHARLM, argv)


if __name__ == "__main__":
    main()
