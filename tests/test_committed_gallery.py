"""The committed gallery stands on its data: every redrawn figure has its data and
manifest, and a figure whose runs are committed (``figures/data/runs/``) has every one of
them there. That each notebook run with ``rerun=False`` redraws its figure from that data,
with every claim holding at the gallery's scale, is checked by its first Run All in
test_interactive.py (one kernel, as a reader redraws it)."""

import dataclasses
import io
import json
import math
import re
import zipfile

import numpy as np
import pandas as pd
import pytest

from fa import figures, gallery, paths

#: The figures whose notebooks redraw from committed data.
REDRAWN = [f for f in figures.FIGURES if "rerun" in f.parameters]


def test_every_redrawn_figure_is_in_the_gallery():
    assert {f.key for f in REDRAWN} == {"convergence", "alignment_dynamics",
                                        "width_dependence", "mnist"}
    for f in REDRAWN:
        assert (paths.GALLERY_DATA_DIR / f"{f.key}.csv.gz").exists(), f.key
        assert (paths.GALLERY_FIGURES_DIR / f"{f.key}.json").exists(), f.key
        assert (paths.GALLERY_NOTEBOOKS_DIR / f"{f.notebook}.ipynb").exists(), f.notebook


def test_the_gallery_names_no_folder_of_the_machine_it_ran_on():
    """A reader cannot have the gallery machine's folders: data are named by what they are
    (F4's "data" column), never by where they were read from."""
    folder = re.compile(r"(?<![\w.~])/(?:home|root|tmp|work|Users|mnt|var)/")
    for path in [*paths.GALLERY_NOTEBOOKS_DIR.glob("*.ipynb"),
                 *paths.GALLERY_FIGURES_DIR.glob("*.json")]:
        found = folder.findall(path.read_text(encoding="utf-8"))
        assert not found, f"{path.name} names a folder of its machine: {found[:3]}"


@pytest.mark.parametrize("figure", [f for f in figures.FIGURES if f.archived],
                         ids=lambda f: f.notebook)
def test_the_committed_runs_are_those_behind_the_figure(figure):
    kind = gallery._experiment(figure.key)
    # A run is its configuration (the fields that enter the cache key) and its seed.
    identity = [f.name for f in dataclasses.fields(kind) if not f.metadata.get("label")] + ["seed"]
    runs = _published(figure.key, kind)
    archived = {}     # run -> its records (more than one if runs of older code were kept)
    with zipfile.ZipFile(paths.GALLERY_RUNS_DIR / f"{figure.key}.zip") as z:
        for name in z.namelist():
            with np.load(io.BytesIO(z.read(name))) as f:
                record = {k: f[k] for k in f.files}
            about = json.loads(record.pop("about").item())
            archived.setdefault(_key(about, identity), []).append(record)
    keys = [_key(row, identity) for _, row in runs.iterrows()]
    assert len(set(keys)) == len(keys)
    assert not set(keys) - set(archived), "runs of the figure missing from the archive"
    for key, (_, row) in zip(keys, runs.iterrows()):
        assert any(_same(row, record) for record in archived[key]), key


def _published(name: str, kind) -> pd.DataFrame:
    """The runs behind the committed figure: one row each, with its scalars and, for a
    figure drawn from curves, each curve's last value (column ``<curve>_last``)."""
    sweep, _ = gallery.load(name)
    tables = []
    for part in sweep if isinstance(sweep, list) else [sweep]:
        runs = part.runs
        if len(part.curves):    # the committed curves keep each run's last record
            last = part.curves.groupby(["run", "seed"]).tail(1)[["run", "seed", *kind.curves]]
            runs = runs.merge(last.rename(columns={c: f"{c}_last" for c in kind.curves}),
                              on=["run", "seed"], validate="one_to_one")
        tables.append(runs)
    return pd.concat(tables, ignore_index=True)


def _key(values, names) -> tuple:
    """``values[name]`` for each name, as the data's CSV gives them back: None for a
    missing value, tuples for lists, floats to the 8 digits the data keeps."""
    def plain(v):
        if isinstance(v, (list, tuple)):
            return tuple(plain(x) for x in v)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return None
        v = v.item() if isinstance(v, np.generic) else v
        return float(f"{v:.8g}") if isinstance(v, float) else v
    return tuple(plain(values[n]) for n in names)


def _same(row, record: dict) -> bool:
    """Whether a data row has the archived run's results: its scalars and the last value
    of each curve (the data keeps 8 significant digits)."""
    checks = [(row[k], v.item()) for k, v in record.items() if v.ndim == 0 and k in row]
    checks += [(row[f"{k}_last"], v[-1]) for k, v in record.items()
               if v.ndim == 1 and f"{k}_last" in row]
    return all(ours == pytest.approx(theirs, rel=1e-7, abs=1e-300) for ours, theirs in checks)
