"""Small pieces the figure modules share: settings, result files, summaries, panels."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from .. import paths
from .._io import atomic_write
from ..claims import Claim
from ..constraints import fail
from ..experiments import RunConfig
from ..model import RULES
from ..presets import FigureSettings, coerce, settings
from . import BY_KEY


def settings_overrides(cls, overrides: dict, extra=()) -> dict:
    """The entries of ``overrides`` that are fields of ``cls`` or named in ``extra``."""
    names = {f.name for f in dataclasses.fields(cls)} | set(extra)
    return {k: v for k, v in overrides.items() if k in names}


def figure_settings(name: str, scale: str, overrides: dict) -> FigureSettings:
    """The settings of F1-F3's ``name`` at ``scale`` with a notebook's parameters."""
    return settings(name, scale, **settings_overrides(FigureSettings, overrides))


def sweep_plan(name: str, configs, scale: str, overrides: dict):
    """``(configs(s, rules=...), seeds)`` of figure ``name``: what its notebook runs."""
    s = figure_settings(name, scale, overrides)
    return configs(s, rules=overrides.get("rules")), list(range(s.n_seeds))


def rule_names(rules, default: tuple[str, ...], name: str) -> tuple[str, ...]:
    """The rules figure ``name`` trains: ``rules`` (None: ``default``), a notebook's
    parameter, checked: distinct names in :data:`fa.RULES`, "fa" among them (the claims
    are FA's; the others are drawn beside it)."""
    if rules is None:
        return default
    caller = BY_KEY[name].notebook
    rules = coerce("rules", rules, tuple[str, ...], caller)
    if "fa" not in rules or len(set(rules)) < len(rules) or not set(rules) <= set(RULES):
        raise fail("rules", caller, "a list of distinct names from "
                   f"{', '.join(map(repr, RULES))} that holds 'fa'", list(rules))
    return rules


def write_csv(frame: pd.DataFrame, name: str, results_dir=None):
    """Write ``frame`` to ``<results_dir>/<name>.csv`` and return the path."""
    out = paths.resolve(results_dir, paths.RESULTS_DIR)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.csv"
    atomic_write(path, lambda f: frame.to_csv(f, index=False))
    return path


def finished(frame: pd.DataFrame, runs: pd.DataFrame, kind=RunConfig
             ) -> tuple[pd.DataFrame, list[str]]:
    """The rows of ``frame`` (keyed by ``run`` and ``seed``) whose run in ``runs`` (of
    experiments ``kind``) did not diverge, and a line per config that had runs diverge,
    named by the fields in which the sweep's configs differ (``lam=500.0: 2 of 2 seeds``)."""
    bad = runs[runs["diverged"].astype(bool)]
    if bad.empty:
        return frame, []
    gone = pd.MultiIndex.from_frame(frame[["run", "seed"]]).isin(
        pd.MultiIndex.from_frame(bad[["run", "seed"]]))
    fields = [f for f in dataclasses.fields(kind) if not f.metadata.get("label")]
    settings = [f.name for f in fields if runs[f.name].astype(str).nunique() > 1]
    lines = []
    for run, g in bad.groupby("run"):
        row = runs[runs["run"] == run].iloc[0]
        # one config: name it by the fields not at their default
        named = settings or [f.name for f in fields if f.default is dataclasses.MISSING
                             or str(row[f.name]) != str(f.default)]
        name = ", ".join(f"{c}={row[c]}" for c in named)
        lines.append(f"{name}: {len(g)} of {(runs['run'] == run).sum()} seeds")
    return frame[~gone], lines


def noted(frame: pd.DataFrame, diverged: list[str], n_runs: int) -> pd.DataFrame:
    """``frame`` with ``attrs["diverged"]`` (for :func:`diverged_claim`); says, when runs
    diverged, that the figure, its tables and claims leave them out (a diverged run has
    no result to draw or judge)."""
    if diverged and frame.empty:
        raise RuntimeError(f"Every one of the {n_runs} runs diverged ({'; '.join(diverged)}): "
                           "there is nothing to draw. Lower lr.")
    if diverged:
        print(f"Diverged, left out of the figure, its tables and claims: {'; '.join(diverged)}. "
              "Lower lr for them.")
    frame.attrs["diverged"] = diverged
    return frame


def diverged_claim(tag: str, frame: pd.DataFrame) -> Claim:
    """Whether every run behind ``frame`` (a table of :func:`noted`) trained to its end."""
    claim = "every run trained to its end (none diverged)"
    diverged = frame.attrs.get("diverged")
    if diverged is None:
        return Claim.skipped(tag, claim, "this table was not made by the figure's tidy()")
    return Claim(tag, claim, "; ".join(diverged) or "none diverged", not diverged)


def mean_sd(frame: pd.DataFrame, by: list[str], column: str) -> pd.DataFrame:
    """Mean, sd and the mean +- sd band of ``column`` per group."""
    g = frame.groupby(by)[column].agg(["mean", "std", "count"]).reset_index()
    g["std"] = g["std"].fillna(0.0)
    return g.assign(low=g["mean"] - g["std"], high=g["mean"] + g["std"])


def log_mean_sd(frame: pd.DataFrame, by: list[str], column: str) -> pd.DataFrame:
    """Geometric mean and the x/÷ one-sd band of ``column`` per group (sd of ``log10``):
    losses span many orders of magnitude."""
    g = mean_sd(frame.assign(_log=np.log10(frame[column])), by, "_log")
    for name in ("mean", "low", "high"):
        g[name] = 10 ** g[name]
    return g.drop(columns=["std", "count"])


def with_rule(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with a ``rule`` column: ``"fa"`` where it has none (a table built by hand)."""
    return frame if "rule" in frame else frame.assign(rule="fa")


def panels(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """The ``(activation, rule)`` pairs of ``frame`` in order: one column of panels each."""
    return list(dict.fromkeys(zip(frame["activation"], frame["rule"])))


def dropout_claim(tag: str, claim: str, drop: pd.DataFrame) -> Claim:
    """Whether the largest rate of ``drop`` (final alignment per ``strength``) ends more
    aligned than no dropout; skipped without both."""
    drop = drop.sort_values("strength")
    if len(drop) < 2 or drop["strength"].iloc[0] != 0:
        return Claim.skipped(tag, "dropout raises alignment",
                             "needs q = 0 and a rate > 0 in dropout_rates")
    top, none = drop.iloc[-1], drop.iloc[0]
    return Claim(tag, claim, f"q={top['strength']:g}: {top['alignment']:.3f} vs q=0: "
                             f"{none['alignment']:.3f}", bool(top["alignment"] > none["alignment"]))
