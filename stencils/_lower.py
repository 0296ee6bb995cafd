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

import hashlib

import numpy as np

from . import _expr as ex
from . import _kernels as kn
from ._codegen import FIXED_SLOTS as _FIXED
from ._codegen import generate_source  # noqa: F401 - the engine's entry point


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


def _fuse_reads(terms, taps):
    """A weighted sum's instructions with each run of reads of one source row
    (taps and weights numbered consecutively) made a single instruction: the
    interpreter then makes one pass over the block for up to four of them."""
    out = []
    for ins in terms:
        last = out[-1] if out else None
        if (ins[0] == kn.READ_ADD and last is not None and last[0] in (kn.READ_SET, kn.READ_ADD)
                and ins[2] == last[2] + last[4] and ins[3] == last[3] + last[4]
                and taps[ins[2]][:-1] == taps[last[2]][:-1]):
            out[-1] = last[:4] + (last[4] + 1,)
        else:
            out.append(ins)
    return out


class Program:
    """A register program for the interpreter, and the values it reads."""

    __slots__ = ("prog", "taps", "params", "nregs", "nodes", "uses_operators", "registers",
                 "slots", "row_offsets", "column_offsets", "addresses")

    def __init__(self, prog, taps, params, nregs, nodes):
        prog, taps = np.ascontiguousarray(prog), np.ascontiguousarray(taps)
        self.prog, self.taps, self.params, self.nregs, self.nodes = prog, taps, params, nregs, nodes
        # Whether it needs the interpreter compiled with the operators' code.
        self.uses_operators = kn.uses_operators(prog)
        self.registers = kn.register_count(prog)
        # The columns of tier 0's row table (kn.tier0_tables).
        self.slots, self.row_offsets, self.column_offsets = kn.read_slots(prog, taps)
        # Where the interpreter finds the program, its taps and slots (tier 0's block).
        self.addresses = (prog.ctypes.data, taps.ctypes.data, self.slots.ctypes.data)


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
                prog.append((kn.READ_SET, d, tap(node), 1, 1))  # weight: const slot 1, one
        elif node.op == "const":
            if id(node) in need:
                reg[id(node)] = d = new_reg()
                prog.append((kn.CONST, d, param(node.args[0]), 0, 0))
        elif node.op == "lin":
            d = new_reg()
            terms = []
            for i, (t, w) in enumerate(zip(node.args, node.weights)):
                if t.op == "read":
                    terms.append((kn.READ_SET if i == 0 else kn.READ_ADD, d, tap(t), param(w), 1))
                else:
                    terms.append((kn.MULC if i == 0 else kn.MAC, d, reg[id(t)], param(w), 0))
            prog += _fuse_reads(terms, taps)
            reg[id(node)] = d
            for t in node.args:
                release(t)
        else:
            d = new_reg()
            operands = [reg[id(a)] for a in node.args]
            operands += [operands[0]] * (3 - len(operands))
            prog.append((kn.OPCODES[node.op], d, *operands))
            reg[id(node)] = d
            for a in node.args:
                release(a)
    taps_arr = np.array(taps, dtype=np.int64).reshape(len(taps), stencil.ndim)
    if not taps:
        taps_arr = np.zeros((0, stencil.ndim), dtype=np.int64)
    return Program(np.array(prog, dtype=np.int64).reshape(-1, 5), taps_arr, params,
                   max(nregs, 1), len(order))


def kernel_params(stencil):
    """The run-time values a generated kernel for `stencil` reads, in its order:
    per node in topological order, a constant's value or a sum's weights."""
    params = []
    for node in ex.topological_order(stencil.expr):
        if node.op == "const":
            params.append(node.args[0])
        elif node.op == "lin":
            params.extend(node.weights)
    return params


def structure_key(stencil, step_last, fingerprint):
    """A name for what a generated kernel depends on: the expression's shape
    (ops, reads, sharing; not its numbers), the centre, the stride along the
    last axis and the generator's own fingerprint.  Known without building the
    kernel's text, so the disk cache is consulted before any code is written."""
    shape = tuple((op,) if op == "const" else (op, args)
                  for op, args, _ in ex.to_flat(stencil.expr))
    text = repr((shape, stencil.center, int(step_last), fingerprint))
    return hashlib.sha1(text.encode()).hexdigest()[:20]

