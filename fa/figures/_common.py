"""Small pieces every figure module shares: seeds, result files, summaries."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from .. import paths
from .._io import atomic_write
from ..presets import PROTOCOL, FigureSettings, settings


def data_kind(activation: str) -> str:
    """``linear`` data for the linear network, ``teacher`` data otherwise (docs/protocols.md)."""
    return PROTOCOL[activation].data


def settings_overrides(cls, overrides: dict, extra=()) -> dict:
    """The entries of ``overrides`` (a notebook's parameters) that are fields of the
    settings dataclass ``cls`` or named in ``extra``; the rest (``n_jobs``, ``rerun``, ...)
    do not change what is trained."""
    names = {f.name for f in dataclasses.fields(cls)} | set(extra)
    return {k: v for k, v in overrides.items() if k in names}


def sweep_plan(name: str, configs, scale: str, overrides: dict):
    """``(configs(s), seeds)`` for the settings ``s`` of figure ``name`` at ``scale`` with
    the notebook parameters ``overrides``: what its notebook runs (for estimates)."""
    s = settings(name, scale, **settings_overrides(FigureSettings, overrides))
    return configs(s), list(range(s.n_seeds))


def write_csv(frame: pd.DataFrame, name: str, results_dir=None):
    """Write ``frame`` to ``<results_dir>/<name>.csv`` and return the path."""
    out = paths.resolve(results_dir, paths.RESULTS_DIR)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.csv"
    atomic_write(path, lambda f: frame.to_csv(f, index=False))
    return path


def cache_dir(results_dir=None):
    """The sweep cache lives beside the results it produced."""
    return paths.resolve(results_dir, paths.RESULTS_DIR) / "cache"


def log_mean_sd(frame: pd.DataFrame, by: list[str], column: str) -> pd.DataFrame:
    """Geometric mean and the x/÷ one-sd band of ``column`` per group.

    Losses span many orders of magnitude; on a log axis the natural summary is
    the mean and sd of ``log10`` of the loss.
    """
    logged = frame.assign(_log=np.log10(frame[column]))
    g = logged.groupby(by)["_log"].agg(["mean", "std"]).reset_index()
    g["std"] = g["std"].fillna(0.0)
    g["mean_"] = 10 ** g["mean"]
    g["low"] = 10 ** (g["mean"] - g["std"])
    g["high"] = 10 ** (g["mean"] + g["std"])
    return g.drop(columns=["mean", "std"]).rename(columns={"mean_": "mean"})


def mean_sd(frame: pd.DataFrame, by: list[str], column: str) -> pd.DataFrame:
    """Mean, sd and the mean +- sd band of ``column`` per group."""
    g = frame.groupby(by)[column].agg(["mean", "std", "count"]).reset_index()
    g["std"] = g["std"].fillna(0.0)
    g["low"] = g["mean"] - g["std"]
    g["high"] = g["mean"] + g["std"]
    return g

