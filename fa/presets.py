"""Every figure's protocol in one place: the paper scale and the quick scale.

``PROTOCOL`` is the paper's table of step sizes and strengths (docs/protocols.md). Each
figure has one :class:`FigureSettings` at ``"paper"`` scale, written out in full, and a
``"quick"`` scale given as its differences from the paper, each with the reason.
:func:`resolve` applies a notebook's overrides, rejecting unknown names and wrong types.
"""

from __future__ import annotations

import dataclasses
import numbers
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .constraints import check_option, fail
from .figures import BY_KEY
from .model import ACTIVATIONS


@dataclass(frozen=True)
class ActivationProtocol:
    """One row of the paper's per-activation table (plus the F3-dropout row)."""

    data: str                            # "linear" or "teacher" data generator
    lr: float                            # step size eta with L2
    lambdas: tuple[float, ...]           # L2 strengths lam on beta
    dropout_lr: float                    # step size eta with dropout (F3-dropout)
    dropout_rates: tuple[float, ...]     # dropout rates q (F3-dropout)
    dtype: str                           # F3's precision: the authors' float32, but float64
                                         # for linear (L2 runs take up to 8 T(p) updates, and
                                         # its rank-one step makes float64 cheap)


#: The paper's activations, one panel each (an activation added to fa.ACTIVATIONS joins a
#: figure once it has a row in PROTOCOL and is asked for by name).
PAPER_ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid")

PROTOCOL = {
    "linear": ActivationProtocol("linear", 1e-3, (0.0, 0.2, 0.3, 0.5), 1e-2, (0.0, 0.1, 0.2, 0.3),
                                 "float64"),
    "relu": ActivationProtocol("teacher", 1e-2, (0.0, 0.02, 0.05, 0.2), 1e-3, (0.0, 0.4, 0.6, 0.8),
                               "float32"),
    "tanh": ActivationProtocol("teacher", 1e-1, (0.0, 0.001, 0.002, 0.005), 1e-1,
                               (0.0, 0.5, 0.7, 0.9), "float32"),
    "sigmoid": ActivationProtocol("teacher", 1e-1, (0.0, 0.001, 0.003, 0.01), 1e-1,
                                  (0.0, 0.5, 0.7, 0.9), "float32"),
}


