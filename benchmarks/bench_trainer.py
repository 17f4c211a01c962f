"""How fast is ``fa.train`` on the paper's F3 configuration, and what limits it?

Run ``python benchmarks/bench_trainer.py`` (about 2-3 minutes on 2 cores). For each
width ``p`` and dtype it reports, side by side, in replica-steps per second (one
replica-step = one gradient-descent update of one network):

* ``baseline``: a straightforward numpy implementation of PAPER.md section 2,
  one network at a time (``baseline_train`` below), run for each replica in turn;
* ``rowspace``: ``fa.train(..., seed=[8 seeds], method="rowspace")``, the
  trainer's default for ``n < d`` (``H <- H - K M`` on a stack of replicas);
* ``direct``: ``fa.train(..., method="direct")``, stacked but updating ``W``, so
  that the row-space gain (rowspace / direct) and the stacking gain
  (direct / baseline) are visible separately;

plus the achieved GFLOP/s of ``rowspace`` (counted on the minimal-work
formulation), the fraction of this machine's measured matmul peak, the
estimated memory traffic of a step against the measured copy bandwidth, and the
memory of a stacked batch against ``fa.trainer.DEFAULT_MEMORY_BUDGET``.

Measurements are interleaved (every implementation once per repeat, repeats
outermost) and the median over repeats is reported, because the machine may be
shared. Trainer rates are "steady state": ``R S / (time of the S steps)``, timed
inside the call by ``StepClock``; the one-off setup of a call (initialisation,
``H0``, rebuilding ``W``) is reported separately, and the end-to-end rate is in
the JSON.
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
import tracemalloc
from pathlib import Path

import numpy as np

import fa
from fa import _random
from fa.trainer import DEFAULT_MEMORY_BUDGET, bytes_per_replica, max_replicas

try:
    import threadpoolctl
except ImportError:  # optional: only for reporting and --blas-threads
    threadpoolctl = None

HERE = Path(__file__).resolve().parent

CLOCKS = {
    "wall": time.perf_counter,     # what a user waits for
    "cpu": time.process_time,      # CPU time of this process: with one BLAS thread, what
                                   # the run would take on an idle machine (other
                                   # processes then cost no time slices, only cache)
}
clock = CLOCKS["wall"]
DEFAULT_OUTPUT = HERE / "results" / "bench_trainer.json"

# The paper's F3 configuration (PAPER.md section 3), relu row, FA.
CONFIG = dict(
    n=50,             # samples
    d=150,            # input dimension
    activation="relu",
    rule="fa",
    lr=1e-2,          # eta
    lam=0.0,          # L2 on beta (the lambda = 0 line of F3; the cost does not depend on it)
)
DEFAULT_WIDTHS = (200, 800, 3200, 12800)   # a subset of F3's widths
DEFAULT_REPLICAS = 8
DEFAULT_DTYPES = ("float64", "float32")
DEFAULT_REPEATS = 3
DEFAULT_SECONDS = 1.0                      # target time of one measurement

# Passes over (n, p) arrays in one replica-step of the trainer's row-space relu step
# (fa/trainer.py _train_stack, fa/_kernels.py, _Stack.step_first_layer),
# 1 pass = n p itemsize bytes:
#   forward: f = relu(H) beta                 read H                   1
#   backward: g, beta, M = eta c D (e b^T)    read H, write M          2
#   H -= T                                    read H, T, write H       3
ELEMENTWISE_PASSES = 6
#   T = K M (the matmul)                      read M, write T          2
MATMUL_PASSES = 2


# ----------------------------------------------------------------------------------
# The baseline: PAPER.md section 2, one network at a time.
# ----------------------------------------------------------------------------------

def baseline_train(X, y, W, beta, b, *, lr, steps, lam=0.0):
    """Full-batch GD with FA on one relu network, written straight from the paper.

    Updates ``W`` and ``beta`` in place and returns the loss after ``t`` updates,
    ``t = 0..steps``.
    """
    n = X.shape[0]
    p = W.shape[0]
    c = 2.0 / (n * np.sqrt(p))
    loss = np.empty(steps + 1)
    for t in range(steps + 1):
        H = X @ W.T                                # (n, p)
        A = np.maximum(H, 0.0)                     # (n, p)  psi = relu
        D = (H > 0.0).astype(H.dtype)              # (n, p)  psi'
        e = A @ beta / np.sqrt(p) - y              # (n,)
        loss[t] = np.mean(e * e)
        if t == steps:
            break
        g_beta = c * (A.T @ e) + lam * beta        # (p,)
        G_W = c * (D * np.outer(e, b)).T @ X       # (p, d)  FA: b, not beta
        W -= lr * G_W
        beta -= lr * g_beta
    return loss


def baseline_init(seed, p, d, dtype):
    """``W``, ``beta``, ``b`` drawn exactly as the trainer draws them for ``seed``."""
    rng = _random.rng(seed, _random.INIT)
    W = rng.standard_normal((p, d))
    beta = rng.standard_normal(p)
    b = rng.standard_normal(p)
    return W.astype(dtype), beta.astype(dtype), b.astype(dtype)


def check_baseline(seeds, dtype="float64", p=200, steps=5):
    """Max relative difference of the baseline's and ``fa.train``'s loss curves."""
    n, d = CONFIG["n"], CONFIG["d"]
    X, y = fa.make_data("teacher", n, d, width=p, activation="relu", seed=list(seeds))
    res = fa.train(X, y, width=p, activation="relu", rule="fa", lr=CONFIG["lr"],
                   steps=steps, seed=list(seeds), dtype=dtype)
    worst = 0.0
    for r, s in enumerate(seeds):
        W, beta, b = baseline_init(s, p, d, dtype)
        loss = baseline_train(X[r].astype(dtype), y[r].astype(dtype), W, beta, b,
                              lr=CONFIG["lr"], steps=steps)
        worst = max(worst, float(np.max(np.abs(loss - res.loss[r]) / np.abs(res.loss[r]))))
    return worst


# ----------------------------------------------------------------------------------
# Timed runs
# ----------------------------------------------------------------------------------

def time_baseline(X, y, seeds, p, dtype, steps):
    """Seconds to train every replica in turn for ``steps`` updates (setup excluded)."""
    d = X.shape[-1]
    inits = [baseline_init(s, p, d, dtype) for s in seeds]
    Xs, ys = X.astype(dtype), y.astype(dtype)
    t0 = clock()
    for r, (W, beta, b) in enumerate(inits):
        baseline_train(Xs[r], ys[r], W, beta, b, lr=CONFIG["lr"], steps=steps,
                       lam=CONFIG["lam"])
    return clock() - t0


class StepClock:
    """Time stamps of every step inside ``fa.train``.

    ``fa.trainer`` runs its compiled forward loop (from ``fa._kernels.loops``) once
    per step (``t = 0..S``; this benchmark uses no dropout), so the stamps taken
    when it is called delimit the steps; ``stamps[S] - stamps[0]`` is the time of
    ``S`` updates without the setup before and after the loop.
    """

    def __init__(self):
        self.stamps = []

    def __enter__(self):
        import fa._kernels as kernels
        self._kernels, self._original = kernels, kernels.loops
        original, stamps = self._original, self.stamps

        def timed_loops(activation, masked):
            forward, backward = original(activation, masked)

            def timed(*args):
                stamps.append(clock())
                return forward(*args)

            return timed, backward

        kernels.loops = timed_loops
        return self

    def __exit__(self, *exc):
        self._kernels.loops = self._original


def time_trainer(X, y, seeds, p, dtype, steps, method, memory_budget=DEFAULT_MEMORY_BUDGET):
    """``(total, loop)``: seconds of one ``fa.train`` call, and of its updates alone.

    ``loop`` sums the ``steps`` updates of every chunk of replicas; it is None if the
    step clock did not see ``steps + 1`` evaluations per chunk.
    """
    with StepClock() as steps_clock:
        t0 = clock()
        fa.train(X, y, width=p, activation=CONFIG["activation"], rule=CONFIG["rule"],
                 lam=CONFIG["lam"], lr=CONFIG["lr"], steps=steps, seed=list(seeds),
                 dtype=dtype, method=method, memory_budget=memory_budget)
        total = clock() - t0
    stamps = steps_clock.stamps
    if not stamps or len(stamps) % (steps + 1):
        return total, None
    spans = np.reshape(stamps, (-1, steps + 1))
    return total, float(np.sum(spans[:, -1] - spans[:, 0]))


def calibrate(run, target, floor=0.15):
    """Steps so that the loop of ``run(steps)`` takes about ``target`` seconds."""
    steps = 2
    while True:
        total, loop = run(steps)
        loop = total if loop is None else loop
        if loop >= floor * target or steps >= 1 << 20:
            break
        steps *= 4
    return max(4, int(round(target * steps / max(loop, 1e-9))))


def calibrate_baseline(X, y, seeds, p, dtype, target):
    steps = 4
    while True:
        dt = time_baseline(X[:1], y[:1], seeds[:1], p, dtype, steps)
        if dt >= 0.05 or steps >= 1 << 20:
            break
        steps *= 4
    per_replica_step = dt / steps
    return max(4, int(round(target / (len(seeds) * per_replica_step))))


# ----------------------------------------------------------------------------------
# Machine: matmul peak, memory bandwidth, BLAS
# ----------------------------------------------------------------------------------

def median_time(fn, repeats=5):
    fn()
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return statistics.median(times)


def matmul_peak(dtype, size=2048):
    """GFLOP/s of a large square matmul (the practical BLAS peak of this process)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    c = np.empty_like(a)
    t = median_time(lambda: np.matmul(a, b, out=c))
    return 2 * size**3 / t / 1e9


