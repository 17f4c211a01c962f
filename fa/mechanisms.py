"""Why it happens: the mechanisms behind F1-F3, derived and measured (notebook 05).

Notation as in ``docs/model.md``: ``f(x) = beta . psi(W x) / sqrt(p)``, ``H = X W^T``,
``A = psi(H)``, ``D = psi'(H)``, ``e = f(X) - y``, ``K = X X^T``, ``v = b`` (FA) or
``beta`` (BP). Three statements:

1. **Convergence is a kernel step.** Over one step the outputs move by
   ``f_{t+1} - f_t = -(2 eta / n) G_t e_t - eta lam f_t + O(eta^2)`` with
   ``G = A A^T / p + ((D diag(beta * v) D^T) * K) / p`` (``*`` elementwise). The
   first term (second layer) is a PSD random-features Gram matrix in both rules; the
   second (first layer) is PSD for BP and sign-indefinite for FA. Freezing
   ``G`` at initialisation (the lazy regime) predicts the loss curve.
2. **Alignment needs regularisation.** ``beta_{t+1} = (1 - eta lam_t) beta_t - eta g_t``
   exactly, so ``beta_t = c_t beta_0 + l_t`` with ``c_t = prod_{s<t} (1 - eta lam_s)``:
   ``cos(beta_t, b)`` splits exactly into an initial part (random, of order
   ``1/sqrt(p)``) and a learned part.
3. **Regularise, then release.** After the release ``c_t`` stops changing and the
   learned part moves only by what the (now exponentially falling) error still adds.

The algebra and the experiments (:class:`KernelRun`, :class:`AlignmentRun`,
:class:`DynamicsRun`) are in :mod:`fa.mechanisms_runs`; :func:`fa.run_sweep` runs
them. This module builds their lists from the settings (:func:`kernel_configs`,
:func:`alignment_configs`, :func:`dynamics_configs`), turns the sweeps into tables,
and draws and checks them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from . import _figure, plotting
from .claims import Claim
from .mechanisms_runs import (AlignmentRun, DynamicsRun, KernelRun, Trajectory, decompose,
                              kernel, lam_factor, predicted_loss, trajectory)
from .presets import PROTOCOL, resolve
from .model import ACTIVATIONS, RULES
from .width_dependence import fit_power_law

__all__ = ["AlignmentRun", "DynamicsRun", "KernelRun", "MechanismSettings", "Trajectory",
           "alignment_configs", "alignment_slopes", "alignment_summary", "alignment_table",
           "claims", "claims_alignment", "claims_dynamics", "claims_kernel", "decompose",
           "dynamics_configs", "dynamics_tables", "kernel",
           "kernel_configs", "kernel_summary", "kernel_tables", "lam_factor", "plot",
           "plot_alignment", "plot_dynamics", "plot_kernel", "predicted_loss",
           "prediction_error", "release_summary", "settings", "sweep_plan", "trajectory", "write_results"]

NAME = "mechanisms"
#: Below this fraction of the initial loss float64 round-off shapes the curve.
ROUND_OFF = 1e-20


@dataclass(frozen=True)
class MechanismSettings:
    """What the mechanisms notebook runs. Its parameters override these by name."""

    activation: str = "relu"              # psi of every network here
    widths: tuple[int, ...] = (50, 200, 800, 3200)  # widths p, from p = n to p >> n
    n_seeds: int = 3                      # seeds per (width, rule, lam): fresh data, W, beta, b
    steps: int = 500                      # horizon of the kernel prediction (statement 1)
    align_steps: int = 2000               # length of the alignment runs (statements 2, 3)
    lam: float | None = None              # L2 strength of statements 2, 3; None: the largest of F1
    release_fraction: float = 0.5         # statement 3: L2 switched off after this fraction
    dynamics_width: int = 800             # width of the time-resolved runs (statements 2, 3)
    record_every: int = 20                # steps between recorded beta_t in the time-resolved runs
    n: int = 50                           # samples
    d: int = 150                          # input dimension

    @property
    def lr(self) -> float:
        """The paper's step size ``eta`` for this activation."""
        return PROTOCOL[self.activation].lr

    @property
    def lam_used(self) -> float:
        """The L2 strength of statements 2 and 3."""
        return max(PROTOCOL[self.activation].lambdas) if self.lam is None else self.lam

    @property
    def release_step(self) -> int:
        """First step without the penalty in the regularise-then-release runs."""
        return int(round(self.release_fraction * self.align_steps))


