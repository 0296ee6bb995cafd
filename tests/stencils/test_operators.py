"""Every operator of the table in stencils._kernels, through the interpreter and
one generated kernel, against NumPy (the reference), on values where IEEE
corner cases live: NaN, infinities, signed zeros."""

import numpy as np
import pytest

import stencils as st
from stencils import _expr as ex
from stencils import _kernels as kn
from stencils import _reference as ref

VALUES = np.array([-2.5, -1.0, -0.0, 0.0, 0.5, 1.0, 3.0, np.inf, -np.inf, np.nan])
NAMES = list(ex.OPS)


def _operands(name, a, b):
    if name == "where":
        return (a > b, a, b)
    return (a, b, a)[:ex.OPS[name]]


def _every_op_stencil():
    """Row (a, b, k) -> operator k applied to a and b: one kernel for every op.
    np.where selects without mixing in the other branches' NaNs."""
    def fn(get):
        a, b, k = get(0, 0), get(0, 1), get(0, 2)
        out = ex.const(0.0)
        for i, name in enumerate(NAMES):
            out = np.where(k == i, ex.apply_op(name, *map(ex.as_expr, _operands(name, a, b))), out)
        return out
    return st.make_stencil((1, 3), (0, 0), fn)


def _rows(dtype):
    a, b = np.meshgrid(VALUES, VALUES[::-1])
    pairs = np.stack([a.ravel(), b.ravel()], axis=-1)
    codes = np.repeat(np.arange(len(NAMES)), len(pairs))
    return np.column_stack([np.tile(pairs, (len(NAMES), 1)), codes]).astype(dtype)


def _numpy(rows, dtype):
    t = np.dtype(dtype).type
    want = np.empty(len(rows), dtype=dtype)
    for r, (a, b, k) in enumerate(rows):
        name = NAMES[int(k)]
        node = ex.apply_op(name, *map(ex.as_expr, _operands(name, ex.read((0, 0)),
                                                             ex.read((0, 1)))))
        want[r] = ref.evaluate(node, lambda d, a=a, b=b: (a, b)[d[1]], dtype)
        if name == "pow" and a == -np.inf and b == 0.5:
            # C99 (and Python) pow(-inf, 0.5) is +inf; np.power says nan.  The
            # kernels follow C, as documented.
            want[r] = t(np.inf)
    return want


def test_the_table_is_the_one_source():
    assert list(ex.OPS) == list(kn.SCALAR_OPS) == list(kn.SCALAR_TEMPLATES)
    assert set(ref._SCALAR) == set(kn.SCALAR_OPS)
    assert [kn.OPCODES[n] for n in NAMES] == list(range(kn.SCALAR_BASE,
                                                        kn.SCALAR_BASE + len(NAMES)))
    for name in NAMES:
        assert getattr(kn, "OP_" + name.upper()) == kn.OPCODES[name]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_operator_in_both_kernels_matches_numpy(dtype):
    s = _every_op_stencil()
    rows = _rows(dtype)
    want = _numpy(rows, dtype)
    w = st.apply_stencil(st.no_padding, s, rows)
    with st.config(engine="interpreter"):
        tier0 = w._run((1, 1), None, parallel=False)[:, 0]
    # One dtype through the generated kernel: it is a large one to compile.
    tier1 = None
    if dtype == np.float64:
        with st.config(engine="generated"):
            tier1 = w._run((1, 1), None, parallel=False)[:, 0]
    rtol = 2e-6 if dtype == np.float32 else 1e-14
    for i, name in enumerate(NAMES):
        part = slice(i * len(VALUES) ** 2, (i + 1) * len(VALUES) ** 2)
        np.testing.assert_allclose(tier0[part], want[part], rtol=rtol, equal_nan=True,
                                   err_msg=f"interpreter, op {name}")
        if tier1 is not None:
            # The two kernels share each op's scalar code: equal to the bit.
            np.testing.assert_array_equal(tier1[part].view(np.uint8),
                                          tier0[part].view(np.uint8),
                                          err_msg=f"generated, op {name}")
