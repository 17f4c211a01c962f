"""Figure F2: alignment cos(beta, b) vs step, with and without regularisation.

Claim (the paper, and docs/model.md): with ``lam = 0`` a wide network stays near its
initialisation and ``cos(beta, b)`` stays small; L2 on ``beta`` makes the
component along ``b`` dominate, so the alignment grows with ``lam``.
"Regularise, then release": once the penalty is switched off the alignment
stays up while the loss goes on to zero. Dropout also raises the alignment.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import plotting
from . import _common
from ..claims import Claim
from ..experiments import RunConfig
from ..presets import PROTOCOL, FigureSettings

NAME = "alignment_dynamics"
COLUMNS = ["activation", "rule", "regularizer", "strength", "seed", "step", "alignment", "loss"]
#: The rules of the figure (its claims are FA's): each trains every configuration.
RULES = ("fa",)


def release_step(s: FigureSettings) -> int:
    """The step at which "regularise, then release" switches the penalty off."""
    return int(round(s.release_fraction * s.steps))


def configs(s: FigureSettings, rules=None) -> list[RunConfig]:
    """Per activation and rule of ``rules`` (default :data:`RULES`): each lam; release at
    the largest lam; dropout at each rate, with the authors' dropout step sizes
    (docs/protocols.md)."""
    rules = _common.rule_names(rules, RULES, NAME)
    out = []
    for act in s.activations:
        proto = PROTOCOL[act]
        for p in s.widths:
            for rule in rules:
                common = dict(activation=act, width=p, data=proto.data, n=s.n,
                              d=s.d, steps=s.steps, record_every=s.record_every,
                              dtype=s.dtype_for(act), rule=rule)
                lams = s.lambdas_for(act)
                out += [RunConfig(lr=proto.lr, lam=lam, regularizer="l2", strength=lam,
                                  **common) for lam in lams]
                if max(lams) > 0:   # releasing a penalty needs one
                    out.append(RunConfig(lr=proto.lr, lam=max(lams), lam_schedule="release",
                                         lam_until=release_step(s), regularizer="release",
                                         strength=max(lams), **common))
                out += [RunConfig(lr=proto.dropout_lr, dropout=q, regularizer="dropout",
                                  strength=q, **common) for q in s.dropout_rates_for(act)]
    return out


def sweep_plan(scale: str = "paper", **overrides) -> tuple[list[RunConfig], list[int]]:
    """The configs and seeds the notebook runs at ``scale`` with its parameters ``overrides``."""
    return _common.sweep_plan(NAME, configs, scale, overrides)


def tidy(sweep, results_dir=None) -> pd.DataFrame:
    """The figure's table from the sweep of :func:`configs`; also written to
    ``<results_dir>/alignment_dynamics.csv`` (diverged runs left out, and named:
    :func:`fa.figures._common.noted`)."""
    curves, diverged = _common.finished(sweep.curves, sweep.runs)
    curves = curves[COLUMNS]
    curves = _common.noted(curves, diverged, len(sweep.runs))
    _common.write_csv(curves, NAME, results_dir)
    return curves


#: The rows of the figure that the sweep may have, with their y labels.
ROWS = {"l2": "alignment cos(β, b)\nL2 on β",
        "release": "alignment cos(β, b)\nregularise, then release",
        "release loss": "training loss\nregularise, then release",
        "dropout": "alignment cos(β, b)\ndropout rate q"}


def plot(curves: pd.DataFrame, s: FigureSettings):
    """One column per activation (and rule); rows as far as the sweep has them.

    (a) alignment under constant L2 at each lam; (b) alignment and (c) loss for
    "regularise, then release" against constant L2 at the same lam and lam = 0;
    (d) alignment with dropout at each rate.
    """
    plotting.use_style()
    curves = _common.with_rule(curves)
    columns = _common.panels(curves)
    present = set(curves["regularizer"])
    rows = [r for r in ROWS if r == "l2" or r.split()[0] in present]
    fig, axes = plotting.subplots(len(columns), len(rows), height=3.0, sharex=True)
    by = ["activation", "rule", "regularizer", "strength", "step"]
    align = _common.mean_sd(curves, by, "alignment")
    loss = _common.log_mean_sd(curves, by, "loss")
    t_release = release_step(s)
    n_rules = curves["rule"].nunique()
    for j, (act, rule) in enumerate(columns):
        a = align[(align["activation"] == act) & (align["rule"] == rule)]
        colors = plotting.bands(axes[0, j], a[a["regularizer"] == "l2"], "strength",
                                lambda lam: f"λ = {lam:g}")
        released = a.loc[a["regularizer"] == "release", "strength"]
        if "release" in rows and len(released):   # none left when they all diverged
            lam_r = released.iloc[0]
            lo = loss[(loss["activation"] == act) & (loss["rule"] == rule)]
            for row, frame in (("release", a), ("release loss", lo)):
                ax = axes[rows.index(row), j]
                l2 = frame["regularizer"] == "l2"
                for label, sel, color, ls in (
                        ("λ = 0", l2 & (frame["strength"] == 0), colors.get(0.0, "grey"), "-"),
                        (f"λ = {lam_r:g} throughout", l2 & (frame["strength"] == lam_r),
                         colors.get(lam_r, "navy"), "-"),
                        (f"λ = {lam_r:g}, off at t = {t_release}",
                         frame["regularizer"] == "release", "crimson", "--")):
                    g = frame[sel]
                    if len(g):
                        plotting.band(ax, g["step"], g["mean"], g["low"], g["high"],
                                      label=label, color=color, ls=ls)
                ax.axvline(t_release, color="grey", lw=0.8, ls=":")
                if frame is lo:
                    ax.set_yscale("log")
        elif "release" in rows:
            for row in ("release", "release loss"):
                axes[rows.index(row), j].text(0.5, 0.5, "its release runs diverged:\nleft out",
                                              ha="center", va="center", fontsize="small",
                                              transform=axes[rows.index(row), j].transAxes)
        if "dropout" in rows:
            plotting.bands(axes[rows.index("dropout"), j], a[a["regularizer"] == "dropout"],
                           "strength", lambda q: f"q = {q:g}")
        axes[0, j].set_title(plotting.panel_title(act, rule, n_rules))
        axes[-1, j].set_xlabel("step t")
    for row, name in enumerate(rows):
        axes[row, 0].set_ylabel(ROWS[name])
        for ax in axes[row]:
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize="x-small", loc="best")
    fig.suptitle(f"F2 · mean ± sd over {curves['seed'].nunique()} seeds "
                 "(loss: geometric mean, ± 1 sd of log10 L)")
    fig.tight_layout()
    return fig


def summary(curves: pd.DataFrame) -> pd.DataFrame:
    """Final alignment and loss per (activation, rule, regularizer, strength): mean and sd."""
    curves = _common.with_rule(curves)
    by = ["activation", "rule", "regularizer", "strength"]
    last = curves[curves["step"] == curves.groupby(by + ["seed"])["step"].transform("max")]
    return (last.groupby(by)
            .agg(alignment=("alignment", "mean"), alignment_sd=("alignment", "std"),
                 loss=("loss", "mean"), loss_sd=("loss", "std"))
            .reset_index())


def claims(curves: pd.DataFrame, s: FigureSettings) -> list[Claim]:
    """F2's expected properties, measured per activation on FA's runs.

    1. The final alignment rises with lam, and every lam > 0 ends above lam = 0.
    2. Regularise, then release: the alignment at the end is at least 80% of its
       value at release and still above lam = 0's; the loss after release falls
       at least 10x below the constant-lam floor.
    3. Dropout at the largest rate ends more aligned than without dropout.

    First of all, no run diverged (those that did are not in ``curves``).
    """
    out = [_common.diverged_claim("F2", curves)]
    t_release = release_step(s)
    curves = _common.with_rule(curves)
    curves = curves[curves["rule"] == "fa"]
    table = summary(curves)
    for act, here in table.groupby("activation", sort=False):
        tag = f"F2 {act}"
        l2 = here[here["regularizer"] == "l2"].sort_values("strength")
        values = l2["alignment"].to_numpy()
        free = l2[l2["strength"] == 0.0]
        free_alignment = free["alignment"].iloc[0] if len(free) else None
        if len(l2) > 1:
            out.append(Claim(tag, "final alignment rises with λ",
                             ", ".join(f"λ={lam:g}: {v:.3f}" for lam, v in
                                       zip(l2["strength"], values)),
                             bool(np.all(np.diff(values) > 0))))
        else:
            out.append(Claim.skipped(tag, "final alignment rises with λ",
                                     "only one λ in this sweep"))
        release = here[here["regularizer"] == "release"]
        if len(release):
            c = curves[(curves["activation"] == act) & (curves["regularizer"] == "release")]
            steps = np.unique(c["step"])
            nearest = steps[np.argmin(np.abs(steps - t_release))]
            at_release = c[c["step"] == nearest]["alignment"].mean()
            rel_final = release.iloc[0]
            constant = l2[l2["strength"] == rel_final["strength"]]
            above_free = free_alignment is None or rel_final["alignment"] > free_alignment
            out.append(Claim(tag, "release: alignment persists (end ≥ 80% of value at "
                                  "release" + (", above λ=0)" if len(free) else ")"),
                             f"{at_release:.3f} at release → {rel_final['alignment']:.3f}"
                             + (f"; λ=0: {free_alignment:.3f}" if len(free) else ""),
                             bool(rel_final["alignment"] >= 0.8 * at_release and above_free)))
            if len(constant):
                floor = constant["loss"].iloc[0]
                out.append(Claim(tag, "release: loss then falls ≥ 10x below the constant-λ "
                                      "floor", f"{rel_final['loss']:.2e} vs {floor:.2e}",
                                 bool(rel_final["loss"] <= 0.1 * floor)))
            else:
                out.append(Claim.skipped(tag, "release: loss falls below the constant-λ floor",
                                         "no constant-λ run to compare (it diverged)"))
        else:
            out.append(Claim.skipped(tag, "release: alignment persists, loss falls",
                                     "no λ > 0 to release"))
        drop = here[here["regularizer"] == "dropout"]
        if len(drop):
            out.append(_common.dropout_claim(tag, "dropout raises alignment (largest rate vs "
                                                  "none)", drop))
    return out
