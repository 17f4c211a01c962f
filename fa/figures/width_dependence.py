"""Figures F3 and F3-dropout: final alignment vs width p.

Claim (the paper, and docs/model.md): without regularisation the final ``cos(beta, b)`` decays
towards 0 as the width grows, roughly like a power of ``1/p``; with L2 on
``beta`` (or dropout) it stays bounded away from 0 at every width, higher for
stronger regularisation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import plotting
from . import _common
from ..claims import Claim
from ..experiments import RunConfig
from ..presets import DROPOUT_WIDTHS, PROTOCOL, FigureSettings, width_steps

NAME = "width_dependence"
COLUMNS = ["activation", "rule", "regularizer", "strength", "width", "seed", "alignment", "loss",
           "steps", "capped"]
#: The rules of the figure (its claims are FA's): each trains every configuration.
RULES = ("fa",)
#: F3's stopping protocol: checks every 1000 steps; loss tolerance (L2) and
#: alignment tolerance (dropout), as in the authors' code (docs/protocols.md).
CHECK_EVERY, LOSS_TOL, ALIGNMENT_TOL = 1000, 1e-3, 1e-4


def configs(s: FigureSettings, rules=None, *, dropout_widths=None) -> list[RunConfig]:
    """L2 runs at every (activation, rule, width, lam); dropout runs at every (activation,
    rule, width, q); ``rules`` defaults to :data:`RULES`.

    Each width trains for ``T(p)`` steps (:func:`fa.presets.width_steps`), then, with
    ``s.until_converged``, follows the stopping protocol. Dropout runs use the authors'
    dropout step sizes and rates, at ``dropout_widths`` (default: the L2 widths).
    """
    rules = _common.rule_names(rules, RULES, NAME)
    out = []
    for act in s.activations:
        proto = PROTOCOL[act]
        for rule in rules:
            common = dict(activation=act, data=proto.data, n=s.n, d=s.d, rule=rule,
                          until_converged=s.until_converged, check_every=CHECK_EVERY,
                          dtype=s.dtype_for(act))
            for p in s.widths:
                T = width_steps(p, s.steps)
                out += [RunConfig(width=p, lr=proto.lr, lam=lam, steps=T, record_every=T,
                                  tol=LOSS_TOL, regularizer="l2", strength=lam, **common)
                        for lam in s.lambdas_for(act)]
            for p in s.widths if dropout_widths is None else dropout_widths:
                T = width_steps(p, s.steps)
                out += [RunConfig(width=p, lr=proto.dropout_lr, dropout=q, steps=T,
                                  record_every=T, tol=ALIGNMENT_TOL, converge_on="alignment",
                                  regularizer="dropout", strength=q, **common)
                        for q in s.dropout_rates_for(act)]
    return out


def dropout_widths(s: FigureSettings, scale: str, widths=None, dropout_widths=None):
    """The widths of the dropout row: ``dropout_widths`` if given, else the scale's own
    (``DROPOUT_WIDTHS``) unless the notebook's ``widths`` were given, which it then follows."""
    if dropout_widths is not None:
        return tuple(dropout_widths)
    return DROPOUT_WIDTHS[scale] if widths is None else s.widths


def sweep_plan(scale: str = "paper", **overrides) -> tuple[list[RunConfig], list[int]]:
    """The configs and seeds the notebook runs at ``scale`` with its parameters ``overrides``."""
    s = _common.figure_settings(NAME, scale, overrides)
    widths = dropout_widths(s, scale, overrides.get("widths"), overrides.get("dropout_widths"))
    return configs(s, overrides.get("rules"), dropout_widths=widths), list(range(s.n_seeds))


def caption(s: FigureSettings) -> str:
    """The line under F3's title (:func:`fa.plotting.save_figure`): widths, seeds and T(p)."""
    return plotting.run_caption(s, f"T(p) = {s.steps} sqrt(p / 200) steps" + (
        ", then the authors' stopping rule" if s.until_converged else ""))


def tidy(sweep, results_dir=None) -> pd.DataFrame:
    """One row per run from the sweep of :func:`configs` (diverged runs left out, and named:
    :func:`fa.figures._common.noted`); also written to ``<results_dir>/width_dependence.csv``."""
    runs, diverged = _common.finished(sweep.runs, sweep.runs)
    runs = runs.drop(columns="steps").rename(columns={
        "final_alignment": "alignment", "final_loss": "loss", "steps_taken": "steps"})[COLUMNS]
    runs = _common.noted(runs, diverged, len(sweep.runs))
    _common.write_csv(runs, NAME, results_dir)
    return runs


def dropout_row(runs: pd.DataFrame) -> list[int]:
    """The widths the dropout runs of ``runs`` (from :func:`tidy`) trained at, for the
    figure's manifest: its settings give the L2 widths only."""
    return sorted(int(p) for p in runs.loc[runs["regularizer"] == "dropout", "width"].unique())


