import numpy as np

import stencils as st

A = np.array([[1, 2], [3, 4], [5, 6]])


def test_downsample_keeps_multiples_of_the_stride():
    np.testing.assert_array_equal(st.downsample(st.Stride(2, 3), np.arange(1, 26).reshape(5, 5)),
                                  [[1, 4], [11, 14], [21, 24]])


def test_upsample_massiv_doctest():
    up = st.upsample(0, st.Stride(2, 3), A)
    assert up.shape == (6, 6)
    np.testing.assert_array_equal(up[::2, ::3], A)
    assert up.sum() == A.sum()
    np.testing.assert_array_equal(st.upsample(9, st.Stride(1, 2), A),
                                  [[1, 9, 2, 9], [3, 9, 4, 9], [5, 9, 6, 9]])


def test_zoom_with_grid_massiv_doctest():
    z = st.zoom_with_grid(0, st.Stride(2, 3), A)
    assert z.shape == (10, 9)
    assert (z[[0, 3, 6, 9], :] == 0).all() and (z[:, [0, 4, 8]] == 0).all()
    np.testing.assert_array_equal(z[1:3, 1:4], np.full((2, 3), 1))
    np.testing.assert_array_equal(z[7:9, 5:8], np.full((2, 3), 6))


def test_zoom_repeats_blocks_in_3d():
    a = np.arange(6).reshape(1, 3, 2)
    z = st.zoom(st.Stride(2, 2, 3), a)
    assert z.shape == (2, 6, 6)
    np.testing.assert_array_equal(z[1, 4:6, 3:6], np.full((2, 3), 5))


def test_stride_clamps_to_one():
    assert st.Stride(0) == st.Stride(1) and st.Stride(-3, 2) == st.Stride(1, 2)
