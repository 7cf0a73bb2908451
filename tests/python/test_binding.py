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


def test_state_info_reports_the_method_table(comm):
    """State.info is spcclStateGetInfo: payload kinds and wire bytes as the library's table
    states them (a ring allreduce of the packed values; an allgather of k 8-byte slots)."""
    P = comm.size
    st = spccl.State(comm, spccl.Config(method="randomblock", density=0.25, block_size=4), 64)
    info = st.info()
    assert (info.method, info.payload, info.count, info.selected) == ("randomblock", "values", 64, 16)
    assert info.wire_bytes == 2 * (P - 1) * 16 * 4 // P
    assert info.dense_wire_bytes == 2 * (P - 1) * 64 * 4 // P
    assert info.rounds == 2 * (P - 1) and info.memory_passes > 0
    topk = spccl.State(comm, spccl.Config(method="topk", density=1 / 16, dense_switch=0), 64).info()
    assert (topk.payload, topk.selected, topk.method_wire_bytes) == ("slots", 4, (P - 1) * 4 * 8)
    assert {spccl.payload_of(m) for m in spccl.METHODS} == set(spccl.PAYLOADS.values())
    assert spccl.payload_of("gtopk") == "rounds" and spccl.payload_of("dense") == "values"
    with pytest.raises(ValueError, match="unknown method"):
        spccl.payload_of("nosuch")


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


def test_qtopk_value_bits_reach_the_library_and_size_its_wire(comm):
    """Config.value_bits is spcclConfig_t.valueBits: resolved back, refused outside [2, 8] by the
    library, and it sizes qtopk's packed payload: 4 chunks of 64 with 4 slots of 6 + 3 bits
    (144 bits: 3 words) after 4 exponents (8 bytes), 32 bytes allgathered to P-1 peers."""
    st = spccl.State(comm, spccl.Config(method="qtopk", density=1 / 16, block_size=64, value_bits=3), 256)
    assert st.config.value_bits == 3
    info = st.info()
    assert (info.method, info.selected, info.wire_bytes) == ("qtopk", 16, (comm.size - 1) * 32)
    assert spccl.State(comm, spccl.Config(method="qtopk"), 64).config.value_bits == 2  # the default
    with pytest.raises(spccl.SpcclError, match=r"valueBits 9 is outside \[2, 8\]"):
        spccl.State(comm, spccl.Config(method="qtopk", value_bits=9), 64)


def test_auto_calibrates_then_every_rank_runs_the_same_choice_with_exact_feedback(world, comm):
    """Config(auto=True) on spccl's collective: call 0 runs the method, calls 1-6 dense (odd)
    and the method in turn, then
    every rank runs what the summed timings chose, and State.info says beforehand which. At
    every call c + e_new == g + e_old, where c is what this rank sent (whole coordinates: kept
    or sent, never split), the output is the sum of every rank's c, and a dense call empties
    the residual. auto=2 is refused where it is given."""
    count = 4096
    st = spccl.State(comm, spccl.Config(method="topk", density=1 / 16, feedback="ef", auto=True), count, np.float32)
    assert st.config.auto is True
    dense_after = []
    for step in range(10):
        dense = st.info().dense_switched
        if step < 7:
            assert dense == (step % 2 == 1), f"call {step}"
        g = local_grad(comm.rank, count, step, np.float32)
        before = st.residual.copy()
        out = np.empty_like(g)
        st.sparse_allreduce(g, out, op="sum")
        after = st.residual
        kept = after != 0
        np.testing.assert_array_equal(after[kept], (g + before)[kept])
        sent = np.where(kept, 0, g + before)
        np.testing.assert_array_equal(out, allsum(world, sent).astype(np.float32))
        if dense:
            assert not kept.any(), f"dense call {step} kept a residual"
        if step >= 7:
            dense_after.append(dense)
    assert len(set(world.allgather(tuple(dense_after)))) == 1, "every rank runs the same choice"
    with pytest.raises(ValueError, match=r"Config.auto 2 is outside \[0, 1\]"):
        spccl.Config(auto=2)


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
    with pytest.raises(ValueError, match="Config.density is nan; it must be finite"):
        spccl.Config(density=float("nan"))
    with pytest.raises(TypeError, match="Config.block_size must be an integer, not bool_"):
        spccl.Config(block_size=np.True_)
    assert spccl.Config(seed=2**64 - 2, block_size=2**31 - 1).to_c().seed == 2**64 - 2


