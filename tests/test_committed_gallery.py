"""The committed gallery stands on its data: every figure notebook run with
``rerun=False`` redraws its figure from ``figures/data/`` without training, every claim
holds at the scale the gallery ran at, and the data it saves again is the committed data.
A figure whose runs are committed (``figures/data/runs/``) has every one of them there."""

import dataclasses
import gzip
import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest

from fa import figures, gallery, paths
from fa.experiments import RunConfig

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
    warned = [out["text"] for cell in run["cells"] for out in cell.get("outputs", [])
              if out.get("name") == "stderr"]
    assert not warned, "a redraw downloads nothing and warns of nothing"
    manifest = json.loads((out / "figures" / f"{figure.key}.json").read_text())
    assert manifest["scale"] == json.loads(
        (paths.GALLERY_FIGURES_DIR / f"{figure.key}.json").read_text())["scale"]
    again = out / "figures" / "data" / f"{figure.key}.csv.gz"
    assert gzip.open(again).read() == gzip.open(committed).read()


#: What tells the runs of a width-dependence sweep apart.
RUN_ID = ["activation", "width", "regularizer", "strength", "seed"]


@pytest.mark.parametrize("figure", [f for f in figures.FIGURES if f.archived],
                         ids=lambda f: f.notebook)
def test_the_committed_runs_are_those_behind_the_figure(figure):
    sweep, _ = gallery.load(figure.key)
    runs = sweep.runs.set_index(RUN_ID)
    assert runs.index.is_unique
    archived = {}     # run -> its records (more than one if runs of older code were kept)
    with zipfile.ZipFile(paths.GALLERY_RUNS_DIR / f"{figure.key}.zip") as z:
        for name in z.namelist():
            with np.load(io.BytesIO(z.read(name))) as f:
                record = {k: f[k].item() for k in f.files if f[k].ndim == 0}
            about = json.loads(record.pop("about"))
            archived.setdefault(tuple(about[c] for c in RUN_ID), []).append((about, record))
    assert not set(runs.index) - set(archived), "runs of the figure missing from the archive"
    for run, row in runs.iterrows():
        assert any(_same(row, about, record) for about, record in archived[run]), run


def _same(row, about: dict, record: dict) -> bool:
    """Whether a data row and an archived run have the same configuration, field by field,
    and the same results (the data keeps 8 significant digits)."""
    fields = [f.name for f in dataclasses.fields(RunConfig) if f.name not in RUN_ID]
    return (all(pd.isna(row[f]) if about[f] is None else row[f] == about[f] for f in fields)
            and row["steps_taken"] == record["steps_taken"]
            and all(row[c] == pytest.approx(record[c], rel=1e-7, abs=1e-300)
                    for c in ("final_alignment", "final_loss")))
