"""Why it happens: the mechanisms behind F1-F3, measured (notebook 05).

Notation as in ``docs/model.md``; ``v = b`` (FA) or ``beta`` (BP). Three statements:

1. **Convergence is a kernel step.** To first order in ``eta`` (``lam = 0``) the outputs
   move by ``-(2 eta / n) G_t e_t``, ``G = A A^T / p + ((D diag(beta * v) D^T) * K) / p``: a
   PSD term, plus one PSD for BP and sign-indefinite for FA. ``G_0`` predicts the loss.
2. **Alignment needs regularisation.** ``beta_t = c_t beta_0 + l_t`` exactly, with
   ``c_t = prod_{s<t} (1 - eta lam_s)``: ``cos(beta_t, b)`` splits into an initial part
   (random, of order ``1/sqrt(p)``) and a learned part.
3. **Regularise, then release.** After the release ``c_t`` stops changing and the learned
   part moves only by what the (now exponentially falling) error still adds.

The settings, the algebra and the experiments are in :mod:`fa.figures.mechanisms_runs`
(:func:`settings` and the ``*_configs`` are imported here for the notebook). This module
turns the sweeps into tables, and draws and checks them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from .. import plotting
from . import _common
from ..claims import Claim
from .mechanisms_runs import (AlignmentRun, DynamicsRun, MechanismSettings, alignment_configs,
                              dynamics_configs, kernel_configs, settings)
from .width_dependence import fit_power_law

__all__ = ["MechanismSettings", "alignment_configs", "alignment_slopes", "alignment_summary",
           "alignment_table", "claims", "claims_alignment", "claims_dynamics", "claims_kernel",
           "dynamics_configs", "dynamics_tables", "kernel_configs", "kernel_summary",
           "kernel_tables", "plot", "plot_alignment", "plot_dynamics", "plot_kernel",
           "prediction_error", "release_summary", "settings", "sweep_plan", "write_results"]

NAME = "mechanisms"
#: Below this fraction of the initial loss float64 round-off shapes the curve.
ROUND_OFF = 1e-20
#: Each rule's colour in the figures; other rules take the next colours of the cycle.
COLORS = {"fa": "tab:blue", "bp": "crimson"}


# --- the tables of the sweeps ------------------------------------------------------

def kernel_tables(sweep) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tables of statement 1 from the sweep of :func:`kernel_configs`.

    Returns
    -------
    spectra : DataFrame
        One row per (width, seed): ``second_min`` (the same in every rule), then for
        each rule ``r`` of the sweep, in its order, ``r_first_norm``, ``r_first_min``,
        ``r_min`` and ``r_drift`` (the scalars of :class:`~fa.figures.mechanisms_runs.KernelRun`).
    curves : DataFrame
        width, seed, rule, step, ``measured`` (:func:`fa.train`) and ``predicted``
        (frozen ``G_0``) loss.
    """
    runs = sweep.runs.set_index(["width", "seed"])
    second = runs.loc[runs["rule"] == runs["rule"].iloc[0], ["second_min"]]   # any rule's
    spectra = pd.concat([second, *(g[["first_norm", "first_min", "min", "drift"]]
                                   .add_prefix(f"{rule}_")
                                   for rule, g in runs.groupby("rule", sort=False))], axis=1)
    curves = sweep.curves[["width", "seed", "rule", "step", "measured", "predicted"]]
    return spectra.sort_index().reset_index(), curves.reset_index(drop=True)


def prediction_error(curves: pd.DataFrame) -> pd.DataFrame:
    """Relative error of the frozen-kernel prediction, median over seeds, per (width, rule).

    ``loss_rel_err``: ``max_t |L_pred / L - 1|``; ``decades_rel_err``: the error of
    the predicted fall of ``log10 L`` at the horizon, relative to the measured fall.
    Steps where the measured loss is below ``ROUND_OFF`` of its start are left out.
    """
    rows = []
    for (p, rule, seed), g in curves.groupby(["width", "rule", "seed"]):
        L, Lp = g["measured"].to_numpy(), g["predicted"].to_numpy()
        keep = L > ROUND_OFF * L[0]
        L, Lp = L[keep], Lp[keep]
        fall = np.log10(L[0] / L[-1])
        rows.append(dict(width=p, rule=rule, seed=seed,
                         loss_rel_err=np.max(np.abs(Lp / L - 1.0)),
                         decades_rel_err=abs(np.log10(Lp[-1] / L[-1])) / fall,
                         decades_measured=fall, decades_predicted=np.log10(L[0] / Lp[-1])))
    return (pd.DataFrame(rows).groupby(["width", "rule"])
            .median(numeric_only=True).drop(columns="seed").reset_index())


