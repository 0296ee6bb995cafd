"""A team of spinning helper threads in native code: the kernels' side.

A parallel call hands its helpers work through one small int64 array, the
*board* (see ``stencils._engine.run_team``), instead of a Python queue: a helper
that finished a job keeps polling the board for a while in ``nogil`` code, so
the next call's job starts on it within a microsecond, with no wake-up of a
sleeping thread and no wait for the GIL.  A job is the address of a C-callable
entry point (a Numba ``cfunc`` of signature ``int64(int64)``, returning 1, or 0
when its kernel raised) and the address of the int64 block of arguments it
unpacks with `pointer_at`.

Board words, each on its own cache line (index = word * LINE):

- ``JOB``: ``(sequence << 8) | joined``; ``joined`` counts the helpers that
  took the posted job, and ``CLOSED`` in its place means no helper may join
  any more (the caller finished its share);
- ``ENTRY``: the job's entry address, and in the int64 after it the address of
  its argument block, both written before ``JOB`` publishes them;
- ``DONE``: helpers that finished the job, and in the int64 after it those
  whose entry point failed (returned 0), both reset by the caller before posting;
- ``KICK``: changed by the caller when Python work waits for the helpers, so
  spinning helpers return to their queue;
- ``SLOT + 2h``: helper slot ``h``'s state (``ASLEEP``, ``WAKING`` or
  ``SPINNING``), and ``SLOT + 2h + 1`` the sequence of the last job it saw.
"""

from __future__ import annotations

import platform

import numpy as np
from llvmlite import ir
from numba import literal_unroll, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["LINE", "JOB", "ENTRY", "DONE", "KICK", "SLOT", "CLOSED", "ASLEEP", "SPINNING",
           "WAKING", "MAX_SLOTS", "BOARD_WORDS", "call_c", "pointer_at", "claim", "team_block",
           "serve", "post", "run_entry", "finish", "clock"]

LINE = 8  # int64 words per cache line: each board word on a line of its own
JOB, ENTRY, DONE, KICK, SLOT = 0, 1, 2, 3, 4
CLOSED = 0xFF
ASLEEP, SPINNING, WAKING = 0, 1, 2
MAX_SLOTS = 64
BOARD_WORDS = (SLOT + 2 * MAX_SLOTS) * LINE

_X86 = platform.machine().lower() in ("x86_64", "amd64")


def _word_pointer(context, builder, board_type, board, index):
    data = cgutils.create_struct_proxy(board_type)(context, builder, value=board).data
    return builder.gep(data, [index])


@intrinsic
def _load(typingctx, board, index):
    """board[index] read as one atomic acquire load (never hoisted out of a loop)."""
    def codegen(context, builder, signature, args):
        ptr = _word_pointer(context, builder, signature.args[0], args[0], args[1])
        return builder.load_atomic(ptr, "acquire", 8)
    return types.int64(board, index), codegen


@intrinsic
def _store(typingctx, board, index, value):
    """board[index] = value as one atomic release store."""
    def codegen(context, builder, signature, args):
        ptr = _word_pointer(context, builder, signature.args[0], args[0], args[1])
        builder.store_atomic(args[2], ptr, "release", 8)
        return context.get_dummy_value()
    return types.none(board, index, value), codegen


@intrinsic
def _add(typingctx, board, index, amount):
    """board[index] += amount atomically; the value before."""
    def codegen(context, builder, signature, args):
        ptr = _word_pointer(context, builder, signature.args[0], args[0], args[1])
        return builder.atomic_rmw("add", ptr, args[2], "acq_rel")
    return types.int64(board, index, amount), codegen


@intrinsic
def _swap_if(typingctx, board, index, expected, value):
    """board[index] = value if it still holds `expected` (one compare-and-swap)."""
    def codegen(context, builder, signature, args):
        ptr = _word_pointer(context, builder, signature.args[0], args[0], args[1])
        pair = builder.cmpxchg(ptr, args[2], args[3], "acq_rel", "acquire")
        return builder.extract_value(pair, 1)
    return types.boolean(board, index, expected, value), codegen


@intrinsic
def cycles(typingctx):
    """The CPU's cycle counter (the TSC on x86)."""
    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.IntType(64), []), "llvm.readcyclecounter")
        return builder.call(fn, [])
    return types.int64(), codegen


@intrinsic
def _pause(typingctx):
    """A spin-wait hint: lets the other hardware thread of a core run."""
    def codegen(context, builder, signature, args):
        if _X86:
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause")
            builder.call(fn, [])
        return context.get_dummy_value()
    return types.none(), codegen


