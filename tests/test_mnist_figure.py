"""Fast tests of fa.mnist_figure: settings, paired runs, the cache, the CSV, the figure,
and claims that fail on data that violate them."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from fa import deep, mnist_figure
from fa.mnist import SUBSET_SOURCE

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
    assert all(c.penalize == "above_input" for c in mnist_figure.configs(s))
    quick = mnist_figure.settings("quick")
    assert quick.subset
    changed = {f.name for f in dataclasses.fields(s) if getattr(s, f.name) != getattr(quick, f.name)}
    assert changed == set(mnist_figure.QUICK_CHANGES)


def test_settings_reject_bad_values():
    with pytest.raises(ValueError):
        mnist_figure.settings("quick", depth=3)
    with pytest.raises(ValueError):
        mnist_figure.settings("quick", widths=[3])
    with pytest.raises(ValueError):
        mnist_figure.settings("huge")
    with pytest.raises(ValueError, match="'subset' setting"):
        mnist_figure.settings("quick", subset="yes")
    with pytest.raises(ValueError, match="'data_dir' setting must be None"):
        mnist_figure.settings("quick", data_dir="somewhere")
    assert mnist_figure.settings("quick", depth=2).depths == (2,)
    assert mnist_figure.settings("quick", subset=False, data_dir="x").data_dir == "x"


def test_configs_and_seeds():
    s = mnist_figure.settings("paper")
    configs = mnist_figure.configs(s)
    assert [(c.depth, c.rule, c.lam) for c in configs] == [
        (d, r, lam) for d in (1, 2) for r, lam in
        (("fa", 0.0), ("fa", 0.1), ("fa", 0.3), ("bp", 0.0))]
    assert {c.steps for c in configs if c.depth == 2} == {15000}
    assert mnist_figure.seeds(s, configs[0]) == list(range(10))
    assert mnist_figure.seeds(s, configs[-1]) == [0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        configs[0].lam = 1.0


# --------------------------------------------------------------------------- runs

def test_runs_of_a_seed_are_paired(out):
    """Within a seed every lambda and BP start from the same weights and batches: their
    step-0 records coincide (and differ between seeds)."""
    s = mnist_figure.settings("quick", **dict(TINY, lambdas=[0.0, 0.1, 0.3], n_seeds=2))
    frame = mnist_figure.run(s, n_jobs=1, results_dir="results", progress=False)
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
    real = deep.train_deep

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(deep, "train_deep", counting)
    first = mnist_figure.run(s, n_jobs=1, results_dir="results", progress=False)
    assert len(calls) == 3                      # FA at 2 lambdas + BP
    assert all(c["penalize"] == "above_input" for c in calls)
    assert len(list((out / "results" / "cache" / "mnist").glob("*.csv"))) == 3
    second = mnist_figure.run(s, n_jobs=1, results_dir="results", progress=False)
    assert len(calls) == 3                      # all served from the cache
    pd.testing.assert_frame_equal(first, second)
    mnist_figure.run(mnist_figure.settings("quick", **dict(TINY, steps=4)), n_jobs=1,
                     results_dir="results", progress=False)
    assert len(calls) == 6                      # a changed setting is a new run


def test_csv_names_the_data(out):
    s = mnist_figure.settings("quick", **TINY)
    frame = mnist_figure.run(s, n_jobs=1, results_dir="results", progress=False)
    csv = pd.read_csv(out / "results" / "mnist.csv")
    assert list(csv.columns) == mnist_figure.COLUMNS
    assert set(csv["rule"]) == {"fa", "bp"}
    assert set(csv["source"]) == {frame.attrs["source"]}
    assert frame.attrs["source"].startswith(SUBSET_SOURCE)
    prov = mnist_figure.provenance(s, frame)
    assert prov.data == frame.attrs["source"] and prov.n_seeds == 1
    assert dataclasses.asdict(prov)["data"].startswith(SUBSET_SOURCE)


def test_full_data_from_a_folder(out, tmp_path):
    from test_mnist import make_idx_dir

    folder = tmp_path / "idx"
    folder.mkdir()
    make_idx_dir(folder, n_train=60, n_test=20)
    s = mnist_figure.settings("quick", **TINY, subset=False, data_dir=str(folder))
    frame = mnist_figure.run(s, n_jobs=1, results_dir="results", progress=False)
    assert frame.attrs["source"].startswith("MNIST, 60 train / 20 test images")


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
    assert any("layer 2 (top; as the authors)" in t for t in labels)
    full = mnist_figure.plot(frame.assign(source="MNIST, 60000 train / 10000 test images"))
    assert "not the paper's" not in full._suptitle.get_text()


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
                                     test_accuracy=av, test_loss=1.0,
                                     diverged=diverged and depth == 2,
                                     source=SUBSET_SOURCE + ", 4000 train / 1000 test images"))
    return pd.DataFrame(rows)


def _failing(results):
    return [c.claim for c in results if not c.holds]


def test_claims_hold_on_a_good_frame():
    results = mnist_figure.claims(_frame())
    assert len(results) == 5 and _failing(results) == []


@pytest.mark.parametrize("kwargs, failing", [
    (dict(sig=(0.1, 0.5, 0.47)), ["ordered by λ"]),                    # 0.1 above 0.3
    (dict(sig=(0.1, 0.12, 0.15)), ["at least 0.1 above"]),            # too small a rise
    (dict(acc=(0.81, 0.69, 0.86)), ["above 0.7", "costs no accuracy"]),
    (dict(acc=(0.9, 0.84, 0.88)), ["costs no accuracy"]),              # 0.06 below lam = 0
    (dict(deep_acc=(0.78, 0.45, 0.76)), ["learns at every λ"]),        # below 0.5
    (dict(deep_best=0.9, deep_acc=(0.78, 0.6, 0.76)), ["learns at every λ"]),  # collapse
    (dict(diverged=True), ["learns at every λ"]),
])
def test_each_claim_fails_on_data_that_violate_it(kwargs, failing):
    results = _failing(mnist_figure.claims(_frame(**kwargs)))
    assert len(results) == len(failing)
    for claim, part in zip(results, failing):
        assert part in claim


def test_claims_need_runs_to_judge():
    frame = _frame()
    results = mnist_figure.claims(frame[frame["rule"] == "bp"])
    assert len(results) == 1 and not results[0].holds


def test_estimate_counts_every_run(out):
    s = mnist_figure.settings("quick", **dict(TINY, depth=[1, 2], n_seeds=2, deep_n_seeds=1))
    seconds, runs, cached = mnist_figure.estimate_seconds(s, probe_steps=2)
    assert (runs, cached) == (3 * 2 + 3, 0) and seconds > 0
    mnist_figure.run(s, n_jobs=1, results_dir="results", progress=False)
    seconds, runs, cached = mnist_figure.estimate_seconds(s, results_dir="results",
                                                          probe_steps=2)
    assert (runs, cached, seconds) == (9, 9, 0.0)
    assert np.isfinite(seconds)


def test_parallel_equals_serial(out):
    s = mnist_figure.settings("quick", **dict(TINY, n_seeds=2))
    serial = mnist_figure.run(s, n_jobs=1, results_dir="serial", progress=False)
    parallel = mnist_figure.run(s, n_jobs=2, results_dir="parallel", progress=False)
    pd.testing.assert_frame_equal(serial, parallel)
