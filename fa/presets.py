"""Every figure's protocol in one place: the paper scale and the quick scale.

``PROTOCOL`` is the paper's table of step sizes and strengths (docs/protocols.md). Each figure has one
:class:`FigureSettings` at ``"paper"`` scale, written out in full from
the paper and the authors' code, and a ``"quick"`` scale given only as its differences from the paper,
each with the reason. :func:`settings` applies a notebook's overrides through
one function that rejects unknown names and wrong types.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass

import numpy as np

from .model import ACTIVATIONS


@dataclass(frozen=True)
class ActivationProtocol:
    """One row of the paper's per-activation table (plus the F3-dropout row)."""

    data: str                            # "linear" or "teacher" data generator
    lr: float                            # step size eta with L2
    lambdas: tuple[float, ...]           # L2 strengths lam on beta
    dropout_lr: float                    # step size eta with dropout (F3-dropout)
    dropout_rates: tuple[float, ...]     # dropout rates q (F3-dropout)
    dtype: str                           # F3's precision. The authors ran float32 throughout;
                                         # the linear network keeps float64 here: its L2 runs
                                         # take up to 8 T(p) updates, and its rank-one step
                                         # makes float64 cheap


#: The paper's activations, one panel each (an activation added to fa.ACTIVATIONS joins a
#: figure once it has a row in PROTOCOL and is asked for by name).
PAPER_ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid")

PROTOCOL = {
    "linear": ActivationProtocol("linear", 1e-3, (0.0, 0.2, 0.3, 0.5), 1e-2, (0.0, 0.1, 0.2, 0.3),
                                 "float64"),
    "relu": ActivationProtocol("teacher", 1e-2, (0.0, 0.02, 0.05, 0.2), 1e-3, (0.0, 0.4, 0.6, 0.8),
                               "float32"),
    "tanh": ActivationProtocol("teacher", 1e-1, (0.0, 0.001, 0.002, 0.005), 1e-1, (0.0, 0.5, 0.7, 0.9),
                               "float32"),
    "sigmoid": ActivationProtocol("teacher", 1e-1, (0.0, 0.001, 0.003, 0.01), 1e-1, (0.0, 0.5, 0.7, 0.9),
                                  "float32"),
}


