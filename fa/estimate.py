"""How long the paper-scale sweeps will take on this machine, measured, not guessed.

Each figure module's ``sweep_plan(scale, **parameters) -> (experiments, seeds)`` says
what its notebook runs. For each kind of experiment (two-layer runs per activation, with
or without dropout; the MNIST network; ...) short real runs are timed as the sweep runs
them (one BLAS thread, as many processes at once as it has workers: workers sharing cores
slow each other) and turned into seconds per unit of ``experiment.cost()``. The cost of
every run not yet cached is summed and divided by the workers; a sweep never takes less
than its longest run. Runs under F3's stopping rule count ``T(p)`` steps, and the report
adds the time if every such run reached its cap (10 ``T(p)``); see ``docs/gallery.md``.
"""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from . import paths
from .cache import is_cached
from .deep import train_deep
from .experiments import RunConfig
from .figures import BY_NOTEBOOK, planned_runs
from .figures.mnist import FULL_TEST, SUBSET_TEST, MnistConfig

#: SGD or gradient steps of the timed run of each kind (a few seconds at paper scale).
PROBE_STEPS = {MnistConfig: 20}
DEFAULT_PROBE_STEPS = 100
#: Timings of each probe, of which the median is kept (a stray busy second moves one, not
#: it): F4's, seconds each on a shared machine, need several.
PROBE_REPEATS = {MnistConfig: 3}


def _probe(experiment, steps: int):
    """A chunk of ``experiment`` for ``steps`` fixed steps, compiled beforehand (any kind
    whose length is its ``steps`` field)."""
    changes = dict(steps=steps)
    if isinstance(experiment, RunConfig):
        changes.update(until_converged=False, max_steps=None)
    probe = dataclasses.replace(experiment, **changes)
    seeds = list(range(probe.chunk_size()))
    dataclasses.replace(probe, steps=2).run(seeds)      # compile the kernels: not timed
    return (lambda: probe.run(seeds)), probe.cost() * len(seeds)


def _mnist_probe(config: MnistConfig, steps: int):
    """``config`` for ``steps`` SGD steps (two records) on random data of MNIST's shape:
    the cost of a step does not depend on the pixels, and nothing is downloaded."""
    probe = dataclasses.replace(config, steps=steps, record_every=steps)
    rng = np.random.default_rng(0)
    n_test = SUBSET_TEST if config.data == "subset" else FULL_TEST
    data = (rng.standard_normal((2 * config.batch_size, 784), dtype=np.float32),
            rng.integers(0, 10, 2 * config.batch_size),
            rng.standard_normal((n_test, 784), dtype=np.float32),
            rng.integers(0, 10, n_test))
    return (lambda: train_deep(data, seed=0, **probe.train_kwargs())), probe.cost()


#: How to time a short real run of a kind of experiment, where :func:`_probe` does not do.
_PROBES = {MnistConfig: _mnist_probe}


def rate_key(experiment):
    """Experiments that run at one speed per unit of ``cost()`` share a measured rate:
    two-layer runs by activation and by whether they use dropout, other kinds by kind."""
    if isinstance(experiment, RunConfig):
        return RunConfig, experiment.activation, experiment.dropout > 0
    return type(experiment)


def seconds_per_cost(experiment, n_jobs: int = 1) -> float:
    """Measured seconds per unit of ``experiment.cost()`` for experiments of its kind.

    Times ``S`` and ``2 S`` steps (``S`` from ``PROBE_STEPS``; the median of
    ``PROBE_REPEATS`` timings each) as the sweep runs them, one BLAS thread, replicas
    stacked, and divides the difference in time by the difference in cost: a run's fixed
    costs (data, weights, a final evaluation), which a short probe inflates, cancel out.

    Parameters
    ----------
    experiment : experiment
        A :class:`fa.RunConfig`, a :class:`fa.figures.mnist.MnistConfig`, or another kind
        with a ``steps`` field.
    n_jobs : int, default 1
        Processes timing it at once, as many as the sweep's workers.

    Returns
    -------
    float
        Seconds per unit of ``cost()``: the mean over the processes.
    """
    kind = type(experiment)
    steps_field = dataclasses.is_dataclass(kind) and "steps" in {
        f.name for f in dataclasses.fields(kind)}
    if kind not in _PROBES and not steps_field:
        raise ValueError("The 'experiment' parameter of seconds_per_cost must be an "
                         f"experiment with a 'steps' field or one of "
                         f"{', '.join(k.__name__ for k in _PROBES)}. Got {experiment!r} instead.")
    if n_jobs > 1:
        with ProcessPoolExecutor(n_jobs) as pool:
            return float(np.mean(list(pool.map(seconds_per_cost, [experiment] * n_jobs))))
    probe, steps = _PROBES.get(kind, _probe), PROBE_STEPS.get(kind, DEFAULT_PROBE_STEPS)
    elapsed, costs = [], []
    with threadpool_limits(1):
        for length in (steps, 2 * steps):
            run, cost = probe(experiment, length)
            times = []
            for _ in range(PROBE_REPEATS.get(kind, 1)):
                start = time.perf_counter()
                run()
                times.append(time.perf_counter() - start)
            elapsed.append(float(np.median(times)))
            costs.append(cost)
    # Noise can make the longer run look no slower: fall back to the plain ratio then.
    extra = elapsed[1] - elapsed[0]
    return extra / (costs[1] - costs[0]) if extra > 0 else elapsed[1] / costs[1]


