"""`python -m fa.reproduce --archive` commits a long sweep's finished runs; a paper-scale
run on another clone copies them into its cache before estimating or training."""

import dataclasses
import os
import zipfile

import numpy as np
import pytest

from fa import cache, figures, paths, reproduce
from fa.figures import mnist as mnist_figure, width_dependence


def test_archive_commits_the_finished_runs_and_a_paper_run_restores_them(tmp_path,
                                                                         monkeypatch, capsys):
    monkeypatch.setattr(paths, "GALLERY_RUNS_DIR", tmp_path / "committed")
    monkeypatch.setenv("FA_OUTPUT_ROOT", os.environ.get("FA_OUTPUT_ROOT", ""))
    small = ["--set", "n_seeds=2", "--set", "widths=[200]", "--set", "activations=['relu']"]
    experiments, seeds = width_dependence.sweep_plan("paper", n_seeds=2, widths=[200],
                                                     activations=["relu"])
    here = tmp_path / "here"
    (here / "results" / "cache").mkdir(parents=True)
    for experiment in experiments[:3]:     # three finished runs, as if the sweep had begun
        cache.save(here / "results" / "cache", experiment, 1, {"final_loss": np.float64(1)})
    argv = ["--scale", "paper", "--only", "03", "--archive", "--output", str(here), *small]
    assert reproduce.main(argv) == 0
    assert "3 runs added to" in capsys.readouterr().out
    archive = tmp_path / "committed" / "width_dependence.zip"
    assert len(zipfile.ZipFile(archive).namelist()) == 3
    assert not (here / "notebooks").exists()               # nothing ran

    # A fresh output folder: the estimate at paper scale finds them in its cache.
    there = tmp_path / "there"
    assert reproduce.main(["--scale", "paper", "--only", "03", "--estimate", "--output",
                           str(there), "--set", "rerun=False"]) == 0
    assert "3 runs copied into the cache" in capsys.readouterr().out
    assert all(cache.is_cached(there / "results" / "cache", e, 1) for e in experiments[:3])

    for wrong, message in ((["--only", "03", "--archive"], "add --scale paper"),
                           (["--scale", "paper", "--only", "01", "--archive"],
                            "runs of 03_width_dependence, 04_mnist only")):
        with pytest.raises(SystemExit):
            reproduce.main(wrong + ["--output", str(here)])
        assert message in capsys.readouterr().err

    # One more finished run: only it is added, and the count reads as words.
    cache.save(here / "results" / "cache", experiments[3], 1, {"final_loss": np.float64(1)})
    assert reproduce.main(argv) == 0
    assert "1 run added to" in capsys.readouterr().out
    assert len(zipfile.ZipFile(archive).namelist()) == 4


def test_a_paper_gallery_run_commits_its_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(paths, "GALLERY_RUNS_DIR", tmp_path / "committed")
    monkeypatch.setenv("FA_OUTPUT_ROOT", os.environ.get("FA_OUTPUT_ROOT", ""))
    ran = []
    monkeypatch.setattr(reproduce, "_execute", lambda name, where, args: ran.append(name))
    experiments, _ = width_dependence.sweep_plan("paper", n_seeds=1, widths=[200])
    (tmp_path / "results" / "cache").mkdir(parents=True)
    for experiment in experiments:     # the notebook's sweep, finished
        cache.save(tmp_path / "results" / "cache", experiment, 0, {"final_loss": np.float64(1)})
    argv = ["--scale", "paper", "--only", "03", "--gallery", "--yes", "--output", str(tmp_path),
            "--set", "n_seeds=1", "--set", "widths=[200]", "--set", "rerun=False"]
    assert reproduce.main(argv) == 0 and ran == ["03_width_dependence"]
    assert f"{len(experiments)} runs added" in capsys.readouterr().out
    archive = tmp_path / "committed" / "width_dependence.zip"
    assert len(zipfile.ZipFile(archive).namelist()) == len(experiments)


def test_a_damaged_archive_is_reported_and_the_runs_train(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(paths, "GALLERY_RUNS_DIR", tmp_path)
    (tmp_path / "width_dependence.zip").write_bytes(b"version https://git-lfs.github.com/spec")
    reproduce._restore("03_width_dependence", {"root": tmp_path, "results": tmp_path / "out"})
    assert "not a readable zip file" in capsys.readouterr().err


def test_a_sweep_with_seeds_per_experiment_is_archived_run_by_run(tmp_path, monkeypatch, capsys):
    """F4's plan gives each depth its own seeds (a dict): each (experiment, seed) it
    plans is packed, and only those."""
    monkeypatch.setattr(paths, "GALLERY_RUNS_DIR", tmp_path / "committed")
    monkeypatch.setenv("FA_OUTPUT_ROOT", os.environ.get("FA_OUTPUT_ROOT", ""))
    entry = figures.BY_NOTEBOOK["04_mnist"]
    monkeypatch.setitem(figures.BY_NOTEBOOK, "04_mnist", dataclasses.replace(entry, archived=True))
    small = dict(n_seeds=2, deep_n_seeds=1, subset=True)
    experiments, seeds = mnist_figure.sweep_plan("paper", **small)
    cached = tmp_path / "results" / "cache"
    cached.mkdir(parents=True)
    finished = [(e, seeds[e][-1]) for e in experiments]          # seed 1 at depth 1, 0 at 2
    for experiment, seed in finished + [(experiments[0], 5)]:    # and one run not planned
        cache.save(cached, experiment, seed, {"diverged": np.bool_(False)})
    argv = ["--scale", "paper", "--only", "04", "--archive", "--output", str(tmp_path),
            *[f"--set={k}={v}" for k, v in small.items()]]
    assert reproduce.main(argv) == 0
    said = capsys.readouterr().out
    assert f"{len(finished)} runs added to" in said
    assert f"(this sweep has {sum(len(seeds[e]) for e in experiments)})" in said
    names = zipfile.ZipFile(tmp_path / "committed" / "mnist.zip").namelist()
    assert sorted(names) == sorted(cache.path(cached, e, s).name for e, s in finished)