def width_steps(p: int, base: int = 5000) -> int:
    """Minimum training length at width ``p`` in the width sweep (the authors' code).

    ``T(p) = round(base * sqrt(p) // round(sqrt(200)))``; with ``base = 5000``
    this is exactly the authors' ``int(np.rint(5000 * np.sqrt(p) // np.rint(np.sqrt(200))))``.
    """
    return int(np.rint(base * np.sqrt(p) // np.rint(np.sqrt(200))))


@dataclass(frozen=True)
class FigureSettings:
    """What one figure's sweep runs. A notebook's parameters override these by name."""

    activations: tuple[str, ...]              # one panel per activation psi
    widths: tuple[int, ...]                   # widths p
    lambdas: tuple[float, ...] | None         # L2 strengths; None: each activation's own list
    dropout_rates: tuple[float, ...] | None   # dropout rates; None: each activation's own list
    n_seeds: int                              # seeds per (width, lam); each seed: fresh data, W, beta, b
    steps: int                                # steps (F3: base of T(p), the steps at p ~ 200)
    until_converged: bool                     # F3's stopping protocol after T(p) steps
    record_every: int                         # steps between recorded loss / alignment values
    n: int = 50                               # samples
    d: int = 150                              # input dimension
    release_fraction: float = 0.5             # F2: L2 switched off after this fraction of steps
    dtype: str | None = "float64"             # "float64" or "float32" (the paper used float32);
                                              # None: each activation's own (PROTOCOL)

    def lambdas_for(self, activation: str) -> tuple[float, ...]:
        """The L2 strengths used for ``activation``."""
        return self.lambdas if self.lambdas is not None else PROTOCOL[activation].lambdas

    def dropout_rates_for(self, activation: str) -> tuple[float, ...]:
        """The dropout rates used for ``activation``."""
        if self.dropout_rates is not None:
            return self.dropout_rates
        return PROTOCOL[activation].dropout_rates

    def dtype_for(self, activation: str) -> str:
        """The floating-point precision of ``activation``'s networks."""
        return self.dtype if self.dtype is not None else PROTOCOL[activation].dtype


PAPER = {
    # F1: p = 3200, 5000 steps, 50 seeds per lambda.
    "convergence": FigureSettings(
        activations=PAPER_ACTIVATIONS, widths=(3200,), lambdas=None, dropout_rates=None,
        n_seeds=50, steps=5000, until_converged=False, record_every=10),
    # F2: the same networks as F1, plus regularise-then-release and dropout.
    "alignment_dynamics": FigureSettings(
        activations=PAPER_ACTIVATIONS, widths=(3200,), lambdas=None, dropout_rates=None,
        n_seeds=50, steps=5000, until_converged=False, record_every=10),
    # F3 and F3-dropout: T(p) steps, then the stopping protocol; float32 as the authors ran
    # it, except the linear network (PROTOCOL).
    "width_dependence": FigureSettings(
        activations=PAPER_ACTIVATIONS, widths=(200, 400, 800, 1600, 3200, 6400, 12800),
        lambdas=None, dropout_rates=None, n_seeds=50, steps=5000, until_converged=True,
        record_every=1000, dtype=None),
}

#: F3-dropout's own widths (the paper's appendix), used when the caller does not set widths.
DROPOUT_WIDTHS = {"paper": (200, 800, 3200, 12800), "quick": (100, 200, 400, 800)}

QUICK_CHANGES = {
    "convergence": dict(
        widths=(200,),        # p = 3200 costs 16x more per step; p = 200 = 4n is still wide
        n_seeds=3,            # enough for a visible +-1 sd band
        record_every=20,      # 251 points per curve
    ),
    "alignment_dynamics": dict(
        widths=(200,),        # as convergence, so its L2 runs come from the same cache
        n_seeds=3,
        record_every=20,
    ),
    "width_dependence": dict(
        widths=(100, 200, 400, 800),   # an 8x range of p, enough to fit a slope
        n_seeds=3,
        steps=1000,           # T(p) from a base of 1000 instead of 5000 (5x shorter)
        until_converged=False,  # the stopping protocol can run 10x longer; off for speed
    ),
}

SCALES = ("quick", "paper")
FIGURES = tuple(PAPER)


def settings(figure: str, scale: str = "quick", **overrides) -> FigureSettings:
    """The settings of ``figure`` at ``scale``, with ``overrides`` applied.

    Parameters
    ----------
    figure : {"convergence", "alignment_dynamics", "width_dependence"}
    scale : {"quick", "paper"}
        ``"paper"`` is exactly the paper's protocol (docs/protocols.md); ``"quick"`` is a small set of
        differences that runs in seconds to a minute.
    **overrides
        Any field of :class:`FigureSettings`; ``None`` keeps the scale's value
        (so a notebook's ``widths = None`` means "the scale's widths").

    Returns
    -------
    FigureSettings

    Raises
    ------
    ValueError
        For an unknown figure, scale or field name, or a value of the wrong type.
    """
    from .constraints import check_option

    figure = check_option(figure, "figure", "settings", FIGURES)
    scale = check_option(scale, "scale", "settings", SCALES)
    base = PAPER[figure]
    if scale == "quick":
        base = dataclasses.replace(base, **QUICK_CHANGES[figure])
    fields = {f.name: f for f in dataclasses.fields(FigureSettings)}
    changes = {}
    for name, value in overrides.items():
        if name not in fields:
            raise ValueError(f"Unknown setting {name!r} for settings(); accepted names: "
                             f"{', '.join(fields)}.")
        if value is not None:
            changes[name] = coerce(name, value, getattr(base, name))
    result = dataclasses.replace(base, **changes)
    _check(result)
    return result


def coerce(name: str, value, default):
    """Return a setting's override ``value`` with the type of the ``default`` it replaces.

    The one override rule of every figure's settings (:func:`settings`,
    :func:`fa.mechanisms.settings`): bools, ints, floats and strings keep their type;
    lists become tuples (of ints for ``widths``, of known names for ``activations``,
    of floats otherwise, non-empty except ``dropout_rates``).

    Parameters
    ----------
    name : str
        The setting, for the message (and the list rules above).
    value
        The override.
    default
        The value it replaces (``None`` for a tuple setting stands for a tuple).

    Returns
    -------
    The coerced value.

    Raises
    ------
    ValueError
        "The '<name>' parameter of settings must be <type>. Got <value> instead."
    """
    def fail(expected):
        return ValueError(f"The '{name}' parameter of settings must be {expected}. "
                          f"Got {value!r} instead.")

    if isinstance(default, bool):
        if not isinstance(value, (bool, np.bool_)):
            raise fail("a bool")
        return bool(value)
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise fail("an int")
        return int(value)
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise fail("a float")
        return float(value)
    if isinstance(default, str) or name == "dtype":
        if not isinstance(value, str):
            raise fail("a string")
        return value
    # tuples (or None defaults of tuple fields)
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise fail("a list")
    items = tuple(value)
    if not items and name != "dropout_rates":   # no dropout rates: no dropout row
        raise fail("a non-empty list")
    if name == "activations":
        for a in items:
            if a not in ACTIVATIONS:
                raise fail(f"a list of activations from {', '.join(map(repr, ACTIVATIONS))}")
        return items
    if name == "widths":
        if any(isinstance(w, bool) or not isinstance(w, numbers.Integral) or w < 1 for w in items):
            raise fail("a list of ints >= 1")
        return tuple(int(w) for w in items)
    if any(isinstance(v, bool) or not isinstance(v, numbers.Real) for v in items):
        raise fail("a list of floats")
    return tuple(float(v) for v in items)


def _check(s: FigureSettings) -> None:
    def fail(name, expected, got):
        raise ValueError(f"The '{name}' parameter of settings must be {expected}. "
                         f"Got {got!r} instead.")

    if s.n_seeds < 1:
        fail("n_seeds", "an int >= 1", s.n_seeds)
    if s.steps < 1:
        fail("steps", "an int >= 1", s.steps)
    if s.record_every < 1:
        fail("record_every", "an int >= 1", s.record_every)
    if s.n < 1 or s.d < 1:
        fail("n" if s.n < 1 else "d", "an int >= 1", min(s.n, s.d))
    if s.lambdas is not None and any(v < 0 for v in s.lambdas):
        fail("lambdas", "a list of floats >= 0", s.lambdas)
    if s.dropout_rates is not None and any(not 0 <= v < 1 for v in s.dropout_rates):
        fail("dropout_rates", "a list of floats in [0, 1)", s.dropout_rates)
    if not 0 < s.release_fraction < 1:
        fail("release_fraction", "a float in (0, 1)", s.release_fraction)
    if s.dtype not in ("float64", "float32", None):
        fail("dtype", "'float64' or 'float32'", s.dtype)
