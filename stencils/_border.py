"""Border rules: massiv's five `Border` values and scipy.ndimage's mode names.

A border says what a read outside the array returns.  massiv's rules and scipy's
agree near the array; far from it (a reach longer than the axis) massiv's
`Reflect` and `Continue` repeat with period ``k`` while scipy's ``'reflect'``
and ``'mirror'`` keep mirroring (period ``2k`` and ``2k - 2``).  Both families
are kept, each with its own exact rule, so a massiv name always means massiv's
rule and a scipy name always means scipy's.

The rules themselves (one integer code each, and the index each read
resolves to) live in stencils._kernels_border; this module names them.
"""

from __future__ import annotations

import difflib
import numbers

import numpy as np

from ._kernels_border import CONTINUE, EDGE, FILL, REFLECT, SCIPY_MIRROR, SCIPY_REFLECT, WRAP
from .errors import BorderError

__all__ = ["Border", "Fill", "Wrap", "Edge", "Reflect", "Continue", "as_border"]

_KIND_NAMES = {
    FILL: "Fill",
    WRAP: "Wrap",
    EDGE: "Edge",
    REFLECT: "Reflect",
    CONTINUE: "Continue",
    SCIPY_REFLECT: "'reflect'",
    SCIPY_MIRROR: "'mirror'",
}


class Border:
    """How reads outside the array are answered (massiv's ``Border e``).

    Use the ready values `Wrap`, `Edge`, `Reflect`, `Continue`, the constructor
    ``Fill(value)``, or one of scipy.ndimage's mode names wherever a border is
    taken (see `as_border`).  Borders compare equal by rule and value and are
    hashable.

    Examples
    --------
    >>> import stencils as st
    >>> st.Fill(0)
    Fill(0.0)
    >>> st.Reflect
    Reflect
    >>> st.as_border("nearest") == st.Edge
    True
    """

    __slots__ = ("_code", "_value")

    def __init__(self, code, value=0.0):
        self._code = int(code)
        self._value = float(value)

    @property
    def code(self):
        """The integer code the kernels use."""
        return self._code

    @property
    def value(self):
        """The fill value (``0.0`` for every rule but `Fill`)."""
        return self._value

    @property
    def kind(self):
        """The rule's name: ``'Fill'``, ``'Wrap'``, ``'Edge'``, ``'Reflect'``, ``'Continue'``,
        or scipy's ``"'reflect'"`` / ``"'mirror'"``."""
        return _KIND_NAMES[self._code]

    def __eq__(self, other):
        if not isinstance(other, Border):
            return NotImplemented
        return self._code == other._code and (
            self._code != FILL or _same_float(self._value, other._value)
        )

    def __hash__(self):
        return hash((self._code, self._value if self._code == FILL else 0.0))

    def __repr__(self):
        if self._code == FILL:
            return f"Fill({self._value!r})"
        if self._code in (SCIPY_REFLECT, SCIPY_MIRROR):
            return f"as_border({_KIND_NAMES[self._code]})"
        return _KIND_NAMES[self._code]

    def __reduce__(self):
        return (Border, (self._code, self._value))


def _same_float(a, b):
    return a == b or (a != a and b != b)


