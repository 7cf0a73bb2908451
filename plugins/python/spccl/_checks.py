# SPDX-License-Identifier: Apache-2.0
"""The checks every Python entry point runs on its scalar arguments, one function per kind.

ctypes converts silently: 2**32 + 4 becomes 4 in a C int, -1 becomes 2**64 - 1 in a uint64,
3.9 becomes 3, True becomes 1; and a NaN passes every `x <= 0` test. So integers and reals are
checked here, against the range of the C field or of the setting, before anything uses them.
Messages name the argument as the caller spells it ("spccl: State.restore step",
"LocalSGD: lr")."""
import ctypes
import math

SIZE_MAX = 2 ** (8 * ctypes.sizeof(ctypes.c_size_t)) - 1
U64_MAX = 2**64 - 1
C_INT = (-(2**31), 2**31 - 1)
SIZE_T = (0, SIZE_MAX)
U64 = (0, U64_MAX)


def integer(value, name, bounds):
    """`value` as a Python int within `bounds` (inclusive). Refuses floats and bools (an
    integer argument given True is a mistake, not 1) and anything without __index__."""
    if _is_bool(value) or isinstance(value, float) or not hasattr(value, "__index__"):
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}")
    value = value.__index__()
    lo, hi = bounds
    if not lo <= value <= hi:
        raise ValueError(f"{name} {value} is outside [{lo}, {hi}]")
    return value


def flag(value, name):
    """A C 0/1 switch: a bool, or the integer 0 or 1."""
    return int(value) if _is_bool(value) else integer(value, name, (0, 1))


def real(value, name, lo=-math.inf, hi=math.inf, lo_open=False, hi_open=False, hint=""):
    """`value` as a finite float within [lo, hi] (or open at either end): NaN and Inf are
    refused, so no comparison downstream can be fooled by them. `hint` ends the message."""
    if _is_bool(value):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}") from None
    below = x <= lo if lo_open else x < lo
    above = x >= hi if hi_open else x > hi
    if not math.isfinite(x) or below or above:
        raise ValueError(f"{name} is {x:g}; it must be {_interval(lo, hi, lo_open, hi_open)}{hint}")
    return x


def _is_bool(value):
    return isinstance(value, bool) or type(value).__name__ == "bool_"  # NumPy's bool is no int subclass


def _interval(lo, hi, lo_open, hi_open):
    if lo == -math.inf and hi == math.inf:
        return "finite"
    if hi == math.inf:
        return f"finite and {'>' if lo_open else '>='} {lo:g}"
    if lo == -math.inf:
        return f"finite and {'<' if hi_open else '<='} {hi:g}"
    return f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