def estimate_seconds(experiments, seeds, *, cache_dir=None, n_jobs: int = 1, rates=None,
                     counted=None, at_cap: bool = False) -> tuple[float, int, int]:
    """Estimated seconds to run what ``(experiments, seeds)`` still needs.

    Parameters
    ----------
    experiments : sequence of experiments
        As given to :func:`fa.run_sweep` (a repeated one runs once).
    seeds : sequence of int or dict
        The seeds of every experiment, or a dict from each experiment to its seeds.
    cache_dir : path, optional
        The sweep cache (default ``fa.paths.CACHE_DIR``); runs found there are free.
    n_jobs : int, default 1
        Workers running at once.
    rates : dict, optional
        Seconds per unit of ``cost()`` by :func:`rate_key`; keys missing from it are
        measured (:func:`seconds_per_cost`, on the costliest pending experiment, with as
        many processes at once as will run) and added to it.
    counted : set, optional
        ``(experiment, seed)`` pairs already counted by an earlier estimate (runs two
        notebooks share); those to run here are added to it.
    at_cap : bool, default False
        Count each run at ``experiment.max_cost()`` (where the kind has one), the work
        of a run that trains until its cap, instead of ``cost()``: the longest the
        sweep can take.

    Returns
    -------
    seconds, runs, free : float, int, int
        The estimate, the number of runs, and how many of them are cached or counted.
    """
    rates = {} if rates is None else rates
    counted = set() if counted is None else counted
    pending, runs = [], planned_runs(experiments, seeds)
    for experiment, seed in runs:
        if (experiment, seed) not in counted and not is_cached(cache_dir, experiment, seed):
            pending.append(experiment)
            counted.add((experiment, seed))
    for key in dict.fromkeys(map(rate_key, pending)):
        if key not in rates:
            rates[key] = seconds_per_cost(max((e for e in pending if rate_key(e) == key),
                                              key=lambda e: e.cost()),
                                          n_jobs=min(n_jobs, len(pending)))
    # Kinds without a stopping rule have no max_cost: they always train cost().
    times = [rates[rate_key(e)] * (getattr(e, "max_cost", e.cost)() if at_cap else e.cost())
             for e in pending]
    seconds = max(sum(times) / n_jobs, max(times, default=0.0))
    return seconds, len(runs), len(runs) - len(pending)


def report(notebooks, *, n_jobs: int = 1, results_dir=None, rates=None,
           overrides=None) -> str:
    """A table of the estimated paper-scale time per notebook on this machine.

    ``rates`` (seconds per unit of cost by :func:`rate_key`) skips the measurement of
    those; the others are measured once for all notebooks. ``overrides`` are notebook
    parameters given to every notebook (``python -m fa.reproduce --set``); with
    ``rerun=False`` a notebook trains nothing.
    """
    overrides = overrides or {}
    rates = {} if rates is None else dict(rates)
    cache = paths.resolve(results_dir, paths.RESULTS_DIR) / "cache"
    lines = [f"Estimated paper-scale time on this machine ({n_jobs} worker"
             f"{'s' if n_jobs > 1 else ''}; from short runs of each kind timed just now, so "
             "as busy as the machine is now):"]
    total = total_at_cap = 0.0
    counted = set()   # runs shared between notebooks (F2 reuses F1's) are trained once
    for name in notebooks:
        if overrides.get("rerun") is False:
            lines.append(f"  {name:<24} {'0 s':>10}  (rerun=False: redrawn from the committed "
                         "data, nothing trained)")
            continue
        experiments, seeds = BY_NOTEBOOK[name].load().sweep_plan("paper", **overrides)
        earlier = set(counted)
        seconds, runs, free = estimate_seconds(experiments, seeds, cache_dir=cache,
                                               n_jobs=n_jobs, rates=rates, counted=counted)
        at_cap, _, _ = estimate_seconds(experiments, seeds, cache_dir=cache, n_jobs=n_jobs,
                                        rates=rates, counted=earlier, at_cap=True)
        total, total_at_cap = total + seconds, total_at_cap + at_cap
        longest = f"; {_human(at_cap)} if every run reached its cap" if at_cap > seconds else ""
        lines.append(f"  {name:<24} {_human(seconds):>10}  ({runs} runs, {free} cached "
                     f"or shared with an earlier notebook{longest})")
    total_line = f"  {'total':<24} {_human(total):>10}"
    if total_at_cap > total:
        total_line += (f"  (at least T(p) steps a run under the stopping rule, as counted here; "
                       f"{_human(total_at_cap)} if every such run went on to its cap of 10 T(p))")
    lines.append(total_line)
    return "\n".join(lines)


def _human(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
