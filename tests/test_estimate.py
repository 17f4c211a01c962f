"""The one estimator: cached runs are free, workers divide the time, every kind of
experiment is measured by a short real run, and MNIST is never downloaded for it."""

import dataclasses
import math

import pytest

from fa import cache, estimate
from fa.figures import mnist as mnist_figure
from fa.experiments import RunConfig
from fa.figures.mnist import MnistConfig

RATE = 1e-9          # a made-up rate: no measurement, so these tests are instant


def two_layer_plan():
    configs = [RunConfig(activation="relu", width=20, n=10, d=5, steps=100, lam=lam)
               for lam in (0.0, 0.1)]
    return configs, [0, 1, 2]


def test_cached_runs_are_free_and_the_workers_divide_the_time(tmp_path):
    configs, seeds = two_layer_plan()
    run_time = RATE * configs[0].cost()
    rates = {estimate.rate_key(configs[0]): RATE}
    seconds, runs, free = estimate.estimate_seconds(configs, seeds, cache_dir=tmp_path,
                                                    rates=rates)
    assert (runs, free) == (6, 0) and seconds == pytest.approx(6 * run_time)
    halved, _, _ = estimate.estimate_seconds(configs, seeds, cache_dir=tmp_path, n_jobs=2,
                                             rates=rates)
    assert halved == pytest.approx(seconds / 2)
    # One run in the cache: it costs nothing.
    cache.path(tmp_path, configs[1], 2).write_bytes(b"")
    seconds, runs, free = estimate.estimate_seconds(configs, seeds, cache_dir=tmp_path,
                                                    rates=rates)
    assert (runs, free) == (6, 1) and seconds == pytest.approx(5 * run_time)
    # No number of workers makes a sweep shorter than its longest run.
    floor, _, _ = estimate.estimate_seconds(configs, seeds, cache_dir=tmp_path, n_jobs=100,
                                            rates=rates)
    assert floor == pytest.approx(run_time)


def test_a_run_two_notebooks_share_counts_once(tmp_path):
    configs, seeds = two_layer_plan()
    counted = set()
    first = estimate.estimate_seconds(configs, seeds, cache_dir=tmp_path,
                                      rates={estimate.rate_key(configs[0]): RATE},
                                      counted=counted)
    again = estimate.estimate_seconds(configs[:1], seeds, cache_dir=tmp_path,
                                      rates={estimate.rate_key(configs[0]): RATE},
                                      counted=counted)
    assert first[0] > 0 and again == (0.0, 3, 3)


def test_the_mnist_plan_has_its_seeds_per_depth_and_loads_no_data(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the estimate must not load or download MNIST")

    for module, name in (("fa.mnist", "load_mnist"), ("fa.mnist_files", "locate_mnist"),
                         ("fa.mnist_files", "fetch_mnist")):
        monkeypatch.setattr(f"{module}.{name}", refuse)
        if hasattr(mnist_figure, name):
            monkeypatch.setattr(mnist_figure, name, refuse)
    configs, seeds = mnist_figure.sweep_plan("paper")
    assert [len(seeds[c]) for c in configs] == [10] * 4 + [1] * 4
    rates = {MnistConfig: 1e-14}
    one, runs, free = estimate.estimate_seconds(configs, seeds, cache_dir=tmp_path,
                                                rates=rates)
    assert (runs, free) == (44, 0)
    assert one == pytest.approx(sum(1e-14 * c.cost() * len(seeds[c]) for c in configs))
    four, _, _ = estimate.estimate_seconds(configs, seeds, cache_dir=tmp_path, n_jobs=4,
                                           rates=rates)
    assert four == pytest.approx(one / 4)


def test_report_uses_given_rates_and_scales_with_workers(tmp_path, monkeypatch):
    def refuse(experiment):
        raise AssertionError("given rates are not measured again")

    monkeypatch.setattr(estimate, "seconds_per_cost", refuse)
    rates = {(RunConfig, act, False): 1e-10 for act in ("linear", "relu", "tanh", "sigmoid")}
    rates[MnistConfig] = 1e-14
    texts = [estimate.report(["01_convergence", "04_mnist"], n_jobs=n, results_dir=tmp_path,
                             rates=rates) for n in (1, 4)]
    assert "(44 runs, 0 cached" in texts[0] and "4 workers" in texts[1]
    assert texts[0] != texts[1]


@pytest.mark.parametrize("experiment", [
    RunConfig(activation="tanh", width=16, n=10, d=5, steps=10),
    RunConfig(activation="relu", width=16, n=10, d=5, steps=10, dropout=0.5),
    MnistConfig(hidden=(8,), rule="fa", lam=0.1, lr=0.05, batch_size=10, steps=10,
                record_every=5, dtype="float32"),
])
def test_each_kind_is_measured_by_a_short_real_run(experiment):
    rate = estimate.seconds_per_cost(experiment)
    assert rate > 0 and math.isfinite(rate)


def test_the_rate_is_measured_with_as_many_workers_at_once_as_will_run(tmp_path, monkeypatch):
    configs, seeds = two_layer_plan()
    asked = []
    monkeypatch.setattr(estimate, "seconds_per_cost",
                        lambda experiment, n_jobs: asked.append(n_jobs) or RATE)
    for n_jobs in (1, 4, 100):
        estimate.estimate_seconds(configs, seeds, cache_dir=tmp_path, n_jobs=n_jobs)
    assert asked == [1, 4, 6]                        # 6 runs: never more workers than runs
    tiny = MnistConfig(hidden=(8,), rule="fa", lam=0.1, lr=0.05, batch_size=10, steps=10,
                       record_every=5, dtype="float32")
    monkeypatch.undo()
    rate = estimate.seconds_per_cost(tiny, n_jobs=2)     # in two processes at once
    assert rate > 0 and math.isfinite(rate)


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="'experiment' parameter of seconds_per_cost"):
        estimate.seconds_per_cost(object())


def test_two_layer_rates_are_kept_apart_by_activation_and_dropout():
    keys = {estimate.rate_key(RunConfig(activation=act, width=8, dropout=q))
            for act in ("relu", "tanh") for q in (0.0, 0.5)}
    assert len(keys) == 4


def test_runs_under_the_stopping_rule_are_counted_at_least_and_at_most(tmp_path, monkeypatch):
    fixed = RunConfig(activation="relu", width=20, n=10, d=5, steps=100)
    ruled = dataclasses.replace(fixed, until_converged=True)
    assert fixed.max_cost() == ruled.cost() == fixed.cost()
    assert ruled.max_cost() == 10 * ruled.cost()          # the cap: 10 x steps
    assert dataclasses.replace(ruled, max_steps=300).max_cost() == 3 * ruled.cost()
    rates = {estimate.rate_key(fixed): RATE}
    least, _, _ = estimate.estimate_seconds([ruled], [0, 1], cache_dir=tmp_path, rates=rates)
    most, _, _ = estimate.estimate_seconds([ruled], [0, 1], cache_dir=tmp_path, rates=rates,
                                           at_cap=True)
    assert most == pytest.approx(10 * least)
    # The report gives both for F3 (its stopping rule), only one for F1 (fixed steps).
    monkeypatch.setattr(estimate, "seconds_per_cost", lambda experiment, n_jobs: RATE)
    f3 = estimate.report(["03_width_dependence"], results_dir=tmp_path,
                         overrides={"widths": [200], "n_seeds": 1})
    assert "if every run reached its cap" in f3 and "cap of 10 T(p)" in f3
    f1 = estimate.report(["01_convergence"], results_dir=tmp_path)
    assert "cap" not in f1