def kernel_summary(spectra: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """Per width: the spectra (median over seeds) and each rule's prediction error."""
    spec = spectra.drop(columns="seed").groupby("width").median().reset_index()
    err = prediction_error(curves).pivot(index="width", columns="rule",
                                         values=["decades_rel_err", "loss_rel_err"])
    err.columns = [f"{rule}_{name}" for name, rule in err.columns]
    return spec.merge(err.reset_index(), on="width")


def alignment_table(sweep) -> pd.DataFrame:
    """The table of statement 2 from the sweep of :func:`alignment_configs`: one row per
    (width, lam, seed) with the record of :class:`~fa.figures.mechanisms_runs.AlignmentRun`."""
    return sweep.runs[["width", "lam", "seed", *AlignmentRun.scalars]].reset_index(drop=True)


def alignment_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (lam, width): means over seeds, and the RMS of the initial part."""
    return (runs.groupby(["lam", "width"])
            .agg(alignment=("alignment", "mean"), alignment_sd=("alignment", "std"),
                 learned=("learned", "mean"), learned_sd=("learned", "std"),
                 initial_rms=("initial", lambda x: float(np.sqrt(np.mean(x ** 2)))),
                 l_dot_b=("l_dot_b", "mean"), learned_share=("learned_share", "mean"),
                 growth=("growth", "mean"), seeds=("seed", "count"))
            .reset_index())


def alignment_slopes(runs: pd.DataFrame) -> pd.DataFrame:
    """Log-log slopes vs ``p`` per lam, and the decay law the parts imply.

    ``measured_slope``: mean final alignment. ``initial_rms_slope``: RMS of the
    initial part (its mean over seeds is 0). ``l_dot_b_slope`` (``kappa``) and
    ``growth_slope``: of ``l . b`` and ``|beta_T| / |beta_0|``. The learned part is
    ``l . b / (|beta_T| |b|)`` with ``|beta_0| |b| ~ p``, so the mean alignment
    should fall like ``p ** implied_slope`` with
    ``implied_slope = kappa - 1 - growth_slope`` (-1 in the lazy limit, where
    ``l . b`` and the growth no longer depend on ``p``).
    """
    rows = []
    for lam, g in alignment_summary(runs).groupby("lam"):
        row = dict(lam=lam)
        for name in ("alignment", "initial_rms", "l_dot_b", "growth"):
            ok = g[name] > 0
            row[name] = fit_power_law(g["width"][ok], g[name][ok])[0] if ok.sum() > 1 else np.nan
        rows.append(row)
    out = pd.DataFrame(rows).rename(columns={
        "alignment": "measured_slope", "initial_rms": "initial_rms_slope",
        "l_dot_b": "l_dot_b_slope", "growth": "growth_slope"})
    out["implied_slope"] = out["l_dot_b_slope"] - 1.0 - out["growth_slope"]
    return out


def dynamics_tables(sweep) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tables of statements 2 and 3 in time from the sweep of :func:`dynamics_configs`.

    Returns
    -------
    frame, checks : DataFrame
        schedule (``"constant"`` or ``"release"``), seed, and the curves (``frame``) or
        the scalars (``checks``) of :class:`~fa.figures.mechanisms_runs.DynamicsRun`.
    """
    frame = sweep.curves.rename(columns={"lam_schedule": "schedule"})
    checks = sweep.runs.rename(columns={"lam_schedule": "schedule"})
    return (frame[["schedule", "seed", *DynamicsRun.curves]].reset_index(drop=True),
            checks[["schedule", "seed", *DynamicsRun.scalars]].reset_index(drop=True))


def _over_seeds(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (schedule, step): means over seeds, except the initial part's RMS
    (``initial_rms``; its mean is 0) and the loss's geometric mean."""
    logged = frame.assign(loss=np.log(frame["loss"]), initial_rms=frame["initial"] ** 2)
    mean = logged.drop(columns="seed").groupby(["schedule", "step"]).mean()
    return mean.assign(loss=np.exp(mean["loss"]), initial_rms=np.sqrt(mean["initial_rms"]))


def release_summary(frame: pd.DataFrame, s: MechanismSettings) -> pd.DataFrame:
    """Per schedule, :func:`_over_seeds` at the release step ``k`` and at the end ``T``:
    the alignment, its parts, the initial part's RMS and the loss."""
    rows = []
    for schedule, g in _over_seeds(frame).groupby(level="schedule"):
        g = g.loc[schedule]
        steps = np.asarray(g.index)   # the release step is recorded in its own run only
        at = dict(k=g.loc[int(steps[np.argmin(np.abs(steps - s.release_step))])], T=g.iloc[-1])
        rows.append(dict(schedule=schedule, **{
            f"{name}_{when}": row[name] for name in ("alignment", "initial", "initial_rms",
                                                     "learned", "loss")
            for when, row in at.items()}))
    return pd.DataFrame(rows)


# --- the figures ------------------------------------------------------------------

def plot_kernel(spectra: pd.DataFrame, curves: pd.DataFrame, *, panels: int = 4):
    """Statement 1: the kernel's spectrum vs width, and predicted vs measured loss.

    Left: median over seeds of the smallest eigenvalue of ``A A^T / p``, the
    spectral norm of FA's first-layer term, and the smallest eigenvalue of BP's.
    Then one panel per width (at most ``panels``, spread over the range):
    measured loss (lines) and the frozen-kernel prediction (dashed), per rule.
    """
    plotting.use_style()
    widths = sorted(spectra["width"].unique())
    shown = [widths[i] for i in np.unique(np.linspace(0, len(widths) - 1, panels).round()
                                          .astype(int))]
    fig, axes = plotting.subplots(1 + len(shown), width=3.6, height=3.4)
    ax = axes[0, 0]
    med = spectra.groupby("width").median(numeric_only=True)
    for column, style, color, label in (
            ("second_min", "o-", "black", "$\\mu_{\\min}(AA^\\top/p)$, every rule"),
            ("fa_first_norm", "s--", COLORS["fa"], "$\\|$FA first-layer term$\\|_2$"),
            ("bp_first_min", "^-", COLORS["bp"], "$\\mu_{\\min}$(BP first-layer term)")):
        if column in med:
            ax.plot(med.index, med[column], style, color=color, label=label)
    ax.set(xscale="log", yscale="log", xlabel="width p", title="kernel at initialisation",
           ylabel="eigenvalue or norm (median)")
    ax.legend(fontsize="x-small")
    err = prediction_error(curves).set_index(["width", "rule"])
    rules = list(dict.fromkeys(curves["rule"]))
    for ax, p in zip(axes[0, 1:], shown):
        for i, rule in enumerate(rules):
            g = curves[(curves["width"] == p) & (curves["rule"] == rule)]
            color, rel = COLORS.get(rule, f"C{2 + i}"), err.loc[(p, rule), "decades_rel_err"]
            for column, lw, ls, label in (("measured", 2, "-", "trained"),
                                          ("predicted", 1.2, "--", f"frozen $G_0$ ({rel:.1%})")):
                mean = np.exp(np.log(g[column]).groupby(g["step"]).mean())
                ax.plot(mean.index, mean, color=color, lw=lw, ls=ls,
                        label=f"{rule.upper()} {label}")
        ax.set(yscale="log", title=f"p = {p}", xlabel="step t", ylabel="training loss L")
        ax.legend(fontsize="x-small", loc="lower left")
    fig.tight_layout()
    return fig


def plot_alignment(runs: pd.DataFrame):
    """Statement 2: final alignment and its parts vs width, without and with L2.

    Mean alignment +- its standard error over seeds, the mean learned part, the
    RMS of the initial part (its mean over seeds is 0), and ``1/sqrt(p)``; for
    ``lam = 0`` also the law the parts imply (``p ** implied_slope`` through the
    smallest width).
    """
    plotting.use_style()
    table = alignment_summary(runs)
    slopes = alignment_slopes(runs).set_index("lam")
    lams = sorted(table["lam"].unique())
    fig, axes = plotting.subplots(len(lams), width=4.4, height=5.2)
    for ax, lam in zip(axes[0], lams):
        g = table[table["lam"] == lam]
        fit = slopes.loc[lam]
        ax.errorbar(g["width"], g["alignment"], yerr=g["alignment_sd"] / np.sqrt(g["seeds"]),
                    color="black", marker="o", capsize=3,
                    label=f"cos(β, b), mean ± s.e. (slope {fit['measured_slope']:.2f})")
        ax.plot(g["width"], g["learned"], "s--", color="tab:green", label="learned part, mean")
        ax.plot(g["width"], g["initial_rms"], "v:", color="tab:orange",
                label=f"initial part, RMS (slope {fit['initial_rms_slope']:.2f})")
        ax.plot(g["width"], 1 / np.sqrt(g["width"]), color="grey", lw=0.8,
                label="$1/\\sqrt{p}$")
        if lam == 0:
            p = g["width"].to_numpy()
            ax.plot(p, g["learned"].iloc[0] * (p / p[0]) ** fit["implied_slope"],
                    color="tab:green", lw=0.8,
                    label=f"implied law $p^{{{fit['implied_slope']:.2f}}}$")
        ax.set(xscale="log", yscale="log", xlabel="width p", title=f"FA, λ = {lam:g}",
               ylabel="final alignment and its parts")
        # Labels at 1 and 3 per decade: the default labels every minor tick, overlapping.
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 3.0)))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.2))
    fig.tight_layout()
    return fig


