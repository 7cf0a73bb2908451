# SPDX-License-Identifier: Apache-2.0
"""Checkpoint and resume, nothing lost: 10 steps, save, fresh processes, load, 10 more
steps must equal 20 straight steps bit for bit (parameters, every bucket's residual and
step, on every rank), with SGD and with DEFSGD (momenta in the hook state too). A resume
into a DDP with another bucket_cap_mb, whose buckets hold other parameters than the saved
residuals belong to, must stop with a ValueError saying so. Runs resume_job.py under
torchrun four times per optimizer:

    run_resume.py TORCHRUN [NPROC]"""
import os
import subprocess
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def torchrun(torchrun_cmd, nproc, *args, check=True):
    cmd = [torchrun_cmd, "--standalone", f"--nproc-per-node={nproc}", os.path.join(HERE, "resume_job.py"), *args]
    run = subprocess.run(cmd, timeout=300, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if check and run.returncode != 0:
        sys.stdout.write(run.stdout)
        run.check_returncode()
    return run


def main():
    torchrun_cmd, nproc = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 2
    for optimizer in ([], ["--def"]):
        check_resume(torchrun_cmd, nproc, optimizer)
        print(f"resume {' '.join(optimizer) or 'SGD'}: {nproc} ranks, 10 + 10 steps equal 20 straight steps bit for bit")


def check_resume(torchrun_cmd, nproc, optimizer):
    with tempfile.TemporaryDirectory() as tmp:
        straight, resumed, ckpt = (os.path.join(tmp, d) for d in ("straight", "resumed", "ckpt"))
        os.makedirs(straight)
        os.makedirs(resumed)
        torchrun(torchrun_cmd, nproc, "20", straight, *optimizer)
        torchrun(torchrun_cmd, nproc, "10", tmp, "--save", ckpt, *optimizer)
        torchrun(torchrun_cmd, nproc, "10", resumed, "--load", ckpt, *optimizer)
        for rank in range(nproc):
            a = torch.load(os.path.join(straight, f"rank{rank}.pt"))
            b = torch.load(os.path.join(resumed, f"rank{rank}.pt"))
            assert a["steps"] == b["steps"], f"rank {rank}: bucket steps {a['steps']} != {b['steps']}"
            assert all(s > 0 for s in a["steps"].values()), "compression never ran"
            for i, (p, q) in enumerate(zip(a["params"], b["params"])):
                assert torch.equal(p, q), f"rank {rank}: parameter {i} differs after resume"
            for i in a["residuals"]:
                assert torch.equal(a["residuals"][i], b["residuals"][i]), f"rank {rank}: bucket {i} residual differs"
                assert torch.count_nonzero(a["residuals"][i]) > 0
                if optimizer:
                    assert torch.equal(a["momenta"][i], b["momenta"][i]), f"rank {rank}: bucket {i} momentum differs"
        # One bucket instead of the saved two: refused before a residual meets other parameters.
        other = torchrun(torchrun_cmd, nproc, "10", resumed, "--load", ckpt, "--bucket-cap-mb", "1", *optimizer,
                         check=False)
        refusal = "ValueError: SpcclHookState: bucket 0 now holds other parameters than its residual was made for"
        assert other.returncode != 0 and refusal in other.stdout and "bucket_cap_mb" in other.stdout, other.stdout
        if nproc > 1:  # each rank keeps its own residuals
            r0 = torch.load(os.path.join(straight, "rank0.pt"))["residuals"]
            r1 = torch.load(os.path.join(straight, "rank1.pt"))["residuals"]
            assert any(not torch.equal(r0[i], r1[i]) for i in r0), "ranks saved identical residuals"


if __name__ == "__main__":
    main()
