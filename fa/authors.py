"""The authors' own numbers beside ours: F3 (L2 and dropout rows) and F4.

Song, Xu and Lafferty committed the data frames behind their figures with their code
(:data:`REPOSITORY`); ``figures/data/authors/`` holds summaries of them, and its README
says how each file was made. A cell (activation, width, lam or q) of our run is compared
with theirs when both ran it; the others are left out and counted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fa import paths, plotting
from fa.figures import width_dependence
from fa.claims import Claim

REPOSITORY = "https://github.com/ChristophorusX/align_neurips_simulations"
#: ``figures/data/authors/`` of a checkout, or its copy inside an installed package.
DATA_DIR = (paths.GALLERY_DATA_DIR / "authors" if paths.CHECKOUT
            else paths.PACKAGE_DIR / "authors_data")
#: Two cells agree when their means differ by at most max(TOLERANCE, Z_MAX * SE of the
#: difference): the SE alone is too strict where both sides' seeds happen to agree closely
#: but the runs differ in float width and stopping step (a few hundredths, docs/reproduction.md).
TOLERANCE = 0.06
Z_MAX = 3.0
SHARE = 0.9          # the share of L2 cells that must agree for the claim to hold
KEYS = ["activation", "strength", "width"]   # what names a cell of F3 (strength: lam or q)


def load(name: str) -> pd.DataFrame:
    """The authors' summary ``<name>.csv`` from :data:`DATA_DIR`.

    Parameters
    ----------
    name : str
        ``"f3_l2_final_alignment"``, ``"f3_dropout_final_alignment"`` or
        ``"f4_one_hidden_layer_curves"``.

    Returns
    -------
    pandas.DataFrame
        The file as it is committed.
    """
    return pd.read_csv(DATA_DIR / f"{name}.csv")


def compare_f3(runs: pd.DataFrame, regularizer: str = "l2") -> pd.DataFrame:
    """Our final alignment per cell beside the authors', with the difference and z.

    Parameters
    ----------
    runs : pandas.DataFrame
        One row per run, from :func:`fa.figures.width_dependence.tidy`; only the FA runs
        are compared (the authors' are FA runs), whatever other rules it holds.
    regularizer : {"l2", "dropout"}
        Which row of F3: its strength is lam for L2, the rate q for dropout.

    Returns
    -------
    pandas.DataFrame
        One row per cell both ran: ``ours``, ``ours_se``, ``ours_n``, ``theirs``,
        ``theirs_se``, ``theirs_n`` (mean, standard error sd / sqrt(n) and seeds),
        ``diff`` = ours - theirs, ``z`` = diff / sqrt(ours_se^2 + theirs_se^2) and
        ``agree`` (|diff| <= max(TOLERANCE, Z_MAX * that SE)). ``attrs["ours_only"]`` and
        ``attrs["theirs_only"]`` count the cells left out for want of a counterpart.
    """
    table = width_dependence.summary(runs)
    ours = table[(table["regularizer"] == regularizer) & (table["rule"] == "fa")].rename(
        columns={"alignment": "ours", "alignment_sd": "ours_sd", "seeds": "ours_n"})
    column = "lam" if regularizer == "l2" else "dropout"
    theirs = load(f"f3_{regularizer}_final_alignment").rename(
        columns={column: "strength", "mean": "theirs", "std": "theirs_sd", "count": "theirs_n"})
    for frame in (ours, theirs):   # 0.02 from a CSV and from a sweep need not be equal floats
        frame["strength"] = frame["strength"].astype(float).round(6)
        frame["width"] = frame["width"].astype(int)
    both = ours[KEYS + ["ours", "ours_sd", "ours_n"]].merge(
        theirs[KEYS + ["theirs", "theirs_sd", "theirs_n"]], on=KEYS, how="outer", indicator=True)
    out = both[both["_merge"] == "both"].drop(columns="_merge").reset_index(drop=True)
    for side in ("ours", "theirs"):
        out[f"{side}_n"] = out[f"{side}_n"].astype(int)
        out[f"{side}_se"] = out.pop(f"{side}_sd") / np.sqrt(out[f"{side}_n"])
    out["diff"] = out["ours"] - out["theirs"]
    se = np.hypot(out["ours_se"], out["theirs_se"])
    out["z"] = out["diff"] / se
    out["agree"] = out["diff"].abs() <= np.maximum(TOLERANCE, Z_MAX * se)
    out = out[KEYS + ["ours", "ours_se", "ours_n", "theirs", "theirs_se", "theirs_n",
                      "diff", "z", "agree"]]
    out.attrs["ours_only"] = int((both["_merge"] == "left_only").sum())
    out.attrs["theirs_only"] = int((both["_merge"] == "right_only").sum())
    return out


def claim_f3(table: pd.DataFrame, *, strict: bool = True) -> Claim:
    """At least :data:`SHARE` of the L2 cells of :func:`compare_f3` agree with the authors'.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`compare_f3` of the L2 row.
    strict : bool
        False for a run that is not the paper's protocol (a quick run trains a fifth of the
        steps): the count is reported, the claim skipped.

    Returns
    -------
    fa.claims.Claim
    """
    claim = (f"at least {SHARE:.0%} of the L2 cells agree with the authors' within "
             f"max({TOLERANCE:g}, {Z_MAX:g} SE)")
    if table.empty:
        return Claim.skipped("F3 vs authors", claim, "no cell of this run is one of theirs")
    n, agree = len(table), int(table["agree"].sum())
    seeds = {side: sorted(set(table[f"{side}_n"])) for side in ("ours", "theirs")}
    measured = (f"{agree} of {n} cells ({agree / n:.0%}), |z| median "
                f"{table['z'].abs().median():.2f}; seeds a cell: ours {seeds['ours']}, theirs "
                f"{seeds['theirs']}; {table.attrs.get('ours_only', 0)} of our cells have no "
                "counterpart")
    if not strict:
        return Claim.skipped("F3 vs authors", claim, f"not the paper's protocol ({measured})")
    return Claim("F3 vs authors", claim, measured, agree >= SHARE * n)


def _colors(ax) -> dict[str, str]:
    """Legend label -> colour of each line (or error-bar line) already drawn on ``ax``."""
    handles, labels = ax.get_legend_handles_labels()
    lines = [h.lines[0] if hasattr(h, "lines") else h for h in handles]
    return {label: line.get_color() for line, label in zip(lines, labels)
            if hasattr(line, "get_color")}     # not the rings of fa.figures.width_dependence


def _hollow(ax, x, y, color) -> None:
    ax.plot(x, y, ls="none", marker="o", ms=9, mfc="none", mec=color, mew=1.5, zorder=5)


def overlay_f3(fig, tables: dict[str, pd.DataFrame]):
    """Draw the authors' means of ``tables`` ({"l2": ..., "dropout": ...} from
    :func:`compare_f3`) as hollow circles on :func:`fa.figures.width_dependence.plot`'s figure."""
    panels = {f"{title}, {'L2 on β' if reg == 'l2' else 'dropout'}": (act, reg)
              for act, title in plotting.TITLES.items() for reg in tables}
    for ax in fig.axes:
        if ax.get_title() not in panels:
            continue
        act, reg = panels[ax.get_title()]
        colors, symbol = _colors(ax), "λ" if reg == "l2" else "q"
        table = tables[reg]
        for value, g in table[table["activation"] == act].groupby("strength"):
            _hollow(ax, g["width"], g["theirs"], colors[f"{symbol} = {value:g}"])
    fig.suptitle(f"{fig.get_suptitle()}; hollow circles: the authors' means")
    fig.tight_layout()
    return fig


