"""Stencils as values: construction, arithmetic (massiv's Num/Fractional/Floating with the
union-box rule), ufuncs, pickling, and one fused kernel per combined stencil."""

import pickle

import numpy as np
import pytest

import stencils as st
from stencils import _reference as ref

X = np.array([3.0, -1.0, 4.0, 1.0, -5.0, 9.0, 2.0])


def values(stencil, border=st.Edge, array=X):
    return st.compute(st.map_stencil(border, stencil, array))


def test_union_box_rule():
    s1 = st.make_stencil(2, 1, lambda get: get(-1))
    s2 = st.make_stencil(3, 0, lambda get: get(2))
    both = s1 + s2
    assert (both.size, both.center) == ((4,), (1,))
    np.testing.assert_array_equal(
        st.compute(st.map_stencil(st.Fill(0), both, np.arange(1.0, 7.0))), [3, 5, 7, 9, 4, 5])


@pytest.mark.parametrize("combine, elementwise", [
    (lambda a, b: a + b, np.add),
    (lambda a, b: a - b, np.subtract),
    (lambda a, b: a * b, np.multiply),
    (lambda a, b: a / b, np.divide),
    (lambda a, b: a ** 2 + b, lambda x, y: x ** 2 + y),
    (np.maximum, np.maximum),
    (np.hypot, np.hypot),
    (lambda a, b: np.where(a > b, a, -b), lambda x, y: np.where(x > y, x, -y)),
    (lambda a, b: np.clip(a, -1, b), lambda x, y: np.clip(x, -1, y)),
])
def test_arithmetic_on_stencils_is_arithmetic_on_their_results(combine, elementwise):
    a = st.make_stencil(3, 1, lambda get: get(-1) + 2 * get(1))
    b = st.sum_stencil(2)
    with np.errstate(all="ignore"):
        want = elementwise(values(a), values(b))
    np.testing.assert_allclose(values(combine(a, b)), want, rtol=1e-15)


@pytest.mark.parametrize("unary", [np.sqrt, np.exp, np.abs, np.negative, np.tanh, np.floor,
                                   lambda s: -s, abs, lambda s: 2 * s, lambda s: s / 4,
                                   lambda s: 1 - s])
def test_unary_and_scalar_operations(unary):
    s = st.avg_stencil(3)
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(values(unary(s)), unary(values(s)), rtol=1e-15)


def test_profunctor_maps():
    s = st.sum_stencil(2)
    np.testing.assert_array_equal(values(st.rmap_stencil(np.square, s)), values(s) ** 2)
    lm = values(st.lmap_stencil(np.square, s), st.Fill(-2))
    np.testing.assert_array_equal(lm, X ** 2 + np.append(X[1:], -2.0) ** 2)
    dm = st.dimap_stencil(np.abs, lambda y: y - 1, s)
    np.testing.assert_array_equal(values(dm, st.Fill(-2)), np.abs(X) + np.abs(np.append(X[1:], -2)) - 1)


def test_folds_visit_the_box_in_order():
    a = np.arange(11.0, 23.0).reshape(3, 4)
    left = st.foldl_stencil(lambda acc, x: acc * 100 + x, 0, (2, 2))
    right = st.foldr_stencil(lambda x, acc: acc * 100 + x, 0, (2, 2))
    got_l = st.compute(st.apply_stencil(st.no_padding, left, a))
    got_r = st.compute(st.apply_stencil(st.no_padding, right, a))
    assert got_l[0, 0] == ((11 * 100 + 12) * 100 + 15) * 100 + 16
    assert got_r[0, 0] == ((16 * 100 + 15) * 100 + 12) * 100 + 11


def test_stencils_pickle_and_keep_computing_the_same():
    s = np.maximum(st.max_stencil((3, 3)), st.avg_stencil((2, 2)) * 2) - 1
    s2 = pickle.loads(pickle.dumps(s))
    a = np.random.default_rng(0).standard_normal((9, 8))
    assert (s2.size, s2.center) == (s.size, s.center)
    np.testing.assert_array_equal(st.compute(st.map_stencil(st.Wrap, s2, a)),
                                  st.compute(st.map_stencil(st.Wrap, s, a)))


def test_borders_and_padding_are_values():
    assert st.Fill(0) == st.Fill(0.0) and st.Fill(np.nan) == st.Fill(np.nan)
    assert st.Fill(1) != st.Fill(2) and st.Wrap != st.Edge
    assert st.as_border("reflect") != st.Reflect  # scipy's rule is not massiv's
    assert len({st.Fill(0), st.Fill(0.0), st.Edge, st.Edge}) == 2
    assert pickle.loads(pickle.dumps(st.Fill(3))) == st.Fill(3)
    assert st.no_padding == st.Padding(0, 0, st.Edge)
    assert st.same_padding(st.make_convolution_stencil_from_kernel([1, 2, 3, 4]), st.Wrap) == \
        st.Padding((1,), (2,), st.Wrap)


def test_a_combined_stencil_is_one_expression_with_shared_reads():
    g = st.make_stencil(3, 1, lambda get: get(-1) * get(-1) + np.sqrt(abs(get(-1))))
    # get(-1) is read once: identical sub-expressions are shared.
    reads = [n for n in _nodes(g) if n.op == "read"]
    assert len(reads) == 1


def _nodes(stencil):
    from stencils import _expr

    return _expr.topological_order(stencil.expr)


def test_windowed_array_is_lazy_and_numpy_friendly():
    w = st.map_stencil(st.Edge, st.sum_stencil(2), X)
    assert (w.shape, w.dtype, w.ndim, len(w)) == (X.shape, np.float64, 1, 7)
    np.testing.assert_array_equal(np.asarray(w), values(st.sum_stencil(2)))
    np.testing.assert_array_equal(np.sqrt(np.abs(w)), np.sqrt(np.abs(values(st.sum_stencil(2)))))
    np.testing.assert_array_equal(w * 2, 2 * values(st.sum_stencil(2)))
    assert "WindowedArray(shape=(7,)" in repr(w)


def test_window_is_massivs_interior():
    w = st.apply_stencil(st.Padding(2, 1, st.Edge), st.sum_stencil(3), np.zeros(8))
    assert w.shape == (9,) and w.window == ((2, 8),)


def test_makestencil_reference_agrees_on_a_3d_asymmetric_stencil():
    a = np.random.default_rng(3).integers(-5, 6, size=(4, 5, 6)).astype(float)

    def fn(g):
        return g(0, -1, 2) - 2 * g(1, 0, 0) + np.maximum(g(-1, 1, -1), 0)

    s = st.make_stencil((3, 3, 4), (1, 1, 1), fn)
    for border in (st.Continue, st.Fill(7), "mirror"):
        b = st.as_border(border)
        want = ref.apply_function(fn, s.size, s.center, a, s.center,
                                  [z - c - 1 for z, c in zip(s.size, s.center)], b)
        np.testing.assert_array_equal(st.compute(st.map_stencil(border, s, a)), want)