def test_argument_checks_hold_on_random_arguments(comm):
    """Random sizes, dtypes and layouts for every buffer argument (the same on every rank, so
    the collective calls stay matched), judged by the documented rules, written out here:
    every well-formed call succeeds and advances the step as documented; every other raises
    and leaves the state alone; none writes past the end of a buffer (a guard zone after each
    one keeps its sentinel)."""
    rng = np.random.default_rng(2026)  # identical on every rank
    st = spccl.State(comm, spccl.Config(**CFG), 64, np.float32)
    n = st.compressed_count()
    dtypes = [np.float16, np.float32, np.float64, np.int32]
    flaws = [None, None, None, "read-only", "byte-swapped", "strided"]

    def guarded(size, dtype, flaw):
        """(the buffer, its guard zone, whether spccl may read it, whether it may write it)."""
        dt = np.dtype(dtype).newbyteorder(">") if flaw == "byte-swapped" else np.dtype(dtype)
        stride = 2 if flaw == "strided" else 1
        whole = np.full(stride * size + 16, 7, dt)
        buf, guard = whole[:stride * size:stride], whole[stride * size:]
        if flaw == "read-only":
            buf.flags.writeable = False
        readable = flaw not in ("byte-swapped", "strided") or size <= 1  # one element is contiguous
        readable = readable and (flaw != "byte-swapped" or dt.isnative)
        return buf, guard, readable, readable and flaw != "read-only"

    def is_(buf, dtype, size):
        return buf.dtype == np.dtype(dtype) and buf.size == size

    # call -> (the call, is it well formed, does it advance the step)
    def calls(a, b, c):
        (a, _, a_read, _), (b, _, b_read, b_write), (c, _, _, c_write) = a, b, c
        f32 = np.float32
        return [
            (lambda: st.sparse_allreduce(a, b), a_read and b_write and is_(a, f32, 64) and is_(b, f32, 64), True),
            (lambda: st.compress(a, b), a_read and b_write and is_(a, f32, 64) and b.dtype == f32 and b.size >= n,
             True),
            (lambda: st.decompress(b, 0, c), b_read and c_write and is_(b, f32, n) and is_(c, f32, 64), False),
            (lambda: comm.allreduce(a, b), a_read and b_write and a.dtype == b.dtype and a.dtype != np.int32
             and a.size == b.size, False),
        ]

    def draw(size, dtype):
        """Mostly the size and dtype the call wants, sometimes another; mostly plain memory."""
        if rng.random() < 0.15:
            size = int(rng.choice([0, 1, n - 1, n, 63, 64, 65, 1000]))
        if rng.random() < 0.15:
            dtype = dtypes[int(rng.integers(len(dtypes)))]
        flaw = flaws[int(rng.integers(len(flaws)))] if rng.random() < 0.2 else None
        return size, dtype, flaw

    outcomes = {True: 0, False: 0}
    for _ in range(200):
        pick = int(rng.integers(4))
        k, dt = int(rng.choice([0, 1, 64, 1000])), dtypes[int(rng.integers(3))]  # allreduce: any float size
        wanted = [[(64, np.float32), (64, np.float32), (64, np.float32)],
                  [(64, np.float32), (n, np.float32), (64, np.float32)],
                  [(64, np.float32), (n, np.float32), (64, np.float32)],
                  [(k, dt), (k, dt), (64, np.float32)]][pick]
        sizes, types, layout = zip(*(draw(size, dtype) for size, dtype in wanted))
        bufs = [guarded(s, t, f) for s, t, f in zip(sizes, types, layout)]
        call, well_formed, advances = calls(*bufs)[pick]
        before = st.step
        what = f"sizes {sizes}, dtypes {[t.__name__ for t in types]}, layouts {layout}"
        if well_formed:
            call()
        else:
            with pytest.raises((TypeError, ValueError, spccl.SpcclError)):
                call()
        assert st.step == before + (well_formed and advances), what
        for _, guard, _, _ in bufs:
            assert (guard == 7).all(), f"a call wrote past a buffer: {what}"
        outcomes[well_formed] += 1
    assert min(outcomes.values()) >= 20, outcomes  # both kinds were tried often