def plot_dynamics(frame: pd.DataFrame, s: MechanismSettings):
    """Statements 2 and 3 in time (mean over seeds; initial part as RMS).

    Panel 1: what ``beta_t`` is made of, ``c_t |beta_0| / |beta_t|`` and
    ``|l_t| / |beta_t|``, for both schedules. Panels 2, 3: ``cos(beta_t, b)`` and
    its parts, constant L2 and release. Panel 4: the loss (geometric mean).
    """
    plotting.use_style()
    fig, axes = plotting.subplots(4, width=3.8, height=4.3)
    titles = {"constant": f"constant λ = {s.lam_used:g}",
              "release": f"λ = {s.lam_used:g} until t = {s.release_step}"}
    colors = {"constant": "tab:purple", "release": "crimson"}
    mean = _over_seeds(frame)
    ax = axes[0, 0]
    for schedule in ("constant", "release"):
        g = mean.loc[schedule]
        ax.plot(g.index, g["initial_share"], color=colors[schedule], ls=":")
        ax.plot(g.index, g["learned_share"], color=colors[schedule])
        axes[0, 3].plot(g.index, g["loss"], color=colors[schedule], label=titles[schedule])
    ax.set_title("what β is made of")
    ax.set_ylabel("share of |β_t|")
    # The four curves fill the panel: the legend goes below it, style and colour apart.
    key = [Line2D([], [], color="grey", ls=":", label="start $c_t|β_0|/|β_t|$"),
           Line2D([], [], color="grey", label="learned $|l_t|/|β_t|$"),
           *(Line2D([], [], color=colors[k], label=k) for k in ("constant", "release"))]
    ax.legend(handles=key, fontsize="x-small", ncol=2, loc="upper center",
              bbox_to_anchor=(0.5, -0.2))
    for ax, schedule in zip(axes[0, 1:3], ("constant", "release")):
        g = mean.loc[schedule]
        ax.plot(g.index, g["alignment"], color="black", lw=2, label="cos(β, b)")
        ax.plot(g.index, g["learned"], color="tab:green", ls="--", label="learned part")
        ax.plot(g.index, g["initial_rms"], color="tab:orange", ls=":",
                label="initial part (RMS)")
        ax.set(title=titles[schedule], ylabel="cos(β, b) and its parts")
        ax.legend(fontsize="x-small")
    axes[0, 3].set(yscale="log", title="training loss", ylabel="training loss L")
    axes[0, 3].legend(fontsize="x-small")
    for ax in axes[0]:
        ax.axvline(1 / (s.lr * s.lam_used), color="grey", ls="-.", lw=0.8)
        ax.axvline(s.release_step, color="crimson", lw=0.6)
        ax.set_xlabel("step t")
    fig.suptitle(f"FA, {plotting.TITLES[s.activation]}, p = {s.dynamics_width}; dash-dot: "
                 f"t = 1/(ηλ), red: release", fontsize="small")
    fig.tight_layout()
    return fig


