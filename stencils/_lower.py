"""Lowering a stencil's expression into what the kernels run.

Two targets: a register program for the interpreter (stencils._kernels) and
Python source for a kernel specialised to the stencil (written by
stencils._codegen, compiled by stencils._engine).  Weights and constants are
not baked into either: they are passed at run time in one array, so stencils
that differ only in their numbers (every new kernel given to `correlate`, every
training step's weights) share one compiled kernel.  Loaded once before the
loops, they are as fast as literal constants (measured: 8.1 ms vs 10.7 ms for a
5x5 float32 4096^2 pass).
"""

from __future__ import annotations

import numpy as np

from . import _expr as ex
from . import _kernels as kn
from ._codegen import FIXED_SLOTS as _FIXED
from ._codegen import Generated, generate_source  # noqa: F401 - the engine's entry point

if tuple(kn.SCALAR_OPS) != tuple(k for k in ex.OPS):
    raise ImportError("stencils: the op tables of _expr and _kernels disagree")
_OPCODE = {name: kn.SCALAR_BASE + i for i, name in enumerate(kn.SCALAR_OPS)}


def _parents_need_register(order, root):
    """Reads and constants that something other than a weighted sum consumes."""
    need = {id(root)}
    for node in order:
        if node.op in ("read", "const"):
            continue
        if node.op == "lin":
            for t in node.args:
                if t.op == "const":
                    need.add(id(t))
        else:
            need.update(id(a) for a in node.args)
    return need


class Program:
    """A register program for the interpreter, and the values it reads."""

    __slots__ = ("prog", "taps", "params", "nregs", "nodes")

    def __init__(self, prog, taps, params, nregs, nodes):
        self.prog, self.taps, self.params, self.nregs, self.nodes = prog, taps, params, nregs, nodes


def lower_program(stencil):
    """The interpreter program computing `stencil` at every point."""
    expr, center = stencil.expr, stencil.center
    order = ex.topological_order(expr)
    need = _parents_need_register(order, expr)
    uses = {}
    for node in order:
        if node.op not in ("read", "const"):
            for a in node.args:
                uses[id(a)] = uses.get(id(a), 0) + 1
    taps, tap_index = [], {}
    params = []
    free, nregs = [], 0
    reg = {}
    prog = []

    def tap(node):
        k = tuple(c + d for c, d in zip(center, node.args))
        if k not in tap_index:
            tap_index[k] = len(taps)
            taps.append(k)
        return tap_index[k]

    def param(value):
        params.append(float(value))
        return _FIXED + len(params) - 1

    def new_reg():
        nonlocal nregs
        if free:
            return free.pop()
        nregs += 1
        return nregs - 1

    def release(node):
        uses[id(node)] -= 1
        if uses[id(node)] == 0 and id(node) in reg:
            free.append(reg[id(node)])

    for node in order:
        if node.op == "read":
            if id(node) in need:
                reg[id(node)] = d = new_reg()
                prog.append((kn.READ, d, tap(node), 0, 0))
        elif node.op == "const":
            if id(node) in need:
                reg[id(node)] = d = new_reg()
                prog.append((kn.CONST, d, param(node.args[0]), 0, 0))
        elif node.op == "lin":
            d = new_reg()
            for i, (t, w) in enumerate(zip(node.args, node.weights)):
                if t.op == "read":
                    prog.append((kn.READMUL if i == 0 else kn.READMAC, d, tap(t), param(w), 0))
                else:
                    prog.append((kn.MULC if i == 0 else kn.MAC, d, reg[id(t)], param(w), 0))
            reg[id(node)] = d
            for t in node.args:
                release(t)
        else:
            d = new_reg()
            operands = [reg[id(a)] for a in node.args]
            operands += [operands[0]] * (3 - len(operands))
            prog.append((_OPCODE[node.op], d, *operands))
            reg[id(node)] = d
            for a in node.args:
                release(a)
    taps_arr = np.array(taps, dtype=np.int64).reshape(len(taps), stencil.ndim)
    if not taps:
        taps_arr = np.zeros((0, stencil.ndim), dtype=np.int64)
    return Program(np.array(prog, dtype=np.int64).reshape(-1, 5), taps_arr, params,
                   max(nregs, 1), len(order))
