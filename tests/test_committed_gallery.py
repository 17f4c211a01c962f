"""The committed gallery stands on its data: every figure notebook run with
``rerun=False`` redraws its figure from ``figures/data/`` without training, every claim
holds at the scale the gallery ran at, and the data it saves again is the committed data.
A figure whose runs are committed (``figures/data/runs/``) has every one of them there."""

import dataclasses
import gzip
import io
import json
import math
import zipfile

import numpy as np
import pandas as pd
import pytest

from fa import figures, gallery, paths

papermill = pytest.importorskip("papermill")

#: The figures whose notebooks redraw from committed data.
REDRAWN = [f for f in figures.FIGURES if "rerun" in f.parameters]


def test_every_redrawn_figure_is_in_the_gallery():
    assert {f.key for f in REDRAWN} == {"convergence", "alignment_dynamics",
                                        "width_dependence", "mnist"}
    for f in REDRAWN:
        assert (paths.GALLERY_DATA_DIR / f"{f.key}.csv.gz").exists(), f.key
        assert (paths.GALLERY_FIGURES_DIR / f"{f.key}.json").exists(), f.key
        assert (paths.GALLERY_NOTEBOOKS_DIR / f"{f.notebook}.ipynb").exists(), f.notebook


@pytest.mark.parametrize("figure", REDRAWN, ids=lambda f: f.notebook)
def test_a_gallery_figure_redraws_from_its_data_and_its_claims_hold(tmp_path, figure):
    committed = paths.GALLERY_DATA_DIR / f"{figure.key}.csv.gz"
    if not committed.exists():
        pytest.fail(f"{committed} is missing: run `python -m fa.reproduce --scale paper "
                    f"--gallery --only {figure.notebook[:2]}`")
    out = tmp_path / "out"
    # The claims cell raises if a claim fails; strict at the manifest's scale. At paper
    # scale, as `fa.reproduce --scale paper --set rerun=False` redraws the gallery.
    run = papermill.execute_notebook(
        str(paths.NOTEBOOKS_DIR / f"{figure.notebook}.ipynb"), str(tmp_path / "run.ipynb"),
        parameters=dict(scale="paper", rerun=False, figures_dir=str(out / "figures"),
                        results_dir=str(out / "results")),
        cwd=str(paths.NOTEBOOKS_DIR), progress_bar=False)
    warned = [shown["text"] for cell in run["cells"] for shown in cell.get("outputs", [])
              if shown.get("name") == "stderr"]
    assert not warned, "a redraw downloads nothing and warns of nothing"
    manifest = json.loads((out / "figures" / f"{figure.key}.json").read_text())
    committed_manifest = json.loads((paths.GALLERY_FIGURES_DIR / f"{figure.key}.json").read_text())
    assert manifest["scale"] == committed_manifest["scale"]
    # The setup shows the committed run's settings, not the scale's defaults.
    seeds = committed_manifest["seeds"]
    n_seeds = len(seeds) if isinstance(seeds, list) else int(seeds.split()[0])
    setup = next(c for c in run["cells"] if "output_folders" in "".join(c["source"]))
    shown = "".join(o["data"]["text/plain"] for o in setup["outputs"] if "data" in o)
    assert f"n_seeds={n_seeds}," in shown
    if figure.key == "mnist":   # the configurations shown name the data the runs used
        cell = next(c for c in run["cells"] if "configs = " in "".join(c["source"]))
        table = "".join(o["data"]["text/plain"] for o in cell["outputs"] if "data" in o)
        assert all(data in table for data in set(pd.read_csv(committed)["data"]))
    again = out / "figures" / "data" / f"{figure.key}.csv.gz"
    assert gzip.open(again).read() == gzip.open(committed).read()


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