# --- the claims -------------------------------------------------------------------

def claims_kernel(spectra: pd.DataFrame, curves: pd.DataFrame, *,
                  max_err: float = 0.1) -> list[Claim]:
    """Statement 1, measured.

    1. ``A A^T / p`` is positive definite at every width (smallest eigenvalue > 0).
    2. BP's first-layer term is PSD (to round-off); FA's has negative eigenvalues in
       most runs at every width. It is a sum of PSD terms weighted by ``beta_j b_j`` of
       either sign, so a run may happen to have none (a few in 50 at paper scale).
    3. FA's term shrinks relative to ``A A^T / p`` as ``p`` grows (log-log slope of its
       norm in [-0.75, -0.25], the ``1/sqrt(p)`` of a sum of ``p`` random signs).
    4. For each rule, the frozen-kernel prediction's error (decades, median over seeds)
       shrinks from the smallest to the largest width and is below ``max_err`` there.
    5. BP converges faster than FA, measured and predicted.

    Claims 2, 3 and 5 are skipped when the tables lack FA or BP.
    """
    tag = "mechanisms: kernel"
    med = spectra.groupby("width").median(numeric_only=True)
    rules = list(dict.fromkeys(curves["rule"]))
    out = [Claim(tag, "A Aᵀ/p is positive definite at every width",
                 ", ".join(f"p={p}: {v:.3g}" for p, v in med["second_min"].items()),
                 bool((spectra["second_min"] > 0).all()))]
    claim = "BP's first-layer term is PSD; FA's is sign-indefinite"
    if {"fa", "bp"} <= set(rules):
        negative = (spectra["fa_first_min"] < 0).groupby(spectra["width"]).mean()
        out.append(Claim(tag, claim, f"min eigenvalue BP {spectra['bp_first_min'].min():.2e} "
                         "(smallest over runs); FA's negative in "
                         + ", ".join(f"{v:.0%}" for v in negative) + " of runs at p = "
                         + ", ".join(map(str, negative.index)),
                         bool((spectra["bp_first_min"]
                               > -1e-9 * spectra["second_min"].abs().max()).all()
                              and (negative > 0.5).all())))
    else:
        out.append(Claim.skipped(tag, claim, "needs FA and BP runs"))
    claim = "FA's term shrinks like 1/sqrt(p) against A Aᵀ/p"
    if "fa" in rules:
        slope, _ = fit_power_law(med.index, med["fa_first_norm"])
        ratio = med["fa_first_norm"] / med["second_min"]
        out.append(Claim(tag, claim, f"slope {slope:.2f}; norm/μ_min {ratio.iloc[0]:.3g} at "
                         f"p={med.index[0]} → {ratio.iloc[-1]:.3g} at p={med.index[-1]}",
                         bool(-0.75 <= slope <= -0.25 and ratio.iloc[-1] < ratio.iloc[0])))
    else:
        out.append(Claim.skipped(tag, claim, "needs FA runs"))
    err = prediction_error(curves).set_index(["rule", "width"]).sort_index()
    for rule in rules:
        e = err.loc[rule, "decades_rel_err"].to_numpy()
        out.append(Claim(tag, f"{rule.upper()}: the frozen-kernel prediction closes in as p "
                              f"grows (error < {max_err:.0%} at the largest p)",
                         " → ".join(f"{v:.1%}" for v in e),
                         bool(e[-1] < e[0] and e[-1] < max_err)))
    claim = "BP's loss falls faster than FA's, measured and predicted"
    if {"fa", "bp"} <= set(rules):
        fa_err, bp_err = err.loc["fa"], err.loc["bp"]
        faster = ((bp_err["decades_measured"] > fa_err["decades_measured"])
                  & (bp_err["decades_predicted"] > fa_err["decades_predicted"]))
        out.append(Claim(tag, claim, ", ".join(
            f"p={p}: {b:.1f} vs {f:.1f} decades" for p, b, f in
            zip(fa_err.index, bp_err["decades_measured"], fa_err["decades_measured"])),
            bool(faster.all())))
    else:
        out.append(Claim.skipped(tag, claim, "needs FA and BP runs"))
    return out


