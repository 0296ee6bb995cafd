"""The interpreter and the generated kernels agree with each other and with the
reference on edges, strides and borders (every operator: test_operators.py);
serial and parallel agree; and several Python threads may compute at once."""

import threading
import weakref

import numpy as np
import pytest

import stencils as st
from stencils import _engine
from stencils import _reference as ref


@pytest.mark.parametrize("engine", ["interpreter", "generated"])
def test_serial_and_parallel_agree(engine):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 67, 129))
    s = st.make_stencil((2, 3, 5), (1, 1, 2), lambda g: np.maximum(g(0, -1, 2), g(-1, 1, -2))
                        + 0.5 * g(0, 0, 0))
    w = st.map_stencil(st.Reflect, s, a)
    with st.config(engine=engine):
        serial = w._run((1, 1, 1), None, parallel=False)
        parallel = w._run((1, 1, 1), None, parallel=True)
        strided = w._run((1, 2, 3), None, parallel=True)
    np.testing.assert_array_equal(serial, parallel)
    np.testing.assert_array_equal(strided, serial[:, ::2, ::3])
    want = ref.apply(s, a, s.center, [sz - c - 1 for sz, c in zip(s.size, s.center)], st.Reflect)
    np.testing.assert_allclose(serial, want, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("team", [True, False])
def test_interpreter_on_the_team_and_the_queue_agrees_with_one_thread(team, monkeypatch):
    # Tier 0's entry point claims pieces of a call's blocks from the block's
    # counter: on the team of spinning helpers (once its kernels are compiled)
    # or through the helper queue, every thread gets its own scratch, and the
    # result is the one thread's, bit for bit.
    _engine.prepare_team(np.float32)
    if not team:
        monkeypatch.setattr(_engine, "_team_ready", lambda: False)
    rng = np.random.default_rng(8)
    pool = rng.standard_normal((64, 6, 28, 28)).astype(np.float32)
    pool[3, 2, 5, 7], pool[9, 1, 0, 0] = np.nan, -0.0
    cube = rng.standard_normal((5, 40, 70)).astype(np.float32)
    s3 = st.make_stencil((2, 3, 3), (0, 1, 1), lambda g: np.maximum(g(0, 0, 0), g(1, -1, 1))
                         - 0.5 * g(0, 1, -1))
    cases = [(st.max_stencil((1, 1, 2, 2)), pool, st.Padding((0,) * 4, (0,) * 4, st.Edge),
              (1, 1, 2, 2)),
             (s3, cube, st.Padding((0, 1, 1), (1, 1, 1), st.Reflect), (1, 1, 1))]
    with st.config(engine="interpreter"):
        for stencil, array, padding, stride in cases:
            w = st.apply_stencil(padding, stencil, array)
            serial = w._run(stride, None, parallel=False)
            parallel = w._run(stride, None, parallel=True)
            np.testing.assert_array_equal(parallel.view(np.int32), serial.view(np.int32))
    assert _engine._team_ready() is team


def _engines_agree(stencil, array, padding, stride):
    w = st.apply_stencil(padding, stencil, array)
    with st.config(engine="interpreter"):
        want = w._run(stride, None, parallel=False)
    with st.config(engine="generated"):
        for parallel in (False, True):
            # Not bit-equal: a sum's terms may be added in another order.
            np.testing.assert_allclose(w._run(stride, None, parallel=parallel), want,
                                       rtol=1e-13, atol=1e-13,
                                       err_msg=f"{padding.border}, stride {stride}")


@pytest.mark.parametrize("stride", [(1, 1), (2, 2), (2, 3), (1, 1000)])
def test_generated_edges_on_large_arrays(stride):
    # The generated kernels compute edge columns, and whole rows that meet a Fill
    # row, from pieces queued in a buffer that is flushed when full: arrays big
    # enough for many flushes and for rows longer than one piece (256 points).
    rng = np.random.default_rng(6)
    a = rng.standard_normal((700, 600))
    s = st.make_correlation_stencil_from_kernel(rng.standard_normal((5, 5)))
    for border in (st.Fill(1.5), st.Wrap, st.Edge, st.Reflect, st.Continue, "mirror"):
        _engines_agree(s, a, st.Padding((3, 4), (2, 5), border), stride)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("step", [1, 2, 3])
def test_interpreter_rows_of_every_length(dtype, step):
    # Output rows of 1 to 40 points: runs under 16 bytes (scalar loops), short
    # runs as whole vectors, the last one overlapping (stencils._kernels_simd),
    # and long runs; weighted sums of several taps and a max; rows with edge
    # columns and Fill rows beside wholly interior ones; stride-2 reads of the
    # array's last row, whose vector pass would read past its end.
    rng = np.random.default_rng(step)
    stencils = (st.make_correlation_stencil_from_kernel(rng.standard_normal((2, 3))),
                st.max_stencil((2, 2)))
    for width in range(1, 42 * step, step):
        a = rng.standard_normal((5, width + 2)).astype(dtype)
        a[1, 0], a[2, -1], a[3, width // 2] = np.nan, -0.0, np.inf
        for s in stencils:
            for padding in (st.Padding((0, 0), (0, 0), st.Edge),
                            st.Padding((1, 1), (0, 2), st.Fill(0.5))):
                if any(n + lo + hi < k for n, lo, hi, k in zip(
                        a.shape, padding.from_origin, padding.from_bottom, s.size)):
                    continue
                with st.config(engine="interpreter"):
                    got = st.apply_stencil(padding, s, a)._run((1, step), None, parallel=False)
                want = ref.apply(s, a, padding.from_origin, padding.from_bottom, padding.border,
                                 (1, step))
                np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == np.float32 else 1e-14,
                                           atol=0, err_msg=f"width {width}, {padding}")
                numbers = ~np.isnan(want)
                assert np.array_equal(np.signbit(got[numbers]), np.signbit(want[numbers]))


def test_generated_edges_nonlinear_3d_and_wide_kernel():
    rng = np.random.default_rng(7)
    a = rng.standard_normal((3, 40, 1100))
    s = st.max_stencil((3, 3, 3)) - 0.25 * st.sum_stencil((3, 3, 3))
    _engines_agree(s, a, st.Padding((1, 2, 1), (2, 0, 3), st.Fill(0.0)), (1, 1, 1))
    big = st.make_correlation_stencil_from_kernel(rng.standard_normal((11, 11)))
    _engines_agree(big, a[0, :, :300], st.Padding((6, 7), (5, 4), st.Fill(0.0)), (1, 2))


def test_threads_computing_at_once_give_the_serial_results():
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((300, 301)) for _ in range(4)]
    kernels = [rng.standard_normal((k, k)) for k in (2, 3, 4, 5)]
    modes = ["reflect", "wrap", "constant", "mirror"]
    want = [st.correlate(a, k, mode=m) for a, k, m in zip(arrays, kernels, modes)]
    got = [None] * 4
    errors = []

    def work(i):
        try:
            for _ in range(5):
                got[i] = st.correlate(arrays[i], kernels[i], mode=modes[i])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_parallel_call_lets_go_of_its_arrays():
    # Once run_parallel returns, no helper holds the call's function or what it
    # closes over, even a helper that takes its job after every part is done:
    # an output dropped by its caller is freed there and then.
    for _ in range(20):
        out = np.zeros(1000)
        freed = weakref.ref(out)

        def fill(part, out=out):
            out[part::2] = part

        _engine.run_parallel(fill, [0, 1, 0, 1], 2)
        assert out[:4].tolist() == [0.0, 1.0, 0.0, 1.0]
        del out, fill
        assert freed() is None


