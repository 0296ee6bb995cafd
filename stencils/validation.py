"""Argument checks for code built on `stencils` (the rules `stencils` itself applies).

A package that forwards its arguments to `stencils` (such as `convnet`) checks
them with these functions, so that both packages accept the same ints, apply
the same dtype policy and follow the same stride rule:

- `is_int`: a Python or NumPy integer, never a bool;
- `int_tuple`: an int or a sequence of ints, with a length and a minimum;
- `compute_dtype`: float32 stays float32, float16 becomes float32, float64,
  integers and bool become float64; complex, object, string and
  extended-precision dtypes are refused;
- `as_real_array`: an array in its compute dtype, optionally of a given rank;
- `clamp_steps`: a step past the end of its axis is the same as a step equal
  to the axis.

Each raises a `stencils.errors` exception naming the argument, the value and
what was expected; ``type_error=`` / ``value_error=`` choose the caller's own
subclasses instead.

>>> import numpy as np
>>> from stencils.validation import as_real_array
>>> as_real_array(np.arange(3, dtype=np.int16), param="x").dtype
dtype('float64')
"""

from ._validate import as_real_array, clamp_steps, compute_dtype, int_tuple, is_int

__all__ = ["is_int", "int_tuple", "compute_dtype", "as_real_array", "clamp_steps"]