def claims_alignment(runs: pd.DataFrame, *, tol: float = 1e-12) -> list[Claim]:
    """Statement 2 across widths, measured.

    1. The parts sum to the measured alignment (to ``tol``).
    2. ``lam = 0``: the initial part's RMS decays like ``1/sqrt(p)`` (slope in
       [-0.8, -0.2]) and the mean learned part shrinks with ``p`` (slope < -0.2).
    3. ``lam = 0``: the law the parts imply (:func:`alignment_slopes`) matches the
       measured slope of the mean alignment within 0.25.
    4. ``lam > 0``: the initial part is gone (RMS < 0.05 at every width) and the
       learned part carries the alignment (mean > 0.1 at every width, and above
       ``lam = 0``'s at the largest width).
    """
    tag = "mechanisms: alignment vs p"
    gap = np.abs(runs["initial"] + runs["learned"] - runs["alignment"]).max()
    out = [Claim(tag, "initial + learned part = measured cos(β, b)", f"max gap {gap:.1e}",
                 bool(gap < tol))]
    free = alignment_slopes(runs).set_index("lam").loc[0.0]
    table = alignment_summary(runs)
    free_table = table[table["lam"] == 0.0]
    learned_slope = fit_power_law(free_table["width"], free_table["learned"].clip(lower=1e-12))[0]
    out.append(Claim(tag, "λ=0: initial part ~ 1/sqrt(p), learned part shrinks with p",
                     f"slopes: initial RMS {free['initial_rms_slope']:.2f}, learned mean "
                     f"{learned_slope:.2f}",
                     bool(-0.8 <= free["initial_rms_slope"] <= -0.2 and learned_slope < -0.2)))
    out.append(Claim(tag, "λ=0: the implied decay law matches the measured slope (± 0.25)",
                     f"implied {free['implied_slope']:.2f} (l·b: {free['l_dot_b_slope']:+.2f}, "
                     f"growth: {free['growth_slope']:+.2f}), measured {free['measured_slope']:.2f}",
                     bool(abs(free["implied_slope"] - free["measured_slope"]) <= 0.25)))
    p_max = table["width"].max()
    free_max = free_table[free_table["width"] == p_max]["learned"].iloc[0]
    for lam in sorted(v for v in table["lam"].unique() if v > 0):
        g = table[table["lam"] == lam]
        lam_max = g[g["width"] == p_max]["learned"].iloc[0]
        out.append(Claim(tag, f"λ={lam:g}: the initial part is gone and the learned part "
                              "carries the alignment",
                         f"initial RMS ≤ {g['initial_rms'].max():.3f}; learned ≥ "
                         f"{g['learned'].min():.3f} (at p={p_max}: {lam_max:.3f} vs λ=0 "
                         f"{free_max:.3f})",
                         bool(g["initial_rms"].max() < 0.05 and g["learned"].min() > 0.1
                              and lam_max > free_max)))
    return out