def test_parallel_call_raises_a_part_s_error():
    def fail(part):
        if part == 3:
            raise ValueError("part 3")

    with pytest.raises(ValueError, match="part 3"):
        _engine.run_parallel(fail, list(range(8)), 2)


def test_out_may_alias_the_input():
    a = np.arange(10.0)
    want = st.compute(st.map_stencil(st.Edge, st.sum_stencil(3), a))
    st.compute(st.map_stencil(st.Edge, st.sum_stencil(3), a), out=a)
    np.testing.assert_array_equal(a, want)


def test_non_contiguous_and_fortran_inputs():
    rng = np.random.default_rng(2)
    base = rng.standard_normal((20, 30))
    k = rng.standard_normal((3, 4))
    for view in (base[::2, ::-3], np.asfortranarray(base), base.T):
        np.testing.assert_array_equal(st.correlate(view, k), st.correlate(view.copy(), k))


def test_repeated_calls_never_recompile():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((40, 50)).astype(np.float32)
    s = st.make_correlation_stencil_from_kernel(rng.standard_normal((3, 3)))
    with st.config(engine="generated"):
        st.compute(st.map_stencil(st.Wrap, s, a))
        module = _engine.compile_stencil(s, np.float32)
        before = len(module.kernel.signatures)
        structures = len(_engine._STRUCTURES)
        # Other weights, border and size: the same compiled kernel.
        s2 = st.make_correlation_stencil_from_kernel(rng.standard_normal((3, 3)))
        for border in (st.Edge, st.Fill(2), "mirror"):
            st.compute(st.map_stencil(border, s2, a[:, :17]))
            st.compute(st.map_stencil(border, s, a))
        after = len(module.kernel.signatures)
    assert after == before
    assert len(_engine._STRUCTURES) == structures
    assert _engine.compile_stencil(s2, np.float32) is module


def test_interpreter_serves_many_stencils_with_one_compile():
    def compiled():  # the interpreter's two builds (with and without operators), per dtype
        return len(_engine._TIER0_ENTRIES)

    a = np.random.default_rng(6).standard_normal((7, 9))
    st.compute(st.map_stencil(st.Edge, st.sum_stencil((2, 2)), a))
    absolute = st.make_stencil((1, 1), (0, 0), lambda g: np.abs(g(0, 0)))
    st.compute(st.map_stencil(st.Edge, absolute, a))
    before = compiled()
    for k in range(1, 5):
        s = st.make_stencil((k, k), (0, 0), lambda g, k=k: np.maximum(g(0, 0), g(k - 1, k - 1)) * k)
        st.compute(st.map_stencil(st.Reflect, s, a))
        st.compute(st.map_stencil(st.Reflect, st.sum_stencil((k, k)), a))
    assert compiled() == before
