"""The data behind every committed figure, so a figure can be redrawn without training.

A notebook saves the sweep behind its figure as ``<figures_dir>/data/<name>.csv.gz``
(:func:`save`), next to the figure's manifest ``<name>.json``. :func:`load` reads both
back, and a notebook run with ``rerun=False`` redraws its figure from them in seconds.
"""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.types import is_string_dtype

from . import cache, figures, paths
from ._io import atomic_write
from .experiments import RunConfig
from .sweep import SweepResult


#: Curve points kept per run in the saved data (every k-th recorded step, and the last):
#: enough to redraw a figure, and a few MB for the whole gallery rather than tens.
MAX_POINTS = 101


def save(sweep, name: str, figures_dir) -> Path:
    """Write ``sweep`` as ``<figures_dir>/data/<name>.csv.gz`` (atomically); return the path.

    ``sweep`` is a :class:`SweepResult` or a list of them (one figure, several sweeps:
    a ``part`` column tells them apart). When curves were recorded, the file is the
    curves table, thinned to at most :data:`MAX_POINTS` steps per run, with each
    run's summary columns joined in; otherwise it is the runs table. Numbers are
    written with 8 significant digits.
    """
    folder = paths.resolve(figures_dir, paths.FIGURES_DIR) / "data"
    folder.mkdir(parents=True, exist_ok=True)
    parts = [sweep] if isinstance(sweep, SweepResult) else list(sweep)
    frames = []
    for part, one in enumerate(parts):
        frame = one.runs
        if len(one.curves):
            summary = [c for c in one.runs.columns if c not in one.curves.columns]
            frame = _thin(one.curves).merge(one.runs[["run", "seed", *summary]],
                                            on=["run", "seed"])
        frames.append(frame.assign(part=part) if len(parts) > 1 else frame)
    frame = pd.concat(frames, ignore_index=True)
    # A field marked local (F4's data_dir) names a place on this machine: not published.
    frame = frame.drop(columns=list(cache.local_fields(_experiment(name))), errors="ignore")
    path = folder / f"{name}.csv.gz"
    # zlib's default level: a redraw saves F2's 32 MB table five times faster than at
    # level 9, into a file 1.5% larger.
    gzip = {"method": "gzip", "mtime": 0, "compresslevel": 6}
    atomic_write(path, lambda f: frame.to_csv(f, index=False, float_format="%.8g",
                                              compression=gzip))
    return path


def _thin(curves: pd.DataFrame) -> pd.DataFrame:
    """Per configuration (``run``): every k-th recorded step, fewer than :data:`MAX_POINTS`
    of them, and the last step of each of its seeds.

    The grid is shared by a configuration's seeds, so their curves stay aligned, and skips
    the steps that end a seed's run, so a redraw (``rerun=False``) saves the same data again.
    """
    key = curves[["run", "step"]]
    at = pd.MultiIndex.from_frame(key)
    last = curves["step"] == curves.groupby(["run", "seed"])["step"].transform("max")
    ends = pd.MultiIndex.from_frame(key[last].drop_duplicates())
    kept = [ends.to_frame(index=False)]
    for run, steps in key[~at.isin(ends)].groupby("run")["step"]:
        grid = np.unique(steps)
        stride = max(1, -(-len(grid) // (MAX_POINTS - 1)))
        kept.append(pd.DataFrame({"run": run, "step": grid[::stride]}))
    return curves[at.isin(pd.MultiIndex.from_frame(pd.concat(kept, ignore_index=True)))]


def load(name: str, *, kind=None, folder=None):
    """The committed data and manifest of figure ``name``.

    Parameters
    ----------
    name : str
        The figure's file stem, e.g. ``"convergence"``.
    kind : type, optional
        The experiment type of its sweep. Default: the ``EXPERIMENT`` its figure module
        names (F4's ``MnistConfig``), else :class:`fa.RunConfig`.
    folder : path, optional
        Where the figures are (default: the committed ``figures/`` of the checkout).

    Returns
    -------
    sweep : SweepResult or list of SweepResult
        ``runs`` and ``curves`` as :func:`fa.run_sweep` returned them (a list if the
        figure was saved from several sweeps).
    manifest : dict
        The figure's manifest: ``scale``, ``settings``, seeds, commit, date.

    Raises
    ------
    ValueError
        If there is no committed data for ``name`` (or no checkout).
    """
    folder = Path(folder) if folder is not None else paths.GALLERY_FIGURES_DIR
    data = None if folder is None else folder / "data" / f"{name}.csv.gz"
    if data is None or not data.exists():
        raise ValueError(f"There is no committed data for the figure {name!r} "
                         f"({data or 'the gallery comes with a clone of the repository'}); "
                         "run the notebook with rerun=True.")
    kind = _experiment(name) if kind is None else kind
    frame = pd.read_csv(data)
    manifest = json.loads((folder / f"{name}.json").read_text())
    # Tuples (e.g. hidden layer widths) come back from CSV as text.
    for f in dataclasses.fields(kind):
        if "tuple" in str(f.type) and f.name in frame and is_string_dtype(frame[f.name]):
            frame[f.name] = frame[f.name].map(ast.literal_eval)
    if "part" not in frame:
        return _sweep(frame, kind), manifest
    return [_sweep(g.drop(columns="part").reset_index(drop=True), kind)
            for _, g in frame.groupby("part", sort=True)], manifest


def _experiment(name: str):
    """The experiment type of figure ``name``'s sweeps (see :func:`load`)."""
    figure = figures.BY_KEY.get(name)
    return getattr(figure.load(), "EXPERIMENT", RunConfig) if figure else RunConfig


def _sweep(frame: pd.DataFrame, kind) -> SweepResult:
    frame = frame.assign(**{name: None for name in cache.local_fields(kind) if name not in frame})
    curves = list(kind.curves)
    if not all(c in frame for c in curves):
        return SweepResult(runs=frame, curves=frame.iloc[0:0])
    fields = [f.name for f in dataclasses.fields(kind)]
    runs = frame.drop(columns=curves).drop_duplicates(["run", "seed"]).reset_index(drop=True)
    return SweepResult(runs=runs, curves=frame[["run", *fields, "seed", *curves]])