def Fill(value):  # noqa: N802 - massiv's constructor name
    """A border that answers every read outside the array with `value`.

    massiv: ``Fill e``; scipy: ``mode='constant', cval=value``.

    Parameters
    ----------
    value : real number
        The value read outside the array (cast to the computation's dtype).
        NaN and infinities are allowed.

    Examples
    --------
    >>> import numpy as np, stencils as st
    >>> st.compute(st.map_stencil(st.Fill(9), st.sum_stencil(2), np.array([1.0, 2.0])))
    array([ 3., 11.])
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise BorderError(
            f"Fill(value={value!r}): the fill value must be a real number, "
            f"got {type(value).__name__}.",
            param="value", value=value, expected="a real number",
        )
    try:
        return Border(FILL, float(value))
    except OverflowError:
        raise BorderError(
            f"Fill(value={value!r}): the fill value does not fit in a float64.",
            param="value", value=value, expected="a real number within float64's range",
        ) from None


Wrap = Border(WRAP)
Edge = Border(EDGE)
Reflect = Border(REFLECT)
Continue = Border(CONTINUE)

# scipy.ndimage's mode names and the rule each means for a filter (scipy's
# interpolation, not its filters, tells some 'grid-' names from the plain ones).
_SCIPY_MODES = {
    "constant": FILL,
    "nearest": EDGE,
    "reflect": SCIPY_REFLECT,
    "mirror": SCIPY_MIRROR,
    "wrap": WRAP,
    "grid-constant": FILL,
    "grid-mirror": SCIPY_REFLECT,
    "grid-wrap": WRAP,
}

# Other libraries' names for the same rules: each gets a pointer to ours.
_FOREIGN_NAMES = {
    "edge": "nearest",
    "replicate": "nearest",
    "clamp": "nearest",
    "symmetric": "reflect",
    "circular": "wrap",
    "periodic": "wrap",
    "zeros": "constant",
    "zero": "constant",
    "fill": "constant",
    "continue": "mirror",
    "reflect_101": "mirror",
    "reflect101": "mirror",
}

_MASSIV_BY_NAME = {"wrap": Wrap, "edge": Edge, "reflect": Reflect, "continue": Continue}


def as_border(border, cval=0.0, *, param="border"):
    """Normalise anything accepted as a border into a `Border` value.

    Parameters
    ----------
    border : Border or str
        A massiv border (``Fill(v)``, `Wrap`, `Edge`, `Reflect`, `Continue`) or
        one of scipy.ndimage's mode names ``'constant'``, ``'nearest'``,
        ``'reflect'``, ``'mirror'``, ``'wrap'`` (with scipy's exact rules), or
        ``'grid-constant'``, ``'grid-mirror'``, ``'grid-wrap'`` (for a filter
        the same as ``'constant'``, ``'reflect'`` and ``'wrap'``).
    cval : float, optional
        The fill value for ``'constant'``.
    param : str, optional
        The argument name used in error messages.

    Returns
    -------
    Border

    Raises
    ------
    stencils.errors.BorderError
        If `border` is not a border; the message suggests the right name for
        another library's spelling (``'edge'`` -> ``'nearest'``).

    Examples
    --------
    >>> import stencils as st
    >>> st.as_border("constant", cval=2)
    Fill(2.0)
    >>> st.as_border("wrap") == st.Wrap
    True
    """
    if isinstance(border, Border):
        return border
    if isinstance(border, str) and border in _SCIPY_MODES:
        code = _SCIPY_MODES[border]
        return Fill(cval) if code == FILL else Border(code)
    if border in (Fill,):
        raise BorderError(
            f"{param}=Fill is the constructor, not a border; call it with the fill value, "
            "e.g. Fill(0).",
            param=param, value=border, expected="Fill(value)",
        )
    expected = (
        "a Border (Fill(value), Wrap, Edge, Reflect, Continue) or one of the mode names "
        + ", ".join(map(repr, _SCIPY_MODES))
    )
    text = f"{param}={border!r} is not a border; expected {expected}."
    if isinstance(border, str):
        key = border.lower()
        if key in _FOREIGN_NAMES:
            text += (
                f" {border!r} is another library's name; here it is "
                f"{_FOREIGN_NAMES[key]!r}."
            )
            if key in _MASSIV_BY_NAME:
                text += f" (massiv's rule is the value stencils.{key.capitalize()}.)"
        elif key in _MASSIV_BY_NAME:
            text += f" For massiv's rule use the value stencils.{key.capitalize()}."
        else:
            guess = difflib.get_close_matches(border, _SCIPY_MODES, n=1)
            if guess:
                text += f" Did you mean {guess[0]!r}?"
    raise BorderError(text, param=param, value=border, expected=expected)
