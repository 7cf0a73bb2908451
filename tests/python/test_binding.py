# SPDX-License-Identifier: Apache-2.0
"""The ctypes binding: sparse allreduce on NumPy and torch buffers against an mpi4py
reference, residual views, compress/decompress, and errors with the library's message."""
import numpy as np
import pytest
from conftest import allsum, random_block_reference, require

import spccl

CFG = dict(method="randomblock", density=0.3, block_size=4, block_pattern="scattered", feedback="ef", seed=77)


def local_grad(rank, count, step, dtype=np.float64):
    rng = np.random.default_rng(1000 * step + rank)
    return rng.integers(-8, 8, size=count).astype(dtype) / 4  # exact in every float type


@pytest.mark.parametrize("dtype,pipeline", [(np.float32, False), (np.float64, False), (np.float32, True)])
def test_numpy_sparse_allreduce_matches_reference(world, comm, dtype, pipeline):
    count = 50  # 13 blocks, the last one short
    st = spccl.State(comm, spccl.Config(pipeline=pipeline, **CFG), count, dtype)
    e = np.zeros(count)
    for step in range(4):
        g = local_grad(comm.rank, count, step, dtype)
        acc = g + e
        c = random_block_reference(acc, st.block_selection(step), 4)
        e = acc - c
        expected = allsum(world, c) / comm.size
        out = np.empty_like(g)
        st.sparse_allreduce(g, out, op="avg")
        np.testing.assert_allclose(out, expected, rtol=1e-6)
        np.testing.assert_array_equal(st.residual, e.astype(dtype))
        assert st.step == step + 1
    st.reset()
    assert st.step == 0 and not st.residual.any()
    st.close()


def test_torch_in_place_and_residual_view(world, comm):
    torch = require("torch", reason="torch is not installed (apt-get install python3-torch)")
    g = torch.tensor(local_grad(comm.rank, 40, 0, np.float32))
    st = spccl.State.like(comm, spccl.Config(**CFG), g)
    before = g.clone()
    out = spccl.sparse_allreduce(g, st, op="sum")  # in place
    assert out is g
    residual = st.residual
    assert isinstance(residual, torch.Tensor) and residual.device == g.device and residual.dtype == g.dtype
    # A view of the library's memory (no copy): c + e == g exactly.
    residual.add_(1)
    assert torch.equal(st.residual, residual)
    residual.sub_(1)
    sent = (before - residual).numpy()
    kept = residual.numpy()
    assert np.all((sent == 0) | (kept == 0))
    np.testing.assert_array_equal(out.numpy(), allsum(world, sent).astype(np.float32))


def test_compress_decompress_round_trip(comm):
    torch = require("torch", reason="torch is not installed")
    g = torch.tensor(local_grad(comm.rank, 64, 1, np.float32))
    st = spccl.State.like(comm, spccl.Config(**CFG), g)
    values = torch.empty(st.compressed_count())
    n, step = st.compress(g, values)
    assert (n, step) == (values.numel(), 0)
    out = st.decompress(values, step, torch.empty_like(g))
    np.testing.assert_array_equal((out + st.residual).numpy(), g.numpy())


def test_resolved_config_and_version(comm):
    st = spccl.State(comm, spccl.Config(method="randomblock", density=0.5), 10)
    cfg = st.config
    assert cfg.method == "randomblock" and cfg.density == 0.5 and cfg.block_size > 0
    assert spccl.version() >= 100


def test_library_errors_carry_code_and_message(comm):
    with pytest.raises(spccl.SpcclError) as err:
        spccl.State(comm, spccl.Config(density=1.5), 10)
    assert err.value.code == 4 and err.value.name == "spcclInvalidArgument"
    assert "density 1.5" in err.value.message and "density 1.5" in str(err.value)

    st = spccl.State(comm, spccl.Config(method="topk", density=0.5), 10)
    with pytest.raises(spccl.SpcclError) as err:
        st.block_selection(0)  # random block only
    assert err.value.code == 5 and err.value.name == "spcclInvalidUsage"
    assert err.value.message == "spcclBlockSelection : the state's method is topk, not randomblock"
    with pytest.raises(TypeError, match="sendbuf has dtype float64, expected float32"):
        st.sparse_allreduce(np.zeros(12))  # the state was made for 10 float32
    assert st.step == 0  # a failed call leaves the state alone


def test_python_side_argument_errors(comm):
    torch = require("torch", reason="torch is not installed")
    st = spccl.State(comm, spccl.Config(**CFG), 10)
    with pytest.raises(ValueError, match="contiguous"):
        st.sparse_allreduce(torch.zeros(20)[::2])
    with pytest.raises(TypeError, match="dtype int64"):
        st.sparse_allreduce(torch.zeros(10, dtype=torch.int64))
    with pytest.raises(ValueError, match="recvbuf requires grad"):
        st.sparse_allreduce(torch.zeros(10, requires_grad=True))  # in place into a leaf autograd tracks
    with pytest.raises(TypeError, match="torch.Tensor or numpy.ndarray"):
        st.sparse_allreduce([0.0] * 10)
    with pytest.raises(ValueError, match="unknown method 'top-k'"):
        spccl.Config(method="top-k")
    with pytest.raises(TypeError, match="spccl.Comm"):
        spccl.State(None, spccl.Config(), 10)
    st.close()
    with pytest.raises(spccl.SpcclError, match="used after close"):
        st.step