def test_compress_refuses_read_only_outputs(comm):
    """spcclCompress writes values and indices: a read-only array (here a view of an immutable
    bytes object) is refused, and the bytes stay what they were."""
    st = spccl.State(comm, spccl.Config(method="topk", density=0.25), 64, np.float32)
    n = st.compressed_count()
    frozen = bytes(4 * n)
    indices = np.frombuffer(frozen, dtype=np.int32)
    with pytest.raises(ValueError, match="indices is read-only"):
        st.compress(np.arange(64, dtype=np.float32), np.zeros(n, np.float32), indices)
    values = np.zeros(n, np.float32)
    values.flags.writeable = False
    with pytest.raises(ValueError, match="values is read-only"):
        st.compress(np.arange(64, dtype=np.float32), values, np.zeros(n, np.int32))
    assert frozen == bytes(4 * n) and st.step == 0 and not st.residual.any()


def test_residual_view_keeps_its_state_alive(comm):
    """A residual view keeps the state's memory: after its State is collected, or closed, the
    view still shows its own residual, and writing through it changes no other state."""
    cfg = spccl.Config(method="randomblock", density=0.25, block_size=4, feedback="ef")
    for end in ("collect", "close"):
        st = spccl.State(comm, cfg, 256, np.float32)
        st.restore(0, np.arange(256, dtype=np.float32))
        view = st.residual
        if end == "close":
            st.close()
            with pytest.raises(spccl.SpcclError, match="used after close"):
                st.residual
        del st
        newer = [spccl.State(comm, cfg, 256, np.float32) for _ in range(4)]  # reuse freed memory if any
        np.testing.assert_array_equal(view, np.arange(256, dtype=np.float32))
        view[:] = -1
        assert all(not s.residual.any() for s in newer), f"{end}: a stale view wrote into a newer state"
        del view


def test_integer_arguments_are_range_checked(comm):
    """ctypes would wrap these silently (2**32 + 2 ranks are 2, step -1 is 2**64 - 1, 3.9 is
    3); every one is refused, and nothing reaches the library."""
    with pytest.raises(ValueError, match=r"Comm.local size 4294967298 is outside \[-2147483648, 2147483647\]"):
        spccl.Comm.local(2**32 + 2, 1)
    with pytest.raises(ValueError, match="Comm.local rank 4294967296 is outside"):
        spccl.Comm.local(2, 2**32)
    with pytest.raises(TypeError, match="Comm.local rank must be an integer, not bool"):
        spccl.Comm.local(2, True)
    with pytest.raises(ValueError, match="State count 18446744073709551626 is outside"):
        spccl.State(comm, spccl.Config(**CFG), 2**64 + 10, np.float32)
    with pytest.raises(TypeError, match="State count must be an integer, not float"):
        spccl.State(comm, spccl.Config(**CFG), 10.0, np.float32)
    st = spccl.State(comm, spccl.Config(**CFG), 64, np.float32)
    g = np.ones(64, np.float32)
    with pytest.raises(ValueError, match="op 4294967300 is outside"):
        st.sparse_allreduce(g, op=2**32 + 4)
    with pytest.raises(ValueError, match="op 4294967300 is outside"):
        comm.allreduce(g, op=2**32 + 4)
    for step in (-1, 2**64 + 5):
        with pytest.raises(ValueError, match=f"restore step {step} is outside"):
            st.restore(step)
        with pytest.raises(ValueError, match=f"block_selection step {step} is outside"):
            st.block_selection(step)
    with pytest.raises(TypeError, match="restore step must be an integer, not float"):
        st.restore(3.9)
    with pytest.raises(TypeError, match="block_selection step must be an integer, not float"):
        st.block_selection(1.0)
    with pytest.raises(TypeError, match="scale must be a number"):
        st.decompress(np.zeros(st.compressed_count(), np.float32), 0, np.zeros(64, np.float32), scale="half")
    assert st.step == 0 and not st.residual.any() and (g == 1).all()
    assert len(st.block_selection(2**64 - 1)) > 0  # the edges of the range are fine
    st.restore(2**64 - 1)
    assert st.step == 2**64 - 1


