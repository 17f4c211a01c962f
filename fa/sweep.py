"""The sweep engine: many seeded runs of any experiment, cached, resumable, parallel.

A sweep is a list of experiments (one per curve or point) times a list of seeds.
:func:`run_sweep` runs every (experiment, seed) pair not yet in the cache
(:mod:`fa.cache`), in chunks of one experiment's seeds, here, on a local process pool
or on any :class:`concurrent.futures.Executor` (Dask: :mod:`fa.cluster`). This process
caches every chunk as it arrives, so an interrupted sweep resumes where it stopped and
workers need no shared disk.

The experiment protocol
-----------------------
An experiment is a frozen (hashable) dataclass instance whose fields say what it
runs; the seed is given separately. Its class provides:

``numerics_modules`` : tuple of str (class attribute)
    The modules whose code computes its numbers; that code (without docstrings and
    comments, :func:`fa.cache.code_text`) enters the cache key.
``scalars`` : dict of str to type (class attribute)
    Name and type (``bool``, ``int`` or ``float``) of every scalar a record holds (the
    ``runs`` table's columns); a record may carry further optional scalars.
``curves`` : tuple of str (class attribute)
    Names of the equal-length 1-D arrays a record holds (the ``curves`` table's columns).
``run(seeds, **options) -> list[dict]``
    One record per seed (run in a worker, on one BLAS thread); ``options`` are the
    pass-through arguments given to :func:`run_sweep`. The same seeds must give the
    same records wherever they run.
``cost() -> float``
    Relative cost of one seed (for the progress bar and for ordering chunks).
``chunk_size() -> int``
    Most seeds per ``run`` call; it must depend on the experiment only, so the
    chunks (and the numbers) do not depend on the executor.

Fields marked ``metadata={"label": True}`` are labels for tables and legends, kept out
of the cache key; a label also marked ``"local": True`` names a place on this machine
(F4's ``data_dir``), left out of the committed gallery data. A record entry may not be
named ``about`` (the cache file's description).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import dataclasses
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import cloudpickle
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from . import cache, paths
from .constraints import check, check_int, check_path, check_seeds, fail
from .loop import DivergenceWarning

_PROTOCOL = ("numerics_modules", "scalars", "curves", "run", "cost", "chunk_size")


@dataclasses.dataclass
class SweepResult:
    """Tidy tables of a sweep.

    Attributes
    ----------
    runs : pandas.DataFrame
        One row per (experiment, seed), in that order: ``run`` (the experiment's
        position in the list), every field, ``seed``, then the record's scalars (for
        :class:`fa.RunConfig`: ``steps_taken``, ``final_loss``, ``final_alignment``,
        ``diverged``, and ``capped`` when the trainer reports it).
    curves : pandas.DataFrame
        One row per (experiment, seed, curve entry): ``run``, every field, ``seed``,
        then the record's curves (for :class:`fa.RunConfig`: ``step``, ``loss`` after
        ``step`` updates and ``alignment``; a diverged run stops at its last finite row).
    """

    runs: pd.DataFrame
    curves: pd.DataFrame


def run_sweep(configs, seeds, *, cache_dir=paths.CACHE_DIR, n_jobs=1, executor=None,
              progress=True, desc=None, chunk_size=None, train_fn=None, backend=None,
              device=None) -> SweepResult:
    """Run every ``(config, seed)`` pair, reusing cached runs, and tabulate them.

    Parameters
    ----------
    configs : experiment or sequence of experiments
        :class:`fa.RunConfig` instances or other experiments of one kind following
        the protocol of :mod:`fa.sweep`, in the order the tables list them.
    seeds : int or sequence of int
        Seeds run for every config (an int is one seed: use ``range(50)`` for 50).
        For a :class:`fa.RunConfig`, seed ``s`` draws the data and the network.
    cache_dir : path or None, default ``fa.paths.CACHE_DIR``
        Folder of the per-run ``.npz`` files (relative paths are taken from
        :func:`fa.paths.output_root`); ``None`` caches nothing.
    n_jobs : int, default 1
        Local worker processes when no ``executor`` is given; 1 runs in this
        process. Every chunk runs on one BLAS thread, so the results do not
        depend on ``n_jobs``.
    executor : concurrent.futures.Executor, optional
        Where to run the chunks instead (:func:`fa.cluster.connect`); ``n_jobs`` is
        then unused. The results come back to this process, which caches them.
    progress : bool, default True
        Print how many runs come from the cache and show a progress bar with an ETA.
    desc : str, optional
        Label of the progress bar and of the messages.
    chunk_size : int, optional
        Most seeds per chunk. Default: the experiment's ``chunk_size()``.
    train_fn : callable, optional
        Stand-in for :func:`fa.train` (tests, benchmarks); picklable when the chunks
        run elsewhere.
    backend, device : str, optional
        Passed on to the experiment's ``run`` (to :func:`fa.train`) when given.
        ``backend`` enters the cache key.

    Returns
    -------
    SweepResult
        ``.runs`` (one row per run) and ``.curves`` (one row per recorded step).

    Raises
    ------
    KeyboardInterrupt
        On Ctrl-C, SIGTERM or a Jupyter interrupt, after stopping the workers and
        saying how many runs are cached and how to resume.
    ConnectionError
        If the executor lost its cluster; every run finished before is cached.

    Warns
    -----
    fa.DivergenceWarning
        Once, if any run diverged (such runs are kept, with ``diverged=True``).

    Examples
    --------
    >>> cfgs = [RunConfig(activation="relu", width=200, lr=1e-2, steps=500, lam=lam)
    ...         for lam in (0.0, 0.05)]
    >>> res = run_sweep(cfgs, range(5), progress=False)  # doctest: +SKIP

    A diverged run stopped early; leave it out of the means:

    >>> ok = res.runs[~res.runs.diverged]  # doctest: +SKIP
    >>> ok.groupby("lam").final_alignment.mean()  # doctest: +SKIP
    """
    caller = "run_sweep"
    single = _is_experiment(configs) or not isinstance(configs, Iterable)
    configs = [configs] if single else list(configs)
    if not configs or not all(_is_experiment(c) for c in configs) or \
            len({type(c) for c in configs}) > 1:
        raise ValueError(f"The 'configs' parameter of {caller} must be a RunConfig (or another "
                         "experiment) or a non-empty sequence of experiments of one kind. "
                         f"Got {configs!r} instead.")
    seeds, _ = check_seeds(seeds, "seeds", caller)
    n_jobs = check_int(n_jobs, "n_jobs", caller, low=1)
    if executor is not None and not isinstance(executor, concurrent.futures.Executor):
        raise ValueError(f"The 'executor' parameter of {caller} must be a "
                         f"concurrent.futures.Executor or None. Got {executor!r} instead.")
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size", caller, low=1)
    if not isinstance(progress, (bool, np.bool_)):
        raise fail("progress", caller, "a bool", progress)
    if backend is not None and not isinstance(backend, str):
        raise fail("backend", caller, "a str or None", backend)
    check("device", device, caller)     # a str or None
    check("backend", backend, caller)   # one of BACKENDS or None
    options = {name: value for name, value in
               (("train_fn", train_fn), ("backend", backend), ("device", device))
               if value is not None}
    folder = None
    if cache_dir is not None:
        folder = paths.resolve(check_path(cache_dir, "cache_dir", caller), paths.CACHE_DIR)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise ValueError(f"The 'cache_dir' parameter of {caller} must be a folder (made "
                             f"if missing). Got {str(folder)!r}, where a file is in the way, "
                             "instead.") from None
        except OSError as err:
            raise _unwritable(folder, caller, err) from None
    label = desc or "sweep"

    # Chunks are cut from the full seed list, so a resumed sweep runs the same chunks.
    results = {}  # (experiment, seed) -> record
    todo = []     # (experiment, missing seeds of one chunk)
    unique = list(dict.fromkeys(configs))  # a repeated experiment is run once
    for experiment in unique:
        size = chunk_size or experiment.chunk_size()
        for start in range(0, len(seeds), size):
            missing = []
            for seed in seeds[start:start + size]:
                record = cache.load(folder, experiment, seed, backend=backend)
                if record is None:
                    missing.append(seed)
                else:
                    results[experiment, seed] = record
            if missing:
                todo.append((experiment, missing))
    if todo and folder is not None:
        # Before training, not after a chunk of it: a read-only cache still serves its runs.
        try:
            tempfile.TemporaryFile(dir=folder).close()
        except OSError as err:
            raise _unwritable(folder, caller, err) from None

    shipped = _shipped(unique)
    n_runs = len(unique) * len(seeds)
    total = sum(c.cost() for c in unique) * len(seeds)
    done = total - sum(c.cost() * len(s) for c, s in todo)
    if progress:
        # Ordinary output, not stderr: news, not an error (papermill shows it as it comes).
        print(f"{label}: {n_runs} runs, {len(results)} from the cache", flush=True)
    # A text bar renders in a terminal, Jupyter and saved notebooks (2 s updates keep them
    # small). It counts work, and says so: a bar that starts at 27% is then no mystery.
    bar = tqdm(total=total, initial=done, desc=label, disable=not progress, mininterval=2.0,
               file=sys.stdout, bar_format="{desc}: {percentage:3.0f}% of the work|{bar}| "
                                           "[{elapsed}<{remaining}]")
    try:
        with _sigterm_as_interrupt(), \
                contextlib.closing(_run_all(todo, n_jobs, executor, options, shipped)) as chunks:
            for experiment, chunk_seeds, records in chunks:
                for seed, record in zip(chunk_seeds, records):
                    record = cache.check_record(record, experiment)
                    cache.save(folder, experiment, seed, record, backend=backend)
                    results[experiment, seed] = record
                bar.update(experiment.cost() * len(chunk_seeds))
    except KeyboardInterrupt:
        bar.close()
        print(f"Interrupted: {_where(len(results), n_runs, folder)}; run the same command "
              "again to resume.", file=sys.stderr)
        raise KeyboardInterrupt from None   # the pool's internals are not the user's concern
    except _LostExecutor as lost:
        what, restart = lost.args
        raise ConnectionError(f"Lost {what}: {_where(len(results), n_runs, folder)}; "
                              f"restart {restart} and run again to resume.") from None
    finally:
        bar.close()
    return _tabulate(configs, seeds, results)


def _is_experiment(obj) -> bool:
    return dataclasses.is_dataclass(obj) and not isinstance(obj, type) and \
        all(hasattr(obj, name) for name in _PROTOCOL)


def _unwritable(folder: Path, caller: str, err: OSError) -> ValueError:
    return ValueError(f"The 'cache_dir' parameter of {caller} must be a folder this process "
                      f"can write to: finished runs are saved there. Got {str(folder)!r} "
                      f"({err.strerror}) instead; cache_dir=None trains without a cache.")


def _where(n_cached: int, n_runs: int, folder: Path | None) -> str:
    if folder is None:
        return f"{n_cached} of this sweep's {n_runs} runs finished, none cached (cache_dir=None)"
    return f"{n_cached} of this sweep's {n_runs} runs are cached in {folder}"


class _LostExecutor(Exception):
    """The executor cancelled work we did not cancel: its cluster went away."""


def _shipped(experiments) -> bytes | None:
    """The run-time registered activations and rules these experiments use, pickled by
    value: a spawned or remote worker never saw them registered."""
    entries = {key: entry for e in experiments for key, entry in cache.registered(e).items()}
    return cloudpickle.dumps(entries) if entries else None


def _run_all(todo, n_jobs, executor, options, shipped):
    """Yield ``(experiment, seeds, records)`` per chunk as each one finishes; if one
    fails, the others that finish are yielded before the error is raised again."""
    if executor is None and (n_jobs == 1 or len(todo) <= 1):
        for experiment, seeds in todo:
            yield experiment, seeds, run_chunk(experiment, seeds, options)
        return
    own = executor is None
    pool = _local_pool(min(n_jobs, len(todo))) if own else executor
    # The pool's workers are the children started from now on (a pool does not list
    # them): an interrupt, even after a failure and the pool's shutdown, kills them.
    before = set(multiprocessing.active_children())
    # Largest chunks first, so no worker is left with a long one at the end.
    todo = sorted(todo, key=lambda job: -job[0].cost() * len(job[1]))
    futures = {}
    finished = False
    try:
        for experiment, seeds in todo:
            futures[pool.submit(run_chunk, experiment, seeds, options, shipped)] = \
                (experiment, seeds)
        pending, error = set(futures), None
        while pending:
            # After a failure, poll: a future cancelled by the pool's shutdown is never
            # "done" for wait() or as_completed() (only one the pool itself started
            # cancelling is), so waiting on it would hang.
            done, pending = wait(pending, timeout=None if error is None else 0.5,
                                 return_when=FIRST_COMPLETED)
            for future in done:
                if future.cancelled():
                    if error is None:    # not cancelled by us
                        raise _LostExecutor(*_describe(pool))
                    continue
                if future.exception() is not None:
                    if error is None:
                        error = future.exception()
                        _drop_pending(pool, futures, own)  # running chunks finish, are saved
                    continue
                yield (*futures[future], future.result())
            if error is not None:
                pending = {future for future in pending if not future.cancelled()}
        if error is not None:
            raise error
        finished = True
    finally:
        if own and finished:
            pool.shutdown()
        else:
            _drop_pending(pool, futures, own)
        if own and not finished:
            # Interrupted or failed: nobody would save what still runs, and a worker
            # stuck in a long chunk must not keep this process alive.
            for process in set(multiprocessing.active_children()) - before:
                process.kill()


def _drop_pending(pool, futures, own):
    """Cancel the chunks that have not started; running ones go on."""
    if own:
        # The pool drops them itself on shutdown. Cancelling its futures from here
        # races with a killed worker: Python 3.11 then fails in the pool's thread
        # (InvalidStateError on a cancelled future) and prints a traceback.
        pool.shutdown(wait=False, cancel_futures=True)
    else:
        for future in futures:
            future.cancel()


def _describe(executor) -> tuple[str, str]:
    """What was lost, and what to restart."""
    from .cluster import client_of
    client = client_of(executor)
    if client is not None:
        return f"the Dask scheduler at {client.scheduler.address}", "the scheduler"
    return f"the workers of {executor!r}", "them"


def run_chunk(experiment, seeds: list[int], options: dict, shipped: bytes | None = None
              ) -> list[dict]:
    """Run one chunk of seeds of ``experiment`` (in a worker); one record per seed.
    ``shipped`` (:func:`_shipped`) registers the parent's run-time entries first."""
    for (table, name), entry in (cloudpickle.loads(shipped) if shipped else {}).items():
        cache.TABLES[table][name] = entry
    # One BLAS thread, here as in a worker: multithreaded BLAS rounds differently (results
    # would depend on the executor) and is slower on these small products anyway.
    with threadpool_limits(limits=1), warnings.catch_warnings():
        # run_sweep warns once for the whole sweep instead of once per chunk.
        warnings.simplefilter("ignore", DivergenceWarning)
        return experiment.run(list(seeds), **options)


