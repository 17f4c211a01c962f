"""Fast tests of fa.figures.mnist: settings, the experiment on the sweep engine, paired
runs, the cache and its data key, the CSV, the figure, and claims that fail on data that
violate them."""

import dataclasses
import gzip
import json
import warnings

import numpy as np
import pandas as pd
import pytest
import threadpoolctl

import fa
from fa import mnist_files
from fa.figures import mnist as mnist_figure
from fa.mnist_files import (SUBSET_SOURCE, MnistFallbackWarning, fingerprint,
                            standard_fingerprint)

TINY = dict(hidden=8, depth=1, steps=3, deep_steps=3, record_every=1, n_seeds=1, batch_size=50,
            lambdas=[0.0, 0.3], lr=0.1)


@pytest.fixture
def out(tmp_path, monkeypatch):
    monkeypatch.setenv("FA_OUTPUT_ROOT", str(tmp_path))
    monkeypatch.setenv("FA_OFFLINE", "1")
    return tmp_path


# --------------------------------------------------------------------------- settings

def test_paper_settings_are_the_authors_protocol():
    s = mnist_figure.settings("paper")
    assert (s.hidden, s.lr, s.batch_size, s.steps, s.n_seeds) == (1000, 0.01, 600, 30000, 10)
    assert s.lambdas == (0.0, 0.1, 0.3) and s.depths == (1, 2)
    assert (s.deep_steps, s.deep_n_seeds) == (15000, 1)       # 150 epochs, one seed
    assert not s.subset and s.data_dir is None
    planned = mnist_figure.configs(s, data=mnist_figure.data_choice(s, fetch=False))
    assert all(c.penalize == "above_input" for c in planned)
    quick = mnist_figure.settings("quick")
    assert quick.subset
    changed = {f.name for f in dataclasses.fields(s) if getattr(s, f.name) != getattr(quick, f.name)}
    assert changed == set(mnist_figure.QUICK_CHANGES)


def test_settings_reject_bad_values():
    for depth in (3, [1, 3], True, []):       # the notebook's parameter, named as it is there
        with pytest.raises(ValueError, match=r"The 'depth' parameter of 04_mnist must be 1 or 2"):
            mnist_figure.settings("quick", depth=depth)
    with pytest.raises(ValueError):
        mnist_figure.settings("quick", widths=[3])
    with pytest.raises(ValueError):
        mnist_figure.settings("huge")
    with pytest.raises(ValueError, match="'subset' parameter of 04_mnist"):
        mnist_figure.settings("quick", subset="yes")
    with pytest.raises(ValueError, match="'data_dir' parameter of 04_mnist must be None"):
        mnist_figure.settings("quick", data_dir="somewhere")
    assert mnist_figure.settings("quick", depth=2).depths == (2,)
    assert mnist_figure.settings("quick", subset=False, data_dir="x").data_dir == "x"


def test_configs_and_seeds():
    s = mnist_figure.settings("paper")
    configs = mnist_figure.configs(s, data=mnist_figure.data_choice(s, fetch=False))
    assert [(c.depth, c.rule, c.lam) for c in configs] == [
        (d, r, lam) for d in (1, 2) for r, lam in
        (("fa", 0.0), ("fa", 0.1), ("fa", 0.3), ("bp", 0.0))]
    assert {c.steps for c in configs if c.depth == 2} == {15000}
    assert mnist_figure.seeds(s) == {1: list(range(10)), 2: [0]}
    assert {c.data for c in configs} == {standard_fingerprint()}
    with pytest.raises(dataclasses.FrozenInstanceError):
        configs[0].lam = 1.0


def test_config_is_an_experiment_of_the_sweep_engine():
    config = mnist_figure.configs(mnist_figure.settings("quick", **TINY))[0]
    assert config.data == "subset" and config.data_dir is None and config.chunk_size() == 1
    assert {"fa.deep", "fa.mnist", "fa.model"} <= set(config.numerics_modules)
    assert config.cost() > 0
    bigger = dataclasses.replace(config, steps=2 * config.steps)
    assert bigger.cost() > config.cost()
    with pytest.raises(ValueError, match="The 'data' parameter of MnistConfig"):
        dataclasses.replace(config, data="mnist")
    with pytest.raises(ValueError, match="need data_dir"):       # no folder to read it from
        dataclasses.replace(config, data="idx-0").run([0])
    with pytest.raises(ValueError, match="NumPy only"):
        config.run([0], backend="torch")