def fit_power_law(widths, alignment) -> tuple[float, float]:
    """``(slope, intercept)`` of the least-squares fit ``log alignment = slope * log p +
    intercept``: alignment ~ ``p**slope``."""
    slope, intercept = np.polyfit(np.log(np.asarray(widths, float)),
                                  np.log(np.asarray(alignment, float)), 1)
    return float(slope), float(intercept)


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd of the final alignment, mean steps taken and the number of runs that hit
    the cap, per (activation, rule, regularizer, strength, width)."""
    return (_common.with_rule(runs)
            .groupby(["activation", "rule", "regularizer", "strength", "width"])
            .agg(alignment=("alignment", "mean"), alignment_sd=("alignment", "std"),
                 loss=("loss", "mean"), steps=("steps", "mean"), capped=("capped", "sum"),
                 seeds=("seed", "count"))
            .reset_index())


def slopes(runs: pd.DataFrame) -> pd.DataFrame:
    """The fitted power-law slope of the unregularised (lam = 0) curve per activation (and
    rule), where it has two widths or more and is positive (BP's ``cos(beta, b)`` hovers
    around 0: no power law to fit)."""
    table = summary(runs)
    free = table[(table["regularizer"] == "l2") & (table["strength"] == 0.0)]
    rows = [dict(activation=act, rule=rule, **dict(zip(("slope", "intercept"),
                                                       fit_power_law(g["width"], g["alignment"]))))
            for (act, rule), g in free.groupby(["activation", "rule"], sort=False)
            if g["width"].nunique() > 1 and (g["alignment"] > 0).all()]
    return pd.DataFrame(rows, columns=["activation", "rule", "slope", "intercept"])


def plot(runs: pd.DataFrame):
    """Final alignment vs p (log x), mean +- sd bars; L2 row and dropout row; one column
    per activation (and rule)."""
    plotting.use_style()
    runs = _common.with_rule(runs)
    table = summary(runs)
    fits = slopes(runs).set_index(["activation", "rule"])
    columns = _common.panels(runs)
    regs = [r for r in ("l2", "dropout") if r in set(runs["regularizer"])]
    n_rules = runs["rule"].nunique()
    fig, axes = plotting.subplots(len(columns), len(regs), width=4.0, height=4.8)
    for i, reg in enumerate(regs):
        symbol = "λ" if reg == "l2" else "q"
        for j, (act, rule) in enumerate(columns):
            ax = axes[i, j]
            panel = (table["activation"] == act) & (table["rule"] == rule)
            here = table[panel & (table["regularizer"] == reg)]
            strengths = sorted(here["strength"].unique())
            for value, color in zip(strengths, plotting.palette(len(strengths))):
                g = here[here["strength"] == value]
                ax.errorbar(g["width"], g["alignment"], yerr=g["alignment_sd"], color=color,
                            marker="o", ms=4, capsize=3, lw=1.5, label=f"{symbol} = {value:g}")
            if reg == "l2" and (act, rule) in fits.index:
                p = np.geomspace(here["width"].min(), here["width"].max(), 50)
                slope, intercept = fits.loc[(act, rule), ["slope", "intercept"]]
                ax.plot(p, np.exp(intercept) * p**slope, color="black", ls="--", lw=1,
                        label=f"fit to λ=0: $\\propto p^{{{slope:.2f}}}$")
            if reg == "dropout":   # ring the cells where the stopping rule latched early
                cells = latched(runs[(runs["activation"] == act) & (runs["rule"] == rule)
                                     & (runs["regularizer"] == reg)])
                if len(cells):
                    ax.scatter(cells["width"], cells["alignment"], s=110, marker="s",
                               facecolors="none", edgecolors="black", lw=1.2, zorder=5,
                               label="most runs stopped at T(p):\nthe rule latched early")
            ax.set_xscale("log")
            # 1.6k ... 12.8k: seven full numbers overlap on a panel this wide
            widths = sorted(here["width"].unique())
            ax.set_xticks(widths, [f"{w / 1000:g}k" if w >= 1000 else f"{w:g}" for w in widths])
            ax.minorticks_off()
            if here["alignment"].min() >= 0:
                ax.set_ylim(bottom=0)
            else:                  # another rule's alignment with b is around 0, either side
                ax.axhline(0, color="grey", lw=0.8)
            ax.set_title(f"{plotting.panel_title(act, rule, n_rules)}, "
                         f"{'L2 on β' if reg == 'l2' else 'dropout'}")
            ax.set_xlabel("width p")
            plotting.legend_below(ax, "λ" if reg == "l2" else "dropout rate q")
        axes[i, 0].set_ylabel("final alignment cos(β, b)")
    fig.suptitle(f"F3 · final alignment, mean ± sd over {runs['seed'].nunique()} seeds")
    fig.tight_layout()
    return fig


def latched(runs: pd.DataFrame) -> pd.DataFrame:
    """The (strength, width) cells of one panel where most runs with a nonzero rate stopped
    at exactly T(p), the fewest steps taken at their width, while others there went on:
    the stopping rule latched on a quiet check before T(p), before the alignment grew."""
    fewest = runs.groupby("width")["steps"].transform("min")
    at_T = runs.assign(at_T=runs["steps"] == fewest, went_on=runs["steps"] > fewest)
    cells = at_T[at_T["strength"] > 0].groupby(["strength", "width"]).agg(
        share=("at_T", "mean"), alignment=("alignment", "mean")).reset_index()
    rule_acted = at_T.groupby("width")["went_on"].any()
    return cells[(cells["share"] > 0.5) & cells["width"].map(rule_acted)]


def claims(runs: pd.DataFrame, *, strict: bool = True) -> list[Claim]:
    """F3's expected properties, measured per activation on FA's runs.

    1. ``lam = 0``: the fitted log-log slope is negative (alignment decays with p)
       and the alignment at the largest width is below that at the smallest.
    2. Every ``lam > 0`` decays more slowly than ``lam = 0`` (larger slope).
    3. Bounded away from 0: the smallest mean alignment over the widths is at
       least 0.1, and at the largest width it is at least 1.5x the ``lam = 0`` value;
       for every ``lam > 0`` when ``strict`` (paper scale), else for the largest
       lam only: a short run has not yet reached the regime of a small lam,
       which acts on the time scale ``1 / (eta * lam)`` steps.
    4. Higher for larger ``lam``: at every width the alignment rises with lam.
    5. Dropout (where run): the largest rate is above no dropout at the largest width.

    First of all, no run diverged (those that did are not in ``runs``).
    """
    out = [_common.diverged_claim("F3", runs)]
    runs = _common.with_rule(runs)
    runs = runs[runs["rule"] == "fa"]
    table = summary(runs)
    fits = slopes(runs).set_index("activation")
    for act, here in table.groupby("activation", sort=False):
        tag = f"F3 {act}"
        l2 = here[here["regularizer"] == "l2"]
        free = l2[l2["strength"] == 0.0].sort_values("width")
        p_max = l2["width"].max()
        regularised = sorted(v for v in l2["strength"].unique() if v > 0)
        slope = fits.loc[act, "slope"] if len(free) and act in fits.index else None
        if slope is not None:
            first, last = free.iloc[0], free.iloc[-1]
            out.append(Claim(tag, "λ=0: alignment decays with p (log-log slope < 0)",
                             f"slope {slope:.2f}; {first['alignment']:.3f} at p="
                             f"{first['width']} → {last['alignment']:.3f} at p={p_max}",
                             bool(slope < 0 and last["alignment"] < first["alignment"])))
        else:
            out.append(Claim.skipped(tag, "λ=0: alignment decays with p",
                                     "needs λ = 0 in lambdas" if not len(free)
                                     else "a single width: no slope to fit"))
        free_at_max = free["alignment"].iloc[-1] if len(free) else None
        for lam in regularised:
            g = l2[l2["strength"] == lam]
            at_max = g[g["width"] == p_max]["alignment"].iloc[0]
            if slope is not None:
                lam_slope, _ = fit_power_law(g["width"], g["alignment"])
                out.append(Claim(tag, f"λ={lam:g}: decays more slowly than λ=0",
                                 f"slope {lam_slope:.2f} vs {slope:.2f}",
                                 bool(lam_slope > slope)))
            if not strict and lam != regularised[-1]:
                continue
            low = g["alignment"].min()
            if free_at_max is None:
                out.append(Claim(tag, f"λ={lam:g}: bounded away from 0 (min over p ≥ 0.1)",
                                 f"min {low:.3f}", bool(low >= 0.1)))
            else:
                out.append(Claim(tag, f"λ={lam:g}: bounded away from 0 (min over p ≥ 0.1; "
                                      f"at p={p_max} ≥ 1.5x λ=0)",
                                 f"min {low:.3f}; at p={p_max}: {at_max:.3f} vs λ=0 "
                                 f"{free_at_max:.3f}",
                                 bool(low >= 0.1 and at_max >= 1.5 * free_at_max)))
        by_width = l2.pivot_table(index="width", columns="strength", values="alignment")
        if by_width.shape[1] > 1:
            ordered = [bool(np.all(np.diff(row.dropna().to_numpy()) > 0))
                       for _, row in by_width.iterrows()]
            out.append(Claim(tag, "alignment rises with λ at every width",
                             f"{sum(ordered)} of {len(ordered)} widths; at p={p_max}: "
                             + ", ".join(f"{v:.3f}" for v in by_width.loc[p_max].dropna()),
                             all(ordered)))
        drop = here[here["regularizer"] == "dropout"]
        if len(drop):
            wmax = drop["width"].max()
            out.append(_common.dropout_claim(
                f"F3-dropout {act}", f"at p={wmax} the largest dropout rate is more aligned "
                                     "than none", drop[drop["width"] == wmax]))
    return out
