"""How fast is ``fa.train`` on the paper's F3 configuration, on each backend?

Run ``python benchmarks/bench_trainer.py`` (benchmarks/README.md). For each width
``p`` and dtype it reports, side by side, replica-steps per second (one replica-step
= one gradient-descent update of one network), measured through the public API only:

* ``reference``: ``fa.train(..., method="reference")`` one seed at a time, the
  straightforward one-network-at-a-time baseline (the paper's step as written,
  :func:`fa.model.step`, on numpy);
* ``fused row`` / ``fused dir``: the default path (``backend=None``), all replicas
  in one call, ``method="rowspace"`` / ``"direct"``;
* one column per array-API backend and device, ``method="rowspace"``: numpy,
  torch CPU, torch CUDA, cupy ("absent" where the library or device is missing).

A rate is ``R * S / (t(2S) - t(S))`` with ``t(S)`` the wall time of a whole call of
``S`` steps, so the one-off setup of a call cancels. ``%peak`` is the rate times the
matmul flops of a replica-step of the column's formulation (rowspace ``2 n^2 p``,
direct ``4 n d p``) over the peak of a large matmul timed the same way on that
library and device (numpy and torch CPU on one thread, as ``fa.train`` runs them).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import fa
from fa.trainer import DEFAULT_MEMORY_BUDGET, bytes_per_replica, max_replicas

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "results" / "bench_trainer.json"

def config(activation="relu"):
    """The paper's F3 configuration (docs/protocols.md), ``activation``'s row, FA."""
    return dict(n=50, d=150, activation=activation, rule="fa",
                lr=fa.presets.PROTOCOL[activation].lr, lam=0.0)


DEFAULT_WIDTHS = (200, 800, 3200)
DEFAULT_REPLICAS = 8
DEFAULT_DTYPES = ("float64", "float32")
DEFAULT_REPEATS = 3
DEFAULT_SECONDS = 0.5              # target time of one measurement (S steps)

#: column -> (fa.train keywords, one seed per call, formulation, (library, device))
COLUMNS = {
    "reference": (dict(method="reference"), True, "direct", ("numpy", None)),
    "fused row": (dict(method="rowspace"), False, "rowspace", ("numpy", None)),
    "fused dir": (dict(method="direct"), False, "direct", ("numpy", None)),
    "numpy xp": (dict(method="rowspace", backend="numpy"), False, "rowspace", ("numpy", None)),
    "torch cpu": (dict(method="rowspace", backend="torch", device="cpu"), False, "rowspace",
                  ("torch", "cpu")),
    "torch cuda": (dict(method="rowspace", backend="torch", device="cuda"), False,
                   "rowspace", ("torch", "cuda")),
    "cupy": (dict(method="rowspace", backend="cupy"), False, "rowspace", ("cupy", None)),
}


def available(library, device) -> bool:
    """Whether ``library`` (and ``device``) can be used here."""
    try:
        if library == "torch":
            import torch
            return device != "cuda" or torch.cuda.is_available()
        if library == "cupy":
            import cupy
            return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:      # not installed, or no driver
        return False
    return True


def run_train(data, p, dtype, steps, column, cfg):
    """Wall seconds of training the replicas for ``steps`` updates as ``column`` does."""
    X, y = data
    kw, one_by_one, _, _ = COLUMNS[column]
    common = dict(width=p, activation=cfg["activation"], rule=cfg["rule"],
                  lam=cfg["lam"], lr=cfg["lr"], steps=steps, dtype=dtype, **kw)
    t0 = time.perf_counter()
    if one_by_one:
        for r in range(len(X)):
            fa.train(X[r], y[r], seed=r, **common)
    else:
        fa.train(X, y, seed=list(range(len(X))), **common)
    return time.perf_counter() - t0


def rate(data, p, dtype, column, steps, repeats, cfg):
    """Replica-steps per second of the steps alone (setup cancels), median of repeats."""
    R = len(data[0])
    rates = []
    for _ in range(repeats):
        t1 = run_train(data, p, dtype, steps, column, cfg)
        t2 = run_train(data, p, dtype, 2 * steps, column, cfg)
        rates.append(R * steps / max(t2 - t1, 1e-9))
    return statistics.median(rates)


def calibrate(data, p, dtype, column, target, cfg):
    """Steps ``S`` so that ``S`` updates of all replicas take about ``target`` seconds."""
    run_train(data, p, dtype, 2, column, cfg)             # compile, warm up
    steps = 4
    while True:
        dt = (run_train(data, p, dtype, 2 * steps, column, cfg)
              - run_train(data, p, dtype, steps, column, cfg))
        if dt >= 0.2 * target or steps >= 1 << 16:
            return max(4, int(target * steps / max(dt, 1e-9)))
        steps *= 4


def matmul_peak(library, device, dtype, size=2048):
    """GFLOP/s of a ``size``-square matmul on ``library`` / ``device`` (one CPU thread)."""
    if library == "numpy":
        from threadpoolctl import threadpool_limits
        a = np.random.default_rng(0).standard_normal((size, size)).astype(dtype)
        with threadpool_limits(limits=1, user_api="blas"):
            return _best_gflops(lambda: a @ a, size)
    if library == "torch":
        import torch
        a = torch.randn(size, size, dtype=getattr(torch, dtype), device=device)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return _best_gflops(lambda: (a @ a, sync()), size)
        finally:
            torch.set_num_threads(threads)
    import cupy
    a = cupy.random.standard_normal((size, size)).astype(dtype)
    return _best_gflops(lambda: (a @ a, cupy.cuda.Device().synchronize()), size)


def _best_gflops(fn, size, repeats=3):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 2 * size**3 / min(times) / 1e9


def flops(formulation, n, d, p):
    """Matmul flops of one replica-step of a formulation."""
    return 2 * n * n * p if formulation == "rowspace" else 4 * n * d * p


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--activation", default="relu", choices=list(fa.presets.PAPER_ACTIVATIONS),
                    help="the F3 row to time (linear networks take the rank-one step)")
    ap.add_argument("--widths", type=int, nargs="+", default=list(DEFAULT_WIDTHS),
                    help="widths p to time (default: %(default)s)")
    ap.add_argument("--replicas", type=int, default=DEFAULT_REPLICAS,
                    help="networks trained together in one call (default: %(default)s)")
    ap.add_argument("--dtypes", nargs="+", default=list(DEFAULT_DTYPES),
                    choices=list(fa.constraints.DTYPES), help="precisions (default: %(default)s)")
    ap.add_argument("--columns", nargs="+", default=list(COLUMNS), choices=list(COLUMNS),
                    help="the paths to time (default: all)")
    ap.add_argument("--steps", type=int, default=None,
                    help="steps S per measurement (default: calibrated to --seconds)")
    ap.add_argument("--seconds", type=float, default=DEFAULT_SECONDS,
                    help="target time of one measurement (default: %(default)s)")
    ap.add_argument("--repeats", type=int, default=DEFAULT_REPEATS,
                    help="measurements per cell; the median is reported (default: %(default)s)")
    ap.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                    help="JSON file of the results (default: "
                         "benchmarks/results/bench_trainer.json)")
    args = ap.parse_args(argv)
    if args.replicas < 1 or args.repeats < 1 or min(args.widths) < 1:
        ap.error("--replicas, --repeats and --widths must be >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    cfg = config(args.activation)
    n, d = cfg["n"], cfg["d"]
    R = args.replicas
    present = {c: available(*COLUMNS[c][3]) for c in args.columns}
    report = dict(config=dict(cfg, replicas=R, widths=args.widths, dtypes=args.dtypes,
                              repeats=args.repeats),
                  machine=dict(date=datetime.datetime.now().astimezone().isoformat(
                      timespec="seconds"), python=sys.version.split()[0],
                      numpy=np.__version__, platform=platform.platform(),
                      cpu_count=os.cpu_count()),
                  present=present, rows=[])
    peaks = {(c, dt): matmul_peak(*COLUMNS[c][3], dt) for c in args.columns if present[c]
             for dt in args.dtypes}
    report["peak_gflops"] = {f"{c} {dt}": g for (c, dt), g in peaks.items()}
    for p in args.widths:
        data = fa.make_data(fa.presets.PROTOCOL[cfg["activation"]].data, n, d, width=p,
                            activation=cfg["activation"], seed=list(range(R)))
        for dt in args.dtypes:
            row = dict(width=p, dtype=dt, rate={}, fraction_of_peak={}, steps={},
                       memory=dict(estimate=bytes_per_replica(n, d, p, dtype=dt) * R,
                                   chunk=max_replicas(n, d, p, dtype=dt),
                                   budget=DEFAULT_MEMORY_BUDGET))
            for c in args.columns:
                if not present[c]:
                    continue
                steps = args.steps or calibrate(data, p, dt, c, args.seconds, cfg)
                r = rate(data, p, dt, c, steps, args.repeats, cfg)
                row["steps"][c], row["rate"][c] = steps, r
                row["fraction_of_peak"][c] = r * flops(COLUMNS[c][2], n, d, p) / 1e9 / peaks[c, dt]
            report["rows"].append(row)
            print(f"  p={p} {dt} done", flush=True)
    print_table(report, args.columns, R)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.output}")
    return report


def print_table(report, columns, R):
    print(f"\nreplica-steps/s (R = {R}; median of repeats; setup excluded) and % of the "
          "matmul peak of the column's library/device")
    head = f"{'p':>6} {'dtype':>7} | " + " | ".join(f"{c:>17}" for c in columns)
    print(head)
    print("-" * len(head))
    for row in report["rows"]:
        cells = []
        for c in columns:
            if not report["present"][c]:
                cells.append(f"{'absent':>17}")
            else:
                cells.append(f"{row['rate'][c]:>9.0f} {100 * row['fraction_of_peak'][c]:>6.1f}%")
        print(f"{row['width']:>6} {row['dtype']:>7} | " + " | ".join(cells))
    print("peak GFLOP/s: " + ", ".join(f"{k} {v:.1f}" for k, v in
                                      report["peak_gflops"].items()))


if __name__ == "__main__":
    main()
