"""Does the paper-scale estimate hold for the longest runs, on several workers?

Run ``python benchmarks/bench_estimate.py`` (benchmarks/README.md). It takes one F3
configuration at the paper's protocol (default: the ReLU network at p = 12 800 with
dropout q = 0.8, in its paper dtype), fixed at ``--steps`` steps, and puts side by side:

* the time :func:`fa.estimate.estimate_seconds` predicts for ``--jobs`` such runs on
  ``--jobs`` workers (it times one short probe of the paper's run in this process and
  divides by the workers);
* the time ``fa.run_sweep(..., n_jobs=--jobs)`` really takes for them, in the chunks the
  sweep uses for the paper's run (process start, data and a final evaluation included:
  the estimate leaves those out). Workers that slowed each other down, sharing memory
  bandwidth or caches, would show here as a ratio below 1.

Each number is the median of ``--repeats``; the ratio estimated / measured is what a
user of ``python -m fa.reproduce --scale paper`` can expect of its estimate.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time

import fa
from fa import estimate
from fa.figures import width_dependence


def experiment(activation: str, width: int, dropout: float, steps: int):
    """The F3 paper-protocol configuration with these fields, and it at ``steps`` fixed
    steps."""
    plan, _ = width_dependence.sweep_plan("paper", widths=[width], dropout_widths=[width],
                                          n_seeds=1)
    found = [e for e in plan if e.activation == activation and e.dropout == dropout]
    if not found:
        rates = sorted({e.dropout for e in plan if e.activation == activation})
        raise SystemExit(f"F3 has no {activation} run with dropout {dropout}; its rates "
                         f"are {rates}")
    return found[0], dataclasses.replace(found[0], steps=steps, until_converged=False,
                                         max_steps=None)


def estimated(paper, config, jobs: int) -> float:
    # The rate measured as python -m fa.reproduce measures it: on the paper's run.
    rates = {estimate.rate_key(paper): estimate.seconds_per_cost(paper)}
    with tempfile.TemporaryDirectory() as empty:
        seconds, _, _ = estimate.estimate_seconds([config], range(jobs), cache_dir=empty,
                                                  n_jobs=jobs, rates=rates)
    return seconds


def measured(config, jobs: int, chunk_size: int) -> float:
    start = time.perf_counter()
    fa.run_sweep([config], range(jobs), cache_dir=None, n_jobs=jobs, progress=False,
                 chunk_size=chunk_size)
    return time.perf_counter() - start


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--activation", default="relu")
    ap.add_argument("--width", type=int, default=12800)
    ap.add_argument("--dropout", type=float, default=0.8)
    ap.add_argument("--steps", type=int, default=4000, help="fixed steps of each run")
    ap.add_argument("--jobs", type=int, default=2, help="workers, and runs (one each)")
    ap.add_argument("--repeats", type=int, default=3)
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    paper, config = experiment(args.activation, args.width, args.dropout, args.steps)
    # Fixed at fewer steps, more seeds would fit in one call than the sweep stacks for
    # the paper's run: keep its chunks.
    chunk_size = paper.chunk_size()
    rows = {"estimated": [], "measured": []}
    for _ in range(args.repeats):    # interleaved, so drifting load hits both rows alike
        rows["estimated"].append(estimated(paper, config, args.jobs))
        rows["measured"].append(measured(config, args.jobs, chunk_size))
    truth = statistics.median(rows["measured"])
    print(f"{args.jobs} runs of F3 {config.activation}, p = {config.width}, dropout "
          f"{config.dropout}, {config.dtype}, {config.steps} steps, {chunk_size} seed"
          f"{'s' if chunk_size > 1 else ''} a call, on {args.jobs} workers "
          f"(median of {args.repeats}):")
    for name, times in rows.items():
        seconds = statistics.median(times)
        print(f"  {name:<10} {seconds:7.1f} s   {seconds / truth:5.2f} x measured")


if __name__ == "__main__":
    main()
