"""Regenerate the paper's figures: run every notebook through papermill.

Usage::

    python -m fa.reproduce                       # every figure, quick scale (minutes)
    python -m fa.reproduce --scale paper         # PAPER.md's protocol (prints an estimate first)
    python -m fa.reproduce --only 01 03 --jobs 2

Executed notebooks go to ``build/notebooks/`` (the sources stay clean),
figures to ``figures/``, tidy CSVs and the sweep cache to ``results/``.
An interrupted run resumes: finished training runs come from the cache.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from . import paths
from .presets import SCALES

#: The figure notebooks in reading order, with the figure each one regenerates.
NOTEBOOKS = {
    "01_convergence": "F1 convergence (loss curves)",
    "02_alignment_dynamics": "F2 alignment with and without regularisation",
    "03_width_dependence": "F3 width dependence (and F3-dropout)",
    "04_mnist": "F4 MNIST, beyond two layers",
}


def available() -> dict[str, str]:
    """The notebooks of :data:`NOTEBOOKS` that exist in ``notebooks/``."""
    return {name: title for name, title in NOTEBOOKS.items()
            if (paths.NOTEBOOKS_DIR / f"{name}.ipynb").exists()}


def select(only: list[str] | None) -> list[str]:
    """Names of the notebooks to run; ``only`` holds prefixes such as ``01`` or ``mnist``."""
    names = list(available())
    if not only:
        return names
    chosen = []
    for key in only:
        hits = [n for n in names if n.startswith(key) or key in n]
        if not hits:
            raise ValueError(f"The '--only' option must name notebooks among {', '.join(names)} "
                             f"(a prefix such as '01' is enough). Got {key!r} instead.")
        chosen += [h for h in hits if h not in chosen]
    return chosen


def main(argv=None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m fa.reproduce", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=SCALES, default="quick",
                        help="quick (minutes) or paper (PAPER.md section 3 exactly)")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="notebooks to run, by prefix (e.g. 01 03); default: all")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="worker processes per sweep (default: all cores)")
    parser.add_argument("--yes", action="store_true",
                        help="at paper scale, start without asking after the estimate")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be an int >= 1, got {args.jobs}")
    try:
        names = select(args.only)
    except ValueError as err:
        parser.error(str(err))

    if args.scale == "paper":
        from .estimate import report

        print(report(names, n_jobs=args.jobs))
        if not args.yes and sys.stdin.isatty():
            if input("Start? [y/N] ").strip().lower() not in ("y", "yes"):
                return 1

    import papermill  # only needed here: a notebook extra

    out_dir = paths.BUILD_DIR / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    timings = []
    for name in names:
        print(f"\n== {name}: {NOTEBOOKS[name]} (scale {args.scale}, {args.jobs} jobs)", flush=True)
        start = time.perf_counter()
        papermill.execute_notebook(
            str(paths.NOTEBOOKS_DIR / f"{name}.ipynb"), str(out_dir / f"{name}.ipynb"),
            parameters={"scale": args.scale, "n_jobs": args.jobs}, cwd=str(paths.NOTEBOOKS_DIR),
            progress_bar=False, log_output=False)
        timings.append((name, time.perf_counter() - start))
        print(f"   done in {timings[-1][1]:.0f} s -> {out_dir / (name + '.ipynb')}", flush=True)
    print("\nTiming")
    for name, seconds in timings:
        print(f"  {name:<24} {seconds:7.0f} s")
    print(f"  {'total':<24} {sum(s for _, s in timings):7.0f} s")
    print(f"Figures in {paths.resolve(None, paths.FIGURES_DIR)}, data in "
          f"{paths.resolve(None, paths.RESULTS_DIR)}, executed notebooks in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
