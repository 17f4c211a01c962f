"""Input validation at the public boundary, with one message form.

Every public entry point checks its arguments once, up front, and raises
``ValueError("The 'lam' parameter of train must be ... Got -1.0 instead.")``;
the numerical loops behind it trust their inputs.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import numpy as np


def _fail(name: str, caller: str, expected: str, got) -> ValueError:
    return ValueError(
        f"The '{name}' parameter of {caller} must be {expected}. Got {got!r} instead."
    )


def check_int(value, name: str, caller: str, *, low: int | None = None,
              high: int | None = None):
    """Return ``value`` as an int if it is an integer in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _fail(name, caller, _int_range(low, high), value)
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise _fail(name, caller, _int_range(low, high), value)
    return value


def _int_range(low, high) -> str:
    if low is not None and high is None:
        return f"an int >= {low}"
    if low is None and high is not None:
        return f"an int <= {high}"
    if low is None and high is None:
        return "an int"
    return f"an int in the range [{low}, {high}]"


def check_float(value, name: str, caller: str, *, low: float | None = None,
                high: float | None = None, low_open: bool = False,
                high_open: bool = False) -> float:
    """Return ``value`` as a float if it is a finite real in the given interval."""
    left = "(" if low_open or low is None else "["       # an infinite end is never included
    right = ")" if high_open or high is None else "]"
    interval = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
    expected = f"a finite float in the range {interval}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _fail(name, caller, expected, value)
    value = float(value)
    if not np.isfinite(value):
        raise _fail(name, caller, expected, value)
    if low is not None and (value < low or (low_open and value == low)):
        raise _fail(name, caller, expected, value)
    if high is not None and (value > high or (high_open and value == high)):
        raise _fail(name, caller, expected, value)
    return value


def check_option(value, name: str, caller: str, options: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``options`` (the message lists them)."""
    options = tuple(options)
    if not isinstance(value, str) or value not in options:
        listed = ", ".join(repr(o) for o in options)
        raise _fail(name, caller, f"one of {listed}", value)
    return value


def check_seeds(seed, name: str, caller: str) -> tuple[list[int], bool]:
    """Normalise ``seed`` to a list of non-negative ints.

    Returns the list and whether the caller passed a sequence (results then
    carry a leading replica axis) rather than a single int.
    """
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return [check_int(seed, name, caller, low=0)], False
    if isinstance(seed, (str, bytes)) or not isinstance(seed, Iterable):
        raise _fail(name, caller, "a non-negative int or a non-empty sequence of them", seed)
    seeds = list(seed)
    if not seeds:
        raise _fail(name, caller, "a non-negative int or a non-empty sequence of them", seed)
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0:
            raise _fail(name, caller, "a non-negative int or a non-empty sequence of them", seed)
    return [int(s) for s in seeds], True


def check_finite_array(a, name: str, caller: str, *, ndim: tuple[int, ...],
                       dtype=np.float64) -> np.ndarray:
    """Return ``a`` as a float array with one of the allowed ``ndim`` and finite entries."""
    if np.iscomplexobj(a):              # a float conversion would drop the imaginary part
        raise _fail(name, caller, "an array of real numbers", "a complex array")
    try:
        arr = np.asarray(a, dtype=dtype)
    except (TypeError, ValueError):
        raise _fail(name, caller, "an array of real numbers", type(a).__name__) from None
    if arr.ndim not in ndim:
        dims = " or ".join(f"{k}-d" for k in ndim)
        raise _fail(name, caller, f"a {dims} array", f"an array of shape {arr.shape}")
    if arr.size == 0:
        raise _fail(name, caller, "a non-empty array", f"an array of shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise _fail(name, caller, "an array of finite values",
                    f"an array with {bad} non-finite entries")
    return arr
