"""massiv's known pitfalls, pinned: asymmetric offsets (#12), even kernels (#72),
out-of-bounds reads (#109), strided windows (#31/#33), higher ranks (#142)."""

import numpy as np
import pytest

import stencils as st

GRID = np.arange(1.0, 10.0).reshape(3, 3)


@pytest.mark.parametrize("offset, want", [
    ((0, 1), [[2, 3, 0], [5, 6, 0], [8, 9, 0]]),
    ((1, 0), [[4, 5, 6], [7, 8, 9], [0, 0, 0]]),
    ((0, -1), [[0, 1, 2], [0, 4, 5], [0, 7, 8]]),
    ((-1, 0), [[0, 0, 0], [1, 2, 3], [4, 5, 6]]),
])
def test_gh12_offsets_point_the_right_way(offset, want):
    s = st.make_stencil((3, 3), (1, 1), lambda get: get(*offset))
    np.testing.assert_array_equal(st.compute(st.map_stencil(st.Fill(0), s, GRID)), want)


def test_gh12_corner_centre_reads_far_corner():
    s = st.make_stencil((3, 3), (0, 0), lambda get: get(2, 2))
    got = st.compute(st.map_stencil(st.Fill(0), s, GRID))
    assert got[0, 0] == 9 and np.count_nonzero(got) == 1


@pytest.mark.parametrize("kernel, conv, corr", [
    ([1, 2, 3], [4, 10, 16, 22, 22], [8, 14, 20, 26, 14]),
    ([1, 2, 3, 4], [10, 20, 30, 34, 31], [11, 20, 30, 40, 26]),
    ([1, 2], [4, 7, 10, 13, 10], [2, 5, 8, 11, 14]),
])
def test_gh72_even_kernels(kernel, conv, corr):
    ys = np.arange(1.0, 6.0)
    c = st.make_convolution_stencil_from_kernel(kernel)
    r = st.make_correlation_stencil_from_kernel(kernel)
    np.testing.assert_array_equal(st.compute(st.map_stencil(st.Fill(0), c, ys)), conv)
    np.testing.assert_array_equal(st.compute(st.map_stencil(st.Fill(0), r, ys)), corr)


def test_gh72_full_convolution_has_length_n_plus_m_minus_1():
    ys = np.arange(1.0, 6.0)
    k = [1, 2, 3, 4]
    full = st.compute(st.apply_stencil(st.Padding(3, 3, st.Fill(0)),
                                       st.make_convolution_stencil_from_kernel(k), ys))
    np.testing.assert_array_equal(full, np.convolve(ys, k, mode="full"))


def test_gh109_arrays_smaller_than_the_stencil_read_through_the_border():
    s = st.sum_stencil(5)
    np.testing.assert_array_equal(st.compute(st.map_stencil(st.Edge, s, [1.0, 2.0])), [9, 10])
    np.testing.assert_array_equal(st.compute(st.map_stencil(st.Reflect, s, [1.0, 2.0])), [8, 8])
    assert st.compute(st.apply_stencil(st.no_padding, s, [1.0, 2.0])).shape == (0,)


def test_gh31_strided_convolution_keeps_origin_points():
    k = np.array([[-1, 0, 1], [0, 1, 0], [-1, 0, 1]])
    w = st.map_stencil(st.Fill(0), st.make_convolution_stencil_from_kernel(k),
                       np.arange(1.0, 26.0).reshape(5, 5))
    np.testing.assert_array_equal(st.compute_with_stride(2, w),
                                  [[-6, 1, 14], [-13, 9, 43], [4, 21, 44]])


def test_pooling_doctest_form():
    a = (np.arange(9)[:, None] * 9 + np.arange(9)[None, :] + 10).astype(float)
    got = st.compute_with_stride(3, st.map_stencil(st.Edge, st.max_stencil((3, 3)), a))
    np.testing.assert_array_equal(got, a[2::3, 2::3])


@pytest.mark.parametrize("ndim", [1, 2, 3, 4])
def test_every_rank_matches_scipy(ndim):
    ndi = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(ndim)
    a = rng.integers(-9, 10, size=(5, 6, 4, 3)[:ndim]).astype(float)
    k = rng.integers(-3, 4, size=(3, 2, 3, 2)[:ndim]).astype(float)
    for mode in ("constant", "nearest", "reflect", "mirror", "wrap"):
        np.testing.assert_array_equal(st.correlate(a, k, mode=mode), ndi.correlate(a, k, mode=mode))
        np.testing.assert_array_equal(st.convolve(a, k, mode=mode), ndi.convolve(a, k, mode=mode))