@intrinsic
def call_c(typingctx, address, args):
    """Call the C function at the integer `address` with the int64s of the tuple
    `args` and return its int64.  A pointer argument goes as its address: a
    pointer and an int64 are passed in the same registers and stack slots."""
    if not (isinstance(args, types.UniTuple) and args.dtype == types.int64):
        return None

    def codegen(context, builder, signature, arguments):
        i64 = ir.IntType(64)
        fnty = ir.FunctionType(i64, [i64] * args.count)
        values = [builder.extract_value(arguments[1], k) for k in range(args.count)]
        return builder.call(builder.inttoptr(arguments[0], fnty.as_pointer()), values)
    return types.int64(address, args), codegen


@intrinsic
def pointer_at(typingctx, address, zero):
    """A pointer to elements of `zero`'s type at the integer `address` (for ``carray``)."""
    pointer = types.CPointer(zero)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(pointer))
    return pointer(address, zero), codegen


@intrinsic
def claim(typingctx, counter, count):
    """``counter[0] += count`` as one atomic step; the value before it.

    How an entry point's threads share its work: each claims the next items
    from the same counter until it passes the end."""
    sig = counter.dtype(counter, count)

    def codegen(context, builder, signature, args):
        ptr = cgutils.create_struct_proxy(signature.args[0])(
            context, builder, value=args[0]).data
        amount = context.cast(builder, args[1], signature.args[1], signature.args[0].dtype)
        return builder.atomic_rmw("add", ptr, amount, "monotonic")
    return sig, codegen


@njit(cache=True)
def team_block(arrays, numbers):
    """The int64 block an entry point reads: each of the tuple `arrays` as its
    address and then its shape, then the tuple of ints `numbers`.

    Compiled: built in Python, the same block took 7-14 us a call (each
    ``ndarray.ctypes`` alone takes 1 us), a tenth of a LeNet layer's time."""
    words = len(numbers)
    for a in literal_unroll(arrays):
        words += 1 + a.ndim
    block = np.empty(words, dtype=np.int64)
    at = 0
    for a in literal_unroll(arrays):
        block[at] = a.ctypes.data
        for axis in range(a.ndim):
            block[at + 1 + axis] = a.shape[axis]
        at += 1 + a.ndim
    for number in numbers:
        block[at] = number
        at += 1
    return block


@njit(nogil=True, cache=True)
def serve(board, slot, spin_cycles, gap_cycles):
    """Take posted jobs until the board is quiet for `spin_cycles`, or kicked, or the
    thread is found descheduled (`gap_cycles` or more between two polls: the OS
    ran something else on its core for a time slice); then mark slot `slot`
    asleep and return whether it was descheduled."""
    state = (SLOT + 2 * slot) * LINE
    last = _load(board, state + LINE)
    kick = _load(board, KICK * LINE)
    idle_since = cycles()
    polled = idle_since
    while True:
        word = _load(board, JOB * LINE)
        sequence = word >> 8
        if sequence != last:
            if word & CLOSED == CLOSED:
                last = sequence
            elif _swap_if(board, JOB * LINE, word, word + 1):
                if not call_c(_load(board, ENTRY * LINE), (_load(board, ENTRY * LINE + 1),)):
                    _add(board, DONE * LINE + 1, 1)
                _add(board, DONE * LINE, 1)
                last = sequence
                idle_since = cycles()
                polled = idle_since
            continue
        now = cycles()
        descheduled = now - polled > gap_cycles
        if descheduled or _load(board, KICK * LINE) != kick or now - idle_since > spin_cycles:
            break
        polled = now
        _pause()
    _store(board, state + LINE, last)
    _store(board, state, ASLEEP)
    return descheduled


@njit(cache=True)
def post(board, entry, block):
    """Publish a job (`entry` called with `block`) for the spinning helpers; its sequence.

    It keeps the GIL: a helper thread woken just before would take it
    otherwise, and the caller would wait for that thread to be run again.
    """
    sequence = (_load(board, JOB * LINE) >> 8) + 1
    _store(board, DONE * LINE, 0)
    _store(board, DONE * LINE + 1, 0)
    _store(board, ENTRY * LINE, entry)
    _store(board, ENTRY * LINE + 1, block)
    _store(board, JOB * LINE, sequence << 8)
    return sequence


@njit(nogil=True, cache=True)
def run_entry(entry, block):
    """Call the entry point at address `entry` with `block` (the caller's share); its status."""
    return call_c(entry, (block,))


@njit(nogil=True, cache=True)
def finish(board, sequence):
    """Close job `sequence` to new helpers and wait for those that took it; how many of
    them failed."""
    while True:
        word = _load(board, JOB * LINE)
        if _swap_if(board, JOB * LINE, word, (sequence << 8) | CLOSED):
            break
    joined = word & CLOSED
    while _load(board, DONE * LINE) < joined:
        _pause()
    return _load(board, DONE * LINE + 1)


@njit(nogil=True, cache=True)
def clock():
    """`cycles()` for Python (the engine measures the counter's rate with it)."""
    return cycles()