# --------------------------------------------------------------------------- runs

def sweep(s, *, cache_dir="results/cache", n_jobs=1):
    """What the notebook runs: one sweep per depth (each depth has its own seeds)."""
    configs, seeds = mnist_figure.configs(s), mnist_figure.seeds(s)
    return [fa.run_sweep([c for c in configs if c.depth == depth], seeds[depth],
                         cache_dir=cache_dir, n_jobs=n_jobs, progress=False)
            for depth in seeds]


def test_runs_of_a_seed_are_paired(out):
    """Within a seed every lambda and BP start from the same weights and batches: their
    step-0 records coincide (and differ between seeds)."""
    s = mnist_figure.settings("quick", **dict(TINY, lambdas=[0.0, 0.1, 0.3], n_seeds=2))
    frame = mnist_figure.tidy(sweep(s), "results")
    start = frame[frame["step"] == 0]
    for _, g in start.groupby("seed"):
        assert len(g) == 4
        for col in ("test_loss", "signal_alignment", "weight_alignment"):
            assert g[col].nunique() == 1, col
    assert start.groupby("seed")["test_loss"].first().nunique() == 2
    end = frame[frame["step"] == 3]
    assert end.groupby("seed")["test_loss"].nunique().min() == 4    # ... then they differ


def test_cache_hit_trains_nothing(out, monkeypatch):
    s = mnist_figure.settings("quick", **TINY)
    calls = []
    real = mnist_figure.train_deep

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(mnist_figure, "train_deep", counting)
    first = mnist_figure.tidy(sweep(s), "results")
    assert len(calls) == 3                      # FA at 2 lambdas + BP
    assert all(c["penalize"] == "above_input" for c in calls)
    assert len(list((out / "results" / "cache").glob("*.npz"))) == 3
    second = mnist_figure.tidy(sweep(s), "results")
    assert len(calls) == 3                      # all served from the cache
    pd.testing.assert_frame_equal(first, second)
    sweep(mnist_figure.settings("quick", **dict(TINY, steps=4)))
    assert len(calls) == 6                      # a changed setting is a new run


def test_csv_names_the_data(out):
    s = mnist_figure.settings("quick", **TINY)
    frame = mnist_figure.tidy(sweep(s), "results")
    csv = pd.read_csv(out / "results" / "mnist.csv")
    assert list(csv.columns) == mnist_figure.COLUMNS
    assert set(csv["rule"]) == {"fa", "bp"}
    assert set(csv["source"]) == {frame.attrs["source"]}
    assert frame.attrs["source"] == SUBSET_SOURCE + ", 4000 train / 1000 test images"
    prov = mnist_figure.provenance(s, frame)
    assert prov.data == frame.attrs["source"] and prov.n_seeds == 1
    assert dataclasses.asdict(prov)["data"].startswith(SUBSET_SOURCE)
    kernels = [lib.get("architecture") for lib in threadpoolctl.threadpool_info()
               if lib["user_api"] == "blas"]
    assert all(f"({kernel})" in prov.blas for kernel in kernels)