def claims_dynamics(frame: pd.DataFrame, checks: pd.DataFrame, s: MechanismSettings, *,
                    tol: float = 1e-8) -> list[Claim]:
    """Statements 2 and 3 in time, measured.

    1. The reference loop reproduces :func:`fa.train`, and ``c_t beta_0 + l_t``
       reproduces ``beta_t`` (relative differences < ``tol``).
    2. Constant ``lam``: the random start's share of ``beta_t`` falls below 1/2
       within ``3 / (eta lam)`` steps and below 0.2 at the end; the initial part's
       RMS at the end is below a fifth of its start, and the learned part makes up
       more than 0.9 of the final alignment.
    3. Release: the alignment at the end is at least 0.9 of that at the release,
       the initial part's RMS changes by less than 20% after the release (it is
       frozen at ``c_k``), and the loss falls at least 3 orders of magnitude after
       the release while the constant-lam loss falls by less than 1.
    """
    tag = "mechanisms: in time"
    worst = checks[["beta_vs_train", "loss_vs_train", "decomposition"]].max()
    out = [Claim(tag, "reference loop = fa.train; c_t β₀ + l_t = β_t (round-off)",
                 ", ".join(f"{k} {v:.1e}" for k, v in worst.items()),
                 bool((worst < tol).all()))]
    const = _over_seeds(frame).loc["constant"]
    tau = 1 / (s.lr * s.lam_used)
    below = const.index[const["initial_share"] < 0.5]
    t_half = int(below[0]) if len(below) else None
    start, end = const.iloc[0], const.iloc[-1]
    out.append(Claim(tag, f"constant λ: the random start is forgotten on the time scale "
                          f"1/(ηλ) = {tau:.0f} steps; the learned part carries the alignment",
                     f"start's share of β < 1/2 from t={t_half}, {end['initial_share']:.3f} at "
                     f"the end; initial RMS {start['initial_rms']:.3f} → "
                     f"{end['initial_rms']:.4f}; learned {end['learned']:.3f} of "
                     f"{end['alignment']:.3f}",
                     bool(t_half is not None and t_half <= 3 * tau
                          and end["initial_share"] < 0.2
                          and end["initial_rms"] < start["initial_rms"] / 5
                          and end["learned"] > 0.9 * end["alignment"])))
    at = release_summary(frame, s).set_index("schedule")
    rel = at.loc["release"]
    orders, orders_const = np.log10(at["loss_k"] / at["loss_T"])[["release", "constant"]]
    out.append(Claim(tag, "release: the alignment stays, the initial part is frozen, the loss "
                          "resumes its exponential fall",
                     f"cos {rel['alignment_k']:.3f} → {rel['alignment_T']:.3f}; initial RMS "
                     f"{rel['initial_rms_k']:.4f} → {rel['initial_rms_T']:.4f}; loss falls "
                     f"{orders:.1f} orders after t={s.release_step} (constant λ: "
                     f"{orders_const:.2f})",
                     bool(rel["alignment_T"] >= 0.9 * rel["alignment_k"]
                          and abs(rel["initial_rms_T"] - rel["initial_rms_k"])
                          < 0.2 * rel["initial_rms_k"]
                          and orders >= 3 and orders_const < 1)))
    return out