def test_buffers_must_be_plain_native_memory(comm):
    """What spccl reads must be the numbers the object shows: big-endian arrays, unaligned
    arrays and torch's lazy negated views are refused, not misread."""
    st = spccl.State(comm, spccl.Config(**CFG), 64, np.float32)
    swapped = np.ones(64, dtype=">f4")
    with pytest.raises(ValueError, match="sendbuf has byte order >f4"):
        st.sparse_allreduce(swapped, np.zeros(64, np.float32))
    with pytest.raises(ValueError, match="residual has byte order >f4"):
        st.restore(1, swapped)
    unaligned = np.frombuffer(bytearray(4 * 64 + 1), dtype=np.uint8)[1:].view(np.float32)
    with pytest.raises(ValueError, match="values is not aligned"):
        st.compress(np.ones(64, np.float32), unaligned)
    assert st.step == 0 and not st.residual.any()
    torch = require("torch", reason="torch is not installed")
    negated = torch.ones(64)._neg_view()
    with pytest.raises(ValueError, match="sendbuf is a lazy negated view"):
        st.sparse_allreduce(negated, torch.zeros(64))
    with pytest.raises(ValueError, match="residual is a lazy negated view"):
        st.restore(1, negated)
    assert st.step == 0 and not st.residual.any()
    st.restore(1, negated.resolve_neg())  # materialised: read as the -1 it shows
    assert (st.residual == -1).all()


def test_bfloat16_numpy_state_restores_its_own_residual(comm):
    """NumPy has no bfloat16: a bf16 state's NumPy residual is int16 words, and restore takes
    them back (and refuses words that are NaN or Inf)."""
    st = spccl.State(comm, spccl.Config(**CFG), 8, "bfloat16")
    words = np.array([0x3F80, 0xBF80, 0x4000, 0, 0x3F00, 0xC040, 0x0001, 0x7F7F], dtype=np.uint16).view(np.int16)
    st.restore(2, words)  # 1, -1, 2, 0, 0.5, -3, a subnormal, the largest finite
    saved = st.residual.copy()
    np.testing.assert_array_equal(saved, words)
    st.reset()
    st.restore(3, saved)
    np.testing.assert_array_equal(st.residual, words)
    for bad in (0x7FC0, 0x7F80, 0xFF80):  # NaN, +Inf, -Inf
        poisoned = saved.copy()
        poisoned[4] = np.uint16(bad).view(np.int16)
        with pytest.raises(ValueError, match="residual holds NaN or Inf"):
            st.restore(9, poisoned)
    assert st.step == 3
    np.testing.assert_array_equal(st.residual, words)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_restore_refuses_a_non_finite_residual(comm, bad):
    st = spccl.State(comm, spccl.Config(**CFG), 16, np.float64)
    st.restore(4, np.full(16, 0.5))
    poisoned = np.full(16, 0.25)
    poisoned[7] = bad
    with pytest.raises(ValueError, match="residual holds NaN or Inf"):
        st.restore(5, poisoned)
    assert st.step == 4 and (st.residual == 0.5).all()