def test_full_data_from_a_folder_and_other_data_never_reuse_a_run(out, tmp_path, monkeypatch):
    from test_mnist import make_idx_dir

    monkeypatch.setattr(mnist_files, "MD5", dict(mnist_files.MD5))      # make_idx_dir adds
    monkeypatch.setattr(mnist_files, "RAW_MD5", dict(mnist_files.RAW_MD5))  # to them
    folder = tmp_path / "idx"
    folder.mkdir()
    make_idx_dir(folder, n_train=60, n_test=20)
    s = mnist_figure.settings("quick", **TINY, subset=False, data_dir=str(folder))
    runs = sweep(s)
    frame = mnist_figure.tidy(runs, "results")
    assert frame.attrs["source"] == "MNIST, 60 train / 20 test images (the standard files, MD5-checked)"
    prov = mnist_figure.provenance(s, frame)          # the manifest names each file's MD5
    assert prov.files == {p.name.removesuffix(".gz"): mnist_files._content_md5(p)
                          for p in folder.iterdir()}  # each file's contents, uncompressed
    # Neither the manifest, the committed data nor the cache files (committed as the
    # figure's run archive) name this machine's folder; the figure redraws from that data.
    assert str(folder) not in json.dumps(dataclasses.asdict(prov))
    cached = list((out / "results" / "cache").glob("*.npz"))
    assert cached and not any(str(folder) in np.load(f)["about"].item() for f in cached)
    fa.gallery.save(runs, "mnist", out / "gallery")
    assert str(folder) not in gzip.decompress((out / "gallery/data/mnist.csv.gz").read_bytes()).decode()
    (out / "gallery/mnist.json").write_text(json.dumps({"scale": "quick", "settings": {}}))
    back, _ = fa.gallery.load("mnist", folder=out / "gallery")
    pd.testing.assert_frame_equal(mnist_figure.tidy(back), frame, check_dtype=False)
    # A redraw's configs name the data its runs were trained on, in no folder.
    assert mnist_figure.trained_on(back) == (fingerprint(folder), None)
    assert mnist_figure.configs(s, data=mnist_figure.trained_on(back))[0].data_dir is None
    mixed = [*runs, dataclasses.replace(runs[0], runs=runs[0].runs.assign(data="subset"))]
    with pytest.raises(ValueError, match="trained on 2 data sets"):
        mnist_figure.trained_on(mixed)
    config = mnist_figure.configs(s)[0]
    assert config.data == fingerprint(folder) and config.data_dir == str(folder)
    # Other files in the same folder are other data: a new cache key, and runs
    # planned on the old files refuse to train on the new ones.
    make_idx_dir(folder, n_train=60, n_test=20, seed=1)
    assert mnist_figure.configs(s)[0].data != config.data
    assert not fa.cache.is_cached("results/cache", mnist_figure.configs(s)[0], 0)
    assert fa.cache.is_cached("results/cache", config, 0)
    mnist_figure._load.cache_clear()          # as in a fresh worker process
    with pytest.raises(ValueError, match="not the data these runs were planned on"):
        dataclasses.replace(config, steps=5).run([0])


def test_offline_full_data_falls_back_to_the_subset_and_says_so(out, monkeypatch, tmp_path):
    monkeypatch.setenv("FA_DATA_DIR", str(tmp_path / "empty"))
    with pytest.warns(MnistFallbackWarning) as record:
        configs = mnist_figure.configs(mnist_figure.settings("paper"))
    assert {c.data for c in configs} == {"subset"}      # never keyed as the full set
    shown = warnings.formatwarning(record[0].message, record[0].category,
                                   record[0].filename, record[0].lineno)
    assert len(record) == 1 and len(shown.strip().splitlines()) <= 2
    assert "fetch_mnist()" in shown and "set data_dir" in shown


def test_parallel_equals_serial_bit_for_bit(out):
    """Same inputs, same numbers, however many workers: every chunk runs on one BLAS
    thread and the table is assembled in plan order, not in the order runs finish."""
    s = mnist_figure.settings("quick", **dict(TINY, hidden=64, depth=(1, 2), steps=40,
                                              deep_steps=40, record_every=10, n_seeds=2,
                                              deep_n_seeds=1))
    serial = mnist_figure.tidy(sweep(s, cache_dir="serial"), "serial")
    parallel = mnist_figure.tidy(sweep(s, cache_dir="parallel", n_jobs=2), "parallel")
    assert set(serial["depth"]) == {1, 2} and serial["step"].max() == 40
    pd.testing.assert_frame_equal(serial, parallel, check_exact=True)


# --------------------------------------------------------------------------- figure

def test_plot_names_the_data_and_marks_the_added_layer(out):
    frame = _frame()
    fig = mnist_figure.plot(frame)
    assert "5000-image subset" in fig._suptitle.get_text()
    assert "not the paper's full MNIST" in fig._suptitle.get_text()
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("(a) error-signal alignment, 1 hidden layer")
    assert titles[1].startswith("(b) weight alignment")
    assert titles[3].startswith("(d) error-signal alignment, 2 hidden layers")
    labels = fig.axes[3].get_legend_handles_labels()[1]
    assert any("layer 1 (this project's addition)" in t for t in labels)
    assert any("layer 2 (top; the one the authors plot)" in t for t in labels)
    full = mnist_figure.plot(frame.assign(source="MNIST, 60000 train / 10000 test images"))
    assert "not the paper's" not in full._suptitle.get_text()


