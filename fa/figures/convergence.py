"""Figure F1: training loss vs step for FA at each lambda, and BP.

Claim (the paper, and docs/model.md): without regularisation FA drives the training loss
to zero exponentially fast (a straight line on a log scale); with a constant
``lam > 0`` the loss levels off at a floor that rises with ``lam``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import plotting
from . import _common
from ..claims import Claim
from ..experiments import RunConfig
from ..presets import PROTOCOL, FigureSettings

NAME = "convergence"
#: The rules of the figure: FA at every lambda; each other rule once, at lambda = 0.
RULES = ("fa", "bp")
#: Below this fraction of the initial loss, float64 round-off shapes the curve
#: (|f - y| ~ 1e-13 of |y| ~ 1).
ROUND_OFF = 1e-20


def configs(s: FigureSettings, rules=None) -> list[RunConfig]:
    """FA at every lambda of each activation, and each other rule of ``rules`` (default
    :data:`RULES`, names in :data:`fa.RULES`) without regularisation."""
    rules = _common.rule_names(rules, RULES, NAME)
    out = []
    for act in s.activations:
        for p in s.widths:
            common = dict(activation=act, width=p, data=PROTOCOL[act].data, n=s.n, d=s.d,
                          lr=PROTOCOL[act].lr, steps=s.steps, record_every=s.record_every,
                          dtype=s.dtype_for(act), regularizer="l2")
            for rule in rules:
                out += [RunConfig(rule=rule, lam=lam, strength=lam, **common)
                        for lam in (s.lambdas_for(act) if rule == "fa" else (0.0,))]
    return out


def sweep_plan(scale: str = "paper", **overrides) -> tuple[list[RunConfig], list[int]]:
    """The configs and seeds the notebook runs at ``scale`` with its parameters ``overrides``."""
    return _common.sweep_plan(NAME, configs, scale, overrides)


def tidy(sweep, results_dir=None) -> pd.DataFrame:
    """The figure's table from the sweep of :func:`configs`, also written to
    ``<results_dir>/convergence.csv``: activation, width, rule, lam, seed, step, loss
    (diverged runs left out, and named: :func:`fa.figures._common.noted`)."""
    curves, diverged = _common.finished(sweep.curves, sweep.runs)
    curves = curves[["activation", "width", "rule", "lam", "seed", "step", "loss"]]
    curves = _common.noted(curves, diverged, len(sweep.runs))
    _common.write_csv(curves, NAME, results_dir)
    return curves


def plot(curves: pd.DataFrame):
    """Loss vs step on a log scale, one panel per activation (geometric mean x/÷ sd)."""
    plotting.use_style()
    activations = list(dict.fromkeys(curves["activation"]))
    others = [r for r in dict.fromkeys(curves["rule"]) if r != "fa"]
    fig, axes = plotting.subplots(len(activations), width=4.0, height=4.6)
    stats = _common.log_mean_sd(curves, ["activation", "rule", "lam", "step"], "loss")
    for ax, act in zip(axes[0], activations):
        here = stats[stats["activation"] == act]
        plotting.bands(ax, here[here["rule"] == "fa"], "lam", lambda lam: f"FA, λ = {lam:g}")
        for rule, color in zip(others, plotting.OTHER_RULE_COLORS):
            g = here[here["rule"] == rule]
            if len(g):
                plotting.band(ax, g["step"], g["mean"], g["low"], g["high"],
                              label=f"{rule.upper()}, λ = 0", color=color, ls="--")
        ax.set_yscale("log")
        if here["mean"].min() < ROUND_OFF:
            ax.text(0.97, 0.4, "a flat bottom near 1e-30 is\nfloat64 round-off, not a limit",
                    transform=ax.transAxes, ha="right", va="center", fontsize="x-small")
        ax.set_title(plotting.TITLES.get(act, act))
        ax.set_xlabel("step t")
        plotting.legend_below(ax, "rule, λ")
    axes[0, 0].set_ylabel("training loss L (mean squared error)")
    fig.suptitle(f"F1 · training loss, geometric mean over {curves['seed'].nunique()} seeds, "
                 "band ± 1 sd of log10 L")
    fig.tight_layout()
    return fig


def summary(curves: pd.DataFrame) -> pd.DataFrame:
    """The numbers behind the figure: initial and final loss per (activation, rule, lam)."""
    last = curves.groupby(["activation", "rule", "lam", "seed"]).agg(
        initial=("loss", "first"), final=("loss", "last")).reset_index()
    last["orders_dropped"] = np.log10(last["initial"] / last["final"])
    return (last.groupby(["activation", "rule", "lam"])
            .agg(initial_loss=("initial", "mean"), final_loss=("final", "mean"),
                 final_loss_sd=("final", "std"), orders_dropped=("orders_dropped", "mean"))
            .reset_index())


def claims(curves: pd.DataFrame, *, min_orders: float = 3.0) -> list[Claim]:
    """F1's expected properties, measured per activation.

    1. FA with ``lam = 0`` lowers the loss by at least ``min_orders`` orders of
       magnitude, and exponentially: in the second half of the run (or of the part
       above float64 round-off) ``log10 L`` falls at least a quarter as much as in
       the first half (a power law would flatten out far more).
    2. Every ``lam > 0`` levels off: over the last 20% of steps its loss falls by
       less than 0.15 decades (30%), and its floor is above the ``lam = 0`` final loss.
    3. The floor rises with ``lam``.
    4. Every other rule (BP, ``lam = 0``) lowers the loss by ``min_orders`` too.

    First of all, no run diverged (those that did are not in ``curves``).
    """
    out = [_common.diverged_claim("F1", curves)]
    for act, here in curves.groupby("activation", sort=False):
        tag = f"F1 {act}"
        fa_runs = here[here["rule"] == "fa"]
        curves_by_lam = {lam: _mean_curve(g) for lam, g in fa_runs.groupby("lam")}
        free = curves_by_lam.pop(0.0, None)
        if free is not None:
            orders = np.log10(free.iloc[0] / free.iloc[-1])
            # The mean of the logs can hide a seed that is stuck: say the worst one.
            ends = fa_runs[fa_runs["lam"] == 0].groupby("seed")["loss"].agg(["first", "last"])
            worst = np.log10(ends["first"] / ends["last"]).min()
            out.append(Claim(tag, f"FA, λ=0: loss falls ≥ {min_orders:g} orders of magnitude",
                             f"{orders:.1f} orders (worst seed {worst:.1f})",
                             bool(orders >= min_orders)))
            first, second = _half_drops(free)
            out.append(Claim(tag, "FA, λ=0: exponential (second-half log-drop ≥ 1/4 of first "
                                  "half)", f"{first:.2f} then {second:.2f} decades",
                             bool(second >= 0.25 * first and second > 0)))
        else:
            out.append(Claim.skipped(tag, "FA, λ=0: loss falls exponentially",
                                     "no λ = 0 run in this sweep (add 0 to lambdas)"))
        for lam, curve in curves_by_lam.items():
            tail = np.log10(curve[curve.index >= 0.8 * curve.index.max()])
            fall = tail.iloc[0] - tail.iloc[-1]
            above = free is None or curve.iloc[-1] > free.iloc[-1]
            out.append(Claim(tag, f"FA, λ={lam:g}: loss levels off (last 20% of steps: "
                             "< 0.15 decades)" + (" at a floor above λ=0's" if free is not None
                                                  else ""),
                             f"last 20%: {fall:.3f} decades; floor {curve.iloc[-1]:.2e}"
                             + (f" vs λ=0 {free.iloc[-1]:.2e}" if free is not None else ""),
                             bool(fall < 0.15 and above)))
        if len(curves_by_lam) > 1:
            floors = [c.iloc[-1] for c in curves_by_lam.values()]
            out.append(Claim(tag, "the floor rises with λ", ", ".join(f"{v:.2e}" for v in floors),
                             bool(np.all(np.diff(floors) > 0))))
        for rule, runs in here[here["rule"] != "fa"].groupby("rule", sort=False):
            curve = _mean_curve(runs)
            orders = np.log10(curve.iloc[0] / curve.iloc[-1])
            out.append(Claim(tag, f"{rule.upper()}, λ=0 converges too (≥ {min_orders:g} orders)",
                             f"{rule.upper()} {orders:.1f} orders", bool(orders >= min_orders)))
    return out


def _mean_curve(runs: pd.DataFrame) -> pd.Series:
    """Geometric-mean loss per step over seeds."""
    return 10 ** np.log10(runs["loss"]).groupby(runs["step"]).mean()


def _half_drops(curve: pd.Series) -> tuple[float, float]:
    """Decades lost in the first and second half of the part above round-off."""
    above = curve[curve > ROUND_OFF * curve.iloc[0]]
    steps = above.index.to_numpy()
    mid = steps[np.searchsorted(steps, steps[-1] / 2)]
    log = np.log10(above)
    return float(log.iloc[0] - log.loc[mid]), float(log.loc[mid] - log.iloc[-1])