PAPER_CHANGES = dict(
    widths=(50, 200, 800, 3200, 12800),  # F3's range, plus p = n, where the lazy picture fails
    n_seeds=50,                           # as F1-F3
    steps=1000,                           # BP reaches float64 round-off soon after
    align_steps=5000,                     # F1/F2's length
    dynamics_width=3200,                  # the F1/F2 networks
    record_every=10,
)


def settings(scale: str = "quick", **overrides) -> MechanismSettings:
    """The settings at ``scale`` (``"quick"``: seconds; ``"paper"``: the F1-F3 networks).

    ``overrides`` name fields of :class:`MechanismSettings`; ``None`` keeps the
    scale's value (:func:`fa.presets.resolve`, every figure's one settings mechanism).
    """
    quick = MechanismSettings()
    paper = dataclasses.replace(quick, **PAPER_CHANGES)
    return resolve(paper, {k: getattr(quick, k) for k in PAPER_CHANGES}, scale, overrides,
                   caller="05_mechanisms", rules=_rules)


def _rules(s: MechanismSettings):
    yield "activation", s.activation in ACTIVATIONS, \
        f"one of {', '.join(map(repr, ACTIVATIONS))}"
    yield "widths", bool(s.widths) and min(s.widths) >= 1, "a non-empty list of ints >= 1"
    yield "lam", s.lam is None or s.lam > 0, "a float > 0"
    for name in ("n_seeds", "steps", "align_steps", "dynamics_width", "record_every", "n", "d"):
        yield name, getattr(s, name) >= 1, "an int >= 1"
    yield "release_fraction", 0 < s.release_fraction < 1, "a float in (0, 1)"


# --- the experiments: what fa.run_sweep runs, and the tables it gives ---------------

def _network(s: MechanismSettings) -> dict:
    return dict(activation=s.activation, data=_figure.data_kind(s.activation), n=s.n, d=s.d,
                lr=s.lr)


def kernel_configs(s: MechanismSettings) -> list[KernelRun]:
    """Statement 1: FA and BP (``lam = 0``, ``s.steps`` steps) at every width."""
    return [KernelRun(**_network(s), width=p, steps=s.steps, rule=rule)
            for p in s.widths for rule in RULES]


