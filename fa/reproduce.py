"""Regenerate the paper's figures: run every figure notebook through papermill.

Usage::

    python -m fa.reproduce                       # every figure, quick scale (minutes)
    python -m fa.reproduce --scale paper         # the paper's protocol (prints an estimate first)
    python -m fa.reproduce --scale paper --estimate   # only the estimate: nothing is trained
    python -m fa.reproduce --only 01 03 --jobs 2
    python -m fa.reproduce --scale paper --gallery   # replace the committed gallery
    python -m fa.reproduce --scale paper --only 03 --set n_seeds=10 --set "dropout_rates=[]"
    python -m fa.reproduce --scale paper --only 03 --archive   # commit F3's finished runs

Everything goes under the output folder (``build/`` of a checkout, ``./build`` for an
installed package, or ``--output``): executed notebooks in ``notebooks/``, figures in
``figures/``, tidy CSVs and the sweep cache in ``results/``. Only ``--gallery`` writes
tracked files: the figures (``figures/``), their data (``figures/data/``) and the executed
notebooks (``gallery/``).

An interrupted run resumes: rerun the same command and finished runs come from the cache.
At paper scale the committed runs of the longest sweeps (``figures/data/runs/<figure>.zip``,
:func:`fa.cache.pack`) are copied into the cache first; ``--archive`` adds the runs
finished so far (``docs/gallery.md``). A notebook is executed under a temporary name and
renamed once complete, so a partial one never replaces a complete one.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib.util
import logging
import os
import signal
import sys
import time
from pathlib import Path

from . import cache, paths
from .presets import SCALES
from .figures import BY_NOTEBOOK, FIGURES, planned_runs


def available() -> dict[str, str]:
    """The registered figure notebooks that exist, name -> title."""
    return {f.notebook: f.title for f in FIGURES
            if (paths.NOTEBOOKS_DIR / f"{f.notebook}.ipynb").exists()}


def select(only: list[str] | None) -> list[str]:
    """Names of the notebooks to run; ``only`` holds prefixes such as ``01`` or ``mnist``."""
    names = list(available())
    if not names:
        raise ValueError(f"No figure notebooks found in {paths.NOTEBOOKS_DIR}. They ship with "
                         "the package and with the repository; reinstall fa, or run from a "
                         "clone of the repository.")
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


#: Notebook parameters that the options of this command set (``--set`` may not): name ->
#: (the option, its value from the parsed ``args`` and the output folders ``where``).
_OWN = {
    "scale": ("--scale", lambda args, where: args.scale),
    "n_jobs": ("--jobs", lambda args, where: args.jobs),
    "scheduler": ("--scheduler", lambda args, where: args.scheduler),
    "backend": ("--backend", lambda args, where: args.backend),
    "device": ("--device", lambda args, where: args.device),
    "results_dir": ("--output", lambda args, where: _folder(where["results"], where)),
    "figures_dir": ("--output or --gallery", lambda args, where: _folder(where["figures"], where)),
}
#: Of those, the ones passed only when their option is given (not every notebook takes them).
_IF_GIVEN = ("backend", "device")


def _folder(path: Path, where: dict) -> str:
    """``path`` as a notebook parameter: relative to the output folder when it lies in or
    beside it (the gallery's ``../figures``), so no machine's folders show; else absolute."""
    relative = os.path.relpath(path, where["root"])
    return str(path) if relative.startswith(os.path.join(os.pardir, os.pardir)) else relative


def parse_sets(items: list[str] | None, names: list[str]) -> dict:
    """The ``--set NAME=VALUE`` options as notebook parameters for every notebook in ``names``.

    ``VALUE`` is read as a Python literal (``10``, ``[200, 400]``, ``None``, ``False``)
    and kept as text otherwise (``activation=relu``). Each ``NAME`` must be a parameter of
    every notebook run (:mod:`fa.figures`) and not one an option of this command sets.
    """
    sets = {}
    for item in items or []:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ValueError(f"The '--set' option must be NAME=VALUE, e.g. n_seeds=10. "
                             f"Got {item!r} instead.")
        if name in _OWN:
            raise ValueError(f"The '--set' option cannot set {name!r}: use {_OWN[name][0]}.")
        for notebook in names:
            accepted = BY_NOTEBOOK[notebook].accepted
            if name not in accepted:
                raise ValueError(f"The '--set' option names {name!r}, which is not a parameter "
                                 f"of {notebook} (its parameters: "
                                 f"{', '.join(a for a in accepted if a not in _OWN)}); "
                                 "choose the notebooks with --only.")
        try:
            sets[name] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            if text.strip().startswith(("[", "(", "{")):   # meant as a list, not as text
                raise ValueError(f"The '--set' option's value for {name!r} must be a Python "
                                 f"literal such as [200, 400]. Got {text.strip()!r} instead.") \
                    from None
            sets[name] = text.strip()
    return sets


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fa.reproduce", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=SCALES, default="quick",
                        help="quick (minutes) or paper (the paper's protocol exactly; "
                             "see docs/protocols.md)")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="notebooks to run, by prefix or part of the name (e.g. 01 03, "
                             "mnist); default: all")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="worker processes per sweep (default: all cores)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run the sweeps on the Dask cluster at ADDRESS (e.g. "
                             "tcp://10.0.0.5:8786) instead of local processes")
    parser.add_argument("--backend", choices=("numpy", "array_api_strict", "torch", "cupy"),
                        help="array library of the two-layer trainer (default: the fused "
                             "CPU loops); torch and cupy run on a GPU with --device")
    parser.add_argument("--device", help="device for --backend, e.g. cuda:0")
    parser.add_argument("--set", action="append", metavar="NAME=VALUE", dest="sets",
                        help="a notebook parameter for every notebook run, e.g. n_seeds=10 "
                             "or 'widths=[200, 400]' (repeatable; the estimate counts it)")
    parser.add_argument("--output", metavar="DIR", type=Path,
                        help="output folder (default: build/ of the checkout, or ./build)")
    parser.add_argument("--gallery", action="store_true",
                        help="write the committed gallery (figures/, figures/data/, gallery/) "
                             "instead of the output folder; a checkout only")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would run and where it would write, then stop")
    parser.add_argument("--estimate", action="store_true",
                        help="at paper scale, print the estimate and stop (nothing is trained)")
    parser.add_argument("--archive", action="store_true",
                        help="at paper scale, add the finished runs of the chosen figures' "
                             "sweeps (with the --set values) to the committed "
                             "figures/data/runs/ and stop; a checkout only")
    parser.add_argument("--yes", action="store_true",
                        help="at paper scale, start without asking after the estimate")
    return parser


def plan(args) -> dict:
    """Where each kind of output goes for these arguments (absolute paths)."""
    root = args.output.expanduser().resolve() if args.output is not None else paths.output_root()
    # The kernels run in the notebooks' folder and take relative paths from
    # $FA_OUTPUT_ROOT: pointed here, they find the same output folder.
    os.environ["FA_OUTPUT_ROOT"] = str(root)
    where = dict(root=root, notebooks=root / paths.NOTEBOOKS_OUT_DIR,
                 figures=root / paths.FIGURES_DIR, results=root / paths.RESULTS_DIR)
    if args.gallery:
        where.update(notebooks=paths.GALLERY_NOTEBOOKS_DIR, figures=paths.GALLERY_FIGURES_DIR)
    return where


def main(argv=None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be an int >= 1, got {args.jobs}")
    for option, given in (("--gallery", args.gallery), ("--archive", args.archive)):
        if given and paths.CHECKOUT is None:
            parser.error(f"{option} writes the repository's committed gallery, so it needs a "
                         "checkout (git clone); this fa is an installed package.")
    if args.estimate and args.scale != "paper":
        parser.error("--estimate times the paper's protocol: add --scale paper (the quick "
                     "scale takes minutes)")
    if args.archive and args.scale != "paper":
        parser.error("--archive commits runs of the paper's protocol: add --scale paper")
    if args.gallery and args.scale != "paper":
        parser.error("--gallery replaces the committed paper-scale figures: add --scale paper")
    if args.device is not None and args.backend is None:
        parser.error("--device chooses a device of --backend: add --backend (e.g. torch)")
    try:
        names = select(args.only)
        args.sets = parse_sets(args.sets, names)
        for name in names if args.sets else []:   # a wrong value stops here, before any run
            BY_NOTEBOOK[name].load().sweep_plan(args.scale, **args.sets)
        where = plan(args)
        archived = [name for name in names if _runs_archive(name) is not None]
        if args.archive and not archived:
            committed = ", ".join(f.notebook for f in FIGURES if f.archived)
            raise ValueError(f"The '--archive' option commits the runs of {committed} only; "
                             "choose them with --only.")
    except (ValueError, paths.InsidePackage) as err:
        parser.error(str(err))
    if not args.archive and not args.estimate and importlib.util.find_spec("papermill") is None:
        needed = ("The notebooks run with papermill and ipykernel, which are not installed: "
                  "pip install papermill ipykernel (in a checkout: pip install -e '.[notebooks]').")
        if not args.dry_run:
            parser.error(needed)
        print(needed)

    print(f"Notebooks from {paths.NOTEBOOKS_DIR}; executed copies to {where['notebooks']}, "
          f"figures to {where['figures']}, data and cache to {where['results']}")
    if args.dry_run:
        given = {**{k: v for k, v in (("backend", args.backend), ("device", args.device))
                    if v is not None}, **args.sets}
        if args.archive:
            print("Would add the cached runs of", ", ".join(archived), "to",
                  _shown(paths.GALLERY_RUNS_DIR, where) + "/ (nothing is trained)")
            return 0
        print("Would run:", ", ".join(names), f"(scale {args.scale}, {args.jobs} jobs"
              + "".join(f", {k}={v!r}" for k, v in given.items()) + ")")
        return 0
    if args.archive:
        try:
            for name in archived:
                _archive(name, where, args)
        except ValueError as err:
            parser.error(str(err))
        return 0
    if args.scale == "paper":
        for name in archived:
            _restore(name, where)
        from . import cluster
        from .estimate import report

        with cluster.connect(args.scheduler) as executor:
            workers = cluster.n_workers(executor, n_jobs=args.jobs)
        print("Timing short runs of each kind of run not yet cached, for the estimate "
              "(a few minutes)...", flush=True)
        print(report(names, n_jobs=workers, results_dir=where["results"], overrides=args.sets))
        if args.estimate:
            return 0
        if not args.yes and sys.stdin.isatty():
            if input("Start? [y/N] ").strip().lower() not in ("y", "yes"):
                return 1

    # SIGTERM (a scheduler or `kill`) stops the run like Ctrl-C: cleanly, resumable.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    timings = []
    try:
        for name in names:
            print(f"\n== {name}: {available()[name]} (scale {args.scale}, {args.jobs} jobs)",
                  flush=True)
            start = time.perf_counter()
            _execute(name, where, args)
            if args.gallery and args.scale == "paper" and name in archived:
                _archive(name, where, args)
            timings.append((name, time.perf_counter() - start))
            print(f"   done in {timings[-1][1]:.0f} s -> {where['notebooks'] / (name + '.ipynb')}",
                  flush=True)
    except KeyboardInterrupt:
        # The kernel was stopped on purpose: silence the notebook client's complaint at
        # exit ("Task exception was never retrieved: Kernel died").
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        # The sweep has said what is cached and how to resume; add only what it cannot know.
        print(f"\n{name} stopped; its executed notebook was not written (the cells that ran: "
              f"{where['notebooks'] / (name + '.partial.ipynb')}).", file=sys.stderr)
        return 130
    print("\nTiming")
    for name, seconds in timings:
        print(f"  {name:<24} {seconds:7.0f} s")
    print(f"  {'total':<24} {sum(s for _, s in timings):7.0f} s")
    return 0


def _runs_archive(name: str) -> Path | None:
    """The committed runs of notebook ``name`` (``figures/data/runs/<figure>.zip``), or
    None if its runs are not committed or there is no checkout."""
    figure = BY_NOTEBOOK[name]
    if not figure.archived or paths.GALLERY_RUNS_DIR is None:
        return None
    return paths.GALLERY_RUNS_DIR / f"{figure.key}.zip"


def _runs(count: int) -> str:
    """``count`` runs, in words: "1 run", "3 runs"."""
    return f"{count} run{'' if count == 1 else 's'}"


def _restore(name: str, where: dict) -> None:
    """Copy the committed runs of ``name``, if any, into the cache; a damaged archive is
    reported and its runs are trained again."""
    archive = _runs_archive(name)
    if archive is not None and archive.exists():
        try:
            added = cache.unpack(archive, cache_dir=where["results"] / "cache")
        except ValueError as err:
            print(f"{name}: {err} The others will be trained.", file=sys.stderr)
            return
        print(f"{name}: {_runs(added)} copied into the cache from {_shown(archive, where)}")


def _archive(name: str, where: dict, args) -> None:
    """Add the cached runs of ``name``'s paper-scale sweep to its committed archive."""
    runs = planned_runs(*BY_NOTEBOOK[name].load().sweep_plan(args.scale, **args.sets))
    archive = _runs_archive(name)
    added, held = cache.pack(archive, runs, cache_dir=where["results"] / "cache",
                             backend=args.backend)
    print(f"{name}: {_runs(added)} added to {_shown(archive, where)}, which now holds {held} "
          f"(this sweep has {len(runs)})", flush=True)


def _execute(name: str, where: dict, args) -> None:
    """Run one notebook into ``<name>.partial.ipynb``, renamed to ``<name>.ipynb`` when done."""
    import papermill  # only needed here: a notebook extra

    out_dir = where["notebooks"]
    out_dir.mkdir(parents=True, exist_ok=True)
    final, partial = out_dir / f"{name}.ipynb", out_dir / f"{name}.partial.ipynb"
    parameters = {}
    for parameter, (option, value) in _OWN.items():
        given = value(args, where)
        if parameter in _IF_GIVEN and given is None:
            continue
        if parameter in _IF_GIVEN and parameter not in BY_NOTEBOOK[name].accepted:
            print(f"   {option} does not apply to {name}; it runs on the CPU as usual.")
            continue
        parameters[parameter] = given
    parameters.update(args.sets)
    try:
        # The cells' output and stderr (the sweeps' run counts and progress bars,
        # warnings) are echoed to the terminal as they come: a notebook runs for hours.
        with _stderr_to(out_dir / f"{name}.log") as terminal:
            papermill.execute_notebook(
                str(paths.NOTEBOOKS_DIR / f"{name}.ipynb"), str(partial), parameters=parameters,
                cwd=str(paths.NOTEBOOKS_DIR), progress_bar=False, log_output=False,
                stdout_file=terminal, stderr_file=terminal)
    except papermill.PapermillExecutionError as err:
        raise SystemExit(f"{name} failed in cell {err.exec_count}: {err.ename}: {err.evalue}\n"
                         f"The partly executed notebook is {partial}.") from None
    _finish(partial, final, where)
    os.replace(partial, final)


def render_streams(nb) -> None:
    """Merge each cell's consecutive stream outputs and apply carriage returns, as a
    terminal shows them: a progress bar's hundreds of updates become its last state."""
    for cell in nb.cells:
        merged = []
        for out in cell.get("outputs", []):
            if merged and out.get("output_type") == "stream" and \
                    merged[-1].get("output_type") == "stream" and merged[-1].name == out.name:
                merged[-1].text += out.text
            else:
                merged.append(out)
        for out in merged:
            if out.get("output_type") == "stream":
                out.text = "\n".join(line.rstrip("\r").split("\r")[-1]
                                     for line in out.text.split("\n"))
        if "outputs" in cell:
            cell.outputs = merged


def _finish(partial: Path, final: Path, where: dict) -> None:
    """Render the streams of ``partial`` and record its input and ``final`` paths without
    any machine's folders (papermill records them as absolute paths)."""
    import nbformat

    nb = nbformat.read(partial, as_version=4)
    render_streams(nb)
    record = nb.metadata.get("papermill", {})
    for key, path in (("input_path", record.get("input_path")), ("output_path", final)):
        if path is not None:
            record[key] = _shown(Path(path), where)
    nbformat.write(nb, partial)


def _shown(path: Path, where: dict) -> str:
    """``path`` relative to the checkout, else to the output folder, else its name alone."""
    for base in (paths.CHECKOUT, where["root"]):
        if base is not None and path.resolve().is_relative_to(base.resolve()):
            return path.resolve().relative_to(base.resolve()).as_posix()
    return path.name


@contextlib.contextmanager
def _stderr_to(path: Path):
    """Send file descriptor 2 to ``path`` meanwhile, so the kernel's log (which inherits it)
    stays out of the terminal; yield a text stream to the terminal's stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        # errors="replace": a progress bar's blocks must not stop a run on a terminal
        # that cannot show them.
        with open(path, "ab") as log, open(saved, "w", encoding=sys.stderr.encoding or "utf-8",
                                           errors="replace", closefd=False) as terminal:
            os.dup2(log.fileno(), 2)
            try:
                yield terminal
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)


if __name__ == "__main__":
    sys.exit(main())