def bandwidth(n_bytes=2**28):
    """GB/s of a large array copy and of ``c = a + b`` (bytes read + written)."""
    a = np.ones(n_bytes // 8)
    b = np.ones_like(a)
    c = np.empty_like(a)
    copy = 2 * a.nbytes / median_time(lambda: np.copyto(c, a)) / 1e9
    add = 3 * a.nbytes / median_time(lambda: np.add(a, b, out=c)) / 1e9
    return copy, add


def machine_info():
    info = dict(
        date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        python=sys.version.split()[0], numpy=np.__version__, platform=platform.platform(),
        cpu_count=os.cpu_count(), cpu_model=_cpu_model(),
        env={k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS",
                                            "OMP_NUM_THREADS", "MKL_NUM_THREADS")},
        blas=threadpoolctl.threadpool_info() if threadpoolctl else "threadpoolctl not installed",
    )
    return info


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def load_average():
    try:
        return list(os.getloadavg())
    except (AttributeError, OSError):
        return None


# ----------------------------------------------------------------------------------
# Memory of a stacked batch
# ----------------------------------------------------------------------------------

def traced_peak(X, y, seeds, p, dtype, method):
    """Peak bytes allocated (tracemalloc) during a 2-step ``fa.train`` call."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        time_trainer(X, y, seeds, p, dtype, 2, method)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


# ----------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--widths", type=int, nargs="+", default=list(DEFAULT_WIDTHS),
                    help="widths p (default: %(default)s)")
    ap.add_argument("--replicas", type=int, default=DEFAULT_REPLICAS,
                    help="replicas R stacked in one fa.train call (default: %(default)s)")
    ap.add_argument("--steps", type=int, nargs="+", default=None,
                    help="steps per measurement: one value for all widths, or one per "
                         "width (default: calibrated to --seconds)")
    ap.add_argument("--seconds", type=float, default=DEFAULT_SECONDS,
                    help="target seconds per measurement when calibrating (default: "
                         "%(default)s)")
    ap.add_argument("--dtypes", nargs="+", default=list(DEFAULT_DTYPES),
                    choices=list(fa.trainer.DTYPES), help="(default: %(default)s)")
    ap.add_argument("--repeats", type=int, default=DEFAULT_REPEATS,
                    help="interleaved repeats; the median is reported (default: %(default)s)")
    ap.add_argument("--blas-threads", type=int, default=None,
                    help="limit BLAS threads (threadpoolctl) for the whole run; fa.train "
                         "itself always runs with one, so this changes the baseline and "
                         "the peak (default: leave as configured)")
    ap.add_argument("--clock", choices=list(CLOCKS), default="wall",
                    help="wall time, or this process's CPU time (needs --blas-threads 1; "
                         "robust on a shared machine) (default: %(default)s)")
    ap.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                    help="JSON output (default: benchmarks/results/bench_trainer.json)")
    args = ap.parse_args(argv)
    if args.steps is not None and len(args.steps) not in (1, len(args.widths)):
        ap.error("--steps takes one value or one per width")
    if args.replicas < 1 or args.repeats < 1 or min(args.widths) < 1:
        ap.error("--replicas, --repeats and --widths must be >= 1")
    if args.clock == "cpu" and args.blas_threads != 1:
        ap.error("--clock cpu counts the CPU time of all threads: use it with --blas-threads 1")
    if args.blas_threads is not None and threadpoolctl is None:
        ap.error("--blas-threads needs threadpoolctl (pip install threadpoolctl)")
    return args


def main(argv=None):
    global clock
    args = parse_args(argv)
    clock = CLOCKS[args.clock]
    if args.blas_threads is not None:
        with threadpoolctl.threadpool_limits(limits=args.blas_threads, user_api="blas"):
            return run(args)
    return run(args)


def run(args):
    n, d = CONFIG["n"], CONFIG["d"]
    R = args.replicas
    seeds = list(range(R))
    report = dict(config=dict(CONFIG, replicas=R, widths=args.widths, dtypes=args.dtypes,
                              repeats=args.repeats, blas_threads=args.blas_threads,
                              clock=args.clock),
                  machine=machine_info(), load_average_start=load_average())
    _print_machine(report["machine"], report["load_average_start"])

    report["baseline_check_max_rel_diff"] = check_baseline(seeds[:2])
    print(f"baseline vs fa.train loss, 5 steps, p=200: max rel. diff "
          f"{report['baseline_check_max_rel_diff']:.1e}")

    peaks = {dt: matmul_peak(dt) for dt in args.dtypes}
    copy_bw, add_bw = bandwidth()
    report["peak"] = dict(matmul_gflops=peaks, copy_GBps=copy_bw, add_GBps=add_bw)
    print("matmul peak (2048^2): " + ", ".join(f"{dt} {g:.1f} GFLOP/s" for dt, g in
                                               peaks.items())
          + f"; copy {copy_bw:.1f} GB/s, c=a+b {add_bw:.1f} GB/s (bytes read + written)")

    data = {p: fa.make_data("teacher", n, d, width=p, activation="relu", seed=seeds)
            for p in args.widths}

    # Step counts per (p, dtype, implementation).
    plan = {}
    for i, p in enumerate(args.widths):
        X, y = data[p]
        for dt in args.dtypes:
            time_trainer(X, y, seeds, p, dt, 2, "rowspace")   # compile fa's loops for dt
            if args.steps is not None:
                s = args.steps[0] if len(args.steps) == 1 else args.steps[i]
                plan[p, dt] = dict(baseline=s, rowspace=s, direct=s)
                continue
            plan[p, dt] = dict(
                baseline=calibrate_baseline(X, y, seeds, p, dt, args.seconds),
                rowspace=calibrate(lambda s: time_trainer(X, y, seeds, p, dt, s, "rowspace"),
                                   args.seconds),
                direct=calibrate(lambda s: time_trainer(X, y, seeds, p, dt, s, "direct"),
                                 args.seconds))
            print(f"  calibrated p={p} {dt}: steps {plan[p, dt]}", flush=True)

    # Interleaved measurements: repeats outermost.
    times = {key: dict(baseline=[], rowspace=[], rowspace_loop=[], direct=[], direct_loop=[])
             for key in plan}
    for rep in range(args.repeats):
        for p in args.widths:
            X, y = data[p]
            for dt in args.dtypes:
                st, tt = plan[p, dt], times[p, dt]
                tt["baseline"].append(time_baseline(X, y, seeds, p, dt, st["baseline"]))
                for m in ("rowspace", "direct"):
                    total, loop = time_trainer(X, y, seeds, p, dt, st[m], m)
                    tt[m].append(total)
                    tt[m + "_loop"].append(total if loop is None else loop)
        print(f"  repeat {rep + 1}/{args.repeats} done (load average {load_average()})",
              flush=True)

    rows = []
    for (p, dt), tt in times.items():
        st = plan[p, dt]
        med = {k: statistics.median(v) for k, v in tt.items()}
        item = np.dtype(dt).itemsize
        rate = dict(baseline=R * st["baseline"] / med["baseline"])
        setup = {}
        for m in ("rowspace", "direct"):
            rate[m] = R * st[m] / med[m + "_loop"]
            rate[m + "_end_to_end"] = R * st[m] / med[m]
            setup[m] = med[m] - med[m + "_loop"]
        flops_min = 2 * n * n * p + 4 * n * p          # per replica-step, minimal work
        flops_direct = 4 * n * d * p + 4 * n * p       # per replica-step, H = X W^T and G_W
        gflops = rate["rowspace"] * flops_min / 1e9
        traffic = (ELEMENTWISE_PASSES + MATMUL_PASSES) * n * p * item   # bytes / replica-step
        gbps = rate["rowspace"] * traffic / 1e9
        per = bytes_per_replica(n, d, p, dtype=dt, method="rowspace")
        per_direct = bytes_per_replica(n, d, p, dtype=dt, method="direct")
        rows.append(dict(
            width=p, dtype=dt, steps=st, seconds=tt, rate=rate,
            speedup=dict(rowspace=rate["rowspace"] / rate["baseline"],
                         direct=rate["direct"] / rate["baseline"],
                         rowspace_over_direct=rate["rowspace"] / rate["direct"]),
            setup_seconds=setup,
            flops_per_replica_step=dict(minimal=flops_min, direct_and_baseline=flops_direct),
            rowspace_gflops=gflops, rowspace_fraction_of_peak=gflops / peaks[dt],
            baseline_gflops_executed=rate["baseline"] * flops_direct / 1e9,
            direct_gflops_executed=rate["direct"] * flops_direct / 1e9,
            rowspace_bytes_per_replica_step=dict(elementwise=ELEMENTWISE_PASSES * n * p * item,
                                                 matmul_io=MATMUL_PASSES * n * p * item),
            rowspace_GBps=gbps, rowspace_fraction_of_copy_bw=gbps / copy_bw,
            memory=dict(
                estimate_rowspace=per * R, estimate_direct=per_direct * R,
                traced_peak_rowspace=traced_peak(*data[p], seeds, p, dt, "rowspace"),
                traced_peak_direct=traced_peak(*data[p], seeds, p, dt, "direct"),
                budget=DEFAULT_MEMORY_BUDGET,
                chunk_rowspace=max_replicas(n, d, p, dtype=dt, method="rowspace"),
                chunk_direct=max_replicas(n, d, p, dtype=dt, method="direct")),
        ))
    rows.sort(key=lambda r: (r["width"], args.dtypes.index(r["dtype"])))
    report["rows"] = rows
    report["load_average_end"] = load_average()
    report["targets"] = targets(rows)

    print_table(rows, R)
    print_memory(rows, R)
    print_targets(report["targets"])
    print(f"load average at start {report['load_average_start']}, "
          f"at end {report['load_average_end']} ({os.cpu_count()} CPUs)")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1, default=_json_default))
    print(f"wrote {args.output}")
    return report


def targets(rows):
    """The issue's targets, float64: >= 5x at p = 800, 3200; > 1x at every width."""
    out = []
    for r in rows:
        if r["dtype"] != "float64":
            continue
        need = 5.0 if r["width"] in (800, 3200) else 1.0
        out.append(dict(width=r["width"], speedup=r["speedup"]["rowspace"], need=need,
                        met=r["speedup"]["rowspace"] >= need))
    return out


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(type(o))