def test_every_buffer_is_checked_against_the_state(comm):
    """A buffer whose size or dtype differs from the state's is refused before the library
    gets its pointer: it would be read or written past its end (990 elements here)."""
    st = spccl.State(comm, spccl.Config(**CFG), 1000, np.float32)
    good = np.ones(1000, np.float32)
    with pytest.raises(ValueError, match="recvbuf holds 10 elements, expected 1000"):
        st.sparse_allreduce(good, np.zeros(10, np.float32))
    with pytest.raises(ValueError, match="sendbuf holds 10 elements, expected 1000"):
        st.sparse_allreduce(np.ones(10, np.float32), np.zeros(1000, np.float32))
    with pytest.raises(TypeError, match="recvbuf has dtype float64, expected float32"):
        st.sparse_allreduce(good, np.zeros(1000, np.float64))
    n = st.compressed_count()
    with pytest.raises(ValueError, match=f"values holds {n - 1} elements, expected at least {n}"):
        st.compress(good, np.zeros(n - 1, np.float32))
    with pytest.raises(TypeError, match="values has dtype float16, expected float32"):
        st.compress(good, np.zeros(n, np.float16))
    with pytest.raises(ValueError, match="sendbuf holds 999 elements"):
        st.compress(np.ones(999, np.float32), np.zeros(n, np.float32))
    values = np.zeros(n, np.float32)
    with pytest.raises(ValueError, match="recvbuf holds 10 elements, expected 1000"):
        st.decompress(values, 0, np.zeros(10, np.float32))
    with pytest.raises(ValueError, match=r"nvalues 5000 is outside \[0, %d\]" % n):
        st.decompress(values, 0, np.zeros(1000, np.float32), nvalues=5000)
    with pytest.raises(ValueError, match="step -1 is outside"):
        st.decompress(values, -1, np.zeros(1000, np.float32))
    with pytest.raises(ValueError, match="recvbuf holds 10 elements, expected 1000"):
        comm.allreduce(good, np.zeros(10, np.float32))
    with pytest.raises(TypeError, match="recvbuf has dtype float64"):
        comm.allreduce(good, np.zeros(1000, np.float64))
    assert st.step == 0 and not st.residual.any()  # nothing reached the library


def test_config_integers_are_range_checked():
    """ctypes would wrap 2**32 + 16 to 16 and -1 to the unset seed; they are refused instead."""
    with pytest.raises(ValueError, match=r"Config.block_size 4294967312 is outside \[-2147483647, 2147483647\]"):
        spccl.Config(block_size=2**32 + 16)
    with pytest.raises(ValueError, match=r"Config.seed -1 is outside \[0, 18446744073709551614\]"):
        spccl.Config(seed=-1)
    with pytest.raises(ValueError, match="Config.seed 18446744073709551615 is outside"):
        spccl.Config(seed=2**64 - 1)  # ~0 means "unset" in C
    with pytest.raises(ValueError, match="Config.tensor_key -1 is outside"):
        spccl.Config(tensor_key=-1)
    with pytest.raises(ValueError, match=r"Config.dense_switch 2 is outside \[0, 1\]"):
        spccl.Config(dense_switch=2)
    with pytest.raises(TypeError, match="Config.block_size must be an integer, not float"):
        spccl.Config(block_size=3.5)
    with pytest.raises(TypeError, match="Config.density must be a number"):
        spccl.Config(density="half")
    assert spccl.Config(seed=2**64 - 2, block_size=2**31 - 1).to_c().seed == 2**64 - 2


def test_argument_checks_hold_on_random_arguments(comm):
    """Random sizes and dtypes for every buffer argument (the same on every rank, so the
    collective calls stay matched): each call succeeds or raises, and never writes past the
    end of a buffer (a guard zone after each one keeps its sentinel)."""
    rng = np.random.default_rng(2026)  # identical on every rank
    st = spccl.State(comm, spccl.Config(**CFG), 64, np.float32)
    n = st.compressed_count()
    dtypes = [np.float16, np.float32, np.float64, np.int32]

    def guarded(size, dtype):
        whole = np.full(size + 16, 7, dtype)
        return whole[:size], whole[size:]

    for _ in range(60):
        sizes = [int(rng.choice([0, 1, n - 1, n, 63, 64, 65, 1000])) for _ in range(3)]
        types = [dtypes[int(rng.integers(len(dtypes)))] for _ in range(3)]
        (a, ga), (b, gb), (c, gc) = (guarded(s, t) for s, t in zip(sizes, types))
        calls = [lambda: st.sparse_allreduce(a, b), lambda: st.compress(a, b),
                 lambda: st.decompress(b, 0, c), lambda: comm.allreduce(a, b)]
        try:
            calls[int(rng.integers(len(calls)))]()
        except (TypeError, ValueError, spccl.SpcclError):
            pass
        for g in (ga, gb, gc):
            assert (g == 7).all(), f"a call wrote past a buffer: sizes {sizes}, dtypes {types}"