def compare_f4(frame: pd.DataFrame) -> pd.DataFrame:
    """Our final error-signal alignment and test accuracy (FA, one hidden layer, mean over
    seeds) beside the authors' at the same step, or their last one before it.

    Parameters
    ----------
    frame : pandas.DataFrame
        From :func:`fa.figures.mnist.tidy`.

    Returns
    -------
    pandas.DataFrame
        One row per lam both ran: ``step`` (ours), ``their_step``, ``ours_alignment``,
        ``theirs_alignment``, ``ours_accuracy``, ``theirs_accuracy``, ``ours_n`` (seeds).
    """
    ours = frame[(frame["depth"] == 1) & (frame["rule"] == "fa")]
    ours = ours[ours["step"] == ours["step"].max()].groupby("lam").agg(
        step=("step", "max"), ours_alignment=("signal_alignment", "mean"),
        ours_accuracy=("test_accuracy", "mean"), ours_n=("seed", "nunique"))
    theirs = load("f4_one_hidden_layer_curves")
    rows = []
    for lam, g in ours.iterrows():
        here = theirs[np.isclose(theirs["lam"], lam) & (theirs["step"] <= g["step"])]
        if here.empty:
            continue
        last = here.loc[here["step"].idxmax()]
        rows.append(dict(lam=lam, step=int(g["step"]), their_step=int(last["step"]),
                         ours_alignment=g["ours_alignment"],
                         theirs_alignment=last["signal_alignment"],
                         ours_accuracy=g["ours_accuracy"], theirs_accuracy=last["test_accuracy"],
                         ours_n=int(g["ours_n"])))
    return pd.DataFrame(rows)


def overlay_f4(fig):
    """Draw the authors' curves (hollow circles at their recorded steps) on panels (a) and
    (c) of :func:`fa.figures.mnist.plot`'s figure, for each lam it draws."""
    theirs = load("f4_one_hidden_layer_curves")
    panels = {"error-signal alignment, 1 hidden layer": "signal_alignment",
              "test accuracy, 1 hidden layer": "test_accuracy"}
    for ax in fig.axes:
        column = next((c for t, c in panels.items() if ax.get_title().endswith(t)), None)
        if column is None:
            continue
        right = ax.get_xlim()[1]     # their 30 000 steps would stretch a shorter run's axis
        for label, color in _colors(ax).items():
            if label.startswith("FA, λ = "):     # not BP's line: they ran FA only
                lam = float(label.removeprefix("FA, λ = "))
                g = theirs[np.isclose(theirs["lam"], lam) & (theirs["step"] <= right)]
                _hollow(ax, g["step"], g[column], color)
    fig.suptitle(f"{fig.get_suptitle()}\n"
                 "hollow circles: the authors' means (full MNIST, 10 seeds)")
    fig.tight_layout()
    return fig
