"""The data behind a figure round-trips: what a notebook saves beside its figure loads
back as the same sweep, so `rerun=False` redraws exactly the committed figure."""

import json

import numpy as np
import pandas as pd
import pytest

import fa
from fa import gallery
from fa.figures import width_dependence


def tiny_sweep(steps=30, **kw):
    configs = [fa.RunConfig(width=6, n=5, d=8, steps=steps, lam=lam, record_every=10, **kw)
               for lam in (0.0, 0.1)]
    return fa.run_sweep(configs, range(2), cache_dir=None, progress=False)


def same(a, b):
    """Equal tables; CSV brings an empty optional field (None) back as NaN."""
    a, b = (f.astype(object).where(f.notna(), None).reset_index(drop=True) for f in (a, b))
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


def write_manifest(folder, name):
    (folder / f"{name}.json").write_text(json.dumps({"scale": "quick", "settings": {}}))


def test_a_sweep_round_trips(tmp_path):
    sweep = tiny_sweep()
    gallery.save(sweep, "toy", tmp_path)
    write_manifest(tmp_path, "toy")
    back, manifest = gallery.load("toy", folder=tmp_path)
    assert manifest["scale"] == "quick"
    same(back.curves, sweep.curves)
    same(back.runs[sweep.runs.columns], sweep.runs)
    assert (tmp_path / "data" / "toy.csv.gz").stat().st_mode & 0o044   # readable by others


def test_a_runs_only_figure_redraws_the_same_table(tmp_path):
    sweep = tiny_sweep(until_converged=True, check_every=10, tol=1.0)
    sweep = fa.SweepResult(runs=sweep.runs, curves=sweep.curves.iloc[0:0])   # no curves drawn
    gallery.save(sweep, "runs_only", tmp_path)
    write_manifest(tmp_path, "runs_only")
    back, _ = gallery.load("runs_only", folder=tmp_path)
    assert back.curves.empty
    same(width_dependence.tidy(back, tmp_path), width_dependence.tidy(sweep, tmp_path))


def test_several_sweeps_of_one_figure_come_back_as_a_list(tmp_path):
    parts = [tiny_sweep(), tiny_sweep(steps=20)]
    gallery.save(parts, "two", tmp_path)
    write_manifest(tmp_path, "two")
    back, _ = gallery.load("two", folder=tmp_path)
    assert len(back) == 2
    for one, again in zip(parts, back):
        same(again.curves, one.curves)


def test_missing_data_says_how_to_get_it(tmp_path):
    with pytest.raises(ValueError, match="no committed data for the figure 'nothing'.*rerun=True"):
        gallery.load("nothing", folder=tmp_path)


def test_long_curves_are_thinned_but_keep_their_last_point(tmp_path, monkeypatch):
    sweep = tiny_sweep(steps=700)                # 71 records per run (record_every=10)
    monkeypatch.setattr(gallery, "MAX_POINTS", 11)
    gallery.save(sweep, "long", tmp_path)
    write_manifest(tmp_path, "long")
    back, _ = gallery.load("long", folder=tmp_path)
    per_run = back.curves.groupby(["run", "seed"])["step"]
    assert (per_run.count() <= 11).all() and (per_run.max() == 700).all()
    assert set(back.curves["step"]) <= set(sweep.curves["step"])


def test_the_manifest_says_which_precision_each_activation_ran_in(tmp_path):
    import matplotlib.pyplot as plt

    s = fa.settings("width_dependence", "paper")
    fig = plt.figure()
    fa.plotting.save_figure(fig, "toy", figures_dir=tmp_path, notebook="x.ipynb",
                            scale="paper", settings=s)
    plt.close(fig)
    manifest = json.loads((tmp_path / "toy.json").read_text())
    assert manifest["settings"]["dtype"] is None   # None: each activation's own
    assert manifest["dtypes"] == {"linear": "float64", "relu": "float32", "tanh": "float32",
                                  "sigmoid": "float32"}
    s = fa.settings("width_dependence", "paper", dtype="float64")
    assert {s.dtype_for(a) for a in s.activations} == {"float64"}


def test_the_manifest_names_the_commit_of_the_code_that_ran(tmp_path, monkeypatch):
    """Taken when the notebook imported fa.plotting, not when it saves hours later: the
    checkout may have moved on in between, not the code that is running."""
    import matplotlib.pyplot as plt

    monkeypatch.setattr(fa.plotting, "_commit", lambda: "a commit made during the run")
    fig = plt.figure()
    fa.plotting.save_figure(fig, "toy", figures_dir=tmp_path, notebook="x.ipynb",
                            scale="quick", settings=fa.settings("convergence"))
    plt.close(fig)
    assert json.loads((tmp_path / "toy.json").read_text())["commit"] == fa.plotting.COMMIT


def test_the_width_manifest_names_the_dropout_row_it_ran():
    # The settings list the L2 widths; the dropout row may run at fewer (a gallery run in
    # chunks), so the manifest takes them from the runs, as plain ints for JSON.
    runs = pd.DataFrame({"regularizer": ["l2", "dropout", "dropout", "l2", "dropout"],
                         "width": np.array([12800, 800, 200, 400, 800])})
    widths = width_dependence.dropout_row(runs)
    assert widths == [200, 800] and json.dumps(widths) == "[200, 800]"
    assert width_dependence.dropout_row(runs[runs["regularizer"] == "l2"]) == []


def test_thinning_thinned_data_keeps_it_all(tmp_path, monkeypatch):
    # Seeds that stop at different steps (the stopping rule) and many records per run:
    # the saved data, loaded and saved again (a rerun=False notebook), is the same.
    configs = [fa.RunConfig(width=6, n=5, d=8, steps=steps, lam=0.1, record_every=10,
                            until_converged=True, check_every=50, tol=tol, max_steps=900)
               for steps, tol in ((100, 1e-3), (400, 1e-12))]
    sweep = fa.run_sweep(configs, range(4), cache_dir=None, progress=False)
    assert sweep.runs.groupby("run")["steps_taken"].nunique().tolist() == [4, 1]
    monkeypatch.setattr(gallery, "MAX_POINTS", 11)
    first = gallery.save(sweep, "once", tmp_path)
    write_manifest(tmp_path, "once")
    back, _ = gallery.load("once", folder=tmp_path)
    again = gallery.save(back, "twice", tmp_path)
    assert len(pd.read_csv(first)) < len(sweep.curves)       # it was thinned
    same(pd.read_csv(first), pd.read_csv(again))
    per_run = back.curves.groupby(["run", "seed"])["step"]
    assert (per_run.max() == back.runs.set_index(["run", "seed"])["steps_taken"]).all()
