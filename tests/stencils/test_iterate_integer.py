"""Time stepping in an integer (or chosen float) state: `iterate(..., dtype=)`.

The reference is a plain NumPy step loop in the same integer dtype (NumPy's
integer arrays wrap modulo 2**bits, as massiv's Word8/Int do).  Which cell each
read names, through the border, is taken from the library's float step applied
to an array of cell numbers (its border rules are tested against massiv and
scipy elsewhere); the arithmetic is NumPy's.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

import stencils as st
from stencils import _expr as ex
from stencils.errors import StencilTypeError, StencilValueError

BORDERS = [st.Fill(-3), st.Fill(300), st.Wrap, st.Edge, st.Reflect, st.Continue,
           "constant", "nearest", "reflect", "mirror", "wrap"]
INT_DTYPES = [np.uint8, np.int8, np.int16, np.uint32, np.int64]


def as_dtype(value, dtype):
    """An integral `value` modulo 2**bits, as `dtype` holds it (a C cast from uint64)."""
    return np.array(int(value) % 2 ** 64, dtype=np.uint64).astype(dtype)


def read_sources(stencil, border, shape):
    """Per read offset: the flat number of the cell it names at every point (-1: the fill)."""
    numbers = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    b = st.as_border(border)
    marker = st.Fill(-1) if b.code == st.Fill(0).code else b
    sources = {}
    for node in ex.topological_order(stencil.expr):
        if node.op == "read":
            d = node.args
            probe = st.make_stencil(stencil.size, stencil.center, lambda g, d=d: g(*d))
            sources[d] = st.compute(st.map_stencil(marker, probe, numbers)).astype(np.int64)
    return sources


def numpy_step(expr, state, sources, fill):
    """One step of `expr` with NumPy integer arrays (each operation wraps)."""
    dtype, flat, values = state.dtype, state.reshape(-1), {}
    z = np.zeros(state.shape, dtype)

    def ev(node):
        key = id(node)
        if key in values:
            return values[key]
        op, args = node.op, node.args
        if op == "read":
            src = sources[args]
            v = np.where(src >= 0, flat[np.maximum(src, 0)], fill)
        elif op == "const":
            v = z + as_dtype(args[0], dtype)
        elif op == "lin":
            v = z.copy()
            for t, w in zip(args, node.weights):
                v = v + as_dtype(w, dtype) * ev(t)
        else:
            x = [ev(a) for a in args]
            truth = [a != 0 for a in x]
            v = {
                "mul": lambda: x[0] * x[1],
                "max": lambda: np.maximum(x[0], x[1]), "min": lambda: np.minimum(x[0], x[1]),
                "lt": lambda: x[0] < x[1], "le": lambda: x[0] <= x[1],
                "gt": lambda: x[0] > x[1], "ge": lambda: x[0] >= x[1],
                "eq": lambda: x[0] == x[1], "ne": lambda: x[0] != x[1],
                "and": lambda: truth[0] & truth[1], "or": lambda: truth[0] | truth[1],
                "xor": lambda: truth[0] ^ truth[1], "not": lambda: ~truth[0],
                "neg": lambda: np.negative(x[0]), "abs": lambda: np.abs(x[0]),
                "sign": lambda: np.sign(x[0]), "where": lambda: np.where(truth[0], x[1], x[2]),
            }[op]()
        values[key] = v = np.asarray(v).astype(dtype)
        return v
    return ev(expr)


def numpy_loop(n, stencil, border, state):
    b = st.as_border(border)
    fill = as_dtype(b.value, state.dtype)
    sources = read_sources(stencil, border, state.shape)
    for _ in range(n):
        state = numpy_step(stencil.expr, state, sources, fill)
    return state


# -- random integer stencils ---------------------------------------------------

OFFSETS = hs.tuples(hs.integers(-1, 1), hs.integers(-1, 1))
LEAVES = hs.one_of(OFFSETS.map(lambda d: ("read", d)),
                   hs.integers(-300, 300).map(lambda c: ("const", c)))
UNARY = ["neg", "abs", "not", "sign"]
BINARY = ["add", "sub", "mul", "max", "min", "lt", "le", "gt", "ge", "eq", "ne", "and", "or",
          "xor"]


def recipes():
    return hs.recursive(LEAVES, lambda inner: hs.one_of(
        hs.tuples(hs.sampled_from(UNARY), inner),
        hs.tuples(hs.sampled_from(BINARY), inner, inner),
        hs.tuples(hs.just("where"), inner, inner, inner)), max_leaves=8)


def build(recipe, g):
    op, *args = recipe
    if op == "read":
        return g(*args[0])
    if op == "const":
        return args[0]
    x = [build(a, g) for a in args]
    x = [v if isinstance(v, ex.Expr) else ex.as_expr(v) for v in x]
    return {
        "neg": lambda: -x[0], "abs": lambda: abs(x[0]), "not": lambda: ~x[0],
        "sign": lambda: np.sign(x[0]), "add": lambda: x[0] + x[1], "sub": lambda: x[0] - x[1],
        "mul": lambda: x[0] * x[1], "max": lambda: np.maximum(x[0], x[1]),
        "min": lambda: np.minimum(x[0], x[1]), "lt": lambda: x[0] < x[1],
        "le": lambda: x[0] <= x[1], "gt": lambda: x[0] > x[1], "ge": lambda: x[0] >= x[1],
        "eq": lambda: x[0] == x[1], "ne": lambda: x[0] != x[1], "and": lambda: x[0] & x[1],
        "or": lambda: x[0] | x[1], "xor": lambda: x[0] ^ x[1],
        "where": lambda: np.where(x[0], x[1], x[2]),
    }[op]()


def make(recipe):
    # A read of the centre keeps the stencil's box 3 x 3 whatever the recipe reads.
    return st.make_stencil((3, 3), (1, 1), lambda g: build(recipe, g) + 0 * g(1, 1)
                           + 0 * g(-1, -1))


@settings(max_examples=8, deadline=None)
@given(recipe=recipes(), dtype=hs.sampled_from(INT_DTYPES), border=hs.sampled_from(BORDERS),
       rows=hs.integers(1, 9), cols=hs.integers(1, 9), n=hs.integers(0, 6),
       depth=hs.integers(1, 4), tile=hs.integers(1, 5), seed=hs.integers(0, 2 ** 16))
def test_random_integer_steps_match_numpy(recipe, dtype, border, rows, cols, n, depth, tile,
                                          seed):
    stencil = make(recipe)
    info = np.iinfo(dtype)
    a = np.random.default_rng(seed).integers(max(info.min, -1000), min(info.max, 1000),
                                             (rows, cols), endpoint=True).astype(dtype)
    r = st.iterate(n, stencil, border, a, dtype=dtype, depth=depth, tile=tile, parallel=False)
    assert r.dtype == dtype
    np.testing.assert_array_equal(r, numpy_loop(n, stencil, border, a), strict=True)


LIFE = st.make_stencil((3, 3), (1, 1), lambda g: np.where(
    (sum(g(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1) if (i, j) != (0, 0)) == 3)
    | ((g(0, 0) != 0) & (sum(g(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)
                               if (i, j) != (0, 0)) == 2)), 1.0, 0.0))


@pytest.mark.parametrize("border", BORDERS, ids=repr)
def test_game_of_life_u8_every_border_many_tiles(border):
    board = (np.random.default_rng(3).random((37, 45)) < 0.35).astype(np.uint8)
    expected = numpy_loop(9, LIFE, border, board)
    for depth, tile, parallel in [(4, (8, 11), False), (3, (5, 7), True), (None, None, None)]:
        r = st.iterate(9, LIFE, border, board, dtype=np.uint8, depth=depth, tile=tile,
                       parallel=parallel)
        np.testing.assert_array_equal(r, expected, strict=True)


@pytest.mark.parametrize("shape, stencil", [
    ((23,), st.make_stencil(3, 1, lambda g: 3 * g(-1) + g(0) * g(1) - 7)),
    ((6, 7, 8), st.make_stencil((3, 3, 3), (1, 1, 1), lambda g: np.maximum(
        g(-1, 0, 0) * 5, g(0, 1, 1)) - (g(0, 0, -1) > g(0, 0, 1)) * 100))],
    ids=["1d", "3d"])
@pytest.mark.parametrize("border", [st.Fill(250), st.Wrap, st.Reflect, "mirror"], ids=repr)
def test_integer_nd_and_wrapping(shape, stencil, border):
    a = np.random.default_rng(4).integers(0, 256, shape).astype(np.uint8)
    expected = numpy_loop(5, stencil, border, a)
    for depth, tile in [(2, 3), (None, None)]:
        np.testing.assert_array_equal(
            st.iterate(5, stencil, border, a, dtype=np.uint8, depth=depth, tile=tile),
            expected, strict=True)
    r = st.iterate_until(lambda i, p, c: i == 4, stencil, border, a, dtype=np.uint8,
                         check_every=5, depth=2)
    np.testing.assert_array_equal(r, expected, strict=True)


def test_integer_dask_matches_numpy():
    da = pytest.importorskip("dask.array")
    board = (np.random.default_rng(5).random((30, 26)) < 0.4).astype(np.uint8)
    for border in [st.Wrap, st.Fill(1), "mirror"]:
        lazy = st.iterate(7, LIFE, border, da.from_array(board, chunks=(10, 13)),
                          dtype=np.uint8, depth=3)
        assert lazy.dtype == np.uint8
        np.testing.assert_array_equal(lazy.compute(), numpy_loop(7, LIFE, border, board),
                                      strict=True)


def test_float32_state_from_float64():
    heat = st.make_stencil((3, 3), (1, 1), lambda g: g(0, 0) + 0.2 * (
        g(-1, 0) + g(1, 0) + g(0, -1) + g(0, 1) - 4 * g(0, 0)))
    a = np.random.default_rng(6).random((11, 13))
    r = st.iterate(6, heat, st.Edge, a, dtype=np.float32, depth=4, tile=5)
    assert r.dtype == np.float32
    np.testing.assert_array_equal(r, st.iterate(6, heat, st.Edge, a.astype(np.float32)),
                                  strict=True)


HALF = st.make_stencil(3, 1, lambda g: g(-1) * 0.5 + g(1))
RATIO = st.make_stencil(3, 1, lambda g: g(-1) / g(1))


@pytest.mark.parametrize("call, param, error, words", [
    (lambda a: st.iterate(2, HALF, st.Wrap, a, dtype=np.uint8), "dtype", StencilValueError,
     "0.5"),
    (lambda a: st.iterate(2, RATIO, st.Wrap, a, dtype=np.int32), "dtype", StencilValueError,
     "'div'"),
    (lambda a: st.iterate(2, st.make_stencil(3, 1, lambda g: np.exp(g(0))), st.Wrap, a,
                          dtype=np.uint8), "dtype", StencilValueError, "'exp'"),
    (lambda a: st.iterate(2, LIFE1, st.Fill(0.5), a, dtype=np.uint8), "border",
     StencilValueError, "non-integer"),
    (lambda a: st.iterate(2, LIFE1, st.Wrap, a.astype(float), dtype=np.uint8), "array",
     StencilTypeError, "astype"),
    (lambda a: st.iterate(2, LIFE1, st.Wrap, a, dtype=np.float16), "dtype", StencilTypeError,
     "float16"),
    (lambda a: st.iterate(2, LIFE1, st.Wrap, a, dtype="nonsense"), "dtype", StencilTypeError,
     "nonsense"),
    (lambda a: st.iterate_until(lambda *x: True, HALF, st.Wrap, a, dtype=np.int8), "dtype",
     StencilValueError, "0.5"),
    (lambda a: st.iterate(2, LIFE1, st.Wrap, a, dtype=np.uint8, out=np.empty(8)), "out",
     StencilTypeError, "dtype=uint8"),
])
def test_integer_refusals(call, param, error, words):
    with pytest.raises(error) as info:
        call(np.ones(8, dtype=np.uint8))
    assert info.value.param == param
    assert words in str(info.value)


LIFE1 = st.make_stencil(3, 1, lambda g: (g(-1) + g(1) == 1) * 1)
