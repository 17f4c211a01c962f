"""Parameter constraints as data, and the functions that check them: the one place
where input is validated, with one message form.

:data:`CONSTRAINTS` maps every parameter of :func:`fa.train` and
:class:`fa.experiments.RunConfig` to a list of constraints, any of which may hold (like
scikit-learn's ``_parameter_constraints``); ``None`` allows the value ``None``. An
:class:`Interval` bound may name another parameter (``max_steps >= steps``); an
:class:`Options` set may be a live table such as :data:`fa.model.ACTIVATIONS`.

:func:`validate` checks a dict of parameters against the table and raises ``ValueError``
in the one message form: "The 'lam' parameter of train must be a finite float in the
range [0.0, inf). Got -1.0 instead." :func:`check_int`, :func:`check_float`,
:func:`check_option`, :func:`check_seeds`, :func:`check_array` and :func:`check_path`
check one value outside the table in the same form. Entry points check their arguments
once, up front; the numerical loops behind them trust their inputs.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .model import ACTIVATIONS, RULES

DATA_KINDS = ("linear", "teacher")
LAM_SCHEDULES = ("constant", "release", "decay")
CONVERGE_ON = ("loss", "alignment")
METHODS = ("auto", "rowspace", "direct", "reference")
DTYPES = ("float64", "float32")
BACKENDS = ("numpy", "array_api_strict", "torch", "cupy")
_CLOSED = ("both", "left", "right", "neither")


class Constraint:
    """A value of the type(s) ``types``, kept as it is and described as ``description``."""

    types, description = object, ""

    def accepts(self, x, params) -> bool:
        return isinstance(x, self.types)

    def normalise(self, x):
        return x

    def describe(self, params) -> str:
        return self.description


class Interval(Constraint):
    """A real or integer number in ``[low, high]`` (ends per ``closed``; None: unbounded);
    a bound may be the name of another parameter, whose validated value is then used."""

    def __init__(self, kind, low=None, high=None, *, closed="both"):
        assert kind in (int, float) and closed in _CLOSED
        self.kind, self.low, self.high, self.closed = kind, low, high, closed
        self.left_open = closed in ("right", "neither")
        self.right_open = closed in ("left", "neither")

    def _bounds(self, params):
        def value(bound):
            return params.get(bound) if isinstance(bound, str) else bound
        return value(self.low), value(self.high)

    def accepts(self, x, params) -> bool:
        number = numbers.Integral if self.kind is int else numbers.Real
        if isinstance(x, (bool, np.bool_)) or not isinstance(x, number) or not math.isfinite(x):
            return False
        low, high = self._bounds(params)
        if low is not None and (x < low or (self.left_open and x == low)):
            return False
        return high is None or not (x > high or (self.right_open and x == high))

    def normalise(self, x):
        return self.kind(x)

    def describe(self, params) -> str:
        low, high = self._bounds(params)
        if self.kind is int:
            low = None if low is None else low + self.left_open
            high = None if high is None else high - self.right_open
            if low is not None and high is not None:
                return f"an int in the range [{low}, {high}]"
            if low is not None or high is not None:
                return f"an int {'>=' if high is None else '<='} {low if high is None else high}"
            return "an int"
        left = "(" if low is None or self.left_open else "["
        right = ")" if high is None or self.right_open else "]"
        lo = "-inf" if low is None else float(low)
        hi = "inf" if high is None else float(high)
        return f"a finite float in the range {left}{lo}, {hi}{right}"


class Options(Constraint):
    """One of a set of names (a tuple, or a live mapping whose keys are the names)."""

    def __init__(self, names):
        self.names = names

    def accepts(self, x, params) -> bool:
        return isinstance(x, str) and x in self.names

    def describe(self, params) -> str:
        return "one of " + ", ".join(repr(o) for o in self.names)


class Dtype(Options):
    """A floating-point type by name or as a numpy dtype (normalised to its name)."""

    def _name(self, x):
        if isinstance(x, str):
            return x
        try:
            return str(np.dtype(x))
        except TypeError:
            return None

    def accepts(self, x, params) -> bool:
        return self._name(x) in self.names

    def normalise(self, x):
        return self._name(x)


class Boolean(Constraint):
    """``True`` or ``False`` (numpy's bool too)."""

    types, description = (bool, np.bool_), "a bool"

    def normalise(self, x):
        return bool(x)


class Text(Constraint):
    """Any string (a label)."""

    types, description = str, "a str"


class Seeds(Constraint):
    """A non-negative int, or a non-empty sequence of distinct ones (normalised to a list):
    a repeated seed would train the same replica twice."""

    description = "a non-negative int or a non-empty sequence of distinct ones"

    def accepts(self, x, params) -> bool:
        if isinstance(x, (str, bytes)):
            return False
        seeds = [x] if isinstance(x, numbers.Integral) else \
            list(x) if isinstance(x, Iterable) else []
        return bool(seeds) and len(set(seeds)) == len(seeds) and all(
            isinstance(s, numbers.Integral) and not isinstance(s, (bool, np.bool_)) and s >= 0
            for s in seeds)

    def normalise(self, x):
        return int(x) if isinstance(x, numbers.Integral) else [int(s) for s in x]


#: The values each parameter accepts (any listed constraint may hold).
CONSTRAINTS = {
    "activation": [Options(ACTIVATIONS)],
    "width": [Interval(int, 1)],
    "rule": [Options(RULES)],
    "data": [Options(DATA_KINDS)],
    "n": [Interval(int, 1)],
    "d": [Interval(int, 1)],
    "lr": [Interval(float, 0.0, closed="neither")],
    "steps": [Interval(int, 1)],
    "seed": [Seeds()],
    "lam": [Interval(float, 0.0)],
    "lam_schedule": [Options(LAM_SCHEDULES)],
    "lam_until": [Interval(int, 0)],
    "lam_gamma": [Interval(float, 0.0, 1.0, closed="right")],
    "dropout": [Interval(float, 0.0, 1.0, closed="left")],
    "until_converged": [Boolean()],
    "check_every": [Interval(int, 1)],
    "tol": [Interval(float, 0.0, closed="neither")],
    "converge_on": [Options(CONVERGE_ON)],
    "max_steps": [Interval(int, "steps"), None],
    "record_every": [Interval(int, 1)],
    "dtype": [Dtype(DTYPES)],
    "method": [Options(METHODS)],
    "memory_budget": [Interval(int, 1)],
    "backend": [Options(BACKENDS), None],
    "device": [Text(), None],
    "regularizer": [Text(), None],
    "strength": [Interval(float), None],
}

#: Parameters only used with one value of another: ``name -> (other, value)``.
ONLY_WITH = {"lam_until": ("lam_schedule", "release"), "lam_gamma": ("lam_schedule", "decay")}
#: Optional parameters that act only when another one is set (true or not None); refused
#: otherwise rather than silently ignored.
NEEDS = {"max_steps": "until_converged", "device": "backend"}


def fail(name, caller, expected, got) -> ValueError:
    """The project's one message: "The '<name>' parameter of <caller> must be <expected>.
    Got <got> instead." (returned, for the caller to raise)."""
    return ValueError(f"The '{name}' parameter of {caller} must be {expected}. "
                      f"Got {got!r} instead.")


def check(name: str, value, caller: str, params: dict | None = None):
    """Return ``value`` normalised if :data:`CONSTRAINTS` ``[name]`` accepts it, else raise;
    ``params``: the validated parameters that bounds may refer to."""
    params = {} if params is None else params
    allowed = CONSTRAINTS[name]
    if value is None and None in allowed:
        return None
    for c in allowed:
        if c is not None and c.accepts(value, params):
            return c.normalise(value)
    expected = " or ".join("None" if c is None else c.describe(params) for c in allowed)
    raise fail(name, caller, expected, value)


def validate(params: dict, caller: str) -> dict:
    """Check every entry of ``params`` against :data:`CONSTRAINTS`; return them normalised.

    Parameters are checked in the table's order (a bound naming another parameter
    sees its normalised value). One of :data:`ONLY_WITH` is required with its partner's
    value and must be None otherwise; one of :data:`NEEDS` must be None without its partner.

    Raises
    ------
    ValueError
        "The '<name>' parameter of <caller> must be <what the table allows>. Got <value>
        instead." for the first invalid parameter; also for a name not in the table.
    """
    unknown = [k for k in params if k not in CONSTRAINTS]
    if unknown:
        raise ValueError(f"validate knows no parameter {unknown[0]!r} (called by {caller}); "
                         "add it to fa.constraints.CONSTRAINTS.")
    out = {}
    for name in CONSTRAINTS:
        other, used_with = ONLY_WITH.get(name, (None, None))
        if name not in params and (other is None or params.get(other) != used_with):
            continue
        value = params.get(name)
        if other is not None and params.get(other) != used_with:
            if value is not None:
                raise ValueError(f"The '{name}' parameter of {caller} is only used with "
                                 f"{other}={used_with!r}. Got {name}={value!r} with "
                                 f"{other}={params.get(other)!r} instead.")
            out[name] = None
            continue
        out[name] = check(name, value, caller, {**params, **out})
    for name, partner in NEEDS.items():
        if out.get(name) is not None and not out.get(partner):
            raise ValueError(f"The '{name}' parameter of {caller} is only used with "
                             f"{partner} set. Got {name}={out[name]!r} with "
                             f"{partner}={out.get(partner)!r} instead.")
    return out


def _check_one(constraint, value, name: str, caller: str):
    if not constraint.accepts(value, {}):
        raise fail(name, caller, constraint.describe({}), value)
    return constraint.normalise(value)


def check_int(value, name: str, caller: str, *, low: int | None = None,
              high: int | None = None) -> int:
    """Return ``value`` as an int if it is an integer in ``[low, high]``."""
    return _check_one(Interval(int, low, high), value, name, caller)


def check_float(value, name: str, caller: str, *, low: float | None = None,
                high: float | None = None, low_open: bool = False,
                high_open: bool = False) -> float:
    """Return ``value`` as a float if it is a finite real in the given interval."""
    closed = _CLOSED[2 * low_open + high_open]        # "both", "left", "right", "neither"
    return _check_one(Interval(float, low, high, closed=closed), value, name, caller)


def check_option(value, name: str, caller: str, options) -> str:
    """Return ``value`` if it is one of ``options`` (the message lists them)."""
    return _check_one(Options(tuple(options)), value, name, caller)


def check_seeds(seed, name: str, caller: str) -> tuple[list[int], bool]:
    """``seed`` as a list of distinct non-negative ints, and whether it was a sequence
    (results then carry a leading replica axis) rather than a single int."""
    seeds = _check_one(Seeds(), seed, name, caller)
    return ([seeds], False) if isinstance(seeds, int) else (seeds, True)


def check_path(path, name: str, caller: str) -> Path:
    """Return ``path`` as a ``Path`` (``~`` expanded) if it is a str or ``os.PathLike``."""
    if not isinstance(path, (str, os.PathLike)):
        raise fail(name, caller, "a path (a str or os.PathLike)", path)
    return Path(path).expanduser()


def check_array(a, name: str, caller: str, *, ndim: tuple[int, ...],
                dtype=np.float64) -> np.ndarray:
    """Return ``a`` as a float array with one of the allowed ``ndim`` and finite entries."""
    if np.iscomplexobj(a):              # a float conversion would drop the imaginary part
        raise fail(name, caller, "an array of real numbers", "a complex array")
    try:
        arr = np.asarray(a, dtype=dtype)
    except (TypeError, ValueError):
        raise fail(name, caller, "an array of real numbers", type(a).__name__) from None
    if arr.ndim not in ndim:
        dims = " or ".join(f"{k}-d" for k in ndim)
        raise fail(name, caller, f"a {dims} array", f"an array of shape {arr.shape}")
    if arr.size == 0:
        raise fail(name, caller, "a non-empty array", f"an array of shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise fail(name, caller, "an array of finite values",
                   f"an array with {bad} non-finite entries")
    return arr