def _print_machine(m, load):
    print(f"{m['date']}  {m['cpu_model']}, {m['cpu_count']} CPUs, numpy {m['numpy']}, "
          f"python {m['python']}")
    if isinstance(m["blas"], list):
        for lib in m["blas"]:
            print(f"BLAS: {lib.get('internal_api')} {lib.get('version')} "
                  f"({lib.get('architecture')}), {lib.get('num_threads')} threads, "
                  f"{lib.get('threading_layer')}")
    else:
        print(f"BLAS: {m['blas']}")
    env = {k: v for k, v in m["env"].items() if v is not None}
    print(f"environment: {env or 'no BLAS/OpenMP variables set'}")
    print(f"load average (1, 5, 15 min): {load}")
    if load and m["cpu_count"] and load[0] > 0.5 * m["cpu_count"]:
        print("WARNING: the machine is busy; wall-clock timings will be noisy and "
              "multi-threaded BLAS may stall (compare with --blas-threads 1 --clock cpu).")


def print_table(rows, R):
    head = (f"{'p':>6} {'dtype':>7} | {'baseline':>9} {'rowspace':>9} {'x':>6} "
            f"{'direct':>9} {'x':>6} {'row/dir':>7} | {'GFLOP/s':>7} {'%peak':>6} | "
            f"{'GB/s':>6} {'%copy':>6} | {'setup s':>7}")
    print(f"\nreplica-steps/s (R = {R} replicas; median of repeats; trainer steady state; "
          f"{clock.__name__})")
    print(head)
    print("-" * len(head))
    for r in rows:
        rt, sp = r["rate"], r["speedup"]
        print(f"{r['width']:>6} {r['dtype']:>7} | {rt['baseline']:>9.0f} {rt['rowspace']:>9.0f} "
              f"{sp['rowspace']:>6.1f} {rt['direct']:>9.0f} {sp['direct']:>6.1f} "
              f"{sp['rowspace_over_direct']:>7.1f} | {r['rowspace_gflops']:>7.2f} "
              f"{100 * r['rowspace_fraction_of_peak']:>5.1f}% | {r['rowspace_GBps']:>6.1f} "
              f"{100 * r['rowspace_fraction_of_copy_bw']:>5.0f}% | "
              f"{r['setup_seconds']['rowspace']:>7.2f}")


def print_memory(rows, R):
    mib = 2**20
    print(f"\nmemory of one stacked batch of R = {R} (MiB; budget "
          f"{DEFAULT_MEMORY_BUDGET / mib:.0f} MiB per chunk)")
    print(f"{'p':>6} {'dtype':>7} | {'estimate':>9} {'traced':>8} {'chunk':>6} | "
          f"{'direct est':>10} {'traced':>8} {'chunk':>6}")
    for r in rows:
        m = r["memory"]
        print(f"{r['width']:>6} {r['dtype']:>7} | {m['estimate_rowspace'] / mib:>9.1f} "
              f"{m['traced_peak_rowspace'] / mib:>8.1f} {m['chunk_rowspace']:>6} | "
              f"{m['estimate_direct'] / mib:>10.1f} {m['traced_peak_direct'] / mib:>8.1f} "
              f"{m['chunk_direct']:>6}")


def print_targets(ts):
    print("\ntargets (float64, rowspace / baseline): "
          + ", ".join(f"p={t['width']}: {t['speedup']:.1f}x (need {t['need']:g}x) "
                      f"{'met' if t['met'] else 'NOT met'}" for t in ts))


if __name__ == "__main__":
    main()
