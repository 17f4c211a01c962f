"""How long a paper-scale run will take on this machine, measured, not guessed.

The estimate times a short stacked training run per activation on this
machine (one BLAS thread, as the sweep's workers use), converts it into
seconds per unit of work (``steps x width``), and multiplies by the work of
every run the paper-scale sweep still has to do (cached runs are free).
Runs with the stopping rule take at least ``T(p)`` steps; the estimate counts
that minimum, so it is a lower bound for them. Figures whose module has its own
``estimate_seconds`` (the MNIST figure) are estimated by it.
"""

from __future__ import annotations

import time

from threadpoolctl import threadpool_limits

from . import paths
from .data import make_data
from .experiments import is_cached
from .presets import PROTOCOL
from .registry import BY_NOTEBOOK
from .trainer import train


def seconds_per_unit(activation: str, *, width: int = 1600, replicas: int = 8,
                     steps: int = 200, dropout: float = 0.0) -> float:
    """Measured seconds per (step x width) of one replica, stacked as the sweep stacks them."""
    seeds = list(range(replicas))
    X, y = make_data(PROTOCOL[activation].data, 50, 150, width=width, activation=activation,
                     seed=seeds)
    with threadpool_limits(1):
        train(X, y, width=width, activation=activation, lr=1e-3, steps=5, seed=seeds,
              dropout=dropout)                                    # warm-up
        start = time.perf_counter()
        train(X, y, width=width, activation=activation, lr=1e-3, steps=steps, seed=seeds,
              dropout=dropout)
    return (time.perf_counter() - start) / (replicas * steps * width)


def report(notebooks, *, n_jobs: int = 1, results_dir=None) -> str:
    """A table of the estimated paper-scale time per notebook on this machine."""
    rate = {(a, drop): seconds_per_unit(a, dropout=drop)
            for a in PROTOCOL for drop in (0.0, 0.5)}
    cache = paths.resolve(results_dir, paths.RESULTS_DIR) / "cache"
    lines = [f"Estimated paper-scale time on this machine ({n_jobs} worker"
             f"{'s' if n_jobs > 1 else ''}; measured just now):"]
    total = 0.0
    counted = set()   # runs shared between notebooks (F2 reuses F1's) are trained once
    for name in notebooks:
        module = BY_NOTEBOOK[name].load()
        if hasattr(module, "estimate_seconds"):
            seconds, runs, cached = module.estimate_seconds(
                module.settings("paper"), n_jobs=n_jobs, results_dir=results_dir)
            total += seconds
            lines.append(f"  {name:<24} {_human(seconds):>10}  ({runs} runs, {cached} cached)")
            continue
        configs, seeds = module.sweep_plan("paper")
        seconds, runs, cached = 0.0, 0, 0
        for config in dict.fromkeys(configs):
            for seed in seeds:
                runs += 1
                if (config, seed) in counted or is_cached(cache, config, seed):
                    cached += 1
                    continue
                counted.add((config, seed))
                unit = rate[config.activation, 0.5 if config.dropout > 0 else 0.0]
                seconds += unit * config.steps * config.width
        seconds /= n_jobs
        total += seconds
        lines.append(f"  {name:<24} {_human(seconds):>10}  ({runs} runs, {cached} cached "
                     "or shared with an earlier notebook)")
    lines.append(f"  {'total':<24} {_human(total):>10}  (runs that keep going past T(p) under "
                 "the stopping rule take longer: this counts their minimum T(p) steps)")
    return "\n".join(lines)


def _human(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