def test_step_ticks_stay_short_on_long_runs():
    fig, axes = fa.plotting.subplots(1)
    ax = axes[0, 0]
    ax.plot([0, 30000], [0, 1])
    fa.plotting.step_axis(ax, "SGD step")
    fig.canvas.draw()
    ticks = [t.get_text() for t in ax.get_xticklabels() if 0 <= t.get_position()[0] <= 30000]
    assert ticks == ["0", "10k", "20k", "30k"]
    assert ax.get_xlabel() == "SGD step"


# --------------------------------------------------------------------------- claims

def _frame(sig=(0.1, 0.35, 0.47), acc=(0.81, 0.89, 0.86), deep_acc=(0.78, 0.83, 0.76),
           deep_best=None, diverged=False):
    """Two seeds of every run, records at steps 0 and 100, final values as given."""
    rows = []
    lams = (0.0, 0.1, 0.3)
    runs = [(1, "fa", lam, sig[k], acc[k], None) for k, lam in enumerate(lams)]
    runs += [(2, "fa", lam, 0.5, deep_acc[k], deep_best) for k, lam in enumerate(lams)]
    runs += [(d, "bp", 0.0, 0.0, 0.83, None) for d in (1, 2)]
    for depth, rule, lam, s, a, best in runs:
        for seed in range(2):
            for step, sv, av in ((0, 0.0, 0.1), (50, s / 2, best or a), (100, s, a)):
                for layer in range(1, depth + 1):
                    rows.append(dict(depth=depth, rule=rule, lam=lam, seed=seed, step=step,
                                     layer=layer, weight_alignment=sv, signal_alignment=sv,
                                     test_accuracy=av, test_loss=1.0, diverged=False,
                                     source=SUBSET_SOURCE + ", 4000 train / 1000 test images"))
    frame = pd.DataFrame(rows)
    # as tidy() returns it: a diverged run is left out and named
    frame.attrs["diverged"] = ["2 hidden layers, lam=0.1: 1 of 2 seeds"] if diverged else []
    return frame


def _failing(results):
    return [c.claim for c in results if not c.holds]


def test_claims_hold_on_a_good_frame():
    results = mnist_figure.claims(_frame())
    assert len(results) == 6 and _failing(results) == []


@pytest.mark.parametrize("kwargs, failing", [
    (dict(sig=(0.1, 0.5, 0.47)), ["ordered by λ"]),                    # 0.1 above 0.3
    (dict(sig=(0.1, 0.12, 0.15)), ["at least 0.1 above"]),            # too small a rise
    (dict(acc=(0.81, 0.69, 0.86)), ["above 0.7", "costs no accuracy"]),
    (dict(acc=(0.9, 0.84, 0.88)), ["costs no accuracy"]),              # 0.06 below lam = 0
    (dict(deep_acc=(0.78, 0.45, 0.76)), ["learns at every λ"]),        # below 0.5
    (dict(deep_best=0.9, deep_acc=(0.78, 0.6, 0.76)), ["learns at every λ"]),  # collapse
    (dict(diverged=True), ["every run trained to its end"]),
])
def test_each_claim_fails_on_data_that_violate_it(kwargs, failing):
    results = _failing(mnist_figure.claims(_frame(**kwargs)))
    assert len(results) == len(failing)
    for claim, part in zip(results, failing):
        assert part in claim


def test_claims_need_runs_to_judge():
    frame = _frame()
    results = mnist_figure.claims(frame[frame["rule"] == "bp"])
    assert len(results) == 2 and results[0].holds and not results[1].holds


def test_runs_read_back_from_a_csv_still_name_the_subset(out):
    """``rerun=False`` reads the gallery's runs from a CSV, where a subset run's empty
    ``data_dir`` is a float NaN rather than None: the figure must still say "subset"."""
    s = mnist_figure.settings("quick", **TINY)
    read_back = [dataclasses.replace(one, runs=one.runs.assign(data_dir=float("nan")))
                 for one in sweep(s)]
    frame = mnist_figure.tidy(read_back, "results")
    assert frame.attrs["source"] == SUBSET_SOURCE + ", 4000 train / 1000 test images"
