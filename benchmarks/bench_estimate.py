"""Does the paper-scale estimate hold when several workers share the machine?

Run ``python benchmarks/bench_estimate.py`` (benchmarks/README.md). It takes one F3
configuration at the paper's protocol (default: the ReLU network at p = 12 800 with
dropout q = 0.8, in its paper dtype), fixed at ``--steps`` steps, and puts side by side:

* the time :func:`fa.estimate.estimate_seconds` predicts for ``--jobs`` such runs on
  ``--jobs`` workers, from a rate timed by one probe, as the estimate did before it
  timed probes side by side, and from ``--jobs`` probes side by side, as it does now;
* the time ``fa.run_sweep(..., n_jobs=--jobs)`` really takes for them (process start,
  data and a final evaluation included: the estimate leaves those out).

Each number is the median of ``--repeats``; the ratio predicted / measured is what a
user of ``python -m fa.reproduce --scale paper`` can expect of its estimate.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time

import fa
from fa import estimate, width_dependence


def experiment(activation: str, width: int, dropout: float, steps: int):
    """The F3 paper-protocol configuration with these fields, at ``steps`` fixed steps."""
    plan, _ = width_dependence.sweep_plan("paper", widths=[width], dropout_widths=[width],
                                          n_seeds=1)
    found = [e for e in plan if e.activation == activation and e.dropout == dropout]
    if not found:
        rates = sorted({e.dropout for e in plan if e.activation == activation})
        raise SystemExit(f"F3 has no {activation} run with dropout {dropout}; its rates "
                         f"are {rates}")
    return dataclasses.replace(found[0], steps=steps, until_converged=False, max_steps=None)


def predicted(config, jobs: int, side_by_side: int) -> float:
    with tempfile.TemporaryDirectory() as empty:
        seconds, _, _ = estimate.estimate_seconds([config], range(jobs), cache_dir=empty,
                                                  n_jobs=jobs, side_by_side=side_by_side)
    return seconds


def measured(config, jobs: int) -> float:
    start = time.perf_counter()
    fa.run_sweep([config], range(jobs), cache_dir=None, n_jobs=jobs, progress=False)
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
    config = experiment(args.activation, args.width, args.dropout, args.steps)
    rows = {"one probe": [], f"{args.jobs} probes side by side": [], "measured": []}
    for _ in range(args.repeats):    # interleaved, so drifting load hits every row alike
        rows["one probe"].append(predicted(config, args.jobs, 1))
        rows[f"{args.jobs} probes side by side"].append(predicted(config, args.jobs, args.jobs))
        rows["measured"].append(measured(config, args.jobs))
    truth = statistics.median(rows["measured"])
    print(f"{args.jobs} runs of F3 {config.activation}, p = {config.width}, dropout "
          f"{config.dropout}, {config.dtype}, {config.steps} steps, on {args.jobs} workers "
          f"(median of {args.repeats}):")
    for name, times in rows.items():
        seconds = statistics.median(times)
        print(f"  {name:<26} {seconds:7.1f} s   {seconds / truth:5.2f} x measured")


if __name__ == "__main__":
    main()