def kernel_tables(sweep) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tables of statement 1 from the sweep of :func:`kernel_configs`.

    Returns
    -------
    spectra : DataFrame
        One row per (width, seed): ``second_min`` (smallest eigenvalue of
        ``A A^T / p``), ``fa_first_norm`` / ``fa_first_min`` (spectral norm and
        smallest eigenvalue of FA's first-layer term), ``bp_first_min``,
        ``fa_min`` / ``bp_min`` (smallest eigenvalue of the whole ``G_0``) and
        ``fa_drift`` / ``bp_drift`` (``|G_T - G_0| / |G_0|`` after ``steps``).
    curves : DataFrame
        width, seed, rule, step, ``measured`` (:func:`fa.train`) and
        ``predicted`` (frozen ``G_0``) loss.
    """
    by_rule = {rule: g.set_index(["width", "seed"]) for rule, g in sweep.runs.groupby("rule")}
    fa_runs, bp_runs = by_rule["fa"], by_rule["bp"]
    spectra = pd.DataFrame(dict(
        second_min=fa_runs["second_min"], fa_first_norm=fa_runs["first_norm"],
        fa_first_min=fa_runs["first_min"], bp_first_min=bp_runs["first_min"],
        fa_min=fa_runs["min"], fa_drift=fa_runs["drift"], bp_min=bp_runs["min"],
        bp_drift=bp_runs["drift"])).sort_index().reset_index()
    curves = sweep.curves[["width", "seed", "rule", "step", "measured", "predicted"]]
    return spectra, curves.reset_index(drop=True)


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
    """Per width: the spectra (median over seeds) and the prediction error of FA and BP."""
    spec = spectra.drop(columns="seed").groupby("width").median().reset_index()
    err = prediction_error(curves).pivot(index="width", columns="rule",
                                         values=["decades_rel_err", "loss_rel_err"])
    err.columns = [f"{rule}_{name}" for name, rule in err.columns]
    return spec.merge(err.reset_index(), on="width")


def alignment_configs(s: MechanismSettings) -> list[AlignmentRun]:
    """Statement 2 across widths: FA for ``s.align_steps`` steps at every width, with
    ``lam = 0`` and with ``s.lam_used``."""
    return [AlignmentRun(**_network(s), width=p, steps=s.align_steps, lam=lam)
            for p in s.widths for lam in (0.0, s.lam_used)]


def alignment_table(sweep) -> pd.DataFrame:
    """The table of statement 2 from the sweep of :func:`alignment_configs`.

    One row per (width, lam, seed): ``alignment`` (measured by :func:`fa.train`),
    ``initial`` and ``learned`` (:func:`decompose`), ``l_dot_b`` (``l . b``),
    ``learned_share`` (``|l| / |beta_T|``), ``growth`` (``|beta_T| / |beta_0|``) and
    the final ``loss``.
    """
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


def dynamics_configs(s: MechanismSettings) -> list[DynamicsRun]:
    """Statements 2 and 3 in time, at ``s.dynamics_width``: constant L2, and its release
    at ``s.release_step``."""
    common = dict(_network(s), width=s.dynamics_width, steps=s.align_steps, lam=s.lam_used,
                  record_every=s.record_every)
    return [DynamicsRun(**common, lam_schedule="constant"),
            DynamicsRun(**common, lam_schedule="release", lam_until=s.release_step)]


def dynamics_tables(sweep) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tables of statements 2 and 3 in time from the sweep of :func:`dynamics_configs`.

    Returns
    -------
    frame : DataFrame
        schedule (``"constant"`` or ``"release"``), seed, step, loss, alignment,
        ``initial`` and ``learned`` parts, and the shares of ``beta_t`` they come from:
        ``initial_share`` (``c_t |beta_0| / |beta_t|``) and ``learned_share``
        (``|l_t| / |beta_t|``).
    checks : DataFrame
        Per (schedule, seed), the largest relative differences between
        :func:`trajectory` and :func:`fa.train` (final beta, loss curve) and
        between ``c_t beta_0 + l_t`` (gradients accumulated) and ``beta_t``.
    """
    frame = sweep.curves.rename(columns={"lam_schedule": "schedule"})
    checks = sweep.runs.rename(columns={"lam_schedule": "schedule"})
    return (frame[["schedule", "seed", *DynamicsRun.curves]].reset_index(drop=True),
            checks[["schedule", "seed", *DynamicsRun.scalars]].reset_index(drop=True))


def release_summary(frame: pd.DataFrame, s: MechanismSettings) -> pd.DataFrame:
    """Per schedule, mean over seeds at the release step ``k`` and at the end ``T``."""
    k, T = s.release_step, frame["step"].max()
    rows = []
    for schedule, g in frame.groupby("schedule"):
        at_k = g[g["step"] == _nearest_step(g["step"].unique(), k)].set_index("seed")
        at_T = g[g["step"] == T].set_index("seed")
        rows.append(dict(
            schedule=schedule,
            alignment_k=at_k["alignment"].mean(), alignment_T=at_T["alignment"].mean(),
            initial_k=at_k["initial"].mean(), initial_T=at_T["initial"].mean(),
            learned_k=at_k["learned"].mean(), learned_T=at_T["learned"].mean(),
            loss_k=np.exp(np.log(at_k["loss"]).mean()),
            loss_T=np.exp(np.log(at_T["loss"]).mean())))
    return pd.DataFrame(rows)


def _nearest_step(steps, k: int) -> int:
    """The recorded step closest to ``k`` (the release step is always recorded in its run)."""
    steps = np.asarray(steps)
    return int(steps[np.argmin(np.abs(steps - k))])


# --- the figures ------------------------------------------------------------------

def plot_kernel(spectra: pd.DataFrame, curves: pd.DataFrame, *, panels: int = 4):
    """Statement 1: the kernel's spectrum vs width, and predicted vs measured loss.

    Left: median over seeds of the smallest eigenvalue of ``A A^T / p``, the
    spectral norm of FA's first-layer term, and the smallest eigenvalue of BP's.
    Then one panel per width (at most ``panels``, spread over the range):
    measured loss (lines) and the frozen-kernel prediction (dashed), FA and BP.
    """
    plotting.use_style()
    widths = sorted(spectra["width"].unique())
    shown = [widths[i] for i in np.unique(np.linspace(0, len(widths) - 1, panels).round()
                                          .astype(int))]
    fig, axes = plotting.subplots(1 + len(shown), width=3.6, height=3.4)
    ax = axes[0, 0]
    med = spectra.groupby("width").median(numeric_only=True)
    ax.plot(med.index, med["second_min"], "o-", color="black",
            label="$\\mu_{\\min}(AA^\\top/p)$, both rules")
    ax.plot(med.index, med["fa_first_norm"], "s--", color="tab:blue",
            label="$\\|$FA first-layer term$\\|_2$")
    ax.plot(med.index, med["bp_first_min"], "^-", color="crimson",
            label="$\\mu_{\\min}$(BP first-layer term)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("width p")
    ax.set_title("kernel at initialisation")
    ax.legend(fontsize="x-small")
    err = prediction_error(curves).set_index(["width", "rule"])
    for ax, p in zip(axes[0, 1:], shown):
        for rule, color in (("fa", "tab:blue"), ("bp", "crimson")):
            g = curves[(curves["width"] == p) & (curves["rule"] == rule)]
            m = np.exp(np.log(g["measured"]).groupby(g["step"]).mean())
            q = np.exp(np.log(g["predicted"]).groupby(g["step"]).mean())
            rel = err.loc[(p, rule), "decades_rel_err"]
            ax.plot(m.index, m, color=color, lw=2, label=f"{rule.upper()} trained")
            ax.plot(q.index, q, color=color, lw=1.2, ls="--",
                    label=f"{rule.upper()} frozen $G_0$ ({rel:.1%})")
        ax.set_yscale("log")
        ax.set_title(f"p = {p}")
        ax.set_xlabel("step t")
        ax.legend(fontsize="x-small", loc="lower left")
    axes[0, 1].set_ylabel("training loss L")
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
            ax.plot(p, g["learned"].iloc[0] * (p / p[0]) ** fit["implied_slope"], color="tab:green",
                    lw=0.8, label=f"implied law $p^{{{fit['implied_slope']:.2f}}}$")
        ax.set_xscale("log")
        ax.set_yscale("log")
        # Labels at 1 and 3 per decade: the default labels every minor tick, overlapping.
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 3.0)))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("width p")
        ax.set_title(f"FA, λ = {lam:g}")
        ax.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.2))
    axes[0, 0].set_ylabel("final alignment and its parts")
    fig.tight_layout()
    return fig


