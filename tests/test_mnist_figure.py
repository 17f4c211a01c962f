"""Fast tests of fa.mnist_figure: the run cache, the CSV, and claims that can fail."""

import numpy as np
import pandas as pd
import pytest

from fa import deep, mnist_figure

TINY = dict(hidden=8, depth=1, steps=3, record_every=1, n_seeds=1, batch_size=50,
            lambdas=[0.0, 0.3], lr=0.1)


@pytest.fixture
def out(tmp_path, monkeypatch):
    monkeypatch.setenv("FA_OUTPUT_ROOT", str(tmp_path))
    return tmp_path


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
    assert len(list((out / "results" / "cache" / "mnist").glob("*.csv"))) == 3
    second = mnist_figure.run(s, n_jobs=1, results_dir="results", progress=False)
    assert len(calls) == 3                      # all served from the cache
    pd.testing.assert_frame_equal(first, second)
    # a changed setting is a new run
    mnist_figure.run(mnist_figure.settings("quick", **dict(TINY, steps=4)), n_jobs=1,
                     results_dir="results", progress=False)
    assert len(calls) == 6


def test_csv_columns(out):
    s = mnist_figure.settings("quick", **TINY)
    mnist_figure.run(s, n_jobs=1, results_dir="results", progress=False)
    csv = pd.read_csv(out / "results" / "mnist.csv")
    assert list(csv.columns) == ["depth", "rule", "lam", "seed", "step", "layer",
                                 "weight_alignment", "signal_alignment", "test_accuracy",
                                 "test_loss"]
    assert set(csv["rule"]) == {"fa", "bp"}


def _frame(align_big, acc_big=0.9, align_zero=0.05):
    rows = []
    for rule, lam, align, acc in [("fa", 0.0, align_zero, 0.9), ("fa", 0.3, align_big, acc_big),
                                  ("bp", 0.0, 0.0, 0.92)]:
        for seed in range(2):
            for step in (0, 100):
                a = align if step else 0.0
                rows.append(dict(depth=1, rule=rule, lam=lam, seed=seed, step=step, layer=1,
                                 weight_alignment=a, signal_alignment=a,
                                 test_accuracy=acc if step else 0.1, test_loss=1.0))
    return pd.DataFrame(rows)


def test_claims_hold_on_a_good_frame():
    assert all(c.holds for c in mnist_figure.claims(_frame(0.7)))


def test_claims_fail_when_alignment_does_not_rise():
    results = mnist_figure.claims(_frame(0.06))
    rises = [c for c in results if "raises" in c.claim]
    assert len(rises) == 2 and not any(c.holds for c in rises)


def test_claims_fail_when_accuracy_collapses():
    results = mnist_figure.claims(_frame(0.7, acc_big=0.15))
    accuracy = [c for c in results if "accuracy" in c.claim]
    assert accuracy and not all(c.holds for c in accuracy)


def test_settings_reject_bad_values():
    with pytest.raises(ValueError):
        mnist_figure.settings("quick", depth=3)
    with pytest.raises(ValueError):
        mnist_figure.settings("quick", widths=[3])
    with pytest.raises(ValueError):
        mnist_figure.settings("huge")
    assert mnist_figure.settings("paper").steps == 30000
    assert mnist_figure.settings("quick", depth=2).depths == (2,)