def claims(spectra: pd.DataFrame, curves: pd.DataFrame, runs: pd.DataFrame,
           frame: pd.DataFrame, checks: pd.DataFrame, s: MechanismSettings) -> list[Claim]:
    """All three statements' claims: :func:`claims_kernel` (default thresholds),
    :func:`claims_alignment` and :func:`claims_dynamics`, in that order."""
    return (claims_kernel(spectra, curves) + claims_alignment(runs)
            + claims_dynamics(frame, checks, s))


#: The notebook's main figure (``mechanisms.png``), statement 1; the other two are
#: :func:`plot_alignment` and :func:`plot_dynamics`.
plot = plot_kernel


def sweep_plan(scale: str = "paper", **overrides) -> tuple[list, list[int]]:
    """The experiments and seeds the notebook runs at ``scale`` with the parameters
    ``overrides`` (none: its defaults), for :mod:`fa.estimate`."""
    s = settings(scale, **_common.settings_overrides(MechanismSettings, overrides))
    return kernel_configs(s) + alignment_configs(s) + dynamics_configs(s), list(range(s.n_seeds))


def write_results(tables: dict, results_dir=None) -> list:
    """Write each DataFrame of ``tables`` to ``<results_dir>/mechanisms_<key>.csv``."""
    return [_common.write_csv(frame, f"{NAME}_{key}", results_dir)
            for key, frame in tables.items()]