def plot_dynamics(frame: pd.DataFrame, s: MechanismSettings):
    """Statements 2 and 3 in time (mean over seeds; initial part as RMS).

    Panel 1: what ``beta_t`` is made of, ``c_t |beta_0| / |beta_t|`` and
    ``|l_t| / |beta_t|``, for both schedules. Panels 2, 3: ``cos(beta_t, b)`` and
    its parts, constant L2 and release. Panel 4: the loss.
    """
    plotting.use_style()
    fig, axes = plotting.subplots(4, width=3.8, height=4.3)
    titles = {"constant": f"constant λ = {s.lam_used:g}",
              "release": f"λ = {s.lam_used:g} until t = {s.release_step}"}
    colors = {"constant": "tab:purple", "release": "crimson"}
    mean = frame.groupby(["schedule", "step"]).mean(numeric_only=True).reset_index()
    rms = (frame.assign(sq=frame["initial"] ** 2).groupby(["schedule", "step"])["sq"]
           .mean().pow(0.5).reset_index())
    tau = 1 / (s.lr * s.lam_used)
    ax = axes[0, 0]
    for schedule in ("constant", "release"):
        g = mean[mean["schedule"] == schedule]
        ax.plot(g["step"], g["initial_share"], color=colors[schedule], ls=":")
        ax.plot(g["step"], g["learned_share"], color=colors[schedule])
    ax.set_title("what β is made of")
    # The four curves fill the panel: the legend goes below it, style and colour apart.
    key = [Line2D([], [], color="grey", ls=":", label="start $c_t|β_0|/|β_t|$"),
           Line2D([], [], color="grey", label="learned $|l_t|/|β_t|$"),
           *(Line2D([], [], color=colors[k], label=k) for k in ("constant", "release"))]
    ax.legend(handles=key, fontsize="x-small", ncol=2, loc="upper center",
              bbox_to_anchor=(0.5, -0.2))
    for ax, schedule in zip(axes[0, 1:3], ("constant", "release")):
        g = mean[mean["schedule"] == schedule]
        r = rms[rms["schedule"] == schedule]
        ax.plot(g["step"], g["alignment"], color="black", lw=2, label="cos(β, b)")
        ax.plot(g["step"], g["learned"], color="tab:green", ls="--", label="learned part")
        ax.plot(r["step"], r["sq"], color="tab:orange", ls=":", label="initial part (RMS)")
        ax.set_title(titles[schedule])
        ax.legend(fontsize="x-small")
    axes[0, 1].set_ylabel("")
    ax = axes[0, 3]
    for schedule in ("constant", "release"):
        g = frame[frame["schedule"] == schedule]
        curve = np.exp(np.log(g["loss"]).groupby(g["step"]).mean())
        ax.plot(curve.index, curve, color=colors[schedule], label=titles[schedule])
    ax.set_yscale("log")
    ax.set_title("training loss")
    ax.legend(fontsize="x-small")
    for ax in axes[0]:
        ax.axvline(tau, color="grey", ls="-.", lw=0.8)
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
    4. The frozen-kernel prediction's error (decades, median over seeds) shrinks
       from the smallest to the largest width for FA and is below ``max_err`` at the
       largest width for both rules.
    5. BP converges faster than FA, measured and predicted.
    """
    tag = "mechanisms: kernel"
    med = spectra.groupby("width").median(numeric_only=True)
    out = [Claim(tag, "A Aᵀ/p is positive definite at every width",
                 ", ".join(f"p={p}: {v:.3g}" for p, v in med["second_min"].items()),
                 bool((spectra["second_min"] > 0).all()))]
    scale = spectra["second_min"].abs().max()
    negative = (spectra["fa_first_min"] < 0).groupby(spectra["width"]).mean()
    out.append(Claim(tag, "BP's first-layer term is PSD; FA's is sign-indefinite",
                     f"min eigenvalue BP {spectra['bp_first_min'].min():.2e} (smallest over "
                     "runs); FA's negative in "
                     + ", ".join(f"{v:.0%}" for v in negative) + " of runs at p = "
                     + ", ".join(map(str, negative.index)),
                     bool((spectra["bp_first_min"] > -1e-9 * scale).all()
                          and (negative > 0.5).all())))
    slope, _ = fit_power_law(med.index, med["fa_first_norm"])
    ratio = med["fa_first_norm"] / med["second_min"]
    out.append(Claim(tag, "FA's term shrinks like 1/sqrt(p) against A Aᵀ/p",
                     f"slope {slope:.2f}; norm/μ_min {ratio.iloc[0]:.3g} at p={med.index[0]} "
                     f"→ {ratio.iloc[-1]:.3g} at p={med.index[-1]}",
                     bool(-0.75 <= slope <= -0.25 and ratio.iloc[-1] < ratio.iloc[0])))
    err = prediction_error(curves)
    for rule in RULES:
        e = err[err["rule"] == rule].sort_values("width")["decades_rel_err"].to_numpy()
        out.append(Claim(tag, f"{rule.upper()}: the frozen-kernel prediction closes in as p "
                              f"grows (error < {max_err:.0%} at the largest p)",
                         " → ".join(f"{v:.1%}" for v in e),
                         bool(e[-1] < e[0] and e[-1] < max_err)))
    fa_err, bp_err = (err[err["rule"] == r].set_index("width") for r in RULES)
    faster = (bp_err["decades_measured"] > fa_err["decades_measured"]) & \
             (bp_err["decades_predicted"] > fa_err["decades_predicted"])
    out.append(Claim(tag, "BP's loss falls faster than FA's, measured and predicted",
                     ", ".join(f"p={p}: {b:.1f} vs {f:.1f} decades"
                               for p, b, f in zip(fa_err.index, bp_err["decades_measured"],
                                                  fa_err["decades_measured"])),
                     bool(faster.all())))
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
    slopes = alignment_slopes(runs).set_index("lam")
    table = alignment_summary(runs)
    free = slopes.loc[0.0]
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
    mean = frame.groupby(["schedule", "step"]).mean(numeric_only=True)
    rms = frame.assign(sq=frame["initial"] ** 2).groupby(["schedule", "step"])["sq"].mean() ** 0.5
    const, const_rms = mean.loc["constant"], rms.loc["constant"]
    tau = 1 / (s.lr * s.lam_used)
    below = const.index[const["initial_share"] < 0.5]
    t_half = int(below[0]) if len(below) else None
    end = const.iloc[-1]
    out.append(Claim(tag, f"constant λ: the random start is forgotten on the time scale "
                          f"1/(ηλ) = {tau:.0f} steps; the learned part carries the alignment",
                     f"start's share of β < 1/2 from t={t_half}, {end['initial_share']:.3f} at "
                     f"the end; initial RMS {const_rms.iloc[0]:.3f} → {const_rms.iloc[-1]:.4f}; "
                     f"learned {end['learned']:.3f} of {end['alignment']:.3f}",
                     bool(t_half is not None and t_half <= 3 * tau
                          and end["initial_share"] < 0.2
                          and const_rms.iloc[-1] < const_rms.iloc[0] / 5
                          and end["learned"] > 0.9 * end["alignment"])))
    rel, rel_rms = mean.loc["release"], rms.loc["release"]
    k, T = s.release_step, rel.index[-1]
    log_loss = np.log10(frame.set_index(["schedule", "step"])["loss"]).groupby(
        ["schedule", "step"]).mean()
    orders = log_loss.loc[("release", k)] - log_loss.loc[("release", T)]
    k_const = _nearest_step(const.index, k)
    orders_const = log_loss.loc[("constant", k_const)] - log_loss.loc[("constant", T)]
    out.append(Claim(tag, "release: the alignment stays, the initial part is frozen, the loss "
                          "resumes its exponential fall",
                     f"cos {rel.loc[k, 'alignment']:.3f} → {rel.loc[T, 'alignment']:.3f}; "
                     f"initial RMS {rel_rms.loc[k]:.4f} → {rel_rms.loc[T]:.4f}; loss falls "
                     f"{orders:.1f} orders after t={k} (constant λ: {orders_const:.2f})",
                     bool(rel.loc[T, "alignment"] >= 0.9 * rel.loc[k, "alignment"]
                          and abs(rel_rms.loc[T] - rel_rms.loc[k]) < 0.2 * rel_rms.loc[k]
                          and orders >= 3 and orders_const < 1)))
    return out


def claims(spectra: pd.DataFrame, curves: pd.DataFrame, runs: pd.DataFrame,
           frame: pd.DataFrame, checks: pd.DataFrame, s: MechanismSettings) -> list[Claim]:
    """All three statements' claims: :func:`claims_kernel` (default thresholds),
    :func:`claims_alignment` and :func:`claims_dynamics`, in that order."""
    return (claims_kernel(spectra, curves) + claims_alignment(runs)
            + claims_dynamics(frame, checks, s))


def plot(spectra: pd.DataFrame, curves: pd.DataFrame):
    """The notebook's main figure (``mechanisms.png``): statement 1, :func:`plot_kernel`.

    The other two figures are :func:`plot_alignment` and :func:`plot_dynamics`.
    """
    return plot_kernel(spectra, curves)


def sweep_plan(scale: str = "paper", **overrides) -> tuple[list, list[int]]:
    """The experiments and seeds the notebook runs at ``scale`` with the parameters
    ``overrides`` (none: its defaults), for :mod:`fa.estimate`."""
    s = settings(scale, **_figure.settings_overrides(MechanismSettings, overrides))
    return kernel_configs(s) + alignment_configs(s) + dynamics_configs(s), list(range(s.n_seeds))


def write_results(tables: dict, results_dir=None) -> list:
    """Write each DataFrame of ``tables`` to ``<results_dir>/mechanisms_<key>.csv``."""
    return [_figure.write_csv(frame, f"{NAME}_{key}", results_dir)
            for key, frame in tables.items()]