# --- the local pool: workers that never outlive the sweep ----------------------------

def _local_pool(n_workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=n_workers, initializer=_init_worker,
                               initargs=(os.getpid(),))


def _init_worker(parent: int) -> None:
    """Tie a worker's life to the sweep's process.

    Ctrl-C reaches the whole process group: the workers ignore it and the parent, which
    owns the results, stops them. If the parent dies (even by SIGKILL), Linux kills the
    worker (``PR_SET_PDEATHSIG``); elsewhere a thread notices.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler, inherited by fork
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    else:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if os.getppid() != parent:   # the parent died before the line above took effect
        os._exit(1)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        threading.Event().wait(1.0)
    os._exit(1)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """In the main thread, turn SIGTERM into KeyboardInterrupt: the same clean stop."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- tidy tables -----------------------------------------------------------------------

def _tabulate(configs, seeds, results) -> SweepResult:
    kind = type(configs[0])
    field_names = [f.name for f in dataclasses.fields(kind)]
    rows, lengths = [], []
    for i, experiment in enumerate(configs):
        for seed in seeds:
            record = results[experiment, seed]
            scalars = {name: value for name, value in record.items()
                       if name not in kind.curves}
            rows.append({"run": i, **{f: getattr(experiment, f) for f in field_names},
                         "seed": seed, **scalars})
            lengths.append(len(record[kind.curves[0]]) if kind.curves else 0)
    runs = pd.DataFrame(rows)

    curves = runs.loc[runs.index.repeat(lengths), ["run", *field_names, "seed"]]
    curves = curves.reset_index(drop=True)
    for column in kind.curves:
        curves[column] = np.concatenate(
            [results[c, s][column] for c in configs for s in seeds])

    n_diverged = int(runs["diverged"].sum()) if "diverged" in runs else 0
    if n_diverged:
        which = runs.loc[runs["diverged"], "run"].unique().tolist()
        warnings.warn(f"{n_diverged} of {len(runs)} runs diverged (configs {which}); they "
                      "are kept with diverged=True and curves up to divergence. "
                      "Lower 'lr' for those configs.", DivergenceWarning, stacklevel=3)
    return SweepResult(runs=runs, curves=curves)