def width_steps(p: int, base: int = 5000) -> int:
    """Minimum training length ``T(p) = round(base * sqrt(p) // round(sqrt(200)))`` at
    width ``p`` in the width sweep, exactly the authors' code with ``base = 5000``."""
    return int(np.rint(base * np.sqrt(p) // np.rint(np.sqrt(200))))


@dataclass(frozen=True)
class FigureSettings:
    """What one figure's sweep runs. A notebook's parameters override these by name."""

    activations: tuple[str, ...]              # one panel per activation psi
    widths: tuple[int, ...]                   # widths p
    lambdas: tuple[float, ...] | None         # L2 strengths; None: each activation's own list
    dropout_rates: tuple[float, ...] | None   # dropout rates; None: each activation's own list
    n_seeds: int                              # seeds per (width, lam): fresh data, W, beta, b
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
        return (self.dropout_rates if self.dropout_rates is not None
                else PROTOCOL[activation].dropout_rates)

    def dtype_for(self, activation: str) -> str:
        """The floating-point precision of ``activation``'s networks."""
        return self.dtype if self.dtype is not None else PROTOCOL[activation].dtype


# F1: p = 3200, 5000 steps, 50 seeds per lambda. F2 trains the same networks (plus
# regularise-then-release and dropout), so its L2 runs come from F1's cache at either scale.
_F1_F2 = FigureSettings(
    activations=PAPER_ACTIVATIONS, widths=(3200,), lambdas=None, dropout_rates=None,
    n_seeds=50, steps=5000, until_converged=False, record_every=10)
_F1_F2_QUICK = dict(
    widths=(200,),        # p = 3200 costs 16x more per step; p = 200 = 4n is still wide
    n_seeds=3,            # enough for a visible +-1 sd band
    record_every=20,      # 251 points per curve
)

PAPER = {
    "convergence": _F1_F2,
    "alignment_dynamics": _F1_F2,
    # F3 and F3-dropout: T(p) steps, then the stopping protocol; dtype per PROTOCOL.
    "width_dependence": FigureSettings(
        activations=PAPER_ACTIVATIONS, widths=(200, 400, 800, 1600, 3200, 6400, 12800),
        lambdas=None, dropout_rates=None, n_seeds=50, steps=5000, until_converged=True,
        record_every=1000, dtype=None),
}

#: F3-dropout's own widths (the paper's appendix), used when the caller does not set widths.
DROPOUT_WIDTHS = {"paper": (200, 800, 3200, 12800), "quick": (100, 200, 400, 800)}

QUICK_CHANGES = {
    "convergence": _F1_F2_QUICK,
    "alignment_dynamics": _F1_F2_QUICK,
    "width_dependence": dict(
        widths=(100, 200, 400, 800),   # an 8x range of p, enough to fit a slope
        n_seeds=3,
        steps=1000,           # T(p) from a base of 1000 instead of 5000 (5x shorter)
        until_converged=False,  # the stopping protocol can run 10x longer; off for speed
    ),
}

SCALES = ("quick", "paper")
FIGURES = tuple(PAPER)
#: The figures of one network size: their figure, summary and claims average over seeds,
#: so several widths would be averaged together.
ONE_WIDTH = ("convergence", "alignment_dynamics")


def settings(figure: str, scale: str = "quick", **overrides) -> FigureSettings:
    """The settings of ``figure`` at ``scale``, with ``overrides`` applied.

    Parameters
    ----------
    figure : {"convergence", "alignment_dynamics", "width_dependence"}
    scale : {"quick", "paper"}
        ``"paper"`` is exactly the paper's protocol (docs/protocols.md); ``"quick"`` a few
        differences that run in seconds to a minute.
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
    figure = check_option(figure, "figure", "settings", FIGURES)
    return resolve(PAPER[figure], QUICK_CHANGES[figure], scale, overrides,
                   caller=BY_KEY[figure].notebook, rules=lambda s: _rules(s, figure))


def resolve(paper, quick: dict, scale: str, overrides: dict, *, caller: str, rules=None):
    """The one settings mechanism of every figure: defaults, scale, overrides, checks.

    Parameters
    ----------
    paper : frozen dataclass
        The figure's settings at the paper's protocol, every field commented.
    quick : dict
        The quick scale as differences from ``paper``.
    scale : {"quick", "paper"}
    overrides : dict
        A notebook's parameters by field name; ``None`` keeps the scale's value. Each
        is coerced to its field's declared type (a list to a tuple).
    caller : str
        Who asks, for the messages (the notebook's name).
    rules : callable, optional
        ``rules(s)`` yields ``(name, holds, expected)`` for rules across fields.

    Returns
    -------
    The settings, a new instance of ``paper``'s class.

    Raises
    ------
    ValueError
        For an unknown scale or name (listing the accepted ones), or a value of the
        wrong type or outside its rule.
    """
    scale = check_option(scale, "scale", caller, SCALES)
    base = paper if scale == "paper" else dataclasses.replace(paper, **quick)
    kinds = typing.get_type_hints(type(paper))   # real types, however the module wrote them
    unknown = [name for name in overrides if name not in kinds]
    if unknown:
        raise ValueError(f"Unknown parameter {unknown[0]!r} for {caller}; accepted names: "
                         f"{', '.join(kinds)}.")
    changes = {name: coerce(name, value, kinds[name], caller)
               for name, value in overrides.items() if value is not None}
    result = dataclasses.replace(base, **changes)
    for name, holds, expected in (rules(result) if rules else ()):
        if not holds:
            value = getattr(result, name)   # shown as the notebook wrote it: a list
            raise fail(name, caller, expected, list(value) if isinstance(value, tuple) else value)
    return result


_SCALARS = {bool: ((bool, np.bool_), ()), int: (numbers.Integral, (bool, np.bool_)),
            float: (numbers.Real, (bool, np.bool_)), str: (str, ())}


def coerce(name: str, value, kind, caller: str):
    """``value`` as its field's declared type ``kind`` (``int``, ``tuple[float, ...] | None``,
    ...): scalars keep their type, lists become tuples of their items."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):   # X | None: an X
        kind = next(k for k in typing.get_args(kind) if k is not type(None))
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise fail(name, caller, f"a list of {item.__name__}s (from papermill, a list "
                       f"goes through -y: -y '{name}: [...]')", value)
        return tuple(coerce(name, v, item, caller) for v in value)
    accepted, refused = _SCALARS[kind]
    if not isinstance(value, accepted) or isinstance(value, refused):
        raise fail(name, caller, f"an {kind.__name__}" if kind is int else f"a {kind.__name__}",
                   value)
    return kind(value)


def figure_activations(names, expected: str) -> tuple[bool, str]:
    """Whether a figure can run every activation of ``names`` (in :data:`fa.ACTIVATIONS`,
    with a row in :data:`PROTOCOL`), and the message's ``expected`` part: ``expected``
    ("one of", "a non-empty list of names from") and the names it can run."""
    usable = [a for a in ACTIVATIONS if a in PROTOCOL]
    text = f"{expected} {', '.join(map(repr, usable))}"
    unready = [a for a in names if a in ACTIVATIONS and a not in PROTOCOL]
    if unready:
        text += (f" ({unready[0]!r} is in fa.ACTIVATIONS but has no row in "
                 "fa.presets.PROTOCOL, which gives a figure its data, step size and lambdas: "
                 "see docs/extending.md)")
    return bool(names) and all(a in usable for a in names), text


def _rules(s: FigureSettings, figure: str):
    """The rules of F1-F3's settings across fields, for :func:`resolve`."""
    yield "activations", *figure_activations(s.activations, "a non-empty list of names from")
    yield "widths", bool(s.widths) and min(s.widths) >= 1, "a non-empty list of ints >= 1"
    if figure in ONE_WIDTH:
        yield "widths", len(s.widths) == 1, \
            "a list of one width (to compare widths, run once per width, or see notebook 03)"
    yield "lambdas", s.lambdas is None or (bool(s.lambdas) and min(s.lambdas) >= 0), \
        "a non-empty list of floats >= 0"
    yield "dropout_rates", s.dropout_rates is None or all(0 <= q < 1 for q in s.dropout_rates), \
        "a list of floats in [0, 1)"
    for name in ("n_seeds", "steps", "record_every", "n", "d"):
        yield name, getattr(s, name) >= 1, "an int >= 1"
    yield "release_fraction", 0 < s.release_fraction < 1, "a float in (0, 1)"
    yield "dtype", s.dtype in ("float64", "float32", None), "'float64' or 'float32'"
